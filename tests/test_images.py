"""Image flows in the core: the U-Net keeps shapes, image models train, sample, predict x1, and round-trip
through checkpoints; image specs and the digits split behave as documented."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from flowscope import FlowModel, SolverConfig, TrainConfig, train
from flowscope.data.images import ImageData, digits, split
from flowscope.fields.exact import MarginalVelocity
from flowscope.io.checkpoint import CheckpointError, config_of, from_bytes, load, save, to_bytes
from flowscope.maths.imagespec import ImageSpec
from flowscope.maths.paths import make_path
from flowscope.nets.unet import UNetConfig, VelocityUNet
from flowscope.solver.sampling import integrate


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 7, 5), (1, 28, 28), (2, 1, 1), (4, 9, 16)])
@pytest.mark.parametrize("attention", [True, False])
def test_unet_keeps_the_shape_of_flat_images(shape: tuple[int, int, int], attention: bool) -> None:
    config = UNetConfig(*shape, base=8, multipliers=(1, 2, 2), attention=attention, num_classes=3)
    net = VelocityUNet(config)
    x = torch.randn(5, config.dim)
    out = net(x, torch.rand(5), torch.tensor([0, 1, 2, 3, 0]))  # 3 is the "no label" token
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert net(x, torch.tensor(0.3)).shape == x.shape  # a scalar time, and no label


def test_a_fresh_unet_is_the_zero_field_and_its_label_matters_after_training() -> None:
    net = VelocityUNet(UNetConfig(1, 6, 6, base=8, num_classes=2))
    x = torch.randn(4, 36)
    assert torch.equal(net(x, torch.rand(4)), torch.zeros_like(x))  # zero-initialised output layer
    optimizer = torch.optim.Adam(net.parameters(), 1e-2)
    y = torch.tensor([0, 1, 0, 1])
    target = torch.where(y[:, None] == 0, 1.0, -1.0).expand(4, 36)
    for _ in range(30):
        loss = (net(x, torch.full((4,), 0.5), y) - target).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert (net(x, torch.full((4,), 0.5), y) - target).abs().mean() < 0.5


def test_image_spec_infers_ranges_and_maps_pixels_to_minus_one_one() -> None:
    grey = np.array([[[[0, 16], [3, 9]]], [[[1, 2], [3, 4]]]], dtype=np.float32)
    spec = ImageSpec.infer(grey)
    assert (spec.shape, spec.low, spec.high, spec.levels, spec.bin_width) == ((1, 2, 2), 0.0, 16.0, 17, 1.0)
    assert ImageSpec.infer(grey.astype(np.uint8), np.dtype(np.uint8)).levels == 256
    assert ImageSpec.infer(grey / 20.0).levels is None  # real-valued: continuous
    z = spec.normalizer().encode(torch.from_numpy(grey.reshape(2, -1)))
    assert z.min() == -1.0 and z.max() == 1.0 and spec.normalizer().dim == 4  # no pixel dropped
    assert ImageSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    with pytest.raises(ValueError, match="image.height must be int"):
        ImageSpec.from_dict({**spec.to_dict(), "height": "8"})


def test_digits_split_keeps_every_class_and_holds_out_a_fifth() -> None:
    data = digits()
    assert data.images.shape == (1797, 1, 8, 8) and data.images.min() == 0 and data.images.max() == 16
    assert data.names == tuple("0123456789")
    trained, held_out = split(data)
    assert len(trained) + len(held_out) == 1797 and abs(len(held_out) - 0.2 * 1797) < 10
    for k in range(10):
        share = (held_out.labels == k).sum() / (data.labels == k).sum()
        assert 0.15 < share < 0.25
    again = split(data)[1]
    assert np.array_equal(again.images, held_out.images)  # the same held-out images every time


@pytest.fixture(scope="module")
def tiny_digits() -> ImageData:
    """64 digits of classes 0 and 1, downsized so tests stay fast."""
    data = digits()
    keep = np.flatnonzero(data.labels < 2)[:64]
    return ImageData(images=data.images[keep], spec=data.spec, labels=data.labels[keep], names=("0", "1"),
                     name="digits")


@pytest.fixture(scope="module")
def image_flow(tiny_digits: ImageData) -> FlowModel:
    """A conditional U-Net flow trained a few steps on tiny_digits."""
    result = train(torch.from_numpy(tiny_digits.images), labels=torch.from_numpy(tiny_digits.labels),
                   label_names=tiny_digits.names, model=UNetConfig(1, 8, 8, base=8),
                   config=TrainConfig(steps=30, batch_size=16, lr=1e-3, device="cpu"))
    return result.model


def test_images_train_as_flat_vectors_and_sample_in_pixel_units(image_flow: FlowModel) -> None:
    assert image_flow.image == ImageSpec(1, 8, 8, 0.0, 16.0, 17) and image_flow.dim == 64
    assert image_flow.normalizer.mean[0] == 8.0 and image_flow.normalizer.scale[0] == 8.0
    samples = image_flow.sample(6, label="1", guidance=1.0, solver=SolverConfig("euler", steps=4)).samples
    assert samples.shape == (6, 64)
    assert image_flow.image.unflatten(samples).shape == (6, 1, 8, 8)


def test_image_checkpoint_round_trip(image_flow: FlowModel, tmp_path: Path) -> None:
    back = load(save(image_flow, tmp_path / "digits.safetensors"))
    assert back.image == image_flow.image and back.labels == image_flow.labels
    assert isinstance(back.net, VelocityUNet) and back.net.config == image_flow.net.config
    x = torch.randn(3, 64)
    assert torch.equal(back.velocity(x, torch.full((3,), 0.4), label=1, guidance=2.0),
                       image_flow.velocity(x, torch.full((3,), 0.4), label=1, guidance=2.0))
    config = config_of(image_flow)
    assert config["model"]["type"] == "unet" and config["image"]["levels"] == 17


def test_broken_image_checkpoints_are_named(image_flow: FlowModel) -> None:
    good = json.loads(json.dumps(config_of(image_flow)))

    def with_config(config: dict) -> bytes:  # type: ignore[type-arg]
        from safetensors.torch import save as save_tensors
        tensors = {"net." + k: v.contiguous() for k, v in image_flow.net.state_dict().items()}
        return save_tensors(tensors, metadata={"format": "flowscope", "format_version": "1",
                                               "config": json.dumps(config)})

    no_image = {k: v for k, v in good.items() if k != "image"}
    with pytest.raises(CheckpointError, match="needs config.image"):
        from_bytes(with_config(no_image), "m")
    wrong = {**good, "image": {**good["image"], "height": 4, "width": 16}}
    with pytest.raises(CheckpointError, match=r"config.image has shape \(1, 4, 16\)"):
        from_bytes(with_config(wrong), "m")
    bad_type = {**good, "model": {**good["model"], "type": "transformer"}}
    with pytest.raises(CheckpointError, match="'transformer' is not 'mlp' or 'unet'"):
        from_bytes(with_config(bad_type), "m")
    assert from_bytes(to_bytes(image_flow), "m").image == image_flow.image


def test_bf16_autocast_trains_and_keeps_float32_weights(tiny_digits: ImageData) -> None:
    result = train(torch.from_numpy(tiny_digits.images), model=UNetConfig(1, 8, 8, base=8),
                   config=TrainConfig(steps=5, batch_size=8, lr=1e-3, device="cpu", precision="bf16"))
    assert all(p.dtype == torch.float32 for p in result.model.net.parameters())
    assert all(np.isfinite(result.losses)) and result.model.info["train"]["precision"] == "bf16"
    assert TrainConfig().autocast(torch.device("cpu"), result.model.net) is False  # auto: only U-Nets on CUDA


def test_x1_prediction_of_the_exact_field_is_the_posterior_mean() -> None:
    """With the exact marginal field as v, x_t + (1 - t) v (OT) is E[x1 | x_t]; at a training image's own path
    end it is that image: this is what the explorer's 'prediction of x1' shows."""
    torch.manual_seed(0)
    data = torch.randn(5, 16, dtype=torch.float64)
    for name in ("ot", "vp"):
        path = make_path(name)
        exact = MarginalVelocity(path, data)
        x = torch.randn(3, 16, dtype=torch.float64)
        t = 0.6
        a = float(path.alpha(torch.tensor(t, dtype=torch.float64)))
        var = float(path.sigma(torch.tensor(t, dtype=torch.float64))) ** 2
        weights = torch.softmax(-((x[:, None] - a * data[None]) ** 2).sum(-1) / (2 * var), dim=1)
        predicted = path.x1_prediction(x, exact(x, torch.full((3,), t, dtype=torch.float64)), t)
        assert torch.allclose(predicted, weights @ data, atol=1e-8), name
    ot = make_path("ot", sigma_min=0.0)
    x, v = torch.randn(4, 3), torch.randn(4, 3)
    assert torch.allclose(ot.x1_prediction(x, v, 0.3), x + 0.7 * v, atol=1e-6)


def test_integrating_the_exact_field_of_images_reproduces_training_images(tiny_digits: ImageData) -> None:
    flow_path = make_path("ot")
    spec = tiny_digits.spec
    z = spec.normalizer().encode(torch.from_numpy(tiny_digits.flat)).double()
    exact = MarginalVelocity(flow_path, z)
    start = torch.randn(4, 64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    end = integrate(exact, start, t1=flow_path.t_max, solver=SolverConfig("dopri5", atol=1e-7, rtol=1e-7)).samples
    nearest = torch.cdist(end, z).min(dim=1).values
    assert (nearest < 1e-2).all(), nearest  # it memorises: every sample is a training image


def test_exact_samples_copy_training_images_where_the_learned_model_does_not(image_flow: FlowModel,
                                                                             tiny_digits: ImageData) -> None:
    from flowscope.fields.fieldview import exact_samples, field_support

    support = field_support(image_flow, tiny_digits.flat, labels=tiny_digits.labels)
    x0 = image_flow.draw_source(6, torch.Generator().manual_seed(0))
    solver = SolverConfig("dopri5", atol=1e-6, rtol=1e-6)
    exact = exact_samples(image_flow, support, x0, solver=solver).samples
    to_train = torch.cdist(exact, support.x1).min(dim=1)
    assert (to_train.values < 0.05).all(), to_train.values  # pixel units (0..16): copies
    ones = exact_samples(image_flow, support, x0, label="1", guidance=1.0, solver=solver).samples
    nearest = torch.cdist(ones, support.x1).min(dim=1).indices
    assert (support.labels[nearest] == 1).all()  # the class field lands on that class's images
    learned = image_flow.sample(x0=x0, solver=SolverConfig("euler", steps=8)).samples
    assert torch.cdist(learned, support.x1).min(dim=1).values.min() > 1.0  # a barely trained model copies nothing

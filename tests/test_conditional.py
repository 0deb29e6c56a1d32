"""Conditional flows and classifier-free guidance: labels of the built-in data, the label-conditioned model,
guided sampling, the exact class and guided fields, class likelihoods and the label accuracy metric."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchdiffeq import odeint

from flowscope import FlowModel, MLPConfig, SolverConfig, TrainConfig, train
from flowscope.data.datasets import make_dataset, make_labelled
from flowscope.evaluation.metrics import label_accuracy
from flowscope.evaluation.report import class_posterior, evaluate_classes
from flowscope.fields import fieldview
from flowscope.fields.exact import MarginalVelocity, marginal_field
from flowscope.io.checkpoint import CheckpointError, from_bytes, to_bytes
from flowscope.maths.couplings import pair
from flowscope.maths.grid import grid_2d
from flowscope.solver.sampling import VelocityODE
from flowscope.training.loop import check_labels


@pytest.fixture(scope="module")
def gaussians() -> FlowModel:
    """A conditional model of 8gaussians (8 classes), small but well separated."""
    data = make_labelled("8gaussians", 4000, 0)
    return train(torch.from_numpy(data.x), labels=torch.from_numpy(data.y), label_names=data.names,
                 model=MLPConfig(dim=2, width=64, depth=2),
                 config=TrainConfig(steps=1500, batch_size=256, device="cpu")).model


def test_natural_labels_are_the_parts_of_the_same_points() -> None:
    for name in ("moons", "8gaussians", "rings", "pinwheel", "2spirals", "checkerboard", "circles", "iris", "wine"):
        labelled = make_labelled(name, 600, 3)
        np.testing.assert_array_equal(labelled.x, make_dataset(name, 600, 3))
        assert labelled.y.shape == (len(labelled.x),) and set(np.unique(labelled.y)) <= set(range(len(labelled.names)))
    moons = make_labelled("moons", 2000, 0)
    assert moons.x[moons.y == 0, 1].mean() > moons.x[moons.y == 1, 1].mean()  # the upper moon is upper
    with pytest.raises(ValueError, match="has no natural labels"):
        make_labelled("swissroll", 10, 0)


def test_guided_sampling_lands_in_its_class_and_guidance_sharpens(gaussians: FlowModel) -> None:
    data = make_labelled("8gaussians", 4000, 0)
    solver = SolverConfig("rk4", steps=20)
    for w in (0.0, 1.0):
        for y in (0, 3, 6):
            samples = gaussians.sample(400, label=y, guidance=w, solver=solver,
                                       generator=torch.Generator().manual_seed(y)).samples.numpy()
            assert label_accuracy(samples, y, data.x, data.y) >= 0.95, (w, y)
    plain = gaussians.sample(1000, solver=solver, generator=torch.Generator().manual_seed(0)).samples.numpy()
    shares = np.bincount(np.argmax(-np.linalg.norm(plain[:, None] - np.array(
        [data.x[data.y == c].mean(0) for c in range(8)])[None], axis=2), axis=1), minlength=8) / 1000
    assert shares.min() > 0.05  # unconditional sampling of a conditional model still covers every class


def test_guided_velocity_is_the_cfg_formula(gaussians: FlowModel) -> None:
    z, t = torch.randn(16, 2), torch.rand(16)
    y = torch.full((16,), 2, dtype=torch.long)
    null = torch.full((16,), gaussians.net.null_label, dtype=torch.long)
    conditional, unconditional = gaussians.net(z, t, y), gaussians.net(z, t, null)
    torch.testing.assert_close(gaussians.guided_latent(2, 1.5)(z, t), conditional + 1.5 * (conditional - unconditional))
    torch.testing.assert_close(gaussians.guided_latent("component 2", 0.0)(z, t), conditional)
    torch.testing.assert_close(gaussians.latent_velocity(z, t), unconditional)
    with pytest.raises(ValueError, match="unknown label 'cat'"):
        gaussians.guided_latent("cat")


def test_checkpoint_keeps_the_labels_and_validates_them(gaussians: FlowModel) -> None:
    back = from_bytes(to_bytes(gaussians), "cond.safetensors")
    assert back.labels == gaussians.labels and back.net.config.num_classes == 8
    z, t = torch.randn(5, 2), torch.rand(5)
    torch.testing.assert_close(back.guided_latent(4, 2.0)(z, t), gaussians.guided_latent(4, 2.0)(z, t))
    broken = from_bytes(to_bytes(gaussians), "cond.safetensors")
    broken.labels = broken.labels[:7]
    with pytest.raises(CheckpointError, match="names 7 classes but the model has 8"):
        from_bytes(to_bytes(broken), "broken.safetensors")


@pytest.mark.parametrize("labels,names,message", [
    (torch.zeros(10, dtype=torch.long), ("a",), "between 2 and 256 classes"),
    (torch.zeros(9, dtype=torch.long), ("a", "b"), r"shape \(10,\)"),
    (torch.full((10,), 5), ("a", "b"), r"lie in \[0, 2\)"),
    (torch.zeros(10), ("a", "b"), "integer class indices"),
    (torch.zeros(10, dtype=torch.long), ("a", "a"), "distinct"),
    (torch.zeros(10, dtype=torch.long), tuple(str(i) for i in range(300)), "between 2 and 256"),
])
def test_bad_labels_are_named(labels: torch.Tensor, names: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_labels(labels, names, 10)


def _labelled_moons_support(flow: FlowModel) -> tuple[torch.Tensor, torch.Tensor, fieldview.FieldSupport]:
    data = make_labelled("moons", 600, 1)
    x, y = torch.from_numpy(data.x), torch.from_numpy(data.y)
    return x, y, fieldview.field_support(flow, x, labels=y)


@pytest.fixture(scope="module")
def moons_flow() -> FlowModel:
    data = make_labelled("moons", 2000, 0)
    return train(torch.from_numpy(data.x), labels=torch.from_numpy(data.y), label_names=data.names,
                 model=MLPConfig(dim=2, width=16, depth=1), config=TrainConfig(steps=50, device="cpu")).model


def test_exact_class_field_is_the_marginal_field_of_that_class(moons_flow: FlowModel) -> None:
    x, y, support = _labelled_moons_support(moons_flow)
    grid = grid_2d((-3.0, 3.0), (-2.0, 2.0), 10).points
    norm = moons_flow.normalizer
    for w in (0.0, 2.0):
        view = fieldview.fields_at(moons_flow, support, grid, 0.6, label="lower", guidance=w)
        only = marginal_field(moons_flow.path, norm.encode(x[y == 1]), norm.encode(grid), 0.6)
        everything = marginal_field(moons_flow.path, norm.encode(x), norm.encode(grid), 0.6)
        torch.testing.assert_close(view.marginal, norm.decode_velocity(only.velocity))
        torch.testing.assert_close(view.marginal_log_density, only.log_density - norm.log_det)
        torch.testing.assert_close(view.unconditional, norm.decode_velocity(everything.velocity))
        expected = only.velocity + w * (only.velocity - everything.velocity)
        torch.testing.assert_close(view.guided, norm.decode_velocity(expected))
        if w == 0:
            torch.testing.assert_close(view.guided, view.marginal)  # w = 0: the class field itself
        assert bool((y[view.posterior.indices] == 1).all())  # the weights are over the class's points
        torch.testing.assert_close(view.error, (view.learned - view.guided).norm(dim=1))
    plain = fieldview.fields_at(moons_flow, support, grid, 0.6)
    torch.testing.assert_close(plain.guided, plain.marginal)


def test_the_exact_class_field_reproduces_its_class_points(moons_flow: FlowModel) -> None:
    """Integrating u_t(x | y) lands on training points of class y: the class field memorises its class."""
    x, y, _ = _labelled_moons_support(moons_flow)
    norm = moons_flow.normalizer
    z_class = norm.encode(x[y == 0]).double()
    times = torch.tensor([0.0, moons_flow.path.t_max], dtype=torch.float64)
    z0 = torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    end = odeint(VelocityODE(MarginalVelocity(moons_flow.path, z_class)), z0, times, method="dopri5",
                 atol=1e-6, rtol=1e-6)[-1]
    nearest = torch.cdist(end, norm.encode(x).double()).argmin(1)
    assert bool((y[nearest] == 0).all())
    assert float(torch.cdist(end, z_class).min(1).values.max()) < 1e-2


def test_class_posterior_is_a_classifier(gaussians: FlowModel) -> None:
    data = make_labelled("8gaussians", 80, 7)
    posterior = class_posterior(gaussians, data.x, solver=SolverConfig("rk4", steps=16))
    torch.testing.assert_close(posterior.sum(1), torch.ones(80))
    assert float((posterior.argmax(1).numpy() == data.y).mean()) >= 0.9


def test_per_class_report(gaussians: FlowModel) -> None:
    train_data = make_labelled("8gaussians", 4000, 0)
    held_out = make_labelled("8gaussians", 4000, 10_001)
    report = evaluate_classes(gaussians, held_out.x, held_out.y, train_data.x, train_data.y, guidance=(0.0, 1.0),
                              n=200, solver=SolverConfig("rk4", steps=16))
    assert [c.name for c in report.classes] == list(gaussians.labels)
    for row in report.classes:
        assert row.accuracy[1.0] >= 0.9 and row.quality is not None
        assert row.quality.w2_ratio is not None and row.quality.w2_ratio < 3


def test_minibatch_ot_can_pair_within_each_class() -> None:
    data = make_labelled("moons", 1000, 0)
    config = TrainConfig(steps=3, batch_size=64, device="cpu", pair_within_class=True)
    flow = train(torch.from_numpy(data.x), labels=torch.from_numpy(data.y), label_names=data.names,
                 coupling="ot", model=MLPConfig(dim=2, width=8, depth=1), config=config).model
    assert flow.conditional and flow.info["train"]["pair_within_class"] is True
    x0, x1 = torch.randn(12, 2), torch.randn(12, 2)
    groups = torch.tensor([0, 1] * 6)
    paired, same = pair(x0, x1, "ot", groups=groups)
    assert same is x1
    for c in (0, 1):  # a permutation of the class's own source rows
        assert sorted(map(tuple, paired[groups == c].tolist())) == sorted(map(tuple, x0[groups == c].tolist()))

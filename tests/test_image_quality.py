"""Image quality measures against closed forms: the Frechet distance of Gaussians, nearest neighbours, bits per
dimension of a flow whose density is known; the classifier round trip; the report's yardsticks."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from flowscope import TrainConfig, train
from flowscope.data.images import ImageData, digits, split
from flowscope.evaluation.classifier import load_classifier, save_classifier, train_classifier
from flowscope.evaluation.image_quality import (
    bits_per_dim,
    evaluate_images,
    frechet_distance,
    leave_one_out_distances,
    nearest_neighbours,
)
from flowscope.maths.imagespec import ImageSpec
from flowscope.nets.unet import UNetConfig


def test_frechet_distance_matches_the_gaussian_closed_form() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4000, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # same covariance, shifted mean: |shift|^2
    assert frechet_distance(a, a + [1.0, 2.0, 0.0]) == pytest.approx(5.0, rel=1e-6)
    # diagonal covariances: sum (s_a - s_b)^2 over the stds, on the samples' own statistics
    b = a * [1.0, 2.0, 3.0]
    sa = np.sqrt(np.diag(np.cov(a, rowvar=False)))
    assert frechet_distance(a, b) == pytest.approx(float(((sa - sa * [1, 2, 3]) ** 2).sum()), rel=1e-2)


def test_nearest_neighbours_agree_with_brute_force() -> None:
    rng = np.random.default_rng(1)
    reference, queries = rng.standard_normal((50, 1, 2, 3)), rng.standard_normal((7, 6))
    distances, indices = nearest_neighbours(queries, reference, chunk=3)
    brute = np.linalg.norm(queries[:, None] - reference.reshape(50, 6)[None], axis=2)
    assert np.allclose(distances, brute.min(1)) and np.array_equal(indices, brute.argmin(1))


def test_bits_per_dim_of_the_identity_flow_is_the_dequantised_gaussian() -> None:
    """A fresh U-Net is the zero field, so the flow is the identity map and p(x) is the prior's, exactly."""
    spec = ImageSpec(1, 4, 4, 0.0, 16.0, 17)
    images = np.random.default_rng(2).integers(0, 17, (6, 1, 4, 4)).astype(np.float32)
    flow = train(torch.from_numpy(images), model=UNetConfig(1, 4, 4, base=8), image=spec,
                 config=TrainConfig(steps=1, lr=1e-12, batch_size=2, device="cpu", warmup_steps=1)).model
    for p in flow.net.head[-1].parameters():  # the zero output layer: v = 0 everywhere
        assert not p.any()
    bpd = bits_per_dim(flow, images, seed=3)
    y = images.reshape(6, -1) + np.random.default_rng(3).uniform(-0.5, 0.5, size=(6, 16))
    z = (y - 8.0) / 8.0
    log_p = (-0.5 * (z**2).sum(1) - 8 * math.log(2 * math.pi)) - 16 * math.log(8.0)  # N(0, I) in z, then dx = 8 dz
    assert bpd == pytest.approx(-log_p.mean() / (16 * math.log(2)), rel=1e-4)


@pytest.fixture(scope="module")
def digits_split() -> tuple[ImageData, ImageData]:
    return split(digits())


@pytest.mark.slow
def test_the_classifier_learns_the_digits_and_round_trips(digits_split: tuple[ImageData, ImageData],
                                                          tmp_path: Path) -> None:
    trained, held_out = digits_split
    classifier = train_classifier(trained, steps=400)
    accuracy = (classifier.predict(held_out.images) == held_out.labels).mean()
    assert accuracy > 0.85, accuracy
    back = load_classifier(save_classifier(classifier, tmp_path / "c.safetensors"))
    assert np.array_equal(back.embed(held_out.images[:5]), classifier.embed(held_out.images[:5]))
    (tmp_path / "bad.safetensors").write_bytes(b"not a classifier")
    with pytest.raises(ValueError, match="bad.safetensors: not a safetensors file"):
        load_classifier(tmp_path / "bad.safetensors")
    with pytest.raises(ValueError, match="needs images with labels"):
        train_classifier(ImageData(images=trained.images, spec=trained.spec))


@pytest.mark.slow
def test_the_report_compares_samples_with_held_out_images(digits_split: tuple[ImageData, ImageData]) -> None:
    trained, held_out = digits_split
    small_train, small_held = trained.subset(np.arange(300)), held_out.subset(np.arange(60))
    classifier = train_classifier(trained, steps=300)
    flow = train(torch.from_numpy(small_train.images), model=UNetConfig(1, 8, 8, base=8),
                 labels=torch.from_numpy(small_train.labels), label_names=small_train.names,
                 config=TrainConfig(steps=20, batch_size=32, lr=1e-3, device="cpu")).model
    from flowscope.solver.sampling import SolverConfig
    report = evaluate_images(flow, small_train, small_held, classifier, guidance=(0.0, 2.0),
                             solver=SolverConfig("euler", steps=4), nll_images=4)
    assert report.n == 60 and report.fd_floor is not None and report.fd_floor > 0 and report.nn_held_out_median > 0
    assert [s.guidance for s in report.samples] == [0.0, 2.0]
    for s in report.samples:
        assert s.fd is not None and s.fd_ratio == pytest.approx(s.fd / report.fd_floor)
        assert s.accuracy is not None and 0.0 <= s.accuracy <= 1.0 and s.nfe == 4
    assert report.bits_per_dim is not None and np.isfinite(report.bits_per_dim)
    assert "dequantisation" in report.to_dict()["bits_per_dim_note"]
    # a model that draws training images exactly is a copier: its nearest-neighbour ratio is 0
    copies = small_train.images[:60]
    assert nearest_neighbours(copies, small_train.images)[0].max() == 0.0


def test_leave_one_out_distances_skip_the_image_itself_but_not_its_copies() -> None:
    rng = np.random.default_rng(2)
    images = rng.standard_normal((30, 1, 2, 2))
    flat = images.reshape(30, 4)
    brute = np.linalg.norm(flat[:, None] - flat[None], axis=2)
    np.fill_diagonal(brute, np.inf)
    assert np.allclose(leave_one_out_distances(images, chunk=7), brute.min(1))
    assert np.allclose(leave_one_out_distances(images, n=5), brute.min(1)[:5])
    copies = np.concatenate([images, images[:3]])  # a duplicated image is at distance 0 from its copy
    assert np.allclose(leave_one_out_distances(copies)[:3], 0.0)
    with pytest.raises(ValueError, match="at least 2"):
        leave_one_out_distances(images[:1])

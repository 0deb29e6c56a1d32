"""Tests of flowscope.data: shapes, determinism, and the geometry of each toy dataset (FFJORD's formulas).

Each dataset is checked against its noise-free skeleton (the curves or centres it is drawn around): the
points must lie within about the noise's scale of it, split between its parts in the right proportions,
and cover all of it. A wrong constant, sign or scale in a formula breaks at least one of these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from scipy.spatial import cKDTree

from flowscope.data.datasets import DATASETS, dataset_hash, distance_to_rings, make_dataset
from flowscope.evaluation.metrics import w2

N = 4000
TWO_PI = 2.0 * np.pi
NOT_AN_INT: Any = 10.5


def test_names_in_documented_order() -> None:
    assert DATASETS == (
        "swissroll", "circles", "rings", "moons", "8gaussians", "pinwheel", "2spirals", "checkerboard"
    )  # fmt: skip


@pytest.mark.parametrize("name", DATASETS)
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 101])
def test_exactly_n_finite_float32_points(name: str, n: int) -> None:
    x = make_dataset(name, n)
    assert x.shape == (n, 2)
    assert x.dtype == np.float32
    assert np.isfinite(x).all()


@pytest.mark.parametrize("name", DATASETS)
def test_deterministic_per_seed(name: str) -> None:
    a, b, c = make_dataset(name, 500, seed=3), make_dataset(name, 500, seed=3), make_dataset(name, 500, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert dataset_hash(a) == dataset_hash(b) != dataset_hash(c)


@pytest.mark.parametrize("name", DATASETS)
def test_default_seed_is_zero(name: str) -> None:
    np.testing.assert_array_equal(make_dataset(name, 10), make_dataset(name, 10, seed=0))


def test_unknown_name_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown dataset 'spiral'; valid names: swissroll, circles, .*checkerboard"):
        make_dataset("spiral", 10)


@pytest.mark.parametrize("n", [0, -5])
def test_n_must_be_positive(n: int) -> None:
    with pytest.raises(ValueError, match="n must be at least 1"):
        make_dataset("moons", n)


def test_bad_seed_and_non_integer_n() -> None:
    with pytest.raises(ValueError, match="seed must be non-negative"):
        make_dataset("moons", 10, seed=-1)
    with pytest.raises(TypeError):
        make_dataset("moons", NOT_AN_INT)
    assert make_dataset("moons", np.int64(3)).shape == (3, 2)


# --- dataset_hash ---------------------------------------------------------------------------------------


def test_hash_format_and_sensitivity() -> None:
    x = make_dataset("moons", 100)
    h = dataset_hash(x)
    assert len(h) == 16 and int(h, 16) >= 0
    assert dataset_hash(x.astype(np.float64)) == h  # hashed as float32
    assert dataset_hash(np.asfortranarray(x)) == h  # hashed C-contiguous
    assert dataset_hash(x.reshape(50, 4)) != h  # same bytes, other shape
    y = x.copy()
    y[57, 1] = np.nextafter(y[57, 1], np.float32(np.inf))
    assert dataset_hash(y) != h


# --- geometry -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Skeleton:
    """The noise-free shape of a dataset: its parts (dense samples of curves, or centres), the share of
    the points each part gets, the noise's scale (std of a coordinate) around it, and the median distance
    of a point to the skeleton in units of that scale: .674 for Gaussian noise around a curve (the median
    of |N(0, 1)|), 1.177 around a point (Rayleigh); measured for the pinwheel (anisotropic noise) and the
    spirals (uniform jitter as well)."""

    parts: list[np.ndarray]
    shares: list[float]
    noise: float
    median: float = 0.674


def polar(radius: np.ndarray | float, angle: np.ndarray) -> np.ndarray:
    """Points radius (cos angle, sin angle), [len(angle), 2]."""
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)


def skeletons() -> dict[str, Skeleton]:
    """docs/design.md's formulas without their noise, in the datasets' final coordinates."""
    a = np.linspace(0.0, np.pi, 2000)
    circle = np.linspace(0.0, TWO_PI, 2000, endpoint=False)
    roll = np.linspace(1.5 * np.pi, 4.5 * np.pi, 4000)
    r = np.linspace(0.5, 3.0 * np.pi, 4000)
    spiral = np.stack([-np.cos(r) * r + 0.25, np.sin(r) * r + 0.25], axis=1) / 3.0  # U's mean: .25
    s = np.linspace(0.4, 1.6, 1000)  # the pinwheel's radial feature, within 2 std of its mean 1

    def pinwheel_arm(k: int) -> np.ndarray:
        angle = TWO_PI * k / 5.0 + 0.25 * np.exp(s)
        return 2.0 * np.stack([s * np.cos(angle), -s * np.sin(angle)], axis=1)

    shift = np.array([-1.0, -0.2])
    return {
        "swissroll": Skeleton([polar(roll, roll) / 5.0], [1.0], 1.0 / 5.0),
        "circles": Skeleton([polar(3.0, circle), polar(1.5, circle)], [0.5, 0.5], 0.08 * 3.0),
        "rings": Skeleton([polar(3.0 * q, circle) for q in (1.0, 0.75, 0.5, 0.25)], [0.25] * 4, 0.08),
        "moons": Skeleton(
            [2.0 * polar(1.0, a) + shift, 2.0 * (np.array([1.0, 0.5]) - polar(1.0, a)) + shift], [0.5, 0.5], 0.2
        ),
        "8gaussians": Skeleton(
            [polar(4.0, np.array([k * np.pi / 4.0])) / 1.414 for k in range(8)], [1 / 8] * 8, 0.5 / 1.414, 1.177
        ),
        "pinwheel": Skeleton([pinwheel_arm(k) for k in range(5)], [0.2] * 5, 2.0 * 0.1, 0.55),
        "2spirals": Skeleton([spiral, -spiral], [0.5, 0.5], 0.1, 0.77),
    }


def nearest_part(x: np.ndarray, skeleton: Skeleton) -> tuple[np.ndarray, np.ndarray]:
    """Distance from every point to the skeleton and the index of the nearest part."""
    samples = np.concatenate(skeleton.parts)
    part = np.repeat(np.arange(len(skeleton.parts)), [len(p) for p in skeleton.parts])
    distance, index = cKDTree(samples).query(x.astype(np.float64))
    return distance, part[index]


@pytest.mark.parametrize("name", [name for name in DATASETS if name != "checkerboard"])
def test_points_follow_the_skeleton(name: str) -> None:
    skeleton = skeletons()[name]
    x = make_dataset(name, N, seed=1)
    distance, part = nearest_part(x, skeleton)
    assert np.median(distance) == pytest.approx(skeleton.median * skeleton.noise, rel=0.15)
    assert np.quantile(distance, 0.99) < 5.0 * skeleton.noise
    shares = np.bincount(part, minlength=len(skeleton.parts)) / N
    np.testing.assert_allclose(shares, skeleton.shares, atol=0.03)
    for samples in skeleton.parts:  # every part of the skeleton has points near it
        gaps, _ = cKDTree(x.astype(np.float64)).query(samples)
        assert np.quantile(gaps, 0.95) < 3.0 * skeleton.noise


def test_8gaussians_residuals_have_the_right_spread() -> None:
    x = make_dataset("8gaussians", N, seed=2).astype(np.float64)
    centres = np.concatenate(skeletons()["8gaussians"].parts)
    cluster = np.argmin(((x[:, None] - centres[None]) ** 2).sum(-1), axis=1)
    residual = x - centres[cluster]
    np.testing.assert_allclose(residual.std(axis=0), 0.5 / 1.414, rtol=0.05)
    for k in range(8):  # each cluster is centred on its centre (std of its mean: about .016)
        np.testing.assert_allclose(residual[cluster == k].mean(axis=0), 0.0, atol=0.06)


@pytest.mark.parametrize(
    ("name", "radii", "noise"), [("rings", (3.0, 2.25, 1.5, 0.75), 0.08), ("circles", (3.0, 1.5), 0.24)]
)
def test_radial_noise(name: str, radii: tuple[float, ...], noise: float) -> None:
    radius = np.linalg.norm(make_dataset(name, N, seed=3).astype(np.float64), axis=1)
    nearest = np.array(radii)[np.argmin(np.abs(radius[:, None] - np.array(radii)), axis=1)]
    np.testing.assert_allclose((radius - nearest).std(), noise, rtol=0.1)


def test_distance_to_rings() -> None:
    np.testing.assert_allclose(distance_to_rings(np.array([[0.0, 0.0], [0.0, 2.0], [4.0, 0.0]])), [0.75, 0.25, 1.0])
    distance = distance_to_rings(make_dataset("rings", N, seed=7).astype(np.float64))
    assert np.median(distance) == pytest.approx(0.674 * 0.08, rel=0.1)  # the median of |N(0, .08^2)|


@pytest.mark.parametrize("name", DATASETS)
def test_two_draws_are_as_far_apart_as_independent_samples(name: str) -> None:
    """W2's floor is measured between two draws, and a model's samples are independent: so must the draws
    be. Evenly spaced angles and fixed counts per part (sklearn's and FFJORD's generators) made two rings
    draws 2.4x closer than two random subsets of a large pool, a floor no sampler could reach."""
    n, draws = 400, 8
    pool = make_dataset(name, 200_000, seed=99)
    rng = np.random.default_rng(0)
    subsets = [w2(*(pool[rng.choice(len(pool), n, replace=False)] for _ in range(2))) for _ in range(draws)]
    pairs = [w2(make_dataset(name, n, seed=2 * k + 1), make_dataset(name, n, seed=2 * k + 2)) for k in range(draws)]
    assert np.mean(pairs) == pytest.approx(np.mean(subsets), rel=0.2)


@pytest.mark.parametrize(
    ("name", "mean"),
    [
        ("moons", (0.0, 0.3)),  # arcs' means (0, 2/pi) and (1, 1/2 - 2/pi), * 2 + (-1, -.2)
        ("swissroll", (0.4, 2.0 / (15.0 * np.pi))),  # E[t cos t] = 2, E[t sin t] = 2 / (3 pi), / 5
        ("circles", (0.0, 0.0)),
        ("2spirals", (0.0, 0.0)),
    ],
)
def test_means(name: str, mean: tuple[float, float]) -> None:
    np.testing.assert_allclose(make_dataset(name, 20_000, seed=5).mean(axis=0), mean, atol=0.03)


def test_checkerboard_points_lie_in_the_black_squares() -> None:
    x = make_dataset("checkerboard", N, seed=4).astype(np.float64)
    assert (np.abs(x) <= 4.0).all()
    cell = np.floor(x / 2.0)
    on_edge = (np.abs(x / 2.0 - np.round(x / 2.0)) < 1e-6).any(axis=1)  # float32 rounding at a border
    assert ((cell.sum(axis=1) % 2 == 0) | on_edge).all()
    counts = np.unique(cell[~on_edge], axis=0, return_counts=True)[1]
    assert len(counts) == 8  # all 8 black squares of the 4 x 4 board
    np.testing.assert_allclose(counts / N, 1 / 8, atol=0.02)


def test_points_come_in_random_order() -> None:
    """Any prefix is a fair sample: the first half of moons and rings holds every part."""
    for name in ("moons", "rings", "2spirals", "pinwheel"):
        skeleton = skeletons()[name]
        _, part = nearest_part(make_dataset(name, N, seed=6)[: N // 2], skeleton)
        np.testing.assert_allclose(np.bincount(part) / (N // 2), skeleton.shares, atol=0.04)


def test_built_in_datasets_name_unnamed_columns_x_y_or_c1_to_cd() -> None:
    """What `flowscope zoo build` and `flowscope train --dataset` store: never x0, x1 (noise and data)."""
    from flowscope.data.datasets import dataset_columns

    assert dataset_columns("moons") == ("x", "y")
    assert dataset_columns("mixture8") == tuple(f"c{j}" for j in range(1, 9))

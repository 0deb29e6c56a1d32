"""Sample metrics against brute force and closed forms; trajectory straightness on known fields."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from flowscope import SolverConfig
from flowscope.evaluation.metrics import energy_distance, median_distance, mmd, straightness, w2


@pytest.fixture(scope="module")
def cloud() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(200, 2))


def test_w2_identical_is_zero(cloud: np.ndarray) -> None:
    assert w2(cloud, cloud) == pytest.approx(0.0, abs=1e-9)
    assert w2(torch.from_numpy(cloud).float(), cloud[::-1].copy()) == pytest.approx(0.0, abs=1e-6)


def test_w2_of_a_translation_is_its_length(cloud: np.ndarray) -> None:
    shift = np.array([3.0, -4.0])
    assert w2(cloud, cloud + shift) == pytest.approx(5.0, rel=1e-9)


def test_w2_matches_assignment_cost(cloud: np.ndarray) -> None:
    other = np.random.default_rng(1).normal(size=(200, 2)) * 1.5 + 0.5
    cost = ((cloud[:, None] - other[None]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    assert w2(cloud, other) == pytest.approx(math.sqrt(cost[rows, cols].mean()), rel=1e-9)


def test_w2_unequal_sizes_splits_mass() -> None:
    """Two points vs their midpoint: each moves half the gap, W2 = gap / 2."""
    assert w2(np.array([[0.0, 0.0], [2.0, 0.0]]), np.array([[1.0, 0.0]])) == pytest.approx(1.0)


def _naive_unbiased(a: np.ndarray, b: np.ndarray, kernel: Callable[[float], float]) -> float:
    def mean(x: np.ndarray, y: np.ndarray, same: bool) -> float:
        vals = [
            kernel(float(np.linalg.norm(x[i] - y[j])))
            for i in range(len(x))
            for j in range(len(y))
            if not same or i != j
        ]
        return float(np.mean(vals))

    return mean(a, a, True) + mean(b, b, True) - 2 * mean(a, b, False)


def test_mmd_and_energy_match_brute_force() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(30, 3)), rng.normal(size=(25, 3)) + 0.3
    widths = (0.5, 2.0)
    rbf = lambda r: sum(math.exp(-(r**2) / (2 * h**2)) for h in widths)  # noqa: E731
    assert mmd(a, b, widths, relative=False) == pytest.approx(_naive_unbiased(a, b, rbf), rel=1e-9)
    scale = median_distance(a, b)
    rel = lambda r: sum(math.exp(-(r**2) / (2 * (h * scale) ** 2)) for h in widths)  # noqa: E731
    assert mmd(a, b, widths) == pytest.approx(_naive_unbiased(a, b, rel), rel=1e-9)
    assert energy_distance(a, b) == pytest.approx(-_naive_unbiased(a, b, lambda r: r), rel=1e-9)


def test_mmd_and_energy_detect_a_shift() -> None:
    rng = np.random.default_rng(3)
    a, b, shifted = rng.normal(size=(800, 2)), rng.normal(size=(800, 2)), rng.normal(size=(800, 2)) + 0.5
    assert abs(mmd(a, b)) < 0.01 < mmd(a, shifted)
    assert abs(energy_distance(a, b)) < 0.02 < energy_distance(a, shifted)
    assert energy_distance(a, shifted) > 10 * abs(energy_distance(a, b))


def test_straightness_of_a_straight_field_is_zero() -> None:
    """v = x1 - x0 for a single pair: the trajectory is the segment, S = 0, energy = |x1 - x0|^2."""
    x0, x1 = torch.tensor([[1.0, -2.0]], dtype=torch.float64), torch.tensor([[4.0, 2.0]], dtype=torch.float64)
    result = straightness(lambda x, t: (x1 - x0).expand_as(x), x0, solver=SolverConfig("rk4", steps=20))
    assert result.straightness == pytest.approx(0.0, abs=1e-20)
    assert result.path_energy == pytest.approx(25.0, rel=1e-12)
    assert result.nfe == 4 * 20  # rk4: four evaluations per step


def test_straightness_of_a_rotation_has_its_closed_form() -> None:
    """v = J x rotates at unit speed: S = |x0|^2 (2 cos 1 - 1), energy = |x0|^2 (the variance of v over t)."""
    rot = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=torch.float64)
    x0 = torch.tensor([[1.0, 0.5], [-2.0, 1.0]], dtype=torch.float64)
    result = straightness(lambda x, t: x @ rot.T, x0, solver=SolverConfig("rk4", steps=200))
    sq = float(x0.pow(2).sum(1).mean())
    assert result.straightness == pytest.approx(sq * (2 * math.cos(1.0) - 1), rel=1e-4)
    assert result.path_energy == pytest.approx(sq, rel=1e-6)
    euler = straightness(lambda x, t: x @ rot.T, x0, solver=SolverConfig("euler", steps=50))
    assert euler.nfe == 50 and euler.straightness > 0


def test_label_accuracy_of_a_model_is_measured_in_its_normalised_units() -> None:
    """One definition for the CLI, the zoo and the explorer: a column of large units (noise ~1000) does not drown
    the column that separates the classes, as it does in data units."""
    from types import SimpleNamespace

    from flowscope.evaluation.metrics import label_accuracy, model_label_accuracy
    from flowscope.maths.normalizer import Normalizer

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 500)
    points = np.column_stack([np.where(labels == 0, -4.0, 4.0) + rng.normal(size=1000),
                              1000.0 * rng.normal(size=1000)])
    samples = np.column_stack([np.full(200, -4.0), 1000.0 * rng.normal(size=200)])  # all class 0
    flow = SimpleNamespace(normalizer=Normalizer.fit(torch.from_numpy(points), per_column=True))
    assert model_label_accuracy(flow, samples, 0, points, labels) > 0.95  # type: ignore[arg-type]
    assert label_accuracy(samples, 0, points, labels) < 0.8  # in data units the noise column decides

"""One evaluation: W2 with its i.i.d. floor from fresh draws or from disjoint subsets of an array, and the
report every command prints."""

from __future__ import annotations

import numpy as np
import pytest

from flowscope import FlowModel, SolverConfig
from flowscope.evaluation.metrics import w2
from flowscope.evaluation.records import ENERGY_NOTE
from flowscope.evaluation.report import evaluate, reference_draws, sample_quality, w2_floor


def _gaussian(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 2))


def test_floor_is_seeded_and_shrinks_with_n() -> None:
    floor = w2_floor(_gaussian, n=300, repeats=3, seed=4)
    assert floor is not None and floor > 0 and floor == w2_floor(_gaussian, n=300, repeats=3, seed=4)
    larger = w2_floor(_gaussian, n=1200, repeats=3, seed=4)
    assert larger is not None and larger < floor


def test_a_perfect_sampler_scores_the_floor() -> None:
    samples = np.concatenate([_gaussian(500, 90 + k) for k in range(6)])
    quality = sample_quality(samples, _gaussian, n=500, repeats=6)
    assert quality.draws == 6 and quality.w2_ratio == pytest.approx(1.0, abs=0.12)
    shifted = sample_quality(samples + 1.0, _gaussian, n=500, repeats=6)
    assert shifted.w2_ratio is not None and shifted.w2_ratio > 3


def test_array_draws_are_disjoint_and_small_arrays_have_no_floor() -> None:
    data = _gaussian(1000, 0)
    reference, first, second = reference_draws(data, 400, 0)
    assert first is reference and second is not None
    rows = {tuple(r) for r in reference}
    assert not rows & {tuple(r) for r in second}
    # a small array gives draws of half its rows, so that W2 always has a floor beside it
    quality = sample_quality(_gaussian(400, 7), data[:700], n=400, repeats=1)
    assert quality.n == 350 and quality.w2_floor is not None and quality.w2_ratio is not None
    assert sample_quality(np.full((400, 2), np.nan), data, n=400, repeats=1).w2 == float("inf")


def test_report_of_a_model(small_flow: FlowModel, moons: np.ndarray) -> None:
    solver = SolverConfig("rk4", steps=8)
    report = evaluate(small_flow, moons, n=300, repeats=2, solver=solver, nll_points=50, trajectory_points=50)
    for value in (report.w2, report.w2_floor, report.w2_ratio, report.mmd, report.energy_distance,
                  report.straightness, report.path_energy, report.nll):
        assert value is not None and np.isfinite(value)
    assert report.w1_per_dim is not None and len(report.w1_per_dim) == 2
    assert report.nll_divergence == "exact divergence"
    assert "unbiased" in ENERGY_NOTE and report.to_dict()["energy_distance_note"] == ENERGY_NOTE  # it can read < 0
    assert report.nfe == 32 and report.draws == 2 and report.n == 300
    recorded = report.stored()
    assert recorded["nfe_rk4"] == 32 and set(recorded) >= {"w2", "w2_floor", "w2_ratio", "nll"}


def test_w2_draws_solved_on_threads_equal_the_serial_mean() -> None:
    """The W2 draws run concurrently (POT releases the GIL): the reported mean is that of the serial solves."""
    floor = w2_floor(_gaussian, n=300, repeats=4, seed=7)
    serial = [w2(first, second) for _, first, second in (reference_draws(_gaussian, 300, k, 7) for k in range(4))]
    assert floor == pytest.approx(float(np.mean(serial)), rel=1e-12)

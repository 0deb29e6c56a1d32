"""Sampling: exact solutions of known ODEs, NFE counts, chunking, trajectories, no autograd graph."""

from __future__ import annotations

import math

import pytest
import torch

from flowscope import FlowModel, SolverConfig, integrate


def linear(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """dx/dt = x: the solution is x0 e^t."""
    return x


@pytest.mark.parametrize("method,steps,tol", [("euler", 1000, 2e-3), ("midpoint", 50, 1e-3), ("rk4", 20, 1e-6),
                                              ("dopri5", 1, 1e-4)])
def test_methods_solve_exponential_growth(method: str, steps: int, tol: float) -> None:
    x0 = torch.randn(10, 2, dtype=torch.float64)
    result = integrate(linear, x0, solver=SolverConfig(method, steps=steps))
    torch.testing.assert_close(result.samples, x0 * math.e, rtol=tol, atol=tol)


def test_fixed_step_nfe_and_trajectory_times() -> None:
    x0 = torch.ones(3, 2)
    result = integrate(linear, x0, solver=SolverConfig("euler", steps=20), times=[0.0, 0.5, 1.0])
    assert result.nfe == 20
    assert result.trajectory.shape == (3, 3, 2)
    torch.testing.assert_close(result.trajectory[0], x0)
    torch.testing.assert_close(result.trajectory[1], torch.full((3, 2), 1.05**10), rtol=1e-5, atol=1e-5)


def test_chunks_give_the_same_answer() -> None:
    x0 = torch.randn(1000, 2, dtype=torch.float64)
    whole = integrate(linear, x0, solver=SolverConfig("rk4", steps=8))
    chunked = integrate(linear, x0, solver=SolverConfig("rk4", steps=8), chunk_size=128)
    torch.testing.assert_close(whole.samples, chunked.samples)


def test_no_graph_is_kept(small_flow: FlowModel) -> None:
    result = small_flow.sample(16, solver=SolverConfig("euler", steps=4))
    assert not result.samples.requires_grad and result.samples.grad_fn is None


def test_model_sample_returns_data_coordinates(small_flow: FlowModel) -> None:
    gen = torch.Generator().manual_seed(0)
    result = small_flow.sample(200, solver=SolverConfig("dopri5"), generator=gen, times=torch.linspace(0, 1, 5))
    assert result.trajectory.shape == (5, 200, 2) and result.nfe > 5
    # moons live around x in [-3, 3]; the normalised model would give unit-scale points
    assert float(result.samples[:, 0].std()) > 1.0


def test_bad_solver_settings() -> None:
    with pytest.raises(ValueError, match="unknown solver 'leapfrog'"):
        SolverConfig("leapfrog")
    with pytest.raises(ValueError, match="increasing"):
        integrate(linear, torch.ones(1, 1), times=[0.0, 0.0])

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


def _wild_flow() -> FlowModel:
    """A tiny MLP flow whose weights are 1000x too large: its field blows up, and dopri5's step underflows."""
    from flowscope.maths.normalizer import Normalizer
    from flowscope.maths.paths import make_path
    from flowscope.nets.models import MLPConfig, build_net

    torch.manual_seed(0)
    net = build_net(MLPConfig(dim=2, width=8, depth=1, fourier_features=0, time_features=0))
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.mul_(1e3)
    return FlowModel(net=net, path=make_path("ot"), normalizer=Normalizer(mean=(0.0, 0.0), scale=(1.0, 1.0)))


def test_a_failing_adaptive_solve_falls_back_to_fixed_steps() -> None:
    """dopri5 on a wild field raised torchdiffeq's "underflow in dt" assertion (a traceback in `flowscope sample`);
    now the core redoes the solve with rk4 and says so, and a solve that works says nothing."""
    wild = _wild_flow()
    result = wild.sample(20, solver=SolverConfig("dopri5"), generator=torch.Generator().manual_seed(0))
    assert result.fallback is not None and "dopri5 failed" in result.fallback and "rk4" in result.fallback
    assert result.samples.shape == (20, 2) and result.nfe == 4 * 50
    tame = integrate(linear, torch.ones(3, 1), solver=SolverConfig("dopri5"))
    assert tame.fallback is None
    fixed = wild.sample(5, solver=SolverConfig("euler", steps=3))
    assert fixed.fallback is None  # fixed steps were asked for: nothing to fall back from


def test_the_cli_says_in_one_line_that_it_fell_back(tmp_path: pytest.TempPathFactory,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from pathlib import Path

    from flowscope.cli.commands import main
    from flowscope.io.checkpoint import save

    folder = Path(str(tmp_path))
    model = save(_wild_flow(), folder / "wild.safetensors")
    assert main(["sample", str(model), "-n", "10", "--out", str(folder / "s.npy")]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith("flowscope sample: dopri5 failed")
    assert "rk4" in captured.err and "Traceback" not in captured.err
    assert (folder / "s.npy").is_file() and "wrote 10 samples" in captured.out

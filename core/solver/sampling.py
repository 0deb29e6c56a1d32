"""ODE sampling with torchdiffeq: integrate dx/dt = v(x, t) from t = 0 to t_max.

torchdiffeq calls f(t, x) with a 0-dim t; `VelocityODE` adapts it to the stable model interface
v(x [B, d], t [B]) in one place and counts function evaluations (NFE). `SolverConfig` is the one solver
description that sampling, likelihoods (`flowscope.likelihood`) and path metrics (`flowscope.metrics`) take,
as Meta's `ODESolver` serves both `sample` and `compute_likelihood`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn
from torchdiffeq import odeint

__all__ = [
    "ADAPTIVE_METHODS",
    "FALLBACK_SOLVER",
    "FIXED_STEP_METHODS",
    "METHODS",
    "SampleResult",
    "SolverConfig",
    "Velocity",
    "VelocityODE",
    "integrate",
]

#: A velocity model: v(x [B, d], t [B]) -> [B, d] (the interface every sampler, metric and field uses).
Velocity = Callable[[Tensor, Tensor], Tensor]
FIXED_STEP_METHODS: tuple[str, ...] = ("euler", "midpoint", "rk4")
ADAPTIVE_METHODS: tuple[str, ...] = ("dopri5",)
METHODS: tuple[str, ...] = FIXED_STEP_METHODS + ADAPTIVE_METHODS


class VelocityODE(nn.Module):
    """Wraps v(x, t) as torchdiffeq's f(t, x) and counts its evaluations."""

    def __init__(self, velocity: Velocity) -> None:
        super().__init__()
        self.velocity = velocity
        self.nfe = 0

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        """f(t, x) = v(x, t broadcast to the batch)."""
        self.nfe += 1
        return self.velocity(x, t.to(x.dtype).expand(x.shape[0]))


@dataclass(frozen=True)
class SampleResult:
    """Outcome of integrating a batch of starting points.

    Attributes:
        samples: end points at t_max, [n, d].
        trajectory: states at `times`, [len(times), n, d] (times[0] = start, times[-1] = end).
        times: the times of the trajectory, [T].
        nfe: velocity evaluations of one solve (the largest over chunks).
        fallback: None, or why the adaptive solver failed and that `FALLBACK_SOLVER` integrated instead (one
            sentence, for the CLI and the explorer to show).
    """

    samples: Tensor
    trajectory: Tensor
    times: Tensor
    nfe: int
    fallback: str | None = None


@dataclass(frozen=True)
class SolverConfig:
    """How to integrate: a torchdiffeq method and either a step count (fixed-step) or tolerances (dopri5).

    Attributes:
        method: "euler", "midpoint", "rk4" (fixed steps) or "dopri5" (adaptive).
        steps: steps over the whole interval of a fixed-step method (ignored by dopri5).
        atol, rtol: dopri5's tolerances (ignored by the fixed-step methods).
    """

    method: str = "dopri5"
    steps: int = 100
    atol: float = 1e-5
    rtol: float = 1e-5

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown solver {self.method!r}; expected one of {METHODS}")
        if self.steps < 1:
            raise ValueError(f"solver steps must be >= 1, got {self.steps}")
        if self.atol <= 0 or self.rtol <= 0:
            raise ValueError(f"solver tolerances must be > 0, got atol={self.atol}, rtol={self.rtol}")

    @property
    def fixed_step(self) -> bool:
        """Whether the method takes `steps` equal steps (else it adapts its steps to atol / rtol)."""
        return self.method in FIXED_STEP_METHODS

    def odeint_kwargs(self, t0: float, t1: float) -> dict[str, Any]:
        """torchdiffeq.odeint's keyword arguments for integrating from t0 to t1 (either direction)."""
        if self.fixed_step:
            return {"method": self.method, "options": {"step_size": abs(t1 - t0) / self.steps}}
        return {"method": self.method, "atol": self.atol, "rtol": self.rtol}


def integrate(
    velocity: Velocity,
    x0: Tensor,
    *,
    t0: float = 0.0,
    t1: float = 1.0,
    solver: SolverConfig = SolverConfig(),
    times: Sequence[float] | Tensor | None = None,
    chunk_size: int = 65536,
) -> SampleResult:
    """Solve dx/dt = v(x, t) from t0 to t1 for every row of x0, in chunks, without autograd.

    An adaptive solver (dopri5) can fail on a wild field (torchdiffeq's "underflow in dt" assertion, after a
    diverged training say) or end in non-finite values; then the solve is redone once with `FALLBACK_SOLVER`,
    whose fixed steps never fail, and `SampleResult.fallback` says so. This is the one place that rule lives:
    `FlowModel.sample`, the CLI and the explorer all come here.

    Args:
        velocity: v(x [B, d], t [B]) -> [B, d], on the device of x0.
        x0: starting points at t0, [n, d]; the solve runs on their device and dtype.
        t0, t1: integration interval (t1 = path.t_max for paths singular at t = 1).
        solver: method and steps (fixed-step) or atol/rtol (dopri5).
        times: times at which to return the trajectory, inside [t0, t1]; defaults to (t0, t1).
        chunk_size: rows solved at once, bounding memory for large n.
    """
    if times is None:
        grid = torch.tensor([t0, t1], dtype=x0.dtype, device=x0.device)
    else:
        grid = torch.as_tensor(times, dtype=x0.dtype, device=x0.device).reshape(-1)
        if grid.numel() < 2 or bool((grid[1:] <= grid[:-1]).any()):
            raise ValueError("trajectory times must be increasing and at least two")
    if solver.fixed_step:
        return _solve(velocity, x0, grid, solver, chunk_size)
    try:
        result = _solve(velocity, x0, grid, solver, chunk_size)
        if bool(torch.isfinite(result.trajectory).all()):
            return result
        problem = "ended in values that are not finite"
    except torch.cuda.OutOfMemoryError:  # not a solver failure (a RuntimeError too)
        raise
    except (AssertionError, RuntimeError) as err:  # torchdiffeq asserts on step-size underflow
        problem = f"failed ({str(err).strip() or type(err).__name__})"
    fallback = _solve(velocity, x0, grid, FALLBACK_SOLVER, chunk_size)
    note = (f"{solver.method} {problem} on this field (too stiff or not finite here); integrated with "
            f"{FALLBACK_SOLVER.method} in {FALLBACK_SOLVER.steps} fixed steps instead")
    return replace(fallback, fallback=note)


#: What an adaptive solve that fails falls back to (`integrate`): rk4's fixed steps never fail.
FALLBACK_SOLVER = SolverConfig(method="rk4", steps=50)


def _solve(velocity: Velocity, x0: Tensor, grid: Tensor, solver: SolverConfig, chunk_size: int) -> SampleResult:
    """One odeint solve of every chunk of x0 over `grid`, without autograd."""
    kwargs = solver.odeint_kwargs(float(grid[0]), float(grid[-1]))
    nfe = 0
    pieces = []
    with torch.no_grad():
        for chunk in x0.split(chunk_size):
            ode = VelocityODE(velocity)
            pieces.append(odeint(ode, chunk, grid, **kwargs))
            nfe = max(nfe, ode.nfe)
    trajectory = torch.cat(pieces, dim=1)
    return SampleResult(samples=trajectory[-1], trajectory=trajectory, times=grid, nfe=nfe)

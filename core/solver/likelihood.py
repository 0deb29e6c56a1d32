"""Exact log-likelihoods of a flow model by the instantaneous change of variables (a continuous NF).

Why: a flow trained by flow matching is also a CNF, so its density at any point is computable:

    log p_1(x1) = log p_0(x0) - integral_0^1 div v(x_t, t) dt,

found by integrating the augmented state (x, delta) from t = 1 back to t = 0 with d/dt delta = div v; then
x(0) = x0 and delta(0) = -integral_0^1 div v dt. The divergence is exact (d backward passes) in low dimension
and Hutchinson's estimator (Rademacher probes held fixed for the whole solve) above.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor
from torchdiffeq import odeint

from ..maths import gaussian
from ..maths.grid import grid_2d
from .sampling import SolverConfig, Velocity

__all__ = [
    "EXACT_DIVERGENCE_MAX_DIM",
    "LIKELIHOOD_SOLVER",
    "DensityGrid",
    "Divergence",
    "LikelihoodResult",
    "exact_divergence",
    "hutchinson_divergence",
    "log_density_grid",
    "log_likelihood",
    "rademacher",
]

#: The default solver of likelihoods: dopri5 at atol = rtol = 1e-5.
LIKELIHOOD_SOLVER = SolverConfig(method="dopri5", atol=1e-5, rtol=1e-5)
Divergence = Literal["auto", "exact", "hutchinson"]
#: Under divergence="auto", dimensions up to this use the exact divergence.
EXACT_DIVERGENCE_MAX_DIM = 8

_DivergenceFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class LikelihoodResult:
    """Log-density of data points under a flow model.

    Attributes:
        log_prob: log p_t1(x1), shape [B].
        x0: the points' pre-images at t = 0 (their latent codes), shape [B, d].
        nfe: evaluations of the dynamics (each is one model call plus its divergence), over all chunks.
    """

    log_prob: Tensor
    x0: Tensor
    nfe: int


class DensityGrid(NamedTuple):
    """Log-density on a regular 2D grid: log_prob[j, i] at (xs[i], ys[j])."""

    log_prob: Tensor
    xs: Tensor
    ys: Tensor


def exact_divergence(out: Tensor, x: Tensor) -> Tensor:
    """sum_i d out_i / d x_i per row by d backward passes, shape [B]; zero where out does not depend on x."""
    div = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    if not out.requires_grad:
        return div
    d = x.shape[1]
    for i in range(d):
        (grad,) = torch.autograd.grad(out[:, i].sum(), x, retain_graph=i < d - 1, allow_unused=True)
        if grad is not None:
            div = div + grad[:, i]
    return div


def hutchinson_divergence(out: Tensor, x: Tensor, probes: Tensor) -> Tensor:
    """Unbiased divergence estimate mean_k eps_k^T (d out / d x) eps_k with probes [K, B, d], shape [B]."""
    est = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    if not out.requires_grad:
        return est
    n_probes = probes.shape[0]
    for k in range(n_probes):
        (vjp,) = torch.autograd.grad(out, x, grad_outputs=probes[k], retain_graph=k < n_probes - 1, allow_unused=True)
        if vjp is not None:
            est = est + (vjp * probes[k]).sum(1)
    return est / n_probes


def rademacher(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None) -> Tensor:
    """+-1 entries with equal probability, on like's dtype and device (drawn on the generator's device)."""
    device = generator.device if generator is not None else like.device
    signs = torch.randint(0, 2, shape, generator=generator, device=device)
    return (2 * signs - 1).to(dtype=like.dtype, device=like.device)


class _AugmentedDynamics:
    """d/dt (x, delta) = (v(x, t), div v(x, t)), with graphs built per call and nothing kept between calls."""

    def __init__(self, v: Velocity, divergence: _DivergenceFn) -> None:
        self.v = v
        self.divergence = divergence
        self.nfe = 0

    def __call__(self, t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        self.nfe += 1
        with torch.enable_grad():
            x = state[0].detach().requires_grad_(True)
            out = self.v(x, t.to(dtype=x.dtype, device=x.device).expand(x.shape[0]))
            div = self.divergence(out, x)
        return out.detach(), div.detach()


def _divergence_fn(mode: Divergence, x: Tensor, n_probes: int, generator: torch.Generator | None) -> _DivergenceFn:
    """The divergence for one chunk: exact, or Hutchinson with probes fixed for the whole solve."""
    if mode == "auto":
        mode = "exact" if x.shape[1] <= EXACT_DIVERGENCE_MAX_DIM else "hutchinson"
    if mode == "exact":
        return exact_divergence
    if mode == "hutchinson":
        if n_probes < 1:
            raise ValueError(f"n_probes must be >= 1, got {n_probes}")
        probes = rademacher((n_probes, *x.shape), x, generator)
        return lambda out, xx: hutchinson_divergence(out, xx, probes)
    raise ValueError(f"divergence must be 'auto', 'exact' or 'hutchinson', got {mode!r}")


def _prior(prior_std: float | None, prior_log_density: Callable[[Tensor], Tensor] | None) -> Callable[[Tensor], Tensor]:
    """The source's log-density from exactly one of a Gaussian std and an explicit function."""
    if (prior_std is None) == (prior_log_density is None):
        raise ValueError("give exactly one of prior_std and prior_log_density")
    if prior_log_density is not None:
        return prior_log_density
    std = float(prior_std or 0.0)
    return lambda x: gaussian.log_prob(x, std)


def log_likelihood(
    v: Velocity,
    x1: Tensor,
    *,
    prior_std: float | None = None,
    prior_log_density: Callable[[Tensor], Tensor] | None = None,
    t1: float = 1.0,
    solver: SolverConfig = LIKELIHOOD_SOLVER,
    divergence: Divergence = "auto",
    n_probes: int = 1,
    generator: torch.Generator | None = None,
    chunk_size: int = 4096,
) -> LikelihoodResult:
    """log p_t1(x1) of a flow model by integrating the change of variables from t1 back to 0.

    Args:
        v: velocity model v(x [B, d], t [B]) -> [B, d].
        x1: points to evaluate, shape [B, d], on the model's device and dtype.
        prior_std: std of the centred isotropic Gaussian source at t = 0 (`path.prior_std`).
        prior_log_density: log p_0 per row [B] for any other source density (e.g. a prior in data
            coordinates); give exactly one of prior_std and prior_log_density.
        t1: end time of the flow; use `path.t_max` for paths singular at t = 1.
        solver: how to integrate from t1 back to 0 (the same description as sampling's).
        divergence: "exact" (d backward passes), "hutchinson" (Rademacher probes), or "auto"
            (exact for d <= EXACT_DIVERGENCE_MAX_DIM).
        n_probes: Hutchinson probes per point, held fixed over the whole solve.
        generator: random source of the probes.
        chunk_size: points per ODE solve; no graph or state is kept between chunks.

    Returns:
        LikelihoodResult with log_prob [B], x0 [B, d] and the total NFE.
    """
    if x1.dim() != 2:
        raise ValueError(f"x1: expected shape [B, d], got {list(x1.shape)}")
    log_prior = _prior(prior_std, prior_log_density)
    times = torch.tensor([float(t1), 0.0], dtype=x1.dtype, device=x1.device)
    log_probs, latents, nfe = [], [], 0
    for chunk in x1.split(chunk_size):
        dynamics = _AugmentedDynamics(v, _divergence_fn(divergence, chunk, n_probes, generator))
        start = (chunk.detach(), torch.zeros(chunk.shape[0], dtype=chunk.dtype, device=chunk.device))
        with torch.no_grad():
            xs, deltas = odeint(dynamics, start, times, **solver.odeint_kwargs(float(t1), 0.0))
        log_probs.append(log_prior(xs[-1]) + deltas[-1])
        latents.append(xs[-1])
        nfe += dynamics.nfe
    return LikelihoodResult(log_prob=torch.cat(log_probs), x0=torch.cat(latents), nfe=nfe)


def log_density_grid(
    v: Velocity,
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    n: int,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    **kwargs: Any,
) -> DensityGrid:
    """log p_t1 of a 2D flow model on an n x n grid, for density heatmaps.

    kwargs go to `log_likelihood` (prior_std or prior_log_density, t1, solver settings).
    """
    grid = grid_2d(xlim, ylim, n, dtype=dtype, device=device)
    result = log_likelihood(v, grid.points, **kwargs)
    return DensityGrid(log_prob=result.log_prob.reshape(n, n), xs=grid.xs, ys=grid.ys)

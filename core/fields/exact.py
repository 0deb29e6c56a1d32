"""Exact conditional and marginal (aggregated) vector fields of a probability path on an empirical dataset.

Why: the learned field v_theta regresses per-sample conditional fields u_t(x | x1); what it should learn is
their posterior average, the marginal field u_t(x) = sum_i w_i(x, t) u_t(x | x1_i) (Lipman et al. 2023,
eq. 8 and Theorem 2). For an empirical dataset that average is computable exactly, which lets the explorer
draw it, compare it with v_theta, and show why the CFM loss never reaches zero.

Gaussian source (the paper's paths), x_t = alpha_t x1 + sigma_t x0 + s eps with x0, eps ~ N(0, I):

    p_t(x | x1) = N(x; alpha_t x1, v_t I),  v_t = sigma_t^2 + s^2,
    u_t(x | x1) = g_t (x - alpha_t x1) + alpha_t' x1,  g_t = sigma_t sigma_t' / v_t  (= sigma_t' / sigma_t for s = 0),
    w_i(x, t)  = softmax_i(-||x - alpha_t x1_i||^2 / (2 v_t)),
    u_t(x)     = g_t (x - alpha_t E_w[x1]) + alpha_t' E_w[x1],

so one posterior mean E_w[x1] gives the whole field. With s = 0 this is the paper's Theorem 3 field
(`AffinePath.conditional_field`); with s > 0 it is E[alpha' x1 + sigma' x0 | x_t = x, x1], the regression
target of `AffinePath.sample` averaged over the source.

General source with a coupling {(x0_j, x1_j)} (Tong et al. 2024) needs the interpolant's noise s > 0:
kernel N(x; alpha_t x1_j + sigma_t x0_j, s^2 I) and u_t(x) = sum_j w_j (alpha_t' x1_j + sigma_t' x0_j).

Both cases are one streaming (online log-sum-exp) kernel average over chunks of centres, so memory is
O(M * chunk) however many data points there are, and everything stays on the inputs' device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from ..maths import gaussian
from ..maths.paths import AffinePath, PathSample
from ..solver.sampling import Velocity

__all__ = ["LOGITS_BUDGET_BYTES", "Coefficients", "FieldError", "MarginalField", "MarginalVelocity", "Posterior",
           "cfm_loss_by_t", "coefficients", "exact_field", "conditional_field_grid", "conditional_log_density",
           "field_error", "irreducible_loss", "marginal_field", "marginal_field_pairs", "mixture_log_density",
           "pair_posterior_topk", "posterior_topk"]

#: Memory for one block of float logits [rows, chunk]. On CPU a block that stays in cache is faster than
#: one big block (measured on 2 cores: 10k points x 1600 queries, 17 ms with 4 MiB blocks, 35 ms with one
#: 64 MiB block); on a GPU large blocks amortise kernel launches.
LOGITS_BUDGET_BYTES: dict[str, int] = {"cpu": 4 * 2**20, "cuda": 64 * 2**20}
#: Smallest automatic chunk of centres, so the Python loop never dominates.
MIN_AUTO_CHUNK = 256
#: Logits (relative to their row's max) below this are raised to it before exp: exp(-80) ~ 1.8e-35 is
#: still a normal float32, so neither exp's slow path nor subnormal arithmetic is hit.
_LOGIT_FLOOR = -80.0



@dataclass(frozen=True)
class MarginalField:
    """The exact marginal field and path density at query points.

    Attributes:
        velocity: u_t(x), shape [M, d].
        log_density: log p_t(x) = log mean_i N(x; centre_i, sigma^2 I), shape [M].
    """

    velocity: Tensor
    log_density: Tensor


@dataclass(frozen=True)
class FieldError:
    """Pointwise disagreement of a learned field v with the exact field u.

    Attributes:
        abs_error: |v - u|, shape [M].
        rel_error: |v - u| / max(|u|, tiny), shape [M].
        cosine: cos(angle(v, u)), shape [M] (0 where either vector is ~0).
    """

    abs_error: Tensor
    rel_error: Tensor
    cosine: Tensor


class Posterior(NamedTuple):
    """The data points a location is pulled towards: indices into the data and their posterior weights."""

    indices: Tensor
    weights: Tensor




@dataclass(frozen=True)
class Coefficients:
    """alpha_t, sigma_t, their derivatives and the interpolant noise at one time, as Python floats."""

    alpha: float
    d_alpha: float
    sigma: float
    d_sigma: float
    noise_std: float

    @property
    def var(self) -> float:
        """v_t = sigma_t^2 + s^2: variance of p_t(x | x1) under a standard normal source."""
        return self.sigma**2 + self.noise_std**2

    @property
    def gain(self) -> float:
        """g_t = sigma_t sigma_t' / v_t (sigma_t' / sigma_t without noise), the slope of u_t(x | x1) in x."""
        return self.sigma * self.d_sigma / self.var


def coefficients(path: AffinePath, t: float) -> Coefficients:
    """Evaluate the path's schedule at time t in float64 (so tiny sigma_t stay exact)."""
    tt = torch.tensor(float(t), dtype=torch.float64)
    return Coefficients(
        alpha=float(path.alpha(tt)),
        d_alpha=float(path.d_alpha(tt)),
        sigma=float(path.sigma(tt)),
        d_sigma=float(path.d_sigma(tt)),
        noise_std=float(path.noise_std),
    )


def _gaussian_coefficients(path: AffinePath, t: float) -> Coefficients:
    """Coefficients at t, refusing times where p_t(x | x1) is a Dirac (sigma_t = 0)."""
    coef = coefficients(path, t)
    if coef.var <= 0.0:
        raise ValueError(
            f"{path!r} has sigma_t = 0 at t = {t}: the field is singular there; use t <= path.t_max ({path.t_max})"
        )
    return coef


def _check_points(name: str, points: Tensor, like: Tensor) -> None:
    """Fail early, with a readable message, on points of the wrong rank, width, dtype or device."""
    if points.dim() != 2 or points.shape[1] != like.shape[-1]:
        raise ValueError(f"{name}: expected shape [n, {like.shape[-1]}], got {list(points.shape)}")
    if points.dtype != like.dtype or points.device != like.device:
        raise ValueError(f"{name}: dtype/device {points.dtype}/{points.device} differ from {like.dtype}/{like.device}")


def _budget_elements(like: Tensor) -> int:
    """How many logits of like's dtype fit the device's `LOGITS_BUDGET_BYTES`."""
    return LOGITS_BUDGET_BYTES.get(like.device.type, LOGITS_BUDGET_BYTES["cuda"]) // like.element_size()


def _auto_chunk(n_rows: int, n_centres: int, like: Tensor) -> int:
    """Centres per chunk so that a [n_rows, chunk] logits block fits the budget (at least MIN_AUTO_CHUNK)."""
    return max(1, min(n_centres, max(MIN_AUTO_CHUNK, _budget_elements(like) // max(n_rows, 1))))


def _logits(x: Tensor, centres: Tensor, var: float) -> Tensor:
    """(x . c - |c|^2 / 2) / var, i.e. -||x - c||^2 / (2 var) up to a per-row constant, shape [M, n].

    One addmm (no [M, n, d] difference tensor); callers shift x and c to a common origin first so the
    expansion loses little precision in float32.
    """
    bias = centres.pow(2).sum(1).mul(-0.5 / var)
    return torch.addmm(bias, x, centres.T, alpha=1.0 / var)


def _softmax_average_rows(x: Tensor, centres: Tensor, values: Tensor, var: float, chunk: int) -> tuple[Tensor, Tensor]:
    """Online log-sum-exp over chunks of centres for a block of (already shifted) query rows.

    Returns (log sum_i exp(logit_i), sum_i softmax_i * values_i). The running max is detached: log-sum-exp
    does not depend on the shift, so gradients w.r.t. x stay exact. Two details set the speed on a CPU:
    the weighted sum is one [k + 1, chunk] @ [chunk, rows] product (~5x faster than [rows, chunk] @
    [chunk, k + 1], whose 3 output columns BLAS handles badly), and logits more than `_LOGIT_FLOOR` below
    the row's max are raised to it before exp, whose slow path for very negative inputs (and the
    subnormal results) made small-sigma times 3x slower; such terms weigh < 2e-35 each, far below float32
    resolution, so the sums do not change.
    """
    rows, k = x.shape[0], values.shape[1]
    inplace = not (torch.is_grad_enabled() and (x.requires_grad or centres.requires_grad))
    run_max = torch.full((rows,), -math.inf, dtype=x.dtype, device=x.device)
    acc = torch.zeros(k + 1, rows, dtype=x.dtype, device=x.device)  # [sum p * values, sum p], transposed
    values_t = torch.cat([values, values.new_ones(values.shape[0], 1)], dim=1).T.contiguous()  # [k + 1, n]
    for start in range(0, centres.shape[0], chunk):
        logits = _logits(x, centres[start : start + chunk], var)
        new_max = torch.maximum(run_max, logits.detach().amax(1))
        if inplace:
            weights = logits.sub_(new_max[:, None]).clamp_(min=_LOGIT_FLOOR).exp_()
        else:
            weights = torch.exp((logits - new_max[:, None]).clamp(min=_LOGIT_FLOOR))
        acc = acc * torch.exp(run_max - new_max) + values_t[:, start : start + chunk] @ weights.T
        run_max = new_max
    total = acc[k]
    return run_max + torch.log(total), (acc[:k] / total).T


def _kernel_average(
    x: Tensor, centres: Tensor, values: Tensor, var: float, chunk_size: int | None
) -> tuple[Tensor, Tensor]:
    """log mean_i N(x; c_i, var I) [M] and sum_i w_i values_i [M, k], w = softmax_i(-||x - c_i||^2 / 2var).

    The shared engine of the Gaussian-source and the coupling cases. Streams over chunks of centres (and
    blocks of query rows when M alone exceeds the budget), so memory is O(rows * chunk) + O(N d).
    """
    n, d = centres.shape
    origin = centres.detach().mean(0)  # common origin: keeps the addmm expansion accurate
    xs = x - origin
    chunk = chunk_size if chunk_size is not None else _auto_chunk(x.shape[0], n, x)
    if chunk < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk}")
    rows = max(1, _budget_elements(x) // min(chunk, n))
    shifted = centres - origin
    blocks = [
        _softmax_average_rows(xs[r : r + rows], shifted, values, var, chunk) for r in range(0, max(len(x), 1), rows)
    ]
    lse, avg = torch.cat([b[0] for b in blocks]), torch.cat([b[1] for b in blocks])
    sq_norm = xs.pow(2).sum(1)
    log_mean = lse - 0.5 * sq_norm / var - math.log(n) + gaussian.log_normalizer(d, var)
    return log_mean, avg


def mixture_log_density(x: Tensor, centres: Tensor, var: float, *, chunk_size: int | None = None) -> Tensor:
    """log mean_i N(x; c_i, var I) of a Gaussian mixture at points x [M, d], shape [M] (streaming, like the fields)."""
    _check_points("x", x, centres)
    return _kernel_average(x, centres, centres[:, :0], var, chunk_size)[0]


def conditional_field_grid(path: AffinePath, x1_point: Tensor, grid: Tensor, t: float) -> Tensor:
    """u_t(x | x1) of one data point on a grid, shape [M, d] (the per-sample field of the explorer).

    Equals `path.conditional_field` when path.noise_std = 0; with noise it is the field of
    p_t(x | x1) = N(alpha x1, (sigma^2 + s^2) I), whose posterior average is the marginal field.
    """
    coef = _gaussian_coefficients(path, t)
    return coef.gain * (grid - coef.alpha * x1_point) + coef.d_alpha * x1_point


def conditional_log_density(path: AffinePath, x1_point: Tensor, grid: Tensor, t: float) -> Tensor:
    """log N(x; alpha_t x1, v_t I) on a grid, shape [M]; v_t = sigma_t^2 + noise_std^2."""
    coef = _gaussian_coefficients(path, t)
    return gaussian.log_prob(grid - coef.alpha * x1_point, math.sqrt(coef.var))


def marginal_field(
    path: AffinePath, data: Tensor, x: Tensor, t: float, *, chunk_size: int | None = None
) -> MarginalField:
    """Exact marginal field u_t(x) and log p_t(x) of an empirical dataset under a Gaussian source.

    Args:
        path: the probability path.
        data: the dataset {x1_i}, shape [N, d].
        x: query points, shape [M, d], same dtype and device as `data`.
        t: time in [0, path.t_max].
        chunk_size: data points per streaming chunk; None picks one from `LOGITS_BUDGET_BYTES`.

    Returns:
        MarginalField with velocity [M, d] and log_density [M]. Differentiable w.r.t. x.
    """
    _check_points("x", x, data)
    coef = _gaussian_coefficients(path, t)
    log_density, mean_x1 = _kernel_average(x, coef.alpha * data, data, coef.var, chunk_size)
    velocity = coef.gain * (x - coef.alpha * mean_x1) + coef.d_alpha * mean_x1
    return MarginalField(velocity=velocity, log_density=log_density)


def marginal_field_pairs(
    path: AffinePath, x0: Tensor, x1: Tensor, x: Tensor, t: float, *, chunk_size: int | None = None
) -> MarginalField:
    """Exact marginal field of an interpolant over coupled pairs {(x0_j, x1_j)} (any source, any coupling).

    Kernel N(x; alpha_t x1_j + sigma_t x0_j, noise_std^2 I); u_t(x) = sum_j w_j (alpha_t' x1_j + sigma_t' x0_j).

    Args:
        path: an interpolant with path.noise_std > 0 (without noise the pairs' kernel is a Dirac).
        x0: source points, shape [N, d].
        x1: their coupled data points, shape [N, d].
        x: query points, shape [M, d].
        t: time in [0, 1].
        chunk_size: pairs per streaming chunk; None picks one from `LOGITS_BUDGET_BYTES`.

    Returns:
        MarginalField with velocity [M, d] and log_density [M].
    """
    if path.noise_std <= 0:
        raise ValueError(
            f"marginal_field_pairs needs path.noise_std > 0 (got {path!r}): with no interpolant noise "
            "p_t(x | x0, x1) is a Dirac and the marginal over pairs has no density; use e.g. "
            "make_path('icfm', sigma=0.1), or marginal_field for a Gaussian source"
        )
    _check_points("x1", x1, x0)
    _check_points("x", x, x0)
    if x0.shape[0] != x1.shape[0]:
        raise ValueError(f"x0 and x1 must pair up row by row, got {x0.shape[0]} and {x1.shape[0]} rows")
    coef = coefficients(path, t)
    centres = coef.alpha * x1 + coef.sigma * x0
    targets = coef.d_alpha * x1 + coef.d_sigma * x0
    log_density, velocity = _kernel_average(x, centres, targets, coef.noise_std**2, chunk_size)
    return MarginalField(velocity=velocity, log_density=log_density)


class MarginalVelocity:
    """The exact marginal field as a velocity model v(x, t [B]): integrate it to watch it memorise."""

    def __init__(self, path: AffinePath, data: Tensor, *, source: Tensor | None = None,
                 chunk_size: int | None = None) -> None:
        """Bind a path and a dataset [N, d] (or pairs (source[j], data[j])); evaluated on data's dtype and device."""
        self.path = path
        self.data = data
        self.source = source
        self.chunk_size = chunk_size

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        """u_t(x) for points [B, d] at times [B] (one exact evaluation per distinct time)."""
        times = torch.unique(t)
        if times.numel() == 1:
            return self._at(x, float(times))
        out = torch.empty_like(x)
        for time in times.tolist():
            rows = t == time
            out[rows] = self._at(x[rows], time)
        return out

    def _at(self, x: Tensor, t: float) -> Tensor:
        """u_t(x) at one time."""
        return exact_field(self.path, self.data, x, t, source=self.source, chunk_size=self.chunk_size).velocity


def _topk_softmax(probe: Tensor, centres: Tensor, var: float, k: int) -> Posterior:
    """The k largest of softmax_i(-||probe - c_i||^2 / 2 var), in decreasing order."""
    origin = centres.mean(0)
    weights = torch.softmax(_logits((probe - origin)[None], centres - origin, var)[0], dim=0)
    top = torch.topk(weights, min(k, centres.shape[0]))
    return Posterior(indices=top.indices, weights=top.values)


def posterior_topk(path: AffinePath, data: Tensor, probe: Tensor, t: float, k: int) -> Posterior:
    """The k data points a location `probe` [d] is pulled towards at time t, with posterior weights w_i.

    w_i = p(x1_i | x_t = probe), the weights of the marginal field (Gaussian source); returns weights in
    decreasing order, shape [k] each.
    """
    coef = _gaussian_coefficients(path, t)
    return _topk_softmax(probe, coef.alpha * data, coef.var, k)


def pair_posterior_topk(path: AffinePath, x0: Tensor, x1: Tensor, probe: Tensor, t: float, k: int) -> Posterior:
    """The k coupled pairs (x0_j, x1_j) a location `probe` [d] is pulled towards at time t, with weights.

    The weights of `marginal_field_pairs`: softmax of the interpolant's kernel N(alpha_t x1_j + sigma_t x0_j,
    noise_std^2 I) at the probe; indices into the pairs, in decreasing order of weight.
    """
    if path.noise_std <= 0:
        raise ValueError(f"pair_posterior_topk needs path.noise_std > 0 (got {path!r})")
    coef = coefficients(path, t)
    return _topk_softmax(probe, coef.alpha * x1 + coef.sigma * x0, coef.noise_std**2, k)


def field_error(learned: Tensor, exact: Tensor, *, tiny: float = 1e-8) -> FieldError:
    """Compare a learned field with the exact one point by point (error maps of the explorer).

    Args:
        learned: v_theta(x, t), shape [M, d].
        exact: u_t(x), shape [M, d].
        tiny: floor of |u| in the relative error, so zeros of u do not divide by zero.
    """
    diff = (learned - exact).norm(dim=1)
    exact_norm = exact.norm(dim=1)
    cosine = torch.nn.functional.cosine_similarity(learned, exact, dim=1, eps=tiny)
    return FieldError(abs_error=diff, rel_error=diff / exact_norm.clamp_min(tiny), cosine=cosine)


def _draw_path_samples(
    path: AffinePath, data: Tensor, t: float, n: int, generator: torch.Generator | None, source: Tensor | None
) -> PathSample:
    """n draws of (x0, x1, x_t, CFM target) at one time t, on data's device.

    Gaussian source (`source` None): x1 ~ data, x0 ~ N(0, I). Coupled pairs: one pair (source[j], data[j])
    drawn uniformly.
    """
    rng = generator.device if generator is not None else data.device
    idx = torch.randint(data.shape[0], (n,), generator=generator, device=rng).to(data.device)
    if source is None:
        x0 = torch.randn(n, data.shape[1], generator=generator, device=rng, dtype=data.dtype).to(data.device)
    else:
        x0 = source[idx]
    times = torch.full((n,), float(t), dtype=data.dtype, device=data.device)
    noise_gen = generator if rng == data.device else None
    return path.sample(x0, data[idx], times, generator=noise_gen)


def exact_field(
    path: AffinePath, data: Tensor, x: Tensor, t: float, *, source: Tensor | None = None,
    chunk_size: int | None = None,
) -> MarginalField:
    """The exact marginal field of the data (Gaussian source) or of the pairs (source[j], data[j])."""
    if source is None:
        return marginal_field(path, data, x, t, chunk_size=chunk_size)
    return marginal_field_pairs(path, source, data, x, t, chunk_size=chunk_size)


@torch.no_grad()
def irreducible_loss(
    path: AffinePath,
    data: Tensor,
    ts: Tensor,
    n_samples: int,
    generator: torch.Generator | None = None,
    *,
    source: Tensor | None = None,
    chunk_size: int | None = None,
) -> Tensor:
    """E ||target - u_t(x_t)||^2 per time: the part of the CFM loss no model can remove, shape [T].

    The CFM target varies with x1 (and x0) at a fixed x_t, while a model can only output one vector there;
    the best it can do is the exact marginal field, whose CFM loss is this Monte Carlo estimated variance.
    `source` [N, d] pairs row by row with `data` for a coupled, non-Gaussian source.
    """
    exact = MarginalVelocity(path, data, source=source, chunk_size=chunk_size)
    return cfm_loss_by_t(exact, path, data, ts, n_samples, generator, source=source)


@torch.no_grad()
def cfm_loss_by_t(
    model: Velocity,
    path: AffinePath,
    data: Tensor,
    ts: Tensor,
    n_samples: int,
    generator: torch.Generator | None = None,
    *,
    source: Tensor | None = None,
) -> Tensor:
    """The CFM loss E ||v(x_t, t) - target||^2 of a model at each fixed time, shape [T] (`source` as above)."""
    losses = []
    for t in ts.tolist():
        sample = _draw_path_samples(path, data, t, n_samples, generator, source)
        losses.append((model(sample.x_t, sample.t) - sample.u_t).pow(2).sum(1).mean())
    return torch.stack(losses)



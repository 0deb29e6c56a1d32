"""Sample-quality and trajectory metrics: exact W2, MMD, energy distance, straightness and path energy.

Why: comparing generated samples with data needs a distance and its noise floor (W2 between two draws of
the data itself); comparing paths and couplings needs how straight and how cheap the learned flow is
(Liu et al., rectified flow), which sets how few solver steps it tolerates.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..flow.model import FlowModel
from ..solver.sampling import SolverConfig, Velocity, integrate

__all__ = [
    "DEFAULT_BANDWIDTHS",
    "STRAIGHTNESS_SOLVER",
    "TrajectoryMetrics",
    "energy_distance",
    "median_distance",
    "label_accuracy",
    "model_label_accuracy",
    "mmd",
    "per_dimension_w1",
    "straightness",
    "w2",
]

ArrayLike = Tensor | np.ndarray
#: RBF bandwidths of `mmd`, as multiples of the median pairwise distance of the pooled samples.
DEFAULT_BANDWIDTHS: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
#: Rows per block of pairwise distances, so MMD and energy distance need O(block * n) memory.
PAIRWISE_BLOCK = 2048


@dataclass(frozen=True)
class TrajectoryMetrics:
    """How straight and how costly a flow's own trajectories are.

    Attributes:
        straightness: S = int_0^1 E ||(x1 - x0) - v(x_t, t)||^2 dt (0 for straight, constant-speed paths).
        path_energy: int_0^1 E ||v(x_t, t)||^2 dt.
        nfe: model evaluations the solver used to produce the trajectories.
    """

    straightness: float
    path_energy: float
    nfe: int


def _as_float64(a: ArrayLike) -> np.ndarray:
    """Points as a 2-D float64 numpy array (tensors are detached and moved to the CPU)."""
    arr = a.detach().cpu().numpy() if isinstance(a, Tensor) else np.asarray(a)
    arr = arr.astype(np.float64, copy=False)
    if arr.ndim != 2:
        raise ValueError(f"expected points of shape [n, d], got {arr.shape}")
    return arr


def w2(a: ArrayLike, b: ArrayLike, *, num_iter_max: int = 10_000_000) -> float:
    """Exact 2-Wasserstein distance between two point clouds with uniform weights (POT's network simplex).

    Args:
        a: samples, shape [n, d].
        b: samples, shape [m, d].
        num_iter_max: simplex iteration cap (large enough for several thousand points).
    """
    xa, xb = _as_float64(a), _as_float64(b)
    import ot  # POT loads on first use: `import flowscope` stays quick

    cost = ot.dist(xa, xb, metric="sqeuclidean")
    wa = np.full(len(xa), 1.0 / len(xa))
    wb = np.full(len(xb), 1.0 / len(xb))
    return math.sqrt(max(float(ot.emd2(wa, wb, cost, numItermax=num_iter_max)), 0.0))


def per_dimension_w1(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """W1 between the two samples' marginals, one per column [d] (scipy's exact 1-D Wasserstein distance).

    Why: in d dimensions a joint W2 hides which column a model gets wrong; the marginals say it, in the
    column's own units.
    """
    from scipy.stats import wasserstein_distance

    xa, xb = _as_float64(a), _as_float64(b)
    if xa.shape[1] != xb.shape[1]:
        raise ValueError(f"samples have {xa.shape[1]} and {xb.shape[1]} columns")
    return np.array([wasserstein_distance(xa[:, j], xb[:, j]) for j in range(xa.shape[1])])


def label_accuracy(samples: ArrayLike, label: int, points: ArrayLike, labels: ArrayLike, *, k: int = 5) -> float:
    """Share of samples whose k nearest `points` mostly carry `label` (a k-NN classifier of the training data).

    Why: the check of a conditional model that needs no classifier of ours: a sample drawn for class y should
    land among class y's points. Distances in the coordinates given (standardise columns of mixed units).
    """
    xs = torch.from_numpy(_as_float64(samples))
    ref = torch.from_numpy(_as_float64(points))
    classes = torch.as_tensor(np.asarray(labels)).long()
    if len(classes) != len(ref):
        raise ValueError(f"labels: one per point, got {len(classes)} for {len(ref)} points")
    k = min(k, len(ref))
    hits = 0
    for start in range(0, len(xs), PAIRWISE_BLOCK):
        nearest = torch.cdist(xs[start : start + PAIRWISE_BLOCK], ref).topk(k, largest=False).indices
        votes = (classes[nearest] == label).sum(1)
        hits += int((2 * votes > k).sum())
    return hits / max(len(xs), 1)


def model_label_accuracy(flow: FlowModel, samples: ArrayLike, label: int, points: ArrayLike, labels: ArrayLike, *,
                         k: int = 5) -> float:
    """A conditional model's label accuracy: `label_accuracy` of its samples against labelled `points` (both in data
    units), measured in the model's normalised coordinates (`flow.normalizer`).

    Why: the one definition that the CLI, the zoo and the explorer all report, so a model has one figure; in
    normalised units no column's units dominate the nearest-neighbour distances (wine's proline, ~1000).
    """
    def encode(x: ArrayLike) -> np.ndarray:
        return flow.normalizer.encode(torch.from_numpy(_as_float64(x))).numpy()

    return label_accuracy(encode(samples), label, encode(points), labels, k=k)


def _blockwise_mean(a: Tensor, b: Tensor, kernel: Callable[[Tensor], Tensor], exclude_diagonal: bool) -> float:
    """Mean of kernel(||a_i - b_j||^2) over pairs (i != j if a is b), streaming row blocks of a."""
    total = 0.0
    for start in range(0, a.shape[0], PAIRWISE_BLOCK):
        values = kernel(torch.cdist(a[start : start + PAIRWISE_BLOCK], b).pow(2))
        if exclude_diagonal:
            values.diagonal(offset=start).zero_()
        total += float(values.sum())
    pairs = a.shape[0] * (b.shape[0] - 1) if exclude_diagonal else a.shape[0] * b.shape[0]
    return total / pairs


def _unbiased_two_sample(a: ArrayLike, b: ArrayLike, kernel: Callable[[Tensor], Tensor]) -> float:
    """E k(X, X') + E k(Y, Y') - 2 E k(X, Y) with U-statistics for the within-sample terms."""
    ta, tb = torch.from_numpy(_as_float64(a)), torch.from_numpy(_as_float64(b))
    if len(ta) < 2 or len(tb) < 2:
        raise ValueError("unbiased two-sample statistics need at least 2 points per set")
    return (
        _blockwise_mean(ta, ta, kernel, True)
        + _blockwise_mean(tb, tb, kernel, True)
        - 2.0 * _blockwise_mean(ta, tb, kernel, False)
    )


def median_distance(a: ArrayLike, b: ArrayLike, max_points: int = 2000) -> float:
    """Median pairwise distance of the pooled samples (at most max_points of each): the RBF length scale."""
    pooled = torch.from_numpy(np.concatenate([_as_float64(a)[:max_points], _as_float64(b)[:max_points]]))
    dist = torch.pdist(pooled)
    return float(dist.median()) if dist.numel() else 1.0


def mmd(
    a: ArrayLike, b: ArrayLike, bandwidths: Sequence[float] = DEFAULT_BANDWIDTHS, *, relative: bool = True
) -> float:
    """Unbiased estimate of MMD^2 with a mixture of RBF kernels sum_h exp(-||x - y||^2 / (2 h^2)).

    Args:
        a: samples, shape [n, d].
        b: samples, shape [m, d].
        bandwidths: kernel widths h; multiples of the median pairwise distance when `relative`.
        relative: scale the bandwidths by `median_distance(a, b)`.

    Returns:
        MMD^2 (unbiased, so it can be slightly negative when the distributions agree).
    """
    scale = median_distance(a, b) if relative else 1.0
    inv_two_h2 = [1.0 / (2.0 * (h * scale) ** 2) for h in bandwidths]

    def kernel(sq: Tensor) -> Tensor:
        return sum((torch.exp(-c * sq) for c in inv_two_h2), torch.zeros_like(sq))

    return _unbiased_two_sample(a, b, kernel)


def energy_distance(a: ArrayLike, b: ArrayLike) -> float:
    """Squared energy distance 2 E||X - Y|| - E||X - X'|| - E||Y - Y'|| (U-statistics, ~0 for equal laws)."""
    return -_unbiased_two_sample(a, b, torch.sqrt)


#: The solver of record for straightness and path energy: rk4 with 64 steps, evaluated on its own grid.
STRAIGHTNESS_SOLVER = SolverConfig(method="rk4", steps=64)


@torch.no_grad()
def straightness(
    v: Velocity, x0: Tensor, *, t1: float = 1.0, solver: SolverConfig = STRAIGHTNESS_SOLVER
) -> TrajectoryMetrics:
    """Straightness and path energy of a flow along its own trajectories from source points x0.

    One solve gives x_t at solver.steps + 1 equally spaced times on [0, t1] (a fixed-step solver steps on
    exactly that grid); v is then evaluated there (one batched call) and
    S = int E||(x1 - x0) - v(x_t, t)||^2 dt, E = int E||v||^2 dt are integrated by the trapezoid rule.

    Args:
        v: velocity model v(x [B, d], t [B]) -> [B, d].
        x0: source samples, shape [B, d].
        t1: end time (path.t_max for paths singular at t = 1).
        solver: how to integrate; its `steps` also set the quadrature grid.

    Returns:
        TrajectoryMetrics; nfe counts the solver's model calls (not the extra evaluation on the grid).
    """
    grid = torch.linspace(0.0, t1, solver.steps + 1, dtype=x0.dtype, device=x0.device)
    solved = integrate(v, x0, t1=t1, solver=solver, times=grid)
    traj = solved.trajectory  # [K + 1, B, d]
    n_times, batch, d = traj.shape
    times = grid[:, None].expand(n_times, batch).reshape(-1)
    vel = v(traj.reshape(-1, d), times).reshape(n_times, batch, d)
    deviation = (traj[-1] - traj[0])[None] - vel
    straight = torch.trapezoid(deviation.pow(2).sum(-1).mean(1), grid)
    energy = torch.trapezoid(vel.pow(2).sum(-1).mean(1), grid)
    return TrajectoryMetrics(straightness=float(straight), path_energy=float(energy), nfe=solved.nfe)

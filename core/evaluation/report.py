"""Model quality reports: the metrics of `metrics` and `likelihood` applied to a FlowModel and its data.

One place computes the figures that the CLI (`train`, `eval`), the zoo, the benchmarks and the explorer
show. Data to compare against is either an array (draws are random disjoint subsets of it) or a sampler
`sample_data(n, seed)` of fresh points (a built-in dataset); either way W2 is reported with its i.i.d.
floor, the W2 between two independent draws of the data of the same size, which a perfect sampler would
score: a ratio near 1 is as good as it gets.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ..flow.model import FlowModel
from ..solver.likelihood import EXACT_DIVERGENCE_MAX_DIM, log_likelihood
from ..solver.sampling import SampleResult, SolverConfig
from .metrics import energy_distance, mmd, model_label_accuracy, per_dimension_w1, straightness, w2
from .records import ENERGY_NOTE, ClassesReport, ClassReport, QualityReport, SampleQuality

__all__ = [
    "ENERGY_NOTE",
    "QUALITY_DRAWS",
    "REFERENCE_SOLVER",
    "DataSampler",
    "Reference",
    "class_log_likelihoods",
    "class_posterior",
    "evaluate",
    "evaluate_classes",
    "evaluation_samples",
    "held_out_nll",
    "nll_estimator",
    "reference_draws",
    "sample_quality",
    "w2_floor",
    "w2_to_reference",
]

#: sample_data(n, seed) -> [n, d]: fresh, independent points of a dataset for each seed.
DataSampler = Callable[[int, int], np.ndarray]
#: What samples are judged against: an array of data points, or a sampler of fresh ones.
Reference = np.ndarray | DataSampler
#: The solver of record for NFE: dopri5 at atol = rtol = 1e-5 (the paper's comparison).
REFERENCE_SOLVER = SolverConfig(method="dopri5", atol=1e-5, rtol=1e-5)
#: Draws that W2 and its floor are averaged over. One 2000-point W2 varies by 11-24% (std / mean) from
#: draw to draw on the toy sets, mostly with how the points split between modes; 10 draws bring the
#: ratio's noise to a few percent, so a model's figure says more about the model than about luck.
QUALITY_DRAWS = 10
#: Seed offsets that keep evaluation draws apart from training data (seed) and from each other.
_DRAW_SEED, _NLL_SEED = 10_001, 20_001


def _w2_each(pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[float]:
    """W2 of each (a, b) pair, solved on up to one thread per core: POT's network simplex releases the GIL,
    so the 10 draws of an evaluation take about half the wall time on two free cores (same values)."""
    workers = min(len(pairs), os.cpu_count() or 1)
    if workers <= 1:
        return [w2(a, b) for a, b in pairs]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda ab: w2(*ab), pairs))


def _base(seed: int, k: int) -> int:
    """The seed of evaluation draw k."""
    return seed + _DRAW_SEED + 10 * k


def reference_draws(data: Reference, n: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray | None,
                                                                            np.ndarray | None]:
    """Draw k of the reference: (points to judge samples against, and two more draws for the floor).

    A sampler gives three independent fresh draws (seeds base, base + 1, base + 2). An array gives a random
    n-subset, and for the floor that subset and a disjoint one (None when the array has fewer than 2n rows).
    """
    base = _base(seed, k)
    if callable(data):
        return data(n, base), data(n, base + 1), data(n, base + 2)
    order = np.random.default_rng(base).permutation(len(data))
    reference = data[order[:n]]
    if len(data) < 2 * n:
        return reference, None, None
    return reference, reference, data[order[n : 2 * n]]


def _size(data: Reference, n: int) -> int:
    """Points per draw: n, or half of a smaller array (so that two disjoint draws give a floor)."""
    return n if callable(data) else max(1, min(n, len(data) // 2))


def w2_to_reference(samples: np.ndarray, data: Reference, *, n: int = 2000, repeats: int = QUALITY_DRAWS,
                    seed: int = 0) -> float:
    """Mean W2 between consecutive n-blocks of `samples` and reference draws 0, 1, ... (inf if not finite).

    Uses min(repeats, len(samples) // n) blocks (at least one, of all samples if fewer than n).
    """
    n = min(_size(data, n), len(samples))
    blocks = max(1, min(repeats, len(samples) // n))
    pairs = []
    for k in range(blocks):
        block = samples[k * n : (k + 1) * n]
        if not np.isfinite(block).all():
            return float("inf")
        pairs.append((block, reference_draws(data, n, k, seed)[0]))
    return float(np.mean(_w2_each(pairs)))


def w2_floor(data: Reference, *, n: int = 2000, repeats: int = QUALITY_DRAWS, seed: int = 0) -> float | None:
    """Mean W2 between two independent n-point draws of the data: what a perfect sampler would score.

    None when an array is too small for two disjoint draws of n points.
    """
    n = _size(data, n)
    pairs = []
    for k in range(repeats):
        _, first, second = reference_draws(data, n, k, seed)
        if first is None or second is None:
            return None
        pairs.append((first, second))
    return float(np.mean(_w2_each(pairs)))


def sample_quality(samples: np.ndarray, data: Reference, *, n: int = 2000, repeats: int = QUALITY_DRAWS,
                   seed: int = 0, floor: float | None = None) -> SampleQuality:
    """W2 of samples to the data, its floor and their ratio (None where the data allow no floor).

    `floor` reuses a `w2_floor` computed with the same n, repeats and seed (it depends only on the data).
    """
    n = min(_size(data, n), len(samples))
    blocks = max(1, min(repeats, len(samples) // n))
    distance = w2_to_reference(samples, data, n=n, repeats=blocks, seed=seed)
    if floor is None:
        floor = w2_floor(data, n=n, repeats=blocks, seed=seed)
    return SampleQuality(w2=distance, w2_floor=floor, n=n, draws=blocks)


def held_out_nll(flow: FlowModel, points: np.ndarray, *, solver: SolverConfig = REFERENCE_SOLVER,
                 seed: int = 0) -> float:
    """Mean negative log-likelihood (nats per point, data coordinates) of `points` under a Gaussian-source flow.

    Integrated in the model's normalised coordinates (log p(x) = log p(z) - log|det dx/dz|), over its varying
    columns: constant columns are constants of the model and carry no density. The divergence is exact up
    to EXACT_DIVERGENCE_MAX_DIM dimensions and Hutchinson's estimator (one Rademacher probe) above.
    """
    x = torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32)).to(flow.device)
    z = flow.normalizer.encode(x)
    result = log_likelihood(flow.latent_velocity, z, prior_std=flow.path.prior_std, t1=flow.path.t_max,
                            solver=solver, generator=torch.Generator().manual_seed(seed))
    return float(-(result.log_prob.mean() - flow.normalizer.log_det))


def nll_estimator(flow: FlowModel) -> str:
    """How `held_out_nll` computes the divergence for this model: exact, or Hutchinson's estimator."""
    if flow.latent_dim <= EXACT_DIVERGENCE_MAX_DIM:
        return "exact divergence"
    return "Hutchinson divergence estimator (1 Rademacher probe)"


def _nll_points(data: Reference, count: int, seed: int) -> np.ndarray:
    """Held-out points for the NLL: a fresh draw, or a random subset of the array."""
    if callable(data):
        return data(count, seed + _NLL_SEED)
    order = np.random.default_rng(seed + _NLL_SEED).permutation(len(data))
    return data[order[:count]]


def evaluation_samples(flow: FlowModel, count: int, *, solver: SolverConfig = REFERENCE_SOLVER,
                       seed: int = 0) -> SampleResult:
    """The model samples that `evaluate` judges: one solve of `count` points from a seed of their own."""
    return flow.sample(count, solver=solver, generator=torch.Generator().manual_seed(_base(seed, 0)))


def evaluate(flow: FlowModel, data: Reference, *, n: int = 2000, repeats: int = QUALITY_DRAWS,
             solver: SolverConfig = REFERENCE_SOLVER, seed: int = 0, floor: float | None = None,
             nll_points: int = 1000, trajectory_points: int = 1000) -> QualityReport:
    """Every figure of a model against data: the one report the CLI, the zoo and the benchmarks print.

    W2 (mean over `repeats` draws of n points, the samples from one solve of n * repeats points) with its
    floor and ratio; MMD and energy distance (first draw); the solver's NFE; straightness and path energy
    of `trajectory_points` trajectories; the W1 distance of each column's marginal (first draw); and, for a
    Gaussian-source model, the held-out NLL of `nll_points` points (nats per point, data coordinates) with
    the divergence estimator named. `QualityReport.stored()` is what a model file keeps of it.
    """
    n = _size(data, n)
    result = evaluation_samples(flow, n * repeats, solver=solver, seed=seed)
    samples = result.samples.cpu().numpy()
    quality = sample_quality(samples, data, n=n, repeats=repeats, seed=seed, floor=floor)
    first = reference_draws(data, n, 0, seed)[0]
    x0 = flow.draw_source(trajectory_points, torch.Generator().manual_seed(seed))
    traj = straightness(flow.velocity, x0, t1=flow.path.t_max)
    nll = None
    if flow.source is None and nll_points > 0:
        nll = held_out_nll(flow, _nll_points(data, nll_points, seed), seed=seed)
    return QualityReport(w2=quality.w2, w2_floor=quality.w2_floor, w2_ratio=quality.w2_ratio,
                         solver=solver.method, nfe=result.nfe, n=quality.n, draws=quality.draws,
                         mmd=mmd(samples[:n], first), energy_distance=energy_distance(samples[:n], first),
                         w1_per_dim=tuple(per_dimension_w1(samples[:n], first).tolist()),
                         straightness=traj.straightness, path_energy=traj.path_energy, nll=nll,
                         nll_divergence=None if nll is None else nll_estimator(flow))


def class_log_likelihoods(flow: FlowModel, points: np.ndarray, *, solver: SolverConfig = REFERENCE_SOLVER,
                          seed: int = 0) -> torch.Tensor:
    """log p(x | y) of every point under every class of a conditional Gaussian-source flow, [n, C] (nats).

    Each class's density is that of its conditional field v(x, t, y) (guidance 0), integrated like
    `held_out_nll`.
    """
    if not flow.conditional:
        raise ValueError("class likelihoods need a conditional model")
    if flow.source is not None:
        raise ValueError("class likelihoods need a Gaussian source (its density is known)")
    z = flow.normalizer.encode(torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32)).to(flow.device))
    columns = []
    for y in range(len(flow.labels)):
        result = log_likelihood(flow.guided_latent(y, 0.0), z, prior_std=flow.path.prior_std, t1=flow.path.t_max,
                                solver=solver, generator=torch.Generator().manual_seed(seed))
        columns.append(result.log_prob - flow.normalizer.log_det)
    return torch.stack(columns, dim=1)


def class_posterior(flow: FlowModel, points: np.ndarray, *, solver: SolverConfig = REFERENCE_SOLVER) -> torch.Tensor:
    """p(y | x) by Bayes over the model's classes, [n, C]: its class likelihoods times the training class
    frequencies (a classifier for free)."""
    counts = torch.tensor(flow.info.get("class_counts") or [1] * len(flow.labels), dtype=torch.float64)
    log_prior = torch.log(counts / counts.sum()).to(torch.float32)
    return torch.softmax(class_log_likelihoods(flow, points, solver=solver) + log_prior.to(flow.device), dim=1)


def evaluate_classes(flow: FlowModel, held_out: np.ndarray, held_out_labels: np.ndarray, train: np.ndarray,
                     train_labels: np.ndarray, *, guidance: tuple[float, ...] = (0.0, 1.0, 3.0), n: int = 1000,
                     seed: int = 0, solver: SolverConfig = REFERENCE_SOLVER) -> ClassesReport:
    """Per class of a conditional model: W2 / floor of its samples (guidance 0) against the class's held-out
    points, and the label accuracy (`metrics.model_label_accuracy` on the training data) at each guidance scale."""
    if not flow.conditional:
        raise ValueError("per-class figures need a conditional model")
    classes = []
    for y, name in enumerate(flow.labels):
        reference = held_out[np.asarray(held_out_labels) == y]
        accuracy: dict[float, float] = {}
        quality = None
        for w in guidance:
            result = flow.sample(n, label=y, guidance=w, solver=solver,
                                 generator=torch.Generator().manual_seed(_base(seed, y)))
            samples = result.samples.cpu().numpy()
            accuracy[float(w)] = model_label_accuracy(flow, samples, y, train, train_labels)
            if w == 0 and len(reference) >= 4:
                figures = sample_quality(samples, reference, n=n, repeats=1, seed=seed)
                quality = QualityReport(w2=figures.w2, w2_floor=figures.w2_floor, w2_ratio=figures.w2_ratio,
                                        solver=solver.method, n=figures.n, draws=figures.draws)
        classes.append(ClassReport(name=name, held_out=int(len(reference)), accuracy=accuracy, quality=quality))
    return ClassesReport(tuple(classes))

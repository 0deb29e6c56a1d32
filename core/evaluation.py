"""Model quality reports: the metrics of `metrics` and `likelihood` applied to a FlowModel and data.

One place computes the figures that the CLI (`train`, `eval`), the zoo and the explorer all show.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .flow import FlowModel
from .likelihood import log_likelihood
from .metrics import energy_distance, mmd, straightness, w2
from .sampling import SolverConfig

DataSampler = Callable[[int, int], np.ndarray]
#: The solver of record for NFE: dopri5 at atol = rtol = 1e-5 (the paper's comparison).
REFERENCE_SOLVER = SolverConfig(method="dopri5", atol=1e-5, rtol=1e-5)


#: Draws that W2 and its floor are averaged over. One 2000-point W2 varies by 11-24% (std / mean) from
#: draw to draw on the toy sets, mostly with how the points split between modes; 10 draws bring the
#: ratio's noise to a few percent, so a model's figure says more about the model than about luck.
QUALITY_DRAWS = 10


def w2_floor(sample_data: DataSampler, *, n: int = 2000, seed: int = 0, repeats: int = QUALITY_DRAWS) -> float:
    """Mean W2 between two independent n-point draws of the data: what a perfect sampler would score."""
    bases = [seed + 10_001 + 10 * k for k in range(repeats)]
    return float(np.mean([w2(sample_data(n, base + 1), sample_data(n, base + 2)) for base in bases]))


def quality(flow: FlowModel, sample_data: DataSampler, *, n: int = 2000, seed: int = 0,
            repeats: int = QUALITY_DRAWS, floor: float | None = None) -> dict[str, float]:
    """W2 of n model samples vs n fresh data points, its i.i.d. floor, their ratio and the reference NFE.

    Both W2 and the floor are means over `repeats` independent draws (seeds 10_001.. keep them apart from
    training data); the model's samples come from one solve of n * repeats points. `sample_data(n, seed)`
    draws fresh data; `floor` reuses a `w2_floor` computed with the same n, seed and repeats.
    """
    base = seed + 10_001
    result = flow.sample(n * repeats, solver=REFERENCE_SOLVER, generator=torch.Generator().manual_seed(base))
    samples = result.samples.cpu().numpy()
    distance = float(np.mean([w2(samples[k * n : (k + 1) * n], sample_data(n, base + 10 * k))
                              for k in range(repeats)]))
    if floor is None:
        floor = w2_floor(sample_data, n=n, seed=seed, repeats=repeats)
    return {"w2": round(distance, 5), "w2_floor": round(floor, 5), "w2_ratio": round(distance / floor, 4),
            "nfe_dopri5": result.nfe}


def evaluate(flow: FlowModel, data: np.ndarray, *, n: int = 2000, solver: SolverConfig = REFERENCE_SOLVER,
             seed: int = 0, nll_points: int = 1000) -> dict[str, Any]:
    """Every metric of a model against held-out data: W2 (and floor, when data allows two draws), MMD,
    energy distance, negative log-likelihood (Gaussian-source models), straightness, path energy, NFE.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data))
    reference = data[order[:n]]
    generator = torch.Generator().manual_seed(seed)
    result = flow.sample(len(reference), solver=solver, generator=generator)
    samples = result.samples.cpu().numpy()
    report: dict[str, Any] = {
        "n": len(reference),
        "solver": solver.method,
        "nfe": result.nfe,
        "w2": w2(samples, reference),
        "mmd": mmd(samples, reference),
        "energy_distance": energy_distance(samples, reference),
    }
    second = data[order[n : 2 * n]]
    if len(second) == len(reference):
        report["w2_floor"] = w2(second, reference)
        report["w2_ratio"] = report["w2"] / report["w2_floor"]
    x0 = flow.draw_source(min(n, 1000), generator)
    traj = straightness(flow.velocity, x0, torch.linspace(0.0, flow.path.t_max, 65))
    report.update(straightness=traj.straightness, path_energy=traj.path_energy)
    if flow.source is None:
        report["nll"] = held_out_nll(flow, data[order[-min(nll_points, len(data)) :]])
    return report


def held_out_nll(flow: FlowModel, points: np.ndarray) -> float:
    """Mean negative log-likelihood (nats per point, data coordinates) of `points` under a Gaussian-source flow."""
    x = torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32)).to(flow.device)
    result = log_likelihood(flow.velocity, x, prior_log_density=flow.prior_log_density, t1=flow.path.t_max)
    return float(-result.log_prob.mean())

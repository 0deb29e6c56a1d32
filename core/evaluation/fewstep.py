"""Few-step sampling side by side: any flows of one prior sampled from the same noise at a few Euler steps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..flow.model import FlowModel
from ..solver.sampling import SolverConfig
from .metrics import straightness
from .report import Reference, sample_quality, w2_floor

__all__ = ['EULER_STEPS', 'FewStepReport', 'few_step_reports']


#: Euler step counts at which teacher and student are compared (what straight paths buy in few-step sampling).
EULER_STEPS = (1, 2, 4, 8, 16, 32)


@dataclass(frozen=True)
class FewStepReport:
    """One model's few-step figures from the shared noise.

    Attributes:
        name: the model's label.
        straightness: S = int E||(x1 - x0) - v(x_t, t)||^2 dt along its own trajectories (`metrics.straightness`).
        w2_ratio: W2 / floor of its Euler samples, by number of Euler steps.
        w2_floor: the data's W2 floor (the same for every model).
        trajectory: a few of its trajectories from the shared noise, [T, m, D] (rk4, 32 steps), at `times`.
        times: the trajectory's times [T].
    """

    name: str
    straightness: float
    w2_ratio: dict[int, float]
    w2_floor: float
    trajectory: Tensor
    times: Tensor


def few_step_reports(flows: Mapping[str, FlowModel], data: Reference, *, steps: Sequence[int] = EULER_STEPS,
                     n: int = 2000, repeats: int = 3, seed: int = 0,
                     trajectory_points: int = 200) -> list[FewStepReport]:
    """Teacher and student (any flows of one prior) side by side from the same noise: straightness, and W2 / floor
    of Euler samples at each step count in `steps` (`repeats` draws of n points against `data`).

    The noise is drawn once, in data coordinates, from the first flow's prior (or source); a reflowed student's
    prior is its teacher's, so every flow starts from exactly the same points.
    """
    if not flows:
        raise ValueError("few_step_reports needs at least one flow")
    if any(k < 1 for k in steps):
        raise ValueError(f"Euler step counts must be >= 1, got {list(steps)}")
    first = next(iter(flows.values()))
    x0 = first.draw_source(n * repeats, torch.Generator().manual_seed(seed))
    floor = w2_floor(data, n=n, repeats=repeats, seed=seed)
    if floor is None:
        raise ValueError(f"the data are too few for two disjoint draws of {n} points (W2's floor)")
    reports = []
    for name, flow in flows.items():
        start = x0.to(flow.device)
        ratios = {}
        for k in steps:
            samples = flow.sample(x0=start, solver=SolverConfig(method="euler", steps=int(k))).samples
            quality = sample_quality(samples.cpu().numpy(), data, n=n, repeats=repeats, seed=seed, floor=floor)
            ratios[int(k)] = quality.w2 / floor  # floor > 0: checked above
        straight = straightness(flow.velocity, start[:1000], t1=flow.path.t_max).straightness
        times = torch.linspace(0.0, flow.path.t_max, 33)
        traj = flow.sample(x0=start[:trajectory_points], solver=SolverConfig(method="rk4", steps=32), times=times)
        reports.append(FewStepReport(name=name, straightness=straight, w2_ratio=ratios, w2_floor=floor,
                                     trajectory=traj.trajectory.cpu(), times=times))
    return reports

"""Training from the page: the core trainer with bounded threads, live reports, Stop and divergence handled.

No Streamlit import: the page passes a `report` function that draws progress. Streamlit interrupts a running
script (a click on Stop, or any other widget) by raising a control exception at the next element update,
i.e. inside `report`; the callback then catches it, tells the trainer to stop (returns True, so the result
is a consistent model at that step), and hands the exception back so the page can store the model first and
re-raise it afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from flowscope import AffinePath, FlowModel, MLPConfig, StepInfo, TrainConfig, TrainingDiverged, make_path, train
from flowscope.couplings import COUPLINGS
from flowscope.data import dataset_hash
from flowscope.paths import PATH_NAMES as PATHS

__all__ = ["COUPLINGS", "ICFM_SIGMA", "PATHS", "WIDTHS", "Report", "TrainOutcome", "TrainSettings", "run"]
WIDTHS = (32, 64, 128, 256, 512)
#: Noise of the I-CFM interpolant offered on the page (Tong et al. 2024), in normalised units.
ICFM_SIGMA = 0.05

#: Draws progress: (step info, the live EMA model, every loss so far).
Report = Callable[[StepInfo, FlowModel, list[float]], None]


@dataclass(frozen=True)
class TrainSettings:
    """What a user chooses on the Train page."""

    path: str = "ot"
    coupling: str = "independent"
    steps: int = 2000
    width: int = 128
    depth: int = 3
    lr: float = 3e-3
    batch_size: int = 256
    seed: int = 0


@dataclass
class TrainOutcome:
    """A finished, stopped or diverged training: always a usable model and a status message."""

    flow: FlowModel
    losses: list[float]
    seconds: float
    status: str  # "done", "stopped" or "diverged"
    message: str
    interrupt: BaseException | None = field(default=None, repr=False)

    @property
    def steps_done(self) -> int:
        """Optimisation steps actually taken."""
        return len(self.losses)


def run(data: np.ndarray, settings: TrainSettings, *, dataset: str = "upload",
        report: Report | None = None, every: int = 100) -> TrainOutcome:
    """Train on data [n, 2] with one torch thread, calling `report` every `every` steps and at the end.

    A Streamlit control exception raised by `report` stops training cleanly and is returned in
    `outcome.interrupt` (the caller re-raises it after keeping the model); a NaN/inf loss keeps the last
    good weights (status "diverged").
    """
    interrupts: list[BaseException] = []
    losses: list[float] = []

    def callback(info: StepInfo, flow: FlowModel) -> bool:
        losses.append(info.loss)
        if report is None or (info.step % every and info.step != info.steps):
            return False
        try:
            report(info, flow, losses)
        except Exception:
            raise
        except BaseException as err:  # Streamlit's rerun/stop request (or Ctrl-C): stop at this step
            interrupts.append(err)
            return True
        return False

    config = TrainConfig(steps=settings.steps, batch_size=settings.batch_size, lr=settings.lr, seed=settings.seed,
                         device="cpu", threads=1)
    path: str | AffinePath = make_path("icfm", sigma=ICFM_SIGMA) if settings.path == "icfm" else settings.path
    points = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))
    try:
        result = train(points, path=path, model=MLPConfig(dim=points.shape[1], width=settings.width,
                                                           depth=settings.depth),
                       config=config, coupling=settings.coupling, dataset=dataset,
                       dataset_hash=dataset_hash(data), callback=callback)
    except TrainingDiverged as err:
        kept = err.result
        return TrainOutcome(kept.model, kept.losses, kept.seconds, "diverged", str(err),
                            interrupts[0] if interrupts else None)
    if result.stopped_early:
        message = f"stopped at step {len(result.losses):,} of {settings.steps:,}; the model is kept as it was then"
        status = "stopped"
    else:
        message = f"trained {settings.steps:,} steps in {result.seconds:.1f} s"
        status = "done"
    return TrainOutcome(result.model, result.losses, result.seconds, status, message,
                        interrupts[0] if interrupts else None)

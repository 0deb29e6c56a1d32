"""Reflow from the page: the core's `flowscope.training.reflow.reflow` on one thread, with live reports and Stop
handled.

No Streamlit import, as `trainer`: it runs in a background job's worker thread (`jobs`); `report` feeds the
job's progress and `should_stop` is the job's Stop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flowscope import FlowModel, TrainConfig
from flowscope.training.reflow import ReflowProgress, reflow

__all__ = ["PAIRS", "STEPS", "ReflowOutcome", "ReflowSettings", "run"]

#: Pair counts and training steps offered on the page (seconds to a minute on one thread).
PAIRS = (2000, 5000, 10000, 20000, 50000)
STEPS = (200, 500, 1000, 2000, 5000)


@dataclass(frozen=True)
class ReflowSettings:
    """What a user chooses for a reflow on the Train page."""

    pairs: int = 10000
    steps: int = 1000
    seed: int = 0


@dataclass
class ReflowOutcome:
    """A finished or stopped reflow: the student, its losses and a status message."""

    flow: FlowModel
    losses: list[float]
    seconds: float
    status: str  # "done" or "stopped"
    message: str


def run(teacher: FlowModel, settings: ReflowSettings, *, teacher_name: str,
        report: Callable[[ReflowProgress], None] | None = None, every: int = 50,
        should_stop: Callable[[], bool] | None = None) -> ReflowOutcome:
    """Reflow `teacher` once (pairs by dopri5, the student from its weights) on one thread, calling `report`
    after each chunk of pairs and every `every` training steps; `should_stop()` True stops it (the student so
    far is kept)."""

    def callback(progress: ReflowProgress) -> bool:
        if should_stop is not None and should_stop():
            return True
        if report is not None and (progress.stage != "train" or progress.done % every == 0
                                   or progress.done == progress.total):
            report(progress)
        return False

    config = TrainConfig(steps=settings.steps, seed=settings.seed, device="cpu")
    result = reflow(teacher, pairs=settings.pairs, seed=settings.seed, config=config, teacher_name=teacher_name,
                    callback=callback)
    losses = result.rounds[-1].losses if result.rounds else []
    if result.stopped_early:
        status = "stopped"
        message = f"reflow stopped at step {len(losses):,} of {settings.steps:,}; the student is kept"
    else:
        status = "done"
        message = (f"reflowed {teacher_name}: {settings.pairs:,} pairs, {settings.steps:,} steps in "
                   f"{result.seconds:.1f} s")
    return ReflowOutcome(result.model, losses, result.seconds, status, message)

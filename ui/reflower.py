"""Reflow from the page: the core's `flowscope.reflow.reflow` on one thread, with live reports and Stop handled.

No Streamlit import, as `trainer`: the page passes a `report` that draws progress; a Streamlit control
exception raised by it (a click during the run) stops training at that step and is handed back in
`ReflowOutcome.interrupt`, so the page keeps the student first and re-raises it afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from flowscope import FlowModel, TrainConfig
from flowscope.reflow import ReflowProgress, reflow

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
    interrupt: BaseException | None = field(default=None, repr=False)


def run(teacher: FlowModel, settings: ReflowSettings, *, teacher_name: str,
        report: Callable[[ReflowProgress], None] | None = None, every: int = 50) -> ReflowOutcome:
    """Reflow `teacher` once (pairs by dopri5, the student from its weights) on one thread, calling `report`
    after each chunk of pairs and every `every` training steps."""
    interrupts: list[BaseException] = []

    def callback(progress: ReflowProgress) -> bool:
        if report is None or interrupts:
            return bool(interrupts)
        if progress.stage == "train" and progress.done % every and progress.done != progress.total:
            return False
        try:
            report(progress)
        except Exception:
            raise
        except BaseException as err:  # Streamlit's rerun/stop request: stop at this step
            interrupts.append(err)
            return True
        return False

    config = TrainConfig(steps=settings.steps, seed=settings.seed, device="cpu", threads=1)
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
    return ReflowOutcome(result.model, losses, result.seconds, status, message, interrupts[0] if interrupts else None)

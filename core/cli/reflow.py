"""`flowscope reflow`: straighten a trained model (a file, or a zoo model by name) by reflow (`flowscope.reflow`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.datasets import ALL_DATASETS
from ..evaluation.metrics import straightness
from ..evaluation.report import evaluate
from ..flow.model import FlowModel, resolve_device
from ..io import checkpoint
from ..solver.sampling import METHODS, SolverConfig
from ..training.loop import TrainConfig
from ..training.reflow import PAIR_SOLVER, ReflowProgress, reflow
from .numbers import at_least, finite, positive
from .recorded import print_recorded

__all__ = ["DEFAULT_STEPS", "add_reflow", "cmd_reflow", "load_teacher"]

#: Training steps of each round by default: the student starts from the teacher's weights, so fewer than train's.
DEFAULT_STEPS = 10000
DEFAULTS = TrainConfig()


class ReflowError(ValueError):
    """A bad `flowscope reflow` argument; printed as one line naming it (exit status 2)."""


def add_reflow(sub: Any) -> None:
    """Add the `reflow` sub-command to the CLI's sub-parsers."""
    p = sub.add_parser("reflow",
                       help="straighten a trained model by reflow (train again on its own noise->sample pairs)")
    p.add_argument("teacher", help="the teacher: a .safetensors model file, or a zoo model's name (e.g. moons-ot)")
    p.add_argument("--pairs", type=at_least(2), default=50000, help="(x0, teacher(x0)) pairs drawn per round")
    p.add_argument("--steps", type=at_least(1), default=DEFAULT_STEPS, help="training steps per round")
    p.add_argument("--rounds", type=at_least(1), default=1,
                   help="rounds k of k-rectified flow (each student teaches the next)")
    p.add_argument("--solver", choices=METHODS, default=PAIR_SOLVER.method,
                   help="the teacher's ODE solver for the pairs")
    p.add_argument("--solver-steps", type=at_least(1), default=100, help="steps of a fixed-step --solver")
    p.add_argument("--atol", type=positive, default=PAIR_SOLVER.atol, help="dopri5's tolerances for the pairs")
    p.add_argument("--rtol", type=positive, default=PAIR_SOLVER.rtol)
    p.add_argument("--guidance", type=finite, default=0.0, metavar="W",
                   help="a conditional teacher's guidance scale for its pairs (drawn per class; the student keeps "
                        "labels)")
    p.add_argument("--batch-size", type=at_least(2), default=DEFAULTS.batch_size)
    p.add_argument("--lr", type=positive, default=DEFAULTS.lr)
    p.add_argument("--seed", type=at_least(0), default=0, help="seed of the pairs and of training (round r: seed + r)")
    p.add_argument("--fresh", action="store_true", help="start the student from fresh weights, not the teacher's")
    p.add_argument("--device", default=None, help="cuda, mps or cpu (default: best available)")
    p.add_argument("--no-eval", action="store_true", help="skip measuring W2 and straightness after training")
    p.add_argument("--out", type=Path, default=None, help="output .safetensors (default TEACHER-reflow.safetensors)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(handler=cmd_reflow)


def load_teacher(spec: str, device: str | torch.device = "cpu") -> tuple[FlowModel, str]:
    """The teacher named by `spec` and its name: a model file if one exists there (or the name ends in
    .safetensors), else a zoo model of that name; ValueError naming the file or the zoo's models otherwise."""
    file = Path(spec)
    if file.exists() or file.suffix == ".safetensors" or "/" in spec:
        flow = checkpoint.load(file, device=device)
        return flow, str(flow.info.get("zoo_name") or file.stem)
    from ..zoo import registry as zoo

    try:
        return zoo.load(spec, device=str(device)), spec
    except zoo.ZooError as err:
        raise ReflowError(f"{spec}: no such model file, and {err}") from None


def _check(args: argparse.Namespace) -> None:
    """A named error for a bad --out, before any work (bad numbers are argparse's: `numbers`)."""
    if args.out is not None and args.out.suffix != ".safetensors":
        raise ReflowError(f"{args.out}: --out must end in .safetensors")


def _progress(quiet: bool) -> Any:
    """A reflow callback printing each stage's progress to stderr (tqdm), or nothing."""
    if quiet:
        return None
    from tqdm import tqdm

    bars: dict[tuple[int, str], Any] = {}

    def on_progress(p: ReflowProgress) -> None:
        key = (p.round, p.stage)
        if key not in bars:
            for bar in bars.values():
                bar.close()
            what = "pairs" if p.stage == "pairs" else "steps"
            bars[key] = tqdm(total=p.total, unit=what, desc=f"round {p.round}/{p.rounds} {p.stage}", dynamic_ncols=True)
        bar = bars[key]
        if p.stage == "pairs" or p.done % 50 == 0 or p.done == p.total:
            if p.loss is not None:
                bar.set_postfix(loss=f"{p.loss:.4f}", refresh=False)
            bar.update(p.done - bar.n)
        if p.done == p.total:
            bar.close()

    return on_progress


def _dataset_of(flow: FlowModel) -> str | None:
    """The built-in dataset a model was trained on (the data side of 'source->data'), or None."""
    name = str(flow.info.get("dataset", "")).split("->")[-1]
    return name if name in ALL_DATASETS else None


def _straightness(flow: FlowModel, guidance: float, seed: int) -> float:
    """Straightness of a model's own paths from 1000 source points; a conditional model's is the mean over its
    classes of its class fields (guidance w), the fields that reflow straightens."""
    x0 = flow.draw_source(1000, torch.Generator().manual_seed(seed))
    if not flow.conditional:
        return straightness(flow.velocity, x0, t1=flow.path.t_max).straightness
    values = []
    for y in range(len(flow.labels)):
        def velocity(x: torch.Tensor, t: torch.Tensor, y: int = y) -> torch.Tensor:
            return flow.velocity(x, t, label=y, guidance=guidance)

        values.append(straightness(velocity, x0, t1=flow.path.t_max).straightness)
    return float(np.mean(values))


def cmd_reflow(args: argparse.Namespace) -> int:
    """flowscope reflow: draw the teacher's pairs, train the student on them (k rounds), write it atomically."""
    _check(args)
    device = resolve_device(args.device)
    teacher, name = load_teacher(args.teacher, device)
    if args.guidance and not teacher.conditional:
        raise ReflowError(f"{args.teacher}: --guidance needs a conditional teacher")
    solver = SolverConfig(method=args.solver, steps=args.solver_steps, atol=args.atol, rtol=args.rtol)
    config = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=args.device)
    result = reflow(teacher, pairs=args.pairs, rounds=args.rounds, solver=solver, seed=args.seed, config=config,
                    warm_start=not args.fresh, guidance=args.guidance, teacher_name=name,
                    callback=_progress(args.quiet))
    student = result.model
    if not args.no_eval:
        before = _straightness(teacher, args.guidance, args.seed)
        after = _straightness(student, 0.0, args.seed)
        of = " (mean over classes)" if teacher.conditional else ""
        print(f"straightness{of}: teacher {before:.4g}, student {after:.4g} ({before / max(after, 1e-12):.1f}x lower)")
        dataset = _dataset_of(teacher)
        if teacher.conditional:
            print("a conditional student: `flowscope eval STUDENT --dataset NAME` (or --data FILE --labels COLUMN) "
                  "gives its per-class W2 / floor and label accuracy")
        elif dataset is not None:
            from ..zoo.registry import reference

            student.info["metrics"] = evaluate(student, reference(dataset), seed=args.seed, nll_points=0).stored()
    out = args.out or Path(f"{name}-reflow{args.rounds if args.rounds > 1 else ''}.safetensors")
    checkpoint.save(student.to("cpu"), out)
    losses = result.rounds[-1].losses
    print(f"reflowed {name} ({args.rounds} round{'s' if args.rounds > 1 else ''}, {args.pairs} pairs each) in "
          f"{result.seconds:.1f} s, final loss {np.mean(losses[-100:]):.4f}; wrote {out}")
    print_recorded(student.info)
    return 0

"""Issue "conditional flows and classifier-free guidance": per-class quality of the zoo's conditional models.

For each conditional zoo model, recomputed here with `flowscope.evaluation.evaluate_classes` (the same call
the zoo build records): per class, W2 / floor of 1000 samples at w = 0 against that class's held-out points
(fresh labelled draws; iris: its rows), and the label accuracy (share of samples whose 5 nearest training
points mostly carry the requested label) at guidance w = 0, 1, 3.

    python bench/bench_conditional.py [--models 8gaussians moons pinwheel iris] [--out bench/results_conditional.md]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from measure import clock

from flowscope.data.datasets import held_out_labelled, make_labelled
from flowscope.evaluation.report import evaluate_classes
from flowscope.zoo import registry as zoo

GUIDANCE = (0.0, 1.0, 3.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(zoo.CONDITIONAL_MODELS))
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results_conditional.md"))
    args = parser.parse_args()
    lines = ["# Conditional zoo models: per-class quality and guidance", "",
             f"{time.strftime('%Y-%m-%d')}, torch {torch.__version__}, {torch.get_num_threads()} threads. "
             "1000 samples per class and w (dopri5, tolerance 1e-5).", "",
             "| model | class | held-out points | W2 / floor (w = 0) | accuracy w = 0 | w = 1 | w = 3 |",
             "|---|---|---|---|---|---|---|"]
    for dataset in args.models:
        flow = zoo.load(f"{dataset}-cond")
        train = make_labelled(dataset, zoo.N_TRAIN, 0)
        held_out = held_out_labelled(dataset, zoo.N_TRAIN, 0, train)
        seconds, report = clock(lambda f=flow, h=held_out, tr=train: evaluate_classes(
            f, h.x, h.y, tr.x, tr.y, guidance=GUIDANCE))
        for row in report.classes:
            ratio = row.quality.w2_ratio if row.quality is not None else None
            lines.append(f"| {dataset}-cond | {row.name} | {row.held_out:,} | "
                         f"{'n/a' if ratio is None else f'{ratio:.2f}'} | {row.accuracy[0.0]:.3f} | "
                         f"{row.accuracy[1.0]:.3f} | {row.accuracy[3.0]:.3f} |")
        print(f"{dataset}-cond: {seconds:.0f} s", flush=True)
    lines += ["", "Held-out points: fresh labelled draws (seed 10,001) for the toys; iris has no fresh draws, so its "
              "classes are judged against their own rows (a model that stays near them can score below 1)."]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

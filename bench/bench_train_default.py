"""Issue 2's figure: `flowscope train --dataset moons --path ot` with default settings, its wall time on
this machine and the W2 of its samples against the floor, as `flowscope.evaluation.evaluate` reports them
for the zoo (exact EMD, 2000 samples vs 2000 fresh data points, mean over 10 draws; the floor is the mean W2
between two independent 2000-point draws of the data).

    python bench/bench_train_default.py [--seeds 0 1 2] [--out bench/results_train_default.md]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from measure import median, time_cli_training

from flowscope.data.datasets import make_dataset
from flowscope.evaluation.report import evaluate
from flowscope.io import checkpoint


def run(seed: int, folder: Path) -> dict[str, float]:
    """Time the CLI's default training for one seed and measure W2 to fresh data and the floor."""
    out = folder / f"moons-{seed}.safetensors"
    seconds = time_cli_training("moons", out, seed)
    report = evaluate(checkpoint.load(out), lambda n, s: make_dataset("moons", n, s), seed=seed,
                      nll_points=0).recorded()
    return {"seed": seed, "seconds": seconds, "w2": report.w2, "floor": report.w2_floor,
            "ratio": report.w2_ratio, "nfe": report.nfe}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results_train_default.md"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run(seed, Path(tmp)) for seed in args.seeds]
    lines = ["# `flowscope train --dataset moons --path ot` (defaults)", "",
             f"{time.strftime('%Y-%m-%d')}, torch {torch.__version__}, {torch.get_num_threads()} threads. "
             "Target: <= 60 s, W2 <= 1.5 x floor.", "",
             "| seed | wall time (s, incl. start-up) | W2 | floor | W2 / floor | NFE (dopri5 1e-5) |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['seed']} | {r['seconds']:.1f} | {r['w2']:.4f} | {r['floor']:.4f} | {r['ratio']:.2f} | "
              f"{r['nfe']} |" for r in rows]
    lines += ["", f"Median ratio {median([r['ratio'] for r in rows]):.2f}, "
              f"worst {max(r['ratio'] for r in rows):.2f}; slowest run {max(r['seconds'] for r in rows):.1f} s."]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

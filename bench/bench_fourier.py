"""Why the velocity MLP sees random Fourier features of x: zoo models trained with and without them.

Each model is built exactly as `flowscope zoo build` builds it (same data, seed, steps and metrics; only
`fourier_features` differs), and for rings the share of samples further than 0.2 (2.5 noise std) from every
ring is counted: the data has 1.5%, a blurred disk about 45%.

    python bench/bench_fourier.py [--models rings-ot moons-ot ...] [--jobs 2] [--out bench/results_fourier.md]
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from flowscope.data.datasets import distance_to_rings
from flowscope.io import checkpoint
from flowscope.nets.models import MLPConfig
from flowscope.zoo import registry as zoo

DEFAULT_MODELS = ["rings-ot", "rings-vp", "rings-ve", "checkerboard-ot", "moons-ot", "pinwheel-ot"]


def off_ring_share(folder: Path, name: str) -> float:
    """Share of 2000 samples of a rings model lying further than 0.2 from every ring."""
    flow = checkpoint.load(folder / f"{name}.safetensors")
    samples = flow.sample(2000, generator=torch.Generator().manual_seed(0)).samples.numpy()
    return float(np.mean(distance_to_rings(samples) > 0.2))


def build(name: str, fourier_features: int) -> dict[str, float | str | int]:
    """Build one zoo model with the given number of Fourier features, on one thread; its metrics."""
    torch.set_num_threads(1)
    spec = replace(next(s for s in zoo.specs() if s.name == name), fourier_features=fourier_features)
    with tempfile.TemporaryDirectory() as tmp:
        entry = zoo.build_one(spec, Path(tmp))
        row: dict[str, float | str | int] = {"name": name, "fourier_features": fourier_features,
                                             "steps": entry.steps, "seconds": entry.train_seconds,
                                             **entry.metrics}
        if spec.dataset == "rings":
            row["off_ring"] = off_ring_share(Path(tmp), name)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results_fourier.md"))
    args = parser.parse_args()
    runs = [(name, count) for name in args.models for count in (0, MLPConfig.fourier_features)]
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        rows = list(pool.map(build, *zip(*runs, strict=True)))
    lines = ["# Zoo models with and without random Fourier features of x", "",
             f"{time.strftime('%Y-%m-%d')}, torch {torch.__version__}, one thread per model, {args.jobs} at once. "
             "Built as `flowscope zoo build` builds them; only `MLPConfig.fourier_features` differs.", "",
             "| model | Fourier features | steps | W2 / floor | held-out NLL (nats) | dopri5 NFE | off-ring share | "
             "train s |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        off = f"{r['off_ring']:.1%}" if "off_ring" in r else ""
        lines.append(f"| {r['name']} | {r['fourier_features']} | {r['steps']} | {r['w2_ratio']:.2f} | {r['nll']:.3f} | "
                     f"{r['nfe_dopri5']} | {off} | {r['seconds']:.0f} |")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Issue 15's figure: training steps per second of the default 2-D MLP on 1 and 2 processes of this CPU.

Every configuration trains the default model (MLPConfig(dim=2)) on moons with the default batch per process,
measured by the trainer itself (TrainResult.seconds: start-up, data and evaluation excluded); the rounds
alternate the configurations so that the load of this shared machine hits all of them alike. The 2-process
runs use torchrun (`python -m torch.distributed.run --standalone --nproc_per_node 2`, gloo, 1 thread per rank
as torchrun sets it); each is compared with one process at the same global batch. The table also says whether
two 2-process runs with the same seed gave bit-identical weights, and the W2 / floor of the 2-process model
against one process at the doubled batch.

    python bench/bench_distributed.py [--steps 400] [--rounds 3] [--quality-steps 1500] [--quality-seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from measure import machine_info, median

from flowscope import FlowModel, MLPConfig, TrainConfig, train
from flowscope.data.datasets import make_dataset
from flowscope.evaluation.report import evaluate
from flowscope.io import checkpoint

BATCH = TrainConfig().batch_size


def _train(steps: int, batch: int, threads: int, seed: int = 0) -> tuple[float, FlowModel]:
    """Steps per second of one training run in this process (rank r of a torchrun launch, or alone) on `threads`
    torch threads (this benchmark's own choice: a training never sets them)."""
    torch.set_num_threads(threads)
    data = torch.from_numpy(make_dataset("moons", 20000, seed=0))
    result = train(data, model=MLPConfig(dim=2), dataset="moons",
                   config=TrainConfig(steps=steps, batch_size=batch, seed=seed, device="cpu"))
    return steps / result.seconds, result.model


def _worker(steps: int, out: Path, seed: int) -> None:
    """One rank: train, rank 0 writes the model and the rate."""
    rate, model = _train(steps, BATCH, 1, seed)
    if os.environ.get("RANK") == "0":
        checkpoint.save(model, out)
        out.with_suffix(".json").write_text(json.dumps({"steps_per_s": rate}))


def _two_processes(steps: int, out: Path, seed: int = 0) -> float:
    """Steps per second of a 2-rank torchrun launch (rank 0's count); rank 0's model is written to `out`."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               __file__, "--worker", "--steps", str(steps), "--model-out", str(out), "--seed", str(seed)]
    done = subprocess.run(command, timeout=1800, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"torchrun failed ({done.returncode}):\n{done.stderr[-4000:]}")
    rate: float = json.loads(out.with_suffix(".json").read_text())["steps_per_s"]
    return rate


def _quality(flow: FlowModel, seed: int) -> float:
    """W2 / floor against fresh moons (evaluate: 2000 samples x 10 draws, dopri5)."""
    report = evaluate(flow, lambda n, s: make_dataset("moons", n, s), seed=seed, nll_points=0, trajectory_points=0)
    assert report.w2_ratio is not None  # fresh draws always give a floor
    return report.w2_ratio


def _same_weights(a: FlowModel, b: FlowModel) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.net.state_dict().values(), b.net.state_dict().values(),
                                                 strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results_distributed.md"))
    parser.add_argument("--quality-steps", type=int, default=1500)
    parser.add_argument("--quality-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.steps, args.model_out, args.seed)
        return
    header = machine_info("cpu")
    rates: dict[str, list[float]] = {}
    models: list[FlowModel] = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            out = Path(tmp) / f"two-{r}.safetensors"
            runs = {
                f"1 process, 1 thread, batch {BATCH}": lambda: _train(args.steps, BATCH, 1)[0],
                f"1 process, 1 thread, batch {2 * BATCH}": lambda: _train(args.steps, 2 * BATCH, 1)[0],
                f"1 process, 2 threads, batch {2 * BATCH}": lambda: _train(args.steps, 2 * BATCH, 2)[0],
                f"2 processes x 1 thread, batch {BATCH} each (global {2 * BATCH})":
                    lambda: _two_processes(args.steps, out),  # noqa: B023 (called at once)
            }
            names = list(runs)
            for name in names[r % len(names):] + names[:r % len(names)]:
                rates.setdefault(name, []).append(runs[name]())
            models.append(checkpoint.load(out))
        quality_rows = []
        for seed in args.quality_seeds:
            out = Path(tmp) / f"quality-{seed}.safetensors"
            _two_processes(args.quality_steps, out, seed)
            quality_rows.append((seed, _quality(checkpoint.load(out), seed),
                                 _quality(_train(args.quality_steps, 2 * BATCH, 1, seed)[1], seed)))
    reproducible = all(_same_weights(models[0], m) for m in models[1:])
    base = median(rates[names[0]])
    lines = ["# Distributed training on this CPU: steps per second of the default 2-D MLP", "",
             *(f"- {k}: {v}" for k, v in header.items()),
             f"- {args.steps} steps per run, {args.rounds} alternating rounds, median; trainer time only "
             "(no start-up). The machine is shared by other work: compare the ratios, not the absolute rates.",
             "", "| configuration | steps/s (median) | samples/s | vs 1 process 1 thread |", "|---|---|---|---|"]
    for name in names:
        rate = median(rates[name])
        samples = rate * (2 * BATCH if "global" in name or f"batch {2 * BATCH}" in name else BATCH)
        lines.append(f"| {name} | {rate:.1f} | {samples:,.0f} | {rate / base:.2f} |")
    lines += ["", f"Two 2-process runs with seed 0 gave bit-identical weights: {reproducible} "
              f"({args.rounds} runs with the same seed and world size compared).",
              "", f"Quality after {args.quality_steps} steps, W2 / floor against fresh data (2000 samples x 10 draws):",
              "", f"| seed | 2 processes x {BATCH} | 1 process x {2 * BATCH} |", "|---|---|---|",
              *(f"| {seed} | {two:.2f} | {one:.2f} |" for seed, two, one in quality_rows),
              f"| median | {median([r[1] for r in quality_rows]):.2f} | {median([r[2] for r in quality_rows]):.2f} |",
              "",
              "The image U-Net does not exist in flowscope yet (no image model), so it has no figure here. No GPU "
              "was lent to this task: the CUDA loop (loss read back every 64 steps, randomness on the device) was "
              "not measured before/after."]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(json.dumps({k: [round(x, 2) for x in v] for k, v in rates.items()}), file=sys.stderr)


if __name__ == "__main__":
    main()

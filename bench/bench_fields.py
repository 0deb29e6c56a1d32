"""Benchmark of the exact marginal field: latency on a 40 x 40 grid, and memory as the dataset grows.

Usage: python bench/bench_fields.py [--device cpu|cuda] [--out bench/results_fields.md]

Latency: median of --repeats runs after warm-up, 10,000 data points, one t, float32 (target <= 50 ms on a
2-core CPU). Memory: one fresh subprocess per N (1e4, 1e5, 1e6), peak RSS growth during the call
(ru_maxrss; tracemalloc does not see torch's allocations) or peak CUDA memory on a GPU. Each run rewrites
its device's section of the results file.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from measure import clock, cpu_model, median, repeat, sync

from flowscope.fields.exact import marginal_field
from flowscope.maths.grid import grid_2d
from flowscope.maths.paths import OTPath

RESULTS = Path(__file__).with_name("results_fields.md")


def _problem(n_data: int, grid: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Standard-normal data (seed 0) and a grid over [-3, 3]^2, float32, on the device."""
    data = torch.randn(n_data, 2, generator=torch.Generator().manual_seed(0)).to(device)
    return data, grid_2d((-3.0, 3.0), (-3.0, 3.0), grid, device=device).points


def _median_ms(fn: Callable[[], object], device: str, repeats: int, warmup: int = 3) -> float:
    """Median wall time of fn in milliseconds after warm-up."""
    return 1e3 * median(repeat(lambda _: fn(), repeats, warmup=warmup, device=device))


def _dense_reference(data: torch.Tensor, grid: torch.Tensor, t: float) -> torch.Tensor:
    """The textbook computation (full [M, N] cdist + softmax) for comparison."""
    path = OTPath()
    tt = torch.tensor(t)
    a, b = float(path.alpha(tt)), float(path.sigma(tt))
    weights = torch.softmax(-torch.cdist(grid, a * data).pow(2) / (2 * b**2), dim=1)
    mean = weights @ data
    return (float(path.d_sigma(tt)) / b) * (grid - a * mean) + mean


def latency(device: str, n_data: int, grid: int, repeats: int) -> dict[str, float]:
    """Median latency of the streaming field and of the dense reference on one problem."""
    data, points = _problem(n_data, grid, device)
    path = OTPath()
    return {
        "streaming_ms": _median_ms(lambda: marginal_field(path, data, points, 0.5), device, repeats),
        "dense_ms": _median_ms(lambda: _dense_reference(data, points, 0.5), device, repeats),
    }


def child(n_data: int, grid: int, device: str, chunk_size: int | None) -> None:
    """Run once in a fresh process and print time and peak memory growth as JSON."""
    data, points = _problem(n_data, grid, device)
    path = OTPath()
    marginal_field(path, data[:1000], points, 0.5)  # load kernels before the baseline
    sync(device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    seconds, _ = clock(lambda: marginal_field(path, data, points, 0.5, chunk_size=chunk_size), device)
    peak = (
        torch.cuda.max_memory_allocated()
        if device == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )
    print(json.dumps({"n": n_data, "seconds": seconds, "growth_mb": (peak - base) / 2**20, "peak_mb": peak / 2**20}))


def memory(device: str, sizes: list[int], grid: int, chunk_size: int | None) -> list[dict[str, float]]:
    """One subprocess per dataset size, so each peak is measured from a clean process."""
    rows = []
    for n in sizes:
        cmd = [sys.executable, __file__, "--child", str(n), "--device", device, "--grid", str(grid)]
        cmd += ["--threads", str(torch.get_num_threads())]
        if chunk_size is not None:
            cmd += ["--chunk-size", str(chunk_size)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return rows


def machine(device: str) -> str:
    """One line on what ran the benchmark."""
    if device == "cuda":
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__})"
    cpu = cpu_model()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    threads = torch.get_num_threads()
    return f"{cpu}, {os.cpu_count()} cores, {threads} torch threads, load average {load} (torch {torch.__version__})"


def report(device: str, args: argparse.Namespace, lat: dict[str, float], mem: list[dict[str, float]]) -> str:
    """Markdown section for one device."""
    m = args.grid**2
    lines = [
        f"## {_title(device)}",
        "",
        f"Machine: {machine(device)}.",
        "",
        f"Latency, {args.n_data:,} data points, {args.grid} x {args.grid} grid, float32, median of {args.repeats}:",
        "",
        "| computation | ms |",
        "|---|---|",
        f"| marginal_field (streaming, auto chunk) | {lat['streaming_ms']:.1f} |",
        f"| dense reference (cdist + softmax, [M, N] in memory) | {lat['dense_ms']:.1f} |",
        "",
        f"Memory, {args.grid} x {args.grid} grid, chunk_size = {args.chunk_size or 'auto'} (fresh process per N):",
        "",
        "| N | seconds | peak growth during the call (MiB) | peak total (MiB) | dense [M, N] float32 logits (MiB) |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {row['n']:,} | {row['seconds']:.3f} | {row['growth_mb']:.1f} | {row['peak_mb']:.0f} "
        f"| {row['n'] * m * 4 / 2**20:,.0f} |"
        for row in mem
    ]
    return "\n".join(lines) + "\n"


def _title(device: str) -> str:
    """Section title: the device, and the thread count on a CPU."""
    return f"cpu, {torch.get_num_threads()} threads" if device == "cpu" else device


def write_section(path: Path, device: str, section: str) -> None:
    """Replace this device's (and thread count's) section of the results file, keeping the others."""
    header = "# Exact marginal field benchmark (bench/bench_fields.py)\n\n"
    text = path.read_text() if path.exists() else header
    parts = text.split("\n## ")
    kept = [p for p in parts[1:] if not p.startswith(f"{_title(device)}\n")]
    body = [parts[0].rstrip("\n") + "\n"] + ["## " + p.rstrip("\n") + "\n" for p in kept] + [section]
    path.write_text("\n".join(body))


def main() -> None:
    """Run the benchmark, print the tables and write the results file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--n-data", type=int, default=10_000)
    parser.add_argument("--grid", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.child is not None:
        child(args.child, args.grid, args.device, args.chunk_size)
        return
    section = report(
        args.device,
        args,
        latency(args.device, args.n_data, args.grid, args.repeats),
        memory(args.device, args.sizes, args.grid, args.chunk_size),
    )
    print(section)
    write_section(args.out, args.device, section)


if __name__ == "__main__":
    main()

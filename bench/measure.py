"""Timing helpers for the side-by-side benchmark: clocks that respect devices, alternation, peaks, FLOPs.

Everything here is framework-neutral: it times callables and reports medians, never means, because the
machines these numbers come from are shared and noisy (one slow round must not move a headline).
"""

from __future__ import annotations

import datetime as _dt
import gc
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import torch


def sync(device: torch.device | str) -> None:
    """Wait for queued kernels on `device` (no-op on CPU) so a clock reading means work done."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


class Stopwatch:
    """A clock started now, after the device's queued work: `elapsed()` reads it without waiting (a budget
    check inside a loop must not stall the launch queue), `stop()` waits for the device first."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = device
        sync(device)
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds since the start, without waiting for the device."""
        return time.perf_counter() - self.start

    def stop(self) -> float:
        """Seconds since the start once the device's queued work is done."""
        sync(self.device)
        return self.elapsed()


def clock(fn: Callable[[], Any], device: torch.device | str = "cpu") -> tuple[float, Any]:
    """(seconds, result) of one call of `fn`, synchronising the device before and after."""
    watch = Stopwatch(device)
    out = fn()
    return watch.stop(), out


def repeat(
    fn: Callable[[int], Any],
    repeats: int,
    *,
    warmup: int = 0,
    device: torch.device | str = "cpu",
    setup: Callable[[int], Any] | None = None,
) -> list[float]:
    """Seconds of `repeats` clocked calls fn(i) after `warmup` discarded ones (as `timeit.repeat`).

    i counts the calls from 0, warm-ups included; `setup(i)`, if given, runs untimed before call i (e.g. to
    move a slider to the value that call i renders).
    """
    times = []
    for i in range(warmup + repeats):
        if setup is not None:
            setup(i)
        seconds, _ = clock(lambda i=i: fn(i), device)
        if i >= warmup:
            times.append(seconds)
    return times


def median(values: Sequence[float]) -> float:
    """Median of a non-empty sequence (NaN when empty)."""
    return statistics.median(values) if values else float("nan")


@dataclass
class Alternated:
    """Per-contestant samples of one measurement taken in alternating rounds."""

    samples: dict[str, list[float]] = field(default_factory=dict)
    extras: dict[str, list[Any]] = field(default_factory=dict)

    def med(self, name: str) -> float:
        """Median of `name`'s samples."""
        return median(self.samples.get(name, []))

    def ratio(self, name: str, reference: str) -> float:
        """Median over rounds of the paired ratio name / reference (robust to slow drifts of the machine)."""
        a, b = self.samples.get(name, []), self.samples.get(reference, [])
        pairs = [x / y for x, y in zip(a, b, strict=False) if y > 0]
        return median(pairs)


def alternate(
    contestants: dict[str, Callable[[], tuple[float, Any]]], rounds: int, *, rotate: bool = True
) -> Alternated:
    """Run each contestant once per round, in an order rotated every round, collecting what they return.

    Each callable returns (value, extra): the value is what gets a median (seconds, ms per step, ...),
    the extra is kept as is (e.g. the trained model of the last round). The garbage collector is run
    before and paused during each call, as `timeit` does.
    """
    names = list(contestants)
    result = Alternated({n: [] for n in names}, {n: [] for n in names})
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)] if rotate else names
        for name in order:
            gc.collect()  # as timeit does: no collector pause inside a timed run, for any contestant
            gc.disable()
            try:
                value, extra = contestants[name]()
            finally:
                gc.enable()
            result.samples[name].append(float(value))
            result.extras[name].append(extra)
    return result


def matmul_peak_gflops(
    device: torch.device | str,
    n: int = 1024,
    m: int | None = None,
    k: int | None = None,
    *,
    min_seconds: float = 0.5,
    repeats: int = 5,
    dtype: torch.dtype = torch.float32,
) -> float:
    """Best-of-`repeats` GFLOP/s of an (n x k) @ (k x m) float32 matmul on `device`: the machine's own peak.

    Square 1024 (or larger on a GPU) is the usual "what can this hardware do" figure; passing the shapes of
    a training step's layers gives the peak achievable at those shapes.
    """
    m = n if m is None else m
    k = n if k is None else k
    a = torch.randn(n, k, device=device, dtype=dtype)
    b = torch.randn(k, m, device=device, dtype=dtype)
    out = torch.empty(n, m, device=device, dtype=dtype)
    flops = 2.0 * n * m * k
    for _ in range(3):
        torch.mm(a, b, out=out)
    sync(device)
    # calibrate the inner loop to about min_seconds / repeats
    elapsed, _ = clock(lambda: torch.mm(a, b, out=out), device)
    inner = max(1, int((min_seconds / repeats) / max(elapsed, 1e-7)))
    best = 0.0
    for _ in range(repeats):

        def run() -> None:
            for _ in range(inner):
                torch.mm(a, b, out=out)

        seconds, _ = clock(run, device)
        best = max(best, flops * inner / seconds / 1e9)
    return best


def count_flops(fn: Callable[[], Any]) -> int:
    """Floating point operations of one call of `fn` as counted by torch's FlopCounterMode (matmuls etc.)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def package_version(name: str) -> str:
    """Installed version of a distribution, or 'not installed'."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    """The CPU's marketing name (Linux /proc/cpuinfo), or platform.processor()."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_info(device: torch.device | str) -> dict[str, str]:
    """Machine, software versions and date: the header of every results table."""
    info = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{cpu_model()} ({os.cpu_count()} logical cores, torch threads {torch.get_num_threads()})",
        "load average (1 min) at start": f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "n/a",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchdiffeq": package_version("torchdiffeq"),
        "POT": package_version("pot"),
        "scipy": package_version("scipy"),
        "flowscope": package_version("flowscope"),
        "torchcfm": package_version("torchcfm"),
        "flow_matching": package_version("flow-matching"),
    }
    if torch.device(device).type == "cuda":
        info["gpu"] = f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda})"
    return info


def time_cli_training(dataset: str, out: os.PathLike[str] | str, seed: int = 0, *extra: str) -> float:
    """Wall seconds of `flowscope train --dataset NAME --path ot` with its defaults (plus `extra` flags), as a
    user runs it: a fresh process, start-up included, evaluation skipped (the benchmark evaluates itself)."""
    import subprocess

    command = ["flowscope", "train", "--dataset", dataset, "--path", "ot", "--seed", str(seed), "--quiet",
               "--no-eval", "--out", str(out), *extra]
    seconds, _ = clock(lambda: subprocess.run(command, check=True))
    return seconds

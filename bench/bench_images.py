"""Issue "image flows": the conditional digits model as a user trains it, the paper's OT-vs-diffusion claim at
our scale, and the speed of image training and sampling (CPU, and CUDA where there is one).

Sections (each writes its part of bench/results_images.md as it ends):

- quality: `flowscope train --dataset digits --conditional` with its defaults, timed as a user runs it (a fresh
  process); then its guided samples judged by two classifiers that never saw a sample and were not used in
  training: flowscope's own CNN (the zoo's digits classifier, trained on the training split) and
  scikit-learn's SVC (RBF kernel, trained here on the same split): accuracy of class samples at w = 0, 1, 3;
  the Frechet distance (CNN features) against held-out real digits' own; nearest-neighbour distances to the
  training images against held-out digits'; bits per dimension of the held-out digits.
- paths: the OT path against VP diffusion on the unconditional digits at equal training cost (the same
  steps, batch and network): dopri5's NFE at atol = rtol = 1e-5 (the paper's Table 1: 142 vs 183 on
  CIFAR-10), the Frechet distance ratio and bits per dimension.
- speed: steps per second of digits training at batch 256 and the seconds to sample 10,000 digits (dopri5,
  1e-5), on the CPU and, when CUDA is available, on the GPU (bf16 autocast, as `flowscope train` uses there).

    python bench/bench_images.py [--sections quality paths speed] [--out bench/results_images.md]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from measure import clock, machine_info, median, time_cli_training

from flowscope import TrainConfig, train
from flowscope.data.images import digits, split
from flowscope.evaluation.image_quality import DEQUANTISATION, IMAGE_SOLVER, evaluate_images, image_samples
from flowscope.io import checkpoint
from flowscope.nets.unet import UNetConfig
from flowscope.zoo import registry as zoo

GUIDANCE = (0.0, 1.0, 3.0)
BUDGET_S = 15 * 60
#: The sections, in the order of the results file, and the start of each one's heading there.
SECTIONS = ("quality", "paths", "speed")
HEADINGS = {"quality": "## Conditional digits", "paths": "## OT path against VP", "speed": "## Speed"}


def _kept_sections(results: Path) -> dict[str, list[str]]:
    """The sections of an earlier results file, by name (so that rerunning one section keeps the others)."""
    kept: dict[str, list[str]] = {}
    name = None
    for line in results.read_text().splitlines() if results.is_file() else []:
        starts = [key for key, heading in HEADINGS.items() if line.startswith(heading)]
        if starts:
            name = starts[0]
            kept[name] = []
        if name is not None:
            kept[name].append(line)
    return {key: lines[:-1] if lines and not lines[-1] else lines for key, lines in kept.items()}


def _svc_accuracy(svc: object, flow: checkpoint.FlowModel, per_class: int, w: float) -> tuple[float, float]:
    """(mean, worst class) accuracy of scikit-learn's SVC on `per_class` guided samples of every class."""
    hits = []
    for k in range(len(flow.labels)):
        samples, _ = image_samples(flow, per_class, label=k, guidance=w, seed=100 + k)
        hits.append(float((svc.predict(samples.reshape(per_class, -1)) == k).mean()))  # type: ignore[attr-defined]
    return float(np.mean(hits)), float(min(hits))


def quality(folder: Path) -> list[str]:
    """Train the conditional digits model with the CLI defaults and judge it (see the module docstring)."""
    from sklearn.svm import SVC

    trained, held_out = split(digits())
    model = folder / "digits-cond.safetensors"
    seconds = time_cli_training("digits", model, 0, "--conditional")
    flow = checkpoint.load(model)
    report = evaluate_images(flow, trained, held_out, zoo.classifier("digits"), guidance=GUIDANCE)
    svc = SVC().fit(trained.flat, trained.labels)
    svc_held_out = float(svc.score(held_out.flat, held_out.labels))
    lines = ["## Conditional digits model, as `flowscope train --dataset digits --conditional` trains it", "",
             f"Training: **{seconds:.0f} s** wall clock ({seconds / BUDGET_S:.2f} of the 15-minute budget), "
             f"{flow.info['train']['steps']:,} steps of batch {flow.info['train']['batch_size']}, "
             f"{sum(p.numel() for p in flow.net.parameters()):,} parameters; {len(trained):,} training digits, "
             f"{len(held_out):,} held out (20% of each class).", "",
             f"Judges: flowscope's CNN (held-out accuracy {report.classifier_accuracy_held_out:.3f}) and "
             f"scikit-learn's SVC (held-out accuracy {svc_held_out:.3f}); {report.n} samples per guidance scale "
             "in the classes' training proportions (CNN), 50 per class (SVC); dopri5 at 1e-5.", "",
             "| guidance w | CNN accuracy | worst class | SVC accuracy | worst class | FD | FD / held-out FD | "
             "NN distance / held-out's | NFE |",
             "|---|---|---|---|---|---|---|---|---|"]
    for w, s in zip(GUIDANCE, report.samples, strict=True):  # one sample set per guidance scale, in order
        svc_mean, svc_worst = _svc_accuracy(svc, flow, 50, w)
        lines.append(f"| {w:g} | {s.accuracy:.3f} | {s.min_class_accuracy:.3f} | "
                     f"{svc_mean:.3f} | {svc_worst:.3f} | {s.fd:.2f} | "
                     f"{s.fd_ratio:.2f} | {s.nn_ratio:.2f} | {s.nfe} |")
    lines += ["", f"Held-out real digits: FD to the training digits {report.fd_floor:.2f} (the floor); median "
              f"distance to the nearest training digit {report.nn_held_out_median:.2f} (pixel units 0..16). "
              f"Bits per dimension of 200 held-out digits: {report.bits_per_dim:.3f} "
              f"({DEQUANTISATION}; 17 levels, bins of width 1)."]
    return lines


def paths(folder: Path) -> list[str]:
    """OT against VP diffusion on the unconditional digits at the same training cost."""
    trained, held_out = split(digits())
    judge = zoo.classifier("digits")
    lines = ["## OT path against VP diffusion on the digits (the paper's Table 1 claim, at our scale)", "",
             "Both with `flowscope train --dataset digits --path P` and its defaults: the same U-Net, steps and "
             "batch (equal training cost). NFE: dopri5 at atol = rtol = 1e-5, one solve of all samples.", "",
             "| path | training (s) | NFE (dopri5 1e-5) | FD / held-out FD | NN distance / held-out's | bits/dim |",
             "|---|---|---|---|---|---|"]
    for path in ("ot", "vp"):
        model = folder / f"digits-{path}.safetensors"
        seconds = time_cli_training("digits", model, 0, "--path", path)
        flow = checkpoint.load(model)
        report = evaluate_images(flow, trained, held_out, judge, guidance=(0.0,))
        (s,) = report.samples
        lines.append(f"| {path} | {seconds:.0f} | {s.nfe} | {s.fd_ratio:.2f} | "
                     f"{s.nn_ratio:.2f} | {report.bits_per_dim:.3f} |")
    return lines


def speed(device: torch.device, samples: int = 10_000, compile_step: bool = False) -> list[str]:
    """Steps per second at batch 256 (median of 3 runs) and the time to sample `samples` digits on `device`."""
    trained, _ = split(digits())
    images = torch.from_numpy(trained.images)
    rates = []
    for _ in range(3):
        steps = 100 if device.type == "cpu" else 500
        seconds, result = clock(lambda s=steps: train(images, model=UNetConfig(1, 8, 8), config=TrainConfig(
            steps=s, batch_size=256, lr=1e-3, device=str(device), compile_step=compile_step)), device)
        rates.append(steps / result.seconds)
    flow = result.model
    sample_seconds, (_, nfe) = clock(lambda: image_samples(flow, samples, solver=IMAGE_SOLVER), device)
    precision = "bf16 autocast" if TrainConfig().autocast(device, flow.net) else "float32"
    compiled = ", torch.compile" if compile_step else ""
    return [f"| {device.type} ({precision}{compiled}) | {median(rates):.1f} | {samples:,} | {sample_seconds:.1f} | "
            f"{nfe} |"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results_images.md"))
    parser.add_argument("--devices", nargs="+", choices=("cpu", "cuda"), default=None,
                        help="speed: the devices to time (default: cpu, and cuda where there is one)")
    parser.add_argument("--cpu-samples", type=int, default=10_000,
                        help="speed: samples drawn on the CPU (fewer keeps a GPU machine's lease short)")
    parser.add_argument("--compile", action="store_true", help="speed: also time CUDA training with torch.compile")
    args = parser.parse_args()
    info = machine_info("cuda" if torch.cuda.is_available() else "cpu")
    parts = _kept_sections(args.out)  # a section not rerun keeps its last results (and its machine line)
    stamp = "; ".join(f"{k}: {v}" for k, v in info.items())

    def write() -> None:
        body = [line for name in SECTIONS if name in parts for line in [*parts[name], ""]]
        args.out.write_text("\n".join(["# Image flows: digits (bench/bench_images.py)", "", *body]))

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if "quality" in args.sections:
            parts["quality"] = [*quality(folder), "", f"Measured {stamp}."]
            write()
        if "paths" in args.sections:
            parts["paths"] = [*paths(folder), "", f"Measured {stamp}."]
            write()
    if "speed" in args.sections:
        devices = args.devices or ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
        rows = speed(torch.device("cpu"), args.cpu_samples) if "cpu" in devices else []
        if "cuda" in devices:
            rows += speed(torch.device("cuda"))
            rows += speed(torch.device("cuda"), compile_step=True) if args.compile else []
        parts["speed"] = ["## Speed: digits training at batch 256, sampling 10,000 digits", "",
                          "| device | training steps / s (batch 256) | samples | sampling (s, dopri5 1e-5) | NFE |",
                          "|---|---|---|---|---|", *rows, "",
                          f"Load average (1 min) at the end: {os.getloadavg()[0]:.2f}." +
                          ("" if "cuda" in devices else " No GPU timed: the CUDA row is missing."),
                          "", f"Measured {stamp}."]
        write()
    print(args.out.read_text())


if __name__ == "__main__":
    main()

"""Helpers of the explorer's tests: the app's path, a tiny pretrained zoo (seconds to build), CSV bytes.

The tests never depend on the real pretrained/ folder (it may not be built): they point the explorer at
their own zoo through FLOWSCOPE_ZOO_DIR.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from streamlit.testing.v1 import AppTest

from flowscope import MLPConfig, TrainConfig, make_path, train
from flowscope.data.datasets import dataset_hash, make_dataset
from flowscope.io import checkpoint
from flowscope.zoo.registry import MANIFEST, ZooEntry, entries
from flowscope_ui import jobs

APP = Path(__file__).resolve().parents[2] / "ui" / "app.py"

#: (name, dataset, path name, coupling, source dataset): a Gaussian-source pair on the same data (for
#: Compare) and a non-Gaussian-source model (the pairs version of the exact fields).
TINY_ZOO = [
    ("moons-ot", "moons", "ot", "independent", None),
    ("moons-vp", "moons", "vp", "independent", None),
    ("8gaussians-to-moons-ot", "moons", "icfm", "ot", "8gaussians"),
]


def build_tiny_zoo(folder: Path, steps: int = 400) -> list[ZooEntry]:
    """Train small models (a few seconds in all) and write them with a manifest, as `flowscope zoo build` does."""
    entries = []
    for name, dataset, path_name, coupling, source_name in TINY_ZOO:
        data = make_dataset(dataset, 4000, seed=0)
        source = None if source_name is None else torch.from_numpy(make_dataset(source_name, 4000, seed=1))
        path = make_path("icfm", sigma=0.05) if path_name == "icfm" else path_name
        result = train(torch.from_numpy(data), path=path, model=MLPConfig(dim=2, width=48, depth=2),
                       config=TrainConfig(steps=steps, batch_size=256, device="cpu"), source=source,
                       coupling=coupling, dataset=dataset, dataset_hash=dataset_hash(data))
        flow = result.model
        if flow.source is not None:
            flow.source = flow.source[:1000].clone()
        metrics = {"w2": 0.5, "w2_floor": 0.2, "w2_ratio": 2.5, "nfe_dopri5": 100, "straightness": 0.5}
        flow.info["metrics"] = metrics
        checkpoint.save(flow, folder / f"{name}.safetensors")
        entries.append(ZooEntry(name=name, file=f"{name}.safetensors", dataset=dataset, path=path_name,
                                coupling=coupling, source=source_name, params=flow.path.config(), steps=steps,
                                train_seconds=round(result.seconds, 1), metrics=metrics))
    write_manifest(folder, entries)
    return entries


def write_manifest(folder: Path, entries: list[ZooEntry]) -> None:
    """manifest.json in the zoo's format."""
    (folder / MANIFEST).write_text(json.dumps({"format_version": 1, "models": [asdict(e) for e in entries]}))


def csv_bytes(points: np.ndarray, header: str = "a,b") -> bytes:
    """Points as CSV bytes with a header row."""
    rows = "\n".join(f"{x:.5f},{y:.5f}" for x, y in points)
    return f"{header}\n{rows}\n".encode()


def finish_jobs(at: AppTest, timeout: float = 120.0) -> AppTest:
    """Wait for the server's training jobs (background threads) to end, then run the page once more: the
    session collects its model and selects it, as its sidebar does in a browser each second."""
    deadline = time.monotonic() + timeout
    while jobs.manager().counts() != (0, 0):
        assert time.monotonic() < deadline, "the training job did not finish"
        time.sleep(0.1)
    return at.run()


#: The image models of the tests' image zoo: (name, conditional). Tiny U-Nets, trained a few dozen steps: enough
#: for every view to draw, not to make good digits.
TINY_IMAGE_ZOO = [("digits-ot", False), ("digits-cond", True)]
#: A small U-Net (seconds to train here).
TINY_UNET = {"base": 8, "attention": False}


def build_image_zoo(folder: Path, tiny_zoo: Path, steps: int = 30) -> list[ZooEntry]:
    """The tiny zoo's models plus tiny digits-ot and digits-cond (trained on the digits' training split, with their
    training images in the file, as `flowscope zoo build` writes them) and a quickly trained digits classifier."""
    from flowscope.data.images import digits, split
    from flowscope.evaluation.classifier import save_classifier, train_classifier
    from flowscope.nets.unet import UNetConfig
    from flowscope.zoo.registry import CLASSIFIERS

    rows = entries(tiny_zoo)
    for row in rows:
        (folder / row.file).write_bytes((tiny_zoo / row.file).read_bytes())
    trained, _ = split(digits())
    save_classifier(train_classifier(trained, steps=40, width=8), folder / CLASSIFIERS["digits"])
    for name, conditional in TINY_IMAGE_ZOO:
        labels = torch.from_numpy(trained.labels) if conditional and trained.labels is not None else None
        result = train(torch.from_numpy(trained.images), path="ot", model=UNetConfig(1, 8, 8, **TINY_UNET),
                       config=TrainConfig(steps=steps, batch_size=64, lr=2e-3, warmup_steps=5, device="cpu"),
                       dataset="digits", dataset_hash=dataset_hash(trained.flat), labels=labels,
                       label_names=trained.names if labels is not None else (), image=trained.spec)
        flow = result.model
        flow.data = torch.from_numpy(trained.flat)
        flow.data_labels = labels
        suffixes = ("_w0", "_w1") if conditional else ("",)
        metrics = {"fd_floor": 8.0, "nn_held_out_median": 16.0, "classifier_accuracy_held_out": 0.9}
        for suffix in suffixes:  # the keys `flowscope zoo build` records (`image_quality.evaluate_images`)
            metrics.update({f"fd{suffix}": 20.0, f"fd_ratio{suffix}": 2.5, f"nn_median{suffix}": 20.0,
                            f"nn_ratio{suffix}": 1.25})
            if conditional:
                metrics.update({f"accuracy{suffix}": 0.5, f"min_class_accuracy{suffix}": 0.2})
        flow.info["metrics"] = metrics
        checkpoint.save(flow, folder / f"{name}.safetensors")
        rows.append(ZooEntry(name=name, file=f"{name}.safetensors", dataset="digits", path="ot",
                             coupling="independent", source=None, params=flow.path.config(), steps=steps,
                             train_seconds=round(result.seconds, 1), metrics=metrics))
    write_manifest(folder, rows)
    return rows


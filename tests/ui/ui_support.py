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

from flowscope import MLPConfig, TrainConfig, checkpoint, make_path, train
from flowscope.data import dataset_hash, make_dataset
from flowscope.zoo import MANIFEST, ZooEntry
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
                       config=TrainConfig(steps=steps, batch_size=256, device="cpu", threads=1), source=source,
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

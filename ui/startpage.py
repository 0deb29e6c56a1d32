"""The start page's flow, kept on disk so that a fresh server draws it before torch is even imported.

Importing torch and flowscope is most of a cold start; the start page's first plot (the default pretrained
model's particles flowing into data) depends only on the model file. So the page saves that picture's
arrays once, keyed by a hash of the model file, and later starts draw them at once and import torch while
the browser renders. This module imports only numpy, the standard library and flowscope's torch-free
modules (`manifest`, `files`), never torch.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flowscope.io.files import write_atomic
from flowscope.zoo import manifest

#: Bump when what is cached changes, so stale files are ignored.
VERSION = "1"
DEFAULT_MODEL = "moons-ot"


@dataclass(frozen=True)
class CachedFlow:
    """The start page's picture: trajectories [T, n, 2] at times [T], data points, axes and caption."""

    points: np.ndarray
    times: np.ndarray
    data: np.ndarray
    bounds: tuple[tuple[float, float], tuple[float, float]]
    caption: str


def cache_folder() -> Path:
    """$FLOWSCOPE_UI_CACHE, else ~/.cache/flowscope-ui."""
    return Path(os.environ.get("FLOWSCOPE_UI_CACHE") or Path.home() / ".cache" / "flowscope-ui")


def default_model() -> tuple[str, Path] | None:
    """(name, file) of the model the start page shows first, read from the manifest; None without a zoo."""
    folder = manifest.directory()
    try:
        rows = manifest.entries(folder)
    except manifest.ZooError:
        return None
    row = next((r for r in rows if r.name == DEFAULT_MODEL), rows[0] if rows else None)
    return None if row is None else (row.name, folder / row.file)


def _cache_file(model_file: Path, settings: str) -> Path | None:
    """Where the picture of this model file (and settings) is kept; None if the file cannot be read."""
    try:
        digest = hashlib.sha256(model_file.read_bytes() + f"{VERSION}|{settings}".encode()).hexdigest()[:24]
    except OSError:
        return None
    return cache_folder() / f"start-{digest}.npz"


def picture_file(model_file: Path, settings: str) -> Path | None:
    """The kept picture of this model file (and settings), if there is one."""
    path = _cache_file(model_file, settings)
    return path if path is not None and path.is_file() else None


def read(path: Path) -> CachedFlow | None:
    """The picture kept in `path`, or None (unreadable or not a picture)."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            b = arrays["bounds"].astype(float)
            return CachedFlow(points=arrays["points"], times=arrays["times"], data=arrays["data"],
                              bounds=((b[0], b[1]), (b[2], b[3])), caption=str(arrays["caption"]))
    except (OSError, ValueError, KeyError):
        return None


def load(model_file: Path, settings: str) -> CachedFlow | None:
    """The cached picture of a model file, or None (never cached, unreadable or stale)."""
    path = picture_file(model_file, settings)
    return None if path is None else read(path)


def save(model_file: Path, settings: str, flow: CachedFlow) -> None:
    """Keep a picture for later starts (atomically; silently skipped where the cache folder is not writable)."""
    path = _cache_file(model_file, settings)
    if path is None:
        return
    (x0, x1), (y0, y1) = flow.bounds
    arrays = {"points": flow.points.astype(np.float32), "times": flow.times, "data": flow.data.astype(np.float32),
              "bounds": np.array([x0, x1, y0, y1]), "caption": np.array(flow.caption)}
    try:
        write_atomic(path, lambda handle: np.savez(handle, **arrays))  # type: ignore[arg-type]
    except OSError:
        return

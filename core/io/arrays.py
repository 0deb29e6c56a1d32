"""Sample files: arrays as .npy / .npz / .csv and images as a .png grid, written atomically."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from ..data.loader import generated_columns
from .files import write_atomic

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

__all__ = ['OutputError', 'grid_png', 'save_array', 'save_images']


class OutputError(ValueError):
    """An output file that cannot be written as asked (its suffix names no format we write)."""


def save_array(points: np.ndarray, out: Path, columns: Sequence[str] | None = None) -> None:
    """Write points as .npy, .npz (as they are, of any shape) or .csv (rows of a 2-D array under a header of
    `columns`, default `generated_columns`: x, y or c1, c2, ...), atomically: a failed write leaves the old file
    and no temporary."""
    suffix = out.suffix.lower()
    if suffix not in (".npy", ".npz", ".csv"):
        raise OutputError(f"{out}: output must end in .npy, .npz or .csv")

    def write(handle: BinaryIO) -> None:
        if suffix == ".npy":
            np.save(handle, points)
        elif suffix == ".npz":
            np.savez(handle, samples=points)
        else:
            header = ",".join(columns or generated_columns(points.shape[1]))
            np.savetxt(handle, points, delimiter=",", header=header, comments="")

    write_atomic(out, write)


def save_images(images: np.ndarray, out: Path) -> None:
    """Write images [n, C, H, W] as .npy / .npz (as they are), .csv (a row of pixel values per image, columns
    c<channel>_y<row>_x<column>) or .png (a grid of them, the pixel range stretched to 0..255), atomically."""
    suffix = out.suffix.lower()
    if suffix not in (".npy", ".npz", ".csv", ".png"):
        raise OutputError(f"{out}: output must end in .npy, .npz, .csv or .png")
    if suffix == ".png":
        write_atomic(out, lambda handle: grid_png(images).save(handle, format="PNG"))
        return
    n, c, h, w = images.shape
    names = [f"c{k}_y{i}_x{j}" for k in range(c) for i in range(h) for j in range(w)]
    save_array(images.reshape(n, -1) if suffix == ".csv" else images, out, columns=names)


def grid_png(images: np.ndarray, columns: int | None = None, pad: int = 1) -> PILImage:
    """A Pillow image of images [n, C, H, W] in a grid (each stretched from its set's min..max to 0..255)."""
    from PIL import Image

    n, c, h, w = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    lo, hi = float(images.min()), float(images.max())
    scaled = np.clip((images - lo) / max(hi - lo, 1e-12) * 255.0, 0, 255).astype(np.uint8)
    canvas = np.zeros((c, rows * (h + pad) + pad, columns * (w + pad) + pad), dtype=np.uint8)
    for k in range(n):
        r, q = divmod(k, columns)
        top, left = pad + r * (h + pad), pad + q * (w + pad)
        canvas[:, top: top + h, left: left + w] = scaled[k]
    pixels = canvas[0] if c == 1 else canvas[:3].transpose(1, 2, 0)
    return Image.fromarray(pixels)

"""The shape of an image and its pixel range (`ImageSpec`): how a flow sees an image as a flat vector.

Pixel values are mapped to [-1, 1] by one affine map for all pixels (`ImageSpec.normalizer`), stored with
the model, so that samples come back in the data's own units (digits: 0 to 16).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from torch import Tensor

from .normalizer import Normalizer

__all__ = ['ImageSpec']


@dataclass(frozen=True)
class ImageSpec:
    """The shape of an image and the range of its pixel values in the data's own units.

    Attributes:
        channels, height, width: the image shape (C, H, W).
        low, high: the pixel range; the flow works on (x - (low + high) / 2) / ((high - low) / 2), in [-1, 1].
        levels: how many equally spaced values a pixel takes from low to high (digits: 17, 8-bit: 256), for
            dequantised likelihoods in bits per dimension; None for continuous pixel values.
    """

    channels: int
    height: int
    width: int
    low: float
    high: float
    levels: int | None = None

    def __post_init__(self) -> None:
        if min(self.channels, self.height, self.width) < 1:
            raise ValueError(f"image shape must be positive, got {self.shape}")
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ValueError(f"image pixel range must be finite with low < high, got {self.low}, {self.high}")
        if self.levels is not None and self.levels < 2:
            raise ValueError(f"image levels must be >= 2 (or None), got {self.levels}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W)."""
        return self.channels, self.height, self.width

    @property
    def dim(self) -> int:
        """C * H * W: the dimension of the flat vectors the flow works on."""
        return self.channels * self.height * self.width

    @property
    def bin_width(self) -> float | None:
        """The spacing of the pixel levels in data units (the dequantisation bin; digits: 1), None if continuous."""
        return None if self.levels is None else (self.high - self.low) / (self.levels - 1)

    @property
    def unit_map(self) -> tuple[float, float]:
        """(centre, half range) of the pixel range: (x - centre) / half range maps [low, high] to [-1, 1]."""
        return (self.low + self.high) / 2.0, (self.high - self.low) / 2.0

    def normalizer(self) -> Normalizer:
        """The map of every pixel from [low, high] to [-1, 1] (no column is dropped: images keep their shape)."""
        mean, scale = self.unit_map
        return Normalizer(mean=(mean,) * self.dim, scale=(scale,) * self.dim)

    def unflatten(self, flat: Tensor | np.ndarray) -> Tensor | np.ndarray:
        """Flat vectors [n, C*H*W] as images [n, C, H, W]."""
        return flat.reshape(-1, *self.shape)

    def to_pixels(self, x: Tensor | np.ndarray) -> Tensor | np.ndarray:
        """Values clipped to [low, high] (samples of a flow may overshoot the range slightly)."""
        return x.clip(self.low, self.high)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON (stored in a model's config as "image")."""
        return asdict(self)

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> ImageSpec:
        """The spec of `to_dict`; ValueError naming a missing or malformed field."""
        kinds: dict[str, tuple[type, ...]] = {"channels": (int,), "height": (int,), "width": (int,),
                                              "low": (int, float), "high": (int, float)}
        for key, kind in kinds.items():
            if not isinstance(fields.get(key), kind) or isinstance(fields.get(key), bool):
                raise ValueError(f"image.{key} must be {' or '.join(k.__name__ for k in kind)}, "
                                 f"got {fields.get(key)!r}")
        levels = fields.get("levels")
        if levels is not None and (not isinstance(levels, int) or isinstance(levels, bool)):
            raise ValueError(f"image.levels must be an int or null, got {levels!r}")
        return cls(int(fields["channels"]), int(fields["height"]), int(fields["width"]), float(fields["low"]),
                   float(fields["high"]), levels)

    @classmethod
    def infer(cls, images: np.ndarray, dtype: np.dtype | None = None) -> ImageSpec:
        """The spec of images [n, C, H, W]: 8-bit (and 16-bit) integer arrays span their type's range; other
        integer-valued data span 0 (or its minimum, if negative) to its maximum in unit steps (digits: 0..16,
        17 levels); real-valued data span their minimum to maximum, continuously. `dtype` is the file's own."""
        if images.ndim != 4:
            raise ValueError(f"images must have shape (n, C, H, W), got {images.shape}")
        kind = np.dtype(dtype) if dtype is not None else images.dtype
        c, h, w = images.shape[1:]
        if kind == np.uint8:
            return cls(c, h, w, 0.0, 255.0, 256)
        if kind == np.uint16:
            return cls(c, h, w, 0.0, 65535.0, 65536)
        lo, hi = float(images.min()), float(images.max())
        if np.array_equal(images, np.round(images)):
            low = min(0.0, lo)
            high = max(hi, low + 1.0)
            return cls(c, h, w, low, high, int(high - low) + 1)
        return cls(c, h, w, lo, hi if hi > lo else lo + 1.0, None)

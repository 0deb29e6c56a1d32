"""Image datasets: their shape and pixel range (`ImageSpec`), a labelled image set (`ImageData`), and the
built-in `digits` (scikit-learn's bundled 8x8 handwritten digits: no download).

A flow sees an image as the flat vector of its C * H * W pixel values (docs/design.md, "Images"), so paths,
couplings, the trainer, the samplers and the exact marginal field need no change; the U-Net reshapes it.
Pixel values are mapped to [-1, 1] by one affine map for all pixels (`ImageSpec.normalizer`), stored with
the model, so that samples come back in the data's own units (digits: 0 to 16).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from .models import Normalizer

if TYPE_CHECKING:
    from .flow import FlowModel

__all__ = ["DIGITS_HELD_OUT", "IMAGE_DATASETS", "IMAGE_SAMPLE_VALUES", "ImageData", "ImageSpec", "digits",
           "image_dataset", "keep_training_images", "split"]

#: The built-in image datasets (`image_dataset`).
IMAGE_DATASETS: tuple[str, ...] = ("digits",)
#: Share of each digit class held out from training (the Frechet distance and nearest-neighbour checks
#: compare samples with images the model never saw).
DIGITS_HELD_OUT = 0.2
#: Most pixel values of training images kept in a model file (so the explorer can show its data and exact
#: field): all of the digits, ~650 images of 64 x 64 RGB.
IMAGE_SAMPLE_VALUES = 8_000_000


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


@dataclass(frozen=True, eq=False)
class ImageData:
    """Images with their spec and, optionally, a class each.

    Attributes:
        images: float32 [n, C, H, W] in the data's own units.
        spec: shape and pixel range.
        labels: int64 [n] indices into `names`, or None for unlabelled images.
        names: the class names, in index order (() without labels).
        name: the dataset's display name (a file's name, or "digits").
        note: how the file was read, where a person may want to know (e.g. its axes taken as channels-last).
    """

    images: np.ndarray
    spec: ImageSpec
    labels: np.ndarray | None = None
    names: tuple[str, ...] = ()
    name: str = "images"
    note: str = ""

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def flat(self) -> np.ndarray:
        """The images as flat float32 vectors [n, C*H*W] (what the flow trains on)."""
        return np.ascontiguousarray(self.images.reshape(len(self), -1), dtype=np.float32)

    def subset(self, index: np.ndarray) -> ImageData:
        """The images (and labels) at `index`."""
        return replace(self, images=self.images[index], labels=None if self.labels is None else self.labels[index])


def digits() -> ImageData:
    """scikit-learn's bundled handwritten digits: 1,797 grey 8x8 images, pixel values 0..16 (17 levels), labelled
    "0" to "9" (Alpaydin & Kaynak, UCI optdigits test set; needs scikit-learn, the `datasets` extra)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ValueError("the digits dataset ships inside scikit-learn, which is not installed: "
                         "pip install 'flowscope[datasets]'") from None
    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.float32)[:, None]
    return ImageData(images=images, spec=ImageSpec(1, 8, 8, 0.0, 16.0, 17),
                     labels=np.asarray(bunch.target, dtype=np.int64), names=tuple(str(k) for k in range(10)),
                     name="digits")


def image_dataset(name: str) -> ImageData:
    """A built-in image dataset by name (`IMAGE_DATASETS`); ValueError listing them otherwise."""
    if name == "digits":
        return digits()
    raise ValueError(f"unknown image dataset {name!r}; the built-in ones are {', '.join(IMAGE_DATASETS)}")


def split(data: ImageData, held_out: float = DIGITS_HELD_OUT, seed: int = 0) -> tuple[ImageData, ImageData]:
    """(training, held-out) images: a seeded random `held_out` share of each class (of all images, unlabelled),
    so that both parts keep the class proportions."""
    if not 0.0 < held_out < 1.0:
        raise ValueError(f"held_out must lie in (0, 1), got {held_out}")
    rng = np.random.Generator(np.random.PCG64(seed))
    groups = [np.arange(len(data))] if data.labels is None else \
        [np.flatnonzero(data.labels == k) for k in range(len(data.names))]
    held = np.concatenate([rng.permutation(g)[: int(round(held_out * len(g)))] for g in groups])
    mask = np.zeros(len(data), dtype=bool)
    mask[held] = True
    return data.subset(np.flatnonzero(~mask)), data.subset(np.flatnonzero(mask))


def keep_training_images(flow: FlowModel, images: ImageData) -> FlowModel:
    """The model with its training images stored in it (the first IMAGE_SAMPLE_VALUES pixel values' worth) and, for
    a conditional model, their labels, so that its file opens in the explorer beside the images it learned."""
    keep = max(2, IMAGE_SAMPLE_VALUES // images.spec.dim)
    flow.data = torch.from_numpy(images.flat[:keep].copy())
    if flow.conditional and images.labels is not None:
        flow.data_labels = torch.from_numpy(images.labels[:keep].copy())
    return flow

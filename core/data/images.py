"""Image datasets: their shape and pixel range (`ImageSpec`), a labelled image set (`ImageData`), and the
built-in `digits` (scikit-learn's bundled 8x8 handwritten digits: no download).

A flow sees an image as the flat vector of its C * H * W pixel values (docs/design.md, "Images"), so paths,
couplings, the trainer, the samplers and the exact marginal field need no change; the U-Net reshapes it.
Pixel values are mapped to [-1, 1] by one affine map for all pixels (`ImageSpec.normalizer`), stored with
the model, so that samples come back in the data's own units (digits: 0 to 16).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from ..flow.model import FlowModel
from ..maths.imagespec import ImageSpec
from .kept import sample_rows

__all__ = ["DIGITS_HELD_OUT", "IMAGE_DATASETS", "IMAGE_SAMPLE_VALUES", "ImageData", "digits", "image_dataset",
           "keep_training_images", "split"]

#: The built-in image datasets (`image_dataset`).
IMAGE_DATASETS: tuple[str, ...] = ("digits",)
#: Share of each digit class held out from training (the Frechet distance and nearest-neighbour checks
#: compare samples with images the model never saw).
DIGITS_HELD_OUT = 0.2
#: Most pixel values of training images kept in a model file (so the explorer can show its data and exact
#: field): all of the digits, ~650 images of 64 x 64 RGB.
IMAGE_SAMPLE_VALUES = 8_000_000




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
    """The model with its training images stored in it (IMAGE_SAMPLE_VALUES pixel values' worth, chosen by the one
    rule for a model's data sample, `kept.sample_rows`: seeded and by class) and, for a conditional model, their
    labels, so that its file opens in the explorer beside the images it learned."""
    index = sample_rows(len(images), images.labels, rows=max(2, IMAGE_SAMPLE_VALUES // images.spec.dim))
    flow.data = torch.from_numpy(images.flat[index].copy())
    if flow.conditional and images.labels is not None:
        flow.data_labels = torch.from_numpy(images.labels[index].copy())
    return flow

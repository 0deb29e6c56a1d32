"""A small image classifier that flowscope trains itself: the judge of image flows' samples.

Image generators are judged by a classifier's features (the Frechet distance; Heusel et al. 2017 use an
Inception net) and by whether a class-conditional sample is recognised as its class. Nothing may be
downloaded here, so the feature network is a small CNN trained on the labelled training images (for the
digits, the training split): three convolutions and a global average pool give the 64 features, a linear
layer the class. It never sees the generator's samples in training, and the flows never see it.
Checkpoints are safetensors (weights + a JSON config), like models'.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors_from_bytes
from safetensors.torch import save as save_tensors_to_bytes
from torch import Tensor, nn
from torch.nn import functional as F

from ..data.images import ImageData
from ..io.checkpoint import CheckpointError, check_state, read_bounded, read_header
from ..io.files import write_bytes_atomic
from ..maths.imagespec import ImageSpec
from ..nets.init import fresh
from ..nets.unet import MAX_IMAGE_SIDE

__all__ = ["CLASSIFIER_FORMAT", "ClassifierConfig", "ImageClassifier", "classifier_config", "classifier_info",
           "load_classifier", "save_classifier", "train_classifier"]

CLASSIFIER_FORMAT = "flowscope-classifier"


@dataclass(frozen=True)
class ClassifierConfig:
    """Architecture and data of an `ImageClassifier`: the images it reads and the classes it tells apart."""

    spec: ImageSpec
    classes: tuple[str, ...]
    width: int = 32

    def __post_init__(self) -> None:
        if self.width < 1:
            raise ValueError(f"width must be >= 1, got {self.width}")
        if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes) or not all(self.classes):
            raise ValueError("classes must be 2 or more distinct non-empty names")
        if not (self.spec.channels <= 4 and max(self.spec.height, self.spec.width) <= MAX_IMAGE_SIDE):
            raise ValueError(f"spec must be an image of at most 4 channels and sides of at most {MAX_IMAGE_SIDE}, "
                             f"got {self.spec.shape}")

    def to_dict(self) -> dict[str, object]:
        """Plain dict for JSON."""
        return {"spec": self.spec.to_dict(), "classes": list(self.classes), "width": self.width}


class ImageClassifier(nn.Module):
    """conv(C -> w) / conv(w -> 2w, stride 2) / conv(2w -> 2w, stride 2), SiLU after each, global average pool:
    `features` (2w values per image); a linear layer on them: `forward` (class logits)."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        c, w = config.spec.channels, config.width
        self.body = nn.Sequential(nn.Conv2d(c, w, 3, padding=1), nn.SiLU(),
                                  nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.SiLU(),
                                  nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1), nn.SiLU())
        self.head = nn.Linear(2 * w, len(config.classes))

    def _scaled(self, images: Tensor) -> Tensor:
        """Images [n, C, H, W] (or flat) in data units -> [-1, 1], as the flows see them."""
        centre, half_range = self.config.spec.unit_map
        return (images.reshape(-1, *self.config.spec.shape).float() - centre) / half_range

    def features(self, images: Tensor) -> Tensor:
        """The 2w pooled features of each image [n, 2w] (the Frechet distance's embedding)."""
        return self.body(self._scaled(images)).mean(dim=(2, 3))

    def forward(self, images: Tensor) -> Tensor:
        """Class logits [n, classes]."""
        return self.head(self.features(images))

    def embed(self, images: np.ndarray | Tensor, batch: int = 1024) -> np.ndarray:
        """Features of images in data units, float64 [n, 2w], in evaluation mode, batch by batch."""
        return self._batched(lambda chunk: self.features(chunk).double(), images, batch).numpy()

    def predict(self, images: np.ndarray | Tensor, batch: int = 1024) -> np.ndarray:
        """The most likely class index of each image [n]."""
        return self._batched(lambda chunk: self(chunk).argmax(1), images, batch).numpy()

    @torch.no_grad()
    def _batched(self, fn: Callable[[Tensor], Tensor], images: np.ndarray | Tensor, batch: int) -> Tensor:
        """`fn` of images (numpy or torch, flat or not) a batch at a time in evaluation mode, concatenated."""
        was = self.training
        self.eval()
        x = torch.as_tensor(np.asarray(images, dtype=np.float32)) if isinstance(images, np.ndarray) else images
        out = [fn(chunk) for chunk in x.reshape(-1, *self.config.spec.shape).split(batch)]
        self.train(was)
        return torch.cat(out)


def train_classifier(data: ImageData, *, steps: int = 3000, batch_size: int = 128, lr: float = 2e-3,
                     seed: int = 0, width: int = 32) -> ImageClassifier:
    """Train a classifier on labelled images (seeded: the same data and seed give the same weights on one
    machine). Random shifts of up to one pixel augment the images, so that it judges shapes, not positions."""
    if data.labels is None or len(data.names) < 2:
        raise ValueError(f"{data.name}: a classifier needs images with labels of at least 2 classes")
    generator = torch.Generator().manual_seed(seed)
    config = ClassifierConfig(data.spec, data.names, width)
    model = fresh(lambda: ImageClassifier(config), torch.Generator().manual_seed(seed))  # no global RNG
    images = torch.from_numpy(np.ascontiguousarray(data.images, dtype=np.float32))
    labels = torch.from_numpy(data.labels)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    for _ in range(steps):
        index = torch.randint(len(images), (batch_size,), generator=generator)
        dx, dy = torch.randint(-1, 2, (2,), generator=generator).tolist()
        batch = torch.roll(images[index], shifts=(dy, dx), dims=(2, 3))
        loss = F.cross_entropy(model(batch), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return model.eval()


def save_classifier(model: ImageClassifier, path: str | os.PathLike[str]) -> Path:
    """Write a classifier as safetensors (weights; its config as JSON metadata), atomically."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {"format": CLASSIFIER_FORMAT, "config": json.dumps(model.config.to_dict())}
    return write_bytes_atomic(path, save_tensors_to_bytes(tensors, metadata=metadata))


def load_classifier(path: str | os.PathLike[str]) -> ImageClassifier:
    """Read a classifier written by `save_classifier` (never unpickles). As for models (`checkpoint.from_bytes`),
    the file is checked against itself before anything is built: the network its config describes, built on the
    meta device, must have exactly the file's tensors; CheckpointError (a ValueError) naming the file otherwise."""
    file = Path(path)
    data = read_bounded(file)
    table, metadata = read_header(data, file.name)
    config = classifier_config(metadata, file.name)
    fields: dict[str, Any] = {"spec.channels": config.spec.channels, "width": config.width,
                              "classes": list(config.classes)}

    def make(f: dict[str, Any]) -> nn.Module:
        spec = replace(config.spec, channels=f["spec.channels"])
        return ImageClassifier(ClassifierConfig(spec, tuple(f["classes"]), f["width"]))

    check_state(make, fields, table, "", file.name, "config")
    try:
        tensors = load_tensors_from_bytes(data)
    except (SafetensorError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{file.name}: corrupt tensor data ({err})") from None
    for key, tensor in tensors.items():
        if not torch.isfinite(tensor).all():
            raise CheckpointError(f"{file.name}: tensor {key!r} holds NaN or inf")
    model = ImageClassifier(config)
    model.load_state_dict({k: v.float() for k, v in tensors.items()})
    return model.eval()


def classifier_info(model: ImageClassifier) -> dict[str, object]:
    """What a classifier file holds, for `flowscope info`: its kind, architecture, images and classes."""
    return {"kind": f"image classifier ({CLASSIFIER_FORMAT}): the judge of image flows' samples",
            "architecture": f"3 convolutions of width {model.config.width}, {2 * model.config.width} pooled features, "
                            f"a linear layer to {len(model.config.classes)} classes",
            "parameters": sum(p.numel() for p in model.parameters()), **model.config.to_dict()}


def classifier_config(metadata: dict[str, str], name: str) -> ClassifierConfig:
    """The config of a classifier file's metadata, checked (its format tag, then each field); CheckpointError
    naming the file and the field otherwise."""
    if metadata.get("format") != CLASSIFIER_FORMAT:
        raise CheckpointError(f"{name}: not a flowscope classifier (no 'format: {CLASSIFIER_FORMAT}' in its "
                              "metadata)")
    try:
        fields = json.loads(metadata.get("config", ""))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{name}: metadata 'config' is not JSON ({err.msg})") from None
    if not isinstance(fields, dict) or not isinstance(fields.get("spec"), dict):
        raise CheckpointError(f"{name}: config must be a JSON object with an object 'spec'")
    classes, width = fields.get("classes"), fields.get("width")
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise CheckpointError(f"{name}: config.classes must be a list of class names")
    if not isinstance(width, int) or isinstance(width, bool):
        raise CheckpointError(f"{name}: config.width must be int, got {type(width).__name__}")
    try:
        return ClassifierConfig(ImageSpec.from_dict(fields["spec"]), tuple(classes), width)
    except ValueError as err:  # ImageSpec names its fields image.*: here they are the config's spec.*
        raise CheckpointError(f"{name}: config.{str(err).replace('image.', 'spec.', 1)}") from None

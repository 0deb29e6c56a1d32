"""What the Images page computes for an image model, by calling the core: samples and their trajectories, x_t
beside the model's prediction of x1, nearest training images with their yardstick, the exact marginal field's
samples from the same noise (the quality report's rows are `flowscope.evaluation.records.ImageReport.rows`).

No Streamlit and no maths here (`flowscope.evaluation.image_quality`, `flowscope.fields.fieldview` and `FlowModel`
do the work); the page calls these through the caches of `state` and draws numpy arrays with `plots`. Every image
comes back as [n, C, H, W] in the data's own units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from flowscope import FlowModel, SolverConfig
from flowscope.data.images import ImageData, digits, split
from flowscope.evaluation.image_quality import leave_one_out_distances, nearest_neighbours
from flowscope.fields.fieldview import FieldSupport, exact_samples
from flowscope.maths.imagespec import ImageSpec

from . import compute

__all__ = ["STRIP_TIMES", "VIEW_SOLVER", "ImageRun", "Yardstick", "exact_images", "grid_count",
           "held_out_digits", "is_digits", "run_images", "training_images",
           "yardstick"]

#: The solver of every image view: fixed steps, so that a view costs the same for every model (2 x 20 = 40
#: velocity evaluations; twice that with guidance, which evaluates the conditional and unconditional fields).
VIEW_SOLVER = SolverConfig(method="midpoint", steps=20)
#: The times of the trajectory strips (columns), from the noise to the sample.
STRIP_TIMES = 8
#: Images per leave-one-out yardstick (the memorisation check of data without held-out images).
YARDSTICK_IMAGES = 500


def grid_count(spec: ImageSpec) -> int:
    """Samples in the page's grid: 64 small images (up to 16 x 16), fewer of larger ones (a U-Net evaluation
    costs about its pixel count)."""
    pixels = spec.height * spec.width
    return 64 if pixels <= 256 else 32 if pixels <= 1024 else 16


@dataclass(frozen=True)
class ImageRun:
    """An image model's samples from seeded noise, with what the page shows of their trajectories.

    Attributes:
        x0: the noise the samples start from, flat [n, D] in data coordinates (the exact field starts there too).
        samples: the samples [n, C, H, W], clipped to the pixel range.
        strip_times: the strips' times [T]; strips: x_t of the first samples at those times [k, T, C, H, W].
        frame_times: the t slider's times [F]; frames_xt: x_t of the first samples [F, k, C, H, W], frames_x1:
            the model's prediction of x1 from each of them (`FlowModel.predict_x1`) [F, k, C, H, W].
        nfe: velocity evaluations of the solver (per sample batch).
    """

    x0: np.ndarray
    samples: np.ndarray
    strip_times: np.ndarray
    strips: np.ndarray
    frame_times: np.ndarray
    frames_xt: np.ndarray
    frames_x1: np.ndarray
    nfe: int


def _images(flow: FlowModel, flat: torch.Tensor | np.ndarray) -> np.ndarray:
    """Flat rows [..., D] as images [..., C, H, W] in data units, clipped to the pixel range."""
    assert flow.image is not None
    array = flat.detach().cpu().numpy() if isinstance(flat, torch.Tensor) else np.asarray(flat)
    lead = array.shape[:-1]
    return np.asarray(flow.image.to_pixels(array.astype(np.float32))).reshape(*lead, *flow.image.shape)


def run_images(flow: FlowModel, n: int, *, label: int | None = None, guidance: float = 0.0, seed: int = 0,
               shown: int = 6, solver: SolverConfig = VIEW_SOLVER) -> ImageRun:
    """n samples of an image model from seeded noise (for a conditional model of class `label` at guidance w),
    integrated once through the strips' and the slider's times; the first `shown` samples' x_t and predicted x1
    at each of the slider's times (`compute.time_grid`)."""
    x0 = compute.source_points(flow, n, seed)
    t_max = flow.path.t_max
    strip_times = np.linspace(0.0, t_max, STRIP_TIMES)
    frame_times = compute.time_grid(t_max)
    times = np.unique(np.concatenate([strip_times, frame_times]))
    result = flow.sample(x0=x0, solver=solver, times=torch.from_numpy(times).float(), label=label,
                         guidance=guidance)
    trajectory = result.trajectory  # [T, n, D], data coordinates
    at = {float(t): k for k, t in enumerate(times)}
    first = trajectory[:, :shown]
    strips = _images(flow, first[[at[float(t)] for t in strip_times]].transpose(0, 1))
    xt = first[[at[float(t)] for t in frame_times]]
    predicted = torch.stack([flow.predict_x1(x, float(t), label=label, guidance=guidance)
                             for x, t in zip(xt, frame_times, strict=True)])
    return ImageRun(x0=x0.numpy(), samples=_images(flow, result.samples), strip_times=strip_times, strips=strips,
                    frame_times=frame_times, frames_xt=_images(flow, xt), frames_x1=_images(flow, predicted),
                    nfe=result.nfe)


def exact_images(flow: FlowModel, support: FieldSupport, x0: np.ndarray, *, label: int | None = None,
                 guidance: float = 0.0, solver: SolverConfig = VIEW_SOLVER) -> np.ndarray:
    """The exact (class, guided) marginal field's samples [k, C, H, W] of the support's training images, from
    the noise x0 [k, D] that the learned model's samples started from (`ImageRun.x0`): the two side by side."""
    start = torch.from_numpy(np.ascontiguousarray(x0, dtype=np.float32))
    return _images(flow, exact_samples(flow, support, start, label=label, guidance=guidance, solver=solver).samples)


def training_images(flow: FlowModel, data: np.ndarray) -> np.ndarray:
    """A model's training images (its flat data rows) as [n, C, H, W]."""
    assert flow.image is not None
    return np.asarray(flow.image.unflatten(np.asarray(data, dtype=np.float32)))


def is_digits(dataset: str, spec: ImageSpec) -> bool:
    """Whether a model was trained on the built-in digits (whose held-out split and classifier judge it)."""
    return dataset == "digits" and spec.shape == (1, 8, 8) and (spec.low, spec.high) == (0.0, 16.0)


def held_out_digits() -> tuple[ImageData, ImageData]:
    """The digits' (training, held-out) split: the held-out images no digits model here was trained on."""
    return split(digits())


@dataclass(frozen=True)
class Yardstick:
    """What a new image's distance to its nearest training image looks like: the distances of real images
    that the model never saw (the held-out split), or, without one, of training images to their nearest other
    training image (leave one out). `what` says which, for captions; `name` in a few words, for labels."""

    distances: np.ndarray
    what: str
    name: str

    @property
    def median(self) -> float:
        """The median distance: samples far closer than this to a training image are copies."""
        return float(np.median(self.distances))


def yardstick(training: np.ndarray, held_out: np.ndarray | None) -> Yardstick:
    """The memorisation check's yardstick for training images [n, C, H, W]: held-out images' nearest-training
    distances when there are held-out images, else the leave-one-out distances of up to YARDSTICK_IMAGES
    training images."""
    if held_out is not None:
        return Yardstick(nearest_neighbours(held_out, training)[0],
                         f"{len(held_out):,} held-out real images (never trained on)", "real new images")
    count = min(YARDSTICK_IMAGES, len(training))
    return Yardstick(leave_one_out_distances(training, n=count),
                     f"{count:,} training images to their nearest other training image (no held-out images)",
                     "training images to each other")


"""Training from the page: the core trainer with live reports, Stop and divergence handled.

No Streamlit import: the page passes a `report` function that draws progress. Streamlit interrupts a running
script (a click on Stop, or any other widget) by raising a control exception at the next element update,
i.e. inside `report`; the callback then catches it, tells the trainer to stop (returns True, so the result
is a consistent model at that step), and hands the exception back so the page can store the model first and
re-raise it afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from flowscope import (
    AffinePath,
    FlowModel,
    MLPConfig,
    StepInfo,
    TrainingDiverged,
    TrainResult,
    make_path,
    train,
)
from flowscope.data import kept
from flowscope.data.datasets import dataset_hash
from flowscope.data.images import ImageData, keep_training_images
from flowscope.maths import paths
from flowscope.maths.couplings import COUPLINGS
from flowscope.maths.paths import PATH_NAMES as PATHS
from flowscope.nets.unet import UNetConfig
from flowscope.training import recipes

__all__ = ["COUPLINGS", "DATA_SAMPLE_ROWS", "ICFM_SIGMA", "IMAGE_WIDTHS", "NORMALIZE", "PATHS", "RECIPE", "WIDTHS",
           "ImageTrainSettings", "Report", "TrainOutcome", "TrainSettings", "run", "run_images"]
WIDTHS = (32, 64, 128, 256, 512)
#: The core's normalisations: "column" standardises each column, "global" uses one scale for all of them.
NORMALIZE = ("column", "global")
#: Rows of the training data kept in the model (`FlowModel.data`), so that its file opens with its data: the core's.
DATA_SAMPLE_ROWS = kept.DATA_SAMPLE_ROWS
#: Noise of the I-CFM interpolant offered on the page (Tong et al. 2024), in normalised units: the core's default.
ICFM_SIGMA = paths.ICFM_SIGMA

#: Draws progress: (step info, the live EMA model, every loss so far).
Report = Callable[[StepInfo, FlowModel, list[float]], None]


#: The page's recipe: the core's quick one (`flowscope.training.recipes.QUICK`: the library's network and
#: optimiser, a third of the default's steps on half its batch), so that a live training takes seconds.
RECIPE = recipes.QUICK
#: The page's image recipe: the core's quick one for images (`flowscope.training.recipes.IMAGES_QUICK`).
IMAGE_RECIPE = recipes.IMAGES_QUICK


@dataclass(frozen=True)
class TrainSettings:
    """What a user chooses on the Train page; its defaults are the page's recipe (`RECIPE`)."""

    path: str = "ot"
    coupling: str = "independent"
    steps: int = RECIPE.config.steps
    width: int = RECIPE.width
    depth: int = RECIPE.depth
    lr: float = RECIPE.config.lr
    batch_size: int = RECIPE.config.batch_size
    seed: int = 0
    normalize: str = "column"
    #: For a conditional model: how often a training point's label is replaced by "no label" (the core's
    #: `TrainConfig.label_dropout`), which teaches the unconditional field that guidance needs.
    label_dropout: float = 0.1


@dataclass
class TrainOutcome:
    """A finished, stopped or diverged training: always a usable model and a status message."""

    flow: FlowModel
    losses: list[float]
    seconds: float
    status: str  # "done", "stopped" or "diverged"
    message: str
    interrupt: BaseException | None = field(default=None, repr=False)

    @property
    def steps_done(self) -> int:
        """Optimisation steps actually taken."""
        return len(self.losses)


def run(data: np.ndarray, settings: TrainSettings, *, dataset: str = "upload", columns: Sequence[str] | None = None,
        report: Report | None = None, every: int = 100, labels: np.ndarray | None = None,
        label_names: Sequence[str] = (), should_stop: Callable[[], bool] | None = None) -> TrainOutcome:
    """Train on data [n, D] with one torch thread, calling `report` every `every` steps and at the end.

    The core normalises the data (`settings.normalize`); the model and its samples stay in data units. The
    model keeps the column names (`info["columns"]`) and a sample of the data (`FlowModel.data`), so that a
    downloaded file opens with its data. With `labels` (a class index per row, int64 [n]) and their
    `label_names`, the core trains a conditional model (label dropout `settings.label_dropout`), and the
    model keeps the labels of its data sample (`FlowModel.data_labels`). A Streamlit control exception
    raised by `report` stops training cleanly and is returned in `outcome.interrupt` (the caller re-raises
    it after keeping the model); a NaN/inf loss keeps the last good weights (status "diverged").
    `should_stop` (asked at each report, e.g. a background job's Stop) ends training there, status "stopped".
    """
    config = replace(RECIPE.config, steps=settings.steps, batch_size=settings.batch_size, lr=settings.lr,
                     seed=settings.seed, device="cpu", normalize=settings.normalize,
                     label_dropout=settings.label_dropout)
    params = paths.path_params(settings.path)
    path: str | AffinePath = make_path(settings.path, **params) if params else settings.path
    points = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))
    classes = None if labels is None else torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64))

    def fit(callback: Callback) -> TrainResult:
        model = MLPConfig(dim=points.shape[1], width=settings.width, depth=settings.depth)
        return train(points, path=path, model=model, config=config, coupling=settings.coupling, dataset=dataset,
                     dataset_hash=dataset_hash(data), callback=callback, labels=classes,
                     label_names=tuple(label_names) if classes is not None else ())

    return _trained(fit, settings.steps, report, every, should_stop,
                    lambda flow: _with_data(flow, points, columns, classes))


#: The core trainer's per-step callback (True stops training).
Callback = Callable[[StepInfo, FlowModel], bool]


def _trained(fit: Callable[[Callback], TrainResult], steps: int, report: Report | None, every: int,
             should_stop: Callable[[], bool] | None, finish: Callable[[FlowModel], FlowModel]) -> TrainOutcome:
    """Run `fit` with a callback that reports every `every` steps and honours Stop and Streamlit's interrupts
    (see `run`), and turn how it ended (done, stopped, diverged) into a TrainOutcome; `finish` adds the model's
    data sample."""
    interrupts: list[BaseException] = []
    losses: list[float] = []

    def callback(info: StepInfo, flow: FlowModel) -> bool:
        losses.append(info.loss)
        if report is None or (info.step % every and info.step != info.steps):
            return False
        if should_stop is not None and should_stop():
            return True
        try:
            report(info, flow, losses)
        except Exception:
            raise
        except BaseException as err:  # Streamlit's rerun/stop request (or Ctrl-C): stop at this step
            interrupts.append(err)
            return True
        return False

    def interrupt() -> BaseException | None:
        return interrupts[0] if interrupts else None

    try:
        result = fit(callback)
    except TrainingDiverged as err:
        kept = err.result
        return TrainOutcome(finish(kept.model), kept.losses, kept.seconds, "diverged", str(err), interrupt())
    if result.stopped_early:
        message = f"stopped at step {len(result.losses):,} of {steps:,}; the model is kept as it was then"
        status = "stopped"
    else:
        message = f"trained {steps:,} steps in {result.seconds:.1f} s"
        status = "done"
    return TrainOutcome(finish(result.model), result.losses, result.seconds, status, message, interrupt())


@dataclass(frozen=True)
class ImageTrainSettings:
    """What a user chooses for an image model on the Train page, starting from the quick image recipe
    (`recipes.IMAGES_QUICK`: fewer steps and a smaller batch than the CLI's `recipes.IMAGES`, so that a live training
    on one CPU thread takes a minute or two); `conditional` uses the images' classes."""

    path: str = "ot"
    steps: int = IMAGE_RECIPE.config.steps
    base: int = IMAGE_RECIPE.base
    lr: float = IMAGE_RECIPE.config.lr
    batch_size: int = IMAGE_RECIPE.config.batch_size
    seed: int = 0
    conditional: bool = False
    label_dropout: float = 0.1


#: U-Net widths (base channels) offered on the page.
IMAGE_WIDTHS = (16, 32, 64)


def run_images(images: ImageData, settings: ImageTrainSettings, *, report: Report | None = None, every: int = 20,
               should_stop: Callable[[], bool] | None = None) -> TrainOutcome:
    """Train an image model (a U-Net flow on images [n, C, H, W], their pixel range mapped to [-1, 1] and kept
    with the model), with reports, Stop and divergence as in `run`; conditional on the
    images' classes when asked and they have some. The model keeps its training images (up to
    `images.IMAGE_SAMPLE_VALUES` pixel values) and their labels, so that its file opens with them."""
    conditional = settings.conditional and images.labels is not None
    config = replace(IMAGE_RECIPE.config, steps=settings.steps, batch_size=min(settings.batch_size, len(images)),
                     lr=settings.lr, warmup_steps=min(IMAGE_RECIPE.config.warmup_steps, settings.steps // 10),
                     seed=settings.seed, device="cpu", label_dropout=settings.label_dropout)
    classes = torch.from_numpy(images.labels) if conditional and images.labels is not None else None

    def fit(callback: Callback) -> TrainResult:
        return train(torch.from_numpy(images.images), path=settings.path,
                     model=UNetConfig(*images.spec.shape, base=settings.base), config=config, dataset=images.name,
                     dataset_hash=dataset_hash(images.flat), callback=callback, labels=classes,
                     label_names=images.names if classes is not None else (), image=images.spec)

    return _trained(fit, settings.steps, report, every, should_stop, lambda flow: keep_training_images(flow, images))


def _with_data(flow: FlowModel, points: torch.Tensor, columns: Sequence[str] | None,
               labels: torch.Tensor | None = None) -> FlowModel:
    """The model with its column names and its data sample (`kept.keep_data_sample`: the rows the CLI and the
    zoo keep too, seeded and by class), with those rows' labels for a conditional model."""
    if columns is not None:
        flow.info["columns"] = list(columns)
    return kept.keep_data_sample(flow, points, labels)

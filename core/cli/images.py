"""Image models from the command line: `flowscope train` on `--dataset digits` or `--data` images (.npy, .npz,
.zip of PNGs), `flowscope sample` of an image model (images (n, C, H, W) in the data's units, or a .png grid),
and `flowscope eval` of one (Frechet distance, class accuracy, nearest neighbours, bits per dimension)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..data.datasets import dataset_hash
from ..data.image_loader import IMAGE_LIMITS, is_image_upload, load_images
from ..data.images import (
    IMAGE_DATASETS,
    IMAGE_SAMPLE_VALUES,
    ImageData,
    image_dataset,
    keep_training_images,
    split,
)
from ..evaluation.classifier import ImageClassifier, train_classifier
from ..evaluation.image_quality import evaluate_images
from ..flow.model import FlowModel
from ..io import checkpoint
from ..maths.paths import AffinePath, make_path
from ..maths.paths import path_params as interpolant_params
from ..nets.unet import UNetConfig
from ..solver.sampling import SolverConfig
from ..training import distributed, recipes
from ..training.loop import StepInfo, TrainConfig, TrainingDiverged, train
from ..zoo import registry as zoo
from .recorded import print_recorded

if TYPE_CHECKING:
    pass

__all__ = ["IMAGE_DEFAULTS", "IMAGE_SAMPLE_VALUES", "ImageCLIError", "Progress", "classifier_for", "eval_images",
           "image_data", "is_image_args", "train_images"]

#: Training defaults of image models: the image recipe (`training.recipes.IMAGES`; the U-Net learns the digits at a
#: smaller batch and learning rate than the 2-D MLPs, bench/results_images.md).
IMAGE_DEFAULTS = recipes.IMAGES.config


class ImageCLIError(ValueError):
    """A bad option for an image model; printed as one line naming it (exit status 2)."""


def is_image_args(args: argparse.Namespace) -> bool:
    """Whether --dataset / --data name images: a built-in image set, or a .zip / an .npy or .npz of rank >= 3."""
    if getattr(args, "dataset", None) in IMAGE_DATASETS:
        return True
    path: Path | None = getattr(args, "data", None)
    if path is None or path.suffix.lower() not in (".npy", ".npz", ".zip") or not path.is_file():
        return False
    with path.open("rb") as handle:
        head = handle.read(IMAGE_LIMITS.max_bytes if path.suffix.lower() == ".npz" else 1 << 16)
    return is_image_upload(head, path.name)


def image_data(args: argparse.Namespace) -> tuple[ImageData, ImageData | None]:
    """(training images, held-out images or None): a built-in set's training and held-out splits, or a file's
    images (all for training; their held-out counterpart is another file, given to `flowscope eval`)."""
    for option in ("columns", "labels"):
        if getattr(args, option, None) is not None:
            raise ImageCLIError(f"--{option} is for tables; images use every pixel, and a zip's class folders are "
                                "its labels (--conditional)")
    if getattr(args, "dataset", None) in IMAGE_DATASETS:
        return split(image_dataset(args.dataset))
    return load_images(args.data), None


def _image_config(args: argparse.Namespace) -> TrainConfig:
    """TrainConfig from the train options, with the image defaults where an option was not given."""
    chosen = {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr}
    given = {k: v for k, v in chosen.items() if v is not None}
    config = replace(IMAGE_DEFAULTS, seed=args.seed, device=args.device, ot_block=args.ot_block,
                     check_every=args.check_every, compile_step=args.compile,
                     pair_within_class=args.pair_within_class, precision=args.precision, **given)
    return config if args.label_dropout is None else replace(config, label_dropout=args.label_dropout)


#: A training callback and the function that closes its progress bar (`cli._progress`).
Progress = tuple[Callable[[StepInfo, FlowModel], None], Callable[[], None]]


def train_images(args: argparse.Namespace, progress: Progress) -> int:
    """flowscope train on images: a U-Net flow, written atomically with its training images (up to
    IMAGE_SAMPLE_VALUES pixel values) and, for a built-in set, its report against the held-out split."""
    if args.source is not None or args.source_dataset is not None or args.stream:
        raise ImageCLIError("image models start from Gaussian noise and load their images: drop --source, "
                            "--source-dataset and --stream")
    trained, held_out = image_data(args)
    if args.conditional and trained.labels is None:
        raise ImageCLIError(f"{trained.name}: --conditional needs labelled images: put each class's PNGs in a "
                            "folder of its own in the zip")
    labels = trained.labels if args.conditional else None
    config = _image_config(args)
    model = UNetConfig(*trained.spec.shape, base=args.base_channels, attention=not args.no_attention)
    path_params = interpolant_params(args.path, args.sigma)  # what --sigma means: the same rule as for tables
    on_step, close = progress
    resume = checkpoint.load(args.resume) if args.resume else None
    main_rank = distributed.current().is_main
    out = args.out or Path(f"{trained.name.rsplit('.', 1)[0]}-{args.path}.safetensors")
    try:
        result = train(torch.from_numpy(trained.images), path=_path(args.path, path_params), model=model,
                       config=config, coupling=args.coupling, dataset=trained.name,
                       dataset_hash=dataset_hash(trained.flat), callback=on_step, resume=resume,
                       labels=None if labels is None else torch.from_numpy(labels),
                       label_names=trained.names if labels is not None else (), image=trained.spec)
    except TrainingDiverged as err:
        close()
        if main_rank:
            diverged = err.result.model
            checkpoint.save(diverged if args.no_data_sample else keep_training_images(diverged, trained), out)
            raise ImageCLIError(f"{err}; saved them to {out}") from None
        return 2
    close()
    if not main_rank:
        return 0
    flow = result.model if args.no_data_sample else keep_training_images(result.model, trained)
    trained_on = flow.device
    if held_out is not None and not args.no_eval:
        report = evaluate_images(flow, trained, held_out, classifier_for(trained), seed=args.seed,
                                 guidance=(0.0, 1.0) if flow.conditional else (0.0,), nll_images=0)
        flow.info["metrics"] = report.stored()
    checkpoint.save(flow.to("cpu"), out)
    print(f"trained {result.seconds:.1f} s on {trained_on}, final loss {np.mean(result.losses[-100:]):.4f}; "
          f"wrote {out}")
    if flow.conditional:
        print(f"conditional on {len(flow.labels)} classes: {', '.join(map(repr, flow.labels))}")
    print_recorded(flow.info)
    return 0


def _path(name: str, params: dict[str, float]) -> str | AffinePath:
    """A path name, or with explicit parameters the path built on the [-1, 1] pixel scale."""
    return make_path(name, **params) if params else name


def classifier_for(images: ImageData, dataset: str | None = None) -> ImageClassifier | None:
    """The judge of samples of these images (of built-in `dataset`, if named): the zoo's classifier for a built-in
    set, else one trained on the images' labels (seeded, a minute at most), else None (then no Frechet distance
    nor class accuracy)."""
    name = dataset or images.name
    if name in zoo.CLASSIFIERS:
        judge = zoo.classifier(name)
        if judge.config.spec.shape == images.spec.shape:
            return judge
    if images.labels is None:
        return None
    return train_classifier(images)






def eval_images(args: argparse.Namespace, flow: FlowModel, solver: SolverConfig, guidance: tuple[float, ...]) -> int:
    """flowscope eval of an image model against `--dataset digits` (its held-out split) or `--data` held-out images
    (compared with the model's stored training images)."""
    assert flow.image is not None
    if getattr(args, "dataset", None) in IMAGE_DATASETS or args.data is not None:
        trained, held_out = image_data(args)
    else:
        raise ImageCLIError("an image model is judged against images: --dataset digits or --data held_out.npy")
    if held_out is None:
        if flow.data is None:
            raise ImageCLIError(f"{args.model.name} stores no training images to compare with (trained with "
                                "--no-data-sample); evaluate it with --dataset digits")
        held_out = trained
        labels = flow.data_labels.numpy() if flow.data_labels is not None else None
        trained = ImageData(images=np.asarray(flow.image.unflatten(flow.data.numpy())), spec=flow.image,
                            labels=labels, names=flow.labels if labels is not None else (), name="training images")
    if held_out.spec.shape != flow.image.shape:
        raise ImageCLIError(f"{held_out.name}: images of shape {held_out.spec.shape}, the model's are "
                            f"{flow.image.shape}")
    dataset = str(flow.info.get("dataset", ""))
    report = evaluate_images(flow, trained, held_out, classifier_for(trained, dataset), n=args.samples,
                             guidance=guidance, seed=args.seed, solver=solver)
    print(json.dumps(report.to_dict(), indent=2))
    return 0

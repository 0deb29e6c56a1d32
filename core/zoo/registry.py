"""The pretrained model zoo: what is in it, how to build it reproducibly, and how to load it.

Models live in the `flowscope_pretrained` package (the checkout's pretrained/ folder, also shipped in the
wheel) beside a manifest.json that records each model's settings, training time and metrics.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from ..data import tables
from ..data.datasets import (
    DATASETS,
    Labelled,
    dataset_columns,
    dataset_hash,
    fresh_draws,
    held_out_labelled,
    make_dataset,
    make_labelled,
)
from ..data.images import IMAGE_DATASETS, image_dataset, keep_training_images, split
from ..data.kept import DATA_SAMPLE_ROWS, keep_data_sample
from ..evaluation.classifier import ImageClassifier, load_classifier, save_classifier, train_classifier
from ..evaluation.image_quality import evaluate_images
from ..evaluation.records import ClassesReport, stored_report
from ..evaluation.report import REFERENCE_SOLVER, Reference, evaluate, evaluate_classes
from ..flow.model import FlowModel
from ..io import checkpoint
from ..maths.couplings import REFLOW
from ..maths.paths import make_path, path_params
from ..nets.models import MLPConfig
from ..nets.unet import UNetConfig
from ..training import recipes
from ..training.loop import TrainConfig, train
from ..training.reflow import reflow
from .manifest import MANIFEST, ZooEntry, ZooError, directory, entries
from .manifest import write as write_manifest

__all__ = [
    "CLASSIFIERS", "IMAGE_MODELS", "IMAGE_RECIPE", "build_classifier", "classifier",
    "CONDITIONAL_MODELS", "DATA_SAMPLE_ROWS", "RECORDED_GUIDANCE", "GAUSSIAN_PATHS", "MANIFEST", "N_TRAIN",
    "REFLOW_MODELS", "REFLOW_STEPS", "STEPS", "TABLE_MODELS", "ZooEntry", "ZooError", "ZooSpec", "build", "build_one",
    "directory", "entries", "load", "recipe", "reference", "specs"
]

N_TRAIN = 20000
GAUSSIAN_PATHS = ("ot", "vp", "ve")
#: Training steps per path: 20,000 (`flowscope train`'s default until issue 18, pinned here), and twice that
#: for VE, whose loss is dominated by its large-noise times (18 against OT's 3) so that the fine detail,
#: learned at small noise, converges last: at 20,000 steps rings-ve still put 25% of its samples between the
#: rings (7% at 40,000). The paper, too, finds the diffusion paths slower to train than OT.
STEPS = {"ot": 20000, "vp": 20000, "ve": 40000, "icfm": 20000}
#: The zoo's models of tables (`flowscope.tables`), OT path: the real ones and our 8-D mixture.
TABLE_MODELS = ("iris", "wine", "engel", "mixture8")
#: The zoo's conditional models (natural labels, classifier-free guidance), OT path.
CONDITIONAL_MODELS = ("8gaussians", "moons", "pinwheel", "iris")
#: Guidance scales at which a conditional model's label accuracy is recorded.
RECORDED_GUIDANCE = (0.0, 1.0, 3.0)
#: The zoo's reflowed models (1-rectified flows, `flowscope.reflow`): (teacher, dataset, source). For 8gaussians
#: -> moons the teacher is the independent coupling's model, whose paths cross and curve (straightness 3.9):
#: that is what reflow straightens; the minibatch-OT model is straight already (0.003) and sits beside both.
REFLOW_MODELS = (("moons-ot", "moons", None), ("checkerboard-ot", "checkerboard", None),
                 ("8gaussians-to-moons-independent", "moons", "8gaussians"))
#: Training steps of a reflowed zoo model (it starts from its teacher's weights).
REFLOW_STEPS = 10000
#: The zoo's image models: (name, dataset, conditional), OT path, U-Net (`flowscope.unet`).
IMAGE_MODELS = (("digits-ot", "digits", False), ("digits-cond", "digits", True))
#: The image models' pinned recipe (`flowscope train --dataset digits`'s defaults when they were built).
IMAGE_RECIPE = replace(recipes.IMAGES.config, device="cpu")
#: The classifiers that judge image models' samples (`flowscope.classifier`), by dataset: their files here.
CLASSIFIERS = {"digits": "digits-classifier.safetensors"}


@dataclass(frozen=True)
class ZooSpec:
    """How to train one zoo model."""

    name: str
    dataset: str
    path: str
    coupling: str = "independent"
    source: str | None = None
    path_params: dict[str, float] = field(default_factory=dict)
    #: 128: the zoo's recipe, pinned (MLPConfig's default became 64 in issue 18; the files stay as built).
    width: int = 128
    fourier_features: int = MLPConfig.fourier_features
    #: "global" (one scale) for the 2-D toys, as they were built; "column" for tables (images map their pixel
    #: range to [-1, 1] whatever this says: `ImageSpec.normalizer`).
    normalize: str = "global"
    steps: int | None = None
    conditional: bool = False
    #: A reflowed model: the zoo model it straightens (`flowscope.reflow`), built after it, and its pairs.
    teacher: str | None = None
    pairs: int = 50000


def specs() -> list[ZooSpec]:
    """Every zoo model: each 2D dataset under each of the paper's paths, 8gaussians -> moons, and the tables."""
    models = [ZooSpec(f"{d}-{p}", d, p) for d in DATASETS for p in GAUSSIAN_PATHS]
    for coupling in ("independent", "ot"):
        models.append(ZooSpec(f"8gaussians-to-moons-{coupling}", "moons", "icfm", coupling, "8gaussians",
                              path_params("icfm")))
    models += [ZooSpec(f"{d}-ot", d, "ot", normalize="column") for d in TABLE_MODELS]
    models += [ZooSpec(f"{d}-cond", d, "ot", normalize="column" if d in tables.TABLES else "global",
                       conditional=True) for d in CONDITIONAL_MODELS]
    models += [ZooSpec(f"{teacher.removesuffix('-ot').removesuffix('-independent')}-reflow", dataset, "ot", REFLOW,
                       source, teacher=teacher, steps=REFLOW_STEPS) for teacher, dataset, source in REFLOW_MODELS]
    models += [ZooSpec(name, dataset, "ot", conditional=conditional, steps=IMAGE_RECIPE.steps)
               for name, dataset, conditional in IMAGE_MODELS]
    return models


def classifier(dataset: str, folder: Path | None = None) -> ImageClassifier:
    """The classifier that judges samples of a built-in image dataset: the zoo's file, or, when it is missing,
    one trained now (seeded: the same weights as `zoo build` makes on this machine, in about a minute)."""
    if dataset not in CLASSIFIERS:
        raise ZooError(f"no classifier for {dataset!r}; the zoo has classifiers for {', '.join(CLASSIFIERS)}")
    file = (folder or directory()) / CLASSIFIERS[dataset]
    if file.is_file():
        return load_classifier(file)
    return _train_classifier(dataset)


def _train_classifier(dataset: str, seed: int = 0) -> ImageClassifier:
    """A classifier trained on the dataset's training split (its seed, not torch's global state: it may run in the
    explorer's server, whose thread count is the server's to set)."""
    return train_classifier(split(image_dataset(dataset))[0], seed=seed)


def build_classifier(dataset: str, folder: Path | None = None, seed: int = 0) -> Path:
    """Train the classifier of a built-in image dataset on its training split and write it into the zoo."""
    return save_classifier(_train_classifier(dataset, seed), (folder or directory()) / CLASSIFIERS[dataset])


def reference(dataset: str) -> Reference:
    """What a zoo model of `dataset` is judged against: fresh draws, or the rows of a real table (W2's floor
    is then that of its two halves)."""
    if not fresh_draws(dataset):
        return make_dataset(dataset, N_TRAIN, seed=0)
    return lambda n, seed: make_dataset(dataset, n, seed)


def load(name: str, folder: Path | None = None, device: str = "cpu") -> FlowModel:
    """Load a zoo model by name, validating its file; unknown, missing or corrupt models raise ZooError."""
    folder = folder or directory()
    by_name = {entry.name: entry for entry in entries(folder)}
    if name not in by_name:
        raise ZooError(f"no zoo model named {name!r}; available: {', '.join(sorted(by_name))}")
    file = folder / by_name[name].file
    if not file.is_file():
        raise ZooError(f"zoo model {name!r}: file {file} is missing; rebuild with `flowscope zoo build --only {name}`")
    try:
        return checkpoint.load(file, device=device)
    except checkpoint.CheckpointError as err:
        raise ZooError(f"zoo model {name!r} is corrupt: {err}") from None


def build(only: list[str] | None = None, out: Path | None = None, seed: int = 0,
          jobs: int | None = None) -> list[ZooEntry]:
    """Train the selected zoo models (all by default) with fixed seeds; write files and the manifest.

    Each model trains on one thread, so its weights do not depend on `jobs` (models built in parallel
    worker processes, default one per core); the manifest is rewritten after every finished model. A reflowed
    model whose teacher is built too waits for it (a second phase).
    """
    folder = out or directory()
    unknown = set(only or ()) - {s.name for s in specs()}
    if unknown:
        raise ZooError(f"unknown zoo models {sorted(unknown)}; available: {[s.name for s in specs()]}")
    chosen = [s for s in specs() if not only or s.name in only]
    for dataset in sorted({s.dataset for s in chosen if s.dataset in IMAGE_DATASETS}):
        if not only or not (folder / CLASSIFIERS[dataset]).is_file():  # the judge first: image models' reports use it
            build_classifier(dataset, folder, seed)
            print(f"{CLASSIFIERS[dataset]:32s} trained on {dataset}'s training split", flush=True)
    try:
        kept = {e.name: e for e in entries(folder)}
    except ZooError:
        kept = {}
    names = {s.name for s in chosen}
    later = [s for s in chosen if s.teacher in names]
    workers = max(1, min(jobs or os.cpu_count() or 1, len(chosen)))
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for phase in ([s for s in chosen if s not in later], later):
            futures = [pool.submit(_build_in_worker, spec, folder, seed) for spec in phase]
            for future in as_completed(futures):
                entry = future.result()
                kept[entry.name] = entry
                write_manifest(folder, [kept[s.name] for s in specs() if s.name in kept], asdict(REFERENCE_SOLVER))
                report = stored_report(entry.metrics)
                nfe = None if report is None else report.nfe
                print(f"{entry.name:32s} {report.headline() if report else ''}  NFE {'-' if nfe is None else nfe:>4}  "
                      f"{entry.build_seconds:5.1f} s", flush=True)
    return [kept[s.name] for s in specs() if s.name in kept]


def _class_summary(flow: FlowModel, dataset: str, labelled: Labelled, seed: int) -> ClassesReport:
    """Per-class W2/floor and label accuracy by guidance, kept in the file (their worst cases go in the summary).

    Held-out points are fresh labelled draws, or, for a real table (no fresh draws), its rows themselves.
    """
    fresh = fresh_draws(dataset)
    held_out = held_out_labelled(dataset, N_TRAIN, seed, labelled)
    classes = evaluate_classes(flow, held_out.x, held_out.y, labelled.x, labelled.y, guidance=RECORDED_GUIDANCE,
                               seed=seed)
    classes = replace(classes, held_out="fresh draws" if fresh else "training rows")
    flow.info["class_metrics"] = classes.to_dict()
    return classes


def _build_in_worker(spec: ZooSpec, folder: Path, seed: int) -> ZooEntry:
    """One model on one thread (deterministic whatever the number of workers)."""
    torch.set_num_threads(1)
    return build_one(spec, folder, seed)


def recipe(spec: ZooSpec, dim: int, seed: int = 0) -> tuple[TrainConfig, MLPConfig]:
    """The training settings and architecture of a zoo model of `dim` columns, pinned where the library's
    defaults moved since the zoo was built (issue 18: width 64, 6,000 steps, OT on blocks of 64 rows), so
    that `zoo build` still makes exactly the shipped files: width 128, 20,000 steps, whole-batch OT."""
    config = TrainConfig(steps=spec.steps or STEPS[spec.path], seed=seed, device="cpu", normalize=spec.normalize,
                         ot_block=0)
    return config, MLPConfig(dim=dim, width=spec.width, fourier_features=spec.fourier_features)


def _build_reflow(spec: ZooSpec, folder: Path, seed: int) -> ZooEntry:
    """Reflow the zoo's teacher model `spec.teacher` (read from `folder`), measure the student, write it."""
    start = time.perf_counter()
    assert spec.teacher is not None
    teacher = load(spec.teacher, folder)
    config = TrainConfig(steps=spec.steps or REFLOW_STEPS, seed=seed, device="cpu", ot_block=0)
    result = reflow(teacher, pairs=spec.pairs, seed=seed, config=config, teacher_name=spec.teacher)
    flow = result.model
    flow.info["metrics"] = metrics = evaluate(flow, reference(spec.dataset), seed=seed,
                                              nll_points=1000 if flow.source is None else 0).stored()
    flow.info["zoo_name"] = spec.name
    file = f"{spec.name}.safetensors"
    checkpoint.save(flow, folder / file)
    return ZooEntry(name=spec.name, file=file, dataset=spec.dataset, path=flow.path.name, coupling=REFLOW,
                    source=spec.source, params=flow.path.config(), steps=len(result.rounds[-1].losses),
                    train_seconds=round(result.rounds[-1].seconds, 1), metrics=metrics,
                    build_seconds=round(time.perf_counter() - start, 1))


def _build_image(spec: ZooSpec, folder: Path, seed: int) -> ZooEntry:
    """Train a zoo image model (a U-Net on the dataset's training split), judge it against the held-out split
    with the dataset's classifier, and write it with its training images."""
    start = time.perf_counter()
    trained, held_out = split(image_dataset(spec.dataset))
    labels = torch.from_numpy(trained.labels) if spec.conditional and trained.labels is not None else None
    config = replace(IMAGE_RECIPE, steps=spec.steps or IMAGE_RECIPE.steps, seed=seed)
    result = train(torch.from_numpy(trained.images), path=spec.path, model=UNetConfig(*trained.spec.shape),
                   config=config, dataset=spec.dataset, dataset_hash=dataset_hash(trained.flat), labels=labels,
                   label_names=trained.names if labels is not None else (), image=trained.spec)
    flow = keep_training_images(result.model, trained)
    report = evaluate_images(flow, trained, held_out, classifier(spec.dataset, folder), seed=seed,
                             guidance=RECORDED_GUIDANCE if spec.conditional else (0.0,))
    flow.info["metrics"] = metrics = report.stored()
    flow.info["zoo_name"] = spec.name
    file = f"{spec.name}.safetensors"
    checkpoint.save(flow, folder / file)
    return ZooEntry(name=spec.name, file=file, dataset=spec.dataset, path=spec.path, coupling=spec.coupling,
                    source=None, params=flow.path.config(), steps=len(result.losses),
                    train_seconds=round(result.seconds, 1), metrics=metrics,
                    build_seconds=round(time.perf_counter() - start, 1))


def build_one(spec: ZooSpec, folder: Path, seed: int = 0) -> ZooEntry:
    """Train one zoo model (or reflow its teacher), measure it and write its checkpoint."""
    if spec.teacher is not None:
        return _build_reflow(spec, folder, seed)
    if spec.dataset in IMAGE_DATASETS:
        return _build_image(spec, folder, seed)
    start = time.perf_counter()
    labelled = make_labelled(spec.dataset, N_TRAIN, seed=seed) if spec.conditional else None
    data = make_dataset(spec.dataset, N_TRAIN, seed=seed) if labelled is None else labelled.x
    source = None
    if spec.source is not None:
        source = torch.from_numpy(make_dataset(spec.source, N_TRAIN, seed=seed + 1))
    config, model = recipe(spec, data.shape[1], seed)
    path = make_path(spec.path, **spec.path_params) if spec.path_params else spec.path
    result = train(torch.from_numpy(data), path=path, model=model, config=config, source=source,
                   coupling=spec.coupling, dataset=spec.dataset, dataset_hash=dataset_hash(data),
                   labels=None if labelled is None else torch.from_numpy(labelled.y),
                   label_names=() if labelled is None else labelled.names)
    flow = result.model
    if flow.source is not None:
        flow.source = flow.source[:2000].clone()  # enough to sample and show the source; keeps files small
    if spec.dataset in tables.TABLES or labelled is not None:  # the model's data sample, as `flowscope train`'s
        keep_data_sample(flow, data, None if labelled is None else labelled.y)
        flow.info["columns"] = list(dataset_columns(spec.dataset))
    quality = evaluate(flow, reference(spec.dataset), seed=seed)
    if labelled is not None:
        accuracy, worst_ratio = _class_summary(flow, spec.dataset, labelled, seed).worst()
        quality = replace(quality, min_class_accuracy=accuracy, max_class_w2_ratio=worst_ratio)
    flow.info["metrics"] = metrics = quality.stored()
    flow.info["zoo_name"] = spec.name
    file = f"{spec.name}.safetensors"
    checkpoint.save(flow, folder / file)
    return ZooEntry(name=spec.name, file=file, dataset=spec.dataset, path=spec.path, coupling=spec.coupling,
                    source=spec.source, params=flow.path.config(), steps=len(result.losses),
                    train_seconds=round(result.seconds, 1), metrics=metrics,
                    build_seconds=round(time.perf_counter() - start, 1))

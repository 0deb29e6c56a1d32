"""The `flowscope` command: train, sample, evaluate and inspect models, build the zoo, start the explorer."""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..data.datasets import (
    ALL_DATASETS,
    Labelled,
    dataset_columns,
    dataset_hash,
    dataset_labels,
    fresh_draws,
    make_dataset,
    make_labelled,
)
from ..data.images import IMAGE_DATASETS
from ..data.kept import DATA_SAMPLE_ROWS, keep_data_sample
from ..data.labels import Labels, encode_labels
from ..data.loader import DEFAULT_LIMITS, DataError, Table, generated_columns, load_table
from ..data.selection import LabelColumn, columns_for_model, label_column, pick_columns, select, take_columns
from ..evaluation.classifier import CLASSIFIER_FORMAT, classifier_info, load_classifier
from ..evaluation.records import ClassesReport, stored_report
from ..evaluation.report import QUALITY_DRAWS, Reference, evaluate, evaluate_classes
from ..flow.model import FlowModel, resolve_device
from ..io import checkpoint
from ..io.arrays import save_array, save_images
from ..maths.couplings import COUPLINGS
from ..maths.normalizer import Normalizer
from ..maths.paths import ICFM_SIGMA, PATH_NAMES, AffinePath
from ..maths.paths import path_params as interpolant_params
from ..nets.models import MLPConfig
from ..solver.sampling import METHODS, SolverConfig
from ..training import distributed, recipes
from ..training.batches import open_npy
from ..training.loop import PRECISIONS, StepInfo, TrainConfig, TrainingDiverged, path_for_data, train
from .images import IMAGE_DEFAULTS, eval_images, is_image_args, train_images
from .numbers import at_least, finite, non_negative, port, positive, rate
from .recorded import print_recorded

__all__ = ["CLIError", "build_parser", "load_data", "main", "streamlit_command"]

#: `flowscope train`'s recipe for points: the library's default (`training.recipes.DEFAULT`).
RECIPE = recipes.DEFAULT
DEFAULTS = RECIPE.config
#: Points per draw of `flowscope eval` of a table model (model samples and data), unless --samples says.
EVAL_SAMPLES = 2000
#: Guidance scales of the per-class figures recorded after training (and eval's default).
CLASS_GUIDANCE = (0.0, 1.0, 3.0)
#: Model samples per class and guidance scale in the per-class figures recorded after training.
CLASS_SAMPLES = 500


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)  # a bad number exits 2 here, naming its option (`numbers`)
    if args.command == "ui":
        args.streamlit_options = extra  # Streamlit's own options, checked by Streamlit
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        result: int = args.handler(args)
        return result
    except (CLIError, DataError, checkpoint.CheckpointError, ValueError) as err:  # ImageCLIError is a ValueError
        print(f"flowscope {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"flowscope {args.command}: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per verb."""
    parser = argparse.ArgumentParser(prog="flowscope", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub.add_parser("train", help="train a flow matching model"))
    _add_sample(sub.add_parser("sample", help="draw samples from a model"))
    info = sub.add_parser("info", help="print a model's stored config and metrics")
    info.add_argument("model", type=Path)
    info.set_defaults(handler=cmd_info)
    _add_eval(sub.add_parser("eval", help="measure a model against data (W2, MMD, NLL, straightness, NFE)"))
    _add_zoo(sub.add_parser("zoo", help="list or build the pretrained models"))
    from .reflow import add_reflow

    add_reflow(sub)
    _add_ui(sub.add_parser("ui", help="start the Streamlit explorer (takes Streamlit's options too)",
                           allow_abbrev=False, formatter_class=argparse.RawDescriptionHelpFormatter,
                           usage="flowscope ui [-h] [--port PORT] [--headless] [STREAMLIT OPTION ...]",
                           description=UI_HELP))
    return parser


COLUMNS_HELP = ("comma-separated columns to use: header names, or 0-based indices among the numeric columns "
                "(default: every numeric column but the --labels one; text columns are always left out)")
LABELS_HELP = ("the class label column of --data, for a conditional model: a header name, or a 0-based index among "
               "ALL the file's columns (text ones included, unlike --columns); a text column, or a numeric one, "
               "which is then not a feature")


def _add_data_args(p: argparse.ArgumentParser) -> None:
    """--dataset / --data / --columns / --n: where data comes from (shared by train and eval)."""
    group = p.add_mutually_exclusive_group()
    group.add_argument("--dataset", choices=ALL_DATASETS + IMAGE_DATASETS, default=None,
                       help="a built-in dataset: a 2-D toy, a table of more columns (mixture8; iris, wine and "
                            "engel need scikit-learn / statsmodels), or the 8x8 digits images (its training split; "
                            "scikit-learn) (default moons)")
    group.add_argument("--data", type=Path,
                       help="a CSV/TSV/.npy/.npz file of shape (n, d) (text columns, no cell a number, are left "
                            "out); or images: an .npy/.npz of shape (n, H, W) or (n, C, H, W), or a .zip of PNGs "
                            "(one folder per class, optionally)")
    p.add_argument("--columns", default=None, help=COLUMNS_HELP)
    p.add_argument("--labels", default=None, metavar="COLUMN", help=LABELS_HELP)
    p.add_argument("--n", "--points", type=at_least(2), default=20000,
                   help="points drawn from a built-in dataset (--points under torchrun, whose own options take --n)")
    p.add_argument("--seed", type=at_least(0), default=0)


def _add_train(p: argparse.ArgumentParser) -> None:
    _add_data_args(p)
    p.add_argument("--source", type=Path, help="a file of source samples (non-Gaussian source)")
    p.add_argument("--source-dataset", choices=ALL_DATASETS, help="a built-in dataset as the source")
    p.add_argument("--path", choices=PATH_NAMES, default="ot")
    p.add_argument("--sigma", type=non_negative, default=None,
                   help=f"--path icfm: the interpolant's noise (default {ICFM_SIGMA:g}; 0 for none); --path ot: "
                        f"sigma_min. With --source / --source-dataset, the ot and cosine paths get interpolant noise "
                        f"{ICFM_SIGMA:g} besides, so that the model's exact field is defined")
    p.add_argument("--coupling", choices=COUPLINGS, default="independent")
    p.add_argument("--steps", type=at_least(1), default=None,
                   help=f"training steps (default {DEFAULTS.steps:,}; images {IMAGE_DEFAULTS.steps:,})")
    p.add_argument("--ot-block", type=at_least(0), default=DEFAULTS.ot_block,
                   help=f"with --coupling ot: solve exact OT within random blocks of this many rows of each batch "
                        f"(0: over the whole batch, slower) (default {DEFAULTS.ot_block})")
    p.add_argument("--batch-size", type=at_least(2), default=None,
                   help=f"(default {DEFAULTS.batch_size}; images {IMAGE_DEFAULTS.batch_size})")
    p.add_argument("--lr", type=positive, default=None, help=f"(default {DEFAULTS.lr:g}; images {IMAGE_DEFAULTS.lr:g})")
    p.add_argument("--width", type=at_least(1), default=RECIPE.width)
    p.add_argument("--depth", type=at_least(1), default=RECIPE.depth)
    p.add_argument("--fourier-features", type=at_least(0), default=MLPConfig.fourier_features,
                   help="random Fourier features of x fed to the MLP (0: raw coordinates only)")
    p.add_argument("--base-channels", type=at_least(1), default=recipes.IMAGES.base,
                   help="images: the U-Net's channels at full resolution (doubled at half resolution)")
    p.add_argument("--no-attention", action="store_true",
                   help="images: no self-attention block at the U-Net's lowest resolution")
    p.add_argument("--precision", choices=PRECISIONS, default=DEFAULTS.precision,
                   help="bf16: the network under bfloat16 autocast; auto (default): so for images on CUDA")
    p.add_argument("--device", default=None, help="cuda, mps or cpu (default: best available)")
    p.add_argument("--normalize", choices=("column", "global"), default=DEFAULTS.normalize,
                   help="standardise each column (default), or one scale for all columns")
    p.add_argument("--resume", type=Path, help="continue training this checkpoint")
    p.add_argument("--check-every", type=at_least(1), default=None, metavar="K",
                   help="read the loss back every K steps (default: 1 on CPU, 64 on CUDA: no wait on the GPU "
                        "each step)")
    p.add_argument("--compile", action="store_true", help="compile the training step with torch.compile")
    p.add_argument("--stream", action="store_true",
                   help="memory-map a --data .npy and stream batches from it (automatic for a .npy over the "
                        "size limit of loaded files)")
    p.add_argument("--conditional", action="store_true",
                   help="train on a built-in dataset's natural labels (the toy's part, iris's species, the digit, "
                        "...) or a zip's class folders: a conditional model, sampled with `flowscope sample --label`")
    p.add_argument("--label-dropout", type=rate, default=None,
                   help=f"with labels: share of training points whose label is replaced by 'no label', which "
                        f"trains the unconditional field that guidance needs (default {DEFAULTS.label_dropout})")
    p.add_argument("--pair-within-class", action="store_true",
                   help="with labels and --coupling ot/sinkhorn: pair noise and data only within each class")
    p.add_argument("--no-eval", action="store_true",
                   help="skip measuring W2 (and, with --conditional, the per-class figures) after training")
    p.add_argument("--no-data-sample", action="store_true",
                   help=f"store no training data in the checkpoint (by default it keeps up to "
                        f"{DATA_SAMPLE_ROWS:,} training rows, a seeded sample with each class in proportion, so "
                        f"that the explorer can show the model with its data)")
    p.add_argument("--out", type=Path, help="output .safetensors (default DATASET-PATH.safetensors)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_train)


def _add_solver_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", choices=METHODS, default="dopri5")
    p.add_argument("--steps", type=at_least(1), default=100, help="steps of a fixed-step method")
    p.add_argument("--atol", type=positive, default=1e-5)
    p.add_argument("--rtol", type=positive, default=1e-5)
    p.add_argument("--device", default=None, help="cuda, mps or cpu (default: best available)")


def _add_sample(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path)
    p.add_argument("-n", type=at_least(1), default=1000, help="number of samples")
    p.add_argument("--out", type=Path, default=Path("samples.npy"),
                   help=".npy, .npz or .csv; an image model's samples are images (n, C, H, W) in the data's units, "
                        "and may also go to a .png grid")
    p.add_argument("--source", type=Path, help="draw the starting points from this file")
    p.add_argument("--columns", default=None,
                   help="the columns of --source to start from: header names or 0-based indices among its numeric "
                        "columns (default: the model's columns by name if the file's header has them, else all)")
    p.add_argument("--seed", type=at_least(0), default=0)
    p.add_argument("--label", default=None,
                   help="a conditional model's class to sample: its name, or its 0-based index (a name first) "
                        "(default: the model's unconditional field)")
    p.add_argument("--guidance", type=finite, default=None, metavar="W",
                   help="classifier-free guidance scale w with --label: v + w (v(label) - v(none)); "
                        "0 is plain conditional sampling (default 0)")
    _add_solver_args(p)
    p.set_defaults(handler=cmd_sample)


def _add_eval(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path)
    _add_data_args(p)
    p.add_argument("--samples", type=at_least(2), default=None,
                   help=f"points per draw (model samples and data) (default {EVAL_SAMPLES}; images: as many as "
                        "held-out images)")
    p.add_argument("--draws", type=at_least(1), default=QUALITY_DRAWS,
                   help="draws that W2 and its i.i.d. floor are averaged over (random disjoint subsets of --data)")
    p.add_argument("--guidance", default="0,1,3", metavar="W,W,...",
                   help="a conditional model's guidance scales of the per-class label accuracy (default 0,1,3)")
    _add_solver_args(p)
    p.set_defaults(handler=cmd_eval)


def _add_zoo(p: argparse.ArgumentParser) -> None:
    zoo = p.add_subparsers(dest="zoo_command", required=True)
    ls = zoo.add_parser("list", help="list the pretrained models")
    ls.set_defaults(handler=cmd_zoo_list)
    build = zoo.add_parser("build", help="train every zoo model (or --only NAME) into pretrained/")
    build.add_argument("--only", action="append", default=None, help="build just this model (repeatable)")
    build.add_argument("--out", type=Path, default=None, help="folder (default: the checkout's pretrained/)")
    build.add_argument("--jobs", type=at_least(1), default=None,
                       help="models trained in parallel (default: one per core)")
    build.set_defaults(handler=cmd_zoo_build)


UI_HELP = """Start the Streamlit explorer; stopping this command (Ctrl+C, SIGTERM) stops the server.

Every other option is passed on to `streamlit run` as it is, for example:
  flowscope ui --server.port 8601 --server.headless true
  flowscope ui --theme.base dark --server.address 0.0.0.0
(`streamlit run --help` lists them.) --port and --headless are shorthands for --server.port and
--server.headless true; giving a shorthand together with the option it stands for is an error."""


def _add_ui(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=port, default=None,
                   help="shorthand for --server.port PORT (Streamlit's default 8501)")
    p.add_argument("--headless", action="store_true", help="shorthand for --server.headless true: open no browser")
    p.set_defaults(handler=cmd_ui, streamlit_options=[])


def load_data(args: argparse.Namespace, n: int | None = None) -> tuple[np.ndarray, str, str]:
    """The data selected by --dataset / --data and --columns: (points, display name, hash)."""
    chosen = _chosen_data(args, n)
    return chosen.points, chosen.name, dataset_hash(chosen.points)


@dataclass(frozen=True, eq=False)
class _Chosen:
    """The data of --data / --dataset: points, display name, column names, their positions among the dataset's
    (numeric) columns, and with --labels / --conditional the class of each point and the label column's name."""

    points: np.ndarray
    name: str
    columns: list[str]
    index: list[int]
    labels: Labels | None = None
    label_column: str | None = None
    streamed: bool = False
    hash: str = ""


def _streamed_npy(args: argparse.Namespace) -> _Chosen | None:
    """With --stream, or for a .npy over the loaded files' size limit: the file memory-mapped (rows are read as
    training streams them), its columns named as a loaded array's (`generated_columns`); None otherwise."""
    path: Path = args.data
    big = path.suffix.lower() == ".npy" and path.is_file() and path.stat().st_size > DEFAULT_LIMITS.max_bytes
    if not (getattr(args, "stream", False) or big):
        return None
    if path.suffix.lower() != ".npy":
        raise CLIError(f"--stream memory-maps a .npy file; {path.name} is not one")
    if getattr(args, "columns", None) is not None or getattr(args, "labels", None) is not None:
        raise CLIError("a streamed .npy trains on all its columns, without labels: drop --columns / --labels")
    points = open_npy(path)
    digest = hashlib.sha256(repr(points.shape).encode())
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    columns = list(generated_columns(points.shape[1]))
    return _Chosen(points, path.name, columns, list(range(points.shape[1])), streamed=True,
                   hash=digest.hexdigest()[:16])


def _chosen_data(args: argparse.Namespace, n: int | None = None, *, conditional: bool = False) -> _Chosen:
    """The points of --data / --dataset less the columns that --columns (or --labels) leaves out (a file's text
    columns are left out, and said so); with --labels, or `conditional` for a built-in dataset, their labels."""
    if args.data is not None:
        streamed = _streamed_npy(args)
        if streamed is not None:
            return streamed
        file = args.data.name
        table = _read_table(args.data, getattr(args, "labels", None))
        chosen = select(table, file, args.columns, getattr(args, "labels", None))
        return _Chosen(chosen.points, file, list(chosen.columns), chosen.index, chosen.labels,
                       None if chosen.label is None else chosen.label.name)
    if getattr(args, "labels", None) is not None:
        raise CLIError("--labels names a column of a --data file; a built-in dataset's natural labels are "
                       "--conditional")
    name = args.dataset or "moons"
    columns = dataset_columns(name)
    index = pick_columns(Table(np.empty((0, len(columns))), columns), args.columns, name)
    if not conditional:
        return _Chosen(take_columns(make_dataset(name, n or args.n, seed=args.seed), index), name,
                       [columns[k] for k in index], index)
    labelled = _labelled(name, n or args.n, args.seed)
    return _Chosen(take_columns(labelled.x, index), name, [columns[k] for k in index], index,
                   Labels(indices=labelled.y, names=labelled.names))


def _labelled(name: str, n: int, seed: int) -> Labelled:
    """make_labelled, or a CLIError listing the built-in datasets that have natural labels."""
    if not dataset_labels(name):
        having = ", ".join(d for d in ALL_DATASETS if dataset_labels(d))
        raise CLIError(f"dataset {name!r} has no natural labels; the datasets with labels are: {having}")
    return make_labelled(name, n, seed)


def _read_table(path: Path, labels: str | None = None) -> Table:
    """Load a data file, printing (to stderr) each text column it leaves out and why, but the one that
    `labels` (a --labels value) names."""
    table = load_table(path)
    skip = None
    if labels is not None:
        try:
            skip = label_column(table, labels, path.name).name
        except DataError:
            pass  # said when the labels are read
    for column in table.dropped:
        if column.name != skip:
            print(f"{path.name}: left out column {column.name!r} ({column.reason})", file=sys.stderr)
    return table


def _reference(name: str, index: list[int], data: np.ndarray) -> Reference:
    """What a model of built-in dataset `name` (columns `index`) is judged against: fresh draws, or `data`,
    the rows of a real table (a sampler would give the same rows for every seed; W2's floor is then that of
    two disjoint halves)."""
    if not fresh_draws(name):
        return data
    return lambda n, seed: take_columns(make_dataset(name, n, seed), index)


def _progress(total: int, quiet: bool) -> tuple[Callable[[StepInfo, FlowModel], None], Callable[[], None]]:
    """A tqdm progress bar with the running loss, as a training callback and a close function."""
    if quiet:
        return (lambda info, flow: None), (lambda: None)
    from tqdm import tqdm

    bar = tqdm(total=total, unit="step", dynamic_ncols=True)
    running: list[float] = []

    def on_step(info: StepInfo, flow: FlowModel) -> None:
        running.append(info.loss)
        if info.step % 50 == 0 or info.step == total:
            bar.set_postfix(loss=f"{sum(running[-50:]) / len(running[-50:]):.4f}", refresh=False)
            bar.update(info.step - bar.n)

    return on_step, bar.close


def _check_label_options(args: argparse.Namespace) -> bool:
    """Whether train is conditional (--labels, or --conditional on a built-in dataset), after checking that the
    label options fit together."""
    if args.conditional and args.data is not None and args.labels is None:
        raise CLIError("--conditional uses a built-in dataset's natural labels; for a --data file give "
                       "--labels COLUMN")
    conditional = bool(args.conditional or args.labels is not None)
    if not conditional:
        for given, option in ((args.label_dropout is not None, "--label-dropout"),
                              (args.pair_within_class, "--pair-within-class")):
            if given:
                raise CLIError(f"{option} needs labels: --labels COLUMN with --data, or --conditional")
    if args.pair_within_class and args.coupling == "independent":
        raise CLIError("--pair-within-class pairs within classes by minibatch OT: give --coupling ot or sinkhorn")
    return conditional


def cmd_train(args: argparse.Namespace) -> int:
    """flowscope train: fit a model and write it as .safetensors (atomically), with its columns and a data sample
    (and, for a conditional model, its labels, the data sample's labels and per-class figures); images train a
    U-Net (`cli_images`)."""
    if is_image_args(args):
        steps = IMAGE_DEFAULTS.steps if args.steps is None else args.steps
        return train_images(args, _progress(steps, args.quiet or not distributed.current().is_main))
    for option in ("steps", "batch_size", "lr"):  # not given: the recipe's (images have their own, above)
        if getattr(args, option) is None:
            setattr(args, option, getattr(DEFAULTS, option))
    conditional = _check_label_options(args)
    chosen = _chosen_data(args, conditional=conditional)
    data, name, columns, index, labels = chosen.points, chosen.name, chosen.columns, chosen.index, chosen.labels
    source = None
    if args.source is not None:
        source = torch.from_numpy(columns_for_model(_read_table(args.source), args.source.name, None, columns))
    elif args.source_dataset is not None:
        source = torch.from_numpy(make_dataset(args.source_dataset, args.n, seed=args.seed + 1))
        name = f"{args.source_dataset}->{name}"
    if source is not None and source.shape[1] != data.shape[1]:
        raise CLIError(f"source has {source.shape[1]} columns but the data has {data.shape[1]}")
    path_params = interpolant_params(args.path, args.sigma, stored_source=source is not None)
    label_options = {} if args.label_dropout is None else {"label_dropout": args.label_dropout}
    config = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                         device=args.device, normalize=args.normalize, pair_within_class=args.pair_within_class,
                         ot_block=args.ot_block, check_every=args.check_every, compile_step=args.compile,
                         stream=True if chosen.streamed else None, precision=args.precision, **label_options)
    resume = checkpoint.load(args.resume) if args.resume else None
    main_rank = distributed.current().is_main  # under torchrun: rank 0 shows progress, evaluates and writes
    on_step, close = _progress(args.steps, args.quiet or not main_rank)
    path_arg = args.path if not path_params else _path_with(args.path, path_params, data, args.normalize)
    try:
        result = train(data if chosen.streamed else torch.from_numpy(data), path=path_arg, config=config, source=source,
                       model=MLPConfig(dim=data.shape[1], width=args.width, depth=args.depth,
                                       fourier_features=args.fourier_features),
                       coupling=args.coupling, dataset=name, dataset_hash=chosen.hash or dataset_hash(data),
                       callback=on_step,
                       resume=resume, labels=None if labels is None else torch.from_numpy(labels.indices),
                       label_names=() if labels is None else labels.names)
    except TrainingDiverged as err:
        close()
        if not main_rank:
            return 2  # rank 0 saves the last good weights and says why, for every rank
        out = _out_path(args, name)
        _record(err.result.model, chosen, None if args.no_data_sample else data)
        checkpoint.save(err.result.model, out)
        raise CLIError(f"{err}; saved them to {out}") from None
    close()
    if not main_rank:
        return 0
    flow = _record(result.model, chosen, None if args.no_data_sample else data)
    if not args.no_eval and args.data is None:
        dataset = args.dataset or "moons"
        if source is None:
            report = evaluate(flow, _reference(dataset, index, data), seed=args.seed, nll_points=0)
            flow.info["metrics"] = report.stored()
        if labels is not None:
            flow.info["class_metrics"] = _class_metrics(flow, dataset, index, data, labels, args.n,
                                                        args.seed).to_dict()
    trained_on = flow.device
    out = checkpoint.save(flow.to("cpu"), _out_path(args, name))
    print(f"trained {result.seconds:.1f} s on {trained_on}, final loss {np.mean(result.losses[-100:]):.4f}; "
          f"wrote {out}")
    if labels is not None:
        print(f"conditional on {len(labels.names)} classes"
              + (f" of column {chosen.label_column!r}" if chosen.label_column else "")
              + f": {', '.join(map(repr, labels.names))}")
    print_recorded(flow.info)
    return 0


def _record(flow: FlowModel, chosen: _Chosen, data: np.ndarray | None) -> FlowModel:
    """Store in the model its column names (and label column) and, unless `data` is None, its data sample
    (`kept.keep_data_sample`: seeded, by class), so that the explorer can show it without the dataset."""
    flow.info["columns"] = list(chosen.columns)
    if chosen.label_column is not None:
        flow.info["label_column"] = chosen.label_column
    if data is not None:
        keep_data_sample(flow, data, None if chosen.labels is None else chosen.labels.indices)
    return flow


def _class_metrics(flow: FlowModel, dataset: str, index: list[int], data: np.ndarray, labels: Labels, n: int,
                   seed: int) -> ClassesReport:
    """Per-class W2/floor (guidance 0) and label accuracy by guidance of a model of built-in `dataset`: held out
    are fresh labelled draws (seed + 10,001), or, for a real table (no fresh draws), its training rows."""
    fresh = fresh_draws(dataset)
    if fresh:
        drawn = make_labelled(dataset, n, seed + 10_001)
        held_out, held_out_labels = take_columns(drawn.x, index), drawn.y
    else:
        held_out, held_out_labels = data, labels.indices
    classes = evaluate_classes(flow, held_out, held_out_labels, data, labels.indices, guidance=CLASS_GUIDANCE,
                               n=CLASS_SAMPLES, seed=seed)
    return replace(classes, held_out="fresh draws" if fresh else "training rows")


def _path_with(name: str, params: dict[str, float], data: np.ndarray, normalize: str) -> AffinePath:
    """A path name with explicit parameters, built for the normalised data."""
    z = Normalizer.fit(torch.from_numpy(data), per_column=normalize == "column").encode(torch.from_numpy(data))
    return path_for_data(name, z, **params)


def _out_path(args: argparse.Namespace, name: str) -> Path:
    out: Path | None = args.out
    return out if out is not None else Path(f"{name.replace('->', '-to-')}-{args.path}.safetensors")


def _solver(args: argparse.Namespace) -> SolverConfig:
    return SolverConfig(method=args.method, steps=args.steps, atol=args.atol, rtol=args.rtol)


def cmd_sample(args: argparse.Namespace) -> int:
    """flowscope sample: integrate the ODE from the prior (or --source) and save the end points."""
    flow = checkpoint.load(args.model, device=resolve_device(args.device))
    generator = torch.Generator().manual_seed(args.seed)
    x0 = None
    if args.source is not None and flow.image is not None:
        raise CLIError(f"{args.model.name} is an image model: it starts from Gaussian noise (drop --source)")
    if args.source is not None:
        start = columns_for_model(_read_table(args.source), args.source.name, args.columns, flow.info.get("columns"))
        if start.shape[1] != flow.dim:
            raise CLIError(f"{args.source.name}: has {start.shape[1]} columns, the model needs {flow.dim}")
        x0 = torch.from_numpy(start).to(flow.device)
    label, guidance = _label_and_guidance(flow, args)
    result = flow.sample(args.n if x0 is None else None, x0=x0, solver=_solver(args), generator=generator,
                         label=label, guidance=guidance)
    if flow.image is not None:
        save_images(np.asarray(flow.image.unflatten(flow.image.to_pixels(result.samples.cpu().numpy()))), args.out)
    else:
        samples = result.samples.cpu().numpy()
        stored = flow.info.get("columns")  # a CSV of samples keeps the names of the columns the model learned
        names = [str(c) for c in stored] if isinstance(stored, list) and len(stored) == samples.shape[1] else None
        save_array(samples, args.out, columns=names)
    if result.fallback is not None:
        print(f"flowscope sample: {result.fallback}", file=sys.stderr)
    of = "" if label is None else f" of label {flow.labels[label]!r} (w = {guidance:g})"
    print(f"wrote {len(result.samples)} samples{of} to {args.out} (NFE {result.nfe})")
    return 0


def _label_and_guidance(flow: FlowModel, args: argparse.Namespace) -> tuple[int | None, float]:
    """The class index that --label names (by name, else by index) and the guidance scale; CLIError for a label
    the model does not have (listing its labels), a label of an unconditional model, or guidance without one."""
    model = args.model.name
    if args.label is None:
        if args.guidance is not None:
            raise CLIError("--guidance needs --label: guidance pushes samples towards a class")
        return None, 0.0
    if not flow.conditional:
        raise CLIError(f"{model}: --label needs a conditional model; this one was trained without labels "
                       "(train with --labels COLUMN or --conditional)")
    token = args.label.strip()
    try:
        guidance = 0.0 if args.guidance is None else args.guidance
        if token in flow.labels:
            return flow.labels.index(token), guidance
        if token.isascii() and token.isdigit():
            return flow.label_index(int(token)), guidance
        return flow.label_index(token), 0.0
    except ValueError as err:
        raise CLIError(f"{model}: {err}") from None




def cmd_info(args: argparse.Namespace) -> int:
    """flowscope info: the stored config and metrics of a model, or what a classifier file is, validated by
    loading it; any other file is named as neither."""
    data = checkpoint.read_bounded(args.model)
    kind = checkpoint.safetensors_metadata(data, args.model.name).get("format")
    if kind == CLASSIFIER_FORMAT:
        print(json.dumps(classifier_info(load_classifier(args.model)), indent=2))
        return 0
    if kind != checkpoint.FORMAT:
        raise CLIError(f"{args.model.name}: neither a flowscope model nor a flowscope classifier (its metadata's "
                       f"format is {kind!r}, expected {checkpoint.FORMAT!r} or {CLASSIFIER_FORMAT!r})")
    flow = checkpoint.from_bytes(data, args.model.name)
    print(json.dumps(checkpoint.config_of(flow), indent=2))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """flowscope eval: W2 and its floor, MMD, energy distance, NLL, straightness, NFE against data."""
    flow = checkpoint.load(args.model, device=resolve_device(args.device))
    guidance = _guidance_list(args.guidance)
    if flow.image is not None:
        return eval_images(args, flow, _solver(args), guidance)
    if args.samples is None:
        args.samples = EVAL_SAMPLES
    reference: Reference
    names = flow.info.get("columns")
    labelled: tuple[np.ndarray, np.ndarray] | None = None  # the data's points and classes (model indices)
    if args.labels is not None and not flow.conditional:
        raise CLIError(f"{args.model.name}: --labels is for a conditional model; this one was trained without "
                       "labels")
    if args.data is not None:
        name = args.data.name
        stored = flow.info.get("label_column") if flow.conditional else None
        table = _read_table(args.data, args.labels if args.labels is not None or not isinstance(stored, str)
                            else stored)
        label = _eval_label_column(table, name, args.labels, flow)
        reference = columns_for_model(table, name, args.columns, names, label)
        if label is not None:
            labelled = reference, _model_classes(flow, label, name)
    else:
        if args.labels is not None:
            raise CLIError("--labels names a column of a --data file; a built-in dataset's natural labels are "
                           "used by themselves")
        name = args.dataset or "moons"
        columns = dataset_columns(name)
        table = Table(np.empty((0, len(columns))), columns, header=True)  # a built-in set's names, for --columns
        index = list(range(len(columns)))
        if args.columns is not None:
            index = pick_columns(table, args.columns, name)
        elif isinstance(names, list) and names and all(isinstance(c, str) and c in columns for c in names):
            index = [columns.index(c) for c in names]
        points = make_dataset(name, args.n, seed=args.seed)
        reference = _reference(name, index, take_columns(points, index))
        if flow.conditional and dataset_labels(name):
            if set(dataset_labels(name)) <= set(flow.labels):
                drawn = make_labelled(name, args.n, args.seed)
                labelled = take_columns(drawn.x, index), _to_model_classes(flow, drawn.names, drawn.y, name)
            else:
                print(f"flowscope eval: {name}'s labels are not the model's, so no per-class figures",
                      file=sys.stderr)
    dim = reference.shape[1] if isinstance(reference, np.ndarray) else reference(2, 0).shape[1]
    if dim != flow.dim:
        raise CLIError(f"{name}: data has {dim} columns, the model needs {flow.dim}")
    if flow.conditional and labelled is None and not (args.data is None and dataset_labels(name)):
        print(f"flowscope eval: {name} has no labels, so no per-class figures"
              + (" (give --labels COLUMN)" if args.data is not None else ""), file=sys.stderr)
    report = evaluate(flow, reference, n=args.samples, repeats=args.draws, solver=_solver(args), seed=args.seed)
    printed = report.to_dict()
    if labelled is not None:
        held_out, held_out_labels = labelled
        if flow.data is not None and flow.data_labels is not None:
            train_points, train_labels = flow.data.cpu().numpy(), flow.data_labels.cpu().numpy()
            against = "the model's training data sample"
        else:
            train_points, train_labels = held_out, held_out_labels
            against = "the data given"
        classes = evaluate_classes(flow, held_out, held_out_labels, train_points, train_labels,
                                   guidance=guidance, n=args.samples, seed=args.seed, solver=_solver(args))
        printed.update(replace(classes, accuracy_against=against).to_dict())
    print(json.dumps(printed, indent=2))
    return 0


def _guidance_list(spec: str) -> tuple[float, ...]:
    """The guidance scales of a comma list such as '0,1,3'; CLIError for anything else."""
    try:
        values = tuple(float(part) for part in spec.split(","))
    except ValueError:
        raise CLIError(f"--guidance takes a comma list of numbers such as 0,1,3, got {spec!r}") from None
    if not all(np.isfinite(values)):
        raise CLIError(f"--guidance values must be finite, got {spec!r}")
    return tuple(dict.fromkeys(values))


def _eval_label_column(table: Table, file: str, spec: str | None, flow: FlowModel) -> LabelColumn | None:
    """The label column of an eval file: --labels, else the model's own label column when the file has it."""
    if spec is not None:
        return label_column(table, spec, file)
    stored = flow.info.get("label_column")
    if flow.conditional and isinstance(stored, str) and (stored in table.columns or stored in table.text):
        return label_column(table, stored, file)
    return None


def _model_classes(flow: FlowModel, label: LabelColumn, file: str) -> np.ndarray:
    """The model's class index of each row of a label column (checked as in training)."""
    encoded = encode_labels(label.cells, file=file, column=label.name)
    return _to_model_classes(flow, encoded.names, encoded.indices, f"{file}: label column {label.name!r}")


def _to_model_classes(flow: FlowModel, names: Sequence[str], indices: np.ndarray, where: str) -> np.ndarray:
    """Class indices into `names` as indices into the model's labels; CLIError for a class the model lacks."""
    unknown = [name for name in names if name not in flow.labels]
    if unknown:
        raise CLIError(f"{where}: class(es) {', '.join(map(repr, unknown))} are not among the model's labels "
                       f"{', '.join(map(repr, flow.labels))}")
    mapping = np.array([flow.labels.index(name) for name in names], dtype=np.int64)
    return mapping[indices]


def cmd_zoo_list(args: argparse.Namespace) -> int:
    """flowscope zoo list: the pretrained models and their headline metrics."""
    from ..zoo import registry as zoo

    for entry in zoo.entries():
        report = stored_report(entry.metrics)
        print(f"{entry.name:32s} {entry.dataset:24s} {entry.path:4s} {entry.coupling:12s} "
              f"{report.headline() if report is not None else 'no recorded quality'}")
    return 0


def cmd_zoo_build(args: argparse.Namespace) -> int:
    """flowscope zoo build: train the zoo's models reproducibly and write pretrained/ and its manifest."""
    from ..zoo import registry as zoo

    zoo.build(only=args.only, out=args.out, jobs=args.jobs)
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    """flowscope ui: run the Streamlit explorer (needs the `ui` extra) as this very process."""
    # located, not imported: the explorer is a program of its own, above the core (pyproject's import contracts)
    explorer = importlib.util.find_spec("flowscope_ui")
    if explorer is None or explorer.origin is None or importlib.util.find_spec("streamlit") is None:
        raise CLIError("the explorer is not installed; pip install 'flowscope[ui]'")
    app = Path(explorer.origin).with_name("app.py")
    return _run_in_place(streamlit_command(app, args.streamlit_options, port=args.port, headless=args.headless))


def streamlit_command(app: Path, options: Sequence[str] = (), *, port: int | None = None,
                      headless: bool = False) -> list[str]:
    """`python -m streamlit run APP OPTIONS...`, with the --port / --headless shorthands translated."""
    command = [sys.executable, "-m", "streamlit", "run", str(app)]
    for name, value, given in (("--server.port", str(port), port is not None),
                               ("--server.headless", "true", headless)):
        if not given:
            continue
        if any(option == name or option.startswith(f"{name}=") for option in options):
            shorthand = "--port" if name == "--server.port" else "--headless"
            raise CLIError(f"give {shorthand} or {name}, not both")
        command += [name, value]
    return [*command, *options]


def _run_in_place(command: list[str]) -> int:
    """Replace this process by `command` (POSIX) so that a signal to `flowscope ui` reaches the server itself.

    A child would outlive a killed parent and keep its port; where exec cannot replace the process
    (Windows), wait for the child instead.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "posix":
        os.execv(command[0], command)  # does not return
    return subprocess.call(command)


if __name__ == "__main__":
    raise SystemExit(main())

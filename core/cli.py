"""The `flowscope` command: train, sample, evaluate and inspect models, build the zoo, start the explorer."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from . import checkpoint, tables
from .couplings import COUPLINGS
from .data import ALL_DATASETS, dataset_columns, dataset_hash, make_dataset
from .evaluation import QUALITY_DRAWS, Reference, evaluate, recorded_metrics
from .files import write_atomic
from .flow import FlowModel, resolve_device
from .loader import DataError, Table, load_table
from .models import MLPConfig, Normalizer
from .paths import PATH_NAMES, AffinePath
from .sampling import METHODS, SolverConfig
from .training import StepInfo, TrainConfig, TrainingDiverged, path_for_data, train
from .zoo import DATA_SAMPLE_ROWS

__all__ = ["CLIError", "build_parser", "load_data", "main", "save_array", "streamlit_command"]

DEFAULTS = TrainConfig()


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "ui":
        args.streamlit_options = extra  # Streamlit's own options, checked by Streamlit
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        result: int = args.handler(args)
        return result
    except (CLIError, DataError, checkpoint.CheckpointError, ValueError) as err:
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
    _add_ui(sub.add_parser("ui", help="start the Streamlit explorer (takes Streamlit's options too)",
                           allow_abbrev=False, formatter_class=argparse.RawDescriptionHelpFormatter,
                           usage="flowscope ui [-h] [--port PORT] [--headless] [STREAMLIT OPTION ...]",
                           description=UI_HELP))
    return parser


COLUMNS_HELP = ("comma-separated columns to use: header names, or 0-based indices among the numeric columns "
                "(default: every numeric column; text columns are always left out)")


def _add_data_args(p: argparse.ArgumentParser) -> None:
    """--dataset / --data / --columns / --n: where data comes from (shared by train and eval)."""
    group = p.add_mutually_exclusive_group()
    group.add_argument("--dataset", choices=ALL_DATASETS, default=None,
                       help="a built-in dataset: a 2-D toy, or a table of more columns (mixture8; iris, wine and "
                            "engel need scikit-learn / statsmodels) (default moons)")
    group.add_argument("--data", type=Path,
                       help="a CSV/TSV/.npy/.npz file of shape (n, d); text columns (no cell a number) are left out")
    p.add_argument("--columns", default=None, help=COLUMNS_HELP)
    p.add_argument("--n", type=int, default=20000, help="points drawn from a built-in dataset")
    p.add_argument("--seed", type=int, default=0)


def _add_train(p: argparse.ArgumentParser) -> None:
    _add_data_args(p)
    p.add_argument("--source", type=Path, help="a file of source samples (non-Gaussian source)")
    p.add_argument("--source-dataset", choices=ALL_DATASETS, help="a built-in dataset as the source")
    p.add_argument("--path", choices=PATH_NAMES, default="ot")
    p.add_argument("--sigma", type=float, default=None, help="I-CFM noise / OT sigma_min")
    p.add_argument("--coupling", choices=COUPLINGS, default="independent")
    p.add_argument("--steps", type=int, default=DEFAULTS.steps)
    p.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size)
    p.add_argument("--lr", type=float, default=DEFAULTS.lr)
    p.add_argument("--width", type=int, default=MLPConfig.width)
    p.add_argument("--depth", type=int, default=MLPConfig.depth)
    p.add_argument("--fourier-features", type=int, default=MLPConfig.fourier_features,
                   help="random Fourier features of x fed to the MLP (0: raw coordinates only)")
    p.add_argument("--device", default=None, help="cuda, mps or cpu (default: best available)")
    p.add_argument("--normalize", choices=("column", "global"), default=DEFAULTS.normalize,
                   help="standardise each column (default), or one scale for all columns")
    p.add_argument("--resume", type=Path, help="continue training this checkpoint")
    p.add_argument("--no-eval", action="store_true", help="skip measuring W2 after training")
    p.add_argument("--no-data-sample", action="store_true",
                   help=f"store no training data in the checkpoint (by default it keeps up to "
                        f"{DATA_SAMPLE_ROWS:,} training rows, so that the explorer can show the model with its data)")
    p.add_argument("--out", type=Path, help="output .safetensors (default DATASET-PATH.safetensors)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_train)


def _add_solver_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", choices=METHODS, default="dopri5")
    p.add_argument("--steps", type=int, default=100, help="steps of a fixed-step method")
    p.add_argument("--atol", type=float, default=1e-5)
    p.add_argument("--rtol", type=float, default=1e-5)
    p.add_argument("--device", default=None, help="cuda, mps or cpu (default: best available)")


def _add_sample(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path)
    p.add_argument("-n", type=int, default=1000, help="number of samples")
    p.add_argument("--out", type=Path, default=Path("samples.npy"), help=".npy, .npz or .csv")
    p.add_argument("--source", type=Path, help="draw the starting points from this file")
    p.add_argument("--columns", default=None,
                   help="the columns of --source to start from: header names or 0-based indices among its numeric "
                        "columns (default: the model's columns by name if the file's header has them, else all)")
    p.add_argument("--seed", type=int, default=0)
    _add_solver_args(p)
    p.set_defaults(handler=cmd_sample)


def _add_eval(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path)
    _add_data_args(p)
    p.add_argument("--samples", type=int, default=2000, help="points per draw (model samples and data)")
    p.add_argument("--draws", type=int, default=QUALITY_DRAWS,
                   help="draws that W2 and its i.i.d. floor are averaged over (random disjoint subsets of --data)")
    _add_solver_args(p)
    p.set_defaults(handler=cmd_eval)


def _add_zoo(p: argparse.ArgumentParser) -> None:
    zoo = p.add_subparsers(dest="zoo_command", required=True)
    ls = zoo.add_parser("list", help="list the pretrained models")
    ls.set_defaults(handler=cmd_zoo_list)
    build = zoo.add_parser("build", help="train every zoo model (or --only NAME) into pretrained/")
    build.add_argument("--only", action="append", default=None, help="build just this model (repeatable)")
    build.add_argument("--out", type=Path, default=None, help="folder (default: the checkout's pretrained/)")
    build.add_argument("--jobs", type=int, default=None, help="models trained in parallel (default: one per core)")
    build.set_defaults(handler=cmd_zoo_build)


UI_HELP = """Start the Streamlit explorer; stopping this command (Ctrl+C, SIGTERM) stops the server.

Every other option is passed on to `streamlit run` as it is, for example:
  flowscope ui --server.port 8601 --server.headless true
  flowscope ui --theme.base dark --server.address 0.0.0.0
(`streamlit run --help` lists them.) --port and --headless are shorthands for --server.port and
--server.headless true; giving a shorthand together with the option it stands for is an error."""


def _add_ui(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=None, help="shorthand for --server.port PORT (Streamlit's default 8501)")
    p.add_argument("--headless", action="store_true", help="shorthand for --server.headless true: open no browser")
    p.set_defaults(handler=cmd_ui, streamlit_options=[])


def load_data(args: argparse.Namespace, n: int | None = None) -> tuple[np.ndarray, str, str]:
    """The data selected by --dataset / --data and --columns: (points, display name, hash)."""
    points, name, _, _ = _chosen_data(args, n)
    return points, name, dataset_hash(points)


def _chosen_data(args: argparse.Namespace, n: int | None = None) -> tuple[np.ndarray, str, list[str], list[int]]:
    """(points, display name, column names, their positions among the dataset's columns) of --data / --dataset,
    less the columns that --columns leaves out (a file's text columns are left out, and said so)."""
    if args.data is not None:
        table = _read_table(args.data)
        index = _pick(args.columns, table, args.data.name)
        return _take(table.values, index), args.data.name, [table.columns[k] for k in index], index
    name = args.dataset or "moons"
    columns = dataset_columns(name)
    index = _pick(args.columns, Table(np.empty((0, len(columns))), columns), name)
    return _take(make_dataset(name, n or args.n, seed=args.seed), index), name, [columns[k] for k in index], index


def _read_table(path: Path) -> Table:
    """Load a data file, printing (to stderr) each text column it leaves out and why."""
    table = load_table(path)
    for column in table.dropped:
        print(f"{path.name}: left out column {column.name!r} ({column.reason})", file=sys.stderr)
    return table


def _take(points: np.ndarray, index: list[int]) -> np.ndarray:
    """The columns `index` of points (the array itself when that is all of them, in order)."""
    return points if index == list(range(points.shape[1])) else np.ascontiguousarray(points[:, index])


def _pick(spec: str | None, table: Table, file: str) -> list[int]:
    """The positions among `table.columns` that a --columns value names (all when None); CLIError for a name
    that is not a numeric column, naming the file, the name and the columns there are."""
    columns = table.columns
    if spec is None:
        return list(range(len(columns)))
    available = (f"the numeric columns are {', '.join(map(repr, columns))} "
                 f"(or their indices 0-{len(columns) - 1})")
    chosen: list[int] = []
    for token in (part.strip() for part in spec.split(",")):
        if token in columns:
            k = columns.index(token)
        elif token.isascii() and token.isdigit() and int(token) < len(columns):
            k = int(token)
        else:
            text = next((column for column in table.dropped if column.name == token), None)
            if text is not None:
                raise CLIError(f"{file}: column {token!r} was left out as text ({text.reason}); {available}")
            raise CLIError(f"{file}: --columns names {token!r}, which is not a column; {available}")
        if k in chosen:
            raise CLIError(f"{file}: --columns names column {columns[k]!r} twice")
        chosen.append(k)
    return chosen


def _for_model(table: Table, file: str, spec: str | None, names: object) -> np.ndarray:
    """A file's points for a model of columns `names`: those --columns picks if given, else the columns named
    `names` when the file's header has them all, else all its numeric columns (the caller checks the count)."""
    if spec is not None:
        return _take(table.values, _pick(spec, table, file))
    if (isinstance(names, list) and names and table.header
            and all(isinstance(name, str) and name in table.columns for name in names)):
        return _take(table.values, [table.columns.index(name) for name in names])
    return table.values


def _reference(name: str, index: list[int], data: np.ndarray) -> Reference:
    """What a model of built-in dataset `name` (columns `index`) is judged against: fresh draws, or `data`,
    the rows of a real table (a sampler would give the same rows for every seed; W2's floor is then that of
    two disjoint halves)."""
    if name in tables.TABLES and not tables.table_info(name).fresh_draws:
        return data
    return lambda n, seed: _take(make_dataset(name, n, seed), index)


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


def cmd_train(args: argparse.Namespace) -> int:
    """flowscope train: fit a model and write it as .safetensors (atomically), with its columns and a data sample."""
    data, name, columns, index = _chosen_data(args)
    source = None
    if args.source is not None:
        source = torch.from_numpy(_for_model(_read_table(args.source), args.source.name, None, columns))
    elif args.source_dataset is not None:
        source = torch.from_numpy(make_dataset(args.source_dataset, args.n, seed=args.seed + 1))
        name = f"{args.source_dataset}->{name}"
    if source is not None and source.shape[1] != data.shape[1]:
        raise CLIError(f"source has {source.shape[1]} columns but the data has {data.shape[1]}")
    path_params = {} if args.sigma is None else {"sigma_min" if args.path == "ot" else "sigma": args.sigma}
    config = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                         device=args.device, normalize=args.normalize)
    resume = checkpoint.load(args.resume) if args.resume else None
    on_step, close = _progress(args.steps, args.quiet)
    path_arg = args.path if not path_params else _path_with(args.path, path_params, data, args.normalize)
    try:
        result = train(torch.from_numpy(data), path=path_arg, config=config, source=source,
                       model=MLPConfig(dim=data.shape[1], width=args.width, depth=args.depth,
                                       fourier_features=args.fourier_features),
                       coupling=args.coupling, dataset=name, dataset_hash=dataset_hash(data), callback=on_step,
                       resume=resume)
    except TrainingDiverged as err:
        close()
        out = _out_path(args, name)
        _record(err.result.model, columns, None if args.no_data_sample else data)
        checkpoint.save(err.result.model, out)
        raise CLIError(f"{err}; saved them to {out}") from None
    close()
    flow = _record(result.model, columns, None if args.no_data_sample else data)
    if not args.no_eval and args.data is None and source is None:
        dataset = args.dataset or "moons"
        report = evaluate(flow, _reference(dataset, index, data), seed=args.seed, nll_points=0)
        flow.info["metrics"] = recorded_metrics(report)
    out = checkpoint.save(flow.to("cpu"), _out_path(args, name))
    print(f"trained {result.seconds:.1f} s, final loss {np.mean(result.losses[-100:]):.4f}; wrote {out}")
    if "metrics" in flow.info:
        print(json.dumps(flow.info["metrics"]))
    return 0


def _record(flow: FlowModel, columns: list[str], data: np.ndarray | None) -> FlowModel:
    """Store in the model its column names and (unless `data` is None) up to DATA_SAMPLE_ROWS training rows,
    in the order they were loaded, so that the explorer can show it without the dataset."""
    flow.info["columns"] = list(columns)
    if data is not None:
        flow.data = torch.from_numpy(np.array(data[:DATA_SAMPLE_ROWS], dtype=np.float32))
    return flow


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
    if args.n < 1:
        raise CLIError(f"-n must be >= 1, got {args.n}")
    flow = checkpoint.load(args.model, device=resolve_device(args.device))
    generator = torch.Generator().manual_seed(args.seed)
    x0 = None
    if args.source is not None:
        start = _for_model(_read_table(args.source), args.source.name, args.columns, flow.info.get("columns"))
        if start.shape[1] != flow.dim:
            raise CLIError(f"{args.source.name}: has {start.shape[1]} columns, the model needs {flow.dim}")
        x0 = torch.from_numpy(start).to(flow.device)
    result = flow.sample(args.n if x0 is None else None, x0=x0, solver=_solver(args), generator=generator)
    save_array(result.samples.cpu().numpy(), args.out)
    print(f"wrote {len(result.samples)} samples to {args.out} (NFE {result.nfe})")
    return 0


def save_array(points: np.ndarray, out: Path) -> None:
    """Write points as .npy, .npz or .csv, atomically: a failed write leaves the old file and no temporary."""
    suffix = out.suffix.lower()
    if suffix not in (".npy", ".npz", ".csv"):
        raise CLIError(f"{out}: output must end in .npy, .npz or .csv")

    def write(handle: BinaryIO) -> None:
        if suffix == ".npy":
            np.save(handle, points)
        elif suffix == ".npz":
            np.savez(handle, samples=points)
        else:
            header = ",".join(f"x{i}" for i in range(points.shape[1]))
            np.savetxt(handle, points, delimiter=",", header=header, comments="")

    write_atomic(out, write)


def cmd_info(args: argparse.Namespace) -> int:
    """flowscope info: the stored config and metrics, validated by loading the model."""
    flow = checkpoint.load(args.model)
    print(json.dumps(checkpoint.config_of(flow), indent=2))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """flowscope eval: W2 and its floor, MMD, energy distance, NLL, straightness, NFE against data."""
    flow = checkpoint.load(args.model, device=resolve_device(args.device))
    if args.draws < 1:
        raise CLIError(f"--draws must be >= 1, got {args.draws}")
    reference: Reference
    names = flow.info.get("columns")
    if args.data is not None:
        name = args.data.name
        reference = _for_model(_read_table(args.data), name, args.columns, names)
    else:
        name = args.dataset or "moons"
        columns = dataset_columns(name)
        table = Table(np.empty((0, len(columns))), columns, header=True)  # a built-in set's names, for --columns
        index = list(range(len(columns)))
        if args.columns is not None:
            index = _pick(args.columns, table, name)
        elif isinstance(names, list) and names and all(isinstance(c, str) and c in columns for c in names):
            index = [columns.index(c) for c in names]
        reference = _reference(name, index, _take(make_dataset(name, args.n, seed=args.seed), index))
    dim = reference.shape[1] if isinstance(reference, np.ndarray) else reference(2, 0).shape[1]
    if dim != flow.dim:
        raise CLIError(f"{name}: data has {dim} columns, the model needs {flow.dim}")
    report = evaluate(flow, reference, n=args.samples, repeats=args.draws, solver=_solver(args), seed=args.seed)
    print(json.dumps(report, indent=2))
    return 0


def cmd_zoo_list(args: argparse.Namespace) -> int:
    """flowscope zoo list: the pretrained models and their headline metrics."""
    from . import zoo

    for entry in zoo.entries():
        print(f"{entry.name:32s} {entry.dataset:24s} {entry.path:4s} {entry.coupling:12s} "
              f"W2/floor {entry.metrics.get('w2_ratio', float('nan')):.2f}")
    return 0


def cmd_zoo_build(args: argparse.Namespace) -> int:
    """flowscope zoo build: train the zoo's models reproducibly and write pretrained/ and its manifest."""
    from . import zoo

    zoo.build(only=args.only, out=args.out, jobs=args.jobs)
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    """flowscope ui: run the Streamlit explorer (needs the `ui` extra) as this very process."""
    try:
        import flowscope_ui
    except ImportError:
        raise CLIError("the explorer is not installed; pip install 'flowscope[ui]'") from None
    app = Path(flowscope_ui.__file__).with_name("app.py")
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

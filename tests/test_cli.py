"""The `flowscope` command end to end: train, sample, info, eval; errors are one clear line, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from flowscope.cli.commands import main
from flowscope.data.datasets import make_dataset
from flowscope.evaluation.records import QualityReport


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed console script, as a user runs it."""
    return subprocess.run(["flowscope", *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "moons.safetensors"
    result = _run("train", "--dataset", "moons", "--path", "ot", "--steps", "200", "--n", "2000",
                  "--width", "32", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout and "w2_ratio" in result.stdout.splitlines()[-1]  # the stored JSON, last
    assert "W2 / floor" in result.stdout and "straightness" in result.stdout  # the report's rows, before it
    return out


@pytest.mark.slow
def test_train_sample_info(trained: Path, tmp_path: Path) -> None:
    samples = tmp_path / "s.npy"
    result = _run("sample", str(trained), "-n", "300", "--out", str(samples), "--method", "rk4", "--steps", "10")
    assert result.returncode == 0, result.stderr
    assert "NFE 40" in result.stdout  # rk4: 4 evaluations per step
    points = np.load(samples, allow_pickle=False)
    assert points.shape == (300, 2) and np.isfinite(points).all()
    info = _run("info", str(trained))
    config = json.loads(info.stdout)
    assert config["path"]["name"] == "ot" and config["dataset"] == "moons" and "w2" in config["metrics"]


def test_sample_from_a_source_file(trained: Path, tmp_path: Path) -> None:
    starts = tmp_path / "starts.csv"
    np.savetxt(starts, np.array([[0.0, 0.0], [1.0, -1.0]] * 3), delimiter=",")
    out = tmp_path / "s.csv"
    assert main(["sample", str(trained), "--source", str(starts), "--out", str(out), "--method", "euler"]) == 0
    points = np.loadtxt(out, delimiter=",", skiprows=1)
    assert points.shape == (6, 2) and np.allclose(points[::2], points[0])  # same start, same end
    assert not np.allclose(points[0], points[1])


def test_train_on_a_file_with_a_source_file(tmp_path: Path) -> None:
    data, source = tmp_path / "x1.csv", tmp_path / "x0.npy"
    np.savetxt(data, make_dataset("moons", 500, 1), delimiter=",", header="a,b", comments="")
    np.save(source, make_dataset("8gaussians", 500, 2))
    out = tmp_path / "m.safetensors"
    code = main(["train", "--data", str(data), "--source", str(source), "--path", "icfm", "--coupling", "ot",
                 "--steps", "20", "--quiet", "--out", str(out)])
    assert code == 0 and out.is_file()
    samples = tmp_path / "s.npy"
    assert main(["sample", str(out), "-n", "20", "--out", str(samples), "--method", "euler", "--steps", "4"]) == 0


def test_a_stored_source_model_has_interpolant_noise_unless_told_none(tmp_path: Path) -> None:
    """Without --sigma a stored-source model gets the core's I-CFM noise, so its exact field is defined (it was 0,
    and the explorer failed on it); --path icfm --sigma 0 still trains a noiseless one."""
    from flowscope.fields.exact import marginal_field_pairs
    from flowscope.io import checkpoint
    from flowscope.maths.paths import ICFM_SIGMA

    data, source = tmp_path / "x1.npy", tmp_path / "x0.npy"
    np.save(data, make_dataset("moons", 300, 1))
    np.save(source, make_dataset("8gaussians", 300, 2))
    default, noiseless = tmp_path / "default.safetensors", tmp_path / "none.safetensors"
    common = ["--steps", "5", "--quiet", "--no-eval"]
    assert main(["train", "--data", str(data), "--source", str(source), *common, "--out", str(default)]) == 0
    assert main(["train", "--data", str(data), "--source", str(source), "--path", "icfm", "--sigma", "0", *common,
                 "--out", str(noiseless)]) == 0
    flow = checkpoint.load(default)
    assert flow.path.noise_std == ICFM_SIGMA > 0
    assert flow.source is not None and flow.data is not None
    field = marginal_field_pairs(flow.path, flow.source[:50], flow.data[:50], torch.zeros(4, 2), 0.5)
    assert torch.isfinite(field.velocity).all()
    assert checkpoint.load(noiseless).path.noise_std == 0.0


def test_fourier_features_are_a_training_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for count in (0, 8):
        out = tmp_path / f"ff{count}.safetensors"
        assert main(["train", "--dataset", "moons", "--steps", "5", "--fourier-features", str(count), "--no-eval",
                     "--quiet", "--out", str(out)]) == 0
        capsys.readouterr()
        assert main(["info", str(out)]) == 0
        assert json.loads(capsys.readouterr().out)["model"]["fourier_features"] == count
    with pytest.raises(SystemExit) as stop:
        main(["train", "--dataset", "moons", "--steps", "5", "--fourier-features", "-1", "--quiet",
              "--out", str(tmp_path / "bad.safetensors")])
    assert stop.value.code == 2
    assert "argument --fourier-features: must be an integer >= 0, got '-1'" in capsys.readouterr().err


def test_ot_block_is_a_training_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ot.safetensors"
    assert main(["train", "--dataset", "moons", "--steps", "3", "--coupling", "ot", "--ot-block", "32", "--no-eval",
                 "--quiet", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["train"]["ot_block"] == 32
    with pytest.raises(SystemExit) as stop:
        main(["train", "--dataset", "moons", "--steps", "3", "--ot-block", "-2", "--quiet",
              "--out", str(tmp_path / "bad.safetensors")])
    assert stop.value.code == 2
    assert "argument --ot-block: must be an integer >= 0, got '-2'" in capsys.readouterr().err


def test_eval_reports_metrics(trained: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(trained), "--dataset", "moons", "--samples", "300", "--method", "rk4",
                 "--steps", "10"]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("w2", "w2_floor", "mmd", "energy_distance", "nll", "straightness", "path_energy", "nfe"):
        assert np.isfinite(report[key]), key


@pytest.mark.slow
def test_errors_are_one_clear_line(trained: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3,oops\n")
    result = _run("train", "--data", str(bad), "--steps", "5")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "bad.csv" in result.stderr and "oops" in result.stderr
    wrong_dim = tmp_path / "three.csv"
    np.savetxt(wrong_dim, np.arange(12.0).reshape(4, 3), delimiter=",")
    result = _run("sample", str(trained), "--source", str(wrong_dim), "--out", str(tmp_path / "s.npy"))
    assert result.returncode == 2 and "has 3 columns, the model needs 2" in result.stderr
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(trained.read_bytes()[:100])
    result = _run("info", str(broken))
    assert result.returncode == 2 and "broken.safetensors" in result.stderr and "Traceback" not in result.stderr


def test_diverging_training_saves_last_good_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.safetensors"
    code = main(["train", "--dataset", "moons", "--n", "500", "--steps", "300", "--lr", "1e12", "--quiet",
                 "--width", "16", "--out", str(out)])
    assert code == 2 and "loss became" in capsys.readouterr().err
    assert out.is_file() and main(["info", str(out)]) == 0


@pytest.mark.slow
def test_help_lists_every_command() -> None:
    result = subprocess.run([sys.executable, "-m", "flowscope.cli", "--help"], capture_output=True, text=True)
    for command in ("train", "sample", "info", "eval", "zoo", "ui"):
        assert command in result.stdout


def test_bad_input_corpus_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every corpus file given to `flowscope train --data` exits 2 with the loader's named message."""
    from corpus_cases import IMAGE_ROUTE, materialize_corpus
    from flowscope.data.loader import Limits

    for case in materialize_corpus(tmp_path, Limits()):
        out = tmp_path / "never.safetensors"
        assert main(["train", "--data", str(case.path), "--steps", "1", "--quiet", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert case.path.name in err and IMAGE_ROUTE.get(case.path.name, case.expected) in err, (case, err)
        assert not out.exists()  # nothing written, not even half


def test_a_failing_write_leaves_the_old_file_and_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flowscope.io.arrays import save_array

    out = tmp_path / "s.npy"
    out.write_bytes(b"old")

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError("no space left on device")

    monkeypatch.setattr(np, "save", disk_full)
    with pytest.raises(OSError, match="no space"):
        save_array(np.zeros((3, 2)), out)
    assert out.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["s.npy"]
    monkeypatch.undo()
    save_array(np.ones((3, 2)), tmp_path / "new" / "s.csv")  # a missing folder is made
    assert np.loadtxt(tmp_path / "new" / "s.csv", delimiter=",", skiprows=1).shape == (3, 2)


def test_sample_and_eval_default_to_the_best_device(trained: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from flowscope.cli import commands as cli
    from flowscope.flow.model import resolve_device
    from flowscope.io import checkpoint

    for command in ("sample", "eval"):
        assert cli.build_parser().parse_args([command, "m.safetensors"]).device is None
    devices: list[object] = []
    real_load = checkpoint.load

    def load(path: Path, device: object = "cpu") -> object:
        devices.append(device)
        return real_load(path, device=device)

    monkeypatch.setattr(cli.checkpoint, "load", load)
    assert main(["sample", str(trained), "-n", "5", "--out", str(tmp_path / "s.npy"), "--method", "euler",
                 "--steps", "2"]) == 0
    assert main(["eval", str(trained), "--samples", "50", "--method", "euler", "--steps", "2"]) == 0
    assert devices == [resolve_device(None)] * 2


# --- data of any dimension: text columns, --columns, built-in tables, the stored data sample ----------------

IRIS_COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@pytest.fixture()
def iris_csv(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """An iris-like CSV (header, 4 numeric columns, a text `species` column, CRLF) and its numbers."""
    rng = np.random.default_rng(0)
    values = np.round(rng.uniform(0.1, 8.0, size=(60, 4)), 1).astype(np.float32)
    species = ["setosa", "versicolor", "virginica"] * 20
    rows = [",".join(IRIS_COLUMNS + ["species"])]
    rows += [",".join([*(f"{v:.1f}" for v in row), label]) for row, label in zip(values, species, strict=True)]
    path = tmp_path / "iris.csv"
    path.write_bytes(("\r\n".join(rows) + "\r\n").encode())
    return path, values


def _train(*args: str) -> list[str]:
    """`flowscope train` arguments for a tiny, quick model."""
    return ["train", *args, "--steps", "20", "--width", "16", "--quiet"]


def test_train_leaves_out_a_text_column_and_records_columns_and_data(iris_csv: tuple[Path, np.ndarray],
                                                                      tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from flowscope.io import checkpoint

    path, values = iris_csv
    out = tmp_path / "iris.safetensors"
    assert main(_train("--data", str(path), "--no-eval", "--out", str(out))) == 0
    err = capsys.readouterr().err
    assert "iris.csv: left out column 'species' (not numeric: 'setosa', 'versicolor', 'virginica'" in err
    flow = checkpoint.load(out)
    assert flow.dim == 4 and flow.info["columns"] == IRIS_COLUMNS and "metrics" not in flow.info
    assert flow.data is not None
    np.testing.assert_array_equal(flow.data.numpy(), values)  # every row (fewer than 2,000), in file order
    bare = tmp_path / "bare.safetensors"
    assert main(_train("--data", str(path), "--no-eval", "--no-data-sample", "--out", str(bare))) == 0
    assert checkpoint.load(bare).data is None


def test_columns_by_name_and_by_index(iris_csv: tuple[Path, np.ndarray], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    from flowscope.io import checkpoint

    path, values = iris_csv
    for spec in ("petal_length,sepal_length", "2,0", "petal_length, 0"):
        out = tmp_path / "sub.safetensors"
        assert main(_train("--data", str(path), "--columns", spec, "--no-eval", "--out", str(out))) == 0
        flow = checkpoint.load(out)
        assert flow.dim == 2 and flow.info["columns"] == ["petal_length", "sepal_length"], spec
        assert flow.data is not None
        np.testing.assert_array_equal(flow.data.numpy(), values[:, [2, 0]])
    capsys.readouterr()
    for spec, fragment in (("petal,0", "--columns names 'petal', which is not a column"),
                           ("4", "--columns names '4', which is not a column"),
                           ("species", "column 'species' was left out as text (not numeric: 'setosa'"),
                           ("0,sepal_length", "--columns names column 'sepal_length' twice")):
        assert main(_train("--data", str(path), "--columns", spec, "--out", str(tmp_path / "x.safetensors"))) == 2
        err = capsys.readouterr().err
        assert f"iris.csv: {fragment}" in err and "Traceback" not in err, err
        if "twice" not in fragment:
            assert "the numeric columns are 'sepal_length', 'sepal_width', 'petal_length', 'petal_width'" in err


def test_eval_and_sample_pick_the_models_columns_by_name(iris_csv: tuple[Path, np.ndarray], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = iris_csv
    model = tmp_path / "petals.safetensors"
    assert main(_train("--data", str(path), "--columns", "petal_width,petal_length", "--no-eval",
                       "--out", str(model))) == 0
    capsys.readouterr()
    fast = ["--method", "euler", "--steps", "2"]
    assert main(["eval", str(model), "--data", str(path), "--samples", "20", "--draws", "1", *fast]) == 0
    assert len(json.loads(capsys.readouterr().out)["w1_per_dim"]) == 2  # the file's 4 columns, 2 picked by name
    assert main(["eval", str(model), "--data", str(path), "--columns", "3,1", "--samples", "20", "--draws", "1",
                 *fast]) == 0
    capsys.readouterr()
    assert main(["sample", str(model), "--source", str(path), "--out", str(tmp_path / "s.npy"), *fast]) == 0
    assert np.load(tmp_path / "s.npy").shape == (60, 2)
    headerless = tmp_path / "four.csv"
    np.savetxt(headerless, np.arange(12.0).reshape(3, 4), delimiter=",")
    assert main(["eval", str(model), "--data", str(headerless), "--samples", "20", *fast]) == 2
    assert "four.csv: data has 4 columns, the model needs 2" in capsys.readouterr().err


def test_every_built_in_dataset_is_accepted() -> None:
    from flowscope.cli.commands import build_parser
    from flowscope.data.datasets import ALL_DATASETS

    assert {"mixture8", "iris", "wine", "engel", "moons"} <= set(ALL_DATASETS)
    for name in ALL_DATASETS:
        for command in (["train"], ["eval", "m.safetensors"]):
            assert build_parser().parse_args([*command, "--dataset", name]).dataset == name


def test_train_on_wine_records_its_columns_and_metrics_with_a_floor(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("sklearn")
    from flowscope.data.datasets import dataset_columns
    from flowscope.io import checkpoint

    out = tmp_path / "wine.safetensors"
    assert main(_train("--dataset", "wine", "--out", str(out))) == 0
    flow = checkpoint.load(out)
    assert flow.info["columns"] == list(dataset_columns("wine")) and len(flow.info["columns"]) == 13
    metrics = flow.info["metrics"]
    assert metrics["w2_floor"] > 0 and np.isfinite(metrics["w2_ratio"]), metrics
    assert flow.data is not None and tuple(flow.data.shape) == (178, 13)
    assert "w2_ratio" in capsys.readouterr().out


@pytest.mark.parametrize("name, fixed", [("iris", True), ("engel", True), ("mixture8", False), ("moons", False)])
def test_real_tables_are_judged_against_their_rows_and_others_against_fresh_draws(
        name: str, fixed: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sampler of a real table would give the same rows for every seed (a floor of 0): its rows are passed."""
    if fixed:
        pytest.importorskip("sklearn" if name == "iris" else "statsmodels")
    from flowscope.cli import commands as cli
    from flowscope.io import checkpoint

    seen: list[object] = []

    def evaluate(flow: object, data: object, **kwargs: object) -> QualityReport:
        seen.append(data)
        return QualityReport(w2=1.0, w2_floor=0.5, w2_ratio=2.0, nfe=8)

    monkeypatch.setattr(cli, "evaluate", evaluate)
    out = tmp_path / "m.safetensors"
    assert main(_train("--dataset", name, "--n", "500", "--steps", "2", "--out", str(out))) == 0
    (data,) = seen
    flow = checkpoint.load(out)
    assert flow.data is not None and flow.info["metrics"]["w2_ratio"] == 2.0
    if fixed:
        assert isinstance(data, np.ndarray)
        np.testing.assert_array_equal(data[: len(flow.data)], flow.data.numpy())
    else:
        assert callable(data) and data(7, 1).shape == (7, flow.dim)
        assert not np.array_equal(data(7, 1), data(7, 2))


def test_info_names_a_classifier_and_refuses_other_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`info` on the zoo's digits classifier says what it is (it said "not a flowscope model"); any other
    safetensors file is named as neither, in one line."""
    from safetensors.numpy import save_file

    from flowscope.zoo import registry as zoo

    assert main(["info", str(zoo.directory() / "digits-classifier.safetensors")]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["kind"].startswith("image classifier") and shown["classes"] == [str(d) for d in range(10)]
    assert shown["spec"]["height"] == 8 and shown["parameters"] > 0
    save_file({"a": np.zeros(2, dtype=np.float32)}, str(tmp_path / "other.safetensors"))
    assert main(["info", str(tmp_path / "other.safetensors")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "other.safetensors: neither a flowscope model nor a flowscope classifier" in err


def test_sampled_csv_keeps_the_models_column_names(tmp_path: Path) -> None:
    """A CSV of samples is headed by the columns the model learned (a table's own names), not by generic ones."""
    data = tmp_path / "table.csv"
    rows = np.random.default_rng(0).normal(size=(200, 3))
    np.savetxt(data, rows, delimiter=",", header="height,width,depth", comments="", fmt="%.4f")
    model, out = tmp_path / "m.safetensors", tmp_path / "s.csv"
    assert main(["train", "--data", str(data), "--steps", "5", "--no-eval", "--quiet", "--out", str(model)]) == 0
    assert main(["sample", str(model), "-n", "4", "--out", str(out), "--method", "euler", "--steps", "2"]) == 0
    assert out.read_text().splitlines()[0] == "height,width,depth"

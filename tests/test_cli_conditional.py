"""`flowscope train --labels / --conditional`, `sample --label --guidance`, `eval`'s per-class figures, and the
one-line errors of bad label columns."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from flowscope.cli import commands as cli
from flowscope.cli.commands import main
from flowscope.evaluation.records import ClassesReport, ClassReport, QualityReport
from flowscope.io import checkpoint

FAST = ["--method", "rk4", "--steps", "10"]


def _write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


@pytest.fixture(scope="module")
def blobs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, list[str]]:
    """Two far-apart blobs, 'left' around x = -4 and 'right' around x = +4, the label a text column between
    the two feature columns."""
    rng = np.random.default_rng(0)
    points = np.empty((600, 2))
    points[0::2] = rng.normal([-4.0, 0.0], 0.5, (300, 2))
    points[1::2] = rng.normal([4.0, 0.0], 0.5, (300, 2))
    kinds = ["left", "right"] * 300
    rows = [f"{x:.4f},{kind},{y:.4f}" for (x, y), kind in zip(points, kinds, strict=True)]
    path = _write_csv(tmp_path_factory.mktemp("blobs") / "blobs.csv", "a,kind,b", rows)
    return path, points.astype(np.float32), kinds


@pytest.fixture(scope="module")
def blobs_model(blobs: tuple[Path, np.ndarray, list[str]]) -> Path:
    path, _, _ = blobs
    out = path.with_name("blobs.safetensors")
    assert main(["train", "--data", str(path), "--labels", "kind", "--steps", "300", "--width", "32", "--quiet",
                 "--out", str(out)]) == 0
    return out


def test_train_with_a_text_label_column(blobs: tuple[Path, np.ndarray, list[str]], blobs_model: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    _, points, kinds = blobs
    flow = checkpoint.load(blobs_model)
    assert flow.conditional and flow.labels == ("left", "right")
    assert flow.dim == 2 and flow.info["columns"] == ["a", "b"] and flow.info["label_column"] == "kind"
    assert flow.info["class_counts"] == [300, 300] and flow.info["train"]["label_dropout"] == 0.1
    assert flow.data is not None and flow.data_labels is not None
    np.testing.assert_allclose(flow.data.numpy(), points, atol=1e-4)
    assert flow.data_labels.tolist() == [0 if kind == "left" else 1 for kind in kinds]


def test_sample_a_class_with_guidance(blobs_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "left.npy"
    assert main(["sample", str(blobs_model), "--label", "left", "--guidance", "1", "-n", "400", "--out", str(out),
                 *FAST]) == 0
    assert "of label 'left' (w = 1)" in capsys.readouterr().out
    assert (np.load(out)[:, 0] < 0).mean() > 0.9
    assert main(["sample", str(blobs_model), "--label", "1", "-n", "400", "--out", str(out), *FAST]) == 0  # index
    assert "of label 'right' (w = 0)" in capsys.readouterr().out
    assert (np.load(out)[:, 0] > 0).mean() > 0.9
    assert main(["sample", str(blobs_model), "-n", "400", "--out", str(out), *FAST]) == 0  # unconditional
    line = capsys.readouterr().out
    assert "label" not in line and 0.25 < (np.load(out)[:, 0] < 0).mean() < 0.75, line


def test_sample_label_errors(blobs_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s.npy"
    for label in ("middle", "2"):
        assert main(["sample", str(blobs_model), "--label", label, "--out", str(out), *FAST]) == 2
        err = capsys.readouterr().err
        assert "blobs.safetensors: unknown label" in err
        assert "this model's labels are 'left', 'right'" in err and "Traceback" not in err, err
    assert main(["sample", str(blobs_model), "--guidance", "2", "--out", str(out), *FAST]) == 2
    assert "--guidance needs --label" in capsys.readouterr().err
    plain = tmp_path / "plain.safetensors"
    assert main(["train", "--dataset", "moons", "--n", "500", "--steps", "5", "--width", "16", "--no-eval",
                 "--quiet", "--out", str(plain)]) == 0
    assert main(["sample", str(plain), "--label", "0", "--out", str(out), *FAST]) == 2
    assert "plain.safetensors: --label needs a conditional model" in capsys.readouterr().err
    assert main(["eval", str(plain), "--data", str(blobs_model.with_name("blobs.csv")), "--labels", "kind",
                 *FAST]) == 2
    assert "plain.safetensors: --labels is for a conditional model" in capsys.readouterr().err
    assert not out.exists()


def test_eval_reports_classes(blobs: tuple[Path, np.ndarray, list[str]], blobs_model: Path,
                              capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    path, _, _ = blobs
    monkeypatch.setattr(cli, "evaluate", _plain_metrics)
    capsys.readouterr()
    for labels in (["--labels", "kind"], ["--labels", "1"], []):  # by name, by index among all columns, stored
        assert main(["eval", str(blobs_model), "--data", str(path), *labels, "--samples", "200", "--draws", "1",
                     "--guidance", "0,1,3", *FAST]) == 0
        report = json.loads(capsys.readouterr().out)
        assert set(report["classes"]) == {"left", "right"}
        for row in report["classes"].values():
            assert row["held_out"] == 300 and np.isfinite(row["w2_ratio"])
            for w in (0, 1, 3):
                assert row[f"accuracy_w{w}"] > 0.9
        assert report["label_accuracy_against"] == "the model's training data sample"
    assert main(["eval", str(blobs_model), "--data", str(path), "--guidance", "0,x", *FAST]) == 2
    assert "--guidance takes a comma list" in capsys.readouterr().err
    assert main(["eval", str(blobs_model), "--dataset", "moons", "--samples", "50", *FAST]) == 0  # other labels
    captured = capsys.readouterr()
    assert "classes" not in json.loads(captured.out) and "no per-class figures" in captured.err
    relabelled = _write_csv(path.with_name("relabelled.csv"), "a,kind,b", ["-4,west,0", "-4,west,1", "4,east,0",
                                                                           "4,east,1"])
    assert main(["eval", str(blobs_model), "--data", str(relabelled), "--samples", "50", *FAST]) == 2
    assert ("relabelled.csv: label column 'kind': class(es) 'west', 'east' are not among the model's labels "
            "'left', 'right'" in capsys.readouterr().err)


def test_numeric_label_column_by_index_is_not_a_feature(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(1)
    rows = [f"{rng.normal():.3f},note{k % 3},{k % 2},{rng.normal():.3f}" for k in range(40)]
    path = _write_csv(tmp_path / "num.csv", "u,note,group,v", rows)
    out = tmp_path / "num.safetensors"
    assert main(["train", "--data", str(path), "--labels", "2", "--steps", "20", "--width", "16", "--quiet",
                 "--out", str(out)]) == 0  # index 2 of the file's columns, the text column 'note' counted
    err = capsys.readouterr().err
    assert "left out column 'note'" in err
    flow = checkpoint.load(out)
    assert flow.labels == ("0", "1") and flow.info["columns"] == ["u", "v"] and flow.info["label_column"] == "group"
    assert main(["train", "--data", str(path), "--labels", "group", "--columns", "u,group", "--steps", "5",
                 "--quiet", "--out", str(out)]) == 2
    assert "num.csv: --columns names the label column 'group'" in capsys.readouterr().err
    assert main(["train", "--data", str(path), "--labels", "note", "--columns", "v", "--steps", "5", "--width", "16",
                 "--quiet", "--out", str(out)]) == 0  # a text label column by name, one feature
    assert checkpoint.load(out).labels == ("note0", "note1", "note2")


def _bad_label_files(tmp_path: Path) -> list[tuple[Path, str]]:
    """(file with a 'kind' label column, the message `flowscope train --labels kind` must give)."""
    one_point = [f"{k},{k * 2 % 7},{'c' if k == 20 else 'ab'[k % 2]}" for k in range(21)]
    many = [f"{k},{k * 3 % 11},c{k // 2}" for k in range(600)]
    empty = [f"{k},{k % 5},{'' if k in (3, 7) else 'ab'[k % 2]}" for k in range(20)]
    single = [f"{k},{k % 5},same" for k in range(20)]
    only = [str(k % 2) for k in range(20)]
    return [
        (_write_csv(tmp_path / "one_point.csv", "x,y,kind", one_point),
         "one_point.csv: label column 'kind': class(es) 'c' have fewer than 2 points"),
        (_write_csv(tmp_path / "many.csv", "x,y,kind", many),
         "many.csv: label column 'kind': 300 classes, over the limit of 256"),
        (_write_csv(tmp_path / "empty.csv", "x,y,kind", empty),
         "empty.csv: label column 'kind': 2 empty label cell(s) (row 4, row 8); every row needs a label"),
        (_write_csv(tmp_path / "single.csv", "x,y,kind", single),
         "single.csv: label column 'kind': only one class ('same')"),
        (_write_csv(tmp_path / "only.csv", "kind", only),
         "only.csv: label column 'kind': the label column is the only column: nothing left to model"),
    ]


def test_bad_label_columns_are_one_named_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "never.safetensors"
    for path, expected in _bad_label_files(tmp_path):
        assert main(["train", "--data", str(path), "--labels", "kind", "--steps", "5", "--quiet",
                     "--out", str(out)]) == 2, path
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if "error" in line]
        assert len(lines) == 1 and expected in lines[0] and "Traceback" not in err, (expected, err)
        assert not out.exists()
    path = tmp_path / "one_point.csv"
    assert main(["train", "--data", str(path), "--labels", "zz", "--steps", "5", "--quiet", "--out", str(out)]) == 2
    assert ("one_point.csv: --labels names 'zz', which is not a column; the columns are 'x', 'y', 'kind' "
            "(or their indices 0-2" in capsys.readouterr().err)


def test_label_options_fit_together(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.safetensors"
    path = _write_csv(tmp_path / "d.csv", "x,y,kind", [f"{k},{k % 3},{'ab'[k % 2]}" for k in range(20)])
    cases = [
        (["--dataset", "moons", "--pair-within-class", "--coupling", "ot"], "--pair-within-class needs labels"),
        (["--dataset", "moons", "--label-dropout", "0.2"], "--label-dropout needs labels"),
        (["--dataset", "moons", "--conditional", "--pair-within-class"], "give --coupling ot or sinkhorn"),
        (["--dataset", "moons", "--labels", "kind"], "--labels names a column of a --data file"),
        (["--data", str(path), "--conditional"], "for a --data file give --labels COLUMN"),
        (["--data", str(path), "--labels", "kind", "--label-dropout", "1"],
         "argument --label-dropout: must be a number in [0, 1), got '1'"),
    ]
    for args, expected in cases:
        try:
            code = main(["train", *args, "--steps", "5", "--quiet", "--out", str(out)])
        except SystemExit as stop:  # a bad number: argparse's message, before any work
            code = stop.code
        assert code == 2, args
        assert expected in capsys.readouterr().err, args
    assert main(["train", "--data", str(path), "--labels", "kind", "--label-dropout", "0.3", "--pair-within-class",
                 "--coupling", "ot", "--steps", "10", "--width", "16", "--quiet", "--out", str(out)]) == 0
    train = checkpoint.load(out).info["train"]
    assert train["label_dropout"] == 0.3 and train["pair_within_class"] is True


def _plain_metrics(flow: object, data: object, **kwargs: object) -> QualityReport:
    """A stand-in for `evaluate` (the plain metrics are tested in test_cli.py), to keep these tests quick."""
    return QualityReport(w2=1.0, w2_floor=0.5, w2_ratio=2.0, nfe=8)


def test_built_in_dataset_conditional_records_class_metrics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "evaluate", _plain_metrics)
    monkeypatch.setattr(cli, "CLASS_SAMPLES", 100)  # 500 by default: 8 classes x 3 scales x 500 take a while here
    out = tmp_path / "g.safetensors"
    assert main(["train", "--dataset", "8gaussians", "--conditional", "--steps", "100", "--n", "2000",
                 "--width", "32", "--quiet", "--out", str(out)]) == 0
    assert "conditional on 8 classes" in capsys.readouterr().out
    flow = checkpoint.load(out)
    assert flow.labels == tuple(f"component {k}" for k in range(8))
    assert flow.data is not None and flow.data_labels is not None and len(flow.data_labels) == len(flow.data)
    recorded = flow.info["class_metrics"]
    assert recorded["held_out"] == "fresh draws" and set(recorded["classes"]) == set(flow.labels)
    for row in recorded["classes"].values():
        assert row["held_out"] > 100 and np.isfinite(row["w2_ratio"])
        assert all(0.0 <= row[f"accuracy_w{w}"] <= 1.0 for w in (0, 1, 3))
    assert main(["eval", str(out), "--dataset", "8gaussians", "--n", "2000", "--samples", "100", "--draws", "1",
                 "--guidance", "0,2", *FAST]) == 0
    classes = json.loads(capsys.readouterr().out)["classes"]
    assert set(classes) == set(flow.labels) and {"accuracy_w0", "accuracy_w2"} <= set(classes["component 0"])
    skipped = tmp_path / "skipped.safetensors"
    assert main(["train", "--dataset", "moons", "--conditional", "--steps", "5", "--n", "500", "--width", "16",
                 "--no-eval", "--quiet", "--out", str(skipped)]) == 0
    assert "class_metrics" not in checkpoint.load(skipped).info


def test_real_table_class_metrics_use_the_training_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("sklearn")
    seen: list[tuple[np.ndarray, np.ndarray]] = []

    def evaluate_classes(flow: object, held_out: np.ndarray, held_out_labels: np.ndarray, train: np.ndarray,
                         train_labels: np.ndarray, **kwargs: object) -> ClassesReport:
        seen.append((held_out, train))
        assert kwargs["n"] == 500 and kwargs["guidance"] == (0.0, 1.0, 3.0)
        return ClassesReport((ClassReport("setosa", held_out=50),))

    monkeypatch.setattr(cli, "evaluate_classes", evaluate_classes)
    monkeypatch.setattr(cli, "evaluate", _plain_metrics)
    out = tmp_path / "iris.safetensors"
    assert main(["train", "--dataset", "iris", "--conditional", "--steps", "5", "--width", "16", "--quiet",
                 "--out", str(out)]) == 0
    (held_out, train), = seen
    assert held_out is train
    assert checkpoint.load(out).info["class_metrics"]["held_out"] == "training rows"


def test_a_dataset_without_labels_is_refused_with_the_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--dataset", "swissroll", "--conditional", "--steps", "5", "--quiet",
                 "--out", str(tmp_path / "m.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "dataset 'swissroll' has no natural labels; the datasets with labels are: " in err
    assert "8gaussians" in err and "moons" in err and "swissroll, " not in err.split("are: ")[1]


def test_help_says_what_a_labels_index_counts(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "0-based index among ALL the file's columns (text ones included, unlike --columns)" in text
    for option in ("--conditional", "--label-dropout", "--pair-within-class"):
        assert option in text

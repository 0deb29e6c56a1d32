"""The `flowscope` command end to end: train, sample, info, eval; errors are one clear line, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flowscope.cli import main
from flowscope.data import make_dataset


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed console script, as a user runs it."""
    return subprocess.run(["flowscope", *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "moons.safetensors"
    result = _run("train", "--dataset", "moons", "--path", "ot", "--steps", "200", "--n", "2000",
                  "--width", "32", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout and "w2_ratio" in result.stdout
    return out


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


def test_fourier_features_are_a_training_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for count in (0, 8):
        out = tmp_path / f"ff{count}.safetensors"
        assert main(["train", "--dataset", "moons", "--steps", "5", "--fourier-features", str(count), "--no-eval",
                     "--quiet", "--out", str(out)]) == 0
        capsys.readouterr()
        assert main(["info", str(out)]) == 0
        assert json.loads(capsys.readouterr().out)["model"]["fourier_features"] == count
    assert main(["train", "--dataset", "moons", "--steps", "5", "--fourier-features", "-1", "--quiet",
                 "--out", str(tmp_path / "bad.safetensors")]) == 2
    assert "fourier_features must be >= 0, got -1" in capsys.readouterr().err


def test_eval_reports_metrics(trained: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(trained), "--dataset", "moons", "--samples", "300", "--method", "rk4",
                 "--steps", "10"]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("w2", "w2_floor", "mmd", "energy_distance", "nll", "straightness", "path_energy", "nfe"):
        assert np.isfinite(report[key]), key


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


def test_help_lists_every_command() -> None:
    result = subprocess.run([sys.executable, "-m", "flowscope.cli", "--help"], capture_output=True, text=True)
    for command in ("train", "sample", "info", "eval", "zoo", "ui"):
        assert command in result.stdout


def test_bad_input_corpus_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every corpus file given to `flowscope train --data` exits 2 with the loader's named message."""
    from corpus_cases import materialize_corpus
    from flowscope.loader import Limits

    for case in materialize_corpus(tmp_path, Limits()):
        out = tmp_path / "never.safetensors"
        assert main(["train", "--data", str(case.path), "--steps", "1", "--quiet", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert case.path.name in err and case.expected in err, (case, err)
        assert not out.exists()  # nothing written, not even half


def test_a_failing_write_leaves_the_old_file_and_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flowscope.cli import save_array

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
    from flowscope import checkpoint, cli
    from flowscope.flow import resolve_device

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

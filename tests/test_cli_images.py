"""Image models through the command line, as the README shows them: train on digits or an image file, sample
images in the data's units (.npy, .png), evaluate; bad image files and options get one named line, exit 2."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flowscope.cli.commands import main
from flowscope.io.checkpoint import load

FAST = ["--steps", "3", "--batch-size", "8", "--quiet", "--base-channels", "8"]


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "digits.safetensors"
    assert main(["train", "--dataset", "digits", "--conditional", *FAST, "--no-eval", "--out", str(out)]) == 0
    return out


def test_train_digits_conditional_writes_a_unet_with_its_images(digits_model: Path) -> None:
    flow = load(digits_model)
    assert flow.image is not None and flow.image.shape == (1, 8, 8) and (flow.image.low, flow.image.high) == (0, 16)
    assert flow.labels == tuple("0123456789") and flow.info["dataset"] == "digits"
    assert flow.data is not None and flow.data.shape == (1438, 64) and flow.data_labels is not None
    assert flow.info["train"]["batch_size"] == 8 and flow.info["train"]["lr"] == 1e-3  # the image default lr


def test_sample_writes_images_in_the_datas_units(digits_model: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s.npy"
    assert main(["sample", str(digits_model), "--label", "3", "--guidance", "1", "-n", "5", "--out", str(out),
                 "--method", "euler", "--steps", "4"]) == 0
    images = np.load(out)
    assert images.shape == (5, 1, 8, 8) and images.min() >= 0.0 and images.max() <= 16.0
    assert "of label '3' (w = 1)" in capsys.readouterr().out
    grid = tmp_path / "s.png"
    assert main(["sample", str(digits_model), "-n", "9", "--out", str(grid), "--method", "euler", "--steps", "2"]) == 0
    assert Image.open(grid).size == (3 * 9 + 1, 3 * 9 + 1)  # 3 x 3 images of 8 pixels, 1-pixel gaps
    table = tmp_path / "s.csv"
    assert main(["sample", str(digits_model), "-n", "2", "--out", str(table), "--method", "euler", "--steps", "2"]) == 0
    assert table.read_text().splitlines()[0].split(",")[:2] == ["c0_y0_x0", "c0_y0_x1"]


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_train_on_a_zip_of_class_folders_and_an_npy(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    archive = tmp_path / "shapes.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for k in ("circle", "square"):
            for i in range(6):
                z.writestr(f"shapes/{k}/{i}.png", _png(rng.integers(0, 256, (6, 6, 3)).astype(np.uint8)))
    out = tmp_path / "shapes.safetensors"
    assert main(["train", "--data", str(archive), "--conditional", *FAST, "--out", str(out)]) == 0
    flow = load(out)
    assert flow.labels == ("circle", "square") and flow.image.shape == (3, 6, 6) and flow.image.levels == 256
    array = tmp_path / "faces.npy"
    np.save(array, rng.random((10, 5, 7)).astype(np.float32))
    assert main(["train", "--data", str(array), *FAST, "--out", str(tmp_path / "f.safetensors")]) == 0
    assert load(tmp_path / "f.safetensors").image.shape == (1, 5, 7)


@pytest.mark.parametrize("args, message", [
    (["--dataset", "digits", "--columns", "0,1"], "--columns is for tables; images use every pixel"),
    (["--dataset", "digits", "--source-dataset", "moons"], "image models start from Gaussian noise"),
    (["--data", "FLAT_ZIP", "--conditional"], "flat.zip: --conditional needs labelled images"),
    (["--data", "NAN_NPY"], "nan.npy: the array holds NaN at index [0, 0, 0] (image 1)"),
    (["--data", "MIXED_ZIP"], "mixed.zip: b/2.png: 8 x 9 pixels (width x height), but a/1.png is 8 x 8"),
])
def test_bad_image_training_gets_one_named_line(args: list[str], message: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    files = {"FLAT_ZIP": tmp_path / "flat.zip", "NAN_NPY": tmp_path / "nan.npy", "MIXED_ZIP": tmp_path / "mixed.zip"}
    with zipfile.ZipFile(files["FLAT_ZIP"], "w") as z:
        for i in range(3):
            z.writestr(f"{i}.png", _png(np.full((8, 8), 40 * i, np.uint8)))
    np.save(files["NAN_NPY"], np.full((4, 8, 8), np.nan))
    with zipfile.ZipFile(files["MIXED_ZIP"], "w") as z:
        z.writestr("a/1.png", _png(np.zeros((8, 8), np.uint8)))
        z.writestr("b/2.png", _png(np.ones((9, 8), np.uint8)))
    argv = [str(files.get(a, a)) for a in args]
    out = tmp_path / "never.safetensors"
    assert main(["train", *argv, *FAST, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not out.exists()


def test_eval_of_an_image_model_reports_each_figure_with_its_yardstick(digits_model: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(digits_model), "--dataset", "digits", "--samples", "20", "--guidance", "0,1",
                 "--method", "euler", "--steps", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 20 and report["fd_floor"] > 0 and report["nn_held_out_median"] > 0
    assert report["classifier_accuracy_held_out"] > 0.9  # the judge itself reads real digits well
    for w in ("0", "1"):
        assert report[f"fd_ratio_w{w}"] > 0 and 0 <= report[f"accuracy_w{w}"] <= 1
    assert report["bits_per_dim"] > 0 and "uniform dequantisation" in report["bits_per_dim_note"]
    assert main(["eval", str(digits_model), "--dataset", "moons"]) == 2
    assert "an image model is judged against images" in capsys.readouterr().err


def test_eval_against_a_file_of_held_out_images(digits_model: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """--data: held-out images in a file, compared with the model's stored training images, judged by the zoo's
    digits classifier (the model records that it is a digits model)."""
    from flowscope.data.images import digits, split

    held = tmp_path / "held.npy"
    np.save(held, split(digits())[1].images[:30, 0].astype(np.int64))  # (n, H, W) integers, as a user saves them
    assert main(["eval", str(digits_model), "--data", str(held), "--guidance", "0", "--samples", "10",
                 "--method", "euler", "--steps", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 10 and report["fd_floor"] > 0 and "accuracy_w0" in report
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.random.default_rng(0).random((5, 6, 6)))
    assert main(["eval", str(digits_model), "--data", str(wrong)]) == 2
    assert "wrong.npy: images of shape (1, 6, 6), the model's are (1, 8, 8)" in capsys.readouterr().err


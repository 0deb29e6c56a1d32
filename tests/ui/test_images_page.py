"""The explorer with image models under AppTest: the Images page (grid, strips, x1 predictions over t, nearest
training images, the exact field's copies), the other pages with an image model selected, and image uploads and
training on the Train page, bad uploads included."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest
from test_image_loader import npy, png, zipped
from ui_support import APP, finish_jobs

from flowscope.io import checkpoint
from flowscope_ui import compute, plots, state

TIMEOUT = 120
#: The Images page's charts: sample grid, strips, x_t / predicted x1 over t, neighbours, exact vs learned, distances.
IMAGE_CHARTS = 6


def open_images(model: str | None) -> AppTest:
    """A fresh session on the Images page with `model` selected (None: the default, a 2-D model)."""
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    if model is not None:
        at.session_state[state.MODEL_KEY] = model
    return at.switch_page("views/images.py").run()


def assert_clean(at: AppTest) -> None:
    """No exception element and no error box on the page."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def specs(at: AppTest) -> list[dict[str, Any]]:
    """The page's plotly figures as JSON."""
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def array(value: Any) -> np.ndarray:
    """A figure's array as plotly's JSON writes it: a list, or a typed array (dtype, base64 bytes, shape)."""
    if isinstance(value, dict):
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        shape = value.get("shape")
        return flat.reshape([int(n) for n in str(shape).split(",")]) if shape else flat
    return np.array(value, dtype=float)


def labels(at: AppTest, kind: str) -> list[str]:
    """The labels of the page's elements of a kind (e.g. "download_button")."""
    return [str(getattr(element, "label", "")) for element in at.get(kind)]


def notes(figure: dict[str, Any]) -> list[str]:
    """The texts under the images of an image figure (its text trace)."""
    return [text for trace in figure["data"] if trace.get("mode") == "text" for text in trace["text"]]


def distances(texts: list[str]) -> np.ndarray:
    """The "d = ..." notes as numbers."""
    return np.array([float(t.removeprefix("d = ")) for t in texts if t.startswith("d = ")])


def test_images_page_draws_samples_strips_x1_predictions_and_the_memorisation_check(image_zoo_env: Path) -> None:
    at = open_images("zoo:digits-ot")
    assert_clean(at)
    figures = specs(at)
    assert len(figures) == IMAGE_CHARTS
    grid, strips, predicted, neighbours, exact, histogram = figures
    assert array(grid["data"][0]["z"]).shape == (71, 71)  # 8 x 8 digits of 8 x 8 pixels, 1-pixel gaps
    assert strips["layout"]["yaxis"]["ticktext"] == [f"sample {k}" for k in range(1, 7)]
    assert strips["layout"]["xaxis"]["ticktext"][0] == "t = 0.00" and strips["layout"]["xaxis"]["ticktext"][-1] == \
        "t = 1.00"
    times = compute.time_grid(1.0)  # the x_t / x1 figure moves t in the browser: one frame per time of the grid
    assert [float(f["name"]) for f in predicted["frames"]] == pytest.approx(times.tolist())
    assert len(predicted["layout"]["sliders"][0]["steps"]) == len(times)
    first, last = (array(predicted["frames"][k]["data"][0]["z"]) for k in (0, -1))
    assert not np.allclose(first, last, equal_nan=True)  # x_t and the prediction change with t
    assert predicted["layout"]["yaxis"]["ticktext"] == ["x_t at t = 0.5", "predicted x1"]  # opens at t = 0.5
    assert [f["layout"]["yaxis"]["ticktext"][0] for f in predicted["frames"]] == [
        f"x_t at t = {plots.time_label(t)}" for t in times]  # each frame says its t, labelled on the slider or not
    assert len(distances(notes(neighbours))) == 12
    exact_d = distances(notes(exact))
    assert len(exact_d) == 16
    copies, learned = exact_d[:8], exact_d[8:]  # the exact field lands on training images; the model does not
    assert copies.max() < 0.5 and np.median(learned) > 10 * max(np.median(copies), 0.01)
    assert {trace["name"].split(" (")[0] for trace in histogram["data"]} == {"learned samples", "real new images",
                                                                             "exact field's samples"}
    labels = [m.label for m in at.metric]
    assert "yardstick: median distance of real new images" in labels
    assert any("held-out real images" in c.value for c in at.caption)
    recorded = at.dataframe[0].value  # the recorded report, as `ImageReport.rows` gives it
    assert dict(zip(recorded["figure"], recorded["value"], strict=True))["FD / floor"] == "2.50"
    assert at.get("download_button")  # the grid's samples as .npy


@pytest.mark.slow
def test_conditional_digits_class_and_guidance(image_zoo_env: Path) -> None:
    at = open_images("zoo:digits-cond")
    assert_clean(at)
    at.selectbox(key="_class_zoo:digits-cond").set_value(3).run()
    at.slider(key="_guidance_zoo:digits-cond").set_value(1.0).run()
    assert_clean(at)
    assert len(at.get("plotly_chart")) == IMAGE_CHARTS
    assert any("class **3** at guidance w = 1" in c.value for c in at.caption)
    assert any("the exact field of class 3, guided at w = 1, of the" in c.value for c in at.caption)
    assert any(m.label.startswith("classified as 3") for m in at.metric)  # the digits classifier on the grid
    figures = at.dataframe[0].value["figure"].tolist()  # the recorded report's rows, one per figure and guidance
    assert {"FD / floor, w = 0", "FD / floor, w = 1", "class accuracy, w = 1"} <= set(figures)


def test_images_page_offers_the_image_models_for_a_vector_model(image_zoo_env: Path) -> None:
    at = open_images(None)
    assert_clean(at)
    assert "not an image model" in at.info[0].value and not at.get("plotly_chart")
    at.button(key="images_pick_zoo:digits-ot").click().run()
    assert_clean(at)
    assert len(at.get("plotly_chart")) == IMAGE_CHARTS


@pytest.mark.parametrize("page", ["home", "paths", "fields", "marginals", "compare"])
def test_other_pages_point_an_image_model_to_the_images_page(image_zoo_env: Path, page: str) -> None:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    at.session_state[state.MODEL_KEY] = "zoo:digits-ot"
    at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("image model of 1 × 8 × 8 pixels" in i.value for i in at.info)


def test_gallery_and_train_pages_with_image_models(image_zoo_env: Path) -> None:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    at.switch_page("views/gallery.py").run()
    assert_clean(at)
    assert len(at.get("plotly_chart")) == 5  # three 2-D thumbnails and two grids of digits
    assert any("images of 1 × 8 × 8" in c.value for c in at.caption)
    at.button(key="gallery_open_digits-cond").click().run()
    assert_clean(at)
    assert at.session_state[state.MODEL_KEY] == "zoo:digits-cond"
    assert at.title[0].value == "Images" and len(at.get("plotly_chart")) == IMAGE_CHARTS
    at.switch_page("views/train.py").run()  # an image model selected: the page works, reflow says why not
    assert_clean(at)
    assert any("the explorer reflows vector models only" in c.value for c in at.caption)
    assert labels(at, "file_uploader")[-1].startswith("Or explore a .safetensors model")


def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    """Upload `data` as `name` on the Train page."""
    at.radio(key="train_kind").set_value("Upload a file").run()
    return at.file_uploader(key="train_upload").set_value((name, data, "application/octet-stream")).run()


def grey(rng: np.random.Generator, h: int = 8, w: int = 8) -> np.ndarray:
    """A random grey uint8 image."""
    return rng.integers(0, 256, (h, w)).astype(np.uint8)


def test_bad_image_uploads_show_named_errors(image_zoo_env: Path) -> None:
    rng = np.random.default_rng(0)
    nan = rng.random((6, 8, 8))
    nan[2, 3, 4] = np.nan
    cases = {
        "five.npy": (npy(rng.random((2, 1, 1, 4, 4))), "five.npy: the array has shape (2, 1, 1, 4, 4), 5-D"),
        "nan.npy": (npy(nan), "nan.npy: the array holds NaN at index [2, 3, 4] (image 3)"),
        "sizes.zip": (zipped({"a/1.png": png(grey(rng)), "b/2.png": png(grey(rng, 9, 8))}),
                      "sizes.zip: b/2.png: 8 x 9 pixels (width x height), but a/1.png is 8 x 8"),
        "bomb.zip": (zipped({"a/1.png": png(grey(rng)), "a/2.png": b"\0" * 2**20}),
                     "over the limit of 100 to 1 for an image (a zip bomb?)"),
        "text.zip": (zipped({"a/1.png": png(grey(rng)), "a/notes.txt": b"hello"}),
                     "text.zip: a/notes.txt: not a PNG image"),
    }
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    at.switch_page("views/train.py").run()
    for name, (data, message) in cases.items():
        upload(at, name, data)
        assert not at.exception, [e.value for e in at.exception]
        shown = [e.value for e in at.error]
        assert len(shown) == 1 and shown[0].startswith("This file cannot be used.") and message in shown[0], shown
        assert "train_go" not in [b.key for b in at.button]  # nothing to train on


@pytest.mark.slow
def test_a_zip_of_class_folders_trains_a_conditional_image_model_live(image_zoo_env: Path) -> None:
    rng = np.random.default_rng(1)
    files = {}
    for k, name in enumerate(("bars", "dots")):  # two classes of 6 x 6 pictures
        for i in range(12):
            picture = rng.integers(0, 40, (6, 6)).astype(np.uint8)
            picture[:, k * 3:(k + 1) * 3] += 200
            files[f"set/{name}/{i}.png"] = png(picture)
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    at.switch_page("views/train.py").run()
    upload(at, "pictures.zip", zipped(files))
    assert_clean(at)
    assert any("pictures.zip: 24 images of 1 × 6 × 6 pixels" in c.value and "2 classes: bars (12), dots (12)"
               in c.value for c in at.caption)
    at.checkbox(key="train_image_conditional").check()
    at.number_input(key="train_image_steps").set_value(50)
    at.select_slider(key="train_image_width").set_value(16)
    at.button(key="train_go").click().run()
    at = finish_jobs(at)
    assert_clean(at)
    assert "pictures.zip · ot · U-Net · 50 steps · by class (this session)" in at.success[0].value
    assert labels(at, "download_button") == ["Download the model (.safetensors)",
                                                            "Download 256 samples (.npy)"]
    key = at.session_state[state.MODEL_KEY]
    view = at.session_state[state.SESSION_MODELS][key]
    assert view.flow.image is not None and view.flow.image.shape == (1, 6, 6) and view.flow.labels == ("bars", "dots")
    at.switch_page("views/images.py").run()
    at.selectbox(key=f"_class_{key}").set_value(1).run()
    assert_clean(at)
    assert len(at.get("plotly_chart")) == IMAGE_CHARTS
    assert any("24 training images to their nearest other training image" in c.value for c in at.caption)
    assert "yardstick: median distance of training images to each other" in [m.label for m in at.metric]  # not "real"
    assert any("need a classifier of these images' classes" in c.value for c in at.caption)


@pytest.mark.slow
def test_builtin_digits_train_on_their_training_split(image_zoo_env: Path) -> None:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    at.switch_page("views/train.py").run()
    at.radio(key="train_kind").set_value("Digits (8 × 8 images)").run()
    assert_clean(at)
    assert any(c.value.startswith("digits: 1,438 images of 1 × 8 × 8 pixels, values 0 to 16, 17 levels")
               for c in at.caption)
    at.number_input(key="train_image_steps").set_value(50)
    at.select_slider(key="train_image_width").set_value(16)
    at.button(key="train_go").click().run()
    at = finish_jobs(at)
    assert_clean(at)
    at.switch_page("views/images.py").run()
    assert_clean(at)
    assert any("359 held-out real images (never trained on)" in c.value for c in at.caption)  # its yardstick
    trained = at.session_state[state.SESSION_MODELS][at.session_state[state.MODEL_KEY]]
    at.switch_page("views/train.py").run()  # its file (as downloaded) opens again, with its training images
    at.file_uploader(key="train_model_upload").set_value(("mine.safetensors", checkpoint.to_bytes(trained.flow),
                                                          "application/octet-stream")).run()
    assert_clean(at)
    opened = at.session_state[state.SESSION_MODELS][at.session_state[state.MODEL_KEY]]
    assert opened.label == "mine.safetensors (this session)" and opened.flow.image == trained.flow.image
    assert len(opened.data) == 1438
    at.switch_page("views/images.py").run()
    assert_clean(at)
    assert len(at.get("plotly_chart")) == IMAGE_CHARTS

"""The explorer's pages under streamlit.testing's AppTest: every page, uploads, training, errors, isolation."""

from __future__ import annotations

import dataclasses
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest
from ui_support import APP, csv_bytes, finish_jobs, write_manifest

from corpus_cases import IMAGE_ROUTE, materialize_corpus
from flowscope import MLPConfig, TrainConfig, train
from flowscope.data.datasets import dataset_columns, dataset_labels, make_dataset, make_labelled
from flowscope.data.loader import DataError
from flowscope.evaluation.records import format_rows, stored_report
from flowscope.io import checkpoint
from flowscope.zoo.registry import entries
from flowscope_ui import startpage, state, uploads, widgets

PAGES = ["gallery", "paths", "fields", "marginals", "train", "compare", "learn"]
TIMEOUT = 120


def start(page: str | None = None) -> AppTest:
    """A fresh session of the app, run once (on `page` if given)."""
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    if page is not None:
        at.switch_page(f"views/{page}.py").run()
    return at


def assert_clean(at: AppTest) -> None:
    """No exception element on the page."""
    assert not at.exception, [e.value for e in at.exception]


def charts(at: AppTest) -> int:
    """Number of plotly charts on the page."""
    return len(at.get("plotly_chart"))


def errors(at: AppTest) -> list[str]:
    """The texts of st.error elements."""
    return [str(e.value) for e in at.error]


def assert_time_frames(at: AppTest, chart: int, grid: bool = True) -> None:
    """The chart moves t in the browser: one frame per time (the page's grid, fine near 0 and 1, or the
    trajectories' frames), each with its own panel titles, and plotly's slider has a step per frame."""
    spec = json.loads(at.get("plotly_chart")[chart].proto.spec)
    frames, steps = spec["frames"], spec["layout"]["sliders"][0]["steps"]
    assert len(frames) == len(steps) >= 21 and [f["name"] for f in frames] == [s["args"][0][0] for s in steps]
    times = [float(f["name"]) for f in frames]
    assert times == sorted(times) and times[0] == 0.0 and times[-1] > 0.99
    if grid:
        assert max(np.diff(times[:3])) < 0.02 and max(np.diff(times[-3:])) < 0.02 < max(np.diff(times))
    titles = {json.dumps([d["text"] for d in f["data"] if d["type"] == "scatter" and "text" in d]) for f in frames}
    assert len(titles) > 20  # each frame's panels are titled with its own t (text traces: no redraw)
    assert not any(step["args"][1]["frame"]["redraw"] for step in steps)


def upload_data(at: AppTest, name: str, data: bytes) -> AppTest:
    """Choose 'Upload a file' on the Train page and upload `data` as `name`."""
    at.radio(key="train_kind").set_value("Upload a file").run()
    return at.file_uploader(key="train_upload").set_value((name, data, "application/octet-stream")).run()


def train_now(at: AppTest, steps: int = 100, lr: float | None = None) -> AppTest:
    """Set the steps (and learning rate) and press Train."""
    at.number_input(key="train_steps").set_value(steps)
    if lr is not None:
        at.select_slider(key="train_lr").set_value(lr)
    at.button(key="train_go").click().run()
    return finish_jobs(at)


def own_models(at: AppTest) -> dict[str, state.ModelView]:
    """The session's own models of an AppTest session."""
    models: dict[str, state.ModelView] = at.session_state[state.SESSION_MODELS] if state.SESSION_MODELS in \
        at.session_state else {}
    return models


def test_home_shows_a_pretrained_flow(zoo_env: Path, ui_cache: Path) -> None:
    at = start()
    assert_clean(at)
    assert charts(at) == 2  # the animated flow and the learned field
    assert at.session_state[state.MODEL_KEY] == "zoo:moons-ot"
    assert at.title[0].value.startswith("flowscope")
    assert "moons-ot" in at.caption[0].value
    (cached,) = ui_cache.glob("start-*.npz")  # kept for the next start, which draws it before importing torch
    again = start()
    assert_clean(again)
    assert charts(again) == 2 and "moons-ot" in again.caption[0].value
    assert list(ui_cache.glob("start-*.npz")) == [cached]


def test_start_page_cache_roundtrip_and_staleness(tmp_path: Path, ui_cache: Path) -> None:
    model = tmp_path / "m.safetensors"
    model.write_bytes(b"weights v1")
    picture = startpage.CachedFlow(np.zeros((3, 4, 2)), np.linspace(0, 1, 3), np.ones((5, 2)),
                                   ((-1.0, 1.0), (-2.0, 2.0)), "caption")
    assert startpage.load(model, "s") is None
    startpage.save(model, "s", picture)
    loaded = startpage.load(model, "s")
    assert loaded is not None and loaded.caption == "caption" and loaded.bounds == ((-1.0, 1.0), (-2.0, 2.0))
    assert loaded.points.shape == (3, 4, 2) and startpage.load(model, "other settings") is None
    model.write_bytes(b"weights v2")  # a rebuilt model: the old picture no longer applies
    assert startpage.load(model, "s") is None


def test_start_page_cache_that_cannot_be_written_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("FLOWSCOPE_UI_CACHE", str(blocker))
    model = tmp_path / "m.safetensors"
    model.write_bytes(b"weights")
    picture = startpage.CachedFlow(np.zeros((2, 1, 2)), np.zeros(2), np.zeros((1, 2)), ((0.0, 1.0), (0.0, 1.0)), "")
    startpage.save(model, "s", picture)  # no error: the page just computes again next time
    assert startpage.load(model, "s") is None


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders(zoo_env: Path, page: str) -> None:
    at = start(page)
    assert_clean(at)
    assert not errors(at)
    assert at.title[0].value.lower() == page  # the page's title, then its one-sentence description
    assert len(at.markdown[0].value.split(". ")) == 1 or page == "learn"
    expected = {"gallery": 3, "paths": 2, "fields": 1, "marginals": 2, "train": 0, "compare": 2, "learn": 0}[page]
    assert charts(at) == expected
    if page == "gallery":
        assert [b.label for b in at.button] == ["Open"] * 3
    if page == "paths":
        assert len(at.metric) == 4
    if page == "compare":
        assert len(at.dataframe) == 1
    if page == "learn":
        assert len(at.latex) >= 8
    if page == "train":
        assert at.file_uploader(key="train_upload").label.startswith("A CSV")


@pytest.mark.slow
def test_fields_slider_index_probe_and_noise_source_model(zoo_env: Path) -> None:
    at = start("fields")
    key = at.session_state[state.MODEL_KEY]
    assert_time_frames(at, 0)
    at.number_input(key=f"fields_x1_{key}").set_value(7).run()
    at.number_input(key=f"fields_px_{key}").set_value(1.0).run()
    assert_clean(at)
    assert charts(at) == 1
    at.session_state[state.MODEL_KEY] = "zoo:8gaussians-to-moons-ot"  # stored source: the pairs version
    at.run()
    assert_clean(at)
    assert charts(at) == 1


def test_paths_slider_and_solver(zoo_env: Path) -> None:
    at = start("paths")
    assert_time_frames(at, 1, grid=False)
    at.selectbox(key="paths_method").set_value("dopri5").run()
    assert_clean(at)
    assert at.metric[0].value != "0"


def test_gallery_open_selects_the_model_and_opens_paths(zoo_env: Path) -> None:
    at = start("gallery")
    at.button(key="gallery_open_moons-vp").click().run()
    assert_clean(at)
    assert at.session_state[state.MODEL_KEY] == "zoo:moons-vp"
    assert at.title[0].value == "Paths"


def test_gallery_cards_show_the_rows_the_cli_prints(zoo_env: Path) -> None:
    """Each card's figures are its report's rows (`QualityReport.rows`, what `flowscope train` prints), with the
    rows' notes as the caption's help."""
    at = start("gallery")
    rows = [r for e in entries(zoo_env) if (report := stored_report(e.metrics)) is not None for r in [report.rows()]]
    assert len(rows) == 3
    for shown_rows in rows:
        text, notes = widgets.report_caption(shown_rows)
        assert "W2 / floor 2.50" in text and "NFE 100" in text and "straightness 0.500" in text
        assert sum(c.value == text and c.help == notes for c in at.caption) == 3  # the tiny zoo's three cards
        printed = format_rows(shown_rows).splitlines()  # the CLI's lines: the same labels and values
        assert [line.split("  ")[1] for line in printed] == [r.label for r in shown_rows]


def test_gallery_filters(zoo_env: Path) -> None:
    at = start("gallery")
    at.multiselect(key="gallery_path").set_value(["vp"]).run()
    assert [b.label for b in at.button] == ["Open"]


@pytest.mark.slow
def test_upload_csv_train_and_explore(zoo_env: Path) -> None:
    at = start("train")
    points = make_dataset("circles", 800, seed=3)
    upload_data(at, "circles.csv", csv_bytes(points))
    assert_clean(at)
    assert not errors(at)
    assert charts(at) == 1  # the preview
    train_now(at, steps=150)
    assert_clean(at)
    assert any("trained 150 steps" in s.value for s in at.success)
    assert charts(at) >= 3  # preview, loss curve, samples
    assert len(at.get("download_button")) == 3  # the model, and its samples as CSV and .npy
    (key, view), = own_models(at).items()
    assert at.session_state[state.MODEL_KEY] == key and view.flow.dim == 2 and len(view.data) == 800
    for page in ("fields", "paths", "compare", "home"):
        at.switch_page(f"views/{page}.py").run()
        assert_clean(at)
        assert charts(at) >= 1


def test_upload_with_more_columns_and_standardisation(zoo_env: Path) -> None:
    at = start("train")
    rng = np.random.default_rng(0)
    table = np.column_stack([rng.normal(size=300), 1000 * rng.normal(size=300), rng.normal(size=300),
                             np.full(300, 7.0)])
    text = "p,q,r,s\n" + "\n".join(",".join(f"{v:.4f}" for v in row) for row in table)
    upload_data(at, "four.csv", text.encode())
    assert_clean(at)
    assert at.checkbox(key="train_std").value  # scales differ 1000x: standardising is suggested
    assert at.multiselect(key="train_columns").value == ["p", "q", "r", "s"]  # every numeric column by default
    assert any("'s'" in c.value and "constant" in c.value.lower() for c in at.caption)
    x, y = axis_titles(at)
    assert x.startswith("PC1") and y.startswith("PC2")  # a preview of 4 columns: their principal axes
    at.multiselect(key="train_columns").set_value(["q"]).run()
    assert any("choose at least 2 columns" in e for e in errors(at))
    at.multiselect(key="train_columns").set_value(["p", "s"]).run()
    assert any("'s' is constant" in e for e in errors(at))
    at.multiselect(key="train_columns").set_value(["r", "q"]).run()
    assert not errors(at) and axis_titles(at) == ("r", "q")  # two columns: drawn as they are, named


@pytest.mark.slow
def test_every_bad_corpus_file_shows_the_loaders_message(zoo_env: Path, tmp_path: Path) -> None:
    at = start("train")
    at.radio(key="train_kind").set_value("Upload a file").run()
    for case in materialize_corpus(tmp_path, uploads.UPLOAD_LIMITS):
        if not case.path.is_file():
            continue  # missing.csv / folder.csv: not something a browser can upload
        at.file_uploader(key="train_upload").set_value((case.path.name, case.path.read_bytes(), "text/plain")).run()
        assert_clean(at)
        shown = errors(at)
        expected = IMAGE_ROUTE.get(case.path.name, case.expected)
        assert len(shown) == 1 and expected in shown[0] and case.path.name in shown[0], (case, shown)
        assert "Traceback" not in shown[0]


def test_one_column_file_is_refused_clearly(zoo_env: Path) -> None:
    at = start("train")
    upload_data(at, "one.csv", b"v\n1\n2\n3\n")
    assert any("needs at least 2" in e for e in errors(at))


@pytest.mark.slow
def test_diverging_training_keeps_the_last_good_weights(zoo_env: Path) -> None:
    at = start("train")
    at.radio(key="train_kind").set_value("Toy dataset").run()
    at.select_slider(key="train_width").set_value(128)  # diverges at lr 1e4 (the recipe's width 64 survives it)
    train_now(at, steps=300, lr=1e4)
    assert_clean(at)
    assert any("the loss became" in e and "last good weights are kept" in e for e in errors(at))
    (view,) = own_models(at).values()
    assert all(torch.isfinite(p).all() for p in view.flow.net.parameters())
    at.switch_page("views/paths.py").run()
    assert_clean(at)


def _model_bytes(dim: int, with_data: bool = False) -> bytes:
    """A tiny trained model of dimension `dim`, as checkpoint bytes (carrying its data if asked)."""
    data = torch.randn(200, dim)
    config = TrainConfig(steps=5, device="cpu")
    flow = train(data, model=MLPConfig(dim=dim, width=16, depth=1), config=config,
                 dataset="moons" if dim == 2 else "custom").model
    if with_data:
        flow.data = data
        flow.info["columns"] = [f"m{j}" for j in range(dim)]
    return checkpoint.to_bytes(flow)


@pytest.mark.slow
def test_model_file_uploads(zoo_env: Path) -> None:
    at = start("train")
    uploader = at.file_uploader(key="train_model_upload")
    uploader.set_value(("junk.safetensors", b"\x00" * 64, "application/octet-stream")).run()
    assert any("junk.safetensors" in e and "header" in e for e in errors(at)), errors(at)
    good = _model_bytes(2)
    at.file_uploader(key="train_model_upload").set_value(("cut.safetensors", good[:-40], "x")).run()
    assert any("cut.safetensors" in e for e in errors(at)), errors(at)
    at.file_uploader(key="train_model_upload").set_value(("three.safetensors", _model_bytes(3), "x")).run()
    assert any("3-dimensional" in e and "carries no data sample" in e for e in errors(at)), errors(at)
    assert not own_models(at)
    at.file_uploader(key="train_model_upload").set_value(("one.safetensors", _model_bytes(1), "x")).run()
    assert any("at least 2 dimensions" in e for e in errors(at)), errors(at)
    at.file_uploader(key="train_model_upload").set_value(("good.safetensors", good, "x")).run()
    assert_clean(at)
    assert [v.label for v in own_models(at).values()] == ["good.safetensors (this session)"]
    at.switch_page("views/fields.py").run()
    assert_clean(at)
    assert charts(at) == 1
    at.switch_page("views/train.py").run()  # a 5-D model file with its own data sample opens with it
    at.file_uploader(key="train_model_upload").set_value(("five.safetensors", _model_bytes(5, True), "x")).run()
    assert_clean(at)
    five = [v for v in own_models(at).values() if v.label.startswith("five")]
    assert len(five) == 1 and five[0].data.shape == (200, 5) and five[0].columns == tuple(f"m{j}" for j in range(5))
    at.switch_page("views/fields.py").run()
    assert_clean(at)
    assert charts(at) == 1 and axis_titles(at)[0].startswith("PC1")


def test_two_sessions_see_only_their_own_models(zoo_env: Path) -> None:
    alice = start("train")
    upload_data(alice, "alice.csv", csv_bytes(make_dataset("moons", 500, seed=1)))
    train_now(alice, steps=100)
    bob = start()  # a second browser session, opened after Alice trained
    picker = bob.sidebar.selectbox(key="_model_picker")
    assert not any("alice" in option for option in picker.options) and len(picker.options) == 3
    assert not own_models(bob)
    bob.switch_page("views/train.py").run()
    upload_data(bob, "bob.csv", csv_bytes(make_dataset("rings", 500, seed=2)))
    train_now(bob, steps=100)
    assert [v.label.split(" · ")[0] for v in own_models(bob).values()] == ["bob.csv"]
    assert [v.label.split(" · ")[0] for v in own_models(alice).values()] == ["alice.csv"]
    assert own_models(alice)[alice.session_state[state.MODEL_KEY]].data.shape == (500, 2)


def test_missing_zoo_degrades_gracefully(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWSCOPE_ZOO_DIR", str(tmp_path))
    at = start()
    assert_clean(at)
    assert any("flowscope zoo build" in i.value for i in at.info)
    at.switch_page("views/gallery.py").run()
    assert any("no zoo manifest" in w.value for w in at.warning)
    at.switch_page("views/train.py").run()  # training still works without a zoo
    at.radio(key="train_kind").set_value("Toy dataset").run()
    train_now(at, steps=100)
    assert_clean(at)
    at.switch_page("views/fields.py").run()
    assert_clean(at)
    assert charts(at) == 1


def test_corrupt_zoo_model_shows_a_message(tiny_zoo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = entries(tiny_zoo)
    for row in rows:
        (tmp_path / row.file).write_bytes((tiny_zoo / row.file).read_bytes())
    (tmp_path / "moons-ot.safetensors").write_bytes(b"not a model at all")
    write_manifest(tmp_path, rows)
    monkeypatch.setenv("FLOWSCOPE_ZOO_DIR", str(tmp_path))
    at = start()
    assert_clean(at)
    assert any("moons-ot" in e and "corrupt" in e for e in errors(at)), errors(at)
    at.switch_page("views/gallery.py").run()
    assert_clean(at)
    assert len(errors(at)) == 1 and charts(at) == 2  # the broken card says why; the others render


def test_upload_helpers_directly() -> None:
    table = uploads.read_table(b"x,y,z\n0,1,5\n1,0,5\n2,2,5\n", "ok.csv")
    points = uploads.select_columns(table, ("y", "x", "z"))
    assert points.shape == (3, 3) and np.array_equal(points[:, 0], [1, 0, 2])  # in data units: the core normalises
    assert uploads.constant_columns(table, ("x", "z")) == ["z"]
    assert not uploads.suggest_standardise(table)  # the constant column does not count
    with pytest.raises(ValueError, match="'z' is constant"):
        uploads.select_columns(table, ("x", "z"))
    with pytest.raises(DataError, match=r"found 1 numeric column \(text columns left out: 'kind'\)"):
        uploads.read_table(b"v,kind\n1,a\n2,b\n3,c\n", "labels.csv")
    big = io.BytesIO(b"0" * (uploads.UPLOAD_LIMITS.max_bytes + 1)).getvalue()
    with pytest.raises(ValueError, match="over the size limit"):
        uploads.read_table(big, "big.csv")


def test_upload_limit_in_config_matches_the_code() -> None:
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((APP.parent / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == uploads.MAX_UPLOAD_MB
    assert uploads.UPLOAD_LIMITS.max_bytes == uploads.MAX_UPLOAD_MB * 2**20


# --- models of any dimension ---------------------------------------------------------------------------------


def _session_view(key: str, data: np.ndarray, dataset: str, steps: int = 60) -> state.ModelView:
    """A tiny model of `data` as one of a session's own models (seconds to train)."""
    flow = train(torch.from_numpy(data), model=MLPConfig(dim=data.shape[1], width=32, depth=2),
                 config=TrainConfig(steps=steps, device="cpu"), dataset=dataset).model
    return state.ModelView(key=key, label=f"{dataset} (this session)", flow=flow, data=data, dataset=dataset,
                           cache_id=key)


@pytest.fixture(scope="module")
def wine_view() -> state.ModelView:
    """A 13-D model of the wine table, whose columns have names."""
    return _session_view("mine:913", make_dataset("wine", 500, seed=0), "wine")


@pytest.fixture(scope="module")
def random_view() -> state.ModelView:
    """A 13-D model of random data without column names, one column constant (a constant of the model)."""
    data = np.random.default_rng(1).normal(size=(600, 13)).astype(np.float32) * np.linspace(0.5, 3.0, 13)
    data[:, 6] = 4.0
    return _session_view("mine:914", data, "custom")


def show(at: AppTest, *views: state.ModelView) -> AppTest:
    """Make `views` this session's own models and select the first."""
    at.session_state[state.SESSION_MODELS] = {v.key: v for v in views}
    at.session_state[state.MODEL_KEY] = views[0].key
    return at.run()


def pick_coordinates(at: AppTest, view: state.ModelView, first: int, second: int) -> AppTest:
    """Choose "Two coordinates" in the sidebar's view of `view` (on a page that draws it)."""
    at.sidebar.radio(key=f"_projection_kind_{view.key}").set_value("Two coordinates").run()
    at.sidebar.selectbox(key=f"_projection_first_{view.key}").set_value(first).run()
    return at.sidebar.selectbox(key=f"_projection_second_{view.key}").set_value(second).run()


def axis_titles(at: AppTest, chart: int = 0) -> tuple[Any, Any]:
    """The first panel's axis titles of a plotly chart on the page."""
    layout = json.loads(at.get("plotly_chart")[chart].proto.spec)["layout"]
    return (layout["xaxis"].get("title", {}).get("text"), layout["yaxis"].get("title", {}).get("text"))


VIEW_PAGES = {"home": 2, "paths": 2, "fields": 1, "marginals": 2, "compare": 2, "gallery": 3}


@pytest.mark.slow
@pytest.mark.parametrize("projection", ["principal axes", "two coordinates"])
def test_every_page_draws_a_13d_model(zoo_env: Path, wine_view: state.ModelView, projection: str) -> None:
    at = show(start("paths"), wine_view)
    names = dataset_columns("wine")
    expected = ("PC1", "PC2")
    if projection == "two coordinates":
        pick_coordinates(at, wine_view, 3, 9)
        expected = (names[3], names[9])
    for page, n in VIEW_PAGES.items():
        at.switch_page(f"views/{page}.py").run()
        assert_clean(at)
        assert not errors(at), (page, errors(at))
        assert charts(at) == n, page
        if page in ("home", "paths", "fields"):
            x, y = axis_titles(at)
            assert x.startswith(expected[0]) and y.startswith(expected[1]), (page, x, y)
    at.switch_page("views/paths.py").run()
    assert any("exact density of the projected" in c.value for c in at.caption)
    assert at.sidebar.radio(key=f"_projection_kind_{wine_view.key}").value == projection.capitalize()  # remembered


@pytest.mark.slow
def test_fields_slice_of_a_13d_model(zoo_env: Path, random_view: state.ModelView) -> None:
    at = show(start("fields"), random_view)
    key = random_view.key
    assert any("exact in all 13 dimensions" in c.value and "on the slice" in c.value for c in at.caption)
    assert_time_frames(at, 0)
    at.number_input(key=f"fields_x1_{key}").set_value(11).run()
    at.radio(key=f"fields_through_{key}").set_value("x1").run()
    at.number_input(key=f"fields_px_{key}_pca").set_value(0.5).run()
    assert_clean(at)
    assert not errors(at) and charts(at) == 1
    assert any("along the plane's axes" in t for t in chart_titles(at))  # u_t(probe), in the weights' title
    pick_coordinates(at, random_view, 6, 2)  # a constant column as an axis: its values are the model's constant
    assert_clean(at)
    assert charts(at) == 1 and axis_titles(at) == ("c7", "c3")  # unnamed: c1..c13
    at.sidebar.selectbox(key=f"_projection_second_{key}").set_value(6).run()
    assert_clean(at)
    assert any("Choose two different columns" in e and "'c7'" in e for e in errors(at))
    assert charts(at) == 1 and axis_titles(at)[0].startswith("PC1")  # the principal axes meanwhile


def test_marginals_for_2d_and_13d_models(zoo_env: Path, wine_view: state.ModelView) -> None:
    at = start("marginals")
    assert_clean(at)
    assert charts(at) == 2 and [m.value for m in at.multiselect] == [[0, 1]]
    histograms = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [a["text"].split(" · ")[0] for a in histograms["layout"]["annotations"]] == ["x", "y"]
    show(at, wine_view)
    assert_clean(at)
    dims = at.multiselect(key=f"marginals_dims_{wine_view.key}")
    assert dims.value == list(range(8)) and charts(at) == 2
    titles = [a["text"] for a in json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]["annotations"]]
    assert len(titles) == 13 and titles[0].startswith("alcohol · W1 ")
    dims.set_value([0]).run()
    assert charts(at) == 1 and any("at least two dimensions" in i.value for i in at.info)
    at.multiselect(key=f"marginals_dims_{wine_view.key}").set_value([12, 0, 5]).run()
    assert_clean(at)
    assert charts(at) == 2


def test_compare_a_2d_and_a_13d_model(zoo_env: Path, wine_view: state.ModelView, random_view: state.ModelView) -> None:
    at = show(start("compare"), wine_view, random_view)
    assert_clean(at)
    at.selectbox(key="compare_a").set_value("zoo:moons-ot").run()
    at.selectbox(key="compare_b").set_value(wine_view.key).run()
    assert_clean(at)
    assert charts(at) == 2 and len(at.dataframe) == 1
    assert [r.label for r in at.sidebar.radio] == ["View of B: 13-D model"]
    at.selectbox(key="compare_b").set_value("zoo:moons-ot").run()  # the same model twice: no picker at all
    assert_clean(at)
    at.selectbox(key="compare_a").set_value(random_view.key).run()
    at.selectbox(key="compare_b").set_value(random_view.key).run()  # the same 13-D model twice: one picker
    assert_clean(at)
    assert [r.label for r in at.sidebar.radio] == ["View of A: 13-D model"] and charts(at) == 2


def test_a_model_without_data_of_its_dimension_is_refused_clearly(zoo_env: Path,
                                                                   wine_view: state.ModelView) -> None:
    broken = state.ModelView(key="mine:999", label="no data", flow=wine_view.flow, data=np.zeros((0, 2)),
                             dataset="custom", cache_id="mine:999")
    at = show(start("paths"), broken)
    assert_clean(at)
    assert any("cannot be drawn" in e and "13 columns" in e for e in errors(at)), errors(at)


def wine_csv(rows: int = 178) -> bytes:
    """The wine table with a header of 13 named columns and a text column 'kind', CRLF line ends."""
    data = make_dataset("wine", rows, seed=0)
    names = dataset_columns("wine")
    kinds = ["red" if v > 0 else "white" for v in data[:, 0]]
    lines = [",".join((*names[:5], "kind", *names[5:]))]
    lines += [",".join((*(f"{v:.5f}" for v in row[:5]), kind, *(f"{v:.5f}" for v in row[5:])))
              for row, kind in zip(data, kinds, strict=True)]
    return ("\r\n".join(lines) + "\r\n").encode()


@pytest.mark.slow
def test_upload_13_columns_and_a_text_column_train_and_view(zoo_env: Path) -> None:
    at = start("train")
    upload_data(at, "wine.csv", wine_csv())
    assert_clean(at)
    assert any("Left out" in i.value and "kind" in i.value and "column 6" in i.value for i in at.info), \
        [i.value for i in at.info]
    assert at.multiselect(key="train_columns").value == list(dataset_columns("wine"))
    at.checkbox(key="train_std").set_value(False).run()  # one scale for every column
    train_now(at, steps=100)
    assert_clean(at)
    (view,) = own_models(at).values()
    flow = view.flow
    assert flow.dim == 13 and view.data.shape == (178, 13) and len(set(flow.normalizer.scale)) == 1
    assert flow.info["columns"] == list(dataset_columns("wine")) and view.columns == dataset_columns("wine")
    assert flow.data is not None and flow.data.shape == (178, 13)  # the downloaded file carries its data
    assert charts(at) >= 3 and axis_titles(at, 2)[0].startswith("PC1")  # preview, loss, samples on the PCs
    for page in ("paths", "fields", "marginals"):
        at.switch_page(f"views/{page}.py").run()
        assert_clean(at)
        assert not errors(at)


# --- conditional models: a class and a guidance scale --------------------------------------------------------


def _conditional_view(key: str, name: str, n: int, steps: int = 80) -> state.ModelView:
    """A tiny conditional model of a built-in dataset's natural labels, as one of a session's own models."""
    labelled = make_labelled(name, n, seed=0)
    flow = train(torch.from_numpy(labelled.x), model=MLPConfig(dim=labelled.x.shape[1], width=32, depth=2),
                 config=TrainConfig(steps=steps, device="cpu"), dataset=name,
                 labels=torch.from_numpy(labelled.y), label_names=labelled.names).model
    return state.ModelView(key=key, label=f"{name} by class (this session)", flow=flow, data=labelled.x,
                           dataset=name, cache_id=key, data_labels=labelled.y)


@pytest.fixture(scope="module")
def cond_view() -> state.ModelView:
    """A conditional model of 8gaussians' eight components."""
    return _conditional_view("mine:921", "8gaussians", 2000)


def pick_class(at: AppTest, view: state.ModelView, label: int, w: float | None = None) -> AppTest:
    """Choose a class and a guidance scale in the sidebar (on a page that draws them)."""
    at.sidebar.selectbox(key=f"_class_{view.key}").set_value(label).run()
    return at if w is None else at.sidebar.slider(key=f"_guidance_{view.key}").set_value(w).run()


def chart_titles(at: AppTest, chart: int = 0) -> list[str]:
    """The titles of a plotly chart's panels: its one-line text traces (animated panels' titles, which change
    with t), then its subplot titles."""
    spec = json.loads(at.get("plotly_chart")[chart].proto.spec)
    texts = [d["text"][0] for d in spec["data"] if d.get("mode") == "text" and len(d["text"]) == 1]
    return texts + [a["text"] for a in spec["layout"].get("annotations", []) if a["text"]]


@pytest.mark.slow
def test_a_conditional_model_on_paths_and_fields_with_a_class_and_guidance(
        zoo_env: Path, cond_view: state.ModelView) -> None:
    at = show(start("paths"), cond_view)
    assert_clean(at)
    picker = at.sidebar.selectbox(key=f"_class_{cond_view.key}")
    assert picker.value == -1 and picker.options[0] == "none (unconditional)" and len(picker.options) == 9
    assert at.sidebar.slider(key=f"_guidance_{cond_view.key}").disabled  # w needs a class
    assert charts(at) == 2 and at.metric[1].label.startswith("W2 to the data")
    pick_class(at, cond_view, 3, 2.0)
    assert_clean(at)
    assert not errors(at) and charts(at) == 2
    name = cond_view.flow.labels[3]
    n = re.fullmatch(rf"W2 to class {re.escape(name)}'s data \(([\d,]+) particles\)", at.metric[1].label)
    assert n is not None and at.metric[2].label == f"W2 floor ({n.group(1)} vs {n.group(1)} data points)"
    assert any("v_w = v(x, t, y) + w (v(x, t, y) − v(x, t, none))" in c.value for c in at.caption)
    assert f"p_t(x | y = {name})" in chart_titles(at, 1)[1]
    at.switch_page("views/fields.py").run()  # the class and w are remembered across pages
    assert_clean(at)
    assert not errors(at)
    assert at.sidebar.selectbox(key=f"_class_{cond_view.key}").value == 3
    assert at.sidebar.slider(key=f"_guidance_{cond_view.key}").value == 2.0
    assert charts(at) == 2  # the three fields, and the samples at w = 0, 1, 3
    titles = chart_titles(at, 0)
    assert titles[0].startswith(f"exact class field u_t(x | y = {name})") and "at w = 2" in titles[1]
    assert titles[2].startswith("learned guided field v_w at w = 2")
    assert all("label accuracy" in t for t in chart_titles(at, 1)) and len(chart_titles(at, 1)) == 3
    assert any("cfg_scale" in c.value and "w = 0 is plain conditional" in c.value for c in at.caption)
    assert_time_frames(at, 0)
    assert_clean(at)
    pick_class(at, cond_view, -1)  # no class: the page as for any model
    assert_clean(at)
    assert charts(at) == 1 and chart_titles(at)[0].startswith("conditional u_t(x | x1)")


@pytest.mark.slow
def test_a_13d_conditional_model_draws_its_class_fields_on_the_slice(zoo_env: Path) -> None:
    view = _conditional_view("mine:922", "wine", 400, steps=40)
    at = show(start("fields"), view)
    pick_class(at, view, 1, 2.0)
    assert_clean(at)
    assert not errors(at) and charts(at) == 2
    assert axis_titles(at)[0].startswith("PC1") and "(normalised)" in chart_titles(at)[2]
    at.radio(key=f"fields_through_{view.key}").set_value("x1").run()
    at.number_input(key=f"fields_x1_{view.key}").set_value(5).run()
    assert_clean(at)
    at.switch_page("views/paths.py").run()
    assert_clean(at)
    assert charts(at) == 2 and at.sidebar.selectbox(key=f"_class_{view.key}").value == 1


@pytest.mark.slow
def test_a_conditional_model_without_data_labels_says_so(zoo_env: Path, cond_view: state.ModelView) -> None:
    unlabelled = dataclasses.replace(cond_view, key="mine:923", cache_id="mine:923", data_labels=None)
    at = show(start("fields"), unlabelled)
    pick_class(at, unlabelled, 2, 1.0)
    assert_clean(at)
    assert any("carry no class labels" in i.value for i in at.info) and charts(at) == 1
    at.switch_page("views/paths.py").run()
    assert_clean(at)
    assert charts(at) == 2 and at.metric[1].label.startswith("W2 to the data")
    assert cond_view.data_labels is not None
    tripled = np.concatenate([cond_view.data] * 3)  # class 7 only past the 5,000 points the exact fields take
    late = np.where(np.arange(len(tripled)) < 5000, np.tile(cond_view.data_labels, 3) % 7, 7)
    rare = dataclasses.replace(cond_view, key="mine:924", cache_id="mine:924", data=tripled, data_labels=late)
    at = show(start("fields"), rare)
    pick_class(at, rare, 7, 1.0)
    assert_clean(at)
    assert any("has no point among the 5,000 data points" in i.value for i in at.info) and charts(at) == 1
    at.switch_page("views/paths.py").run()
    assert_clean(at)
    assert charts(at) == 2 and at.metric[1].label.startswith("W2 to class component 7's data")


def blobs_csv(n: int = 150, classes: str = "abc") -> bytes:
    """Well-separated 2-D blobs, one per class, with a text label column 'kind' in the middle, CRLF line ends."""
    rng = np.random.default_rng(5)
    rows = ["x,kind,y"]
    for k, name in enumerate(classes):
        centre = 4.0 * np.array([np.cos(2.1 * k), np.sin(2.1 * k)])
        rows += [f"{x:.4f},{name},{y:.4f}" for x, y in centre + 0.4 * rng.normal(size=(n, 2))]
    return ("\r\n".join(rows) + "\r\n").encode()


@pytest.mark.slow
def test_upload_with_a_label_column_trains_a_conditional_model(zoo_env: Path) -> None:
    at = start("train")
    upload_data(at, "blobs.csv", blobs_csv())
    assert_clean(at)
    label = at.selectbox(key="train_label")
    assert label.options == ["none: an unconditional model", "kind (text)", "x (numbers)", "y (numbers)"]
    label.set_value("kind").run()
    assert_clean(at)
    assert not errors(at)
    assert any("3 classes of 'kind': a (150), b (150), c (150)" in c.value for c in at.caption)
    assert any("label is replaced by “no label” with probability 0.1" in c.value for c in at.caption)
    train_now(at, steps=100)
    assert_clean(at)
    (view,) = own_models(at).values()
    assert view.conditional and view.flow.labels == ("a", "b", "c") and view.label.endswith("by kind (this session)")
    assert view.data_labels is not None and view.data.shape == (450, 2)
    assert view.flow.data_labels is not None and len(view.flow.data_labels) == 450  # the downloaded file keeps them
    rows = {(round(float(x), 3), round(float(y), 3)): k for (x, y), k in zip(view.data, view.data_labels, strict=True)}
    assert rows[(round(float(view.data[0, 0]), 3), round(float(view.data[0, 1]), 3))] == view.data_labels[0]
    assert all(view.data_labels[(view.data[:, 0] > 3.0)] == 0)  # blob 'a' sits at (4, 0): labels follow their rows
    at.switch_page("views/fields.py").run()
    pick_class(at, view, 1, 2.0)
    assert_clean(at)
    assert charts(at) == 2 and not errors(at)


@pytest.mark.slow
def test_toy_dataset_with_natural_labels(zoo_env: Path) -> None:
    at = start("train")
    at.radio(key="train_kind").set_value("Toy dataset").run()
    at.selectbox(key="train_toy").set_value("swissroll").run()
    assert at.checkbox(key="train_conditional").disabled  # no natural labels
    at.selectbox(key="train_toy").set_value("pinwheel").run()
    at.checkbox(key="train_conditional").check().run()
    assert any("A conditional model of 5 classes" in c.value for c in at.caption)
    train_now(at, steps=100)
    assert_clean(at)
    (view,) = own_models(at).values()
    assert view.flow.labels == dataset_labels("pinwheel") and view.data_labels is not None
    assert np.array_equal(np.bincount(view.data_labels), np.bincount(make_labelled("pinwheel", 5000, 1).y))
    at.switch_page("views/paths.py").run()
    pick_class(at, view, 4, 3.0)
    assert_clean(at)
    assert charts(at) == 2


def _labelled_csv(labels: list[str]) -> bytes:
    """Two numeric columns c0, c1 and a text label column, one row per label."""
    values = np.random.default_rng(0).normal(size=(len(labels), 2))
    lines = [f"{a:.4f},{b:.4f},{label}" for (a, b), label in zip(values, labels, strict=True)]
    return ("c0,c1,label\n" + "\n".join(lines) + "\n").encode()


@pytest.mark.slow
@pytest.mark.parametrize(("name", "data", "label", "expected"), [
    ("single.csv", _labelled_csv(["a"] * 20 + ["b"] * 20 + ["c"]), "label",
     "single.csv: label column 'label': class(es) 'c' have fewer than 2 points"),
    ("empty.csv", _labelled_csv(["a", "b"] * 10 + ["", "a", ""]), "label",
     "empty.csv: label column 'label': 2 empty label cell(s) (row 21, row 23); every row needs a label"),
    ("many.csv", _labelled_csv([f"k{i}" for i in range(300)] * 2), "label",
     "many.csv: label column 'label': 300 classes, over the limit of 256"),
    ("numbers.csv", csv_bytes(np.random.default_rng(2).normal(size=(400, 2)), header="a,b"), "b",
     "numbers.csv: 'b' is the label column, and the file has only 1 other numeric column"),
    ("one.csv", _labelled_csv(["a", "b"] * 10), "c1",
     "one.csv: 'c1' is the label column, and the file has only 1 other numeric column"),
], ids=["one-row-class", "empty-cells", "300-classes", "two-numeric-columns", "text-and-two-numeric"])
def test_bad_label_columns_show_their_message(zoo_env: Path, name: str, data: bytes, label: str,
                                              expected: str) -> None:
    at = start("train")
    upload_data(at, name, data)
    assert_clean(at)
    at.selectbox(key="train_label").set_value(label).run()
    assert_clean(at)
    shown = errors(at)
    assert len(shown) == 1 and expected in shown[0], shown
    assert "Traceback" not in shown[0]
    assert all(b.key != "train_go" for b in at.button)  # nothing to train


def test_the_label_column_as_the_only_chosen_column(zoo_env: Path) -> None:
    rng = np.random.default_rng(3)
    rows = "\n".join(f"{a:.4f},{b:.4f},{k}" for (a, b), k in zip(rng.normal(size=(60, 2)), [0, 1, 2] * 20,
                                                                  strict=True))
    at = start("train")
    upload_data(at, "three.csv", f"p,q,k\n{rows}\n".encode())
    at.selectbox(key="train_label").set_value("k").run()  # a numeric label column: whole numbers
    assert not errors(at) and any("'k' is the label column: left out" in c.value for c in at.caption)
    assert any("3 classes of 'k': 0 (20), 1 (20), 2 (20)" in c.value for c in at.caption)
    at.multiselect(key="train_columns").set_value(["k"]).run()
    assert any("'k' is the label column, so it is not one of the columns the model learns" in e and "(0 chosen)" in e
               for e in errors(at)), errors(at)
    assert_clean(at)
    upload_data(at, "two.csv", csv_bytes(make_dataset("moons", 300, seed=4)))  # another file: its own columns
    assert not errors(at) and at.multiselect(key="train_columns").value == ["a", "b"]
    assert at.selectbox(key="train_label").value == ""
    upload_data(at, "labels-only.csv", b"label\na\nb\na\nb\n")  # a file of nothing but labels
    assert any("labels-only.csv: no numeric columns" in e and "'label'" in e for e in errors(at)), errors(at)
    assert_clean(at)


@pytest.mark.slow
def test_a_conditional_zoo_model_is_shown_with_its_datasets_natural_labels(
        tiny_zoo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = entries(tiny_zoo)
    for row in rows:
        (tmp_path / row.file).write_bytes((tiny_zoo / row.file).read_bytes())
    labelled = make_labelled("moons", 2000, seed=0)
    flow = train(torch.from_numpy(labelled.x), model=MLPConfig(dim=2, width=32, depth=2),
                 config=TrainConfig(steps=100, device="cpu"), dataset="moons",
                 labels=torch.from_numpy(labelled.y), label_names=labelled.names).model
    checkpoint.save(flow, tmp_path / "moons-cond.safetensors")
    write_manifest(tmp_path, [*rows, dataclasses.replace(rows[0], name="moons-cond", file="moons-cond.safetensors")])
    monkeypatch.setenv("FLOWSCOPE_ZOO_DIR", str(tmp_path))
    at = start("fields")
    at.session_state[state.MODEL_KEY] = "zoo:moons-cond"
    at.run()
    view = state.resolve("zoo:moons-cond")
    assert view.data_labels is not None and np.array_equal(view.data_labels,
                                                           make_labelled("moons", state.VIEW_POINTS, 0).y)
    pick_class(at, view, 0, 2.0)  # the shared caches of a zoo model hold its class fields and samples
    assert_clean(at)
    assert charts(at) == 2 and chart_titles(at)[0].startswith("exact class field u_t(x | y = upper)")
    at.switch_page("views/paths.py").run()
    assert_clean(at)
    assert re.fullmatch(r"W2 to class upper's data \([\d,]+ particles\)", at.metric[1].label), at.metric[1].label
    at.switch_page("views/gallery.py").run()  # the other pages draw it as any model
    assert_clean(at)
    assert charts(at) == 4


def test_an_error_reaching_a_page_is_one_sentence_under_what_was_drawn(zoo_env: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A core error (here a solver's RuntimeError) or an unexpected one stops the page with one sentence naming it,
    never Streamlit's redacted error box, and what was drawn before it stays."""
    import streamlit as st

    from flowscope_ui import compute, layout

    def solver_failure(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("dopri5 could not integrate this model\n  (a second line the page does not show)")

    def bug(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("no such column")

    st.cache_data.clear()  # the zoo model's results are shared caches: compute them again, through the patches
    monkeypatch.setattr(compute, "loss_by_t", solver_failure)  # inside the Fields page's fragment
    at = start("fields")
    assert_clean(at)
    assert errors(at) == [f"Fields {layout.STOPPED}: dopri5 could not integrate this model."]
    assert at.title[0].value == "Fields" and at.caption  # the header and the captions above the chart are there
    monkeypatch.setattr(compute, "density_on_view", bug)  # the Paths page's right column
    at.switch_page("views/paths.py").run()
    assert_clean(at)
    (message,) = errors(at)
    assert message.startswith(f"Paths {layout.STOPPED}: an unexpected KeyError") and "Traceback" not in message
    assert charts(at) == 1  # the particles on the left were drawn before the density failed


def _table_csv(columns: int, rows: int = 300, seed: int = 0) -> bytes:
    """A CSV of `columns` named numeric columns (c0, c1, ...)."""
    values = np.random.default_rng(seed).normal(size=(rows, columns))
    body = "\n".join(",".join(f"{v:.4f}" for v in row) for row in values)
    return (",".join(f"c{j}" for j in range(columns)) + "\n" + body + "\n").encode()


@pytest.mark.slow
def test_a_new_upload_after_a_training_and_a_visit_has_its_own_columns(zoo_env: Path) -> None:
    """Upload A (30 columns), train, visit Fields, come back, upload B (2 columns): B's columns are chosen and sent
    to the browser (which otherwise keeps A's choice and sends it back: 'choose at least 2 columns'), and Train
    trains on B on the first press."""
    at = start("train")
    upload_data(at, "wide.csv", _table_csv(30))
    at.multiselect(key="train_columns").set_value(["c3", "c4", "c5"]).run()  # a choice of A's that B lacks
    train_now(at)
    assert len(own_models(at)) == 1
    at.switch_page("views/fields.py").run()
    at.switch_page("views/train.py").run()
    assert any("Using **wide.csv**" in str(i.value) for i in at.info)
    at.file_uploader(key="train_upload").set_value(("pair.csv", _table_csv(2, seed=1), "text/csv")).run()
    columns = at.multiselect(key="train_columns")
    assert columns.value == ["c0", "c1"] and "all 2 numeric columns" in columns.label
    assert columns.proto.set_value and at.selectbox(key="train_label").value == ""  # the browser is told
    assert not errors(at)
    train_now(at)
    assert not errors(at)
    models = own_models(at)
    assert len(models) == 2 and any(v.label.startswith("pair.csv") and v.flow.dim == 2 for v in models.values())

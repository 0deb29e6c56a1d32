"""No dead ends: every pretrained model, and models made by the real CLI at its edges (a stored source with and
without interpolant noise, 1 and 64 columns, a conditional, a reflowed and an image model), opens on every page of
the explorer under AppTest without an exception, Streamlit's error box or a page stopped by an error.

A page may refuse something in a sentence that says why (the 1-column model); it may not crash. One AppTest
session per model, switching pages as a user does.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest
from ui_support import APP

from flowscope.data.datasets import make_dataset
from flowscope.zoo import registry as zoo
from flowscope.zoo.manifest import ZOO_DIR_ENV
from flowscope_ui import layout, state

pytestmark = pytest.mark.slow

PAGES = ["home", "gallery", "paths", "fields", "marginals", "images", "train", "compare", "learn"]
#: The pages that draw the selected model (Gallery and Learn show the same for every model: opened once per session).
MODEL_PAGES = [page for page in PAGES if page not in ("gallery", "learn")]
#: Text of an error box that is an exception, not a sentence a page meant to show.
UNEXPECTED = re.compile(rf"Traceback|encountered an error|{layout.STOPPED}|\b\w+(Error|Exception)\b")
#: What the views caption for a stored-source model of kernel width 0 (`widgets.view_width_note`).
VIEW_WIDTH = "drawn at view width"
TIMEOUT = 300


def _pretrained_folder() -> Path:
    """The installed pretrained models' folder (not a test zoo)."""
    import flowscope_pretrained

    return Path(flowscope_pretrained.DIRECTORY)


def _zoo_names() -> list[str]:
    """Every model of the pretrained zoo's manifest ([] when it is not built)."""
    try:
        return [e.name for e in zoo.entries(_pretrained_folder())]
    except zoo.ZooError:
        return []


def dead_ends(at: AppTest) -> list[str]:
    """Exception elements, and error boxes whose text is an exception's rather than a sentence of the page."""
    found = [f"exception: {e.value}" for e in at.exception]
    return found + [f"error: {e.value}" for e in at.error if UNEXPECTED.search(str(e.value))]


def visit_every_page(at: AppTest, view_width: bool = False, pages: list[str] = PAGES) -> None:
    """Open each page in turn in this session; fail with every dead end met (and, for a model drawn at a view
    width, a page of exact fields that does not say so)."""
    problems = []
    for page in pages:
        at.switch_page(f"views/{page}.py").run()
        problems += [f"{page}: {p}" for p in dead_ends(at)]
        if view_width and page in ("home", "paths", "fields") and not any(VIEW_WIDTH in c.value for c in at.caption):
            problems.append(f"{page}: no caption says the exact fields are drawn at a view width")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", _zoo_names() or [pytest.param("", marks=pytest.mark.skip("pretrained/ not built"))])
def test_every_pretrained_model_opens_on_every_page(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ZOO_DIR_ENV, str(_pretrained_folder()))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    at.sidebar.selectbox(key="_model_picker").set_value(f"zoo:{name}").run()  # the sidebar's own selection
    assert at.session_state[state.MODEL_KEY] == f"zoo:{name}"
    visit_every_page(at, pages=PAGES if name == (_zoo_names() or [""])[0] else MODEL_PAGES)


def _cli(*args: str) -> subprocess.Popen[bytes]:
    """`flowscope ARGS` started in the background, quietly, on the CPU."""
    return subprocess.Popen([sys.executable, "-m", "flowscope", *args, "--quiet", "--device", "cpu", "--no-eval"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _finish(runs: dict[str, subprocess.Popen[bytes]]) -> None:
    """Wait for CLI runs; fail with a run's output when it failed."""
    for what, run in runs.items():
        out, _ = run.communicate(timeout=TIMEOUT)
        assert run.returncode == 0, f"{what}: {out.decode()[-2000:]}"


#: The CLI-made models: name -> the arguments after `flowscope train` (DATA stands for the data folder).
EDGE_MODELS = {
    "stored-source": ["--data", "DATA/x1.npy", "--source", "DATA/x0.npy"],  # the default kernel width (ICFM_SIGMA)
    "stored-source-sigma0": ["--data", "DATA/x1.npy", "--source", "DATA/x0.npy", "--path", "icfm", "--sigma", "0"],
    "stored-source-icfm": ["--data", "DATA/x1.npy", "--source", "DATA/x0.npy", "--path", "icfm", "--sigma", "0.1"],
    "one-column": ["--data", "DATA/one.npy"],
    "64-columns": ["--data", "DATA/wide.npy"],
    "conditional": ["--data", "DATA/labelled.csv", "--labels", "kind"],
    "images": ["--data", "DATA/images.npy", "--base-channels", "8", "--no-attention", "--batch-size", "16"],
}


@pytest.fixture(scope="session")
def edge_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """EDGE_MODELS trained 30 steps each by the real CLI (in parallel), and `flowscope reflow` of the stored-source
    I-CFM one, tiny; name -> .safetensors file."""
    folder = tmp_path_factory.mktemp("edge-models")
    rng = np.random.default_rng(0)
    np.save(folder / "x1.npy", make_dataset("moons", 800, seed=0))
    np.save(folder / "x0.npy", make_dataset("8gaussians", 800, seed=1))
    np.save(folder / "one.npy", rng.normal(size=(500, 1)).astype(np.float32))
    np.save(folder / "wide.npy", rng.normal(size=(500, 64)).astype(np.float32) * np.linspace(0.1, 10.0, 64))
    np.save(folder / "images.npy", rng.uniform(size=(64, 8, 8)).astype(np.float32))
    kinds = rng.integers(0, 3, 600)
    points = rng.normal(size=(600, 2)) + np.stack([2.0 * kinds, np.zeros(600)], axis=1)
    rows = "\n".join(f"{a:.4f},{b:.4f},k{c}" for (a, b), c in zip(points, kinds, strict=True))
    (folder / "labelled.csv").write_text(f"a,b,kind\n{rows}\n")
    files = {name: folder / f"{name}.safetensors" for name in [*EDGE_MODELS, "reflowed"]}
    _finish({name: _cli("train", *(a.replace("DATA", str(folder)) for a in args), "--steps", "30",
                        "--out", str(files[name])) for name, args in EDGE_MODELS.items()})
    _finish({"reflowed": _cli("reflow", str(files["stored-source-icfm"]), "--pairs", "256", "--steps", "30",
                              "--solver", "euler", "--solver-steps", "8", "--out", str(files["reflowed"]))})
    return files


@pytest.mark.parametrize("name", [*EDGE_MODELS, "reflowed"])
def test_every_cli_made_model_opens_on_every_page(name: str, edge_models: dict[str, Path], zoo_env: Path) -> None:
    model = edge_models[name]
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    at.switch_page("views/train.py").run()
    at.file_uploader(key="train_model_upload").set_value((model.name, model.read_bytes(), "x")).run()
    assert not dead_ends(at), dead_ends(at)
    if name == "one-column":  # nothing to draw: refused in one sentence that says what to train instead
        (message,) = [str(e.value) for e in at.error]
        assert "1-dimensional" in message and "two or more columns" in message
    else:
        selected = at.session_state[state.MODEL_KEY]
        assert selected.startswith("mine:") and at.session_state[state.SESSION_MODELS][selected].label.startswith(
            model.name)
    visit_every_page(at, view_width=name == "stored-source-sigma0")

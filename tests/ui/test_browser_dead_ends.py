"""No dead ends, in headless Chromium: a stored-source model of kernel width 0 made by the CLI opens on Flow, Paths
and Fields with its plots and no error box, and a new upload on the Train page after a training and a visit
elsewhere trains on the first press (the browser kept the previous file's column choices). Same server, browser
and skip rules as test_browser.py; screenshots in tests/artifacts/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_browser import (
    ARTIFACTS,
    EXCEPTION,
    PLOT,
    assert_clean_page,
    go_to,
    new_page,
    set_steps,
    settle,
    shot,
    upload,
    wait_plots,
)
from test_browser import browser as browser  # noqa: F401  (the headless chromium fixture)
from test_browser import server as server  # noqa: F401  (the explorer on the tiny zoo)

from flowscope.data.datasets import make_dataset

pytestmark = pytest.mark.browser


def write_table(path: Path, columns: int, rows: int = 400, seed: int = 0) -> Path:
    """A CSV of `columns` named numeric columns (c0, c1, ...) of random normal values."""
    values = np.random.default_rng(seed).normal(size=(rows, columns))
    np.savetxt(path, values, delimiter=",", header=",".join(f"c{j}" for j in range(columns)), comments="", fmt="%.5f")
    return path


def assert_no_error_box(page: Any) -> None:
    """No Streamlit exception box, no traceback, no error alert."""
    assert_clean_page(page)
    assert page.locator(EXCEPTION).count() == 0
    errors = [a for a in page.get_by_test_id("stAlertContentError").all_inner_texts()]
    assert not errors, errors


def test_a_new_upload_after_a_training_and_a_visit_trains_on_the_first_press(server: str, browser: Any,  # noqa: F811
                                                                            tmp_path: Path) -> None:
    page = new_page(browser)
    page.goto(f"{server}/train")
    settle(page)
    upload(page, write_table(tmp_path / "wide.csv", 30))
    page.get_by_text("wide.csv: 400 rows × 30 columns").wait_for()
    wait_plots(page, 1)
    set_steps(page, 100)
    page.get_by_role("button", name="Train").click()
    page.get_by_text("trained 100 steps").wait_for()
    settle(page)
    go_to(page, "Fields", 1)
    page.get_by_test_id("stSidebarNav").get_by_text("Train", exact=True).click()
    page.get_by_text("Using wide.csv, uploaded earlier in this session").wait_for()
    settle(page)
    upload(page, write_table(tmp_path / "pair.csv", 2, seed=1))
    page.get_by_text("pair.csv: 400 rows × 2 columns").wait_for()
    settle(page)
    chips = page.get_by_test_id("stMultiSelect").first.inner_text()
    assert "c0" in chips and "c1" in chips and "c2" not in chips, chips  # the new file's own columns, all chosen
    set_steps(page, 100)
    page.get_by_role("button", name="Train").click()
    page.get_by_text("pair.csv · ot · 100 steps").first.wait_for()
    settle(page)
    assert_no_error_box(page)
    shot(page, "new-upload-trains")
    page.context.close()


@pytest.fixture(scope="module")
def kernel_width_0_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`flowscope train --data x1.npy --source x0.npy --path icfm --sigma 0`: a stored source and interpolant kernel
    width 0 (without --sigma a stored source gets ICFM_SIGMA)."""
    folder = tmp_path_factory.mktemp("sigma0")
    np.save(folder / "x1.npy", make_dataset("moons", 800, seed=0))
    np.save(folder / "x0.npy", make_dataset("8gaussians", 800, seed=1))
    out = folder / "stored-source-sigma0.safetensors"
    subprocess.run([sys.executable, "-m", "flowscope", "train", "--data", str(folder / "x1.npy"), "--source",
                    str(folder / "x0.npy"), "--path", "icfm", "--sigma", "0", "--steps", "100", "--device", "cpu",
                    "--quiet", "--no-eval", "--out", str(out)], check=True)
    return out


def test_a_stored_source_model_of_kernel_width_0_opens_on_flow_paths_and_fields(server: str, browser: Any,  # noqa: F811
                                                                               kernel_width_0_model: Path) -> None:
    page = new_page(browser)
    page.goto(f"{server}/train")
    settle(page)
    page.get_by_test_id("stFileUploader").filter(has_text="Or explore a .safetensors model").locator(
        'input[type="file"]').set_input_files(str(kernel_width_0_model))
    page.get_by_text(kernel_width_0_model.name).first.wait_for()
    settle(page)
    for title, plots in (("Flow", 2), ("Paths", 2), ("Fields", 1)):
        go_to(page, title, plots)
        assert kernel_width_0_model.name in page.get_by_test_id("stMain").inner_text()  # its caption names it
        page.get_by_text("its exact field and p_t are drawn at view width 0.05").first.wait_for()
        assert page.locator(PLOT).count() >= plots
        assert_no_error_box(page)
        shot(page, f"kernel-width-0-{title.lower()}")
    assert (ARTIFACTS / "kernel-width-0-fields.png").exists()
    page.context.close()

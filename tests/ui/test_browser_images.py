"""Image models in headless Chromium: the Images page of the zoo's digits model paints its sample grid, strips and
nearest-neighbour panel, its t slider moves in the browser, and an uploaded .npy of images trains live and shows
on the Images page. Same server, browser and skip rules as test_browser.py; screenshots in tests/artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_browser import (
    PLOT,
    _browser_or_skip,
    assert_clean_page,
    click_time,
    new_page,
    serve,
    set_steps,
    settle,
    shot,
    upload,
    wait_plots,
)
from test_browser import browser as browser  # noqa: F401  (the headless chromium fixture, on this module's server)

pytestmark = pytest.mark.browser

#: The Images page's charts: sample grid, strips, x_t / predicted x1 over t, neighbours, exact vs learned, distances.
IMAGE_CHARTS = 6


@pytest.fixture(scope="module")
def server(image_zoo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The explorer against the tests' zoo with its tiny digits models."""
    _browser_or_skip()
    with serve(image_zoo, tmp_path_factory.mktemp("streamlit-images")) as url:
        yield url


def painted(page: Any, chart: int) -> bool:
    """Whether the `chart`-th plot has drawn its picture (plotly paints a heatmap as an image in its layer)."""
    return page.locator(PLOT).nth(chart).locator("g.hm image").count() == 1


def test_images_page_of_the_zoo_digits_model(server: str, browser: Any) -> None:
    page = new_page(browser)
    page.goto(f"{server}/images")
    page.get_by_role("button", name="Show digits-ot").click()  # the default model is 2-D: the page offers these
    wait_plots(page, IMAGE_CHARTS)
    assert_clean_page(page)
    grid, strips, predicted, neighbours = range(4)
    for chart in (grid, strips, predicted, neighbours):
        assert painted(page, chart), chart
    assert page.locator(PLOT).nth(strips).get_by_text("sample 6").count() == 1
    assert page.locator(PLOT).nth(neighbours).get_by_text("nearest training image").count() == 1
    assert page.locator(PLOT).nth(neighbours).get_by_text("d = ").count() == 12  # a distance under each sample
    shot(page, "images-digits")
    page.evaluate("window.__sent = 0")
    page.evaluate("(() => { const send = WebSocket.prototype.send; WebSocket.prototype.send = function (d) { "
                  "window.__sent += 1; return send.call(this, d); }; })()")
    before = page.locator(PLOT).nth(predicted).evaluate("gd => JSON.stringify(gd.data[0].z)")
    click_time(page, "0.9", chart=predicted)  # plotly's own slider: the browser switches frames
    page.locator(PLOT).nth(predicted).get_by_text("x_t at t = 0.9", exact=True).wait_for()  # the row says its t
    assert page.locator(PLOT).nth(predicted).evaluate("gd => JSON.stringify(gd.data[0].z)") != before
    assert page.evaluate("window.__sent") == 0
    page.context.close()


def test_uploaded_images_train_live_and_show_on_the_images_page(server: str, browser: Any, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    images = rng.integers(0, 30, (120, 8, 8)).astype(np.uint8)
    for k, picture in enumerate(images):  # a bright bar, in one of four places
        picture[:, 2 * (k % 4):2 * (k % 4) + 2] += 200
    file = tmp_path / "bars.npy"
    np.save(file, images)
    page = new_page(browser)
    page.goto(f"{server}/train")
    settle(page)
    upload(page, file)
    page.get_by_text("bars.npy: 120 images of 1 × 8 × 8 pixels, values 0 to 255").wait_for()
    wait_plots(page, 1)  # the images' preview
    set_steps(page, 50)
    page.get_by_role("button", name="Train").click()
    page.get_by_text("trained 50 steps").wait_for()
    wait_plots(page, 3)  # preview, loss curve, samples
    assert_clean_page(page)
    shot(page, "images-train-result")
    page.get_by_role("link", name="Open the Images page").click()
    page.get_by_role("heading", name="Images").wait_for()
    wait_plots(page, IMAGE_CHARTS)
    assert page.get_by_text("bars.npy · ot · U-Net · 50 steps (this session)").first.is_visible()
    for chart in range(4):
        assert painted(page, chart), chart
    assert_clean_page(page)
    shot(page, "images-trained")
    page.context.close()

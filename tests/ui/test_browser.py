"""The explorer in headless Chromium, as a new user tries it: pages, upload and train, errors, Stop, two users.

Starts `streamlit run ui/app.py` on a free port (against the tests' tiny zoo) and drives Debian's chromium
through Playwright. Screenshots go to tests/artifacts/ (git-ignored). Skipped with a reason when chromium or
Playwright is missing, unless FLOWSCOPE_REQUIRE_BROWSER=1 (CI), which turns that into a failure.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ui_support import APP

from corpus_cases import CORPUS_DIR
from flowscope.data.datasets import make_dataset

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
EXCEPTION = '[data-testid="stException"]'
PLOT = ".js-plotly-plot"
TIMEOUT_MS = 120_000


def _browser_or_skip() -> Any:
    """Playwright's sync API, or skip (fail under FLOWSCOPE_REQUIRE_BROWSER=1) when it or chromium is missing."""
    problem = None if CHROMIUM.exists() else f"{CHROMIUM} is missing (apt-get install chromium)"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        problem = problem or "the playwright package is missing (pip install playwright)"
    if problem:
        if os.environ.get("FLOWSCOPE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser tests required (FLOWSCOPE_REQUIRE_BROWSER=1) but {problem}")
        pytest.skip(problem)
    return sync_playwright


def _free_port() -> int:
    """A TCP port nobody listens on now: the first free one from $FLOWSCOPE_TEST_PORTS ("8700-8799") when set (a
    shared machine's agreed range), else any."""
    first, _, last = os.environ.get("FLOWSCOPE_TEST_PORTS", "0").partition("-")
    for port in range(int(first), int(last or first) + 1):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise AssertionError(f"no free port in FLOWSCOPE_TEST_PORTS={os.environ['FLOWSCOPE_TEST_PORTS']}")


@contextmanager
def serve(zoo: Path, folder: Path) -> Iterator[str]:
    """The explorer served by `streamlit run` on a free port against the zoo in `zoo` (its log and start-page cache
    in `folder`); stopped (its whole process group) at the end."""
    port = _free_port()
    log = folder / "server.log"
    command = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless", "true",
               "--server.port", str(port), "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"]
    with open(log, "wb") as out:
        env = {**os.environ, "FLOWSCOPE_ZOO_DIR": str(zoo), "FLOWSCOPE_UI_CACHE": str(folder / "cache")}
        proc = subprocess.Popen(command, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def server(tiny_zoo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The explorer against the tests' tiny zoo, for this module's tests."""
    _browser_or_skip()
    with serve(tiny_zoo, tmp_path_factory.mktemp("streamlit")) as url:
        yield url


@pytest.fixture(scope="module")
def browser(server: str) -> Iterator[Any]:
    """A headless Debian chromium."""
    sync_playwright = _browser_or_skip()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


def new_page(browser: Any) -> Any:
    """A page in a fresh browser context (its own cookies: a separate Streamlit session)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1700})
    context.set_default_timeout(TIMEOUT_MS)
    return context.new_page()


def settle(page: Any, quiet_s: float = 1.2) -> None:
    """Wait until the app has stopped running its script for `quiet_s` seconds."""
    deadline, quiet_since = time.monotonic() + TIMEOUT_MS / 1000, None
    while time.monotonic() < deadline:
        running = page.locator('[data-testid="stStatusWidget"]').count() > 0
        started = page.locator('[data-testid="stMainBlockContainer"] h1').count() > 0
        if running or not started:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_s:
            return
        page.wait_for_timeout(200)
    raise AssertionError("the app kept running")


def wait_plots(page: Any, n: int) -> None:
    """Wait for at least n rendered plotly charts, then for the script to finish."""
    page.wait_for_function(f"document.querySelectorAll('{PLOT}').length >= {n}", timeout=TIMEOUT_MS)
    settle(page)
    assert page.locator(PLOT).first.is_visible()


def assert_no_exception(page: Any) -> None:
    """No Streamlit exception box on the page."""
    boxes = page.locator(EXCEPTION)
    assert boxes.count() == 0, boxes.first.inner_text()


def shot(page: Any, name: str) -> None:
    """Save a screenshot in tests/artifacts/."""
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def upload(page: Any, path: Path) -> None:
    """Upload a data file on the Train page."""
    uploader = page.get_by_test_id("stFileUploader").filter(has_text="A CSV")
    uploader.locator('input[type="file"]').set_input_files(str(path))


def set_steps(page: Any, steps: int) -> None:
    """Type a number of training steps and commit it."""
    box = page.get_by_label("Steps (at most 10,000)")
    box.fill(str(steps))
    box.press("Enter")
    settle(page)


def click_time(page: Any, label: str, chart: int = 0) -> None:
    """Click the step of time `label` (e.g. "0.6") of the plotly t slider of the `chart`-th chart, as a person
    would (the slider labels only some of its steps: the step is found by its frame's time)."""
    plot = page.locator(PLOT).nth(chart)
    times = plot.evaluate("gd => gd.layout.sliders[0].steps.map(s => Number(s.args[0][0]))")  # the figure's steps
    step = min(range(len(times)), key=lambda i: abs(times[i] - float(label)))
    tick = plot.locator(".slider-tick-rect").nth(step).bounding_box()
    rail = plot.locator(".slider-rail-rect").bounding_box()
    page.mouse.click(tick["x"] + tick["width"] / 2, rail["y"] + rail["height"] / 2)


def write_csv(path: Path, name: str, n: int = 2000, seed: int = 0) -> Path:
    """A 2-column CSV of a toy dataset, with a header."""
    np.savetxt(path, make_dataset(name, n, seed=seed), delimiter=",", header="x,y", comments="")
    return path


def picker_options(page: Any) -> list[str]:
    """The entries of the sidebar's model menu."""
    page.get_by_test_id("stSidebar").get_by_test_id("stSelectbox").click()
    options = page.get_by_role("option").all_inner_texts()
    page.keyboard.press("Escape")
    return options


@pytest.mark.parametrize(("slug", "plots"), [("", 2), ("gallery", 3), ("paths", 2), ("fields", 1), ("marginals", 2),
                                             ("compare", 2), ("learn", 0), ("train", 0)])
def test_every_page_renders_its_plots(server: str, browser: Any, slug: str, plots: int) -> None:
    page = new_page(browser)
    page.goto(f"{server}/{slug}")
    if plots:
        wait_plots(page, plots)
    elif slug == "learn":
        page.wait_for_function("document.querySelectorAll('.katex').length >= 8")
        settle(page)
    else:
        page.get_by_test_id("stFileUploader").first.wait_for()
        settle(page)
    assert_no_exception(page)
    assert page.locator("h1").first.is_visible()
    shot(page, f"page-{slug or 'home'}")
    page.context.close()


def test_upload_train_and_explore(server: str, browser: Any, tmp_path: Path) -> None:
    page = new_page(browser)
    page.goto(f"{server}/train")
    settle(page)
    upload(page, write_csv(tmp_path / "pinwheel.csv", "pinwheel", 5000, seed=4))
    page.get_by_text("pinwheel.csv: 5,000 rows × 2 columns").wait_for()
    wait_plots(page, 1)  # the data preview
    set_steps(page, 300)
    page.get_by_role("button", name="Train").click()
    page.get_by_text("trained 300 steps").wait_for()
    wait_plots(page, 3)  # preview, loss curve, samples
    assert page.get_by_text("training loss").first.is_visible() and page.get_by_text("Download the model").is_visible()
    assert_no_exception(page)
    shot(page, "train-result")
    page.get_by_role("link", name="Open Fields").click()
    page.get_by_role("heading", name="Fields").wait_for()
    wait_plots(page, 1)
    assert page.get_by_text("pinwheel.csv · ot · 300 steps (this session)").first.is_visible()
    page.evaluate("window.__sent = 0")
    page.evaluate("(() => { const send = WebSocket.prototype.send; WebSocket.prototype.send = function (d) { "
                  "window.__sent += 1; return send.call(this, d); }; })()")
    for label in ("0.6", "0.99", "0.01"):  # plotly's own slider: the browser switches frames
        click_time(page, label)
        page.locator(PLOT).first.get_by_text(f"at t = {float(label):.2f}").wait_for()
    sent = page.evaluate("window.__sent")
    assert sent == 0, f"moving t sent {sent} messages to the server"
    assert_no_exception(page)
    shot(page, "train-fields")
    page.context.close()


def test_bad_upload_shows_the_loaders_message(server: str, browser: Any) -> None:
    page = new_page(browser)
    page.goto(f"{server}/train")
    settle(page)
    upload(page, CORPUS_DIR / "text_in_numeric.csv")
    alert = page.get_by_test_id("stAlert").filter(has_text="text_in_numeric.csv")
    alert.wait_for()
    assert "line 3, column 2 ('y'): expected a number, found 'abc'" in alert.inner_text()
    settle(page)
    assert_no_exception(page)
    assert "Traceback" not in page.inner_text("body")
    shot(page, "bad-upload")
    page.context.close()


def test_stop_keeps_the_model_trained_so_far(server: str, browser: Any) -> None:
    page = new_page(browser)
    page.goto(f"{server}/train")
    settle(page)
    page.get_by_test_id("stRadioGroup").get_by_text("Toy dataset").click()
    settle(page)
    set_steps(page, 10_000)
    page.get_by_role("button", name="Train").click()
    page.get_by_text(re.compile(r"step [\d,]+ / 10,000")).wait_for()  # the first live update
    page.get_by_role("button", name="Stop", exact=True).click()
    page.get_by_text("the model is kept as it was then").wait_for()
    settle(page)
    wait_plots(page, 3)
    assert_no_exception(page)
    shot(page, "train-stopped")
    page.context.close()


def test_two_users_training_at_once_see_only_their_own(server: str, browser: Any, tmp_path: Path) -> None:
    alice, bob = new_page(browser), new_page(browser)
    for page, name, data in ((alice, "alice.csv", "moons"), (bob, "bob.csv", "rings")):
        page.goto(f"{server}/train")
        settle(page)
        upload(page, write_csv(tmp_path / name, data, 3000))
        page.get_by_text(f"{name}: 3,000 rows").wait_for()
        settle(page)
        set_steps(page, 600)
    alice.get_by_role("button", name="Train").click()
    bob.get_by_role("button", name="Train").click()  # both train at the same time
    for page in (alice, bob):
        page.get_by_text("trained 600 steps").wait_for()
        wait_plots(page, 3)
        assert_no_exception(page)
    shot(alice, "two-users-alice")
    shot(bob, "two-users-bob")
    alice_options, bob_options = picker_options(alice), picker_options(bob)
    assert any("alice.csv" in o for o in alice_options) and not any("bob" in o for o in alice_options)
    assert any("bob.csv" in o for o in bob_options) and not any("alice" in o for o in bob_options)
    assert "bob.csv" not in alice.inner_text("body") and "alice.csv" not in bob.inner_text("body")
    alice.context.close()
    bob.context.close()


def sidebar_step(page: Any, name: str, above: int = -1) -> int:
    """The step the sidebar shows for this session's training of `name` (it is there on every page), once it
    is past `above`."""
    sidebar = page.get_by_test_id("stSidebar")
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        text = sidebar.inner_text()
        found = re.search(r"step ([\d,]+) / ", text)
        if f"Training {name}" in text and found and int(found.group(1).replace(",", "")) > above:
            return int(found.group(1).replace(",", ""))
        page.wait_for_timeout(200)
    raise AssertionError(f"no progress of {name} in the sidebar: {sidebar.inner_text()[-500:]}")


def test_training_goes_on_while_other_pages_are_open(server: str, browser: Any, tmp_path: Path) -> None:
    """Alice trains 10,000 steps (longer than the visits take on any machine, so its progress is there to see),
    opens Fields and Paths, comes back and stops it; Bob trains 300 steps at the same time, to the end."""
    alice, bob = new_page(browser), new_page(browser)
    for page, name, data, steps in ((alice, "alice.csv", "moons", 10000), (bob, "bob.csv", "rings", 300)):
        page.goto(f"{server}/train")
        settle(page)
        upload(page, write_csv(tmp_path / name, data, 3000))
        page.get_by_text(f"{name}: 3,000 rows").wait_for()
        settle(page)
        set_steps(page, steps)
    alice.get_by_role("button", name="Train").click()
    bob.get_by_role("button", name="Train").click()  # a second session trains at the same time
    seen = [sidebar_step(alice, "alice.csv", above=0)]  # started (the first report comes at step 20)
    for title in ("Fields", "Paths"):  # the training goes on, and shows its progress on these pages
        alice.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()
        alice.get_by_role("heading", name=title).wait_for()
        alice.locator(PLOT).first.wait_for()
        alice.wait_for_timeout(1500)
        seen.append(sidebar_step(alice, "alice.csv", above=seen[-1]))  # it went on while this page was open
        assert "bob.csv" not in alice.inner_text("body")
        shot(alice, f"training-on-{title.lower()}")
    assert seen[-1] > seen[0], f"steps seen in the sidebar: {seen}"
    bob.get_by_text("trained 300 steps").wait_for()
    alice.get_by_test_id("stSidebarNav").get_by_text("Train", exact=True).click()
    alice.get_by_text("Using alice.csv, uploaded earlier in this session").wait_for()  # the upload stayed chosen
    sidebar_step(alice, "alice.csv", above=seen[-1])  # still training when Alice is back
    alice.get_by_role("button", name="Stop", exact=True).click()
    alice.get_by_text(re.compile(r"stopped at step [\d,]+ of 10,000")).wait_for()
    settle(alice)
    assert_clean_page(alice)
    shot(alice, "training-finished")
    alice_options, bob_options = picker_options(alice), picker_options(bob)
    assert any("alice.csv · ot ·" in o for o in alice_options) and not any("bob" in o for o in alice_options)
    assert any("bob.csv" in o for o in bob_options) and not any("alice" in o for o in bob_options)
    alice.context.close()
    bob.context.close()


def _points_of_trace_with(chart: Any, count: int) -> Any:
    """The markers of the scatter trace that has exactly `count` of them."""
    traces = chart.locator("g.trace.scatter")
    for i in range(traces.count()):
        points = traces.nth(i).locator("path.point")
        if points.count() == count:
            return points
    raise AssertionError(f"no trace with {count} markers")


def test_fields_clicks_pick_the_data_point_and_the_probe(server: str, browser: Any) -> None:
    page = new_page(browser)
    page.goto(f"{server}/fields")
    wait_plots(page, 1)
    chart = page.locator(PLOT).first
    x1 = page.get_by_role("spinbutton", name="data point x1")
    probe_x = page.get_by_role("spinbutton", name="probe x")
    assert x1.input_value() == "0"
    before = probe_x.input_value()
    box = _points_of_trace_with(chart, 300).nth(150).bounding_box()  # a grey data point of the left panel
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function("() => document.querySelector('input[aria-label=\"data point x1\"]').value !== '0'")
    settle(page)
    box = _points_of_trace_with(chart, 20 * 20).nth(130).bounding_box()  # a grid node of the middle panel
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function(f"() => document.querySelector('input[aria-label=\"probe x\"]').value !== '{before}'")
    settle(page)
    wait_plots(page, 1)
    assert_no_exception(page)
    shot(page, "fields-clicked")
    page.context.close()


def write_wine_csv(path: Path) -> Path:
    """scikit-learn's wine table (13 named numeric columns, raw units) with its class as a text column 'kind',
    written as a spreadsheet would: a header, CRLF line ends."""
    from sklearn.datasets import load_wine

    wine = load_wine()
    names = [name.replace("/", "_") for name in wine.feature_names]
    lines = [",".join([*names[:4], "kind", *names[4:]])]
    for row, target in zip(wine.data, wine.target, strict=True):
        cells = [f"{v:g}" for v in row]
        lines.append(",".join([*cells[:4], str(wine.target_names[target]), *cells[4:]]))
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return path


def go_to(page: Any, title: str, plots: int) -> None:
    """Open a page from the sidebar's navigation (the same session) and wait for its plots."""
    page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()
    page.get_by_role("heading", name=title).wait_for()
    wait_plots(page, plots)


def assert_clean_page(page: Any) -> None:
    """No exception box, no traceback text."""
    assert_no_exception(page)
    assert "Traceback" not in page.inner_text("body")


def test_upload_13_columns_with_text_train_and_view_through_projections(server: str, browser: Any,
                                                                        tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    page = new_page(browser)
    page.goto(f"{server}/train")
    settle(page)
    upload(page, write_wine_csv(tmp_path / "wine.csv"))
    page.get_by_text("wine.csv: 178 rows × 13 columns").wait_for()
    left_out = page.get_by_test_id("stAlert").filter(has_text="Left out")
    left_out.wait_for()
    assert "kind" in left_out.inner_text() and "column 5" in left_out.inner_text()
    wait_plots(page, 1)  # the preview, on the data's principal axes
    assert page.get_by_text("PC1 (").first.is_visible()
    set_steps(page, 100)
    page.get_by_role("button", name="Train").click()
    page.get_by_text("trained 100 steps").wait_for()
    wait_plots(page, 3)
    assert_clean_page(page)
    shot(page, "wine-train")
    for title, plots in (("Paths", 2), ("Marginals", 2), ("Fields", 1)):
        go_to(page, title, plots)
        assert page.get_by_text("wine.csv · ot · 100 steps (this session)").first.is_visible()
        assert_clean_page(page)
        shot(page, f"wine-{title.lower()}-pca")
    assert page.get_by_text("exact in all 13 dimensions").first.is_visible()
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_text("Two coordinates").click()
    settle(page)
    sidebar.get_by_test_id("stSelectbox").filter(has_text="vertical axis").click()
    page.get_by_role("option", name="proline", exact=True).click()
    settle(page)
    wait_plots(page, 1)
    assert page.locator(PLOT).first.get_by_text("proline").count() > 0  # the chosen column names an axis
    assert_clean_page(page)
    shot(page, "wine-fields-coordinates")
    for title, plots in (("Paths", 2), ("Marginals", 2)):
        go_to(page, title, plots)
        assert_clean_page(page)
    assert page.locator(PLOT).count() == 2
    go_to(page, "Paths", 2)
    assert page.locator(PLOT).first.get_by_text("proline").count() > 0  # remembered across pages
    page.context.close()


def write_blobs_csv(path: Path, n: int = 400) -> Path:
    """Three well-separated 2-D blobs labelled 'a', 'b' and 'c' in a text column, as a spreadsheet writes them:
    a header, the label between the numbers, CRLF line ends."""
    rng = np.random.default_rng(7)
    lines = ["x,kind,y"]
    for k, name in enumerate("abc"):
        centre = 4.0 * np.array([np.cos(2.1 * k), np.sin(2.1 * k)])
        lines += [f"{x:.4f},{name},{y:.4f}" for x, y in centre + 0.5 * rng.normal(size=(n, 2))]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return path


def test_label_column_trains_a_conditional_model_and_fields_show_its_guided_fields(server: str, browser: Any,
                                                                                   tmp_path: Path) -> None:
    page = new_page(browser)
    page.goto(f"{server}/train")
    settle(page)
    upload(page, write_blobs_csv(tmp_path / "blobs.csv"))
    page.get_by_text("blobs.csv: 1,200 rows × 2 columns").wait_for()
    settle(page)
    page.get_by_test_id("stSelectbox").filter(has_text="Label column").click()
    page.get_by_role("option", name="kind (text)").click()
    page.get_by_text("A conditional model of 3 classes of 'kind': a (400), b (400), c (400)").wait_for()
    settle(page)
    set_steps(page, 300)
    page.get_by_role("button", name="Train").click()
    page.get_by_text("trained 300 steps").wait_for()
    wait_plots(page, 3)
    assert_clean_page(page)
    page.get_by_role("link", name="Open Fields").click()
    page.get_by_role("heading", name="Fields").wait_for()
    wait_plots(page, 1)
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_test_id("stSelectbox").filter(has_text="Class").click()
    page.get_by_role("option", name="b", exact=True).click()
    page.get_by_text("exact guided field u_w at w = 0").first.wait_for()
    settle(page)
    thumb = sidebar.get_by_role("slider")
    for w in ("0.5", "1", "1.5", "2"):  # steps of 0.5, each drawn before the next
        thumb.focus()
        thumb.press("ArrowRight")
        page.get_by_text(f"exact guided field u_w at w = {w}").first.wait_for()
        settle(page)
    wait_plots(page, 2)  # the three fields, and the samples at w = 0, 1, 3
    fields = page.locator(PLOT).first
    for title in ("exact class field u_t(x | y = b)", "exact guided field u_w at w = 2",
                  "learned guided field v_w at w = 2"):
        assert fields.get_by_text(title).count() == 1, title
    assert page.locator(PLOT).nth(1).get_by_text("label accuracy").count() == 3
    assert page.get_by_text("cfg_scale").first.is_visible()
    assert_clean_page(page)
    shot(page, "conditional-fields")
    go_to(page, "Paths", 2)  # the class and w are remembered: particles of class b at w = 2
    assert page.get_by_text("Particles and trajectories of class b, w = 2").is_visible()
    assert_clean_page(page)
    shot(page, "conditional-paths")
    page.context.close()


def test_reflow_this_model_then_compare_it_with_its_teacher(server: str, browser: Any) -> None:
    page = new_page(browser)
    page.goto(f"{server}/train")
    settle(page)
    page.get_by_role("button", name="Reflow this model").click()
    page.get_by_text(re.compile(r"reflowed moons-ot: 10,000 pairs, 1,000 steps")).wait_for()
    wait_plots(page, 2)  # the student's loss curve and samples
    assert_clean_page(page)
    go_to(page, "Compare", 4)  # trajectories and sweep of A and B, then the teacher and its student
    page.get_by_text("Reflow: teacher and student").wait_for()
    assert page.get_by_text("teacher: moons-ot").first.is_visible()
    assert page.get_by_text(re.compile(r"The student's paths are \d+x straighter")).is_visible()
    assert_clean_page(page)
    shot(page, "reflow-compare")
    page.context.close()

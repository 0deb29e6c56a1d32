"""The explorer as a person feels it, 2-D against 13-D: a real browser, from the user's action to the changed page.

Issue "Flows on data of any dimension", item 7: with a 13-D model the Fields and Paths pages meet the same budgets
as with a 2-D one. This starts `streamlit run ui/app.py` on a free port of 127.0.0.1 (as a user would, with HOME
and the explorer's cache in a throw-away folder), drives Debian's chromium through Playwright with two browser
sessions, one showing the pretrained `moons-ot` (2-D) and one `wine-ot` (13-D, drawn through its principal axes,
the default), and times, alternating the two sessions measurement by measurement (order rotated every round):

a. Fields page opened from the sidebar's navigation (from the Learn page, which has no plot): from the click to
   the first plot visible, and to all 3; the first open (cold caches) apart, then the median of --opens;
b. Fields page, the t slider moved one step (thumb focused, ArrowRight): from the key press until the field
   panels' titles read the new t; one warm-up move, then --moves moves, median and max;
c. the same for the Paths page (first plot after opening; its density panels' t slider).

Every time is taken inside the page (performance.now()): a capturing listener stamps the user's event, a
MutationObserver the moment the DOM shows the result, and a requestAnimationFrame + setTimeout after it the next
frame (the changed pixels). The figures include the frontend's own slider delay, the WebSocket round trip, the
script's (fragment's) rerun on the server, the transfer of the figure and plotly's re-render; the moment the
slider's request leaves the page is recorded too. Writes bench/results_dims.md and prints its table.

Usage: python bench/bench_dims.py [--opens 3] [--moves 10] [--out bench/results_dims.md]. Uses the package's
pretrained zoo, or the one in $FLOWSCOPE_ZOO_DIR (it needs moons-ot and wine-ot).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from explorer_server import explorer
from measure import alternate, cpu_model, median, package_version

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "ui" / "app.py"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 120_000
MODELS = {"2-D": "moons-ot", "13-D": "wine-ot"}
#: Shown first, untimed, by a throw-away session (Fields and Paths each): the server's one-time costs (imports,
#: first use of the 2-D and the projected code paths) then land on neither measured model, whose caches stay cold.
WARM_UP = ("moons-vp", "iris-ot")
#: row key -> (budget in ms, the UI issue's wording)
BUDGETS = {"open": (5000.0, "<= 5 s"), "move": (300.0, "<= 300 ms"), "move server": (300.0, "<= 300 ms")}
#: page title -> (plots it draws, a text of the t-dependent chart's panel titles)
PAGES = {"Fields": (3, "conditional u_t(x | x1) at t = "), "Paths": (2, "x_t, t = ")}

#: Installed in every page before Streamlit's code: stamps of WebSocket sends, and the two probes.
PROBES = """
(() => {
  const b = window.__bench = {sends: [], recvs: [], m: null};
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    b.sends.push(performance.now());
    if (!this.__benchHooked) {  // the replies: [arrival, bytes]
      this.__benchHooked = true;
      this.addEventListener('message', (e) => {
        const d = e.data;
        b.recvs.push([performance.now(), d.byteLength ?? d.size ?? d.length ?? 0]);
      });
    }
    return send.call(this, data);
  };
  const main = () => document.querySelector('[data-testid="stMain"]') || document.body;
  b.plotText = (marker) => {
    for (const el of main().querySelectorAll('.js-plotly-plot')) {
      const text = Array.from(el.querySelectorAll('.annotation-text')).map(n => n.textContent).join('|');
      if (text.includes(marker)) return text;
    }
    return '';
  };
  b.shownPlots = (title) => {
    const h1 = main().querySelector('h1');
    if (!h1 || !h1.textContent.includes(title)) return 0;
    let n = 0;
    for (const el of main().querySelectorAll('.js-plotly-plot')) {
      const r = el.getBoundingClientRect();
      if (r.width > 0 && r.height > 0 && el.querySelector('.main-svg')) n += 1;
    }
    return n;
  };
  b.long = [];  // the main thread's long tasks (> 50 ms): [start, duration]
  try {
    new PerformanceObserver(l => { for (const e of l.getEntries()) b.long.push([e.startTime, e.duration]); })
      .observe({entryTypes: ['longtask']});
  } catch (e) { /* no long-task timing in this browser */ }
  const afterPaint = (m, key) => requestAnimationFrame(() => setTimeout(() => {
    m[key] = performance.now();
    if (key === 'done') {  // the work it took: DOM mutation records, long tasks begun since the event
      m.counter.disconnect();
      m.mutations += m.counter.takeRecords().length;
      m.longMs = b.long.filter(([at]) => at >= m.t0 && at <= m.done).reduce((sum, [, d]) => sum + d, 0);
      delete m.counter;
    }
  }, 0));
  const watch = (m, event, step) => {
    m.mutations = 0;
    m.counter = new MutationObserver(records => { if (m.t0 !== null) m.mutations += records.length; });
    m.counter.observe(document.body, {subtree: true, childList: true, characterData: true, attributes: true});
    window.addEventListener(event, () => { if (m.t0 === null) m.t0 = performance.now(); }, {capture: true, once: true});
    // checked on every DOM change, and on every frame too (a plot can become visible by layout alone)
    let finished = false;
    const poll = () => {
      if (finished || m.t0 === null || !step()) return false;
      finished = true;
      observer.disconnect();
      return true;
    };
    const observer = new MutationObserver(poll);
    observer.observe(document.body, {subtree: true, childList: true, characterData: true, attributes: true});
    const frame = () => { if (!poll() && !finished) requestAnimationFrame(frame); };
    requestAnimationFrame(frame);
    b.m = m;
  };
  // a page opened by a click: the first plot, then all `n`, shown under the page's title
  b.armOpen = (title, n) => {
    const m = {t0: null, first: null, firstPaint: null, all: null, done: null};
    watch(m, 'click', () => {
      const shown = b.shownPlots(title);
      if (shown >= 1 && m.first === null) { m.first = performance.now(); afterPaint(m, 'firstPaint'); }
      if (shown >= n) { m.all = performance.now(); afterPaint(m, 'done'); return true; }
      return false;
    });
  };
  // a key press that changes t: the chart's panel titles read a new t
  b.armMove = (marker) => {
    const before = b.plotText(marker);
    const m = {t0: null, dom: null, done: null, before: before, after: null, sent: null, figure: null,
               figureBytes: null};
    b.recvs = [];
    watch(m, 'keydown', () => {
      const now = b.plotText(marker);
      if (now === '' || now === before) return false;
      m.dom = performance.now();
      m.after = now;
      m.sent = b.sends.find(s => s >= m.t0) ?? null;
      let big = null;  // the largest reply since the request: the figure
      for (const [at, size] of b.recvs) {
        if (m.sent !== null && at >= m.sent && (big === null || size > big[1])) big = [at, size];
      }
      m.figure = big === null ? null : big[0];
      m.figureBytes = big === null ? null : big[1];
      b.recvs = [];
      afterPaint(m, 'done');
      return true;
    });
  };
})();
"""



@dataclass
class Session:
    """One browser session (its own context, so its own Streamlit session) showing one model."""

    label: str
    model: str
    page: Any

    def settle(self, quiet_s: float = 0.8) -> None:
        """Wait until the app has not been running its script for `quiet_s` seconds."""
        page, deadline, quiet_since = self.page, time.monotonic() + TIMEOUT_MS / 1000, None
        while time.monotonic() < deadline:
            running = page.locator('[data-testid="stStatusWidget"]').count() > 0
            started = page.locator('[data-testid="stMainBlockContainer"] h1').count() > 0
            if running or not started:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= quiet_s:
                return
            page.wait_for_timeout(100)
        raise RuntimeError(f"{self.label}: the app kept running")

    def check(self) -> None:
        """No Streamlit exception on the page."""
        boxes = self.page.locator('[data-testid="stException"]')
        if boxes.count():
            raise RuntimeError(f"{self.label}: the app raised: {boxes.first.inner_text()[:2000]}")

    def nav(self, title: str) -> Any:
        """The sidebar's navigation link to a page."""
        return self.page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True)

    def go(self, title: str) -> None:
        """Open a page from the navigation, untimed, and wait for it to finish."""
        self.nav(title).click()
        self.page.get_by_role("heading", name=title).wait_for()
        self.settle()

    def select_model(self) -> None:
        """Pick the session's model in the sidebar's menu (typed: the menu only renders the options in view)."""
        menu = self.page.get_by_test_id("stSidebar").get_by_test_id("stSelectbox").first
        menu.click()
        self.page.keyboard.type(self.model)
        self.page.get_by_role("option", name=re.compile(rf"^{re.escape(self.model)}\b")).click()
        self.settle()
        shown = menu.get_by_role("combobox").input_value()
        if self.model not in shown:
            raise RuntimeError(f"{self.label}: the menu shows {shown!r}, not {self.model}")

    def wait_done(self, what: str) -> dict[str, Any]:
        """The probe's stamps once it has seen its result painted."""
        try:
            self.page.wait_for_function("window.__bench.m && window.__bench.m.done !== null", timeout=TIMEOUT_MS)
        except Exception as err:
            state = self.page.evaluate("window.__bench.m")
            raise RuntimeError(f"{self.label} ({self.model}), {what}: no result in {TIMEOUT_MS / 1000:.0f} s; "
                               f"probe {state}") from err
        return dict(self.page.evaluate("window.__bench.m"))

    def time_open(self, title: str) -> tuple[float, dict[str, float]]:
        """(ms to the first plot painted, details): open `title` from the Learn page by its navigation link."""
        n, _ = PAGES[title]
        self.go("Learn")
        self.page.bring_to_front()
        self.page.evaluate("([title, n]) => window.__bench.armOpen(title, n)", [title, n])
        start = time.perf_counter()
        self.nav(title).click()
        m = self.wait_done(f"opening {title}")
        wall = 1000 * (time.perf_counter() - start)
        self.settle()
        self.check()
        if f"{self.model} · data:" not in self.page.inner_text('[data-testid="stMain"]'):
            raise RuntimeError(f"{self.label}: {title} does not show {self.model}")
        first = m["firstPaint"] - m["t0"]
        return first, {"first_dom": m["first"] - m["t0"], "all": m["done"] - m["t0"], "wall": wall}

    def time_move(self, title: str) -> tuple[float, dict[str, Any]]:
        """(ms from ArrowRight on the t slider to its chart painted with the new t, details)."""
        _, marker = PAGES[title]
        slider = self.page.locator('[data-testid="stMain"] input[type="range"][aria-label="t"]')
        self.page.bring_to_front()
        slider.focus()
        before = float(slider.input_value())
        self.page.evaluate("(marker) => window.__bench.armMove(marker)", marker)
        start = time.perf_counter()
        self.page.keyboard.press("ArrowRight")
        m = self.wait_done(f"{title} slider")
        wall = 1000 * (time.perf_counter() - start)
        self.settle()
        self.check()
        after = float(slider.input_value())
        if not after > before:
            raise RuntimeError(f"{self.label}: the {title} slider did not move ({before} -> {after})")
        if title == "Fields" and f"t = {after:.2f}" not in m["after"]:
            raise RuntimeError(f"{self.label}: Fields shows {m['after']!r} for t = {after}")
        sent = None if m["sent"] is None else m["sent"] - m["t0"]
        figure = None if m["figure"] is None else m["figure"] - m["t0"]
        done = m["done"] - m["t0"]
        return done, {"done": done, "dom": m["dom"] - m["t0"], "sent": sent, "figure": figure,
                      "bytes": m["figureBytes"], "mutations": m["mutations"], "long": m["longMs"], "wall": wall,
                      "t": after}


def rounds(sessions: list[Session], fn: Callable[[Session], tuple[float, Any]], n: int) -> Any:
    """n alternating rounds of fn over the sessions (order rotated each round)."""
    return alternate({s.label: (lambda s=s: fn(s)) for s in sessions}, n)


def run(url: str, opens: int, moves: int) -> tuple[dict[str, dict[str, Any]], str]:
    """Every measurement of both sessions: {name: {label: value}} and chromium's version."""
    from playwright.sync_api import sync_playwright

    out: dict[str, dict[str, Any]] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            def session(label: str, model: str) -> Session:
                context = browser.new_context(viewport={"width": 1400, "height": 1700})
                context.set_default_timeout(TIMEOUT_MS)
                context.add_init_script(PROBES)
                page = context.new_page()
                page.goto(f"{url}/learn")
                made = Session(label, model, page)
                made.settle()
                made.select_model()
                return made

            warm = session("warm-up", WARM_UP[0])
            for model in WARM_UP:
                warm.model = model
                warm.select_model()
                for title in PAGES:
                    warm.time_open(title)
                    warm.time_move(title)
            warm.page.context.close()
            print(f"server warmed up on {', '.join(WARM_UP)}", flush=True)
            sessions = [session(label, model) for label, model in MODELS.items()]
            loads: dict[str, tuple[float, float]] = {}
            out["load"] = loads
            for title in PAGES:
                before = os.getloadavg()[0]
                got = rounds(sessions, lambda s, title=title: s.time_open(title), 1 + opens)
                loads[f"{title} opens"] = (before, os.getloadavg()[0])
                for s in sessions:
                    samples, extras = got.samples[s.label], got.extras[s.label]
                    out.setdefault(f"{title} open cold", {})[s.label] = samples[0]
                    out.setdefault(f"{title} open cold all", {})[s.label] = extras[0]["all"]
                    out.setdefault(f"{title} open", {})[s.label] = median(samples[1:])
                    out.setdefault(f"{title} open all", {})[s.label] = median([e["all"] for e in extras[1:]])
                    out.setdefault(f"{title} open samples", {})[s.label] = samples
                    out.setdefault(f"{title} open wall", {})[s.label] = median([e["wall"] for e in extras[1:]])
                print(title, "open", {k: v for k, v in out.items() if k.startswith(f"{title} open")}, flush=True)
                before = os.getloadavg()[0]
                got = rounds(sessions, lambda s, title=title: s.time_move(title), 1 + moves)
                loads[f"{title} moves"] = (before, os.getloadavg()[0])
                for s in sessions:
                    samples, extras = got.samples[s.label], got.extras[s.label]
                    sent = [e["sent"] for e in extras[1:] if e["sent"] is not None]
                    out.setdefault(f"{title} move warm-up", {})[s.label] = samples[0]
                    out.setdefault(f"{title} move", {})[s.label] = median(samples[1:])
                    out.setdefault(f"{title} move max", {})[s.label] = max(samples[1:])
                    out.setdefault(f"{title} move sent", {})[s.label] = median(sent)
                    pairs = [e for e in extras[1:] if e["sent"] is not None and e["figure"] is not None]
                    out.setdefault(f"{title} move server", {})[s.label] = median(
                        [e["figure"] - e["sent"] for e in pairs])
                    out.setdefault(f"{title} move browser", {})[s.label] = median(
                        [e["done"] - e["figure"] for e in pairs])
                    out.setdefault(f"{title} move bytes", {})[s.label] = median([e["bytes"] for e in pairs])
                    out.setdefault(f"{title} move mutations", {})[s.label] = median(
                        [e["mutations"] for e in extras[1:]])
                    out.setdefault(f"{title} move long", {})[s.label] = median([e["long"] for e in extras[1:]])
                    out.setdefault(f"{title} move dom", {})[s.label] = median([e["dom"] for e in extras[1:]])
                    out.setdefault(f"{title} move wall", {})[s.label] = median([e["wall"] for e in extras[1:]])
                    out.setdefault(f"{title} move samples", {})[s.label] = samples
                    out.setdefault(f"{title} move last t", {})[s.label] = extras[-1]["t"]
                print(title, "move", {k: v for k, v in out.items() if k.startswith(f"{title} move")}, flush=True)
            version = browser.version
        finally:
            browser.close()
    return out, version


def fmt_ms(ms: float) -> str:
    """Milliseconds as a table cell: ms below 10 s, s with two decimals above."""
    return f"{ms:.0f} ms" if ms < 10_000 else f"{ms / 1000:.2f} s"


def fmt_kb(size: float) -> str:
    """Bytes as a table cell, in kB."""
    return f"{size / 1000:.0f} kB"


def fmt_count(n: float) -> str:
    """A count as a table cell."""
    return f"{n:,.0f}"


def table(out: dict[str, dict[str, Any]], opens: int, moves: int) -> list[str]:
    """The results table (markdown lines): 2-D, 13-D and their ratio per measurement."""
    rows = []
    for title, (n, _) in PAGES.items():
        what = "its density panels' t slider" if title == "Paths" else "the t slider"
        rows += [
            (f"{title}: nav click -> first plot painted (median of {opens})", f"{title} open", "open"),
            (f"{title}: nav click -> all {n} plots painted (median of {opens})", f"{title} open all", ""),
            (f"{title}: first open, cold caches and plotly.js loading -> first plot", f"{title} open cold", ""),
            (f"{title}: ... -> all {n} plots", f"{title} open cold all", ""),
            (f"{title}: {what}, one step (ArrowRight) -> new t painted (median of {moves})", f"{title} move",
             "move"),
            (f"{title}: ... max of {moves}", f"{title} move max", ""),
            (f"{title}: ... of which key press -> request sent (frontend, median)", f"{title} move sent", ""),
            (f"{title}: ... request sent -> figure received (server rerun + transfer, median)",
             f"{title} move server", "move server"),
            (f"{title}: ... figure received -> painted (browser: decode, React, plotly, median)",
             f"{title} move browser", ""),
            (f"{title}: ... size of that figure message (median)", f"{title} move bytes", ""),
            (f"{title}: ... DOM mutation records in the page (median)", f"{title} move mutations", ""),
            (f"{title}: ... main-thread long tasks (> 50 ms) begun, total (median)", f"{title} move long", ""),
            (f"{title}: first move (warm-up, not in the median)", f"{title} move warm-up", ""),
        ]
    a, b = MODELS
    lines = [f"| what | {a} ({MODELS[a]}) | {b} ({MODELS[b]}) | {b} / {a} | budget (UI issue), met {a} / {b} |",
             "|---|---|---|---|---|"]
    for what, key, budget in rows:
        x, y = out[key][a], out[key][b]
        ratio = f"{y / x:.2f}" if x > 0 else "n/a"
        cell = fmt_kb if key.endswith("bytes") else fmt_count if key.endswith("mutations") else fmt_ms
        verdict = ""
        if budget:
            limit, words = BUDGETS[budget]
            verdict = f"{words} (met: {'yes' if x <= limit else 'no'} / {'yes' if y <= limit else 'no'})"
        lines.append(f"| {what} | {cell(x)} | {cell(y)} | {ratio} | {verdict} |")
    return lines


def wait_quiet(load: float, at_most: float) -> float:
    """Seconds waited (at most `at_most`) for the 1-min load average to fall below `load`."""
    started = time.monotonic()
    while os.getloadavg()[0] >= load and time.monotonic() - started < at_most:
        time.sleep(5)
    return time.monotonic() - started


def where(out: dict[str, dict[str, Any]]) -> str:
    """A sentence on where a slider move's time goes, for each page and model."""
    parts = []
    for title in PAGES:
        for label in MODELS:
            total, sent = out[f"{title} move"][label], out[f"{title} move sent"][label]
            server, browser = out[f"{title} move server"][label], out[f"{title} move browser"][label]
            parts.append(f"{title} {label}: {total:.0f} ms = {sent:.0f} frontend + {server:.0f} server and transfer "
                         f"+ {browser:.0f} browser re-render (medians of each part, so the sum differs a little)")
    return "Where a slider move's time goes: " + "; ".join(parts) + "."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    parser.add_argument("--opens", type=int, default=3, help="timed opens of each page after the cold one")
    parser.add_argument("--moves", type=int, default=10, help="timed slider moves of each page after a warm-up")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results_dims.md")
    parser.add_argument("--quiet-load", type=float, default=1.5,
                        help="wait until the 1-min load average is below this before starting (other jobs)")
    parser.add_argument("--quiet-wait", type=float, default=120, help="seconds to wait for that at most")
    args = parser.parse_args()
    waited = wait_quiet(args.quiet_load, args.quiet_wait)
    load_before = os.getloadavg()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-dims-") as folder, explorer(
            ROOT, Path(folder), os.environ.get("PYTHONPATH"), os.environ.get("FLOWSCOPE_ZOO_DIR")) as (url, _):
        out, chromium = run(url, args.opens, args.moves)
    seconds = time.perf_counter() - started
    load_after = os.getloadavg()
    zoo = os.environ.get("FLOWSCOPE_ZOO_DIR", "the package's pretrained/")
    a, b = MODELS
    lines = [
        "# The explorer with a 13-D model against a 2-D one, in a browser (bench/bench_dims.py)",
        "",
        f"Machine: {cpu_model()}, {os.cpu_count()} logical cores, {platform.machine()}, Python "
        f"{platform.python_version()}, torch {package_version('torch')}, streamlit {package_version('streamlit')}, "
        f"plotly {package_version('plotly')}, Playwright {package_version('playwright')}, Debian chromium "
        f"{chromium} (headless, 1400x1700). Load average (1 min) before/after: {load_before[0]:.2f} / "
        f"{load_after[0]:.2f} (after waiting {waited:.0f} s for it to fall below {args.quiet_load:g}; per section: "
        + ", ".join(f"{k} {v[0]:.1f}-{v[1]:.1f}" for k, v in out["load"].items())
        + f"); the run took {seconds:.0f} s. Zoo: {zoo}. Date: "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "Command: `python bench/bench_dims.py" + (f" --opens {args.opens}" if args.opens != 3 else "")
        + (f" --moves {args.moves}" if args.moves != 10 else "") + "`",
        "",
        *table(out, args.opens, args.moves),
        "",
        "What the figures include: everything a person waits for, timed inside the page (performance.now()), from "
        "the user's event (the navigation link's click, the slider thumb's key press, stamped by a capturing "
        "listener) to the next frame after the DOM shows the result (MutationObserver, then requestAnimationFrame "
        "+ setTimeout): Streamlit's frontend (its slider's own delay before it sends the value, in the 'request "
        "sent' row), the WebSocket round trip on 127.0.0.1, the script's rerun on the server (the whole page on "
        "opening, the t fragment alone on a slider move), the figure's transfer and plotly's re-render in "
        "headless chromium (software rendering, --disable-gpu). The 'figure received' stamp is the arrival of the "
        "largest WebSocket message after the request (the chart's figure). The mutation and long-task rows "
        "count the page's work from the key press to the paint (MutationObserver records in the whole page; the "
        "main thread's long tasks begun in that span, from PerformanceObserver); the probes' own cost is inside "
        "every figure, alike in both columns. A page open is from the Learn page (no "
        "plot) in the same session; the first open of each page found the server's caches (trajectories, field "
        "supports, losses by t) empty for the model and loaded plotly.js into that browser session; a throw-away "
        f"session had first opened both pages with {' and '.join(WARM_UP)} (untimed), so that the server's one-time "
        "costs (imports, first use of each code path) fall on neither column. A slider move "
        "ends when the t-dependent chart's panel titles read the new t (checked against the slider's value on "
        f"Fields). {b} ({MODELS[b]}) is drawn through its principal axes (the default): Fields on the slice "
        "through the data mean, fields exact in all 13 dimensions; Paths' density panels are of the projected "
        "x_t.",
        "",
        f"The two models are shown by two browser sessions of one server, measured alternately (order rotated "
        f"every round), so both columns saw the same machine; the ratio ({b} / {a}, of the figures shown) is the "
        "headline, the absolute figures are context (machines differ up to 4x; these two cores were shared). The "
        "budgets are those of the UI issue (bench/results_ui.md): a slider move within 300 ms, which that "
        "benchmark measures on the server (AppTest), comparable to the 'request sent -> figure received' row here; "
        "a first plot within 5 s (there from the server's start; here a page opened in a running session).",
        "",
        where(out),
        "",
        "Samples (ms, in the order taken; the first is the cold open / warm-up move): "
        + "; ".join(f"{key.removesuffix(' samples')} {label} {[round(v) for v in vals]}"
                    for key, per in out.items() if key.endswith("samples") for label, vals in per.items())
        + ". Python-side wall time of the same events (command sent to result seen, medians): "
        + "; ".join(f"{key.removesuffix(' wall')} {label} {v:.0f}"
                    for key, per in out.items() if key.endswith("wall") for label, v in per.items()) + ".",
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

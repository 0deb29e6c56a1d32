"""The explorer as a person feels it, before and after: a real browser, from the user's action to the changed pixels.

Issue "The explorer as a person feels it". Starts two explorers side by side on free ports of 127.0.0.1: BEFORE,
`streamlit run` of another checkout's ui/app.py (default /work/main, with the default Python path, i.e. that
checkout's own code) and AFTER, this checkout's (with the caller's PYTHONPATH), each with HOME and the explorer's
cache in a throw-away folder, and drives Debian's chromium through Playwright (one browser context per
Streamlit session). Measured on each, alternately where it can be:

a. first plot after opening the app: the first session after the server started (cold: imports, plotly.js,
   caches empty), then 3 new sessions (warm server), from `goto` to the first painted plot;
b. page switch to first plot, for every page (from the sidebar's navigation; Train and Learn have no plot:
   their uploader / formulas), first visit and second visit of the session;
c. the Fields page's t slider, one step, to the next frame painted with the new t in the panel titles
   (BEFORE: Streamlit's slider, focused, ArrowRight: a server round trip; AFTER: a click on plotly's own slider
   step); one warm-up, then --moves moves, median and max;
d. training 2,000 steps (toy moons) and switching to Fields, then Paths, then back to Train: what the Train page
   says at the end (BEFORE: leaving the page stopped it; AFTER: it went on) and the wall time;
e. (AFTER only) the load test: --sessions sessions open at once on Fields, --trainers of them training 2,000
   steps at the same time (the server runs 2 at once, the others wait with a message), each moving the t slider
   --load-moves times (round robin over the sessions); every move must be answered, no exception on any page;
   then the server's RSS and thread count before and after --trainings short trainings (200 steps each, 5
   sessions at a time, in two rounds of fresh sessions: a session keeps its models, so memory is bounded if
   the second round ends where the first did once the first round's sessions are gone).

Every time is taken inside the page (performance.now()): a capturing listener stamps the user's event and a
polling loop (every animation frame) sees the result, then one more frame + setTimeout (the changed pixels).
Writes bench/results_browser.md. Usage: python bench/bench_browser.py [--before /work/main] [--moves 10]
[--sessions 8] [--trainers 4] [--trainings 50] [--skip-load]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from explorer_server import explorer

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 180_000
#: Seconds a closed session's state is kept on the servers measured here (Streamlit's default is 120).
SESSION_TTL_S = 10
#: How a training of 2,000 steps ends on the Train page: trained, stopped (and where), or failed (and why).
ENDED = re.compile(r"trained 2,000 steps|stopped at step [\d,]+ of 2,000|stopped before it started|ended without a "
                   r"model|Error: ")
PAGES = ["Flow", "Gallery", "Paths", "Fields", "Marginals", "Train", "Compare", "Learn"]

PROBES = """
(() => {
  const b = window.__bench = {t0: null};
  for (const kind of ['mousedown', 'keydown', 'click']) {
    window.addEventListener(kind, () => { b.t0 = performance.now(); }, {capture: true});
  }
  const main = () => document.querySelector('[data-testid="stMain"]') || document.body;
  b.shown = (title) => {
    const h1 = main().querySelector('h1');
    if (title && (!h1 || !h1.textContent.toLowerCase().includes(title.toLowerCase()))) return false;
    if (title === 'Train') return !!main().querySelector('[data-testid="stFileUploader"]');
    if (title === 'Learn') return main().querySelectorAll('.katex').length >= 4;
    for (const el of main().querySelectorAll('.js-plotly-plot')) {
      const r = el.getBoundingClientRect();
      if (r.width > 0 && r.height > 0 && el.querySelector('.main-svg')) return true;
    }
    return false;
  };
  // the first chart's titles: its annotations and its text traces (where titles that change with t are drawn)
  b.titles = () => Array.from(main().querySelectorAll('.js-plotly-plot')).slice(0, 1)
    .map(el => Array.from(el.querySelectorAll('.annotation-text, .textpoint text')).map(n => n.textContent).join('|'))
    .join('');
  // resolves with ms from the last user event (or from `since`) to the frame after `check()` became true
  b.until = (check, since) => new Promise((resolve) => {
    const start = since ?? b.t0;
    const deadline = performance.now() + 60000;
    const poll = () => {
      if (check()) {
        requestAnimationFrame(() => setTimeout(() => resolve(performance.now() - start), 0));
      } else if (performance.now() > deadline) {
        resolve(-1);
      } else {
        requestAnimationFrame(poll);
      }
    };
    poll();
  });
})();
"""



def memory(pid: int) -> tuple[float, int]:
    """(resident memory in MiB, threads) of a process, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["Threads"])


def load_average() -> str:
    """The 1-minute load average now."""
    return f"{os.getloadavg()[0]:.1f}"


class Session:
    """One browser context (its own Streamlit session) on one explorer."""

    def __init__(self, browser: Any, url: str, label: str) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 1700})
        self.context.set_default_timeout(TIMEOUT_MS)
        self.context.add_init_script(PROBES)
        self.page = self.context.new_page()
        self.url, self.label = url, label

    def open(self, path: str = "") -> float:
        """Open the app (a URL), ms from navigation start to the first painted plot of the page."""
        self.page.goto(f"{self.url}/{path}")
        return float(self.page.evaluate("window.__bench.until(() => window.__bench.shown(''), 0)"))

    def settle(self, quiet_s: float = 0.8) -> None:
        """Wait until the app has not been running its script for `quiet_s` seconds (or 60 s have passed)."""
        deadline, quiet_since = time.monotonic() + 60, None
        while time.monotonic() < deadline:
            if self.page.locator('[data-testid="stStatusWidget"]').count() > 0:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= quiet_s:
                return
            self.page.wait_for_timeout(100)

    def switch(self, title: str) -> float:
        """Click a page in the sidebar's navigation; ms from the click to its first painted plot."""
        self.page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()
        return float(self.page.evaluate(f"window.__bench.until(() => window.__bench.shown({title!r}))"))

    def exception(self) -> str | None:
        """The text of a Streamlit exception box on the page, if any."""
        boxes = self.page.locator('[data-testid="stException"]')
        return boxes.first.inner_text()[:500] if boxes.count() else None

    def has_plotly_slider(self) -> bool:
        """Whether the first chart has plotly's own t slider (AFTER) rather than Streamlit's (BEFORE)."""
        return bool(self.page.locator(".js-plotly-plot").first.locator(".slider-tick-rect").count())

    def move(self, k: int) -> float:
        """Move the Fields page's t one step (k-th move); ms from the input to the new t painted in the titles."""
        before = self.page.evaluate("window.__bench.titles()")
        if self.has_plotly_slider():
            plot = self.page.locator(".js-plotly-plot").first
            steps = plot.evaluate("gd => gd.layout.sliders[0].steps.length")
            active = plot.evaluate("gd => gd.layout.sliders[0].active ?? 0")
            target = (active + 1) % steps if k % 12 != 11 else max(active - 5, 0)
            tick = plot.locator(".slider-tick-rect").nth(target).bounding_box()
            rail = plot.locator(".slider-rail-rect").bounding_box()
            self.page.mouse.click(tick["x"] + tick["width"] / 2, rail["y"] + rail["height"] / 2)
        else:
            thumb = self.page.locator('[data-testid="stMain"] input[type="range"][aria-label="t"]').first
            thumb.focus()
            thumb.press("ArrowRight" if k % 12 != 11 else "Home")
        changed = f"() => {{ const t = window.__bench.titles(); return t !== '' && t !== {json.dumps(before)}; }}"
        return float(self.page.evaluate(f"window.__bench.until({changed})"))

    def start_training(self, steps: int) -> None:
        """On the Train page: toy moons, `steps` steps, press Train."""
        self.page.get_by_test_id("stRadioGroup").get_by_text("Toy dataset").click()
        self.settle()
        box = self.page.get_by_label("Steps (at most 10,000)")
        box.fill(str(steps))
        box.press("Enter")
        self.settle()
        self.page.get_by_role("button", name="Train", exact=True).click()

    def close(self) -> None:
        """Close the browser context (its Streamlit session goes away)."""
        self.context.close()


#: How a slider move is made, by whether the chart has plotly's own slider.
SLIDER_HOW = {
    False: "moves Streamlit's slider (ArrowRight on the focused thumb: a server rerun of the fragment and a new "
           "figure)",
    True: "clicks the next step of plotly's own slider (the frames are in the browser already)",
}


def median(values: list[float]) -> float:
    """The median (NaN for none)."""
    return float(statistics.median(values)) if values else float("nan")


def measure(browser: Any, url: str, label: str, moves: int) -> dict[str, Any]:
    """Items a-d on one explorer."""
    out: dict[str, Any] = {"load": []}
    first = Session(browser, url, label)
    out["cold"] = first.open()
    out["load"].append(load_average())
    first.settle()
    first.close()
    warm = []
    for _ in range(3):
        s = Session(browser, url, label)
        warm.append(s.open())
        s.settle()
        s.close()
    out["warm"] = warm
    s = Session(browser, url, label)
    s.open()
    s.settle()
    switches: dict[str, list[float]] = {}
    for _ in range(2):
        for title in PAGES[1:] + PAGES[:1]:
            switches.setdefault(title, []).append(s.switch(title))
            s.settle()
    out["switch"] = switches
    s.switch("Fields")
    s.settle(1.5)
    samples = []
    for k in range(moves + 1):
        samples.append(s.move(k))
        s.page.wait_for_timeout(250)
    out["moves"], out["move_warmup"] = samples[1:], samples[0]
    out["plotly_slider"] = s.has_plotly_slider()
    out["exception"] = s.exception()
    out["load"].append(load_average())
    s.close()
    t = Session(browser, url, label)
    t.open("train")
    t.settle()
    t.start_training(2000)
    began = time.monotonic()
    t.page.wait_for_timeout(1500)
    for title in ("Fields", "Paths", "Train"):
        t.switch(title)
        t.page.wait_for_timeout(1000)
    end = t.page.get_by_text(re.compile(r"trained 2,000 steps|stopped at step [\d,]+ of 2,000")).first
    end.wait_for()
    out["training"] = end.inner_text().split(":")[-1].strip()
    out["training_s"] = time.monotonic() - began
    t.close()
    return out


def load_test(browser: Any, url: str, pid: int, sessions: int, trainers: int, moves: int,
              trainings: int) -> dict[str, Any]:
    """Item e on the AFTER explorer."""
    out: dict[str, Any] = {"load": [load_average()]}
    pages = [Session(browser, url, f"s{i}") for i in range(sessions)]
    for i, s in enumerate(pages):
        s.open("train" if i < trainers else "fields")
        s.settle()
    for s in pages[:trainers]:
        s.start_training(2000)
    waiting = 0
    for s in pages[:trainers]:
        s.page.get_by_test_id("stSidebar").get_by_text(re.compile(r"Training |Waiting")).first.wait_for()
        if s.page.get_by_test_id("stSidebar").get_by_text("Waiting").count():
            waiting += 1
    out["waiting_seen"] = waiting
    print(f"  {sessions} sessions open, {trainers} training ({waiting} waiting)", flush=True)
    for s in pages[:trainers]:
        s.switch("Fields")
    for s in pages:
        s.page.locator(".js-plotly-plot .slider-tick-rect").first.wait_for(state="attached")
    latencies, unanswered = [], 0
    for k in range(moves):
        for s in pages:
            ms = s.move(k)
            if ms < 0:
                unanswered += 1
            else:
                latencies.append(ms)
    out["latencies"], out["unanswered"] = latencies, unanswered
    print(f"  {len(latencies)} slider moves answered, {unanswered} not", flush=True)
    endings = []
    for s in pages[:trainers]:  # each training ends with its model: trained, or stopped (say where)
        s.switch("Train")
        end = s.page.get_by_text(ENDED).first
        end.wait_for(timeout=600_000)
        endings.append(end.inner_text().split(":")[-1].strip())
    out["trained"] = sum("trained 2,000" in e for e in endings)
    out["endings"] = endings
    out["exceptions"] = [e for e in (s.exception() for s in pages) if e]
    out["load"].append(load_average())
    for s in pages:
        s.close()
    # the short trainings, in two rounds of fresh sessions: a session keeps every model it trained, so memory
    # is bounded if what the first round's sessions held is given back (or reused) once they are gone
    rss: list[tuple[int, float, int]] = [(0, *memory(pid))]
    count = 0
    for round_size in (trainings // 2, trainings - trainings // 2):
        pages = [Session(browser, url, f"m{count + i}") for i in range(min(5, round_size))]
        for s in pages:
            s.open("train")
            s.settle()
            s.page.get_by_test_id("stRadioGroup").get_by_text("Toy dataset").click()
            s.settle()
            box = s.page.get_by_label("Steps (at most 10,000)")
            box.fill("200")
            box.press("Enter")
            s.settle()
        done = 0
        while done < round_size:
            batch = pages[: min(len(pages), round_size - done)]
            for s in batch:
                s.page.get_by_role("button", name="Train", exact=True).click()
            for s in batch:  # the live panel appears while the job runs, and goes when its model is there
                live = s.page.get_by_text("The training runs in the background")
                try:
                    live.wait_for(timeout=5000)
                except Exception:  # noqa: BLE001 - finished before the panel was drawn
                    pass
                live.wait_for(state="detached")
                s.page.get_by_text("trained 200 steps").first.wait_for()
                s.settle(0.3)
            done += len(batch)
            count += len(batch)
            print(f"  {count} short trainings done, server RSS {memory(pid)[0]:.0f} MiB", flush=True)
        rss.append((count, *memory(pid)))
        out["exceptions"] += [e for e in (s.exception() for s in pages) if e]
        for s in pages:
            s.close()
        time.sleep(SESSION_TTL_S + 5)  # Streamlit drops a closed session's state after its TTL
        rss.append((count, *memory(pid)))
    out["rss"] = rss
    out["server_alive"] = Path(f"/proc/{pid}").exists()
    return out


def main() -> None:
    """Run both explorers, measure, write the results file."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, default=Path("/work/main"),
                        help="a checkout of the code to compare against (its ui/app.py)")
    parser.add_argument("--before-pythonpath", default=None,
                        help="PYTHONPATH under which the BEFORE checkout's own packages import (default: none, "
                             "i.e. whatever flowscope is installed)")
    parser.add_argument("--moves", type=int, default=10)
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--trainers", type=int, default=4)
    parser.add_argument("--load-moves", type=int, default=5)
    parser.add_argument("--trainings", type=int, default=50)
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results_browser.md")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results: dict[str, dict[str, Any]] = {}
    load: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        ttl = ("--server.disconnectedSessionTTL", str(SESSION_TTL_S))
        with explorer(args.before, Path(tmp) / "before", args.before_pythonpath, options=ttl) as (before_url, _), \
                explorer(ROOT, Path(tmp) / "after", os.environ.get("PYTHONPATH"), options=ttl) as (after_url,
                                                                                                   after_pid):
            for label, url in (("before", before_url), ("after", after_url)):
                print(f"measuring {label} ({url}) ...", flush=True)
                results[label] = measure(browser, url, label, args.moves)
                print(results[label], flush=True)
            if not args.skip_load:
                print("load test ...", flush=True)
                load = load_test(browser, after_url, after_pid, args.sessions, args.trainers, args.load_moves,
                                 args.trainings)
                print(load, flush=True)
        browser.close()
    write(args, results, load, started)


def write(args: argparse.Namespace, results: dict[str, dict[str, Any]], load: dict[str, Any], started: str) -> None:
    """bench/results_browser.md."""
    b, a = results["before"], results["after"]

    def ratio(x: float, y: float) -> str:
        return f"{y / x:.2f}" if x > 0 and y > 0 else "n/a"

    rows = [
        ("first plot after opening the app, cold server (ms)", b["cold"], a["cold"], ""),
        ("first plot after opening the app, warm server (median of 3, ms)", median(b["warm"]), median(a["warm"]),
         "<= 3000"),
        (f"Fields t slider, one step -> new t painted, median of {len(a['moves'])} (ms)", median(b["moves"]),
         median(a["moves"]), "<= 150"),
        (f"Fields t slider, max of {len(a['moves'])} (ms)", max(b["moves"]), max(a["moves"]), "<= 300"),
    ]
    for title in PAGES:
        first, second = b["switch"][title], a["switch"][title]
        rows.append((f"page switch -> first plot: {title}, first visit (ms)", first[0], second[0], "<= 3000"))
        rows.append((f"page switch -> first plot: {title}, second visit (ms)", first[1], second[1], "<= 3000"))
    lines = [
        "# The explorer in a browser, before and after (bench/bench_browser.py)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, shared with another engineer's jobs; "
        f"Python {platform.python_version()}; Debian chromium (headless, 1400x1700, --disable-gpu). Date: {started}. "
        f"Load average (1 min) during BEFORE: {', '.join(b['load'])}; AFTER: {', '.join(a['load'])}"
        + (f"; load test: {', '.join(load['load'])}" if load else "") + ".",
        "",
        f"Command: `python bench/bench_browser.py --before {args.before}"
        + (f" --before-pythonpath {args.before_pythonpath}" if args.before_pythonpath else "") + "` "
        "(BEFORE: that checkout's ui/app.py importing its own packages; AFTER: this checkout's; each with its own "
        "pretrained zoo, started side by side, measured one after the other).",
        "",
        "| what | before | after | after / before | target |",
        "|---|---|---|---|---|",
    ]
    for what, x, y, target in rows:
        met = ""
        if target:
            limit = float(target.split()[-1])
            met = f" ({'met' if 0 <= y <= limit else 'NOT met'})"
        lines.append(f"| {what} | {x:.0f} | {y:.0f} | {ratio(x, y)} | {target}{met} |")
    lines += [
        f"| training 2,000 steps, then Fields, Paths, back to Train: the Train page says | {b['training']} | "
        f"{a['training']} | | keeps training |",
        f"| ... wall time from Train to the final message (s) | {b['training_s']:.1f} | {a['training_s']:.1f} | | |",
        "",
        f"Slider samples (ms): before {[round(v) for v in b['moves']]} (warm-up {b['move_warmup']:.0f}); after "
        f"{[round(v) for v in a['moves']]} (warm-up {a['move_warmup']:.0f}). "
        + " ".join(f"{label.upper()} {SLIDER_HOW[results[label]['plotly_slider']]}." for label in ("before", "after"))
        + " Every 12th move jumps back. Time: from the input event to the frame after the panel titles (annotations "
        "or text traces) show the new t.",
        f"Exceptions on the page: before {b['exception'] or 'none'}; after {a['exception'] or 'none'}.",
    ]
    if load:
        lat = load["latencies"]
        rss = load["rss"]
        lines += [
            "",
            "## Load test (AFTER)",
            "",
            f"{args.sessions} browser sessions open at once on Fields, {args.trainers} of them training 2,000 steps "
            f"at the same time (at most 2 run at once on the server; {load['waiting_seen']} of the {args.trainers} "
            "showed the 'Waiting: ... yours starts when one ends' message in their sidebar), each moving the t slider "
            f"{args.load_moves} times, round robin over the sessions: {len(lat)} moves answered, {load['unanswered']} "
            f"unanswered; median {median(lat):.0f} ms, worst {max(lat) if lat else float('nan'):.0f} ms. Trainings "
            f"finished all 2,000 steps: {load['trained']} of {args.trainers} ({'; '.join(load['endings'])}). "
            f"Exceptions on any page: {load['exceptions'] or 'none'}; the server "
            f"{'was still running at the end' if load['server_alive'] else 'HAD DIED by the end'}.",
            "",
            f"Server memory over {args.trainings} short trainings (200 steps each) in two rounds of fresh sessions "
            f"(5 at a time; each session keeps every model it trained, so the first round's sessions are closed and "
            f"Streamlit drops their state after {SESSION_TTL_S} s before the second round): "
            + "; ".join(f"{what.format(n=n)}: {mib:.0f} MiB ({threads} threads)" for (n, mib, threads), what in
                        zip(rss, ["at the start", "after {n} trainings", "once those sessions were gone",
                                  "after {n} trainings", "once those sessions were gone"], strict=False))
            + f". From the end of the first round to the end of the second: {rss[3][1] - rss[1][1]:+.0f} MiB "
            f"(first round {rss[1][1] - rss[0][1]:+.0f} MiB).",
        ]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

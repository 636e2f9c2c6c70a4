"""Every dashboard page in a real browser (headless Debian Chromium driven by Playwright), as a user waits.

The app is served by the README's start command, `python -m dashboard` (or with `--start streamlit-run` by plain
`streamlit run dashboard/app.py`), on a loopback port (authentication off, the database given), as
tests/test_e2e_browser.py starts it. Measured by the page's own clock (the driver's round trips to the browser
are not counted):
  app first page   from the start of the navigation (server healthy, database already built) until the first
                   page's script run has finished: `[data-testid="stApp"]` reports script state "notRunning",
                   the status widget is gone and the page heading is present
  first visit      for every other page in sidebar order, from the click on its sidebar link to that same
                   point; the server was just started, so every cached query of the cut is cold, as after a
                   new cut (the default page's first visit is the app's first page)
  second visit     the same clicks again (the cut's queries cached)
  charts drawn     the extra time until the page is drawn: no element still waiting for its part of Streamlit's
                   front end to load (a placeholder "stSkeleton": Plotly's script, several MB, loads with the
                   first Plotly chart the browser meets) and every Plotly chart has its SVG
Each of --rounds rounds starts a new server (cold caches) and a new browser; medians over rounds. With --returning
the browser is one that has opened every page before (a profile primed on another server, then reopened each
round): Streamlit's front end and Plotly's script come from its cache, as for a committee member who used the app
at the last meeting. With --reading-time S each page stays open S seconds after it is drawn before the next
click, as a user reads it: the browser is idle then, which is when the app has it load Plotly's script
(dashboard/warmup.py); without it every click follows at once and a page may wait for that load.

    python benchmarks/bench_browser.py [--db PATH] [--rounds 2] [--start launcher|streamlit-run] [--returning]
                                       [--reading-time SECONDS]

Without --db the sample database is built into benchmarks/out/browser_sample.duckdb (if missing, or written by an
earlier celltox).
A database left by `benchmarks/bench_load.py --keep` gives the page times of the scale curve.
Goals: first visit < 1.0 s, second visit < 0.3 s at trial scale; first visit < 2 s at 10,000 subjects;
the app's first page < 2 s after start once the database exists.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from host import host_line, load_average

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "out"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-dev-shm-usage", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]

# Every time is taken by the page's own clock (epoch milliseconds), so the driver's round trips to the browser
# are not counted: a sidebar click is stamped by a listener when the browser dispatches it, the end of a
# script run by an observer the moment the page shows it. A run has finished when the app's script state went
# to "running" and back to "notRunning", or (a fast run can go both ways within one React commit, so the
# "running" state never reaches the DOM) the heading changed to the new page's with the state "notRunning";
# and the status widget is gone and the page has its heading.
MARKS = """(() => {
  const now = () => performance.timeOrigin + performance.now();
  window.__now = now;
  window.__clickAt = null; window.__firstPageAt = null;
  document.addEventListener('click', () => { window.__clickAt = now(); }, true);
  const first = new MutationObserver(() => {
    const app = document.querySelector('[data-testid="stApp"]');
    if (!app) return;
    if (app.getAttribute('data-test-script-state') === 'notRunning' && document.querySelector('[data-testid="stMain"] h1')
        && !document.querySelector('[data-testid="stStatusWidget"]')) {
      window.__firstPageAt = now(); first.disconnect();
    }
  });
  first.observe(document, {subtree: true, childList: true, attributes: true,
                           attributeFilter: ['data-test-script-state']});
})();"""
SETTLED = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  const h1 = document.querySelector('[data-testid="stMain"] h1');
  if (!h1 || document.querySelector('[data-testid="stStatusWidget"]')) return false;
  if (app.getAttribute('data-test-script-state') !== 'notRunning') return false;
  return window.__done || h1.textContent !== window.__oldH1;
}"""
WATCH = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  const h1 = document.querySelector('[data-testid="stMain"] h1');
  window.__oldH1 = h1 ? h1.textContent : null;
  window.__ran = false; window.__done = false; window.__settledAt = null; window.__clickAt = null;
  const settled = """ + SETTLED + """;
  if (window.__obs) window.__obs.disconnect();
  window.__obs = new MutationObserver(() => {
    const s = app.getAttribute('data-test-script-state');
    if (s === 'running') window.__ran = true;
    else if (window.__ran && s === 'notRunning') window.__done = true;
    if (window.__settledAt === null && settled()) { window.__settledAt = window.__now(); }
  });
  window.__obs.observe(app, {subtree: true, childList: true, characterData: true, attributes: true,
                             attributeFilter: ['data-test-script-state']});
}"""
VIEWPORT = {"width": 1600, "height": 1200}
# Everything drawn: no element still waiting for its part of Streamlit's front end to load (a page's first
# Plotly chart, table or widget of a kind shows a placeholder, "stSkeleton", until then) and every Plotly chart
# has its SVG.
CHARTS = """() => { if (document.querySelector('[data-testid="stMain"] [data-testid="stSkeleton"]')) return false;
  const c = document.querySelectorAll('[data-testid="stPlotlyChart"]');
  return [...c].every(e => e.querySelector('.main-svg')); }"""


# The README's start command (imports the pages' libraries, then serves) and the plain Streamlit one.
START_COMMANDS = {"launcher": ["-m", "dashboard"],
                  "streamlit-run": ["-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py")]}



def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _current(db: Path) -> bool:
    """The database exists and holds every column this celltox declares."""
    if not db.exists():
        return False
    import duckdb
    from safety import schema

    con = duckdb.connect(str(db), read_only=True)
    try:
        return not schema.missing_columns(con)
    finally:
        con.close()


def serve(db: Path, start: str) -> tuple[subprocess.Popen, str, float]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("CELLTOX_USERS", "CELLTOX_SAMPLE_DB")}
    env.update(CELLTOX_DB=str(db), CELLTOX_AUTH="off")
    command = START_COMMANDS[start]
    cmd = [sys.executable, *command, "--server.headless=true",
           "--server.address=127.0.0.1", f"--server.port={port}", "--browser.gatherUsageStats=false",
           "--server.fileWatcherType=none"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.read().decode().strip() == "ok":
                    return proc, url, time.perf_counter() - t0
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("streamlit did not become healthy in 120 s")


def _open_browser(p, profile: Path | None):
    """A new browser (no profile: nothing cached) or one reopened on ``profile`` (its HTTP and code caches kept)."""
    if profile is None:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        return browser, browser.new_page(viewport=VIEWPORT)
    context = p.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                                   viewport=VIEWPORT)
    return context, context.new_page()


def prime_profile(db: Path, start: str, profile: Path) -> None:
    """Open every page once in a browser profile, on a server that is then stopped: a returning user's browser."""
    from playwright.sync_api import sync_playwright

    from dashboard.navigation import PAGES

    proc, url, _ = serve(db, start)
    try:
        with sync_playwright() as p:
            browser, page = _open_browser(p, profile)
            page.goto(url)
            page.wait_for_selector('[data-testid="stMain"] h1', timeout=300_000)
            for spec in PAGES:
                page.goto(url + ("/" if spec.default else f"/{spec.url}"))
                page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=300_000)
                page.wait_for_function(CHARTS, timeout=300_000, polling="raf")
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def one_round(db: Path, start: str, profile: Path | None = None, reading: float = 0.0) -> dict:
    from playwright.sync_api import sync_playwright

    from dashboard.navigation import PAGES

    proc, url, healthy = serve(db, start)
    res: dict = {"first": {}, "second": {}, "charts": {}, "healthy": healthy}
    try:
        with sync_playwright() as p:
            browser, page = _open_browser(p, profile)
            page.add_init_script(MARKS)
            page.goto(url)
            page.wait_for_function("() => window.__firstPageAt !== null", timeout=300_000, polling="raf")
            # from the navigation's start to the first page shown, by the page's clock
            res["app_first_page"] = page.evaluate("(window.__firstPageAt - performance.timeOrigin) / 1000")
            # every click starts from a page at rest: the first page drawn (every element's part of the front end
            # loaded, every chart drawn), as for each page visited after it
            page.wait_for_function(CHARTS, timeout=300_000, polling="raf")
            res["first_page_charts"] = page.evaluate("(window.__now() - window.__firstPageAt) / 1000")
            time.sleep(reading)
            for visit in ("first", "second"):
                for spec in PAGES:
                    if spec.default and visit == "first":
                        continue  # its first visit is the app's first page (a click on the open page reruns nothing)
                    link = page.locator(f'[data-testid="stSidebarNavLink"][href$="/{spec.url}"]')
                    if spec.default:
                        link = page.locator('[data-testid="stSidebarNavLink"]').first
                    page.evaluate(WATCH)
                    link.click()
                    page.wait_for_function("() => window.__settledAt !== null", timeout=300_000, polling="raf")
                    click_at, settled_at = page.evaluate("[window.__clickAt, window.__settledAt]")
                    if click_at is None:
                        raise SystemExit(f"{spec.title}: the click was not seen by the page")
                    res[visit][spec.title] = (settled_at - click_at) / 1000
                    page.wait_for_function(CHARTS, timeout=300_000, polling="raf")
                    res["charts"].setdefault(spec.title, []).append(
                        page.evaluate("(window.__now() - window.__settledAt) / 1000"))
                    if page.locator('[data-testid="stException"]').count():
                        raise SystemExit(f"{spec.title}: the page shows an exception")
                    time.sleep(reading)
            browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", type=Path)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--start", choices=sorted(START_COMMANDS), default="launcher",
                    help="how the app is started: the README's launcher (default) or plain streamlit run")
    ap.add_argument("--returning", action="store_true",
                    help="a browser that has opened the app before (its cache of Streamlit's and Plotly's scripts kept; "
                         "the server still restarted with cold caches), instead of a brand-new browser")
    ap.add_argument("--reading-time", type=float, default=0.0, metavar="SECONDS",
                    help="seconds spent on each page, once drawn, before the next click, as a user reading it "
                         "(the browser is idle then, and loads Plotly's script); default 0: click at once")
    a = ap.parse_args()
    db = a.db
    if db is None:
        OUT.mkdir(parents=True, exist_ok=True)
        db = OUT / "browser_sample.duckdb"
        if not _current(db):  # missing, or written by an earlier celltox: the app would only say so
            from safety.sample_db import build_sample_database
            for old in (db, db.with_suffix(".review.sqlite"), db.with_name(db.name + ".lock")):
                old.unlink(missing_ok=True)
            build_sample_database(db)
    print(f"database {db}; {host_line()}", flush=True)
    rounds = []
    profile = None
    if a.returning:
        profile = Path(tempfile.mkdtemp(prefix="celltox-browser-"))
        prime_profile(db, a.start, profile)
    for i in range(a.rounds):
        rounds.append(one_round(db, a.start, profile, a.reading_time))
        r = rounds[-1]
        print(f"  round {i + 1} ({a.start}, {'returning' if a.returning else 'new'} browser, "
              f"{a.reading_time:g} s on each page): server healthy "
              f"{r['healthy']:.2f} s after the start command, app first page {r['app_first_page']:.2f} s after that "
              f"(drawn {r['first_page_charts']:.2f} s later); load average {load_average()}", flush=True)
    med = lambda xs: statistics.median(xs)  # noqa: E731
    print(f"\napp first page after start: median {med([r['app_first_page'] for r in rounds]):.2f} s (goal < 2 s)")
    print("page | first visit s | second visit s | + charts drawn s (median)")
    firsts, seconds = [], []
    for title in rounds[0]["second"]:
        if title not in rounds[0]["first"]:  # the default page: first visit = the app's first page
            s = med([r["second"][title] for r in rounds])
            seconds.append((s, title))
            print(f"{title} | (the app's first page) | {s:.2f} | {med([x for r in rounds for x in r['charts'][title]]):.2f}")
            continue
        f = med([r["first"][title] for r in rounds])
        s = med([r["second"][title] for r in rounds])
        c = med([x for r in rounds for x in r["charts"][title]])
        firsts.append((f, title))
        seconds.append((s, title))
        print(f"{title} | {f:.2f} | {s:.2f} | {c:.2f}")
    print(f"first visit: median {med([f for f, _ in firsts]):.2f} s, worst {max(firsts)[0]:.2f} s ({max(firsts)[1]}); "
          f"second visit: median {med([s for s, _ in seconds]):.2f} s, worst {max(seconds)[0]:.2f} s "
          f"({max(seconds)[1]}); load average {load_average()}")
    print(host_line())


if __name__ == "__main__":
    main()

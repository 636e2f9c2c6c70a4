"""End to end in a real browser: the app served on a loopback port, every page opened in headless
Chromium (Debian's /usr/bin/chromium through Playwright), no error element, charts rendered.

Screenshots go to tests/artifacts/; with CELLTOX_SCREENSHOTS=docs the overview and a subject profile
are also written to docs/img/ for the README.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from missing_tool import missing_tool

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-dev-shm-usage", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
# url path -> the chart the page draws on first view: a Plotly chart, an SVG chart (the stopping boundary: these
# pages load no chart library), or none
PAGES = {"overview": "svg", "crs_icans": "plotly", "subject_profile": "plotly", "adverse_events": "plotly",
         "labs": None, "dlt_review": "svg", "swimmer": "plotly", "listings": None, "data_quality": None,
         "audit_log": None, "outcomes": "plotly"}
CHART_SELECTOR = {"plotly": '[data-testid="stPlotlyChart"] .main-svg', "svg": '[data-testid="stMarkdownContainer"] svg[role="img"]'}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.read().decode().strip() == "ok":
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError("streamlit did not become healthy")


def require_browser() -> None:
    """Skip when Debian's Chromium or Playwright is missing; in CI that is a failure, not a skip."""
    if not Path(CHROMIUM).exists():
        missing_tool(f"{CHROMIUM} is missing (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api")


@contextmanager
def serve_app(env: dict, log_path: Path):
    """The app served headless on a free loopback port with ``env``; yields its URL, stops it afterwards."""
    port = _free_port()
    # The README's start command: the launcher that imports ahead, then runs `streamlit run dashboard/app.py`.
    cmd = [sys.executable, "-m", "dashboard", "--server.headless=true",
           "--server.address=127.0.0.1", f"--server.port={port}", "--browser.gatherUsageStats=false",
           "--server.fileWatcherType=none"]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(url, proc)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory, sample_database):
    require_browser()
    db = tmp_path_factory.mktemp("e2e") / "celltox_sample.duckdb"
    sample_database(db)
    # Demo mode, as a new user sees the sample data (DEMO banner, no sign-in): the embedded sample
    # database moved to a temp copy, so the checkout's demo audit log is not touched.
    env = {k: val for k, val in os.environ.items() if k not in ("CELLTOX_DB", "CELLTOX_AUTH", "CELLTOX_USERS")}
    env["CELLTOX_SAMPLE_DB"] = str(db)
    with serve_app(env, tmp_path_factory.getbasetemp() / "streamlit.log") as url:
        yield url


@pytest.fixture(scope="module")
def browser_page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 2200})
            yield page
        finally:
            browser.close()


def _settle(page, chart: str | None) -> None:
    page.wait_for_selector('[data-testid="stApp"]', timeout=60_000)
    page.wait_for_selector("h1", timeout=60_000)
    try:
        page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=60_000)
    except Exception:
        pass
    if chart:
        page.wait_for_selector(CHART_SELECTOR[chart], timeout=60_000)
    page.wait_for_timeout(800)


@pytest.mark.parametrize("url_path", list(PAGES))
def test_page_renders_in_browser(server, browser_page, url_path):
    page = browser_page
    # the default page is the root URL; the profile opens a subject with a SAE and a DLT candidate on a
    # CRS episode, as shown in the README
    query = "?usubjid=CD56-CART-01-01-005" if url_path == "subject_profile" else ""
    page.goto(f"{server}/" + ("" if url_path == "overview" else url_path) + query)
    _settle(page, PAGES[url_path])
    errors = page.locator('[data-testid="stException"]').count()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{url_path}.png"), full_page=True)
    assert errors == 0, f"{url_path}: an exception is shown"
    if PAGES[url_path]:
        assert page.locator(CHART_SELECTOR[PAGES[url_path]]).count() >= 1
    else:
        assert page.locator('[data-testid="stDataFrame"], [data-testid="stAlert"], [data-testid="stMetric"]').count() >= 1
    if os.environ.get("CELLTOX_SCREENSHOTS") == "docs" and url_path == "subject_profile":
        (ROOT / "docs" / "img").mkdir(parents=True, exist_ok=True)
        shutil.copy(ARTIFACTS / f"{url_path}.png", ROOT / "docs" / "img" / f"{url_path}.png")


def test_subject_link_opens_that_profile(server, browser_page):
    page = browser_page
    page.goto(f"{server}/subject_profile?usubjid=CD56-CART-01-01-003")
    _settle(page, "plotly")
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.get_by_text("CD56-CART-01-01-003").first.is_visible()
    assert page.get_by_text("DEMO — synthetic sample data").first.is_visible()


MEETING_HEADINGS = ("Stopping and escalation boundaries", "New since the", "DLT candidates new or pending", "Deaths ",
                    "Grade ≥3 CRS, ICANS or infection")


def test_overview_answers_the_meeting_on_one_1440_by_900_screen(server, browser_page):
    """The five questions and their first names are on screen at 1440 x 900 without scrolling; the
    screenshot is the README's (docs/img/overview.png with CELLTOX_SCREENSHOTS=docs)."""
    page = browser_page.context.browser.new_page(viewport={"width": 1440, "height": 900})
    try:
        page.goto(f"{server}/?studyid=CD56-CART-01")
        _settle(page, "svg")
        page.wait_for_selector('[data-testid="stPageLink"]', timeout=60_000)
        page.wait_for_timeout(500)
        for heading in MEETING_HEADINGS:
            box = page.locator("h5", has_text=heading).first.bounding_box()
            assert box is not None and box["y"] + box["height"] <= 900, f"{heading!r} is below the first screen"
        links = page.locator('[data-testid="stPageLink"]')
        assert links.count() >= 4
        for i in range(links.count()):
            box = links.nth(i).bounding_box()
            assert box is not None and box["y"] + box["height"] <= 900, links.nth(i).inner_text()
        assert page.locator('[data-testid="stAlertContentError"], [data-testid="stAlertContentSuccess"]').count() >= 3
        assert page.locator('[data-testid="stAppDeployButton"]').count() == 0  # no Deploy button for users
        assert page.locator('[data-testid="stException"]').count() == 0
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "overview_1440x900.png"))
        if os.environ.get("CELLTOX_SCREENSHOTS") == "docs":
            shutil.copy(ARTIFACTS / "overview_1440x900.png", ROOT / "docs" / "img" / "overview.png")
    finally:
        page.close()


def test_the_overview_loads_no_plotly_until_the_browser_is_idle_then_preloads_it(server, browser_page):
    """The landing page draws no Plotly chart, so its first view does not wait for Plotly's script; once the page
    is drawn the browser loads it, and the next page's chart finds it loaded (dashboard.warmup)."""
    page = browser_page.context.browser.new_page(viewport={"width": 1440, "height": 900})
    seen = []
    page.on("request", lambda r: seen.append(("plotly" if "/PlotlyChart." in r.url else "other", r.url)))
    try:
        page.goto(f"{server}/")
        _settle(page, "svg")
        assert page.locator('[data-testid="stPlotlyChart"]').count() == 0
        page.wait_for_function("() => performance.getEntriesByType('resource').some(e => e.name.includes('/PlotlyChart.'))",
                               timeout=30_000)
        assert sum(kind == "plotly" for kind, _ in seen) == 1
        page.locator('[data-testid="stSidebarNavLink"][href$="/crs_icans"]').click()
        page.wait_for_selector('[data-testid="stPlotlyChart"] .main-svg', timeout=60_000)
        assert sum(kind == "plotly" for kind, _ in seen) == 1  # the chart used the module already loaded
        assert page.locator('[data-testid="stException"]').count() == 0
        # nothing is fetched from outside the app's own server (the tab icon included): patient data stays put
        assert [url for _, url in seen if not url.startswith(server)] == []
    finally:
        page.close()

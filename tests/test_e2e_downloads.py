"""A table's CSV download in a real browser: written when clicked (not on every rerun of the page), whole, and
recorded in the audit log with the SHA-256 of the very file handed out."""
from __future__ import annotations

import hashlib
import json
import os

import pytest

from test_e2e_browser import CHROMIUM, CHROMIUM_ARGS, _settle, require_browser, serve_app

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def served(tmp_path_factory, sample_database):
    require_browser()
    db = tmp_path_factory.mktemp("e2e_dl") / "celltox_sample.duckdb"
    sample_database(db)
    env = {k: val for k, val in os.environ.items() if k not in ("CELLTOX_DB", "CELLTOX_AUTH", "CELLTOX_USERS")}
    env["CELLTOX_SAMPLE_DB"] = str(db)  # demo mode on a temp copy: the checkout's audit log is not touched
    log = tmp_path_factory.getbasetemp() / "streamlit_dl.log"
    with serve_app(env, log) as url:
        yield url, db, log


def test_listing_csv_is_written_on_click_whole_and_audited(served, tmp_path):
    from playwright.sync_api import sync_playwright

    from safety.review.store import ReviewStore, default_review_path

    url, db, log = served
    store = ReviewStore(default_review_path(db))
    before = len(store.audit_entries(action="export"))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1400}, accept_downloads=True)
            page.goto(url + "/listings")
            button = page.get_by_role("button", name="Download CSV")
            button.wait_for(timeout=120_000)
            _settle(page, None)  # clicked as a user does: on the page once it has finished drawing
            assert len(store.audit_entries(action="export")) == before  # drawing the page writes nothing
            try:
                with page.expect_download(timeout=120_000) as dl:
                    button.click()
            except Exception as exc:  # say what the page and the server showed, not only that nothing came
                server = log.read_text()[-3000:] if log.exists() else "(no server log)"
                pytest.fail(f"no download after the click ({type(exc).__name__}); page: "
                            f"{page.inner_text('body')[:1500]!r}; server log: {server}")
            path = tmp_path / dl.value.suggested_filename
            dl.value.save_as(path)
        finally:
            browser.close()
    payload = path.read_bytes()
    text = payload.decode("utf-8")
    assert path.name.endswith(".csv") and text.startswith("# ")  # the packet's header block
    assert "# Data cut: " in text
    exports = store.audit_entries(action="export")
    assert len(exports) == before + 1
    detail = exports[-1]["detail"]
    detail = detail if isinstance(detail, dict) else json.loads(detail)
    assert detail["format"] == "csv" and detail["sha256"] == hashlib.sha256(payload).hexdigest()
    rows = [line for line in text.splitlines() if line and not line.startswith("# ")]
    assert len(rows) - 1 == detail["rows"]  # header line + every row of the listing

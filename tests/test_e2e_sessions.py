"""Sessions in a real browser: a deep link survives the sign-in form, a reload and a new tab keep the
session, sign-out ends it in every tab. The app is served on a loopback port with sign-in required (a copy
of the sample database that is not the embedded one), in headless Chromium (Debian's /usr/bin/chromium)."""
from __future__ import annotations

import os
from urllib.parse import parse_qs, urlsplit

import pytest

from test_e2e_browser import CHROMIUM, CHROMIUM_ARGS, require_browser, serve_app

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery staple"
SUBJECT = "CD56-CART-01-01-005"


@pytest.fixture(scope="module")
def server(tmp_path_factory, sample_database):
    require_browser()
    from safety.access.auth import UserStore

    folder = tmp_path_factory.mktemp("e2e_sessions")
    db = folder / "study.duckdb"
    sample_database(db)
    users = UserStore(folder / "users.yaml", rounds=4)
    users.add("carol", "committee", PASSWORD, display_name="Carol")
    users.add("ivan", "investigator", PASSWORD, sites={"ITNK-B-01": ["01"]}, display_name="Ivan")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELLTOX_")}
    env.update(CELLTOX_DB=str(db), CELLTOX_SAMPLE_DB=str(folder / "not-this.duckdb"))
    with serve_app(env, folder / "streamlit.log") as url:
        yield url


def _settle(page, text: str) -> None:
    page.wait_for_selector('[data-testid="stApp"]', timeout=60_000)
    page.get_by_text(text).first.wait_for(timeout=60_000)
    try:
        page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=30_000)
    except Exception:  # noqa: BLE001 - already gone
        pass
    page.wait_for_timeout(800)


def _profile_shows(page, usubjid: str) -> bool:
    """The profile page's heading and the subject, waited for (the sidebar's page link has the same words)."""
    try:
        page.get_by_role("heading", name="Subject profile").first.wait_for(timeout=60_000)
        page.get_by_text(f"{usubjid}: timeline").first.wait_for(timeout=60_000)
    except Exception:  # noqa: BLE001 - not shown: the assertion says so
        page.screenshot(path=str(ROOT / "tests" / "artifacts" / "session_failure.png"), full_page=True)
        return False
    return True


def test_deep_link_reload_new_tab_and_sign_out(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            ctx = browser.new_context(viewport={"width": 1600, "height": 1600})
            page = ctx.new_page()
            # a subject link opened before signing in: the sign-in form, then that page and subject
            page.goto(f"{server}/subject_profile?usubjid={SUBJECT}")
            _settle(page, "celltox · sign in")
            page.get_by_label("Username").fill("carol")
            page.get_by_label("Password", exact=True).fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            _settle(page, "Subject profile")
            page.wait_for_function("() => location.search.includes('session=')", timeout=30_000)
            assert "/subject_profile" in page.url and _profile_shows(page, SUBJECT), page.url
            assert parse_qs(urlsplit(page.url).query)["usubjid"] == [SUBJECT]

            # a reload keeps the session, the page and the subject
            page.reload()
            _settle(page, "Subject profile")
            assert _profile_shows(page, SUBJECT) and page.get_by_text("celltox · sign in").count() == 0

            # a page switch, then a reload: still signed in
            page.get_by_role("link", name="Adverse events").first.click()
            _settle(page, "Adverse events")
            page.wait_for_function("() => location.search.includes('session=')", timeout=30_000)
            page.reload()
            _settle(page, "Adverse events")
            assert page.get_by_text("celltox · sign in").count() == 0

            # an "open" link of a table opens in a new tab, signed in, at that subject
            link = page.locator('[data-testid="stDataFrame"]').first
            link.wait_for(timeout=60_000)
            tab = ctx.new_page()
            tab.goto(f"{server}/subject_profile?usubjid={SUBJECT}&" +
                     f"session={parse_qs(urlsplit(page.url).query)['session'][0]}")
            _settle(tab, "Subject profile")
            assert _profile_shows(tab, SUBJECT) and tab.get_by_text("celltox · sign in").count() == 0

            # sign-out in one tab ends the session in the other
            assert page.locator('[data-testid="stSidebarNav"]').count() == 1
            page.get_by_role("button", name="Sign out").click()
            _settle(page, "celltox · sign in")
            # and the sidebar no longer lists the pages of the user who left
            assert page.locator('[data-testid="stSidebarNav"]').count() == 0
            assert page.get_by_role("link", name="Adverse events").count() == 0
            tab.reload()
            _settle(tab, "celltox · sign in")
            assert tab.get_by_role("heading", name="Subject profile").count() == 0

            # the next user signing in on the tab signed out of opens the overview, not the page (or subject)
            # the user who left had open
            page.get_by_label("Username").fill("ivan")
            page.get_by_label("Password", exact=True).fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_function("() => location.search.includes('session=')", timeout=60_000)
            _settle(page, "Ivan")
            assert urlsplit(page.url).path in ("", "/"), page.url  # the overview is the root address
            assert "usubjid" not in parse_qs(urlsplit(page.url).query), page.url
        finally:
            browser.close()


def test_a_page_closed_to_the_role_asked_for_by_its_address_says_so(server):
    """An investigator opening /data_quality (a colleague's link) gets the first page he may open, with a line
    saying why, rather than a silent switch."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1600, "height": 1600}).new_page()
            page.goto(server)
            _settle(page, "celltox · sign in")
            page.get_by_label("Username").fill("ivan")
            page.get_by_label("Password", exact=True).fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_function("() => location.search.includes('session=')", timeout=60_000)
            session = parse_qs(urlsplit(page.url).query)["session"][0]
            page.goto(f"{server}/data_quality?session={session}")
            _settle(page, "is not open to your role")
            assert page.get_by_text("The page Data quality is not open to your role (investigator)").count() == 1
            assert page.get_by_role("heading", name="Data quality").count() == 0
            page.goto(f"{server}/labs?session={session}")
            _settle(page, "Laboratory safety")
            assert page.get_by_text("is not open to your role").count() == 0
        finally:
            browser.close()

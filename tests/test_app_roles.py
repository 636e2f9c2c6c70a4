"""Per-role page scoping on the real sample database: every page, run with AppTest as a signed-in user.

The ITNK-B-01 study has sites 01, 02 and 03. An investigator of site 02 opens every page (and every
listing of the export page); every subject id found anywhere in the rendered element tree (tables, chart
specs with their hover text, captions, selectbox options, links) must belong to site 02, and the
subject-level pages must show at least one site-02 subject, so the check cannot pass on empty pages.
The element tree is scanned as serialised protobuf, so a subject id hidden in a Plotly hover label or an
Arrow table is found as surely as one in a caption.

The user is signed in the way dashboard/auth.py keeps a session (a token of its server-side session
registry in session_state, method "password"); the gate re-reads the account from users.yaml on every run, so the
account file below is the real source of the role and sites.
"""
from __future__ import annotations

import datetime as dt
import importlib
import json
import re
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from safety.access import reader as access
from safety.access.auth import UserStore

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "dashboard" / "app.py")
STUDY = "ITNK-B-01"
PASSWORD = "correct horse battery staple"
PATIENT_PAGES = ["overview", "crs_icans", "subject_profile", "adverse_events", "labs", "dlt_review", "swimmer",
                 "listings", "outcomes"]
# pages listing individual subjects: each must show at least one subject of the scope
SUBJECT_LEVEL = ["crs_icans", "subject_profile", "adverse_events", "labs", "dlt_review", "swimmer", "listings"]
OTHER_STUDY = "CD56-CART-01"  # its one site is "01" too: another centre (SITEID is unique within a study only)
ACCOUNTS = {"ivy": ("investigator", {STUDY: ("02",)}), "dmitri": ("data_manager", None), "ada": ("admin", None),
            "cora": ("committee", None), "inga": ("investigator", {STUDY: ("01",)}),
            "ines": ("investigator", {STUDY: ("02",), OTHER_STUDY: ("02",)})}

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("safety.sample_db") is None or not (ROOT / "sample_data" / "car_itnk").exists(),
    reason="needs the sample database builder and study folders")


@pytest.fixture(scope="session")
def roles_db(tmp_path_factory, sample_database) -> Path:
    folder = tmp_path_factory.mktemp("rolesdb")
    path = folder / "study.duckdb"  # not the embedded sample path: sign-in is required, no demo mode
    sample_database(path)
    store = UserStore(folder / "users.yaml", rounds=4)
    for name, (role, sites) in ACCOUNTS.items():
        store.add(name, role, PASSWORD, sites=sites, display_name=name.title())
    return path


@pytest.fixture(scope="session")
def site_of(roles_db) -> dict[str, str]:
    """usubjid -> siteid for every subject of every study and cut in the database."""
    con = access.connect(roles_db)
    try:
        rows = con.execute("SELECT DISTINCT usubjid, siteid FROM subjects").fetchall()
    finally:
        con.close()
    return dict(rows)


@pytest.fixture
def env(roles_db, monkeypatch):
    monkeypatch.setenv("CELLTOX_DB", str(roles_db))
    monkeypatch.setenv("CELLTOX_USERS", str(roles_db.parent / "users.yaml"))
    monkeypatch.delenv("CELLTOX_AUTH", raising=False)
    st.cache_data.clear()
    st.cache_resource.clear()
    yield roles_db
    st.cache_data.clear()
    st.cache_resource.clear()


def _signed_in(username: str, query: dict | None = None, study: str | None = STUDY) -> AppTest:
    """A fresh app session signed in as ``username`` on the ITNK-B-01 study (``study``; None: the one the app
    opens on) (first run done)."""
    at = AppTest.from_file(APP, default_timeout=180)
    user = UserStore(Path(_users_path())).get(username)
    now = dt.datetime.now(dt.timezone.utc)
    at.session_state["celltox_user"] = user
    at.session_state["celltox_signed_in_at"] = now
    at.session_state["celltox_last_activity"] = now
    at.session_state["celltox_auth_method"] = "password"
    # the server-side session behind the browser's token (dashboard.auth.SESSIONS)
    from dashboard.auth import SESSIONS
    at.session_state["celltox_session_token"] = SESSIONS.create(username, "password", now)
    if study is not None:
        at.session_state["sb_study"] = study
    for k, val in (query or {}).items():
        at.query_params[k] = val
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _users_path() -> str:
    import os
    return os.environ["CELLTOX_USERS"]


def _goto(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"views/{page}.py")
    at.run()
    assert not at.exception, (page, [e.value for e in at.exception])
    return at


def _walk(node):
    yield node
    children = getattr(node, "children", None)
    if isinstance(children, dict):
        for child in children.values():
            yield from _walk(child)


def _rendered_text(at: AppTest) -> str:
    """Every element of the page (main and sidebar) as protobuf text: tables, chart specs, options, links."""
    parts = []
    for node in _walk(at._tree):
        proto = getattr(node, "proto", None)
        if proto is not None:
            parts.append(str(proto))
    return "\n".join(parts)


def _subjects_in(text: str, site_of: dict[str, str]) -> set[str]:
    # Ids are fixed-width (<study>-<site>-<nnn>), so a plain pattern also finds them inside Arrow buffers
    # where strings are stored back to back.
    pattern = re.compile("|".join(sorted(map(re.escape, site_of), key=len, reverse=True)))
    return set(pattern.findall(text))


def _page_names(at: AppTest) -> set[str]:
    """Page scripts offered by st.navigation in this session (file stems, e.g. 'data_quality')."""
    return {Path(p["script_path"]).stem for p in (at._registered_pages or {}).values()}


def _labels(at: AppTest, kind: str) -> list[str]:
    return [getattr(w, "label", "") or "" for w in at.get(kind)]


def _check_page(at: AppTest, page: str, site_of: dict[str, str], allowed: set[str]) -> set[str]:
    seen = _subjects_in(_rendered_text(at), site_of)
    leaked = {u: site_of[u] for u in seen if site_of[u] not in allowed}
    assert not leaked, f"{page} shows subjects outside sites {sorted(allowed)}: {sorted(leaked.items())[:5]}"
    return seen


def test_investigator_sees_only_own_site_on_every_page(env, site_of):
    at = _signed_in("ivy")
    seen_by_page = {"overview": _check_page(at, "overview", site_of, {"02"})}
    for page in PATIENT_PAGES[1:]:
        _goto(at, page)
        seen_by_page[page] = _check_page(at, page, site_of, {"02"})
    for page in SUBJECT_LEVEL:
        assert seen_by_page[page], f"{page} shows no site-02 subject: the scope check would pass vacuously"
    # Every listing of the export page, not only the first one.
    _goto(at, "listings")
    box = next(s for s in at.selectbox if s.label == "Listing")
    names = list(box.options)
    assert len(names) >= 5
    listed = set()
    for i in range(len(names)):
        box = next(s for s in at.selectbox if s.label == "Listing")
        box.select_index(i)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        listed |= _check_page(at, f"listings[{names[i]}]", site_of, {"02"})
    assert listed


def test_investigator_is_read_only_and_sees_no_study_wide_pages(env, site_of):
    at = _signed_in("ivy")
    paths = _page_names(at)
    assert paths == set(PATIENT_PAGES), paths
    for page in PATIENT_PAGES:
        _goto(at, page)
        assert not at.get("download_button"), f"{page} offers a download to an investigator"
        buttons = _labels(at, "button")
        for forbidden in ("Record decision", "Mark this data cut as reviewed", "Build committee packet"):
            assert not any(forbidden in b for b in buttons), f"{page} offers '{forbidden}' to an investigator"
        text = _rendered_text(at)
        assert "Stopping-rule status" not in text or "only to roles that see every site" in text


def test_investigator_cannot_open_another_sites_subject_by_link(env, site_of, roles_db):
    other = sorted(u for u, s in site_of.items() if s == "01" and u.startswith(STUDY))[0]
    at = _signed_in("ivy", query={"usubjid": other})
    from safety.review.store import ReviewStore, default_review_path
    before = len(ReviewStore(default_review_path(roles_db)).audit_entries(action="view_subject"))
    _goto(at, "subject_profile")
    from dashboard.state import plain_text
    assert any(plain_text(other) in w.value and "not in" in w.value for w in at.warning)
    # nothing but the message: no subject picker, no other subject's profile, no audited view
    assert not [s for s in at.selectbox if s.label == "Subject"] and not at.get("plotly_chart")
    assert not _subjects_in(_rendered_text(at).replace("\\", ""), site_of) - {other}
    views = ReviewStore(default_review_path(roles_db)).audit_entries(action="view_subject")
    assert len(views) == before
    # the attempt itself is audited, once, naming the subject asked for
    refused = ReviewStore(default_review_path(roles_db)).audit_entries(action="view_subject_refused")
    assert refused and refused[-1]["username"] == "ivy"
    assert json.loads(refused[-1]["detail"])["usubjid_requested"] == other
    at.run()
    again = ReviewStore(default_review_path(roles_db)).audit_entries(action="view_subject_refused")
    assert len(again) == len(refused)


def test_a_profile_link_into_a_study_where_none_of_the_sites_has_subjects_is_refused_and_audited(env, site_of,
                                                                                                   roles_db):
    """CD56-CART-01 has no site-02 subject: the link was answered "No subjects in this selection." and the
    request went unaudited, where the same link within ITNK-B-01 is refused and audited."""
    other = sorted(u for u, s in site_of.items() if u.startswith("CD56-CART-01"))[0]
    at = _signed_in("ines", query={"usubjid": other}, study="CD56-CART-01")
    _goto(at, "subject_profile")
    from dashboard.state import plain_text
    from safety.review.store import ReviewStore, default_review_path
    assert any(plain_text(other) in w.value and "not in" in w.value for w in at.warning)
    refused = ReviewStore(default_review_path(roles_db)).audit_entries(action="view_subject_refused")
    assert refused and refused[-1]["username"] == "ines"
    assert json.loads(refused[-1]["detail"])["usubjid_requested"] == other


def _study_options(at: AppTest) -> list[str]:
    return list(next(s for s in at.sidebar.selectbox if s.key == "sb_study").options)


def test_an_investigator_sees_nothing_of_another_study_whose_site_has_the_same_id(env, site_of):
    """inga is the investigator of ITNK-B-01's site 01. CD56-CART-01's one site is "01" too, another centre: the
    sidebar offered her every study, and chosen, CD56-CART-01 showed her all its 23 subjects ("sites 01"). Now
    the sidebar offers her study alone, and CD56-CART-01 asked for by the address or the session state opens
    hers."""
    mine = {u for u, s in site_of.items() if s == "01" and u.startswith(STUDY)}
    theirs = {u for u in site_of if u.startswith(OTHER_STUDY)}
    assert mine and theirs and {site_of[u] for u in theirs} == {"01"}
    at = _signed_in("inga", study=None)
    assert [o.split(" ")[0] for o in _study_options(at)] == [STUDY]
    assert any("ITNK-B-01 sites 01" in c.value for c in at.sidebar.caption)
    seen = _check_page(_goto(at, "subject_profile"), "subject_profile", site_of, {"01"})
    assert seen and seen <= mine, seen - mine
    for how in ({"study": OTHER_STUDY}, {"study": None, "query": {"studyid": OTHER_STUDY}}):
        at = _signed_in("inga", **how)
        assert at.session_state["sb_study"] == STUDY and at.query_params["studyid"] == STUDY, how
        assert [o.split(" ")[0] for o in _study_options(at)] == [STUDY]
        for page in ("overview", "subject_profile", "dlt_review"):
            shown = _subjects_in(_rendered_text(_goto(at, page)), site_of)
            assert shown and shown <= mine, (how, page, sorted(shown - mine)[:3])
    # committee members choose among every study
    assert {o.split(" ")[0] for o in _study_options(_signed_in("cora"))} == {STUDY, OTHER_STUDY}


def test_data_manager_sees_every_site_and_data_quality(env, site_of):
    at = _signed_in("dmitri")
    paths = _page_names(at)
    assert paths == set(PATIENT_PAGES) | {"data_quality"}, paths
    seen = set()
    for page in ("crs_icans", "swimmer", "dlt_review"):
        _goto(at, page)
        seen |= _subjects_in(_rendered_text(at), site_of)
        assert not any("Record decision" in b for b in _labels(at, "button"))
    assert {site_of[u] for u in seen if u.startswith(STUDY)} == {"01", "02", "03"}
    _goto(at, "listings")
    assert at.get("download_button"), "a data manager may export"


def test_admin_sees_no_patient_data(env, site_of):
    at = _signed_in("ada")
    # only the audit log (which names viewed subjects by design: docs/access.md), no patient page
    assert _page_names(at) == {"audit_log"}
    assert at.title and at.title[0].value == "Audit log"
    shown = "\n".join(str(e.value) for e in list(at.sidebar.caption) + list(at.sidebar.markdown)
                      + list(at.metric))
    assert not _subjects_in(shown, site_of)
    assert "no patient data" in shown and "all sites" not in shown  # the sidebar says what the admin sees
    # even a page script run for an admin reads an empty scope (sites = ())
    from safety.access.auth import User, scope_for
    scope = scope_for(User("ada", "admin"), STUDY, dt.date(2026, 9, 30))
    assert scope.sites == ()


def test_scope_check_fails_when_one_query_forgets_the_scope(env, site_of, monkeypatch):
    """The check above bites: one page query run without the site scope is reported as a leak."""
    from dashboard import reading  # where the pages' cached queries run
    original = reading._cached_query

    def unscoped_term_query(db_path, stamp, studyid, data_cut, sites, previous_cut, sql, params):
        if "= $term" in sql:  # the adverse-events page's subject list for the chosen term
            sites = None
        return original(db_path, stamp, studyid, data_cut, sites, previous_cut, sql, params)

    monkeypatch.setattr(reading, "_cached_query", unscoped_term_query)
    at = _goto(_signed_in("ivy"), "adverse_events")
    with pytest.raises(AssertionError, match="outside sites"):
        for i in range(len(next(s for s in at.selectbox if "preferred term" in s.label).options)):
            next(s for s in at.selectbox if "preferred term" in s.label).select_index(i)
            at.run()
            _check_page(at, "adverse_events", site_of, {"02"})


def test_committee_packet_builds_a_zip_download_and_is_audited(env, roles_db):
    """One build (the PDF's figures start a headless browser through kaleido, several seconds)."""
    import io
    import json
    import zipfile
    from safety.review.store import ReviewStore, default_review_path

    at = _goto(_signed_in("dmitri"), "listings")
    assert not [d for d in at.get("download_button") if "committee_packet" in d.label]
    next(b for b in at.button if b.label == "Build committee packet").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    (download,) = [d for d in at.get("download_button") if "committee_packet.zip" in d.label]
    zip_name = download.label.removeprefix("Download ")
    assert zip_name.startswith(f"{STUDY}_2026-09-30") and zip_name.endswith("_committee_packet.zip")
    _, (name, payload, files) = at.session_state["celltox_packet"]
    assert name == zip_name
    names = set(zipfile.ZipFile(io.BytesIO(payload)).namelist())
    assert names == set(files)
    stem = f"{STUDY}_2026-09-30"
    assert {f"{stem}_listings_tables.xlsx", f"{stem}_committee_packet.pdf", f"{stem}_ae.csv", f"{stem}_ae.rtf",
            f"{stem}_sae.csv", f"{stem}_deaths.rtf"} <= names
    assert zipfile.ZipFile(io.BytesIO(payload)).read(f"{stem}_committee_packet.pdf")[:5] == b"%PDF-"
    exports = ReviewStore(default_review_path(roles_db)).audit_entries(STUDY, action="export")
    assert exports and exports[-1]["username"] == "dmitri"
    detail = json.loads(exports[-1]["detail"])
    assert set(detail["files"]) == names and detail["data_cut"] == "2026-09-30"


def test_subject_links_in_tables_carry_the_session(env, site_of):
    """An "open" link opens a new tab: it carries the session token, so the tab is signed in (and nothing else
    of the session: the token is checked server-side, for this browser, within the timeouts)."""
    at = _signed_in("cora")
    _goto(at, "adverse_events")
    token = at.session_state["celltox_session_token"]
    links = [link for df in (d.value for d in at.dataframe) if "profile" in df.columns for link in df["profile"]]
    assert links and all(f"session={token}" in link and "usubjid=" in link for link in links)


def test_subject_id_from_the_url_is_shown_as_text(env, site_of, roles_db):
    """`?usubjid=` is echoed as plain text: a Markdown link or image in it must not render."""
    from dashboard.state import plain_text
    from safety.review.store import ReviewStore, default_review_path
    evil = "[click](http://evil.example) ![x](http://evil.example/x.png) <img src=x>"
    before = len(ReviewStore(default_review_path(roles_db)).audit_entries(action="view_subject"))
    at = _signed_in("cora", query={"usubjid": evil})
    _goto(at, "subject_profile")
    (warning,) = [w.value for w in at.warning if "is not in this study" in w.value]
    assert plain_text(evil) in warning
    shown = warning[len("Subject "):warning.index(" is not in this study")]
    assert not re.search(r"(?<!\\)[\[\]()<>!:]", shown), shown  # every Markdown/HTML sign escaped
    assert not [s for s in at.selectbox if s.label == "Subject"]
    assert len(ReviewStore(default_review_path(roles_db)).audit_entries(action="view_subject")) == before


def test_audit_log_page_checks_a_recorded_head(env, roles_db):
    from safety.review.store import ReviewStore, default_review_path
    at = _signed_in("ada")
    _goto(at, "audit_log")
    head = ReviewStore(default_review_path(roles_db)).head()["entry_hash"]
    at.text_input(key="audit_expect_head").input(head)
    at.run()
    assert any("audit chain intact" in s.value and "recorded head(s) found" in s.value for s in at.success)
    at.text_input(key="audit_expect_head").input("0" * 64)
    at.run()
    assert any("is not in the audit log" in e.value for e in at.error)
    # its CSV is written on the click and audited as every other download (it was handed out unaudited, formulas
    # in failed sign-in names unquoted)
    (download,) = [d.proto for d in at.get("download_button") if d.label == "Download audit log (CSV)"]
    assert download.deferred_file_id and download.ignore_rerun
    assert any(c.value.startswith("Entries about study ") for c in at.caption)


def test_an_investigator_lands_on_a_study_of_their_sites_and_is_told_when_theirs_has_none(env, roles_db):
    """The sample's CD56 study has site 01 only: an investigator of site 02 of both studies opens on ITNK-B-01, and
    chosen, CD56 says why every number is zero instead of showing zeros without a word."""
    con = access.connect(roles_db)
    try:
        first, = con.execute("SELECT min(studyid) FROM studies").fetchone()
        sites = {r[0] for r in con.execute("SELECT DISTINCT siteid FROM subjects WHERE studyid = $s", {"s": first}).fetchall()}
    finally:
        con.close()
    assert first != STUDY and "02" not in sites  # the first study in the sidebar has no site-02 subject
    at = _signed_in("ines", study=None)
    assert at.session_state["sb_study"] == STUDY
    assert not [w for w in at.warning if "None of your sites" in w.value]
    at = _signed_in("ines", study=first)
    (note,) = [w.value for w in at.warning if "None of your sites" in w.value]
    from dashboard.state import plain_text  # the study id as delivered, escaped for Markdown
    assert note.startswith(f"None of your sites (02) has subjects in {plain_text(first)} at data cut ")
    assert not [w for w in _signed_in("dmitri", study=first).warning if "None of your sites" in w.value]


def test_an_investigators_decision_history_shows_no_store_wide_ids(env, roles_db, site_of, tmp_path, monkeypatch):
    """The review store numbers every site's decisions: ids 2 and 4 shown to site 02 would count decisions on
    other sites' subjects. The investigator sees their subjects' decisions without ids; the committee sees ids."""
    import shutil
    from safety.review.store import ReviewStore, default_review_path
    copy = tmp_path / "study.duckdb"
    shutil.copy(roles_db, copy)
    shutil.copy(roles_db.parent / "users.yaml", tmp_path / "users.yaml")
    if default_review_path(roles_db).exists():
        shutil.copy(default_review_path(roles_db), default_review_path(copy))
    monkeypatch.setenv("CELLTOX_DB", str(copy))
    monkeypatch.setenv("CELLTOX_USERS", str(tmp_path / "users.yaml"))
    con = access.connect(copy)
    try:
        cut = con.execute("SELECT max(data_cut) FROM studies WHERE studyid = $s", {"s": STUDY}).fetchone()[0]
    finally:
        con.close()
    mine = sorted(u for u, s in site_of.items() if s == "02" and u.startswith(STUDY))[0]
    other = sorted(u for u, s in site_of.items() if s == "01" and u.startswith(STUDY))[0]
    store = ReviewStore(default_review_path(copy))
    for u in (other, mine, other):
        store.add_adjudication(studyid=STUDY, event_key=f"{u}/AE/1", usubjid=u, rule_id="R1", decision="rejected",
                               rationale="not treatment-related", reviewer="cora", data_cut=str(cut),
                               event_fingerprint=None)

    def history(username):
        at = _goto(_signed_in(username), "dlt_review")
        return next(d.value for d in at.dataframe if {"usubjid", "decision", "rationale"} <= set(d.value.columns)
                    and "event_key" in d.value.columns and "reviewer" in d.value.columns)

    ivy = history("ivy")
    assert ivy["usubjid"].tolist() == [mine] and "id" not in ivy.columns
    cora = history("cora")
    assert {mine, other} <= set(cora["usubjid"]) and "id" in cora.columns

"""AppTest for every dashboard page: no exception, key numbers equal SQL on the database, filters work.

Runs on the real sample database when safety.sample_db and the sample study folders exist, else on the
hand-made mini database of tests/test_app_minidb.py. Sign-in is turned off (CELLTOX_AUTH=off), so the
user is a committee member who sees every page.
"""
from __future__ import annotations

import importlib
from pathlib import Path

import duckdb
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from safety import access
from test_app_minidb import _register_contract_tables, build_mini_database

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "dashboard" / "app.py")
PAGES = ["overview", "crs_icans", "subject_profile", "adverse_events", "labs", "dlt_review", "swimmer",
         "listings", "data_quality", "audit_log"]


def _sample_available() -> bool:
    try:
        importlib.import_module("safety.sample_db")
    except ModuleNotFoundError:
        return False
    return (ROOT / "sample_data" / "car_t_cd56").exists()


@pytest.fixture(scope="session")
def app_db(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("appdb")
    if _sample_available():
        sample_db = importlib.import_module("safety.sample_db")
        path = folder / "celltox_sample.duckdb"
        sample_db.build_sample_database(path)
        return path
    _register_contract_tables()
    return build_mini_database(folder / "mini.duckdb")


@pytest.fixture
def app_env(app_db, monkeypatch):
    monkeypatch.setenv("CELLTOX_DB", str(app_db))
    monkeypatch.setenv("CELLTOX_AUTH", "off")
    st.cache_data.clear()
    st.cache_resource.clear()
    yield app_db
    st.cache_data.clear()
    st.cache_resource.clear()


def _latest(db: Path) -> tuple[str, object]:
    con = access.connect(db)
    try:
        studyid = con.execute("SELECT min(studyid) FROM studies").fetchone()[0]
        cut = con.execute("SELECT max(data_cut) FROM studies WHERE studyid = $s", {"s": studyid}).fetchone()[0]
    finally:
        con.close()
    return studyid, cut


def _sql(db: Path, query: str, **params):
    con = access.connect(db)
    try:
        return con.execute(query, params).fetchone()[0]
    finally:
        con.close()


def _open(page: str = "overview", query: dict | None = None, session: dict | None = None) -> AppTest:
    # Sidebar widgets are set through session_state before the first run: AppTest drops the main
    # script's sidebar elements from its tree on reruns of file-based st.navigation pages.
    at = AppTest.from_file(APP, default_timeout=120)
    for k, val in (session or {}).items():
        at.session_state[k] = val
    for k, val in (query or {}).items():
        at.query_params[k] = val
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    if page != "overview":
        at.switch_page(f"views/{page}.py")
        at.run()
    return at


def _widget(at: AppTest, kind: str, key: str):
    """A widget by key anywhere on the page (sidebar included)."""
    found = [w for w in at.get(kind) if w.key == key]
    assert found, f"no {kind} with key {key}"
    return found[0]


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_without_exception(app_env, page):
    at = _open(page)
    assert not at.exception, [e.value for e in at.exception]
    assert at.title, f"{page} shows no title"


def test_overview_counts_equal_database(app_env):
    db = app_env
    studyid, cut = _latest(db)
    at = _open()
    m = _metrics(at)
    base = "FROM subjects WHERE studyid = $s AND data_cut = $c"
    assert m["Screened"] == str(_sql(db, f"SELECT count(*) {base}", s=studyid, c=cut))
    assert m["Infused"] == str(_sql(db, f"SELECT count(*) {base} AND infused", s=studyid, c=cut))
    assert m["Died"] == str(_sql(db, f"SELECT count(*) {base} AND status = 'died'", s=studyid, c=cut))
    assert m["Completed month 12"] == str(_sql(db, f"SELECT count(*) {base} AND status = 'completed'", s=studyid, c=cut))
    assert m["SAEs"] == str(_sql(db, "SELECT count(*) FROM adverse_events WHERE studyid = $s AND data_cut = $c "
                                     "AND aeser = 'Y'", s=studyid, c=cut))
    crs3 = _sql(db, "SELECT count(DISTINCT usubjid) FROM toxicity_episodes WHERE studyid = $s AND data_cut = $c "
                    "AND syndrome = 'CRS' AND max_grade >= 3", s=studyid, c=cut)
    assert m["CRS grade ≥3"] == str(crs3)
    ev = _sql(db, "SELECT count(*) FROM dlt_evaluability WHERE studyid = $s AND data_cut = $c AND evaluable",
              s=studyid, c=cut)
    assert m["DLT-evaluable"] == str(ev)


def test_cohort_filter_narrows_overview_counts(app_env):
    db = app_env
    studyid, cut = _latest(db)
    con = access.connect(db)
    cohort = con.execute("SELECT cohort FROM subjects WHERE studyid = $s AND data_cut = $c AND cohort IS NOT NULL "
                         "GROUP BY cohort ORDER BY count(*) LIMIT 1", {"s": studyid, "c": cut}).fetchone()[0]
    con.close()
    total = int(_metrics(_open())["Screened"])
    at = _open(session={f"sb_cohort_{studyid}": [cohort]})
    m = _metrics(at)
    expected = _sql(db, "SELECT count(*) FROM subjects WHERE studyid = $s AND data_cut = $c AND cohort = $k",
                    s=studyid, c=cut, k=cohort)
    assert m["Screened"] == str(expected)
    assert int(m["Screened"]) < total
    sae = _sql(db, "SELECT count(*) FROM adverse_events a JOIN subjects s USING (studyid, data_cut, usubjid) "
                   "WHERE a.studyid = $s AND a.data_cut = $c AND s.cohort = $k AND a.aeser = 'Y'", s=studyid, c=cut, k=cohort)
    assert m["SAEs"] == str(sae)


def test_crs_icans_numbers_equal_database(app_env):
    db = app_env
    studyid, cut = _latest(db)
    at = _open("crs_icans")
    m = _metrics(at)
    infused = _sql(db, "SELECT count(*) FROM subjects WHERE studyid = $s AND data_cut = $c AND infused", s=studyid, c=cut)
    for syndrome in ("CRS", "ICANS"):
        n = _sql(db, "SELECT count(DISTINCT usubjid) FROM toxicity_episodes WHERE studyid = $s AND data_cut = $c "
                     "AND syndrome = $y", s=studyid, c=cut, y=syndrome)
        assert m[f"{syndrome} any grade"] == f"{n} / {infused}"


def test_adverse_events_serious_toggle(app_env):
    db = app_env
    studyid, cut = _latest(db)
    at = _open("adverse_events")
    all_subjects = int(_metrics(at)["Subjects with an AE"])
    at.get("toggle")[0].set_value(True)
    at.run()
    assert not at.exception
    expected = _sql(db, "SELECT count(DISTINCT usubjid) FROM adverse_events WHERE studyid = $s AND data_cut = $c "
                        "AND aeser = 'Y' AND treatment_emergent IS NOT FALSE", s=studyid, c=cut)
    assert _metrics(at)["Subjects with an AE"] == str(expected)
    assert expected <= all_subjects


def test_subject_profile_from_query_param_and_audited(app_env):
    db = app_env
    studyid, cut = _latest(db)
    usubjid = _sql(db, "SELECT max(usubjid) FROM subjects WHERE studyid = $s AND data_cut = $c AND infused",
                   s=studyid, c=cut)
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("views/subject_profile.py")
    at.query_params["usubjid"] = usubjid
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(s.label == "Subject" and s.value == usubjid for s in at.selectbox)
    from safety.review_store import ReviewStore, default_review_path
    entries = ReviewStore(default_review_path(db)).audit_entries(studyid)
    assert any(e["action"] == "view_subject" and usubjid in e["detail"] for e in entries)


def test_dlt_review_counts_and_adjudication_writes_store(app_env):
    db = app_env
    studyid, cut = _latest(db)
    at = _open("dlt_review")
    m = _metrics(at)
    n_cand = _sql(db, "SELECT count(*) FROM dlt_candidates WHERE studyid = $s AND data_cut = $c", s=studyid, c=cut)
    assert int(m["Candidates"]) >= n_cand  # the review table also lists committee-added events
    if n_cand == 0:
        pytest.skip("no DLT candidates in this database")
    pending_before = int(m["Pending adjudication"])
    at.get("text_area")[0].input("Grade 3 CRS beyond 72 h despite tocilizumab; meets protocol R3.")
    next(b for b in at.get("button") if "Record decision" in b.label).click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    from safety.review_store import ReviewStore, default_review_path
    rows = ReviewStore(default_review_path(db)).adjudication_history(studyid)
    assert rows and rows[-1]["decision"] == "confirmed"
    at2 = _open("dlt_review")
    assert int(_metrics(at2)["Pending adjudication"]) == pending_before - 1

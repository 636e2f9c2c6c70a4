"""AppTest for every dashboard page: no exception, key numbers equal SQL on the database, filters work.

Runs on the real sample database when safety.sample_db and the sample study folders exist, else on the
hand-made mini database of tests/test_app_minidb.py. Sign-in is turned off (CELLTOX_AUTH=off), so the
user is a committee member who sees every page.
"""
from __future__ import annotations

import json
import importlib
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from safety.access import reader as access
from safety.core.vocabulary import ae_pt_sql, ae_soc_sql
from test_app_minidb import build_mini_database
from hover import hover_text

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
def app_db(tmp_path_factory, sample_database) -> Path:
    folder = tmp_path_factory.mktemp("appdb")
    if _sample_available():
        path = folder / "celltox_sample.duckdb"
        sample_database(path)
        return path
    return build_mini_database(folder / "mini.duckdb")


def ingest_itnk_with(folder: Path, appended: dict[str, str]) -> Path:
    """The CAR-ITNK sample study copied into ``folder`` with rows appended to its files ({file name: rows}),
    loaded into a new database file there."""
    import shutil
    from safety.ingest import ingest_study
    study = folder / "car_itnk"
    shutil.copytree(ROOT / "sample_data" / "car_itnk", study)
    for name, rows in appended.items():
        with open(study / name, "a") as f:
            f.write(rows)
    db = folder / "itnk.duckdb"
    ingest_study(study, db)
    return db


def serve(db: Path, monkeypatch):
    """The app reads ``db``, signed-in checks off, with empty caches before and after (a fixture's body)."""
    monkeypatch.setenv("CELLTOX_DB", str(db))
    monkeypatch.setenv("CELLTOX_AUTH", "off")
    st.cache_data.clear()
    st.cache_resource.clear()
    yield db
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def app_env(app_db, monkeypatch):
    yield from serve(app_db, monkeypatch)


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
    assert m["SAEs: events (subjects)"] == "{} ({})".format(*_counted_saes(db, studyid, cut))
    crs3 = _sql(db, "SELECT count(DISTINCT usubjid) FROM toxicity_episodes WHERE studyid = $s AND data_cut = $c "
                    "AND syndrome = 'CRS' AND max_grade >= 3", s=studyid, c=cut)
    infused = _sql(db, f"SELECT count(*) {base} AND infused", s=studyid, c=cut)
    assert m["CRS grade ≥3"] == f"{crs3} / {infused}"  # of the infused, as the CRS & ICANS page
    ev = _sql(db, "SELECT count(*) FROM dlt_evaluability WHERE studyid = $s AND data_cut = $c AND evaluable",
              s=studyid, c=cut)
    assert m["DLT-evaluable"] == str(ev)


def _counted_saes(db: Path, studyid: str, cut, cohort: str | None = None) -> tuple[int, int]:
    """(events, subjects): treatment-emergent SAEs of infused subjects (of ``cohort`` when given), written out."""
    return duckdb.connect(str(db), read_only=True).execute(
        """SELECT count(*), count(DISTINCT usubjid) FROM adverse_events a JOIN subjects s USING (studyid, data_cut, usubjid)
           WHERE a.studyid = $s AND a.data_cut = $c AND a.aeser = 'Y' AND s.infused AND a.treatment_emergent IS NOT FALSE
             AND ($k IS NULL OR s.cohort = $k)""", {"s": studyid, "c": cut, "k": cohort}).fetchone()


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
    # the boundaries are the rules' own, over every subject of a cohort: said when a filter is set
    assert any("filters do not apply here" in c.value for c in at.caption)
    assert not any("filters do not apply here" in c.value for c in _open().caption)
    assert m["SAEs: events (subjects)"] == "{} ({})".format(*_counted_saes(db, studyid, cut, cohort))


def test_packet_disposition_table_says_what_the_overview_tiles_say(app_env):
    """The committee packet's disposition table and the overview's Subjects tiles count the same subjects: the
    Overall column as the tiles, and a cohort's column as the tiles with that cohort chosen."""
    from safety.export.common import make_reader
    from safety.export.tables import build_table

    db = app_env
    studyid, cut = _latest(db)
    con = access.connect(db)
    try:
        table = build_table(make_reader(con, studyid, cut), "disposition")
    finally:
        con.close()
    rows = {r["Status"]: r for _, r in table.iterrows()}
    overall = next(col for col in table.columns if col.startswith("Overall"))
    tiles = _metrics(_open())
    assert list(rows) == ["Screened", "Infused", "In follow-up", "Completed month 12", "Discontinued", "Died"]
    assert {k: rows[k][overall].split(" ")[0] for k in rows} == {k: tiles[k] for k in rows}
    assert overall == f"Overall (N={tiles['Screened']}) n (%)"
    cohort_col = next(col for col in table.columns if col.startswith("Cohort "))
    cohort = cohort_col[len("Cohort "):cohort_col.index(" (N=")]
    filtered = _metrics(_open(session={f"sb_cohort_{studyid}": [cohort]}))
    assert {k: rows[k][cohort_col].split(" ")[0] for k in rows} == {k: filtered[k] for k in rows}


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


def test_crs_icans_management_counts_subjects_as_the_packet_does(app_env):
    """The page counted episodes under the packet's subject counts' names (tocilizumab 11 beside the packet's
    tocilizumab n (%) of subjects): it now counts subjects, and the numbers are the packet's."""
    from safety.export.common import make_reader
    from safety.export.tables import table_crs_icans_summary
    db = app_env
    studyid, cut = _latest(db)
    at = _open("crs_icans")
    [mgmt] = [d.value for d in at.dataframe if "subjects_tocilizumab" in d.value.columns]
    page = {r.syndrome: r for r in mgmt.itertuples()}
    con = access.connect(db)
    try:
        packet = table_crs_icans_summary(make_reader(con, studyid, cut))
    finally:
        con.close()
    overall = next(c for c in packet.columns if c.startswith("Overall"))
    cell = dict(zip(packet.iloc[:, 0], packet[overall]))
    for syn in ("CRS", "ICANS"):
        for what in ("tocilizumab", "corticosteroids", "anakinra"):
            column = "subjects_" + ("corticosteroid" if what == "corticosteroids" else what)
            n = int(getattr(page[syn], column)) if syn in page else 0
            assert cell[f"{syn}: {what}"].split(" ")[0] == str(n), (syn, what)
    assert int(page["CRS"].subjects_tocilizumab) > 0


@pytest.mark.parametrize("syndrome", ["CRS", "ICANS"])
def test_crs_icans_incidence_table_is_the_packets_with_every_grade(app_env, syndrome):
    """The page's incidence table left out a grade no subject had (ICANS maximum grade 1 was simply absent) while
    the packet printed it as 0: both now read safety.derive.toxicity.summary.incidence_table, every grade 1-5,
    any grade and grade >= 3 shown for every cohort, 0 where no subject had it."""
    from safety.derive.toxicity.summary import INCIDENCE_CATEGORIES
    from safety.export.common import make_reader
    from safety.export.tables import table_crs_icans_summary
    db = app_env
    studyid, cut = _latest(db)
    at = _open("crs_icans", session={"crs_incidence_tab": syndrome})
    [page] = [d.value for d in at.dataframe if "category" in d.value.columns]
    categories = [c for c, _ in INCIDENCE_CATEGORIES]
    assert categories == ["any grade"] + [f"maximum grade {g}" for g in range(1, 6)] + ["grade >= 3"]
    for group, rows in page.groupby("group", sort=False):
        assert list(rows["category"]) == categories, group
    assert (page["subjects"] == 0).any()  # the sample has grades nobody reached: they are rows, not gaps
    con = access.connect(db)
    try:
        packet = table_crs_icans_summary(make_reader(con, studyid, cut)).set_index("Category")
    finally:
        con.close()
    columns = {("All infused" if c.startswith("Overall") else c[len("Cohort "):c.index(" (N=")]): c
               for c in packet.columns}
    assert set(columns) == set(page["group"])
    for r in page.to_dict("records"):
        column, category = columns[r["group"]], r["category"]
        n = r["subjects"]
        assert packet.at[f"{syndrome}: {category}", column] == (str(n) if n == 0 else f"{n} ({r['%']:.1f})"), r
        assert column.endswith(f"(N={r['total']}) n (%)")
        if category in ("any grade", "grade >= 3"):
            assert packet.at[f"{syndrome}: {category}, 95% CI (%)", column] == r["95% CI (%)"], r


def test_crs_icans_incidence_table_follows_the_sidebar_filters(app_env):
    db = app_env
    studyid, _ = _latest(db)
    cohort = _sql(db, "SELECT min(cohort) FROM subjects WHERE studyid = $s AND infused", s=studyid)
    at = _open("crs_icans", session={"crs_incidence_tab": "CRS", f"sb_cohort_{studyid}": [cohort]})
    [page] = [d.value for d in at.dataframe if "category" in d.value.columns]
    assert set(page["group"]) == {cohort, "All infused"}
    mine, every = (page[page["group"] == g].set_index("category") for g in (cohort, "All infused"))
    assert mine["subjects"].to_dict() == every["subjects"].to_dict() and len(mine) == 7
    assert mine.at["any grade", "total"] == every.at["any grade", "total"] > 0


def test_data_quality_names_eligibility_values_screening_values(app_env):
    at = _open("data_quality")
    text = " ".join(m.value for m in at.markdown) + " ".join(s.value for s in at.success)
    assert "baseline value" not in text and "screening value" in text


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


def test_adverse_events_page_says_where_reported_crs_icans_grades_differ_from_derived(app_env):
    # the page counts reported grades; the CRS & ICANS page the derived ones: the difference is named, with a link
    db = app_env
    studyid, cut = _latest(db)
    at = _open("adverse_events")
    # events: an episode (else a reported AE without one) with two kinds of discrepancy is one event
    events = ("SELECT count(DISTINCT coalesce(episode_key, ae_event_key)) FROM grade_discrepancies "
              "WHERE studyid = $s AND data_cut = $c AND syndrome = $syn")
    crs = _sql(db, events, s=studyid, c=cut, syn="CRS")
    icans = _sql(db, events, s=studyid, c=cut, syn="ICANS")
    warnings = [w.value for w in at.warning if "count the grade the site reported" in w.value]
    assert crs + icans > 0  # the sample studies have both kinds (a site's grade lower and higher than derived)
    counts = " and ".join(f"{n} {syn} event{'s' if n != 1 else ''}" for syn, n in (("CRS", crs), ("ICANS", icans)) if n)
    assert len(warnings) == 1 and f"For these subjects, {counts} differ" in warnings[0]
    assert any("derived vs reported" in str(link.proto.label) for link in at.get("page_link"))


def _open_profile(usubjid: str, view: str | None = None) -> AppTest:
    """The subject profile opened through its shareable link (?usubjid=...), on its chart tab ``view``."""
    at = AppTest.from_file(APP, default_timeout=120)
    if view:
        at.session_state["profile_view_tab"] = view
    at.run()
    at.switch_page("views/subject_profile.py")
    at.query_params["usubjid"] = usubjid
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_subject_profile_from_query_param_and_audited(app_env):
    db = app_env
    studyid, cut = _latest(db)
    usubjid = _sql(db, "SELECT max(usubjid) FROM subjects WHERE studyid = $s AND data_cut = $c AND infused",
                   s=studyid, c=cut)
    at = _open_profile(usubjid)
    assert any(s.label == "Subject" and s.value == usubjid for s in at.selectbox)
    from safety.review.store import ReviewStore, default_review_path
    entries = ReviewStore(default_review_path(db)).audit_entries(studyid)
    assert any(e["action"] == "view_subject" and usubjid in e["detail"] for e in entries)


def test_subject_profile_keeps_every_pick_and_follows_a_new_link(app_env):
    """Each subject picked is the one shown, the URL following: the picker's key changed with the URL's subject, so
    every other pick was lost (an investigator picked a patient and the page stayed on the previous one)."""
    db = app_env
    studyid, cut = _latest(db)
    ids = _sql(db, "SELECT list(usubjid ORDER BY usubjid) FROM subjects WHERE studyid = $s AND data_cut = $c",
               s=studyid, c=cut)
    at = _open_profile(ids[0])

    def shown():
        return next(s for s in at.selectbox if s.label == "Subject").value, at.query_params.get("usubjid")

    for u in (ids[3], ids[4], ids[5], ids[1]):
        next(s for s in at.selectbox if s.label == "Subject").select(u).run()
        assert not at.exception, [e.value for e in at.exception]
        assert shown() == (u, u)
    at.query_params["usubjid"] = ids[2]  # a link to another subject, opened in the same session
    at.run()
    assert shown()[0] == ids[2]


def test_subject_profile_follows_a_study_changed_in_the_sidebar_without_a_refusal(app_env):
    """The profile of one study's subject, then another study chosen in the sidebar: that study's first subject opens,
    and nothing is refused or audited as a refusal (the subject was open, not asked for in the other study). A link
    naming the other study and the first subject is still a request: refused and audited."""
    db = app_env
    from safety.review.store import ReviewStore, default_review_path
    studies = _sql(db, "SELECT list(DISTINCT studyid ORDER BY studyid) FROM subjects")
    assert len(studies) >= 2
    first = _sql(db, "SELECT min(usubjid) FROM subjects WHERE studyid = $s", s=studies[0])
    store = ReviewStore(default_review_path(db))
    refused_before = len(store.audit_entries(action="view_subject_refused"))
    at = _open_profile(first)
    at.selectbox(key="sb_study").select(studies[1]).run()
    assert not at.exception, [e.value for e in at.exception]
    other_first = _sql(db, "SELECT min(usubjid) FROM subjects WHERE studyid = $s AND data_cut = "
                           "(SELECT max(data_cut) FROM subjects WHERE studyid = $s)", s=studies[1])
    assert next(s for s in at.selectbox if s.label == "Subject").value == other_first
    assert at.query_params.get("usubjid") == other_first and not at.warning
    assert any("is not in this selection; its first subject is shown" in i.value for i in at.info)
    assert len(store.audit_entries(action="view_subject_refused")) == refused_before
    at.query_params["usubjid"] = first  # a link: the other study named, and the first study's subject
    at.run()
    assert any("is not in this study, data cut, site scope or filter" in w.value for w in at.warning)
    assert len(store.audit_entries(action="view_subject_refused")) == refused_before + 1


def _plotly_values(v) -> list:
    """A Plotly JSON array, plain or binary-encoded ({'dtype', 'bdata'})."""
    if isinstance(v, dict) and "bdata" in v:
        import base64
        import numpy as np
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"]).tolist()
    return list(v)


def test_subject_profile_marks_a_persisting_cytopenia_dlt_on_timeline_and_labs(app_env):
    import json
    from safety.review.store import ReviewStore, default_review_path
    db = app_env
    studyid, cut = _latest(db)
    # the demo committee rejected one R7 candidate (sample_data/committee_decisions.yaml): not a DLT any more
    rejected = [a["event_key"] for a in ReviewStore(default_review_path(db)).latest_adjudications(studyid)
                if a["decision"] == "rejected"]
    rows = duckdb.connect(str(db), read_only=True).execute(
        "SELECT usubjid, split_part(split_part(event_key, '/LB/', 2), '-D', 1), onset_day, event_key "
        "FROM dlt_candidates WHERE studyid = $s AND data_cut = $c AND rule_id = 'R7' AND in_window ORDER BY usubjid",
        {"s": studyid, "c": cut}).fetchall()
    assert rows, "the sample data plants a persisting cytopenia (R7) candidate"
    for usubjid, _, _, key in [r for r in rows if r[3] in rejected]:
        spec = json.loads(_open_profile(usubjid, "Timeline").get("plotly_chart")[0].proto.spec)
        assert not any(t.get("name") == "DLT (? = pending)" and _plotly_values(t["y"]) == ["Lab DLT"]
                       for t in spec["data"]), key
    usubjid, test, day, _ = next(r for r in rows if r[3] not in rejected)
    timeline, labs = (json.loads(_open_profile(usubjid, view).get("plotly_chart")[0].proto.spec)
                      for view in ("Timeline", "Key labs"))
    marks = [t for t in timeline["data"] if t.get("name") == "DLT (? = pending)"]
    assert any(_plotly_values(t["y"]) == ["Lab DLT"] and t["customdata"][0][2] == day for t in marks)
    lab_marks = [t for t in labs["data"] if t.get("name") == "DLT"]
    assert lab_marks and _plotly_values(lab_marks[0]["x"]) == [day]
    assert test in {"NEUT", "PLAT"} and any(test in (a.get("text") or "") for a in labs["layout"]["annotations"])


def test_subject_profile_draws_a_medication_without_an_end_to_the_death(app_env):
    """CD56-CART-01-01-012 was given dexamethasone from day 4, no end recorded, and died of ICANS on day 9: the
    timeline drew it as given on day 4 only ("days 4-4"); it now runs to the death and says the end is not recorded."""
    import json
    u = "CD56-CART-01-01-012"
    studyid, cut = _latest(app_env)
    assert _db_rows(app_env, "SELECT m.start_day, m.end_day, s.death_day FROM medications m JOIN subjects s "
                             "USING (studyid, data_cut, usubjid) WHERE m.studyid = $s AND m.data_cut = $c "
                             "AND m.usubjid = $u AND m.cmdecod = 'DEXAMETHASONE'", s=studyid, c=cut, u=u) == [(4, None, 9)]
    spec = json.loads(_open_profile(u, "Timeline").get("plotly_chart")[0].proto.spec)
    (steroid,) = [t for t in spec["data"] if t.get("type") == "bar" and _plotly_values(t["y"]) == ["corticosteroid"]]
    assert (_plotly_values(steroid["base"]), _plotly_values(steroid["x"])) == ([3.5], [6.0])  # days 4 to 9
    assert "end date not recorded" in hover_text(steroid) and "day 9, the death" in hover_text(steroid)


def test_subject_profile_calls_dlt_only_what_counts_and_tells_pending_candidates_apart(app_copy):
    """A candidate outside the DLT window, or one the committee rejected, is not a DLT on the profile; one that
    awaits the committee is marked as pending (DLT?), not as a DLT. The tables say it in the AE listing's words."""
    from safety.review.dlt_status import ADJUDICATED_NOT_IN_WINDOW
    from safety.review.store import ReviewStore, default_review_path
    db = app_copy
    studyid, cut = _latest(db)
    con = duckdb.connect(str(db), read_only=True)
    usubjid, inside, outside, rule, fp = con.execute("""
        SELECT i.usubjid, i.event_key, o.event_key, i.rule_id, i.event_fingerprint FROM dlt_candidates i
        JOIN dlt_candidates o ON o.studyid = i.studyid AND o.data_cut = i.data_cut AND o.usubjid = i.usubjid
         AND NOT o.in_window AND o.event_key LIKE '%/AE/%'
        WHERE i.studyid = $s AND i.data_cut = $c AND i.in_window AND i.event_key LIKE '%/AE/%'
        ORDER BY 1, 2, 3 LIMIT 1""", {"s": studyid, "c": cut}).fetchone()
    con.close()

    def dlt_column(at):
        table = next(d.value for d in at.dataframe
                     if "event_key" in d.value.columns and "adjudicated_dlt" in d.value.columns)
        return {k: v if isinstance(v, str) else None for k, v in zip(table["event_key"], table["adjudicated_dlt"])}

    def ae_marks(at):
        spec = json.loads(at.get("plotly_chart")[0].proto.spec)
        return [m for t in spec["data"] if t.get("name") == "DLT (? = pending)" and t.get("yaxis") in (None, "y")
                for m in t["text"]]

    at = _open_profile(usubjid)
    column = dlt_column(at)
    assert column[inside] == "Pending" and column[outside] == ADJUDICATED_NOT_IN_WINDOW
    assert "DLT?" in ae_marks(at) and "DLT" not in ae_marks(at)

    ReviewStore(default_review_path(db)).add_adjudication(
        studyid=studyid, event_key=inside, usubjid=usubjid, rule_id=rule, decision="rejected",
        rationale="alternative cause on source review", reviewer="dr a", data_cut=str(cut), event_fingerprint=fp)
    st.cache_data.clear()
    at = _open_profile(usubjid)
    column = dlt_column(at)
    assert column[inside] == "No" and column[outside] == ADJUDICATED_NOT_IN_WINDOW
    assert ae_marks(at) == []


def test_a_confirmed_crs_or_icans_episode_marks_the_ae_it_was_reported_as(app_env):
    """The committee confirms a CRS/ICANS DLT under the episode's key; the AE the site reported it as says so too,
    in the AE listing (app and packet) and on the subject profile: the fatal ICANS AE of 012 read blank."""
    from safety.export.common import make_reader
    from safety.export.listings import build_listing
    from safety.review.store import ReviewStore, default_review_path

    db = app_env
    studyid, cut = _latest(db)
    con = access.connect(db)
    try:
        usubjid, ae_key, ep_key = con.execute("""
            SELECT usubjid, ae_event_key, event_key FROM toxicity_episodes WHERE studyid = $s AND data_cut = $c
            AND syndrome = 'ICANS' AND max_grade = 5 AND ae_event_key IS NOT NULL""", {"s": studyid, "c": cut}).fetchone()
        listing = build_listing(make_reader(con, studyid, cut), "ae", store=ReviewStore(default_review_path(db)))
    finally:
        con.close()
    assert ep_key.endswith("/ICANS/1") and ae_key.endswith("/AE/2")
    marks = dict(zip(listing["event_key"], listing["adjudicated_dlt"]))
    assert marks[ae_key] == "Yes"
    at = _open_profile(usubjid)
    marked = {k: v for d in at.dataframe if {"event_key", "adjudicated_dlt"} <= set(d.value.columns)
              for k, v in zip(d.value["event_key"], d.value["adjudicated_dlt"])}
    assert marked[ae_key] == marks[ae_key] == "Yes" and marked[ep_key] == "Yes"  # the listing's word


@pytest.mark.parametrize("view, title", [(None, "timeline"), ("Timeline", "timeline"),
                                         ("Key labs", "key labs with CTCAE"),
                                         ("CAR expansion and persistence", "CAR expansion")])
def test_subject_profile_runs_and_draws_only_the_open_chart_tab(app_env, view, title):
    at = _open_profile("CD56-CART-01-01-005", view)
    charts = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert len(charts) == 1 and title in charts[0], charts
    # the subject's tables stay on the page whichever chart is open
    assert {"Adverse events", "CRS / ICANS episodes (derived)"} <= {h.value for h in at.subheader}


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
    from safety.review.store import ReviewStore, default_review_path
    rows = ReviewStore(default_review_path(db)).adjudication_history(studyid)
    assert rows and rows[-1]["decision"] == "confirmed"
    at2 = _open("dlt_review")
    assert int(_metrics(at2)["Pending adjudication"]) == pending_before - 1


def test_dlt_review_table_says_pending_only_of_candidates_awaiting_a_decision(app_env):
    """The candidates table's decision reads "pending" exactly where the tile counts one: an undecided candidate
    outside the DLT window is not awaiting the committee (the listings and the packet leave its decision empty)."""
    db = app_env
    studyid, cut = _latest(db)
    at = _open("dlt_review")
    table = next(d.value for d in at.dataframe if {"event_key", "decision", "in_window"} <= set(d.value.columns))
    outside = _sql(db, "SELECT count(*) FROM dlt_candidates WHERE studyid = $s AND data_cut = $c AND NOT in_window",
                   s=studyid, c=cut)
    assert outside > 0  # the sample study screens events outside the window too
    assert (table["decision"] == "pending").sum() == int(_metrics(at)["Pending adjudication"])
    assert not ((table["decision"] == "pending") & ~table["in_window"].astype(bool)).any()


@pytest.fixture
def app_copy(app_env, tmp_path, monkeypatch) -> Path:
    """A copy of the app database that the test may change, with the app pointed at it (as ``app_env``)."""
    import shutil
    db = tmp_path / "app_copy.duckdb"
    shutil.copyfile(app_env, db)
    monkeypatch.setenv("CELLTOX_DB", str(db))
    return db


def test_what_is_new_offers_one_choice_when_the_previous_cut_is_the_last_signed_off(app_copy):
    """The previous cut signed off: 'What is new' offers it once, naming both, not two choices of one date."""
    studyid, cut = _latest(app_copy)
    previous = _sql(app_copy, "SELECT max(data_cut) FROM studies WHERE studyid = $s AND data_cut < $c", s=studyid, c=cut)
    assert previous is not None  # the sample study has two cuts
    from safety.review.store import ReviewStore, default_review_path
    ReviewStore(default_review_path(app_copy)).add_signoff(studyid=studyid, data_cut=previous.isoformat(),
                                                           reviewer="alice", comment="reviewed at the meeting")
    at = _open("overview")
    [compare] = [r for r in at.radio if r.label == "Compare"]
    assert compare.options == [f"since the previous data cut ({previous.isoformat()}, the last signed off)"]


@pytest.fixture
def crowded_env(app_copy):
    """The sample database with its latest cut grown past one page: 8 copies of every subject,
    80 of every DLT candidate and 100 of every AE (event keys made unique)."""
    db = app_copy
    studyid, cut = _latest(db)
    con = duckdb.connect(str(db))
    try:
        p = {"s": studyid, "c": cut}
        con.execute("INSERT INTO subjects SELECT s.* REPLACE (s.usubjid || '-COPY' || i AS usubjid) "
                    "FROM subjects s, range(1, 8) t(i) WHERE studyid = $s AND data_cut = $c", p)
        con.execute("INSERT INTO dlt_candidates SELECT d.* REPLACE (d.event_key || '#' || i AS event_key) "
                    "FROM dlt_candidates d, range(1, 80) t(i) WHERE studyid = $s AND data_cut = $c", p)
        con.execute("INSERT INTO adverse_events SELECT a.* REPLACE (a.event_key || '#' || i AS event_key, "
                    "a.aeseq + 1000 * i AS aeseq) "
                    "FROM adverse_events a, range(1, 100) t(i) WHERE studyid = $s AND data_cut = $c", p)
    finally:
        con.close()
    return db, studyid, cut


def _chart_subjects(at: AppTest) -> set[str]:
    import json
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    return {y.split(" ")[-1] for tr in spec["data"] if tr.get("type") == "bar" for y in tr["y"]}


def test_swimmer_pages_a_large_study_100_subjects_at_a_time(crowded_env):
    db, studyid, cut = crowded_env
    infused = _sql(db, "SELECT count(*) FROM subjects WHERE studyid = $s AND data_cut = $c AND infused", s=studyid, c=cut)
    assert infused > 100
    at = _open("swimmer")
    first = _widget(at, "number_input", "swimmer_first")
    assert f"of {infused:,}" in first.label
    page1 = _chart_subjects(at)
    assert len(page1) == 100
    first.set_value(101).run()
    assert not at.exception, [e.value for e in at.exception]
    page2 = _chart_subjects(at)
    assert len(page2) == min(100, infused - 100) and not page1 & page2
    # The survival figures still count every infused subject, not just the page.
    orr = next(m for m in at.metric if m.label == "ORR Best overall")
    assert orr.value.endswith(f"/ {infused}")


def test_dlt_picker_searches_when_candidates_are_many(crowded_env):
    db, studyid, cut = crowded_env
    n = _sql(db, "SELECT count(*) FROM dlt_candidates WHERE studyid = $s AND data_cut = $c", s=studyid, c=cut)
    assert n > 500
    at = _open("dlt_review")
    picker = next(s for s in at.selectbox if s.label == "Candidate")
    assert len(picker.options) == 500
    subject = _sql(db, "SELECT min(usubjid) FROM dlt_candidates WHERE studyid = $s AND data_cut = $c", s=studyid, c=cut)
    _widget(at, "text_input", "dlt_find").input(subject.lower()).run()
    assert not at.exception, [e.value for e in at.exception]
    picker = next(s for s in at.selectbox if s.label == "Candidate")
    expected = _sql(db, "SELECT count(*) FROM dlt_candidates WHERE studyid = $s AND data_cut = $c "
                        "AND (event_key || ' – ' || rule_id || ' / ' || term) ILIKE '%' || $u || '%'",
                    s=studyid, c=cut, u=subject)
    assert 0 < len(picker.options) == min(500, expected)
    assert all(subject in o for o in picker.options)


def test_dlt_review_opens_with_a_dlt_the_committee_added(tmp_path, monkeypatch):
    """A DLT the committee added has no screening rule, so the candidate picker's label was NaN and the page stopped
    with a TypeError before the decision form: the committee could neither confirm nor withdraw in the app."""
    from safety.derive.dlt.decisions import record_decision
    from safety.export.common import make_reader
    from safety.review.store import ReviewStore, default_review_path
    db = ingest_itnk_with(tmp_path, {})
    studyid, cut = _latest(db)
    con = access.connect(db)
    try:
        key = con.execute("SELECT min(event_key) FROM adverse_events WHERE studyid = $s AND data_cut = $c AND "
                          "usubjid NOT IN (SELECT usubjid FROM dlt_candidates WHERE studyid = $s AND data_cut = $c)",
                          {"s": studyid, "c": cut}).fetchone()[0]
        record_decision(ReviewStore(default_review_path(db)), make_reader(con, studyid, cut), key, "added",
                        "Minutes item 3: a DLT the rules missed", "carol")
    finally:
        con.close()
    gen = serve(db, monkeypatch)
    next(gen)
    try:
        at = _open("dlt_review", session={"sb_study": studyid})
        assert not at.exception, [e.value for e in at.exception]
        picker = next(sb for sb in at.selectbox if sb.label == "Candidate")
        assert f"{key} – no screening rule / " in " | ".join(picker.options)
    finally:
        next(gen, None)


def test_a_lab_dlt_the_committee_added_is_labelled_on_the_key_labs_chart():
    """A lab DLT added by the committee has no rule and may have no grade: its marker's label still reads."""
    import pandas as pd
    from dashboard.data import _lab_dlts
    c = pd.DataFrame({"event_key": ["S1/LB/PLAT-D28", "S2/LB/NEUT-D28"], "term": ["PLAT", None], "grade": [4, None],
                      "rule_id": ["R7", None], "onset_day": [28, 30]})
    got = _lab_dlts(c, ("S1/LB/PLAT-D28", "S2/LB/NEUT-D28"), ("S2/LB/NEUT-D28",))
    assert list(got["label"]) == ["PLAT grade 4 (R7)", "NEUT grade ? (added by the committee, pending)"]


def test_candidate_choices_order_undecided_in_window_first():
    import pandas as pd
    from dashboard.data import candidate_choices
    cands = pd.DataFrame({
        "usubjid": ["S1", "S2", "S3", "S4"], "event_key": ["S1/AE/1", "S2/AE/1", "S3/CRS/1", "S4/AE/2"],
        "rule_id": ["R6", "R6", "R3", "R1"], "term": ["Hepatic failure", "Colitis", "CRS", "Sepsis"],
        "in_window": [True, False, True, True], "decision": ["confirmed", None, None, None]})
    ordered, labels, matched = candidate_choices(cands)
    assert list(ordered["event_key"]) == ["S3/CRS/1", "S4/AE/2", "S2/AE/1", "S1/AE/1"] and matched == 4
    assert labels["S3/CRS/1"] == "S3/CRS/1 – R3 / CRS"
    ordered, labels, matched = candidate_choices(cands, "colitis")
    assert list(ordered["event_key"]) == ["S2/AE/1"] and list(labels) == ["S2/AE/1"] and matched == 1
    ordered, labels, matched = candidate_choices(cands, "s", limit=2)
    assert list(ordered["event_key"]) == ["S3/CRS/1", "S4/AE/2"] and list(labels) == list(ordered["event_key"])
    assert matched == 4


def test_a_download_written_on_the_click_does_not_rerun_the_page(app_env):
    # The file is made (and audited) on the click, apart from the page's script: a rerun would redraw the page for
    # nothing and could drop the file the click asked for (Streamlit registers it anew on every run).
    for page, labels in (("listings", {"Download CSV", "Download XLSX"}), ("adverse_events", {"Download CSV"})):
        at = _open(page)
        buttons = [d.proto for d in at.get("download_button")]
        assert labels <= {b.label for b in buttons}, (page, [b.label for b in buttons])
        for b in buttons:
            assert b.deferred_file_id and b.ignore_rerun, (page, b.label)


def test_listings_preview_a_long_listing_and_write_every_row_on_demand(crowded_env):
    import io
    import pandas as pd
    db, studyid, cut = crowded_env
    n_ae = _sql(db, "SELECT count(*) FROM adverse_events WHERE studyid = $s AND data_cut = $c", s=studyid, c=cut)
    assert n_ae > 20_000
    at = _open("listings", session={"listing_name": "ae"})
    assert not at.exception, [e.value for e in at.exception]
    assert any(f"of {n_ae:,} rows" in c.value for c in at.caption)
    assert len(at.dataframe[0].value) == 1000
    assert not [d for d in at.get("download_button") if d.label == "Download CSV"]  # nothing written yet
    next(b for b in at.button if b.label.startswith("Prepare CSV and XLSX")).click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert [d for d in at.get("download_button") if d.label == "Download CSV"]
    _, (csv_bytes, xlsx_bytes) = at.session_state["celltox_listing_files"]
    header = [line for line in csv_bytes.decode().splitlines() if line.startswith("# ")]
    assert header[0].startswith("# Listing of all adverse events") and any(line.startswith("# Data cut: ") for line in header)
    csv = pd.read_csv(io.BytesIO(csv_bytes), skiprows=len(header), low_memory=False)
    assert len(csv) == n_ae and csv["usubjid"].is_monotonic_increasing
    assert xlsx_bytes[:2] == b"PK"
    # the workbook says what it is, as the packet's does: a cover sheet, the listing's title and the filters
    import openpyxl
    wb = openpyxl.load_workbook(io.BytesIO(xlsx_bytes), read_only=True)
    assert wb.sheetnames[0] == "Cover" and len(wb.sheetnames) == 2
    cells = [str(c) for ws in wb.worksheets for row in ws.iter_rows(values_only=True) for c in row if c]
    assert any(c.startswith("Listing of all adverse events") for c in cells)
    assert any(c.startswith("Shown on the dashboard for") for c in cells)
    assert any(c.startswith("Data cut") or "Data cut:" in c for c in cells)


def test_labs_page_shows_car_hematotox_beside_icaht(app_env):
    at = _open("labs", session={"labs_tab": "Cytopenia & ICAHT"})  # only the open tab runs
    assert not at.exception
    assert any("CAR-HEMATOTOX" in m.value for m in at.markdown)
    assert any(x.label == "High risk (score ≥2)" for x in at.metric)


@pytest.fixture
def csf_neutrophils_env(tmp_path, monkeypatch):
    """One subject with a blood ANC of 2.0 daily and, on day 5, a CSF neutrophil count of 2 cells/uL."""
    from cytopenia_study import build_study
    from safety.ingest import ingest_study
    daily = range(-5, 40)
    study = build_study(tmp_path / "study", {"Q1": {"labs": {
        "NEUT": {**{d: 2.0 for d in daily}, 5: [2.0, (2, "cells/uL", "CEREBROSPINAL FLUID", "CSF")]},
        "PLAT": {d: 200 for d in daily}}}})
    db = tmp_path / "csf.duckdb"
    ingest_study(study, db)
    yield from serve(db, monkeypatch)


def test_labs_cytopenia_chart_draws_blood_results_only(csf_neutrophils_env):
    """A CSF neutrophil count of 2 cells/uL was drawn as a blood ANC of 0.002 x10^9/L, below both ICAHT lines, while
    the ICAHT table under the chart said 'ANC never <= 0.5'; the chart now draws the blood results the grades use."""
    from test_meeting_view import _values
    at = _open("labs", session={"labs_tab": "Cytopenia & ICAHT"})
    charts = {json.loads(c.proto.spec)["layout"]["title"]["text"]: json.loads(c.proto.spec)["data"]
              for c in at.get("plotly_chart")}
    anc = [t for t in charts["Cytopenia and recovery"] if t.get("name") == "Q1" and t.get("yaxis", "y") == "y"]
    assert len(anc) == 1
    y = _values(anc[0]["y"])
    assert len(y) == 45 and min(y) == 2.0          # days -5..39, one blood value a day
    ic = next(d.value for d in at.dataframe if "early_grade_reason" in d.value.columns)
    assert "ANC never <= 0.5 in days 0-30" in set(ic["early_grade_reason"])


def test_labs_icaht_heading_and_counts_name_both_lineages(app_env):
    """The ICAHT counts take a subject graded >= 3 in either lineage: the heading and the metrics say ANC and
    platelets, each with its source, and the numbers are those of the icaht table over both lineages."""
    db = app_env
    studyid, cut = _latest(db)
    at = _open("labs", session={"labs_tab": "Cytopenia & ICAHT"})
    assert "**ICAHT: ANC (EHA/EBMT 2023) and platelets (T-ICAHT proposal)**" in [m.value for m in at.markdown]
    assert not [m.value for m in at.markdown if m.value == "**ICAHT (EHA/EBMT 2023)**"]
    m = _metrics(at)
    for phase, col in (("Early", "early_grade"), ("Late", "late_grade")):
        both = _sql(db, f"SELECT count(DISTINCT usubjid) FROM icaht WHERE studyid = $s AND data_cut = $c "
                        f"AND {col} >= 3", s=studyid, c=cut)
        assert m[f"{phase} ICAHT grade ≥3 (ANC or platelets)"] == str(both)
    anc_only = _sql(db, "SELECT count(DISTINCT usubjid) FROM icaht WHERE studyid = $s AND data_cut = $c "
                        "AND early_grade >= 3 AND lineage = 'ANC'", s=studyid, c=cut)
    if _sample_available():  # the sample study has subjects at early grade >= 3 by their platelets alone
        assert int(m["Early ICAHT grade ≥3 (ANC or platelets)"]) > anc_only
    assert "Early ICAHT grade ≥3" not in m


def test_labs_icaht_and_car_hematotox_counts_are_the_packets(app_env):
    """The committee packet's ICAHT and CAR-HEMATOTOX listings say what the Labs page says: the page's metrics are
    the counts in the listings' notes, and its tables have the listings' rows."""
    from safety.export.common import make_reader
    from safety.export.listings import build_listing
    db = app_env
    studyid, cut = _latest(db)
    at = _open("labs", session={"labs_tab": "Cytopenia & ICAHT"})
    m = _metrics(at)
    con = access.connect(db)
    try:
        reader = make_reader(con, studyid, cut)
        icaht_rows, hematotox_rows = build_listing(reader, "icaht"), build_listing(reader, "car_hematotox")
    finally:
        con.close()
    notes = icaht_rows.attrs["notes"] + hematotox_rows.attrs["notes"]
    for label in ("Early ICAHT grade ≥3 (ANC or platelets)", "Late ICAHT grade ≥3 (ANC or platelets)",
                  "High risk (score ≥2)"):
        assert [n for n in notes if n.startswith(f"{label}: {m[label]}.")], (label, m[label], notes)
    if _sample_available():
        assert int(m["Early ICAHT grade ≥3 (ANC or platelets)"]) > 0
    shown = {len(d.value) for d in at.dataframe}
    assert {len(icaht_rows), len(hematotox_rows)} <= shown


def test_labs_edish_counts_an_ast_hys_law_case(app_env):
    """Hy's law is ALT or AST >= 3 x ULN with bilirubin >= 2 x ULN (FDA DILI guidance 2009): CD56-CART-01-01-008
    (AST 6.5 x ULN on day 6, bilirubin 13 x ULN on days 9-11, ALT never above 0.75 x) is counted and plotted at
    its AST peak; the page counted ALT only and showed 0."""
    if not _sample_available():
        pytest.skip("needs the sample study")
    at = _open("labs", session={"labs_tab": "Liver (eDISH)"})
    assert _metrics(at)["Subjects in the possible Hy's law quadrant (peaks at any time after infusion)"] == "1"
    [table] = [d.value for d in at.dataframe]
    row = table.set_index("usubjid").loc["CD56-CART-01-01-008"]
    assert (row["aminotransferase"], row["peak_aminotransferase_xuln"], row["peak_alt_xuln"],
            row["peak_bili_xuln"]) == ("AST", pytest.approx(6.5), pytest.approx(0.75), pytest.approx(13.0))
    # what is counted is said: peaks at any time after infusion, the first day of each, ALP shown beside
    assert (row["aminotransferase_day"], row["bili_day"]) == (6, 9) and row["peak_alp_xuln"] < 2
    assert any("ALP is shown, not applied to the count" in c.value for c in at.caption)


@pytest.mark.parametrize("tab, shows", [("Worst grades & shifts", "Subjects with any lab grade ≥3"),
                                        ("Values over time", None), ("Liver (eDISH)", None),
                                        ("Cytopenia & ICAHT", "Early ICAHT grade ≥3 (ANC or platelets)")])
def test_labs_page_runs_only_the_open_tab_and_every_tab_renders(app_env, tab, shows):
    at = _open("labs", session={"labs_tab": tab})
    assert not at.exception, [e.value for e in at.exception]
    metrics = [m.label for m in at.metric]
    if shows:
        assert shows in metrics
    others = {"Subjects with any lab grade ≥3", "Early ICAHT grade ≥3 (ANC or platelets)"} - {shows}
    assert not others & set(metrics), f"{tab}: another tab's content ran"
    if tab in ("Values over time", "Liver (eDISH)"):
        assert at.get("plotly_chart"), f"{tab} draws its chart"


@pytest.mark.parametrize("syndrome", ["CRS", "ICANS"])
@pytest.mark.parametrize("view, title", [(None, "subjects by maximum grade"),
                                         ("Incidence by grade", "subjects by maximum grade"),
                                         ("Onset and duration", "Onset and duration of episodes"),
                                         ("Daily grades, days 0-30", "daily grade, days 0-30")])
def test_crs_icans_runs_and_draws_only_the_open_view_and_syndrome(app_env, syndrome, view, title):
    session = {"crs_incidence_tab": syndrome, "crs_swimlane_tab": syndrome}
    if view:
        session["crs_view_tab"] = view
    at = _open("crs_icans", session=session)
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert len(titles) == 1 and title in titles[0], titles
    if title != "Onset and duration of episodes":  # both syndromes share the onset chart
        assert titles[0].startswith(f"{syndrome}: ")
    # the metrics and the episode tables stay on the page whichever view is open
    assert {"CRS grade ≥3", "ICANS grade ≥3"} <= {m.label for m in at.metric}
    assert {"Tocilizumab, corticosteroids and anakinra", "Derived vs reported grades"} <= {h.value for h in at.subheader}


def test_labs_value_drill_down_is_built_when_opened(app_env):
    closed = _open("labs")
    assert not closed.exception, [e.value for e in closed.exception]
    opened = _open("labs", session={"lab_values_open": True})
    assert not opened.exception, [e.value for e in opened.exception]
    # the opened drill-down adds the table of every grade >= 3 value, with rows
    assert len(opened.dataframe) == len(closed.dataframe) + 1
    shapes = lambda at: sorted(d.value.shape for d in at.dataframe)  # noqa: E731
    added = list(shapes(opened))
    for shape in shapes(closed):
        added.remove(shape)
    assert added[0][0] > 0


def test_a_death_known_only_from_a_fatal_ae_shows_on_swimmer_and_profile(app_copy):
    """The swimmer plot (and its overall survival) and the subject profile read the derived deaths table (DM, DS
    or a fatal AE), as the overview and the packet do: a death with no DM/DS date still shows."""
    import base64
    import json

    import numpy as np

    db = app_copy
    studyid, cut = _latest(db)
    con = duckdb.connect(str(db))
    u = con.execute("SELECT min(usubjid) FROM subjects WHERE studyid = $s AND data_cut = $c AND infused "
                    "AND death_day IS NULL AND last_known_alive_day > 20", {"s": studyid, "c": cut}).fetchone()[0]
    con.execute("DELETE FROM deaths WHERE studyid = $s AND data_cut = $c AND usubjid = $u", {"s": studyid, "c": cut, "u": u})
    con.execute("INSERT INTO deaths (studyid, data_cut, usubjid, death_day, sources, cause_category) "
                "VALUES ($s, $c, $u, 20, 'AE', 'infection')", {"s": studyid, "c": cut, "u": u})
    con.close()
    at = _open("swimmer")
    figs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    swim = next(f for f in figs if any(t.get("name") == "Death" for t in f["data"]))
    marks = next(t for t in swim["data"] if t.get("name") == "Death")
    x = marks["x"]  # plotly sends numbers as base64 binary
    days = np.frombuffer(base64.b64decode(x["bdata"]), dtype=x["dtype"]) if isinstance(x, dict) else x
    by_subject = dict(zip([c[0] for c in marks["customdata"]], days))
    assert by_subject[u] == 20
    at = _open("subject_profile", query={"usubjid": u})
    assert _metrics(at)["Death"] == "day 20"


def test_swimmer_month_orr_counts_a_response_as_the_best_overall_response_does(tmp_path, monkeypatch):
    """The month 3/6/12 ORRs count an assessment as response_outcomes counts it (response.py's one definition):
    Lugano's PMR as a PR (02-021's month-6 PMR), and nothing after the first progression (03-029's month-3 CR after
    a month-1 PD). Before, month 6 lost 02-021 and month 3 counted 03-029, whose best response is PD."""
    import shutil

    from safety.ingest import ingest_study

    study = tmp_path / "car_itnk"
    shutil.copytree(ROOT / "sample_data" / "car_itnk", study)
    rs = (study / "rs.csv").read_text().splitlines()
    rs = [r.replace("PR,PR,INVESTIGATOR,MONTH 6", "PMR,PMR,INVESTIGATOR,MONTH 6") if "-02-021," in r else
          r.replace("PR,PR,INVESTIGATOR,MONTH 1", "PD,PD,INVESTIGATOR,MONTH 1") if "-03-029," in r else r for r in rs]
    (study / "rs.csv").write_text("\n".join(rs) + "\n")
    db = tmp_path / "s.duckdb"
    ingest_study(study, db)
    monkeypatch.setenv("CELLTOX_DB", str(db))
    monkeypatch.setenv("CELLTOX_AUTH", "off")
    st.cache_data.clear()
    st.cache_resource.clear()
    try:
        m = _metrics(_open("swimmer"))
    finally:
        st.cache_data.clear()
        st.cache_resource.clear()
    best = _db_rows(db, "SELECT usubjid, best_response, responder FROM response_outcomes "
                        "WHERE usubjid IN ('ITNK-B-01-02-021', 'ITNK-B-01-03-029') ORDER BY usubjid")
    assert best == [("ITNK-B-01-02-021", "PR", True), ("ITNK-B-01-03-029", "PD", False)]
    # by hand from rs.csv (each subject's criteria, responses before the first RS/DS/AE progression): month 3
    # 18 (03-029 not among them; it was 19), month 6 13 (02-021's PMR among them; it was 12), month 12 3; best
    # overall 20 of 30 infused
    assert (m["ORR Month 3"], m["ORR Month 6"], m["ORR Month 12"], m["ORR Best overall"]) == \
        ("18 / 30", "13 / 30", "3 / 30", "20 / 30")


def test_adverse_events_table_counts_subjects_per_term_and_those_at_grade_3_or_more(app_env):
    db = app_env
    studyid, cut = _latest(db)
    at = _open("adverse_events")
    table = at.dataframe[0].value
    expected = {(r[0], r[1]): (r[2], r[3]) for r in _db_rows(db, f"""
        SELECT {ae_soc_sql()}, {ae_pt_sql()}, count(DISTINCT usubjid),
               count(DISTINCT usubjid) FILTER (aetoxgr >= 3)
        FROM adverse_events WHERE studyid = $s AND data_cut = $c AND treatment_emergent IS NOT FALSE GROUP BY ALL""",
                                                          s=studyid, c=cut)}
    shown = {(r["aebodsys"], r["aedecod"]): (int(r["subjects"]), int(r["grade ≥3"])) for _, r in table.iterrows()}
    assert shown == expected
    assert any(severe > 0 for _, severe in shown.values()) and any(severe == 0 for _, severe in shown.values())


def test_adverse_events_grade_choice_applies_to_the_subject_list_and_is_named(app_env):
    """Worst grade ≥3 with CRS chosen: the list under the table holds the grade >= 3 events only (it listed every
    CRS event, 18 of 22 of grade 1-2), and its title and CSV say which choices made it."""
    db = app_env
    studyid, cut = _latest(db)
    at = _open("adverse_events")
    at.radio[0].set_value("Grade ≥3").run()
    box = next(s for s in at.selectbox if s.label == "Subjects with the preferred term")
    box.set_value("Cytokine release syndrome").run()
    assert not at.exception, [e.value for e in at.exception]
    listed = next(d.value for d in at.dataframe if "event_key" in d.value.columns)
    expected = _db_rows(db, """SELECT count(*) FROM adverse_events WHERE studyid = $s AND data_cut = $c
        AND treatment_emergent IS NOT FALSE AND aedecod = 'Cytokine release syndrome' AND aetoxgr >= 3
        AND usubjid IN (SELECT usubjid FROM subjects WHERE studyid = $s AND data_cut = $c AND infused)""",
                        s=studyid, c=cut)[0][0]
    assert len(listed) == expected > 0 and (listed["aetoxgr"] >= 3).all()
    assert any(c.value == "Subjects with Cytokine release syndrome (grade ≥3)" for c in at.caption)


def _db_rows(db: Path, query: str, **params) -> list[tuple]:
    con = access.connect(db)
    try:
        return con.execute(query, params).fetchall()
    finally:
        con.close()


def test_overview_what_is_new_lists_the_changes_since_the_previous_cut(app_env):
    from safety.access.auth import Scope
    from safety.access.reader import StudyReader
    from safety.review import meeting as meeting_rules

    db = app_env
    studyid, cut = _latest(db)
    con = access.connect(db)
    try:
        prev = con.execute("SELECT max(data_cut) FROM studies WHERE studyid = $s AND data_cut < $c",
                           {"s": studyid, "c": cut}).fetchone()[0]
        expected = meeting_rules.new_events(StudyReader(con, Scope(studyid, cut, None, prev)), prev)
    finally:
        con.close()
    assert prev is not None and len(expected) > 0
    at = _open("overview")
    (shown,) = [d.value for d in at.dataframe if "change" in d.value.columns and "category" in d.value.columns]
    keys = lambda col: [k if isinstance(k, str) else None for k in col]  # noqa: E731  (a subject's row has no key)
    assert keys(shown["event_key"]) == keys(expected["event_key"])  # most severe first, as the packet lists them
    assert list(shown["change"]) == list(expected["change"])


def _never_infused(db: Path) -> tuple[str, object, str]:
    """The first study's latest cut and one of its subjects never infused (the sample has one)."""
    studyid, cut = _latest(db)
    u = _sql(db, "SELECT min(usubjid) FROM subjects WHERE studyid = $s AND data_cut = $c AND NOT infused", s=studyid, c=cut)
    assert u is not None, "the first study has a subject never infused"
    return studyid, cut, u


@contextmanager
def _packet_reader(db: Path, studyid: str, cut):
    """The reader a committee packet of the whole study reads through (closed afterwards)."""
    with access.connect(db) as con:
        yield access.StudyReader(con, access.Scope(studyid, cut))


def test_adverse_events_page_counts_the_safety_population_as_the_committee_tables_do(app_copy):
    """An AE after lymphodepletion of a subject never infused is not counted against the infused subjects, on the
    page as in the packet's tables (safety population = infused on or before the cut)."""
    from safety.export import tables as export_tables

    db = app_copy
    studyid, cut, u = _never_infused(db)
    con = duckdb.connect(str(db))
    con.execute("""INSERT INTO adverse_events (studyid, data_cut, usubjid, aeseq, event_key, aeterm, aedecod, aebodsys,
                                               aetoxgr, aeser, treatment_emergent, onset_day)
                   VALUES ($s, $c, $u, 9001, $u || '/AE/9001', 'Febrile neutropenia', 'Never infused only term',
                           'Blood and lymphatic system disorders', 3, 'Y', TRUE, NULL)""", {"s": studyid, "c": cut, "u": u})
    con.close()
    at = _open("adverse_events")
    shown = at.dataframe[0].value
    assert "Never infused only term" not in set(shown["aedecod"])
    infused_with_ae = _sql(db, """SELECT count(DISTINCT a.usubjid) FROM adverse_events a JOIN subjects s
                                  USING (studyid, data_cut, usubjid)
                                  WHERE a.studyid = $s AND a.data_cut = $c AND s.infused
                                    AND a.treatment_emergent IS NOT FALSE""", s=studyid, c=cut)
    all_with_ae = _sql(db, """SELECT count(DISTINCT usubjid) FROM adverse_events WHERE studyid = $s AND data_cut = $c
                              AND treatment_emergent IS NOT FALSE""", s=studyid, c=cut)
    assert all_with_ae == infused_with_ae + 1
    assert _metrics(at)["Subjects with an AE"] == str(infused_with_ae)
    with _packet_reader(db, studyid, cut) as reader:
        overview = export_tables.table_ae_overview(reader)
    any_ae = overview.loc[overview["Category"] == "Any adverse event"].iloc[0]
    overall = next(col for col in overview.columns if col.startswith("Overall"))
    assert any_ae[overall].split(" ")[0] == str(infused_with_ae)


def test_overview_sae_tile_counts_the_safety_population_as_the_packet_and_the_ae_page_do(app_copy):
    """An SAE of a subject never infused (after screening, say) was counted by the Overview's SAE tile, so its
    subject count was one more than the packet's AE overview and the Adverse events page show: the tile now counts
    treatment-emergent SAEs of infused subjects, events and subjects alike."""
    from safety.export import tables as export_tables

    db = app_copy
    studyid, cut, u = _never_infused(db)
    before = _counted_saes(db, studyid, cut)
    con = duckdb.connect(str(db))
    con.execute("""INSERT INTO adverse_events (studyid, data_cut, usubjid, aeseq, event_key, aeterm, aedecod, aebodsys,
                                               aetoxgr, aeser, treatment_emergent, onset_day)
                   VALUES ($s, $c, $u, 9001, $u || '/AE/9001', 'Febrile neutropenia', 'Febrile neutropenia',
                           'Blood and lymphatic system disorders', 3, 'Y', FALSE, NULL)""", {"s": studyid, "c": cut, "u": u})
    every = con.execute("SELECT count(*), count(DISTINCT usubjid) FROM adverse_events WHERE studyid = $s "
                        "AND data_cut = $c AND aeser = 'Y'", {"s": studyid, "c": cut}).fetchone()
    con.close()
    events, subjects = _counted_saes(db, studyid, cut)
    assert (events, subjects) == before and every == (events + 1, subjects + 1)
    assert _metrics(_open())["SAEs: events (subjects)"] == f"{events} ({subjects})"
    with _packet_reader(db, studyid, cut) as reader:
        overview = export_tables.table_ae_overview(reader)
    overall = next(col for col in overview.columns if col.startswith("Overall"))
    assert overview.loc[overview["Category"] == "Any serious adverse event", overall].iloc[0].split(" ")[0] == str(subjects)
    at = _open("adverse_events")
    at.toggle[0].set_value(True).run()  # Serious only
    m = _metrics(at)
    assert (m["Events"], m["Subjects with an AE"]) == (str(events), str(subjects))


def test_labs_worst_grades_count_the_subjects_the_committee_tables_count(app_copy):
    """The laboratory page's per-term counts are the packet's: infused subjects with a graded post-infusion value,
    a subject once per term; a subject never infused (baseline values only) is not among them."""
    from safety.derive.grading import summary
    from safety.export import tables as export_tables

    db = app_copy
    studyid, cut, u = _never_infused(db)
    con = duckdb.connect(str(db))
    # the never-infused subject's baseline-only row, as the load writes it (no post-infusion grade)
    con.execute("""INSERT INTO lab_worst_grades (studyid, data_cut, usubjid, ctcae_term, direction, lbtestcd,
                                                 baseline_grade, worst_grade, worst_day, n_post)
                   SELECT studyid, data_cut, $u, ctcae_term, direction, lbtestcd, 0, NULL, NULL, 0
                   FROM lab_worst_grades WHERE studyid = $s AND data_cut = $c AND worst_grade >= 3 LIMIT 1""",
                {"s": studyid, "c": cut, "u": u})
    con.close()
    at = _open("labs")
    shown = at.dataframe[0].value.set_index("ctcae_term")
    with _packet_reader(db, studyid, cut) as reader:
        g3 = summary.grade3_counts(reader)
        packet = export_tables.table_lab_worst_grade(reader)
    g3 = g3[g3["cohort"] == "All"].set_index("ctcae_term")
    overall = next(col for col in packet.columns if col.startswith("Overall"))
    evaluated = packet[packet["Worst grade"] == "Evaluated (gradable post-baseline value)"]
    evaluated = {t.rsplit(" (", 1)[0]: int(n.split(" ")[0]) for t, n in zip(evaluated["CTCAE term"], evaluated[overall])}
    assert len(shown) > 5
    for term, row in shown.iterrows():
        assert int(row["worst grade ≥3"]) == int(g3.loc[term, "n_grade_3_plus"]), term
        assert int(row["subjects evaluated"]) == evaluated[term], term
    assert any(int(n) > 0 for n in shown["worst grade ≥3"])
    n_ge3 = _sql(db, """SELECT count(DISTINCT w.usubjid) FROM lab_worst_grades w JOIN subjects s
                        USING (studyid, data_cut, usubjid)
                        WHERE w.studyid = $s AND w.data_cut = $c AND s.infused AND w.worst_grade >= 3""",
                 s=studyid, c=cut)
    assert _metrics(at)["Subjects with any lab grade ≥3"] == str(n_ge3)


def test_the_term_stays_beside_the_soc_and_the_key_where_a_reader_looks_for_it(app_env):
    """A table's free text goes last so its key columns show whole; the preferred term names the row, so it stays
    next to the system organ class (AE page by cohort) and next to the event key (subject profile)."""
    at = _open("adverse_events")
    next(r for r in at.radio if r.label == "Columns").set_value("By cohort").run()
    assert not at.exception
    order = list(at.dataframe[0].proto.column_order)
    assert any("grade ≥3" in c for c in order), order  # the cohort columns are there
    assert order.index("aedecod") == order.index("aebodsys") + 1, order
    at = _open_profile("CD56-CART-01-01-005")
    ae_table = next(d for d in at.dataframe if "event_key" in d.value.columns and "aetoxgr" in d.value.columns)
    order = list(ae_table.proto.column_order)
    assert order.index("aedecod") <= 3, order


def test_the_dlt_reviews_boundary_table_names_the_method_as_the_protocol_does(app_env):
    from safety.derive.dlt.stopping import METHOD_NAMES
    at = _open("dlt_review")
    tables = [d.value for d in at.dataframe if {"method", "n"} <= set(d.value.columns)]
    assert tables and all(set(t["method"]) <= set(METHOD_NAMES.values()) for t in tables)
    assert any("BOIN" in set(t["method"]) for t in tables)


def test_decision_history_says_when_decisions_exist_outside_the_selection(app_env):
    """The demo committee decided on CD56 subjects; with a cohort chosen whose subjects have none, the history
    says the selection has none rather than that the study has none."""
    from safety.review.store import ReviewStore, default_review_path
    db = app_env
    studyid, cut = _latest(db)
    decided = {h["usubjid"] for h in ReviewStore(default_review_path(db)).adjudication_history(studyid)}
    cohorts = _db_rows(db, "SELECT cohort, list(usubjid) FROM subjects WHERE studyid = $s AND data_cut = $c "
                           "AND cohort IS NOT NULL GROUP BY cohort ORDER BY cohort", s=studyid, c=cut)
    quiet = next(c for c, subjects in cohorts if not decided & set(subjects))
    assert decided
    texts = [i.value for i in _open("dlt_review", session={f"sb_cohort_{studyid}": [quiet]}).info]
    assert "No adjudications for the subjects in this selection (site scope and filters)." in texts
    assert "No adjudications recorded yet for this study." not in texts


def test_data_quality_warns_of_files_not_read_as_delivered_and_domains_dropped_since_the_previous_cut(app_copy):
    """A file the load read with notes (an expected column missing, flags read as their code) and a domain the
    previous cut had and this one lacks are warned of on the page, not only in the load's console output."""
    db = app_copy
    con = duckdb.connect(str(db))
    studyid, cut, prev = con.execute("""SELECT studyid, max(data_cut), min(data_cut) FROM studies GROUP BY studyid
                                        HAVING count(*) > 1 ORDER BY studyid LIMIT 1""").fetchone()
    con.execute("UPDATE load_log SET notes = 'no AESTDTC column: every row loads without it' "
                "WHERE studyid = $s AND data_cut = $c AND domain = 'AE'", {"s": studyid, "c": cut})
    con.execute("UPDATE studies SET domains_present = list_filter(domains_present, lambda d: d <> 'CM') "
                "WHERE studyid = $s AND data_cut = $c", {"s": studyid, "c": cut})
    ae_file = con.execute("SELECT source_file FROM load_log WHERE studyid = $s AND data_cut = $c AND domain = 'AE'",
                          {"s": studyid, "c": cut}).fetchone()[0]
    con.close()
    at = _open("data_quality", query={"studyid": studyid, "cut": cut.isoformat()})
    assert not at.exception, [e.value for e in at.exception]
    warnings = [w.value for w in at.warning]
    from dashboard.state import plain_text  # the file's name and notes as delivered, escaped for Markdown
    assert f"**{plain_text(ae_file)}**: {plain_text('no AESTDTC column: every row loads without it')}" in warnings
    assert any(w == f"CM delivered at the {prev:%Y-%m-%d} cut and not at this one: nothing of it is loaded at this cut, so "
                          "its listings read as none recorded." for w in warnings)


def test_dlt_review_says_the_stopping_rules_are_not_filtered_as_the_overview_does(app_env):
    """Under a dose level filter the DLT review showed every dose level's stopping rule with no word that the filter
    does not apply there (DL1 and DL3 beside a DL2 selection): it now says so in the Overview's words."""
    from dashboard.state import RULES_NOT_FILTERED

    db = app_env
    studyid, cut = _latest(db)
    doses = _sql(db, "SELECT list(DISTINCT dose_level ORDER BY dose_level) FROM subjects WHERE studyid = $s "
                     "AND data_cut = $c AND dose_level IS NOT NULL", s=studyid, c=cut)
    chosen = {f"sb_dose_{studyid}": [doses[1]]}
    rules = _sql(db, "SELECT count(*) FROM stopping_rule_status WHERE studyid = $s AND data_cut = $c", s=studyid, c=cut)
    assert len(doses) > 1 and rules > 1
    for page in ("dlt_review", "overview"):
        at = _open(page, session=chosen)
        assert [c.value for c in at.caption].count(RULES_NOT_FILTERED) == 1, page
        assert not any(c.value == RULES_NOT_FILTERED for c in _open(page).caption), page


def test_data_quality_quarantine_summary_counts_a_row_quarantined_without_a_field(app_copy):
    """A ragged CSV line is quarantined as a whole, with no field; the by-reason summary dropped it (its group key
    was empty), so the table added up to one row fewer than the quarantine held."""
    db = app_copy
    con = duckdb.connect(str(db))
    studyid, cut = con.execute("SELECT studyid, max(data_cut) FROM studies GROUP BY studyid ORDER BY studyid "
                               "LIMIT 1").fetchone()
    con.execute("INSERT INTO quarantine (studyid, data_cut, load_id, domain, source_file, row_number, usubjid, field, "
                "reason, raw_record) VALUES ($s, $c, 'x', 'AE', 'ae.csv', 249, NULL, NULL, "
                "'line 249: 23 fields where the header has 22', 'a,b')", {"s": studyid, "c": cut})
    held = con.execute("SELECT count(*) FROM quarantine WHERE studyid = $s AND data_cut = $c",
                       {"s": studyid, "c": cut}).fetchone()[0]
    con.close()
    at = _open("data_quality", query={"studyid": studyid, "cut": cut.isoformat()})
    summary = next(d.value for d in at.dataframe if "rows" in d.value.columns and "reason" in d.value.columns)
    assert int(summary["rows"].sum()) == held
    assert "line 249: 23 fields where the header has 22" in set(summary["reason"])


def test_data_quality_lists_ae_grades_ctcae_does_not_define_for_the_term(app_env):
    """A grade-1 or grade-2 sepsis (CTCAE v5.0: grades 3-5 only) is listed for the site to query; the page's count
    is the table's for the cut."""
    db = app_env
    studyid, cut = _latest(db)
    expected = _sql(db, "SELECT count(*) FROM ae_grade_checks WHERE studyid = $s AND data_cut = $c", s=studyid, c=cut)
    sepsis = _sql(db, "SELECT count(*) FROM adverse_events WHERE studyid = $s AND data_cut = $c AND "
                      "lower(aedecod) = 'sepsis' AND aetoxgr < 3", s=studyid, c=cut)
    assert expected >= sepsis > 0
    at = _open("data_quality")
    assert "AE grades CTCAE does not define for the term" in {h.value for h in at.subheader}
    text = " ".join(m.value for m in at.markdown)
    assert f"**{expected} adverse event{'s' if expected != 1 else ''}** reported at a grade CTCAE does not define" in text


def test_a_filtered_icaht_listing_counts_the_rows_it_shows_as_the_labs_page_does(app_env):
    """With a cohort chosen in the sidebar the ICAHT and CAR-HEMATOTOX listings' notes (page captions and files)
    stated the whole cut's counts ("Early ICAHT grade >=3: 3" over six rows of grade 0-2); they count the rows shown,
    as the Labs page's metrics do with the same filter."""
    db = app_env
    studyid, cut = _latest(db)
    cohorts = _sql(db, """SELECT list(DISTINCT cohort ORDER BY cohort) FROM subjects
                          WHERE studyid = $s AND data_cut = $c AND cohort IS NOT NULL""", s=studyid, c=cut)
    whole = _metrics(_open("labs", session={"labs_tab": "Cytopenia & ICAHT"}))
    labels = ("Early ICAHT grade ≥3 (ANC or platelets)", "Late ICAHT grade ≥3 (ANC or platelets)",
              "High risk (score ≥2)")
    differed = 0
    for cohort in cohorts:
        flt = {f"sb_cohort_{studyid}": [cohort]}
        labs = _metrics(_open("labs", session={"labs_tab": "Cytopenia & ICAHT", **flt}))
        differed += any(labs[lab] != whole[lab] for lab in labels)
        captions = []
        for name in ("icaht", "car_hematotox"):
            at = _open("listings", session={"listing_name": name, **flt})
            captions += [c.value for c in at.caption]
        from dashboard.state import plain_text  # a listing's notes are escaped for Markdown on the page
        for lab in labels:
            said, any_count = plain_text(f"{lab}: {labs[lab]}."), plain_text(f"{lab}:")
            assert [c for c in captions if c.startswith(said)], (cohort, lab, labs[lab], captions)
            assert not [c for c in captions if c.startswith(any_count) and not c.startswith(said)]
    if _sample_available():
        assert differed, "no cohort whose counts differ from the whole cut's: the test would not see the defect"


MARKDOWN_PAYLOAD = "![x](https://evil.example/b.png) [see](https://evil.example/p)"


def _rendered_markdown(at: AppTest) -> list[str]:
    """Every text of the page that Streamlit renders as Markdown: bodies, captions, headings, alerts, metric labels,
    values and help, page-link labels, radio labels and options, tab labels. (A selectbox's options and a table's
    cells are shown as typed.)"""
    out = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning", "error", "success"):
        out += [str(e.value) for e in at.get(kind)]
    for m in at.metric:
        out += [str(m.label), str(m.value), m.proto.help]
    for link in at.get("page_link"):
        out += [link.proto.label, link.proto.help]
    for r in at.radio:
        out += [str(r.label)] + [str(o) for o in r.options]
    out += [str(t.label) for t in at.tabs]
    return out


def test_delivered_text_is_shown_as_typed_not_rendered_as_markdown(tmp_path, monkeypatch):
    """A diagnosis, cohort, AE term or cause of death holding Markdown link or image syntax was rendered: the
    browser fetched the image from that server on every view and showed a clickable link among the patient's data
    (the profile's diagnosis line, the Overview's links to DLT candidates, deaths and what is new). Delivered text
    is now escaped wherever a page writes it into Markdown, and reads as delivered."""
    import csv
    import shutil

    from dashboard.state import plain_text
    from safety.ingest import ingest_study

    study = tmp_path / "car_itnk"
    shutil.copytree(ROOT / "sample_data" / "car_itnk", study)

    def poison(name: str, columns: tuple[str, ...], where=lambda row: True) -> None:
        with open(study / name, newline="") as f:
            rows = list(csv.DictReader(f))
        for row in rows:
            if where(row):
                row.update({c: f"{row[c]} {MARKDOWN_PAYLOAD}" for c in columns})
        with open(study / name, "w", newline="") as f:
            out = csv.DictWriter(f, fieldnames=list(rows[0]))
            out.writeheader()
            out.writerows(rows)

    poison("suppdm.csv", ("QVAL",), lambda row: row["QNAM"] in ("DIAGNOSIS", "COHORT"))
    poison("ae.csv", ("AETERM", "AEDECOD"))
    poison("ds.csv", ("DSTERM",))
    db = tmp_path / "s.duckdb"
    for cut in ("2026-03-31", "2026-09-30"):
        ingest_study(study, db, cutoff=cut)
    u = "ITNK-B-01-02-025"  # died of CRS on day 10, a grade 5 DLT candidate new since the first cut
    diagnosis, cohort = _db_rows(db, "SELECT diagnosis, cohort FROM subjects WHERE usubjid = $u AND data_cut = "
                                     "'2026-09-30'", u=u)[0]
    assert diagnosis.endswith(MARKDOWN_PAYLOAD) and cohort.endswith(MARKDOWN_PAYLOAD)
    monkeypatch.setenv("CELLTOX_DB", str(db))
    monkeypatch.setenv("CELLTOX_AUTH", "off")
    st.cache_data.clear()
    st.cache_resource.clear()
    try:
        overview = _open(session={"sb_cohort_ITNK-B-01": [cohort]})
        profile = _open_profile(u)
    finally:
        st.cache_data.clear()
        st.cache_resource.clear()
    for page, at in (("overview", overview), ("subject_profile", profile)):
        texts = _rendered_markdown(at)
        assert any("evil" in t for t in texts), page  # the delivered text is shown ...
        assert not [t for t in texts if "](https://evil.example" in t], page  # ... as typed
    # as delivered, once rendered: the escapes are Markdown's own
    assert any(plain_text(diagnosis) in t for t in profile.markdown.values)
    links = [link.proto.label for link in overview.get("page_link")]
    assert any(label.startswith(f"**{plain_text(u)}** day 10: ") and plain_text(MARKDOWN_PAYLOAD) in label
               for label in links)
    assert any(plain_text(cohort) in c for c in overview.caption.values)  # the filter, in the page's caption

"""The committee meeting view: the overview's five answers (names, counts, order by severity), charts that
read right (checked on the Plotly figures the pages draw), and no raw NaN/None text on any page.

Runs the app with Streamlit's AppTest on the sample database (both studies) and on the hand-made mini
database of tests/test_app_minidb.py, sign-in off (a committee member sees every page).
"""
from __future__ import annotations

import datetime as dt
import json
import math
import re
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from safety.access import reader as access
from safety.export.common import make_reader, study_settings
from safety.review import meeting
from safety.review.store import ReviewStore, default_review_path

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "dashboard" / "app.py")
CART, ITNK = "CD56-CART-01", "ITNK-B-01"
CUT1, CUT2 = dt.date(2026, 3, 31), dt.date(2026, 9, 30)
PAGES = ["overview", "crs_icans", "subject_profile", "adverse_events", "labs", "dlt_review", "swimmer",
         "listings", "data_quality", "audit_log"]
LAB_TABS = ["Worst grades & shifts", "Values over time", "Liver (eDISH)", "Cytopenia & ICAHT"]


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory, sample_database) -> Path:
    path = tmp_path_factory.mktemp("meeting") / "celltox_sample.duckdb"
    sample_database(path)
    return path


@pytest.fixture(scope="module")
def mini_db(tmp_path_factory) -> Path:
    from test_app_minidb import build_mini_database
    return build_mini_database(tmp_path_factory.mktemp("mini") / "mini.duckdb")


def _env(monkeypatch, db: Path) -> None:
    monkeypatch.setenv("CELLTOX_DB", str(db))
    monkeypatch.setenv("CELLTOX_AUTH", "off")
    st.cache_data.clear()
    st.cache_resource.clear()


def _open(page: str, studyid: str | None = None, cut: dt.date | None = None, session: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    for k, val in (session or {}).items():
        at.session_state[k] = val
    if studyid:
        at.query_params["studyid"] = studyid
    if cut:
        at.query_params["cut"] = cut.isoformat()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    if page != "overview":
        at.switch_page(f"views/{page}.py")
        at.run()
        assert not at.exception, (page, [e.value for e in at.exception])
    return at


def _links(at: AppTest) -> list[str]:
    return [el.proto.label for el in at.get("page_link")]


def _status_boxes(at: AppTest) -> list[str]:
    """The texts of the page's green, amber and red boxes (the stopping-rule rows and sentences)."""
    return [e.value for kind in ("success", "warning", "error") for e in at.get(kind)]


def _summary(db: Path, studyid: str, cut: dt.date) -> meeting.MeetingSummary:
    con = access.connect(db)
    try:
        r = make_reader(con, studyid, cut)
        return meeting.meeting_summary(r, ReviewStore(default_review_path(db)), study_settings(r))
    finally:
        con.close()


# -- the five questions ---------------------------------------------------------------------------------

def test_meeting_summary_names_deaths_severe_toxicities_and_candidates(sample_db):
    itnk = _summary(sample_db, ITNK, CUT2)
    # (3) the four CAR-ITNK deaths after the first cut, by day, with their cause (02-025 died of CRS on day 10)
    assert list(itnk.deaths["usubjid"]) == ["ITNK-B-01-02-025", "ITNK-B-01-01-030", "ITNK-B-01-03-027",
                                            "ITNK-B-01-01-013"]
    assert set(itnk.deaths["death_cause"]) == {"Cytokine release syndrome", "Disease progression"}
    assert itnk.counts["deaths"] == 4
    # (5) deaths lead "what is new", then the highest grades; never a lower grade above a higher one
    ranks = list(itnk.new["rank"])
    assert ranks == sorted(ranks, reverse=True)
    # the top rank holds the four deaths and the fatal (grade 5) CRS DLT candidate of 02-025 (its AE and its
    # episode are one event), nothing else
    top = itnk.new[itnk.new["rank"] == itnk.new["rank"].max()]
    assert sorted(top["category"]) == ["death"] * 4 + ["dlt_candidate"]
    assert (top.loc[top["category"] == "dlt_candidate", "grade"] == 5).all()
    grades = [g for g, c in zip(itnk.new["grade"], itnk.new["category"]) if c == "adverse_event"]
    assert grades[0] == 5 and grades == sorted(grades, key=lambda g: -(0 if g is None or g != g else g))

    cart1 = _summary(sample_db, CART, CUT1)  # first cut: everything at the cut counts
    # (4) grade >= 3 CRS, ICANS and infections, worst first
    severe = {(r.usubjid, r.toxicity, int(r.grade)) for r in cart1.severe.itertuples()}
    assert {("CD56-CART-01-01-005", "CRS", 4), ("CD56-CART-01-01-012", "ICANS", 5),
            ("CD56-CART-01-01-015", "Infection", 4)} <= severe
    assert list(cart1.severe["grade"]) == sorted(cart1.severe["grade"], reverse=True)
    # (2) the pending candidates, named
    pending = set(cart1.dlt_candidates.loc[cart1.dlt_candidates["state"] == "pending", "usubjid"])
    assert {"CD56-CART-01-01-014", "CD56-CART-01-01-019"} <= pending
    # 012's fatal ICANS was confirmed once, as one event: no twin of it left pending
    assert "CD56-CART-01-01-012" not in pending
    # (1) DL3 sits at 2 of 6 with one pending candidate, one event from de-escalation: red with pending counted
    rules = cart1.rules.set_index("label")
    assert rules.loc["DL3", "level"] == meeting.CROSSED and not rules.loc["DL3", "adjudicated_crossed"]
    assert rules.loc["DL1", "level"] == meeting.INSIDE
    assert list(cart1.rules["label"])[0] == "DL3"  # the red box first
    # the monitored event is named with the study's DLT window (study.yaml dlt.window: days 0-28 in both studies)
    assert set(cart1.rules["event_label"]) == {"DLT (onset days 0-28)"}
    assert set(_summary(sample_db, ITNK, CUT2).rules["event_label"]) == {"CRS or ICANS grade >= 3 (onset days 0-28)"}


def test_rule_rows_name_the_event_with_the_window_they_are_given():
    import pandas as pd
    rules = pd.DataFrame([{"cohort": None, "method": "pocock", "monitored_event": "treatment_related_death",
                           "decision": "continue", "events": 1, "evaluable_n": 9, "pending": 0, "boundary_events": 4,
                           "events_needed": 3, "sentence": "Pocock-type: 1 of 9", "events_if_pending_confirmed": 1,
                           "evaluable_n_if_pending_confirmed": 9, "decision_if_pending_confirmed": "continue",
                           "pending_changes_decision": False}])
    rows = meeting.rule_rows(meeting.CommitteeStatus(rules=rules, candidates=pd.DataFrame(), window=(0, 21)))
    assert rows.loc[0, "event_label"] == "treatment-related death (days 0-21)"
    assert rows.loc[0, "status_text"] == "inside the boundary"


def test_the_worst_case_quotes_a_boundary_only_at_the_n_it_belongs_to():
    """BOIN DL3 with 0 of 5 and 3 pending, one in a subject not yet evaluable: confirmed, 3 of 6. The boundary
    row's 2 is that of n = 5; at n = 6 it is 3, so the status names none rather than the wrong one."""
    import pandas as pd
    row = {"cohort": "DL3", "method": "boin", "monitored_event": "dlt", "decision": "escalate", "events": 0,
           "evaluable_n": 5, "pending": 3, "boundary_events": 2, "events_needed": 2, "sentence": "BOIN",
           "events_if_pending_confirmed": 3, "evaluable_n_if_pending_confirmed": 6,
           "decision_if_pending_confirmed": "de-escalate", "pending_changes_decision": True}
    rows = meeting.rule_rows(meeting.CommitteeStatus(rules=pd.DataFrame([row]), candidates=pd.DataFrame()))
    assert rows.loc[0, "worst_case"] == "3 of 6, de-escalate"
    same_n = {**row, "evaluable_n_if_pending_confirmed": 5}
    rows = meeting.rule_rows(meeting.CommitteeStatus(rules=pd.DataFrame([same_n]), candidates=pd.DataFrame()))
    assert rows.loc[0, "worst_case"] == "3 of 5, boundary 2, de-escalate"


def test_meeting_summary_reads_the_derived_deaths_and_infection_episodes(mini_db):
    from test_app_minidb import CUT1, CUT2, STUDY
    first = _summary(mini_db, STUDY, CUT1)  # a first cut: every death and severe infection is new
    assert first.deaths[["usubjid", "death_day", "death_cause", "cause_category"]].values.tolist() == [
        ["MINI-01-002", 60, "cause not recorded", "other"]]
    inf = first.severe[first.severe["toxicity"] == "Infection"]
    assert inf[["usubjid", "term", "grade", "event_key"]].values.tolist() == [["MINI-01-004", "Pneumonia", 3, "MINI-01-004/AE/1"]]
    later = _summary(mini_db, STUDY, CUT2)  # the same death and infection at the next cut are not new
    assert later.deaths.empty and (later.severe["toxicity"] != "Infection").all()


@pytest.mark.parametrize("row, level", [
    ({"decision": "de-escalate", "events": 3, "pending": 0, "boundary_events": 3, "events_needed": 0,
      "decision_if_pending_confirmed": "de-escalate", "pending_changes_decision": False}, "crossed"),
    ({"decision": "stay", "events": 2, "pending": 1, "boundary_events": 3, "events_needed": 1,
      "decision_if_pending_confirmed": "de-escalate", "pending_changes_decision": True}, "crossed"),
    ({"decision": "escalate", "events": 0, "pending": 1, "boundary_events": 3, "events_needed": 3,
      "decision_if_pending_confirmed": "stay", "pending_changes_decision": True}, "near"),
    ({"decision": "stay", "events": 2, "pending": 0, "boundary_events": 3, "events_needed": 1,
      "decision_if_pending_confirmed": "stay", "pending_changes_decision": False}, "near"),
    ({"decision": "continue", "events": 2, "pending": 0, "boundary_events": 9, "events_needed": None,
      "decision_if_pending_confirmed": "continue", "pending_changes_decision": False}, "inside"),
    ({"decision": "escalate", "events": 0, "pending": 0, "boundary_events": 2, "events_needed": 2,
      "decision_if_pending_confirmed": "escalate", "pending_changes_decision": False}, "inside"),
])
def test_rule_box_colour_follows_distance_to_the_boundary(row, level):
    assert meeting.rule_level(row) == level


def test_overview_counts_a_new_candidate_outside_the_dlt_window_apart_from_those_awaiting_a_decision(
        sample_db, monkeypatch):
    """CD56-CART-01 at 2026-09-30: two new DLT candidates of 021 are listed, AE 3 inside the DLT window and AE 10
    outside it. The headline said '1 new DLT candidate' above both lines; it now says what the second one is."""
    _env(monkeypatch, sample_db)
    at = _open("overview", CART, CUT2)
    md = " ".join(m.value for m in at.markdown)
    assert "**1 new DLT candidate** (and 1 outside the DLT window)" in md


def test_overview_first_screen_names_subjects_with_counts_in_severity_order(sample_db, monkeypatch):
    from dashboard.state import plain_text  # a link's label is Markdown: the delivered ids and terms escaped
    _env(monkeypatch, sample_db)
    at = _open("overview", ITNK, CUT2)
    links = _links(at)
    deaths = [lab for lab in links if lab.endswith(("Disease progression", "Cytokine release syndrome"))
              and "new:" not in lab and " day " in lab]
    assert [re.search(r"\*\*(\S+)\*\*", lab).group(1) for lab in deaths] == [plain_text(u) for u in (
        "ITNK-B-01-02-025", "ITNK-B-01-01-030", "ITNK-B-01-03-027", "ITNK-B-01-01-013")]
    md = " ".join(m.value for m in at.markdown)
    # 02-025's fatal CRS (grade 5) is one new DLT candidate: the AE and its episode are one event
    assert "**4 new deaths**" in md and "**1 new DLT candidate**" in md and "new grade ≥3 AE" in md
    assert "1 new adverse event" not in md and not re.search(r"\b([02-9]|\d\d+) new [a-zA-Z ≥3]+event\b", md)
    new = [lab for lab in links if " new: " in lab]
    # deaths first in "what is new", level with the fatal DLT candidate of 02-025; its candidate, its AE and its
    # CRS episode are one clinical event and one line, which says it is a DLT candidate
    fatal = plain_text("ITNK-B-01-02-025")
    assert new and all("death" in lab or (fatal in lab and "grade 5" in lab) for lab in new[:5])
    assert sum("death" in lab for lab in new[:5]) == 4
    (fatal_crs,) = [lab for lab in new if fatal in lab and "death" not in lab]
    assert f" new: {plain_text('DLT candidate:')} " in fatal_crs and "grade 5" in fatal_crs
    assert all(el.proto.page.endswith("subject_profile") for el in at.get("page_link"))
    boxes = _status_boxes(at)
    assert any(b.startswith("**Study** ·") for b in boxes) and not any("nan" in b for b in boxes)
    assert all(" with a CRS or ICANS grade >= 3 (onset days 0-28) · " in b for b in boxes if b.startswith("**Study** ·"))

    at = _open("overview", CART, CUT1)
    # red: crossed with the pending counted, and said first; the decision as it stands after it
    assert any(e.value.startswith("**DL3** · crossed if the ") and e.value.endswith(
        " · now stay: 2 of 6 with a DLT (onset days 0-28)") for e in at.error)
    boundary = next(e.value for e in at.markdown if e.value.startswith("<svg") and "BOIN" in e.value)
    assert ">BOIN (Liu &amp; Yuan 2015) on DLT (onset days 0-28): events against the boundaries</text>" in boundary
    assert any(e.value.startswith("**DL1** ·") for e in at.success)
    links = _links(at)
    assert any(lab.startswith(f"**{plain_text('CD56-CART-01-01-019')}** Hemophagocytic lymphohistiocytosis grade 3 "
                              "· pending") for lab in links)
    assert any(lab.startswith(f"**{plain_text('CD56-CART-01-01-012')}** ICANS grade 5") for lab in links)


def test_streamlit_toolbar_download_and_deploy_button_are_off(sample_db, monkeypatch):
    _env(monkeypatch, sample_db)
    _open("overview", CART, CUT2)
    assert st.get_option("client.disableDataExport") is True  # the only downloads are the audited buttons
    assert st.get_option("client.toolbarMode") == "viewer"  # no Deploy button, no developer menu
    # a failing page (code updated under a running server) showed its traceback, with the server's paths, to an
    # investigator: the type only now, the rest in the server's console
    assert st.get_option("client.showErrorDetails") == "type"
    config = (ROOT / ".streamlit" / "config.toml").read_text()
    assert 'toolbarMode = "viewer"' in config and "disableDataExport = true" in config
    assert 'showErrorDetails = "type"' in config


# -- charts ---------------------------------------------------------------------------------------------

def _figures(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _values(v) -> list:
    if isinstance(v, dict) and "bdata" in v:
        import base64
        import numpy as np
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"]).tolist()
    return list(v or [])


def _title(fig: dict) -> str:
    t = fig.get("layout", {}).get("title") or {}
    return t.get("text") or "" if isinstance(t, dict) else str(t)


def _axis_id(key: str) -> str:  # 'yaxis2' -> 'y2'
    return key[0] + key[5:]


def _check_log_axes(fig: dict) -> None:
    layout = fig["layout"]
    for key, axis in layout.items():
        if not re.fullmatch(r"[xy]axis\d*", key) or axis.get("type") != "log":
            continue
        aid, letter = _axis_id(key), key[0]
        vals = [float(x) for t in fig["data"] if (t.get(f"{letter}axis") or letter) == aid
                for x in _values(t.get(letter)) if x is not None and not (isinstance(x, float) and math.isnan(x))]
        assert vals, (_title(fig), key, "a log axis with no data")
        assert min(vals) > 0, (_title(fig), key, "log axis for non-positive data")
        lo, hi = axis.get("range") or (None, None)
        assert lo is not None, (_title(fig), key, "a log axis needs a range computed from the data")
        need = math.log10(max(vals)) - math.log10(min(vals))
        assert lo <= math.log10(min(vals)) and hi >= math.log10(max(vals)), (_title(fig), key, "data outside")
        assert hi - lo <= max(need, 1.0) + 2.0, (_title(fig), key, f"span {hi - lo:.1f} decades for {need:.1f}")
        # every horizontal reference line on this axis carries a label at its own height
        for shape in layout.get("shapes", []):
            if shape.get("type") == "line" and shape.get("y0") == shape.get("y1") and \
                    (shape.get("yref") or "y") == aid and letter == "y":
                y = math.log10(float(shape["y0"]))
                assert any(a.get("yref") == aid and abs(float(a.get("y", 1e9)) - y) < 1e-6
                           for a in layout.get("annotations", [])), (_title(fig), "unlabelled line", shape["y0"])
                assert lo <= y <= hi, (_title(fig), "reference line off the axis", shape["y0"])
        for a in layout.get("annotations", []):
            if a.get("yref") == aid and letter == "y":
                assert lo <= float(a["y"]) <= hi, (_title(fig), "label off the axis", a.get("text"), a["y"])


@pytest.mark.parametrize("studyid", [CART, ITNK])
def test_every_chart_passes_the_reading_check(sample_db, monkeypatch, studyid):
    _env(monkeypatch, sample_db)
    figs = {}
    opened = [_open(page, studyid, CUT2) for page in ("overview", "crs_icans", "subject_profile", "adverse_events",
                                                      "dlt_review", "swimmer")]
    # one tab runs at a time
    opened += [_open("labs", studyid, CUT2, session={"labs_tab": tab}) for tab in LAB_TABS]
    opened += [_open(page, studyid, CUT2, session={key: tab}) for page, key, tab in (
        ("crs_icans", "crs_view_tab", "Onset and duration"), ("crs_icans", "crs_view_tab", "Daily grades, days 0-30"),
        ("subject_profile", "profile_view_tab", "Key labs"),
        ("subject_profile", "profile_view_tab", "CAR expansion and persistence"),
        ("swimmer", "swimmer_view_tab", "Kaplan-Meier"))]
    for at in opened:
        for fig in _figures(at):
            figs.setdefault(_title(fig), fig)
            _check_log_axes(fig)
    # the cytopenia panels: both log axes within a few decades, thresholds 0.5/0.1 and 50/20 labelled there
    cyto = figs["Cytopenia and recovery"]
    labels = {a["text"]: (a["yref"], a["y"]) for a in cyto["layout"]["annotations"] if "10^9/L" in a.get("text", "")}
    assert labels["0.5 × 10^9/L"] == ("y", pytest.approx(math.log10(0.5)))
    assert labels["0.1 × 10^9/L"] == ("y", pytest.approx(-1.0))
    assert labels["50 × 10^9/L"] == ("y2", pytest.approx(math.log10(50)))
    assert labels["20 × 10^9/L"] == ("y2", pytest.approx(math.log10(20)))
    assert cyto["layout"]["yaxis2"]["range"][1] < 4  # platelets stay below 10^4, not 10^48
    # ALT over time: the ULN line and its label at 1 x ULN
    alt = next(f for t, f in figs.items() if t.startswith("ALT") and "ULN" in t)
    assert any(a.get("text") == "1 × ULN" and a["y"] == 0 for a in alt["layout"]["annotations"])
    # Kaplan-Meier: numbers at risk under the curve, from all infused subjects at day 0
    km = figs["Overall survival and DFS/PFS from first response"]
    risk = next(t for t in km["data"] if "number at risk" in (t.get("name") or ""))
    con = access.connect(sample_db)
    infused = con.execute("SELECT count(*) FROM subjects WHERE studyid = $s AND data_cut = $c AND infused",
                          {"s": studyid, "c": CUT2}).fetchone()[0]
    con.close()
    assert _values(risk["x"])[0] == 0 and risk["text"][0] == str(infused)
    # top adverse events: most frequent on top, and the title says so
    ae = next(f for t, f in figs.items() if "most frequent preferred terms" in t)
    assert "ordered by number of subjects" in _title(ae)
    # swimmer: CR and CRi have their own symbols, each in the legend
    sw = figs["Follow-up to month 12"]
    symbols = {t["name"]: t["marker"]["symbol"] for t in sw["data"] if (t.get("name") or "").startswith("Response")}
    assert len(set(symbols.values())) == len(symbols)
    if studyid == CART:  # BOIN (an SVG chart): one named marker per cohort, each its own symbol and colour
        boin = next(e.value for e in opened[0].markdown if e.value.startswith("<svg") and "BOIN" in e.value)
        marks = re.findall(r'<g><(circle|rect|polygon) [^>]*fill="(#[0-9A-F]{6})"[^>]*/><title>(DL\d)&#10;', boin)
        assert sorted(m[2] for m in marks) == ["DL1", "DL2", "DL3"]
        assert len({(shape, colour) for shape, colour, _ in marks}) == 3
        assert all(f">{m[2]}: " in boin for m in marks)  # each named in the legend with its events / n


# -- no raw NaN / None --------------------------------------------------------------------------------------

RAW = re.compile(r"\b(nan|NaN|None|NaT|<NA>)\b")


def _texts(at: AppTest) -> list[str]:
    out = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "text", "info", "warning", "error",
                 "success", "exception"):
        out += [str(e.value) for e in at.get(kind)]
    for m in at.metric:
        out += [str(m.label), str(m.value)]
    for w in list(at.selectbox) + list(at.radio) + list(at.multiselect):
        out += [str(o) for o in w.options]
    out += _links(at)
    return out


def _no_raw_text(at: AppTest, where: str) -> None:
    bad = [t for t in _texts(at) if RAW.search(t) and not t.lstrip().startswith("<style>")]
    assert not bad, (where, bad[:5])
    for df in at.dataframe:
        # Streamlit writes "None" in a missing cell unless the table sets a placeholder (the dashboard's is blank)
        blank = df.proto.HasField("placeholder") and df.proto.placeholder == ""
        assert blank or not df.value.isna().any().any(), (where, "missing cells shown as None")
        cells = df.value.astype(str)
        obj = [c for c in df.value.columns if df.value[c].dtype == object]
        assert not cells[obj].isin(["nan", "None", "NaT"]).any().any(), (where, "raw text in cells")


@pytest.mark.parametrize("studyid", [CART, ITNK])
def test_no_page_of_the_sample_studies_shows_raw_nan_or_none(sample_db, monkeypatch, studyid):
    _env(monkeypatch, sample_db)
    for page in PAGES:
        _no_raw_text(_open(page, studyid, CUT2), f"{studyid} {page}")


def test_no_page_of_the_mini_database_shows_raw_nan_or_none(mini_db, monkeypatch):
    _env(monkeypatch, mini_db)
    for page in PAGES:
        _no_raw_text(_open(page), f"mini {page}")


def test_the_study_and_cut_chosen_are_in_the_address_so_a_reload_keeps_them(sample_db, monkeypatch):
    """The cut chosen in the sidebar was lost on a reload (the latest cut came back, silently): the address now
    names the study and cut shown, as a copied link does."""
    _env(monkeypatch, sample_db)
    at = _open("overview")
    assert (at.query_params.get("studyid"), at.query_params.get("cut")) == (CART, CUT2.isoformat())
    at.selectbox(key=f"sb_cut_{CART}").select(CUT1.isoformat()).run()
    assert at.query_params.get("cut") == CUT1.isoformat()
    reloaded = _open("overview", at.query_params.get("studyid"), dt.date.fromisoformat(at.query_params.get("cut")))
    assert reloaded.selectbox(key=f"sb_cut_{CART}").value == CUT1.isoformat()


# -- the landing page, prepared by the launcher before the first browser connects --------------------------------

def test_the_launcher_prepares_the_overview_answers_of_the_landing_cut(sample_db, monkeypatch):
    from dashboard import warmup

    _env(monkeypatch, sample_db)
    real, calls = meeting.meeting_summary, []

    def counted(reader, *args, **kwargs):
        calls.append((reader.scope.studyid, reader.scope.data_cut))
        return real(reader, *args, **kwargs)

    monkeypatch.setattr(meeting, "meeting_summary", counted)
    warmup.prepare_landing_page(sample_db)
    assert calls == [(CART, CUT2)]  # the sidebar's landing study and its latest cut, study-wide
    at = _open("overview")  # a first visit: no study or cut in the URL
    assert calls == [(CART, CUT2)]  # read from the cache the launcher filled, not computed again
    assert any(m.label == "DLT-evaluable" and int(m.value) > 0 for m in at.metric)
    assert at.selectbox(key="sb_study").value == CART and at.selectbox(key=f"sb_cut_{CART}").value == CUT2.isoformat()
    _open("overview", CART, CUT1)  # any other cut is computed when asked
    assert calls == [(CART, CUT2), (CART, CUT1)]


def test_overview_and_dlt_review_draw_the_boundary_chart_without_plotly(sample_db, monkeypatch):
    from dashboard.state import plain_text  # the rule's sentence names a dose level: escaped for Markdown
    sentence = plain_text("BOIN (Liu & Yuan 2015), dose level") + " "
    _env(monkeypatch, sample_db)
    for page in ("overview", "dlt_review"):
        at = _open(page, CART, CUT2)
        if page == "overview":  # its stopping-rule sentences are labelled with the window as well
            rule_boxes = [b for b in _status_boxes(at) if "evaluable subject" in b]
            assert rule_boxes and all(f"Monitored: DLT (onset days 0-28) — {sentence}" in b for b in rule_boxes)
        svgs = [e.value for e in at.markdown if e.value.startswith("<svg")]
        assert svgs and all("Evaluable subjects (n)" in s and "<path " in s for s in svgs), page
        assert not at.get("plotly_chart"), page  # nothing on the page loads Plotly's script
        # the chart names the event with the DLT window: its title, its y axis
        assert all(">BOIN (Liu &amp; Yuan 2015) on DLT (onset days 0-28): events against the boundaries</text>" in s
                   and ">Subjects with DLT (onset days 0-28)</text>" in s for s in svgs), page
    boxes = _status_boxes(at)
    rule_boxes = [b for b in boxes if " · BOIN · monitored: " in b]
    assert rule_boxes and all(f" · BOIN · monitored: DLT (onset days 0-28) — {sentence}" in b for b in rule_boxes)


def test_one_line_per_clinical_event_and_new_candidates_in_the_window_only():
    """CD56's 021: a fatal aspergillosis AE that is its own DLT candidate was two lines ('new: ... grade 5' and
    again '... grade 5 · serious'); a CRS AE, its episode and the episode's candidate were three. An out-of-window
    candidate was counted among the new DLT candidates."""
    import pandas as pd
    ev = pd.DataFrame([
        dict(usubjid="S1", category="dlt_candidate", change="new", description="Aspergillosis grade 5", grade=5,
             serious=False, event_key="S1/AE/4", rank=50, episode_key=None, in_window=True),
        dict(usubjid="S1", category="adverse_event", change="new", description="Aspergillosis grade 5", grade=5,
             serious=True, event_key="S1/AE/4", rank=11, episode_key=None, in_window=None),
        dict(usubjid="S2", category="dlt_candidate", change="new", description="CRS grade 4", grade=4,
             serious=False, event_key="S2/CRS/1", rank=48, episode_key=None, in_window=True),
        dict(usubjid="S2", category="crs_episode", change="new", description="CRS grade 4", grade=4,
             serious=False, event_key="S2/CRS/1", rank=8, episode_key=None, in_window=None),
        dict(usubjid="S2", category="adverse_event", change="new", description="Cytokine release syndrome grade 4",
             grade=4, serious=True, event_key="S2/AE/1", rank=9, episode_key="S2/CRS/1", in_window=None),
        dict(usubjid="S3", category="dlt_candidate", change="new", description="AKI grade 3", grade=3,
             serious=False, event_key="S3/AE/2", rank=46, episode_key=None, in_window=False),
        dict(usubjid="S3", category="subject", change="new", description="new subject", grade=None,
             serious=False, event_key=None, rank=0, episode_key=None, in_window=None),
    ])
    lines = meeting.one_line_per_event(ev)
    assert list(zip(lines["usubjid"], lines["description"], lines["serious"])) == [
        ("S1", "DLT candidate: Aspergillosis grade 5", True),
        ("S2", "DLT candidate: CRS grade 4", True),
        ("S3", "DLT candidate (outside the DLT window): AKI grade 3", False),
        ("S3", "new subject", False)]
    counts = meeting.new_counts(ev)
    assert (counts["dlt_candidates"], counts["dlt_candidates_outside"], counts["saes"]) == (2, 1, 2)


def test_overview_and_dlt_review_before_any_subject_is_evaluable(tmp_path, monkeypatch):
    """CD56-CART-01 cut at 2024-06-01: one subject infused, at day 18 of the 0-28 DLT window, so none is
    DLT-evaluable. The boxes say so instead of '0 of 0 ... (rate 0.00)'; amber is right for BOIN (phi 0.30: at
    n = 1, D = 1, clinical-rules.md 6.2), as the sentence says: a DLT in the next subject would de-escalate."""
    from safety.ingest import ingest_study
    db = tmp_path / "early.duckdb"
    ingest_study(ROOT / "sample_data" / "car_t_cd56", db, cutoff="2024-06-01")
    _env(monkeypatch, db)
    at = _open("overview", CART, dt.date(2024, 6, 1))
    assert {m.label: m.value for m in at.metric}["DLT-evaluable"] == "0"
    amber = [e.value for e in at.get("warning")]
    assert "**DL1** · stay: no subject evaluable yet for DLT (onset days 0-28) · one event from the boundary" in amber
    from dashboard.state import plain_text  # the sentence is escaped for Markdown
    sentence = plain_text("BOIN (Liu & Yuan 2015), dose level DL1: no subject is evaluable yet (no rate): stay. 1 DLT "
                          "in the next subject would de-escalate; 3 DLTs in the next 3 subjects would eliminate the "
                          "dose and every higher dose.")
    assert f"**DL1**: Monitored: DLT (onset days 0-28) — {sentence}" in amber
    assert not any("0 of 0" in b or "rate 0.00" in b for b in _status_boxes(at))
    at.switch_page("views/dlt_review.py")
    at.run()
    assert f"**DL1** · BOIN · monitored: DLT (onset days 0-28) — {sentence}" in [e.value for e in at.get("warning")]

"""One answer everywhere: a decision recorded through the review store changes, in the same process, the
overview, the stopping status and sentence, the DLT review tables and the packet exported right after (CSV
and XLSX); app and packet agree on pending, confirmed and evaluable counts. Runs on the sample database."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from safety.access.reader import Scope, StudyReader, connect
from safety.derive.dlt.decisions import record_decision
from safety.export.packet import write_outputs
from safety.export.xlsx_writer import HEADER_ROWS
from safety.export.csv_writer import read_export_csv
from safety.review.dlt_status import dlt_status
from safety.review.store import ReviewStore, default_review_path

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "dashboard" / "app.py")


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory, sample_database) -> Path:
    path = tmp_path_factory.mktemp("live") / "celltox_sample.duckdb"
    sample_database(path)
    return path


@pytest.fixture
def env(sample_db, tmp_path, monkeypatch):
    db = tmp_path / "study.duckdb"
    shutil.copyfile(sample_db, db)
    shutil.copyfile(default_review_path(sample_db), default_review_path(db))
    monkeypatch.setenv("CELLTOX_DB", str(db))
    monkeypatch.setenv("CELLTOX_AUTH", "off")
    st.cache_data.clear()
    st.cache_resource.clear()
    con = connect(db, read_only=True)
    studyid = con.execute("SELECT min(studyid) FROM studies").fetchone()[0]
    cut = con.execute("SELECT max(data_cut) FROM studies WHERE studyid = $s", {"s": studyid}).fetchone()[0]
    yield db, con, StudyReader(con, Scope(studyid, cut)), ReviewStore(default_review_path(db))
    con.close()
    st.cache_data.clear()
    st.cache_resource.clear()


def _page(name: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    if name != "overview":
        at.switch_page(f"views/{name}.py")
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _texts(at: AppTest) -> str:
    return "\n".join([e.value for e in at.error] + [e.value for e in at.success] + [m.value for m in at.markdown])


def _packet(reader, store, out: Path) -> dict[str, pd.DataFrame]:
    """stopping_rules, dlt_summary and the DLT listing of a packet written now, from its CSV and XLSX files."""
    only = ["stopping_rules", "dlt_summary", "dlt"]
    paths = write_outputs(reader, out, formats=("csv", "xlsx"), only=only, store=store, user="test")
    got = {}
    for name in only:
        [csv_path] = [p for p in paths if p.name.endswith(f"_{name}.csv")]
        got[name] = read_export_csv(csv_path)
    [xlsx] = [p for p in paths if p.suffix == ".xlsx"]
    for name in only:
        sheet = pd.read_excel(xlsx, sheet_name=name, header=HEADER_ROWS, dtype=str).fillna("")
        # the footnotes below the table fill one cell per row
        got[name + ".xlsx"] = sheet[(sheet != "").sum(axis=1) > 1].reset_index(drop=True)
    return got


def _overall(summary: pd.DataFrame, category: str) -> int:
    col = next(c for c in summary.columns if c.startswith("Overall"))
    cell = summary.set_index("Category").loc[category, col]
    return int(str(cell).split(" ")[0])


def _check_packet_agrees(pk: dict, live) -> None:
    c = live.counts
    for sfx in ("", ".xlsx"):
        summary = pk["dlt_summary" + sfx]
        assert _overall(summary, "DLT-evaluable subjects") == c.evaluable
        assert _overall(summary, "Subjects with an adjudicated DLT") == c.confirmed_subjects
        assert _overall(summary, "Subjects with candidates awaiting adjudication") == c.pending_subjects
        stop = pk["stopping_rules" + sfx]
        assert list(stop["Summary"]) == live.sentences()
        assert [int(float(x)) for x in stop["Events"]] == [int(x) for x in live.stopping["events"]]
    listing = pk["dlt"]
    assert (listing["adjudicated_dlt"] == "Pending").sum() == c.pending
    assert (listing["adjudicated_dlt"] == "Yes").sum() == c.confirmed_events
    xl = pk["dlt.xlsx"]
    assert (xl["Adjudicated DLT"] == "Pending").sum() == c.pending


def test_a_decision_changes_app_and_packet_alike(env, tmp_path):
    db, con, reader, store = env
    before = dlt_status(reader, store)
    rv = before.review
    with_dlt = set(rv.loc[rv["counts_as_dlt"].astype(bool), "usubjid"])
    pick = rv[rv["pending"].astype(bool) & rv["screened"].astype(bool) & ~rv["usubjid"].isin(with_dlt)]
    assert len(pick), "the sample data keeps a pending in-window DLT candidate for the committee"
    key, usubjid = pick.iloc[0]["event_key"], pick.iloc[0]["usubjid"]

    ov0, dr0 = _page("overview"), _page("dlt_review")
    pk0 = _packet(reader, store, tmp_path / "before")
    _check_packet_agrees(pk0, before)
    assert int(_metrics(ov0)["DLT candidates pending"]) == before.counts.pending
    # candidates are events; the subjects they belong to are named beside them (the other counts are subjects)
    pending_help = next(x.proto.help for x in ov0.metric if x.label == "DLT candidates pending")
    n = before.counts.pending_subjects
    assert 0 < n <= before.counts.pending and pending_help.endswith(f"in {n} subject{'s' if n != 1 else ''}")
    assert int(_metrics(dr0)["Pending adjudication"]) == before.counts.pending

    record_decision(store, reader, key, "confirmed", "meets the protocol definition (SRC minutes)", "dr.test")

    after = dlt_status(reader, store)
    assert after.counts.pending == before.counts.pending - 1
    assert after.counts.confirmed_subjects == before.counts.confirmed_subjects + 1
    assert int(after.stopping["events"].sum()) == int(before.stopping["events"].sum()) + 1
    assert after.sentences() != before.sentences()
    # the copy stored at load stays what it was: it is never what the pages or the packet show
    stored = reader.sql("SELECT sum(events) AS e FROM stopping_rule_status").iat[0, 0]
    assert int(stored) == int(before.stopping["events"].sum())

    ov = _page("overview")
    m = _metrics(ov)
    assert int(m["DLTs confirmed"]) == after.counts.confirmed_subjects == int(_metrics(ov0)["DLTs confirmed"]) + 1
    assert int(m["DLT candidates pending"]) == after.counts.pending
    assert int(m["DLT-evaluable"]) == after.counts.evaluable
    text = _texts(ov)
    from dashboard.state import plain_text  # a sentence names a cohort or dose level: escaped for Markdown
    assert all(plain_text(s) in text for s in after.sentences())

    dr = _page("dlt_review")
    assert int(_metrics(dr)["Pending adjudication"]) == after.counts.pending
    assert int(_metrics(dr)["Confirmed DLTs (subjects)"]) == after.counts.confirmed_subjects
    cands = dr.dataframe[0].value
    assert cands.set_index("event_key").loc[key, "status"] == "confirmed"
    assert all(plain_text(s) in _texts(dr) for s in after.sentences())

    pk = _packet(reader, store, tmp_path / "after")
    _check_packet_agrees(pk, after)
    assert pk["dlt"].set_index("event_key").loc[key, "adjudicated_dlt"] == "Yes"
    assert pk["dlt.xlsx"].set_index("Event key").loc[key, "Adjudicated DLT"] == "Yes"

    # a withdrawn decision is pending again, in the app and in the packet
    record_decision(store, reader, key, "withdrawn", "recorded against the wrong subject", "dr.test")
    again = dlt_status(reader, store)
    assert again.counts.pending == before.counts.pending and again.sentences() == before.sentences()
    pk2 = _packet(reader, store, tmp_path / "withdrawn")
    _check_packet_agrees(pk2, again)
    assert pk2["dlt"].set_index("event_key").loc[key, "adjudicated_dlt"] == "Pending"
    assert int(_metrics(_page("dlt_review"))["Pending adjudication"]) == before.counts.pending


def test_out_of_window_candidates_are_not_awaited_anywhere(env, tmp_path):
    db, con, reader, store = env
    live = dlt_status(reader, store)
    rv = live.review
    out = rv[rv["screened"].astype(bool) & ~rv["in_window"].fillna(False).astype(bool) & rv["decision"].isna()]
    pk = _packet(reader, store, tmp_path / "p")
    _check_packet_agrees(pk, live)
    labels = pk["dlt"].set_index("event_key")["adjudicated_dlt"]
    assert all(labels[k] == "Not adjudicated (outside DLT window)" for k in out["event_key"])
    assert live.counts.pending_subjects == rv.loc[rv["pending"].astype(bool), "usubjid"].nunique()


def test_dlt_review_counts_infused_subjects_not_all_subjects(env):
    db, con, reader, store = env
    infused = int(reader.scalar("SELECT count(*) FROM subjects WHERE infused"))
    subjects = int(reader.scalar("SELECT count(*) FROM subjects"))
    at = _page("dlt_review")
    line = next(m.value for m in at.markdown if "infused subjects are DLT-evaluable" in m.value)
    evaluable, of = map(int, re.match(r"\*\*(\d+)\*\* of (\d+) infused", line).groups())
    assert of == infused and evaluable == dlt_status(reader, store).counts.evaluable
    assert subjects >= infused  # the table still lists every subject; the sentence counts the infused ones

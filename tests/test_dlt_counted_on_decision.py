"""A subject whose records a load quarantines keeps one denominator everywhere.

S-001 (DL1, infused 2024-02-01) had a related grade 3 pneumonitis on days 4-19 that the committee confirmed as a DLT
on the March cut. In the April delivery S-001's consent date is a typo: the DM row, and with it the subject's EX,
AE and every other record, is quarantined. The confirmed DLT stays counted (docs/dlt.md, "Subjects whose records the
cut does not hold"): S-001 is infused and DLT-evaluable with the DLT in the overview's tiles, the DLT review, the
evaluability listing, the stopping rule and the packet's DLT summary and disposition alike, and the evaluability
reason says why. Before, the load's evaluability row stayed after the decision was withdrawn, "no follow-up recorded
after infusion", and DltCounts.infused was one more than the overview's Infused tile.
"""
from __future__ import annotations

import pandas as pd

from safety.access.reader import Scope, StudyReader, connect
from safety.core.config import validate
from safety.derive.dlt import decisions as adj
from safety.derive.dlt.evaluability import NO_INFUSION_IN_CUT, NOT_IN_CUT
from safety.export.tables import build_table
from safety.ingest import ingest_study
from safety.review.dlt_status import dlt_status, live_stopping_status
from safety.review.store import ReviewStore
from test_app_pages import _metrics, _open, serve
from test_dlt_vanished import KEY, _study
from test_ingest_fixtures import DM, EX, STUDY, write_frame

MARCH, APRIL = "2024-03-31", "2024-04-30"
TYPO = DM.assign(RFICDTC=[("2024-13-45" if u == "S-001" else d) for u, d in zip(DM["USUBJID"], DM["RFICDTC"])])
RULE = validate({"stopping_rule": {"min_n": 1}})


def _reader(con, cut: str) -> StudyReader:
    return StudyReader(con, Scope(STUDY, pd.Timestamp(cut).date()))


def _decided_in_march(tmp_path, decision: str = "confirmed"):
    """The study loaded at the March cut with KEY decided there: (database, review store)."""
    db = tmp_path / "s.duckdb"
    store = ReviewStore(tmp_path / "s.review.sqlite")  # beside the database: the app reads it too
    ingest_study(_study(tmp_path / "march", DM), db, cutoff=MARCH, review_store_path=store.path)
    con = connect(db)
    adj.record_decision(store, _reader(con, MARCH), KEY, decision, "oxygen for 10 days, no infection", "dr a")
    con.close()
    return db, store


def _denominators(db, store, cut: str) -> dict:
    """What every place counts at ``cut``: DltCounts, the evaluability rows, the stopping rule (live and as the load
    stored it), the packet's DLT summary and disposition (Overall), and the overview's Infused tile as the page
    computes it (the cut's infused subjects and those counted on a DLT decision)."""
    con = connect(db)
    try:
        reader = _reader(con, cut)
        status = dlt_status(reader, store)
        ev = status.evaluability.set_index("usubjid")
        [live] = live_stopping_status(reader, store, RULE).to_dict("records")
        stored = con.execute("SELECT evaluable_n, events FROM stopping_rule_status WHERE data_cut = $c",
                             {"c": cut}).fetchone()
        summary = build_table(reader, "dlt_summary", store, live=status).set_index("Category")
        disposition = build_table(reader, "disposition", store, live=status).set_index("Status")
        overall = next(c for c in summary.columns if c.startswith("Overall"))
        overall_disposition = next(c for c in disposition.columns if c.startswith("Overall"))
        in_cut = con.execute("SELECT count(*) FROM subjects WHERE data_cut = $c AND infused", {"c": cut}).fetchone()[0]
        return {"counts": status.counts, "ev": ev, "live": (live["evaluable_n"], live["events"]), "stored": stored,
                "summary": summary, "overall": overall, "in_cut_infused": in_cut,
                "disposition_infused": disposition.loc["Infused", overall_disposition].split(" ")[0],
                "notes": summary.attrs["notes"]}
    finally:
        con.close()


def test_a_quarantined_subject_with_a_confirmed_dlt_is_counted_alike_everywhere_until_withdrawn(tmp_path, monkeypatch):
    db, store = _decided_in_march(tmp_path)
    ingest_study(_study(tmp_path / "april", TYPO), db, cutoff=APRIL, review_store_path=store.path)
    con = connect(db)
    quarantined = con.execute("SELECT DISTINCT domain FROM quarantine WHERE data_cut = $c AND usubjid = 'S-001'",
                              {"c": APRIL}).fetchall()
    assert {d for (d,) in quarantined} >= {"DM", "EX", "AE"}
    assert con.execute("SELECT count(*) FROM subjects WHERE data_cut = $c AND usubjid = 'S-001'",
                       {"c": APRIL}).fetchone()[0] == 0
    con.close()

    d = _denominators(db, store, APRIL)
    # S-002 (followed through day 28) and S-001 (with the DLT) are evaluable; S-003 infused, not yet evaluable
    assert d["in_cut_infused"] == 2
    assert (d["counts"].infused, d["counts"].counted_on_decision, d["counts"].evaluable) == (3, 1, 2)
    assert d["counts"].confirmed_subjects == 1
    assert d["live"] == d["stored"] == (2, 1)  # the stopping rule: 1 of 2 evaluable had a DLT
    s001 = d["ev"].loc["S-001"]
    assert (bool(s001["infused"]), bool(s001["evaluable"]), s001["follow_up_status"], s001["cohort"]) == \
        (True, True, NOT_IN_CUT, "DL1")  # the cohort known from March
    assert s001["reason"] == ("not in this data cut (no DM row loaded: quarantined or not delivered); counted as "
                              "infused with the committee's DLT decision until it is re-reviewed")
    assert not d["ev"]["reason"].str.contains("no follow-up recorded").any()
    overall = d["summary"][d["overall"]]
    assert d["overall"] == "Overall (N=3) n (%)"
    assert (overall["Infused subjects"], overall["DLT-evaluable subjects"],
            overall["Subjects with an adjudicated DLT"]) == ("3 (100.0)", "2 (66.7)", "1 (33.3)")
    assert any(n.startswith("1 subject counted as infused and DLT-evaluable on a committee DLT decision in force: "
                            "S-001 (not in this data cut).") for n in d["notes"])
    assert d["disposition_infused"] == "3"

    # the overview and the DLT review pages print the same denominator, and say why
    app = serve(db, monkeypatch)
    next(app)
    try:
        _pages_before_and_after_withdrawal(db, store)
    finally:
        next(app, None)


def _pages_before_and_after_withdrawal(db, store) -> None:
    overview = _open()
    assert _metrics(overview)["Infused"] == "3" and _metrics(overview)["DLT-evaluable"] == "2"
    assert any("S-001 (not in this data cut)" in w.value.replace("\\", "") for w in overview.warning)
    review = _open("dlt_review")
    assert any("**2** of 3 infused subjects are DLT-evaluable." in m.value for m in review.markdown)

    # the committee withdraws the decision: S-001 is no longer counted anywhere (no stale row, no untrue reason)
    con = connect(db)
    adj.record_decision(store, _reader(con, APRIL), KEY, "withdrawn", "re-review: await the corrected DM", "dr a")
    con.close()
    d = _denominators(db, store, APRIL)
    assert "S-001" not in d["ev"].index
    assert (d["counts"].infused, d["counts"].counted_on_decision, d["counts"].evaluable) == (2, 0, 1)
    assert d["counts"].infused == d["in_cut_infused"]
    assert d["live"] == (1, 0)
    assert d["summary"][d["overall"]]["Infused subjects"] == "2 (100.0)"
    assert d["disposition_infused"] == "2"
    overview = _open()
    assert _metrics(overview)["Infused"] == "2" and _metrics(overview)["DLT-evaluable"] == "1"
    assert not any("S-001" in w.value.replace("\\", "") for w in overview.warning)
    review = _open("dlt_review")
    assert any("**1** of 2 infused subjects is DLT-evaluable." in m.value for m in review.markdown)


def test_a_dlt_decided_after_the_load_on_a_subject_gone_from_the_cut_reaches_the_stopping_rule(tmp_path):
    """Rejected in March, S-001 gone in April, confirmed on second look after the April load: the DLT review counted
    it as a confirmed DLT while the stopping rule (read from what the load derived) did not."""
    db, store = _decided_in_march(tmp_path, "rejected")
    ingest_study(_study(tmp_path / "april", TYPO), db, cutoff=APRIL, review_store_path=store.path)
    d = _denominators(db, store, APRIL)
    assert "S-001" not in d["ev"].index and d["live"] == (1, 0)
    con = connect(db)
    adj.record_decision(store, _reader(con, APRIL), KEY, "confirmed", "second look: it was a DLT", "dr b")
    con.close()
    d = _denominators(db, store, APRIL)
    assert d["counts"].confirmed_subjects == 1
    assert (d["counts"].infused, d["counts"].evaluable) == (3, 2)
    assert d["live"] == (2, 1)
    assert d["ev"].loc["S-001", "follow_up_status"] == NOT_IN_CUT


def test_a_subject_whose_infusion_is_quarantined_keeps_a_confirmed_dlt_counted_and_says_why(tmp_path):
    """Reloaded with S-001's EX dates unreadable and no RFXSTDTC, S-001 is in the cut but not infused in it: the
    confirmed DLT was a confirmed subject on the DLT review and no event of the stopping rule ('not infused')."""
    db, store = _decided_in_march(tmp_path)
    folder = _study(tmp_path / "april", DM.assign(RFXSTDTC=["" if u == "S-001" else x
                                                            for u, x in zip(DM["USUBJID"], DM["RFXSTDTC"])]))
    write_frame(EX.assign(EXSTDTC=["2024-99-99" if u == "S-001" else x for u, x in zip(EX["USUBJID"], EX["EXSTDTC"])]),
                folder / "ex.csv")
    ingest_study(folder, db, cutoff=APRIL, review_store_path=store.path)
    con = connect(db)
    assert con.execute("SELECT infused FROM subjects WHERE data_cut = $c AND usubjid = 'S-001'",
                       {"c": APRIL}).fetchone() == (False,)
    assert con.execute("SELECT count(*) FROM quarantine WHERE data_cut = $c AND usubjid = 'S-001' AND domain = 'EX'",
                       {"c": APRIL}).fetchone()[0] == 3
    con.close()
    d = _denominators(db, store, APRIL)
    s001 = d["ev"].loc["S-001"]
    assert (bool(s001["infused"]), bool(s001["evaluable"]), s001["follow_up_status"]) == \
        (True, True, NO_INFUSION_IN_CUT)
    assert s001["reason"].startswith("no infusion in this data cut (no EX infusion or RFXSTDTC loaded: see the "
                                     "quarantine); counted as infused with the committee's DLT decision")
    assert (d["in_cut_infused"], d["counts"].infused, d["counts"].counted_on_decision) == (2, 3, 1)
    assert d["live"] == d["stored"] == (2, 1)
    assert d["summary"][d["overall"]]["Infused subjects"] == "3 (100.0)"
    assert d["disposition_infused"] == "3"

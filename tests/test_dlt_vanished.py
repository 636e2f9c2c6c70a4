"""A committee decision whose subject leaves the cut on reload (DM row quarantined) stays visible and counted,
and the load names it."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd

from safety.access.reader import Scope, StudyReader
from safety.core.config import validate
from safety.derive.dlt import decisions as adj
from safety.ingest import ingest_study
from safety.review.dlt_status import live_stopping_status
from safety.review.store import ReviewStore
from test_ingest_fixtures import AE, DM, DOMAINS, STUDY, make_study

ROOT = Path(__file__).resolve().parents[1]
CUT = "2024-03-31"
KEY = "S-001/AE/4"


def _study(root: Path, dm: pd.DataFrame) -> Path:
    # S-001 (infused 2024-02-01): related grade 3 pneumonitis on days 4-19, an R6 candidate
    pneumonitis = pd.DataFrame([{**AE.iloc[0].to_dict(), "AESEQ": 4, "AETERM": "Pneumonitis",
                                 "AEDECOD": "PNEUMONITIS", "AEBODSYS": "RESP", "AETOXGR": "3", "AESEV": "SEVERE",
                                 "AEREL": "PROBABLE", "AEOUT": "RECOVERED/RESOLVED",
                                 "AESTDTC": "2024-02-05", "AEENDTC": "2024-02-20"}])
    return make_study(root, "csv", domains={**DOMAINS, "dm": dm, "ae": pd.concat([AE, pneumonitis])})


def _reader(db):
    con = duckdb.connect(str(db), read_only=True)
    return con, StudyReader(con, Scope(STUDY, pd.Timestamp(CUT).date()))


def _confirmed_at_cut(tmp_path: Path, rationale: str):
    """The study loaded at CUT with KEY confirmed there by 'dr a': (database, review store path, store)."""
    db, review = tmp_path / "s.duckdb", tmp_path / "s.review.sqlite"
    store = ReviewStore(review)
    ingest_study(_study(tmp_path / "v1", DM), db, cutoff=CUT, review_store_path=review)
    con = duckdb.connect(str(db))
    adj.record_decision(store, StudyReader(con, Scope(STUDY, pd.Timestamp(CUT).date())), KEY, "confirmed",
                        rationale, "dr a")
    con.close()
    return db, review, store


def test_confirmed_dlt_of_a_quarantined_subject_stays_counted_and_the_load_warns(tmp_path):
    db, review, store = _confirmed_at_cut(tmp_path, "pneumonitis needing oxygen, no infection found")
    # reload the same cut with a typo in S-001's consent date: the DM row (the subject) is quarantined
    bad = DM.copy()
    bad.loc[bad["USUBJID"] == "S-001", "RFICDTC"] = "2024-13-45"
    p = subprocess.run([sys.executable, "-m", "safety", "ingest", str(_study(tmp_path / "v2", bad)), "--db", str(db),
                        "--cutoff", CUT, "--review-db", str(review)], cwd=ROOT, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr
    warning = [line for line in p.stdout.splitlines() if line.startswith("warning:")]
    assert warning == [f"warning: committee decision 'confirmed' on {KEY} (by dr a, {CUT} cut): subject S-001 "
                       "(and the event) no longer in the data: re-review; still counted as confirmed (a DLT) until "
                       "a new decision is recorded"]
    con, reader = _reader(db)
    assert con.execute("SELECT count(*) FROM subjects WHERE usubjid = 'S-001'").fetchone()[0] == 0
    row = adj.review_table(reader, store).set_index("event_key").loc[KEY]
    assert row["status"] == "event no longer in the data: re-review"
    assert bool(row["needs_rereview"]) and bool(row["counts_as_dlt"])
    assert row["evidence"].startswith("subject not in this data cut")
    total = adj.dlt_counts(reader, store).iloc[-1]
    assert (total["confirmed"], total["subjects_with_dlt"], total["needs_rereview"]) == (1, 1, 1)
    # the packet's DLT listing says the same: the decision listed with its status, the subject's site unknown
    from safety.export.listings import listing_dlt
    listed = listing_dlt(reader, store).set_index("event_key").loc[KEY]
    assert (listed["status"], listed["adjudicated_dlt"]) == ("event no longer in the data: re-review", "Yes")
    config = validate({"stopping_rule": {"min_n": 1}})
    [live] = live_stopping_status(reader, store, config).to_dict("records")
    assert live["events"] == 1
    [stored] = con.execute("SELECT events FROM stopping_rule_status").fetchall()
    assert stored == (1,)
    # the packet's DLTs-by-cohort table counts the subject as the stopping rule does (infused, evaluable, with the
    # DLT), in the cohort last known for them (none: this cut was the only one), and a note names them
    from safety.export.tables import table_dlt_summary
    table = table_dlt_summary(reader, store).set_index("Category")
    overall = table["Overall (N=3) n (%)"]
    assert (overall["Infused subjects"], overall["DLT-evaluable subjects"],
            overall["Subjects with an adjudicated DLT"]) == ("3 (100.0)", "2 (66.7)", "1 (33.3)")
    assert table["Cohort (not in this data cut) (N=1) n (%)"]["Subjects with an adjudicated DLT"] == "1 (100.0)"
    assert ("1 subject counted as infused and DLT-evaluable on a committee DLT decision in force: S-001 (not in this "
            "data cut). The DLT stays counted, here and in the stopping rules, until the committee decides again "
            "(re-review it on the DLT review page). They are in the rows and the column totals above."
            ) in table.attrs["notes"]
    # the committee re-reviews it after the load: the flag goes, the decision still counts
    adj.record_decision(store, reader, KEY, "confirmed", "re-reviewed: the DM typo does not change the DLT", "dr a")
    row = adj.review_table(reader, store).set_index("event_key").loc[KEY]
    assert (row["status"], bool(row["needs_rereview"]), bool(row["counts_as_dlt"])) == \
        ("confirmed (event no longer in the data, decided again since)", False, True)
    total = adj.dlt_counts(reader, store).iloc[-1]
    assert (total["confirmed"], total["needs_rereview"]) == (1, 0)
    con.close()


def test_a_later_decision_is_not_carried_back_to_an_earlier_cut_and_site_readers_see_no_lost_rows(tmp_path):
    db, review = tmp_path / "s.duckdb", tmp_path / "s.review.sqlite"
    store = ReviewStore(review)
    ingest_study(_study(tmp_path / "v1", DM), db, cutoff=CUT, review_store_path=review)
    con = duckdb.connect(str(db))
    adj.record_decision(store, StudyReader(con, Scope(STUDY, pd.Timestamp(CUT).date())), KEY, "confirmed", "x", "dr a")
    con.close()
    # an earlier cut in which S-001 had not consented yet: the decision made later is not a lost decision there
    early = DM[DM["USUBJID"] != "S-001"]
    ingest_study(_study(tmp_path / "v0", early), db, cutoff="2024-01-31", review_store_path=review)
    con = duckdb.connect(str(db), read_only=True)
    r0 = StudyReader(con, Scope(STUDY, pd.Timestamp("2024-01-31").date()))
    assert KEY not in set(adj.review_table(r0, store)["event_key"])
    con.close()
    # the subject leaves the later cut: readers of every site see the decision, a site-scoped reader cannot
    # tell a lost subject from another site's and sees none
    bad = DM.copy()
    bad.loc[bad["USUBJID"] == "S-001", "RFICDTC"] = "2024-13-45"
    ingest_study(_study(tmp_path / "v2", bad), db, cutoff=CUT, review_store_path=review)
    con, reader = _reader(db)
    assert KEY in set(adj.review_table(reader, store)["event_key"])
    site = StudyReader(con, Scope(STUDY, pd.Timestamp(CUT).date(), sites=("20",)))
    assert KEY not in set(adj.review_table(site, store)["event_key"])
    con.close()


def test_a_decision_made_on_a_later_cut_does_not_apply_to_an_earlier_cut_of_the_same_subject(tmp_path):
    """S-001 is enrolled at both earlier cuts. On 2024-02-03 the pneumonitis (from 2024-02-05) has not happened:
    the September-style decision made on the 2024-03-31 cut showed there as a confirmed DLT 'no longer in the
    data', its rationale and all, and counted. On 2024-02-10 the event is there (grade 3, ongoing) with no decision,
    as the committee had it then. The later cut keeps the decision."""
    db, review, store = _confirmed_at_cut(tmp_path, "fatal pneumonitis")
    for early in ("2024-02-03", "2024-02-10"):
        ingest_study(_study(tmp_path / f"v{early}", DM), db, cutoff=early, review_store_path=review)
    con = duckdb.connect(str(db), read_only=True)
    before = StudyReader(con, Scope(STUDY, pd.Timestamp("2024-02-03").date()))
    assert KEY not in set(adj.review_table(before, store)["event_key"])
    assert adj.dlt_counts(before, store).iloc[-1]["confirmed"] == 0
    during = StudyReader(con, Scope(STUDY, pd.Timestamp("2024-02-10").date()))
    assert during.scalar("SELECT aetoxgr FROM adverse_events WHERE event_key = $k", {"k": KEY}) == 3
    table = adj.review_table(during, store)
    assert table["decision"].isna().all() and adj.dlt_counts(during, store).iloc[-1]["confirmed"] == 0
    after = StudyReader(con, Scope(STUDY, pd.Timestamp(CUT).date()))
    assert adj.review_table(after, store).set_index("event_key").loc[KEY, "status"] == "confirmed"
    con.close()


def test_an_event_over_before_the_infusion_on_day_0_is_outside_the_dlt_window(tmp_path):
    """The DLT observation starts at dosing: a related grade 4 hypotension 08:00-09:00 on day 0, the cells given at
    10:00, is no DLT of the product (in_window false, never pending), in the review, the AE listing and the
    candidates alike. Ended after the infusion, or with no end time, it is in the window as before."""
    from safety.export.listings import listing_ae

    ex = DOMAINS["ex"].copy()
    ex.loc[(ex["USUBJID"] == "S-001") & (ex["EXSEQ"] == 3), "EXSTDTC"] = "2024-02-01T10:00"
    hypotension = [{**AE.iloc[0].to_dict(), "AESEQ": seq, "AETERM": "Hypotension", "AEDECOD": "HYPOTENSION",
                    "AEBODSYS": "VASC", "AETOXGR": "4", "AESEV": "SEVERE", "AEREL": "PROBABLE",
                    "AEOUT": "RECOVERED/RESOLVED", "AESTDTC": start, "AEENDTC": end}
                   for seq, start, end in [(10, "2024-02-01T08:00", "2024-02-01T09:00"),
                                           (11, "2024-02-01T08:00", "2024-02-01T11:00"),
                                           (12, "2024-02-01", "2024-02-01")]]
    study = make_study(tmp_path / "v1", "csv", domains={**DOMAINS, "ex": ex,
                                                        "ae": pd.concat([AE, pd.DataFrame(hypotension)])})
    db, store = tmp_path / "s.duckdb", ReviewStore(tmp_path / "s.review.sqlite")
    ingest_study(study, db, cutoff=CUT, review_store_path=tmp_path / "s.review.sqlite")
    con, reader = _reader(db)
    cand = {r[0]: r[1:] for r in con.execute(
        "SELECT event_key, in_window, evidence FROM dlt_candidates WHERE event_key LIKE 'S-001/AE/1_'").fetchall()}
    assert cand == {
        "S-001/AE/10": (False, "HYPOTENSION grade 4 on days 0-0 (1 days), related (PROBABLE); ended before the "
                               "infusion: outside the DLT window"),
        "S-001/AE/11": (True, "HYPOTENSION grade 4 on days 0-0 (1 days), related (PROBABLE)"),
        "S-001/AE/12": (True, "HYPOTENSION grade 4 on days 0-0 (1 days), related (PROBABLE)")}
    review = adj.review_table(reader, store).set_index("event_key")
    assert review.loc["S-001/AE/10", "status"] == "outside DLT window"
    assert not review.loc["S-001/AE/10", "pending"] and review.loc["S-001/AE/11", "pending"]
    listed = listing_ae(reader).set_index("event_key")["in_dlt_window"]
    assert (listed["S-001/AE/10"], listed["S-001/AE/11"], listed["S-001/AE/12"]) == (False, True, True)

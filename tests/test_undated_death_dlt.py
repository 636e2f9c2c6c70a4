"""A death recorded in DM or DS without a date, with no fatal AE, is screened as a DLT candidate (R1).

DM DTHFL Y without DTHDTC and a DS death record without DSSTDTC make a death of unknown day (docs/outcomes.md), but the
screening read only deaths with a day, so such a death of an infused subject with no fatal AE was never put to the
committee, while an undated fatal AE was (in the window by its unknown onset). Now the undated death is the candidate
``<usubjid>/DEATH`` as a dated one is, in the window unless the subject was known alive after it, the rule and the
words of the treatment-related deaths and the evaluability (safety.derive.dlt.events).
"""
from __future__ import annotations

import duckdb
import pandas as pd

from safety.access.reader import Scope, StudyReader, connect
from safety.derive.dlt import decisions as adj
from safety.ingest import ingest_study
from safety.review.dlt_status import dlt_status
from safety.review.store import ReviewStore
from test_ingest_fixtures import DM, DOMAINS, STUDY, STUDY_YAML, make_study

CUT = "2024-03-31"


def undated_deaths_study(root, ds_term: str):
    """The fixture study with two deaths of unknown day and no fatal AE: S-003 (infused 2024-03-12, known alive on
    day 3) DM DTHFL Y without DTHDTC; S-001 (infused 2024-02-01, known alive on day 29) a DS death record
    ``ds_term`` without DSSTDTC. S-002: DS dates its death 2024-03-20 (day 39)."""
    dm = DM.assign(DTHFL=["", "", "Y", "", ""])
    ds = pd.DataFrame({"STUDYID": STUDY, "USUBJID": ["S-001"], "DSSEQ": [9], "DSTERM": [ds_term],
                       "DSDECOD": ["DEATH"], "DSCAT": "DISPOSITION EVENT", "DSSTDTC": [""]})
    return make_study(root, domains=dict(DOMAINS, dm=dm, ds=pd.concat([DOMAINS["ds"], ds])), study_yaml=STUDY_YAML)


def _load(tmp_path):
    """:func:`undated_deaths_study`, S-001's DS death 'Sepsis'."""
    study = undated_deaths_study(tmp_path / "s", "Sepsis")
    db = tmp_path / "db.duckdb"
    store = ReviewStore(tmp_path / "db.review.sqlite")
    ingest_study(study, db, cutoff=CUT, review_store_path=store.path)
    return db, store


def test_an_undated_dm_or_ds_death_is_an_r1_candidate_in_the_window_unless_known_alive_after_it(tmp_path):
    db, store = _load(tmp_path)
    con = duckdb.connect(str(db), read_only=True)
    try:
        cand = {r[0]: r[1:] for r in con.execute(
            "SELECT event_key, source, rule_id, onset_day, in_window, evidence, event_fingerprint "
            "FROM dlt_candidates").fetchall()}
        reason = dict(con.execute("SELECT usubjid, reason FROM dlt_evaluability").fetchall())
        no_fatal_ae = con.execute("SELECT count(*) FROM adverse_events WHERE aetoxgr = 5").fetchone()[0]
    finally:
        con.close()
    assert no_fatal_ae == 0
    # S-003: died on a day not recorded, known alive only to day 3: inside the window (days 0-28) for all the data
    # say; the key a dated death has, so a decision keeps it when a date arrives
    source, rule, onset, in_window, evidence, fingerprint = cand["S-003/DEATH"]
    assert (source, rule, onset, in_window) == ("death", "R1", None, True)
    assert evidence == ("Death on a day not recorded (known alive on day 3) (cause: not recorded); no fatal AE "
                        "recorded; date of death unknown: screened as in the DLT window")
    # the evaluability says the same day in the same words, and the candidate awaits the committee
    assert reason["S-003"] == ("died on a day not recorded (known alive on day 3); "
                               "DLT candidate pending adjudication")
    # S-001: known alive on day 29, after the window: listed, outside it, never pending
    assert cand["S-001/DEATH"][:4] == ("death", "R1", None, False)
    assert cand["S-001/DEATH"][4].endswith("(cause: Sepsis); no fatal AE recorded; date of death unknown: "
                                           "known alive after the DLT window")
    # a dated death reads as before
    assert cand["S-002/DEATH"][3:5] == (False, "Death on day 39 (cause: Multi-organ failure); no fatal AE recorded")

    # the committee decides the undated death on its key: a DLT, counted, the subject evaluable
    con = connect(db)
    try:
        reader = StudyReader(con, Scope(STUDY, pd.Timestamp(CUT).date()))
        adj.record_decision(store, reader, "S-003/DEATH", "confirmed", "death in the window", "dr a")
        status = dlt_status(reader, store)
    finally:
        con.close()
    review = status.review.set_index("event_key")
    assert review.loc["S-003/DEATH", "status"] == "confirmed"
    assert review.loc["S-001/DEATH", "status"] == "outside DLT window"
    ev = status.evaluability.set_index("usubjid")
    assert ev.loc["S-003", "evaluable"] and ev.loc["S-003", "reason"] == "DLT candidate confirmed"


def test_an_undated_death_with_no_day_known_alive_lies_in_the_window():
    """With neither a death day nor a day known alive, the death may be any day: it is screened as in the window,
    never dropped from it; a day known alive after the window, or a dated death after it, leaves it out."""
    from safety.derive.dlt.events import death_in_window_sql
    cases = [(None, None, True), (None, 3, True), (None, 40, False), (10, None, True), (45, 2, False)]
    rows = duckdb.sql(
        f"SELECT {death_in_window_sql('d', 'lka')} AS in_window FROM (SELECT unnest($d) AS d, unnest($lka) AS lka)",
        params={"d": [c[0] for c in cases], "lka": [c[1] for c in cases],
                "win_start": 0, "win_end": 28}).fetchall()
    assert [r[0] for r in rows] == [c[2] for c in cases]

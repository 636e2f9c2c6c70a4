"""A reported CRS/ICANS AE that the subject's bedside assessments could not grade (ICE not done, no temperature)
is an episode of source 'reported AE', counted and screened for DLT; an AE that a gradable assessment covers is
compared as before. Loaded through the real ingest."""
from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from safety.ingest import ingest_study
from test_dlt_from_delivery import CUT, ae, day, rows
from test_ingest_fixtures import AE, DOMAINS, make_study

ICANS_TERM = "Immune effector cell-associated neurotoxicity syndrome"
CRS_TERM = "Cytokine release syndrome"


def crs_row(subject: str, n: int, temp: float | None, *, hypotension=False, pressors=0) -> dict:
    return {"USUBJID": subject, "CRSDTC": day(subject, n, "08:00"), "TEMP_C": "" if temp is None else str(temp),
            "HYPOTENSION": "Y" if hypotension else "N", "VASOPRESSORS": str(pressors), "VASOPRESSIN": "N",
            "OXYGEN": "NONE", "O2_FLOW_LMIN": ""}


def icans_row(subject: str, n: int, ice: int | None) -> dict:
    return {"USUBJID": subject, "ICANSDTC": day(subject, n, "08:00"), "ICE_SCORE": "" if ice is None else str(ice),
            "CONSCIOUSNESS": "AWAKE", "SEIZURE": "NONE", "MOTOR_WEAKNESS": "NONE", "CEREBRAL_EDEMA": "NONE"}


def load(tmp_path: Path):
    """S-001: a gradable CRS episode (fever day 1, fever + hypotension day 2, afebrile days 3-4) with a reported
    grade 3 CRS matching it, then CRS rows without temperature on days 9-13 under a reported grade 3 CRS on
    days 10-12; ICE 10 every day 1-10 under a reported grade 3 ICANS on days 4-5.
    S-002 (the reviewer's case): ICANS rows on days 0-8 with the ICE never done, awake, nothing abnormal; a
    serious ICANS grade 4 reported on days 4-6.
    S-003 (the reviewer's case): CRS rows on days 0-8 without temperature (kept in VS), one vasopressor with
    hypotension on days 3-4; CRS grade 3 reported on days 2-5."""
    crs = ([crs_row("S-001", 1, 38.6), crs_row("S-001", 2, 39.1, hypotension=True), crs_row("S-001", 3, 37.0),
            crs_row("S-001", 4, 37.0)] + [crs_row("S-001", n, None) for n in range(9, 14)]
           + [crs_row("S-003", n, None, hypotension=n in (3, 4), pressors=int(n in (3, 4))) for n in range(0, 9)])
    icans = [icans_row("S-001", n, 10) for n in range(1, 11)] + [icans_row("S-002", n, None) for n in range(0, 9)]
    aes = [ae("S-001", 11, CRS_TERM, 3, day("S-001", 1), day("S-001", 3)),
           ae("S-001", 12, CRS_TERM, 3, day("S-001", 10), day("S-001", 12)),
           ae("S-001", 13, ICANS_TERM, 3, day("S-001", 4), day("S-001", 5)),
           ae("S-002", 14, ICANS_TERM, 4, day("S-002", 4), day("S-002", 6)),
           ae("S-003", 15, CRS_TERM, 3, day("S-003", 2), day("S-003", 5))]
    base_ae = AE[AE["AEDECOD"] != "CYTOKINE RELEASE SYNDROME"]   # the fixture's CRS AE has a partial date
    domains = {**DOMAINS, "ae": pd.concat([base_ae, pd.DataFrame(aes)], ignore_index=True),
               "crs_assessments": pd.DataFrame(crs), "icans_assessments": pd.DataFrame(icans)}
    db = tmp_path / "s.duckdb"
    ingest_study(make_study(tmp_path / "study", "csv", domains=domains), db, cutoff=CUT)
    return duckdb.connect(str(db), read_only=True)


def test_reported_aes_that_no_gradable_assessment_covers_are_episodes_and_screened(tmp_path):
    con = load(tmp_path)
    eps = rows(con, "SELECT event_key, source, onset_day, last_symptomatic_day, max_grade, reported_grade, "
                    "ae_event_key FROM toxicity_episodes")
    # the reviewer's two cases: the reported AE is the episode, numbered as for a subject without assessments
    assert [eps["S-002/ICANS/1"][k] for k in ("source", "onset_day", "last_symptomatic_day", "max_grade",
                                              "ae_event_key")] == ["reported AE", 4, 6, 4, "S-002/AE/14"]
    assert [eps["S-003/CRS/1"][k] for k in ("source", "onset_day", "last_symptomatic_day", "max_grade")] == \
        ["reported AE", 2, 5, 3]
    # S-001: the derived episode keeps its key and its matched AE; the uncovered AE is numbered after it
    assert [eps["S-001/CRS/1"][k] for k in ("source", "onset_day", "max_grade", "reported_grade", "ae_event_key")] \
        == ["assessments", 1, 2, 3, "S-001/AE/11"]
    assert [eps["S-001/CRS/2"][k] for k in ("source", "onset_day", "last_symptomatic_day", "max_grade")] == \
        ["reported AE", 10, 12, 3]
    # ICE 10 on the AE's days is evidence against the site's grade: no episode
    assert not any(k.startswith("S-001/ICANS") for k in eps)
    assert len(eps) == 4

    dlt = rows(con, "SELECT event_key, rule_id, grade, evidence FROM dlt_candidates")
    assert (dlt["S-002/ICANS/1"]["rule_id"], dlt["S-002/ICANS/1"]["grade"]) == ("R4", 4)
    assert dlt["S-002/ICANS/1"]["evidence"] == (
        "ICANS grade 4 (grade >= 3 on days 4-6, 3 days) on days 4-6 (3 days), "
        "reported AE (no gradable assessment on its days)")
    assert (dlt["S-003/CRS/1"]["rule_id"], dlt["S-003/CRS/1"]["grade"]) == ("R3", 3)   # grade 3 on days 2-5
    assert dlt["S-003/CRS/1"]["evidence"] == ("CRS grade 3 (grade >= 3 on days 2-5, 4 days) on days 2-5 (4 days), "
                                              "reported AE (no gradable assessment on its days)")
    assert "S-002/AE/14" not in dlt   # one event, keyed by its episode (R8 lists no ICANS term)

    disc = rows(con, "SELECT ae_event_key, episode_key, discrepancy, reported_grade, derived_grade, evidence "
                     "FROM grade_discrepancies WHERE ae_event_key IS NOT NULL")
    assert disc["S-002/AE/14"]["discrepancy"] == "reported AE without derived episode"
    assert disc["S-002/AE/14"]["evidence"] == ("9 assessments, none gradable on the AE's days 4-6 (3 there): "
                                               "the reported AE is episode S-002/ICANS/1")
    assert disc["S-003/AE/15"]["evidence"] == ("9 assessments, none gradable on the AE's days 2-5 (4 there): "
                                               "the reported AE is episode S-003/CRS/1")
    assert disc["S-001/AE/12"]["evidence"] == ("9 assessments, none gradable on the AE's days 10-12 (3 there): "
                                               "the reported AE is episode S-001/CRS/2")
    # controls, as before: a matched AE is compared with its derived episode; an unmatched AE under gradable rows
    assert [disc["S-001/AE/11"][k] for k in ("episode_key", "discrepancy", "reported_grade", "derived_grade")] == \
        ["S-001/CRS/1", "reported higher than derived", 3, 2]
    assert disc["S-001/AE/13"]["discrepancy"] == "reported AE without derived episode"
    assert disc["S-001/AE/13"]["evidence"] == "10 assessments, none with grade >= 1 within 2 days of AE onset day 4"
    # the swimlane's worst grade of a day is the reported one where the assessments there graded nothing
    daily = dict(con.execute("SELECT day, max(grade) FROM toxicity_daily_grades WHERE usubjid = 'S-002' "
                             "AND syndrome = 'ICANS' GROUP BY day").fetchall())
    assert daily == {0: None, 1: None, 2: None, 3: None, 4: 4, 5: 4, 6: 4, 7: None, 8: None}
    # incidence counts them
    worst = dict(con.execute("SELECT usubjid || '/' || syndrome, max(max_grade) FROM toxicity_episodes "
                             "GROUP BY ALL").fetchall())
    assert worst == {"S-001/CRS": 3, "S-002/ICANS": 4, "S-003/CRS": 3}

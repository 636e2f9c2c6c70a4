"""DLT screening of studies loaded through the real ingest: events whose dates the delivery leaves open, and the
grade >= 3 time of CRS built from plain SDTM or from reported AEs."""
from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import duckdb
import pandas as pd

from safety.ingest import ingest_study
from test_ingest_fixtures import AE, DM, DOMAINS, DS, STUDY, STUDY_YAML, make_study

CUT = "2024-06-30"
INFUSED = {"S-001": dt.date(2024, 2, 1), "S-002": dt.date(2024, 2, 10), "S-003": dt.date(2024, 3, 12)}


def day(subject: str, n: int, time: str | None = None) -> str:
    return (INFUSED[subject] + dt.timedelta(days=n)).isoformat() + (f"T{time}" if time else "")


def ae(subject: str, seq: int, term: str, grade: int, start: str, end: str, *, rel="RELATED",
       out="RECOVERED/RESOLVED", death="N") -> dict:
    return {"STUDYID": STUDY, "USUBJID": subject, "AESEQ": seq, "AETERM": term, "AEDECOD": term.upper(),
            "AEBODSYS": "", "AETOXGR": str(grade), "AESEV": "", "AESER": "Y" if grade >= 3 else "N", "AESDTH": death,
            "AEREL": rel, "AEOUT": out, "AESTDTC": start, "AEENDTC": end}


def load(tmp_path: Path, *, dm: pd.DataFrame = DM, ds: pd.DataFrame = DS, ae_rows=(), vs_rows=(), cm_rows=()):
    """The fixture study with ``*_rows`` added, loaded at CUT into a DuckDB file; an open read-only connection."""
    domains = {**DOMAINS, "dm": dm, "ds": ds, "ae": pd.concat([AE, pd.DataFrame(list(ae_rows))], ignore_index=True)}
    if vs_rows:
        domains["vs"] = pd.concat([DOMAINS["vs"], pd.DataFrame(list(vs_rows))], ignore_index=True)
    if cm_rows:
        domains["cm"] = pd.concat([DOMAINS["cm"], pd.DataFrame(list(cm_rows))], ignore_index=True)
    db = tmp_path / "s.duckdb"
    ingest_study(make_study(tmp_path / "study", "csv", domains=domains), db, cutoff=CUT)
    return duckdb.connect(str(db), read_only=True)


def rows(con, sql: str) -> dict[str, dict]:
    cur = con.execute(sql)
    cols = [c[0] for c in cur.description]
    return {r[0]: dict(zip(cols, r)) for r in cur.fetchall()}


def test_a_fatal_ae_without_a_start_date_is_screened_in_the_window_and_pending(tmp_path):
    """S-002 (infused 2024-02-10) dies on day 10 (DM, DS); the only fatal AE, related multi-organ failure, has no
    AESTDTC and ends on day 10. Its onset is unknown but it began by day 10: in the DLT window, pending, and the
    subject is no 'died without DLT'. An AE of unknown onset that ended before the infusion stays outside."""
    dm = DM.copy()
    dm.loc[dm["USUBJID"] == "S-002", "DTHDTC"] = day("S-002", 10)
    ds = DS.copy()
    ds.loc[ds["USUBJID"] == "S-002", "DSSTDTC"] = day("S-002", 10)
    con = load(tmp_path, dm=dm, ds=ds, ae_rows=[
        ae("S-002", 7, "Multiple organ dysfunction syndrome", 5, "", day("S-002", 10), out="FATAL", death="Y"),
        ae("S-001", 8, "Pneumonitis", 4, "", day("S-001", -3))])
    got = rows(con, "SELECT event_key, rule_id, onset_day, end_day, in_window, evidence FROM dlt_candidates")
    fatal = got["S-002/AE/7"]
    assert (fatal["rule_id"], fatal["onset_day"], fatal["end_day"], fatal["in_window"]) == ("R1", None, 10, True)
    assert fatal["evidence"] == ("MULTIPLE ORGAN DYSFUNCTION SYNDROME grade 5, fatal outcome; onset date unknown: "
                                 "screened as in the DLT window (began by day 10 at the latest)")
    before = got["S-001/AE/8"]
    assert (before["rule_id"], before["in_window"]) == ("R9", False)
    assert before["evidence"].endswith("; onset date unknown: ended on day -3, before the DLT window")
    ev = rows(con, "SELECT usubjid, evaluable, reason, pending_in_window, evaluable_if_candidates_confirmed, "
                   "treatment_related_death FROM dlt_evaluability")["S-002"]
    assert (ev["evaluable"], ev["reason"], ev["pending_in_window"]) == \
        (False, "died on day 10; DLT candidate pending adjudication", 1)
    assert ev["evaluable_if_candidates_confirmed"] and ev["treatment_related_death"]
    # the packet's AE listing says the same of the window
    from safety.access.reader import Scope, StudyReader
    from safety.export.listings import listing_ae
    listed = listing_ae(StudyReader(con, Scope(STUDY, dt.date.fromisoformat(CUT)))).set_index("event_key")
    assert bool(listed.loc["S-002/AE/7", "in_dlt_window"]) and not bool(listed.loc["S-001/AE/8", "in_dlt_window"])


def vitals(subject: str, n: int, time: str, seq: int, temp: float, sbp: int) -> list[dict]:
    return [{"STUDYID": STUDY, "USUBJID": subject, "VSSEQ": seq, "VSTESTCD": "TEMP", "VSORRES": str(temp),
             "VSSTRESN": str(temp), "VSSTRESU": "C", "VSDTC": day(subject, n, time)},
            {"STUDYID": STUDY, "USUBJID": subject, "VSSEQ": seq + 1, "VSTESTCD": "SYSBP", "VSORRES": str(sbp),
             "VSSTRESN": str(sbp), "VSSTRESU": "mmHg", "VSDTC": day(subject, n, time)}]


def test_grade3_clock_of_sdtm_crs_ends_at_the_last_grade3_assessment(tmp_path):
    """S-002, plain SDTM: vitals at 08:00 and 20:00 on days 1-8, febrile to day 5 08:00, SBP 80 from day 2 08:00 to
    day 4 20:00, norepinephrine from day 2 07:00 to day 4 21:00 (62 h). Day 5 08:00 is grade 3 because the drug ran
    since day 4 20:00; day 5 20:00 is the first assessment below 3. Grade >= 3 lasted from day 2 08:00 to day 5
    08:00 as the assessments show it, 72 h (not the 84 h to day 5 20:00): no R3 candidate."""
    vs, seq = [], 100
    for n in range(1, 9):
        for time in ("08:00", "20:00"):
            on_drug = (2, "08:00") <= (n, time) <= (4, "20:00")
            vs += vitals("S-002", n, time, seq, 39.0 if (n, time) <= (5, "08:00") else 37.0, 80 if on_drug else 110)
            seq += 2
    cm = [{"STUDYID": STUDY, "USUBJID": "S-002", "CMSEQ": 9, "CMTRT": "Norepinephrine", "CMDOSE": "", "CMDOSU": "",
           "CMSTDTC": day("S-002", 2, "07:00"), "CMENDTC": day("S-002", 4, "21:00")}]
    con = load(tmp_path, vs_rows=vs, cm_rows=cm)
    graded = con.execute("SELECT assessment_time, grade FROM crs_grades WHERE usubjid = 'S-002' AND grade >= 3 "
                         "ORDER BY 1").fetchall()
    assert (graded[0][0], graded[-1][0]) == (dt.datetime(2024, 2, 12, 8), dt.datetime(2024, 2, 15, 8))  # days 2, 5
    ep = rows(con, "SELECT event_key, max_grade, grade3_plus_first_day, grade3_plus_last_day, grade3_plus_hours, "
                   "grade3_plus_ongoing FROM toxicity_episodes WHERE usubjid = 'S-002'")["S-002/CRS/1"]
    assert (ep["max_grade"], ep["grade3_plus_first_day"], ep["grade3_plus_last_day"], ep["grade3_plus_hours"],
            ep["grade3_plus_ongoing"]) == (3, 2, 5, 72.0, False)
    assert "S-002/CRS/1" not in rows(con, "SELECT event_key FROM dlt_candidates")


def test_reported_ae_crs_counts_grade3_days_from_the_grade3_records(tmp_path):
    """No bedside data: S-003 reports CRS grade 2 on days 1-5, then grade 3 on days 6-7. One episode of days 1-7,
    maximum grade 3, but grade 3 lasted 2 days: no R3 ('grade 3 on days 1-7, 7 days' before). S-002's grade 3 on
    days 3-6 after grade 2 on days 1-2 lasted 4 days: R3, with those days in its evidence."""
    con = load(tmp_path, ae_rows=[
        ae("S-003", 5, "Cytokine release syndrome", 2, day("S-003", 1), day("S-003", 5)),
        ae("S-003", 6, "Cytokine release syndrome", 3, day("S-003", 6), day("S-003", 7)),
        ae("S-002", 5, "Cytokine release syndrome", 2, day("S-002", 1), day("S-002", 2)),
        ae("S-002", 6, "Cytokine release syndrome", 3, day("S-002", 3), day("S-002", 6))])
    eps = rows(con, "SELECT event_key, source, onset_day, duration_days, max_grade, grade3_plus_first_day, "
                    "grade3_plus_last_day, grade3_plus_ongoing FROM toxicity_episodes WHERE syndrome = 'CRS'")
    assert [eps["S-003/CRS/1"][k] for k in ("source", "onset_day", "duration_days", "max_grade",
                                            "grade3_plus_first_day", "grade3_plus_last_day", "grade3_plus_ongoing")] \
        == ["reported AE", 1, 7, 3, 6, 7, False]
    got = rows(con, "SELECT event_key, rule_id, duration_days, evidence FROM dlt_candidates")
    assert "S-003/CRS/1" not in got
    assert (got["S-002/CRS/1"]["rule_id"], got["S-002/CRS/1"]["duration_days"]) == ("R3", 4)
    assert got["S-002/CRS/1"]["evidence"] == ("CRS grade 3 (grade >= 3 on days 3-6, 4 days) on days 1-6 (6 days), "
                                              "reported AE (no assessment data)")


def test_two_aes_of_one_episode_meeting_its_first_rule_give_the_same_candidate_on_every_load(tmp_path):
    """A protocol listing its AE rule before its CRS rule: S-002's two related grade 4 hypotension AEs during its
    grade 4 CRS both meet the AE rule, the episode the CRS rule. One candidate under the episode's key; the AE with
    the lower key (AESEQ 6, days 3-5) speaks for it, on every load, so its fingerprint and the committee's review
    do not change with the order DuckDB's threads meet the two."""
    study_yaml = STUDY_YAML + """dlt:
  rules:
    - {id: AE4, type: ae_grade, min_grade: 4, related_only: true, exclude_terms: [CYTOKINE RELEASE SYNDROME],
       reason: Related grade >= 4 AE other than CRS}
    - {id: CRS4, type: syndrome_grade, syndrome: CRS, min_grade: 4, reason: CRS grade >= 4}
"""
    reported = [("Cytokine release syndrome", 4, 2, 6, 5), ("Hypotension", 4, 3, 5, 6), ("Hypotension", 4, 5, 6, 9)]
    domains = {**DOMAINS, "dm": DM, "ds": DS,
               "ae": pd.concat([AE, pd.DataFrame([ae("S-002", seq, term, grade, day("S-002", start),
                                                     day("S-002", end)) for term, grade, start, end, seq in reported])],
                               ignore_index=True)}
    seen = set()
    for i in range(3):
        db = tmp_path / f"s{i}.duckdb"
        ingest_study(make_study(tmp_path / f"study{i}", "csv", domains=domains, study_yaml=study_yaml), db,
                     cutoff=CUT)
        with duckdb.connect(str(db), read_only=True) as con:
            got = rows(con, "SELECT event_key, rule_id, also_matches, term, onset_day, end_day, event_fingerprint "
                            "FROM dlt_candidates WHERE usubjid = 'S-002'")
        assert sorted(got) == ["S-002/CRS/1"]
        c = got["S-002/CRS/1"]
        assert (c["rule_id"], c["also_matches"], c["onset_day"], c["end_day"]) == ("AE4", "CRS4", 3, 5)
        seen.add(c["event_fingerprint"])
    assert len(seen) == 1


def test_a_grade4_ae_whose_causality_is_blank_or_unknown_reaches_the_committee(tmp_path):
    """Delivered AEREL blank or 'Unknown' is no assessment yet: adverse_events.related is NULL (not FALSE) and R9
    (related grade >= 4) screens the event, saying why; 'NOT RELATED' and 'NOT APPLICABLE' stay unscreened."""
    con = load(tmp_path, ae_rows=[
        ae("S-001", 21, "Acute kidney injury", 4, day("S-001", 10), day("S-001", 12), rel=""),
        ae("S-002", 22, "Hepatic failure", 4, day("S-002", 10), day("S-002", 12), rel="Unknown"),
        ae("S-003", 23, "Pancreatitis", 4, day("S-003", 10), day("S-003", 12), rel="NOT RELATED"),
        ae("S-003", 24, "Pneumonitis", 4, day("S-003", 10), day("S-003", 12), rel="NOT APPLICABLE")])
    related = dict(con.execute("SELECT event_key, related FROM adverse_events WHERE aeseq >= 21").fetchall())
    assert related == {"S-001/AE/21": None, "S-002/AE/22": None, "S-003/AE/23": False, "S-003/AE/24": False}
    got = rows(con, "SELECT event_key, rule_id, in_window, evidence FROM dlt_candidates")
    for key, aerel in (("S-001/AE/21", "blank"), ("S-002/AE/22", "'Unknown'")):
        assert (got[key]["rule_id"], got[key]["in_window"]) == ("R9", True)
        assert got[key]["evidence"].endswith(f"causality not given (AEREL {aerel}): screened, since not yet assessed "
                                             "is not unrelated")
    assert "S-003/AE/23" not in got and "S-003/AE/24" not in got


def test_a_sign_of_crs_reported_beside_its_crs_is_that_crs_episode_not_a_second_dlt(tmp_path):
    """ASTCT 2019 grades fever, hypotension and hypoxia as CRS; organ toxicities during CRS keep their CTCAE grade.
    S-002 (no bedside data) reports CRS grade 4 on days 2-6 and, during it, hypotension grade 4 (days 3-5) and
    hypoxia grade 3 (days 2-12), both related, and hypotension grade 4 again on days 5-6: one clinical event, the
    CRS episode's R2 candidate with R9 and R6 among its also_matches (R9 once, though two of its AEs meet it), not
    four candidates pending for one CRS. Its acute kidney injury grade 3 of days 3-12
    is an organ toxicity: a candidate of its own (R6). S-003's hypotension grade 4 on day 20, with no CRS, stays
    R9; so does its hypoxia grade 4 (days 3-4) during a CRS reported as grade 2 (days 1-4), an episode that meets no
    rule, its evidence naming the episode it lay in."""
    reported = [("S-002", "Cytokine release syndrome", 4, 2, 6), ("S-002", "Hypotension", 4, 3, 5),
                ("S-002", "Hypoxia", 3, 2, 12), ("S-002", "Acute kidney injury", 3, 3, 12),
                ("S-003", "Cytokine release syndrome", 2, 1, 4), ("S-003", "Hypoxia", 4, 3, 4),
                ("S-003", "Hypotension", 4, 20, 21), ("S-002", "Hypotension", 4, 5, 6)]
    aeseq = {u: itertools.count(5) for u in ("S-002", "S-003")}  # after the fixture's own AESEQs
    con = load(tmp_path, ae_rows=[ae(u, next(aeseq[u]), term, grade, day(u, start), day(u, end))
                                  for u, term, grade, start, end in reported])
    got = rows(con, "SELECT event_key, rule_id, also_matches, in_window, evidence FROM dlt_candidates "
                    "WHERE in_window")
    assert sorted(k for k in got if k.startswith("S-002")) == ["S-002/AE/8", "S-002/CRS/1"]
    assert (got["S-002/CRS/1"]["rule_id"], got["S-002/CRS/1"]["also_matches"]) == ("R2", "R6, R9")
    assert got["S-002/AE/8"]["rule_id"] == "R6"
    assert got["S-003/AE/7"]["rule_id"] == "R9" and "CRS" not in got["S-003/AE/7"]["evidence"]
    assert got["S-003/AE/6"]["rule_id"] == "R9" and "S-003/CRS/1" not in got
    assert got["S-003/AE/6"]["evidence"].endswith(
        "; during CRS episode S-003/CRS/1, which meets no rule: ASTCT 2019 grades fever, hypotension and hypoxia "
        "as CRS")
    pending = rows(con, "SELECT usubjid, pending_in_window FROM dlt_evaluability")
    assert pending["S-002"]["pending_in_window"] == 2

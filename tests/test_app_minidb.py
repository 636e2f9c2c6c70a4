"""A small hand-made study database for the dashboard tests (used until and alongside the sample DB).

Every table comes from the schema registry's DDL (safety/schema/); rows of derived tables are written by
hand with the columns the test needs. Two sites, two cohorts, two data cuts, six subjects with known numbers.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb

from safety import schema
from view_rows import insert_view_rows

STUDY = "MINI-01"
CUT1 = dt.date(2025, 3, 1)
CUT2 = dt.date(2025, 6, 1)

def _insert(con, table: str, rows: list[dict]) -> None:
    if not rows:
        return
    # The rows name a subset of the columns (and "limit" where the table says limit_value): insert those it has.
    have = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = $t",
                                      {"t": table}).fetchall()}
    if "limit" in rows[0] and "limit" not in have and "limit_value" in have:
        rows = [{("limit_value" if k == "limit" else k): v for k, v in r.items()} for r in rows]
    rows = [{k: v for k, v in r.items() if k in have} for r in rows]
    if schema.get_table(table).is_view:  # lab_toxicity: whole rows go to the tables it reads
        insert_view_rows(con, table, rows)
        return
    cols = list(rows[0])
    quoted = ", ".join(f'"{c}"' for c in cols)
    marks = ", ".join(f"${c}" for c in cols)
    for r in rows:
        con.execute(f"INSERT INTO {table} ({quoted}) VALUES ({marks})", r)


SUBJECTS = [
    # usubjid, site, cohort, dose, infused, status, death_day, enrollment_order, last_day
    ("MINI-01-001", "S1", "DL1", "1e6/kg", True, "completed", None, 1, 370),
    ("MINI-01-002", "S1", "DL1", "1e6/kg", True, "died", 60, 2, 60),
    ("MINI-01-003", "S2", "DL2", "3e6/kg", True, "in follow-up", None, 3, 100),
    ("MINI-01-004", "S2", "DL2", "3e6/kg", True, "discontinued", None, 4, 40),
    ("MINI-01-005", "S1", "DL2", "3e6/kg", True, "in follow-up", None, 5, 30),
    ("MINI-01-006", "S2", "DL1", None, False, "screened", None, None, None),
]


def build_mini_database(path: Path) -> Path:
    """Write the mini study (two cuts) to ``path`` and return it."""
    con = duckdb.connect(str(path))
    schema.create_schema(con)
    cfg = {"studyid": STUDY, "title": "Mini CAR-T study", "product": "miniCAR"}
    for cut in (CUT1, CUT2):
        late = cut == CUT2
        d0 = dt.date(2024, 11, 1)
        _insert(con, "studies", [{"studyid": STUDY, "data_cut": cut, "title": "Mini CAR-T study", "product": "miniCAR",
                                  "product_type": "CAR-T", "ctcae_version": "5.0", "crs_grading": "ASTCT 2019",
                                  "icans_grading": "ASTCT 2019", "config_json": json.dumps(cfg), "load_id": f"L{cut}"}])
        subs = SUBJECTS if late else SUBJECTS[:4]
        rows = []
        for u, site, coh, dose, inf, status, death, order, last in subs:
            if not late and status in ("completed",):
                status = "in follow-up"
            rows.append({"studyid": STUDY, "data_cut": cut, "usubjid": u, "subjid": u[-3:], "siteid": site, "age": 50.0,
                         "sex": "F", "cohort": coh, "dose_level": dose or coh, "product": "miniCAR", "infused": inf,
                         "first_infusion_date": d0 if inf else None, "death_day": death,
                         "death_date": d0 + dt.timedelta(days=death) if death else None,
                         "status": status, "enrollment_order": order, "last_known_alive_day": last,
                         "consent_date": d0 - dt.timedelta(days=20), "lymphodepletion_start_day": -5 if inf else None})
        _insert(con, "subjects", rows)
        # the derived deaths and infection episodes the overview reads (one definition of each)
        _insert(con, "deaths", [{"studyid": STUDY, "data_cut": cut, "usubjid": r["usubjid"], "death_date": r["death_date"],
                                 "death_day": r["death_day"], "sources": "DM", "cause_category": "other",
                                 "non_relapse": True, "treatment_related": True}
                                for r in rows if r["death_date"] is not None])
        _insert(con, "infection_episodes", [{"studyid": STUDY, "data_cut": cut, "usubjid": "MINI-01-004",
                                             "event_key": "MINI-01-004/AE/1", "source": "AE", "term": "Pneumonia",
                                             "pathogen_class": "other/unspecified", "pathogen": "unspecified",
                                             "invasive_mould": False, "ctcae_grade": 3, "severity": "grade 3-4",
                                             "serious": True, "fatal": False, "onset_day": 20,
                                             "onset_window": "day 0-30"}])
        aes = [
            ("MINI-01-001", 1, "Cytokine release syndrome", "Immune system disorders", 2, "N", True, 1, 5),
            ("MINI-01-001", 2, "Neutrophil count decreased", "Investigations", 4, "N", True, 3, 20),
            ("MINI-01-002", 1, "Cytokine release syndrome", "Immune system disorders", 3, "Y", True, 2, 8),
            ("MINI-01-002", 2, "Immune effector cell-associated neurotoxicity syndrome", "Nervous system disorders", 3, "Y", True, 5, 12),
            ("MINI-01-003", 1, "Cytokine release syndrome", "Immune system disorders", 1, "N", True, 1, 3),
            ("MINI-01-004", 1, "Pneumonia", "Infections and infestations", 3, "Y", False, 20, 30),
        ]
        if late:
            aes.append(("MINI-01-005", 1, "Cytokine release syndrome", "Immune system disorders", 2, "N", True, 2, 4))
            aes.append(("MINI-01-003", 2, "Alanine aminotransferase increased", "Investigations", 3, "N", True, 40, 50))
        _insert(con, "adverse_events", [{
            "studyid": STUDY, "data_cut": cut, "usubjid": u, "aeseq": seq, "event_key": f"{u}/AE/{seq}", "aeterm": t,
            "aedecod": t, "aebodsys": soc, "aetoxgr": g, "aeser": ser, "related": rel, "onset_day": on, "end_day": en,
            "ongoing": False, "duration_days": en - on + 1, "treatment_emergent": True,
            "grading_system": "ASTCT 2019" if "syndrome" in t else "CTCAE v5.0"} for u, seq, t, soc, g, ser, rel, on, en in aes])
        episodes = [("MINI-01-001", "CRS", 1, 1, 5, 2, True), ("MINI-01-002", "CRS", 1, 2, 8, 3, True),
                    ("MINI-01-002", "ICANS", 1, 5, 12, 3, False), ("MINI-01-003", "CRS", 1, 1, 3, 1, False)]
        if late:
            episodes.append(("MINI-01-005", "CRS", 1, 2, 4, 2, True))
        _insert(con, "toxicity_episodes", [{
            "studyid": STUDY, "data_cut": cut, "usubjid": u, "syndrome": s, "episode_no": n, "event_key": f"{u}/{s}/{n}",
            "onset_day": on, "last_symptomatic_day": en, "duration_days": en - on + 1, "max_grade": g, "max_grade_day": on + 1,
            "ongoing": False, "tocilizumab": toci, "tocilizumab_first_day": on + 1 if toci else None, "corticosteroid": g >= 3,
            "corticosteroid_first_day": on + 2 if g >= 3 else None, "anakinra": False, "icu_level_support": g >= 3,
            "source": "assessments"} for u, s, n, on, en, g, toci in episodes])
        # one graded assessment a day: toxicity_daily_grades is the view over them
        graded = {"CRS": [], "ICANS": []}
        for u, s, n, on, en, g, _ in episodes:
            for day in range(on, en + 1):
                graded[s].append({"studyid": STUDY, "data_cut": cut, "usubjid": u, "assessment_id": len(graded[s]) + 1,
                                  "day": day, "grade": g if day == on + 1 else 1, "episode_key": f"{u}/{s}/{n}"})
        _insert(con, "crs_grades", graded["CRS"])
        _insert(con, "icans_grades", graded["ICANS"])
        _insert(con, "grade_discrepancies", [{"studyid": STUDY, "data_cut": cut, "usubjid": "MINI-01-003", "syndrome": "CRS",
                                              "episode_key": "MINI-01-003/CRS/1", "ae_event_key": "MINI-01-003/AE/1",
                                              "onset_day": 1, "reported_grade": 1, "derived_grade": 2,
                                              "discrepancy": "reported lower", "evidence": "vasopressor running day 2"}])
        labs, seq = [], 0
        for u, *_rest in subs[:5] if late else subs[:4]:
            for day, anc, plt, alt in ((-7, 3.0, 200, 30), (3, 0.3, 40, 35), (10, 0.8, 60, 90), (28, 2.0, 150, 45)):
                for test, val, lln, uln, unit in (("NEUT", anc, 2.0, 7.5, "10^9/L"), ("PLAT", plt, 150, 400, "10^9/L"),
                                                  ("ALT", alt, 0, 40, "U/L"), ("BILI", 10.0 + day / 2, 0, 21, "umol/L")):
                    seq += 1
                    labs.append({"studyid": STUDY, "data_cut": cut, "usubjid": u, "lbseq": seq, "lbtestcd": test,
                                 "lbtest": test.title(), "value": float(val), "unit": unit, "lln": float(lln),
                                 "uln": float(uln), "day": day})
        _insert(con, "labs", labs)
        grade_of = lambda t, v: (4 if v < 0.5 else 3 if v < 1.0 else 2 if v < 1.5 else 1 if v < 2.0 else 0) if t == "NEUT" else (
            3 if v < 50 else 2 if v < 75 else 1 if v < 150 else 0) if t == "PLAT" else (2 if v > 120 else 1 if v > 40 else 0)
        _insert(con, "lab_toxicity", [{
            "studyid": STUDY, "data_cut": cut, "usubjid": r["usubjid"], "lbseq": r["lbseq"], "lbtestcd": r["lbtestcd"],
            "ctcae_term": {"NEUT": "Neutrophil count decreased", "PLAT": "Platelet count decreased",
                           "ALT": "Alanine aminotransferase increased"}[r["lbtestcd"]],
            "direction": "H" if r["lbtestcd"] == "ALT" else "L", "value": r["value"], "unit": r["unit"],
            "lln": r["lln"], "uln": r["uln"], "baseline_value": None, "grade": grade_of(r["lbtestcd"], r["value"]),
            "grade_reason": None, "day": r["day"]} for r in labs if r["lbtestcd"] != "BILI"])
        con.execute("""INSERT INTO lab_worst_grades (studyid, data_cut, usubjid, ctcae_term, direction, lbtestcd,
                           baseline_grade, worst_grade, worst_day)
                       SELECT studyid, data_cut, usubjid, ctcae_term, direction, lbtestcd,
                              max(grade) FILTER (WHERE day < 0), max(grade), arg_max(day, grade)
                       FROM lab_toxicity WHERE data_cut = $c GROUP BY ALL""", {"c": cut})
        _insert(con, "medications", [
            {"studyid": STUDY, "data_cut": cut, "usubjid": "MINI-01-002", "cmseq": 1, "cmtrt": "Tocilizumab",
             "cmdecod": "TOCILIZUMAB", "med_class": "tocilizumab", "start_day": 3, "end_day": 3},
            {"studyid": STUDY, "data_cut": cut, "usubjid": "MINI-01-002", "cmseq": 2, "cmtrt": "Dexamethasone",
             "cmdecod": "DEXAMETHASONE", "med_class": "corticosteroid", "start_day": 4, "end_day": 9}])
        _insert(con, "responses", [
            {"studyid": STUDY, "data_cut": cut, "usubjid": u, "rsseq": 1, "response": r, "day": d, "visit": v}
            for u, r, d, v in (("MINI-01-001", "CR", 28, "MONTH 1"), ("MINI-01-001", "CR", 91, "MONTH 3"),
                               ("MINI-01-003", "PR", 28, "MONTH 1"), ("MINI-01-004", "PD", 30, "MONTH 1"))])
        cands = [("MINI-01-002", "MINI-01-002/CRS/1", "R3", "CRS grade 3 lasting more than 72 hours", "CRS", 2, 3, 7)]
        if late:
            cands.append(("MINI-01-002", "MINI-01-002/ICANS/1", "R5", "ICANS grade 3 lasting more than 72 hours", "ICANS", 5, 3, 8))
        _insert(con, "dlt_candidates", [{
            "studyid": STUDY, "data_cut": cut, "usubjid": u, "event_key": k, "source": "episode", "rule_id": rid,
            "reason": why, "term": term, "onset_day": on, "grade": g, "duration_days": dur, "ongoing": False,
            "in_window": True, "evidence": "daily grades"} for u, k, rid, why, term, on, g, dur in cands])
        _insert(con, "dlt_evaluability", [{
            "studyid": STUDY, "data_cut": cut, "usubjid": u, "cohort": coh, "evaluable": last is not None and (last >= 28 or u.endswith("002")),
            "reason": "followed through day 28" if last and last >= 28 else "not followed through the window",
            "followed_through_day": min(last, 28) if last else None} for u, site, coh, dose, inf, st, death, order, last in subs if inf])
        ev_n = 4 if late else 3
        _insert(con, "stopping_rule_status", [{
            "studyid": STUDY, "data_cut": cut, "cohort": None, "method": "bayesian_beta_binomial", "monitored_event": "dlt",
            "evaluable_n": ev_n, "events": 1, "pending": 1, "statistic": 0.42, "statistic_label": "P(p > 0.25)",
            "boundary": "0.90", "decision": "continue", "events_to_boundary": 2,
            "sentence": f"Continue: 1 DLT in {ev_n} evaluable subjects; 2 more would cross the boundary."}])
        _insert(con, "stopping_boundaries", [{"studyid": STUDY, "data_cut": cut, "cohort": None,
                                              "method": "bayesian_beta_binomial", "n": n, "stop_if_events_ge": b}
                                             for n, b in ((1, None), (2, 2), (3, 2), (4, 3), (5, 3), (6, 3), (7, 4), (8, 4))])
        _insert(con, "eligibility_deviations", [{"studyid": STUDY, "data_cut": cut, "usubjid": "MINI-01-004",
                                                 "criterion": "labs", "test": "BILI", "value": 40.0, "unit": "umol/L",
                                                 "limit": 34.2, "day": -10, "detail": "bilirubin above limit"}])
        _insert(con, "icaht", [{"studyid": STUDY, "data_cut": cut, "usubjid": "MINI-01-001", "lineage": "neutrophil",
                                "early_grade": 2, "late_grade": 0, "days_le_500": 8, "days_le_100": 0, "recovery_day": 14}])
        _insert(con, "load_log", [{"studyid": STUDY, "data_cut": cut, "load_id": f"L{cut}", "domain": "AE",
                                   "source_file": "ae.csv", "file_format": "csv", "sha256": "ab" * 32, "rows_read": 10,
                                   "rows_loaded": 9, "rows_quarantined": 1, "rows_after_cutoff": 0}])
        _insert(con, "quarantine", [{"studyid": STUDY, "data_cut": cut, "load_id": f"L{cut}", "domain": "AE",
                                     "source_file": "ae.csv", "row_number": 7, "usubjid": "MINI-01-003",
                                     "field": "AESTDTC", "reason": "unparseable date '2024-13-45'", "raw_record": "{}"}])
    con.close()
    return path


def test_mini_database_builds(tmp_path, monkeypatch):
    path = build_mini_database(tmp_path / "mini.duckdb")
    from safety.access import reader as access
    con = access.connect(path)
    assert con.execute("SELECT count(*) FROM subjects WHERE data_cut = $c", {"c": CUT2}).fetchone()[0] == 6
    con.close()

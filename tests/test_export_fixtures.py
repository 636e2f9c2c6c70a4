"""A small two-cut study database for the export tests, built straight from the schema DDLs,
derived tables written by hand with the rows the derivations would write."""
from __future__ import annotations

import datetime as dt
import json

import duckdb

from safety import schema
from view_rows import insert_view_rows

STUDY = "CT-001"
CUT1 = dt.date(2025, 1, 31)
CUT2 = dt.date(2025, 3, 31)
INF = dt.date(2024, 12, 1)  # day 0 of every infused subject

def ensure_derived_tables() -> None:
    """Every derived table is in the schema registry by plain import: nothing to declare."""


def _ins(con, table: str, rows: list[dict]) -> None:
    if schema.get_table(table).is_view:
        insert_view_rows(con, table, rows)
        return
    for r in rows:
        cols = ", ".join(f'"{k}"' for k in r)
        marks = ", ".join(f"${k}" for k in r)
        con.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks})", r)


def _subject(cut, usubjid, site, cohort, *, infused=True, death=None, age=50.0, sex="F", order=None):
    d = {"studyid": STUDY, "data_cut": cut, "usubjid": usubjid, "subjid": usubjid[-3:], "siteid": site,
         "age": age, "sex": sex, "cohort": cohort, "dose_level": {"DL1": "1e6 cells/kg", "DL2": "3e6 cells/kg"}[cohort],
         "infused": infused, "infusions": 1 if infused else 0, "enrollment_order": order,
         "first_infusion_date": INF if infused else None, "status": "in follow-up" if infused else "screened",
         "last_known_alive_day": (cut - INF).days}
    if death:
        d.update(death_date=death, death_day=(death - INF).days, death_source="DM", death_cause="Sepsis", status="died",
                 last_known_alive_day=(death - INF).days)
    return d


def _ae(cut, usubjid, seq, term, decod, soc, grade, onset, end=None, *, ser="N", rel=True, system=None, **extra):
    ongoing = end is None
    dur = ((end if end is not None else (cut - INF).days) - onset + 1)
    d = {"studyid": STUDY, "data_cut": cut, "usubjid": usubjid, "aeseq": seq, "event_key": f"{usubjid}/AE/{seq}",
         "aeterm": term, "aedecod": decod, "aebodsys": soc, "aetoxgr": grade, "aeser": ser,
         "grading_system": system or "CTCAE v5.0", "related": rel, "aerel": "PROBABLE" if rel else "NOT RELATED",
         "aeacn": "NOT APPLICABLE", "aeout": "RECOVERED/RESOLVED" if not ongoing else "NOT RECOVERED/NOT RESOLVED",
         "aest_date": INF + dt.timedelta(days=onset), "onset_day": onset,
         "aeen_date": INF + dt.timedelta(days=end) if end is not None else None, "end_day": end,
         "ongoing": ongoing, "duration_days": dur, "treatment_emergent": True}
    d.update(extra)
    return d


def _death(cut, usubjid, date, delivered_cause, *, fatal=None, sources=None, category="infection",
           cause_from="delivered cause", infused=True):
    """One row of the derived deaths table: a non-relapse death (no progression in these studies)."""
    day = (date - INF).days if infused else None
    nrm = {h: infused and day <= h for h in (28, 100, 365)}
    return {"studyid": STUDY, "data_cut": cut, "usubjid": usubjid, "death_date": date, "death_day": day,
            "sources": sources or ("DM, AE" if fatal else "DM"), "delivered_cause": delivered_cause,
            "fatal_ae_key": fatal["event_key"] if fatal else None,
            "fatal_ae_term": (fatal["aedecod"] or fatal["aeterm"]) if fatal else None,
            "fatal_ae_related": fatal["related"] if fatal else None, "cause_category": category,
            "cause_from": cause_from, "cause_conflict": False, "progression_day": None, "relapse_related": False,
            "non_relapse": True, "treatment_related": infused, "nrm_by_day28": nrm[28], "nrm_by_day100": nrm[100],
            "nrm_by_day365": nrm[365]}


def _cut_rows(cut):
    late = cut == CUT2
    subjects = [_subject(cut, "CT-001-S01", "101", "DL1", age=54.0, sex="F", order=1),
                _subject(cut, "CT-001-S02", "101", "DL1", age=61.0, sex="M", order=2,
                         death=dt.date(2025, 2, 20) if late else None),
                _subject(cut, "CT-001-S03", "102", "DL2", age=45.0, sex="M", order=3),
                _subject(cut, "CT-001-S04", "102", "DL2", infused=False, age=38.0, sex="F")]
    aes = [_ae(cut, "CT-001-S01", 1, "CRS", "Cytokine release syndrome", "Immune system disorders", 2, 1, 5,
               system="ASTCT 2019"),
           _ae(cut, "CT-001-S01", 2, "Low neutrophils", "Neutrophil count decreased", "Investigations", 4, 3, None),
           _ae(cut, "CT-001-S03", 1, "Pneumonia", "Pneumonia", "Infections and infestations", 3, 20, 30,
               ser="Y", aeshosp="Y", rel=False)]
    if late:
        aes += [_ae(cut, "CT-001-S02", 1, "Septic shock", "Sepsis", "Infections and infestations", 5, 75, 81,
                    ser="Y", aesdth="Y", rel=False, aeout="FATAL"),
                _ae(cut, "CT-001-S01", 3, "Low IgG", "Hypogammaglobulinaemia", "Immune system disorders", 2, 60, None),
                _ae(cut, "CT-001-S03", 2, "ICANS", "Immune effector cell-associated neurotoxicity syndrome",
                    "Nervous system disorders", 3, 8, 12, system="ASTCT 2019")]
    meds = [{"studyid": STUDY, "data_cut": cut, "usubjid": "CT-001-S01", "cmseq": 1, "cmtrt": "Tocilizumab",
             "med_class": "tocilizumab", "start_day": 2, "end_day": 2},
            {"studyid": STUDY, "data_cut": cut, "usubjid": "CT-001-S03", "cmseq": 1, "cmtrt": "Dexamethasone",
             "med_class": "corticosteroid", "start_day": 9, "end_day": 11}]
    labs = [{"studyid": STUDY, "data_cut": cut, "usubjid": "CT-001-S01", "lbseq": 5, "lbtestcd": "NEUT",
             "value": 0.3, "unit": "10^9/L", "lb_date": INF + dt.timedelta(days=3), "day": 3}]
    labtox = [{"studyid": STUDY, "data_cut": cut, "usubjid": "CT-001-S01", "lbseq": 5, "lbtestcd": "NEUT",
               "ctcae_term": "Neutrophil count decreased", "direction": "L", "value": 0.3, "unit": "10^9/L",
               "lln": 2.0, "uln": 7.5, "baseline_value": 2.5, "grade": 4, "grade_reason": "value < 0.5", "day": 3},
              {"studyid": STUDY, "data_cut": cut, "usubjid": "CT-001-S03", "lbseq": 2, "lbtestcd": "ALT",
               "ctcae_term": "Alanine aminotransferase increased", "direction": "H", "value": 90.0, "unit": "U/L",
               "lln": 0.0, "uln": 40.0, "baseline_value": 30.0, "grade": 1, "grade_reason": "> ULN", "day": 7}]
    worst = [{"studyid": STUDY, "data_cut": cut, "usubjid": "CT-001-S01", "ctcae_term": "Neutrophil count decreased",
              "direction": "L", "baseline_grade": 0, "worst_grade": 4, "worst_day": 3, "n_post": 4},
             {"studyid": STUDY, "data_cut": cut, "usubjid": "CT-001-S03", "ctcae_term": "Neutrophil count decreased",
              "direction": "L", "baseline_grade": 0, "worst_grade": 2, "worst_day": 5, "n_post": 4}]
    episodes = [{"studyid": STUDY, "data_cut": cut, "usubjid": "CT-001-S01", "syndrome": "CRS", "episode_no": 1,
                 "event_key": "CT-001-S01/CRS/1", "onset_day": 1, "last_symptomatic_day": 5, "duration_days": 5,
                 "max_grade": 2, "max_grade_day": 2, "ongoing": False, "tocilizumab": True,
                 "tocilizumab_first_day": 2, "corticosteroid": False, "anakinra": False, "icu_level_support": False,
                 "source": "assessments", "ae_event_key": "CT-001-S01/AE/1", "reported_grade": 2}]
    dlts = []
    if late:
        episodes.append({"studyid": STUDY, "data_cut": cut, "usubjid": "CT-001-S03", "syndrome": "ICANS",
                         "episode_no": 1, "event_key": "CT-001-S03/ICANS/1", "onset_day": 8,
                         "last_symptomatic_day": 12, "duration_days": 5, "max_grade": 3, "max_grade_day": 9,
                         "ongoing": False, "tocilizumab": False, "corticosteroid": True,
                         "corticosteroid_first_day": 9, "anakinra": False, "icu_level_support": False,
                         "source": "assessments", "ae_event_key": "CT-001-S03/AE/2", "reported_grade": 3})
        dlts.append({"studyid": STUDY, "data_cut": cut, "usubjid": "CT-001-S03", "event_key": "CT-001-S03/ICANS/1",
                     "source": "toxicity_episodes", "rule_id": "R5", "reason": "ICANS grade 3 lasting more than 72 hours",
                     "term": "ICANS", "onset_day": 8, "grade": 3, "duration_days": 5, "ongoing": False,
                     "in_window": True, "evidence": "grade 3 from day 9 to day 12"})
    dlts.append({"studyid": STUDY, "data_cut": cut, "usubjid": "CT-001-S01", "event_key": "CT-001-S01/LB/NEUT-D28",
                 "source": "lab_toxicity", "rule_id": "R7", "reason": "Prolonged cytopenia", "term": "NEUT",
                 "onset_day": 28, "grade": 4, "duration_days": None, "ongoing": True, "in_window": True,
                 "evidence": "ANC 0.3 on day 28"})
    # the follow-up facts dlt_evaluability stores at load (evaluable = infused and followed through day 28)
    evaluability = [{"studyid": STUDY, "data_cut": cut, "usubjid": sj["usubjid"], "cohort": sj["cohort"],
                     "dose_level": sj["dose_level"], "infused": sj["infused"],
                     "evaluable": sj["infused"] and sj["last_known_alive_day"] >= 28,
                     "followed_through_day": min(sj["last_known_alive_day"], 28) if sj["infused"] else None,
                     "window_end_day": 28, "followed_through_window": sj["infused"] and sj["last_known_alive_day"] >= 28,
                     "death_day": sj.get("death_day"), "follow_up_status": sj["status"],
                     "crs_max_grade_window": 2 if sj["usubjid"] == "CT-001-S01" else 0,
                     "icans_max_grade_window": 3 if late and sj["usubjid"] == "CT-001-S03" else 0,
                     "treatment_related_death": False} for sj in subjects]
    elig = [{"studyid": STUDY, "data_cut": cut, "usubjid": "CT-001-S03", "criterion": "labs", "test": "CREAT",
             "value": 150.0, "unit": "umol/L", "limit_value": 132.0, "day": -10, "detail": "creatinine above limit"}]
    stop = [{"studyid": STUDY, "data_cut": cut, "cohort": None, "method": "bayesian_beta_binomial",
             "monitored_event": "dlt", "evaluable_n": 3, "events": 1 if late else 0, "pending": 0, "statistic": 0.41,
             "boundary": 0.90, "decision": "continue", "sentence": "Continue: P(rate > 25%) = 0.41 < 0.90"}]
    hashes = [{"studyid": STUDY, "data_cut": cut, "load_id": f"load-{cut}", "domain": d, "source_file": f"{d.lower()}.xpt",
               "sha256": (d.lower() + cut.isoformat()).encode().hex()[:64].ljust(64, "0")} for d in ("DM", "AE")]
    cfg = {"studyid": STUDY, "dlt": {"window": {"start_day": 0, "end_day": 28}}}
    study = [{"studyid": STUDY, "data_cut": cut, "title": "Phase I anti-CD19 CAR-T", "product": "CT19",
              "product_type": "CAR-T", "config_json": json.dumps(cfg), "load_id": f"load-{cut}"}]
    # the derived deaths table (DM, DS and fatal AEs), as safety/derive/outcomes/deaths.py writes it
    deaths = [_death(cut, sj["usubjid"], sj["death_date"], sj["death_cause"], fatal=fae)
              for sj in subjects if sj.get("death_date")
              for fae in [next((a for a in aes if a["usubjid"] == sj["usubjid"] and a["aetoxgr"] == 5), None)]]
    return {"studies": study, "subjects": subjects, "deaths": deaths, "adverse_events": aes, "medications": meds, "labs": labs,
            "lab_toxicity": labtox, "lab_worst_grades": worst, "toxicity_episodes": episodes, "dlt_candidates": dlts,
            "dlt_evaluability": evaluability, "eligibility_deviations": elig, "stopping_rule_status": stop, "load_log": hashes}


def _is_derived(name: str) -> bool:
    return schema.get_table(name).group == "derived"


def build_db(path, cuts=(CUT1, CUT2), derived=True):
    """Write the test study at the given cuts; without ``derived`` the derived tables are left out."""
    ensure_derived_tables()
    con = duckdb.connect(str(path))
    try:
        for t in schema.all_tables():
            if derived or not _is_derived(t.name):
                con.execute(t.ddl())
        for cut in cuts:
            for table, rows in _cut_rows(cut).items():
                if not derived and _is_derived(table):
                    continue
                _ins(con, table, rows)
    finally:
        con.close()
    return path

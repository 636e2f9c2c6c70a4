"""DLT screening rules R1-R7 on and just past their limits, the window, fallbacks, custom rules, evaluability."""
from __future__ import annotations

import datetime as dt

import pytest

from safety.core.config import ConfigError, validate
from safety.derive.dlt.screening import derive_dlt
from test_dlt_support import (CUT, STUDY, add_ae, add_assessment, add_episode, add_lab_grade, add_subject,
                              candidates, config, new_db, rows)


@pytest.fixture
def con(tmp_path):
    c = new_db(tmp_path / "s.duckdb")
    yield c
    c.close()


def screen(con, cfg=None):
    derive_dlt(con, STUDY, CUT, cfg or config())
    return candidates(con)


def test_crs_grade3_more_than_72_hours_means_more_than_3_days(con):
    add_subject(con, "S-1")
    add_episode(con, "S-1", "CRS", 1, 2, 3, 6, g3=(3, 5))   # grade 3 on days 3-5: 3 days, not > 72 h
    add_subject(con, "S-2")
    add_episode(con, "S-2", "CRS", 1, 2, 3, 7, g3=(3, 6))   # days 3-6: 4 days
    got = screen(con)
    assert "S-1/CRS/1" not in got
    c = got["S-2/CRS/1"]
    assert (c["rule_id"], c["source"], c["grade"], c["duration_days"], c["onset_day"]) == ("R3", "CRS episode", 3, 4, 2)
    assert c["evidence"].startswith("CRS grade 3 (grade >= 3 on days 3-6, 4 days) on days 2-8")
    assert c["reason"] == "CRS grade 3 lasting more than 72 hours"


def test_crs_grade3_with_assessment_times_uses_hours(con):
    add_subject(con, "S-1")
    add_episode(con, "S-1", "CRS", 1, 2, 3, 7, g3=(3, 6), g3_hours=70.0)   # 4 calendar days but 70 h
    add_subject(con, "S-2")
    add_episode(con, "S-2", "CRS", 1, 2, 3, 6, g3=(3, 5), g3_hours=73.5)   # 3 calendar days but 73.5 h
    got = screen(con)
    assert set(got) == {"S-2/CRS/1"}
    assert "73.5 h" in got["S-2/CRS/1"]["evidence"]


def test_crs_and_icans_grade4_any_duration(con):
    add_subject(con, "S-1")
    add_episode(con, "S-1", "CRS", 1, 1, 4, 2, g3=(1, 1))
    add_episode(con, "S-1", "ICANS", 1, 5, 4, 1, g3=(5, 5))
    add_episode(con, "S-1", "ICANS", 2, 12, 3, 5, g3=(12, 16))  # 5 days at grade 3: R5
    add_episode(con, "S-1", "ICANS", 3, 20, 3, 3, g3=(20, 22))  # 3 days: no
    got = screen(con)
    assert got["S-1/CRS/1"]["rule_id"] == "R2"
    assert got["S-1/ICANS/1"]["rule_id"] == "R4"
    assert got["S-1/ICANS/2"]["rule_id"] == "R5"
    assert "S-1/ICANS/3" not in got


def test_r6_seven_days_vs_eight_and_relatedness(con):
    add_subject(con, "S-1")
    add_ae(con, "S-1", 1, "Pneumonitis", 3, 5, 11)                  # 7 days: not more than 7
    add_ae(con, "S-1", 2, "Pneumonitis", 3, 5, 12)                  # 8 days
    add_ae(con, "S-1", 3, "Colitis", 3, 5, 20, related=False)       # unrelated
    add_ae(con, "S-1", 4, "Colitis", 3, 5, 20, aerel="PROBABLE")
    add_ae(con, "S-1", 5, "Colitis", 2, 5, 20)                      # grade 2
    add_ae(con, "S-1", 6, "Neutropenia", 4, 1, 30)                  # expected haematological term
    add_ae(con, "S-1", 7, "Febrile neutropenia", 3, 3, 15)
    add_ae(con, "S-1", 8, "Fever", 3, 1, 12)
    got = screen(con)
    assert set(got) == {"S-1/AE/2", "S-1/AE/4"}
    assert got["S-1/AE/2"]["duration_days"] == 8 and got["S-1/AE/2"]["rule_id"] == "R6"
    assert got["S-1/AE/4"]["evidence"] == "COLITIS grade 3 on days 5-20 (16 days), related (PROBABLE)"


def test_non_haematological_rules_leave_out_the_common_haematological_preferred_terms(con):
    """Pancytopenia, haemoglobin decreased, cytopenia, bone marrow failure (MedDRA SOC Blood and lymphatic system
    disorders and the haematology investigations) related grade 4 for 19 days are no R6/R9 candidates; an HLH of the
    same SOC and a non-haematological AE still are."""
    add_subject(con, "S-1")
    for seq, term in enumerate(["Pancytopenia", "Haemoglobin decreased", "Cytopenia", "Bone marrow failure",
                                "Aplastic anaemia", "Agranulocytosis", "White blood cell count decreased",
                                "CD4 lymphocytes decreased", "Hemoglobin decreased", "Bicytopenia"], start=1):
        add_ae(con, "S-1", seq, term, 4, 2, 20)
    add_ae(con, "S-1", 20, "Haemophagocytic lymphohistiocytosis", 4, 9, 12)
    add_ae(con, "S-1", 21, "Acute kidney injury", 4, 5, 7)
    assert {k: v["rule_id"] for k, v in screen(con).items()} == {"S-1/AE/20": "R9", "S-1/AE/21": "R9"}


def test_non_haematological_rules_leave_out_crs_and_icans_in_every_spelling(con):
    """R6/R9 leave CRS and ICANS to the syndrome rules (R2-R5), whichever spelling a site reports: "CRS" and
    "ICANS" AEs of grade 3 for 9 days are no R6 candidates, while the episodes' 24 h at grade 3 are no R3/R5."""
    add_subject(con, "S-1")
    add_ae(con, "S-1", 1, "ICANS", 3, 2, 10)
    add_ae(con, "S-1", 2, "CRS", 3, 1, 9)
    add_ae(con, "S-1", 3, "Neurotoxicity", 4, 3, 4)
    add_ae(con, "S-1", 4, "Pneumonitis", 3, 5, 13)                   # a non-haematological AE still counts
    add_episode(con, "S-1", "CRS", 1, 1, 3, 9, g3=(2, 2), g3_hours=24.0)
    add_episode(con, "S-1", "ICANS", 1, 2, 3, 9, g3=(3, 3), g3_hours=24.0)
    assert {k: v["rule_id"] for k, v in screen(con).items()} == {"S-1/AE/4": "R6"}


def test_a_custom_rule_leaving_out_a_syndrome_leaves_out_its_other_spellings(con):
    cfg = validate({"dlt": {"rules": [
        {"id": "N1", "type": "ae_grade", "min_grade": 3, "exclude_terms": ["Cytokine release syndrome"],
         "reason": "Grade >= 3 AE other than CRS"}]}})
    add_subject(con, "S-1")
    add_ae(con, "S-1", 1, "CRS", 3, 1, 3)
    add_ae(con, "S-1", 2, "ICANS", 3, 2, 3)     # not left out: the rule names only CRS
    assert {k: v["rule_id"] for k, v in screen(con, cfg).items()} == {"S-1/AE/2": "N1"}


def test_window_day_28_in_day_29_listed_outside(con):
    add_subject(con, "S-1")
    add_ae(con, "S-1", 1, "Hepatitis", 3, 28, 40)
    add_ae(con, "S-1", 2, "Hepatitis", 3, 29, 40)
    add_ae(con, "S-1", 3, "Hepatitis", 3, -2, 10)  # during lymphodepletion, before day 0
    got = screen(con)
    assert got["S-1/AE/1"]["in_window"] is True
    assert got["S-1/AE/2"]["in_window"] is False
    assert got["S-1/AE/3"]["in_window"] is False


def test_ongoing_at_cut_counts_to_cut_and_is_marked(con):
    add_subject(con, "S-1")
    add_ae(con, "S-1", 1, "Myocarditis", 3, 20, None, cut_day=30)  # days 20-30 so far: 11 days
    add_ae(con, "S-1", 2, "Myocarditis", 3, 25, None, cut_day=30)  # 6 days so far: not yet
    got = screen(con)
    c = got["S-1/AE/1"]
    assert c["ongoing"] is True and c["duration_days"] == 11 and c["end_day"] is None
    assert "ongoing at the cut (11 days so far)" in c["evidence"]
    assert c["event_fingerprint"] == "3|20|ongoing|ongoing|MYOCARDITIS"
    assert "S-1/AE/2" not in got


def test_r7_first_lab_on_or_after_day_28(con):
    add_subject(con, "S-1")
    add_lab_grade(con, "S-1", "NEUT", 28, 4)                                   # on the day: candidate
    add_subject(con, "S-2")
    add_lab_grade(con, "S-2", "PLAT", 27, 4); add_lab_grade(con, "S-2", "PLAT", 29, 2)   # recovered
    add_subject(con, "S-3")
    add_lab_grade(con, "S-3", "NEUT", 30, 3); add_lab_grade(con, "S-3", "NEUT", 32, 4)   # first lab grade 3
    add_subject(con, "S-4")
    add_lab_grade(con, "S-4", "PLAT", 36, 4)                                   # after day 35
    add_subject(con, "S-5")
    add_lab_grade(con, "S-5", "HGB", 29, 4)                                    # not a listed test
    got = screen(con)
    assert set(got) == {"S-1/LB/NEUT-D28"}
    c = got["S-1/LB/NEUT-D28"]
    assert (c["rule_id"], c["source"], c["grade"], c["onset_day"], c["in_window"]) == ("R7", "lab", 4, 28, True)
    assert c["evidence"] == "NEUT grade 4 on day 28 (first lab on or after day 28)"


def test_r7_falls_back_to_lab_values_without_lab_toxicity(tmp_path):
    from test_dlt_support import _insert
    con = new_db(tmp_path / "s.duckdb", upstream=False)
    add_subject(con, "S-1")
    add_subject(con, "S-2")
    for subj, value in (("S-1", 0.49), ("S-2", 0.5)):  # grade 4 is < 0.5 x 10^9/L
        _insert(con, "labs", dict(studyid=STUDY, data_cut=CUT, usubjid=subj, lbtestcd="NEUT", value=value, day=29))
    assert set(screen(con)) == {"S-1/LB/NEUT-D28"}


def test_r7_fallback_reads_blood_results_only(tmp_path):
    """A CSF neutrophil count (0-5 cells/uL) is no blood ANC: the fallback keeps blood results, as CTCAE grading."""
    from test_dlt_support import _insert
    con = new_db(tmp_path / "s.duckdb", upstream=False)
    add_subject(con, "S-1")
    for value, spec in ((2.0, "BLOOD"), (0.002, "CEREBROSPINAL FLUID")):
        _insert(con, "labs", dict(studyid=STUDY, data_cut=CUT, usubjid="S-1", lbtestcd="NEUT", value=value, day=29,
                                  lbspec=spec))
    assert screen(con) == {}


def test_r1_fatal_events_and_progression(con):
    add_subject(con, "S-1", death_day=12)
    add_ae(con, "S-1", 1, "Sepsis", 5, 8, 12, related=False, aeout="FATAL", aesdth="Y")
    add_subject(con, "S-2", death_day=20)
    add_ae(con, "S-2", 1, "Disease progression", 5, 15, 20, related=False, aeout="FATAL")
    add_subject(con, "S-3", death_day=9, death_cause="Progressive disease")
    add_subject(con, "S-4", death_day=9, death_cause=None)
    add_subject(con, "S-5")
    add_ae(con, "S-5", 1, "Encephalopathy", 5, 6, 16)  # grade 5, related, 11 days: R1 and R6
    got = screen(con)
    assert set(got) == {"S-1/AE/1", "S-4/DEATH", "S-5/AE/1"}
    assert got["S-1/AE/1"]["rule_id"] == "R1"
    assert got["S-4/DEATH"]["source"] == "death" and got["S-4/DEATH"]["onset_day"] == 9
    # also R6 (grade >= 3 related, 11 days), R8 (neurotoxicity grade >= 4) and R9 (related grade >= 4)
    assert got["S-5/AE/1"]["rule_id"] == "R1" and got["S-5/AE/1"]["also_matches"] == "R6, R8, R9"


def test_crs_from_reported_aes_when_no_assessment_data(con):
    add_subject(con, "S-1")                                  # no assessments: AE is the source
    add_ae(con, "S-1", 1, "Cytokine release syndrome", 3, 2, 5)   # 4 days
    add_subject(con, "S-2")                                  # assessed, no grade >= 1 episode: AE ignored
    add_assessment(con, "S-2", "CRS", 2)
    add_ae(con, "S-2", 1, "Cytokine release syndrome", 3, 2, 9)
    add_subject(con, "S-3")                                  # episode present: episode wins over the AE
    add_episode(con, "S-3", "CRS", 1, 1, 3, 3, g3=(2, 3))
    add_ae(con, "S-3", 1, "Cytokine release syndrome", 3, 1, 10)
    got = screen(con)
    assert set(got) == {"S-1/AE/1"}
    assert got["S-1/AE/1"]["rule_id"] == "R3" and got["S-1/AE/1"]["source"] == "AE"
    assert "reported AE (no assessment data)" in got["S-1/AE/1"]["evidence"]


def test_without_episode_table_every_subject_uses_aes(tmp_path):
    con = new_db(tmp_path / "s.duckdb", upstream=False)
    add_subject(con, "S-1")
    add_ae(con, "S-1", 1, "Immune effector cell-associated neurotoxicity syndrome", 4, 3, 4)
    got = screen(con)
    assert got["S-1/AE/1"]["rule_id"] == "R4"


def test_custom_rules_and_window_from_study_yaml(con):
    cfg = validate({"dlt": {
        "window": {"start_day": 0, "end_day": 21},
        "rules": [
            {"id": "G1", "type": "ae_grade", "min_grade": 2, "include_terms": ["Colitis"],
             "reason": "Colitis grade >= 2 of any duration"},
            {"id": "G2", "type": "syndrome_grade", "syndrome": "CRS", "min_grade": 2, "more_than_days": 7,
             "reason": "CRS grade >= 2 for more than 7 days"},
            {"id": "G3", "type": "cytopenia_persisting", "tests": ["PLAT"], "grade": 3, "from_day": 42, "to_day": 49,
             "reason": "Platelets grade >= 3 at day 42"},
        ]}})
    add_subject(con, "S-1")
    add_ae(con, "S-1", 1, "Colitis", 2, 3, 4, related=False)
    add_ae(con, "S-1", 2, "Colitis", 2, 22, 23)
    add_ae(con, "S-1", 3, "Pneumonitis", 4, 5, 30)   # default R6 would flag it; custom rules do not
    add_episode(con, "S-1", "CRS", 1, 1, 2, 8)
    add_episode(con, "S-1", "CRS", 2, 30, 2, 7)
    add_lab_grade(con, "S-1", "PLAT", 43, 3)
    got = screen(con, cfg)
    assert {k: v["rule_id"] for k, v in got.items()} == {
        "S-1/AE/1": "G1", "S-1/AE/2": "G1", "S-1/CRS/1": "G2", "S-1/LB/PLAT-D42": "G3"}
    assert got["S-1/AE/2"]["in_window"] is False  # day 22 is past a 0-21 window
    assert got["S-1/CRS/1"]["reason"] == "CRS grade >= 2 for more than 7 days"


def test_invalid_custom_rule_names_the_key():
    with pytest.raises(ConfigError, match=r"dlt.rules\[0\].min_grade"):
        validate({"dlt": {"rules": [{"id": "X", "type": "ae_grade", "min_grade": "three"}]}})
    with pytest.raises(ConfigError, match="stopping_rule.group_by"):
        validate({"stopping_rule": {"group_by": "site"}})


def test_rederivation_replaces_only_its_own_cut(con):
    cut2 = CUT + dt.timedelta(days=30)
    for cut in (CUT, cut2):
        add_subject(con, "S-1", cut=cut)
        add_ae(con, "S-1", 1, "Pneumonitis", 3, 5, 20, cut=cut)
    derive_dlt(con, STUDY, CUT, config())
    derive_dlt(con, STUDY, cut2, config())
    derive_dlt(con, STUDY, CUT, config())
    counts = rows(con, "SELECT data_cut, count(*) AS n FROM dlt_candidates GROUP BY ALL ORDER BY 1")
    assert [r["n"] for r in counts] == [1, 1]
    assert rows(con, "SELECT count(*) AS n FROM dlt_evaluability")[0]["n"] == 2


def test_evaluability_cases(con):
    add_subject(con, "S-1", last_day=28)                          # followed through the window
    add_subject(con, "S-2", last_day=12)                          # still early
    add_subject(con, "S-3", death_day=9, death_cause="Progressive disease")
    add_subject(con, "S-4", infused=False)
    add_subject(con, "S-5", last_day=15, status="discontinued")
    add_subject(con, "S-6", last_day=10)                          # candidate, not adjudicated
    add_ae(con, "S-6", 1, "Pneumonitis", 4, 1, 9, cut_day=10)
    derive_dlt(con, STUDY, CUT, config())
    ev = {r["usubjid"]: r for r in rows(con, "SELECT * FROM dlt_evaluability")}
    assert (ev["S-1"]["evaluable"], ev["S-1"]["reason"], ev["S-1"]["followed_through_day"]) == (True, "followed through day 28", 28)
    assert (ev["S-2"]["evaluable"], ev["S-2"]["reason"]) == (False, "followed to day 12 of 28 so far")
    assert (ev["S-3"]["evaluable"], ev["S-3"]["reason"]) == (False, "died on day 9 without DLT")
    assert (ev["S-4"]["evaluable"], ev["S-4"]["reason"]) == (False, "not infused")
    # no day 0, no follow-up from it: not "followed to day 28" (its last-known-alive day counts from nothing)
    assert (ev["S-4"]["followed_through_day"], ev["S-4"]["followed_through_window"]) == (None, False)
    assert (ev["S-5"]["evaluable"], ev["S-5"]["reason"]) == (False, "discontinued on day 15 of 28 without DLT")
    s6 = ev["S-6"]
    assert s6["evaluable"] is False and s6["evaluable_if_candidates_confirmed"] is True
    assert s6["reason"] == "followed to day 10 of 28 so far; DLT candidate pending adjudication"
    assert (s6["candidates_in_window"], s6["pending_in_window"]) == (1, 1)


def test_monitored_toxicity_columns(con):
    add_subject(con, "S-1")
    add_episode(con, "S-1", "CRS", 1, 1, 3, 2, g3=(1, 2))
    add_episode(con, "S-1", "ICANS", 1, 40, 4, 2, g3=(40, 41))   # outside the window
    add_ae(con, "S-1", 1, "Hemophagocytic lymphohistiocytosis", 5, 20, 26, aeout="FATAL")
    derive_dlt(con, STUDY, CUT, config())
    [r] = rows(con, "SELECT * FROM dlt_evaluability")
    assert (r["crs_max_grade_window"], r["icans_max_grade_window"], r["treatment_related_death"]) == (3, 0, True)


def _death_row(con, usubjid, day, treatment_related):
    cols = {"studyid": STUDY, "data_cut": CUT, "usubjid": usubjid, "death_day": day,
            "cause_category": "infection" if treatment_related else "progression/relapse",
            "non_relapse": treatment_related, "treatment_related": treatment_related, "sources": "DS"}
    con.execute(f"INSERT INTO deaths ({', '.join(cols)}) VALUES ({', '.join('$' + c for c in cols)})", cols)


def test_treatment_related_death_reads_deaths_from_dm_and_ds(con):
    # a death known only from DM/DS (no fatal AE) is a treatment-related death when it is non-relapse
    # and inside the DLT window (days 0-28); a relapse death or one on day 29 is not
    for sid in ("S-1", "S-2", "S-3"):
        add_subject(con, sid)
    _death_row(con, "S-1", 20, True)
    _death_row(con, "S-2", 20, False)
    _death_row(con, "S-3", 29, True)
    derive_dlt(con, STUDY, CUT, config())
    trd = {r["usubjid"]: r["treatment_related_death"] for r in rows(con, "SELECT * FROM dlt_evaluability")}
    assert trd == {"S-1": True, "S-2": False, "S-3": False}

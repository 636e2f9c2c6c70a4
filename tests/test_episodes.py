"""CRS/ICANS episodes: restarts, ordering, duplicates, management, resolution, reported-AE fallback,
discrepancies with reported grades, biomarker peaks and the IEC-HS screen."""
from __future__ import annotations

import math

from test_crs_support import StudyDB


def _int(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else int(v)


def _episodes(db, usubjid, syndrome="CRS"):
    return db.rows("SELECT * FROM toxicity_episodes WHERE usubjid = $u AND syndrome = $s ORDER BY episode_no",
                   u=usubjid, s=syndrome)


def test_episode_restarts_after_two_grade0_days(db_path):
    db = StudyDB(db_path)
    db.subject("E1")
    db.crs("E1", 1, temp=38.4)
    db.crs("E1", 2, temp=37.0)           # one grade-0 day: same episode continues
    db.crs("E1", 3, temp=38.8, hypotension=True)
    db.crs("E1", 4, temp=37.0)
    db.crs("E1", 5, temp=37.1)           # second grade-0 day: episode 1 ended on day 3
    db.crs("E1", 9, temp=38.1, vasopressors=2, hypotension=True)
    db.crs("E1", 10, temp=37.0)
    db.derive()
    eps = _episodes(db, "E1")
    assert [e["event_key"] for e in eps] == ["E1/CRS/1", "E1/CRS/2"]
    assert (eps[0]["onset_day"], eps[0]["last_symptomatic_day"], eps[0]["duration_days"], eps[0]["max_grade"]) == (1, 3, 3, 2)
    assert eps[0]["resolution_day"] == 4 and eps[0]["resolution_status"] == "resolved"
    assert (eps[1]["onset_day"], eps[1]["max_grade"], eps[1]["vasopressor_max"]) == (9, 4, 2)
    assert eps[1]["icu_level_support"] and eps[1]["resolution_status"] == "resolved"
    keys = {int(r["day"]): r["episode_key"] for r in db.rows("SELECT day, episode_key FROM crs_grades WHERE usubjid='E1'")}
    assert keys[2] == "E1/CRS/1" and keys[5] == "E1/CRS/1" and keys[9] == "E1/CRS/2"


def test_long_unassessed_gap_splits_episodes(db_path):
    db = StudyDB(db_path)
    db.subject("E2")
    db.crs("E2", 1, temp=38.4)
    db.crs("E2", 12, temp=38.4)
    db.derive()
    assert [e["onset_day"] for e in _episodes(db, "E2")] == [1, 12]


def test_out_of_order_and_duplicate_assessments(db_path):
    db = StudyDB(db_path)
    db.subject("E3")
    # inserted out of time order; two records at the same time on day 2 (grade 1 and grade 3: worst wins)
    db.crs("E3", 3, temp=37.0)
    db.crs("E3", 2, hour=14, temp=38.5)
    db.crs("E3", 1, temp=38.2)
    db.crs("E3", 2, hour=14, temp=38.5, vasopressors=1, hypotension=True)
    db.crs("E3", 4, temp=36.9)
    db.derive()
    eps = _episodes(db, "E3")
    assert len(eps) == 1
    e = eps[0]
    assert (e["onset_day"], e["last_symptomatic_day"], e["max_grade"], e["max_grade_day"]) == (1, 2, 3, 2)
    assert e["days_grade3_plus"] == 1 and e["grade3_plus_first_day"] == 2 and e["grade3_plus_last_day"] == 2
    daily = {int(r["day"]): int(r["grade"]) for r in db.rows("SELECT * FROM toxicity_daily_grades WHERE usubjid='E3'")}
    assert daily == {1: 1, 2: 3, 3: 0, 4: 0}


def test_management_and_support(db_path):
    db = StudyDB(db_path)
    db.subject("E4")
    db.crs("E4", 2, temp=39.0, oxygen="LOW_FLOW_NC", flow=4)
    db.crs("E4", 3, temp=39.2, hypotension=True, vasopressors=1, vasopressin=True, oxygen="BIPAP")
    db.crs("E4", 5, temp=37.0)
    db.crs("E4", 6, temp=37.0)
    db.med("E4", "tocilizumab", 2)
    db.med("E4", "tocilizumab", 3)
    db.med("E4", "tocilizumab", 20)      # outside the episode window
    db.med("E4", "corticosteroid", 3, 6)
    db.med("E4", "anakinra", 4, 5)
    db.derive()
    e = _episodes(db, "E4")[0]
    assert e["tocilizumab"] and e["tocilizumab_first_day"] == 2 and e["tocilizumab_doses"] == 2
    assert e["corticosteroid"] and e["corticosteroid_first_day"] == 3
    assert e["anakinra"] and e["anakinra_first_day"] == 4
    assert e["vasopressor_max"] == 2 and e["positive_pressure"] and e["icu_level_support"]
    assert e["max_grade"] == 4 and e["grading_system"] == "ASTCT 2019" and e["source"] == "assessments"


def test_resolution_status_ongoing_and_death(db_path):
    db = StudyDB(db_path)
    db.subject("E5")
    db.crs("E5", 1, temp=38.5)
    db.crs("E5", 2, temp=38.6, oxygen="FACEMASK")
    db.subject("E6", death_day=4)
    db.crs("E6", 2, temp=39.5, vasopressors=3, hypotension=True)
    db.derive()
    e5 = _episodes(db, "E5")[0]
    assert e5["ongoing"] and e5["resolution_status"] == "ongoing at data cut"
    e6 = _episodes(db, "E6")[0]
    assert not e6["ongoing"] and e6["resolution_status"] == "death"


def test_grade3_hours(db_path):
    db = StudyDB(db_path)
    db.subject("E7")
    db.crs("E7", 1, hour=8, temp=38.5, vasopressors=1, hypotension=True)
    db.crs("E7", 3, hour=20, temp=38.5, vasopressors=1, hypotension=True)
    db.crs("E7", 4, hour=20, temp=38.5, hypotension=True)
    db.derive()
    e = _episodes(db, "E7")[0]
    assert e["grade3_plus_hours"] == 2 * 24 + 12  # day 1 08:00 to day 3 20:00, the last grade 3 assessment
    assert e["days_grade3_plus"] == 2
    assert not e["grade3_plus_ongoing"] and e["grade3_plus_end_day"] == 3  # grade 2 on day 4: grade 3 was over


def test_icans_grade3_hours_run_until_an_assessment_shows_the_improvement(db_path):
    """An ICANS assessment is of its moment: ICE 0-2 (grade 3) at 08:00 on days 1-4 and ICE 8 on day 5 is grade 3
    not improved within 72 h until day 5 shows it (96 h, an R5 candidate), unlike CRS, whose assessment grades the
    support since the previous one and stops at its last grade 3 assessment (72 h)."""
    db = StudyDB(db_path)
    db.subject("I7")
    for day in range(1, 5):
        db.icans("I7", day, ice=2)
    db.icans("I7", 5, ice=8)
    db.subject("C7")
    for day in range(1, 5):
        db.crs("C7", day, temp=38.5, vasopressors=1, hypotension=True)
    db.crs("C7", 5, temp=38.5, hypotension=True)
    db.derive()
    icans, crs = _episodes(db, "I7", "ICANS")[0], _episodes(db, "C7")[0]
    assert (icans["max_grade"], icans["grade3_plus_hours"], icans["grade3_plus_end_day"]) == (3, 96.0, 4)
    assert (crs["max_grade"], crs["grade3_plus_hours"], crs["grade3_plus_end_day"]) == (3, 72.0, 4)


def test_grade3_still_present_at_the_cut_counts_to_the_cut(db_path):
    """An ongoing episode whose last assessment is grade >= 3 runs its grade >= 3 time to the cut (or to the last
    day known alive, if earlier); the DLT rule then sees it (issue: ongoing events count to the cut)."""
    from safety.core.config import validate
    from safety.derive.dlt.screening import derive_dlt
    from test_crs_support import CUT, DAY0, STUDY
    db = StudyDB(db_path)
    db.subject("E8", last_known_alive_day=4)
    db.crs("E8", 2, hour=8, temp=38.5, vasopressors=1, hypotension=True)
    db.crs("E8", 3, hour=8, temp=38.5, vasopressors=1, hypotension=True)
    db.subject("E9")  # known alive to the cut (day 180)
    db.crs("E9", 2, hour=8, temp=38.5, vasopressors=1, hypotension=True)
    db.crs("E9", 3, hour=8, temp=38.5, vasopressors=1, hypotension=True)
    db.derive()
    e8, e9 = _episodes(db, "E8")[0], _episodes(db, "E9")[0]
    assert e8["ongoing"] and e8["grade3_plus_ongoing"] and e8["grade3_plus_end_day"] == 4
    assert e8["grade3_plus_last_day"] == 3 and e8["grade3_plus_hours"] == 16 + 2 * 24  # day 2 08:00 to the end of day 4
    cut_day = (CUT - DAY0).days
    assert e9["grade3_plus_end_day"] == cut_day and e9["grade3_plus_hours"] == 16 + (cut_day - 2) * 24
    derive_dlt(db.con, STUDY, CUT, validate({}))
    got = {r["event_key"]: r for r in db.rows("SELECT * FROM dlt_candidates")}
    assert "E8/CRS/1" not in got  # 64 h, 3 days: not more than 72 hours
    c = got["E9/CRS/1"]
    assert c["rule_id"] == "R3" and c["ongoing"]
    assert f"grade >= 3 on days 2-{cut_day}, still grade >= 3 at the last assessment, counted to the cut" in c["evidence"]


def test_fallback_to_reported_aes_when_no_assessment_data(db_path):
    db = StudyDB(db_path)
    db.subject("F1")
    db.subject("F2")
    db.ae("F1", "Cytokine release syndrome", 2, 1, 3)
    db.ae("F1", "CYTOKINE RELEASE SYNDROME", 3, 3, 5)       # touches the first: one episode, max grade 3
    db.ae("F1", "crs", 1, 20, 21)                          # separate episode
    db.ae("F2", "Immune effector cell-associated neurotoxicity syndrome", 4, 5, None)
    db.ae("F2", "Pyrexia", 1, 1, 2)
    db.med("F1", "tocilizumab", 2)
    db.derive()
    eps = _episodes(db, "F1")
    assert [(e["event_key"], e["onset_day"], e["last_symptomatic_day"], e["max_grade"]) for e in eps] == \
        [("F1/CRS/1", 1, 5, 3), ("F1/CRS/2", 20, 21, 1)]
    assert all(e["source"] == "reported AE" for e in eps)
    assert eps[0]["ae_event_key"] == "F1/AE/2" and eps[0]["reported_grade"] == 3 and eps[0]["tocilizumab"]
    assert eps[0]["resolution_status"] == "resolved" and _int(eps[0]["days_grade3_plus"]) is None
    ic = _episodes(db, "F2", "ICANS")
    assert len(ic) == 1 and ic[0]["max_grade"] == 4 and ic[0]["resolution_status"] == "ongoing at data cut"
    assert ic[0]["grading_system"] == "ASTCT 2019"
    days = [int(r["day"]) for r in db.rows("SELECT day FROM toxicity_daily_grades WHERE usubjid='F1' ORDER BY day")]
    assert days == [1, 2, 3, 4, 5, 20, 21]
    assert db.one("SELECT count(*) AS n FROM grade_discrepancies")["n"] == 0
    assert db.one("SELECT count(*) AS n FROM crs_grades")["n"] == 0


def test_fallback_keeps_other_grading_system_visible(db_path):
    db = StudyDB(db_path)
    db.subject("F3")
    db.ae("F3", "Cytokine release syndrome", 3, 2, 4, grading_system="CTCAE v5.0")
    db.derive()
    assert _episodes(db, "F3")[0]["grading_system"] == "CTCAE v5.0"


def test_discrepancies_on_planted_cases(db_path):
    db = StudyDB(db_path)
    # D1: vasopressor on day 3 -> derived grade 3, site reported 2
    db.subject("D1")
    db.crs("D1", 2, temp=38.6)
    db.crs("D1", 3, temp=38.9, hypotension=True, vasopressors=1)
    db.crs("D1", 4, temp=37.0)
    db.crs("D1", 5, temp=37.0)
    db.ae("D1", "Cytokine release syndrome", 2, 2, 4)
    # D2: derived grade 1, reported 3
    db.subject("D2")
    db.crs("D2", 1, temp=38.3)
    db.ae("D2", "Cytokine release syndrome", 3, 1, 2)
    # D3: derived episode, nothing reported
    db.subject("D3")
    db.crs("D3", 6, temp=38.1, oxygen="HIGH_FLOW_NC", flow=30)
    # D4: reported AE, no derived episode
    db.subject("D4")
    db.crs("D4", 1, temp=37.0)
    db.ae("D4", "Cytokine release syndrome", 1, 10, 11)
    # D5: agreement: no row
    db.subject("D5")
    db.crs("D5", 1, temp=38.3, hypotension=True)
    db.ae("D5", "Cytokine release syndrome", 2, 1, 2)
    # D6: same grade but graded with CTCAE: not silently accepted
    db.subject("D6")
    db.crs("D6", 1, temp=38.3)
    db.ae("D6", "Cytokine release syndrome", 1, 1, 2, grading_system="CTCAE v5.0")
    db.derive()
    d = {r["usubjid"]: r for r in db.rows("SELECT * FROM grade_discrepancies")}
    assert set(d) == {"D1", "D2", "D3", "D4", "D6"}
    assert d["D1"]["discrepancy"] == "reported lower than derived"
    assert (d["D1"]["reported_grade"], d["D1"]["derived_grade"]) == (2, 3)
    assert d["D1"]["ae_event_key"] == "D1/AE/1" and d["D1"]["episode_key"] == "D1/CRS/1" and d["D1"]["aeseq"] == 1
    assert "on day 3" in d["D1"]["evidence"] and "one vasopressor" in d["D1"]["evidence"]
    assert d["D2"]["discrepancy"] == "reported higher than derived"
    assert d["D3"]["discrepancy"] == "no AE reported for derived episode" and d["D3"]["derived_grade"] == 3
    assert "high-flow nasal cannula" in d["D3"]["evidence"]
    assert d["D4"]["discrepancy"] == "reported AE without derived episode" and d["D4"]["reported_grade"] == 1
    assert d["D6"]["discrepancy"] == "reported on a different grading system"
    assert "CTCAE v5.0" in d["D6"]["evidence"]
    ep = db.one("SELECT * FROM toxicity_episodes WHERE usubjid='D1'")
    assert ep["ae_event_key"] == "D1/AE/1" and ep["reported_grade"] == 2


def test_biomarker_peaks_relative_to_onset(db_path):
    db = StudyDB(db_path)
    db.subject("B1")
    db.crs("B1", 2, temp=38.6)
    db.crs("B1", 4, temp=38.6)
    db.crs("B1", 5, temp=37.0)
    db.crs("B1", 6, temp=37.0)
    for day, crp, fer, il6 in [(0, 5, 400, 10), (2, 120, 900, 300), (3, 180, 2500, 150), (5, 60, 3100, 40), (20, 300, 9000, 900)]:
        db.lab("B1", "CRP", day, crp)
        db.lab("B1", "FERRITIN", day, fer)
        db.lab("B1", "IL6", day, il6)
    db.derive()
    b = db.one("SELECT * FROM episode_biomarkers WHERE usubjid='B1'")
    assert (b["peak_crp"], b["peak_crp_day"], b["peak_crp_rel_onset"]) == (180, 3, 1)
    assert (b["peak_ferritin"], b["peak_ferritin_day"], b["peak_ferritin_rel_onset"]) == (3100, 5, 3)
    assert (b["peak_il6"], b["peak_il6_day"], b["peak_il6_rel_onset"]) == (300, 2, 0)


def _iec_hs_after_crs(db, u):
    """A subject whose CRS peaks on day 2 and resolves; platelets recover from the lymphodepletion nadir (days 5-7
    >= 50), then ferritin x6 on day 8 with new thrombocytopenia and low fibrinogen."""
    db.subject(u)
    db.crs(u, 1, temp=38.5)
    db.crs(u, 2, temp=39.0, hypotension=True)
    db.crs(u, 4, temp=37.0)
    db.crs(u, 5, temp=37.0)
    for day, ferritin in [(0, 500), (3, 800), (8, 3000)]:
        db.lab(u, "FERRITIN", day, ferritin)
    for day, plt in [(0, 150), (3, 40), (5, 60), (6, 70), (7, 80), (8, 30)]:
        db.lab(u, "PLAT", day, plt)
    db.lab(u, "FIBRINO", 8, 1.2)


def test_iec_hs_screen(db_path):
    """Hines 2023: ferritin > 2 x ULN or > 2 x baseline (and/or rapidly rising), onset as CRS resolves or after,
    with haemophagocytosis-like findings."""
    db = StudyDB(db_path)
    # H1: CRS peaks day 2 and resolves, then ferritin x6 on day 8 with new thrombocytopenia and low fibrinogen
    _iec_hs_after_crs(db, "H1")
    db.lab("H1", "ALT", 8, 100, uln=40)
    db.med("H1", "anakinra", 9, 12, cmtrt="anakinra")
    # H2: ferritin doubles but nothing else abnormal: not flagged
    db.subject("H2")
    db.lab("H2", "FERRITIN", 0, 500)
    db.lab("H2", "FERRITIN", 8, 1500)
    db.lab("H2", "ALT", 8, 200, uln=40)   # exactly 5 x ULN: not > 5 x ULN
    # H3: no CRS, transaminases > 5 x ULN with ferritin rising
    db.subject("H3")
    db.lab("H3", "FERRITIN", -2, 300)
    db.lab("H3", "FERRITIN", 10, 900)
    db.lab("H3", "AST", 11, 201, uln=40)
    db.derive()
    rows = {r["usubjid"]: r for r in db.rows("SELECT * FROM iec_hs_screen")}
    assert set(rows) == {"H1", "H3"}
    h1 = rows["H1"]
    assert h1["flag_day"] == 8 and h1["ferritin_fold"] == 6.0 and h1["crs_phase"] == "after CRS"
    assert h1["criteria_met"] == "fibrinogen < 1.5 g/L (1.2), new platelets < 50 x10^9/L (30.0 from 80.0)"
    assert h1["crs_episode_key"] == "H1/CRS/1" and "ferritin > 2 x baseline" in h1["ferritin_criterion"]
    assert h1["label"] == "screen, not a diagnosis" and h1["first_flag"]
    assert h1["grade"] == 2 and "anakinra" in h1["grade_reason"] and "lower bound" in h1["grade_reason"]
    assert rows["H3"]["criteria_met"].startswith("AST > 5 x ULN") and rows["H3"]["crs_phase"] == "no CRS episode"
    assert rows["H3"]["grade"] == 1


def test_iec_hs_source_positive_cases(db_path):
    """The paper's pattern in the three shapes the earlier screen missed, and the ferritin boundary."""
    db = StudyDB(db_path)
    # S1: no pre-infusion ferritin; 62 x ULN after CRS with fibrinogen 0.9 g/L
    db.subject("S1")
    _crs_peak_day2(db, "S1")
    db.lab("S1", "FERRITIN", 3, 4000, uln=300)
    db.lab("S1", "FERRITIN", 9, 18600, uln=300)
    db.lab("S1", "FIBRINO", 9, 0.9)
    # S2: CRS ferritin peak 40,000 on day 2, falls, then re-rises to 29,000 (below the CRS peak) with low fibrinogen
    db.subject("S2")
    _crs_peak_day2(db, "S2")
    for day, fer in [(0, 800), (2, 40000), (5, 9000), (10, 29000)]:
        db.lab("S2", "FERRITIN", day, fer, uln=300)
    db.lab("S2", "FIBRINO", 10, 0.9)
    # S3: platelets worsening 35 -> 12 (no recovery before) with ferritin rising after CRS
    db.subject("S3")
    _crs_peak_day2(db, "S3")
    for day, fer in [(0, 500), (3, 2500), (6, 1800), (9, 5200)]:
        db.lab("S3", "FERRITIN", day, fer, uln=300)
    db.lab("S3", "PLAT", 7, 35)
    db.lab("S3", "PLAT", 9, 12)
    # B1/B2: ferritin exactly 2 x ULN is not elevated; just above is (no baseline, low fibrinogen)
    for u, fer in [("B1", 600), ("B2", 600.5)]:
        db.subject(u)
        db.lab(u, "FERRITIN", 12, fer, uln=300)
        db.lab(u, "FIBRINO", 12, 1.0)
    db.derive()
    rows = {r["usubjid"]: r for r in db.rows("SELECT * FROM iec_hs_screen WHERE first_flag")}
    assert set(rows) == {"S1", "S2", "S3", "B2"}
    assert rows["S1"]["flag_day"] == 9 and _int(rows["S1"]["ferritin_at_infusion"]) is None
    assert "2 x ULN" in rows["S1"]["ferritin_criterion"]
    assert rows["S2"]["flag_day"] == 10 and rows["S2"]["crs_phase"] == "after CRS"
    assert rows["S3"]["criteria_met"] == "worsening platelets < 50 x10^9/L (12.0 from 35.0)"


def test_iec_hs_death_recorded_only_as_its_fatal_ae_is_grade_5(db_path):
    """Hines 2023 (clinical-rules.md 4.3): grade 5 is death from IEC-HS. A death dated in DM whose cause is the
    fatal grade 5 HLH AE (how SDTM records it, no DS DSTERM) was graded 1, while the deaths table classed the
    same death as IEC-HS/HLH; the DS cause and the fatal AE now grade it alike."""
    db = StudyDB(db_path)
    for u, cause in (("FATAL", None), ("FATAL_DS", "Haemophagocytic lymphohistiocytosis")):
        db.subject(u, death_day=14, last_known_alive_day=14, death_cause=cause)
        db.crs(u, 1, temp=38.5)
        db.crs(u, 2, temp=39.0, hypotension=True)
        db.crs(u, 3, temp=38.2)
        db.crs(u, 5, temp=37.0)
        db.crs(u, 6, temp=37.0)
        for day, fer in ((0, 500), (3, 1500), (6, 1200), (10, 9000)):
            db.lab(u, "FERRITIN", day, fer, uln=300)
        db.lab(u, "FIBRINO", 10, 0.9)
    db.ae("FATAL", "Haemophagocytic lymphohistiocytosis", 5, 10, 14, aeout="FATAL")
    db.derive()
    rows = {r["usubjid"]: r for r in db.rows("SELECT usubjid, grade, grade_reason FROM iec_hs_screen")}
    assert (rows["FATAL"]["grade"], rows["FATAL"]["grade_reason"]) == (
        5, "death on day 14 attributed to Haemophagocytic lymphohistiocytosis (fatal AE)")
    assert (rows["FATAL_DS"]["grade"], rows["FATAL_DS"]["grade_reason"]) == (
        5, "death on day 14 attributed to Haemophagocytic lymphohistiocytosis")


def test_iec_hs_a_first_fall_below_the_cytopenia_threshold_is_new(db_path):
    """Platelets 150-180 from day 0 to day 8, never below 50 after the lymphodepletion, then 30 on day 10 while the
    ferritin re-rises after CRS: a new cytopenia (docs/toxicities.md: a fall after 3 measured days at or above the
    threshold, the last on day 7 or later). Only a fall after a nadir counted as new, so it went unflagged."""
    db = StudyDB(db_path)
    db.subject("NEWPLT")
    _crs_peak_day2(db, "NEWPLT")
    for day, plt in ((0, 180), (2, 160), (4, 150), (6, 155), (8, 160), (10, 30)):
        db.lab("NEWPLT", "PLAT", day, plt)
    for day, fer in ((0, 500), (3, 1500), (6, 1200), (10, 9000)):
        db.lab("NEWPLT", "FERRITIN", day, fer, uln=300)
    db.derive()
    assert db.rows("SELECT usubjid, flag_day, criteria_met FROM iec_hs_screen") == [
        {"usubjid": "NEWPLT", "flag_day": 10, "criteria_met": "new platelets < 50 x10^9/L (30.0 from 160.0)"}]


def test_iec_hs_ferritin_peaking_with_crs_and_falling_is_crs(db_path):
    """A ferritin that peaks on the CRS peak day and falls as CRS resolves is CRS, not IEC-HS, whatever the counts."""
    db = StudyDB(db_path)
    db.subject("F1")
    _crs_peak_day2(db, "F1")
    for day, fer, plt in [(0, 500, 150), (2, 30000, 30), (3, 20000, 14), (4, 12000, 12), (6, 6000, 10)]:
        db.lab("F1", "FERRITIN", day, fer, uln=300)
        db.lab("F1", "PLAT", day, plt)
        db.lab("F1", "FIBRINO", day, 1.0)
    db.derive()
    assert db.rows("SELECT usubjid FROM iec_hs_screen") == []


def _crs_peak_day2(db, u):
    db.crs(u, 1, temp=38.5)
    db.crs(u, 2, temp=39.0, hypotension=True)
    db.crs(u, 3, temp=38.2)
    db.crs(u, 5, temp=37.0)
    db.crs(u, 6, temp=37.0)


def test_iec_hs_screen_ignores_ordinary_crs_with_lymphodepletion_nadir(db_path):
    """The pattern of most CAR-T subjects (12 of 22 CD56 subjects were flagged before): ferritin rising with
    ordinary CRS while ANC and platelets fall to the lymphodepletion nadir is not IEC-HS."""
    db = StudyDB(db_path)
    # N1: counts fall to the nadir on days 3-8 and have not recovered by day 14; ferritin keeps climbing to
    # its CRS peak on day 5 (after the CRS maximum on day 2)
    db.subject("N1")
    _crs_peak_day2(db, "N1")
    for day, fer, anc, plt in [(0, 400, 2.5, 160), (1, 600, 1.8, 140), (2, 1200, 1.2, 110), (3, 1600, 0.8, 70),
                               (4, 2000, 0.5, 45), (5, 2200, 0.4, 42), (6, 1500, 0.3, 40), (8, 700, 0.4, 42),
                               (14, 450, 1.2, 80)]:
        db.lab("N1", "FERRITIN", day, fer)
        db.lab("N1", "NEUT", day, anc)
        db.lab("N1", "PLAT", day, plt)
    # N2: ANC wobbles around 1.0 on its way to the nadir (one value >= 1.0 on day 7 is not a recovery);
    # ferritin reaches a new high on day 8
    db.subject("N2")
    _crs_peak_day2(db, "N2")
    for day, fer, anc in [(0, 400, 2.5), (3, 900, 1.4), (5, 1000, 0.9), (7, 1100, 1.1), (8, 1200, 0.8)]:
        db.lab("N2", "FERRITIN", day, fer)
        db.lab("N2", "NEUT", day, anc)
    # N3: ferritin falling after its CRS peak; a small uptick (2100 after 2000) is not still rising
    db.subject("N3")
    _crs_peak_day2(db, "N3")
    for day, fer in [(0, 500), (3, 3000), (6, 2000), (7, 2100)]:
        db.lab("N3", "FERRITIN", day, fer)
    db.lab("N3", "AST", 7, 300, uln=40)
    # N4: a low ferritin that doubles but stays within 2 x ULN is not an HLH-like signal
    db.subject("N4")
    _crs_peak_day2(db, "N4")
    db.lab("N4", "FERRITIN", 0, 60, uln=150)
    db.lab("N4", "FERRITIN", 8, 140, uln=150)
    db.lab("N4", "FIBRINO", 8, 1.2)
    # N5: a second CRS episode (onset day 10, maximum day 12): ferritin rising on day 11 is before its peak
    db.subject("N5")
    _crs_peak_day2(db, "N5")
    db.crs("N5", 10, temp=38.5)
    db.crs("N5", 11, temp=38.6)
    db.crs("N5", 12, temp=38.9, vasopressors=1, hypotension=True)
    db.crs("N5", 14, temp=37.0)
    db.crs("N5", 15, temp=37.0)
    for day, fer in [(0, 500), (3, 900), (11, 2000)]:
        db.lab("N5", "FERRITIN", day, fer)
    db.lab("N5", "FIBRINO", 11, 1.2)
    db.derive()
    assert [e["max_grade_day"] for e in _episodes(db, "N5")] == [2, 12]
    assert db.rows("SELECT usubjid, flag_day, criteria_met FROM iec_hs_screen") == []


def test_iec_hs_new_cytopenia_needs_sustained_recovery_first(db_path):
    db = StudyDB(db_path)
    # R1: ANC nadir days 3-5, recovered on days 6-8 (3 measured days >= 1.0), falls to 0.6 on day 10 while
    # ferritin surges after CRS: new cytopenia is the only accompanying finding
    db.subject("R1")
    _crs_peak_day2(db, "R1")
    for day, anc in [(0, 2.0), (3, 0.7), (5, 0.8), (6, 1.2), (7, 1.6), (8, 1.3), (10, 0.6)]:
        db.lab("R1", "NEUT", day, anc)
    for day, fer in [(0, 500), (3, 1500), (6, 1200), (9, 5000), (10, 9000)]:
        db.lab("R1", "FERRITIN", day, fer)
    db.derive()
    rows = db.rows("SELECT flag_day, criteria_met, crs_phase, first_flag FROM iec_hs_screen ORDER BY flag_day")
    assert [(r["flag_day"], r["criteria_met"], r["crs_phase"]) for r in rows] == \
        [(9, "new ANC < 1.0 x10^9/L (0.6 from 1.3)", "after CRS"), (10, "new ANC < 1.0 x10^9/L (0.6 from 1.3)", "after CRS")]
    assert [bool(r["first_flag"]) for r in rows] == [True, False]


def test_fatal_episode_reported_as_grade5_is_derived_grade5_and_agrees(db_path):
    db = StudyDB(db_path)
    # G1 died on day 6 of ICANS that was grade 4 at the bedside, reported grade 5 with outcome FATAL: the death
    # is attributed to ICANS, so the derived grade is 5 too and there is nothing to query.
    db.subject("G1", death_day=6)
    db.icans("G1", 3, ice=5)
    db.icans("G1", 4, ice=0, consciousness="UNAROUSABLE", edema="DIFFUSE")
    db.icans("G1", 5, ice=0, consciousness="UNAROUSABLE", edema="DIFFUSE")
    db.ae("G1", "Immune effector cell-associated neurotoxicity syndrome", 5, 3, 6, aeout="FATAL")
    # G2 is alive: a grade 5 report against a grade-4 bedside maximum is still queried.
    db.subject("G2")
    db.icans("G2", 3, ice=0, consciousness="UNAROUSABLE")
    db.icans("G2", 4, ice=10)
    db.icans("G2", 5, ice=10)
    db.ae("G2", "Immune effector cell-associated neurotoxicity syndrome", 5, 3, 4)
    db.derive()
    rows = db.rows("SELECT usubjid, reported_grade, derived_grade, discrepancy FROM grade_discrepancies")
    assert [(r["usubjid"], r["reported_grade"], r["derived_grade"]) for r in rows] == [("G2", 5, 4)]
    assert rows[0]["discrepancy"] == "reported higher than derived"


def test_site_spellings_crs_and_neurotoxicity_are_compared_as_crs_and_icans(db_path):
    """One term list (safety.core.vocabulary): an AE coded "CRS" at the derived grade agrees (no false
    'different grading system' row), and a grade 3 "NEUROTOXICITY" AE against a derived grade 2 ICANS is compared."""
    db = StudyDB(db_path)
    # N1: fever only on day 1 -> derived CRS grade 1, site codes the AE as "CRS" grade 1: agreement
    db.subject("N1")
    db.crs("N1", 1, temp=38.3)
    db.crs("N1", 2, temp=37.0)
    db.ae("N1", "CRS", 1, 1, 1)
    # N2: ICE 5 on day 4 -> derived ICANS grade 2, site reports "NEUROTOXICITY" grade 3
    db.subject("N2")
    db.icans("N2", 4, ice=5)
    db.icans("N2", 5, ice=10)
    db.ae("N2", "NEUROTOXICITY", 3, 4, 4)
    db.derive()
    rows = db.rows("SELECT usubjid, syndrome, reported_grade, derived_grade, discrepancy FROM grade_discrepancies "
                   "ORDER BY usubjid")
    assert [(r["usubjid"], r["syndrome"], r["reported_grade"], r["derived_grade"], r["discrepancy"]) for r in rows] \
        == [("N2", "ICANS", 3, 2, "reported higher than derived")]


def test_reported_ae_days_keep_the_ae_grade_when_a_death_makes_the_episode_grade5(db_path):
    db = StudyDB(db_path)
    db.subject("F5", death_day=6, death_cause="Cytokine release syndrome")
    db.ae("F5", "Cytokine release syndrome", 3, 2, 5)
    db.derive()
    ep = _episodes(db, "F5")[0]
    assert (ep["source"], ep["max_grade"], ep["reported_grade"], ep["resolution_status"]) == ("reported AE", 5, 3, "death")
    days = db.rows("SELECT day, grade, source, episode_key FROM toxicity_daily_grades WHERE usubjid = 'F5' ORDER BY day")
    assert [(int(r["day"]), int(r["grade"])) for r in days] == [(2, 3), (3, 3), (4, 3), (5, 3)]
    assert {(r["source"], r["episode_key"]) for r in days} == {("reported AE", "F5/CRS/1")}


def test_several_reported_aes_of_the_same_grade_speak_in_one_fixed_order(db_path):
    # The worst grade's first day, and the AE that speaks for the episode: the highest grade, then the earliest
    # onset, then the lowest AESEQ (before, a tie went to whichever AE DuckDB's threads met first)
    db = StudyDB(db_path)
    db.subject("T1")
    db.ae("T1", "Cytokine release syndrome", 2, 6, 8)        # AESEQ 1, later onset
    db.ae("T1", "Cytokine release syndrome", 2, 2, 6)        # AESEQ 2, earliest onset: speaks for the episode
    db.subject("T2")
    db.ae("T2", "Cytokine release syndrome", 2, 3, 4)        # AESEQ 3 (the fixture numbers AEs across subjects):
    db.ae("T2", "Cytokine release syndrome", 2, 3, 5)        # same onset and grade as AESEQ 4, the lower one
    # with bedside assessments: two AEs of one grade matched to the derived episode
    db.subject("T3")
    db.crs("T3", 1, temp=38.3)
    db.crs("T3", 2, temp=38.9, hypotension=True, vasopressors=1)
    db.ae("T3", "Cytokine release syndrome", 2, 2, 3, grading_system="CTCAE v5.0")   # AESEQ 5
    db.ae("T3", "Cytokine release syndrome", 2, 1, 3)                                # AESEQ 6, earliest onset
    db.derive()
    t1, t2 = _episodes(db, "T1"), _episodes(db, "T2")
    assert [(e["onset_day"], e["max_grade_day"], e["ae_event_key"]) for e in t1] == [(2, 2, "T1/AE/2")]
    assert [(e["onset_day"], e["max_grade_day"], e["ae_event_key"]) for e in t2] == [(3, 3, "T2/AE/3")]
    assert _episodes(db, "T3")[0]["ae_event_key"] == "T3/AE/6"
    d = db.one("SELECT * FROM grade_discrepancies WHERE usubjid = 'T3'")
    # one AE's key, sequence number and grading system, not a mix of the two
    assert (d["ae_event_key"], d["aeseq"], d["reported_grade"], d["derived_grade"]) == ("T3/AE/6", 6, 2, 3)
    assert "CTCAE" not in d["discrepancy"]


def test_two_assessments_at_one_time_with_the_worst_grade_give_one_evidence(db_path):
    # the same time, the same grade 2, two reasons, entered in either order: the time point is graded with both
    # (hypotension and oxygen), and the evidence quoted is the first record's in text order (before, the first one
    # DuckDB met)
    db = StudyDB(db_path)
    for u, first_oxygen in (("E4", True), ("E5", False)):
        db.subject(u)
        db.crs(u, 1, temp=38.4)
        both = [dict(oxygen="LOW_FLOW_NC", flow=2), dict(hypotension=True)]
        for kw in (both if first_oxygen else both[::-1]):
            db.crs(u, 2, hour=14, temp=38.6, **kw)
        db.crs(u, 3, temp=37.0)
        db.crs(u, 4, temp=37.0)
        db.ae(u, "Cytokine release syndrome", 1, 1, 3)
    db.derive()
    d = {r["usubjid"]: r for r in db.rows("SELECT * FROM grade_discrepancies WHERE usubjid IN ('E4', 'E5')")}
    assert [(d[u]["reported_grade"], d[u]["derived_grade"]) for u in ("E4", "E5")] == [(1, 2), (1, 2)]
    assert d["E4"]["evidence"] == d["E5"]["evidence"] == \
        ("grade 2 on day 2: hypotension without vasopressors and low-flow nasal cannula <= 6 L/min "
         "(T 38.6 C; hypotension; graded with the other record at this time)")


def test_iec_hs_names_one_directed_therapy_when_two_start_the_same_day(db_path):
    # two IEC-HS-directed drugs started on day 9, entered against their CMSEQ order: the one named is the lower
    # CMSEQ's (before, whichever DuckDB met first)
    db = StudyDB(db_path)
    _iec_hs_after_crs(db, "H4")
    db._insert("medications", usubjid="H4", cmseq=99, cmtrt="anakinra", med_class="anakinra", start_day=9)
    db._insert("medications", usubjid="H4", cmseq=98, cmtrt="emapalumab", med_class="other", start_day=9)
    db.derive()
    h4 = db.one("SELECT * FROM iec_hs_screen WHERE usubjid = 'H4'")
    assert h4["grade"] == 2 and "IEC-HS-directed therapy (emapalumab) from day 9" in h4["grade_reason"]


def test_a_death_from_crs_with_no_fatal_ae_and_its_grade5_episode_are_one_dlt_candidate(db_path):
    """D6 dies on day 5 of CRS (cause of death in DM, no fatal AE recorded): the episode is grade 5 by that death,
    and the DLT screening keeps the death and the episode one event, as it does for a fatal CRS AE and its
    episode, so the committee adjudicates it once. A death of another cause stays its own candidate."""
    from safety.core.config import validate
    from safety.derive.dlt.screening import derive_dlt
    db = StudyDB(db_path)
    db.subject("D6", death_day=5, last_known_alive_day=5, death_cause="Cytokine release syndrome")
    db.crs("D6", 2, temp=38.5)
    db.crs("D6", 3, temp=39.5, vasopressors=1)
    db.crs("D6", 4, temp=39.6, vasopressors=1)
    db.subject("D7", death_day=9, last_known_alive_day=9, death_cause="Sepsis")
    db.crs("D7", 2, temp=38.5)
    db.crs("D7", 3, temp=37.0)
    db.derive()
    derive_dlt(db.con, db.studyid, db.data_cut, validate({}))
    got = {r["event_key"]: r for r in db.rows("SELECT event_key, rule_id, also_matches, grade, source "
                                              "FROM dlt_candidates ORDER BY event_key")}
    assert sorted(got) == ["D6/CRS/1", "D7/DEATH"]
    assert (got["D6/CRS/1"]["rule_id"], got["D6/CRS/1"]["also_matches"], got["D6/CRS/1"]["grade"]) == ("R1", "R2", 5)
    assert got["D7/DEATH"]["rule_id"] == "R1"

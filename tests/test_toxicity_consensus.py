"""CRS and ICANS as the consensus papers define them, boundary on both sides of every rule.

Sources: Lee DW et al., ASTCT consensus grading, Biol Blood Marrow Transplant 2019;25:625-638 (CRS oxygen
and fever masking, CAPD for children <= 12, depressed consciousness not attributable to sedation).
"""
from __future__ import annotations

import math

from test_crs_support import StudyDB


def _int(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else int(v)


def _crs(db, u):
    return {int(r["day"]): r for r in db.rows("SELECT * FROM crs_grades WHERE usubjid = $u", u=u)}


def _icans(db, u):
    return db.one("SELECT * FROM icans_grades WHERE usubjid = $u", u=u)


def _episodes(db, u, syndrome="CRS"):
    return db.rows("SELECT * FROM toxicity_episodes WHERE usubjid = $u AND syndrome = $s ORDER BY episode_no",
                   u=u, s=syndrome)


def test_hfnc_flow_decides_low_versus_high_flow(db_path):
    """ASTCT: low-flow nasal cannula <= 6 L/min (grade 2), high-flow > 6 L/min (grade 3); flow decides when recorded."""
    db = StudyDB(db_path)
    for u, flow in [("F4", 4.0), ("F6", 6.0), ("F61", 6.1), ("FNA", None)]:
        db.subject(u)
        db.crs(u, 1, temp=38.4, oxygen="HIGH_FLOW_NC", flow=flow)
    db.derive()
    got = {u: (_int(_crs(db, u)[1]["grade"]), _crs(db, u)[1]["grade_reason"]) for u in ("F4", "F6", "F61", "FNA")}
    assert got["F4"][0] == 2 and "<= 6 L/min: low-flow" in got["F4"][1]
    assert got["F6"][0] == 2
    assert got["F61"] == (3, "high-flow nasal cannula > 6 L/min")
    assert got["FNA"] == (3, "high-flow nasal cannula (flow not recorded)")
    icu = {u: bool(_episodes(db, u)[0]["icu_level_support"]) for u in ("F4", "F61")}
    assert icu == {"F4": False, "F61": True}


def test_premedication_paracetamol_does_not_mask_a_later_afebrile_day(db_path):
    """Lee 2019 masks fever only for therapy given for CRS: a day-0 premedication without end date masks nothing."""
    db = StudyDB(db_path)
    db.subject("PM")
    db.med("PM", "antipyretic", 0, None, cmtrt="paracetamol")
    db.crs("PM", 2, temp=38.5)                                    # CRS onset
    db.crs("PM", 3, temp=37.2, oxygen="HIGH_FLOW_NC", flow=30)    # afebrile: not graded without fever
    db.subject("PG")                                              # the same drug given on the onset day masks
    db.crs("PG", 2, temp=38.5)
    db.med("PG", "antipyretic", 2, 2, cmtrt="paracetamol")
    db.crs("PG", 3, temp=37.2, oxygen="HIGH_FLOW_NC", flow=30)
    db.derive()
    pm, pg = _crs(db, "PM")[3], _crs(db, "PG")[3]
    assert (_int(pm["grade"]), bool(pm["fever_required"])) == (0, True)
    assert (_int(pg["grade"]), bool(pg["fever_required"])) == (3, False)
    assert "given for" not in pm["grade_reason"] and "for this CRS" in pg["grade_reason"]


def test_steroid_masks_only_when_systemic_and_for_crs(db_path):
    db = StudyDB(db_path)
    cases = {"IV_CRS": ("INTRAVENOUS", "CRS"), "IV_NONE": ("INTRAVENOUS", None), "INH": ("INHALATION", None),
             "TOP": ("TOPICAL", "CRS"), "IV_GVHD": ("INTRAVENOUS", "GVHD prophylaxis"), "PO_ICANS": ("ORAL", "ICANS")}
    for u, (route, ind) in cases.items():
        db.subject(u)
        db.crs(u, 1, temp=38.6)
        db.med(u, "corticosteroid", 2, 3, cmtrt="dexamethasone", route=route, indication=ind)
        db.crs(u, 3, temp=37.0, hypotension=True)
    db.derive()
    masked = {u: not bool(_crs(db, u)[3]["fever_required"]) for u in cases}
    assert masked == {"IV_CRS": True, "IV_NONE": True, "INH": False, "TOP": False, "IV_GVHD": False, "PO_ICANS": True}


def test_capd_for_children_aged_12_or_younger(db_path):
    """ASTCT: CAPD replaces ICE for age <= 12 (1-8 -> grade 1 or 2 with consciousness, >= 9 -> grade 3)."""
    db = StudyDB(db_path)
    db.subject("C12", age=12)
    db.icans("C12", 3, ice=None, capd=10)              # CAPD >= 9: grade 3
    db.subject("C12V", age=12)
    db.icans("C12V", 3, ice=None, capd=5, consciousness="AWAKENS_TO_VOICE")   # CAPD 1-8 + to voice: 2
    db.subject("C12S", age=12)
    db.icans("C12S", 3, ice=None, capd=8)              # CAPD 8, awake: grade 1
    db.subject("C13", age=13)
    db.icans("C13", 3, ice=5)                          # adolescent: ICE 3-6 -> grade 2
    db.subject("C8", age=8)
    db.icans("C8", 3, ice=5)                           # child with only an ICE score: not assessable
    db.derive()
    assert (_int(_icans(db, "C12")["grade"]), _icans(db, "C12")["grade_component"]) == (3, "CAPD")
    assert _icans(db, "C12")["cognitive_tool"] == "CAPD" and "CAPD 10 (>= 9)" in _icans(db, "C12")["grade_reason"]
    assert (_int(_icans(db, "C12V")["grade"]), _icans(db, "C12V")["grade_component"]) == (2, "consciousness")
    assert _int(_icans(db, "C12S")["grade"]) == 1
    assert (_int(_icans(db, "C13")["grade"]), _icans(db, "C13")["cognitive_tool"]) == (2, "ICE")
    c8 = _icans(db, "C8")
    assert _int(c8["grade"]) is None and _int(c8["ice_grade"]) is None
    assert c8["grade_reason"] == ("child aged 8 (<= 12): ICANS is graded with CAPD, only an ICE score was "
                                  "recorded: not assessable")
    assert _episodes(db, "C8", "ICANS") == []


def test_sedated_assessment_is_not_gradable_for_consciousness_and_ice(db_path):
    """Depressed consciousness counts only without another cause (e.g. sedation): SEDATED is not grade 4."""
    db = StudyDB(db_path)
    db.subject("SD")
    db.icans("SD", 5, ice=0, consciousness="SEDATED")
    db.subject("SDZ")                                   # a seizure under sedation still grades
    db.icans("SDZ", 5, ice=None, consciousness="SEDATED", seizure="PROLONGED_OR_REPETITIVE")
    db.subject("UN")
    db.icans("UN", 5, ice=0, consciousness="UNAROUSABLE")
    db.derive()
    sd = _icans(db, "SD")
    assert _int(sd["grade"]) is None and bool(sd["not_gradable_sedated"])
    assert _int(sd["consciousness_grade"]) is None and _int(sd["ice_grade"]) is None
    assert "sedated or intubated for reasons other than ICANS: consciousness and ICE not gradable" in sd["grade_reason"]
    sdz = _icans(db, "SDZ")
    assert _int(sdz["grade"]) == 4 and "not gradable" in sdz["grade_reason"]
    assert _int(_icans(db, "UN")["grade"]) == 4
    assert _episodes(db, "SD", "ICANS") == []


def test_grade3_hours_do_not_cross_into_the_next_episode(db_path):
    """One grade-3 assessment, then nothing for 11 days and a new episode: 0 hours, not 264 (no false R3)."""
    db = StudyDB(db_path)
    db.subject("X1")
    db.crs("X1", 2, temp=38.5)
    db.crs("X1", 3, temp=38.9, hypotension=True, vasopressors=1)
    db.crs("X1", 14, temp=38.2)
    db.crs("X1", 15, temp=37.0)
    db.crs("X1", 16, temp=37.0)
    db.derive()
    e1, e2 = _episodes(db, "X1")
    assert e1["grade3_plus_hours"] == 0.0 and not bool(e1["grade3_plus_ongoing"])
    assert _int(e1["resolution_day"]) is None and _int(e2["resolution_day"]) == 15
    assert e1["resolution_status"] == "ended without a grade-0 assessment" and not bool(e1["ongoing"])


def test_ae_only_subjects_get_episodes_beside_assessed_ones(db_path):
    """A CRS grade 4 AE of a subject without bedside assessments (others have them) is an episode; an AE coded
    'Neurotoxicity' is an ICANS episode; both say source 'reported AE' and are not listed as discrepancies."""
    db = StudyDB(db_path)
    db.subject("A1")
    db.crs("A1", 2, temp=38.4)
    db.icans("A1", 4, ice=10)
    db.subject("A2")
    db.ae("A2", "Cytokine release syndrome", 4, 3, 8)
    db.ae("A2", "Neurotoxicity", 3, 5, 7)
    db.derive()
    crs = _episodes(db, "A2")
    assert len(crs) == 1 and crs[0]["source"] == "reported AE" and _int(crs[0]["max_grade"]) == 4
    icans = _episodes(db, "A2", "ICANS")
    assert len(icans) == 1 and icans[0]["source"] == "reported AE" and _int(icans[0]["max_grade"]) == 3
    assert _episodes(db, "A1")[0]["source"] == "assessments"
    assert db.rows("SELECT * FROM grade_discrepancies WHERE usubjid = 'A2'") == []


def test_other_scale_is_shown_with_its_scale_and_not_compared(db_path):
    db = StudyDB(db_path)
    db.subject("L1")
    db.crs("L1", 2, temp=38.4, hypotension=True, vasopressors=1)   # ASTCT 3
    db.ae("L1", "Cytokine release syndrome", 2, 2, 4, grading_system="Lee 2014")
    db.subject("L2")                                               # 'ASTCT' names the same scale as 'ASTCT 2019'
    db.crs("L2", 2, temp=38.4)
    db.ae("L2", "Cytokine release syndrome", 1, 2, 3, grading_system="ASTCT")
    db.subject("L3")                                               # AE-only, CTCAE: keeps its scale
    db.ae("L3", "Cytokine release syndrome", 3, 2, 3, grading_system="CTCAE v5.0")
    db.derive()
    d = db.one("SELECT * FROM grade_discrepancies WHERE usubjid = 'L1'")
    assert d["discrepancy"] == "reported on a different grading system"
    assert d["evidence"].startswith("reported grade 2 (Lee 2014) not compared with the ASTCT 2019 grade")
    assert db.rows("SELECT * FROM grade_discrepancies WHERE usubjid = 'L2'") == []
    assert _episodes(db, "L3")[0]["grading_system"] == "CTCAE v5.0"


def test_grade5_from_fatal_ae_or_cause_of_death(db_path):
    """Grade 5 = death attributed to the syndrome: AE outcome FATAL with grade 5, or DS/DM cause of death."""
    db = StudyDB(db_path)
    db.subject("D1", death_day=9, death_cause="Cytokine release syndrome")   # bedside grade 4, cause of death CRS
    db.crs("D1", 2, temp=39.0, hypotension=True, vasopressors=2)
    db.crs("D1", 5, temp=38.5, hypotension=True, vasopressors=2)
    db.subject("D2", death_day=40, death_cause="Disease progression")        # died of something else: stays 4
    db.crs("D2", 2, temp=39.0, hypotension=True, vasopressors=2)
    db.crs("D2", 4, temp=37.0)
    db.crs("D2", 5, temp=37.0)
    db.subject("D3", death_day=7)                                            # AE-only: grade 5, outcome FATAL
    db.ae("D3", "Cytokine release syndrome", 5, 2, 7, aeout="FATAL")
    db.subject("D4", death_day=12)                                           # DS record names ICANS
    db.icans("D4", 6, ice=0, consciousness="UNAROUSABLE", edema="DIFFUSE")
    db.death_record("D4", 12, "Cerebral oedema due to ICANS")
    db.derive()
    d1 = _episodes(db, "D1")[0]
    assert (_int(d1["max_grade"]), _int(d1["assessed_max_grade"])) == (5, 4)
    assert d1["grade5_basis"] == "cause of death: Cytokine release syndrome" and d1["resolution_status"] == "death"
    assert _int(_episodes(db, "D2")[0]["max_grade"]) == 4
    d3 = _episodes(db, "D3")[0]
    assert _int(d3["max_grade"]) == 5 and "outcome FATAL" in d3["grade5_basis"]
    d4 = _episodes(db, "D4", "ICANS")[0]
    assert _int(d4["max_grade"]) == 5 and d4["grade5_basis"] == "disposition (DS): Cerebral oedema due to ICANS"
    # derived grade 5 compared: D1 has no AE, so it is listed as an episode without a report, at grade 5
    disc = db.one("SELECT * FROM grade_discrepancies WHERE usubjid = 'D1'")
    assert _int(disc["derived_grade"]) == 5


def test_ingest_reads_the_grading_scale_and_capd_from_the_delivery(tmp_path):
    """A CRS AE's grading scale comes from SUPPAE (AETOXGRS/GRADSCAL) when delivered, else the study setting; the
    ICANS file carries CAPD_SCORE and the SEDATED consciousness value."""
    import duckdb
    import pandas as pd

    from safety.ingest import ingest_study
    from test_ingest_fixtures import DOMAINS, ICANS, SUPPAE, make_study

    supp = pd.concat([SUPPAE, pd.DataFrame({
        "STUDYID": ["CT-TEST-01"], "RDOMAIN": ["AE"], "USUBJID": ["S-001"], "IDVAR": ["AESEQ"], "IDVARVAL": ["2"],
        "QNAM": ["AETOXGRS"], "QLABEL": ["Toxicity grading scale"], "QVAL": ["Lee 2014"]})], ignore_index=True)
    icans = pd.concat([ICANS, pd.DataFrame({"USUBJID": ["S-001"], "ICANSDTC": ["2024-02-06T09:00"], "ICE_SCORE": [""],
                                            "CONSCIOUSNESS": ["SEDATED"], "SEIZURE": ["NONE"], "MOTOR_WEAKNESS": ["NONE"],
                                            "CEREBRAL_EDEMA": ["NONE"]})], ignore_index=True)
    icans["CAPD_SCORE"] = ["", "", "4"]
    study = make_study(tmp_path / "s", "csv", domains={**DOMAINS, "suppae": supp, "icans_assessments": icans})
    db = tmp_path / "db.duckdb"
    ingest_study(study, db, run_derivations=False)
    con = duckdb.connect(str(db), read_only=True)
    try:
        scale = con.execute("SELECT grading_system FROM adverse_events WHERE event_key = 'S-001/AE/2'").fetchone()[0]
        other = con.execute("SELECT grading_system FROM adverse_events WHERE event_key = 'S-001/AE/1'").fetchone()[0]
        rows = con.execute("SELECT consciousness, capd_score FROM icans_assessments ORDER BY assessment_time").fetchall()
    finally:
        con.close()
    assert scale == "Lee 2014" and other.startswith("CTCAE")
    assert rows[-1] == ("SEDATED", 4)

"""CSF, urine and other specimens share their test codes with blood (a CSF NEUT of 2 /uL, a 24-hour urine uric
acid, a CSF IgG): every derivation that reads a blood measure keeps blood results only, by the one definition
CTCAE grading uses (safety.core.vocabulary.blood_result)."""
from __future__ import annotations

import math

from outcome_fixtures import OutcomeDB
from test_crs_support import StudyDB

CSF = {"lbspec": "CEREBROSPINAL FLUID", "lbcat": "CSF"}


def _int(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else int(v)


def test_a_csf_neutrophil_count_is_no_blood_anc_for_icaht(db_path):
    db = StudyDB(db_path)
    db.subject("S")
    for d in [-5, *range(0, 31), 45, 60, 90]:
        db.lab("S", "NEUT", d, 3.0, lbspec="BLOOD")
    for d, v in [(5, 0.0), (6, 0.001), (40, 0.0), (42, 0.002)]:   # lumbar punctures: 0-2 cells/uL
        db.lab("S", "NEUT", d, v, **CSF)
    db.derive_icaht()
    r = db.one("SELECT * FROM icaht WHERE usubjid = 'S' AND lineage = 'ANC'")
    assert (_int(r["early_grade"]), _int(r["late_grade"]), r["late_nadir"]) == (0, 0, 3.0)


def test_a_screening_csf_count_is_no_anc_for_car_hematotox(db_path):
    db = StudyDB(db_path)
    db.subject("S", lymphodepletion_start_day=-5)
    for t, v in [("NEUT", 3.0), ("HGB", 130), ("PLAT", 200), ("CRP", 5), ("FERRITIN", 300)]:
        db.lab("S", t, -8, v)
    db.lab("S", "NEUT", -7, 0.001, **CSF)
    db.lab("S", "CRP", -7, 0.1, **CSF)
    from safety.derive.toxicity.hematotox import derive_car_hematotox
    derive_car_hematotox(db.con, db.studyid, db.data_cut, {})
    r = db.one("SELECT * FROM car_hematotox WHERE usubjid = 'S'")
    assert (r["anc"], _int(r["anc_day"]), r["crp"], _int(r["score"]), r["risk"]) == (3.0, -8, 5.0, 0, "low")


def _crs(db, u):
    db.subject(u)
    for d, temp in [(1, 38.5), (2, 39.0), (3, 38.2), (5, 37.0), (6, 37.0)]:
        db.crs(u, d, temp=temp)


def test_a_csf_count_is_no_new_cytopenia_for_the_iec_hs_screen(db_path):
    db = StudyDB(db_path)
    _crs(db, "S")
    # ferritin x3 from baseline on day 12 and nothing else abnormal in blood (the ANC recovered from its nadir on
    # days 1-5 and stays 2.0): no IEC-HS flag; a CSF ANC of 2 cells/uL that day is no new cytopenia
    for d, v in [(0, 500), (12, 1500)]:
        db.lab("S", "FERRITIN", d, v)
    for d in range(0, 13):
        db.lab("S", "NEUT", d, 0.3 if 1 <= d <= 5 else 2.0)
    db.lab("S", "NEUT", 12, 0.002, **CSF)
    db.derive()
    assert db.rows("SELECT usubjid FROM iec_hs_screen") == []


def test_episode_biomarkers_read_blood_only(db_path):
    db = StudyDB(db_path)
    _crs(db, "S")
    db.lab("S", "FERRITIN", 2, 800)
    db.lab("S", "FERRITIN", 3, 9000, **CSF)   # not a blood ferritin
    db.lab("S", "CRP", 2, 0.4, **CSF)         # the only CRP around the episode is the CSF one
    db.derive()
    b = db.one("SELECT * FROM episode_biomarkers WHERE usubjid = 'S'")
    assert b["peak_crp"] is None or math.isnan(b["peak_crp"])
    assert (b["peak_ferritin"], _int(b["peak_ferritin_day"])) == (800.0, 2)


def test_a_24_hour_urine_uric_acid_is_no_tls_criterion(tmp_path):
    db = OutcomeDB(tmp_path / "t.duckdb")
    db.subject("S")
    db.lab("S", "URATE", -5, 380.0, "umol/L", lbspec="SERUM")
    db.lab("S", "K", -5, 4.0, "mmol/L", lbspec="SERUM")
    db.lab("S", "URATE", 2, 3000.0, "umol/L", lbspec="URINE, 24 HOUR", lbcat="URINALYSIS")
    db.lab("S", "K", 2, 6.1, "mmol/L", lbspec="SERUM")
    db.derive("tls")
    r = db.rows("SELECT criteria_met, laboratory_tls, criteria FROM tls_screen WHERE usubjid = 'S'")[0]
    assert (r["criteria_met"], bool(r["laboratory_tls"]), r["criteria"]) == (1, False, "potassium d2 6.1 (abs)")


def test_a_csf_igg_is_no_hypogammaglobulinaemia(tmp_path):
    db = OutcomeDB(tmp_path / "t.duckdb", {"immune_monitoring": [
        {"test": "IGG", "label": "IgG", "below": 4.0, "unit": "g/L", "finding": "hypogammaglobulinaemia"}]})
    db.subject("S")
    for d in (-5, 30, 60):
        db.lab("S", "IGG", d, 8.0, "g/L", lbspec="SERUM")
    db.lab("S", "IGG", 45, 0.03, "g/L", **CSF)
    db.derive("infections", "immune_reconstitution")
    r = db.rows("SELECT n_values, nadir, first_below_day, last_value FROM immune_reconstitution WHERE usubjid = 'S'")[0]
    assert (r["n_values"], r["nadir"], r["last_value"]) == (2, 8.0, 8.0)
    assert r["first_below_day"] is None or math.isnan(r["first_below_day"])


def test_a_urine_creatinine_is_no_eligibility_creatinine(tmp_path):
    db = OutcomeDB(tmp_path / "t.duckdb", {"eligibility": {"labs": [{"test": "CREAT", "max": 220}]}})
    db.subject("S")
    db.lab("S", "CREAT", -10, 80.0, "umol/L", lbspec="SERUM")
    db.lab("S", "CREAT", -8, 9000.0, "umol/L", lbspec="URINE")
    db.derive("eligibility")
    assert db.rows("SELECT * FROM eligibility_deviations WHERE usubjid = 'S' AND test = 'CREAT'") == []

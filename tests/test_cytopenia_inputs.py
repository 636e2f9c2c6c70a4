"""What ICAHT and CAR-HEMATOTOX read from a lab result besides its number, through a real load: a censored result
('<20', '>2000') lies beyond its bound, and a result without a unit is left out, as in CTCAE grading."""
from __future__ import annotations

from cytopenia_study import load_study, rows


def _around(low_days: range, low, high, days=range(-5, 40)) -> dict:
    return {d: low if d in low_days else high for d in days}


def test_censored_results_lie_beyond_their_bound(tmp_path):
    """Platelets '<20' on days 1-16 are 16 days below 20 (T-ICAHT early grade 4, as CTCAE grades them 4), '<50' on
    days 1-10 are 10 days below 50 (grade 2); before lymphodepletion ferritin '>2000' scores 2 and ANC '<1.2'
    scores 1 in CAR-HEMATOTOX (Rejeski 2021: > 2000 and < 1.2), so both subjects are high risk."""
    anc = {d: 2.0 for d in range(-5, 40)}
    reserve = {"HGB": {-6: 130}, "PLAT": {-6: 250}, "CRP": {-6: 5}}
    con = load_study(tmp_path, {
        "C1": {"labs": {"PLAT": _around(range(1, 17), "<20", 100), "NEUT": anc}},
        "C2": {"ld": -5, "labs": {"NEUT": {-6: 2.0}, **reserve, "FERRITIN": {-6: ">2000"}}},
        "C3": {"labs": {"PLAT": _around(range(1, 11), "<50", 100), "NEUT": anc}},
        "C4": {"ld": -5, "labs": {"NEUT": {-6: "<1.2"}, **reserve, "FERRITIN": {-6: 700}}},
        # '<20' on days 1 and 8 only: the six days between, interpolated, are below 20 too
        "C5": {"labs": {"PLAT": {**{d: 100 for d in range(-5, 40) if not 1 <= d <= 8}, 1: "<20", 8: "<20"},
                        "NEUT": anc}},
    })
    plt = rows(con, "SELECT usubjid, early_grade, days_le_500, days_le_100, early_grade_reason FROM icaht "
                    "WHERE lineage = 'PLT'")
    assert (plt["C1"]["early_grade"], plt["C1"]["days_le_100"]) == (4, 16)
    assert plt["C1"]["early_grade_reason"] == "platelets < 20 on 16 days"
    assert (plt["C3"]["early_grade"], plt["C3"]["days_le_500"], plt["C3"]["days_le_100"]) == (2, 10, 0)
    assert (plt["C5"]["early_grade"], plt["C5"]["days_le_100"]) == (3, 8)
    ctcae = rows(con, "SELECT usubjid, max(grade) AS grade FROM lab_toxicity WHERE lbtestcd = 'PLAT' AND day = 1 "
                      "GROUP BY usubjid")
    assert ctcae["C1"]["grade"] == 4                   # the same results, graded alike by CTCAE
    ht = rows(con, "SELECT usubjid, score, risk, anc_points, ferritin_points, inputs FROM car_hematotox")
    assert (ht["C2"]["ferritin_points"], ht["C2"]["score"], ht["C2"]["risk"]) == (2, 2, "high")
    assert "ferritin >2000.0 ug/L (day -6): 2" in ht["C2"]["inputs"]
    assert (ht["C4"]["anc_points"], ht["C4"]["score"], ht["C4"]["risk"]) == (1, 2, "high")
    assert "ANC <1.2 x10^9/L (day -6): 1" in ht["C4"]["inputs"]


def test_results_without_a_unit_are_left_out_and_said_so(tmp_path):
    """A neutrophil count of 300 sent without its unit (cells/uL, 14 days <= 500/uL) is not read as 300 x10^9/L: CTCAE
    says 'unit missing', and ICAHT and CAR-HEMATOTOX leave it out and say how many results they left out."""
    con = load_study(tmp_path, {
        # every ANC without a unit: not assessable, never "ANC never <= 0.5"
        "U1": {"labs": {"NEUT": {d: (300 if 1 <= d <= 14 else 3000, "") for d in range(-5, 40)}}},
        # days 1-14 without a unit: unknown days between day 0 and day 15, not 14 days at 300 x10^9/L
        "U5": {"labs": {"NEUT": {d: (300, "") if 1 <= d <= 14 else 2.0 for d in range(-5, 40)}}},
        # the last ANC before lymphodepletion has no unit: the one before it (1.0 x10^9/L, 1 point) counts
        "U6": {"ld": -5, "labs": {"NEUT": {-10: 1.0, -6: (3000, "")}, "HGB": {-6: 130}, "PLAT": {-6: 150},
                                  "CRP": {-6: 5}, "FERRITIN": {-6: 300}}},
    })
    ctcae = rows(con, "SELECT usubjid, count(*) AS n, count(grade) AS graded, any_value(grade_reason) AS reason "
                      "FROM lab_toxicity WHERE lbtestcd = 'NEUT' AND usubjid = 'U1' GROUP BY usubjid")
    assert (ctcae["U1"]["graded"], ctcae["U1"]["reason"]) == (0, "unit missing")
    anc = rows(con, "SELECT usubjid, early_grade, n_values, early_unknown_days, early_evaluability, evaluable, "
                    "early_grade_reason, note FROM icaht WHERE lineage = 'ANC'")
    u1, u5 = anc["U1"], anc["U5"]
    assert (u1["early_grade"], u1["n_values"], u1["early_evaluability"], u1["evaluable"]) == (
        None, 0, "not assessable", False)
    assert "45 ANC (NEUT) result(s) without a unit left out" in u1["note"]
    assert (u5["early_grade"], u5["early_unknown_days"], u5["early_evaluability"]) == (0, 14, "fully evaluable")
    assert "14 ANC (NEUT) result(s) without a unit left out" in u5["note"]
    assert "14 day(s) in 0-30 unknown" in u5["note"]
    ht = rows(con, "SELECT usubjid, anc, anc_day, anc_points, score, risk, note FROM car_hematotox")
    assert (ht["U6"]["anc"], ht["U6"]["anc_day"], ht["U6"]["anc_points"], ht["U6"]["score"], ht["U6"]["risk"]) == (
        1.0, -10, 1, 2, "high")
    assert ht["U6"]["note"] == "without a unit, left out: ANC 1 result(s)"
    assert ht["U1"]["note"].startswith("ANC missing, HGB missing, PLT missing, CRP missing, FERRITIN missing")
    assert ht["U1"]["note"].endswith("; without a unit, left out: ANC 5 result(s)")


def test_early_platelet_days_are_censored_at_progression(tmp_path):
    """T-ICAHT (Rejeski et al., Blood 2025, Table 1): "for early T-ICAHT, the cumulative length beneath the respective
    threshold is calculated, censoring at the time of disease progression, subsequent line of therapy, or death".
    A marrow relapse recorded on day 12 (DS PROGRESSIVE DISEASE), platelets < 20 from day 12 to day 30: the disease's
    thrombocytopenia is no T-ICAHT, so the early grade counts days 0-11 only (platelets < 50 on days 1-5: grade 1);
    without the relapse the same counts are 19 days below 20, grade 4. Neutrophils keep the EHA/EBMT early window
    (the reference implementation's grid runs to day 30 whatever happens): their grade is the same in both."""
    plt = {d: (40 if 1 <= d <= 5 else 10 if 12 <= d <= 30 else 150) for d in range(-5, 41)}
    anc = {d: (0.3 if 1 <= d <= 8 else 2.0) for d in range(-5, 41)}
    con = load_study(tmp_path, {"REL": {"progression": 12, "labs": {"PLAT": plt, "NEUT": anc}},
                                "NOREL": {"labs": {"PLAT": plt, "NEUT": anc}}})
    got = rows(con, "SELECT usubjid, early_grade, days_le_500, days_le_100, early_grade_reason, note FROM icaht "
                    "WHERE lineage = 'PLT'")
    assert (got["NOREL"]["early_grade"], got["NOREL"]["days_le_100"]) == (4, 19)
    rel = got["REL"]
    assert (rel["early_grade"], rel["days_le_500"], rel["days_le_100"]) == (1, 5, 0)
    assert "early platelet days from relapse/progression on day 12 not counted" in rel["note"]
    anc_rows = rows(con, "SELECT usubjid, early_grade, days_le_500, note FROM icaht WHERE lineage = 'ANC'")
    assert anc_rows["REL"]["early_grade"] == anc_rows["NOREL"]["early_grade"] == 2
    assert "early platelet" not in (anc_rows["REL"]["note"] or "")


def test_early_platelet_days_are_censored_at_a_subsequent_line_of_therapy(tmp_path):
    """T-ICAHT censors the early platelet window at progression, "subsequent line of therapy, or death"; only the
    progression was read. A subsequent anticancer therapy begun on day 12 (CM, CMCAT 'SUBSEQUENT ANTI-CANCER
    THERAPY'), platelets < 20 from day 12: days 0-11 are graded (grade 1), as at a relapse that day. A progression
    before the therapy censors at the progression; a bridging therapy (CMCAT 'BRIDGING THERAPY') censors nothing."""
    plt = {d: (40 if 1 <= d <= 5 else 10 if 12 <= d <= 30 else 150) for d in range(-5, 41)}
    con = load_study(tmp_path, {
        "THER": {"therapy": (12, "SUBSEQUENT ANTI-CANCER THERAPY"), "labs": {"PLAT": plt}},
        "PROG": {"therapy": (15, "SUBSEQUENT ANTI-CANCER THERAPY"), "progression": 12, "labs": {"PLAT": plt}},
        "BRIDGE": {"therapy": (12, "BRIDGING THERAPY"), "labs": {"PLAT": plt}}})
    got = rows(con, "SELECT usubjid, early_grade, days_le_100, early_grade_reason, note FROM icaht WHERE lineage = 'PLT'")
    ther, prog, bridge = got["THER"], got["PROG"], got["BRIDGE"]
    assert (ther["early_grade"], ther["days_le_100"]) == (1, 0)
    assert ther["early_grade_reason"] == "platelets < 50 on 5 days before a subsequent therapy (GLOFITAMAB) on day 12"
    assert ("early platelet days from a subsequent therapy (GLOFITAMAB) on day 12 not counted (T-ICAHT censors the "
            "early window at progression or a subsequent line of therapy)") in ther["note"]
    assert (prog["early_grade"], prog["early_grade_reason"]) == (
        1, "platelets < 50 on 5 days before relapse/progression on day 12")
    assert (bridge["early_grade"], bridge["days_le_100"]) == (4, 19)


def test_the_late_window_ends_at_a_subsequent_line_of_therapy(tmp_path):
    """EHA/EBMT's late window runs from day 31 to the earliest of day 100, subsequent therapy and relapse/progression
    (as the reference implementation reads it); only relapse/progression ended it. ANC 0.3 on days 45 and 60 after
    a salvage therapy begun on day 40 is that therapy's, not late ICAHT; without the therapy, grade 3."""
    anc = {**{d: 2.0 for d in range(-5, 31)}, 35: 2.0, 45: 0.3, 60: 0.3}
    con = load_study(tmp_path, {"THER": {"therapy": (40, "SALVAGE THERAPY"), "labs": {"NEUT": anc}},
                                "NONE": {"labs": {"NEUT": anc}}})
    got = rows(con, "SELECT usubjid, late_grade, late_grade_reason, note FROM icaht WHERE lineage = 'ANC'")
    assert got["NONE"]["late_grade"] == 3
    assert (got["THER"]["late_grade"], got["THER"]["late_grade_reason"]) == (0, "no value <= 1.5 after day 30")
    assert ("late window ended by a subsequent therapy (GLOFITAMAB) on day 40 (values from that day not graded)"
            in got["THER"]["note"])


"""ASTCT 2019 CRS grading of single assessments: every component boundary, fever masking, missing values."""
from __future__ import annotations

import pytest

from test_crs_support import StudyDB

# (case id, assessment kwargs, expected grade, expected component, text expected in grade_reason)
CASES = [
    ("t37.9", dict(temp=37.9), 0, "none", "afebrile, no CRS"),
    ("t38.0", dict(temp=38.0), 1, "fever", "fever, no hypotension or hypoxia"),
    ("t37.9_hypot", dict(temp=37.9, hypotension=True), 0, "none", "without fever"),
    ("fever_hypot_no_press", dict(temp=38.5, hypotension=True), 2, "hypotension", "hypotension without vasopressors"),
    ("fever_1press", dict(temp=38.5, hypotension=True, vasopressors=1), 3, "hypotension", "one vasopressor"),
    ("fever_1press_vasopressin", dict(temp=38.5, hypotension=True, vasopressors=1, vasopressin=True), 3, "hypotension", "one vasopressor + vasopressin"),
    ("fever_vasopressin_only", dict(temp=38.5, hypotension=True, vasopressin=True), 3, "hypotension", "vasopressin alone"),
    ("fever_2press", dict(temp=38.5, hypotension=True, vasopressors=2), 4, "hypotension", "2 vasopressors"),
    ("fever_2press_vasopressin", dict(temp=38.5, hypotension=True, vasopressors=2, vasopressin=True), 4, "hypotension", "2 vasopressors + vasopressin"),
    ("blow_by", dict(temp=38.2, oxygen="BLOW_BY"), 2, "hypoxia", "blow-by"),
    ("nc_6.0", dict(temp=38.2, oxygen="LOW_FLOW_NC", flow=6.0), 2, "hypoxia", "<= 6 L/min"),
    ("nc_6.5", dict(temp=38.2, oxygen="LOW_FLOW_NC", flow=6.5), 3, "hypoxia", "nasal cannula > 6 L/min"),
    ("nc_no_flow", dict(temp=38.2, oxygen="LOW_FLOW_NC"), 2, "hypoxia", "flow not recorded"),
    ("hfnc", dict(temp=38.2, oxygen="HIGH_FLOW_NC", flow=40), 3, "hypoxia", "high-flow nasal cannula"),
    ("facemask", dict(temp=38.2, oxygen="FACEMASK"), 3, "hypoxia", "facemask"),
    ("nrb", dict(temp=38.2, oxygen="NONREBREATHER"), 3, "hypoxia", "non-rebreather"),
    ("venturi", dict(temp=38.2, oxygen="VENTURI"), 3, "hypoxia", "Venturi"),
    ("cpap", dict(temp=38.2, oxygen="CPAP"), 4, "hypoxia", "CPAP"),
    ("bipap", dict(temp=38.2, oxygen="BIPAP"), 4, "hypoxia", "BiPAP"),
    ("mv", dict(temp=38.2, oxygen="MECHANICAL_VENTILATION"), 4, "hypoxia", "mechanical ventilation"),
    ("both_3", dict(temp=38.2, vasopressors=1, hypotension=True, oxygen="FACEMASK"), 3, "hypotension+hypoxia", "one vasopressor and facemask"),
    ("worse_wins", dict(temp=38.2, vasopressors=1, hypotension=True, oxygen="LOW_FLOW_NC", flow=2), 3, "hypotension", "one vasopressor"),
    ("oxygen_lowercase", dict(temp=38.2, oxygen="cpap"), 4, "hypoxia", "CPAP"),
    ("afebrile_cpap", dict(temp=37.5, oxygen="CPAP"), 0, "none", "afebrile, no CRS (CPAP without fever)"),
    ("null_temp_normal", dict(temp=None), None, None, "temperature not recorded"),
    ("null_temp_press", dict(temp=None, vasopressors=1, hypotension=True), None, None, "one vasopressor not graded"),
    ("null_o2_fever", dict(temp=38.4, oxygen=None), 1, "fever", "fever"),
    ("bad_device", dict(temp=38.4, oxygen="TENT"), None, None, "unrecognised oxygen value TENT"),
]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    db = StudyDB(tmp_path_factory.mktemp("crs") / "study.duckdb")
    for cid, kw, *_ in CASES:
        db.subject(cid)
        db.crs(cid, 1, **kw)
    db.derive()
    rows = db.rows("SELECT * FROM crs_grades")
    return {r["usubjid"]: r for r in rows}


@pytest.mark.parametrize("cid,kw,grade,component,reason", CASES, ids=[c[0] for c in CASES])
def test_component_boundaries(graded, cid, kw, grade, component, reason):
    r = graded[cid]
    got = None if r["grade"] != r["grade"] or r["grade"] is None else int(r["grade"])
    assert got == grade
    assert (r["grade_component"] if isinstance(r["grade_component"], str) else None) == component
    assert reason in r["grade_reason"]
    assert r["fever_required"]


def test_fever_flag_and_evidence(graded):
    assert graded["t38.0"]["fever"] is True or graded["t38.0"]["fever"] == 1
    assert not graded["t37.9"]["fever"]
    assert "T 38.5 C" in graded["fever_1press"]["evidence"] and "1 vasopressor" in graded["fever_1press"]["evidence"]
    assert "LOW_FLOW_NC 6.5 L/min" in graded["nc_6.5"]["evidence"]
    assert int(graded["fever_2press"]["hypotension_grade"]) == 4
    assert int(graded["nc_6.5"]["hypoxia_grade"]) == 3


def _by_day(db, usubjid):
    return {int(r["day"]): r for r in db.rows("SELECT * FROM crs_grades WHERE usubjid = $u", u=usubjid)}


def test_fever_masking_after_tocilizumab(db_path):
    """Afebrile hypoxia before tocilizumab is not CRS; after tocilizumab within the episode it is graded."""
    db = StudyDB(db_path)
    db.subject("P1")
    db.crs("P1", 1, temp=37.2, oxygen="LOW_FLOW_NC", flow=3)   # before CRS: no fever, no CRS
    db.crs("P1", 2, temp=38.6)                                 # onset, grade 1
    db.crs("P1", 3, temp=38.9, hypotension=True)               # grade 2; tocilizumab given this day
    db.med("P1", "tocilizumab", 3, 3)
    db.crs("P1", 4, temp=37.0, hypotension=True, vasopressors=1)  # afebrile after toci: grade 3
    db.crs("P1", 5, temp=36.8, oxygen="LOW_FLOW_NC", flow=2)       # afebrile, grade 2
    db.crs("P1", 6, temp=36.8)
    db.crs("P1", 7, temp=36.9)                                     # second grade-0 day: episode ends
    db.crs("P1", 8, temp=37.0, oxygen="LOW_FLOW_NC", flow=2)       # afebrile again, fever required: 0
    db.derive()
    g = _by_day(db, "P1")
    assert [int(g[d]["grade"]) for d in range(1, 9)] == [0, 1, 2, 3, 2, 0, 0, 0]
    assert [bool(g[d]["fever_required"]) for d in range(1, 9)] == [True, True, False, False, False, False, False, True]
    assert "fever not required" in g[4]["grade_reason"]
    assert g[8]["grade_reason"].startswith("afebrile, no CRS")


def test_a_timed_dose_masks_fever_only_from_its_time(db_path):
    """Tocilizumab at 18:00 on day 3: the afebrile 08:00 assessment still needs fever, the 20:00 one does not."""
    db = StudyDB(db_path)
    db.subject("T1")
    db.crs("T1", 2, temp=38.6)                                   # onset, grade 1
    db.crs("T1", 3, hour=8, temp=37.0, hypotension=True)         # before the dose: afebrile is not CRS
    db.med("T1", "tocilizumab", 3, 3, hour=18)
    db.crs("T1", 3, hour=20, temp=37.0, hypotension=True)        # after the dose: grade 2 without fever
    db.subject("T2")                                             # the same dose without a time counts all day
    db.crs("T2", 2, temp=38.6)
    db.crs("T2", 3, hour=8, temp=37.0, hypotension=True)
    db.med("T2", "tocilizumab", 3, 3)
    db.derive()
    rows = db.rows("SELECT usubjid, assessment_time, grade, fever_required FROM crs_grades "
                   "WHERE day = 3 ORDER BY usubjid, assessment_time")
    assert [(r["usubjid"], r["assessment_time"].hour, int(r["grade"]), bool(r["fever_required"])) for r in rows] == \
        [("T1", 8, 0, True), ("T1", 20, 2, False), ("T2", 8, 2, False)]


def test_no_masking_without_anticytokine(db_path):
    db = StudyDB(db_path)
    db.subject("P2")
    db.crs("P2", 2, temp=38.6)
    db.crs("P2", 3, temp=37.0, hypotension=True, vasopressors=1)
    db.med("P2", "anti_infective", 2, 10)
    db.derive()
    g = _by_day(db, "P2")
    assert int(g[3]["grade"]) == 0 and bool(g[3]["fever_required"])


def test_masking_by_antipyretic_given_for_crs_but_not_by_a_steroid_running_before_it(db_path):
    """Lee 2019: fever stops being required once antipyretic or anti-cytokine therapy is given for CRS. A steroid
    running since before CRS was not given for it and masks nothing."""
    db = StudyDB(db_path)
    db.subject("P3")
    db.med("P3", "corticosteroid", -1, None)
    db.crs("P3", 0, temp=37.1, oxygen="FACEMASK")   # before onset: not CRS even on steroids
    db.crs("P3", 1, temp=38.2)
    db.crs("P3", 2, temp=37.1, oxygen="FACEMASK")
    db.subject("P4")
    db.crs("P4", 1, temp=38.2)
    db.med("P4", "antipyretic", 1, 1)
    db.crs("P4", 2, temp=37.1, hypotension=True)
    db.derive()
    g3 = _by_day(db, "P3")
    assert int(g3[0]["grade"]) == 0 and int(g3[2]["grade"]) == 0 and bool(g3[2]["fever_required"])
    g4 = _by_day(db, "P4")
    assert int(g4[2]["grade"]) == 2


def test_tocilizumab_before_onset_does_not_mask_onset(db_path):
    db = StudyDB(db_path)
    db.subject("P5")
    db.med("P5", "tocilizumab", 0, 0)
    db.crs("P5", 1, temp=37.0, hypotension=True, vasopressors=1)
    db.derive()
    assert int(_by_day(db, "P5")[1]["grade"]) == 0


def test_rerun_replaces_rows(db_path):
    db = StudyDB(db_path)
    db.subject("R1")
    db.crs("R1", 1, temp=38.5)
    db.derive()
    db.derive()
    assert db.one("SELECT count(*) AS n FROM crs_grades")["n"] == 1


def test_records_of_one_time_point_are_graded_together(db_path):
    """The temperature in one record and the vasopressor in another at 08:00 are fever with a vasopressor:
    grade 3 for the time point (Lee 2019), not grade 1 beside an ungradable record."""
    db = StudyDB(db_path)
    db.subject("M1")
    db.crs("M1", 1, temp=38.6)
    db.crs("M1", 1, temp=None, hypotension=True, vasopressors=1)
    db.crs("M1", 2, temp=37.0)
    db.crs("M1", 3, temp=37.0)
    db.derive()
    rows = db.rows("SELECT temp_c, grade, grade_component, grade_reason, evidence FROM crs_grades "
                   "WHERE usubjid = 'M1' AND day = 1 ORDER BY temp_c NULLS LAST")
    assert [int(r["grade"]) for r in rows] == [3, 3]
    assert [r["grade_component"] for r in rows] == ["hypotension", "hypotension"]
    assert all("one vasopressor" in r["grade_reason"] for r in rows)
    assert rows[0]["temp_c"] == 38.6 and rows[1]["temp_c"] != rows[1]["temp_c"]  # each keeps its own (NULL: NaN)
    assert all("graded with the other record at this time" in r["evidence"] for r in rows)
    [ep] = db.rows("SELECT max_grade, vasopressor_max FROM toxicity_episodes WHERE usubjid = 'M1'")
    assert (int(ep["max_grade"]), int(ep["vasopressor_max"])) == (3, 1)


def test_therapy_given_after_the_last_afebrile_assessment_masks_the_episode_it_treated(db_path):
    """The fever recorded at 08:00 on day 2 (the highest since the 08:00 assessment of day 1) may have begun the
    evening before: tocilizumab for CRS at 23:00 on day 1 is therapy for this episode. Fever is then no longer
    required (Lee 2019), and the episode lists the dose. A dose before the last afebrile assessment is not."""
    db = StudyDB(db_path)
    db.subject("N1")
    db.crs("N1", 1, temp=37.0)
    db.med("N1", "tocilizumab", 1, 1, hour=23, indication="Cytokine release syndrome")
    db.crs("N1", 2, temp=39.0)                                     # onset, grade 1
    db.crs("N1", 2, hour=20, temp=37.0, hypotension=True, vasopressors=1)
    db.crs("N1", 3, temp=37.0)
    db.crs("N1", 4, temp=37.0)
    db.subject("N2")                                               # the dose before the afebrile assessment
    db.med("N2", "tocilizumab", 1, 1, hour=6)
    db.crs("N2", 1, temp=37.0)
    db.crs("N2", 2, temp=39.0)
    db.crs("N2", 2, hour=20, temp=37.0, hypotension=True, vasopressors=1)
    db.derive()
    got = {r["usubjid"]: r for r in db.rows("SELECT * FROM crs_grades WHERE day = 2 AND hour(assessment_time) = 20")}
    assert (int(got["N1"]["grade"]), bool(got["N1"]["fever_required"])) == (3, False)
    assert (int(got["N2"]["grade"]), bool(got["N2"]["fever_required"])) == (0, True)
    eps = {r["usubjid"]: r for r in db.rows("SELECT * FROM toxicity_episodes WHERE syndrome = 'CRS'")}
    assert int(eps["N1"]["max_grade"]) == 3 and eps["N1"]["tocilizumab"] and int(eps["N1"]["tocilizumab_first_day"]) == 1
    assert int(eps["N2"]["max_grade"]) == 1 and not eps["N2"]["tocilizumab"]


def test_a_vasopressor_in_cm_that_the_bedside_assessments_do_not_record_is_listed(db_path):
    """The CRS grade comes from the bedside file alone: norepinephrine in CM on day 2 with day-2 assessments that
    record no vasopressor graded fever alone (grade 1). The data-quality check lists it; a pressor the assessments
    record, or one on a day without assessments, is not listed."""
    from safety.derive.toxicity.support_check import unrecorded_vasopressors_sql
    db = StudyDB(db_path)
    db.subject("V1")
    db.crs("V1", 2, temp=38.9, hypotension=True)                       # the pressor is missing here
    db.crs("V1", 3, temp=38.5, hypotension=True, vasopressors=1)       # recorded here
    db.med("V1", "vasopressor", 2, 3, cmtrt="Norepinephrine")
    db.med("V1", "vasopressor", 9, 9, cmtrt="Norepinephrine")          # no assessment on day 9
    db.derive()
    db.con.execute("UPDATE crs_assessments SET source = 'assessment file'")
    rows = db.con.execute(unrecorded_vasopressors_sql()).fetchall()
    assert rows == [("V1", rows[0][1], "Norepinephrine", 2, 3, "2")]
    [crs] = db.rows("SELECT max_grade FROM toxicity_episodes WHERE usubjid = 'V1' AND syndrome = 'CRS'")
    assert int(crs["max_grade"]) == 3  # day 3 records it: the day-2 gap alone is what the check shows

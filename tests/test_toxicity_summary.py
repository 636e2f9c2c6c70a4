"""Incidence summaries: exact Clopper-Pearson intervals and counts through the scoped StudyReader."""
from __future__ import annotations

import math

import pytest

from safety.access.reader import Scope, StudyReader
from safety.derive.toxicity.summary import (INCIDENCE_CATEGORIES, clopper_pearson, incidence_by_enrollment_order,
                                            incidence_by_grade, incidence_table, management_summary,
                                            onset_duration_summary)
from test_crs_support import CUT, STUDY, StudyDB


def test_clopper_pearson_known_values():
    lo, hi = clopper_pearson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.3085, abs=1e-4)
    lo, hi = clopper_pearson(5, 10)
    assert lo == pytest.approx(0.1871, abs=1e-4) and hi == pytest.approx(0.8129, abs=1e-4)
    lo, hi = clopper_pearson(10, 10)
    assert lo == pytest.approx(0.6915, abs=1e-4) and hi == 1.0
    lo, hi = clopper_pearson(1, 6, level=0.90)
    assert lo == pytest.approx(0.008512, abs=1e-5) and hi == pytest.approx(0.581803, abs=1e-5)
    assert all(math.isnan(x) for x in clopper_pearson(0, 0))
    with pytest.raises(ValueError):
        clopper_pearson(3, 2)


@pytest.fixture
def reader(db_path):
    db = StudyDB(db_path)
    # cohort A: 4 infused; CRS grades 1, 3, none, 2 (2 episodes: 1 then 2)
    db.subject("A1", cohort="A", dose_level="DL1", enrollment_order=1)
    db.crs("A1", 2, temp=38.4)
    db.subject("A2", cohort="A", dose_level="DL1", enrollment_order=2)
    db.crs("A2", 1, temp=38.9, vasopressors=1, hypotension=True)
    db.crs("A2", 2, temp=38.9, vasopressors=1, hypotension=True)
    db.crs("A2", 4, temp=37.0)
    db.crs("A2", 5, temp=37.0)
    db.med("A2", "tocilizumab", 1)
    db.med("A2", "tocilizumab", 2)
    db.subject("A3", cohort="A", dose_level="DL1", enrollment_order=3)
    db.crs("A3", 1, temp=37.0)
    db.subject("A4", cohort="A", dose_level="DL1", enrollment_order=4)
    db.crs("A4", 3, temp=38.1)
    db.crs("A4", 5, temp=37.0)
    db.crs("A4", 6, temp=37.0)
    db.crs("A4", 10, temp=38.1, hypotension=True)
    db.crs("A4", 13, temp=37.0)
    db.crs("A4", 14, temp=37.0)
    # cohort B: 2 infused, one grade 4 (steroids), one not infused (excluded from the denominator)
    db.subject("B1", cohort="B", dose_level="DL2", enrollment_order=5)
    db.crs("B1", 4, temp=39.0, oxygen="MECHANICAL_VENTILATION")
    db.crs("B1", 5, temp=38.0, oxygen="MECHANICAL_VENTILATION")
    db.med("B1", "corticosteroid", 4, 8)
    db.subject("B2", cohort="B", dose_level="DL2", enrollment_order=6)
    db.crs("B2", 1, temp=36.9)
    db.subject("B3", cohort="B", dose_level="DL2", infused=False)
    db.icans("B1", 6, ice=5)
    db.icans("B1", 7, ice=10)
    db.icans("B1", 8, ice=10)
    db.derive()
    return StudyReader(db.con, Scope(STUDY, CUT))


def test_incidence_by_grade(reader):
    df = incidence_by_grade(reader, "CRS", by="cohort").set_index("group")
    assert list(df.index) == ["A", "B", "All infused"]
    a = df.loc["A"]
    assert (a["n_infused"], a["n_any_grade"], a["n_grade3_plus"]) == (4, 3, 1)
    assert (a["n_max_grade_1"], a["n_max_grade_2"], a["n_max_grade_3"], a["n_max_grade_4"]) == (1, 1, 1, 0)
    assert a["pct_any_grade"] == pytest.approx(75.0)
    lo, hi = clopper_pearson(3, 4)
    assert a["any_grade_ci_low"] == pytest.approx(100 * lo) and a["any_grade_ci_high"] == pytest.approx(100 * hi)
    allr = df.loc["All infused"]
    assert (allr["n_infused"], allr["n_any_grade"], allr["n_grade3_plus"]) == (6, 4, 2)
    assert allr["grading_systems"] == "ASTCT 2019" and not allr["mixed_grading_systems"]
    study = incidence_by_grade(reader, "ICANS", by="study")
    assert len(study) == 1 and study.iloc[0]["n_any_grade"] == 1 and study.iloc[0]["n_infused"] == 6
    with pytest.raises(ValueError):
        incidence_by_grade(reader, "CRS", by="siteid; DROP TABLE subjects")


def test_incidence_table_has_every_grade_with_zero_where_no_subject_had_it(reader):
    """The packet's and the dashboard's incidence rows: any grade, maximum grade 1-5 and grade >= 3 for every
    group, a grade no subject reached (cohort B has no grade 1-3 CRS, nobody grade 5) as 0, not left out."""
    df = incidence_table(reader, "CRS", by="cohort")
    categories = ["any grade", "maximum grade 1", "maximum grade 2", "maximum grade 3", "maximum grade 4",
                  "maximum grade 5", "grade >= 3"]
    assert [c for c, _ in INCIDENCE_CATEGORIES] == categories
    assert list(df["group"]) == [g for g in ("A", "B", "All infused") for _ in categories]
    assert list(df["category"]) == categories * 3
    b = df[df["group"] == "B"].set_index("category")
    # B1 grade 4, B2 no fever (no CRS), B3 not infused (not in the denominator)
    assert b["subjects"].to_dict() == {"any grade": 1, "maximum grade 1": 0, "maximum grade 2": 0,
                                       "maximum grade 3": 0, "maximum grade 4": 1, "maximum grade 5": 0,
                                       "grade >= 3": 1}
    assert set(b["total"]) == {2}
    assert list(b["grade"].astype("object").where(b["grade"].notna(), None)) == [None, 1, 2, 3, 4, 5, None]
    lo, hi = clopper_pearson(0, 2)  # a 0 row keeps its interval: 0 of 2 is 0-84.2%
    assert (b.at["maximum grade 5", "ci_low"], b.at["maximum grade 5", "ci_high"]) == pytest.approx((0, 100 * hi))
    # the intervals of any grade and grade >= 3 are incidence_by_grade's own
    wide = incidence_by_grade(reader, "CRS", by="cohort").set_index("group")
    allr = df[df["group"] == "All infused"].set_index("category")
    assert allr.at["grade >= 3", "ci_low"] == wide.at["All infused", "grade3_plus_ci_low"]
    assert allr.at["any grade", "ci_high"] == wide.at["All infused", "any_grade_ci_high"]
    assert allr["subjects"].to_dict() == {c: int(wide.at["All infused", col]) for c, col in INCIDENCE_CATEGORIES}


def test_incidence_table_limited_to_subjects(reader):
    """A page's filtered selection: the counts and the denominators are those subjects' alone."""
    df = incidence_table(reader, "CRS", by="cohort", subjects=("A1", "A3", "B3"))
    assert set(df["group"]) == {"A", "All infused"}  # B3 is not infused
    a = df[df["group"] == "A"].set_index("category")
    assert set(a["total"]) == {2}
    # A1 grade 1, A3 none
    assert (a.at["any grade", "subjects"], a.at["maximum grade 1", "subjects"], a.at["maximum grade 2", "subjects"],
            a.at["grade >= 3", "subjects"]) == (1, 1, 0, 0)
    none = incidence_table(reader, "ICANS", by="study", subjects=())
    assert list(none["subjects"]) == [0] * 7 and list(none["total"]) == [0] * 7 and none["ci_low"].isna().all()


def test_onset_duration(reader):
    df = onset_duration_summary(reader, "CRS", by="dose_level").set_index("group")
    d1 = df.loc["DL1"]
    # first episodes: A1 onset 2 dur 1; A2 onset 1 dur 2; A4 onset 3 dur 1
    assert (d1["n_subjects_with_episode"], d1["n_episodes"]) == (3, 4)
    assert (d1["onset_day_median"], d1["onset_day_min"], d1["onset_day_max"]) == (2, 1, 3)
    assert (d1["duration_days_median"], d1["duration_days_min"], d1["duration_days_max"]) == (1, 1, 2)


def test_enrollment_order(reader):
    df = incidence_by_enrollment_order(reader, "CRS")
    assert list(df["usubjid"]) == ["A1", "A2", "A3", "A4", "B1", "B2"]
    assert list(df["cum_any_grade"]) == [1, 2, 2, 3, 4, 4]
    assert list(df["cum_grade3_plus"]) == [0, 1, 1, 1, 2, 2]
    assert df.iloc[-1]["cum_pct_grade3_plus"] == pytest.approx(100 * 2 / 6)


def test_management(reader):
    df = management_summary(reader).set_index("syndrome")
    crs = df.loc["CRS"]
    assert (crs["n_episodes"], crs["n_subjects"], crs["n_subjects_tocilizumab"], crs["n_subjects_corticosteroid"]) == (5, 4, 1, 1)
    assert crs["tocilizumab_doses_max"] == 2 and crs["n_subjects_icu_level_support"] == 2
    assert df.loc["ICANS", "n_subjects"] == 1


def test_site_scope_limits_denominator(db_path):
    db = StudyDB(db_path)
    db.subject("S1", siteid="01")
    db.crs("S1", 1, temp=38.5)
    db.subject("S2", siteid="02")
    db.crs("S2", 1, temp=37.0)
    db.derive()
    df = incidence_by_grade(StudyReader(db.con, Scope(STUDY, CUT, sites=("02",))), "CRS", by="study")
    assert df.iloc[0]["n_infused"] == 1 and df.iloc[0]["n_any_grade"] == 0

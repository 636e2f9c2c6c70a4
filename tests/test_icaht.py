"""Early and late ICAHT from ANC and platelet series (EHA/EBMT 2023 via Liang's reference implementation)."""
from __future__ import annotations

import math

from test_crs_support import StudyDB


def _int(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else int(v)


def _icaht(db, usubjid, lineage="ANC"):
    return db.one("SELECT * FROM icaht WHERE usubjid = $u AND lineage = $l", u=usubjid, l=lineage)


def _dense(db, usubjid, low_days, low=0.3, high=2.0, last=60, test="NEUT"):
    for d in range(-3, last + 1):
        db.lab(usubjid, test, d, low if d in low_days else high)


def test_dense_series_grade_boundaries(db_path):
    db = StudyDB(db_path)
    cases = {"G0": set(), "G1": set(range(5, 11)), "G2": set(range(5, 12)), "G2b": set(range(5, 18)),
             "G3": set(range(5, 19))}
    for sid, days in cases.items():
        db.subject(sid)
        _dense(db, sid, days)
    db.subject("EXACT")  # exactly 0.5 counts as <= 0.5
    _dense(db, "EXACT", set(range(2, 4)), low=0.5)
    db.subject("DEEP7")  # 7 days <= 0.1 -> grade 3 even though <= 0.5 lasts 7 days
    _dense(db, "DEEP7", set(range(5, 12)), low=0.1)
    db.subject("DEEP14")
    _dense(db, "DEEP14", set(range(5, 19)), low=0.05)
    db.derive_icaht()
    got = {sid: (_int(_icaht(db, sid)["early_grade"]), _int(_icaht(db, sid)["days_le_500"]))
           for sid in [*cases, "EXACT", "DEEP7", "DEEP14"]}
    assert got == {"G0": (0, 0), "G1": (1, 6), "G2": (2, 7), "G2b": (2, 13), "G3": (3, 14), "EXACT": (1, 2),
                   "DEEP7": (3, 7), "DEEP14": (4, 14)}
    r = _icaht(db, "G3")
    assert r["recovery_day"] == 19 and r["first_day_le_500"] == 5 and r["evaluable"] and r["n_values"] == 31
    assert _int(_icaht(db, "DEEP7")["days_le_100"]) == 7


def test_short_recovery_joins_episodes(db_path):
    db = StudyDB(db_path)
    db.subject("J")   # low 5-9, up 10-11 (2 days: not a recovery), low 12-16 -> one 12-day episode: grade 2
    _dense(db, "J", set(range(5, 10)) | set(range(12, 17)))
    db.subject("S")   # low 5-9, up 10-12 (3 days: recovered), low 13-17 -> longest 5 days: grade 1
    _dense(db, "S", set(range(5, 10)) | set(range(13, 18)))
    db.derive_icaht()
    assert (_int(_icaht(db, "J")["early_grade"]), _int(_icaht(db, "J")["days_le_500"])) == (2, 12)
    assert (_int(_icaht(db, "S")["early_grade"]), _int(_icaht(db, "S")["days_le_500"])) == (1, 5)


def test_sparse_series_interpolated(db_path):
    db = StudyDB(db_path)
    db.subject("SP")
    # weekly values: 2.0 (d0) -> 0.2 (d7) -> 0.2 (d14) -> 1.6 (d21) -> 3.0 (d28); interpolated daily
    for d, v in [(0, 2.0), (7, 0.2), (14, 0.2), (21, 1.6), (28, 3.0), (45, 2.5), (60, 2.6)]:
        db.lab("SP", "NEUT", d, v)
    db.derive_icaht()
    r = _icaht(db, "SP")
    # day 6 = 2.0 - 1.8*6/7 = 0.457 (low); day 16 = 0.2 + 1.4*2/7 = 0.6 (not low): low days 6..15 = 10
    assert (_int(r["early_grade"]), _int(r["days_le_500"]), _int(r["first_day_le_500"])) == (2, 10, 6)
    assert r["recovery_day"] == 16 and r["n_values"] == 5
    assert _int(r["late_grade"]) == 0 and r["late_nadir"] == 2.5 and r["late_nadir_day"] == 45


def test_gap_over_seven_days_not_interpolated(db_path):
    db = StudyDB(db_path)
    db.subject("GAP")
    for d, v in [(0, 0.3), (10, 0.3), (20, 2.0), (21, 2.0), (22, 2.0), (31, 2.0)]:
        db.lab("GAP", "NEUT", d, v)
    db.derive_icaht()
    r = _icaht(db, "GAP")
    # only the measured days 0 and 10 and days 11..19 (gap 10 -> unknown) : runs {0} and {10} joined? gap 9 days -> no
    assert _int(r["days_le_500"]) == 1 and _int(r["early_grade"]) == 1
    assert "unknown" in r["note"]


def test_up_to_seven_missing_days_are_interpolated_as_the_reference_does(db_path):
    """Liang's reference fills up to 7 missing days in a row (zoo::na.approx(maxgap = 7)): ANC 0.3 on days 0-1 and
    day 9 (days 2-8 missing) is low on days 0-9, 10 days: grade 2. Eight missing days (days 0-1, then day 10) are
    not filled: the two measured runs stay apart."""
    db = StudyDB(db_path)
    for sid, third in (("M7", 9), ("M8", 10)):
        db.subject(sid)
        for d, v in [(0, 0.3), (1, 0.3), (third, 0.3), (third + 1, 2.0), (third + 2, 2.0), (third + 3, 2.0)]:
            db.lab(sid, "NEUT", d, v)
        for d in range(14, 57, 7):
            db.lab(sid, "NEUT", d, 3.0)
    db.derive_icaht()
    m7, m8 = _icaht(db, "M7"), _icaht(db, "M8")
    assert (_int(m7["days_le_500"]), _int(m7["early_grade"])) == (10, 2)
    assert _int(m8["early_grade"]) == 1 and "8 day(s) in 0-30 unknown" in m8["note"]


def test_never_recovering_subject_is_grade4(db_path):
    db = StudyDB(db_path)
    db.subject("NR", death_day=24)
    for d in [-1, 1, 3, 6, 10, 14, 18, 22]:
        db.lab("NR", "NEUT", d, 0.2)
    db.subject("LATE", death_day=24)     # low only from day 5: no forced grade 4
    for d in [1, 3]:
        db.lab("LATE", "NEUT", d, 1.2)
    for d in [5, 8, 12, 16, 20, 22]:
        db.lab("LATE", "NEUT", d, 0.2)
    db.derive_icaht()
    r = _icaht(db, "NR")
    assert _int(r["early_grade"]) == 4 and r["never_recovered"] and "not recovered by day 30" in r["note"]
    assert _int(r["days_le_500"]) == 23 and r["recovery_day"] is None or math.isnan(r["recovery_day"])
    r2 = _icaht(db, "LATE")
    assert not r2["never_recovered"] and _int(r2["early_grade"]) == 3


def test_follow_up_too_short_is_provisional(db_path):
    db = StudyDB(db_path)
    db.subject("SHORT", last_known_alive_day=8)
    for d in range(0, 9):
        db.lab("SHORT", "NEUT", d, 0.3)
    db.derive_icaht()
    r = _icaht(db, "SHORT")
    assert not r["evaluable"] and "provisional" in r["note"] and not r["never_recovered"]


def test_late_icaht_grades_the_nadir_once_a_second_value_is_low(db_path):
    """EHA/EBMT late ICAHT as Liang's reference code: the nadir sets the grade when a second value of days 31-100
    is <= 1.5 too, or when it is the only value there; one low value among higher ones is transient."""
    db = StudyDB(db_path)
    db.subject("L1")
    for d, v in [(0, 2.0), (10, 2.0), (20, 2.0), (30, 2.0), (40, 0.8), (50, 0.4), (60, 1.8)]:
        db.lab("L1", "NEUT", d, v)
    db.subject("L2")
    for d, v in [(0, 2.0), (30, 2.0), (40, 0.05), (50, 2.0)]:
        db.lab("L2", "NEUT", d, v)
    db.subject("L3")
    for d, v in [(0, 2.0), (30, 2.0), (45, 0.3)]:
        db.lab("L3", "NEUT", d, v)
    db.subject("L4")   # the helper's case: nadir 0.05 on day 45, then 1.2, 2.5, 2.5
    for d, v in [(0, 2.0), (30, 2.0), (45, 0.05), (60, 1.2), (75, 2.5), (90, 2.5)]:
        db.lab("L4", "NEUT", d, v)
    db.derive_icaht()
    r1 = _icaht(db, "L1")
    assert _int(r1["late_grade"]) == 3 and r1["late_nadir"] == 0.4 and r1["late_nadir_day"] == 50
    assert _int(r1["late_values_below"]) == 2
    r2 = _icaht(db, "L2")
    assert _int(r2["late_grade"]) == 0 and "needs 2" in r2["note"]
    r3 = _icaht(db, "L3")
    assert _int(r3["late_grade"]) == 3 and r3["late_grade_reason"] == (
        "the only value after day 30 (0.3 on day 45) sets the grade")
    r4 = _icaht(db, "L4")
    assert _int(r4["late_grade"]) == 4 and r4["late_grade_reason"] == (
        "2 values <= 1.5; the nadir 0.05 on day 45 sets the grade")


def test_the_late_window_ends_at_relapse(db_path):
    """EHA/EBMT (clinical-rules.md 4.1): the late window runs from day 31 to the earliest of day 100, relapse or
    progression, ... A relapse recorded on day 40 (RS PD, DS PROGRESSIVE DISEASE) ends it: the marrow-relapse
    neutropenia of days 60-90 is no late ICAHT, while the same values without a relapse are grade 3."""
    import datetime as dt
    from test_crs_support import DAY0
    db = StudyDB(db_path)
    for u in ("RELAPSE", "NO_RELAPSE"):
        db.subject(u, last_known_alive_day=120)
        for day in range(0, 31, 2):
            db.lab(u, "NEUT", day, 2.0)
        for day, v in ((35, 2.1), (39, 2.0), (60, 0.3), (70, 0.2), (90, 0.4)):
            db.lab(u, "NEUT", day, v)
    db._insert("responses", usubjid="RELAPSE", rsseq=1, response="PD", day=40, rs_date=DAY0 + dt.timedelta(days=40))
    db._insert("disposition", usubjid="RELAPSE", dsseq=1, dsdecod="PROGRESSIVE DISEASE", dsterm="Progressive disease",
               day=40)
    db.derive_icaht()
    got = {r["usubjid"]: r for r in db.rows("SELECT * FROM icaht WHERE lineage = 'ANC'")}
    assert (got["NO_RELAPSE"]["late_grade"], got["NO_RELAPSE"]["late_nadir_day"]) == (3, 70)
    assert (got["RELAPSE"]["late_grade"], got["RELAPSE"]["late_nadir_day"]) == (0, 39)
    assert "late window ended by relapse/progression on day 40 (values from that day not graded)" in \
        got["RELAPSE"]["note"]


def test_platelets(db_path):
    db = StudyDB(db_path)
    db.subject("P1")   # < 50 for 8 days, never < 20: grade 2
    _dense(db, "P1", set(range(3, 11)), low=40, high=150, test="PLAT")
    db.subject("P2")   # < 20 for 14 days: grade 4
    _dense(db, "P2", set(range(3, 17)), low=10, high=150, test="PLAT")
    db.subject("P3")   # exactly 50 is not < 50
    _dense(db, "P3", set(range(3, 11)), low=50, high=150, test="PLAT")
    db.derive_icaht()
    assert _int(_icaht(db, "P1", "PLT")["early_grade"]) == 2
    assert _int(_icaht(db, "P2", "PLT")["early_grade"]) == 4 and _int(_icaht(db, "P2", "PLT")["days_le_100"]) == 14
    assert _int(_icaht(db, "P3", "PLT")["early_grade"]) == 0


def test_not_infused_subjects_excluded(db_path):
    db = StudyDB(db_path)
    db.subject("X", infused=False)
    db.lab("X", "NEUT", 1, 0.1)
    db.derive_icaht()
    assert db.one("SELECT count(*) AS n FROM icaht")["n"] == 0


def test_infused_subject_without_results_is_listed_as_not_assessable(db_path):
    db = StudyDB(db_path)
    db.subject("N0")                      # no blood counts at all
    db.subject("N1")                      # ANC only: the platelet row says so
    _dense(db, "N1", set(range(3, 10)))
    db.derive_icaht()
    rows = db.rows("SELECT usubjid, lineage, early_grade, late_grade, n_values, evaluable, note FROM icaht "
                  "WHERE usubjid IN ('N0', 'N1') ORDER BY usubjid, lineage")
    assert [(r["usubjid"], r["lineage"]) for r in rows] == [("N0", "ANC"), ("N0", "PLT"), ("N1", "ANC"), ("N1", "PLT")]
    missing = [r for r in rows if r["usubjid"] == "N0" or r["lineage"] == "PLT"]
    assert all(_int(r["early_grade"]) is None and _int(r["late_grade"]) is None and r["n_values"] == 0
               and not r["evaluable"] and "not assessable" in r["note"] for r in missing)
    assert "no ANC (NEUT) result" in rows[0]["note"] and "no platelet (PLAT) result" in rows[3]["note"]
    assert _int(rows[2]["early_grade"]) == 2  # 7 days at or below 0.5


def test_no_recovery_by_day_30_is_grade4_boundary_day_30_and_31(db_path):
    """EHA/EBMT 2023 (Rejeski, Blood 2023): ANC <= 0.5 x10^9/L from day 1 without recovery by day +30 is early
    grade 4; a recovery starting on day 30 leaves grade 3 (14-30 days)."""
    db = StudyDB(db_path)
    for sid, first_up in [("R30", 30), ("R31", 31)]:
        db.subject(sid)
        db.lab(sid, "NEUT", 0, 1.5)
        for d in range(1, 61):
            db.lab(sid, "NEUT", d, 0.3 if d < first_up else 1.4)
    db.derive_icaht()
    r30, r31 = _icaht(db, "R30"), _icaht(db, "R31")
    assert (_int(r30["early_grade"]), bool(r30["never_recovered"])) == (3, False)
    assert _int(r30["recovery_day"]) == 30 and "14-30" in r30["early_grade_reason"]
    assert (_int(r31["early_grade"]), bool(r31["never_recovered"])) == (4, True)
    assert r31["early_grade_reason"] == "ANC <= 0.5 from day 1 with no recovery by day 30"


def test_mostly_unknown_early_window_is_a_lower_bound(db_path):
    """23 of 31 early days unknown (values too far apart to interpolate): 'not fully evaluable', grade a lower bound."""
    db = StudyDB(db_path)
    db.subject("U1")
    for d, v in [(0, 2.0), (1, 0.4), (2, 0.3), (3, 0.6), (4, 0.7), (5, 0.8), (6, 0.9), (7, 1.0), (60, 1.8)]:
        db.lab("U1", "NEUT", d, v)
    db.subject("U2")   # dense: fully evaluable
    for d in range(0, 40):
        db.lab("U2", "NEUT", d, 0.3 if d in (1, 2) else 2.0)
    db.derive_icaht()
    u1, u2 = _icaht(db, "U1"), _icaht(db, "U2")
    assert _int(u1["early_unknown_days"]) == 23 and u1["early_evaluability"] == "not fully evaluable"
    assert bool(u1["early_grade_is_lower_bound"]) and not bool(u1["evaluable"])
    assert _int(u1["early_grade"]) == 1 and "lower bound" in u1["early_grade_reason"]
    # followed to day 60: the note names the unknown days, not a follow-up that ended
    assert "not fully evaluable: 23 of 31" in u1["note"] and "follow-up ends" not in u1["note"]
    assert u2["early_evaluability"] == "fully evaluable" and not bool(u2["early_grade_is_lower_bound"])


def test_late_grade_needs_two_tests_at_the_level(db_path):
    """EHA/EBMT late ICAHT footnote: a grade needs two or more low tests; one value among higher ones is transient."""
    db = StudyDB(db_path)
    db.subject("L1")
    db.subject("L2")
    for sid in ("L1", "L2"):
        for d in range(0, 31):
            db.lab(sid, "NEUT", d, 2.0)
        db.lab(sid, "NEUT", 40, 0.4)
        db.lab(sid, "NEUT", 60, 2.2)
    db.lab("L2", "NEUT", 70, 0.45)
    db.derive_icaht()
    l1, l2 = _icaht(db, "L1"), _icaht(db, "L2")
    assert _int(l1["late_grade"]) == 0 and "transient" in l1["late_grade_reason"]
    assert _int(l2["late_grade"]) == 3 and "the nadir 0.4 on day 40" in l2["late_grade_reason"]


def test_car_hematotox_points_and_risk(db_path):
    """CAR-HEMATOTOX (Rejeski, Blood 2021): last values before lymphodepletion; >= 2 points is high risk."""
    db = StudyDB(db_path)
    db.subject("HT1", lymphodepletion_start_day=-5)   # 0 points: low
    for t, v in [("NEUT", 3.0), ("HGB", 120), ("PLAT", 200), ("CRP", 5), ("FERRITIN", 300)]:
        db.lab("HT1", t, -6, v)
        db.lab("HT1", t, -2, 0.01)                     # after lymphodepletion started: not used
    db.subject("HT2", lymphodepletion_start_day=-5)   # boundaries: ANC 1.2 -> 0, PLT 75 -> 1, CRP 30 -> 1, ferritin 2000 -> 1
    for t, v in [("NEUT", 1.2), ("HGB", 90), ("PLAT", 75), ("CRP", 30), ("FERRITIN", 2000)]:
        db.lab("HT2", t, -7, v)
    db.subject("HT3", lymphodepletion_start_day=-5)   # PLT 74 -> 2, ferritin 2001 -> 2, ANC 1.19 -> 1, Hb 89 -> 1
    for t, v in [("NEUT", 1.19), ("HGB", 89), ("PLAT", 74), ("CRP", 29.9), ("FERRITIN", 2001)]:
        db.lab("HT3", t, -5, v)
    db.subject("HT5", lymphodepletion_start_day=-5)   # two ANC results on the last day: the last recorded counts
    db.lab("HT5", "NEUT", -6, 3.0)
    db.lab("HT5", "NEUT", -6, 0.9)                     # higher LBSEQ: 1 point
    db.subject("HT4")                                  # ferritin missing; known points already 2
    for t, v in [("NEUT", 3.0), ("HGB", 120), ("PLAT", 50), ("CRP", 1)]:
        db.lab("HT4", t, -3, v)
    from safety.derive.toxicity.hematotox import derive_car_hematotox
    derive_car_hematotox(db.con, db.studyid, db.data_cut, {})
    r = {x["usubjid"]: x for x in db.rows("SELECT * FROM car_hematotox")}
    assert (_int(r["HT1"]["score"]), r["HT1"]["risk"]) == (0, "low")
    assert r["HT1"]["anc"] == 3.0 and _int(r["HT1"]["anc_day"]) == -6
    assert (_int(r["HT2"]["score"]), r["HT2"]["risk"]) == (3, "high")
    assert [_int(r["HT2"][f"{m}_points"]) for m in ("anc", "hgb", "plt", "crp", "ferritin")] == [0, 0, 1, 1, 1]
    assert [_int(r["HT3"][f"{m}_points"]) for m in ("anc", "hgb", "plt", "crp", "ferritin")] == [1, 1, 2, 0, 2]
    assert _int(r["HT3"]["score"]) == 6
    assert _int(r["HT4"]["score"]) is None and r["HT4"]["risk"] == "high (incomplete)"
    assert "FERRITIN missing" in r["HT4"]["note"] and "day -1" in r["HT4"]["note"]
    assert "platelets 50.0 x10^9/L (day -3): 2" in r["HT4"]["inputs"]
    assert (r["HT5"]["anc"], _int(r["HT5"]["anc_day"]), _int(r["HT5"]["anc_points"])) == (0.9, -6, 1)


def test_unknown_days_after_a_value_above_05_are_no_proof_of_no_recovery(db_path):
    """EHA/EBMT grade 4 'never recovers' needs the values to rule recovery out: ANC above 0.5 on days 29-30 (or on day
    30) followed by days without a value (more than 7 missing, not interpolated) may be a recovery, so the duration
    grades it, as the reference implementation does (its episode ends before the last grid day): grade 3. Measured
    above 0.5 with the next value inside the interpolation gap is a recovery seen; a low day or death right after a
    day above 0.5 still rules recovery out."""
    db = StudyDB(db_path)
    cases = {  # subject: (days at 0.3, days at 2.0, death day)
        "UP30": (range(1, 30), [0, 30, 39, 60, 90], None),
        "UP29": (range(1, 29), [0, 29, 30, 39, 60, 90], None),
        "SEEN": (range(1, 30), [0, 30, 38, 60, 90], None),
        "DIP": (list(range(1, 30)) + [31, 40], [0, 30], None),
        "DIED": (range(1, 30), [0, 30], 31),
    }
    for sid, (low_days, high_days, death) in cases.items():
        db.subject(sid, death_day=death) if death else db.subject(sid)
        for d in low_days:
            db.lab(sid, "NEUT", d, 0.3)
        for d in high_days:
            db.lab(sid, "NEUT", d, 2.0)
    db.derive_icaht()
    got = {sid: (_int(_icaht(db, sid)["early_grade"]), bool(_icaht(db, sid)["never_recovered"])) for sid in cases}
    assert got == {"UP30": (3, False), "UP29": (3, False), "SEEN": (3, False), "DIP": (4, True), "DIED": (4, True)}
    up30 = _icaht(db, "UP30")
    assert up30["early_grade_reason"] == "ANC <= 0.5 for 29 days (14-30)"
    assert "ANC above 0.5 on day 30 with the next days unknown: recovery by day 30 not confirmed" in up30["note"]
    assert "on day 29 with the next days unknown" in _icaht(db, "UP29")["note"]
    seen = _icaht(db, "SEEN")
    assert _int(seen["recovery_day"]) == 30 and "not confirmed" not in str(seen["note"])


def test_days_after_the_last_value_are_unknown_up_to_day_30(db_path):
    """The early grid runs to day 30 (or death, or the last follow-up), as the reference implementation's does: the
    days after the last ANC value are unknown, not left out. A series that stops on day 5 has 25 of 31 early days
    unknown ('not fully evaluable', a lower bound), and one low from day 1 to day 5 is not 'not recovered by day 30'
    (nothing measured after day 5 rules recovery out): its 5 days grade it, as Liang's code does."""
    db = StudyDB(db_path)
    series = {"E2": [(-3, 2.0), (0, 2.0), (1, 0.4), (3, 0.3), (5, 0.4)],
              "E3": [(0, 2.0), (1, 1.8), (3, 1.6), (5, 1.9)],
              "E4": [(0, 2.0), (1, 1.8), (3, 1.6), (5, 1.9), (40, 2.0)]}
    for sid, values in series.items():
        db.subject(sid, last_known_alive_day=97)
        for d, v in values:
            db.lab(sid, "NEUT", d, v)
    for sid, death in [("DIED7", 7), ("DIED8", 8)]:    # low from day 1, last value day 5, then death
        db.subject(sid, death_day=death)
        for d, v in [(0, 2.0), (1, 0.4), (3, 0.3), (5, 0.4)]:
            db.lab(sid, "NEUT", d, v)
    db.derive_icaht()
    got = {sid: (_int(r["early_grade"]), _int(r["early_unknown_days"]), r["early_evaluability"],
                 bool(r["early_grade_is_lower_bound"]), bool(r["never_recovered"]))
           for sid, r in ((s, _icaht(db, s)) for s in [*series, "DIED7", "DIED8"])}
    assert got == {"E2": (1, 25, "not fully evaluable", True, False),
                   "E3": (0, 25, "not fully evaluable", True, False),
                   "E4": (0, 25, "not fully evaluable", True, False),
                   # days 6-7 unknown, but 3 days above 0.5 do not fit before death on day 7: never recovered
                   "DIED7": (4, 2, "fully evaluable", False, True),
                   # days 6-8 may have been a recovery: the 5 low days grade it
                   "DIED8": (1, 3, "fully evaluable", False, False)}
    e2 = _icaht(db, "E2")
    assert e2["early_grade_reason"] == ("ANC <= 0.5 for 5 days (1-6); 25 of 31 days unknown: not fully evaluable, "
                                        "grade is a lower bound")
    assert "not recovered by day 30" not in e2["note"]
    assert "ANC unknown from day 6: recovery by day 30 not ruled out, graded by the duration" in e2["note"]

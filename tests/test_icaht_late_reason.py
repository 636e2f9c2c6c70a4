"""The late platelet grade's reason names what set the grade, through a real load (T-ICAHT: with two or more tests
< 20, the days below 20 give grade 3-4; otherwise the second-lowest value gives grade 1-2)."""
from __future__ import annotations

from cytopenia_study import load_study, rows


def _platelets(low_days: range, low) -> dict:
    """Daily platelets from day -5 to day 100: ``low`` on ``low_days``, 150 early and 120 late otherwise."""
    return {d: low if d in low_days else (150 if d <= 30 else 120) for d in range(-5, 101)}


def test_late_platelet_grade_3_and_4_say_the_days_below_20_set_the_grade(tmp_path):
    """Platelets 10 on days 40-45 (6 days < 20: grade 3) and 40-55 (16 days: grade 4): the reason said "second-lowest
    10 sets the grade", the rule of grades 1-2, though the days below 20 set it. 40 on days 40-45 is grade 2 by the
    second-lowest value, as it said."""
    con = load_study(tmp_path, {"L3": {"labs": {"PLAT": _platelets(range(40, 46), 10)}},
                                "L4": {"labs": {"PLAT": _platelets(range(40, 56), 10)}},
                                "L2": {"labs": {"PLAT": _platelets(range(40, 46), 40)}}})
    got = rows(con, "SELECT usubjid, late_grade, late_grade_reason FROM icaht WHERE lineage = 'PLT'")
    con.close()
    assert {u: (r["late_grade"], r["late_grade_reason"]) for u, r in got.items()} == {
        "L3": (3, "6 values < 20 after day 30: 6 days with platelets < 20 (1-13) set the grade"),
        "L4": (4, "16 values < 20 after day 30: 16 days with platelets < 20 (>= 14) set the grade"),
        "L2": (2, "6 values < 100; second-lowest 40.0 sets the grade (two tests at that level)"),
    }

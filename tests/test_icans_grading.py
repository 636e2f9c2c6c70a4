"""ASTCT 2019 ICANS grading (adult, ICE-based): every domain boundary and the not-gradable case."""
from __future__ import annotations

import math

import pytest

from test_crs_support import StudyDB

CASES = [
    ("ice10", dict(ice=10), 0, "none", "ICE 10, no neurological findings"),
    ("ice9", dict(ice=9), 1, "ICE", "ICE 9 (7-9)"),
    ("ice7", dict(ice=7), 1, "ICE", "ICE 7 (7-9)"),
    ("ice6", dict(ice=6), 2, "ICE", "ICE 6 (3-6)"),
    ("ice3", dict(ice=3), 2, "ICE", "ICE 3 (3-6)"),
    ("ice2", dict(ice=2), 3, "ICE", "ICE 2 (0-2)"),
    ("ice0", dict(ice=0), 3, "ICE", "ICE 0 (0-2)"),
    ("ice0_unarousable", dict(ice=0, consciousness="UNAROUSABLE"), 4, "consciousness", "unarousable"),
    ("loc_spont", dict(ice=10, consciousness="AWAKENS_SPONTANEOUSLY"), 1, "consciousness", "awakens spontaneously"),
    ("loc_voice", dict(ice=10, consciousness="AWAKENS_TO_VOICE"), 2, "consciousness", "awakens to voice"),
    ("loc_touch", dict(ice=None, consciousness="AWAKENS_TO_TACTILE"), 3, "consciousness", "awakens only to touch"),
    ("loc_unarousable_no_ice", dict(ice=None, consciousness="UNAROUSABLE"), 4, "consciousness", "unarousable"),
    ("seizure_rapid", dict(ice=8, seizure="RAPIDLY_RESOLVING"), 3, "seizure", "seizure resolving rapidly"),
    ("seizure_prolonged", dict(ice=8, seizure="PROLONGED_OR_REPETITIVE"), 4, "seizure", "prolonged or repetitive seizure"),
    ("motor", dict(ice=9, motor="DEEP_FOCAL"), 4, "motor", "deep focal motor weakness"),
    ("oedema_focal", dict(ice=9, edema="FOCAL"), 3, "cerebral oedema", "focal cerebral oedema"),
    ("oedema_diffuse", dict(ice=9, edema="DIFFUSE"), 4, "cerebral oedema", "diffuse cerebral oedema"),
    ("tie_ice_seizure", dict(ice=2, seizure="RAPIDLY_RESOLVING"), 3, "ICE+seizure", "ICE 2 (0-2) and seizure"),
    ("ice3_seizure", dict(ice=3, seizure="RAPIDLY_RESOLVING"), 3, "seizure", "seizure"),
    ("ice_not_done", dict(ice=None), None, None, "ICE not done and nothing else abnormal"),
    ("ice_not_done_all_null", dict(ice=None, consciousness=None, seizure=None, motor=None, edema=None), None, None,
     "ICE not done and nothing else abnormal"),
    ("ice10_domains_null", dict(ice=10, consciousness=None, seizure=None, motor=None, edema=None), 0, "none", "ICE 10"),
]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    db = StudyDB(tmp_path_factory.mktemp("icans") / "study.duckdb")
    for cid, kw, *_ in CASES:
        db.subject(cid)
        db.icans(cid, 2, **kw)
    db.derive()
    return {r["usubjid"]: r for r in db.rows("SELECT * FROM icans_grades")}


def _int(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else int(v)


@pytest.mark.parametrize("cid,kw,grade,component,reason", CASES, ids=[c[0] for c in CASES])
def test_domain_boundaries(graded, cid, kw, grade, component, reason):
    r = graded[cid]
    assert _int(r["grade"]) == grade
    assert (r["grade_component"] if isinstance(r["grade_component"], str) else None) == component
    assert reason in r["grade_reason"]


def test_not_gradable_is_never_zero(graded):
    r = graded["ice_not_done"]
    assert _int(r["grade"]) is None
    assert "ICE not done" in r["evidence"]


def test_missing_domain_noted_in_evidence(graded):
    assert "consciousness not recorded" in graded["ice10_domains_null"]["evidence"]


def test_icans_episode_and_daily_grade(db_path):
    db = StudyDB(db_path)
    db.subject("N1")
    db.icans("N1", 4, hour=8, ice=8)
    db.icans("N1", 4, hour=20, ice=2)
    db.icans("N1", 5, ice=6)
    db.icans("N1", 6, ice=None)          # not gradable: neither extends nor ends the episode
    db.icans("N1", 7, ice=10)
    db.icans("N1", 8, ice=10)
    db.derive()
    daily = {int(r["day"]): _int(r["grade"]) for r in db.rows("SELECT * FROM toxicity_daily_grades WHERE usubjid='N1'")}
    assert daily == {4: 3, 5: 2, 6: None, 7: 0, 8: 0}
    ep = db.one("SELECT * FROM toxicity_episodes WHERE usubjid='N1'")
    assert ep["syndrome"] == "ICANS" and ep["event_key"] == "N1/ICANS/1"
    assert (ep["onset_day"], ep["last_symptomatic_day"], ep["duration_days"], ep["max_grade"]) == (4, 5, 2, 3)
    assert ep["icu_level_support"] and ep["resolution_status"] == "resolved" and ep["resolution_day"] == 7
    assert ep["days_grade3_plus"] == 1

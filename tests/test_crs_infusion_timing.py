"""Bedside CRS and ICANS assessments from the celltox files read against the CAR infusion (Lee 2019: CRS and ICANS
are responses after immune effector cell therapy), loaded through the real ingest into a real DuckDB file."""
from __future__ import annotations

import csv
from pathlib import Path

import duckdb
import pytest

from safety.ingest import ingest_study

STUDY = "TIM-01"
INFUSION = "2025-01-01T10:00"  # day 0
DM_COLS = dict(STUDYID=STUDY, DOMAIN="DM", RFXSTDTC=INFUSION, SITEID="01", AGE="45", AGEU="YEARS", SEX="F",
               ARMCD="DL1", ARM="DL1", ACTARMCD="DL1", ACTARM="DL1")


def _write(folder: Path, name: str, rows: list[dict]) -> None:
    with open(folder / f"{name}.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def _crs(usubjid, dtc, temp, hypotension="N", oxygen="NONE", flow=""):
    return dict(USUBJID=usubjid, CRSDTC=dtc, TEMP_C=str(temp), HYPOTENSION=hypotension, VASOPRESSORS="0",
                VASOPRESSIN="N", OXYGEN=oxygen, O2_FLOW_LMIN=str(flow), COMMENT="")


def _ice(usubjid, dtc, ice):
    return dict(USUBJID=usubjid, ICANSDTC=dtc, ICE_SCORE=str(ice), CONSCIOUSNESS="AWAKE", SEIZURE="NONE",
                MOTOR_WEAKNESS="NONE", CEREBRAL_EDEMA="NONE", COMMENT="", CAPD_SCORE="")


def _load(folder: Path, subjects: list[str], crs: list[dict], icans: list[dict] | None = None,
          cm: list[dict] | None = None) -> duckdb.DuckDBPyConnection:
    (folder / "study.yaml").write_text(f"studyid: {STUDY}\ncrs_grading: ASTCT 2019\nicans_grading: ASTCT 2019\n")
    _write(folder, "dm", [dict(DM_COLS, USUBJID=s, SUBJID=s) for s in subjects])
    _write(folder, "ex", [dict(STUDYID=STUDY, DOMAIN="EX", USUBJID=s, EXSEQ="1", EXTRT="CAR-T cells",
                               EXCAT="CELL THERAPY", EXDOSE="1", EXDOSU="10^6 cells/kg", EXSTDTC=INFUSION,
                               EXENDTC="2025-01-01T10:30") for s in subjects])
    _write(folder, "crs_assessments", crs)
    if icans:
        _write(folder, "icans_assessments", icans)
    if cm:
        _write(folder, "cm", [dict(STUDYID=STUDY, DOMAIN="CM", CMSEQ=str(i), **r) for i, r in enumerate(cm, 1)])
    db = folder / "study.duckdb"
    ingest_study(folder, db)
    return duckdb.connect(str(db), read_only=True)


@pytest.fixture(scope="module")
def before_infusion(tmp_path_factory):
    """A fever with hypotension during lymphodepletion (day -2), a fever on day -1 and on day 0 at 07:00 (the
    infusion is at 10:00), then the CRS: fever from day 2. An ICE of 6 on day -1, then 10 after the infusion."""
    crs = [_crs("S01", "2024-12-30T08:00", 38.6, hypotension="Y"), _crs("S01", "2024-12-31T08:00", 38.6),
           _crs("S01", "2025-01-01T07:00", 38.4), _crs("S01", "2025-01-02T08:00", 37.9),
           _crs("S01", "2025-01-03T08:00", 38.0), _crs("S01", "2025-01-04T08:00", 37.0),
           _crs("S01", "2025-01-05T08:00", 37.0),
           # day 0 after the infusion time, and day 0 without a time: both after the infusion
           _crs("S02", "2025-01-01T07:00", 38.4), _crs("S02", "2025-01-01T20:00", 38.5),
           _crs("S02", "2025-01-02T08:00", 37.0), _crs("S02", "2025-01-03T08:00", 37.0),
           _crs("S03", "2025-01-01", 38.2), _crs("S03", "2025-01-02", 37.0), _crs("S03", "2025-01-03", 37.0)]
    icans = [_ice("S01", "2024-12-31T08:00", 6), _ice("S01", "2025-01-02T08:00", 10),
             _ice("S01", "2025-01-03T08:00", 10)]
    con = _load(tmp_path_factory.mktemp("before_infusion"), ["S01", "S02", "S03"], crs, icans)
    yield con
    con.close()


def test_crs_assessments_before_the_infusion_are_listed_not_graded(before_infusion):
    rows = before_infusion.execute(
        "SELECT day, hour(assessment_time), grade, grade_reason, episode_key FROM crs_grades "
        "WHERE usubjid = 'S01' ORDER BY assessment_time").fetchall()
    assert rows == [(-2, 8, None, "before the CAR infusion: not graded", None),
                    (-1, 8, None, "before the CAR infusion: not graded", None),
                    (0, 7, None, "before the CAR infusion: not graded", None),
                    (1, 8, 0, "afebrile, no CRS", None),
                    (2, 8, 1, "fever, no hypotension or hypoxia", "S01/CRS/1"),
                    (3, 8, 0, "afebrile, no CRS", "S01/CRS/1"),
                    (4, 8, 0, "afebrile, no CRS", "S01/CRS/1")]


def test_a_crs_episode_starts_only_after_the_infusion(before_infusion):
    eps = before_infusion.execute(
        "SELECT usubjid, onset_day, max_grade, max_grade_day FROM toxicity_episodes WHERE syndrome = 'CRS' "
        "ORDER BY usubjid").fetchall()
    # S02: 07:00 before the 10:00 infusion is not CRS, 20:00 is; S03: a day-0 record without a time counts
    assert eps == [("S01", 2, 1, 2), ("S02", 0, 1, 0), ("S03", 0, 1, 0)]
    s02 = before_infusion.execute("SELECT hour(assessment_time), grade FROM crs_grades WHERE usubjid = 'S02' "
                                  "AND day = 0 ORDER BY assessment_time").fetchall()
    assert s02 == [(7, None), (20, 1)]


def test_icans_assessments_before_the_infusion_are_listed_not_graded(before_infusion):
    rows = before_infusion.execute(
        "SELECT day, grade, grade_component, grade_reason, episode_key FROM icans_grades WHERE usubjid = 'S01' "
        "ORDER BY assessment_time").fetchall()
    assert rows == [(-1, None, None, "before the CAR infusion: not graded", None),
                    (1, 0, "none", "ICE 10, no neurological findings", None),
                    (2, 0, "none", "ICE 10, no neurological findings", None)]
    assert before_infusion.execute("SELECT count(*) FROM toxicity_episodes WHERE syndrome = 'ICANS'").fetchone() == (0,)


def _paracetamol(usubjid, dtc, cat="", indication=""):
    return dict(USUBJID=usubjid, CMTRT="Paracetamol", CMDECOD="PARACETAMOL", CMCAT=cat, CMINDC=indication,
                CMDOSE="1000", CMDOSU="mg", CMROUTE="ORAL", CMSTDTC=dtc, CMENDTC="")


def _course(usubjid, fever_day):
    """A fever of 38.3 at 20:00, then two afebrile days with hypotension and 2 L/min oxygen, then two normal days."""
    def at(n, time="08:00"):
        return f"2025-01-{1 + fever_day + n:02d}T{time}"
    return [_crs(usubjid, at(0, "20:00"), 38.3)] + [
        _crs(usubjid, at(n), 37.0, hypotension="Y", oxygen="LOW_FLOW_NC", flow=2) for n in (1, 2)] + [
        _crs(usubjid, at(n), 37.0) for n in (3, 4)]


def test_an_antipyretic_premedication_does_not_lift_the_fever_requirement(tmp_path):
    """Lee 2019 lifts the fever requirement for patients who have CRS and then receive antipyretic or anti-cytokine
    therapy. A paracetamol premedication for the infusion (day 0) is not therapy for CRS: the same course grades
    the same whether the CRS starts on day 0 (Q1) or day 1 (Q2). A dose without an indication taken before the
    10:00 infusion (Q3) is not either; paracetamol for the fever of the CRS (Q4) is, and masks."""
    premed = dict(cat="PREMEDICATION", indication="Premedication for CAR-T infusion")
    con = _load(tmp_path, ["Q1", "Q2", "Q3", "Q4"],
                _course("Q1", 0) + _course("Q2", 1) + _course("Q3", 0) + _course("Q4", 0),
                cm=[_paracetamol("Q1", "2025-01-01", **premed), _paracetamol("Q2", "2025-01-01", **premed),
                    _paracetamol("Q3", "2025-01-01T09:00"),
                    _paracetamol("Q4", "2025-01-01T21:00", cat="SUPPORTIVE", indication="Fever")])
    eps = con.execute("SELECT usubjid, onset_day, max_grade FROM toxicity_episodes WHERE syndrome = 'CRS' "
                      "ORDER BY usubjid").fetchall()
    assert eps == [("Q1", 0, 1), ("Q2", 1, 1), ("Q3", 0, 1), ("Q4", 0, 2)]
    after_onset = con.execute(
        "SELECT usubjid, grade, fever_required, grade_reason FROM crs_grades g WHERE day = "
        "(SELECT min(day) + 1 FROM crs_grades WHERE usubjid = g.usubjid) ORDER BY usubjid").fetchall()
    unmasked = "afebrile, no CRS (hypotension without vasopressors and low-flow nasal cannula <= 6 L/min without fever)"
    assert after_onset == [("Q1", 0, True, unmasked), ("Q2", 0, True, unmasked), ("Q3", 0, True, unmasked),
                           ("Q4", 2, False, "hypotension without vasopressors and low-flow nasal cannula <= 6 L/min "
                                            "(afebrile; fever not required after anti-cytokine/antipyretic therapy for this CRS)")]
    con.close()

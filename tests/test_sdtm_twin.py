"""The plain-SDTM twin of ITNK-B-01 (sample_data/car_itnk_sdtm: no celltox assessment files) is graded exactly as
the study delivered with them: the same CRS and ICANS grades per subject and day, the same episodes and the same
discrepancies with the reported AEs."""
from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from safety.ingest import ingest_study

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
FILES, TWIN = "ITNK-B-01", "ITNK-B-01-SDTM"
CUTS = ("2026-03-31", "2026-09-30")
SUBJ = r"regexp_extract(usubjid, '(\d\d-\d\d\d)$')"  # site-subject: the USUBJIDs differ by the study prefix


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    folder = tmp_path_factory.mktemp("twin")
    db = folder / "twin.duckdb"
    for name in ("car_itnk", "twins/car_itnk_sdtm"):
        for cut in CUTS:
            ingest_study(SAMPLE / name, db, cutoff=cut, review_store_path=folder / "review.duckdb")
    c = duckdb.connect(str(db), read_only=True)
    yield c
    c.close()


def _set(con, sql, studyid, cut):
    return set(con.execute(sql, {"s": studyid, "c": cut}).fetchall())


def test_the_twin_is_plain_sdtm():
    names = {p.stem for p in (SAMPLE / "twins" / "car_itnk_sdtm").iterdir()}
    assert not names & {"crs_assessments", "icans_assessments"}
    assert {"vs", "cm", "suppcm", "pr", "qs", "fa", "ce", "ae"} <= names


@pytest.mark.parametrize("cut", CUTS)
@pytest.mark.parametrize("table", ["crs_grades", "icans_grades"])
def test_same_grades_per_subject_and_day(con, table, cut):
    sql = f"SELECT {SUBJ}, day, max(grade) FROM {table} WHERE studyid = $s AND data_cut = $c GROUP BY ALL"
    files = {(s, d): g for s, d, g in _set(con, sql, FILES, cut)}
    twin = {(s, d): g for s, d, g in _set(con, sql, TWIN, cut)}
    assert len(files) > 200 and max(g for g in files.values() if g is not None) >= 2
    assert {k: twin.get(k, "missing") for k in files} == files
    # the twin also has the routine visit vitals after day 14 (days 21, 28, months ...): time points of grade 0
    extra = {k: g for k, g in twin.items() if k not in files}
    assert all(g == 0 and k[1] > 14 for k, g in extra.items())


@pytest.mark.parametrize("cut", CUTS)
def test_same_episodes(con, cut):
    sql = f"""SELECT syndrome, {SUBJ}, episode_no, onset_day, last_symptomatic_day, max_grade, max_grade_day,
                     resolution_day, resolution_status, grade3_plus_hours, vasopressor_max, tocilizumab_doses
              FROM toxicity_episodes WHERE studyid = $s AND data_cut = $c"""
    files = _set(con, sql, FILES, cut)
    assert len(files) >= 5 and {r[5] for r in files} >= {1, 2, 3}
    assert _set(con, sql, TWIN, cut) == files


@pytest.mark.parametrize("cut", CUTS)
def test_same_discrepancies(con, cut):
    sql = f"""SELECT syndrome, {SUBJ}, discrepancy, reported_grade, derived_grade, onset_day
              FROM grade_discrepancies WHERE studyid = $s AND data_cut = $c"""
    files = _set(con, sql, FILES, cut)
    assert ("CRS", "02-008", "reported lower than derived", 1, 3, 1) in files  # the planted under-grading
    assert _set(con, sql, TWIN, cut) == files


def test_twin_rows_say_where_they_come_from(con):
    rows = con.execute("""SELECT studyid, source, count(*), count(provenance) FROM crs_assessments
                          WHERE data_cut = '2026-09-30' GROUP BY ALL ORDER BY 1""").fetchall()
    assert [(r[0], r[1]) for r in rows] == [(FILES, "assessment file"), (TWIN, "SDTM")]
    assert rows[0][3] == 0 and rows[1][3] == rows[1][2]
    # the site-03 temperatures arrive in Fahrenheit and are graded in Celsius
    f = con.execute("""SELECT count(*) FROM crs_assessments WHERE studyid = $s AND comment LIKE '%F;%'
                       AND usubjid LIKE '%-03-%'""", {"s": TWIN}).fetchone()[0]
    assert f > 50
    o2 = con.execute("""SELECT oxygen, o2_flow_lmin, provenance FROM crs_assessments
                        WHERE studyid = $s AND data_cut = '2026-09-30' AND oxygen <> 'NONE' ORDER BY usubjid, day""",
                     {"s": TWIN}).fetchall()
    # oxygen arrives as CM records (device in SUPPCM, flow in CMDOSE) and ventilation as PR: each row names them,
    # and the twin carries the same device and flow on the same days as the file delivery
    assert o2 and all(("PRSEQ" if r[0] == "MECHANICAL_VENTILATION" else "CMSEQ") in r[2] for r in o2)
    assert {r[0] for r in o2} >= {"LOW_FLOW_NC", "HIGH_FLOW_NC"}
    same = f"""SELECT {SUBJ}, day, oxygen, o2_flow_lmin FROM crs_assessments
               WHERE studyid = $s AND data_cut = $c AND oxygen <> 'NONE'"""
    assert _set(con, same, TWIN, "2026-09-30") == _set(con, same, FILES, "2026-09-30")


def test_vasopressors_in_a_comment_are_named_in_one_order(con):
    """The same delivery gives the same comment at every load: the vasopressors are named alphabetically."""
    names = ("dopamine", "epinephrine", "norepinephrine", "phenylephrine", "vasopressin")
    comments = [r[0] for r in con.execute("SELECT comment FROM crs_assessments WHERE studyid = $s", {"s": TWIN}).fetchall()]
    listed = []
    for c in comments:
        for part in c.split("; "):
            drugs = [d.strip().lower() for d in part.split(",")]
            if len(drugs) > 1 and all(d in names for d in drugs):
                listed.append(drugs)
    assert listed, "the twin delivers time points with more than one vasopressor"
    assert all(d == sorted(d) for d in listed), [d for d in listed if d != sorted(d)][:3]

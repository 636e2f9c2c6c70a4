"""lab_toxicity is a view over its stored records, terms and reasons: the rows a load's view shows are those
grade_labs computes, a file that kept lab_toxicity as a table keeps every snapshot's grades when it is next
loaded, and whole rows stored by hand get the ids of the terms and reasons their cut already has."""
from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from safety import schema
from safety.derive.grading.ctcae import grade_labs
from safety.ingest import ingest_study

ROOT = Path(__file__).resolve().parents[1]
CD56 = ROOT / "sample_data" / "car_t_cd56"
ITNK = ROOT / "sample_data" / "car_itnk"


@pytest.fixture(scope="module")
def cd56_db(tmp_path_factory):
    db = tmp_path_factory.mktemp("labtox") / "study.duckdb"
    result = ingest_study(CD56, db)
    return db, result.studyid, result.data_cut


def _copy(db: Path, folder: Path) -> Path:
    dst = folder / "copy.duckdb"
    shutil.copy(db, dst)
    return dst


def _rows(con, sql: str, params: dict | None = None) -> list[tuple]:
    return sorted(con.execute(sql, params or {}).fetchall(), key=repr)


def test_the_view_shows_what_grade_labs_computes(cd56_db):
    db, study, cut = cd56_db
    con = duckdb.connect(str(db), read_only=True)
    try:
        kinds = dict(con.execute("SELECT table_name, table_type FROM information_schema.tables "
                                 "WHERE table_name LIKE 'lab_toxicity%'").fetchall())
        assert kinds == {"lab_toxicity": "VIEW", "lab_toxicity_records": "BASE TABLE",
                         "lab_toxicity_terms": "BASE TABLE", "lab_toxicity_reasons": "BASE TABLE"}
        cols = ", ".join(schema.get_table("lab_toxicity").column_names)
        p = {"s": study, "c": cut}
        computed = grade_labs(con, "labs", where="studyid = $s AND data_cut = $c", params=p)
        con.register("computed", computed)
        stored = f"SELECT {cols} FROM lab_toxicity WHERE studyid = $s AND data_cut = $c"
        assert len(computed) == con.execute(f"SELECT count(*) FROM ({stored})", p).fetchone()[0] == 11633
        for a, b in ((stored, f"SELECT {cols} FROM computed"), (f"SELECT {cols} FROM computed", stored)):
            assert con.execute(f"SELECT count(*) FROM ({a} EXCEPT ALL {b})", p).fetchone()[0] == 0
        # every record has its term and a reason; one row per record and term
        assert con.execute("SELECT count(*) FROM lab_toxicity WHERE ctcae_term IS NULL OR grade_reason IS NULL "
                           "OR ctcae_version IS NULL").fetchone()[0] == 0
        assert con.execute("SELECT count(*), count(DISTINCT (usubjid, lbseq, ctcae_term, direction)) "
                           "FROM lab_toxicity").fetchone() == (11633, 11633)
    finally:
        con.close()


def test_a_file_that_stored_lab_toxicity_as_a_table_keeps_every_snapshot(cd56_db, tmp_path):
    db, study, cut = cd56_db
    old = _copy(db, tmp_path)
    cols = ", ".join(schema.get_table("lab_toxicity").column_names)
    con = duckdb.connect(str(old))
    try:
        worst = _rows(con, "SELECT * FROM lab_worst_grades")
        # the file as an earlier celltox wrote it: lab_toxicity a table of whole rows, no storage tables
        con.execute("CREATE TABLE _whole AS SELECT * FROM lab_toxicity")
        con.execute("DROP VIEW lab_toxicity")
        for t in ("lab_toxicity_records", "lab_toxicity_terms", "lab_toxicity_reasons"):
            con.execute(f"DROP TABLE {t}")
        con.execute("ALTER TABLE _whole RENAME TO lab_toxicity")
        # a text an earlier file holds as it reads, the unit reason among them
        con.execute("UPDATE lab_toxicity SET grade_reason = 'unit mg/dL not g/L' "
                    "WHERE lbseq = (SELECT min(lbseq) FROM lab_toxicity WHERE ctcae_term = 'Anemia')")
        before = _rows(con, f"SELECT {cols} FROM lab_toxicity")
    finally:
        con.close()
    other = ingest_study(ITNK, old)  # another study into the same file
    con = duckdb.connect(str(old), read_only=True)
    try:
        assert con.execute("SELECT table_type FROM information_schema.tables "
                           "WHERE table_name = 'lab_toxicity'").fetchone()[0] == "VIEW"
        assert _rows(con, f"SELECT {cols} FROM lab_toxicity WHERE studyid = $s", {"s": study}) == before
        assert _rows(con, "SELECT * FROM lab_worst_grades WHERE studyid = $s", {"s": study}) == worst
        assert con.execute("SELECT count(*) FROM lab_toxicity WHERE studyid = $s",
                           {"s": other.studyid}).fetchone()[0] > 0
        assert "_stored_lab_toxicity" not in {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()")
                                              .fetchall()}
    finally:
        con.close()


def test_rows_stored_by_hand_take_the_ids_their_cut_already_has(cd56_db, tmp_path):
    db, study, cut = cd56_db
    con = duckdb.connect(str(_copy(db, tmp_path)))
    try:
        terms = con.execute("SELECT count(*) FROM lab_toxicity_terms").fetchone()[0]
        reasons = con.execute("SELECT count(*) FROM lab_toxicity_reasons").fetchone()[0]
        schema.store_view_rows(con, schema.get_table("lab_toxicity"), """
            SELECT * FROM (VALUES ($s, $c, 'X-1', 1, 'HGB', 'Anemia', 'L', 3, 'value < 80', '5.0', 5),
                                  ($s, $c, 'X-1', 2, 'HGB', 'Anemia', 'L', 1, 'a reason no load gives', '5.0', 6),
                                  ($s, $c, 'X-1', 3, 'ZZZ', 'A term of its own', 'H', 2, 'value < 80', '5.0', 7))
              v(studyid, data_cut, usubjid, lbseq, lbtestcd, ctcae_term, direction, grade, grade_reason, ctcae_version,
                day)""", {"s": study, "c": cut})
        assert con.execute("SELECT count(*) FROM lab_toxicity_terms").fetchone()[0] == terms + 1
        assert con.execute("SELECT count(*) FROM lab_toxicity_reasons").fetchone()[0] == reasons + 1
        got = con.execute("SELECT lbseq, ctcae_term, direction, grade, grade_reason FROM lab_toxicity "
                          "WHERE usubjid = 'X-1' ORDER BY lbseq").fetchall()
        assert got == [(1, "Anemia", "L", 3, "value < 80"), (2, "Anemia", "L", 1, "a reason no load gives"),
                       (3, "A term of its own", "H", 2, "value < 80")]
        anemia = con.execute("SELECT DISTINCT term_id FROM lab_toxicity_records r JOIN lab_toxicity_terms t "
                             "USING (studyid, data_cut, term_id) WHERE t.ctcae_term = 'Anemia'").fetchall()
        assert len(anemia) == 1  # the derived records and the hand-made ones share the cut's Anemia id
    finally:
        con.close()

"""lab_toxicity is a view over its stored records, terms and reasons: the rows a load's view shows are those
grade_labs computes, a file that kept lab_toxicity as a table (or in the earlier storage tables) keeps every
snapshot's grades when it is next loaded, reloading a cut replaces its grades only, and whole rows stored by hand
get the ids of the terms and reasons their cut already has."""
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


def _as_a_whole_table(con) -> None:
    """The file as celltox wrote it before the storage tables: lab_toxicity a table of whole rows."""
    con.execute("CREATE TABLE _whole AS SELECT * FROM lab_toxicity")
    con.execute("DROP VIEW lab_toxicity")
    for t in ("lab_toxicity_records", "lab_toxicity_terms", "lab_toxicity_reasons"):
        con.execute(f"DROP TABLE {t}")
    con.execute("ALTER TABLE _whole RENAME TO lab_toxicity")
    # a text an earlier file holds as it reads, the unit reason among them
    con.execute("UPDATE lab_toxicity SET grade_reason = 'unit mg/dL not g/L' "
                "WHERE lbseq = (SELECT min(lbseq) FROM lab_toxicity WHERE ctcae_term = 'Anemia')")


def _with_records_keyed_by_cut(con) -> None:
    """The file as celltox wrote it before lab_term_id: every record carried its study, cut, test, unit and
    term_id, and the terms were one row per term of the cut."""
    con.execute("""CREATE TABLE _records AS SELECT t.studyid, t.data_cut, r.usubjid, r.lbseq, t.lbtestcd,
                       t.term_id, r.value, t.unit, r.lln, r.uln, r.baseline_value, r.baseline_high, r.is_baseline,
                       r.grade, r.reason_id, r.day, r.lab_date
                   FROM lab_toxicity_records r JOIN lab_toxicity_terms t USING (lab_term_id)""")
    con.execute("""CREATE TABLE _terms AS SELECT DISTINCT studyid, data_cut, term_id, ctcae_term, direction,
                       unit_check, ctcae_version FROM lab_toxicity_terms""")
    con.execute("DROP VIEW lab_toxicity")
    con.execute("DROP TABLE lab_toxicity_records")
    con.execute("DROP TABLE lab_toxicity_terms")
    con.execute("ALTER TABLE _records RENAME TO lab_toxicity_records")
    con.execute("ALTER TABLE _terms RENAME TO lab_toxicity_terms")
    con.execute("""CREATE VIEW lab_toxicity AS
        SELECT r.studyid, r.data_cut, r.usubjid, r.lbseq, r.lbtestcd, t.ctcae_term, t.direction, r.value, r.unit,
               r.lln, r.uln, r.baseline_value, r.baseline_high, r.is_baseline, r.grade,
               CASE WHEN r.reason_id = -3 THEN 'unit ' || r.unit || ' not ' || t.unit_check
                    ELSE g.grade_reason END AS grade_reason, t.ctcae_version, r.day, r.lab_date
        FROM lab_toxicity_records r
        JOIN lab_toxicity_terms t ON t.studyid = r.studyid AND t.data_cut = r.data_cut AND t.term_id = r.term_id
        LEFT JOIN lab_toxicity_reasons g ON g.studyid = r.studyid AND g.data_cut = r.data_cut
         AND g.reason_id = r.reason_id""")


@pytest.mark.parametrize("earlier", [_as_a_whole_table, _with_records_keyed_by_cut], ids=lambda f: f.__name__[1:])
def test_a_file_an_earlier_celltox_wrote_keeps_every_snapshot(cd56_db, tmp_path, earlier):
    db, study, cut = cd56_db
    old = _copy(db, tmp_path)
    cols = ", ".join(schema.get_table("lab_toxicity").column_names)
    con = duckdb.connect(str(old))
    try:
        worst = _rows(con, "SELECT * FROM lab_worst_grades")
        earlier(con)
        before = _rows(con, f"SELECT {cols} FROM lab_toxicity")
        assert len(before) == 11633
    finally:
        con.close()
    other = ingest_study(ITNK, old)  # another study into the same file
    con = duckdb.connect(str(old), read_only=True)
    try:
        assert con.execute("SELECT table_type FROM information_schema.tables "
                           "WHERE table_name = 'lab_toxicity'").fetchone()[0] == "VIEW"
        assert "lab_term_id" in {r[0] for r in con.execute("DESCRIBE lab_toxicity_records").fetchall()}
        assert _rows(con, f"SELECT {cols} FROM lab_toxicity WHERE studyid = $s", {"s": study}) == before
        assert _rows(con, "SELECT * FROM lab_worst_grades WHERE studyid = $s", {"s": study}) == worst
        assert con.execute("SELECT count(*) FROM lab_toxicity WHERE studyid = $s",
                           {"s": other.studyid}).fetchone()[0] > 0
        assert not {"_stored_lab_toxicity", "_records", "_terms"} & {
            r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        # every lab_term_id names one study and cut
        ids = con.execute("SELECT count(*), count(DISTINCT lab_term_id) FROM lab_toxicity_terms").fetchone()
        assert ids[0] == ids[1]
    finally:
        con.close()


def test_reloading_a_cut_replaces_its_grades_and_leaves_the_other_studys(cd56_db, tmp_path):
    db, study, cut = cd56_db
    path = _copy(db, tmp_path)
    other = ingest_study(ITNK, path)
    con = duckdb.connect(str(path), read_only=True)
    try:
        counts = dict(con.execute("SELECT studyid, count(*) FROM lab_toxicity GROUP BY ALL").fetchall())
        records = con.execute("SELECT count(*) FROM lab_toxicity_records").fetchone()[0]
    finally:
        con.close()
    assert counts[study] == 11633 and counts[other.studyid] > 0
    assert records == counts[study] + counts[other.studyid]
    ingest_study(CD56, path)  # the same study and cut again
    con = duckdb.connect(str(path), read_only=True)
    try:
        assert dict(con.execute("SELECT studyid, count(*) FROM lab_toxicity GROUP BY ALL").fetchall()) == counts
        # the replaced cut's records went with it: none is left without its key
        assert con.execute("SELECT count(*) FROM lab_toxicity_records").fetchone()[0] == records
        assert con.execute("SELECT count(*) FROM lab_toxicity_records WHERE lab_term_id NOT IN "
                           "(SELECT lab_term_id FROM lab_toxicity_terms)").fetchone()[0] == 0
    finally:
        con.close()


def test_rows_stored_by_hand_take_the_ids_their_cut_already_has(cd56_db, tmp_path):
    db, study, cut = cd56_db
    con = duckdb.connect(str(_copy(db, tmp_path)))
    try:
        keys = con.execute("SELECT count(*) FROM lab_toxicity_terms").fetchone()[0]
        reasons = con.execute("SELECT count(*) FROM lab_toxicity_reasons").fetchone()[0]
        schema.store_view_rows(con, schema.get_table("lab_toxicity"), """
            SELECT * FROM (VALUES ($s, $c, 'X-1', 1, 'HGB', 'Anemia', 'L', 3, 'value < 80', '5.0', 5),
                                  ($s, $c, 'X-1', 2, 'HGB', 'Anemia', 'L', 1, 'a reason no load gives', '5.0', 6),
                                  ($s, $c, 'X-1', 3, 'ZZZ', 'A term of its own', 'H', 2, 'value < 80', '5.0', 7))
              v(studyid, data_cut, usubjid, lbseq, lbtestcd, ctcae_term, direction, grade, grade_reason, ctcae_version,
                day)""", {"s": study, "c": cut})
        # HGB without a unit and ZZZ are new keys; the reason no load gives is a new reason
        assert con.execute("SELECT count(*) FROM lab_toxicity_terms").fetchone()[0] == keys + 2
        assert con.execute("SELECT count(*) FROM lab_toxicity_reasons").fetchone()[0] == reasons + 1
        got = con.execute("SELECT lbseq, ctcae_term, direction, grade, grade_reason FROM lab_toxicity "
                          "WHERE usubjid = 'X-1' ORDER BY lbseq").fetchall()
        assert got == [(1, "Anemia", "L", 3, "value < 80"), (2, "Anemia", "L", 1, "a reason no load gives"),
                       (3, "A term of its own", "H", 2, "value < 80")]
        anemia = con.execute("SELECT DISTINCT term_id FROM lab_toxicity_terms WHERE studyid = $s AND data_cut = $c "
                             "AND ctcae_term = 'Anemia'", {"s": study, "c": cut}).fetchall()
        assert len(anemia) == 1  # the derived records and the hand-made ones share the cut's Anemia term
        ids = con.execute("SELECT count(*), count(DISTINCT lab_term_id) FROM lab_toxicity_terms").fetchone()
        assert ids[0] == ids[1] == keys + 2
    finally:
        con.close()

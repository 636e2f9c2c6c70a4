"""toxicity_daily_grades is a view over crs_grades, icans_grades and toxicity_episodes: a load writes none of its
rows, and a database whose earlier celltox stored them as a table gets the view on its next load."""
from __future__ import annotations

from pathlib import Path

import duckdb

from safety.ingest import ingest_study

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "sample_data" / "car_t_cd56"
MIXED = ROOT / "sample_data" / "car_itnk"  # CRS from bedside assessments for most subjects, from AEs for some


def _kind(con) -> str:
    return con.execute("SELECT table_type FROM information_schema.tables "
                       "WHERE table_name = 'toxicity_daily_grades'").fetchone()[0]


def _days(con) -> list[tuple]:
    return con.execute("SELECT * FROM toxicity_daily_grades ORDER BY ALL").fetchall()


def test_a_load_makes_the_daily_grades_a_view_with_assessed_and_reported_days(tmp_path):
    db = tmp_path / "study.duckdb"
    ingest_study(MIXED, db)
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert _kind(con) == "VIEW"
        by_source = dict(con.execute("SELECT source, count(*) FROM toxicity_daily_grades GROUP BY ALL").fetchall())
        # assessed days: one per subject and day with a graded assessment, as crs_grades and icans_grades hold them
        assessed = con.execute("SELECT (SELECT count(DISTINCT (usubjid, day)) FROM crs_grades WHERE day IS NOT NULL)"
                               " + (SELECT count(DISTINCT (usubjid, day)) FROM icans_grades WHERE day IS NOT NULL)"
                               ).fetchone()[0]
        assert by_source["assessments"] == assessed > 0
        # every day of each reported-AE episode, at most its first 365
        reported = con.execute("SELECT sum(least(last_symptomatic_day - onset_day, 365) + 1) FROM toxicity_episodes "
                               "WHERE source = 'reported AE'").fetchone()[0]
        assert by_source["reported AE"] == reported > 0
    finally:
        con.close()


def test_a_file_that_stored_the_daily_grades_as_a_table_gets_the_view_with_the_same_rows(tmp_path):
    db = tmp_path / "study.duckdb"
    ingest_study(STUDY, db)
    con = duckdb.connect(str(db))
    try:
        expected = _days(con)
        # as an earlier celltox wrote it: a table of the same rows
        con.execute("CREATE TABLE _stored AS SELECT * FROM toxicity_daily_grades")
        con.execute("DROP VIEW toxicity_daily_grades")
        con.execute("ALTER TABLE _stored RENAME TO toxicity_daily_grades")
        assert _kind(con) == "BASE TABLE"
    finally:
        con.close()
    ingest_study(STUDY, db)  # the same study and cut again: the snapshot is replaced
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert _kind(con) == "VIEW"
        assert _days(con) == expected and len(expected) > 0
    finally:
        con.close()

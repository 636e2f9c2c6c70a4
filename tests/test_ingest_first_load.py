"""A first load into a new file and a reload into the same file hold the same snapshot; only a load that deleted
rows keeps the checkpoint's vacuum; a study whose every infused subject has CRS and ICANS assessment files gets no
rows built from SDTM and keeps the files' ids."""
from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

import safety.ingest
from safety import schema
from safety.ingest import ingest_study

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "sample_data" / "car_t_cd56"


def counts(db: Path) -> dict[str, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        present = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        return {t.name: con.execute(f"SELECT count(*) FROM {t.name}").fetchone()[0]
                for t in schema.all_tables() if t.name in present}
    finally:
        con.close()


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    db = tmp_path_factory.mktemp("first") / "study.duckdb"
    first = ingest_study(STUDY, db)
    return db, first, counts(db)


def test_a_reload_into_the_file_replaces_the_first_snapshot_row_for_row(loaded):
    db, first, before = loaded
    assert before["labs"] == 10180 and before["subjects"] == 23 and before["lab_toxicity"] == 11633
    assert before["load_log"] == 15 and before["studies"] == 1
    second = ingest_study(STUDY, db)
    after = counts(db)
    assert second.data_cut == first.data_cut and second.load_id != first.load_id
    assert after == before
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT DISTINCT load_id FROM load_log").fetchall() == [(second.load_id,)]
        assert con.execute("SELECT sum(rows_read), sum(rows_loaded) FROM load_log").fetchone() == (14272, 14272)
    finally:
        con.close()


def test_only_a_load_that_deleted_rows_keeps_the_checkpoints_vacuum(tmp_path, monkeypatch):
    skipped = []
    skip = safety.ingest.skip_vacuum
    monkeypatch.setattr(safety.ingest, "skip_vacuum", lambda con: (skipped.append(1), skip(con)))
    db = tmp_path / "study.duckdb"
    cut = ingest_study(STUDY, db).data_cut  # a new file
    assert len(skipped) == 1
    ingest_study(STUDY, db)  # the same cut again: its earlier rows are deleted, and the vacuum reclaims them
    assert len(skipped) == 1
    earlier = ingest_study(STUDY, db, cutoff="2026-03-31")  # a cut the file does not hold: nothing deleted
    assert earlier.data_cut < cut and len(skipped) == 2
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT data_cut FROM studies ORDER BY 1").fetchall() == [(earlier.data_cut,), (cut,)]
        assert con.execute("SELECT count(*) FROM subjects WHERE data_cut = $1", [cut]).fetchone() == (23,)
    finally:
        con.close()


def test_assessment_files_for_every_subject_build_nothing_from_sdtm(loaded):
    db, first, _ = loaded
    assert first.built_from_sdtm == {"crs_assessments": 0, "icans_assessments": 0}
    con = duckdb.connect(str(db), read_only=True)
    try:
        for table, n in (("crs_assessments", 331), ("icans_assessments", 325)):
            assert con.execute(f"SELECT source, count(*), min(assessment_id), max(assessment_id) FROM {table} "
                               "GROUP BY source").fetchall() == [("assessment file", n, 1, n)]
    finally:
        con.close()

"""The load frees each domain's in-memory staging table once the domain is loaded and counted, so a large LB does
not stay in memory beside the rest of the load; the rows loaded and quarantined are unchanged."""
from __future__ import annotations

from pathlib import Path

import duckdb

from safety.ingest import engine, ingest_study

ROOT = Path(__file__).resolve().parents[1]
TWIN = ROOT / "sample_data" / "twins" / "car_itnk_sdtm"  # every SDTM domain, with SUPPAE, SUPPCM and SUPPDM


def test_only_dms_staging_table_is_left_when_the_subjects_are_built(tmp_path, monkeypatch):
    seen = []
    build_subjects = engine.load_subjects

    def spy(ctx, *args, **kwargs):
        seen.extend(r[0] for r in ctx.con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE temporary AND (starts_with(table_name, '_t_') "
            "OR starts_with(table_name, '_sp_')) ORDER BY 1").fetchall())
        return build_subjects(ctx, *args, **kwargs)

    monkeypatch.setattr(engine, "load_subjects", spy)
    db = tmp_path / "twin.duckdb"
    result = ingest_study(TWIN, db, run_derivations=False)

    # the subjects table reads DM's staging (with SUPPDM's qualifiers); LB, AE, CM ... and their SUPP-- tables
    # are gone by then
    assert seen == ["_sp_DM", "_t_DM", "_t_SUPPDM"]
    con = duckdb.connect(str(db), read_only=True)
    try:
        labs, quarantined = con.execute(
            "SELECT (SELECT count(*) FROM labs), (SELECT count(*) FROM quarantine)").fetchone()
    finally:
        con.close()
    assert labs == next(f.rows_loaded for f in result.files if f.domain == "LB") > 0
    assert quarantined == result.quarantined
    assert {f.domain for f in result.files} >= {"LB", "AE", "SUPPAE", "SUPPCM", "SUPPDM"}

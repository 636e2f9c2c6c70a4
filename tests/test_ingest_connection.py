"""The load's connection: what its cursors write lands in the snapshot file, in the load's row groups; without the
vacuum a checkpoint leaves the partly filled row groups of several inserts as they are."""
from __future__ import annotations

import duckdb

from safety.ingest.connection import connect_load, skip_vacuum


def test_a_cursor_of_a_cursor_writes_into_the_snapshot_file_in_the_loads_row_groups(tmp_path):
    path = tmp_path / "study.duckdb"
    con = connect_load(path)
    derivation = con.cursor().cursor()  # as the pipeline's worker cursor hands one to a reader that opens its own
    derivation.execute("CREATE TABLE dlt_candidates AS SELECT range AS i FROM range(40000)")
    derivation.close()
    con.execute("CHECKPOINT")
    con.close()

    plain = duckdb.connect(str(path), read_only=True)
    try:
        assert plain.execute("SELECT count(*), max(i) FROM dlt_candidates").fetchone() == (40000, 39999)
        groups = plain.execute("SELECT row_group_id, max(count) FROM pragma_storage_info('dlt_candidates') "
                               "WHERE segment_type = 'BIGINT' GROUP BY ALL ORDER BY 1").fetchall()
    finally:
        plain.close()
    assert [n for _, n in groups] == [30_720, 40_000 - 30_720]


def test_the_load_database_is_the_default_of_every_cursor(tmp_path):
    con = connect_load(tmp_path / "study.duckdb")
    try:
        con.execute("CREATE TABLE subjects (usubjid VARCHAR)")
        cur = con.cursor().cursor()
        # unqualified names and the 'main' schema both resolve in the snapshot, as readers write them
        assert cur.execute("SELECT count(*) FROM subjects").fetchone() == (0,)
        assert cur.execute("SELECT count(*) FROM main.subjects").fetchone() == (0,)
        assert cur.execute("SELECT table_name FROM duckdb_tables() WHERE NOT temporary").fetchall() == [("subjects",)]
        # a load that spills does so beside the file, as a plain connection to it would
        assert cur.execute("SELECT current_setting('temp_directory')").fetchone() == (f"{tmp_path / 'study.duckdb'}.tmp",)
    finally:
        con.close()


def test_without_the_vacuum_the_checkpoint_keeps_the_partly_filled_row_groups_of_two_inserts(tmp_path):
    def row_groups(skip: bool) -> tuple[list[int], tuple]:
        path = tmp_path / f"skip_{skip}.duckdb"
        con = connect_load(path)
        if skip:
            skip_vacuum(con)
        con.execute("CREATE TABLE toxicity_episodes (i BIGINT)")
        for start in (0, 40_000):  # one syndrome, then the other: each insert ends in a partly filled row group
            con.execute("INSERT INTO toxicity_episodes SELECT range FROM range($1, $1 + 40000)", [start])
        con.execute("CHECKPOINT")
        con.close()
        plain = duckdb.connect(str(path), read_only=True)
        try:
            groups = plain.execute("SELECT row_group_id, max(count) FROM pragma_storage_info('toxicity_episodes') "
                                   "WHERE segment_type = 'BIGINT' GROUP BY ALL ORDER BY 1").fetchall()
            rows = plain.execute("SELECT count(*), sum(i) FROM toxicity_episodes").fetchone()
        finally:
            plain.close()
        return [n for _, n in groups], rows

    # the same rows either way; DuckDB's vacuum merges the two partly filled groups in the checkpoint
    assert row_groups(skip=True) == ([30_720, 9_280, 30_720, 9_280], (80_000, 3_199_960_000))
    assert row_groups(skip=False) == ([30_720, 30_720, 18_560], (80_000, 3_199_960_000))

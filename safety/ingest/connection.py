"""The connection a load writes through: the snapshot file attached with the load's storage settings.

DuckDB writes an insert of at least one row group straight to the file while the statement runs (on every
core), and keeps a smaller one in its write-ahead log until a checkpoint compresses it, on one core, at the
first commit made with no other write open: at the end of the load, after the DLT screening, when nothing else
is left to run beside it. With DuckDB's default row groups of 122,880 rows, the CRS/ICANS episodes, the DLT
candidates and the lab screens of a 20,000-subject study were of the second kind: 0.35-0.5 s of checkpoint on one
core at the end. With row groups of 30,720 rows they are written as they are built; the tables of a trial-sized
study are small enough for the log either way.
Measured in docs/performance-history.md ("The previous round (seventh pass)").

A load that deleted no rows (a new file, a new cut) skips the checkpoint's vacuum (:func:`skip_vacuum`).

The size is a setting of the attachment, not of the file (a later plain ``duckdb.connect`` writes DuckDB's
default again), so the load attaches the file under its own name (safety/core/attached.py); every cursor, and a
cursor's cursor (the derivations open their own), starts in that file as a plain connection to it would.
A plain connection's first checkpoint can regroup the tables into DuckDB's default size: at 20,000 subjects
it regrouped all of them, 4.3 s and a file of 289 MB instead of 160 MB (``bench_write_cost.py
--plain-writer``). Outside a load the product only reads the file (the sample database's demo decisions
aside: their few rows left its row groups as they were), and docs/input-format.md asks other programs to open
it read-only.
"""
from __future__ import annotations

from pathlib import Path

from safety.core.attached import AttachedConnection

LOAD_DATABASE = "celltox_load"  # the name the snapshot is attached under during a load
LOAD_ROW_GROUP_SIZE = 30_720  # rows per row group written by a load (DuckDB's default: 122,880)


def connect_load(path: Path) -> AttachedConnection:
    """Open the snapshot file at ``path`` (created when missing) for a load, with the load's row group size."""
    # temp_directory: where a plain connection to the file would spill, not '.tmp' in whatever folder the load
    # runs from
    return AttachedConnection.attach(path, LOAD_DATABASE, f"ROW_GROUP_SIZE {LOAD_ROW_GROUP_SIZE}",
                                     ("SET temp_directory = $dir",), {"dir": f"{path}.tmp"})


def skip_vacuum(con) -> None:
    """No vacuum at this load's checkpoints: for a load that deleted no rows.

    A checkpoint's vacuum reclaims deleted rows by rewriting the row groups that hold them, and merges neighbouring
    row groups that are partly filled into fewer. A load that deleted nothing leaves only the second kind: the last
    row group of each insert into a table, and of each thread of a parallel insert (at 20,000 subjects the CRS/ICANS
    episodes, written one syndrome at a time, and their biomarkers: four row groups each, where three would do).
    Merging them took about 0.1 s on one core in the final checkpoint, when nothing else is left to run
    (docs/performance-history.md, "thirty-third pass"); readers do not notice one row group more. A reload,
    which deletes the cut's earlier rows, keeps DuckDB's vacuum. The setting is the load's own DuckDB instance's."""
    con.execute("SET max_vacuum_tasks = 0")

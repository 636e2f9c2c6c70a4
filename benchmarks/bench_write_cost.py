"""What writing a loaded table costs DuckDB, column by column: the floor under the load's two big inserts.

    python benchmarks/bench_write_cost.py --db benchmarks/out/load_20000_2000000.duckdb
                                          [--tables labs lab_toxicity_records] [--repeat 3] [--row-group-sizes]
                                          [--without COLUMN ...] [--storage] [--plain-writer]
                                          [--log-checkpoint]

The database is one a load wrote (``bench_load.py --keep`` leaves one). Each measure is the process CPU (user +
system, every DuckDB thread) of CREATE TABLE AS from that database into a new DuckDB file, with its CHECKPOINT,
the least of ``--repeat`` tries (the host is shared: the least is the work, the rest is other tenants):
  table        every column (DuckDB's default row groups of 122,880 rows)
  per column   the table of ``usubjid`` and that column, less the table of ``usubjid`` alone
  NULL columns ten all-NULL VARCHAR columns beside three real ones, less the three alone: what a column the
               delivery left empty (LBSPEC, VISIT ...) still costs to write
  compression  every column with DuckDB's string compression off (``disabled_compression_methods``)
  --row-group-sizes  the table written with other row group sizes (ATTACH ... ROW_GROUP_SIZE): the load's own
               (safety/ingest/connection.py) and larger ones
  --without    the table written without these columns (those it has): what a narrower table would save, e.g.
               lab_toxicity_records without the columns it repeats from labs (value lln uln day lab_date)
A view (lab_toxicity) given in --tables is written as a table of its rows: what storing them whole would cost.
  --storage    the table written in older storage versions (ATTACH ... STORAGE_VERSION, whose string
               compression is dictionary and FSST apart), and with the compression methods it never ends up
               using disabled (their analysis skipped; the same file)
  --plain-writer  what the first write through a plain ``duckdb.connect`` costs once a load has written the file:
               a copy of the database gets a one-row table and a CHECKPOINT; wall and CPU seconds, the row groups
               of each table before and after, the file's size
  --log-checkpoint  what the load's checkpoints compress, table by table: every table of the database with fewer
               rows than the load's row group (those DuckDB keeps in its write-ahead log until a checkpoint) is
               inserted alone into a new file attached as a load attaches it, then checkpointed; the log's MB and
               the checkpoint's wall and CPU seconds (least of ``--repeat``), beside a table written as it is built
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from safety.ingest.connection import LOAD_ROW_GROUP_SIZE  # noqa: E402


def write_cpu(src: Path, select: str, table: str, repeat: int, *, setting: str | None = None,
              attach_options: str = "") -> tuple[float, float]:
    """Least process CPU seconds of writing ``SELECT {select} FROM table`` into a new file, and that file's MB."""
    best, size = float("inf"), 0.0
    with tempfile.TemporaryDirectory(prefix="write_cost") as tmp:
        for _ in range(repeat):
            dst = Path(tmp) / "w.duckdb"
            dst.unlink(missing_ok=True)
            con = duckdb.connect()
            if setting:
                con.execute(setting)
            con.execute(f"ATTACH '{dst}' AS d" + (f" ({attach_options})" if attach_options else ""))
            con.execute(f"ATTACH '{src}' AS s (READ_ONLY)")
            con.execute(f"SELECT count(*) FROM s.{table}").fetchall()  # the source's metadata read outside the timing
            c0 = time.process_time()
            con.execute(f"CREATE TABLE d.t AS SELECT {select} FROM s.{table}")
            con.execute("CHECKPOINT d")
            best = min(best, time.process_time() - c0)
            con.close()
            size = os.path.getsize(dst) / 1e6
    return best, size


def one_table(src: Path, table: str, repeat: int, row_group_sizes: bool, without: list[str],
              storage: bool = False) -> None:
    con = duckdb.connect(str(src), read_only=True)
    cols = con.execute(f"SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? "
                       "ORDER BY column_index", [table]).fetchall()
    n_rows = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    nulls = {c for c, _ in cols if con.execute(f'SELECT count("{c}") FROM {table}').fetchone()[0] == 0}
    con.close()
    whole, mb = write_cpu(src, "*", table, repeat)
    print(f"\n{table}: {n_rows:,} rows, {len(cols)} columns ({len(nulls)} all NULL in this study): "
          f"{whole:.2f} CPU s, {mb:.0f} MB")
    base, _ = write_cpu(src, "usubjid", table, repeat)
    per_col = []
    for name, dtype in cols:
        if name == "usubjid":
            per_col.append((base, name, dtype))
            continue
        cpu, _ = write_cpu(src, f'usubjid, "{name}"', table, repeat)
        per_col.append((cpu - base, name, dtype))
    print("  column                 type       CPU s   (each beside usubjid, less usubjid alone)")
    for cpu, name, dtype in sorted(per_col, reverse=True):
        print(f"  {name:22s} {dtype:10s} {cpu:6.3f}{'  all NULL' if name in nulls else ''}")
    text = sum(c for c, _, t in per_col if t == "VARCHAR")
    print(f"  VARCHAR columns {text:.2f} CPU s of the columns' {sum(c for c, _, _ in per_col):.2f}")
    three = "lbseq, usubjid" if table in ("labs", "lab_toxicity", "lab_toxicity_records") else "usubjid"
    plain, _ = write_cpu(src, three, table, repeat)
    padded, _ = write_cpu(src, three + ", " + ", ".join(f"CAST(NULL AS VARCHAR) AS n{i}" for i in range(10)),
                          table, repeat)
    print(f"  ten all-NULL VARCHAR columns: {padded - plain:.3f} CPU s ({(padded - plain) / 10 * 1000:.0f} ms each)")
    off, mb_off = write_cpu(src, "*", table, repeat, setting="SET disabled_compression_methods = 'dict_fsst,fsst'")
    print(f"  string compression off: {off:.2f} CPU s, {mb_off:.0f} MB (on: {whole:.2f} CPU s, {mb:.0f} MB)")
    left_out = [c for c, _ in cols if c in without]
    if left_out:
        kept = ", ".join(f'"{c}"' for c, _ in cols if c not in without)
        cpu, mb_w = write_cpu(src, kept, table, repeat)
        print(f"  without {', '.join(left_out)}: {cpu:.2f} CPU s, {mb_w:.0f} MB (every column: {whole:.2f} CPU s)")
    if row_group_sizes:
        for rgs in (LOAD_ROW_GROUP_SIZE, 245_760, 491_520, 983_040):
            cpu, mb_r = write_cpu(src, "*", table, repeat, attach_options=f"ROW_GROUP_SIZE {rgs}")
            print(f"  row groups of {rgs:,} rows: {cpu:.2f} CPU s, {mb_r:.0f} MB (122,880: {whole:.2f} CPU s)")
    if storage:
        for version in ("v1.0.0", "v1.2.0"):
            cpu, mb_v = write_cpu(src, "*", table, repeat, attach_options=f"STORAGE_VERSION '{version}'")
            print(f"  storage version {version}: {cpu:.2f} CPU s, {mb_v:.0f} MB (this DuckDB's: {whole:.2f} CPU s)")
        con = duckdb.connect(str(src), read_only=True)
        used = {c.lower() for (c,) in con.execute("SELECT DISTINCT compression FROM pragma_storage_info($t)",
                                                  {"t": table}).fetchall()}
        con.close()
        unused = [m for m in ("alprd", "chimp", "patas", "zstd", "fsst", "dictionary", "rle", "roaring", "bitpacking")
                  if m not in used]
        cpu, mb_u = write_cpu(src, "*", table, repeat,
                              setting=f"SET disabled_compression_methods = '{','.join(unused)}'")
        print(f"  compression methods it does not use disabled ({', '.join(unused)}): {cpu:.2f} CPU s, {mb_u:.0f} MB "
              f"(all enabled: {whole:.2f} CPU s)")


def plain_writer(src: Path) -> None:
    """The first write through a plain connection to a copy of ``src``: its checkpoint's cost and what it did."""
    def row_groups(con) -> dict[str, int]:
        return {t: con.execute("SELECT count(DISTINCT row_group_id) FROM pragma_storage_info($t)",
                               {"t": t}).fetchone()[0]
                for (t,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE NOT temporary").fetchall()}
    with tempfile.TemporaryDirectory(prefix="plain_writer") as tmp:
        dst = Path(tmp) / "copy.duckdb"
        shutil.copyfile(src, dst)
        con = duckdb.connect(str(dst))
        before, mb_before = row_groups(con), os.path.getsize(dst) / 1e6
        con.execute("CREATE TABLE one_row AS SELECT 1 AS x")
        t0, c0 = time.perf_counter(), time.process_time()
        con.execute("CHECKPOINT")
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        after = row_groups(con)
        con.close()
        mb_after = os.path.getsize(dst) / 1e6
    print(f"\nfirst write through a plain connection (a one-row table, then CHECKPOINT): {wall:.2f} s wall, "
          f"{cpu:.2f} CPU s; file {mb_before:.0f} MB -> {mb_after:.0f} MB")
    for t in sorted(before, key=lambda t: -before[t])[:6]:
        print(f"  {t:24s} row groups {before[t]:4d} -> {after.get(t, 0):4d}")


def log_checkpoint(src: Path, repeat: int) -> None:
    """The checkpoint's cost of each table that a load leaves in the write-ahead log (fewer rows than a row group)."""
    con = duckdb.connect(str(src), read_only=True)
    sizes = con.execute("SELECT table_name, estimated_size FROM duckdb_tables() WHERE NOT temporary "
                        "AND estimated_size > 0 ORDER BY estimated_size DESC").fetchall()
    con.close()
    in_log = [(t, n) for t, n in sizes if n < LOAD_ROW_GROUP_SIZE]
    built = [(t, n) for t, n in sizes if n >= LOAD_ROW_GROUP_SIZE]
    print(f"\ncheckpoint of each table alone (row groups of {LOAD_ROW_GROUP_SIZE:,} rows, as a load writes them):")
    print(f"  {'table':28s} {'rows':>8s} {'log MB':>8s} {'wall ms':>8s} {'CPU ms':>7s}")
    total = 0.0
    for table, n_rows in in_log + built[-1:]:  # and the smallest table written as it is built, for comparison
        best_wall, best_cpu, log_mb = float("inf"), float("inf"), 0.0
        with tempfile.TemporaryDirectory(prefix="log_checkpoint") as tmp:
            for _ in range(repeat):
                dst = Path(tmp) / "c.duckdb"
                wal = Path(f"{dst}.wal")
                for f in (dst, wal):
                    f.unlink(missing_ok=True)
                con = duckdb.connect()
                con.execute("SET checkpoint_threshold = '100GB'")  # nothing checkpoints before the one timed
                con.execute(f"ATTACH '{dst}' AS d (ROW_GROUP_SIZE {LOAD_ROW_GROUP_SIZE})")
                con.execute(f"ATTACH '{src}' AS s (READ_ONLY)")
                con.execute(f"CREATE TABLE d.t AS SELECT * FROM s.{table} LIMIT 0")
                con.execute("CHECKPOINT d")
                con.execute(f"INSERT INTO d.t SELECT * FROM s.{table}")
                log_mb = wal.stat().st_size / 1e6 if wal.exists() else 0.0
                t0, c0 = time.perf_counter(), time.process_time()
                con.execute("CHECKPOINT d")
                best_wall = min(best_wall, time.perf_counter() - t0)
                best_cpu = min(best_cpu, time.process_time() - c0)
                con.close()
        if n_rows < LOAD_ROW_GROUP_SIZE:
            total += best_cpu
        print(f"  {table:28s} {n_rows:8,d} {log_mb:8.1f} {best_wall * 1000:8.0f} {best_cpu * 1000:7.0f}"
              + ("" if n_rows < LOAD_ROW_GROUP_SIZE else "  (written as it is built)"))
    print(f"  the tables kept in the log: {total:.2f} CPU s of checkpoint")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", type=Path, default=ROOT / "benchmarks" / "out" / "load_20000_2000000.duckdb",
                    help="a database a load wrote (bench_load.py --keep)")
    ap.add_argument("--tables", nargs="+", default=["labs", "lab_toxicity_records"])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--row-group-sizes", action="store_true")
    ap.add_argument("--without", nargs="+", default=[], metavar="COLUMN")
    ap.add_argument("--storage", action="store_true")
    ap.add_argument("--plain-writer", action="store_true")
    ap.add_argument("--log-checkpoint", action="store_true")
    a = ap.parse_args()
    if not a.db.exists():
        raise SystemExit(f"error: {a.db} does not exist: load a study first "
                         "(python benchmarks/bench_load.py --rounds 1 --no-steps --keep)")
    print(f"{a.db}; load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    if a.log_checkpoint:
        log_checkpoint(a.db, a.repeat)
        return
    for table in a.tables:
        one_table(a.db, table, a.repeat, a.row_group_sizes, a.without, a.storage)
    if a.plain_writer:
        plain_writer(a.db)


if __name__ == "__main__":
    main()

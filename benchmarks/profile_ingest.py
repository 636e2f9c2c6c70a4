"""Where a load's time goes, statement by statement: one in-process `ingest_study` with every DuckDB call timed.

    python benchmarks/profile_ingest.py [sample_data/car_t_cd56] [--top 30] [--log statements.tsv]
                                        [--cutoff YYYY-MM-DD] [--no-derivations] [--one-at-a-time]
                                        [--cores-every 0.25] [--row-group-size N]
                                        [--setting "SET name = value" ...]

For each call: when it started (seconds into the load), its wall time, the CPU time of the calling thread (DuckDB
binds and plans a statement on that thread, so on small tables this is mostly planning) and the thread (the load,
or a derivation's worker). Prints the totals per thread and the most expensive statements; ``--log`` writes every
call as tab-separated text. Compare runs by CPU time: on a shared machine the wall time of one call varies more.

``--one-at-a-time``: where the load's CPU goes. The derivations run one after the other once the ingest is done
(none beside it, none beside another), so a call's CPU is the whole process's CPU while it ran (every DuckDB
thread, and the thread that imports the derivations' libraries early in the ingest); prints each derivation's
total and the most expensive calls. Beside `bench_load.py`'s floor (the CPU of writing the finished `labs` and
`lab_toxicity`), it shows what each statement adds to writing its rows.

``--cores-every S``: how many cores the load kept busy, every S seconds (the process's CPU time over that
interval); a load that keeps every core busy throughout can only get faster by needing less CPU.

``--row-group-size N``: the load writes row groups of N rows instead of its own size
(``safety.ingest.connection.LOAD_ROW_GROUP_SIZE``), to compare sizes.

``--setting SQL``: run this statement on the load's connection as soon as it is open (repeatable), to compare a
DuckDB setting the load does not make, e.g. ``--setting "SET write_buffer_row_group_count = 20"``.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import safety.ingest  # noqa: E402
import safety.core.attached  # noqa: E402
import safety.ingest.connection  # noqa: E402

CALLS: list[tuple[float, float, float, str, str]] = []  # (start, wall, cpu, thread or derivation, sql)
CPU_CLOCK = time.thread_time  # time.process_time with --one-at-a-time
RUNNING: list[str | None] = [None]  # the derivation running, with --one-at-a-time


class TimedConnection:
    """A DuckDB connection whose execute/executemany/sql calls (and those of its cursors) are timed."""

    def __init__(self, con):
        self._con = con

    def __getattr__(self, name):
        return getattr(self._con, name)

    def _timed(self, method: str, sql, *args, **kwargs):
        t0, c0 = time.perf_counter(), CPU_CLOCK()
        try:
            return getattr(self._con, method)(sql, *args, **kwargs)
        finally:
            CALLS.append((t0, time.perf_counter() - t0, CPU_CLOCK() - c0, RUNNING[0] or threading.current_thread().name,
                          " ".join(str(sql).split())))

    def execute(self, sql, *args, **kwargs):
        return self._timed("execute", sql, *args, **kwargs)

    def executemany(self, sql, *args, **kwargs):
        return self._timed("executemany", sql, *args, **kwargs)

    def sql(self, sql, *args, **kwargs):
        return self._timed("sql", sql, *args, **kwargs)

    def cursor(self):
        return TimedConnection(self._con.cursor())


def _with_settings(statements: list[str]) -> None:
    """Make the load's connection run ``statements`` as soon as it is open."""
    connect_load = safety.ingest.connect_load

    def connect_with_settings(path):
        con = connect_load(path)
        for sql in statements:
            con.execute(sql)
        return con
    safety.ingest.connect_load = connect_with_settings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("study", nargs="?", type=Path, default=ROOT / "sample_data" / "car_t_cd56")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--log", type=Path, help="write every call (start, wall ms, cpu ms, thread, SQL) here")
    ap.add_argument("--cutoff", help="the data cut (YYYY-MM-DD)")
    ap.add_argument("--no-derivations", action="store_true", help="the ingest step only")
    ap.add_argument("--one-at-a-time", action="store_true",
                    help="derivations one after the other after the ingest; each call's CPU is the process's")
    ap.add_argument("--cores-every", type=float, metavar="S",
                    help="print the cores in use (process CPU / wall) over every S seconds of the load")
    ap.add_argument("--row-group-size", type=int, metavar="N",
                    help=f"row groups of N rows (the load's own: {safety.ingest.connection.LOAD_ROW_GROUP_SIZE:,})")
    ap.add_argument("--setting", action="append", default=[], metavar="SQL",
                    help="a statement run on the load's connection once it is open (repeatable)")
    a = ap.parse_args()
    if a.row_group_size:
        safety.ingest.connection.LOAD_ROW_GROUP_SIZE = a.row_group_size
    if a.setting:
        _with_settings(a.setting)
    if a.one_at_a_time:
        _one_at_a_time()

    connect = duckdb.connect
    safety.core.attached.duckdb = type("duckdb_timed", (), {"connect": staticmethod(lambda *x, **k: TimedConnection(
        connect(*x, **k))), "Error": duckdb.Error})
    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def sample_cores() -> None:
        while not done.wait(a.cores_every):
            samples.append((time.perf_counter(), time.process_time()))

    with tempfile.TemporaryDirectory(prefix="profile_ingest") as tmp:
        t0, c0 = time.perf_counter(), time.process_time()
        samples.append((t0, c0))
        sampler = threading.Thread(target=sample_cores, daemon=True) if a.cores_every else None
        if sampler:
            sampler.start()
        safety.ingest.ingest_study(a.study, Path(tmp) / "study.duckdb", cutoff=a.cutoff,
                                   run_derivations=not a.no_derivations)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        done.set()
        if sampler:
            sampler.join()
    print(f"ingest_study {wall:.2f} s wall, {cpu:.2f} s CPU (process); {len(CALLS)} DuckDB calls, "
          f"{sum(c[1] for c in CALLS):.2f} s wall and {sum(c[2] for c in CALLS):.2f} s CPU of their threads summed")
    per_thread: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    for _, w, c, th, _ in CALLS:
        p = per_thread[th if a.one_at_a_time else th.split("_")[0]]  # a derivation, or a thread pool
        p[0] += 1
        p[1] += w
        p[2] += c
    for th, (n, w, c) in sorted(per_thread.items(), key=lambda x: -x[1][2] if a.one_at_a_time else 0):
        print(f"  {th:14s} {n:4d} calls  {w:6.2f} s wall  {c:6.2f} s CPU")
    print(f"the {a.top} most expensive calls by CPU (ms wall / ms CPU, thread, start s):")
    for t, w, c, th, sql in sorted(CALLS, key=lambda x: -x[2])[:a.top]:
        print(f"  {w * 1000:7.1f} {c * 1000:7.1f}  {th:15s} {t - t0:6.3f}  {sql[:100]}")
    if a.cores_every:
        print(f"cores in use, every {a.cores_every:g} s (seconds into the load: cores):")
        print("  " + "  ".join(f"{t1 - t0:.2f}: {(p1 - p0) / (t1 - t):.2f}"
                               for (t, p0), (t1, p1) in zip(samples, samples[1:])))
    if a.log:
        with open(a.log, "w", encoding="utf-8") as fh:
            for t, w, c, th, sql in CALLS:
                fh.write(f"{t - t0:.4f}\t{w * 1000:.2f}\t{c * 1000:.2f}\t{th}\t{sql}\n")


def _one_at_a_time() -> None:
    """No derivation beside the ingest or beside another; calls are charged the process's CPU and named after
    the derivation that made them ('ingest' otherwise)."""
    global CPU_CLOCK
    from safety.derive import graph, pipeline

    CPU_CLOCK = time.process_time
    RUNNING[0] = "ingest"

    def named(d: graph.Derivation) -> graph.Derivation:
        def run(con, *args, **kwargs):
            RUNNING[0] = d.name
            try:
                d.run(con, *args, **kwargs)
            finally:
                RUNNING[0] = "ingest"
        return graph.Derivation(d.name, d.writes, d.reads, run)

    pipeline.ORDER[:] = [named(d) for d in pipeline.ORDER]
    pipeline.ready_after = lambda tables: []  # nothing starts during the ingest
    run_derivations = pipeline.run_derivations
    pipeline.run_derivations = lambda *args, **kwargs: run_derivations(*args, **{**kwargs, "workers": 1})


if __name__ == "__main__":
    main()

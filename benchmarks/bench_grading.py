"""Benchmark: CTCAE lab grading of 10,000,000 lab rows in DuckDB (python benchmarks/bench_grading.py).

Generates a labs table in a temporary DuckDB file (vectorised, in SQL), then in the same run times
- a plain scan that materialises the same rows and columns as lab_toxicity, copied (scan_sql),
- grading with the exact rounding used in production ('guarded': admiral's signif(x, 15) result),
- grading with signif on both sides of every comparison ('signif') and with no rounding ('raw'),
and prints a Markdown section for docs/performance.md ("## CTCAE lab grading"). Scan and production
grading alternate --reps times (medians reported, wall and process CPU seconds, with the load average).
Options: --rows N (default 10,000,000), --threads T (default 2), --reps R (default 3), --no-modes,
--db PATH (reuse a labs table), --keep to keep the database.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import duckdb  # noqa: E402

from safety import schema  # noqa: E402
from safety.derive.grading import ctcae  # noqa: E402
from safety.derive.grading import rules as R  # noqa: E402

ADMIRAL_ROWS_PER_S = 85_000

# test code, unit, lln, uln, typical centre, spread (SI)
TESTS = [
    ("ALB", "g/L", 35, 50, 38, 8), ("ALP", "U/L", 40, 130, 100, 80), ("ALT", "U/L", 7, 40, 35, 60),
    ("AMYLASE", "U/L", 30, 110, 80, 60), ("APTT", "s", 25, 35, 32, 10), ("AST", "U/L", 8, 40, 35, 60),
    ("BILI", "umol/L", 3, 21, 15, 20), ("CA", "mmol/L", 2.15, 2.55, 2.3, 0.4), ("CAION", "mmol/L", 1.12, 1.32, 1.2, 0.25),
    ("CD4", "10^9/L", 0.5, 1.5, 0.5, 0.4), ("CHOL", "mmol/L", 3.0, 5.2, 5.0, 3.0), ("CK", "U/L", 30, 200, 150, 300),
    ("CREAT", "umol/L", 60, 110, 90, 60), ("FIBRINO", "g/L", 2.0, 4.0, 2.8, 1.2), ("GGT", "U/L", 8, 60, 50, 80),
    ("GLUC", "mmol/L", 3.9, 6.1, 5.0, 1.5), ("HAPTO", "g/L", 0.3, 2.0, 1.0, 0.8), ("HGB", "g/L", 120, 170, 110, 25),
    ("INR", "", 0.8, 1.2, 1.1, 0.5), ("K", "mmol/L", 3.5, 5.1, 4.2, 0.8), ("LDH", "U/L", 120, 250, 260, 200),
    ("LIPASE", "U/L", 10, 60, 50, 60), ("LYM", "10^9/L", 1.0, 4.0, 1.0, 1.5), ("MG", "mmol/L", 0.7, 1.0, 0.8, 0.2),
    ("NEUT", "10^9/L", 1.8, 7.5, 2.5, 2.5), ("PH", "", 7.35, 7.45, 7.4, 0.06), ("PLAT", "10^9/L", 150, 400, 120, 90),
    ("SODIUM", "mmol/L", 135, 145, 138, 6), ("TRIG", "mmol/L", 0.5, 1.7, 1.6, 1.5), ("URATE", "umol/L", 200, 420, 350, 120),
    ("WBC", "10^9/L", 4.0, 11.0, 4.5, 3.5),
    ("CRP", "mg/L", 0, 5, 20, 40), ("FERRITIN", "ug/L", 30, 400, 800, 1500),  # not CTCAE-graded
]


def build_labs(con, n: int) -> None:
    con.execute(schema.LABS.ddl())
    values = ", ".join(f"({i}, '{c}', '{u}', {lo}::DOUBLE, {hi}::DOUBLE, {m}::DOUBLE, {s}::DOUBLE)"
                       for i, (c, u, lo, hi, m, s) in enumerate(TESTS))
    con.execute("SELECT setseed(0.42)")
    # 5,000 subjects; day -14 .. 365; about 1 % missing values, 1 % missing LLN/ULN, 0.5 % urine,
    # 0.5 % missing units, values noisy around the test's centre and rounded as labs report them.
    con.execute(f"""
    INSERT INTO labs (studyid, data_cut, usubjid, lbseq, lbtestcd, lbcat, lbspec, value, unit, lln, uln,
                      lbnrind, lbblfl, day, lb_date)
    WITH t(k, code, unit, lln, uln, m, s) AS (VALUES {values}),
    r AS (SELECT i, i % {len(TESTS)} AS k, (i // {len(TESTS)}) AS j, random() AS u1, random() AS u2, random() AS u3
          FROM range({n}) r(i))
    SELECT 'BENCH', DATE '2026-01-01', 'BENCH-' || lpad(CAST(j % 5000 AS VARCHAR), 5, '0'),
           CAST(i // 5000 AS INTEGER), t.code,
           CASE WHEN u3 < 0.005 THEN 'URINALYSIS' ELSE 'CHEMISTRY' END,
           CASE WHEN u3 < 0.005 THEN 'URINE' WHEN u3 < 0.5 THEN 'SERUM' ELSE 'BLOOD' END,
           CASE WHEN u1 < 0.01 THEN NULL ELSE round(greatest(t.m + t.s * (u1 + u2 - 1.0) * 2.0, 0.01), 2) END,
           CASE WHEN u2 < 0.005 THEN NULL ELSE t.unit END,
           CASE WHEN u3 BETWEEN 0.6 AND 0.61 THEN NULL ELSE t.lln END,
           CASE WHEN u3 BETWEEN 0.7 AND 0.71 THEN NULL ELSE t.uln END,
           CASE WHEN u2 > 0.7 THEN 'HIGH' WHEN u2 < 0.2 THEN 'LOW' ELSE 'NORMAL' END,
           CASE WHEN (i // 5000) % 76 = 1 THEN 'Y' END,
           CAST((i // 5000) % 76 * 5 - 14 AS INTEGER),
           DATE '2025-01-01' + CAST((i // 5000) % 76 * 5 AS INTEGER)
    FROM r JOIN t USING (k)
    """)


def scan_sql(source: str = "labs") -> str:
    """The plain scan: the same rows as lab_toxicity (every blood lab record x each term its test
    maps to: the same blood predicate and the same LBTESTCD -> term join) and the same 19 stored
    columns with the same types, each copied from the record or the term map instead of computed:
    baseline_value = lln, baseline_high = (lbblfl IS NOT NULL), is_baseline = FALSE,
    grade = day, grade_reason = ctcae_term (a long, repeated text as the reasons are),
    ctcae_version = '5.0'. No baseline, grade or reason is computed."""
    rules = R.load_rules("5.0")
    terms = ", ".join(f"({ctcae._q(m.lbtestcd)}, {ctcae._q(m.ctcae_term)}, {ctcae._q(m.direction)})"
                      for m in R.load_lab_terms(rules))
    return f"""
WITH terms(lbtestcd, ctcae_term, direction) AS (VALUES {terms})
SELECT l.studyid, l.data_cut, l.usubjid, l.lbseq, l.lbtestcd, t.ctcae_term, t.direction, l.value, l.unit,
       l.lln, l.uln, l.lln AS baseline_value, l.lbblfl IS NOT NULL AS baseline_high, FALSE AS is_baseline,
       l.day AS grade, t.ctcae_term AS grade_reason, '5.0' AS ctcae_version, l.day, l.lb_date AS lab_date
FROM {source} l JOIN terms t ON t.lbtestcd = l.lbtestcd
WHERE {ctcae._BLOOD_SQL}"""


def timed(con, sql: str) -> tuple[float, float]:
    """Wall seconds and process CPU seconds (all DuckDB threads) of one statement."""
    t0, c0 = time.perf_counter(), time.process_time()
    con.execute(sql)
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3, help="runs of the scan and of production grading (median reported)")
    ap.add_argument("--no-modes", action="store_true", help="skip the signif / raw comparison runs")
    ap.add_argument("--db", help="reuse (or create) the labs table in this DuckDB file instead of a temporary one")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    if args.db:
        tmp, path = None, Path(args.db)
    else:
        tmp = tempfile.mkdtemp(prefix="celltox_bench_")
        path = Path(tmp) / "bench.duckdb"
    con = duckdb.connect(str(path))
    con.execute(f"SET threads = {args.threads}")
    threads = con.sql("SELECT current_setting('threads')").fetchall()[0][0]
    t0 = time.perf_counter()
    built = False
    have = con.sql("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'labs'").fetchall()[0][0]
    if not have or con.sql("SELECT count(*) FROM labs").fetchall()[0][0] != args.rows:
        con.execute("DROP TABLE IF EXISTS labs")
        build_labs(con, args.rows)
        con.execute("CHECKPOINT")
        built = True
    gen_s = time.perf_counter() - t0
    n = con.sql("SELECT count(*) FROM labs").fetchall()[0][0]

    sqls = {"scan": scan_sql("labs")}
    sqls.update({m: ctcae.grading_sql("labs", exact=m) for m in ("guarded", "signif", "raw")})
    runs: dict[str, list[tuple[float, float]]] = {}
    loads = []
    plan = [("scan", "guarded")] * args.reps + ([] if args.no_modes else [("raw", "signif")])
    # one warm-up of each, not reported; then scan and grading alternate so both see the same load
    for rep, names in enumerate([("scan", "guarded")] + plan):
        for name in names:
            con.execute("DROP TABLE IF EXISTS out_t")
            loads.append(os.getloadavg()[0])
            wall, cpu = timed(con, f"CREATE TABLE out_t AS {sqls[name]}")
            rows_out = con.sql("SELECT count(*) FROM out_t").fetchall()[0][0]
            if rep:
                runs.setdefault(name, []).append((wall, cpu))
            if name == "scan":
                scan_rows = rows_out
            elif name == "guarded":
                g_rows = rows_out
            print(f"rep {rep} {name:8s} {wall:6.2f} s wall {cpu:6.2f} s cpu  {rows_out:,} rows out  "
                  f"load {loads[-1]:.2f}", file=sys.stderr)
    con.execute("DROP TABLE IF EXISTS out_t")
    if scan_rows != g_rows:
        raise SystemExit(f"plain scan wrote {scan_rows:,} rows, grading {g_rows:,}: not the same rows")
    # exactness on the first tenth of the rows: production vs signif on both sides, and vs no rounding
    sub = "(SELECT * FROM labs WHERE lbseq < (SELECT max(lbseq) FROM labs) * 0.1 + 1)"
    modes = {m: ctcae.grading_sql(sub, exact=m) for m in ("guarded", "signif", "raw")}
    n_check = con.sql(f"SELECT count(*) FROM ({modes['signif']})").fetchall()[0][0]
    diff, raw_diff = (con.sql(f"""
        SELECT count(*) FROM ({modes[m]}) g JOIN ({modes['signif']}) s USING (usubjid, lbseq, lbtestcd, ctcae_term)
        WHERE g.grade IS DISTINCT FROM s.grade OR g.grade_reason IS DISTINCT FROM s.grade_reason""").fetchall()[0][0]
        for m in ("guarded", "raw"))
    con.close()

    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in runs.items()}
    scan_w, scan_c = med["scan"]
    out = ["## CTCAE lab grading\n",
           f"Measured by `python benchmarks/bench_grading.py` ({n:,} generated lab rows, {threads} DuckDB threads, "
           f"DuckDB {duckdb.__version__}; " + (f"generation {gen_s:.1f} s" if built else "labs table reused") +
           f"; {g_rows:,} rows out). Median of "
           f"{args.reps} runs (scan and grading alternating, after one warm-up each); load average "
           f"{min(loads):.1f}-{max(loads):.1f} during the runs.\n",
           "| run | wall s | CPU s | lab rows/s (wall) | x plain scan (wall) | x plain scan (CPU) | x admiral (85,000 rows/s) |",
           "|---|---|---|---|---|---|---|"]
    for name, label in (("scan", "plain scan (same rows and columns, copied)"),
                        ("guarded", "**grading, production** (signif 15 where it can matter)"),
                        ("signif", "grading, signif(x, 15) on both sides of every comparison"),
                        ("raw", "grading, no rounding (inexact, for cost only)")):
        if name not in med:
            continue
        w, c = med[name]
        out.append(f"| {label} | {w:.2f} | {c:.2f} | {n / w:,.0f} | {w / scan_w:.2f} | {c / scan_c:.2f} | "
                   f"{n / w / ADMIRAL_ROWS_PER_S:,.0f} |")
    out.append("")
    out.append(f"Runs (wall s, CPU s): " + "; ".join(
        f"{k}: " + ", ".join(f"{w:.2f}/{c:.2f}" for w, c in v) for k, v in runs.items()))
    out.append(f"Exactness (first {n_check:,} graded rows): production vs signif on both sides: {diff} "
               f"different grades or reasons; no rounding vs signif: {raw_diff}.")
    text = "\n".join(out)
    print(text)
    if args.keep or args.db:
        print(f"kept {path}", file=sys.stderr)
    else:
        os.remove(path)
        os.rmdir(tmp)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: the full committee packet (CSV, XLSX, RTF, PDF) at trial and program scale.

    python benchmarks/bench_export.py                 # synthetic trial (30 subjects) and program (10,000)
    python benchmarks/bench_export.py --db X.duckdb --study ID   # also time a real database (e.g. sample data)

Synthetic studies are generated in SQL straight into the schema (source tables plus the derived
tables the packet reads), two data cuts each so 'new since previous cut' is exercised.
Prints one line per step; paste the table into docs/performance.md ("## Committee packet").
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from safety import schema  # noqa: E402
from safety.export.common import make_reader  # noqa: E402
from safety.export.listings import LISTINGS, build_listing  # noqa: E402
from safety.export.packet import write_outputs  # noqa: E402
from safety.export.tables import TABLES, build_table  # noqa: E402

STUDY = "BENCH-01"
CUTS = (dt.date(2025, 6, 30), dt.date(2025, 12, 31))


def generate(path: Path, n_subjects: int, aes_per_subject: int = 15) -> None:
    """A synthetic study in SQL: subjects in 5 cohorts, AEs, medications, labs and derived rows."""
    from test_export_fixtures import ensure_derived_tables
    ensure_derived_tables()
    con = duckdb.connect(str(path))
    for t in schema.all_tables():
        con.execute(t.ddl())
    for k, cut in enumerate(CUTS):
        p = {"s": STUDY, "c": cut, "n": n_subjects, "k": aes_per_subject if k else aes_per_subject // 2}
        def run(sql, _p=p):
            con.execute(sql, {k: v for k, v in _p.items() if f"${k}" in sql})

        run("""INSERT INTO studies (studyid, data_cut, title, load_id, config_json)
            VALUES ($s, $c, 'Synthetic benchmark study', 'load-' || $c::VARCHAR, '{}')""")
        run("""INSERT INTO load_log (studyid, data_cut, load_id, domain, source_file, sha256)
            SELECT $s, $c, 'load-' || $c::VARCHAR, d, lower(d) || '.xpt', sha256(d || $c::VARCHAR)
            FROM (VALUES ('DM'), ('AE'), ('LB'), ('CM')) v(d)""")
        run("""INSERT INTO subjects (studyid, data_cut, usubjid, siteid, age, sex, cohort, dose_level, infused,
              infusions, enrollment_order, last_known_alive_day, death_date, death_day)
            SELECT $s, $c, 'S' || lpad(i::VARCHAR, 6, '0'), 'SITE' || (i % 40)::VARCHAR, 30 + (i % 45)::DOUBLE,
              CASE WHEN i % 2 = 0 THEN 'F' ELSE 'M' END, 'DL' || (1 + i % 5)::VARCHAR, (1 + i % 5)::VARCHAR || 'e6/kg',
              i % 25 <> 0, 1, i, 180, CASE WHEN i % 50 = 7 THEN DATE '2025-03-01' END,
              CASE WHEN i % 50 = 7 THEN 90 END
            FROM range(1, $n + 1) r(i)""")
        run("""INSERT INTO adverse_events (studyid, data_cut, usubjid, aeseq, event_key, aeterm, aedecod, aebodsys,
              aetoxgr, aeser, aesdth, aeshosp, related, aerel, aeout, onset_day, end_day, ongoing, duration_days,
              grading_system, treatment_emergent, aest_date)
            SELECT $s, $c, u, j, u || '/AE/' || j::VARCHAR, 'term ' || (h % 60)::VARCHAR, 'PT ' || (h % 60)::VARCHAR,
              'SOC ' || (h % 12)::VARCHAR, 1 + (h % 5), CASE WHEN h % 9 = 0 THEN 'Y' ELSE 'N' END,
              CASE WHEN h % 5 = 4 AND h % 9 = 0 THEN 'Y' ELSE 'N' END, CASE WHEN h % 9 = 0 THEN 'Y' ELSE 'N' END,
              h % 3 = 0, 'POSSIBLE', 'RECOVERED', j * 5, j * 5 + h % 10, FALSE, h % 10 + 1, 'CTCAE v5.0', TRUE,
              DATE '2025-01-01' + (j * 5)::INTEGER
            FROM (SELECT 'S' || lpad(i::VARCHAR, 6, '0') AS u, j, hash(i, j) % 1000 AS h
                  FROM range(1, $n + 1) r(i), range(1, $k + 1) q(j))""")
        run("""INSERT INTO medications (studyid, data_cut, usubjid, cmseq, cmtrt, med_class, start_day, end_day)
            SELECT $s, $c, 'S' || lpad(i::VARCHAR, 6, '0'), 1, 'Tocilizumab', 'tocilizumab', 6, 6
            FROM range(1, $n + 1) r(i) WHERE i % 3 = 0""")
        run("""INSERT INTO toxicity_episodes (studyid, data_cut, usubjid, syndrome, episode_no, event_key,
              onset_day, last_symptomatic_day, duration_days, max_grade, ongoing, tocilizumab, corticosteroid)
            SELECT $s, $c, u, syn, 1, u || '/' || syn || '/1', 2 + i % 5, 6 + i % 5, 5, 1 + i % 4, FALSE, i % 3 = 0, i % 4 = 0
            FROM (SELECT 'S' || lpad(i::VARCHAR, 6, '0') AS u, i FROM range(1, $n + 1) r(i)),
                 (VALUES ('CRS'), ('ICANS')) v(syn) WHERE syn = 'CRS' OR i % 3 = 0""")
        # lab_toxicity is a view: its rows are stored in the tables it reads, as a load stores them
        schema.store_view_rows(con, schema.get_table("lab_toxicity"), """
            SELECT $s AS studyid, $c AS data_cut, 'S' || lpad(i::VARCHAR, 6, '0') AS usubjid, j AS lbseq,
              'NEUT' AS lbtestcd, 'Neutrophil count decreased' AS ctcae_term, 'L' AS direction, 0.4 AS value,
              '10^9/L' AS unit, 2.0 AS lln, 7.5 AS uln, 3 + (j % 2) AS grade, 'value < 1.0' AS grade_reason, j * 3 AS day
            FROM range(1, $n + 1) r(i), range(1, 6) q(j)""", {"s": STUDY, "c": cut, "n": n_subjects})
        run("""INSERT INTO lab_worst_grades (studyid, data_cut, usubjid, ctcae_term, direction, baseline_grade,
              worst_grade, worst_day)
            SELECT $s, $c, 'S' || lpad(i::VARCHAR, 6, '0'), 'Neutrophil count decreased', 'L', i % 2, 2 + i % 3, 10
            FROM range(1, $n + 1) r(i)""")
        run("""INSERT INTO dlt_candidates (studyid, data_cut, usubjid, event_key, source, rule_id, reason, term,
              onset_day, grade, ongoing, in_window)
            SELECT $s, $c, 'S' || lpad(i::VARCHAR, 6, '0'), 'S' || lpad(i::VARCHAR, 6, '0') || '/CRS/1',
              'toxicity_episodes', 'R2', 'CRS grade 4', 'CRS', 3, 4, FALSE, TRUE
            FROM range(1, $n + 1) r(i) WHERE i % 4 = 3""")
    con.close()


def bench(db: Path, studyid: str, label: str, out: Path) -> list[tuple[str, float]]:
    con = duckdb.connect(str(db), read_only=True)
    cut = con.execute("SELECT max(data_cut) FROM studies WHERE studyid = $s", {"s": studyid}).fetchone()[0]
    reader = make_reader(con, studyid, cut)
    res = []
    t = time.perf_counter()
    for n in LISTINGS:
        build_listing(reader, n)
    for n in TABLES:
        build_table(reader, n)
    res.append(("build all listings + tables", time.perf_counter() - t))
    n_ae = len(build_listing(reader, "ae"))
    for fmt in ("csv", "rtf", "xlsx", "pdf"):
        t = time.perf_counter()
        paths = write_outputs(reader, out / fmt, formats=(fmt,))
        size = sum(p.stat().st_size for p in paths) / 1e6
        res.append((f"{fmt} ({size:.1f} MB)", time.perf_counter() - t))
    con.close()
    print(f"\n{label}: {n_ae} AE rows")
    for step, secs in res:
        print(f"  {step:40s} {secs:8.2f} s")
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db")
    ap.add_argument("--study")
    ap.add_argument("--subjects", type=int, nargs="*", default=[30, 10000])
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # warm the figure renderer once so the first scale does not pay the browser start alone
        if a.db:
            bench(Path(a.db), a.study, f"database {a.db}", tmp / "real")
        for n in a.subjects:
            db = tmp / f"bench_{n}.duckdb"
            t = time.perf_counter()
            generate(db, n)
            print(f"\ngenerated {n} subjects in {time.perf_counter() - t:.1f} s")
            bench(db, STUDY, f"{n} subjects", tmp / f"out{n}")


if __name__ == "__main__":
    main()

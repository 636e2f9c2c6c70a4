"""Benchmark DLT screening, evaluability, adjudication views and stopping rules on a synthetic study.

    python benchmarks/bench_dlt.py [--subjects 2000] [--aes-per-subject 50] [--labs-per-subject 250]

Builds a DuckDB file in a temporary folder (source tables, toxicity_episodes and lab_toxicity from safety/schema/),
then times each step (median of 3).
"""
from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import duckdb  # noqa: E402

from safety import schema  # noqa: E402
from safety.access.reader import Scope, StudyReader  # noqa: E402
from safety.core.config import validate  # noqa: E402
from safety.derive.dlt import decisions as adj  # noqa: E402
from safety.review.dlt_status import live_stopping_status  # noqa: E402
from safety.derive.dlt import stopping as st  # noqa: E402
from safety.derive.dlt.screening import derive_dlt  # noqa: E402
from safety.review.store import ReviewStore  # noqa: E402
from test_dlt_support import CUT, STUDY, new_db  # noqa: E402


def build(con: duckdb.DuckDBPyConnection, n_subj: int, ae_per: int, lab_per: int) -> None:
    p = {"s": STUDY, "c": CUT, "n": n_subj}
    con.execute("""INSERT INTO subjects BY NAME
        SELECT $s AS studyid, $c AS data_cut, 'S-' || i AS usubjid, 'SITE' || (i % 10) AS siteid,
               'C' || (i % 8) AS cohort, 'DL' || (i % 8) AS dose_level, true AS infused,
               (i * 7) % 90 AS last_known_alive_day, CASE WHEN i % 50 = 0 THEN 10 + i % 20 END AS death_day,
               'in follow-up' AS status
        FROM range($n) t(i)""", p)
    con.execute("""INSERT INTO adverse_events BY NAME
        SELECT $s AS studyid, $c AS data_cut, 'S-' || (i // $k) AS usubjid, i % $k AS aeseq,
               'S-' || (i // $k) || '/AE/' || (i % $k) AS event_key,
               ['PNEUMONITIS', 'COLITIS', 'RASH', 'NEUTROPENIA', 'CYTOKINE RELEASE SYNDROME', 'FEVER'][1 + i % 6] AS aedecod,
               1 + (i * 13) % 5 AS aetoxgr, i % 3 <> 0 AS related, (i * 11) % 40 - 5 AS onset_day,
               (i * 11) % 40 - 5 + (i % 15) AS end_day, i % 17 = 0 AS ongoing, 1 + i % 15 AS duration_days,
               'N' AS aesdth
        FROM range($n * $k) t(i)""", {**p, "k": ae_per})
    con.execute("""INSERT INTO toxicity_episodes BY NAME
        SELECT $s AS studyid, $c AS data_cut, 'S-' || i AS usubjid, syn AS syndrome, 'S-' || i || '/' || syn || '/1' AS event_key,
               1 + i % 5 AS onset_day, 1 + (i * 7) % 4 AS max_grade, 1 + i % 9 AS duration_days, false AS ongoing,
               CASE WHEN 1 + (i * 7) % 4 >= 3 THEN 2 + i % 5 END AS grade3_plus_first_day,
               CASE WHEN 1 + (i * 7) % 4 >= 3 THEN 2 + i % 5 + i % 6 END AS grade3_plus_last_day
        FROM range($n) t(i), (VALUES ('CRS'), ('ICANS')) v(syn) WHERE i % 2 = 0""", p)
    # lab_toxicity is a view: its rows are stored in the tables it reads, as a load stores them
    schema.store_view_rows(con, schema.get_table("lab_toxicity"), """
        SELECT $s AS studyid, $c AS data_cut, 'S-' || (i // $k) AS usubjid, ['NEUT', 'PLAT', 'HGB', 'ALT'][1 + i % 4] AS lbtestcd,
               (i % $k) // 4 AS day, (i * 7) % 5 AS grade
        FROM range($n * $k) t(i)""", {**p, "k": lab_per})


def timed(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subjects", type=int, default=2000)
    ap.add_argument("--aes-per-subject", type=int, default=50)
    ap.add_argument("--labs-per-subject", type=int, default=250)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    con = new_db(tmp / "bench.duckdb")
    build(con, args.subjects, args.aes_per_subject, args.labs_per_subject)
    store = ReviewStore(tmp / "bench.review.sqlite")
    cfg = validate({})
    n_ae = args.subjects * args.aes_per_subject
    n_lab = args.subjects * args.labs_per_subject
    print(f"{args.subjects} subjects, {n_ae} AEs, {n_lab} graded labs, {args.subjects} episodes")
    results = {}
    results["derive_dlt (candidates + evaluability), no adjudications"] = timed(
        lambda: derive_dlt(con, STUDY, CUT, cfg, review_store=store))
    n_cand = con.execute("SELECT count(*) FROM dlt_candidates").fetchone()[0]
    reader = StudyReader(con, Scope(STUDY, CUT))
    keys = reader.sql("SELECT event_key FROM dlt_candidates ORDER BY event_key LIMIT 500")["event_key"]
    t0 = time.perf_counter()
    for k in keys[:50]:
        adj.record_decision(store, reader, k, "confirmed", "benchmark", "bench")
    results["record_decision (each, validated against the cut)"] = (time.perf_counter() - t0) / 50
    for k in keys[50:]:  # the rest straight into the store, to have 500 decisions in force
        store.add_adjudication(studyid=STUDY, event_key=k, usubjid=k.split("/")[0], rule_id=None, decision="rejected",
                               rationale="benchmark", reviewer="bench", data_cut=str(CUT), event_fingerprint="x")
    results["derive_dlt with 500 adjudications"] = timed(lambda: derive_dlt(con, STUDY, CUT, cfg, review_store=store))
    results["derive_stopping_status (beta-binomial)"] = timed(
        lambda: st.derive_stopping_status(con, STUDY, CUT, cfg, review_store=store))
    boin = validate({"stopping_rule": {"method": "boin", "threshold": 0.3, "group_by": "cohort"}})
    results["derive_stopping_status (BOIN, 8 cohorts)"] = timed(
        lambda: st.derive_stopping_status(con, STUDY, CUT, boin, review_store=store))
    results["review_table (live)"] = timed(lambda: adj.review_table(reader, store))
    results["dlt_counts (live)"] = timed(lambda: adj.dlt_counts(reader, store))
    results["live_stopping_status"] = timed(lambda: live_stopping_status(reader, store, cfg))
    results["pocock_boundaries p0 0.20, N 24"] = timed(lambda: st.pocock_boundaries(0.20, 24, 0.10))
    results["pocock_boundaries p0 0.20, N 100"] = timed(lambda: st.pocock_boundaries(0.20, 100, 0.10), 1)
    print(f"{n_cand} candidates")
    print("| step | seconds |\n|---|---|")
    for k, v in results.items():
        print(f"| {k} | {v:.3f} |")


if __name__ == "__main__":
    main()

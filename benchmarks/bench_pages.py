"""Server-side run time of every dashboard page (AppTest, app.py + the page script), cold and cached.

    python benchmarks/bench_pages.py [--program-db PATH] [--skip-program]

Trial scale: the sample database (built into benchmarks/out/ if missing). Program scale: a copy of the
database benchmarks/bench_ingest.py leaves at benchmarks/out/bench_ingest_derived.duckdb (10,000
subjects, 5,000,000 lab rows), or --program-db. For each page: the first run after clearing the caches
("cold") and the median of three further runs ("cached", what a user sees on every interaction once the
cut's queries are cached). Goals: cached < 300 ms at trial scale, < 1 s at program scale, subject
profile < 150 ms.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "out"
PAGES = ["overview", "crs_icans", "subject_profile", "adverse_events", "labs", "dlt_review", "swimmer",
         "listings", "data_quality", "audit_log", "outcomes"]


def bench(db: Path, pages: list[str] = PAGES) -> dict[str, tuple[float, float]]:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from dashboard import warmup

    os.environ["CELLTOX_DB"] = str(db)
    os.environ["CELLTOX_AUTH"] = "off"
    results = {}
    for page in pages:
        st.cache_data.clear()
        st.cache_resource.clear()
        at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=600)
        at.run()
        # The app's first run starts the import of what later pages need (dashboard.warmup.start); the launcher
        # has imported it all before the server starts. Wait for it, so a page's cold run is its own work.
        for thread in threading.enumerate():
            if thread.name == warmup.IMPORT_AHEAD_THREAD:
                thread.join()
        if page != "overview":
            at.switch_page(f"views/{page}.py")
        else:  # the run above drew the overview: clear what it cached so its first visit is timed
            st.cache_data.clear()
        t0 = time.perf_counter()
        at.run()
        cold = time.perf_counter() - t0
        if at.exception:
            raise SystemExit(f"{page}: {at.exception[0].value}")
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            at.run()
            runs.append(time.perf_counter() - t0)
        results[page] = (cold, statistics.median(runs))
        print(f"  {page:16s} cold {cold * 1000:7.0f} ms   cached {results[page][1] * 1000:6.0f} ms", flush=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--program-db", type=Path, default=OUT / "bench_ingest_derived.duckdb")
    ap.add_argument("--skip-program", action="store_true")
    ap.add_argument("--pages", nargs="+", choices=PAGES, default=PAGES, help="only these pages")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    trial = OUT / "pages_sample.duckdb"
    if not trial.exists():
        from safety.sample_db import ensure_sample_database
        ensure_sample_database(trial)
    print(f"trial scale: {trial}")
    bench(trial, args.pages)
    if args.skip_program:
        return
    if not args.program_db.exists():
        raise SystemExit(f"{args.program_db} missing: run python benchmarks/bench_ingest.py first")
    copy = OUT / "pages_program.duckdb"  # a copy: bench_ingest may rewrite its own file meanwhile
    if not (copy.exists() and copy.samefile(args.program_db)):  # the copy itself may be given again
        shutil.copyfile(args.program_db, copy)
    print(f"program scale: {args.program_db}")
    bench(copy, args.pages)


if __name__ == "__main__":
    main()

"""Cost of the scoped read path and of sign-in: python benchmarks/bench_access.py [--subjects N --labs-per-subject M].

Builds a study with N subjects over 20 sites and M lab rows each, then times the same queries raw
(unscoped, on the connection) and through StudyReader for an all-sites and a one-site scope, and one
bcrypt sign-in at the default cost. Results go to docs/performance.md, section "Access control".
"""
from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import duckdb  # noqa: E402

from safety import schema  # noqa: E402
from safety.access.reader import Scope, StudyReader, connect  # noqa: E402
from safety.access.auth import UserStore  # noqa: E402

CUT = dt.date(2024, 6, 1)


def build(path: Path, n_subjects: int, labs_per: int) -> None:
    con = duckdb.connect(str(path))
    schema.create_schema(con)
    con.execute("""INSERT INTO subjects (studyid, data_cut, usubjid, siteid)
        SELECT 'S', $cut, 'S-' || i, 'SITE' || (i % 20) FROM range($n) t(i)""", {"cut": CUT, "n": n_subjects})
    con.execute("""INSERT INTO labs (studyid, data_cut, usubjid, lbseq, lbtestcd, value, uln, day)
        SELECT 'S', $cut, 'S-' || (i % $n), i, 'ALT', CAST(random() * 200 AS DOUBLE), 40.0::DOUBLE, (i % 365)::INTEGER
        FROM range($rows) t(i)""", {"cut": CUT, "n": n_subjects, "rows": n_subjects * labs_per})
    con.close()


def timed(fn, repeat=5) -> float:
    fn()
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subjects", type=int, default=2000)
    ap.add_argument("--labs-per-subject", type=int, default=2500)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.duckdb"
        t = time.perf_counter()
        build(db, a.subjects, a.labs_per_subject)
        print(f"built {a.subjects} subjects x {a.labs_per_subject} labs in {time.perf_counter() - t:.1f}s")
        con = connect(db)
        q = "SELECT usubjid, max(value / uln) AS worst FROM labs GROUP BY usubjid"
        small = "SELECT usubjid FROM subjects WHERE usubjid = $u"
        raw_q = ("SELECT usubjid, max(value / uln) AS worst FROM labs WHERE studyid = 'S' "
                 "AND data_cut = DATE '2024-06-01' GROUP BY usubjid")
        raw = timed(lambda: con.sql(raw_q).to_arrow_table())
        all_r = StudyReader(con, Scope("S", CUT, None))
        one_r = StudyReader(con, Scope("S", CUT, ("SITE3",)))
        res = {
            "raw aggregate (unscoped)": raw,
            "reader aggregate, all sites": timed(lambda: all_r.sql(q)),
            "reader aggregate, one site of 20": timed(lambda: one_r.sql(q)),
            "reader point query (one subject)": timed(lambda: one_r.sql(small, {"u": "S-3"})),
        }
        store = UserStore(Path(tmp) / "users.yaml", rounds=12)
        store.add("carol", "committee", "benchmark passphrase")
        res["sign-in (bcrypt cost 12)"] = timed(lambda: store.authenticate("carol", "benchmark passphrase"), 3)
        res["sign-in, unknown user"] = timed(lambda: store.authenticate("nobody", "benchmark passphrase"), 3)
        rows = a.subjects * a.labs_per_subject
        print(f"lab rows: {rows:,}")
        for k, v in res.items():
            print(f"{k:<40} {v * 1000:8.1f} ms")


if __name__ == "__main__":
    main()

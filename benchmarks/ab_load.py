"""Is one version's load faster than another's? Paired, alternating fresh-process loads of the same study.

    git worktree add /tmp/celltox-before <commit> --detach
    python benchmarks/ab_load.py /tmp/celltox-before . [benchmarks/out/study_20000_2000000_500000]
                                 [--pairs 8] [--cutoff 2025-12-31]

Each pair runs `python -m safety ingest` once in each folder (which one goes first alternates), each into a new
file, so both loads of a pair see the same minute of a shared host. Prints every pair, the medians, and the median
of the paired differences (after - before) with how many pairs the second version won: on a host whose speed
drifts by a tenth within minutes, a change of a few percent shows in the paired differences before it shows in
two separate runs of ``bench_load.py``. Each load runs as ``compare_loads.py`` runs it (this Python, in that
folder, so that folder's code).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_STUDY = ROOT / "benchmarks" / "out" / "study_20000_2000000_500000"
sys.path.insert(0, str(ROOT / "benchmarks"))

from compare_loads import load  # noqa: E402


def one_load(tree: Path, study: Path, cutoff: str, db: Path) -> float:
    """Wall seconds of one `python -m safety ingest` in ``tree``, started and timed from outside."""
    t0 = time.perf_counter()
    load(tree, study, db, cutoff)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("study", type=Path, nargs="?", default=DEFAULT_STUDY)
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--cutoff", default="2025-12-31")
    args = ap.parse_args()
    before, after, study = args.before.resolve(), args.after.resolve(), args.study.resolve()
    if not study.is_dir():
        raise SystemExit(f"{study}: no such study folder (bench_load.py generates it)")
    print(f"{study.name}: {args.pairs} pairs; before {before}, after {after}; load average "
          + " ".join(Path("/proc/loadavg").read_text().split()[:3]))
    times: dict[str, list[float]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory(prefix="ab_load") as tmp:
        for i in range(args.pairs):
            order = [("before", before), ("after", after)]
            if i % 2:
                order.reverse()
            got = {}
            for name, tree in order:
                db = Path(tmp) / f"{name}_{i}.duckdb"
                got[name] = one_load(tree, study, args.cutoff, db)
                for leftover in Path(tmp).glob(f"{name}_{i}*"):  # keep the folder small: each file is ~200 MB
                    leftover.unlink()
            for name in times:
                times[name].append(got[name])
            print(f"  pair {i + 1} ({order[0][0]} first): before {got['before']:.2f} s, after {got['after']:.2f} s, "
                  f"after - before {got['after'] - got['before']:+.2f} s")
    diffs = [a - b for a, b in zip(times["after"], times["before"])]
    won = sum(d < 0 for d in diffs)
    print(f"median before {statistics.median(times['before']):.2f} s, after {statistics.median(times['after']):.2f} s; "
          f"median paired difference {statistics.median(diffs):+.2f} s "
          f"({statistics.median(diffs) / statistics.median(times['before']) * 100:+.1f} %); "
          f"after faster in {won} of {len(diffs)} pairs; load average "
          + " ".join(Path("/proc/loadavg").read_text().split()[:3]))


if __name__ == "__main__":
    main()

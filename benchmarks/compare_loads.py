"""Do two versions of celltox load the same rows? Each study folder is loaded by both (every derivation, each
load a fresh `python -m safety ingest` in that version's folder, into a new file), then every table of the two
databases is compared row for row (the load's own id, time, folder and version left out).

    git worktree add /tmp/celltox-before <commit> --detach
    python benchmarks/compare_loads.py /tmp/celltox-before . sample_data/car_t_cd56 sample_data/car_itnk \\
        sample_data/twins/car_itnk_sdtm [--cutoff YYYY-MM-DD]

Exit status 0 when every table holds the same rows, 1 otherwise (the differing tables are named).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb

# differ from one load to the next by design
VOLATILE = {"load_id", "loaded_at", "source_dir", "celltox_version"}


def load(tree: Path, study: Path, db: Path, cutoff: str | None) -> None:
    cmd = [sys.executable, "-m", "safety", "ingest", str(study), "--db", str(db)]
    p = subprocess.run(cmd + (["--cutoff", cutoff] if cutoff else []), cwd=tree, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{tree}: {' '.join(cmd)} failed:\n{p.stderr[-2000:]}")


def table_rows(db: Path) -> dict[str, tuple[list[str], list[str]]]:
    """{table: (columns, sorted rows as text)} of every table and view of ``db`` (a reader cannot tell them apart)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        out = {}
        for (t,) in con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
                                "ORDER BY 1").fetchall():
            cols = [c for (c,) in con.execute("SELECT column_name FROM information_schema.columns "
                                              "WHERE table_schema = 'main' AND table_name = $t "
                                              "ORDER BY ordinal_position", {"t": t}).fetchall()]
            keep = ", ".join('"' + c.replace('"', '""') + '"' for c in cols if c not in VOLATILE)
            rows = con.execute(f'SELECT {keep} FROM "{t}"').fetchall() if keep else []
            out[t] = (cols, sorted(map(repr, rows)))
        return out
    finally:
        con.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before", type=Path, help="folder of the version to compare with (a worktree)")
    ap.add_argument("after", type=Path, help="folder of the version under test")
    ap.add_argument("studies", type=Path, nargs="+", help="study folders")
    ap.add_argument("--cutoff")
    a = ap.parse_args()
    differing = 0
    for study in a.studies:
        study = study.resolve()
        with tempfile.TemporaryDirectory(prefix="compare_loads") as tmp:
            dbs = Path(tmp) / "before.duckdb", Path(tmp) / "after.duckdb"
            load(a.before.resolve(), study, dbs[0], a.cutoff)
            load(a.after.resolve(), study, dbs[1], a.cutoff)
            before, after = table_rows(dbs[0]), table_rows(dbs[1])
        bad = sorted(set(before) ^ set(after))
        for t in bad:
            print(f"  {study.name}: table {t} only in {'before' if t in before else 'after'}")
        for t in sorted(set(before) & set(after)):
            if before[t] != after[t]:
                bad.append(t)
                print(f"  {study.name}: {t} differs (columns {'same' if before[t][0] == after[t][0] else 'differ'}, "
                      f"rows {len(before[t][1])} before, {len(after[t][1])} after)")
        rows = sum(len(r) for _, r in before.values())
        print(f"{study.name}: {len(before)} tables, {rows} rows: {'the same' if not bad else f'{len(bad)} differ'}")
        differing += len(bad)
    return 1 if differing else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The whole load as a data manager runs it, against DuckDB copying the same Parquet files.

Each timing is a fresh process, started the same way and measured from outside (wall clock; peak memory
= that process's ru_maxrss from wait4; CPU = its user + system time, every thread):
  copy    DuckDB alone: CREATE TABLE AS SELECT * FROM read_parquet(...) for every file of the study
  load    `python -m safety ingest STUDY --db DB --cutoff 2025-12-31`: validation, mapping, quarantine
          and every derivation, as the CLI runs it (start-up included)
  floor   the physical floor: CREATE TABLE AS of the finished `labs` and `lab_toxicity_records` rows (read from
          the database the load wrote; lab_toxicity is a view over those records) into a new DuckDB file opened as
          the load opens its own (its row groups): writing those two tables and nothing else
  steps   one more in-process load that times the ingest step, the derivations (two run side by side) and
          each derivation (where the time goes)
Copy and load alternate for --rounds pairs (one shared machine: both see the same minute); the ratio is
the ratio of their medians, all in one run. The load average is printed before and after. The CPU budget line
says how much CPU time the goal leaves (4x the copy's wall time with every core busy throughout) beside the CPU
time the load, the floor and the copy used.

    python benchmarks/bench_load.py                               # 20,000 subjects, 2,000,000 labs
    python benchmarks/bench_load.py --subjects 10000 --labs 5000000
    python benchmarks/bench_load.py --scale 1000 10000 50000      # scale curve, labs = 100 per subject
                                        [--rounds 3] [--aes N] [--no-steps] [--keep] [--full-sdtm]
    python benchmarks/bench_load.py --steps-only [--study sample_data/car_t_cd56]   # only the in-process timing
                                                                  # of each step (while working on one)

Studies are generated once (benchmarks/bench_ingest.py's generator: DM, EX, 10 lab tests half in
conventional units, 1% partial dates, AEs) and cached in benchmarks/out/. The goal's study carries only the LB
and AE variables the load needs; --full-sdtm generates the same subjects, results and events with every Required
and Expected LB and AE variable of SDTMIG filled as a conformant delivery has them (LBTEST, LBCAT, LBSTRESC,
LBNRIND, LBBLFL, VISITNUM ...), for the cost of a delivery's full width on both sides. With --keep the loaded
database stays at benchmarks/out/load_<subjects>_<labs>.duckdb for benchmarks/bench_browser.py --db; a run
without --keep loads into a working file (load_work_...) that it removes, and leaves a kept database alone.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from host import host_line, load_average

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
CUTOFF = "2025-12-31"
sys.path.insert(0, str(ROOT / "benchmarks"))



def timed(cmd: list[str]) -> tuple[float, float, float, str]:
    """Wall seconds, peak RSS (MB), CPU seconds (user + system, all threads) and stdout of one fresh process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    # the wrapper process has this one child, so the children's totals are its own
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}):\n{err[-3000:]}")
    return wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime, out


def run_child(mode: str, *args: str) -> tuple[float, float, str, float]:
    """Run this script in a child so that its peak memory is its own (ru_maxrss of RUSAGE_CHILDREN is the
    largest child so far, so each measurement goes through one wrapper process that reports its child)."""
    p = subprocess.run([sys.executable, __file__, "--wrap", mode, *args], cwd=ROOT, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{p.stderr[-3000:]}")
    rec = json.loads(p.stdout.strip().splitlines()[-1])
    return rec["seconds"], rec["peak_rss_mb"], rec.get("out", ""), rec["cpu_s"]


def wrap(mode: str, args: list[str]) -> None:
    """Child: start the measured process, report its wall time and its own peak RSS."""
    if mode == "copy":
        cmd = [sys.executable, __file__, "--copy", *args]
    elif mode == "load":
        folder, db = args
        cmd = [sys.executable, "-m", "safety", "ingest", folder, "--db", db, "--cutoff", CUTOFF]
    elif mode == "floor":
        cmd = [sys.executable, __file__, "--floor", *args]
    else:
        raise SystemExit(mode)
    wall, rss, cpu, out = timed(cmd)
    print(json.dumps({"seconds": round(wall, 2), "peak_rss_mb": round(rss), "cpu_s": round(cpu, 2),
                      "out": out[-2000:]}))


def copy(folder: str, db: str) -> None:
    import duckdb

    con = duckdb.connect(db)
    for f in sorted(Path(folder).glob("*.parquet")):
        con.execute(f"CREATE TABLE {f.stem} AS SELECT * FROM read_parquet($p)", {"p": str(f)})
    con.close()


def floor(src: str, db: str) -> None:
    sys.path.insert(0, str(ROOT))
    from safety.ingest.connection import connect_load

    con = connect_load(Path(db))  # the load's row groups: a default-sized copy would also regroup the rows
    con.execute("ATTACH $p AS src (READ_ONLY)", {"p": src})
    con.execute("CREATE TABLE labs AS SELECT * FROM src.labs")
    # lab_toxicity's stored rows (a view joins their term and reason back from two tables of a few hundred rows)
    con.execute("CREATE TABLE lab_toxicity_records AS SELECT * FROM src.lab_toxicity_records")
    n = con.execute("SELECT (SELECT count(*) FROM labs), (SELECT count(*) FROM lab_toxicity_records)").fetchone()
    con.close()
    print(f"labs {n[0]} rows, lab_toxicity {n[1]} rows")


def steps(folder: str, db: str, cutoff: str = CUTOFF) -> None:
    """In process: the ingest step and each derivation, timed (cutoff '' = the delivery's own cut)."""
    sys.path.insert(0, str(ROOT))
    from safety.derive import pipeline
    from safety.ingest import ingest_study

    times: dict[str, float] = {}
    spans: list[tuple[float, float]] = []

    class Timed:
        """A derivation that records its own time (two run side by side: each its own start to end)."""
        def __init__(self, d):
            self.d, self.name, self.reads, self.written_names = d, d.name, d.reads, d.written_names

        def __call__(self, *a, **k):
            t = time.perf_counter()
            self.d(*a, **k)
            times[self.name] = time.perf_counter() - t
            spans.append((t, time.perf_counter()))

    pipeline.ORDER[:] = [Timed(d) for d in pipeline.ORDER]
    t0 = time.perf_counter()
    r = ingest_study(folder, db, cutoff=cutoff or None)
    total = time.perf_counter() - t0
    # the ingest step: until the first derivation starts (the lab grades, once labs is loaded; the rest of the
    # load then runs beside them, inside "derivations"), and from the last one's end (checkpoint, switch, audit)
    first, last = min(s for s, _ in spans), max(e for _, e in spans)
    ingest = total - (last - first)
    import duckdb

    con = duckdb.connect(db, read_only=True)
    counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
              for t in ("subjects", "labs", "adverse_events", "lab_toxicity", "dlt_candidates", "quarantine")}
    con.close()
    print(json.dumps({"total": round(total, 2), "ingest": round(ingest, 2), "derivations": round(last - first, 2),
                      **{k: round(v, 2) for k, v in times.items()}, "rows": counts,
                      "loaded": sum(f.rows_loaded for f in r.files), "quarantined": r.quarantined}))


def fresh(db: Path) -> str:
    for p in db.parent.glob(db.name + "*"):
        p.unlink()
    review = db.with_suffix(".review.sqlite")  # the review store the load creates beside the database
    if review.exists():
        review.unlink()
    return str(db)


def study_folder(n_subj: int, n_lab: int, n_ae: int, full_sdtm: bool = False) -> Path:
    from bench_ingest import generate

    folder = OUT / f"study_{n_subj}_{n_lab}_{n_ae}{'_full_sdtm' if full_sdtm else ''}"
    if not (folder / "GENERATED").exists():
        t0 = time.perf_counter()
        generate(folder, n_subj, n_lab, n_ae, full_sdtm=full_sdtm)
        print(f"generated {folder.name} in {time.perf_counter() - t0:.1f} s", flush=True)
    return folder


def run_steps(folder: Path, cutoff: str = CUTOFF) -> dict:
    """The in-process load of ``folder`` with the ingest step and each derivation timed, in a fresh process."""
    p = subprocess.run([sys.executable, __file__, "--steps", str(folder), fresh(OUT / "load_steps.duckdb"), cutoff],
                       cwd=ROOT, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(p.stderr[-3000:])
    s = json.loads(p.stdout.strip().splitlines()[-1])
    print(f"  where the time goes (in process, load average {load_average()}): " + ", ".join(
        f"{k} {v:.2f} s" for k, v in s.items() if isinstance(v, float)), flush=True)
    print(f"  rows: {s['rows']}", flush=True)
    fresh(OUT / "load_steps.duckdb")
    return s


def one_size(n_subj: int, n_lab: int, n_ae: int, rounds: int, do_steps: bool, keep: bool,
             full_sdtm: bool = False) -> dict:
    folder = study_folder(n_subj, n_lab, n_ae, full_sdtm)
    print(f"\n{n_subj:,} subjects, {n_lab:,} labs, {n_ae:,} AEs{' (every Required and Expected LB/AE variable)' if full_sdtm else ''}; "
          f"{host_line()}", flush=True)
    # a run without --keep loads into a working file, so that the database an earlier --keep left for
    # bench_browser.py is not deleted by a later measurement of the same size
    copy_db = OUT / "load_copy.duckdb"
    load_db = OUT / (f"load_{n_subj}_{n_lab}.duckdb" if keep else f"load_work_{n_subj}_{n_lab}.duckdb")
    rounds_out = []
    for i in range(rounds):
        c = run_child("copy", str(folder), fresh(copy_db))
        ld = run_child("load", str(folder), fresh(load_db))
        rounds_out.append((c, ld))
        print(f"  round {i + 1}: copy {c[0]:6.2f} s ({c[1]:,.0f} MB, {c[3]:.1f} CPU s)   "
              f"load {ld[0]:6.2f} s ({ld[1]:,.0f} MB, {ld[3]:.1f} CPU s)   ratio {ld[0] / c[0]:.2f}", flush=True)
    copy_s = statistics.median(c[0] for c, _ in rounds_out)
    load_s = statistics.median(ld[0] for _, ld in rounds_out)
    fl = run_child("floor", str(load_db), fresh(OUT / "load_floor.duckdb"))
    print(f"  floor (labs + lab_toxicity_records, CREATE TABLE AS) {fl[0]:.2f} s ({fl[1]:,.0f} MB, {fl[3]:.1f} CPU s): "
          f"{fl[2].strip()}")
    load_cpu = statistics.median(ld[3] for _, ld in rounds_out)
    res = {"subjects": n_subj, "labs": n_lab, "aes": n_ae, "copy_s": copy_s, "load_s": load_s,
           "ratio": load_s / copy_s, "floor_s": fl[0], "copy_mb": max(c[1] for c, _ in rounds_out),
           "load_mb": max(ld[1] for _, ld in rounds_out), "floor_mb": fl[1],
           "copy_cpu_s": statistics.median(c[3] for c, _ in rounds_out), "load_cpu_s": load_cpu,
           "floor_cpu_s": fl[3]}
    # the CPU the goal leaves: 4x the copy's wall time with every core busy all along
    cores = os.cpu_count() or 1
    print(f"  CPU budget: 4 x {copy_s:.2f} s x {cores} cores = {4 * copy_s * cores:.1f} CPU s at most; the load used "
          f"{load_cpu:.1f} CPU s (median), the floor {fl[3]:.1f}, the copy {res['copy_cpu_s']:.1f}", flush=True)
    print(f"  median copy {copy_s:.2f} s, median load {load_s:.2f} s: load/copy = {load_s / copy_s:.2f} (goal <= 4); "
          f"floor/copy = {fl[0] / copy_s:.2f}; peak RSS copy {res['copy_mb']:,.0f} MB, load {res['load_mb']:,.0f} MB; "
          f"load average {load_average()}", flush=True)
    if do_steps:
        res["steps"] = run_steps(folder)
    if not keep:
        fresh(load_db)
    fresh(copy_db)
    fresh(OUT / "load_floor.duckdb")
    return res


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in ("--wrap", "--copy", "--floor", "--steps"):
        flag, rest = sys.argv[1], sys.argv[2:]
        if flag == "--wrap":
            wrap(rest[0], rest[1:])
        else:
            {"--copy": copy, "--floor": floor, "--steps": steps}[flag](*rest)
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subjects", type=int, default=20_000)
    ap.add_argument("--labs", type=int, default=2_000_000)
    ap.add_argument("--aes", type=int, help="AE rows (default 25 per subject)")
    ap.add_argument("--scale", type=int, nargs="*", help="subject counts for a scale curve (labs 100 per subject)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-steps", action="store_true", help="skip the in-process timing of each step")
    ap.add_argument("--keep", action="store_true", help="keep the loaded database for bench_browser.py")
    ap.add_argument("--full-sdtm", action="store_true",
                    help="LB and AE with SDTMIG's Required and Expected variables filled (LBTEST, LBCAT, LBSTRESC, "
                         "LBNRIND, LBBLFL, VISITNUM ...; bench_ingest.FULL_SDTM_LB), beside the goal's sparse study")
    ap.add_argument("--steps-only", action="store_true",
                    help="only the in-process timing of the ingest step and each derivation (no copy, no CLI rounds)")
    ap.add_argument("--study", type=Path, help="with --steps-only: a study folder to load instead of a generated one")
    a = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if a.steps_only:
        folder = a.study.resolve() if a.study else study_folder(a.subjects, a.labs, a.aes or 25 * a.subjects, a.full_sdtm)
        print(f"{folder}; load average {load_average()}", flush=True)
        run_steps(folder, "" if a.study else CUTOFF)  # a delivered study loads at its own cut, as the CLI does
        return
    sizes = [(n, 100 * n, 25 * n) for n in a.scale] if a.scale else [(a.subjects, a.labs, a.aes or 25 * a.subjects)]
    results = [one_size(*s, a.rounds, not a.no_steps, a.keep, a.full_sdtm) for s in sizes]
    print("\nsubjects | labs | copy s | load s | load/copy | floor s | peak RSS load MB | CPU s copy / load / floor")
    for r in results:
        print(f"{r['subjects']:,} | {r['labs']:,} | {r['copy_s']:.2f} | {r['load_s']:.2f} | {r['ratio']:.2f} | "
              f"{r['floor_s']:.2f} | {r['load_mb']:,.0f} | {r['copy_cpu_s']:.1f} / {r['load_cpu_s']:.1f} / "
              f"{r['floor_cpu_s']:.1f}")


if __name__ == "__main__":
    main()

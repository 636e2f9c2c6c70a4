"""How many of the machine's cores a fresh `python -m safety ingest` keeps busy, as a user's load runs it.

    python benchmarks/cores_ingest.py [benchmarks/out/study_20000_2000000_500000] [--every 0.1] [--rounds 1]
                                      [--cutoff 2025-12-31]

The load is the one `bench_load.py` and `ab_load.py` time (the same study and `--cutoff`).

The load's CPU time (user + system, of the process and every thread, from /proc) is sampled every ``--every``
seconds from outside. Prints, per interval, the cores in use, then the wall time, the CPU time, the cores busy on
average, and the core-seconds left idle: the wall time the load would save if it never left a core idle with the
same work (the idle core-seconds over the core count). `profile_ingest.py --cores-every` shows the same in
process, beside each statement, but without Python's start and the load's exit, which a user waits for too.

When the load's CPU time is within its budget (`bench_load.py` prints both) and its wall time still over the goal,
the idle stretches are what is left between them.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_load import CUTOFF, load_average, study_folder  # noqa: E402

DEFAULT_STUDY = study_folder(20_000, 2_000_000, 500_000)
TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) of the process so far, or None once it has gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime: fields 14 and 15 of proc(5)


def one_load(study: Path, every: float, cutoff: str) -> tuple[float, float, list[tuple[float, float]]]:
    """(wall s, CPU s, [(seconds into the load, cores in use over the interval ending then)])."""
    with tempfile.TemporaryDirectory(prefix="cores_ingest") as tmp:
        cmd = [sys.executable, "-m", "safety", "ingest", str(study), "--db", str(Path(tmp) / "study.duckdb"),
               "--cutoff", cutoff]
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples: list[tuple[float, float]] = [(0.0, 0.0)]
        while True:
            time.sleep(every)
            # reaped here, with the CPU time of all its threads to the end (the samples miss its last moments)
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                wall, cpu = time.perf_counter() - t0, usage.ru_utime + usage.ru_stime
                p.returncode = os.waitstatus_to_exitcode(status)
                break
            sampled = process_cpu(p.pid)
            if sampled is not None:
                samples.append((time.perf_counter() - t0, sampled))
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}); run it alone to see why")
    samples.append((wall, cpu))
    cores = [(t1, (c1 - c0) / (t1 - t0_)) for (t0_, c0), (t1, c1) in zip(samples, samples[1:]) if t1 > t0_]
    return wall, cpu, cores


def idle_stretches(cores: list[tuple[float, float]], every: float, n_cores: int) -> list[tuple[float, float, float]]:
    """Runs of intervals with more than a quarter core idle: (from s, to s, idle core-seconds), in load order."""
    out: list[list[float]] = []
    prev_end = 0.0
    for end, busy in cores:
        span = end - prev_end
        if busy < n_cores - 0.25:
            if out and abs(out[-1][1] - prev_end) < 1e-9:
                out[-1][1], out[-1][2] = end, out[-1][2] + (n_cores - busy) * span
            else:
                out.append([prev_end, end, (n_cores - busy) * span])
        prev_end = end
    return [(a, b, i) for a, b, i in out if i >= 0.05 or b - a > 2 * every]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("study", nargs="?", type=Path, default=DEFAULT_STUDY,
                    help="a study folder (default: the 20,000-subject study bench_load.py generates)")
    ap.add_argument("--every", type=float, default=0.1, help="seconds between samples (default 0.1)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--cutoff", default=CUTOFF, help=f"the data cut (default {CUTOFF}, as bench_load.py)")
    a = ap.parse_args()
    if not a.study.exists():
        raise SystemExit(f"{a.study}: no such study folder (python benchmarks/bench_load.py --rounds 1 makes the "
                         "default one)")
    n_cores = os.cpu_count() or 1
    for i in range(a.rounds):
        wall, cpu, cores = one_load(a.study, a.every, a.cutoff)
        print(f"round {i + 1}: " + "  ".join(f"{t:.1f}:{c:.1f}" for t, c in cores))
        print("  stretches below " + f"{n_cores - 0.25:g} cores (seconds into the load, idle core-seconds): " + ", ".join(
            f"{a:.1f}-{b:.1f} s {i:.2f}" for a, b, i in idle_stretches(cores, a.every, n_cores)))
        idle = max(0.0, wall * n_cores - cpu)
        print(f"  wall {wall:.2f} s, CPU {cpu:.2f} s, {cpu / wall:.2f} of {n_cores} cores busy "
              f"on average; {idle:.2f} core-seconds idle, {idle / n_cores:.2f} s of the wall time; load average "
              f"{load_average()}")


if __name__ == "__main__":
    main()

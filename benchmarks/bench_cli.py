"""The command line as a user feels it, each call a fresh process, wall clock from outside:

  start-up   `python -m safety --help` and `--version` against a bare `python -c pass` (median of --starts,
             interleaved so that all three see the same minutes of a shared machine)
  ingest     `python -m safety ingest sample_data/car_t_cd56 --db NEW` end to end (every derivation)
  packet     `python -m safety export --db DB --study CD56-CART-01 --format pdf` (the PDF committee packet
             with its figures) on the database that ingest wrote

    python benchmarks/bench_cli.py [--starts 5] [--rounds 3] [--study sample_data/car_t_cd56] [--no-bytecode-cache]

Python keeps the compiled form of every module it imports (__pycache__) and reuses it on the next start, as on
any installed copy; a machine that sets PYTHONDONTWRITEBYTECODE (the project's test machine does) compiles the
project's modules again in every process. The commands run without that setting, after one unmeasured round that
writes the cache, unless --no-bytecode-cache keeps the setting (every start then compiles).

Goals: --help and --version < 0.3 s, ingest of a sample study < 3 s, the PDF packet < 5 s.
The load average is printed with each part (other jobs on the machine slow every number), and the host's one-core
speed before and after (host.py: the same Python loop every time; the host under the machine drifts).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from host import host_line, load_average

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable



ENV = dict(os.environ)


def wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=ENV)
    took = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    if "not drawn" in p.stderr:  # the goal is the packet with its figures: one without them is not timed
        raise SystemExit(f"{' '.join(cmd)}: {p.stderr.strip()}")
    return took


def studyid(folder: Path) -> str:
    for line in (folder / "study.yaml").read_text().splitlines():
        if line.startswith("studyid:"):
            return line.split(":", 1)[1].strip()
    raise SystemExit(f"{folder}/study.yaml has no studyid")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--starts", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--study", type=Path, default=ROOT / "sample_data" / "car_t_cd56")
    ap.add_argument("--no-bytecode-cache", action="store_true",
                    help="keep PYTHONDONTWRITEBYTECODE as the environment sets it (every start compiles the modules)")
    a = ap.parse_args()
    if a.no_bytecode_cache:
        ENV["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        ENV.pop("PYTHONDONTWRITEBYTECODE", None)
    print(f"bytecode cache: {'off (every start compiles)' if a.no_bytecode_cache else 'on, as on an installed copy'}")

    print(host_line())
    print(f"start-up, median of {a.starts} (load average {load_average()})")
    cmds = {"python -c pass": [PY, "-c", "pass"], "python -m safety --version": [PY, "-m", "safety", "--version"],
            "python -m safety --help": [PY, "-m", "safety", "--help"]}
    runs: dict[str, list[float]] = {k: [] for k in cmds}
    for c in cmds.values():  # unmeasured: with the cache on, this writes it
        wall(c)
    for _ in range(a.starts):
        for k, c in cmds.items():
            runs[k].append(wall(c))
    bare = statistics.median(runs["python -c pass"])
    for k, r in runs.items():
        m = statistics.median(r)
        print(f"  {k:28s} median {m:5.2f} s  (min {min(r):.2f}, max {max(r):.2f})  {m / bare:5.1f}x bare python")

    sid = studyid(a.study)
    with tempfile.TemporaryDirectory(prefix="bench_cli") as tmp:
        db = Path(tmp) / "study.duckdb"
        ingest, packet = [], []
        if not a.no_bytecode_cache:  # one unmeasured round writes the compiled modules, as a first use would
            wall([PY, "-m", "safety", "ingest", str(a.study), "--db", str(Path(tmp) / "warm.duckdb")])
            wall([PY, "-m", "safety", "export", "--db", str(Path(tmp) / "warm.duckdb"), "--study", sid,
                  "--out", str(Path(tmp) / "warm"), "--format", "pdf"])
        for i in range(a.rounds):
            for p in Path(tmp).glob("study.duckdb*"):
                p.unlink()
            ingest.append(wall([PY, "-m", "safety", "ingest", str(a.study), "--db", str(db)]))
            packet.append(wall([PY, "-m", "safety", "export", "--db", str(db), "--study", sid,
                                "--out", str(Path(tmp) / f"packet{i}"), "--format", "pdf"]))
            pdfs = list((Path(tmp) / f"packet{i}").glob("*.pdf"))
            print(f"  round {i + 1}: ingest {ingest[-1]:.2f} s, PDF packet {packet[-1]:.2f} s "
                  f"({pdfs[0].stat().st_size / 1e6:.2f} MB); load average {load_average()}", flush=True)
        print(f"ingest of {a.study.name} (CLI, every derivation): median {statistics.median(ingest):.2f} s (goal < 3 s)")
        print(f"PDF committee packet (CLI, with figures): median {statistics.median(packet):.2f} s (goal < 5 s)")
    print(host_line())


if __name__ == "__main__":
    main()

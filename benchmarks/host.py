"""What the shared host was like while a benchmark ran: its load average, and how fast it runs one core of
plain Python today.

The project's machines are of one type (2 cores), but the host under them is shared and its speed drifts, by half
or more between sessions: a fixed Python loop took 0.35-0.45 s on a quick host and 0.8-1.15 s on a slow one. The
goals in seconds (the sample ingest, the PDF packet, the pages) move with it; the ratios (the load against the
plain copy) do not. Each script that reports seconds prints this reference beside them, so that a slow host is told
apart from slower code.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

# the same work every time: a sum over 30 million integers in a fresh interpreter (no import, no I/O)
_LOOP = "sum(range(30_000_000))"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as /proc/loadavg gives them."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def python_loop_seconds(runs: int = 3) -> float:
    """Median wall seconds of :data:`_LOOP` in a fresh Python process: this host's one-core speed right now."""
    seconds = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", _LOOP], check=True)
        seconds.append(time.perf_counter() - t0)
    return statistics.median(seconds)


def host_line() -> str:
    """One line for a benchmark's output: the reference loop's time and the load average."""
    return f"host: {_LOOP} {python_loop_seconds():.2f} s (one core); load average {load_average()}"

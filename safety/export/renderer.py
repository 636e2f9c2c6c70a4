"""The figure renderer of the PDF packet: a kaleido child process (Python, kaleido, Chromium) with a time limit.

Standard library only, so the export command can start it before it imports pandas and DuckDB: the
child's start (about 3 s, most of it Chromium) then runs beside the parent's imports and table building.
:meth:`Renderer.submit` hands over every figure at once (one browser renders them all in one batch), either as
Plotly JSON or as the data the child draws the packet's figure from (Plotly is imported there, not here), and
returns at once; :meth:`Renderer.result` waits for the PNGs. A browser that starts but never answers (seen
when Chromium cannot start its sandbox or profile) costs the packet its figures, not the export: the whole
process tree is killed once it has gone the time limit without answering, and its folder removed.

The limit counts from the request and again from each figure the child answers (it answers figure by
figure), not once for the whole batch: on a busy machine a browser that is slow but drawing is waited for,
so whether a packet has its figures does not depend on how loaded the machine is, only on whether the
browser works.
"""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# Seconds the renderer may go without answering: from the request to the first figure (Chromium's start
# included), then between figures; CELLTOX_RENDER_TIMEOUT overrides it.
RENDER_TIMEOUT_S = 60.0
_RENDERER = Path(__file__).with_name("_render.py")
# Seconds an answered child may take to stop its browser and remove its folder before it is killed.
SHUTDOWN_WAIT_S = 10.0

Rendered = list[tuple[bytes | None, str]]  # per figure: (PNG bytes, "") or (None, why it is missing)


# Chromium's log prefix "[pid:tid:MMDD/HHMMSS.micros:LEVEL:file.cc(line)] " and process ids change on every run
_VOLATILE = re.compile(r"^\[[^\]]*\]\s*|\b(pid|process) \d+", re.IGNORECASE)


def render_timeout() -> float:
    return float(os.environ.get("CELLTOX_RENDER_TIMEOUT") or RENDER_TIMEOUT_S)


class Renderer:
    """The kaleido child process, started ahead of need. :meth:`submit` sends the figures once,
    :meth:`result` returns their PNGs, :meth:`close` ends the child and removes its folder (safe to call at
    any time, also while a request is under way, and more than once).

    The child answers with one line of JSON per figure, then stops its browser and removes its folder by
    itself; the parent reads the lines without waiting for that shutdown and waits for it in :meth:`close`."""

    def __init__(self):
        # a short folder name: Chromium's profile sockets fail to start beyond ~107-character paths
        self.folder = tempfile.mkdtemp(prefix="ctx")
        self.proc = subprocess.Popen([sys.executable, str(_RENDERER), self.folder], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._err: list[str] = []
        self._drain = threading.Thread(target=self._read_stderr, name="celltox-renderer-stderr", daemon=True)
        self._drain.start()  # a child that writes much to stderr must never block on a full pipe
        self._thread: threading.Thread | None = None
        self._answered_at = 0.0  # time.monotonic() of the request, then of the last figure answered
        self._timeout = 0.0
        self._n = 0
        self._lines: list[str] = []
        self._result: Rendered | None = None
        self._answered = False
        self._closed = False

    def _read_stderr(self) -> None:
        try:
            self._err.append(self.proc.stderr.read())
        except (OSError, ValueError):  # closed by _stop: the child is gone
            pass

    def submit(self, specs: list[str | dict], scale: float = 1.0, timeout: float | None = None) -> None:
        """Send the figures and return; the child renders them while the caller goes on. Each figure is a Plotly
        figure as JSON text, or ``{"plot": name, "data": ...}``: the data the child draws the packet figure
        ``name`` from (:data:`safety.export.figure_plots.PLOTS`). The time limit counts from now, and again from
        each figure answered."""
        if self._thread is not None:
            raise RuntimeError("a renderer takes one request")
        self._timeout = render_timeout() if timeout is None else timeout
        self._answered_at = time.monotonic()
        self._n = len(specs)
        request = json.dumps({"scale": scale, "figures": list(specs)})
        self._thread = threading.Thread(target=self._exchange, args=(request,), name="celltox-figure-renderer",
                                        daemon=True)
        self._thread.start()

    def _exchange(self, request: str) -> None:
        try:
            self.proc.stdin.write(request)
            self.proc.stdin.close()
            while len(self._lines) < self._n:
                line = self.proc.stdout.readline()
                if not line:  # the child ended early
                    return
                self._lines.append(line)
                self._answered_at = time.monotonic()
        except (OSError, ValueError):  # the child died or was stopped: no (further) answer
            pass

    def result(self) -> Rendered:
        """[(PNG bytes, "") or (None, reason)] per submitted figure, once the child has answered or was stopped
        at the time limit."""
        if self._result is not None:
            return self._result
        if self._thread is None:
            return []
        while True:
            left = self._answered_at + self._timeout - time.monotonic()
            self._thread.join(max(0.0, min(left, 0.5)))
            if not self._thread.is_alive() or self._answered_at + self._timeout <= time.monotonic():
                break
        stuck = self._thread.is_alive()
        if stuck:
            self._stop()  # also ends the reading thread: the lines read so far stay as they are
        rendered: Rendered = []
        for line in list(self._lines):
            try:
                r = json.loads(line)
                rendered.append((base64.b64decode(r["png"]) if r.get("png") else None,
                                 self._stable(r.get("note") or "")))
            except (ValueError, TypeError, KeyError, AttributeError):
                break
        if len(rendered) == self._n and not stuck:
            self._answered = True
            self._result = rendered
            return self._result
        if stuck:
            why = (f"figure unavailable: the renderer (kaleido with Chromium) did not answer "
                   f"within {self._timeout:g} s")
        else:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            self._stop()
            last = "".join(self._err).strip().splitlines()[-1:] or [f"exit status {self.proc.returncode}"]
            why = f"figure unavailable: the renderer failed ({self._stable(last[0])[:200]})"
        self._result = rendered + [(None, why)] * (self._n - len(rendered))
        return self._result

    def _stable(self, why: str) -> str:
        """A reason as printed in the packet: without this run's folder, process ids or log timestamps, so the
        same failure gives the same words (and the same cut the same PDF bytes)."""
        return _VOLATILE.sub(lambda m: m.group(1) if m.group(1) else "", why.replace(self.folder, "<renderer folder>"))

    def render(self, specs: list[str | dict], scale: float = 1.0, timeout: float | None = None) -> Rendered:
        """:meth:`submit` then :meth:`result`."""
        self.submit(specs, scale, timeout)
        return self.result()

    def close(self) -> None:
        """End the child: after an answer, let it stop its browser and clean up (bounded wait); else kill it."""
        if self._closed:
            return
        self._closed = True
        if self._answered:
            try:
                self.proc.wait(timeout=SHUTDOWN_WAIT_S)
            except subprocess.TimeoutExpired:
                pass
        self._stop()

    def _stop(self) -> None:
        """Kill whatever of the child's process tree still runs, reap it and remove its folder."""
        if self.proc.poll() is None:
            _kill_tree(self.proc)
        self.proc.wait()
        if self._thread is not None:
            self._thread.join(5)
        self._drain.join(5)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except (OSError, ValueError):
                pass
        shutil.rmtree(self.folder, ignore_errors=True)


def _kill_tree(proc: subprocess.Popen) -> None:
    """Kill the renderer and everything below it (the browser runs in a session of its own)."""
    for pid in [proc.pid, *_descendants(proc.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid``, from Linux's /proc (empty where there is none)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])  # "pid (name) state ppid ..."
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found

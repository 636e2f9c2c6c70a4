"""Render Plotly figures to PNG with kaleido: run as a child process by safety.export.figures, which stops it
after a time limit (a browser that never answers must not hang an export).

    python _render.py FOLDER    (FOLDER: Chromium's profile and temporary files; removed at the end)
stdin: {"scale": number, "figures": [Plotly figure JSON, ...]}
stdout: {"png": base64 text or null, "note": "" or why the figure is missing}, one line per figure, in order,
each written as soon as that figure is drawn (the parent's time limit counts from the last answer, so a slow
but working browser is waited for); then the browser is stopped and FOLDER removed.
Kaleido and Chromium start, and render one blank image, before the request is read, so the parent can
start this process ahead of need and build the figures meanwhile: the first image of a new browser costs
1-4 s (Chromium's start, then loading plotly.js into its page), the next 0.2-0.4 s each. Imports nothing from celltox, so it runs from any working folder.
"""
from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings


def _reason(exc: BaseException) -> str:
    first = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"figure unavailable: {type(exc).__name__}: {first}"


def start(folder: str):
    """Import kaleido and start its browser; returns plotly.io."""
    import kaleido
    import plotly.io as pio

    for name in ("choreographer", "kaleido", "logistro"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "kopts ignored when using a server", profile clean-up notes
        try:
            kaleido.start_sync_server(silence_warnings=True, tmp_dir=folder)
        except TypeError:
            kaleido.start_sync_server()
    return pio


def warm_up(pio) -> None:
    """Render one blank image: the browser's start and the page load happen now, while the parent is busy."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            pio.to_image({"data": [], "layout": {"width": 10, "height": 10}}, format="png", validate=False)
        except Exception:  # noqa: BLE001,S110 - a real request says what is wrong, figure by figure
            pass


def render(pio, request: dict):
    """Yield one answer per figure, in order, as each is drawn."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for spec in request["figures"]:
            try:
                # the parent built and validated the figure; rebuilding it here would validate it again
                png = pio.to_image(json.loads(spec), format="png", scale=request.get("scale", 1.0), validate=False)
                yield {"png": base64.b64encode(png).decode("ascii"), "note": ""}
            except Exception as exc:  # noqa: BLE001 - one failed figure is a note, the others still render
                yield {"png": None, "note": _reason(exc)}


def _answer(item: dict) -> None:
    sys.stdout.write(json.dumps(item) + "\n")  # one line per figure: the parent reads it at once
    sys.stdout.flush()


def stop(folder: str) -> None:
    try:
        import kaleido

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kaleido.stop_sync_server(silence_warnings=True)
    except Exception:  # noqa: BLE001,S110 - the process ends anyway
        pass
    for _ in range(10):  # Chromium's helper processes may write for a moment after exit
        shutil.rmtree(folder, ignore_errors=True)
        if not os.path.exists(folder):
            break
        time.sleep(0.2)


def main() -> None:
    folder = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="ctx")  # the parent removes it if it stops us
    pio, failure = None, ""
    try:
        pio = start(folder)
        warm_up(pio)
    except Exception as exc:  # noqa: BLE001 - no browser, no kaleido: every figure says why
        failure = _reason(exc)
    try:
        request = json.load(sys.stdin)
        done = 0
        if pio is not None:
            try:
                for item in render(pio, request):
                    _answer(item)
                    done += 1
            except Exception as exc:  # noqa: BLE001
                failure = _reason(exc)
        for _ in request["figures"][done:]:
            _answer({"png": None, "note": failure})
    finally:
        stop(folder)


if __name__ == "__main__":
    main()

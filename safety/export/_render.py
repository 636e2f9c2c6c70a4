"""Render Plotly figures to PNG with kaleido: run as a child process by safety.export.figures, which stops it
after a time limit (a browser that never answers must not hang an export).

stdin: {"scale": number, "figures": [Plotly figure JSON, ...]}
stdout: [{"png": base64 text or null, "note": "" or why the figure is missing}, ...], one per figure.
Imports nothing from celltox, so it runs from any working folder.
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


def render(request: dict) -> list[dict]:
    import kaleido
    import plotly.io as pio

    for name in ("choreographer", "kaleido", "logistro"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    tmp = request.get("folder") or tempfile.mkdtemp(prefix="ctx")  # the parent removes it if it stops us
    out = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "kopts ignored when using a server", profile clean-up notes
            try:
                kaleido.start_sync_server(silence_warnings=True, tmp_dir=tmp)
            except TypeError:
                kaleido.start_sync_server()
            for spec in request["figures"]:
                try:
                    png = pio.from_json(spec).to_image(format="png", scale=request.get("scale", 1.0))
                    out.append({"png": base64.b64encode(png).decode("ascii"), "note": ""})
                except Exception as exc:  # noqa: BLE001 - one failed figure is a note, the others still render
                    out.append({"png": None, "note": _reason(exc)})
            try:
                kaleido.stop_sync_server(silence_warnings=True)
            except Exception:  # noqa: BLE001,S110 - the process ends anyway
                pass
    finally:
        for _ in range(10):  # Chromium's helper processes may write for a moment after exit
            shutil.rmtree(tmp, ignore_errors=True)
            if not os.path.exists(tmp):
                break
            time.sleep(0.2)
    return out


def main() -> None:
    request = json.load(sys.stdin)
    try:
        out = render(request)
    except Exception as exc:  # noqa: BLE001 - no browser, no kaleido: every figure says why
        out = [{"png": None, "note": _reason(exc)} for _ in request["figures"]]
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()

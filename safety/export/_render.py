"""Render Plotly figures to PNG with kaleido: run as a child process by safety.export.renderer, which stops it
after a time limit (a browser that never answers must not hang an export).

    python _render.py FOLDER    (FOLDER: Chromium's profile and temporary files; removed at the end)
stdin: {"scale": number, "figures": [figure, ...]}, each figure either a Plotly figure as JSON text or
{"plot": name, "data": {...}}: the data of one of the packet's figures, drawn here by figure_plots.PLOTS[name]
(beside this file), so the exporting process never imports Plotly.
stdout: {"png": base64 text or null, "note": "" or why the figure is missing}, one line per figure, in order,
each written as soon as that figure is drawn (the parent's time limit counts from the last answer, so a slow
but working browser is waited for); then the browser is stopped and FOLDER removed.
Kaleido starts its browser (in a thread of its own) before the request is read, so the parent can start this
process ahead of need: Chromium's start and loading plotly.js into its page (1-4 s) run while the parent
builds the tables, and the figures are drawn from their data meanwhile. No blank image is rendered ahead: the
first figure waits for the browser, and is tried again should the page not have loaded its scripts yet (a
failed render reloads it; a drawn one does not, see :func:`keep_page_after_a_drawn_figure`); the same figures
give the same PNG bytes either way. Imports nothing from celltox,
so it runs from any working folder.
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
from pathlib import Path


# Tries per figure. A figure asked for while the new browser's page is still loading its scripts fails at once
# ("kaleido_scopes is not defined"; seen in about one packet in four on a busy machine, twice in a row at
# most); kaleido reloads the page after a failed render, and a later try draws it.
RENDER_ATTEMPTS = 4


def _reason(exc: BaseException) -> str:
    first = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"figure unavailable: {type(exc).__name__}: {first}"


# What every figure says when the machine has no browser to draw it (the packet is written without images).
NO_BROWSER = ("figure unavailable: no Chromium or Chrome on this machine to draw it "
              "(Debian: apt-get install chromium; or set BROWSER_PATH to a Chromium-based browser)")


def browser_found() -> bool:
    """Whether kaleido will find a browser: its own lookup (BROWSER_PATH, then PATH, then the usual places).
    Kaleido starts the browser in a thread of its own, and when it finds none that thread ends while every
    render waits for it: without this check a machine without Chromium waited out the parent's time limit."""
    from choreographer.browsers import Chromium

    path = Chromium.find_browser(skip_local=False)
    return bool(path) and Path(path).is_file()


def keep_page_after_a_drawn_figure(kaleido_class) -> None:
    """Kaleido reloads its page after every figure, and returns the figure's image only once the page has loaded
    again: 0.2-0.4 s a figure, and about 1 s after the first (plotly.js is compiled anew), most of what the packet
    waited for its figures. A PNG that Plotly.toImage draws from a figure leaves the page as it found it (Plotly
    draws it in a div of its own and purges it), so the page is kept after a figure that was drawn; after one that
    failed (a page still loading its scripts) it is reloaded as before, for the next try. This replaces the method
    by which kaleido gives its page back (``_return_kaleido_tab``, a private one: the tests fail on a kaleido
    without it, and this raises here, so that no figure is drawn, rather than going on with a kaleido it does not
    know)."""
    give_back = kaleido_class._return_kaleido_tab

    async def return_tab(self, tab) -> None:
        # kaleido calls this from the `finally` of each figure's own task: an exception on its way out of that
        # task is the figure's failure
        if sys.exc_info()[0] is None:
            await self.tabs_ready.put(tab)
        else:
            await give_back(self, tab)

    kaleido_class._return_kaleido_tab = return_tab


def start(folder: str):
    """Import kaleido and start its browser; returns plotly.io."""
    import kaleido
    import plotly.io as pio

    keep_page_after_a_drawn_figure(kaleido.Kaleido)

    for name in ("choreographer", "kaleido", "logistro"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "kopts ignored when using a server", profile clean-up notes
        # Everything the page needs is local: Plotly's own script, and no MathJax (no figure has TeX labels),
        # which kaleido would otherwise fetch from a CDN every time it loads its page.
        local = {"mathjax": False, "plotlyjs": str(Path(pio.__file__).parents[1] / "package_data" / "plotly.min.js")}
        try:
            kaleido.start_sync_server(silence_warnings=True, tmp_dir=folder, **local)
        except TypeError:
            kaleido.start_sync_server(**local)
    return pio


def draw(spec):
    """The figure to render: a Plotly figure's JSON as given, or the packet figure drawn from its data."""
    if isinstance(spec, str):
        return json.loads(spec)  # the parent built and validated it; validating it again would only cost time
    from figure_plots import PLOTS  # beside this file
    return PLOTS[spec["plot"]](spec["data"])


def render(pio, request: dict):
    """Yield one answer per figure, in order, as each is drawn. Every figure is drawn from its data first,
    while the browser may still be starting."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        figures = []
        for spec in request["figures"]:
            try:
                figures.append((draw(spec), ""))
            except Exception as exc:  # noqa: BLE001 - one failed figure is a note, the others still render
                figures.append((None, _reason(exc)))
        for fig, note in figures:
            if fig is None:
                yield {"png": None, "note": note}
                continue
            png = None
            for _ in range(RENDER_ATTEMPTS):
                try:
                    png = pio.to_image(fig, format="png", scale=request.get("scale", 1.0), validate=False)
                    break
                except Exception as exc:  # noqa: BLE001 - one failed figure is a note, the others still render
                    note = _reason(exc)
            yield {"png": base64.b64encode(png).decode("ascii"), "note": ""} if png is not None else \
                {"png": None, "note": note}


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
    pio, failure = None, NO_BROWSER
    try:
        if browser_found():
            pio = start(folder)  # the browser starts in kaleido's thread while the request is awaited
    except Exception as exc:  # noqa: BLE001 - no kaleido, a browser that cannot start: every figure says why
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

"""The packet's overview figures: read from the study in the exporting process, drawn with Plotly and rendered in
the renderer's process, with the same images as figures drawn in process."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from test_export_fixtures import CUT2, STUDY, build_db

from safety.export import figures
from safety.export.common import current_dlt_status, make_reader
from safety.export.figure_plots import PLOTS
from safety.export.renderer import Renderer

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def db(tmp_path):
    return build_db(tmp_path / "study.duckdb")


@pytest.fixture
def reader(db):
    con = duckdb.connect(str(db), read_only=True)
    yield make_reader(con, STUDY, CUT2)
    con.close()


def _data(reader) -> dict:
    live = current_dlt_status(reader, None)
    out = {}
    for name, (_, read) in figures.FIGURES.items():
        data, _ = read(reader, None, live) if read is figures.dlt_boundary_data else read(reader)
        out[name] = data
    return out


def test_every_figure_has_data_to_draw_and_a_plot_to_draw_it(reader):
    data = _data(reader)
    assert set(data) == set(PLOTS) == set(figures.FIGURES)
    assert all(d is not None for d in data.values())
    json.dumps(data, allow_nan=False)  # strict JSON: no NaN for a missing number, no numpy scalars
    swimmer = data["swimmer"]
    assert swimmer["labels"][:1] == ["CT-001-S01 (DL1)"] and len(swimmer["last_day"]) == len(swimmer["labels"])
    assert [o["name"] for o in swimmer["onsets"]] == ["CRS onset", "ICANS onset"]


def test_each_figure_is_the_figure_plotly_would_build_from_it(reader):
    """The renderer's process renders the dicts unvalidated: each is already in the form go.Figure gives (titles
    as {"text": ...}, the plotly_white template expanded), so nothing is lost or read otherwise."""
    for name, data in _data(reader).items():
        spec = json.loads(json.dumps(PLOTS[name](data)))
        assert go.Figure(spec).to_dict() == spec, name
    swimmer = go.Figure(PLOTS["swimmer"](_data(reader)["swimmer"]))
    assert swimmer.layout.yaxis.autorange == "reversed" and swimmer.layout.template.layout.plot_bgcolor == "white"


def test_missing_numbers_cross_as_null():
    values = figures._values(pd.Series([3, None, 5], dtype="Int64"))
    assert values == [3, None, 5] and all(type(v) is int for v in (values[0], values[2]))
    assert figures._values(pd.Series([1.5, np.nan])) == [1.5, None]
    assert figures._values([np.int32(4), pd.NA, "x"]) == [4, None, "x"]


def test_the_renderer_draws_the_figures_from_their_data_with_the_images_of_figures_drawn_in_process(reader, figure_browser):
    """What the export sends (each figure's data) renders to the same PNG bytes as the Plotly figure drawn in
    the exporting process and sent whole (how the packet was rendered before), on a page kept from the three
    figures drawn before them (the renderer reloads it only after a failed figure)."""
    data = _data(reader)
    names = list(figures.FIGURES)
    specs = [go.Figure(PLOTS[n](data[n])).to_json() for n in names] + [{"plot": n, "data": data[n]} for n in names]
    r = Renderer()
    try:
        out = r.render(specs, timeout=120)
    finally:
        r.close()
    whole, from_data = out[:len(names)], out[len(names):]
    assert [note for _, note in out] == [""] * len(specs)
    assert all(png.startswith(b"\x89PNG") for png, _ in out)
    assert [png for png, _ in from_data] == [png for png, _ in whole]


def test_a_figure_the_renderer_cannot_draw_says_why_and_the_others_still_render(reader, figure_browser):
    data = _data(reader)
    r = Renderer()
    try:
        out = r.render([{"plot": "swimmer", "data": {"labels": []}}, {"plot": "dlt_boundary",
                                                                       "data": data["dlt_boundary"]}], timeout=120)
    finally:
        r.close()
    assert out[0] == (None, "figure unavailable: KeyError: 'last_day'")
    assert out[1][0].startswith(b"\x89PNG") and out[1][1] == ""


_NO_PLOTLY = """
import sys
from safety.commands.main import main
code = main(["export", "--db", sys.argv[1], "--study", sys.argv[2], "--format", "pdf", "--only", "ae",
             "--out", sys.argv[3]])
print(code, sorted(m for m in sys.modules if m == "plotly" or m.startswith("plotly.")))
"""


def test_the_pdf_export_does_not_load_plotly_in_its_own_process(db, tmp_path):
    """The figures are drawn in the renderer's process; the exporting process skips Plotly's import."""
    r = subprocess.run([sys.executable, "-c", _NO_PLOTLY, str(db), STUDY, str(tmp_path / "out")], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "0 []"
    pdf = tmp_path / "out" / f"{STUDY}_{CUT2}_committee_packet.pdf"
    assert pdf.stat().st_size > 10_000


class _Kaleido:
    """The part of kaleido.Kaleido the renderer changes: the page (tab) given back after each figure, reloaded."""

    def __init__(self):
        self.tabs_ready, self.reloaded = asyncio.Queue(), []

    async def _return_kaleido_tab(self, tab):
        self.reloaded.append(tab)
        await self.tabs_ready.put(tab)


def test_the_page_is_reloaded_after_a_figure_that_failed_and_kept_after_one_drawn():
    """kaleido gives each figure's page back from the `finally` of that figure's task; the renderer's version
    reloads it only when the figure failed, so a drawn figure's image is not held back by a reload."""
    from safety.export import _render

    class Kaleido(_Kaleido):
        pass

    _render.keep_page_after_a_drawn_figure(Kaleido)
    k = Kaleido()

    async def figure(tab, fails):
        try:
            if fails:
                raise RuntimeError("JavascriptError: ReferenceError: kaleido_scopes is not defined")
            return b"\x89PNG"
        finally:
            await k._return_kaleido_tab(tab)

    async def run():
        assert await figure("drawn", fails=False) == b"\x89PNG"
        with pytest.raises(RuntimeError):
            await figure("failed", fails=True)
        return [k.tabs_ready.get_nowait() for _ in range(k.tabs_ready.qsize())]

    assert asyncio.run(run()) == ["drawn", "failed"]  # every page given back, for the next figure
    assert k.reloaded == ["failed"]


def test_the_installed_kaleido_has_the_method_the_renderer_replaces():
    """A kaleido that gave its page back another way would leave the renderer's replacement unused (a reload after
    every figure again): this fails first."""
    import inspect

    import kaleido

    give_back = kaleido.Kaleido._return_kaleido_tab
    assert inspect.iscoroutinefunction(give_back)
    assert list(inspect.signature(give_back).parameters) == ["self", "tab"]


class _PageNotReady:
    """plotly.io as kaleido behaves while a new browser's page is still loading its scripts: the first renders
    fail (the page is reloaded after each), the next one draws."""

    def __init__(self, failures: int):
        self.failures, self.calls = failures, 0

    def to_image(self, fig, **kwargs):
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError("JavascriptError: ReferenceError: kaleido_scopes is not defined")
        return b"\x89PNG drawn"


def test_a_figure_asked_for_before_the_browser_page_is_ready_is_drawn_on_a_later_try():
    from safety.export import _render
    pio = _PageNotReady(failures=_render.RENDER_ATTEMPTS - 1)
    out = list(_render.render(pio, {"figures": ['{"data": [], "layout": {}}', '{"data": [], "layout": {}}']}))
    assert [o["note"] for o in out] == ["", ""] and out[0]["png"] == out[1]["png"] != ""
    assert pio.calls == _render.RENDER_ATTEMPTS + 1


def test_a_figure_that_never_renders_says_why_after_its_tries():
    from safety.export import _render
    pio = _PageNotReady(failures=100)
    out = list(_render.render(pio, {"figures": ['{"data": [], "layout": {}}']}))
    assert out == [{"png": None, "note": "figure unavailable: RuntimeError: JavascriptError: ReferenceError: "
                                         "kaleido_scopes is not defined"}]
    assert pio.calls == _render.RENDER_ATTEMPTS


def test_the_renderer_page_loads_plotly_from_the_installed_package_and_no_mathjax_from_a_cdn(monkeypatch, tmp_path):
    # kaleido's defaults would fetch MathJax from cdnjs.cloudflare.com each time it loads its page
    sys.path.insert(0, str(ROOT / "safety" / "export"))
    try:
        import _render
    finally:
        sys.path.remove(str(ROOT / "safety" / "export"))
    import kaleido

    started = []
    monkeypatch.setattr(kaleido, "start_sync_server", lambda **kw: started.append(kw))
    _render.start(str(tmp_path))
    (kw,) = started
    assert kw["mathjax"] is False
    assert Path(kw["plotlyjs"]).is_file() and Path(kw["plotlyjs"]).name == "plotly.min.js"

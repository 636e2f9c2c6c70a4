"""The packet's overview figures as Plotly figure specifications (plain dicts, as ``go.Figure.to_dict()`` gives
them) drawn from their data: plain lists, numbers and text (what :mod:`safety.export.figures` reads from the
study, JSON as it crosses to the renderer).

Imports nothing from celltox and none of Plotly's figure classes (their validators take 0.3-0.5 s to load):
the figure renderer's child process (``_render.py``, beside this file) imports it from this folder and draws
the figures there, so the export's own process never imports Plotly. The in-process figures
(:func:`safety.export.figures.fig_swimmer` and the others) are ``go.Figure`` of the same dicts.
"""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import plotly

# Plotly's own "plotly_white" template as go.Figure(layout=dict(template="plotly_white")) expands it
TEMPLATE_FILE = Path(plotly.__file__).parent / "package_data" / "templates" / "plotly_white.json"
_template: dict | None = None


def template() -> dict:
    global _template
    if _template is None:
        _template = json.loads(TEMPLATE_FILE.read_text(encoding="utf-8"))
    return _template


# A longer title (a rule named with its method, source, event and DLT window) wraps at a word, so it stays inside
# the 1000 px figure at Plotly's title size; the top margin grows by a line for each line it adds.
TITLE_LINE_CHARS = 100


def _figure(traces: list[dict], title: str, **layout) -> dict:
    lines = textwrap.wrap(title, TITLE_LINE_CHARS) if len(title) > TITLE_LINE_CHARS else [title]
    layout.update(title={"text": "<br>".join(lines)}, template=template(), width=1000,
                  margin=dict(l=70, r=20, t=60 + 22 * (len(lines) - 1), b=50),
                  font=dict(family="DejaVu Sans, Arial", size=12))
    layout.setdefault("height", 520)
    return {"data": traces, "layout": layout}


def crs_icans_incidence(d: dict) -> dict:
    """Stacked bars per grade: ``xs`` (the syndrome and cohort of each bar), ``bars`` [{name, color, y}]."""
    traces = [{"type": "bar", "x": d["xs"], "y": bar["y"], "name": bar["name"],
               "marker": {"color": bar["color"], "line": {"color": "#333333", "width": 0.5}}} for bar in d["bars"]]
    return _figure(traces, d["title"], barmode="stack", yaxis={"title": {"text": "Subjects"}},
                   legend={"title": {"text": "Maximum grade"}})


def swimmer(d: dict) -> dict:
    """Follow-up bars (``labels``, ``last_day``), onset markers per syndrome (``onsets`` [{name, symbol, y, x,
    colors}]) and deaths (``deaths`` {y, x} or None)."""
    traces = [{"type": "bar", "y": d["labels"], "x": d["last_day"], "orientation": "h",
               "marker": {"color": "#BBBBBB"}, "name": "Follow-up (days)", "showlegend": True}]
    for o in d["onsets"]:
        traces.append({"type": "scatter", "y": o["y"], "x": o["x"], "mode": "markers", "name": o["name"],
                       "marker": {"symbol": o["symbol"], "size": 10, "line": {"color": "#333333", "width": 1},
                                  "color": o["colors"]}})
    if d["deaths"] is not None:
        traces.append({"type": "scatter", "y": d["deaths"]["y"], "x": d["deaths"]["x"], "mode": "markers",
                       "name": "Death", "marker": {"symbol": "x", "size": 11, "color": "#000000"}})
    return _figure(traces, d["title"], xaxis={"title": {"text": "Day from infusion"}},
                   yaxis={"autorange": "reversed", "tickfont": {"size": 8}}, height=d["height"])


def dlt_boundary(d: dict) -> dict:
    """The rule's boundary lines (``lines`` [{name, color, dash, x, y}]) and the observed events per dose level
    (``observed`` {x, y, text, color} or None)."""
    traces = [{"type": "scatter", "x": line["x"], "y": line["y"], "mode": "lines", "name": line["name"],
               "line": {"color": line["color"], "width": 2, "dash": line["dash"], "shape": "hv"}}
              for line in d["lines"]]
    o = d["observed"]
    if o is not None:
        traces.append({"type": "scatter", "x": o["x"], "y": o["y"], "mode": "markers+text", "name": "Observed",
                       "text": o["text"], "textposition": "top center",
                       "marker": {"size": 12, "color": o["color"], "line": {"color": "#333333", "width": 1}}})
    return _figure(traces, d["title"], xaxis={"title": {"text": "Evaluable subjects"}},
                   yaxis={"title": {"text": d["yaxis_title"]}})


# figure name (safety.export.figures.FIGURES) -> the function drawing it from its data
PLOTS = {"crs_icans_incidence": crs_icans_incidence, "swimmer": swimmer, "dlt_boundary": dlt_boundary}

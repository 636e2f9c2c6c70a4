"""The packet's overview figures drawn as Plotly figures from their data: plain lists, numbers and text (what
:mod:`safety.export.figures` reads from the study, JSON as it crosses to the renderer).

Imports Plotly and nothing from celltox: the figure renderer's child process (``_render.py``, beside this file)
imports it from this folder and draws the figures there, so the export's own process never imports Plotly and
the figures are built while its tables are. The same functions draw the figures in process
(:func:`safety.export.figures.fig_swimmer` and the others), so both give the same figure.
"""
from __future__ import annotations

import plotly.graph_objects as go


def _layout(fig: go.Figure, title: str) -> go.Figure:
    fig.update_layout(title=title, template="plotly_white", width=1000, height=520,
                      margin=dict(l=70, r=20, t=60, b=50), font=dict(family="DejaVu Sans, Arial", size=12))
    return fig


def crs_icans_incidence(d: dict) -> go.Figure:
    """Stacked bars per grade: ``xs`` (the syndrome and cohort of each bar), ``bars`` [{name, color, y}]."""
    fig = go.Figure()
    for bar in d["bars"]:
        fig.add_bar(x=d["xs"], y=bar["y"], name=bar["name"], marker_color=bar["color"],
                    marker_line_color="#333333", marker_line_width=0.5)
    fig.update_layout(barmode="stack", yaxis_title="Subjects", legend_title="Maximum grade")
    return _layout(fig, d["title"])


def swimmer(d: dict) -> go.Figure:
    """Follow-up bars (``labels``, ``last_day``), onset markers per syndrome (``onsets`` [{name, symbol, y, x,
    colors}]) and deaths (``deaths`` {y, x} or None)."""
    fig = go.Figure()
    fig.add_bar(y=d["labels"], x=d["last_day"], orientation="h", marker_color="#BBBBBB",
                name="Follow-up (days)", showlegend=True)
    for o in d["onsets"]:
        fig.add_scatter(y=o["y"], x=o["x"], mode="markers", name=o["name"],
                        marker=dict(symbol=o["symbol"], size=10, line=dict(color="#333333", width=1),
                                    color=o["colors"]))
    if d["deaths"] is not None:
        fig.add_scatter(y=d["deaths"]["y"], x=d["deaths"]["x"], mode="markers", name="Death",
                        marker=dict(symbol="x", size=11, color="#000000"))
    fig.update_layout(xaxis_title="Day from infusion", yaxis=dict(autorange="reversed", tickfont=dict(size=8)))
    fig = _layout(fig, d["title"])
    fig.update_layout(height=d["height"])
    return fig


def dlt_boundary(d: dict) -> go.Figure:
    """The rule's boundary lines (``lines`` [{name, color, dash, x, y}]) and the observed events per dose level
    (``observed`` {x, y, text} or None)."""
    fig = go.Figure()
    for line in d["lines"]:
        fig.add_scatter(x=line["x"], y=line["y"], mode="lines", line_shape="hv", name=line["name"],
                        line=dict(color=line["color"], width=2, dash=line["dash"]))
    o = d["observed"]
    if o is not None:
        fig.add_scatter(x=o["x"], y=o["y"], mode="markers+text", name="Observed", text=o["text"],
                        textposition="top center",
                        marker=dict(size=12, color=o["color"], line=dict(color="#333333", width=1)))
    fig.update_layout(xaxis_title="Evaluable subjects", yaxis_title=d["yaxis_title"])
    return _layout(fig, d["title"])


# figure name (safety.export.figures.FIGURES) -> the function drawing it from its data
PLOTS = {"crs_icans_incidence": crs_icans_incidence, "swimmer": swimmer, "dlt_boundary": dlt_boundary}

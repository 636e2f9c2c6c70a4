"""Charts drawn as plain SVG, for pages that should open without loading Plotly in the browser.

Plotly's script is several MB; the browser loads and runs it when a page draws its first Plotly chart, which on
the project's machine type held the first page back by 1-1.5 s, and it draws every Plotly chart twice when it
appears. The overview (the page every user lands on) and the DLT review draw the stopping-boundary chart this way:
the same lines, colours, point symbols and legend as a Plotly chart would, a tooltip on every point (SVG
``<title>``), no zoom. The swimmer page draws its response-rate bars this way beside the swimmer plot. Pure
functions of DataFrames, no Streamlit; every label is escaped.
"""
from __future__ import annotations

import html
import math
import textwrap

import pandas as pd

from dashboard.figures import FONT_SIZE, TITLE_SIZE
from safety.core.numbers import fixed
from safety.core.palette import BOUNDARY_LINES
from safety.derive.dlt.stopping import boundary_axis_title, chart_title, event_label as name_event

# One marker per cohort on the stopping-boundary chart (colour-blind safe colours, distinct shapes; Plotly's names).
COHORT_MARKERS = [("circle", "#0072B2"), ("square", "#E69F00"), ("diamond", "#009E73"), ("triangle-up", "#CC79A7"),
                  ("pentagon", "#56B4E9"), ("hexagon", "#D55E00"), ("star-square", "#000000")]

WIDTH, HEIGHT = 1040, 440
LEFT, RIGHT, TOP, BOTTOM = 72, 350, 56, 62  # plot margins; the legend sits in the right margin
DASHES = {"solid": None, "dash": "10 6", "dot": "3 5"}
FONT_FAMILY = "Arial, Helvetica, sans-serif"
GRID = "#E5E5E5"
TEXT = "#222222"
# The long-title rule of every chart here: a title longer than TITLE_CHARS takes the body size, and one longer
# than LINE_CHARS (a long rule name with its window, several response criteria) wraps at a word, so it stays
# inside the chart's width. A rotated axis label wraps at AXIS_CHARS, the plot's height.
TITLE_CHARS, LINE_CHARS, AXIS_CHARS = 70, 110, 40


def nice_step(span: float, max_ticks: int = 8) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k giving at most ``max_ticks`` intervals over ``span`` (integers at least 1)."""
    if span <= 0:
        return 1.0
    base = 10 ** math.floor(math.log10(span / max_ticks)) if span > max_ticks else 1
    for m in (1, 2, 2.5, 5, 10):
        if span / (m * base) <= max_ticks:
            return max(1.0, m * base)
    return 10.0 * base


def _num(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _lines(text: str, width: int) -> list[str]:
    """``text`` as it is drawn: one line when it has at most ``width`` characters, else broken at words."""
    return textwrap.wrap(text, width) if len(text) > width else [text]


def _wrapped(text: str, width: int, size: float, x: float = 0) -> str:
    """``text`` escaped, as the content of one SVG <text> whose lines start at ``x``: each line after the first
    a line height further (down; to the right on a rotated label)."""
    lines = _lines(text, width)
    if len(lines) == 1:
        return html.escape(text)
    return "".join(f'<tspan x="{_num(x)}" dy="{0 if i == 0 else _num(1.2 * size)}">{html.escape(line)}</tspan>'
                   for i, line in enumerate(lines))


def _heading(text: str, x: float, y: float) -> str:
    """A chart's title at (x, y) under the long-title rule (TITLE_CHARS, LINE_CHARS); a wrapped title starts
    higher by half its extra lines, so it stays above the plot."""
    size = TITLE_SIZE if len(text) <= TITLE_CHARS else FONT_SIZE
    top = y - (len(_lines(text, LINE_CHARS)) - 1) * 0.6 * size
    return f'<text x="{_num(x)}" y="{_num(top)}" font-size="{size}">{_wrapped(text, LINE_CHARS, size, x)}</text>'


def _symbol(name: str, x: float, y: float, size: float, fill: str) -> str:
    """A marker symbol of COHORT_MARKERS as an SVG shape centred on (x, y), ``size`` across."""
    r = size / 2
    style = f'fill="{fill}" stroke="#000" stroke-width="2"'
    if name == "circle":
        return f'<circle cx="{_num(x)}" cy="{_num(y)}" r="{_num(r)}" {style}/>'
    if name == "square":
        return f'<rect x="{_num(x - r)}" y="{_num(y - r)}" width="{_num(size)}" height="{_num(size)}" {style}/>'
    # corners, angle of the first, and the radii the corners take in turn (a star alternates long and short)
    corners = {"diamond": (4, 90, (1.0,)), "triangle-up": (3, 90, (1.0,)), "pentagon": (5, 90, (1.0,)),
               "hexagon": (6, 0, (1.0,)), "star-square": (8, 45, (1.3, 0.45))}
    n, start, radii = corners[name]
    pts = []
    for k in range(n):
        a = math.radians(start + 360 * k / n)
        rr = r * radii[k % len(radii)]
        pts.append(f"{_num(x + rr * math.cos(a))},{_num(y - rr * math.sin(a))}")
    return f'<polygon points="{" ".join(pts)}" {style}/>'


def rule_boundary_svg(boundaries: pd.DataFrame, points: pd.DataFrame, method: str, event: str,
                      window: tuple[int, int] | None) -> str:
    """A stopping rule's boundary chart as the pages draw it: the monitored event named with the study's DLT
    ``window`` on the y axis and in the title (:func:`safety.derive.dlt.stopping.chart_title`)."""
    return stopping_boundary_svg(boundaries, points=points, event_label=name_event(event, window),
                                 title=chart_title(method, event, window))


def stopping_boundary_svg(boundaries: pd.DataFrame, points: pd.DataFrame | None = None, event_label: str = "DLTs",
                          title: str | None = "Events against the stopping boundary") -> str:
    """Events vs evaluable subjects as an SVG document: each boundary of the rule as a step line, each cohort's
    (or the study's) current state as a labelled point.

    ``boundaries`` has ``n`` and any of ``stop_if_events_ge``, ``eliminate_if_ge``, ``deescalate_if_ge``,
    ``escalate_if_le`` (NULL where the rule has no boundary at that n); ``points`` has label, n, events.
    ``event_label`` names the monitored event as pages do, with its DLT window
    (:func:`safety.derive.dlt.stopping.event_label`); the y axis is its ``boundary_axis_title``.
    """
    b = boundaries.sort_values("n")
    lines = []
    for col, (name, color, dash) in BOUNDARY_LINES.items():
        if col in b:
            d = b.dropna(subset=[col])
            if not d.empty:
                lines.append((name, color, dash, [(float(n), float(e)) for n, e in zip(d["n"], d[col])]))
    pts = [] if points is None else [(str(lab), float(n), float(e)) for lab, n, e in
                                     zip(points["label"], points["n"], points["events"]) if pd.notna(n) and pd.notna(e)]
    xs = [x for *_, xy in lines for x, _ in xy] + [n for _, n, _ in pts]
    ys = [y for *_, xy in lines for _, y in xy] + [e for *_, e in pts]
    x_max = max(xs + [1.0])
    y_top = max(ys + [1.0]) + 1.5
    y_low = -0.3
    pw, ph = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + pw * x / (x_max * 1.04)

    def py(y: float) -> float:
        return TOP + ph * (y_top - y) / (y_top - y_low)

    esc = html.escape
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
           f'aria-label="{esc(title or "Stopping boundary")}" style="width:100%;max-width:{WIDTH}px;height:auto" '
           f'font-family="{FONT_FAMILY}" font-size="{FONT_SIZE - 1}" fill="{TEXT}">']
    if title:
        out.append(_heading(title, LEFT, TOP - 24))
    xstep, ystep = nice_step(x_max), nice_step(y_top)
    k = 0
    while k * xstep <= x_max * 1.04:
        x = px(k * xstep)
        out.append(f'<line x1="{_num(x)}" y1="{TOP}" x2="{_num(x)}" y2="{TOP + ph}" stroke="{GRID}"/>'
                   f'<text x="{_num(x)}" y="{TOP + ph + 20}" text-anchor="middle">{_num(k * xstep)}</text>')
        k += 1
    k = 0
    while k * ystep <= y_top:
        y = py(k * ystep)
        out.append(f'<line x1="{LEFT}" y1="{_num(y)}" x2="{LEFT + pw}" y2="{_num(y)}" stroke="{GRID}"/>'
                   f'<text x="{LEFT - 8}" y="{_num(y + 5)}" text-anchor="end">{_num(k * ystep)}</text>')
        k += 1
    out.append(f'<text x="{LEFT + pw / 2}" y="{HEIGHT - 14}" text-anchor="middle" font-size="{FONT_SIZE}">'
               'Evaluable subjects (n)</text>')
    out.append(f'<text transform="translate(20 {TOP + ph / 2}) rotate(-90)" text-anchor="middle" '
               f'font-size="{FONT_SIZE}">{_wrapped(boundary_axis_title(event_label), AXIS_CHARS, FONT_SIZE)}</text>')
    legend_y = TOP + 8
    for name, color, dash, xy in lines:
        path = f"M{_num(px(xy[0][0]))} {_num(py(xy[0][1]))}" + "".join(
            f" H{_num(px(x))} V{_num(py(y))}" for x, y in xy[1:])  # a step after each n, as Plotly's 'hv'
        dash_attr = f' stroke-dasharray="{DASHES[dash]}"' if DASHES[dash] else ""
        out.append(f'<path d="{path}" fill="none" stroke="{color}" stroke-width="3"{dash_attr}/>')
        for x, y in xy:
            out.append(f'<circle cx="{_num(px(x))}" cy="{_num(py(y))}" r="4" fill="{color}">'
                       f'<title>n = {_num(x)}: {esc(name.lower())}: {esc(event_label)} {_num(y)}</title></circle>')
        lx = LEFT + pw + 18
        out.append(f'<line x1="{lx}" y1="{legend_y}" x2="{lx + 30}" y2="{legend_y}" stroke="{color}" '
                   f'stroke-width="3"{dash_attr}/><text x="{lx + 38}" y="{legend_y + 5}">{esc(name)}</text>')
        legend_y += 26
    for i, (lab, n, e) in enumerate(pts):
        symbol, color = COHORT_MARKERS[i % len(COHORT_MARKERS)]
        x, y = px(n), py(e)
        name = "Current" if len(pts) == 1 and lab == "now" else f"{lab}: {_num(e)}/{_num(n)}"
        text = f"{_num(e)}/{_num(n)}" if lab == "now" else lab
        dx, dy, anchor = (-12, -13, "end") if i % 2 == 0 else (12, 24, "start")  # Plotly's top left / bottom right
        out.append(f'<g>{_symbol(symbol, x, y, 18, color)}'
                   f'<title>{esc(lab)}&#10;evaluable n = {_num(n)}&#10;{esc(event_label)} = {_num(e)}</title></g>'
                   f'<text x="{_num(x + dx)}" y="{_num(y + dy)}" text-anchor="{anchor}">{esc(text)}</text>')
        lx = LEFT + pw + 18
        out.append(_symbol(symbol, lx + 15, legend_y, 14, color)
                   + f'<text x="{lx + 38}" y="{legend_y + 5}">{esc(name)}</text>')
        legend_y += 26
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#BBBBBB"/>')
    out.append("</svg>")
    return "".join(out)


RATE_BAR = "#009E73"
RATE_HEIGHT = 380


def response_rate_svg(rates: pd.DataFrame, responders: str, title: str | None = "Objective response rate") -> str:
    """Response rate per time point as an SVG bar chart: one bar per row with its 95% CI as a whisker, the
    count over the evaluable above it and a tooltip on each bar.

    ``rates`` has timepoint, responders, evaluable, pct, ci_low and ci_high (percent); ``responders`` says what
    counts as a response (e.g. "Lugano 2014 (CR + PR)") and is printed in the title and on the y axis.
    """
    esc = html.escape
    right = 24
    pw, ph = WIDTH - LEFT - right, RATE_HEIGHT - TOP - BOTTOM
    heading = f"{title}: {responders}" if title else responders

    def py(pct: float) -> float:
        return TOP + ph * (100.0 - min(max(pct, 0.0), 100.0)) / 100.0

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {RATE_HEIGHT}" role="img" '
           f'aria-label="{esc(heading)}" style="width:100%;max-width:{WIDTH}px;height:auto" '
           f'font-family="{FONT_FAMILY}" font-size="{FONT_SIZE - 1}" fill="{TEXT}">',
           _heading(heading, LEFT, TOP - 24)]  # a long definition (several criteria) stays inside the chart
    for pct in range(0, 101, 20):
        y = py(pct)
        out.append(f'<line x1="{LEFT}" y1="{_num(y)}" x2="{LEFT + pw}" y2="{_num(y)}" stroke="{GRID}"/>'
                   f'<text x="{LEFT - 8}" y="{_num(y + 5)}" text-anchor="end">{pct}</text>')
    out.append(f'<text transform="translate(20 {TOP + ph / 2}) rotate(-90)" text-anchor="middle" '
               f'font-size="{FONT_SIZE}">Responders (%)</text>')
    slot = pw / max(len(rates), 1)
    for i, r in enumerate(rates.itertuples(index=False)):
        cx, half = LEFT + slot * (i + 0.5), min(slot * 0.3, 90)
        top, lo, hi = py(float(r.pct)), py(float(r.ci_low)), py(float(r.ci_high))
        k, n = int(r.responders), int(r.evaluable)
        tip = (f"{r.timepoint}: {k} of {n} ({fixed(r.pct, 0)}%), "
               f"95% CI {fixed(r.ci_low, 0)}-{fixed(r.ci_high, 0)}% (Clopper-Pearson)")
        out.append(f'<g><title>{esc(tip)}</title>'
                   f'<rect x="{_num(cx - half)}" y="{_num(top)}" width="{_num(2 * half)}" '
                   f'height="{_num(TOP + ph - top)}" fill="{RATE_BAR}"/>'
                   f'<path d="M{_num(cx)} {_num(lo)} V{_num(hi)} M{_num(cx - 8)} {_num(lo)} H{_num(cx + 8)} '
                   f'M{_num(cx - 8)} {_num(hi)} H{_num(cx + 8)}" stroke="{TEXT}" stroke-width="1.5" fill="none"/></g>'
                   f'<text x="{_num(cx)}" y="{_num(hi - 8)}" text-anchor="middle">{k}/{n}</text>'
                   f'<text x="{_num(cx)}" y="{TOP + ph + 20}" text-anchor="middle">{esc(str(r.timepoint))}</text>')
    out.append(f'<text x="{LEFT + pw / 2}" y="{RATE_HEIGHT - 14}" text-anchor="middle" font-size="{FONT_SIZE}">'
               'Time point</text>')
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#BBBBBB"/>')
    out.append("</svg>")
    return "".join(out)

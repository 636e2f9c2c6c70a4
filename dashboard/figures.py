"""Plotly figure builders for the dashboard: pure functions of DataFrames, no Streamlit.

Every chart uses the grade colours of :mod:`safety.core.palette` (colour-blind safe, the same on every page
and export), large fonts that stay readable on a projector, axis titles with units and hover text that
names the subject, the term, the grade and the day. Time is days from the first CAR infusion (day 0).
"""
from __future__ import annotations

import html
import math
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from safety.core.numbers import interval, percent
from safety.core.palette import GRADE_COLORS, GRADE_TEXT, MISSING_COLOR, grade_color
from safety.derive.grading import liver
from safety.derive.outcomes.response import LABELS as RESPONSE_LABELS

FONT_SIZE = 16
TITLE_SIZE = 20
FONT = dict(family="Arial, Helvetica, sans-serif", size=FONT_SIZE, color="#222222")
GRADE_NAMES = {0: "Grade 0", 1: "Grade 1", 2: "Grade 2", 3: "Grade 3", 4: "Grade 4", 5: "Grade 5"}
SYNDROME_SYMBOL = {"CRS": "square", "ICANS": "diamond"}
RESPONSE_COLORS = {"CR": "#009E73", "CRI": "#009E73", "PR": "#0072B2", "SD": "#999999", "PD": "#CC79A7", "NE": "#BBBBBB"}
# CR and CRi share the colour of a complete response but not the symbol: the legend tells them apart.
RESPONSE_SYMBOLS = {"CR": "star", "CRI": "star-open", "PR": "triangle-up", "SD": "circle", "PD": "triangle-down",
                    "NE": "circle-open"}
MED_COLORS = {"tocilizumab": "#0072B2", "corticosteroid": "#CC79A7", "anakinra": "#009E73", "vasopressor": "#D55E00"}
DAY_AXIS = "Days from infusion (day 0)"
# A DLT is a red ring drawn on the event itself (its onset, the lab value, the death), labelled "DLT" on its left.
DLT_MARK = dict(symbol="circle-open", size=24, color="#CC0000", line=dict(width=3, color="#CC0000"))

# Display-only CTCAE v5 grade bands for the key labs of the subject profile (NCI CTCAE v5.0).
# kind 'abs' = absolute thresholds in the SI unit, lower is worse; 'xuln' = multiples of ULN, higher is worse.
LAB_GRADE_BANDS: dict[str, dict] = {
    "NEUT": {"label": "ANC", "kind": "abs", "unit": "10^9/L", "limits": [1.5, 1.0, 0.5]},
    "PLAT": {"label": "Platelets", "kind": "abs", "unit": "10^9/L", "limits": [75.0, 50.0, 25.0]},
    "HGB": {"label": "Haemoglobin", "kind": "abs", "unit": "g/L", "limits": [100.0, 80.0]},
    "ALT": {"label": "ALT", "kind": "xuln", "limits": [3.0, 5.0, 20.0]},
    "BILI": {"label": "Bilirubin", "kind": "xuln", "limits": [1.5, 3.0, 10.0]},
    "CREAT": {"label": "Creatinine", "kind": "xuln", "limits": [1.5, 3.0, 6.0]},
}


WEBGL_POINTS = 2000  # above this many markers a scatter is drawn with WebGL (Scattergl)


def shown(value) -> str:
    """Delivered text (a term, a medication, a subject id) as a figure shows it literally.

    Plotly reads labels, legends, titles and hover text as a subset of HTML (``<b>``, ``<br>``, ``<a href>``):
    ``&``, ``<`` and ``>`` become entities. Such text goes into a hover through ``customdata`` or ``text``, never
    into the ``hovertemplate`` itself, where ``%{...}`` is a placeholder."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return html.escape(str(value), quote=False)


def shown_all(values) -> list[str]:
    """:func:`shown` of each value."""
    return [shown(v) for v in values]


def _style(fig: go.Figure, title: str | None = None, height: int | None = None) -> go.Figure:
    # The "plotly_white" template is added to the figure's dict when it is drawn (dashboard.widgets.figure_dict):
    # setting it here validated and copied the whole template for every figure built.
    fig.update_layout(
        font=FONT,
        title=dict(text=title, font=dict(size=TITLE_SIZE)) if title else None,
        hoverlabel=dict(font_size=FONT_SIZE),
        legend=dict(font=dict(size=FONT_SIZE - 1)),
        margin=dict(l=70, r=30, t=70 if title else 30, b=60),
    )
    fig.update_xaxes(tickfont=dict(size=FONT_SIZE - 1, color="#222"), title_font=dict(size=FONT_SIZE))
    fig.update_yaxes(tickfont=dict(size=FONT_SIZE - 1, color="#222"), title_font=dict(size=FONT_SIZE))
    fig.update_annotations(font_size=FONT_SIZE)
    if height:
        fig.update_layout(height=height)
    return fig


def log_range(values, lines: Iterable[float] = (), pad: float = 0.15) -> list[float]:
    """A log axis range (log10 units) spanning the positive values shown and the reference lines, no more."""
    v = [float(x) for x in list(values) + list(lines) if x is not None and not pd.isna(x) and float(x) > 0]
    if not v:
        return [-1.0, 1.0]
    lo, hi = math.log10(min(v)), math.log10(max(v))
    if hi - lo < 0.5:
        lo, hi = lo - 0.25, hi + 0.25
    return [lo - pad, hi + pad]


def reference_line(fig: go.Figure, y: float, text: str, row: int | None = None, col: int | None = None,
                   log: bool = False, color: str = "#333", dash: str = "dash", width: float = 2) -> None:
    """A horizontal reference line with its label at the line's own height.

    Plotly places an hline's annotation at the raw value even on a log axis (where annotations take
    log10 units), so the label is added here by hand: at log10(y) on log axes, y otherwise.
    """
    kw = dict(row=row, col=col) if row is not None else {}
    fig.add_hline(y=y, line=dict(color=color, dash=dash, width=width), **kw)
    axis = "y" if row is None or row == 1 else f"y{row}"
    fig.add_annotation(x=1, xref="x domain" if row is None or row == 1 else f"x{row} domain", xanchor="right",
                       y=math.log10(y) if log else y, yref=axis, yanchor="bottom", text=text, showarrow=False,
                       font=dict(size=FONT_SIZE - 2, color=color), bgcolor="rgba(255,255,255,0.7)")


# The subject profile stacks the timeline over the lab panels: one fixed plot area keeps their day axes aligned.
PROFILE_MARGIN = dict(l=320, r=170, autoexpand=False)


def _row_axes(row: int) -> tuple[str, str]:
    """The x and y axis names of a one-column subplot row (row 1: 'x', 'y'; row 2: 'x2', 'y2'; ...)."""
    n = "" if row == 1 else str(row)
    return f"x{n}", f"y{n}"


def _band_across(row: int, y0: float, y1: float, **style) -> dict:
    """A horizontal band over the whole width of one row: what ``add_hrect(row=row, col=1)`` adds."""
    x, y = _row_axes(row)
    return dict(type="rect", xref=f"{x} domain", x0=0, x1=1, yref=y, y0=y0, y1=y1, **style)


def _band_down(row: int, x0: float, x1: float, **style) -> dict:
    """A vertical band over the whole height of one row: what ``add_vrect(row=row, col=1)`` adds."""
    x, y = _row_axes(row)
    return dict(type="rect", xref=x, x0=x0, x1=x1, yref=f"{y} domain", y0=0, y1=1, **style)


def _line_down(row: int, x: float, **style) -> dict:
    """A vertical line over the whole height of one row: what ``add_vline(row=row, col=1)`` adds."""
    xa, y = _row_axes(row)
    return dict(type="line", xref=xa, x0=x, x1=x, yref=f"{y} domain", y0=0, y1=1, **style)


def _add_shapes(fig: go.Figure, shapes: list[dict]) -> None:
    # One assignment: Plotly's add_hrect/add_vrect validate every shape already there again at each call
    # (a profile's 20-30 bands took 0.1-0.3 s to add one by one).
    if shapes:
        fig.layout.shapes = tuple(fig.layout.shapes) + tuple(shapes)


def _align_profile(fig: go.Figure) -> go.Figure:
    fig.update_layout(margin=PROFILE_MARGIN, legend=dict(x=1.01, xanchor="left", y=1, yanchor="top"))
    fig.update_yaxes(automargin=False)
    return fig


def empty_figure(message: str) -> go.Figure:
    """A blank figure carrying a message (pages prefer st.info; exports may need a figure)."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, font=dict(size=FONT_SIZE + 2), x=0.5, y=0.5,
                       xref="paper", yref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _style(fig, height=240)


def grade_legend_name(grade) -> str:
    try:
        return GRADE_NAMES[int(grade)]
    except (TypeError, ValueError, KeyError):
        return "Not graded"


def _grade_colorscale() -> list:
    """Discrete colour scale for heat maps over grades 0-5 (z values 0..5)."""
    scale = []
    for g in range(6):
        lo, hi = g / 6, (g + 1) / 6
        scale += [[lo, GRADE_COLORS[g]], [hi, GRADE_COLORS[g]]]
    return scale


# -- incidence, onset, duration ---------------------------------------------------------------------

def incidence_by_grade_bar(df: pd.DataFrame, title: str | None = None) -> go.Figure:
    """Subjects by maximum grade per group with Clopper-Pearson 95% CI error bars.

    Columns: ``group`` (e.g. cohort or 'All'), ``grade`` (int), ``subjects``, ``total``, ``pct``,
    ``ci_low``, ``ci_high`` (percentages).
    """
    fig = go.Figure()
    for grade in sorted(df["grade"].dropna().unique()):
        d = df[df["grade"] == grade]
        fig.add_trace(go.Bar(
            x=shown_all(d["group"]), y=d["pct"], name=grade_legend_name(grade), marker_color=grade_color(grade),
            marker_line=dict(color="#333", width=1),
            error_y=dict(type="data", symmetric=False, array=d["ci_high"] - d["pct"],
                         arrayminus=d["pct"] - d["ci_low"], color="#333", thickness=1.5),
            # the numbers as the tables print them (safety.core.numbers), not as the browser would round them
            customdata=np.stack([d["subjects"], d["total"],
                                 [percent(k, n) for k, n in zip(d["subjects"], d["total"])],
                                 [interval(lo, hi) for lo, hi in zip(d["ci_low"], d["ci_high"])]], axis=-1),
            hovertemplate="%{x}<br>" + grade_legend_name(grade)
            + ": %{customdata[0]} of %{customdata[1]} subjects (%{customdata[2]}%)"
              "<br>95% CI %{customdata[3]}%<extra></extra>"))
    fig.update_layout(barmode="group")
    fig.update_xaxes(title_text="Cohort")
    fig.update_yaxes(title_text="Subjects (%)", range=[0, 100])
    return _style(fig, title, height=420)


MAX_EPISODE_DOTS = 2000  # beyond this many episodes the onset/duration plot shows boxes only


def onset_duration_figure(episodes: pd.DataFrame, title: str | None = "Onset and duration of episodes") -> go.Figure:
    """Onset day and duration (days) per syndrome, one dot per episode coloured by its maximum grade.

    Columns: ``usubjid``, ``syndrome``, ``onset_day``, ``duration_days``, ``max_grade``.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Onset", "Duration"), horizontal_spacing=0.12)
    syndromes = sorted(episodes["syndrome"].unique())
    # Dots are readable (and cheap to send) for a trial; a program-scale study gets the boxes alone.
    dots = len(episodes) <= MAX_EPISODE_DOTS
    for col, field, label in ((1, "onset_day", "Onset day"), (2, "duration_days", "Duration (days)")):
        box = dict(orientation="h", boxpoints=False, line=dict(color="#555"), fillcolor="rgba(0,0,0,0)",
                   showlegend=False, hoverinfo="skip")
        if dots:
            fig.add_trace(go.Box(x=episodes[field], y=episodes["syndrome"], **box), row=1, col=col)
        else:  # the five numbers per syndrome, not every episode's value, go to the browser
            fig.add_trace(go.Box(**_box_stats(episodes, field, "syndrome"), **box), row=1, col=col)
        for grade in sorted(episodes["max_grade"].dropna().unique()) if dots else []:
            d = episodes[episodes["max_grade"] == grade]
            fig.add_trace(go.Scatter(
                x=d[field], y=d["syndrome"], mode="markers", name=grade_legend_name(grade),
                legendgroup=str(grade), showlegend=(col == 1),
                marker=dict(size=13, color=grade_color(grade), line=dict(color="#333", width=1)),
                customdata=np.stack([shown_all(d["usubjid"]), d["max_grade"]], axis=-1),
                hovertemplate="%{customdata[0]}<br>%{y} max grade %{customdata[1]}<br>"
                + label + ": %{x}<extra></extra>"), row=1, col=col)
    fig.update_xaxes(title_text="Days from infusion (day 0)", row=1, col=1)
    fig.update_xaxes(title_text="Duration (days)", row=1, col=2)
    fig.update_yaxes(categoryorder="array", categoryarray=syndromes)
    return _style(fig, title, height=360)


def _box_stats(df: pd.DataFrame, field: str, by: str) -> dict:
    """Precomputed horizontal box per group of ``by``: quartiles (linear interpolation) and whiskers at the
    furthest values within 1.5 IQR of the box, as Plotly computes them from raw values."""
    out = {k: [] for k in ("y", "q1", "median", "q3", "lowerfence", "upperfence")}
    for group, values in df.groupby(by)[field]:
        x = values.dropna().to_numpy(dtype=float)
        if not len(x):
            continue
        q1, med, q3 = np.percentile(x, [25, 50, 75])
        iqr = q3 - q1
        out["y"].append(group)
        out["q1"].append(q1)
        out["median"].append(med)
        out["q3"].append(q3)
        out["lowerfence"].append(float(x[x >= q1 - 1.5 * iqr].min()))
        out["upperfence"].append(float(x[x <= q3 + 1.5 * iqr].max()))
    return out


def swimlane_heatmap(daily: pd.DataFrame, subject_order: Sequence[str], syndrome: str,
                     day_range: tuple[int, int] = (0, 30), title: str | None = None,
                     labels: dict[str, str] | None = None) -> go.Figure:
    """Daily grade per subject (rows) and day (columns); white = no assessment that day.

    ``daily``: ``usubjid``, ``day``, ``grade``. ``subject_order`` gives the row order, first on top.
    ``labels`` maps usubjid to the row label (e.g. enrollment order).
    """
    days = list(range(day_range[0], day_range[1] + 1))
    order = list(subject_order)
    d = daily[(daily["day"] >= day_range[0]) & (daily["day"] <= day_range[1])]
    grid = d.pivot_table(index="usubjid", columns="day", values="grade", aggfunc="max")
    grid = grid.reindex(index=order, columns=days)
    z = grid.to_numpy(dtype=float)
    text = np.where(np.isnan(z), "no assessment", np.char.add("grade ", np.nan_to_num(z).astype(int).astype(str)))
    ylab = [shown(labels.get(s, s) if labels else s) for s in order]
    fig = go.Figure(go.Heatmap(
        z=z, x=days, y=ylab, zmin=-0.5, zmax=5.5, colorscale=_grade_colorscale(), xgap=1, ygap=1,
        customdata=np.stack([np.array([[shown(s)] * len(days) for s in order], dtype=object), text], axis=-1) if order else None,
        hovertemplate="%{customdata[0]}<br>" + syndrome + " %{customdata[1]}<br>day %{x}<extra></extra>",
        colorbar=dict(title=dict(text="Grade"), tickvals=[0, 1, 2, 3, 4, 5], ticktext=["0", "1", "2", "3", "4", "5"]),
    ))
    fig.update_xaxes(title_text=DAY_AXIS, dtick=5)
    fig.update_yaxes(title_text="Subject", autorange="reversed", type="category")
    return _style(fig, title or f"{syndrome}: daily grade, days {day_range[0]}-{day_range[1]}",
                  height=max(300, 120 + 24 * len(order)))


# -- subject profile -----------------------------------------------------------------------------------

START_UNKNOWN = "Start date unknown (marked at its end)"
INFUSION_COLOR = "#117733"
LYMPHODEPLETION_COLOR = "#999933"


def _placed(onset_day, end_day, placed_day) -> str:
    """Where an AE's SAE or DLT mark stands, in words: its onset, or its end when the onset is unknown."""
    if not pd.isna(onset_day):
        return f"onset day {onset_day:g}"
    return f"onset unknown, marked at day {placed_day:g} " + ("(its end)" if not pd.isna(end_day) else "(ongoing)")


def subject_timeline(usubjid: str, aes: pd.DataFrame, daily: pd.DataFrame, meds: pd.DataFrame,
                     responses: pd.DataFrame, death_day: float | None = None,
                     dlt_window: tuple[int, int] | None = (0, 28), dlt_keys: Iterable[str] = (),
                     day_range: tuple[int, int] | None = None, title: str | None = None,
                     episodes: pd.DataFrame | None = None, lab_dlts: pd.DataFrame | None = None,
                     pending_keys: Iterable[str] = (), open_end_day: float | None = None,
                     dosing: pd.DataFrame | None = None) -> go.Figure:
    """One subject from screening to month 12 in four stacked panels sharing the day axis.

    - ``aes``: event_key, aedecod, aetoxgr, grading_system, onset_day, end_day, serious (bool)
    - ``daily``: syndrome (CRS/ICANS), day, grade
    - ``meds``: med_class, cmdecod, start_day, end_day
    - ``responses``: day, response
    - ``episodes``: syndrome, episode_no, onset_day (derived CRS/ICANS episodes)
    - ``dosing``: kind ('CAR infusion' or 'Lymphodepletion'), name, start_day, end_day: every CAR infusion is a
      dashed line down all rows and a numbered mark on the last row, the lymphodepleting doses bars there
    ``dlt_keys`` are the event keys that count as DLTs ("DLT"), ``pending_keys`` the candidates awaiting the
    committee ("DLT?"): AE keys mark the AE bar, episode keys (``<usubjid>/CRS/1``) the episode's onset on the
    CRS/ICANS row, ``<usubjid>/DEATH`` the death.
    ``lab_dlts`` (event_key, day, label): DLTs keyed on a lab result (persisting cytopenia), marked on a
    "Lab DLT" line of the last row. The day axis lines up with :func:`key_labs_figure` drawn below it.
    ``open_end_day``: the day an AE or medication with no end date is drawn to, the subject's death, else the data
    cut (``safety.core.vocabulary.open_end``, where the AE listing's duration ends); the last day charted when not
    given. An AE or medication with no start date gets no bar but an open left-pointing triangle at its end (else
    at ``open_end_day``), where its SAE and DLT marks stand too.
    """
    pending_keys = set(pending_keys) - set(dlt_keys)
    dlt_keys = set(dlt_keys) | pending_keys  # every key marked; the pending ones say so
    mark = lambda k: "DLT?" if k in pending_keys else "DLT"
    what = lambda k: "DLT candidate, awaiting the committee" if k in pending_keys else "DLT"
    window_note = f"; grey = DLT window, days {dlt_window[0]}-{dlt_window[1]}" if dlt_window else ""
    fig = make_subplots(rows=4, cols=1, shared_xaxes=True, vertical_spacing=0.05,
                        row_heights=[0.44, 0.16, 0.18, 0.22],
                        subplot_titles=("Adverse events (colour = grade" + window_note + ")", "CRS / ICANS daily grade (ASTCT)",
                                        "Toxicity management", "Dosing, response and death"))
    shapes: list[dict] = []
    last_day = 0
    for frame, cols in ((aes, ["onset_day", "end_day"]), (daily, ["day"]), (meds, ["start_day", "end_day"]),
                        (responses, ["day"])):
        for c in cols:
            if c in frame and frame[c].notna().any():
                last_day = max(last_day, float(frame[c].max()))
    died = death_day is not None and not pd.isna(death_day)
    if died:
        last_day = max(last_day, float(death_day))
    if open_end_day is not None and not pd.isna(open_end_day):
        no_end_day = float(open_end_day)
        no_end_what = "the death" if died and no_end_day == float(death_day) else "the data cut"
    else:
        no_end_day, no_end_what = last_day, "the last day charted"
    drawn_to = f"drawn to day {no_end_day:g}, {no_end_what}"

    # Row 1: AE bars.
    ae = aes.sort_values(["onset_day", "aedecod"], na_position="last").reset_index(drop=True)
    # Long MedDRA terms would squeeze the day axis on a projector: shortened here, full in the hover text.
    labels = [shown(f"{t if len(t) <= 32 else t[:30].rstrip() + '…'} [{k.rsplit('/', 1)[-1]}]")
              for t, k in zip(ae["aedecod"].fillna("?").astype(str), ae["event_key"])]
    subject = shown(usubjid)
    shown_grades = set()
    # An AE with no start date has no bar (a bar from day 0 would state an onset at the infusion, inside the DLT
    # window): it is marked at the last day it is known to have lasted to, its end (else where an ongoing AE is
    # drawn to), and its SAE and DLT marks go there too.
    ae["placed_day"] = ae["onset_day"].where(ae["onset_day"].notna(), ae["end_day"].fillna(no_end_day))
    for i, r in ae.iterrows():
        end = r["end_day"] if not pd.isna(r["end_day"]) else no_end_day
        g = r["aetoxgr"]
        name = grade_legend_name(g)
        unknown_onset = pd.isna(r["onset_day"])
        when = (("onset unknown, " if unknown_onset else f"days {r['onset_day']:g} to ")
                + (f"ongoing ({drawn_to})" if pd.isna(r["end_day"])
                   else ("ended day " if unknown_onset else "") + f"{int(r['end_day'])}"))
        # the delivered words go in as data: in the template they would be read as markup and placeholders
        hover = dict(customdata=[f"{subject}<br>{shown(r['aedecod'])}<br>{name} ({shown(r.get('grading_system'))})"
                                 f"<br>{when}" + ("<br>SERIOUS" if r.get("serious") else "")
                                 + (f"<br>{what(r['event_key'])}" if r["event_key"] in dlt_keys else "")],
                     hovertemplate="%{customdata}<extra></extra>")
        if unknown_onset:
            fig.add_trace(go.Scatter(
                x=[end], y=[labels[i]], mode="markers", name=START_UNKNOWN, legendgroup=START_UNKNOWN,
                showlegend=START_UNKNOWN not in shown_grades,
                marker=dict(symbol="triangle-left-open", size=16, color=grade_color(g), line=dict(width=3)),
                **hover), row=1, col=1)
            shown_grades.add(START_UNKNOWN)
            continue
        start = r["onset_day"]
        # a bar covers its days whole: day d is the cell d-0.5..d+0.5, as the daily grades and labs draw it
        fig.add_trace(go.Bar(
            base=[start - 0.5], x=[max(end - start + 1, 0.8)], y=[labels[i]], orientation="h",
            marker=dict(color=grade_color(g), line=dict(color="#333", width=1)),
            name=name, legendgroup=name, showlegend=name not in shown_grades,
            legendrank=int(g) if not pd.isna(g) else 9, **hover,
        ), row=1, col=1)
        shown_grades.add(name)
    ser = ae[ae.get("serious", pd.Series(False, index=ae.index)).fillna(False).astype(bool)]
    if not ser.empty:
        fig.add_trace(go.Scatter(
            x=ser["placed_day"], y=[labels[i] for i in ser.index], mode="markers", name="Serious (SAE)",
            marker=dict(symbol="star", size=16, color="#000", line=dict(color="#fff", width=1)),
            customdata=[_placed(r.onset_day, r.end_day, r.placed_day) for r in ser.itertuples()],
            hovertemplate="SAE %{customdata}<extra></extra>"), row=1, col=1)
    dlt = ae[ae["event_key"].isin(dlt_keys)]
    if not dlt.empty:
        fig.add_trace(go.Scatter(
            x=dlt["placed_day"], y=[labels[i] for i in dlt.index], mode="markers+text",
            text=[mark(k) for k in dlt["event_key"]], textposition="middle left", name="DLT (? = pending)",
            marker=DLT_MARK, customdata=[[what(r.event_key), _placed(r.onset_day, r.end_day, r.placed_day)]
                                         for r in dlt.itertuples()],
            hovertemplate="%{customdata[0]}<br>%{customdata[1]}<extra></extra>"), row=1, col=1)

    # DLTs keyed on a CRS/ICANS episode or on the death: marked where that event is drawn.
    other_marks = {2: [], 4: []}
    for k in sorted(dlt_keys):
        parts = k.split("/")
        if len(parts) == 3 and parts[1] in ("CRS", "ICANS") and parts[2].isdigit() and episodes is not None \
                and not episodes.empty:
            ep = episodes[(episodes["syndrome"] == parts[1]) & (episodes["episode_no"] == int(parts[2]))]
            if not ep.empty and not pd.isna(ep["onset_day"].iloc[0]):
                other_marks[2].append((float(ep["onset_day"].iloc[0]), parts[1], f"{parts[1]} episode {parts[2]}", k))
        elif parts[-1] == "DEATH" and death_day is not None and not pd.isna(death_day):
            other_marks[4].append((float(death_day), "Death", "death", k))
    if lab_dlts is not None:
        for r in lab_dlts.itertuples():
            if r.event_key in dlt_keys and not pd.isna(r.day):
                other_marks[4].append((float(r.day), "Lab DLT", r.label, r.event_key))

    # Row 2: CRS/ICANS daily grades as coloured squares.
    for syndrome in ("CRS", "ICANS"):
        d = daily[daily["syndrome"] == syndrome]
        if d.empty:
            continue
        fig.add_trace(go.Scatter(
            x=d["day"], y=[syndrome] * len(d), mode="markers", name=f"{syndrome} grade", showlegend=False,
            marker=dict(symbol="square", size=14, color=[grade_color(g) for g in d["grade"]],
                        line=dict(color="#333", width=1)),
            customdata=d["grade"], meta=subject,
            hovertemplate=f"%{{meta}}<br>{syndrome} grade %{{customdata}}<br>day %{{x}}<extra></extra>"),
            row=2, col=1)

    # Row 3: management medications as bars.
    for cls, d in meds.groupby("med_class"):
        color = MED_COLORS.get(cls, "#777")
        for _, r in d.iterrows():
            # no end date: given on until the death or the cut as far as the data say, as an ongoing AE is drawn
            ended = not pd.isna(r["end_day"])
            end = r["end_day"] if ended else no_end_day
            if pd.isna(r["start_day"]):  # no start date: marked at its end, as an AE with no start date
                when = "start date not recorded, " + (f"ended day {end:g}" if ended
                                                      else f"end date not recorded ({drawn_to})")
                fig.add_trace(go.Scatter(
                    x=[end], y=[cls], mode="markers", showlegend=False,
                    marker=dict(symbol="triangle-left-open", size=14, color=color, line=dict(width=3)),
                    customdata=[f"{shown(r['cmdecod'])}<br>{when}"], hovertemplate="%{customdata}<extra></extra>"),
                    row=3, col=1)
                continue
            start = r["start_day"]
            when = f"days {start:g}-{end:g}" if ended else f"from day {start:g}, end date not recorded ({drawn_to})"
            fig.add_trace(go.Bar(
                base=[start - 0.5], x=[max(end - start + 1, 0.8)], y=[cls], orientation="h", marker_color=color,
                showlegend=False, customdata=[f"{shown(r['cmdecod'])}<br>{when}"],
                hovertemplate="%{customdata}<extra></extra>"), row=3, col=1)

    if meds.empty:
        fig.add_annotation(text="no tocilizumab, corticosteroid, anakinra or vasopressor recorded", showarrow=False,
                           xref="x3 domain", yref="y3 domain", x=0.5, y=0.5, font=dict(color="#555"))
        fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, row=3, col=1)

    # Row 4: dosing (a toxicity after a re-infusion has its cause in sight), responses and death.
    if dosing is not None and not dosing.empty:
        ld = dosing[dosing["kind"] == "Lymphodepletion"]
        for r in ld.itertuples():
            fig.add_trace(go.Bar(
                base=[r.start_day - 0.5], x=[r.end_day - r.start_day + 1], y=["Lymphodepletion"], orientation="h",
                marker_color=LYMPHODEPLETION_COLOR, showlegend=False,
                customdata=[f"{subject}<br>lymphodepletion: {shown(r.name)}<br>days {r.start_day:g} to {r.end_day:g}"],
                hovertemplate="%{customdata}<extra></extra>"), row=4, col=1)
        car = dosing[dosing["kind"] == "CAR infusion"].drop_duplicates("start_day").sort_values("start_day")
        if not car.empty:
            numbers = [f"#{n}" for n in range(1, len(car) + 1)]
            fig.add_trace(go.Scatter(
                x=car["start_day"], y=["CAR infusion"] * len(car), mode="markers+text", text=numbers,
                textposition="middle right", name="CAR infusion",
                marker=dict(symbol="triangle-down", size=14, color=INFUSION_COLOR),
                customdata=[[n, shown(name)] for n, name in zip(numbers, car["name"].fillna("cell product"))],
                meta=subject, hovertemplate="%{meta}<br>CAR infusion %{customdata[0]}: %{customdata[1]}<br>day %{x}"
                                            "<extra></extra>"), row=4, col=1)
            shapes += [_line_down(row, day, line=dict(color=INFUSION_COLOR, width=1.5, dash="dash"))
                       for day in car["start_day"] for row in range(1, 5)]
    if not responses.empty:
        fig.add_trace(go.Scatter(
            x=responses["day"], y=["Response"] * len(responses), mode="markers+text", text=shown_all(responses["response"]),
            textposition="top center", showlegend=False,
            marker=dict(size=14, color=[RESPONSE_COLORS.get(str(r).upper(), "#777") for r in responses["response"]],
                        symbol=[RESPONSE_SYMBOLS.get(str(r).upper(), "circle") for r in responses["response"]]),
            hovertemplate="response %{text}<br>day %{x}<extra></extra>"), row=4, col=1)
    if death_day is not None and not pd.isna(death_day):
        fig.add_trace(go.Scatter(
            x=[death_day], y=["Death"], mode="markers+text", text=["†"], textposition="top center",
            marker=dict(symbol="x-thin", size=18, color="#000", line=dict(width=3, color="#000")),
            name="Death", hovertemplate="death day %{x}<extra></extra>"), row=4, col=1)
        shapes += [_line_down(row, death_day, line=dict(color="#000", width=2, dash="dot")) for row in range(1, 5)]
    for row, marks in other_marks.items():
        if marks:
            fig.add_trace(go.Scatter(
                x=[m[0] for m in marks], y=[m[1] for m in marks], mode="markers+text",
                text=[mark(m[3]) for m in marks], textposition="middle left", name="DLT (? = pending)",
                showlegend=dlt.empty, marker=DLT_MARK, customdata=[[what(m[3]), shown(m[2]), m[0]] for m in marks],
                meta=subject, hovertemplate="%{meta}<br>%{customdata[0]}: %{customdata[1]}<br>day %{customdata[2]}"
                                            "<extra></extra>"), row=row, col=1)
    if dlt_window:
        shapes += [_band_down(row, dlt_window[0] - 0.5, dlt_window[1] + 0.5, fillcolor="#999", opacity=0.12,
                              line=dict(width=0)) for row in range(1, 5)]
    _add_shapes(fig, shapes)
    fig.update_layout(barmode="overlay", bargap=0.3)
    if day_range:
        fig.update_xaxes(range=list(day_range))
    fig.update_xaxes(title_text=DAY_AXIS, row=4, col=1, zeroline=True, zerolinewidth=2, zerolinecolor="#333")
    fig.update_yaxes(autorange="reversed", row=1, col=1, type="category")
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=["CRS", "ICANS"], row=2, col=1)
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=["Lab DLT", "Death", "Response", "Lymphodepletion", "CAR infusion"],
                     row=4, col=1)
    n_ae = max(len(ae), 1)
    return _align_profile(_style(fig, title or f"{subject}: timeline", height=max(620, 380 + 26 * n_ae)))


def key_labs_figure(usubjid: str, labs: pd.DataFrame, tests: Sequence[str], dlt_window: tuple[int, int] | None = (0, 28),
                    day_range: tuple[int, int] | None = None, lab_dlts: pd.DataFrame | None = None) -> go.Figure:
    """Key labs of one subject, one panel per test, with CTCAE grade bands shaded behind the values.

    ``labs``: lbtestcd, lbtest, day, value, unit, lln, uln, grade. Tests with an 'xuln' band are plotted
    as multiples of ULN so the bands are exact; the others in their SI unit. ``lab_dlts`` (lbtestcd, day,
    label): DLTs keyed on a lab result, marked on that test's value of that day.
    """
    tests = [t for t in tests if t in set(labs["lbtestcd"])]
    n = max(len(tests), 1)
    fig = make_subplots(rows=n, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=[shown(_lab_title(labs, t)) for t in tests] or [""])
    subject = shown(usubjid)
    shapes: list[dict] = []
    for i, test in enumerate(tests, start=1):
        d = labs[labs["lbtestcd"] == test].sort_values("day")
        band = LAB_GRADE_BANDS.get(test)
        y = d["value"]
        ylabel = shown(d["unit"].dropna().iloc[0]) if d["unit"].notna().any() else ""
        if band and band["kind"] == "xuln":
            y = d["value"] / d["uln"]
            ylabel = "× ULN"
        if band:
            shapes += _grade_bands(band, float(np.nanmax(y)) if len(y) else 1.0, i)
        fig.add_trace(go.Scatter(
            x=d["day"], y=y, mode="lines+markers", line=dict(color="#222", width=2),
            marker=dict(size=9, color=[grade_color(g) for g in d["grade"]], line=dict(color="#222", width=1)),
            showlegend=False,
            customdata=np.stack([d["value"], shown_all(d["unit"]), d["grade"].astype("object").where(d["grade"].notna(), "n/a")], axis=-1),
            meta=[subject, shown(test)],
            hovertemplate="%{meta[0]}<br>%{meta[1]}: %{customdata[0]:.3g} %{customdata[1]}<br>CTCAE grade %{customdata[2]}"
                          "<br>day %{x}<extra></extra>"), row=i, col=1)
        if lab_dlts is not None and not lab_dlts.empty:
            marks = lab_dlts[lab_dlts["lbtestcd"] == test].merge(
                pd.DataFrame({"day": d["day"], "y": y}).dropna().groupby("day", as_index=False)["y"].min(), on="day")
            if not marks.empty:
                fig.add_trace(go.Scatter(
                    x=marks["day"], y=marks["y"], mode="markers+text",
                    text=["DLT?" if p else "DLT" for p in marks.get("pending", pd.Series(False, index=marks.index))],
                    textposition="top center", name="DLT", showlegend=False,
                    marker=DLT_MARK, customdata=[[shown(v)] for v in marks["label"]], meta=subject,
                    hovertemplate="%{meta}<br>DLT: %{customdata[0]}<br>day %{x}<extra></extra>"), row=i, col=1)
        fig.update_yaxes(title_text=ylabel, row=i, col=1)
        if dlt_window:
            shapes.append(_band_down(i, dlt_window[0] - 0.5, dlt_window[1] + 0.5, fillcolor="#999", opacity=0.08,
                                     line=dict(width=0)))
    _add_shapes(fig, shapes)
    if day_range:
        fig.update_xaxes(range=list(day_range))
    fig.update_xaxes(title_text=DAY_AXIS, row=n, col=1)
    return _align_profile(_style(fig, f"{subject}: key labs with CTCAE v5 grade bands", height=max(300, 60 + 200 * n)))


def _lab_title(labs: pd.DataFrame, test: str) -> str:
    name = labs.loc[labs["lbtestcd"] == test, "lbtest"].dropna()
    return f"{name.iloc[0]} ({test})" if len(name) else test


def _grade_bands(band: dict, ymax: float, row: int) -> list[dict]:
    """The CTCAE grade bands of one key-lab row, lowest grade first."""
    limits = band["limits"]
    style = lambda g: dict(fillcolor=GRADE_COLORS[min(g, 4)], opacity=0.3, line=dict(width=0), layer="below")  # noqa: E731
    shapes = []
    if band["kind"] == "abs":  # lower is worse: grade g+2 below limits[g]... grade 2 starts below limits[0]
        edges = [ymax * 1.1 + 1] + limits + [0]
        for g, (hi, lo) in enumerate(zip(edges[:-1], edges[1:]), start=1):
            if g == 1:
                continue  # grade 1 depends on the subject's LLN: no fixed band
            shapes.append(_band_across(row, lo, hi, **style(g)))
    else:
        edges = [1.0] + limits + [max(ymax * 1.1, limits[-1] * 1.05)]
        for g, (lo, hi) in enumerate(zip(edges[:-1], edges[1:]), start=1):
            if lo >= max(ymax * 1.1, limits[0] * 1.2):
                break
            shapes.append(_band_across(row, lo, hi, **style(g)))
    return shapes


# -- adverse events --------------------------------------------------------------------------------------

def ae_soc_pt_bar(df: pd.DataFrame, title: str | None = None, top: int = 25) -> go.Figure:
    """Horizontal stacked bars: subjects per preferred term split by worst grade, the ``top`` most frequent
    terms, most frequent on top (ties by term).

    Columns: ``aebodsys``, ``aedecod``, ``worst_grade``, ``subjects``.
    """
    totals = df.groupby(["aebodsys", "aedecod"], dropna=False)["subjects"].sum().sort_values(ascending=False)
    keep = totals.head(top).index
    d = df.set_index(["aebodsys", "aedecod"]).loc[lambda x: x.index.isin(keep)].reset_index()
    order = [shown(pt) for _, pt in sorted(keep, key=lambda k: (-totals[k], str(k[1])))]
    title = title or (f"The {min(top, len(totals))} most frequent preferred terms: subjects by worst grade "
                      "(ordered by number of subjects)")
    fig = go.Figure()
    for grade in sorted(d["worst_grade"].dropna().unique()):
        g = d[d["worst_grade"] == grade]
        fig.add_trace(go.Bar(
            y=shown_all(g["aedecod"]), x=g["subjects"], orientation="h", name=grade_legend_name(grade),
            marker=dict(color=grade_color(grade), line=dict(color="#333", width=1)),
            customdata=shown_all(g["aebodsys"]),
            hovertemplate="%{y}<br>%{customdata}<br>" + grade_legend_name(grade) + ": %{x} subjects<extra></extra>"))
    fig.update_layout(barmode="stack")
    fig.update_yaxes(categoryorder="array", categoryarray=order[::-1], title_text="Preferred term")
    fig.update_xaxes(title_text="Subjects (n)", dtick=1 if totals.max() <= 12 else None)
    return _style(fig, title, height=max(350, 120 + 28 * len(keep)))


# -- labs ------------------------------------------------------------------------------------------------

def lab_multiples_figure(df: pd.DataFrame, test_label: str, direction: str = "high",
                         title: str | None = None) -> go.Figure:
    """One line per subject: value as a multiple of ULN (direction 'high') or LLN ('low'), log scale.

    Columns: ``usubjid``, ``day``, ``value``, ``unit``, ``multiple``.
    """
    ref = "ULN" if direction == "high" else "LLN"
    test_label = shown(test_label)
    df = df[df["multiple"] > 0]  # a log axis shows positive values only
    fig = go.Figure()
    for subj, d in df.sort_values("day").groupby("usubjid"):
        fig.add_trace(go.Scatter(
            x=d["day"], y=d["multiple"], mode="lines+markers", name=shown(subj), line=dict(width=1.5),
            marker=dict(size=6), meta=[shown(subj), test_label],
            customdata=np.stack([d["value"], shown_all(d["unit"])], axis=-1),
            hovertemplate="%{meta[0]}<br>%{meta[1]}: %{customdata[0]:.3g} %{customdata[1]}"
                          f" (%{{y:.2f}} × {ref})<br>day %{{x}}<extra></extra>"))
    reference_line(fig, 1.0, f"1 × {ref}", log=True)
    fig.update_yaxes(type="log", title_text=f"{test_label} (× {ref})", range=log_range(df["multiple"], [1.0]))
    fig.update_xaxes(title_text=DAY_AXIS)
    return _style(fig, title or f"{test_label} over time as multiples of {ref}", height=460)


def edish_figure(df: pd.DataFrame,
                 title: str | None = "eDISH: peak ALT or AST vs peak total bilirubin") -> go.Figure:
    """Peak aminotransferase (the higher of ALT and AST, × ULN) against peak total bilirubin (× ULN) per subject,
    log-log, Hy's law lines at 3× and 2× (safety.derive.grading.liver).

    Columns: ``usubjid``, ``peak_aminotransferase_xuln``, ``aminotransferase`` ('ALT' or 'AST'), ``peak_bili_xuln``.
    """
    fig = go.Figure()
    at_x, bili_x = liver.AMINOTRANSFERASE_XULN, liver.BILIRUBIN_XULN
    x_col = "peak_aminotransferase_xuln"
    hy = (df[x_col] >= at_x) & (df["peak_bili_xuln"] >= bili_x)
    colors = np.where(hy, GRADE_COLORS[4], "#0072B2")
    # thousands of SVG markers take the browser seconds to lay out; WebGL draws them at once
    fig.add_trace((go.Scattergl if len(df) > WEBGL_POINTS else go.Scatter)(
        x=df[x_col], y=df["peak_bili_xuln"], mode="markers",
        marker=dict(size=13, color=colors, line=dict(color="#222", width=1)), showlegend=False,
        customdata=np.stack([shown_all(df["usubjid"]), shown_all(df["aminotransferase"])], axis=-1)
        if len(df) else None,
        hovertemplate="%{customdata[0]}<br>peak %{customdata[1]} %{x:.2f} × ULN<br>"
                      "peak bilirubin %{y:.2f} × ULN<extra></extra>"))
    for name, color in ((f"Possible Hy's law (ALT or AST ≥ {at_x} × ULN and bilirubin ≥ {bili_x} × ULN)",
                         GRADE_COLORS[4]),
                        ("Other subjects", "#0072B2")):  # legend entries for the two marker colours
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=name, hoverinfo="skip",
                                 marker=dict(size=13, color=color, line=dict(color="#222", width=1))))
    fig.add_vline(x=at_x, line=dict(color="#333", dash="dash", width=2))
    fig.add_hline(y=bili_x, line=dict(color="#333", dash="dash", width=2))
    fig.add_annotation(x=math.log10(at_x), y=1, xref="x", yref="y domain", text=f"ALT or AST {at_x} × ULN",
                       showarrow=False, xanchor="left", yanchor="top", font=dict(size=FONT_SIZE - 2, color="#333"))
    fig.add_annotation(x=0, y=math.log10(bili_x), xref="x domain", yref="y", text=f"Bilirubin {bili_x} × ULN",
                       showarrow=False, xanchor="left", yanchor="bottom", font=dict(size=FONT_SIZE - 2, color="#333"))
    xmax = max(float(df[x_col].max()) if len(df) else 10, 10)
    ymax = max(float(df["peak_bili_xuln"].max()) if len(df) else 5, 5)
    xmin = min(float(df.loc[df[x_col] > 0, x_col].min()) if (df[x_col] > 0).any() else 0.1, 0.5)
    ymin = min(float(df.loc[df["peak_bili_xuln"] > 0, "peak_bili_xuln"].min()) if (df["peak_bili_xuln"] > 0).any() else 0.1, 0.5)
    for x, y, text in ((xmax, ymax, "Possible Hy's law"), (xmin, ymax, "Hyperbilirubinaemia"),
                       (xmax, ymin, "Temple's corollary"), (xmin, ymin, "Normal range")):
        fig.add_annotation(x=math.log10(x), y=math.log10(y), text=text, showarrow=False,
                           xanchor="right" if x > 1 else "left", yanchor="top" if y > 1 else "bottom",
                           font=dict(size=FONT_SIZE - 1, color="#555"))
    fig.update_xaxes(type="log", title_text="Peak ALT or AST (× ULN)", range=[math.log10(xmin / 1.3), math.log10(xmax * 1.3)])
    fig.update_yaxes(type="log", title_text="Peak total bilirubin (× ULN)", range=[math.log10(ymin / 1.3), math.log10(ymax * 1.3)])
    return _style(fig, title, height=520)


def cytopenia_recovery_figure(df: pd.DataFrame, day_range: tuple[int, int] = (-7, 100),
                              title: str | None = "Cytopenia and recovery") -> go.Figure:
    """ANC and platelets per subject over days, with ICAHT (ANC 0.5 and 0.1) and platelet (50, 20) thresholds.

    Columns: ``usubjid``, ``lbtestcd`` (NEUT/PLAT), ``day``, ``value``.
    """
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1,
                        subplot_titles=("ANC (10^9/L)", "Platelets (10^9/L)"))
    for row, test, lines in ((1, "NEUT", (0.5, 0.1)), (2, "PLAT", (50, 20))):
        d = df[(df["lbtestcd"] == test) & df["day"].between(*day_range) & (df["value"] > 0)].sort_values("day")
        for subj, s in d.groupby("usubjid"):
            fig.add_trace(go.Scatter(
                x=s["day"], y=s["value"], mode="lines", line=dict(width=1.5), name=shown(subj),
                legendgroup=str(subj), showlegend=(row == 1), meta=shown(subj),
                hovertemplate=f"%{{meta}}<br>{test} %{{y:.3g}} × 10^9/L<br>day %{{x}}<extra></extra>"), row=row, col=1)
        for v in lines:
            reference_line(fig, v, f"{v:g} × 10^9/L", row=row, col=1, log=True, color=GRADE_COLORS[4], width=1.5)
        fig.update_yaxes(type="log", title_text="10^9/L", row=row, col=1,
                         range=log_range(d.loc[d["value"] > 0, "value"], lines))
    fig.update_xaxes(title_text=DAY_AXIS, row=2, col=1)
    return _style(fig, title, height=640)


# -- swimmer, survival ---------------------------------------------------------------------------------------

SWIMMER_DAYS = 365  # the swimmer plot's follow-up: to month 12


def swimmer_plot(subjects: pd.DataFrame, events: pd.DataFrame, max_day: int = SWIMMER_DAYS,
                 title: str | None = "Follow-up to month 12") -> go.Figure:
    """One bar per subject from day 0 to last contact (capped at ``max_day``, the hover giving the real day) with
    events on it.

    ``subjects``: usubjid, label, end_day, status, cohort. ``events``: usubjid, day, kind
    ('response', 'toxicity', 'death', 'dlt' for a DLT the committee counts, 'dlt pending' for an in-window
    candidate awaiting a decision), text (response code or term), grade (toxicities), optional at (what the
    day is, for the hover; "onset day" when missing, e.g. an AE with no start date marked at its end says so).
    Subjects are drawn in the given row order, first on top.
    """
    s = subjects.reset_index(drop=True)
    s["label"] = shown_all(s["label"])
    ylab = s["label"].tolist()
    lab_of = dict(zip(s["usubjid"], s["label"]))
    fig = go.Figure()
    status_color = {"died": "#555555", "discontinued": "#AAAAAA", "completed": "#7FB8DA", "in follow-up": "#B9DDF1"}
    for status, d in s.groupby("status"):
        # the bar stops at max_day; the hover gives the real last day
        followed = [f"day {x:g}" + (f" (beyond day {max_day}, where the bar stops)" if x > max_day else "")
                    if not pd.isna(x) else "day 0" for x in d["end_day"]]
        fig.add_trace(go.Bar(
            y=d["label"], x=d["end_day"].clip(upper=max_day).fillna(0), base=0, orientation="h",
            marker=dict(color=status_color.get(status, "#CCCCCC"), line=dict(color="#333", width=0.5)),
            name=f"Follow-up: {status}",
            customdata=np.stack([shown_all(d["usubjid"]), shown_all(d["cohort"]), followed], axis=-1),
            hovertemplate="%{customdata[0]} (%{customdata[1]})<br>followed to %{customdata[2]}<extra></extra>"))
    e = events[events["usubjid"].isin(lab_of)].copy()
    e["label"] = e["usubjid"].map(lab_of)
    e["at"] = e["at"].fillna("onset day") if "at" in e else "onset day"
    for c in ("usubjid", "text"):  # what the hovers show; the subject's own id still finds its row above
        e[f"{c}_shown"] = shown_all(e[c])
    for resp, d in e[e["kind"] == "response"].groupby("text"):
        fig.add_trace(go.Scatter(
            x=d["day"], y=d["label"], mode="markers",
            name=f"Response {shown(RESPONSE_LABELS.get(str(resp).upper(), resp))}",
            marker=dict(symbol=RESPONSE_SYMBOLS.get(str(resp).upper(), "triangle-up"), size=14,
                        color=RESPONSE_COLORS.get(str(resp).upper(), "#777"),
                        line=dict(color="#000", width=1)),
            customdata=d[["usubjid_shown", "text_shown"]].to_numpy(),
            hovertemplate="%{customdata[0]}<br>response %{customdata[1]}<br>day %{x}<extra></extra>"))
    tox = e[e["kind"] == "toxicity"]
    for grade, d in tox.groupby("grade"):
        fig.add_trace(go.Scatter(
            x=d["day"], y=d["label"], mode="markers", name=f"Toxicity {grade_legend_name(grade).lower()}",
            marker=dict(symbol="circle", size=11, color=grade_color(grade), line=dict(color="#000", width=1)),
            customdata=d[["usubjid_shown", "text_shown", "at"]].to_numpy(),
            hovertemplate="%{customdata[0]}<br>%{customdata[1]} " + grade_legend_name(grade).lower()
                          + "<br>%{customdata[2]} %{x}<extra></extra>"))
    death = e[e["kind"] == "death"]
    if not death.empty:
        fig.add_trace(go.Scatter(
            x=death["day"], y=death["label"], mode="markers", name="Death",
            marker=dict(symbol="x", size=14, color="#000"), customdata=death[["usubjid_shown", "text_shown"]].to_numpy(),
            hovertemplate="%{customdata[0]}<br>death: %{customdata[1]}<br>day %{x}<extra></extra>"))
    for kind, name, symbol in (("dlt", "DLT (committee decision)", "star"),
                               ("dlt pending", "DLT candidate pending", "star-open")):
        d = e[e["kind"] == kind]
        if not d.empty:
            fig.add_trace(go.Scatter(
                x=d["day"], y=d["label"], mode="markers", name=name,
                marker=dict(symbol=symbol, size=15, color="#CC0000", line=dict(color="#000", width=1)),
                customdata=d[["usubjid_shown", "text_shown", "at"]].to_numpy(),
                hovertemplate="%{customdata[0]}<br>" + name + ": %{customdata[1]}<br>%{customdata[2]} %{x}"
                              "<extra></extra>"))
    for m, day in ((3, 91), (6, 182), (12, 365)):
        fig.add_vline(x=day, line=dict(color="#999", dash="dot"), annotation_text=f"M{m}", annotation_position="top")
    fig.update_layout(barmode="overlay")
    fig.update_yaxes(categoryorder="array", categoryarray=ylab[::-1], title_text="Subject", type="category")
    fig.update_xaxes(title_text=DAY_AXIS, range=[-5, max_day + 10])
    return _style(fig, title, height=max(400, 140 + 24 * len(s)))

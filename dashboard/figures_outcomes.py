"""Plotly figure builders for the outcome pages: cumulative incidence and Kaplan-Meier curves with numbers at
risk, cellular kinetics, immune markers over time. Pure functions of DataFrames, no Streamlit; the same fonts,
grade colours and day axis as :mod:`dashboard.figures`.
"""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard.figures import log_range, shown, shown_all
from safety.core.numbers import fixed
from safety.core.palette import GRADE_COLORS, grade_color
from safety.derive.outcomes.survival import AT_RISK_FROM_INFUSION

FONT = dict(family="Arial, Helvetica, sans-serif", size=16, color="#222222")
DAY_AXIS = "Days from infusion (day 0)"
CURVE_COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7")


def _layout(fig: go.Figure, title: str, height: int, subtitle: str | None = None) -> go.Figure:
    # no template here: every dashboard chart gets plotly_white when drawn (dashboard.widgets.figure_dict)
    head = dict(text=title, font=dict(size=20))
    if subtitle:
        head["subtitle"] = dict(text=subtitle, font=dict(size=15))
    fig.update_layout(title=head, font=FONT, height=height + (24 if subtitle else 0),
                      margin=dict(l=90, r=30, t=94 if subtitle else 70, b=60), legend=dict(orientation="h", y=-0.18))
    return fig


def _with_risk_table(curves: list[tuple[str, pd.DataFrame, str]], risk: list[tuple[str, pd.DataFrame]], title: str,
                     y_title: str, y_max: float | None = None, x_title: str = DAY_AXIS,
                     subtitle: str | None = None) -> go.Figure:
    """Step curves on top, the numbers at risk under them (one row per group), on one day axis (``x_title``).

    Each number is drawn whole, also at day 0 and at the axis' end (a number cut at the plot's edge read as
    another: 22 at risk on day 0 showed as "2")."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.78, 0.22], vertical_spacing=0.08)
    for i, (name, curve, col) in enumerate(curves):
        name = shown(name)  # a cohort or group name as delivered: shown as written, named in the hover by meta
        fig.add_trace(go.Scatter(x=curve["day"], y=curve[col], mode="lines", line=dict(shape="hv", width=3,
                                 color=CURVE_COLORS[i % len(CURVE_COLORS)]), name=name,
                                 # the estimate as the pages' tiles and the packet print it (safety.core.numbers)
                                 customdata=list(zip(curve["n_at_risk"], [fixed(100 * v) for v in curve[col]])),
                                 meta=name,
                                 hovertemplate="day %{x}: %{customdata[1]}% (at risk %{customdata[0]})<extra>%{meta}</extra>"),
                      row=1, col=1)
    labels = []
    for i, (name, r) in enumerate(risk):
        name = shown(name)
        fig.add_trace(go.Scatter(x=r["day"], y=[name] * len(r), mode="text", text=r["n_at_risk"].astype(str),
                                 textfont=dict(size=15, color=CURVE_COLORS[i % len(CURVE_COLORS)]), showlegend=False,
                                 name=f"{name}: number at risk", cliponaxis=False,
                                 hovertemplate="day %{x}: %{text} at risk<extra></extra>"), row=2, col=1)
        labels.append(name)
    fig.update_yaxes(title_text=y_title, tickformat=".0%", range=[0, y_max or 1.0], row=1, col=1)
    # the row names stand clear of a number drawn at day 0
    fig.update_yaxes(title_text="Number at risk", categoryorder="array", categoryarray=labels[::-1], row=2, col=1,
                     showgrid=False, ticklabelstandoff=16)
    fig.update_xaxes(title_text=x_title, row=2, col=1, rangemode="tozero")
    return _layout(fig, title, 520 + 24 * max(0, len(labels) - 1), subtitle)


def cumulative_incidence_figure(curve: pd.DataFrame, risk: pd.DataFrame, title: str, event: str,
                                competing: str) -> go.Figure:
    """Aalen-Johansen cumulative incidence of ``event``, the competing event named under the title (a y title
    long enough to hold it ran off the plot), with the numbers at risk of the infused subjects from day 0 beneath
    (row "Infused subjects")."""
    top = max(0.1, float(curve["cumulative_incidence"].max()) * 1.2) if len(curve) else 1.0
    return _with_risk_table([(event, curve, "cumulative_incidence")], [(AT_RISK_FROM_INFUSION, risk)], title,
                            "Cumulative incidence", min(1.0, top), subtitle=f"Competing event: {competing}")


def kaplan_meier_figure(groups: list[tuple[str, pd.DataFrame, pd.DataFrame]], title: str, y_title: str,
                        x_title: str = DAY_AXIS) -> go.Figure:
    """Kaplan-Meier curves (one per group: name, curve, numbers at risk) with the numbers at risk beneath, on a
    day axis from infusion unless ``x_title`` says the times start elsewhere (e.g. at the first response)."""
    return _with_risk_table([(n, c, "survival") for n, c, _ in groups], [(n, r) for n, _, r in groups], title, y_title,
                            x_title=x_title)


def expansion_by_crs_grade(pc: pd.DataFrame, crs_max: pd.DataFrame, unit: str) -> go.Figure:
    """CAR expansion per subject (log scale), coloured by the subject's maximum CRS grade; BLQ drawn at the LLOQ / 2."""
    df = pc.merge(crs_max, on="usubjid", how="left").fillna({"crs_max_grade": 0})
    fig = go.Figure()
    in_legend = set()
    for u, g in df.sort_values(["usubjid", "day"]).groupby("usubjid", sort=False):
        grade = int(g["crs_max_grade"].iloc[0])
        y = g["value"].where(~g["below_lloq"], g["lloq"] / 2.0)
        fig.add_trace(go.Scatter(x=g["day"], y=y, mode="lines+markers", name=f"max CRS grade {grade}",
                                 legendgroup=str(grade), showlegend=grade not in in_legend,
                                 line=dict(color=grade_color(grade) if grade else "#7F7F7F", width=2),
                                 marker=dict(size=6), text=[shown(u)] * len(g),
                                 hovertemplate="%{text}<br>day %{x}: %{y:.4g}<extra>max CRS grade " + str(grade) + "</extra>"))
        in_legend.add(grade)
    fig.update_yaxes(type="log", title_text=f"CAR level ({shown(unit)}, log scale)")
    fig.update_xaxes(title_text=DAY_AXIS)
    return _layout(fig, "CAR expansion and persistence by maximum CRS grade", 520)


def samples_not_drawn(pc: pd.DataFrame) -> str | None:
    """What a kinetics chart leaves out of ``pc`` (rows of safety.derive.outcomes.kinetics.curve_samples), or None."""
    n = int((~pc["used"].astype(bool)).sum())
    if not n:
        return None
    return (f"{n} sample{'s' if n > 1 else ''} of another specimen (bone marrow, CSF) or unit not drawn: the parameters "
            "are of peripheral blood in the subject's unit ('values used' names what was left out).")


def cmax_by_crs_grade(kin: pd.DataFrame, crs_max: pd.DataFrame, unit: str) -> go.Figure:
    """Cmax per subject against the maximum CRS grade (the peak-toxicity relation a committee looks for)."""
    df = kin.merge(crs_max, on="usubjid", how="left").fillna({"crs_max_grade": 0})
    fig = go.Figure()
    for grade, g in df.groupby("crs_max_grade"):
        grade = int(grade)
        fig.add_trace(go.Box(x=[f"CRS grade {grade}"] * len(g), y=g["cmax"], name=f"CRS grade {grade}", boxpoints="all",
                             marker=dict(color=GRADE_COLORS.get(grade, "#7F7F7F") if grade else "#7F7F7F"),
                             text=shown_all(g["usubjid"]), hovertemplate="%{text}: Cmax %{y:.4g}<extra></extra>"))
    fig.update_yaxes(type="log", title_text=f"Cmax ({shown(unit)}, log scale)")
    fig.update_layout(showlegend=False)
    return _layout(fig, "Cmax by maximum CRS grade", 460)


def subject_kinetics(pc: pd.DataFrame, grades: pd.DataFrame, usubjid: str) -> go.Figure:
    """One subject: CAR level (log) on top, daily CRS and ICANS grades beneath, on one day axis."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.6, 0.4], vertical_spacing=0.08)
    plotted = []
    for test, g in pc.sort_values("day").groupby("pctestcd"):
        y = g["value"].where(~g["below_lloq"], g["lloq"] / 2.0)
        plotted.append(y)
        fig.add_trace(go.Scatter(x=g["day"], y=y, mode="lines+markers", name=shown(f"{test} ({g['unit'].iloc[0]})"),
                                 line=dict(color="#0072B2", width=3), meta=shown(test),
                                 hovertemplate="day %{x}: %{y:.4g}<extra>%{meta}</extra>"), row=1, col=1)
    for syn, color in (("CRS", "#D55E00"), ("ICANS", "#CC79A7")):
        g = grades[grades["syndrome"] == syn].sort_values("day")
        if len(g):
            fig.add_trace(go.Scatter(x=g["day"], y=g["grade"], mode="lines", line=dict(shape="hv", width=3, color=color),
                                     name=f"{syn} grade", hovertemplate="day %{x}: grade %{y}<extra>" + syn + "</extra>"),
                          row=2, col=1)
    y_all = pd.concat(plotted) if plotted else pd.Series(dtype=float)
    fig.update_yaxes(type="log", title_text="CAR level (log)", range=log_range(y_all[y_all > 0]), row=1, col=1)
    fig.update_yaxes(title_text="Grade", range=[-0.2, 5.2], dtick=1, row=2, col=1)
    fig.update_xaxes(title_text=DAY_AXIS, row=2, col=1)
    return _layout(fig, f"{shown(usubjid)}: CAR expansion beside CRS and ICANS grades", 560)


def marker_over_time(lab: pd.DataFrame, ivig: pd.DataFrame, label: str, threshold: float, unit: str,
                     finding: str) -> go.Figure:
    """A monitored immune marker per subject over time, the threshold as a dashed line, IVIG doses as ticks."""
    label, unit, finding = shown(label), shown(unit), shown(finding)  # study.yaml's words, shown as written
    fig = go.Figure()
    for u, g in lab.sort_values(["usubjid", "day"]).groupby("usubjid"):
        fig.add_trace(go.Scatter(x=g["day"], y=g["value"], mode="lines+markers", name=shown(u), line=dict(width=1.5),
                                 meta=shown(u), hovertemplate="%{meta}<br>day %{x}: %{y}<extra></extra>",
                                 showlegend=False))
    if len(ivig):
        fig.add_trace(go.Scatter(x=ivig["start_day"], y=[threshold] * len(ivig), mode="markers", name="IVIG given",
                                 marker=dict(symbol="triangle-up", size=14, color="#009E73"), text=shown_all(ivig["usubjid"]),
                                 hovertemplate="%{text}: IVIG day %{x}<extra></extra>"))
    fig.add_hline(y=threshold, line=dict(dash="dash", color="#D55E00", width=2),
                  annotation_text=f"{finding}", annotation_position="top left")
    fig.update_yaxes(title_text=f"{label} ({unit})" if unit else label, rangemode="tozero")
    fig.update_xaxes(title_text=DAY_AXIS)
    return _layout(fig, f"{label} over time", 480)

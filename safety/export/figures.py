"""Overview figures for the PDF packet, as Plotly figures rendered to PNG with kaleido.

Each builder takes a StudyReader and returns ``(figure or None, note)``; :func:`render_pngs` returns
PNG bytes or None with the reason, so a missing browser or a failed render never stops the packet. The
renderer runs in a child process with a time limit: a browser that starts but never answers (seen when
Chromium cannot start its sandbox or profile) costs the packet its figures, not the export.
"""
from __future__ import annotations

from typing import Callable

import pandas as pd
import plotly.graph_objects as go

from safety.access.reader import StudyReader
from safety.derive.dlt.stopping import boundary_rows, event_label, rule_title
from safety.export import common as c
from safety.export.renderer import RENDER_TIMEOUT_S, Renderer  # noqa: F401 - RENDER_TIMEOUT_S: the one limit
from safety.core.palette import GRADE_COLORS

SWIMMER_MAX_SUBJECTS = 60


def _layout(fig: go.Figure, title: str) -> go.Figure:
    fig.update_layout(title=title, template="plotly_white", width=1000, height=520,
                      margin=dict(l=70, r=20, t=60, b=50), font=dict(family="DejaVu Sans, Arial", size=12))
    return fig


def fig_crs_icans_incidence(reader: StudyReader):
    """Stacked bars: subjects by maximum ASTCT grade, per syndrome and cohort."""
    if not reader.has_tables("toxicity_episodes"):
        return None, "CRS/ICANS figure unavailable: toxicity_episodes is not in this database file."
    df = reader.sql("""
WITH pop AS (SELECT usubjid, coalesce(cohort, '(no cohort)') AS cohort FROM subjects WHERE infused IS TRUE),
mx AS (SELECT e.syndrome, e.usubjid, max(e.max_grade) AS g FROM toxicity_episodes e GROUP BY ALL)
SELECT p.cohort, mx.syndrome, mx.g AS grade, count(*) AS n,
  (SELECT count(*) FROM pop p2 WHERE p2.cohort = p.cohort) AS n_cohort
FROM mx JOIN pop p USING (usubjid) WHERE mx.syndrome IN ('CRS', 'ICANS') GROUP BY ALL ORDER BY ALL""")
    if df.empty:
        return None, "No CRS or ICANS episodes at this data cut."
    df["x"] = df["syndrome"] + " | " + df["cohort"].astype(str) + " (N=" + df["n_cohort"].astype(str) + ")"
    xs = sorted(df["x"].unique())
    fig = go.Figure()
    for g in range(1, 6):
        part = df[df["grade"] == g].set_index("x")["n"]
        fig.add_bar(x=xs, y=[int(part.get(x, 0)) for x in xs], name=f"Grade {g}",
                    marker_color=GRADE_COLORS[g], marker_line_color="#333333", marker_line_width=0.5)
    fig.update_layout(barmode="stack", yaxis_title="Subjects", legend_title="Maximum grade")
    return _layout(fig, "CRS and ICANS: subjects by maximum ASTCT grade"), ""


def fig_swimmer(reader: StudyReader):
    """Follow-up per infused subject from day 0, with CRS/ICANS onsets (coloured by grade) and deaths."""
    # deaths from the derived table (DM, DS or fatal AE), as the deaths listing; a file written before it
    # existed has the DM/DS deaths only, and the figure says so
    with_deaths = reader.has_tables("deaths")
    death = "d.death_day" if with_deaths else "s.death_day"
    join = "LEFT JOIN deaths d USING (usubjid)" if with_deaths else ""
    subj = reader.sql(f"""
SELECT s.usubjid, coalesce(s.cohort, '') AS cohort, coalesce(s.last_known_alive_day, 0) AS last_day,
       {death} AS death_day
FROM subjects s {join} WHERE s.infused IS TRUE
ORDER BY s.enrollment_order NULLS LAST, s.usubjid LIMIT {SWIMMER_MAX_SUBJECTS}""")
    total = reader.scalar("SELECT count(*) FROM subjects WHERE infused IS TRUE") or 0
    if subj.empty:
        return None, "No infused subjects at this data cut."
    ev = None
    if reader.has_tables("toxicity_episodes"):
        ev = reader.sql("SELECT usubjid, syndrome, onset_day, max_grade FROM toxicity_episodes "
                               "WHERE usubjid IN (SELECT unnest($ids::VARCHAR[]))",
                       {"ids": subj["usubjid"].tolist()})
    labels = [f"{u} ({co})" if co else u for u, co in zip(subj["usubjid"], subj["cohort"])]
    ymap = dict(zip(subj["usubjid"], labels))
    fig = go.Figure()
    fig.add_bar(y=labels, x=subj["last_day"].clip(lower=0), orientation="h", marker_color="#BBBBBB",
                name="Follow-up (days)", showlegend=True)
    if ev is not None and not ev.empty:
        for syn, symbol in (("CRS", "circle"), ("ICANS", "diamond")):
            e = ev[ev["syndrome"] == syn]
            if e.empty:
                continue
            fig.add_scatter(y=e["usubjid"].map(ymap), x=e["onset_day"], mode="markers", name=f"{syn} onset",
                            marker=dict(symbol=symbol, size=10, line=dict(color="#333333", width=1),
                                        color=[GRADE_COLORS.get(int(g), "#FFFFFF") if pd.notna(g) else "#FFFFFF"
                                               for g in e["max_grade"]]))
    d = subj[subj["death_day"].notna()]
    if not d.empty:
        fig.add_scatter(y=d["usubjid"].map(ymap), x=d["death_day"], mode="markers", name="Death",
                        marker=dict(symbol="x", size=11, color="#000000"))
    shown = len(subj)
    title = "Swimmer plot: follow-up from infusion (day 0)"
    if total > shown:
        title += f" - first {shown} of {total} infused subjects by enrolment"
    fig.update_layout(xaxis_title="Day from infusion", yaxis=dict(autorange="reversed", tickfont=dict(size=8)),
                      height=max(420, 16 * shown + 140))
    fig = _layout(fig, title)
    fig.update_layout(height=max(420, 14 * shown + 140))
    return fig, "" if with_deaths else ("Deaths from DM and DS only: the derived table deaths (which adds deaths "
                                        "recorded only as a fatal AE) is not in this database file.")


# column of stopping_boundaries -> (legend, colour, dash); the lines each method defines
_BOUNDARY_LINES = {
    "stop_if_events_ge": ("Stop at or above", GRADE_COLORS[4], "solid"),
    "eliminate_if_ge": ("Eliminate dose (and higher) at or above", "#000000", "solid"),
    "deescalate_if_ge": ("De-escalate at or above", GRADE_COLORS[3], "dash"),
    "escalate_if_le": ("Escalate at or below", "#009E73", "dot"),
}


def fig_dlt_boundary(reader: StudyReader, store=None, live=None):
    """The configured stopping or escalation rule: the method's boundary lines and each dose level's (or the
    study's) events, computed now from the committee decisions in force (the rows the app and the
    stopping_rules table show), titled with the method, its source and the monitored event as protocols print
    them (a BOIN rule is never drawn or titled as a beta-binomial one). ``live``: the packet's
    :func:`~safety.review.dlt_status.dlt_status` when already computed."""
    cfg = c.study_settings(reader)
    rule = cfg["stopping_rule"]
    bd = None
    if reader.has_tables("stopping_boundaries"):
        bd = reader.sql("SELECT n, stop_if_events_ge, eliminate_if_ge, deescalate_if_ge, escalate_if_le "
                        "FROM stopping_boundaries WHERE method = $m ORDER BY n", {"m": rule["method"]})
    if bd is None or bd.empty:  # the table was not derived: the same rows from the settings
        bd = boundary_rows(cfg, reader.scope.studyid, reader.scope.data_cut)
    fig = go.Figure()
    for col, (name, color, dash) in _BOUNDARY_LINES.items():
        part = bd.dropna(subset=[col]) if col in bd else bd.iloc[0:0]
        if not part.empty:
            fig.add_scatter(x=part["n"], y=part[col], mode="lines", line_shape="hv", name=name,
                            line=dict(color=color, width=2, dash=dash))
    status = None
    if live is None:
        live = c.current_dlt_status(reader, store)
    if live is not None:
        status = live.stopping.assign(cohort=live.stopping["cohort"].fillna("study"))
    if status is not None and not status.empty:
        fig.add_scatter(x=status["evaluable_n"], y=status["events"], mode="markers+text", name="Observed",
                        text=status["cohort"].astype(str), textposition="top center",
                        marker=dict(size=12, color=GRADE_COLORS[1], line=dict(color="#333333", width=1)))
        note = ""
    else:
        note = "No stopping-rule status at this cut: boundary only."
    fig.update_layout(xaxis_title="Evaluable subjects", yaxis_title=f"Subjects with {event_label(rule['event'])}")
    return _layout(fig, rule_title(cfg)), note


FIGURES = {
    "crs_icans_incidence": ("CRS and ICANS incidence by maximum grade", fig_crs_icans_incidence),
    "swimmer": ("Swimmer plot of follow-up and toxicity onsets", fig_swimmer),
    "dlt_boundary": ("Stopping or escalation rule: boundary and observed events", fig_dlt_boundary),
}


def render_pngs(figs: list[go.Figure], scale: float = 1.0, timeout: float | None = None,
                renderer: Renderer | None = None) -> list[tuple[bytes | None, str]]:
    """[(PNG bytes, "") or (None, reason)] per figure, rendered together by one kaleido child process
    (``renderer`` if one was started ahead, else a new one), which is closed afterwards.

    The child (and any browser it started) is killed after ``timeout`` seconds from the request (default
    CELLTOX_RENDER_TIMEOUT, else :data:`RENDER_TIMEOUT_S`)."""
    if not figs:
        if renderer is not None:
            renderer.close()
        return []
    renderer = renderer or Renderer()
    try:
        return renderer.render([f.to_json() for f in figs], scale, timeout)
    finally:
        renderer.close()


def submit_figures(reader: StudyReader, store, renderer: Renderer, live=None
                   ) -> Callable[[], list[tuple[str, bytes | None, str]]]:
    """Build the packet's overview figures and hand them to the renderer, which renders them while the caller
    goes on; returns the function that waits for them: [(title, png or None, note)] in :data:`FIGURES` order.

    ``live``: the packet's DLT state (:func:`~safety.review.dlt_status.dlt_status`), computed here when not
    given. The caller closes ``renderer`` after collecting (the child stops its browser meanwhile); it is
    closed here on error."""
    try:
        built = []
        for _, (title, builder) in FIGURES.items():
            try:
                fig, note = builder(reader, store, live) if builder is fig_dlt_boundary else builder(reader)
            except Exception as exc:  # noqa: BLE001
                fig, note = None, f"figure unavailable: {type(exc).__name__}: {exc}"
            built.append((title, fig, note))
        specs = [fig.to_json() for _, fig, _ in built if fig is not None]
        if specs:
            renderer.submit(specs)
    except BaseException:
        renderer.close()
        raise

    def collect() -> list[tuple[str, bytes | None, str]]:
        rendered = iter(renderer.result())
        out = []
        for title, fig, note in built:
            png = None
            if fig is not None:
                png, err = next(rendered)
                note = err or note
            out.append((title, png, note))
        return out
    return collect


def build_figures(reader: StudyReader, store=None, renderer: Renderer | None = None, live=None
                  ) -> list[tuple[str, bytes | None, str]]:
    """[(title, png or None, note)] for the packet's overview figures (decisions in ``store`` applied now),
    rendered by ``renderer`` (one started ahead) or a new one; the renderer is closed afterwards."""
    renderer = renderer or Renderer()
    try:
        return submit_figures(reader, store, renderer, live)()
    finally:
        renderer.close()

"""Overview figures for the PDF packet: their data read from the study here, drawn as Plotly figure
specifications by :mod:`safety.export.figure_plots` and rendered to PNG with kaleido.

Each ``*_data`` function takes a StudyReader and returns ``(data or None, note)``: plain lists, numbers and text
(JSON as it is sent). :func:`submit_figures` sends the data to the renderer's child process, which draws the
figures with Plotly and renders them while this process builds the tables, so the export itself never imports
Plotly. The ``fig_*`` functions draw the same figures in process. A missing browser or a failed render never
stops the packet: the renderer runs in a child process with a time limit (a browser that starts but never
answers, seen when Chromium cannot start its sandbox or profile, costs the packet its figures, not the export).
"""
from __future__ import annotations

import math
from typing import Callable

import pandas as pd

from safety.access.reader import StudyReader
from safety.core.config import dlt_window
from safety.derive.dlt.stopping import boundary_axis_title, boundary_rows, event_label, rule_title
from safety.derive.toxicity import summary as tox
from safety.export import common as c
from safety.export.tables import _summary_group
from safety.export.renderer import RENDER_TIMEOUT_S, Renderer  # noqa: F401 - RENDER_TIMEOUT_S: the one limit
from safety.core.palette import BOUNDARY_LINES, GRADE_COLORS

SWIMMER_MAX_SUBJECTS = 60


def _values(values) -> list:
    """A column as JSON values: numpy and pandas scalars as Python numbers, missing values as None."""
    out = []
    for v in values:
        if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v)):
            out.append(None)
        elif hasattr(v, "item"):
            v = v.item()
            out.append(None if isinstance(v, float) and math.isnan(v) else v)
        else:
            out.append(v)
    return out


def crs_icans_incidence_data(reader: StudyReader):
    """Stacked bars: subjects by maximum ASTCT grade, per syndrome and cohort with any grade; the counts of the
    packet's CRS/ICANS table and the dashboard's CRS & ICANS page (:func:`tox.incidence_table`), not a count of
    their own."""
    if not reader.has_tables("toxicity_episodes"):
        return None, "CRS/ICANS figure unavailable: toxicity_episodes is not in this database file."
    inc = pd.concat([tox.incidence_table(reader, syn, by="cohort") for syn in tox.SYNDROMES], ignore_index=True)
    inc = inc[inc["group"] != tox.ALL_LABEL]
    inc["cohort"] = inc["group"].map(_summary_group)
    inc["x"] = inc["syndrome"] + " | " + inc["cohort"] + " (N=" + inc["total"].astype(str) + ")"
    # a bar per syndrome and cohort with a subject of any grade, as the packet's table counts them
    shown = inc[(inc["category"] == tox.ANY_GRADE) & (inc["subjects"] > 0)]["x"]
    if shown.empty:
        return None, "No CRS or ICANS episodes at this data cut."
    xs = sorted(shown.unique())
    grades = inc[inc["grade"].notna()].set_index(["x", "grade"])["subjects"]
    bars = [{"name": f"Grade {g}", "color": GRADE_COLORS[g], "y": [int(grades[(x, g)]) for x in xs]}
            for g in range(1, 6)]
    return {"title": "CRS and ICANS: subjects by maximum ASTCT grade", "xs": [str(x) for x in xs], "bars": bars}, ""


def swimmer_data(reader: StudyReader):
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
    onsets = []
    if ev is not None and not ev.empty:
        for syn, symbol in (("CRS", "circle"), ("ICANS", "diamond")):
            e = ev[ev["syndrome"] == syn]
            if e.empty:
                continue
            onsets.append({"name": f"{syn} onset", "symbol": symbol, "y": _values(e["usubjid"].map(ymap)),
                           "x": _values(e["onset_day"]),
                           "colors": [GRADE_COLORS.get(int(g), "#FFFFFF") if pd.notna(g) else "#FFFFFF"
                                      for g in e["max_grade"]]})
    d = subj[subj["death_day"].notna()]
    deaths = None if d.empty else {"y": _values(d["usubjid"].map(ymap)), "x": _values(d["death_day"])}
    shown = len(subj)
    title = "Swimmer plot: follow-up from infusion (day 0)"
    if total > shown:
        title += f" - first {shown} of {total} infused subjects by enrolment"
    data = {"title": title, "labels": labels, "last_day": _values(subj["last_day"].clip(lower=0)),
            "onsets": onsets, "deaths": deaths, "height": max(420, 14 * shown + 140)}
    return data, "" if with_deaths else ("Deaths from DM and DS only: the derived table deaths (which adds deaths "
                                         "recorded only as a fatal AE) is not in this database file.")


def dlt_boundary_data(reader: StudyReader, store=None, live=None):
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
    lines = []
    for col, (name, color, dash) in BOUNDARY_LINES.items():
        part = bd.dropna(subset=[col]) if col in bd else bd.iloc[0:0]
        if not part.empty:
            lines.append({"name": name, "color": color, "dash": dash, "x": _values(part["n"]),
                          "y": _values(part[col])})
    status = None
    if live is None:
        live = c.current_dlt_status(reader, store)
    if live is not None:
        status = live.stopping.assign(cohort=live.stopping["cohort"].fillna("study"))
    observed = None
    if status is not None and not status.empty:
        observed = {"x": _values(status["evaluable_n"]), "y": _values(status["events"]),
                    "text": [str(t) for t in status["cohort"].astype(str)], "color": GRADE_COLORS[1]}
        note = ""
    else:
        note = c.site_scoped_boundary_note(reader) or "No stopping-rule status at this cut: boundary only."
    data = {"title": rule_title(cfg), "yaxis_title": boundary_axis_title(event_label(rule["event"], dlt_window(cfg))),
            "lines": lines, "observed": observed}
    return data, note


def _drawn(name: str, data_and_note):
    """(Plotly figure or None, note): the figure ``name`` drawn in this process from its data."""
    import plotly.graph_objects as go  # Plotly's figure classes only when a figure is drawn here

    from safety.export.figure_plots import PLOTS
    data, note = data_and_note
    return (go.Figure(PLOTS[name](data)) if data is not None else None), note


def fig_crs_icans_incidence(reader: StudyReader):
    """(figure or None, note): :func:`crs_icans_incidence_data` drawn."""
    return _drawn("crs_icans_incidence", crs_icans_incidence_data(reader))


def fig_swimmer(reader: StudyReader):
    """(figure or None, note): :func:`swimmer_data` drawn."""
    return _drawn("swimmer", swimmer_data(reader))


def fig_dlt_boundary(reader: StudyReader, store=None, live=None):
    """(figure or None, note): :func:`dlt_boundary_data` drawn."""
    return _drawn("dlt_boundary", dlt_boundary_data(reader, store, live))


# name -> (title in the packet, the function reading its data); figure_plots.PLOTS draws each name
FIGURES = {
    "crs_icans_incidence": ("CRS and ICANS incidence by maximum grade", crs_icans_incidence_data),
    "swimmer": ("Swimmer plot of follow-up and toxicity onsets", swimmer_data),
    "dlt_boundary": ("Stopping or escalation rule: boundary and observed events", dlt_boundary_data),
}


def render_pngs(figs: list, scale: float = 1.0, timeout: float | None = None,
                renderer: Renderer | None = None) -> list[tuple[bytes | None, str]]:
    """[(PNG bytes, "") or (None, reason)] per figure (a Plotly figure), rendered together by one kaleido child
    process (``renderer`` if one was started ahead, else a new one), which is closed afterwards.

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
    """Read the packet's overview figures' data and hand it to the renderer, which draws and renders the
    figures while the caller goes on; returns the function that waits for them: [(title, png or None, note)]
    in :data:`FIGURES` order.

    ``live``: the packet's DLT state (:func:`~safety.review.dlt_status.dlt_status`), computed here when not
    given. The caller closes ``renderer`` after collecting (the child stops its browser meanwhile); it is
    closed here on error."""
    try:
        built = []
        for name, (title, read) in FIGURES.items():
            try:
                data, note = read(reader, store, live) if read is dlt_boundary_data else read(reader)
            except Exception as exc:  # noqa: BLE001
                data, note = None, f"figure unavailable: {type(exc).__name__}: {exc}"
            built.append((title, None if data is None else {"plot": name, "data": data}, note))
        specs = [spec for _, spec, _ in built if spec is not None]
        if specs:
            renderer.submit(specs)
    except BaseException:
        renderer.close()
        raise

    def collect() -> list[tuple[str, bytes | None, str]]:
        rendered = iter(renderer.result())
        out = []
        for title, spec, note in built:
            png = None
            if spec is not None:
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

"""Overview figures for the PDF packet, as Plotly figures rendered to PNG with kaleido.

Each builder takes a StudyReader and returns ``(figure or None, note)``; :func:`render_png` returns
PNG bytes or None with the reason, so a missing browser or a failed render never stops the packet.
"""
from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import tempfile
import threading
import time
import warnings

import pandas as pd
import plotly.graph_objects as go

from safety.access import StudyReader
from safety.export import common as c
from safety.palette import GRADE_COLORS

SWIMMER_MAX_SUBJECTS = 60
_server_lock = threading.Lock()
_server_started = False
_browser_tmp: str | None = None  # our own parent folder for Chromium's profile, removed by close_renderer


def _layout(fig: go.Figure, title: str) -> go.Figure:
    fig.update_layout(title=title, template="plotly_white", width=1000, height=520,
                      margin=dict(l=70, r=20, t=60, b=50), font=dict(family="DejaVu Sans, Arial", size=12))
    return fig


def fig_crs_icans_incidence(reader: StudyReader):
    """Stacked bars: subjects by maximum ASTCT grade, per syndrome and cohort."""
    if not c.registered("toxicity_episodes"):
        return None, "CRS/ICANS figure unavailable: toxicity_episodes not installed."
    df = c.try_sql(reader, """
WITH pop AS (SELECT usubjid, coalesce(cohort, '(no cohort)') AS cohort FROM subjects WHERE infused IS TRUE),
mx AS (SELECT e.syndrome, e.usubjid, max(e.max_grade) AS g FROM toxicity_episodes e GROUP BY ALL)
SELECT p.cohort, mx.syndrome, mx.g AS grade, count(*) AS n,
  (SELECT count(*) FROM pop p2 WHERE p2.cohort = p.cohort) AS n_cohort
FROM mx JOIN pop p USING (usubjid) WHERE mx.syndrome IN ('CRS', 'ICANS') GROUP BY ALL ORDER BY ALL""")
    if df is None:
        return None, "CRS/ICANS figure unavailable: toxicity_episodes not in the database."
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
    subj = reader.sql(f"""
SELECT usubjid, coalesce(cohort, '') AS cohort, coalesce(last_known_alive_day, 0) AS last_day, death_day
FROM subjects WHERE infused IS TRUE ORDER BY enrollment_order NULLS LAST, usubjid LIMIT {SWIMMER_MAX_SUBJECTS}""")
    total = reader.scalar("SELECT count(*) FROM subjects WHERE infused IS TRUE") or 0
    if subj.empty:
        return None, "No infused subjects at this data cut."
    ev = None
    if c.registered("toxicity_episodes"):
        ev = c.try_sql(reader, "SELECT usubjid, syndrome, onset_day, max_grade FROM toxicity_episodes "
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
    return fig, ""


def stopping_boundary(cfg: dict) -> pd.DataFrame:
    """Beta-binomial stopping boundary: for each n, the fewest events with P(p > threshold | y, n) > cutoff."""
    from scipy.stats import beta
    rule = cfg.get("stopping_rule", {})
    a, b = float(rule.get("prior_a", 0.5)), float(rule.get("prior_b", 1.5))
    thr, cut = float(rule.get("threshold", 0.25)), float(rule.get("posterior_cutoff", 0.90))
    rows = []
    for n in range(max(1, int(rule.get("min_n", 1))), int(rule.get("max_n", 24)) + 1):
        stop = next((y for y in range(n + 1) if beta.sf(thr, a + y, b + n - y) > cut), None)
        rows.append({"n": n, "stop_at": stop})
    return pd.DataFrame(rows)


def fig_dlt_boundary(reader: StudyReader):
    """Events against the stopping boundary, with each cohort's (and the study's) observed position."""
    cfg = c.study_settings(reader)
    method = cfg.get("stopping_rule", {}).get("method", "bayesian_beta_binomial")
    if method != "bayesian_beta_binomial" and not c.registered("stopping_boundaries"):
        return None, f"Boundary figure drawn for the Bayesian beta-binomial rule only (study uses {method})."
    fig = go.Figure()
    bd = None
    if c.registered("stopping_boundaries") and {"n", "stop_if_events_ge"} <= set(c.table_columns("stopping_boundaries")):
        bd = c.try_sql(reader, "SELECT coalesce(cohort, 'All cohorts') AS cohort, n, stop_if_events_ge AS stop_at "
                               "FROM stopping_boundaries WHERE stop_if_events_ge IS NOT NULL ORDER BY cohort, n")
    if bd is not None and not bd.empty:
        for cohort, part in bd.groupby("cohort", sort=True):
            fig.add_scatter(x=part["n"], y=part["stop_at"], mode="lines", line_shape="hv",
                            name=f"Stop at or above ({cohort})", line=dict(width=2))
    else:
        bd = stopping_boundary(cfg).dropna()
        fig.add_scatter(x=bd["n"], y=bd["stop_at"], mode="lines+markers", line_shape="hv", name="Stop at or above",
                        line=dict(color=GRADE_COLORS[4], width=2))
    status = None
    if c.registered("stopping_rule_status"):
        status = c.try_sql(reader, "SELECT coalesce(cohort, 'All cohorts') AS cohort, evaluable_n, events, decision "
                                   "FROM stopping_rule_status ORDER BY cohort")
    if status is not None and not status.empty:
        fig.add_scatter(x=status["evaluable_n"], y=status["events"], mode="markers+text", name="Observed",
                        text=status["cohort"].astype(str), textposition="top center",
                        marker=dict(size=12, color=GRADE_COLORS[1], line=dict(color="#333333", width=1)))
        note = ""
    else:
        note = "No stopping-rule status at this cut: boundary only."
    rule = cfg.get("stopping_rule", {})
    fig.update_layout(xaxis_title="Evaluable subjects", yaxis_title=f"Subjects with {rule.get('event', 'dlt')}")
    return _layout(fig, f"Stopping boundary: P(rate > {rule.get('threshold')}) > {rule.get('posterior_cutoff')}"), note


FIGURES = {
    "crs_icans_incidence": ("CRS and ICANS incidence by maximum grade", fig_crs_icans_incidence),
    "swimmer": ("Swimmer plot of follow-up and toxicity onsets", fig_swimmer),
    "dlt_boundary": ("DLT stopping boundary and observed events", fig_dlt_boundary),
}


def render_png(fig: go.Figure, scale: float = 1.0) -> tuple[bytes | None, str]:
    """PNG bytes via kaleido (one shared browser per process), or (None, reason)."""
    global _server_started, _browser_tmp
    try:
        import kaleido
        with _server_lock:
            if not _server_started:
                # short name: Chromium's profile sockets fail to start beyond ~107-character paths
                _browser_tmp = tempfile.mkdtemp(prefix="ctx")
                try:
                    kaleido.start_sync_server(silence_warnings=True, tmp_dir=_browser_tmp)
                except TypeError:
                    kaleido.start_sync_server()
                except RuntimeError:
                    pass  # already running
                _server_started = True
                # Registered after kaleido's own exit hook, so it runs first (atexit is LIFO).
                atexit.register(close_renderer)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "kopts ignored when using a server"
            return fig.to_image(format="png", scale=scale), ""
    except Exception as exc:  # noqa: BLE001 - any renderer failure becomes a note in the packet
        return None, f"figure unavailable: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"


@contextlib.contextmanager
def _quiet_renderer_logs():
    loggers = [logging.getLogger(n) for n in ("choreographer", "kaleido", "logistro")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.CRITICAL)
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def close_renderer() -> None:
    """Stop kaleido's shared browser now and remove its temporary folder, quietly.

    Left to interpreter exit, the clean-up races Chromium still writing its profile ('Default' folder) and
    Python prints the failed removal on stderr; callers that own the process (the export CLI) call this
    when done. Safe to call repeatedly; the next render_png starts a new browser."""
    global _server_started, _browser_tmp
    with _server_lock:
        if _server_started:
            try:
                import kaleido
                with warnings.catch_warnings(), _quiet_renderer_logs():
                    warnings.simplefilter("ignore")  # choreographer's TmpDirWarning while Chromium exits
                    kaleido.stop_sync_server(silence_warnings=True)
            except Exception:  # noqa: BLE001,S110 - closing a renderer that failed to start
                pass
            _server_started = False
        if _browser_tmp:
            for _ in range(10):  # Chromium's helper processes may write for a moment after exit
                shutil.rmtree(_browser_tmp, ignore_errors=True)
                if not os.path.exists(_browser_tmp):
                    break
                time.sleep(0.2)
            _browser_tmp = None


def build_figures(reader: StudyReader) -> list[tuple[str, bytes | None, str]]:
    """[(title, png or None, note)] for the packet's overview figures."""
    out = []
    for _, (title, builder) in FIGURES.items():
        try:
            fig, note = builder(reader)
        except Exception as exc:  # noqa: BLE001
            fig, note = None, f"figure unavailable: {type(exc).__name__}: {exc}"
        png = None
        if fig is not None:
            png, err = render_png(fig)
            note = err or note
        out.append((title, png, note))
    return out

"""Work done ahead of the user who would otherwise wait for it: libraries, the landing page's answers, Plotly.

- ``import_ahead()`` imports what the app script and every page import, and builds one small figure of every
  part the pages draw (Plotly imports each part's class on first use), before the server takes its first
  browser connection. The launcher (``python -m dashboard``) calls it, so the app's first page pays no imports
  (pandas, DuckDB, Plotly, statsmodels: about 2 s on this machine type).
- ``start()`` runs once per server process after the first page: a daemon thread imports what later pages need
  (statsmodels' survival functions, scipy's special functions, the listing builders, the figure modules) while
  the user reads the first page. With the launcher it finds them imported already; under a plain
  ``streamlit run dashboard/app.py`` it spares the later pages' first visits a second or more. A page that needs
  one before the thread is done waits on Python's import lock for that module, never imports it twice.
- ``prepare_landing_page(db_path)`` runs in a thread the launcher starts beside the server: it computes the
  overview's answers for the study and data cut every user lands on (study-wide, no filters) into the cache the
  overview reads, while the browser is still loading Streamlit's front end, so the first user's first page
  reads them instead of computing them (dashboard.data.meeting; the cache is shared across users).
- ``preload_in_browser()`` asks the browser, once a page has finished drawing and the browser is idle, to load
  Plotly's script (several MB, which Streamlit's front end otherwise loads when a page draws its first Plotly
  chart, holding that page for a second or more). The overview draws no Plotly chart, so the app's first page
  does not wait for it, and the pages after it find it loaded.

``import_ahead`` and ``start`` end with ``gc.freeze()``: every object alive then (the imported libraries: hundreds
of thousands of objects) is moved out of the garbage collector's reach. Streamlit collects all generations after
every script run and holds the interpreter while it does; over the libraries that took 0.2-0.3 s of every page
visit, during which the server could not tell the browser the page was done. The libraries live as long as the
process, so the collector had nothing to find among them.
"""
from __future__ import annotations

import gc
import inspect
import json
import logging
import threading
from pathlib import Path

import streamlit as st

_LOG = logging.getLogger(__name__)
# Streamlit's front end: its entry script, and the chunk its Plotly element loads on first use.
STREAMLIT_JS = Path(st.__file__).parent / "static" / "static" / "js"
PLOTLY_CHUNK_GLOB = "PlotlyChart.*.js"


def _freeze_what_is_alive() -> None:
    gc.collect()
    gc.freeze()


def _build_a_figure_of_every_part() -> None:
    # Plotly imports the class of each part of a figure (an axis title's font, a bar's error bars) the first time
    # a figure uses it: one small figure with the trace types and parts the pages draw imports them now.
    import plotly.graph_objects as go

    font = dict(size=10, color="#222")
    go.Figure(
        data=[go.Scatter(x=[0], y=[0], marker=dict(size=5, line=dict(width=1)), line=dict(width=1)),
              go.Scattergl(x=[0], y=[0], marker=dict(size=5)),
              go.Bar(x=[0], y=[0], marker=dict(line=dict(width=1)), error_y=dict(array=[0]), error_x=dict(array=[0])),
              go.Heatmap(z=[[0]], colorbar=dict(title=dict(text="grade", font=font))),
              go.Box(y=[0], marker=dict(size=5), line=dict(width=1))],
        layout=dict(title=dict(text="t", font=font), legend=dict(font=font), hoverlabel=dict(font=font),
                    xaxis=dict(title=dict(text="x", font=font), tickfont=font),
                    yaxis=dict(title=dict(text="y", font=font), tickfont=font),
                    annotations=[dict(text="a", font=font)], shapes=[dict(type="line", line=dict(width=1))]),
    ).to_plotly_json()


def _import_what_later_pages_need() -> None:
    import plotly.io._json  # noqa: F401  (the figure's JSON for the browser)
    import scipy.special  # noqa: F401  (Clopper-Pearson limits: CRS & ICANS, Outcomes)
    from statsmodels.duration import survfunc  # noqa: F401  (Swimmer plot, Outcomes, CRS & ICANS curves)

    from dashboard import figures, figures_outcomes  # noqa: F401
    from safety.derive.toxicity import summary  # noqa: F401
    from safety.export import listings  # noqa: F401

    _build_a_figure_of_every_part()


def import_ahead() -> None:
    """Import what the app script and its pages import (no Streamlit call is made), then freeze it."""
    # Decorating with st.cache_data before the server exists logs one warning per function about a memory
    # cache; the caches themselves are made on first call, inside the server, so the warning says nothing here.
    cache_log = logging.getLogger("streamlit.runtime.caching.cache_data_api")
    level = cache_log.level
    cache_log.setLevel(logging.ERROR)
    try:
        import duckdb  # noqa: F401
        import pandas  # noqa: F401
        import plotly.graph_objects  # noqa: F401

        from dashboard import auth, data, database, freshness, navigation, state, tables  # noqa: F401
        from safety.derive.dlt import decisions, stopping  # noqa: F401
        from safety.export import packet  # noqa: F401
        from safety.review import meeting, store  # noqa: F401

        _import_what_later_pages_need()
    finally:
        cache_log.setLevel(level)
    _freeze_what_is_alive()


def _import_later_and_freeze() -> None:
    _import_what_later_pages_need()
    _freeze_what_is_alive()


IMPORT_AHEAD_THREAD = "celltox-import-ahead"


@st.cache_resource(show_spinner=False)
def start() -> threading.Thread:
    """Start the background import once per server process (cached); returns the thread."""
    thread = threading.Thread(target=_import_later_and_freeze, name=IMPORT_AHEAD_THREAD, daemon=True)
    thread.start()
    return thread


def plotly_chunk() -> str | None:
    """The file name of the Plotly chunk of the installed Streamlit's front end (None, logged, if not exactly one)."""
    found = sorted(p.name for p in STREAMLIT_JS.glob(PLOTLY_CHUNK_GLOB))
    if len(found) != 1:
        _LOG.warning("Plotly is not preloaded in the browser: %d files match %s in %s", len(found),
                     PLOTLY_CHUNK_GLOB, STREAMLIT_JS)
        return None
    return found[0]


# The chunk is imported by the URL of the front end's own entry script, so the module the Plotly element later
# imports is the same one: the browser runs it once.
_PRELOAD = """<script>(() => {{
  if (window.__celltoxPlotly) return;
  window.__celltoxPlotly = true;
  const entry = document.querySelector('script[type="module"][src*="/static/js/index."]');
  if (!entry) {{ console.warn("celltox: Streamlit's entry script not found; Plotly is not preloaded"); return; }}
  const load = () => import(new URL({chunk}, entry.src).href)
    .catch(e => console.warn("celltox: Plotly preload failed", e));
  if ("requestIdleCallback" in window) requestIdleCallback(load, {{timeout: 10000}}); else setTimeout(load, 3000);
}})();</script>"""


@st.cache_resource(show_spinner=False)
def _preload_html() -> str | None:
    chunk = plotly_chunk()
    return None if chunk is None else _PRELOAD.format(chunk=json.dumps(chunk))


def preload_in_browser() -> None:
    """Have the browser load Plotly's script when idle (see the module docstring); draws nothing visible."""
    body = _preload_html()
    if body is not None:
        st.sidebar.html(body, unsafe_allow_javascript=True)


LANDING_THREAD = "celltox-landing-page"
# Streamlit warns when its caches are used before its server exists or outside a script run: both are the
# point of the landing-page thread, so its warnings (and only its) are dropped.
_QUIET_LOGGERS = ("streamlit.runtime.caching.cache_data_api", "streamlit.runtime.scriptrunner_utils.script_run_context")


class _NotFromLandingThread(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.threadName != LANDING_THREAD


def prepare_landing_page(db_path: Path) -> None:
    """Fill the overview's cached answers for the landing study and cut (see the module docstring).

    A database that is missing or is an outdated sample (built or rebuilt by the app, with its notice) is left
    alone; a failure is logged, and the page then computes its answers itself and shows any error as it would.
    """
    # Streamlit looks through the calling frames once per process before its first element is drawn
    # (inspect.stack(): 0.2 s over the imported libraries); the index it builds of module files is kept.
    inspect.stack()
    from dashboard import data, database, reading
    from dashboard.session import View

    path = Path(db_path)
    try:
        if not path.exists() or database.is_outdated_sample(path):
            return
        stamp = database.db_stamp(path)
        cuts = database.study_cuts(str(path), stamp)
        if cuts.empty:
            return
        studyid, data_cut = database.landing_cut(cuts)
        previous = database.previous_cut_of(str(path), stamp, studyid, data_cut)
        landing = View(db_path=str(path), stamp=stamp, studyid=studyid, data_cut=data_cut, sites=None,
                       previous_cut=previous)
        reading.filter_options(landing)
        data.meeting(landing)
    except Exception:  # noqa: BLE001  (the page reports the problem to its user; here it is only logged)
        _LOG.warning("The overview's answers were not prepared ahead for %s", path, exc_info=True)


def start_preparing_landing_page(db_path: Path) -> threading.Thread:
    """Run :func:`prepare_landing_page` in a daemon thread (the launcher calls this just before serving)."""
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).addFilter(_NotFromLandingThread())
    thread = threading.Thread(target=prepare_landing_page, args=(db_path,), name=LANDING_THREAD, daemon=True)
    thread.start()
    return thread

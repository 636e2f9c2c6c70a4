"""The libraries the pages need, imported ahead of the user who would otherwise wait for them.

Two moments, one list each:
- ``import_ahead()`` imports what the app script and every page import, before the server takes its first
  browser connection. The launcher (``python -m dashboard``) calls it, so the app's first page pays no imports
  (pandas, DuckDB, Plotly, statsmodels: about 2 s on this machine type).
- ``start()`` runs once per server process after the first page: a daemon thread imports what later pages need
  (statsmodels' survival functions, scipy's special functions, the listing builders, the figure modules) while
  the user reads the first page. With the launcher it finds them imported already; under a plain
  ``streamlit run dashboard/app.py`` it spares the later pages' first visits a second or more. A page that needs
  one before the thread is done waits on Python's import lock for that module, never imports it twice.

Both end with ``gc.freeze()``: every object alive then (the imported libraries: hundreds of thousands of objects)
is moved out of the garbage collector's reach. Streamlit collects all generations after every script run and
holds the interpreter while it does; over the libraries that took 0.2-0.3 s of every page visit, during which
the server could not tell the browser the page was done. The libraries live as long as the process, so the
collector had nothing to find among them.
"""
from __future__ import annotations

import gc
import logging
import threading

import streamlit as st


def _freeze_what_is_alive() -> None:
    gc.collect()
    gc.freeze()


def _import_what_later_pages_need() -> None:
    import scipy.special  # noqa: F401  (Clopper-Pearson limits: CRS & ICANS, Outcomes)
    from statsmodels.duration import survfunc  # noqa: F401  (Swimmer plot, Outcomes, CRS & ICANS curves)

    from dashboard import figures, figures_outcomes  # noqa: F401
    from safety.derive.toxicity import summary  # noqa: F401
    from safety.export import listings  # noqa: F401


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


@st.cache_resource(show_spinner=False)
def start() -> threading.Thread:
    """Start the background import once per server process (cached); returns the thread."""
    thread = threading.Thread(target=_import_later_and_freeze, name="celltox-import-ahead", daemon=True)
    thread.start()
    return thread

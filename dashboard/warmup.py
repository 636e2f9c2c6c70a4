"""The libraries later pages need, imported once per server process in the background after the first page.

The app's first page imports only what it draws; the estimators and builders other pages use (statsmodels'
survival functions for Kaplan-Meier and cumulative incidence, scipy's special functions for confidence
limits, the listing builders, the figure module) would otherwise cost the first visit of those pages a
second or more. A daemon thread imports them while the user reads the first page; a page that needs one
before it is done waits on Python's import lock for that module, never imports it twice.
"""
from __future__ import annotations

import threading

import streamlit as st


def _import_what_later_pages_need() -> None:
    import scipy.special  # noqa: F401  (Clopper-Pearson limits: CRS & ICANS, Outcomes)
    from statsmodels.duration import survfunc  # noqa: F401  (Swimmer plot, Outcomes, CRS & ICANS curves)

    from dashboard import figures, figures_outcomes  # noqa: F401
    from safety.derive.toxicity import summary  # noqa: F401
    from safety.export import listings  # noqa: F401


@st.cache_resource(show_spinner=False)
def start() -> threading.Thread:
    """Start the background import once per server process (cached); returns the thread."""
    thread = threading.Thread(target=_import_what_later_pages_need, name="celltox-import-ahead", daemon=True)
    thread.start()
    return thread

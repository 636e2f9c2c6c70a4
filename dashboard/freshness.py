"""The app notices a data load: a load switches a new database file in (safety/ingest/snapshot.py); within
seconds every open page reruns on it and says so once. Also the one sentence shown when the file cannot be
opened (a first load still running, another program writing it) instead of DuckDB's message."""
from __future__ import annotations

import datetime as dt

import streamlit as st

from safety.ingest import snapshot

VERSION_KEY = "celltox_db_version"
CHECK_SECONDS = 5


def open_problem(db_path, exc: BaseException) -> str:
    return snapshot.open_problem(db_path, exc)


def notice(db_path) -> None:
    """Say once that a new data cut was loaded since this session last read the database."""
    version = snapshot.file_version(db_path)
    seen = st.session_state.get(VERSION_KEY)
    st.session_state[VERSION_KEY] = version
    if seen is not None and version != seen:
        st.info(f"A new data cut was loaded at {dt.datetime.now().strftime('%H:%M')}; the pages now show it.",
                icon=":material/update:")
    _watch(str(db_path))


@st.fragment(run_every=CHECK_SECONDS)
def _watch(db_path: str) -> None:
    # runs every few seconds without redrawing the page; a new file reruns the whole app on it
    if snapshot.file_version(db_path) != st.session_state.get(VERSION_KEY):
        st.rerun(scope="app")

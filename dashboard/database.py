"""Where the data is: the database path, its version stamp, the shared read-only connection, the review
store beside it, the studies and cuts it holds, and the study settings stored with each cut."""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

import pandas as pd
import streamlit as st

from safety import schema
from safety.access import reader as access
from safety.core.config import stored_config
from safety.review.store import ReviewStore, default_review_path

ROOT = Path(__file__).resolve().parents[1]
# The embedded sample database (demo mode). CELLTOX_SAMPLE_DB moves it, e.g. for tests that need demo mode
# without touching the checkout's copy and its review store.
SAMPLE_DB = Path(os.environ.get("CELLTOX_SAMPLE_DB") or ROOT / "sample_data" / "build" / "celltox_sample.duckdb")


# The app's own options: what follows "--" on the start command (Streamlit's options go before it).
_APP_OPTIONS = argparse.ArgumentParser(add_help=False)
_APP_OPTIONS.add_argument("--db")


def unknown_app_options(argv: list[str]) -> list[str]:
    """The arguments after ``--`` that are not the app's own (``--db PATH``): the launcher refuses them, since an
    option meant for Streamlit there (``-- --server.port 8600``) would otherwise be dropped without a word."""
    return _APP_OPTIONS.parse_known_args(argv)[1]


def resolve_db_path(argv: list[str] | None = None) -> Path:
    """``-- --db PATH`` on the streamlit command line, else $CELLTOX_DB, else the embedded sample database."""
    args, _ = _APP_OPTIONS.parse_known_args(sys.argv[1:] if argv is None else argv)
    if args.db:
        return Path(args.db).expanduser().resolve()
    if os.environ.get("CELLTOX_DB"):
        return Path(os.environ["CELLTOX_DB"]).expanduser().resolve()
    return SAMPLE_DB


def is_sample(db_path: Path) -> bool:
    return Path(db_path).resolve() == SAMPLE_DB.resolve()


@st.cache_resource(show_spinner="Building the sample database (first start only)...")
def ensure_database(db_path: str) -> str:
    """Build the sample database on first start; any other path must exist."""
    path = Path(db_path)
    if is_outdated_sample(path):
        # the embedded demo follows the code: a checkout updated since the demo was built gets it rebuilt
        for p in (path, default_review_path(path)):
            p.unlink(missing_ok=True)
    if not path.exists():
        if not is_sample(path):
            raise FileNotFoundError(f"no celltox database at {path}")
        # imported here: the builder pulls in the whole ingest and every derivation (scipy, statsmodels),
        # which an app opening an existing database never needs and should not wait for at start
        from safety.sample_db import ensure_sample_database
        ensure_sample_database(path)
    return str(path)


def is_outdated_sample(path: Path) -> bool:
    """The embedded sample database exists but was written by an earlier version (it is rebuilt on start)."""
    return path.exists() and is_sample(path) and _written_by_earlier_version(path)


def _written_by_earlier_version(path: Path) -> bool:
    con = access.connect(path, read_only=True)
    try:
        return bool(schema.missing_columns(con))
    finally:
        con.close()


def db_stamp(db_path: str | Path) -> float:
    """The database file's modification time: part of every cache key, so a reload invalidates caches."""
    try:
        return Path(db_path).stat().st_mtime
    except OSError:
        return 0.0


@st.cache_resource(show_spinner=False, max_entries=2)  # the current snapshot and the one just replaced
def _connection(db_path: str, stamp: float):
    # One read-only connection per database version, shared by all sessions; StudyReader takes a
    # cursor per query, which is how DuckDB wants one connection used from many threads.
    return access.connect(db_path, read_only=True)


def connection(db_path: str | Path):
    return _connection(str(db_path), db_stamp(db_path))


@st.cache_resource(show_spinner=False)
def review_store(db_path: str) -> ReviewStore:
    """The append-only store of adjudications, sign-offs and audit entries beside the database."""
    return ReviewStore(default_review_path(db_path))


def store_stamp(db_path: str) -> tuple:
    """Version of the review store (newest adjudication and sign-off ids): results that read decisions are
    cached per this, so a new decision shows at once."""
    rows = review_store(db_path).query(
        "SELECT (SELECT max(id) FROM adjudications) AS a, (SELECT max(id) FROM signoffs) AS s")
    return (rows[0]["a"], rows[0]["s"]) if rows else (None, None)


@st.cache_data(show_spinner=False)
def missing_columns(db_path: str, stamp: float) -> dict[str, list[str]]:
    """Tables of the file that lack columns this celltox declares (:func:`safety.schema.missing_columns`)."""
    cur = _connection(db_path, stamp).cursor()
    try:
        return schema.missing_columns(cur)
    finally:
        cur.close()


@st.cache_data(show_spinner=False)
def study_cuts(db_path: str, stamp: float) -> pd.DataFrame:
    """Studies and data cuts in the database (no patient data)."""
    return access.available_cuts(connection(db_path))


def landing_cut(cuts: pd.DataFrame, studyid: str | None = None) -> tuple[str, dt.date]:
    """The study (``studyid``, else the first one) and the data cut the sidebar opens on when the URL names
    none: its latest. ``cuts``: :func:`study_cuts` (not empty)."""
    studyid = cuts["studyid"].iloc[0] if studyid is None else studyid
    return studyid, max(cuts.loc[cuts["studyid"] == studyid, "data_cut"])


@st.cache_data(show_spinner=False)
def previous_cut_of(db_path: str, stamp: float, studyid: str, data_cut: dt.date) -> dt.date | None:
    """The data cut loaded before ``data_cut`` (no patient data), asked once per database version."""
    return access.previous_cut(_connection(db_path, stamp), studyid, data_cut)


@st.cache_data(show_spinner=False)
def study_config_of(db_path: str, stamp: float, studyid: str, data_cut: dt.date) -> dict:
    """The validated study.yaml settings stored with this data cut (a stored config that no longer
    validates is an error, not a silent switch to defaults)."""
    cur = _connection(db_path, stamp).cursor()
    try:
        row = cur.execute("SELECT config_json FROM studies WHERE studyid = $s AND data_cut = $c",
                          {"s": studyid, "c": data_cut}).fetchone()
    finally:
        cur.close()
    return stored_config(row[0] if row else None, f"study settings stored with {studyid} {data_cut}")

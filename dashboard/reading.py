"""Reading for pages: the scoped reader of the current selection, cached queries, cached calls of domain
functions (keyed by the database and review-store versions) and which derived tables the file holds.

Every read goes through :class:`safety.access.reader.StudyReader` (study + cut + sites). Query results are
cached per (database file version, study, cut, sites, filters, SQL, parameters), so a new load or another
data cut never shows stale rows; results that read decisions are also keyed by the review store's version.
"""
from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from dashboard.database import _connection, review_store, store_stamp, study_config_of
from dashboard.session import View, view
from safety.access import reader as access
from safety.core.config import dlt_window as config_dlt_window
from safety.core import delivery


@st.cache_resource(show_spinner=False, max_entries=256)
def _reader(db_path: str, stamp: float, studyid: str, data_cut: dt.date, sites: tuple | None,
            previous_cut: dt.date | None) -> access.StudyReader:
    return access.StudyReader(_connection(db_path, stamp), access.Scope(studyid, data_cut, sites, previous_cut))


def reader(v: View | None = None) -> access.StudyReader:
    """The scoped reader for the current selection (shared: it is stateless and takes a cursor per query)."""
    v = v or view()
    return _reader(v.db_path, v.stamp, v.studyid, v.data_cut, v.sites, v.previous_cut)


@st.cache_data(show_spinner=False, max_entries=4000)
def _cached_query(db_path: str, stamp: float, studyid: str, data_cut: dt.date, sites: tuple | None,
                  previous_cut: dt.date | None, sql: str, params: dict) -> pd.DataFrame:
    return _reader(db_path, stamp, studyid, data_cut, sites, previous_cut).sql(sql, params or None)


def q(sql: str, params: dict | None = None, v: View | None = None) -> pd.DataFrame:
    """Run scoped SQL (named $params), cached per data cut. Returns a DataFrame (a fresh copy)."""
    v = v or view()
    return _cached_query(v.db_path, v.stamp, v.studyid, v.data_cut, v.sites, v.previous_cut, sql, dict(params or {}))


def filter_options(v: View | None = None) -> pd.DataFrame:
    """The cohorts, dose levels and products of the subjects in scope: the sidebar's subject filters."""
    return q("SELECT DISTINCT cohort, dose_level, product FROM subjects", v=v)


def scalar(sql: str, params: dict | None = None, v: View | None = None):
    df = q(sql, params, v)
    if df.empty:
        return None
    val = df.iat[0, 0]
    return None if pd.isna(val) else val


STORE = "<review store>"  # placeholder argument for call_cached: replaced by the ReviewStore


@st.cache_data(show_spinner=False, max_entries=500)
def _call_cached(_fn, fn_name: str, db_path: str, stamp: float, studyid: str, data_cut: dt.date,
                 sites: tuple | None, previous_cut: dt.date | None, sstamp: tuple, args: tuple, kwargs: dict):
    # _fn is not hashed (leading underscore); fn_name (module.qualname) keys the cache instead
    rd = _reader(db_path, stamp, studyid, data_cut, sites, previous_cut)
    store = review_store(db_path)
    args = tuple(store if isinstance(a, str) and a == STORE else a for a in args)
    kwargs = {k: (store if isinstance(a, str) and a == STORE else a) for k, a in kwargs.items()}
    return _fn(rd, *args, **kwargs)


def call_cached(fn, *args, v: View | None = None, **kwargs):
    """``fn(reader, *args, **kwargs)`` (a domain function, imported by the caller) cached per data cut, scope
    and review-store version (pass :data:`STORE` where the function takes the review store)."""
    v = v or view()
    return _call_cached(fn, f"{fn.__module__}.{fn.__qualname__}", v.db_path, v.stamp, v.studyid, v.data_cut,
                        v.sites, v.previous_cut, store_stamp(v.db_path), args, kwargs)


@st.cache_data(show_spinner=False)
def _existing_tables(db_path: str, stamp: float) -> frozenset:
    cur = _connection(db_path, stamp).cursor()
    try:
        rows = cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()
    finally:
        cur.close()
    return frozenset(r[0] for r in rows)


def has_tables(*names: str, v: View | None = None) -> bool:
    """True when every table exists in the database file (a file written before a derivation existed lacks it)."""
    v = v or view()
    existing = _existing_tables(v.db_path, v.stamp)
    return all(n in existing for n in names)


def missing_tables(*names: str, v: View | None = None) -> list[str]:
    v = v or view()
    existing = _existing_tables(v.db_path, v.stamp)
    return [n for n in names if n not in existing]


def not_delivered(*domains: str, v: View | None = None) -> list[str]:
    """Those of ``domains`` (SDTM domains, CRS, ICANS) not delivered at this data cut (:mod:`safety.core.delivery`,
    the packet's definition)."""
    return delivery.not_delivered(domains, delivery.domains_present(lambda sql: q(sql, v=v)))


def study_config(v: View | None = None) -> dict:
    """The validated study.yaml settings stored with this data cut."""
    v = v or view()
    return study_config_of(v.db_path, v.stamp, v.studyid, v.data_cut)


def dlt_window(v: View | None = None) -> tuple[int, int]:
    return config_dlt_window(study_config(v))

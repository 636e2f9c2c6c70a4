"""Dashboard state: the database path, the shared read-only connection, the signed-in user, the scope
and filters chosen in the sidebar, and cached scoped queries.

Pages call :func:`view` for what is selected and :func:`q` / :func:`scalar` to read. Every read goes
through :class:`safety.access.reader.StudyReader` (study + cut + sites), and the sidebar's cohort, dose-level
and product filters are added by :func:`subject_filter` as a SQL predicate with named parameters.
Query results are cached per (database file version, study, cut, sites, filters, SQL, parameters), so a
new load or another data cut never shows stale rows.
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from safety import schema  # noqa: E402
from safety.access import reader as access  # noqa: E402
from safety.review.store import ReviewStore, default_review_path  # noqa: E402

# The embedded sample database (demo mode). CELLTOX_SAMPLE_DB moves it, e.g. for tests that need demo mode
# without touching the checkout's copy and its review store.
SAMPLE_DB = Path(os.environ.get("CELLTOX_SAMPLE_DB") or ROOT / "sample_data" / "build" / "celltox_sample.duckdb")
VIEW_KEY = "celltox_view"
USER_KEY = "celltox_user"


# -- where the data is -------------------------------------------------------------------------------

def resolve_db_path(argv: list[str] | None = None) -> Path:
    """``-- --db PATH`` on the streamlit command line, else $CELLTOX_DB, else the embedded sample database."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--db")
    args, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
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
    if not path.exists():
        if not is_sample(path):
            raise FileNotFoundError(f"no celltox database at {path}")
        sample_db = importlib.import_module("safety.sample_db")
        sample_db.ensure_sample_database(path)
    return str(path)


def db_stamp(db_path: str | Path) -> float:
    """The database file's modification time: part of every cache key, so a reload invalidates caches."""
    try:
        return Path(db_path).stat().st_mtime
    except OSError:
        return 0.0


@st.cache_resource(show_spinner=False)
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


@st.cache_data(show_spinner=False)
def study_cuts(db_path: str, stamp: float) -> pd.DataFrame:
    """Studies and data cuts in the database (no patient data)."""
    return access.available_cuts(connection(db_path))


# -- who is looking ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class DemoUser:
    """Stand-in used only when the sign-in module is not installed: demo mode on the sample data."""
    username: str = "demo"
    role: str = "committee"
    display_name: str = "Demo user"
    sites: tuple | None = None
    can_adjudicate: bool = True
    can_sign_off: bool = True
    can_export: bool = True
    can_view_data_quality: bool = True
    can_view_audit: bool = True


def sign_in(db_path: Path, store: ReviewStore):
    """The signed-in user through dashboard.auth (which renders its form and stops the run until then)."""
    try:
        auth_ui = importlib.import_module("dashboard.auth")
        safety_auth = importlib.import_module("safety.access.auth")
    except ModuleNotFoundError as exc:
        if not (exc.name or "").endswith("auth"):
            raise
        if not is_sample(db_path):
            st.error("Sign-in is not installed (dashboard/auth.py): only the sample database opens without it.")
            st.stop()
        st.warning("DEMO MODE: synthetic sample data, no sign-in. Not for patient data.", icon=":material/warning:")
        return DemoUser()
    try:
        policy = safety_auth.AccessPolicy.from_env(db_path, is_sample_db=is_sample(db_path))
    except Exception as exc:  # an unreadable auth setting refuses to start rather than open unguarded
        st.error(f"Sign-in settings are not valid: {exc}")
        st.stop()
    return auth_ui.sign_in_gate(policy, store)


def scope_for(user, studyid: str, data_cut: dt.date, previous_cut: dt.date | None) -> access.Scope:
    """The user's scope (site-limited for investigators) through safety.access.auth when present."""
    try:
        safety_auth = importlib.import_module("safety.access.auth")
    except ModuleNotFoundError:
        return access.Scope(studyid, data_cut, getattr(user, "sites", None), previous_cut)
    return safety_auth.scope_for(user, studyid, data_cut, previous_cut)


def can(user, permission: str) -> bool:
    """``permission`` is e.g. 'can_adjudicate': an attribute of the user or a function of safety.access.auth."""
    attr = getattr(user, permission, None)
    if attr is not None and not callable(attr):
        return bool(attr)
    fn = domain("safety.access.auth", permission)
    return bool(fn(user)) if fn is not None else False


# -- what is selected -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class View:
    """Everything that decides which rows a page shows."""
    db_path: str
    stamp: float
    studyid: str
    data_cut: dt.date
    sites: tuple[str, ...] | None
    previous_cut: dt.date | None
    cohorts: tuple[str, ...] = ()
    dose_levels: tuple[str, ...] = ()
    products: tuple[str, ...] = ()
    username: str = "demo"
    title: str = ""

    @property
    def filtered(self) -> bool:
        return bool(self.cohorts or self.dose_levels or self.products)


def set_view(v: View, user) -> None:
    st.session_state[VIEW_KEY] = v
    st.session_state[USER_KEY] = user


def view() -> View:
    """The current selection (set by app.py before the page runs)."""
    v = st.session_state.get(VIEW_KEY)
    if v is None:
        st.error("Open the dashboard through dashboard/app.py.")
        st.stop()
    return v


def user():
    return st.session_state.get(USER_KEY) or DemoUser()


def subject_filter(v: View | None = None, column: str = "usubjid") -> tuple[str, dict]:
    """SQL predicate (and its parameters) limiting ``column`` to the subjects the sidebar filters keep.

    ``TRUE`` when no filter is set. The subquery reads the scoped ``subjects`` table, so it never widens
    the reader's own study/cut/site scope.
    """
    v = v or view()
    conds, params = [], {}
    for field_name, values, pname in (("cohort", v.cohorts, "f_cohorts"), ("dose_level", v.dose_levels, "f_dose_levels"),
                                      ("product", v.products, "f_products")):
        if values:
            conds.append(f"{field_name} IN (SELECT unnest(${pname}))")
            params[pname] = list(values)
    if not conds:
        return "TRUE", {}
    return f"{column} IN (SELECT usubjid FROM subjects WHERE {' AND '.join(conds)})", params


# -- reading ---------------------------------------------------------------------------------------------

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


def scalar(sql: str, params: dict | None = None, v: View | None = None):
    df = q(sql, params, v)
    if df.empty:
        return None
    val = df.iat[0, 0]
    return None if pd.isna(val) else val


STORE = "<review store>"  # placeholder argument for call_cached: replaced by the ReviewStore


def store_stamp(db_path: str) -> tuple:
    """Version of the review store (newest adjudication and sign-off ids): results that read decisions are
    cached per this, so a new decision shows at once."""
    rows = review_store(db_path).query(
        "SELECT (SELECT max(id) FROM adjudications) AS a, (SELECT max(id) FROM signoffs) AS s")
    return (rows[0]["a"], rows[0]["s"]) if rows else (None, None)


@st.cache_data(show_spinner=False, max_entries=500)
def _call_cached(module: str, func: str, db_path: str, stamp: float, studyid: str, data_cut: dt.date,
                 sites: tuple | None, previous_cut: dt.date | None, sstamp: tuple, args: tuple, kwargs: dict):
    fn = getattr(importlib.import_module(module), func)
    rd = _reader(db_path, stamp, studyid, data_cut, sites, previous_cut)
    store = review_store(db_path)
    args = tuple(store if a == STORE else a for a in args)
    kwargs = {k: (store if a == STORE else a) for k, a in kwargs.items()}
    return fn(rd, *args, **kwargs)


def call_cached(module: str, func: str, *args, v: View | None = None, **kwargs):
    """``module.func(reader, *args, **kwargs)`` cached per data cut, scope and review-store version
    (pass :data:`STORE` where the function takes the review store)."""
    v = v or view()
    return _call_cached(module, func, v.db_path, v.stamp, v.studyid, v.data_cut, v.sites, v.previous_cut,
                        store_stamp(v.db_path), args, kwargs)


@st.cache_data(show_spinner=False)
def _existing_tables(db_path: str, stamp: float) -> frozenset:
    cur = _connection(db_path, stamp).cursor()
    try:
        rows = cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()
    finally:
        cur.close()
    return frozenset(r[0] for r in rows)


def has_tables(*names: str, v: View | None = None) -> bool:
    """True when every table is registered in the schema (so the reader scopes it) and exists in the file."""
    v = v or view()
    registered = {t.name for t in schema.all_tables()}
    existing = _existing_tables(v.db_path, v.stamp)
    return all(n in registered and n in existing for n in names)


def missing_tables(*names: str, v: View | None = None) -> list[str]:
    v = v or view()
    return [n for n in names if not has_tables(n, v=v)]


def domain(module: str, attr: str | None = None):
    """A domain module (or one of its functions) imported lazily; None when not installed yet."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            return None
        raise
    return getattr(mod, attr, None) if attr else mod


@st.cache_data(show_spinner=False)
def _study_config(db_path: str, stamp: float, studyid: str, data_cut: dt.date) -> dict:
    cur = _connection(db_path, stamp).cursor()
    try:
        row = cur.execute("SELECT config_json FROM studies WHERE studyid = $s AND data_cut = $c",
                          {"s": studyid, "c": data_cut}).fetchone()
    finally:
        cur.close()
    cfg_mod = importlib.import_module("safety.core.config")
    given = json.loads(row[0]) if row and row[0] else {}
    try:
        return cfg_mod.validate(given)
    except Exception:  # a stored config is already validated; fall back to defaults if the schema moved on
        return cfg_mod.validate({})


def study_config(v: View | None = None) -> dict:
    """The validated study.yaml settings stored with this data cut."""
    v = v or view()
    return _study_config(v.db_path, v.stamp, v.studyid, v.data_cut)


def dlt_window(v: View | None = None) -> tuple[int, int]:
    w = study_config(v)["dlt"]["window"]
    return int(w["start_day"]), int(w["end_day"])


# -- showing ---------------------------------------------------------------------------------------------

def subject_url(usubjid: str, v: View | None = None) -> str:
    """Relative link to a subject's profile that keeps the study and cut."""
    from urllib.parse import urlencode
    v = v or view()
    return "./subject_profile?" + urlencode({"usubjid": usubjid, "studyid": v.studyid, "cut": v.data_cut.isoformat()})


def table(df: pd.DataFrame, subject_col: str | None = "usubjid", height: int | None = None, **kwargs):
    """The dashboard's table (dashboard.tables.show_table): labels, integers, profile links, audited download."""
    from dashboard import tables
    return tables.show_table(df, subject_col=subject_col, height=height, **kwargs)


@st.cache_data(show_spinner=False, max_entries=1000)
def _figure_dict(builder_name: str, stamp: float, args: tuple, kwargs: dict) -> dict:
    from dashboard import figures
    return getattr(figures, builder_name)(*args, **kwargs).to_dict()


class _BuiltFigure:
    """Wraps a cached figure dict so st.plotly_chart skips re-validating it (plotly re-builds a Figure from
    a plain dict on every call, ~30 ms for a subject timeline); the dict came from a built Figure."""

    _cls = None

    @classmethod
    def of(cls, fig: dict):
        if cls._cls is None:
            import plotly.graph_objects as go

            class Built(go.Figure):
                def __init__(self, d):
                    super().__init__()
                    self._celltox_dict = d

                def to_dict(self):
                    return self._celltox_dict

            cls._cls = Built
        return cls._cls(fig)


def draw_figure(fig: dict, key: str | None = None, where=None) -> None:
    """Draw a figure dict built by a dashboard.figures builder (an empty figure becomes an empty state)."""
    if not fig.get("data"):  # Plotly refuses a figure without traces (e.g. a site with no grade >= 1 CRS)
        title = (fig.get("layout", {}).get("title") or {}).get("text")
        (where or st).info(f"Nothing to chart in this selection{' (' + title + ')' if title else ''}.",
                           icon=":material/info:")
        return
    (where or st).plotly_chart(_BuiltFigure.of(fig), width="stretch", key=key, config={"displaylogo": False})


def chart(builder, *args, key: str | None = None, where=None, **kwargs) -> None:
    """Draw ``builder(*args, **kwargs)`` (a dashboard.figures function) with the figure cached as a dict.

    Building Plotly objects is most of a page's server time; the cache is keyed by the builder, its
    inputs (DataFrames hashed by content) and the database version.
    """
    draw_figure(_figure_dict(builder.__name__, view().stamp, args, kwargs), key=key, where=where)


def page_of(items: list, per_page: int = 100, key: str | None = None, noun: str = "subject") -> list:
    """The slice of ``items`` to draw, with a "first shown" input when there are more than ``per_page``.

    A chart of thousands of rows is neither readable on a projector nor fast; it is paged instead.
    """
    if len(items) <= per_page:
        return items
    first = st.number_input(f"First {noun} shown (of {len(items):,}; {per_page} at a time)", min_value=1,
                            max_value=len(items), value=1, step=per_page, key=key)
    return items[int(first) - 1:int(first) - 1 + per_page]


def empty(message: str) -> None:
    """An empty state that says what is missing."""
    st.info(message, icon=":material/info:")


def require(*tables: str, what: str = "this section") -> bool:
    """Show a clear message and return False when a derived table this section needs is not there."""
    missing = missing_tables(*tables)
    if missing:
        empty(f"{what.capitalize()} needs the derived table(s) {', '.join(missing)}, which this database "
              "does not have yet (run the derivations: `python -m safety ingest`).")
        return False
    return True


def log_subject_view(usubjid: str) -> None:
    """Audit 'view_subject' for the signed-in user (once per profile shown, through dashboard.auth)."""
    v = view()
    fn = domain("dashboard.auth", "log_subject_view")
    if fn is not None:
        fn(review_store(v.db_path), user(), v.studyid, v.data_cut, usubjid)
    else:
        audit("view_subject", {"usubjid": usubjid, "data_cut": v.data_cut.isoformat()})


def audit(action: str, detail: dict) -> None:
    """Append an audit entry (e.g. view_subject) for the signed-in user."""
    v = view()
    try:
        review_store(v.db_path).append_audit(getattr(user(), "username", "unknown"), action, v.studyid, detail)
    except Exception as exc:  # never block reading on an audit write problem, but say so
        st.warning(f"Could not write the audit entry: {exc}")


def filter_caption(v: View | None = None) -> str:
    v = v or view()
    bits = [f"Study **{v.studyid}**", f"data cut **{v.data_cut.isoformat()}**"]
    if v.sites is not None:
        bits.append("sites " + ", ".join(v.sites))
    if v.cohorts:
        bits.append("cohort " + ", ".join(v.cohorts))
    if v.dose_levels:
        bits.append("dose level " + ", ".join(v.dose_levels))
    if v.products:
        bits.append("product " + ", ".join(v.products))
    return " · ".join(bits)

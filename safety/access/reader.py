"""The one read path into a study database: every query is confined to a study, a data cut and a set of sites.

Pages, exports and the CLI write plain SQL against table names (``SELECT ... FROM adverse_events``).
:class:`StudyReader` wraps that SQL in CTEs that shadow every table of the schema with only the rows
the scope allows, so a query cannot reach another study, another cut or another site's subjects.
Study-level tables with no subject (stopping-rule status, boundaries, quarantine) are visible only to
scopes that cover all sites: a site investigator sees no study-wide aggregates.

Before a query runs, DuckDB's own parser checks it (:func:`check_query`): one SELECT statement whose
tables are all scoped tables (or the query's own CTEs), with no schema or catalog qualifier
(``main.adverse_events``), no table functions other than ``unnest``/``range``/``generate_series``
(``read_csv``, ``query``, ``duckdb_tables`` ...) and no ATTACH/COPY/PRAGMA/SET or other statement.
A read-only connection from :func:`connect` also has file-system access switched off.
"""
from __future__ import annotations

import datetime as dt
import functools
import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from safety import schema
from safety.schema.source import enrollment_order_sql
from safety.core.attached import AttachedConnection
from safety.core.sql import catalog, fetch_arrays, used_params

if TYPE_CHECKING:  # a load reads through arrays() and never imports pandas (0.4 CPU s of every load)
    import pandas as pd

SNAPSHOT_DATABASE = "snapshot"  # the name a read-only connection attaches the study database under


@dataclass(frozen=True)
class Scope:
    """What a reader may see: one study at one data cut, all sites (``sites=None``) or the listed sites."""
    studyid: str
    data_cut: dt.date
    sites: tuple[str, ...] | None = None
    previous_cut: dt.date | None = None  # when set, prev_<table> CTEs hold the same scope at that cut

    @property
    def all_sites(self) -> bool:
        return self.sites is None


def connect(path: str | Path, read_only: bool = True):
    """Open a study database. The app and exports open it read-only, with file-system access off
    (no read_csv/COPY/ATTACH of other files through that connection, and it cannot be switched back on)."""
    path = Path(path)
    if read_only and not path.exists():
        raise FileNotFoundError(f"no celltox database at {path}")
    if read_only:
        # the file as it is now, kept while a load switches a new file in (safety/ingest/snapshot.py); one way:
        # external access cannot be switched back on
        return AttachedConnection.attach(path, SNAPSHOT_DATABASE, "READ_ONLY",
                                         ("SET enable_external_access = false",))
    return duckdb.connect(str(path), read_only=False)


class QueryRejected(ValueError):
    """A query the scoped read path refuses to run (it could reach rows outside the scope)."""


# Table functions that only make rows from their arguments; every other one (read_csv, query,
# duckdb_tables, glob, ...) could read outside the scope.
ALLOWED_TABLE_FUNCTIONS = frozenset({"unnest", "range", "generate_series"})
_DENIED_FUNCTION = re.compile(r"^(getenv|current_setting|read_.*|glob|query|query_table|duckdb_.*|pragma_.*|sql_.*)$")
_REJECTED_REF_TYPES = frozenset({"SHOW_REF", "COLUMN_DATA", "DELIM_GET", "BOUND_TABLE_REF"})
_parser_lock = threading.Lock()
_parser_con: duckdb.DuckDBPyConnection | None = None


def _parse(query: str) -> dict:
    global _parser_con
    with _parser_lock:
        if _parser_con is None:
            _parser_con = duckdb.connect(":memory:", config={"enable_external_access": False})
        text = _parser_con.execute("SELECT json_serialize_sql($q)", {"q": query}).fetchone()[0]
    return json.loads(text)


@functools.lru_cache(maxsize=2048)
def _check_cached(query: str, allowed: frozenset[str]) -> frozenset[str]:
    tree = _parse(query)
    if tree.get("error"):
        raise QueryRejected(f"only a single SELECT query may be run here ({tree.get('error_message')})")
    statements = tree.get("statements") or []
    if len(statements) != 1:
        raise QueryRejected("exactly one SELECT statement may be run at a time")

    referenced: set[str] = set()

    def walk(node, visible: frozenset[str]) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item, visible)
            return
        if not isinstance(node, dict):
            return
        cte_map = node.get("cte_map")
        if isinstance(cte_map, dict) and cte_map.get("map"):
            visible = visible | {str(e.get("key", "")).lower() for e in cte_map["map"]}
        kind = node.get("type")
        if kind in _REJECTED_REF_TYPES:
            raise QueryRejected(f"{kind} is not allowed in a scoped query")
        if kind == "BASE_TABLE":
            name = str(node.get("table_name", ""))
            if node.get("schema_name") or node.get("catalog_name"):
                qual = ".".join(x for x in (node.get("catalog_name"), node.get("schema_name"), name) if x)
                raise QueryRejected(f"'{qual}': schema- or catalog-qualified tables bypass the scope; "
                                    f"write the bare table name")
            if name.lower() not in visible:
                raise QueryRejected(f"unknown table {name!r}: scoped queries read registered tables only")
            referenced.add(name.lower())
        if node.get("class") == "FUNCTION" or kind == "TABLE_FUNCTION":
            fn = node.get("function") if kind == "TABLE_FUNCTION" else node
            fname = str((fn or {}).get("function_name", "")).lower()
            if (fn or {}).get("schema") or (fn or {}).get("catalog"):
                raise QueryRejected(f"qualified function {fname!r} is not allowed in a scoped query")
            if kind == "TABLE_FUNCTION" and fname not in ALLOWED_TABLE_FUNCTIONS:
                raise QueryRejected(f"table function {fname}() is not allowed in a scoped query")
            if _DENIED_FUNCTION.match(fname):
                raise QueryRejected(f"function {fname}() is not allowed in a scoped query")
        for value in node.values():
            if isinstance(value, (dict, list)):
                walk(value, visible)

    walk(statements[0], allowed)
    return frozenset(referenced)


def _readable() -> list[schema.Table]:
    """The registered tables a scoped query reads: every one but those whose rows are read through a view."""
    return [t for t in schema.all_tables() if not t.read_through]


def scoped_table_names(scope: Scope) -> frozenset[str]:
    """The table names a query in ``scope`` may use (the registry, plus prev_<table> with a previous cut)."""
    names = {t.name for t in _readable()}
    if scope.previous_cut is not None:
        names |= {"prev_subjects", "prev_studies"} | {f"prev_{t.name}" for t in _readable()
                                       if t.name != "subjects" and t.per_subject and "usubjid" in t.column_names}
    return frozenset(n.lower() for n in names)


def check_query(query: str, scope: Scope) -> frozenset[str]:
    """Raise :class:`QueryRejected` unless ``query`` is one SELECT over scoped tables only.

    Returns the table names the query reads (lower case), so only their CTEs need to be built."""
    return _check_cached(query, scoped_table_names(scope))


_PARAM = re.compile(r"\$_scope_")


def _site_filter(scope: Scope) -> str:
    if scope.all_sites:
        return ""
    if not scope.sites:
        return " AND FALSE"  # a scope with no site sees no subject
    return " AND siteid IN (SELECT unnest($_scope_sites))"


def _scoped_ctes(scope: Scope) -> dict[str, str]:
    """Name -> CTE text for every table the scope can read, in dependency order (subjects first)."""
    ctes = []
    site_filter = _site_filter(scope)
    # a site scope ranks its own subjects' infusions: the study's ranks would tell it how many others infused
    subject_cols = "*" if scope.all_sites else (
        f"* REPLACE ({enrollment_order_sql('first_infusion_date', 'usubjid')} AS enrollment_order)")
    ctes.append(
        f"subjects AS (SELECT {subject_cols} FROM main.subjects WHERE studyid = $_scope_study "
        f"AND data_cut = $_scope_cut{site_filter})"
    )
    for t in _readable():
        if t.name == "subjects":
            continue
        cols = t.column_names
        if t.per_subject and "usubjid" in cols:
            subj = "" if scope.all_sites else " AND usubjid IN (SELECT usubjid FROM subjects)"
            where = f"studyid = $_scope_study AND data_cut = $_scope_cut{subj}"
        elif "data_cut" in cols:
            where = "studyid = $_scope_study AND data_cut = $_scope_cut"
            # only the study description is site-neutral; load counts and quarantined raw rows span sites
            if not scope.all_sites and t.name != "studies":
                where += " AND FALSE"
        else:
            where = "studyid = $_scope_study" + ("" if scope.all_sites else " AND FALSE")
        ctes.append(f"{t.name} AS (SELECT * FROM main.{t.name} WHERE {where})")
    if scope.previous_cut is not None:
        psite = _site_filter(scope)
        ctes.append(
            f"prev_subjects AS (SELECT {subject_cols} FROM main.subjects WHERE studyid = $_scope_study "
            f"AND data_cut = $_scope_prev_cut{psite})"
        )
        # the study's description at that cut (site-neutral, as studies is): what it delivered then
        ctes.append("prev_studies AS (SELECT * FROM main.studies WHERE studyid = $_scope_study "
                    "AND data_cut = $_scope_prev_cut)")
        for t in _readable():
            if t.name != "subjects" and t.per_subject and "usubjid" in t.column_names:
                subj = "" if scope.all_sites else " AND usubjid IN (SELECT usubjid FROM prev_subjects)"
                ctes.append(
                    f"prev_{t.name} AS (SELECT * FROM main.{t.name} WHERE studyid = $_scope_study "
                    f"AND data_cut = $_scope_prev_cut{subj})"
                )
    return {c.split(" AS ", 1)[0]: c for c in ctes}


def _prefix_for(ctes: dict[str, str], referenced: frozenset[str]) -> str:
    """The WITH clause holding only the CTEs a query reads, plus the subject CTEs they filter on."""
    needed = {n for n in ctes if n in referenced}
    # Site-scoped tables filter on the subjects CTE (and prev_ tables on prev_subjects).
    if any(n != "subjects" and not n.startswith("prev_") for n in needed):
        needed.add("subjects")
    if any(n.startswith("prev_") for n in needed):
        needed.add("prev_subjects")
    parts = [text for name, text in ctes.items() if name in needed]
    return ("WITH " + ",\n".join(parts) + "\n") if parts else ""


class StudyReader:
    """Run read queries within a :class:`Scope`. Thread-safe: each query takes its own cursor."""

    def __init__(self, con: duckdb.DuckDBPyConnection, scope: Scope):
        if scope.sites is not None and not isinstance(scope.sites, tuple):
            raise TypeError("Scope.sites must be a tuple of site ids or None (all sites)")
        self._con = con
        self.scope = scope
        self._ctes = _scoped_ctes(scope)
        self._tables: frozenset[str] | None = None  # a read-only database's tables and views, read once
        self._params = {"_scope_study": scope.studyid, "_scope_cut": scope.data_cut}
        if not scope.all_sites:
            self._params["_scope_sites"] = [str(s) for s in scope.sites]
        if scope.previous_cut is not None:
            self._params["_scope_prev_cut"] = scope.previous_cut

    def sql(self, query: str, params: dict | None = None) -> pd.DataFrame:
        """Run ``query`` (named ``$param`` placeholders only) against the scoped tables; a DataFrame back."""
        full, all_params = self._scoped(query, params)
        cur = self._con.cursor()
        try:
            return cur.sql(full, params=all_params).to_arrow_table().to_pandas()
        finally:
            cur.close()

    def arrays(self, query: str, params: dict | None = None) -> dict:
        """:meth:`sql`'s result as one NumPy array per column (:func:`safety.core.sql.fetch_arrays`: NULL as NaN
        or None), without pandas or a Python value per cell: for the derivations a load runs."""
        full, all_params = self._scoped(query, params)
        cur = self._con.cursor()
        try:
            cur.execute(full, all_params)
            return fetch_arrays(cur)
        finally:
            cur.close()

    def _scoped(self, query: str, params: dict | None) -> tuple[str, dict]:
        """``query`` checked and wrapped in the scope's CTEs, with the parameters it uses."""
        q = query.strip().rstrip(";").strip()
        if _PARAM.search(q) or any(str(k).startswith("_scope_") for k in (params or {})):
            raise QueryRejected("query parameters may not use the reserved $_scope_ prefix")
        referenced = check_query(q, self.scope)
        prefix = _prefix_for(self._ctes, referenced)
        m = re.match(r"(?is)^with\s+(recursive\s+)?", q)
        if m and prefix:
            # Merge the caller's WITH clause into ours so both sets of CTEs are visible.
            prefix = prefix.rstrip()
            if m.group(1):
                prefix = "WITH RECURSIVE " + prefix[len("WITH "):]
            full = prefix + ",\n" + q[m.end():]
        else:
            full = prefix + q
        all_params = dict(self._params)
        if params:
            all_params.update(params)
        return full, used_params(full, all_params)

    def has_tables(self, *names: str) -> bool:
        """True when every named table (or view) exists in the database file (a file written before a derivation
        existed lacks its table; callers say so rather than fail). Reads the catalog, no patient data: once for a
        read-only database (the app's and an export's, whose tables cannot change under them; a packet asked
        75 times), on every call for one a load is writing."""
        if self._tables is not None:
            return set(names) <= self._tables
        cur = self._con.cursor()
        try:
            read_only, tables = catalog(cur)
        finally:
            cur.close()
        if read_only:
            self._tables = tables
        return set(names) <= tables

    def with_previous_cut(self, previous_cut: dt.date | None) -> "StudyReader":
        """The same connection and scope (study, cut, sites) with ``prev_<table>`` CTEs at ``previous_cut``."""
        s = self.scope
        return StudyReader(self._con, Scope(s.studyid, s.data_cut, s.sites, previous_cut))

    def scalar(self, query: str, params: dict | None = None):
        """The single value of a one-row, one-column query (None when no row)."""
        df = self.sql(query, params)
        return None if df.empty else df.iat[0, 0]


def available_cuts(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Studies and their data cuts in the database (not patient data: no scope needed)."""
    cur = con.cursor()
    try:
        return cur.sql(
            "SELECT studyid, data_cut, title, product, product_type FROM studies ORDER BY studyid, data_cut"
        ).to_arrow_table().to_pandas()
    finally:
        cur.close()


def previous_cut(con: duckdb.DuckDBPyConnection, studyid: str, data_cut: dt.date) -> dt.date | None:
    """The data cut loaded before ``data_cut`` for the same study, or None."""
    cur = con.cursor()
    try:
        row = cur.execute(
            "SELECT max(data_cut) FROM studies WHERE studyid = $s AND data_cut < $c",
            {"s": studyid, "c": data_cut},
        ).fetchone()
    finally:
        cur.close()
    return row[0] if row else None

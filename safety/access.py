"""The one read path into a study database: every query is confined to a study, a data cut and a set of sites.

Pages, exports and the CLI write plain SQL against table names (``SELECT ... FROM adverse_events``).
:class:`StudyReader` wraps that SQL in CTEs that shadow every table of the schema with only the rows
the scope allows, so a query cannot reach another study, another cut or another site's subjects.
Study-level tables with no subject (stopping-rule status, boundaries, quarantine) are visible only to
scopes that cover all sites: a site investigator sees no study-wide aggregates.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from safety import schema


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


def connect(path: str | Path, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """Open a study database. The app and exports open it read-only."""
    path = Path(path)
    if read_only and not path.exists():
        raise FileNotFoundError(f"no celltox database at {path}")
    return duckdb.connect(str(path), read_only=read_only)


_PARAM = re.compile(r"\$_scope_")


def _scoped_ctes(scope: Scope) -> str:
    ctes = []
    site_filter = "" if scope.all_sites else " AND siteid IN (SELECT unnest($_scope_sites))"
    ctes.append(
        "subjects AS (SELECT * FROM main.subjects WHERE studyid = $_scope_study "
        f"AND data_cut = $_scope_cut{site_filter})"
    )
    for t in schema.all_tables():
        if t.name == "subjects":
            continue
        cols = t.column_names
        if t.per_subject and "usubjid" in cols:
            subj = "" if scope.all_sites else " AND usubjid IN (SELECT usubjid FROM subjects)"
            where = f"studyid = $_scope_study AND data_cut = $_scope_cut{subj}"
        elif "data_cut" in cols:
            where = "studyid = $_scope_study AND data_cut = $_scope_cut"
            if not scope.all_sites and t.name not in ("studies", "load_log"):
                where += " AND FALSE"
        else:
            where = "studyid = $_scope_study" + ("" if scope.all_sites else " AND FALSE")
        ctes.append(f"{t.name} AS (SELECT * FROM main.{t.name} WHERE {where})")
    if scope.previous_cut is not None:
        psite = "" if scope.all_sites else " AND siteid IN (SELECT unnest($_scope_sites))"
        ctes.append(
            "prev_subjects AS (SELECT * FROM main.subjects WHERE studyid = $_scope_study "
            f"AND data_cut = $_scope_prev_cut{psite})"
        )
        for t in schema.all_tables():
            if t.name != "subjects" and t.per_subject and "usubjid" in t.column_names:
                subj = "" if scope.all_sites else " AND usubjid IN (SELECT usubjid FROM prev_subjects)"
                ctes.append(
                    f"prev_{t.name} AS (SELECT * FROM main.{t.name} WHERE studyid = $_scope_study "
                    f"AND data_cut = $_scope_prev_cut{subj})"
                )
    return "WITH " + ",\n".join(ctes) + "\n"


class StudyReader:
    """Run read queries within a :class:`Scope`. Thread-safe: each query takes its own cursor."""

    def __init__(self, con: duckdb.DuckDBPyConnection, scope: Scope):
        self._con = con
        self.scope = scope
        self._prefix = _scoped_ctes(scope)
        self._params = {"_scope_study": scope.studyid, "_scope_cut": scope.data_cut}
        if not scope.all_sites:
            self._params["_scope_sites"] = list(scope.sites)
        if scope.previous_cut is not None:
            self._params["_scope_prev_cut"] = scope.previous_cut

    def sql(self, query: str, params: dict | None = None) -> pd.DataFrame:
        """Run ``query`` (named ``$param`` placeholders only) against the scoped tables; a DataFrame back."""
        q = query.strip()
        if _PARAM.search(q):
            raise ValueError("query parameters may not use the reserved $_scope_ prefix")
        if re.match(r"(?is)^with\s", q):
            # Merge the caller's WITH clause into ours so both sets of CTEs are visible.
            q = ",\n" + q[4:].lstrip()
            full = self._prefix.rstrip() + q
        else:
            full = self._prefix + q
        all_params = dict(self._params)
        if params:
            all_params.update(params)
        used = set(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", full))
        all_params = {k: v for k, v in all_params.items() if k in used}
        cur = self._con.cursor()
        try:
            return cur.execute(full, all_params).to_arrow_table().to_pandas()
        finally:
            cur.close()

    def scalar(self, query: str, params: dict | None = None):
        """The single value of a one-row, one-column query (None when no row)."""
        df = self.sql(query, params)
        return None if df.empty else df.iat[0, 0]


def available_cuts(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Studies and their data cuts in the database (not patient data: no scope needed)."""
    cur = con.cursor()
    try:
        return cur.execute(
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

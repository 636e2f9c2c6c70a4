"""The celltox database schema: one registry of every table, from which the DDL and docs/schema.md are made.

Every study table carries ``studyid`` and ``data_cut`` (lab_toxicity_records, behind the view lab_toxicity,
through its lab_term_id): each ingest with a cutoff is a snapshot of the
study as the committee saw it on that date, so several cuts (and several studies) live in one file.
Source tables are declared in :mod:`safety.schema.source`, derived tables in :mod:`safety.schema.derived`;
the registry below is complete by plain import.
"""
from __future__ import annotations

from safety.schema.base import KEY, SUBJ, C, Column, Table
from safety.schema.derived import *  # noqa: F401,F403
from safety.schema.derived import (CRS_ICANS_TABLES, DLT_CANDIDATES, DLT_EVALUABILITY, ELIGIBILITY_DEVIATIONS,
                                   EPISODE_LAB_TABLES, ICAHT, LAB_GRADE_TABLES, LAB_WORST_GRADES, STOPPING_BOUNDARIES,
                                   STOPPING_RULE_STATUS)
from safety.schema.derived import AE_GRADE_CHECKS, CAR_HEMATOTOX
from safety.schema.derived import OUTCOME_TABLES
from safety.schema.derived import PP_MH_TABLES
from safety.schema.source import *  # noqa: F401,F403
from safety.schema.source import SOURCE_TABLES

DERIVED_TABLES: tuple[Table, ...] = (
    ELIGIBILITY_DEVIATIONS, *LAB_GRADE_TABLES, LAB_WORST_GRADES, AE_GRADE_CHECKS, *CRS_ICANS_TABLES, *EPISODE_LAB_TABLES, ICAHT,
    DLT_CANDIDATES, DLT_EVALUABILITY, STOPPING_RULE_STATUS, STOPPING_BOUNDARIES,
    CAR_HEMATOTOX,
    *OUTCOME_TABLES,
    *PP_MH_TABLES,
)

_REGISTRY: dict[str, Table] = {t.name: t for t in (*SOURCE_TABLES, *DERIVED_TABLES)}


def all_tables() -> list[Table]:
    """Every table of the database, source tables first."""
    return list(_REGISTRY.values())


def get_table(name: str) -> Table:
    """The declared table called ``name``; KeyError names it when there is none."""
    return _REGISTRY[name]


def create_schema(con) -> None:
    """Create every registered table that does not exist yet, then the views over them.

    A view that an earlier celltox stored as a table is made the view: lab_toxicity's rows are moved into the
    tables the view reads (they hold other snapshots of the file), toxicity_daily_grades is dropped (the view
    computes the same rows from the tables it reads). A view whose tables an earlier celltox laid out otherwise
    keeps its rows the same way."""
    views = [t for t in _REGISTRY.values() if t.is_view]
    relaid = _keep_rows_of_earlier_layouts(con, views)
    stored = {r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = 'main' "
        "AND table_name IN (SELECT unnest($names))", {"names": [t.name for t in views]}).fetchall()}
    # the DDL is the code's, no value in it
    kept = [t for t in views if t.name in stored and t.store_sql]
    con.execute(";\n".join([f"ALTER TABLE {t.name} RENAME TO _stored_{t.name}" for t in kept]
                             + [f"DROP TABLE {name}" for name in sorted(stored - {t.name for t in kept})]
                             + [t.ddl() for t in _REGISTRY.values() if not t.is_view]))
    for t in [*kept, *relaid]:
        store_view_rows(con, t, f"SELECT {', '.join(t.column_names)} FROM _stored_{t.name}")
        con.execute(f"DROP TABLE _stored_{t.name}")
    con.execute(";\n".join(t.ddl() for t in views))


def _keep_rows_of_earlier_layouts(con, views: list[Table]) -> list[Table]:
    """For each view whose stored tables an earlier celltox laid out otherwise (a declared column missing): its
    rows, read through the file's own view, into a temporary _stored_<view>; the view and those tables dropped,
    to be made anew. Returns the views whose rows wait there."""
    have = _columns(con)
    relaid = []
    for v in views:
        parts = [t for t in _REGISTRY.values() if t.read_through == v.name and t.name in have]
        if v.name not in have or not any(set(t.column_names) - have[t.name] for t in parts):
            continue
        con.execute(f"CREATE TEMP TABLE _stored_{v.name} AS SELECT {', '.join(v.column_names)} FROM main.{v.name}")
        con.execute(f"DROP VIEW main.{v.name}")
        for t in parts:
            con.execute(f"DROP TABLE main.{t.name}")
        relaid.append(v)
    return relaid


def store_view_rows(con, view: Table, select_sql: str, params: dict | None = None) -> None:
    """Store the rows of ``select_sql`` (any of ``view``'s columns, by name; the others NULL) in the tables the view
    reads, as a load stores them. The SELECT is the code's; values come as ``params``."""
    cols = ", ".join(f"{c.name} {c.value_type}" for c in view.columns)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _view_rows ({cols})")
    con.execute(f"INSERT INTO _view_rows BY NAME {select_sql}", params or {})
    for sql in view.store_sql:
        con.execute(sql.format(rows="_view_rows"))
    con.execute("DROP TABLE _view_rows")


def _columns(con) -> dict[str, set[str]]:
    """{table or view: its column names} of the file's main schema."""
    have: dict[str, set[str]] = {}
    for table, column in con.execute("SELECT table_name, column_name FROM information_schema.columns "
                                     "WHERE table_schema = 'main'").fetchall():
        have.setdefault(table, set()).add(column)
    return have


def missing_columns(con) -> dict[str, list[str]]:
    """Registered tables present in the database without every declared column ({table: [columns]}): a file
    written by an earlier celltox, which must be reloaded before its pages or packets can be trusted. Tables
    that are absent altogether are not listed (a page says which derived table it lacks), nor the tables a view
    stores its rows in."""
    have = _columns(con)
    # a view's stored tables are not listed: its rows are read through the file's own view, and the next load
    # lays them out anew with every row kept (create_schema)
    return {t.name: [c for c in t.column_names if c not in have[t.name]]
            for t in _REGISTRY.values()
            if t.name in have and not t.read_through and not set(t.column_names) <= have[t.name]}


__all__ = ["KEY", "SUBJ", "C", "Column", "Table", "SOURCE_TABLES", "DERIVED_TABLES",
           "all_tables", "get_table", "create_schema", "store_view_rows", "missing_columns"]

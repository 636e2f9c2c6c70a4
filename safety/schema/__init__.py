"""The celltox database schema: one registry of every table, from which the DDL and docs/schema.md are made.

Every study table carries ``studyid`` and ``data_cut``: each ingest with a cutoff is a snapshot of the
study as the committee saw it on that date, so several cuts (and several studies) live in one file.
Source tables are declared in :mod:`safety.schema.source`, derived tables in :mod:`safety.schema.derived`;
the registry below is complete by plain import.
"""
from __future__ import annotations

from safety.schema.base import KEY, SUBJ, C, Column, Table
from safety.schema.derived import *  # noqa: F401,F403
from safety.schema.derived import (CRS_ICANS_TABLES, DLT_CANDIDATES, DLT_EVALUABILITY, ELIGIBILITY_DEVIATIONS,
                                   EPISODE_LAB_TABLES, ICAHT, LAB_TOXICITY, LAB_WORST_GRADES, STOPPING_BOUNDARIES,
                                   STOPPING_RULE_STATUS)
from safety.schema.derived import CAR_HEMATOTOX
from safety.schema.derived import OUTCOME_TABLES
from safety.schema.derived import PP_MH_TABLES
from safety.schema.source import *  # noqa: F401,F403
from safety.schema.source import SOURCE_TABLES

DERIVED_TABLES: tuple[Table, ...] = (
    ELIGIBILITY_DEVIATIONS, LAB_TOXICITY, LAB_WORST_GRADES, *CRS_ICANS_TABLES, *EPISODE_LAB_TABLES, ICAHT,
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

    A view that an earlier celltox stored as a table (toxicity_daily_grades) is dropped and made the view: its
    rows are those the view computes from the tables it reads."""
    views = [t for t in _REGISTRY.values() if t.is_view]
    stored = {r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = 'main' "
        "AND table_name IN (SELECT unnest($names))", {"names": [t.name for t in views]}).fetchall()}
    # one call: the DDL is the code's, no value in it
    con.execute(";\n".join([f"DROP TABLE {name}" for name in sorted(stored)]
                            + [t.ddl() for t in _REGISTRY.values() if not t.is_view] + [t.ddl() for t in views]))


def missing_columns(con) -> dict[str, list[str]]:
    """Registered tables present in the database without every declared column ({table: [columns]}): a file
    written by an earlier celltox, which must be reloaded before its pages or packets can be trusted. Tables
    that are absent altogether are not listed (a page says which derived table it lacks)."""
    have: dict[str, set[str]] = {}
    for table, column in con.execute("SELECT table_name, column_name FROM information_schema.columns "
                                     "WHERE table_schema = 'main'").fetchall():
        have.setdefault(table, set()).add(column)
    return {t.name: [c for c in t.column_names if c not in have[t.name]]
            for t in _REGISTRY.values() if t.name in have and not set(t.column_names) <= have[t.name]}


__all__ = ["KEY", "SUBJ", "C", "Column", "Table", "SOURCE_TABLES", "DERIVED_TABLES",
           "all_tables", "get_table", "create_schema", "missing_columns"]

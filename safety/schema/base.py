"""The schema's building blocks: a table is a name, a description and typed, documented columns.

Every study table carries ``studyid`` and ``data_cut`` (a table behind a view may reach them through a key
and declare its ``snapshot_delete``): each ingest with a cutoff is a snapshot of the
study as the committee saw it on that date, so several cuts (and several studies) live in one file.
Derivation modules declare their own tables with :class:`Table` and register them in ``ALL_TABLES``.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    description: str

    @property
    def value_type(self) -> str:
        """The type without its constraint ('VARCHAR NOT NULL' -> 'VARCHAR'): what a value of the column is."""
        return self.type.replace(" NOT NULL", "")


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    columns: tuple[Column, ...]
    group: str = "source"  # source | derived | bookkeeping
    per_subject: bool = True  # has usubjid: site-scoped access filters it by subject
    extra_columns_note: str = ""
    # a view: its rows are computed when read, by this SELECT (one column per declared column, in order) over
    # the tables it names, so they can never disagree with them and a load writes none of them
    view_sql: str = ""
    # for a view over tables: statements that store rows with the view's columns, read from the table named by
    # {rows}, in those tables (safety.schema.store_view_rows: a file that kept the view's rows as a table, fixtures)
    store_sql: tuple[str, ...] = ()
    # for a table that stores part of a view's rows: the view, the only way its rows are read (the scoped reader
    # offers the view, not this table)
    read_through: str = ""
    # for a table without studyid and data_cut of its own: the DELETE of one snapshot's rows ($studyid, $data_cut)
    snapshot_delete: str = ""

    @property
    def is_view(self) -> bool:
        return bool(self.view_sql)

    def ddl(self) -> str:
        if self.is_view:
            return f"CREATE OR REPLACE VIEW {self.name} AS {self.view_sql}"
        cols = ",\n  ".join(f"{c.name} {c.type}" for c in self.columns)
        return f"CREATE TABLE IF NOT EXISTS {self.name} (\n  {cols}\n)"

    def delete_snapshot_sql(self) -> str | None:
        """The DELETE of one (study, cut)'s rows, parameters $studyid and $data_cut; None for a view or a table
        that holds no snapshot's rows."""
        if self.is_view:
            return None
        if self.snapshot_delete:
            return self.snapshot_delete
        if {"studyid", "data_cut"} <= set(self.column_names):
            return f"DELETE FROM {self.name} WHERE studyid = $studyid AND data_cut = $data_cut"
        return None

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


def C(name: str, type_: str, description: str) -> Column:
    return Column(name, type_, description)


KEY = (
    C("studyid", "VARCHAR NOT NULL", "Study identifier (DM.STUDYID)."),
    C("data_cut", "DATE NOT NULL", "The data cut this row belongs to: the load's --cutoff, or the latest date in the delivery."),
)
SUBJ = (C("usubjid", "VARCHAR NOT NULL", "Unique subject identifier (USUBJID)."),)


def _dated(prefix: str, what: str) -> tuple[Column, ...]:
    """The columns every dated record carries: the ISO text as delivered, the imputed date, the flag and the day."""
    return (
        C(f"{prefix}dtc", "VARCHAR", f"{what} as delivered (ISO 8601 text, possibly partial)."),
        C(f"{prefix}_date", "DATE", f"{what} as a date; partial dates imputed (see Dates below)."),
        C(f"{prefix}_date_flag", "VARCHAR", "Imputation flag as in ADaM: NULL = complete date, 'D' = day imputed, 'M' = month and day imputed."),
    )

"""Small helpers shared by the toxicity derivations (named parameters, table resets)."""
from __future__ import annotations

from safety.core.sql import reset_derived as reset  # noqa: F401 - the one reset helper
from safety.core.sql import run_sql as run  # the one "only the parameters it uses" helper

SCOPE = "studyid = $s AND data_cut = $c"


def insert(con, table, select_sql: str, params: dict) -> None:
    """INSERT the rows of ``select_sql`` into ``table`` by column name, so column order never matters."""
    cols = ", ".join(table.column_names)
    run(con, f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM ({select_sql})", params)

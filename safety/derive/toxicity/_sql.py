"""Small helpers shared by the toxicity derivations (named parameters, table resets)."""
from __future__ import annotations

import re

_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")

SCOPE = "studyid = $s AND data_cut = $c"


def run(con, sql: str, params: dict | None = None):
    """Execute ``sql`` passing only the named parameters it uses (DuckDB refuses extras)."""
    used = set(_PARAM.findall(sql))
    return con.execute(sql, {k: v for k, v in (params or {}).items() if k in used})


def reset(con, tables, studyid, data_cut) -> None:
    """Create the tables if missing and delete their rows for one (studyid, data_cut)."""
    for t in tables:
        con.execute(t.ddl())
        con.execute(f"DELETE FROM {t.name} WHERE studyid = $s AND data_cut = $c", {"s": studyid, "c": data_cut})


def insert(con, table, select_sql: str, params: dict) -> None:
    """INSERT the rows of ``select_sql`` into ``table`` by column name, so column order never matters."""
    cols = ", ".join(table.column_names)
    run(con, f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM ({select_sql})", params)

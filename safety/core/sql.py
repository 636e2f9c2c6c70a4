"""Small SQL helpers shared by every derivation and reader."""
from __future__ import annotations

import re

PARAM_RE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def record_order(alias: str, dtc: str = "lbdtc", seq: str = "lbseq") -> str:
    """The time order of ``alias``'s records (labs by default), as an ``arg_max`` / ``arg_min`` key: the day, then
    the time in the ``dtc`` column (ISO 8601 text sorts in time order), then the sequence number ``seq``; a
    record without a time or a sequence number counts after those with one that day (DuckDB orders NULL last).
    Two results of one test on one day then have one first and one last, whatever order DuckDB's threads meet
    them in."""
    return f"({alias}.day, {alias}.{dtc}, {alias}.{seq})"


def used_params(sql: str, params: dict) -> dict:
    """The subset of ``params`` that ``sql`` names as ``$name`` (DuckDB refuses unused named parameters)."""
    used = set(PARAM_RE.findall(sql))
    return {k: v for k, v in params.items() if k in used}


def run_sql(con, sql: str, params: dict | None = None):
    """Execute ``sql`` with only the parameters it uses; returns DuckDB's result."""
    return con.execute(sql, used_params(sql, params or {}))


def fetch_arrays(cur) -> dict:
    """The executed cursor's result as one NumPy array per column (DuckDB's ``fetchnumpy``, no Python value per
    cell). A column holding NULL comes as floats with NaN for NULL when it holds numbers or truth values, and with
    None for NULL when it holds text (not as a masked array, whose masked cells read as their fill value)."""
    import numpy as np

    out = {}
    for name, a in cur.fetchnumpy().items():
        if np.ma.isMaskedArray(a):
            if a.dtype == object:
                a, mask = a.data.copy(), np.ma.getmaskarray(a)
                a[mask] = None
            else:
                a = np.ma.filled(a.astype(float), np.nan)
        out[name] = a
    return out


def create_missing(con, tables) -> None:
    """Create each of ``tables`` (tables or views) that the file does not hold yet, in their order.

    A load has created them all (``safety.schema.create_schema``), so a derivation in a load creates nothing.
    Why not ``CREATE ... IF NOT EXISTS`` every time: even for a table that exists it makes the transaction one
    that changed the catalog, and while such a transaction is open DuckDB skips the automatic checkpoint at
    another derivation's commit and refuses a CHECKPOINT (docs/performance-history.md, seventeenth pass)."""
    have = existing(con, [t.name for t in tables])
    for t in tables:
        if t.name not in have:
            con.execute(t.ddl())


# the tables and views of the connection's database ({names}: a condition on `name`, or TRUE for all of them)
_CATALOG_SQL = ("SELECT name FROM (SELECT table_name AS name FROM duckdb_tables() "
                "WHERE database_name = current_database() AND schema_name = 'main' UNION ALL "
                "SELECT view_name FROM duckdb_views() WHERE database_name = current_database() "
                "AND schema_name = 'main') WHERE {names}")


def existing(con, names) -> set[str]:
    """Those of ``names`` that the connection's database holds as a table or a view (one read of the catalog):
    a file written before a derivation existed lacks its table."""
    return {r[0] for r in con.execute(_CATALOG_SQL.format(names="name IN (SELECT unnest($n))"),
                                      {"n": list(names)}).fetchall()}


def catalog(con) -> tuple[bool, frozenset[str]]:
    """(whether the connection's database is read-only, every table and view it holds): one read of the catalog.
    A read-only database's tables cannot change under the connection, so a reader may keep the names."""
    every = _CATALOG_SQL.format(names="TRUE")
    read_only, names = con.execute(f"SELECT readonly, (SELECT list(name) FROM ({every})) FROM duckdb_databases() "
                                   "WHERE database_name = current_database()").fetchone()
    return bool(read_only), frozenset(names or ())


def reset_derived(con, tables, studyid: str, data_cut) -> None:
    """Create each derived table if missing (:func:`create_missing`) and delete its rows for one (study, cut),
    ready to be rebuilt (a view holds no rows).

    Runs inside the caller's transaction, so a failure leaves the previous rows in place."""
    create_missing(con, tables)
    for t in tables:  # in their order: a table deleted through another (lab_toxicity_records) comes before it
        sql = t.delete_snapshot_sql()
        if sql:
            con.execute(sql, {"studyid": studyid, "data_cut": data_cut})


def temp_table(con, table: str, columns: dict[str, str], rows) -> str:
    """A temp table ``table`` of ``columns`` ({name: SQL type}) holding ``rows`` (a rule file's rows, read once per
    derivation run); returns its name."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} (" + ", ".join(f"{c} {t}" for c, t in columns.items()) + ")")
    insert_rows(con, table, rows, tuple(columns.values()))
    return table


def insert_rows(con, table: str, rows, types: tuple[str, ...]) -> None:
    """INSERT ``rows`` (tuples, one value per column of ``table`` in order) in one statement, each column
    passed as one list parameter: ``executemany`` runs a statement per row (about 1 ms each)."""
    rows = list(rows)
    if not rows:
        return
    cols = [list(c) for c in zip(*rows)]
    sel = ", ".join(f"unnest(CAST(${i + 1} AS {t}[]))" for i, t in enumerate(types))
    con.execute(f"INSERT INTO {table} SELECT {sel}", cols)


def infusion_time_sql(dtc: str) -> str:
    """SQL: the infusion's clock time from its date/time as delivered (``dtc``), NULL when it carries none; the
    ``inf_time`` :func:`after_infusion_sql` reads (needs the load's date macros: safety.ingest.sqlmacros)."""
    return f"CASE WHEN length({dtc}) > 10 THEN ct_time({dtc}, 'F') END"


def after_infusion_sql(alias: str, ts: str, timed: str) -> str:
    """A moment ``ts`` (a timestamp) at or after the subject's first CAR infusion (``alias``.inf_date, .inf_time):
    day >= 0, and not before the infusion time when both carry one (``timed``: whether ``ts`` has a time). The one
    rule of "after infusion" for assessments, events and drugs, from the SDTM domains or the assessment files."""
    return (f"({ts}::DATE >= {alias}.inf_date AND NOT ({timed} AND {alias}.inf_time IS NOT NULL "
            f"AND {ts} < {alias}.inf_time))")

"""A DuckDB database file attached under a name to an in-memory instance of its own.

Two reasons to open a file this way rather than with ``duckdb.connect(path)``: ``duckdb.connect`` returns the
instance a process already has open for that path (a reader after a load's switch would still see the old
file), and some storage settings are options of the attachment (a load's row group size). Cursors of a
connection start in DuckDB's in-memory catalog, so every cursor, and a cursor's cursor, is moved into the
file (``USE``) and reads and writes as a plain connection to it would.
"""
from __future__ import annotations

from pathlib import Path

import duckdb


class AttachedConnection:
    """A DuckDB connection (or cursor) whose default database is the attached file; anything but ``cursor``
    is the wrapped connection's own."""

    def __init__(self, con, name: str):
        self._con, self._name = con, name

    @classmethod
    def attach(cls, path: Path, name: str, options: str = "", settings: tuple[str, ...] = (),
               params: dict | None = None):
        """Attach the file at ``path`` as ``name`` (``options`` as in ``ATTACH ... (options)``), make it the
        default database, then run each of ``settings`` (with ``params``); the instance is closed on failure."""
        con = duckdb.connect(":memory:")
        try:
            con.execute(f"ATTACH $path AS {name}" + (f" ({options})" if options else ""), {"path": str(path)})
            con.execute(f"USE {name}")
            for sql in settings:
                con.execute(sql, params or {})
        except BaseException:
            con.close()
            raise
        return cls(con, name)

    def cursor(self) -> "AttachedConnection":
        cur = self._con.cursor()
        cur.execute(f"USE {self._name}")
        return AttachedConnection(cur, self._name)

    def __getattr__(self, name):
        return getattr(self._con, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._con.close()

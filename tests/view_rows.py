"""Hand-made rows of a view over tables (lab_toxicity), stored in those tables as a load stores them."""
from __future__ import annotations

from safety import schema


def insert_view_rows(con, view_name: str, rows: list[dict]) -> None:
    """Store ``rows`` (dicts naming any of the view's columns) through ``schema.store_view_rows``."""
    if not rows:
        return
    cols = list(dict.fromkeys(k for r in rows for k in r))
    values = ", ".join("(" + ", ".join(f"$p{i}_{j}" for j in range(len(cols))) + ")" for i in range(len(rows)))
    params = {f"p{i}_{j}": r.get(c) for i, r in enumerate(rows) for j, c in enumerate(cols)}
    names = ", ".join(f'"{c}"' for c in cols)
    schema.store_view_rows(con, schema.get_table(view_name), f"SELECT * FROM (VALUES {values}) v({names})", params)

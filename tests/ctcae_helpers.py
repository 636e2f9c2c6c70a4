"""Helpers for the CTCAE grading tests: build a real labs table in a DuckDB file."""
from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd

from safety import schema

CUT = dt.date(2026, 1, 31)
STUDY = "CTX-TEST"


def lab(usubjid, lbseq, lbtestcd, value, unit, lln=None, uln=None, day=5, lbblfl=None, lbnrind=None,
        lbspec="SERUM", lbcat="CHEMISTRY", studyid=STUDY, data_cut=CUT):
    return dict(studyid=studyid, data_cut=data_cut, usubjid=usubjid, lbseq=lbseq, lbtestcd=lbtestcd,
                value=value, unit=unit, lln=lln, uln=uln, day=day, lbblfl=lbblfl, lbnrind=lbnrind,
                lbspec=lbspec, lbcat=lbcat, lb_date=dt.date(2025, 6, 1) + dt.timedelta(days=day))


def make_db(path, rows) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path))
    con.execute(schema.LABS.ddl())
    if rows:
        df = pd.DataFrame(rows)
        for c in ("value", "lln", "uln"):
            df[c] = df[c].astype("float64")
        con.register("new_rows", df)
        cols = ", ".join(df.columns)
        con.execute(f"INSERT INTO labs ({cols}) SELECT {cols} FROM new_rows")
        con.unregister("new_rows")
    return con

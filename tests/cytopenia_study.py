"""A crafted cell-therapy study for the cytopenia derivations (ICAHT, CAR-HEMATOTOX), loaded by a real ingest.

Each subject is infused on day 0 (2025-01-10); ``ld`` sets a lymphodepletion start day (CM), ``therapy`` a
(day, CMCAT) pair of a medication begun then (Glofitamab), ``death`` a death day, ``progression`` the day of a DS
PROGRESSIVE DISEASE record, ``labs`` maps a test code to {day: LBORRES} where a value may be a (LBORRES, LBORRESU) pair or a (LBORRES,
LBORRESU, LBSPEC, LBCAT) quadruple (a blood haematology result otherwise), a list of those (several results that
day) or a text such as '<20' (a censored result)."""
from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import duckdb

from safety.ingest import ingest_study

DAY0 = dt.date(2025, 1, 10)
SI_UNITS = {"NEUT": "10^9/L", "PLAT": "10^9/L", "HGB": "g/L", "CRP": "mg/L", "FERRITIN": "ug/L"}
LOWER_LIMITS = {"NEUT": "2.0", "PLAT": "150", "HGB": "120"}


def _date(day: int) -> str:
    return (DAY0 + dt.timedelta(days=day)).isoformat()


def _write(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def build_study(folder: Path, subjects: dict) -> Path:
    """Write DM, EX, CM, LB (and DS when a subject progresses) for ``subjects`` into ``folder`` (see the module
    docstring)."""
    folder.mkdir(parents=True, exist_ok=True)
    _write(folder / "dm.csv", ["STUDYID", "DOMAIN", "USUBJID", "RFXSTDTC", "RFICDTC", "DTHDTC", "DTHFL", "AGE", "AGEU",
                               "SEX", "ARMCD", "ARM"],
           [["X", "DM", s, _date(0), _date(-30), "" if sp.get("death") is None else _date(sp["death"]),
             "" if sp.get("death") is None else "Y", 50, "YEARS", "M", "DL1", "DL1"] for s, sp in subjects.items()])
    _write(folder / "ex.csv", ["STUDYID", "DOMAIN", "USUBJID", "EXSEQ", "EXTRT", "EXCAT", "EXDOSE", "EXDOSU", "EXSTDTC",
                               "EXENDTC"],
           [["X", "EX", s, 1, "CAR-T", "CELL THERAPY", 1, "10^6 cells/kg", _date(0), _date(0)] for s in subjects])
    _write(folder / "cm.csv", ["STUDYID", "DOMAIN", "USUBJID", "CMSEQ", "CMTRT", "CMDECOD", "CMCAT", "CMSTDTC",
                               "CMENDTC"],
           [["X", "CM", s, 1, "Fludarabine", "FLUDARABINE", "LYMPHODEPLETION", _date(sp["ld"]), _date(sp["ld"] + 2)]
            for s, sp in subjects.items() if sp.get("ld") is not None]
           + [["X", "CM", s, 2, "Glofitamab", "GLOFITAMAB", sp["therapy"][1], _date(sp["therapy"][0]), ""]
              for s, sp in subjects.items() if sp.get("therapy") is not None])
    progressions = [["X", "DS", s, 1, "Progressive disease", "PROGRESSIVE DISEASE", "DISPOSITION EVENT",
                     _date(sp["progression"])] for s, sp in subjects.items() if sp.get("progression") is not None]
    if progressions:
        _write(folder / "ds.csv", ["STUDYID", "DOMAIN", "USUBJID", "DSSEQ", "DSTERM", "DSDECOD", "DSCAT", "DSSTDTC"],
               progressions)
    rows, seq = [], 0
    for s, sp in subjects.items():
        for test, series in sp.get("labs", {}).items():
            for day, val in sorted(series.items()):
                for v in val if isinstance(val, list) else [val]:
                    v, unit, spec, cat = (v + ("BLOOD", "HEMATOLOGY"))[:4] if isinstance(v, tuple) else (
                        v, SI_UNITS[test], "BLOOD", "HEMATOLOGY")
                    seq += 1
                    rows.append(["X", "LB", s, seq, test, test, cat, spec, v, unit,
                                 LOWER_LIMITS.get(test, "") if unit == SI_UNITS.get(test) else "", "", _date(day)])
    _write(folder / "lb.csv", ["STUDYID", "DOMAIN", "USUBJID", "LBSEQ", "LBTESTCD", "LBTEST", "LBCAT", "LBSPEC",
                               "LBORRES", "LBORRESU", "LBORNRLO", "LBORNRHI", "LBDTC"], rows)
    return folder


def load_study(tmp_path: Path, subjects: dict) -> duckdb.DuckDBPyConnection:
    """Build the study under ``tmp_path``, ingest it into a new DuckDB file and open that file read-only."""
    db = tmp_path / "cytopenia.duckdb"
    ingest_study(build_study(tmp_path / "study", subjects), db)
    return duckdb.connect(str(db), read_only=True)


def rows(con, sql: str, **params) -> dict:
    """{usubjid: row as a dict} of a query whose first column is usubjid."""
    cur = con.execute(sql, params or None)
    names = [d[0] for d in cur.description]
    return {r[0]: dict(zip(names, r)) for r in cur.fetchall()}

"""CSV output: one file per listing or table, the packet metadata in leading '#' lines.

Read one back with :func:`read_export_csv` (or ``pandas.read_csv(path, skiprows=<number of '#' lines>)``).
The field names are the database's (usubjid, onset_day, ctcae_grade ...), not display labels.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd

from safety.core.files import spreadsheet_text
from safety.export.common import PacketMeta, text_value


def csv_text(df: pd.DataFrame, meta: PacketMeta) -> str:
    """The CSV file's text: '#' metadata lines, then the header row and one line per row."""
    buf = io.StringIO()
    a = df.attrs
    lines = [f"{a.get('title', '')} [{a.get('reference', '')}]"] + meta.header_lines() + [meta.generated_line]
    lines += [meta.audit_line] if meta.audit_line else []
    lines += meta.hash_lines() + [f"Note: {n}" for n in a.get("notes", [])] + [f"Rows: {len(df)}"]
    for line in lines:
        buf.write("# " + line.replace("\n", " ") + "\n")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(list(df.columns))
    cols = [[_csv_value(v) for v in df[col].tolist()] for col in df.columns]
    w.writerows(zip(*cols))
    return buf.getvalue()


def _csv_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):  # verbatim text may start like a formula
        return spreadsheet_text(v)
    # a data file keeps the value the XLSX holds (15 digits), not the 6 a printed page shows: an AUC of 345862.3
    # is 345862.3 in both
    return text_value(v, ".15g")


def write_csv(df: pd.DataFrame, meta: PacketMeta, path: Path) -> Path:
    path = Path(path)
    path.write_text(csv_text(df, meta), encoding="utf-8", newline="")
    return path


def read_export_csv(path) -> pd.DataFrame:
    """Read a celltox export CSV, skipping its '#' metadata lines (cells may still contain '#')."""
    with open(path, encoding="utf-8") as fh:
        skip = 0
        for line in fh:
            if not line.startswith("#"):
                break
            skip += 1
    df = pd.read_csv(path, skiprows=skip, dtype=str, keep_default_na=False)
    # the apostrophe written before a cell a spreadsheet would run as a formula (spreadsheet_text)
    return df.apply(lambda col: col.str.slice(1).where(col.str.startswith("'"), col))

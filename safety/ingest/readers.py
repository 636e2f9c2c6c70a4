"""Find the datasets in a study folder, tell their domain, and stage each as all-VARCHAR rows.

Staging never types anything: every value stays text so that typing and validation happen in one
place (SQL per domain) and a bad value can be quarantined with the row exactly as delivered.
"""
from __future__ import annotations

import codecs
import csv
import datetime as dt
import errno
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from safety.core.files import sha256_file
from safety.ingest.domains import DOMAIN_CODES, SPECS, canonical_name
from safety.ingest.errors import IngestError

# Parquet types staged natively: they convert to text and back to DOUBLE exactly (FLOAT and DECIMAL do not)
NATIVE_TYPES = {"DOUBLE", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"}

# DuckDB's nested types besides lists and arrays (VARCHAR[], VARCHAR[2]): no SDTM variable holds one
NESTED_TYPES = ("STRUCT", "MAP", "UNION")

# Every staged relation has _reject (why a delivered line is not a row, e.g. a ragged CSV line) and _raw (that
# line as delivered, JSON); both NULL for rows that parsed.
NO_REJECT = "CAST(NULL AS VARCHAR) AS _reject, CAST(NULL AS VARCHAR) AS _raw"

CSV_DELIMITERS = (",", ";", "\t", "|")

# The longest CSV value read, in characters, by both readers (DuckDB's per line, Python's csv module per field).
# Their own defaults differed (2 MiB and 128 KiB): a value of 1 MB loaded from a regular file and was refused
# from one the careful reader takes. No SDTM value comes near it; a longer one refuses the file, saying so.
CSV_MAX_VALUE = 16 * 1024 * 1024

# A control character in a delivered value (NUL, ESC, ...): invisible in every listing, yet 'Cyto<NUL>kine release
# syndrome' counts as a preferred term of its own. Tab, line feed and carriage return are whitespace a sender can
# see (a line break typed in a cell), so they are not among them.
CONTROL_CHARACTER = r"[\x00-\x08\x0B\x0C\x0E-\x1F\x7F]"


def columns_with_control_characters(columns: list[str], relation: str) -> str:
    """SQL naming which of ``columns`` of ``relation`` hold a :data:`CONTROL_CHARACTER` in any row: one row, one
    boolean per column. Each column's distinct values are read, not its rows: a test code, unit or preferred term
    repeats thousands of times, and a column found clean needs no check row by row (2,000,000 lab rows: 0.01 CPU s
    for three columns, against 0.26 for reading every row). One grouping set per column gives every column's
    distinct values from one read of the relation (a small file: 24 against 69 ms for nine columns, which one
    DISTINCT subquery per column read one after the other); a row of one set is NULL in the other columns, which
    ``bool_or`` passes over."""
    pattern = f"'{CONTROL_CHARACTER}'"
    quoted = [_quote(c) for c in columns]
    return ("SELECT " + ", ".join(f"coalesce(bool_or(regexp_matches({q}, {pattern})), FALSE)" for q in quoted)
            + f" FROM (SELECT {', '.join(quoted)} FROM {relation} b "
            + f"GROUP BY GROUPING SETS ({', '.join(f'({q})' for q in quoted)}))")


def control_character_check(columns: list[str], numeric: dict[str, str]) -> tuple[str, str, str]:
    """(bad condition, field, reason) in SQL, for a row with a :data:`CONTROL_CHARACTER` in any of the text
    ``columns``: the field is the first such column, the reason names the character ('control character U+0000').
    ``numeric``: a column's parsed number (column -> SQL), for a result column that is a number or a text: a value
    that parsed as a number holds no control character, so only the others are read (most lab results)."""
    pattern = f"'{CONTROL_CHARACTER}'"  # a constant of this module, not delivered text
    found = [(c, f"regexp_matches({_quote(c)}, {pattern})") for c in columns]
    looked_at = [f"CASE WHEN {numeric[c]} IS NULL THEN {_quote(c)} END" if c in numeric else _quote(c)
                 for c in columns]
    cond = f"regexp_matches(concat_ws(' ', {', '.join(looked_at)}), {pattern})"
    field = "CASE " + " ".join(f"WHEN {m} THEN '{c.replace(chr(39), chr(39) * 2)}'" for c, m in found) + " END"
    char = "CASE " + " ".join(f"WHEN {m} THEN regexp_extract({_quote(c)}, {pattern})" for c, m in found) + " END"
    return cond, field, f"'control character ' || printf('U+%04X', unicode({char}))"

FORMATS = {".xpt": "xpt", ".sas7bdat": "sas7bdat", ".csv": "csv", ".parquet": "parquet", ".xlsx": "xlsx"}


@dataclass
class StagedFile:
    """One delivered file: where it is, its domain and how to read it as text rows in SQL."""
    path: Path
    file_format: str
    domain: str | None            # DM, AE, ..., CRS, ICANS; SUPP files carry the parent in supp_parent
    supp_parent: str | None = None
    sha256: str = ""
    index: int = 0                # position in the load (stable: files sorted by name)
    columns: dict[str, str] = field(default_factory=dict)  # canonical -> name as delivered
    relation: str = ""            # SQL FROM-fragment yielding _file, _row and canonical VARCHAR columns
    params: dict = field(default_factory=dict)
    native: dict[str, str] = field(default_factory=dict)  # canonical -> DuckDB type of numeric Parquet columns
    texts: dict[str, str] = field(default_factory=dict)   # canonical -> SQL of its Parquet column as text
    note: str = ""                # what the data manager should know of how the file was read

    def add_note(self, text: str) -> None:
        """Add ``text`` to what the load's summary says of this file ('; ' between notes)."""
        self.note = f"{self.note}; {text}" if self.note else text

    def typed_relation(self, keep_native: set[str]) -> str:
        """Like ``relation``, but the columns in ``keep_native`` keep their numeric Parquet type (no text round trip)."""
        if self.file_format != "parquet" or not (keep_native & set(self.native)):
            return self.relation
        return _parquet_relation(self, {c: _quote(o) if c in keep_native and c in self.native else self.texts[c]
                                        for c, o in self.columns.items()})

    @property
    def name(self) -> str:
        return self.path.name



def domain_from_name(stem: str) -> tuple[str | None, str | None]:
    """(domain, supp_parent) from a file stem: dm -> DM, lbch -> LB, suppae -> SUPP of AE, crs_assessments -> CRS."""
    s = stem.lower()
    if s.startswith("crs_assess") or s == "crs":
        return "CRS", None
    if s.startswith("icans_assess") or s == "icans":
        return "ICANS", None
    if s.startswith("supp") and s[4:6].upper() in DOMAIN_CODES:
        return "SUPP", s[4:6].upper()
    if s[:2].upper() in DOMAIN_CODES and (len(s) == 2 or s[2:3].isalpha() or s[2:3] in "_-"):
        return s[:2].upper(), None
    return None, None


def discover(study_dir: Path) -> list[StagedFile]:
    """Every data file in the folder (not recursing), sorted by name; domain set from the name when it tells."""
    out = []
    for p in sorted(study_dir.iterdir(), key=lambda p: p.name.lower()):
        fmt = FORMATS.get(p.suffix.lower())
        if not p.is_file() or fmt is None or p.name.startswith((".", "~$")):
            continue
        dom, parent = domain_from_name(p.stem)
        out.append(StagedFile(path=p, file_format=fmt, domain=dom, supp_parent=parent))
    for i, f in enumerate(out):
        f.index = i
    return out


NOT_DATA = frozenset({".yaml", ".yml", ".md", ".txt", ".pdf", ".xml", ".html", ".docx", ".doc", ".json"})


def _broken_link(p: Path) -> str:
    """Why the link ``p`` reaches no file: a loop of links (ae.csv -> ae.csv) or a target that does not exist."""
    try:
        os.stat(p)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a loop of links"
    return "a link to a file that does not exist"


def unread_files(study_dir: Path) -> list[str]:
    """Files of the folder that no reader takes, other than settings and documents (study.yaml, README, define.xml):
    a dataset delivered as ae.txt or ae.csv.gz, or behind a link to nothing, would otherwise be missing from the
    load without a word."""
    out = []
    for p in sorted(study_dir.iterdir(), key=lambda p: p.name.lower()):
        if p.is_symlink() and not p.exists() and not p.name.startswith("."):
            # a dataset behind a broken link would only be "not delivered": named, with why
            out.append(f"{p.name} ({_broken_link(p)})")
            continue
        if p.is_dir() and p.suffix.lower() in FORMATS and not p.name.startswith("."):
            out.append(f"{p.name} (a folder)")  # named like a dataset: the summary would say only "not delivered"
            continue
        if not p.is_file() or p.name.startswith((".", "~$")) or p.suffix.lower() in FORMATS:
            continue
        if p.suffix.lower() in NOT_DATA and not domain_from_name(p.stem)[0]:
            continue  # a document, unless it is named like a dataset (ae.txt)
        if p.stem.upper().startswith("README"):
            continue
        out.append(p.name)
    return out


def _canonical_columns(names: list[str], domain: str | None, file_name: str = "") -> dict[str, str]:
    """canonical -> delivered name. Two columns that mean one variable (AETOXGR and aetoxgr, a name and its
    SDTM label, or a repeated header that the reader renamed AETOXGR_1 / AETOXGR.1) refuse the file: which one
    holds the data is the sender's to say, and keeping the first would drop the other's values unseen."""
    out: dict[str, str] = {}
    delivered = {str(n).upper(): str(n) for n in reversed(names)}  # the first of names equal but for case
    for i, n in enumerate(names):
        n = str(n)
        repeat = re.fullmatch(r"(.+)[._]\d+", n)
        # only a variable celltox reads: a sponsor's own DOSE, DOSE_1, DOSE_2 are left as they are
        first = (delivered.get(repeat.group(1).upper())
                 if repeat and canonical_name(repeat.group(1), domain) else None)
        if first is not None:
            if first == repeat.group(1):
                raise IngestError(f"{file_name}: the column {first!r} appears twice; deliver it once")
            n = repeat.group(1)  # the reader renamed a second 'aetoxgr' after 'AETOXGR'
        canon = canonical_name(n, domain) or f"COL{i + 1}"
        if canon in out:
            raise IngestError(f"{file_name}: columns {out[canon]!r} and {n!r} both mean {canon}; deliver one of them")
        out[canon] = n
    return out


def _quote(ident: str) -> str:
    # identifier quoting (not value formatting): the only place delivered column names reach SQL
    return '"' + ident.replace('"', '""') + '"'


def _timestamp_text(ts: str) -> str:
    """SQL of the timestamp ``ts`` as ISO 8601 text, as a date was meant: Excel keeps a date cell, and pandas and
    SAS a date column, as a date-time at midnight, which reads as the date (YYYY-MM-DD), not as a time 00:00;
    another time reads to the minute (YYYY-MM-DDTHH:MM), with its seconds when they are not zero."""
    return (f"CASE WHEN CAST({ts} AS TIME) = TIME '00:00' THEN strftime({ts}, '%Y-%m-%d') "
            f"WHEN second({ts}) = 0 THEN strftime({ts}, '%Y-%m-%dT%H:%M') "
            f"ELSE strftime({ts}, '%Y-%m-%dT%H:%M:%S') END")


# A workbook column holding date cells among other cells is staged as a struct of the date cells' timestamps and
# the other cells' text, so that its dates read by the one rule above
DATE_CELLS = ("date_cell", "other_cell")


def _timestamp_kind(duck_type: str) -> str | None:
    """'zoned', 'local' or None (not a timestamp) for a DuckDB type name. DuckDB names a timestamp by its precision
    and zone: TIMESTAMP, TIMESTAMP_S, TIMESTAMP_MS, TIMESTAMP_NS, TIMESTAMP WITH TIME ZONE (TIMESTAMPTZ) and
    TIMESTAMPTZ_NS (Arrow's default nanoseconds with a zone): every reader asks here, not by one spelling."""
    t = duck_type.upper()
    if not t.startswith("TIMESTAMP"):
        return None
    return "zoned" if "TIME ZONE" in t or t.startswith("TIMESTAMPTZ") else "local"


def _as_text(expr: str, duck_type: str) -> str:
    """SQL of a staged column as text: timestamps without a zone (and a workbook's date cells) by
    :func:`_timestamp_text`, other values as DuckDB casts them."""
    t = duck_type.upper()
    if _timestamp_kind(t) == "local":
        return _timestamp_text(expr)
    if t.startswith(f"STRUCT({DATE_CELLS[0]} TIMESTAMP".upper()):
        date, other = (f"{expr}.{_quote(k)}" for k in DATE_CELLS)
        return f"coalesce({_timestamp_text(date)}, {other})"
    return f"CAST({expr} AS VARCHAR)"


def _text_columns(con, relation: str, columns) -> str:
    """The SELECT list of ``columns`` of the registered ``relation`` as text (:func:`_as_text` by their types)."""
    types = {d[0]: str(d[1]) for d in con.execute(f"DESCRIBE {relation}").fetchall()}
    return ", ".join(f"{_as_text(_quote(c), types[c])} AS {_quote(c)}" for c in columns)


_TEXT_TYPES = {str, type(None)}
_NUMBER_TYPES = {float, type(None)}
_DATETIME_TYPES = {dt.datetime, type(None)}


def _mixed_as_text(values: list, nat=None) -> list:
    """Mixed values (dates, times, SAS special missing letters among numbers) as text, None for missing."""
    return [None if v is None or v is nat or (isinstance(v, float) and v != v)
            else (v.isoformat() if hasattr(v, "isoformat") else
                  (repr(int(v)) if isinstance(v, float) and v.is_integer() else str(v)))
            for v in values]


def _read_pandas(f: StagedFile):
    import pandas as pd
    import pyarrow as pa
    import pyreadstat

    rejects, bytewise = None, False
    if f.file_format == "sas7bdat":
        (df, _), bytewise = _read_sas(f, pyreadstat.read_sas7bdat)
        if bytewise:
            df.columns = [_redecoded(str(c)) for c in df.columns]
    else:
        df, rejects = _read_workbook(f, pd)
    # numbers and dates stay typed (DuckDB casts them to text); only mixed object columns become str here
    cols = {}
    for c in df.columns:
        s = df[c]
        if f.file_format == "xlsx" and (s.dtype.kind == "M" or any(isinstance(v, dt.datetime) for v in s)):
            # date cells keep their timestamp (read as text by _timestamp_text), the column's other cells their text
            values = s.tolist()
            dates = [v if isinstance(v, dt.datetime) else None for v in values]
            others = _mixed_as_text([None if isinstance(v, dt.datetime) else v for v in values], pd.NaT)
            cols[str(c)] = pa.StructArray.from_arrays(
                [pa.array(dates, type=pa.timestamp("us"), from_pandas=True), pa.array(others, type=pa.string())],
                names=list(DATE_CELLS))
            continue
        if s.dtype.kind in "fiumM":
            cols[str(c)] = pa.array(s, from_pandas=True)
            continue
        values = s.tolist()
        if bytewise:
            values = [_redecoded(v) if isinstance(v, str) else v for v in values]
        if set(map(type, values)) <= _TEXT_TYPES:  # text and None (most columns) convert as they are
            cols[str(c)] = pa.array(values, type=pa.string())
        else:
            cols[str(c)] = pa.array(_mixed_as_text(values, pd.NaT), type=pa.string())
    return cols, rejects


def _read_xpt(f: StagedFile) -> dict:
    """The columns of a SAS transport file as NumPy arrays, which DuckDB scans as they are: no pandas frame
    (importing pandas and building frames took longer than reading a small study). The values are those the
    pandas reader gave: numbers DOUBLE and datetimes TIMESTAMP (NaN and NaT are NULL to DuckDB), text as
    delivered, dates, times and special missing letters as text."""
    import numpy as np
    import pyreadstat

    (data, meta), bytewise = _read_sas(f, pyreadstat.read_xport, output_format="dict")
    nrows = len(next(iter(data.values()))) if data else 0
    _check_xpt_complete(f, nrows, sum(meta.variable_storage_width.values()))
    cols = {}
    for c, values in data.items():
        kinds = set(map(type, values))
        c = _redecoded(str(c)) if bytewise else str(c)
        if kinds <= _NUMBER_TYPES:  # an all-missing column too: NULL whatever its type
            cols[c] = np.array(values, dtype=np.float64)
        elif kinds <= _TEXT_TYPES:
            cols[c] = np.array([_redecoded(v) if v is not None else v for v in values] if bytewise else values,
                               dtype=object)
        elif kinds <= _DATETIME_TYPES:
            cols[c] = np.array(values, dtype="datetime64[us]")
        else:
            cols[c] = np.array(_mixed_as_text(values), dtype=object)
    return cols


def _read_sas(f: StagedFile, read, **options):
    """(what pyreadstat's ``read`` gives, whether its text is still to be decoded by :func:`_redecoded`). pyreadstat
    decodes text as UTF-8 when the file names no encoding (an XPT file never does): a file SAS wrote on Windows
    failed on its first 'é'. Such a file is read again with every byte as one character, for :func:`_redecoded`
    to read as a CSV file that is not UTF-8 is read, and the summary says so."""
    try:
        return read(str(f.path), **options), False
    except UnicodeDecodeError:
        f.add_note(NOT_UTF8_NOTE)
        return read(str(f.path), encoding="latin1", **options), True


def _redecoded(text: str) -> str:
    """Text read byte for byte (Latin-1), decoded again as the CSV reader decodes a file that is not UTF-8: UTF-8
    where the bytes are, else Windows-1252 (:func:`_windows_1252`)."""
    return text.encode("latin-1").decode("utf-8", errors=NOT_UTF8)


def _check_xpt_complete(f: StagedFile, nrows: int, row_length: int) -> None:
    """A SAS transport file is 80-byte records, the observations after the OBS header record, the last record
    padded with blanks. A file cut short reads without error (fewer rows): it is refused instead."""
    size = f.path.stat().st_size
    with open(f.path, "rb") as fh:
        head = fh.read(min(size, 4 << 20))
        at = head.find(b"HEADER RECORD*******OBS")
        if size % 80 or at < 0:
            raise IngestError(f"{f.name}: truncated or damaged SAS transport file ({size} bytes is not a whole "
                              "number of 80-byte records); deliver it again")
        tail_start = at + 80 + nrows * row_length
        fh.seek(tail_start)
        tail = fh.read()
    if len(tail) >= 80 or tail.strip(b" "):
        raise IngestError(f"{f.name}: truncated or damaged SAS transport file (the data end inside an "
                          f"observation after {nrows} rows); deliver it again")


def _sheets_xml(f: StagedFile) -> list[bytes]:
    """The XML of every sheet of the workbook, read once for the checks that look for formulas and error cells
    before opening the workbook with openpyxl."""
    import zipfile

    with zipfile.ZipFile(f.path) as z:
        return [z.read(n) for n in z.namelist() if n.startswith("xl/worksheets/") and n.endswith(".xml")]


def _refuse_uncomputed_formulas(f: StagedFile, sheets: list[bytes]) -> None:
    """A formula cell stores the value Excel last computed beside it; a workbook written by a program stores
    none, and the reader then sees empty cells. Those values would load as missing without a word, so such a
    workbook (formulas, and not one of them with a stored value) is refused, naming its first formula. A
    workbook Excel saved keeps its values, an empty one (=IF(A2="","",A2)) among them. Only a workbook with
    formulas (``sheets``: :func:`_sheets_xml`) is opened a second time."""
    if not any(b"<f>" in x or b"<f " in x for x in sheets):
        return
    import openpyxl

    formulas = openpyxl.load_workbook(f.path, read_only=True, data_only=False)
    values = openpyxl.load_workbook(f.path, read_only=True, data_only=True)
    first = None
    try:
        for ws in formulas.worksheets:
            for row_f, row_v in zip(ws.iter_rows(), values[ws.title].iter_rows()):
                for cf, cv in zip(row_f, row_v):
                    if isinstance(cf.value, str) and cf.value.startswith("="):
                        if cv.value is not None:
                            return  # computed values are stored
                        first = first or (ws.title, cf.coordinate, cf.value)
    finally:
        formulas.close()
        values.close()
    if first:
        sheet, cell, formula = first
        raise IngestError(f"{f.name}: sheet '{sheet}' cell {cell} holds the formula {formula[:40]} with no computed "
                          "value; open and save the workbook in Excel, or deliver the values")


def _read_workbook(f: StagedFile, pd):
    """Every sheet of the workbook: sheets with the first sheet's columns continue it (a dataset longer than
    an Excel sheet); a sheet with no cell at all is ignored wherever it is; a sheet with other columns and rows
    refuses the file. Returns the rows and, per row, why it cannot load (None for none): a cell holding an Excel
    error (#N/A, #DIV/0!), which pandas would read as an empty cell."""
    sheets_xml = _sheets_xml(f)
    _refuse_uncomputed_formulas(f, sheets_xml)
    # text stays text ('NA', 'NULL' as a CSV gives them); only an empty cell is missing
    sheets = pd.read_excel(f.path, sheet_name=None, dtype=object, engine="openpyxl", keep_default_na=False,
                           na_values=[""])
    errors = _error_cells(f, sheets_xml)
    parts, first, rejects = [], None, []
    for sheet, df in sheets.items():
        if not len(df.columns):
            continue  # an empty sheet, before the data or after it
        df = _named_columns(f, sheet, df)
        rows = len(df.dropna(how="all"))
        if first is None:
            first = (sheet, list(df.columns))
        elif rows and list(df.columns) != first[1]:
            raise IngestError(f"{f.name}: sheet '{sheet}' holds {rows} row(s) with other columns than sheet "
                              f"'{first[0]}'; deliver one dataset per workbook (its continuation sheets with the same columns)")
        elif not rows:
            continue
        parts.append(df)
        why = [None] * len(df)
        for row, column, cell, value in errors.get(sheet, ()):
            if 0 <= row - 2 < len(df) and why[row - 2] is None:  # row 1 is the header
                why[row - 2] = (f"{column}: Excel error {value} in sheet '{sheet}' cell {cell} (a formula that "
                                "failed in the workbook); correct it and deliver again")
        rejects += why
    if not parts:
        raise IngestError(f"{f.name}: every sheet is empty")
    df = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    return df, (rejects if any(rejects) else None)


def _named_columns(f: StagedFile, sheet: str, df):
    """The sheet's columns with a name in row 1, by the header rule of :func:`_unnamed_columns` (a title in row 1,
    or an empty header cell above values, refuses the workbook; a spacer column is left out)."""
    from openpyxl.utils import get_column_letter

    header = ["" if str(c) == f"Unnamed: {i}" else str(c) for i, c in enumerate(df.columns)]  # pandas' empty cell
    blank = _unnamed_columns(
        f, header, lambda cols: [i for i in cols if df.iloc[:, i].notna().any()], f"sheet '{sheet}' row 1", "rows",
        lambda cols: f"sheet '{sheet}' cell{'s' if len(cols) > 1 else ''} "
                     + ", ".join(f"{get_column_letter(i + 1)}1" for i in cols))
    return df.drop(columns=[df.columns[i] for i in blank]) if blank else df


def _unnamed_columns(f: StagedFile, header: list[str], with_values, first_row: str, rows: str, cells) -> list[int]:
    """The positions of the empty cells of a header row (a workbook's row 1, a CSV file's line 1), by one rule for
    every reader: no variable reads a column without a name, so values under an empty cell would vanish unseen.
    A header naming one column at most above more columns of values is a title (a listing's caption, often
    merged across the columns) and refuses the file, as does an empty header; an empty cell above values
    refuses it naming the cell. A column with neither a name nor a value (a spacer, a delimiter at the end of
    every line) holds nothing: its position is returned, to be left out.

    ``header``: the names, '' for an empty cell; ``with_values(positions)``: those of ``positions`` whose
    column holds a value (a cell that is not empty); ``first_row``: the header row in words ('line 1',
    "sheet 'AE' row 1") and ``rows`` what lies above it ('lines', 'rows'); ``cells(positions)``: the empty
    cells in words ("sheet 'AE' cell G1", 'field 5 of the header row (line 1)')."""
    blank = [i for i, h in enumerate(header) if not h]
    filled = with_values(blank) if blank else []
    if not filled:
        return blank
    named = [h for h in header if h]
    if len(named) <= 1:
        if named:
            raise _title_error(f, first_row, named[0], rows)
        raise IngestError(f"{f.name}: {first_row} is empty, not the header row; remove the {rows} above the "
                          "column names")
    if len(filled) == 1:
        raise IngestError(f"{f.name}: {cells(filled)} is empty above a column of values; write the column's name "
                          "there, or delete the column")
    raise IngestError(f"{f.name}: {cells(filled)} are empty above columns of values; write the columns' names "
                      "there, or delete the columns")


def _error_cells(f: StagedFile, sheets: list[bytes]) -> dict[str, list[tuple[int, str, str, str]]]:
    """sheet -> [(row, column header, cell, error value)] of the cells holding an Excel error; a workbook without
    one (no ``t="e"`` cell in ``sheets``, :func:`_sheets_xml`) is not opened a second time."""
    if not any(b't="e"' in x for x in sheets):
        return {}
    import openpyxl

    wb = openpyxl.load_workbook(f.path, read_only=True, data_only=True)
    found: dict[str, list[tuple[int, str, str, str]]] = {}
    try:
        for ws in wb.worksheets:
            header: dict[int, str] = {}
            for row in ws.iter_rows():
                for c in row:
                    if getattr(c, "row", None) == 1 and c.value is not None:
                        header[c.column] = str(c.value)
                    elif c.data_type == "e":
                        found.setdefault(ws.title, []).append(
                            (c.row, header.get(c.column, c.column_letter), c.coordinate, str(c.value)))
    finally:
        wb.close()
    return found


def stage(con, f: StagedFile) -> None:
    """Make ``f.relation``: a FROM-fragment over the file with _file, _row and canonical text columns."""
    f.sha256 = sha256_file(f.path)
    if f.file_format != "csv" and f.path.stat().st_size == 0:  # the readers' own words name no problem here
        raise IngestError(f"{f.name}: empty file (0 bytes)")
    _stage(con, f)
    # a header that is no variable name or label ('AE TOXGR') is never read: said, or its values vanish unseen
    unread = [o for o in f.columns.values() if canonical_name(o, f.domain) is None]
    if unread:
        guesses = [re.sub(r"[^A-Za-z0-9]", "", o).upper() for o in unread]
        # a guess only where the letters spell a name of the file's domain (AE TOXGR -> AETOXGR)
        hint = [f"{o!r} ({g}?)" if f.domain and g.startswith(f.domain) and canonical_name(g, f.domain)
                and g not in f.columns else repr(o) for o, g in zip(unread, guesses)]
        f.add_note(f"column(s) {', '.join(hint)} not read: not an SDTM variable name or label")


def _stage(con, f: StagedFile) -> None:
    try:
        if f.file_format in ("xpt", "sas7bdat", "xlsx"):
            # NumPy only for these formats: a Parquet or CSV load reaches its first statement without it (0.05 s)
            import numpy as np

            xpt = f.file_format == "xpt"
            cols, rejects = (_read_xpt(f), None) if xpt else _read_pandas(f)
            f.columns = _canonical_columns(list(cols), f.domain, f.name)
            n = len(next(iter(cols.values()))) if cols else 0
            arrays = {"_row": np.arange(1, n + 1, dtype=np.int64)}
            arrays.update({canon: cols[orig] for canon, orig in f.columns.items()})
            name = f"_arrow_{f.index}"
            if xpt:
                # DuckDB scans a dict of NumPy arrays as a table, but reading Python's str objects takes Python's
                # lock: the text rows are copied into a temp table once, here, so that the load's later scans
                # (counts, dates, staging, raw records) do not wait on the derivations' imports for that lock
                con.register(name, arrays)
                try:
                    sel = _text_columns(con, name, f.columns)
                    con.execute(f"CREATE OR REPLACE TEMP TABLE _xpt_{f.index} AS SELECT _row"
                                f"{', ' if sel else ''}{sel} FROM {name}")
                finally:
                    con.unregister(name)
                cols_sql = ", ".join(f"\"{c}\"" for c in f.columns)
                f.relation = (f"(SELECT {f.index} AS _file, _row, {NO_REJECT}{', ' if cols_sql else ''}{cols_sql} "
                              f"FROM _xpt_{f.index})")
            else:
                import pyarrow as pa
                reject = NO_REJECT
                if rejects:  # rows with a cell the reader could not give (an Excel error) are quarantined
                    arrays["_reject"] = pa.array(rejects, type=pa.string())
                    reject = "_reject, CAST(NULL AS VARCHAR) AS _raw"
                con.register(name, pa.table(arrays))
                sel = _text_columns(con, name, f.columns)
                f.relation = f"(SELECT {f.index} AS _file, _row, {reject}{', ' if sel else ''}{sel} FROM {name})"
        elif f.file_format == "parquet":
            key = f"p{f.index}"
            desc = con.execute(f"DESCRIBE SELECT * FROM read_parquet(${key})", {key: str(f.path)}).fetchall()
            f.columns = _canonical_columns([d[0] for d in desc], f.domain, f.name)
            types = {d[0]: str(d[1]).upper() for d in desc}
            f.native = {c: types[o] for c, o in f.columns.items() if types.get(o) in NATIVE_TYPES}
            _refuse_nested(f, {d[0]: str(d[1]) for d in desc})
            zones = _parquet_time_zones(f, [o for o in f.columns.values()
                                            if _timestamp_kind(types.get(o, "")) == "zoned"])
            f.params = {key: str(f.path)}
            for i, (c, o) in enumerate(f.columns.items()):
                expr, typ = _quote(o), types[o]
                if o in zones:  # the clock time at the site, as the sender wrote it, not the same instant in UTC
                    f.params[f"{key}tz{i}"] = zones[o]
                    expr, typ = f"timezone(${key}tz{i}, {expr})", "TIMESTAMP"
                f.texts[c] = _as_text(expr, typ)
            f.relation = _parquet_relation(f, f.texts)
        elif f.file_format == "csv":
            _stage_csv(con, f)
    except IngestError:
        raise
    except Exception as exc:  # the reader's own message, on one line
        raise IngestError(f"{f.name}: cannot read {f.file_format} file ({_message(exc, f)})") from None


def _refuse_nested(f: StagedFile, declared: dict[str, str]) -> None:
    """Refuse a Parquet file with a list or struct in a variable the load reads: it would load as its printed
    form ('[Cytokine release syndrome, b]'), every row of the column wrong alike."""
    for c, o in f.columns.items():
        t = declared[o].upper()
        nested = "list" if t.endswith("]") else next((n.lower() for n in NESTED_TYPES if t.startswith(n)), None)
        if nested and (f.domain not in SPECS or c in SPECS[f.domain].variables_read):
            raise IngestError(f"{f.name}: the column {o!r} holds a {nested} in each row ({declared[o][:60]}), "
                              f"not one value; deliver {c} as plain values")


def _parquet_relation(f: StagedFile, exprs: dict[str, str]) -> str:
    """The FROM-fragment over a Parquet file giving each canonical column by its SQL in ``exprs``."""
    sel = "".join(f", {e} AS {_quote(c)}" for c, e in exprs.items())
    return (f"(SELECT {f.index} AS _file, file_row_number + 1 AS _row, {NO_REJECT}{sel} "
            f"FROM read_parquet($p{f.index}, file_row_number = true))")


def _parquet_time_zones(f: StagedFile, columns: list[str]) -> dict[str, str]:
    """column -> the time zone its timestamps were written in (Arrow's schema keeps it; DuckDB reads only the
    instant). A timestamp with a zone is stored as UTC: read as text it would move 2024-05-15T06:00 in Shanghai
    to 2024-05-14 22:00, and the study day with it. No zone recorded: UTC."""
    if not columns:
        return {}
    import pyarrow.parquet as pq  # only for such a file: most loads never import pyarrow

    schema = pq.read_schema(f.path)
    return {c: (getattr(schema.field(c).type, "tz", None) or "UTC") if c in schema.names else "UTC" for c in columns}


def _stage_csv(con, f: StagedFile) -> None:
    """A CSV file as a temp table of text rows: DuckDB's reader when the file is regular, else Python's csv
    module, which takes mixed line endings, and keeps a ragged line (more or fewer fields than the header) as a
    row with its reason in ``_reject`` instead of losing the file's columns."""
    if f.path.stat().st_size == 0:
        raise IngestError(f"{f.name}: empty file (no header row)")
    with open(f.path, "rb") as fh:
        head = fh.read(1 << 16)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
    elif _utf16_without_bom(head):
        encoding = _utf16_without_bom(head)
    else:
        encoding = "utf-8-sig" if head.startswith(b"\xef\xbb\xbf") else "utf-8"
    first = _first_lines(head, encoding)
    if not first or not first[0].strip():
        # nothing but white space, or a blank line where the column names belong: no row can be read by name
        if not head.decode("latin-1").lstrip("\ufeff\xef\xbb\xbf").strip() and f.path.stat().st_size == len(head):
            raise IngestError(f"{f.name}: empty file (no header row)")
        raise IngestError(f"{f.name}: line 1 is blank; the header row (the column names) must be the first line")
    delim = _delimiter(f, first)
    name = f"_csv_{f.index}"
    header = None if encoding.startswith("utf-16") else _duckdb_csv(con, f, name, delim, first)
    if header is None:
        header = _python_csv(con, f, name, delim, encoding)
    staged = [d[0] for d in con.execute(f"DESCRIBE SELECT * EXCLUDE (_row, _reject, _raw) FROM {name}").fetchall()]
    # the readers name a column without a header name themselves (DuckDB column04, this module COL5): by position
    blank = _unnamed_columns(f, header, lambda cols: _csv_with_values(con, name, [staged[i] for i in cols], cols),
                             "line 1", "lines", lambda cols: f"field{'s' if len(cols) > 1 else ''} "
                             f"{', '.join(str(i + 1) for i in cols)} of the header row (line 1)")
    f.columns = _canonical_columns([c for i, c in enumerate(staged) if i not in blank], f.domain, f.name)
    sel = "".join(f", {_quote(o)} AS \"{c}\"" for c, o in f.columns.items())
    f.relation = f"(SELECT {f.index} AS _file, _row, _reject, _raw{sel} FROM {name})"


def _csv_with_values(con, name: str, columns: list[str], positions: list[int]) -> list[int]:
    """Those of ``positions`` (of ``columns`` of the staged table ``name``) with a field that is not empty in a
    line that lines up with the header (a ragged line is quarantined whole)."""
    counts = con.execute("SELECT " + ", ".join(f"count(*) FILTER (WHERE {_quote(c)} <> '')" for c in columns)
                         + f" FROM {name} WHERE _reject IS NULL").fetchone()
    return [i for i, n in zip(positions, counts) if n]


def _utf16_without_bom(head: bytes) -> str | None:
    """'utf-16-le' or 'utf-16-be' for text saved as UTF-16 without its byte-order mark: every other byte of an
    ASCII header is NUL. Read as UTF-8 its header would be one garbled column, and every row quarantined for a
    missing USUBJID, which names the wrong problem."""
    sample = head[:4096]
    if len(sample) < 8:
        return None
    even, odd = sample[0::2], sample[1::2]
    if odd.count(0) > 0.9 * len(odd) and even.count(0) < 0.1 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.9 * len(even) and odd.count(0) < 0.1 * len(odd):
        return "utf-16-be"
    return None


def _first_lines(head: bytes, encoding: str) -> list[str]:
    text = head.decode("latin-1" if encoding.startswith("utf-8") else encoding, errors="replace")
    return [ln for ln in text.lstrip("\ufeff").splitlines()[:2]]


def _delimiter(f: StagedFile, lines: list[str]) -> str:
    """The delimiter the header line uses most. A first line without one above a line with one is a title."""
    counts = lambda ln: {d: ln.count(d) for d in CSV_DELIMITERS}
    c0 = counts(lines[0]) if lines else {}
    if lines and max(c0.values()) > 0:
        return max(CSV_DELIMITERS, key=lambda d: c0[d])
    if len(lines) > 1 and max(counts(lines[1]).values()) > 0:
        raise _title_error(f, "line 1", lines[0], "lines")
    return ","


def _title_error(f: StagedFile, where: str, title: str, lines: str) -> IngestError:
    """The refusal of a file whose first line (or row) is a title above the header row: its columns would be
    misnamed and every row quarantined for a missing USUBJID, which names the wrong problem."""
    return IngestError(f"{f.name}: {where} is a title ({title[:60]!r}), not the header row; "
                       f"remove the {lines} above the column names")


def _header_width_error(f: StagedFile, header: list[str], below: str) -> IngestError:
    """The refusal of a file whose first line has another number of fields than the lines below (``below``, e.g.
    'the lines below have 13'). A first line of column names (AETERM, ICE_SCORE or their labels) is a header row
    with names missing or extra, else it is a title: the message names which, as the fix differs."""
    named = [h for h in header if h]
    if len(named) >= 3 and all(canonical_name(h, f.domain) for h in named):
        return IngestError(f"{f.name}: the header row (line 1) names {len(header)} column(s) where {below} fields: "
                           "give every column one name in the header row")
    return IngestError(f"{f.name}: line 1 has {len(header)} field(s) where {below}: "
                       "a title above the header row? Remove the lines above the column names")


def _duckdb_csv(con, f: StagedFile, name: str, delim: str, first: list[str]) -> list[str] | None:
    """DuckDB's fast reader with the dialect fixed: the header's names (stripped), or None when the file needs the
    careful reader."""
    header = next(csv.reader([first[0].lstrip("\ufeff")], delimiter=delim)) if first else []
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT row_number() OVER () AS _row, {NO_REJECT}, * "
                    "FROM read_csv($path, all_varchar = true, header = true, delim = $delim, quote = '\"', "
                    "escape = '\"', encoding = 'utf-8', max_line_size = $longest)",
                    {"path": str(f.path), "delim": delim, "longest": CSV_MAX_VALUE})
    except duckdb.Error:
        return None  # not UTF-8 (anywhere in the file), or irregular: the careful reader decides
    ncols = len(con.execute(f"DESCRIBE {name}").fetchall()) - 3
    return [h.strip() for h in header] if ncols == len(header) else None


NOT_UTF8 = "celltox-windows-1252"  # the decoding error handler below
NOT_UTF8_NOTE = "not UTF-8: its other bytes were read as Windows-1252"


def _windows_1252(exc: UnicodeDecodeError) -> tuple[str, int]:
    """Bytes that are not UTF-8, read as Windows-1252 (what Excel on Windows writes: é, ’, “ ”, –, €); its five
    unassigned bytes as Latin-1. A file that mixes both keeps its UTF-8 text as it is."""
    bad = exc.object[exc.start:exc.end]
    return "".join(bytes([b]).decode("cp1252") if b not in b"\x81\x8d\x8f\x90\x9d" else chr(b) for b in bad), exc.end


codecs.register_error(NOT_UTF8, _windows_1252)


def _python_csv(con, f: StagedFile, name: str, delim: str, encoding: str) -> list[str]:
    """The file by Python's csv module into the temp table ``name``; returns the header's names (stripped)."""
    try:
        return _python_csv_as(con, f, name, delim, encoding)
    except UnicodeDecodeError:
        f.add_note(NOT_UTF8_NOTE)
        return _python_csv_as(con, f, name, delim, "utf-8", errors=NOT_UTF8)


CSV_CHUNK_ROWS = 50_000  # rows per batch into DuckDB: memory stays bounded for files of millions of rows


def _python_csv_as(con, f: StagedFile, name: str, delim: str, encoding: str, errors: str = "strict") -> list[str]:
    import pyarrow as pa

    records = _records(f, delim, encoding, errors)
    try:
        _, _, header = next(records)
    except StopIteration:
        raise IngestError(f"{f.name}: no header row") from None
    header = [h.lstrip("\ufeff").strip() for h in header]
    n = len(header)
    names: list[str] = []
    for i, h in enumerate(header):
        if not h or h.startswith("_"):
            names.append(f"COL{i + 1}")
            continue
        # a repeated name gets a suffix, as DuckDB's reader gives it, and _canonical_columns refuses the file
        # when it is a variable celltox reads
        k, name_ = 0, h
        while name_.upper() in {x.upper() for x in names}:
            k += 1
            name_ = f"{h}_{k}"
        names.append(name_)
    first_two = [r for _, r in zip(range(2), records)]
    if first_two and len(first_two[0][2]) != n and (len(first_two) == 1 or len(first_two[1][2]) == len(first_two[0][2])):
        raise _header_width_error(f, header, f"the lines below have {len(first_two[0][2])}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} (_row BIGINT, _reject VARCHAR, _raw VARCHAR"
                + "".join(f", {_quote(h)} VARCHAR" for h in names) + ")")
    row = 0
    chunk: list[tuple[int, int, list[str]]] = []
    wider: dict[int, int] = {}  # fields -> lines with more fields than the header

    def flush() -> None:
        nonlocal row
        rows, rejects, raws = [], [], []
        values: list[list] = [[] for _ in names]
        for start, end, rec in chunk:
            row += 1
            rows.append(row)
            if len(rec) == n:
                rejects.append(None)
                raws.append(None)
            else:
                if len(rec) > n:
                    wider[len(rec)] = wider.get(len(rec), 0) + 1
                where = f"line {start}" if start == end else f"lines {start}-{end}"
                fields = "1 field" if len(rec) == 1 else f"{len(rec)} fields"
                rejects.append(f"{where}: {fields} where the header has {n}")
                raws.append(json.dumps({"line": start, "fields": rec}, ensure_ascii=False))
            for j, v in enumerate((rec + [None] * n)[:n]):  # a ragged line keeps what lines up (USUBJID)
                values[j].append(v)
        arrays = [pa.array(rows, type=pa.int64()), pa.array(rejects, type=pa.string()), pa.array(raws, type=pa.string())]
        arrays += [pa.array(v, type=pa.string()) for v in values]
        batch = pa.table(arrays, names=["_row", "_reject", "_raw", *names])
        con.register(f"{name}_batch", batch)
        con.execute(f"INSERT INTO {name} SELECT * FROM {name}_batch")
        con.unregister(f"{name}_batch")
        chunk.clear()

    for rec in _chain(first_two, records):
        chunk.append(rec)
        if len(chunk) >= CSV_CHUNK_ROWS:
            flush()
    if chunk:
        flush()
    if 2 * sum(wider.values()) > row:
        # most lines have more fields than the header: the first line is no header, and the line that is lies below
        # it (several title lines above the header, where the check of the first two lines above sees none)
        width = max(wider, key=wider.get)
        raise _header_width_error(f, header, f"the lines below have {width}" if wider[width] == row
                                  else f"{wider[width]} of the {row} lines below have {width}")
    return header


def _chain(head, rest):
    yield from head
    yield from rest


def _records(f: StagedFile, delim: str, encoding: str, errors: str = "strict"):
    """(first line, last line, fields) of every non-blank record, the header first; a quote never closed
    refuses the file (every row after it would be misread)."""
    csv.field_size_limit(CSV_MAX_VALUE)  # process-wide, and no lower limit is wanted by any other reader
    with open(f.path, encoding=encoding, errors=errors, newline="") as fh:
        reader = csv.reader(fh, delimiter=delim, quotechar='"', strict=True)
        while True:
            start = reader.line_num + 1
            try:
                rec = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                if "field larger than field limit" in str(exc):
                    raise IngestError(f"{f.name}: line {start}: a value longer than {CSV_MAX_VALUE:,} characters, "
                                      "the most celltox reads in one field") from None
                raise IngestError(f"{f.name}: line {start}: {exc} (a quote that is not closed?)") from None
            if rec and rec != [""]:
                yield start, reader.line_num, rec


def row_counts(con, files: list[StagedFile]) -> dict[int, int]:
    """The rows of every staged file (by index), in one statement."""
    if not files:
        return {}
    params = {k: v for f in files for k, v in f.params.items()}
    counts = con.execute("SELECT " + ", ".join(f"(SELECT count(*) FROM {f.relation})" for f in files),
                         params).fetchone()
    return {f.index: n for f, n in zip(files, counts)}


def detect_domain(con, f: StagedFile) -> None:
    """For files whose name does not tell: the DOMAIN (or RDOMAIN for SUPP) column's single value."""
    if f.domain is not None:
        return
    if "DOMAIN" in f.columns:
        vals = [r[0] for r in con.execute(
            f"SELECT DISTINCT upper(trim(DOMAIN)) FROM {f.relation} WHERE DOMAIN IS NOT NULL LIMIT 3", f.params).fetchall()]
        if len(vals) == 1:
            v = vals[0]
            if v in DOMAIN_CODES:
                f.domain = v
            elif v.startswith("SUPP") and v[4:] in DOMAIN_CODES:
                f.domain, f.supp_parent = "SUPP", v[4:]
    elif {"RDOMAIN", "QNAM", "QVAL"} <= set(f.columns):
        vals = sorted(r[0] for r in con.execute(
            f"SELECT DISTINCT upper(trim(RDOMAIN)) FROM {f.relation} WHERE RDOMAIN IS NOT NULL LIMIT 20",
            f.params).fetchall())
        if len(vals) == 1 and vals[0] in DOMAIN_CODES:
            f.domain, f.supp_parent = "SUPP", vals[0]
        elif len(vals) > 1 and set(vals) & DOMAIN_CODES:
            # a combined SUPPQUAL (SDTM before 3.1.2): left unread, its qualifiers would be lost without a word
            raise IngestError(f"{f.name}: qualifiers of several domains in one file (RDOMAIN {', '.join(vals)}): "
                              "celltox reads one SUPP-- file per domain; split it by RDOMAIN into "
                              + ", ".join(f"supp{v.lower()}{f.path.suffix.lower()}" for v in vals if v in DOMAIN_CODES))


def file_error(con, files: list[StagedFile], exc: Exception) -> Exception:
    """The IngestError naming the file behind a DuckDB error raised mid-load (a Parquet file whose pages are
    corrupt reads its header fine and fails only when its values are read); ``exc`` itself when every file
    reads (then the error is not the delivery's)."""
    for f in files:
        if not f.relation:
            continue
        try:
            con.execute(f"SELECT max(length(CAST(COLUMNS(*) AS VARCHAR))) FROM {f.relation}", f.params).fetchall()
        except Exception as err:  # noqa: BLE001 - any failure to read the file is the file's problem
            return IngestError(f"{f.name}: cannot read {f.file_format} file ({_message(err, f)})")
    return exc


def _message(exc: BaseException, f: StagedFile) -> str:
    """The reader's message on one line, naming the file as delivered rather than by its full path."""
    text = " ".join(str(exc).replace(str(f.path), f.name).split())
    return re.sub(r" LINE \d+:.*$", "", text)[:300]

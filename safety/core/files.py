"""Small file utilities: file hashes (ingest and exports), text safe in a spreadsheet, and the packaged data tables
the engines read."""
from __future__ import annotations

import csv
import hashlib
import os
import re
from pathlib import Path

import yaml


UNIT_CONVERSIONS_PATH = Path(__file__).resolve().parents[1] / "data" / "unit_conversions.csv"
TIME_UNITS_PATH = Path(__file__).resolve().parents[1] / "data" / "time_units.csv"


def unit_conversions() -> list[tuple[str, str, str, float]]:
    """(LBTESTCD upper case, from unit, to unit, factor) of safety/data/unit_conversions.csv: what the load converts
    lab results by, read by the load and by the grading of results delivered in conventional units."""
    return [(r["lbtestcd"].upper(), r["from_unit"], r["to_unit"], float(r["factor"]))
            for _, r in read_data_csv(UNIT_CONVERSIONS_PATH, ("lbtestcd", "from_unit", "to_unit", "factor"),
                                      exact=False)]


def time_units() -> list[tuple[str, float, str]]:
    """(unit spelling upper case, days, CDISC term) of safety/data/time_units.csv: what a duration or an age in
    YEARS, MONTHS, WEEKS, DAYS or HOURS (and the spellings sponsors use for them) is in days; read by the load (DM
    AGEU) and by the comparison of the sponsor's kinetic parameters (PP Tmax)."""
    return [(r["unit"].upper(), float(r["days"]), r["term"].upper())
            for _, r in read_data_csv(TIME_UNITS_PATH, ("unit", "days", "term"), exact=False)]


def install_time_units(con) -> None:
    """:func:`time_units` as the temp table ``_time_units`` (unit, days, term) of ``con``: the one table the load
    (AGEU) and the kinetics comparison (PP Tmax units) read."""
    from safety.core.sql import temp_table

    temp_table(con, "_time_units", {"unit": "VARCHAR", "days": "DOUBLE", "term": "VARCHAR"}, time_units())


# A cell a spreadsheet would run as a formula: '=', '+', '@', a tab or a carriage return first, or '-' not starting a
# plain number (a lone '-', the tables' "not applicable", is text to a spreadsheet). Site-entered text (AETERM,
# CMTRT ...) and a failed sign-in's user name arrive as typed.
_FORMULA_FIRST = ("=", "+", "@", "\t", "\r", "'")
_PLAIN_NUMBER = re.compile(r"-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def spreadsheet_text(value) -> str:
    """``value`` as a CSV cell a spreadsheet shows as text: one that it would run as a formula, or that already
    starts with an apostrophe, gets a leading apostrophe (OWASP's CSV-injection advice); None is empty."""
    text = "" if value is None else str(value)
    if text[:1] in _FORMULA_FIRST or (text[:1] == "-" and text != "-" and not _PLAIN_NUMBER.fullmatch(text)):
        return "'" + text
    return text


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks (deliveries can be gigabytes)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_data_csv(path: str | Path, columns: tuple[str, ...], *, exact: bool = True) -> list[tuple[int, dict]]:
    """Rows of a packaged data table as (file line number, {column: stripped text}). The header must be
    ``columns`` exactly (``exact``) or contain them; otherwise it fails loudly, naming the file."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = tuple(reader.fieldnames or ())
        if exact and header != tuple(columns):
            raise ValueError(f"{path}: header must be {','.join(columns)}")
        missing = set(columns) - set(header)
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        return [(i, {c: (r[c] or "").strip() for c in columns}) for i, r in enumerate(reader, start=2)]


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses a mapping with a key given twice (PyYAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text):
    """Settings or accounts read from YAML text (or an open file) with the safe loader, refusing a key given twice
    in one mapping: ``studyid: A`` then ``studyid: B``, or an account listed twice, would otherwise keep the
    last without a word. Raises ``yaml.YAMLError``."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


DUCKDB_MAGIC = b"DUCK"  # bytes 8-11 of every DuckDB database file


def not_a_duckdb_file(path) -> str | None:
    """Why the existing file ``path`` is no DuckDB database ('an empty file', 'not a DuckDB database'), or None."""
    with open(path, "rb") as fh:
        head = fh.read(12)
    if head[8:12] == DUCKDB_MAGIC:
        return None
    return "an empty file" if not head else "not a DuckDB database"


def unwritable(path: str | Path, folder: bool = False) -> str | None:
    """Why the command cannot write ``path``, in words for a one-line refusal after the path the user gave, or None
    when it can. ``path`` is a file to create or replace (``folder``: a folder to create or write files into); the
    folders above it that do not exist yet are created, so the nearest one that exists must be a folder the user
    may write in. The commands that write a file check this before any work: the operating system would
    otherwise refuse half-way, naming a lock or temporary file the user never gave."""
    path = Path(path)
    if path.exists():
        if path.is_dir() != folder:
            return "a file, not a folder" if folder else "a folder, not a file"
        if not os.access(path, os.W_OK | (os.X_OK if folder else 0)):
            return f"the {'folder' if folder else 'file'} is not writable"
        if folder:
            return None  # files are written into it
    above = path.parent
    while not above.exists() and above != above.parent:
        above = above.parent
    if not above.is_dir():
        return f"{above} is a file, not a folder"
    if not os.access(above, os.W_OK | os.X_OK):
        return f"the folder {above} is not writable"
    return None

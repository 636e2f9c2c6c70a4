"""Find the datasets in a study folder, tell their domain, and stage each as all-VARCHAR rows.

Staging never types anything: every value stays text so that typing and validation happen in one
place (SQL per domain) and a bad value can be quarantined with the row exactly as delivered.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from safety.core.files import sha256_file
from safety.ingest.domains import DOMAIN_CODES, canonical_name
from safety.ingest.errors import IngestError

# Parquet types staged natively: they convert to text and back to DOUBLE exactly (FLOAT and DECIMAL do not)
NATIVE_TYPES = {"DOUBLE", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"}

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

    def typed_relation(self, keep_native: set[str]) -> str:
        """Like ``relation``, but the columns in ``keep_native`` keep their numeric Parquet type (no text round trip)."""
        if self.file_format != "parquet" or not (keep_native & set(self.native)):
            return self.relation
        key = f"p{self.index}"
        sel = "".join((f", {_quote(o)} AS \"{c}\"" if c in keep_native and c in self.native
                       else f", CAST({_quote(o)} AS VARCHAR) AS \"{c}\"") for c, o in self.columns.items())
        return (f"(SELECT {self.index} AS _file, file_row_number + 1 AS _row{sel} "
                f"FROM read_parquet(${key}, file_row_number = true))")

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


def _canonical_columns(names: list[str], domain: str | None) -> dict[str, str]:
    """canonical -> delivered name; the first of two columns that map to one name wins."""
    out: dict[str, str] = {}
    for i, n in enumerate(names):
        canon = canonical_name(str(n), domain) or f"COL{i + 1}"
        out.setdefault(canon, str(n))
    return out


def _quote(ident: str) -> str:
    # identifier quoting (not value formatting): the only place delivered column names reach SQL
    return '"' + ident.replace('"', '""') + '"'


def _read_pandas(f: StagedFile):
    import pandas as pd
    import pyreadstat

    if f.file_format == "xpt":
        df, _ = pyreadstat.read_xport(str(f.path))
    elif f.file_format == "sas7bdat":
        df, _ = pyreadstat.read_sas7bdat(str(f.path))
    else:
        df = pd.read_excel(f.path, sheet_name=0, dtype=object, engine="openpyxl")
    # numbers and dates stay typed (DuckDB casts them to text); only mixed object columns become str here
    cols = {}
    for c in df.columns:
        s = df[c]
        if s.dtype.kind in "fiumM":
            cols[str(c)] = pa.array(s, from_pandas=True)
        else:
            cols[str(c)] = pa.array([None if v is None or v is pd.NaT or (isinstance(v, float) and v != v)
                                     else (v.isoformat() if hasattr(v, "isoformat") else
                                           (repr(int(v)) if isinstance(v, float) and v.is_integer() else str(v)))
                                     for v in s.tolist()], type=pa.string())
    return cols


def stage(con, f: StagedFile) -> None:
    """Make ``f.relation``: a FROM-fragment over the file with _file, _row and canonical text columns."""
    f.sha256 = sha256_file(f.path)
    try:
        if f.file_format in ("xpt", "sas7bdat", "xlsx"):
            cols = _read_pandas(f)
            f.columns = _canonical_columns(list(cols), f.domain)
            n = len(next(iter(cols.values()))) if cols else 0
            arrays = {"_row": pa.array(range(1, n + 1), type=pa.int64())}
            arrays.update({canon: cols[orig] for canon, orig in f.columns.items()})
            tbl = pa.table(arrays)
            name = f"_arrow_{f.index}"
            con.register(name, tbl)
            sel = ", ".join(f"CAST(\"{c}\" AS VARCHAR) AS \"{c}\"" for c in f.columns)
            f.relation = f"(SELECT {f.index} AS _file, _row{', ' if sel else ''}{sel} FROM {name})"
        elif f.file_format == "parquet":
            key = f"p{f.index}"
            desc = con.execute(f"DESCRIBE SELECT * FROM read_parquet(${key})", {key: str(f.path)}).fetchall()
            f.columns = _canonical_columns([d[0] for d in desc], f.domain)
            types = {d[0]: str(d[1]).upper() for d in desc}
            f.native = {c: types[o] for c, o in f.columns.items() if types.get(o) in NATIVE_TYPES}
            sel = "".join(f", CAST({_quote(o)} AS VARCHAR) AS \"{c}\"" for c, o in f.columns.items())
            f.relation = (f"(SELECT {f.index} AS _file, file_row_number + 1 AS _row{sel} "
                          f"FROM read_parquet(${key}, file_row_number = true))")
            f.params = {key: str(f.path)}
        elif f.file_format == "csv":
            key = f"p{f.index}"
            enc = _csv_encoding(f.path)
            name = f"_csv_{f.index}"
            con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT row_number() OVER () AS _row, * "
                        f"FROM read_csv(${key}, all_varchar = true, header = true, encoding = '{enc}')",
                        {key: str(f.path)})
            desc = con.execute(f"DESCRIBE SELECT * EXCLUDE (_row) FROM {name}").fetchall()
            f.columns = _canonical_columns([d[0] for d in desc], f.domain)
            sel = "".join(f", {_quote(o)} AS \"{c}\"" for c, o in f.columns.items())
            f.relation = f"(SELECT {f.index} AS _file, _row{sel} FROM {name})"
    except IngestError:
        raise
    except Exception as exc:  # the reader's own message, on one line
        msg = " ".join(str(exc).split())[:300]
        raise IngestError(f"{f.name}: cannot read {f.file_format} file ({msg})") from None


def _csv_encoding(path: Path) -> str:
    with open(path, "rb") as fh:
        head = fh.read(1 << 20)
    try:
        head.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start > len(head) - 4:  # cut inside a multibyte character at the chunk edge
            return "utf-8"
        return "latin-1"


def row_count(con, f: StagedFile) -> int:
    return con.execute(f"SELECT count(*) FROM {f.relation}", f.params).fetchone()[0]


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
        vals = [r[0] for r in con.execute(
            f"SELECT DISTINCT upper(trim(RDOMAIN)) FROM {f.relation} LIMIT 3", f.params).fetchall()]
        if len(vals) == 1 and vals[0] in DOMAIN_CODES:
            f.domain, f.supp_parent = "SUPP", vals[0]


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
            msg = " ".join(str(err).split())[:300]
            return IngestError(f"{f.name}: cannot read {f.file_format} file ({msg})")
    return exc

"""A small two-site, two-cut study database with rows in EVERY registered table, and one account per role.

For role tests of pages and exports:

    from access_fixtures import build_two_site_db, make_users, STUDY, CUT1, CUT2, SUBJECTS_BY_SITE
    db = build_two_site_db(tmp_path / "study.duckdb")         # closes its connection; open read-only
    users = make_users(tmp_path / "users.yaml")                # {role_name: User}; password PASSWORD

or use the pytest fixtures ``two_site_db`` / ``two_site_users`` (import them into your test module).
A second study (OTHER_STUDY) and rows of both cuts are present too, so a query that forgets the study or
cut filter returns rows it must not. Per-subject tables get one row per subject and cut (adverse_events
gets hand-made rows that change between the cuts); study-level tables one row per cut.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from safety import schema
from safety.access.auth import User, UserStore
from view_rows import insert_view_rows

STUDY = "CTX-001"
OTHER_STUDY = "CTX-999"
CUT1 = dt.date(2024, 3, 1)
CUT2 = dt.date(2024, 6, 1)
SITES = ("101", "102")
PASSWORD = "correct horse battery staple"

# subjects present at each cut; 102-002 enrols after CUT1
SUBJECTS_BY_SITE = {
    "101": ["CTX-001-101-001", "CTX-001-101-002"],
    "102": ["CTX-001-102-001", "CTX-001-102-002"],
}
SUBJECTS_AT = {
    CUT1: ["CTX-001-101-001", "CTX-001-101-002", "CTX-001-102-001"],
    CUT2: ["CTX-001-101-001", "CTX-001-101-002", "CTX-001-102-001", "CTX-001-102-002"],
}
OTHER_SUBJECT = "CTX-999-101-001"  # another study, same site id
FIXED_DATE = dt.date(2024, 1, 15)


def site_of(usubjid: str) -> str:
    return usubjid.split("-")[2]


def subjects_visible(sites: tuple[str, ...] | None, cut: dt.date = CUT2) -> set[str]:
    """The subjects a scope over ``sites`` (None = all) may see at ``cut``."""
    return {u for u in SUBJECTS_AT[cut] if sites is None or site_of(u) in sites}


# (usubjid, aeseq, aedecod, aetoxgr, aeser) per cut: grade change, new events, a removed event
AES = {
    CUT1: [("CTX-001-101-001", 1, "Cytokine release syndrome", 2, "N"),
           ("CTX-001-101-002", 1, "Headache", 1, "N"),
           ("CTX-001-102-001", 1, "Neutropenia", 3, "N")],
    CUT2: [("CTX-001-101-001", 1, "Cytokine release syndrome", 3, "Y"),
           ("CTX-001-101-001", 2, "Immune effector cell-associated neurotoxicity syndrome", 2, "N"),
           ("CTX-001-102-001", 1, "Neutropenia", 3, "N"),
           ("CTX-001-102-001", 2, "Pneumonia", 5, "Y"),
           ("CTX-001-102-002", 1, "Pyrexia", 1, "N")],
}
DEATHS = {CUT2: {"CTX-001-102-001": (dt.date(2024, 5, 20), 110, "Pneumonia")}}
# the derived deaths table (what the overview and "what changed" read): the death above, plus a death at site
# 101 recorded at both cuts (not new at CUT2), so that every role has deaths rows to be scoped
DEATH_ROWS = {CUT1: {"CTX-001-101-002": (dt.date(2024, 2, 1), 30, "Disease progression")},
              CUT2: {"CTX-001-101-002": (dt.date(2024, 2, 1), 30, "Disease progression"), **DEATHS[CUT2]}}


def _value(col: schema.Column, *, studyid: str, cut: dt.date, usubjid: str | None, table: str, n: int):
    name, typ = col.name, col.type.upper()
    if name == "studyid":
        return studyid
    if name == "data_cut":
        return cut
    if name == "usubjid":
        return usubjid
    if name == "siteid":
        return site_of(usubjid) if usubjid else None
    if name == "subjid" and usubjid:
        return usubjid.rsplit("-", 1)[1]
    if name == "event_key":
        return f"{usubjid}/{table.upper()}/{n}" if usubjid else f"{studyid}/{table.upper()}/{n}"
    if "[]" in typ:
        return []
    base = typ.split()[0].split("(")[0]
    if base in ("VARCHAR", "TEXT", "STRING", "JSON"):
        return f"{table}-{name}"
    if base in ("INTEGER", "INT", "BIGINT", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT", "UINTEGER"):
        return n
    if base in ("DOUBLE", "FLOAT", "REAL") or base.startswith("DECIMAL"):
        return 1.5
    if base == "BOOLEAN":
        return True
    if base == "DATE":
        return FIXED_DATE
    if base.startswith("TIMESTAMP"):
        return dt.datetime(2024, 1, 15, 8, 0)
    return None


def _insert(con, table: schema.Table, values: dict) -> None:
    if table.is_view:
        insert_view_rows(con, table.name, [values])
        return
    cols = [c for c in table.column_names if c in values]
    marks = ", ".join(f"$p{i}" for i in range(len(cols)))
    con.execute(f"INSERT INTO {table.name} ({', '.join(cols)}) VALUES ({marks})",
                {f"p{i}": values[c] for i, c in enumerate(cols)})


def _generic(table: schema.Table, studyid: str, cut: dt.date, usubjid: str | None, n: int = 1) -> dict:
    return {c.name: _value(c, studyid=studyid, cut=cut, usubjid=usubjid, table=table.name, n=n)
            for c in table.columns}


def build_two_site_db(path: str | Path, cuts: tuple[dt.date, ...] = (CUT1, CUT2)) -> Path:
    """Write the fixture database at ``path`` (every registered table filled) and return the path."""
    path = Path(path)
    con = duckdb.connect(str(path))
    try:
        schema.create_schema(con)
        for table in schema.all_tables():
            # a view's rows come from the tables it reads: a view that stores rows gets them like a table
            # (stored in its tables as a load stores them), the others show what their tables hold
            if table.read_through or (table.is_view and not table.store_sql):
                continue
            for cut in cuts:
                if table.name == "adverse_events":
                    for usubjid, aeseq, aedecod, grade, aeser in AES[cut]:
                        row = _generic(table, STUDY, cut, usubjid, aeseq)
                        row.update(aeseq=aeseq, event_key=f"{usubjid}/AE/{aeseq}", aeterm=aedecod.upper(),
                                   aedecod=aedecod, aetoxgr=grade, aeser=aeser,
                                   aesdth="Y" if grade == 5 else "N")
                        _insert(con, table, row)
                    _insert(con, table, _generic(table, OTHER_STUDY, cut, OTHER_SUBJECT))
                    continue
                if table.name == "deaths":
                    for usubjid, (date, day, cause) in DEATH_ROWS[cut].items():
                        row = _generic(table, STUDY, cut, usubjid)
                        row.update(death_date=date, death_day=day, delivered_cause=cause)
                        _insert(con, table, row)
                    _insert(con, table, _generic(table, OTHER_STUDY, cut, OTHER_SUBJECT))
                    continue
                if table.per_subject and "usubjid" in table.column_names:
                    for usubjid in SUBJECTS_AT[cut]:
                        row = _generic(table, STUDY, cut, usubjid)
                        if table.name == "subjects":
                            death = DEATHS.get(cut, {}).get(usubjid)
                            row.update(death_date=death[0] if death else None,
                                       death_day=death[1] if death else None,
                                       death_cause=death[2] if death else None,
                                       cohort="DL1" if site_of(usubjid) == "101" else "DL2")
                        _insert(con, table, row)
                    _insert(con, table, _generic(table, OTHER_STUDY, cut, OTHER_SUBJECT))
                else:
                    row = _generic(table, STUDY, cut, None)
                    if "usubjid" in table.column_names:  # e.g. quarantine rows name a subject
                        row["usubjid"] = SUBJECTS_AT[cut][-1]
                    _insert(con, table, row)
                    _insert(con, table, _generic(table, OTHER_STUDY, cut, None))
    finally:
        con.close()
    return path


ACCOUNTS = {
    # key: (username, role, sites per study)
    "committee": ("carol", "committee", None),
    "investigator_101": ("ivan", "investigator", {STUDY: ("101",)}),
    "investigator_102": ("irene", "investigator", {STUDY: ("102",)}),
    "data_manager": ("dana", "data_manager", None),
    "admin": ("adam", "admin", None),
}


def make_users(path: str | Path, rounds: int = 4) -> dict[str, User]:
    """An account file with one account per ACCOUNTS entry (password PASSWORD); {key: User}."""
    store = UserStore(path, rounds=rounds)
    return {key: store.add(name, role, PASSWORD, sites=sites, display_name=name.title())
            for key, (name, role, sites) in ACCOUNTS.items()}


@pytest.fixture(scope="module")
def two_site_db(tmp_path_factory) -> Path:
    """The fixture database (module-scoped; open it read-only)."""
    return build_two_site_db(tmp_path_factory.mktemp("two_site") / "study.duckdb")


@pytest.fixture(scope="module")
def two_site_users(tmp_path_factory) -> dict[str, User]:
    return make_users(tmp_path_factory.mktemp("users") / "users.yaml")


def files_that_are_no_review_store(folder: Path) -> list[tuple[Path, str]]:
    """A text file and another program's SQLite database in ``folder``, each with the reason a command gives."""
    import sqlite3

    text = folder / "fake.review.sqlite"
    text.write_text("not sqlite\n")
    other = folder / "other.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    return [(text, "file is not a database"), (other, "a SQLite database without the store's tables")]

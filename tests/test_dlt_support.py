"""Builders shared by the DLT, adjudication and stopping tests: a real DuckDB file with source tables and the
upstream derived tables (lab_toxicity, toxicity_episodes) made from safety/schema/."""
from __future__ import annotations

import datetime as dt

import duckdb

from safety import schema
from safety.core.config import validate
from view_rows import insert_view_rows

STUDY = "CTX-001"
CUT = dt.date(2025, 6, 30)
DAY0 = dt.date(2025, 3, 1)

# the upstream derived tables the screening reads (lab_toxicity: the view and the tables it reads)
UPSTREAM = ("toxicity_episodes", *(t.name for t in schema.LAB_GRADE_TABLES))


def new_db(path, upstream: bool = True) -> duckdb.DuckDBPyConnection:
    """A study database with every source table and deaths (and, by default, toxicity_episodes and lab_toxicity)."""
    con = duckdb.connect(str(path))
    for t in schema.SOURCE_TABLES:
        con.execute(t.ddl())
    con.execute(schema.get_table("deaths").ddl())  # treatment-related deaths read it
    if upstream:
        for name in UPSTREAM:
            con.execute(schema.get_table(name).ddl())
    return con


def _insert(con, table: str, row: dict) -> None:
    cols = ", ".join(row)
    marks = ", ".join(f"${k}" for k in row)
    con.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks})", row)


def add_subject(con, usubjid, *, cut=CUT, cohort="C1", dose_level="DL1", infused=True, last_day=60,
                death_day=None, death_cause=None, status=None, siteid="S1", study=STUDY):
    status = status or ("died" if death_day is not None else ("in follow-up" if infused else "screened"))
    _insert(con, "subjects", dict(
        studyid=study, data_cut=cut, usubjid=usubjid, siteid=siteid, cohort=cohort, dose_level=dose_level,
        first_infusion_date=DAY0 if infused else None, infused=infused, death_day=death_day,
        death_date=None if death_day is None else DAY0 + dt.timedelta(days=death_day),
        death_source=None if death_day is None else "DM", death_cause=death_cause,
        last_known_alive_day=(death_day if death_day is not None else last_day) if infused else None,
        status=status))


def add_ae(con, usubjid, aeseq, term, grade, onset, end=None, *, related=True, ongoing=None, cut_day=60,
           aeout=None, aesdth="N", aerel=None, cut=CUT, study=STUDY):
    ongoing = end is None if ongoing is None else ongoing
    duration = (end if end is not None else cut_day) - onset + 1
    _insert(con, "adverse_events", dict(
        studyid=study, data_cut=cut, usubjid=usubjid, aeseq=aeseq, event_key=f"{usubjid}/AE/{aeseq}",
        aeterm=term, aedecod=term.upper(), aetoxgr=grade, related=related,
        # related=None: a causality not yet entered (AEREL blank)
        aerel=aerel or {True: "POSSIBLE", False: "NOT RELATED"}.get(related), onset_day=onset, end_day=end,
        ongoing=ongoing, duration_days=duration, aeout=aeout, aesdth=aesdth,
        aeen_date=None if end is None else DAY0 + dt.timedelta(days=end)))  # a load sets both from AEENDTC


def add_episode(con, usubjid, syndrome, n, onset, max_grade, duration, *, g3=None, ongoing=False, cut=CUT,
                study=STUDY, g3_hours=None):
    g3_first, g3_last = g3 if g3 else (None, None)
    extra = {} if g3_hours is None else {"grade3_plus_hours": g3_hours}
    _insert(con, "toxicity_episodes", dict(**extra,
        studyid=study, data_cut=cut, usubjid=usubjid, syndrome=syndrome, event_key=f"{usubjid}/{syndrome}/{n}",
        onset_day=onset, max_grade=max_grade, duration_days=duration, ongoing=ongoing,
        grade3_plus_first_day=g3_first, grade3_plus_last_day=g3_last,
        days_grade3_plus=None if not g3 else g3_last - g3_first + 1, source="assessments"))


def add_assessment(con, usubjid, syndrome="CRS", day=1, cut=CUT, study=STUDY):
    table = "crs_assessments" if syndrome == "CRS" else "icans_assessments"
    _insert(con, table, dict(studyid=study, data_cut=cut, usubjid=usubjid, day=day))


def add_lab_grade(con, usubjid, lbtestcd, day, grade, cut=CUT, study=STUDY):
    """A lab_toxicity row, stored as a load stores one (lab_toxicity is a view over its tables)."""
    insert_view_rows(con, "lab_toxicity", [dict(studyid=study, data_cut=cut, usubjid=usubjid, lbtestcd=lbtestcd,
                                                ctcae_term=lbtestcd, direction="low", grade=grade, day=day)])


def config(**overrides) -> dict:
    return validate(overrides)


def rows(con, sql: str, params: dict | None = None) -> list[dict]:
    df = con.sql(sql, params=params or {}).to_arrow_table().to_pandas()
    return df.astype(object).where(df.notna(), None).to_dict("records")


def candidates(con, cut=CUT) -> dict[str, dict]:
    """dlt_candidates of the cut by event key."""
    return {r["event_key"]: r for r in rows(con, "SELECT * FROM dlt_candidates WHERE data_cut = $c", {"c": cut})}


def test_builders_make_a_database_the_screening_can_read(tmp_path):
    from safety.derive.dlt.screening import derive_dlt
    con = new_db(tmp_path / "s.duckdb")
    add_subject(con, "S-1")
    add_ae(con, "S-1", 1, "Pneumonitis", 3, 5, 14)
    derive_dlt(con, STUDY, CUT, config())
    assert list(candidates(con)) == ["S-1/AE/1"]


def test_a_lab_event_key_reads_back_as_its_test_and_day():
    """The persisting-cytopenia key screening writes is the one the decisions read back (one definition): the test
    and the day, a day before the infusion and a test code with a hyphen included."""
    from safety.derive.dlt.events import LAB_EVENT_KEY, death_event_key_sql, lab_event_key_sql
    con = duckdb.connect()
    rows = con.execute(f"""SELECT k, regexp_extract(k, '{LAB_EVENT_KEY}', 1), regexp_extract(k, '{LAB_EVENT_KEY}', 2)
        FROM (SELECT {lab_event_key_sql('u', 't', 'd')} AS k
              FROM (VALUES ('S-01', 'NEUT', 28), ('S-02', 'PLAT', -3), ('S-03', 'WBC-X', 5)) v(u, t, d))""").fetchall()
    assert rows == [("S-01/LB/NEUT-D28", "NEUT", "28"), ("S-02/LB/PLAT-D-3", "PLAT", "-3"),
                    ("S-03/LB/WBC-X-D5", "WBC-X", "5")]
    assert con.execute(f"SELECT {death_event_key_sql(chr(39) + 'S-01' + chr(39))}").fetchone() == ("S-01/DEATH",)

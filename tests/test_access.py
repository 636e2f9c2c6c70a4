"""Site-scoped reads: every table of the registry, every role, injection strings and the query guard."""
from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from access_fixtures import (
    CUT1, CUT2, OTHER_STUDY, STUDY, SUBJECTS_AT, build_two_site_db, make_users, subjects_visible,
    two_site_db, two_site_users,  # noqa: F401  (fixtures)
)
from safety import schema
from safety.access.reader import QueryRejected, Scope, StudyReader, available_cuts, check_query, connect, previous_cut
from safety.access.auth import scope_for

# a view's storage tables (lab_toxicity_records ...) are read through their view only
STORAGE_TABLES = [t for t in schema.all_tables() if t.read_through]
TABLES = [t for t in schema.all_tables() if not t.read_through]
SUBJECT_TABLES = [t for t in TABLES if t.per_subject and "usubjid" in t.column_names]
STUDY_LEVEL_TABLES = [t for t in TABLES if t not in SUBJECT_TABLES]
ROLES = ["committee", "investigator_101", "investigator_102", "data_manager", "admin"]
EXPECTED_SITES = {"committee": None, "investigator_101": ("101",), "investigator_102": ("102",),
                  "data_manager": None, "admin": ()}


@pytest.fixture(scope="module")
def con(two_site_db):
    c = connect(two_site_db)  # read-only, as the app opens it
    yield c
    c.close()


def _reader(con, user, cut=CUT2, prev=None):
    return StudyReader(con, scope_for(user, STUDY, cut, prev))


def _oracle(con, table: str, sites, cut=CUT2) -> set[str]:
    """Subjects with rows in ``table`` at ``cut`` whose site is in ``sites``, read directly (the truth)."""
    rows = con.execute(
        f"SELECT DISTINCT t.usubjid, s.siteid FROM {table} t JOIN subjects s "
        "ON s.studyid = t.studyid AND s.data_cut = t.data_cut AND s.usubjid = t.usubjid "
        "WHERE t.studyid = $s AND t.data_cut = $c", {"s": STUDY, "c": cut}).fetchall()
    return {u for u, site in rows if sites is None or site in sites}


def test_fixture_fills_every_table(con):
    for t in TABLES:
        n = con.execute(f"SELECT count(*) FROM {t.name} WHERE studyid = $s AND data_cut = $c",
                        {"s": STUDY, "c": CUT2}).fetchone()[0]
        assert n > 0, f"fixture left {t.name} empty: the scope test would prove nothing for it"


def test_a_views_storage_tables_are_not_offered_to_a_scoped_query(con, two_site_users):
    assert {t.name for t in STORAGE_TABLES} >= {"lab_toxicity_records", "lab_toxicity_terms", "lab_toxicity_reasons"}
    r = _reader(con, two_site_users["committee"])
    for t in STORAGE_TABLES:
        with pytest.raises(QueryRejected):
            r.sql(f"SELECT * FROM {t.name}")
    assert len(r.sql("SELECT * FROM lab_toxicity")) > 0  # their rows, through the view


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("table", SUBJECT_TABLES, ids=lambda t: t.name)
def test_each_role_sees_only_its_subjects_in_every_table(con, two_site_users, role, table):
    user = two_site_users[role]
    df = _reader(con, user).sql(f"SELECT * FROM {table.name}")
    expected = _oracle(con, table.name, EXPECTED_SITES[role])
    assert set(df["usubjid"]) == expected
    assert expected <= subjects_visible(EXPECTED_SITES[role])
    if role != "admin":
        assert expected, "the fixture must give this role rows, or the test proves nothing"
    if len(df):
        assert set(df["studyid"]) == {STUDY}
        assert set(df["data_cut"]) == {CUT2}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("table", SUBJECT_TABLES, ids=lambda t: t.name)
def test_previous_cut_tables_keep_the_site_scope(con, two_site_users, role, table):
    user = two_site_users[role]
    df = _reader(con, user, CUT2, CUT1).sql(f"SELECT * FROM prev_{table.name}")
    assert set(df["usubjid"]) == _oracle(con, table.name, EXPECTED_SITES[role], CUT1)
    if len(df):
        assert set(df["data_cut"]) == {CUT1}


@pytest.mark.parametrize("table", STUDY_LEVEL_TABLES, ids=lambda t: t.name)
def test_study_level_tables_hidden_from_site_scopes(con, two_site_users, table):
    for role in ("committee", "data_manager"):
        assert len(_reader(con, two_site_users[role]).sql(f"SELECT * FROM {table.name}")) == 1
    for role in ("investigator_101", "investigator_102", "admin"):
        n = len(_reader(con, two_site_users[role]).sql(f"SELECT * FROM {table.name}"))
        # the study description (title, product) is the only study-level row a site may see
        assert n == (1 if table.name == "studies" else 0), (role, table.name)


def test_join_across_tables_cannot_reach_other_site(con, two_site_users):
    r = _reader(con, two_site_users["investigator_101"])
    df = r.sql("SELECT s.siteid, a.usubjid FROM adverse_events a JOIN subjects s USING (usubjid)")
    assert set(df["siteid"]) == {"101"}
    # a subquery on a table does not escape either
    assert r.scalar("SELECT count(*) FROM (SELECT * FROM adverse_events WHERE usubjid LIKE '%102%')") == 0


INJECTIONS = [
    "' OR '1'='1",
    "x'; DROP TABLE subjects; --",
    "CTX-001-101-001' UNION SELECT usubjid FROM main.subjects --",
    "\") OR 1=1 --",
    "%",
    "102",
]


@pytest.mark.parametrize("value", INJECTIONS)
def test_injection_strings_as_parameters_do_nothing(con, two_site_users, value):
    r = _reader(con, two_site_users["investigator_101"])
    df = r.sql("SELECT usubjid FROM subjects WHERE usubjid = $u OR siteid = $u", {"u": value})
    assert df.empty
    like = r.sql("SELECT usubjid FROM adverse_events WHERE aedecod LIKE $p", {"p": value})
    assert set(like["usubjid"]) <= subjects_visible(("101",))
    # tables intact
    assert con.execute("SELECT count(*) FROM subjects").fetchone()[0] == 3 + 4 + 2  # CTX-001 at two cuts + the other study


def test_reserved_scope_parameters_cannot_be_overridden(con, two_site_users):
    r = _reader(con, two_site_users["investigator_101"])
    with pytest.raises(QueryRejected):
        r.sql("SELECT * FROM subjects", {"_scope_sites": ["101", "102"]})
    with pytest.raises(QueryRejected):
        r.sql("SELECT * FROM subjects", {"_scope_study": OTHER_STUDY})
    with pytest.raises(QueryRejected):
        r.sql("SELECT * FROM subjects WHERE siteid IN (SELECT unnest($_scope_sites))")


BYPASSES = [
    "SELECT * FROM main.adverse_events",
    "SELECT * FROM main.subjects",
    "SELECT * FROM study.main.subjects",
    "SELECT * FROM subjects s JOIN main.subjects m USING (usubjid)",
    "SELECT usubjid FROM subjects WHERE usubjid IN (SELECT usubjid FROM main.subjects)",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_parquet('x.parquet')",
    "SELECT * FROM 'other.csv'",
    "SELECT * FROM query('SELECT * FROM main.subjects')",
    "SELECT * FROM duckdb_tables()",
    "SELECT * FROM information_schema.tables",
    "SELECT * FROM (DESCRIBE subjects)",
    "SELECT * FROM some_unregistered_table",
    "SELECT * FROM prev_subjects",  # no previous cut in this scope
    "ATTACH 'other.duckdb' AS o",
    "COPY subjects TO '/tmp/leak.csv'",
    "PRAGMA table_info('subjects')",
    "SET enable_external_access = true",
    "SELECT 1; SELECT * FROM main.subjects",
    "DROP TABLE subjects",
    "SELECT getenv('HOME')",
    "WITH x AS (SELECT * FROM main.subjects) SELECT * FROM x",
]


@pytest.mark.parametrize("query", BYPASSES)
def test_queries_that_bypass_the_scope_are_rejected(con, two_site_users, query):
    r = _reader(con, two_site_users["investigator_101"])
    with pytest.raises(QueryRejected):
        r.sql(query)
    with pytest.raises(QueryRejected):  # the load's read path (arrays, no pandas) is checked the same way
        r.arrays(query)


@pytest.mark.parametrize("role", ROLES)
def test_the_array_read_path_keeps_the_scope(con, two_site_users, role):
    r = _reader(con, two_site_users[role])
    cols = r.arrays("SELECT usubjid, studyid FROM subjects ORDER BY usubjid")
    assert cols["usubjid"].tolist() == sorted(r.sql("SELECT usubjid FROM subjects")["usubjid"])
    assert set(cols["usubjid"]) == _oracle(con, "subjects", EXPECTED_SITES[role])
    assert set(cols["studyid"]) <= {STUDY}
    assert {k: v.tolist() for k, v in r.arrays("SELECT usubjid FROM subjects WHERE false").items()} == {"usubjid": []}


def test_the_array_read_path_gives_null_as_nan_or_none_never_a_masked_cells_fill_value(con, two_site_users):
    # DuckDB's fetchnumpy gives a column with NULL as a masked array, whose masked cells read as a fill value
    # (True, 999999, '?'): a NULL flag would count a subject
    r = _reader(con, two_site_users["committee"])
    cols = r.arrays("SELECT * FROM (VALUES (true, 2, 1.5, 'DL1'), (NULL, NULL, NULL, NULL), (false, 0, 0.0, 'DL2')) "
                    "v(flag, n, x, dose)")
    assert [type(v).__name__ for v in cols.values()] == ["ndarray"] * 4
    flag, n, x, dose = (cols[c].tolist() for c in ("flag", "n", "x", "dose"))
    assert flag[0] == 1.0 and flag[1] != flag[1] and flag[2] == 0.0
    assert n[0] == 2.0 and n[1] != n[1] and n[2] == 0.0
    assert x[0] == 1.5 and x[1] != x[1]
    assert dose == ["DL1", None, "DL2"]
    plain = r.arrays("SELECT * FROM (VALUES (true, 2), (false, 0)) v(flag, n)")
    assert plain["flag"].dtype == bool and plain["n"].tolist() == [2, 0]


def test_guard_allows_ordinary_page_queries(con, two_site_users):
    r = _reader(con, two_site_users["committee"], CUT2, CUT1)
    df = r.sql("""
        WITH worst AS (SELECT usubjid, max(aetoxgr) AS g FROM adverse_events GROUP BY usubjid)
        SELECT s.usubjid, s.siteid, w.g, (SELECT count(*) FROM prev_adverse_events p WHERE p.usubjid = s.usubjid) AS n_prev
        FROM subjects s LEFT JOIN worst w USING (usubjid)
        WHERE s.siteid IN (SELECT unnest($sites)) ORDER BY s.usubjid
    """, {"sites": ["101", "102"]})
    assert df["usubjid"].tolist() == sorted(SUBJECTS_AT[CUT2])
    assert df.set_index("usubjid").loc["CTX-001-101-001", "g"] == 3
    assert df.set_index("usubjid").loc["CTX-001-101-001", "n_prev"] == 1
    assert r.scalar("SELECT count(*) FROM range(3) r, subjects") == 12
    assert r.scalar("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4) "
                    "SELECT max(i) FROM n") == 4


def test_check_query_is_usable_without_a_reader():
    check_query("SELECT * FROM labs", Scope(STUDY, CUT2, ("101",)))
    with pytest.raises(QueryRejected):
        check_query("SELECT * FROM main.labs", Scope(STUDY, CUT2, None))


def test_read_only_connection_cannot_write_or_read_files(con, tmp_path):
    with pytest.raises(duckdb.Error):
        con.execute("DELETE FROM subjects")
    leak = tmp_path / "leak.csv"
    with pytest.raises(duckdb.Error):
        con.execute(f"COPY subjects TO '{leak}'")
    assert not leak.exists()
    with pytest.raises(duckdb.Error):
        con.execute("SELECT * FROM read_csv('/etc/hostname')")


def test_other_study_and_cut_never_returned(con, two_site_users):
    r = _reader(con, two_site_users["committee"], CUT1)
    df = r.sql("SELECT DISTINCT studyid, data_cut, usubjid FROM subjects")
    assert set(df["studyid"]) == {STUDY} and set(df["data_cut"]) == {CUT1}
    assert set(df["usubjid"]) == set(SUBJECTS_AT[CUT1])


def test_empty_scope_sees_nothing(con):
    r = StudyReader(con, Scope(STUDY, CUT2, ()))
    for t in SUBJECT_TABLES:
        assert r.scalar(f"SELECT count(*) FROM {t.name}") == 0


def test_scope_sites_must_be_a_tuple(con):
    with pytest.raises(TypeError):
        StudyReader(con, Scope(STUDY, CUT2, ["101"]))  # a list (or a bare string) is a mistake


def test_cuts_helpers(con):
    cuts = available_cuts(con)
    assert set(cuts.loc[cuts.studyid == STUDY, "data_cut"]) == {CUT1, CUT2}
    assert previous_cut(con, STUDY, CUT2) == CUT1
    assert previous_cut(con, STUDY, CUT1) is None


def test_with_previous_cut_keeps_sites(con, two_site_users):
    r = _reader(con, two_site_users["investigator_102"]).with_previous_cut(CUT1)
    assert r.scope.sites == ("102",) and r.scope.previous_cut == CUT1
    assert set(r.sql("SELECT usubjid FROM prev_subjects")["usubjid"]) == {"CTX-001-102-001"}


def test_a_reader_of_a_read_only_database_reads_its_catalog_once(two_site_db, two_site_users):
    """The app's and an export's reader keep the tables they found (nothing can add one under a read-only
    connection): a packet asked 75 times. The names are those of the file, views included."""
    c = connect(two_site_db)
    try:
        r = _reader(c, two_site_users["committee"])
        asked = []
        original = c.cursor

        def counted_cursor():
            asked.append(1)
            return original()
        c.cursor = counted_cursor  # the catalog is read through a cursor of the connection
        assert r.has_tables("subjects", "lab_toxicity") and not r.has_tables("subjects", "no_such_table")
        assert r.has_tables("adverse_events")
        assert len(asked) == 1
    finally:
        c.close()


def test_a_reader_of_a_database_being_written_sees_a_table_made_after_it_asked(tmp_path):
    """A load's derivation reads through a reader of its own, writable connection: a table created after the
    reader first asked is found, never a list of tables kept from before."""
    c = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        r = StudyReader(c, Scope(STUDY, CUT2))
        assert not r.has_tables("made_later")
        c.execute("CREATE TABLE made_later (a INTEGER)")
        assert r.has_tables("made_later")
    finally:
        c.close()

"""The SQL macros ingest cleans and parses text with, against the definitions they shortcut."""
from __future__ import annotations

import duckdb
import pytest

from safety.ingest.sqlmacros import install

TEXTS = ["ABC", " ABC", "ABC ", "  A B  ", "", " ", "   ", "\tABC", "ABC\n", "\u00a0ABC", "ABC\u00a0", "\u3000x",
         "Zürich", " Zürich ", "µmol/L", "<0.5", "2024-01-05", None]


@pytest.fixture(scope="module")
def con():
    c = duckdb.connect()
    install(c)
    yield c
    c.close()


@pytest.mark.parametrize("text", TEXTS)
def test_cleaned_text_is_exactly_trim_with_empty_as_null(con, text):
    got, want = con.execute("SELECT ct_nz($s), NULLIF(trim($s), '')", {"s": text}).fetchone()
    assert got == want


def test_cleaning_keeps_inner_spaces_and_drops_blank_values(con):
    rows = con.execute("SELECT ct_nz(s) FROM unnest(['  A B  ', '   ', ' x']) t(s)").fetchall()
    assert rows == [("A B",), (None,), ("x",)]


@pytest.mark.parametrize("text, num, whole", [
    ("3", 3.0, 3), ("3.0", 3.0, 3), ("1e3", 1000.0, 1000), ("0.5", 0.5, None),
    ("1_000", None, None), ("0_3", None, None), ("1_000.5", None, None), ("1,000", None, None), ("inf", None, None)])
def test_a_number_is_finite_and_has_no_underscore(con, text, num, whole):
    """DuckDB's cast reads '1_000' as 1000; as a delivered value it is no number, as '1,000' is none."""
    assert con.execute("SELECT ct_num($s), ct_int($s)", {"s": text}).fetchone() == (num, whole)


def test_grades_keys_and_censored_results_read_numbers_by_the_same_rule(con):
    got = con.execute("SELECT ct_grade('Grade 0_3'), ct_grade('Grade 3'), ct_seqnum('0_3'), ct_seqnum('03'), "
                      "ct_censval('<0_5'), ct_censval('>= 400')").fetchone()
    assert got == (None, 3, "0_3", "3", None, 400.0)

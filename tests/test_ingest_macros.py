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

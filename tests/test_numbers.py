"""One rounding rule for what people read: ties away from zero, the same on a page, in its chart and in the packet."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from safety.core.numbers import fixed, interval, n_pct, percent, percent_value, rounded


@pytest.mark.parametrize("k, n, places, text", [
    (5, 8, 0, "63"),     # 62.5: Python's format and pandas gave 62
    (1, 8, 0, "13"),     # 12.5: gave 12, while 3 of 8 (37.5) gave 38
    (3, 8, 0, "38"),
    (1, 16, 1, "6.3"),   # 6.25: gave 6.2
    (3, 16, 1, "18.8"),
    (1, 3, 1, "33.3"),
    (2, 3, 1, "66.7"),
    (0, 5, 1, "0.0"),
    (7, 7, 0, "100"),
])
def test_percent_rounds_a_tie_away_from_zero(k, n, places, text):
    assert percent(k, n, places) == text


def test_a_float_rounds_at_its_shortest_decimal_form():
    assert fixed(2.675, 2) == "2.68"  # the binary value is 2.67499999...
    assert fixed(0.125, 2) == "0.13"
    assert fixed(-0.5, 0) == "-1" and fixed(-0.4, 0) == "0"  # no "-0"
    assert fixed(12.0, 1) == "12.0" and fixed(1e-7, 1) == "0.0"
    assert rounded(62.5) == 63 and rounded(-2.5) == -3


def test_missing_values_read_as_missing_not_as_numbers():
    for v in (None, float("nan"), math.inf, pd.NA):
        assert fixed(v) == "" and fixed(v, 1, "-") == "-"
    assert percent(1, 0) == "-" and percent_value(1, 0) is None and percent_value(pd.NA, 4) is None
    assert n_pct(0, 8) == "0" and n_pct(None, 8) == "0" and n_pct(pd.NA, 8) == "0" and n_pct(float("nan"), 8) == "0"
    assert n_pct(3, 0) == "3"


def test_table_cell_and_sortable_value():
    assert n_pct(5, 8) == "5 (62.5)" and n_pct(1, 16) == "1 (6.3)" and n_pct(2.0, 3) == "2 (66.7)"
    assert percent_value(1, 16) == 6.3 and percent_value(5, 8, 0) == 63.0


def test_interval_reads_as_the_tables_print_it():
    assert interval(0.35, 64.125) == "0.4-64.1" and interval(0.0, 70.76) == "0.0-70.8"
    assert interval(float("nan"), float("nan")) == "-" and interval(None, None) == "-" and interval(pd.NA, 3) == "-"

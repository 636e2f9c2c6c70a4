"""How a number is rounded for people to read: one rule for every page, figure, table and export.

Ties round half away from zero, as SAS's ROUND, Excel and DuckDB's round() do, and as a committee member checking
a table by hand expects: 5 of 8 is 62.5 %, shown as 63 %, and 1 of 16 (6.25 %) as 6.3. Python's round(), its
format specifications ("{:.0f}") and pandas' round() round a tie to the even neighbour (62 %, 6.2), while the
browser's number formatting in a chart's hover rounds it up: the same rate read differently on a page, in its
chart and in the packet. A ratio is rounded exactly (from its numerator and denominator), a float at its shortest
decimal form (2.675 reads 2.68, as typed, not by its binary neighbour 2.67499...).
"""
from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

__all__ = ["rounded", "fixed", "percent", "percent_of", "percent_value", "n_pct", "of_n", "interval", "NO_DENOMINATOR"]

# What a rate over nobody reads: 0 of 0 is no rate, and "0 / 0" would read as "none of them"
NO_DENOMINATOR = "-"


def _exact(x) -> Fraction | None:
    if x is None:
        return None
    if isinstance(x, Fraction):
        return x
    if isinstance(x, (int, Decimal)) and not isinstance(x, bool):
        return Fraction(x)
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(f):
        return None
    return Fraction(repr(f))


def rounded(x, places: int = 0) -> Decimal | None:
    """``x`` rounded to ``places`` decimals, ties away from zero; None for a missing or non-finite value."""
    q = _exact(x)
    if q is None:
        return None
    scale = Fraction(10) ** places
    m = math.floor(abs(q) * scale + Fraction(1, 2))
    d = Decimal(m).scaleb(-places)
    return -d if q < 0 and m else d


def fixed(x, places: int = 1, missing: str = "") -> str:
    """``x`` as text with ``places`` decimals, rounded by :func:`rounded` ('6.3'); ``missing`` when there is no value."""
    d = rounded(x, places)
    return missing if d is None else f"{d:.{places}f}"


def percent_of(k, n) -> Fraction | None:
    """100 k / n exactly; None when n is 0 or missing."""
    try:
        k, n = int(k), int(n)
    except (TypeError, ValueError):  # None, NaN, pandas' NA
        return None
    return Fraction(k * 100, n) if n else None


def percent(k, n, places: int = 1, missing: str = "-") -> str:
    """The percentage k of n with ``places`` decimals, without the sign ('62.5', '63' at 0 places)."""
    return fixed(percent_of(k, n), places, missing)


def n_pct(k, n, places: int = 1) -> str:
    """A table cell 'n (%)': '3 (50.0)'; '0' for none, as the FDA Standard Safety Tables print it."""
    try:
        k = int(k)
    except (TypeError, ValueError):  # None, NaN, pandas' NA: no subject
        k = 0
    if k == 0 or not n:
        return str(k)
    return f"{k} ({percent(k, n, places)})"


def of_n(k, n, sep: str = " / ", missing: str = NO_DENOMINATOR) -> str:
    """A count of its denominator, 'k / N' ('3 / 5'); ``missing`` when N is 0 or missing."""
    try:
        k, n = int(k), int(n)
    except (TypeError, ValueError):  # None, NaN, pandas' NA
        return missing
    return f"{k}{sep}{n}" if n else missing


def interval(low, high, places: int = 1, missing: str = "-") -> str:
    """A confidence interval as the tables print it, 'low-high' ('0.4-64.1'); ``missing`` when there is no low
    bound (an interval over no subject)."""
    if rounded(low, places) is None:
        return missing
    return f"{fixed(low, places)}-{fixed(high, places)}"


def percent_value(k, n, places: int = 1) -> float | None:
    """:func:`percent` as a number (a sortable table column): 6.3 for 1 of 16; None when n is 0."""
    d = rounded(percent_of(k, n), places)
    return None if d is None else float(d)

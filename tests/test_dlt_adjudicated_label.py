"""The listing's "Adjudicated DLT" label: the vectorised form every page uses gives, on every combination of
inputs, what the rule says row by row (the rule spelled out below as the listing reads it)."""
from __future__ import annotations

import itertools

import pandas as pd

from safety.review.dlt_status import (ADJUDICATED_NO, ADJUDICATED_NOT_IN_WINDOW, ADJUDICATED_PENDING,
                                      ADJUDICATED_YES, adjudicated_label, adjudicated_labels)


def _rule(row) -> str:
    """Yes when it counts as a DLT, else Pending, else No when rejected, else 'not adjudicated' for a screened
    candidate outside the window (unknown window = outside), else the row's status."""
    if row["counts_as_dlt"]:
        return ADJUDICATED_YES
    if row["pending"]:
        return ADJUDICATED_PENDING
    if row["decision"] == "rejected":
        return ADJUDICATED_NO
    if row["screened"] and not (row["in_window"] is True):
        return ADJUDICATED_NOT_IN_WINDOW
    return row["status"]


def _every_combination() -> pd.DataFrame:
    rows = [dict(counts_as_dlt=d, pending=p, decision=dec, screened=s, in_window=w, status=f"status {i}")
            for i, (d, p, dec, s, w) in enumerate(itertools.product(
                [True, False], [True, False], [None, "confirmed", "rejected", "withdrawn", "added"],
                [True, False], [True, False, None]))]
    return pd.DataFrame(rows)


def test_vector_and_row_labels_follow_the_rule_on_every_combination():
    df = _every_combination()
    expected = [_rule(r) for r in df.to_dict("records")]
    assert list(adjudicated_labels(df)) == expected
    assert [adjudicated_label(r) for r in df.to_dict("records")] == expected
    # every label occurs, so no branch of the rule goes untested
    assert {ADJUDICATED_YES, ADJUDICATED_NO, ADJUDICATED_PENDING, ADJUDICATED_NOT_IN_WINDOW} <= set(expected)
    assert any(e.startswith("status ") for e in expected)


def test_labels_keep_the_row_order_and_index_of_a_filtered_review():
    df = _every_combination().iloc[::7]
    got = adjudicated_labels(df)
    assert list(got.index) == list(df.index)
    assert list(got) == [_rule(r) for r in df.to_dict("records")]
    assert adjudicated_labels(df.iloc[0:0]).empty

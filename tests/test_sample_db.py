"""The embedded sample database: both studies at both cuts, with the demo committee's decisions applied."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from safety.access.reader import Scope, StudyReader, connect
from safety.derive.dlt.decisions import review_table
from safety.review.store import ReviewStore, default_review_path
from safety.sample_db import ensure_sample_database

CUT1, CUT2 = dt.date(2026, 3, 31), dt.date(2026, 9, 30)


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("sample") / "celltox_sample.duckdb"
    ensure_sample_database(path)
    return path


def test_both_studies_at_both_cuts(sample_db):
    con = connect(sample_db)
    try:
        cuts = con.execute("SELECT studyid, data_cut FROM studies ORDER BY 1, 2").fetchall()
    finally:
        con.close()
    assert cuts == [("CD56-CART-01", CUT1), ("CD56-CART-01", CUT2), ("ITNK-B-01", CUT1), ("ITNK-B-01", CUT2)]
    assert default_review_path(sample_db).exists()
    assert not list(sample_db.parent.glob("*.building.*")), "no half-built file may be left behind"


def test_demo_decisions_carry_over_to_the_next_cut(sample_db):
    store = ReviewStore(default_review_path(sample_db))
    con = connect(sample_db)
    try:
        rt = review_table(StudyReader(con, Scope("CD56-CART-01", CUT2)), store)
    finally:
        con.close()
    decided = {k: (None if pd.isna(d) else d) for k, d in zip(rt["event_key"], rt["decision"])}
    assert decided["CD56-CART-01-01-005/CRS/1"] == "confirmed"
    assert decided["CD56-CART-01-01-011/CRS/1"] == "confirmed"
    assert decided["CD56-CART-01-01-012/ICANS/1"] == "confirmed"
    assert decided["CD56-CART-01-01-007/AE/5"] == "rejected"
    assert decided["CD56-CART-01-01-009/LB/NEUT-D28"] == "rejected"
    # Left for the committee's next meeting.
    assert decided["CD56-CART-01-01-014/LB/PLAT-D28"] is None
    assert decided["CD56-CART-01-01-019/AE/6"] is None
    assert not rt["needs_rereview"].any()


def test_stored_boin_status_uses_the_decisions_by_dose_level(sample_db):
    con = connect(sample_db)
    try:
        rows = con.execute(
            "SELECT cohort, evaluable_n, events, pending, decision, decision_if_pending_confirmed "
            "FROM stopping_rule_status WHERE studyid = 'CD56-CART-01' AND data_cut = $c ORDER BY cohort",
            {"c": CUT2}).fetchall()
    finally:
        con.close()
    # DL3: 011 and 012 confirmed among 6 evaluable; 014 pending -> 2/6 = 0.33 lies between 0.236 and 0.358;
    # with 014 confirmed 3/6 = 0.5 >= 0.358: de-escalate. DL2: 019 and the grade 4 AKI of 021 pending,
    # 3/13 still <= E = 3 (BOIN target 0.30, clinical-rules.md 6.2).
    assert rows == [("DL1", 3, 0, 0, "escalate", "escalate"), ("DL2", 13, 1, 2, "escalate", "escalate"),
                    ("DL3", 6, 2, 1, "stay", "de-escalate")]

"""Committee decisions whose event or subject is no longer in a data cut, named after a load.

A reload can drop an adjudicated event or a whole subject (a DM row quarantined for a bad date, a record
removed by the site). The decision stays in force and counted as decided (see ``decision_ctes``); the load
names each one so that the committee re-reviews it rather than finding a count that silently moved.
"""
from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import duckdb

from safety.core.sql import existing, run_sql
from safety.core.vocabulary import DLT_WINDOW_END_DAY, DLT_WINDOW_START_DAY
from safety.derive.dlt.decisions import adjudication_params, decision_ctes, event_sources_of
from safety.review.store import ReviewStore, default_review_path


def vanished_decisions(con, studyid: str, data_cut: dt.date, store: ReviewStore | None,
                       window: tuple[int, int] | None = None) -> list[dict]:
    """Decisions in force (not withdrawn) whose event is not in the cut, one dict each: event_key, usubjid,
    decision, reviewer, decided_on_cut, counts_as_dlt, subject_in_cut."""
    needed = {"dlt_candidates", "dlt_evaluability", "subjects", "adverse_events"}
    if store is None or not needed <= existing(con, needed):
        return []
    if window is None:
        end = con.execute("SELECT max(window_end_day) FROM dlt_evaluability WHERE studyid = $s AND data_cut = $c",
                          {"s": studyid, "c": data_cut}).fetchone()[0]
        window = (DLT_WINDOW_START_DAY, DLT_WINDOW_END_DAY if end is None else int(end))
    sql = f"""WITH {decision_ctes(event_sources_of(con))}
SELECT event_key, usubjid, decision, reviewer, decided_on_cut, counts_as_dlt,
       usubjid IN (SELECT usubjid FROM rv_subj) AS subject_in_cut
FROM review WHERE NOT event_present AND decision IS NOT NULL AND decision <> 'withdrawn'
ORDER BY usubjid, event_key"""
    params = {"studyid": studyid, "data_cut": data_cut, "win_start": window[0], "win_end": window[1],
              **adjudication_params(store, studyid, data_cut)}
    cur = run_sql(con, sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def load_warnings(db_path, studyid: str, data_cut: dt.date, review_store_path=None) -> list[str]:
    """One 'warning: ...' line per decision whose event or subject the load at (studyid, data_cut) no longer has."""
    store_path = Path(review_store_path or default_review_path(db_path))
    if not store_path.exists():
        return []
    store = ReviewStore(store_path)
    if not store.latest_adjudications(studyid):  # no decision, none to lose: the database need not be opened
        return []
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        vanished = vanished_decisions(con, studyid, data_cut, store)
    finally:
        con.close()
    lines = []
    for r in vanished:
        what = "event" if r["subject_in_cut"] else f"subject {r['usubjid']} (and the event)"
        counted = f"still counted as {r['decision']}" + (" (a DLT)" if r["counts_as_dlt"] else "")
        lines.append(f"warning: committee decision '{r['decision']}' on {r['event_key']} (by {r['reviewer']}, "
                     f"{r['decided_on_cut']} cut): {what} no longer in the data: re-review; {counted} until a new "
                     "decision is recorded")
    return lines


def print_load_warnings(db_path, studyid: str, data_cut: dt.date, review_store_path=None, out=None) -> int:
    """Print :func:`load_warnings` (to stdout unless ``out``); returns how many were printed."""
    lines = load_warnings(db_path, studyid, data_cut, review_store_path)
    for line in lines:
        print(line, file=out or sys.stdout)
    return len(lines)

"""Committee decisions on DLT candidates: how a decision in the review store applies to a data cut.

Decisions (values and meanings in :mod:`safety.core.vocabulary`) are keyed by stable event keys and stored
with the event's fingerprint at the time of the decision, in ``<db>.review.sqlite`` (never in a table ingest
rewrites). In a data cut, the newest decision per key made on that cut or an earlier one is in force: a
decision made on a later cut was not there, and its event may not have happened yet. When a reload changes an adjudicated event (grade,
dates) or the event is no longer screened, the row is flagged ``needs_rereview``: the decision stays visible
and, if it made a DLT, is still counted (counting errs on the side of toxicity) until the committee decides
again. A withdrawn decision leaves the candidate pending, as if never decided.

The same SQL (:func:`decision_ctes`) serves the derivation at load time and the live view: the latest
decisions are passed in as list parameters, so a StudyReader can run it within its scope.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from safety.core.config import dlt_window
from safety.core.sql import existing
from safety.core.vocabulary import DECISIONS, DLT_DECISIONS, DLT_WINDOW_END_DAY, DLT_WINDOW_START_DAY
from safety.derive.dlt.events import (DEATH_SOURCE, EPISODE_END_DAY, EPISODE_GRADE, LAB_EVENT_KEY, SOURCE_LABEL,
                                      ae_fingerprint_sql, death_events_sql, death_evidence_sql, event_in_window_sql,
                                      fingerprint_sql, lab_evidence_sql, same_event_sql)
from safety.review.store import ReviewStore

if TYPE_CHECKING:  # pages read DataFrames; a load's DLT screening needs only the SQL here, and no pandas
    import pandas as pd

_ADJ_FIELDS = {  # param name -> review store column
    "adj_key": "event_key", "adj_usubjid": "usubjid", "adj_decision": "decision",
    "adj_fp": "event_fingerprint", "adj_reviewer": "reviewer", "adj_at": "decided_at",
    "adj_rationale": "rationale", "adj_rule": "rule_id", "adj_cut": "data_cut",
}


# cohort / dose level of a decided subject who is in no cut this query can see
LOST_LABEL = "(not in this data cut)"


def adjudication_params(store: ReviewStore | None, studyid: str, data_cut) -> dict:
    """The decision in force at ``data_cut`` per event key (the latest made on that cut or an earlier one) as
    parallel list parameters for :func:`decision_ctes`."""
    rows = store.latest_adjudications(studyid, as_of_cut=data_cut) if store is not None else []
    out = {p: [None if r.get(col) is None else str(r[col]) for r in rows] for p, col in _ADJ_FIELDS.items()}
    out["dlt_decisions"] = list(DLT_DECISIONS)
    out["lost_label"] = LOST_LABEL
    out["show_lost"] = True  # a reader scoped to some sites sets False (see decision_params)
    return out


# the derived tables that hold the events of decided keys other than AEs: CRS/ICANS episodes and lab grades
EVENT_SOURCES = frozenset({"toxicity_episodes", "lab_toxicity"})


def event_sources(reader) -> frozenset[str]:
    """Those of :data:`EVENT_SOURCES` the reader's database holds (a file written before one existed lacks it)."""
    return frozenset(t for t in EVENT_SOURCES if reader.has_tables(t))


def event_sources_of(con) -> frozenset[str]:
    """:func:`event_sources` on a DuckDB connection (a load's, or the derivations')."""
    return frozenset(existing(con, EVENT_SOURCES))


def _decided_events(sources: frozenset[str]) -> str:
    """SELECT of the cut's events that a decided key can name, one row per key, with the columns of a candidate:
    every AE, and for decided keys only the CRS/ICANS episode, the death (``<usubjid>/DEATH``) and the first graded
    lab of the test on or after the key's day (``<usubjid>/LB/<test>-D<day>``), so a decided event that is still
    in the cut but no longer screened shows its current grade and dates."""
    where = "studyid = $studyid AND data_cut = $data_cut"
    parts = [f"""SELECT a.event_key, a.usubjid, 'AE' AS source, coalesce(a.aedecod, a.aeterm) AS term, a.onset_day,
       a.end_day, a.aetoxgr AS grade, a.duration_days, a.ongoing, true AS window_applies, NULL::VARCHAR AS evidence,
       {ae_fingerprint_sql('a')} AS event_fingerprint, a.ended_before_infusion
FROM adverse_events a WHERE a.{where.replace(' AND ', ' AND a.')}""",
             f"""SELECT d.event_key, d.usubjid, '{DEATH_SOURCE}', d.term, d.onset_day, d.end_day, d.grade, d.duration_days,
       d.ongoing, true, {death_evidence_sql('d')}, {fingerprint_sql('d')}, false
FROM ({death_events_sql(f"(SELECT * FROM subjects WHERE {where})")}) d
WHERE d.event_key IN (SELECT event_key FROM adj)"""]
    if "toxicity_episodes" in sources:
        label = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in SOURCE_LABEL.items())
        parts.append(f"""SELECT t.event_key, t.usubjid, CASE t.term {label} END, t.term, t.onset_day,
       t.end_day, t.grade, t.duration_days, t.ongoing, true, NULL, {fingerprint_sql('t')}, false
FROM (SELECT event_key, usubjid, syndrome, onset_day, {EPISODE_END_DAY} AS end_day,
             {EPISODE_GRADE} AS grade, duration_days, ongoing, upper(syndrome) AS term
      FROM toxicity_episodes WHERE {where} AND event_key IN (SELECT event_key FROM adj)) t""")
    if "lab_toxicity" in sources:
        parts.append(f"""SELECT l.event_key, l.usubjid, 'lab', l.term, l.onset_day, l.end_day, l.grade, l.duration_days,
       l.ongoing, false, {lab_evidence_sql('l.term', 'l.grade', 'l.onset_day', 'l.from_day')}, {fingerprint_sql('l')},
       false
FROM (SELECT k.event_key, k.usubjid, k.term, k.from_day, r.day AS onset_day, max(r.grade) AS grade,
             NULL::INTEGER AS end_day, NULL::INTEGER AS duration_days, NULL::BOOLEAN AS ongoing
      FROM (SELECT event_key, adj_usubjid AS usubjid, regexp_extract(event_key, '{LAB_EVENT_KEY}', 1) AS term,
                   TRY_CAST(regexp_extract(event_key, '{LAB_EVENT_KEY}', 2) AS INTEGER) AS from_day
            FROM adj WHERE regexp_matches(event_key, '{LAB_EVENT_KEY}')) k
      JOIN lab_toxicity r ON r.usubjid = k.usubjid AND upper(r.lbtestcd) = k.term AND r.day >= k.from_day
      WHERE r.{where.replace(' AND ', ' AND r.')} AND r.grade IS NOT NULL
      GROUP BY k.event_key, k.usubjid, k.term, k.from_day, r.day
      QUALIFY row_number() OVER (PARTITION BY k.event_key ORDER BY r.day) = 1) l""")
    return "\nUNION ALL\n".join(parts)


def decision_ctes(sources: frozenset[str]) -> str:
    """CTEs ``review`` (one row per candidate or adjudicated event, with its decision in force) and ``dec``
    (per subject). Needs $studyid, $data_cut and :func:`adjudication_params`; ``sources``: those of
    :data:`EVENT_SOURCES` the database holds."""
    unnest = ",\n    ".join(f"unnest(${p}::VARCHAR[]) AS {p}" for p in _ADJ_FIELDS)
    return f"""adj_raw AS (SELECT {unnest}),
adj AS (SELECT adj_key AS event_key, adj_usubjid, adj_decision AS decision, adj_fp AS adjudicated_fingerprint,
               adj_reviewer AS reviewer, adj_at AS decided_at, adj_rationale AS rationale, adj_rule AS adj_rule_id,
               adj_cut AS decided_on_cut FROM adj_raw),
rv_subj AS (SELECT usubjid, cohort, dose_level, infused, death_day, last_known_alive_day, status FROM subjects
            WHERE studyid = $studyid AND data_cut = $data_cut),
-- the last cohort and dose level known for a subject (any cut this query can see), for a decided subject
-- who is no longer in the cut (e.g. the DM row quarantined on reload)
rv_known AS (SELECT usubjid, arg_max(cohort, data_cut) AS cohort, arg_max(dose_level, data_cut) AS dose_level
             FROM (SELECT usubjid, data_cut, cohort, dose_level FROM subjects WHERE studyid = $studyid
                   UNION ALL
                   SELECT usubjid, data_cut, cohort, dose_level FROM dlt_evaluability WHERE studyid = $studyid)
             GROUP BY usubjid),
rv_cand AS (SELECT * FROM dlt_candidates WHERE studyid = $studyid AND data_cut = $data_cut),
-- when the cut was last loaded: a decision recorded after it was made on the events as they now stand
rv_loaded AS (SELECT max(loaded_at) AS loaded_at FROM studies WHERE studyid = $studyid AND data_cut = $data_cut),
rv_event AS ({_decided_events(sources)}),
review_rows AS (
  SELECT c.usubjid, c.cohort, c.dose_level, c.event_key, c.source, c.rule_id, c.reason, c.term, c.onset_day,
         c.end_day, c.grade, c.duration_days, c.ongoing, c.in_window, c.evidence, c.event_fingerprint,
         true AS screened, true AS event_present,
         a.decision, a.reviewer, a.decided_at, a.rationale, a.decided_on_cut, a.adjudicated_fingerprint
  FROM rv_cand c LEFT JOIN adj a USING (event_key)
  UNION ALL
  SELECT a.adj_usubjid, coalesce(s.cohort, k.cohort, $lost_label), coalesce(s.dose_level, k.dose_level, $lost_label),
         a.event_key, e.source,
         a.adj_rule_id, CASE WHEN a.decision IN ('added', 'withdrawn') THEN 'Added by the committee'
                             ELSE 'No longer meets a screening rule' END,
         e.term, e.onset_day, e.end_day, e.grade, e.duration_days, e.ongoing,
         CASE WHEN NOT e.window_applies THEN true  -- a cytopenia rule carries its own lab period
              WHEN e.event_key IS NOT NULL
              THEN {event_in_window_sql('e', 's')} END,
         CASE WHEN s.usubjid IS NULL THEN 'subject not in this data cut (no DM row loaded: see the quarantine)'
              WHEN e.event_key IS NULL THEN 'event not in this data cut'
              WHEN e.evidence IS NOT NULL THEN e.evidence
              ELSE coalesce(e.term, 'AE') || ' grade ' || coalesce(CAST(e.grade AS VARCHAR), '?') || ' on days '
                   || coalesce(CAST(e.onset_day AS VARCHAR), '?') || '-'
                   || CASE WHEN e.ongoing THEN 'ongoing' ELSE coalesce(CAST(e.end_day AS VARCHAR), '?') END END,
         e.event_fingerprint, false, e.event_key IS NOT NULL,
         a.decision, a.reviewer, a.decided_at, a.rationale, a.decided_on_cut, a.adjudicated_fingerprint
  FROM adj a LEFT JOIN rv_subj s ON s.usubjid = a.adj_usubjid
  LEFT JOIN rv_known k ON k.usubjid = a.adj_usubjid
  LEFT JOIN rv_event e USING (event_key)
  WHERE a.event_key NOT IN (SELECT event_key FROM rv_cand)
    -- a subject absent from the cut keeps the decisions made on this or an earlier cut (not later ones:
    -- the subject may not have been enrolled yet at an earlier cut); only a reader of every site can tell a
    -- subject gone from the cut from one at a site it does not see
    AND (s.usubjid IS NOT NULL
         OR ($show_lost::BOOLEAN AND TRY_CAST(a.decided_on_cut AS DATE) <= $data_cut::DATE))),
review_flags AS (
  SELECT *,
         CASE WHEN decision IS NULL OR decision = 'withdrawn' THEN false
              -- gone from the cut, or no longer screened: re-reviewed once decided again after the cut's load
              WHEN NOT event_present OR (NOT screened AND decision <> 'added')
              THEN coalesce(TRY_CAST(decided_at AS TIMESTAMP) <= (SELECT loaded_at FROM rv_loaded), true)
              ELSE NOT {same_event_sql('adjudicated_fingerprint', 'event_fingerprint')} END AS needs_rereview
  FROM review_rows),
review AS (
  SELECT *,
         CASE WHEN (decision IS NULL OR decision = 'withdrawn') AND screened AND NOT coalesce(in_window, false)
                THEN 'outside DLT window'
              WHEN decision IS NULL THEN 'pending'
              WHEN decision = 'withdrawn' AND screened THEN 'pending (earlier decision withdrawn)'
              WHEN decision = 'withdrawn' THEN 'withdrawn'
              WHEN NOT event_present AND needs_rereview THEN 'event no longer in the data: re-review'
              WHEN NOT event_present THEN decision || ' (event no longer in the data, decided again since)'
              WHEN NOT screened AND decision <> 'added' AND needs_rereview THEN 'event no longer screened, re-review'
              WHEN NOT screened AND decision <> 'added' THEN decision || ' (event no longer screened, decided again since)'
              WHEN needs_rereview THEN decision || '; event changed since the decision, re-review'
              ELSE decision END AS status,
         coalesce(decision IN (SELECT unnest($dlt_decisions::VARCHAR[])), false) AS counts_as_dlt,
         screened AND coalesce(in_window, false)
           AND (decision IS NULL OR decision = 'withdrawn' OR (decision = 'rejected' AND needs_rereview)) AS pending
  FROM review_flags),
dec AS (
  SELECT usubjid, bool_or(counts_as_dlt) AS dlt_confirmed,
         count(*) FILTER (WHERE screened AND in_window) AS candidates_in_window,
         count(*) FILTER (WHERE pending) AS pending_in_window,
         count(*) FILTER (WHERE needs_rereview) AS rereview_in_window
  FROM review GROUP BY usubjid)"""


def _window_params(reader) -> dict:
    """The DLT window the cut was derived with (from dlt_evaluability), else the default 0-28."""
    import pandas as pd  # pages only: a load passes its config

    end = reader.scalar("SELECT max(window_end_day) FROM dlt_evaluability")
    return {"win_start": DLT_WINDOW_START_DAY,
            "win_end": int(end) if end is not None and not pd.isna(end) else DLT_WINDOW_END_DAY}


def decision_params(reader, store: ReviewStore | None, config: dict | None = None) -> dict:
    p = {"studyid": reader.scope.studyid, "data_cut": reader.scope.data_cut}
    if config is not None:
        p["win_start"], p["win_end"] = dlt_window(config)
    else:
        p.update(_window_params(reader))
    p.update(adjudication_params(store, reader.scope.studyid, reader.scope.data_cut))
    p["show_lost"] = bool(reader.scope.all_sites)
    return p


REVIEW_COLUMNS = ["event_key", "usubjid", "cohort", "dose_level", "source", "rule_id", "reason", "term", "onset_day",
                  "end_day", "grade", "duration_days", "ongoing", "in_window", "evidence", "event_fingerprint",
                  "screened", "decision", "reviewer", "decided_at", "rationale", "decided_on_cut",
                  "adjudicated_fingerprint", "needs_rereview", "status", "counts_as_dlt", "pending"]


def review_table(reader, store: ReviewStore | None, config: dict | None = None) -> pd.DataFrame:
    """Each screened candidate and each adjudicated event of the cut with the decision in force, its reviewer,
    time and rationale, ``needs_rereview`` and a plain ``status``; pending first, then by subject and onset."""
    sql = f"WITH {decision_ctes(event_sources(reader))} SELECT {', '.join(REVIEW_COLUMNS)} FROM review " \
          "ORDER BY pending DESC, needs_rereview DESC, usubjid, onset_day NULLS LAST, event_key"
    return reader.sql(sql, decision_params(reader, store, config))


def in_previous_review(reader, store: ReviewStore | None) -> set[str]:
    """The event keys the previous cut's DLT review listed (``reader.scope.previous_cut``; empty without one): its
    screened candidates and the events with a decision in force at that cut. An event the committee added is never
    a candidate, so "new since the previous cut" must not be judged on the candidates alone."""
    prev_cut = reader.scope.previous_cut
    if prev_cut is None:
        return set()
    keys = set(reader.sql("SELECT event_key FROM prev_dlt_candidates")["event_key"])
    if store is not None:
        keys |= {r["event_key"] for r in store.latest_adjudications(reader.scope.studyid, as_of_cut=prev_cut)}
    return keys


def record_decision(store: ReviewStore, reader, event_key: str, decision: str, rationale: str,
                    reviewer: str) -> int:
    """Append one committee decision after checking it against the current cut; returns the new row id.

    'confirmed' / 'rejected' need a screened candidate (or an earlier decision on the key); 'added' needs an
    AE of the cut that is not already a candidate, nor the reported AE of a CRS/ICANS episode that is one or is
    decided; 'withdrawn' needs a decision in force to take back.
    """
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)}, got {decision!r}")
    if not reviewer or not str(reviewer).strip():
        raise ValueError("a decision needs a reviewer")
    if not rationale or not str(rationale).strip():
        raise ValueError("a decision needs a rationale")
    import pandas as pd  # a page's decision: the review table is a DataFrame

    rows = review_table(reader, store)
    row = rows[rows["event_key"] == event_key]
    current = row.iloc[0] if len(row) else None
    usubjid, rule_id, fingerprint = None, None, None
    if decision == "added":
        if current is not None and bool(current["screened"]):
            raise ValueError(f"{event_key} is already a screened candidate: confirm it instead of adding it")
        ae = reader.sql("SELECT usubjid, " + ae_fingerprint_sql("a") + " AS fp FROM adverse_events a WHERE event_key = $k",
                        {"k": event_key})
        if ae.empty:
            raise ValueError(f"no adverse event {event_key!r} in data cut {reader.scope.data_cut}")
        # a reported CRS/ICANS AE and the episode derived for it are one clinical event (docs/dlt.md)
        episodes = set(reader.sql("SELECT event_key FROM toxicity_episodes WHERE ae_event_key = $k", {"k": event_key})
                       ["event_key"]) if reader.has_tables("toxicity_episodes") else set()
        decided = rows["decision"].notna() & (rows["decision"] != "withdrawn")
        twin = sorted(set(rows.loc[rows["screened"].astype(bool) | decided, "event_key"]) & episodes)
        if twin:
            raise ValueError(f"{event_key} is the reported AE of episode {twin[0]}, already a candidate or decided: "
                             f"one clinical event, decide on {twin[0]}")
        usubjid, fingerprint = ae.at[0, "usubjid"], ae.at[0, "fp"]
    else:
        if current is None:
            raise ValueError(f"{event_key!r} is not a DLT candidate or adjudicated event in data cut "
                             f"{reader.scope.data_cut}")
        if decision == "withdrawn" and (current["decision"] is None or pd.isna(current["decision"])
                                        or current["decision"] == "withdrawn"):
            raise ValueError(f"{event_key} has no decision in force to withdraw")
        if decision in ("confirmed", "rejected") and not bool(current["screened"]) \
                and current["decision"] not in ("confirmed", "rejected"):
            raise ValueError(f"{event_key} is not a screened candidate; use 'added' for a DLT the rules missed")
        usubjid = current["usubjid"]
        rule_id = None if pd.isna(current["rule_id"]) else current["rule_id"]
        fingerprint = None if pd.isna(current["event_fingerprint"]) else current["event_fingerprint"]
    return store.add_adjudication(studyid=reader.scope.studyid, event_key=event_key, usubjid=str(usubjid),
                                  rule_id=rule_id, decision=decision, rationale=rationale,
                                  reviewer=str(reviewer).strip(), data_cut=str(reader.scope.data_cut),
                                  event_fingerprint=fingerprint)


def dlt_counts(reader, store: ReviewStore | None) -> pd.DataFrame:
    """Per cohort (and a last row with cohort NULL for all): subjects, confirmed DLT events, subjects with a
    confirmed DLT, pending and rejected candidates and decisions needing re-review."""
    sql = f"""WITH {decision_ctes(event_sources(reader))},
per AS (
  SELECT s.cohort, count(DISTINCT s.usubjid) FILTER (WHERE s.present) AS subjects,
         count(r.event_key) FILTER (WHERE r.counts_as_dlt) AS confirmed,
         count(DISTINCT r.usubjid) FILTER (WHERE r.counts_as_dlt) AS subjects_with_dlt,
         count(r.event_key) FILTER (WHERE r.pending) AS pending,
         count(r.event_key) FILTER (WHERE r.decision = 'rejected' AND NOT r.needs_rereview) AS rejected,
         count(r.event_key) FILTER (WHERE r.needs_rereview) AS needs_rereview
  FROM (SELECT usubjid, cohort, true AS present FROM rv_subj
        UNION ALL  -- decided subjects no longer in the cut: their decisions still count
        SELECT DISTINCT usubjid, cohort, false FROM review WHERE usubjid NOT IN (SELECT usubjid FROM rv_subj)) s
  LEFT JOIN review r USING (usubjid)
  GROUP BY GROUPING SETS ((s.cohort), ()))
SELECT * FROM per ORDER BY cohort IS NULL, cohort"""
    return reader.sql(sql, decision_params(reader, store))

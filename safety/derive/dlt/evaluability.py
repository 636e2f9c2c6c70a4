"""DLT evaluability: who counts in the denominator of a dose-finding or stopping rule.

A subject is evaluable when infused and either followed through the DLT window or with a DLT the committee
counts (decisions applied by :mod:`safety.derive.dlt.decisions`). The facts (infusion, follow-up, death, CRS
and ICANS grades in the window) are stored in ``dlt_evaluability`` at load; :func:`live_evaluability` applies
the decisions in force now to those stored facts.

A subject with a DLT decision in force whom the cut does not hold, or holds without an infusion (records
quarantined, or not delivered), is counted as infused and evaluable with that DLT, and named so
(:data:`COUNTED_ON_DECISION`); without one, such a subject is not counted anywhere.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from safety.derive.dlt.decisions import decision_ctes, decision_params, event_sources
from safety.derive.dlt.events import (FATAL_AE, death_day_text_sql, death_in_window_sql, in_window_sql,
                                      latest_onset_sql)
from safety.review.store import ReviewStore

if TYPE_CHECKING:
    import pandas as pd

# follow_up_status of a subject the cut does not hold (DM row quarantined, or not delivered) who is counted because a
# committee DLT decision on them is in force (see COUNTED_ON_DECISION)
NOT_IN_CUT = "not in this data cut"
# follow_up_status of a subject in the cut with no infusion in it (EX rows quarantined or missing, no RFXSTDTC) who is
# counted because a committee DLT decision on them is in force
NO_INFUSION_IN_CUT = "no infusion in this data cut"
# A subject whose records this cut does not hold (or whose infusion it does not hold) is counted in the DLT figures
# only while a DLT decision of the committee (confirmed or added) on them is in force: then as infused and evaluable
# with that DLT, in every place that counts DLT subjects (DltCounts, the overview, the DLT review, the stopping rules,
# the packet's DLT summary), since a DLT once decided must not leave a stopping rule because of a data problem; once
# no DLT decision of theirs counts, they are in none of them, as in the overview's other counts. docs/dlt.md.
COUNTED_ON_DECISION = (NOT_IN_CUT, NO_INFUSION_IN_CUT)

# a subject with an in-window candidate still awaiting the committee has not been shown to be without a DLT
_WITHOUT_DLT = "CASE WHEN coalesce(d.pending_in_window, 0) > 0 THEN '' ELSE ' without DLT' END"
_DLT = "coalesce(d.dlt_confirmed, false)"
# counted as infused: infused at the cut, or a DLT decision in force (a DLT presupposes an infusion)
_COUNTED = f"(f.infused OR {_DLT})"
_ON_DECISION = "counted as infused with the committee''s DLT decision until it is re-reviewed"

# Evaluability from the facts (f: subjects at the cut or stored dlt_evaluability) and decisions (d: dec).
EVALUATION_SELECT = f"""
  f.studyid, f.data_cut, f.usubjid, f.cohort, f.dose_level, {_COUNTED} AS infused,
  {_COUNTED} AND ({_DLT} OR f.followed_through_window) AS evaluable,
  CASE WHEN f.follow_up_status = '{NOT_IN_CUT}' AND {_DLT}
         THEN 'not in this data cut (no DM row loaded: quarantined or not delivered); {_ON_DECISION}'
       WHEN f.follow_up_status = '{NOT_IN_CUT}' THEN 'not in this data cut: not counted'
       WHEN NOT f.infused AND {_DLT}
         THEN 'no infusion in this data cut (no EX infusion or RFXSTDTC loaded: see the quarantine); {_ON_DECISION}'
       WHEN NOT f.infused THEN 'not infused'
       WHEN {_DLT} THEN 'DLT candidate confirmed'
       WHEN f.followed_through_window THEN 'followed through day ' || CAST(f.window_end_day AS VARCHAR)
       ELSE CASE WHEN f.followed_through_day IS NULL THEN 'no follow-up recorded after infusion'
                 -- or a death of unknown day (no date in DM, DS or the fatal AE), after the last day known alive
                 WHEN f.death_day <= f.window_end_day OR (f.death_day IS NULL AND f.follow_up_status = 'died')
                   THEN 'died on ' || {death_day_text_sql('f.death_day', 'f.followed_through_day')} || {_WITHOUT_DLT}
                 WHEN f.follow_up_status = 'discontinued'
                   THEN 'discontinued on day ' || CAST(f.followed_through_day AS VARCHAR) || ' of '
                        || CAST(f.window_end_day AS VARCHAR) || {_WITHOUT_DLT}
                 ELSE 'followed to day ' || CAST(f.followed_through_day AS VARCHAR) || ' of '
                      || CAST(f.window_end_day AS VARCHAR) || ' so far' END
            || CASE WHEN coalesce(d.pending_in_window, 0) > 0 THEN '; DLT candidate pending adjudication' ELSE '' END
  END AS reason,
  f.followed_through_day, f.window_end_day, f.followed_through_window, f.death_day,
  {_DLT} AS dlt_confirmed,
  coalesce(d.candidates_in_window, 0) AS candidates_in_window,
  coalesce(d.pending_in_window, 0) AS pending_in_window,
  {_COUNTED} AND ({_DLT} OR f.followed_through_window
                  OR coalesce(d.candidates_in_window, 0) > 0) AS evaluable_if_candidates_confirmed,
  CASE WHEN NOT f.infused AND {_DLT} AND f.follow_up_status <> '{NOT_IN_CUT}' THEN '{NO_INFUSION_IN_CUT}'
       ELSE f.follow_up_status END AS follow_up_status,
  coalesce(d.rereview_in_window, 0) AS rereview_in_window,
  f.crs_max_grade_window, f.icans_max_grade_window, f.treatment_related_death
"""

# the facts of a subject with a DLT decision in force whose subject the cut does not hold (DM row quarantined, dropped
# from the delivery), in the columns of FACT_COLUMNS: no infusion, follow-up or event in this cut, the last cohort and
# dose level known for them (rv_known); from the decisions in force when it runs (at load, and again on every read)
_GONE_FACTS = f"""SELECT $studyid AS studyid, $data_cut::DATE AS data_cut, d.usubjid,
       coalesce(k.cohort, $lost_label) AS cohort, coalesce(k.dose_level, $lost_label) AS dose_level,
       false AS infused, NULL::INTEGER AS followed_through_day, $win_end::INTEGER AS window_end_day,
       false AS followed_through_window, NULL::INTEGER AS death_day, '{NOT_IN_CUT}' AS follow_up_status,
       0 AS crs_max_grade_window, 0 AS icans_max_grade_window, false AS treatment_related_death
FROM dec d LEFT JOIN rv_known k USING (usubjid)
WHERE d.dlt_confirmed AND d.usubjid NOT IN (SELECT usubjid FROM rv_subj)"""

# the facts EVALUATION_SELECT reads, and the columns of dlt_evaluability that hold them for a subject in the cut
FACT_COLUMNS = ("studyid", "data_cut", "usubjid", "cohort", "dose_level", "infused", "followed_through_day",
                "window_end_day", "followed_through_window", "death_day", "follow_up_status", "crs_max_grade_window",
                "icans_max_grade_window", "treatment_related_death")


def _in_window(alias: str, before_dosing: str = "false") -> str:
    """The event ``alias`` (onset_day, end_day) of subject ``x`` lies in the DLT window, as screening decides.
    The leading condition on the onset alone changes no answer; it is the part DuckDB can push into the scans below
    the join (the AEs' CRS/ICANS terms are otherwise matched for every AE of the cut)."""
    return (f"({alias}.onset_day BETWEEN $win_start AND $win_end OR {alias}.onset_day IS NULL) AND "
            + in_window_sql(f"{alias}.onset_day", latest_onset_sql(f"{alias}.end_day", "x"), "x.infused",
                            before_dosing))


def evaluability_sql(source_ctes: str, sources: frozenset[str]) -> str:
    """SELECT of dlt_evaluability rows for the cut over the screening's source CTEs (``subj``, ``ae``,
    ``syn_CRS``, ``syn_ICANS``); needs $win_start/$win_end and the adjudication parameters (``sources``: see
    :func:`decision_ctes`)."""
    return f"""WITH {source_ctes},
{decision_ctes(sources)},
facts AS (
  SELECT s.studyid, s.data_cut, s.usubjid, s.cohort, s.dose_level, coalesce(s.infused, false) AS infused,
         -- follow-up is counted from day 0: a subject never infused has none, whatever the other dates say
         CASE WHEN s.infused THEN least(s.last_known_alive_day, $win_end) END AS followed_through_day,
         $win_end AS window_end_day,
         coalesce(s.infused AND s.last_known_alive_day >= $win_end, false) AS followed_through_window,
         s.death_day, s.status AS follow_up_status,
         coalesce(crs.g, 0) AS crs_max_grade_window, coalesce(icans.g, 0) AS icans_max_grade_window,
         coalesce(trd.d, false) AS treatment_related_death
  FROM subj s
  LEFT JOIN (SELECT e.usubjid, max(e.grade) AS g FROM syn_CRS e JOIN subj x USING (usubjid)
             WHERE {_in_window('e')} GROUP BY e.usubjid) crs USING (usubjid)
  LEFT JOIN (SELECT e.usubjid, max(e.grade) AS g FROM syn_ICANS e JOIN subj x USING (usubjid)
             WHERE {_in_window('e')} GROUP BY e.usubjid) icans USING (usubjid)
  -- a treatment-related death: a related fatal AE, or a non-relapse death from DM, DS or AE (table deaths) on a day
  -- in the window; a death of unknown day is in it unless the subject was known alive after the window (it cannot be
  -- placed earlier than that day): a death is never left out of the rule for want of a date
  LEFT JOIN (SELECT a.usubjid, true AS d FROM ae a JOIN subj x USING (usubjid)
             WHERE {FATAL_AE} AND coalesce(a.related, false) AND {_in_window('a', 'a.ended_before_infusion')}
             UNION SELECT dd.usubjid, true FROM deaths dd JOIN subj x USING (usubjid)
             WHERE dd.studyid = $studyid AND dd.data_cut = $data_cut AND dd.treatment_related
               AND {death_in_window_sql('dd.death_day', 'x.last_known_alive_day')}) trd USING (usubjid)
  UNION ALL
  -- a subject with a DLT decision in force who is no longer in the cut (DM row quarantined, dropped from
  -- the delivery) stays counted as the committee decided until someone records a new decision
  {_GONE_FACTS})
SELECT {EVALUATION_SELECT} FROM facts f LEFT JOIN dec d USING (usubjid)"""


def live_evaluability(reader, store: ReviewStore | None, config: dict | None = None) -> pd.DataFrame:
    """dlt_evaluability rows recomputed from the stored follow-up facts and the decisions in force now."""
    return reader.sql(*_live_query(reader, store, config))


def live_evaluability_arrays(reader, store: ReviewStore | None, config: dict | None,
                             columns: tuple[str, ...]) -> dict:
    """The ``columns`` of :func:`live_evaluability`, one NumPy array each in no set order (NULL as NaN or None:
    :meth:`StudyReader.arrays`), for the stopping rules a load derives: no pandas, no Python value per cell and
    no row's reason in words, on the load's last path."""
    return reader.arrays(*_live_query(reader, store, config, columns))


def _live_query(reader, store: ReviewStore | None, config: dict | None,
                columns: tuple[str, ...] | None = None) -> tuple[str, dict]:
    """The stored facts of the cut's subjects with the decisions in force now. What a load derived from its own
    decisions is not read back: whether a subject counts as infused (the cut's subjects table says whether they
    were) and who is counted though the cut does not hold them (:data:`_GONE_FACTS`, from the decisions now), so a
    decision withdrawn, or recorded, after the load counts the same everywhere at once. Every column in subject
    order, or only ``columns`` in no set order."""
    facts = ", ".join(f"f.{c}" for c in FACT_COLUMNS if c not in ("infused", "follow_up_status"))
    rows = f"SELECT {EVALUATION_SELECT} FROM facts f LEFT JOIN dec d USING (usubjid)"
    sql = (f"WITH {decision_ctes(event_sources(reader))},\n"
           f"facts AS (SELECT {facts}, coalesce(s.infused, false) AS infused, s.status AS follow_up_status\n"
           "           FROM dlt_evaluability f JOIN rv_subj s USING (usubjid)\n"
           f"           UNION ALL BY NAME\n{_GONE_FACTS})\n"
           + (f"{rows} ORDER BY f.usubjid" if columns is None
              else f"SELECT {', '.join(columns)} FROM ({rows})"))
    return sql, decision_params(reader, store, config)

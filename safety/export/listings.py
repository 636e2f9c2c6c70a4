"""Committee listings: one row per event, sorted by subject and onset, in the ICH E3 by-patient shape.

``build_listing(reader, name, store=None)`` returns a DataFrame with attrs (title, reference, notes).
Every event row carries ``new_since_previous_cut``: its key is absent from the previous data cut
(TRUE for every row at a study's first cut). A listing whose derived table is not in the database file
(written before that derivation existed) or is empty comes back empty with a note saying so, never as an error.
"""
from __future__ import annotations


import pandas as pd

from safety.access.reader import StudyReader
from safety.core.config import dlt_window
from safety.core.vocabulary import fatal_ae
from safety.derive.dlt.decisions import in_previous_review
from safety.derive.dlt.events import death_event_key_sql, in_window_sql, latest_onset_sql
from safety.export import common as c
from safety.export import outcomes as outcome_outputs
from safety.review.dlt_status import REPORTED_AS_SQL, on_reported_aes

SUBJ_CTE = ("subj AS (SELECT usubjid, siteid AS site, cohort, dose_level, age, sex, infusions, "
            "last_known_alive_day, death_day, infused FROM subjects)")

AE_COLUMNS = [
    "site", "cohort", "dose_level", "usubjid", "age", "sex", "aeseq", "event_key", "verbatim_term",
    "preferred_term", "system_organ_class", "onset_date", "onset_date_imputed", "onset_day", "end_date",
    "end_date_imputed", "end_day", "ongoing",
    "duration_days", "grading_system", "grade", "severity", "serious", "serious_criteria", "causality",
    "related", "action_taken", "outcome", "treatment_emergent", "in_dlt_window", "adjudicated_dlt",
    "tocilizumab_during_event", "corticosteroid_during_event", "new_since_previous_cut",
]


def _dlt_window(reader: StudyReader, live=None) -> tuple[int, int]:
    return live.window if live is not None else dlt_window(c.study_settings(reader))


def _live(reader: StudyReader, store, live=None):
    """The DLT state with the decisions in force now (the packet's, when given; else the same call the app
    makes); None in a file written before the DLT derivations existed."""
    return live if live is not None else c.current_dlt_status(reader, store)


def _ae_sql(reader: StudyReader, where: str = "TRUE") -> str:
    # A medication counts for an event when it started during the event, or was recorded as running
    # at its onset; a medication without an end date counts from its start day only (single doses).
    # Rows in onset order by date: a subject never infused has no onset day (day 0 is the infusion).
    new = c.new_ae_flag_sql(reader, "a")
    return f"""
WITH {SUBJ_CTE},
ev AS (SELECT a.*, coalesce(a.end_day, a.onset_day + a.duration_days - 1, a.onset_day) AS ev_end
       FROM adverse_events a WHERE {where}),
med AS (SELECT e.event_key,
          bool_or(m.med_class = 'tocilizumab') AS toci,
          bool_or(m.med_class = 'corticosteroid') AS steroid
        FROM ev e JOIN medications m ON m.usubjid = e.usubjid
         AND m.med_class IN ('tocilizumab', 'corticosteroid')
         AND m.start_day <= e.ev_end AND coalesce(m.end_day, m.start_day) >= e.onset_day
        GROUP BY e.event_key)
SELECT sj.site, sj.cohort, sj.dose_level, a.usubjid, sj.age, sj.sex, a.aeseq, a.event_key,
  a.aeterm AS verbatim_term, a.aedecod AS preferred_term, a.aebodsys AS system_organ_class,
  a.aest_date AS onset_date, {c.IMPUTED_DATE_SQL.format(flag="a.aest_date_flag")} AS onset_date_imputed, a.onset_day,
  a.aeen_date AS end_date, {c.IMPUTED_DATE_SQL.format(flag="a.aeen_date_flag")} AS end_date_imputed, a.end_day, a.ongoing,
  a.duration_days,
  a.grading_system, a.aetoxgr AS grade, a.aesev AS severity, a.aeser AS serious,
  nullif(concat_ws(', ',
    CASE WHEN upper(a.aesdth) = 'Y' THEN 'death' END,
    CASE WHEN upper(a.aeslife) = 'Y' THEN 'life-threatening' END,
    CASE WHEN upper(a.aeshosp) = 'Y' THEN 'hospitalisation' END,
    CASE WHEN upper(a.aesdisab) = 'Y' THEN 'disability' END,
    CASE WHEN upper(a.aescong) = 'Y' THEN 'congenital anomaly' END,
    CASE WHEN upper(a.aesmie) = 'Y' THEN 'medically important' END), '') AS serious_criteria,
  a.aerel AS causality, a.related, a.aeacn AS action_taken, a.aeout AS outcome, a.treatment_emergent,
  {in_window_sql('a.onset_day', latest_onset_sql('a.end_day', 'sj'), 'sj.infused', 'a.ended_before_infusion')}
    AS in_dlt_window,
  coalesce(med.toci, FALSE) AS tocilizumab_during_event,
  coalesce(med.steroid, FALSE) AS corticosteroid_during_event,
  {new} AS new_since_previous_cut
FROM ev a LEFT JOIN subj sj USING (usubjid) LEFT JOIN med USING (event_key)
ORDER BY a.usubjid, a.aest_date NULLS LAST, a.onset_day NULLS LAST, a.aeseq
"""


def _with_adjudication(df: pd.DataFrame, reader: StudyReader, store, key: str = "event_key", live=None
                       ) -> pd.DataFrame:
    """``adjudicated_dlt`` per event from the decisions in force now ('' for events that are not DLT candidates)."""
    live = _live(reader, store, live)
    labels = live.adjudicated_dlt() if live is not None else {}
    if labels and reader.has_tables("toxicity_episodes"):
        links = reader.sql(REPORTED_AS_SQL)
        labels = on_reported_aes(labels, dict(zip(links["ae_event_key"], links["episodes"].map(list))))
    df = df.copy()
    # a dict lookup over the column at once: a loop over Arrow-backed strings costs seconds at 100k events
    df["adjudicated_dlt"] = (pd.Series(df[key].to_numpy(dtype=object), index=df.index).map(labels).astype(object).fillna("")
                             if len(df) else pd.Series(dtype="object"))
    return df


def _store_note(store) -> list[str]:
    return [] if store is not None else ["No review store given: committee adjudications are not shown."]


def _new_note(reader: StudyReader) -> str:
    prev = reader.scope.previous_cut
    return (f"New since previous cut = event key absent from the data cut of {prev}." if prev
            else "First data cut of the study: every event is new.")


def listing_ae(reader: StudyReader, store=None, *, where: str = "TRUE", name="ae", title=None, reference=None,
               live=None):
    live = _live(reader, store, live)
    ws, we = _dlt_window(reader, live)
    df = reader.sql(_ae_sql(reader, where), {"win_start": ws, "win_end": we})
    df = _with_adjudication(df, reader, store, live=live)[AE_COLUMNS]
    notes = [
        f"Days from first CAR infusion (day 0). DLT window: day {ws} to day {we}.",
        "Onset/end date imputed: the site delivered a partial date (year and month, or year only); the listed "
        "date is the one its study day was computed from, the day (or the month and day) filled in as docs/input-format.md says "
        "for partial dates.",
        c.ae_grading_note(reader),
        "Ongoing: no end on or before the data cut. Duration runs to the end, else to the subject's death, else "
        "to the data cut: an AE ongoing in a subject who died ran until the death.",
        "Tocilizumab/Steroids: the medication started during the event or was recorded as running at its onset.",
        _new_note(reader),
    ] + _store_note(store)
    return c.finish(df, name=name, title=title or "Listing of all adverse events by subject",
                    reference=reference or "ICH E3 12.2.4 / 16.2.7", kind="listing", notes=notes)


def listing_sae(reader, store=None, live=None):
    return listing_ae(reader, store, where="upper(aeser) = 'Y'", name="sae",
                      title="Listing of serious adverse events", reference="ICH E3 14.3.2; FDA STF T10", live=live)


DEATH_COLUMNS = ["site", "cohort", "dose_level", "usubjid", "age", "sex", "event_key", "infusions",
                 "death_date", "death_day", "death_cause", "cause_category", "sources", "fatal_ae_terms",
                 "last_known_alive_day", "new_since_previous_cut"]


def listing_deaths(reader, store=None):
    """Every death of the derived ``deaths`` table (DM, DS and fatal AEs), the deaths the app shows."""
    title, ref = "Listing of deaths", "FDA STF T9; ICH E3 14.3.2"
    if not reader.has_tables("deaths"):
        return _missing("deaths", DEATH_COLUMNS, title, ref, "deaths")
    new = c.new_flag_sql(reader, "d.usubjid", "deaths", "usubjid") if c.has_previous(reader) else "TRUE"
    df = reader.sql(f"""
WITH fatal AS (
  SELECT usubjid, string_agg(coalesce(aedecod, '?') || ' / ' || coalesce(aeterm, '?'), '; ' ORDER BY aeseq) AS terms
  FROM adverse_events
  WHERE {fatal_ae('')}
  GROUP BY usubjid)
SELECT s.siteid AS site, s.cohort, s.dose_level, d.usubjid, s.age, s.sex,
  {death_event_key_sql('d.usubjid')} AS event_key,
  s.infusions, d.death_date, d.death_day, d.delivered_cause AS death_cause, d.cause_category, d.sources,
  f.terms AS fatal_ae_terms, s.last_known_alive_day, {new} AS new_since_previous_cut
FROM deaths d LEFT JOIN subjects s USING (usubjid) LEFT JOIN fatal f USING (usubjid)
ORDER BY d.usubjid""")
    return c.finish(df[DEATH_COLUMNS], name="deaths", title=title, reference=ref,
                    notes=["Every death on or before the data cut recorded in DM (DTHDTC), DS (DSDECOD DEATH) or as "
                           "a fatal AE (grade 5, serious criterion 'results in death' or outcome FATAL): the derived "
                           "table deaths, the deaths the app shows. Date: DM, else DS, else the fatal AE's end "
                           "(else onset) date, blank when none gives one (a death of unknown day); day from first "
                           "infusion (day 0). Sources: where the death is recorded "
                           "(DM is named when its date differs from DS). Death cause: as delivered (DS term, else "
                           "DM); cause category from it, else from the fatal AE (safety/data/death_causes.csv).",
                           _new_note(reader)],
                    kind="listing")


DLT_COLUMNS = ["site", "cohort", "dose_level", "usubjid", "event_key", "rule_id", "reason", "term", "source",
               "onset_day", "grade", "duration_days", "ongoing", "in_window", "evidence", "status", "adjudication",
               "adjudicated_dlt", "adjudicated_by", "adjudicated_at", "adjudication_rationale",
               "new_since_previous_cut"]


def _missing(name: str, columns: list[str], title: str, reference: str, table: str, why: str | None = None):
    return c.empty(columns, name=name, title=title, reference=reference, kind="listing",
                   notes=[why or f"Not available: the derived table {table} is not in this database file."])


def listing_dlt(reader, store=None, live=None):
    title, ref = "Listing of dose-limiting toxicity candidates and committee adjudication", "Protocol DLT rules"
    live = _live(reader, store, live)
    if live is None:
        return _missing("dlt", DLT_COLUMNS, title, ref, "dlt_candidates")
    df = live.review.rename(columns={"decision": "adjudication", "reviewer": "adjudicated_by",
                                     "decided_at": "adjudicated_at", "rationale": "adjudication_rationale"})
    # events the committee added that no screening rule flagged
    df.loc[~df["screened"].astype(bool) & (df["adjudication"] == "added"), "source"] = "committee"
    subj = reader.sql(f"WITH {SUBJ_CTE} SELECT usubjid, site FROM subj")
    # a decision in force on a subject no longer in the cut stays listed (site unknown) for a reader of every site;
    # a site-scoped reader cannot tell such a subject from another site's (docs/dlt.md), so keeps its sites' alone
    df = df.merge(subj, on="usubjid", how="left" if reader.scope.all_sites else "inner")
    df["new_since_previous_cut"] = ~df["event_key"].isin(in_previous_review(reader, store))  # all new on a first cut
    df = df.sort_values(["usubjid", "onset_day", "event_key"], na_position="last", kind="stable")
    notes = ["One row per candidate event and each event the committee decided on; adjudicated DLT = the decision "
             "in force when the listing was made (Pending: in the DLT window, awaiting a decision; a withdrawn "
             "decision leaves the candidate pending). Status: as the DLT review says it, with the decisions that "
             "need the committee again ('re-review': the event changed, is no longer screened, or is no longer in "
             "the data).", _new_note(reader)] + _store_note(store)
    if df.empty:
        notes.insert(0, "No DLT candidates at this data cut.")
    return c.finish(df.reindex(columns=DLT_COLUMNS), name="dlt", title=title, reference=ref, kind="listing",
                    notes=notes)


EPISODE_FIELDS = ["syndrome", "episode_no", "event_key", "onset_day", "last_symptomatic_day", "duration_days",
                  "max_grade", "max_grade_day", "ongoing", "tocilizumab", "tocilizumab_first_day",
                  "corticosteroid", "corticosteroid_first_day", "anakinra", "icu_level_support", "source",
                  "ae_event_key", "reported_grade"]
EPISODE_COLUMNS = ["site", "cohort", "dose_level", "usubjid"] + EPISODE_FIELDS + ["adjudicated_dlt",
                                                                                  "new_since_previous_cut"]


def listing_crs_icans(reader, store=None, live=None):
    title, ref = "Listing of CRS and ICANS episodes (ASTCT 2019)", "ICH E3 14.3.2; ASTCT consensus (Lee 2019)"
    if not reader.has_tables("toxicity_episodes"):
        return _missing("crs_icans_episodes", EPISODE_COLUMNS, title, ref, "toxicity_episodes")
    fields = ", ".join(f"e.{f}" for f in EPISODE_FIELDS)
    new = c.new_flag_sql(reader, "e.event_key", "toxicity_episodes", "event_key")
    df = reader.sql(f"""
WITH {SUBJ_CTE}
SELECT sj.site, sj.cohort, sj.dose_level, e.usubjid, {fields}, {new} AS new_since_previous_cut
FROM toxicity_episodes e LEFT JOIN subj sj USING (usubjid)
ORDER BY e.usubjid, e.onset_day NULLS LAST, e.syndrome, e.episode_no""")
    df = _with_adjudication(df, reader, store, live=live)
    notes = ["Episodes derived from bedside CRS/ICANS assessments and AE records; grade = maximum ASTCT grade.",
             _new_note(reader)] + _store_note(store)
    if df.empty:
        notes.insert(0, "No CRS or ICANS episodes at this data cut.")
    return c.finish(df[EPISODE_COLUMNS], name="crs_icans_episodes", title=title, reference=ref,
                    kind="listing", notes=notes)


LAB_COLUMNS = ["site", "cohort", "dose_level", "usubjid", "age", "sex", "lbseq", "lbtestcd", "ctcae_term",
               "direction", "lab_date", "day", "value", "unit", "lln", "uln", "baseline_value", "grade",
               "grade_reason", "new_since_previous_cut"]


def _lab_record(a: str = "") -> str:
    """SQL: a graded lab record of a subject as the listings key it from cut to cut: its LBSEQ, or, LBSEQ being
    optional in LB, its test, date and value."""
    p = f"{a}." if a else ""
    return (f"coalesce({p}lbseq::VARCHAR, {p}lbtestcd || '@' || coalesce({p}lab_date::VARCHAR, '') || '='"
            f" || {p}value::VARCHAR)")


def _lab_key(a: str = "") -> str:
    p = f"{a}." if a else ""
    return f"{p}usubjid || '/' || {_lab_record(a)} || '/' || coalesce({p}ctcae_term, '')"


def listing_lab_grade3(reader, store=None):
    title, ref = "Listing of grade 3 or higher laboratory abnormalities (CTCAE)", "ICH E3 14.3.4 / 16.2.8"
    if not reader.has_tables("lab_toxicity"):
        return _missing("lab_grade3", LAB_COLUMNS, title, ref, "lab_toxicity")
    new = c.new_flag_sql(reader, _lab_key("l"), "lab_toxicity", _lab_key())
    df = reader.sql(f"""
WITH {SUBJ_CTE}
SELECT sj.site, sj.cohort, sj.dose_level, l.usubjid, sj.age, sj.sex, l.lbseq, l.lbtestcd, l.ctcae_term,
  l.direction, l.lab_date, l.day, l.value, l.unit, l.lln, l.uln, l.baseline_value, l.grade,
  l.grade_reason, {new} AS new_since_previous_cut
FROM lab_toxicity l LEFT JOIN subj sj USING (usubjid)
WHERE l.grade >= 3
ORDER BY l.usubjid, l.lab_date NULLS LAST, l.day NULLS LAST, l.lbseq, l.ctcae_term""")
    notes = ["Values and limits in SI units. Grades per the study's CTCAE version (see grade reason).",
             "New since previous cut = the (subject, LBSEQ, CTCAE term) was not graded at the previous cut."]
    if df.empty:
        notes.insert(0, "No grade 3 or higher laboratory abnormalities at this data cut.")
    return c.finish(df[LAB_COLUMNS], name="lab_grade3", title=title, reference=ref, kind="listing", notes=notes)


LAB_EPISODE_COLUMNS = ["site", "cohort", "dose_level", "usubjid", "lbtestcd", "ctcae_term", "direction",
                       "first_day", "worst_grade", "worst_day", "worst_value", "unit", "last_day",
                       "days_at_grade3_plus", "n_values", "recovered_day", "ongoing", "new_since_previous_cut"]


def listing_lab_grade3_episodes(reader, store=None):
    """Grade >= 3 lab abnormalities as episodes: one row per run of graded results at grade >= 3 of one CTCAE
    term in one subject, from the first such result to the last before a graded result below 3."""
    title = "Listing of grade 3 or higher laboratory abnormalities as episodes (CTCAE)"
    ref = "ICH E3 14.3.4 / 16.2.8"
    if not reader.has_tables("lab_toxicity"):
        return _missing("lab_grade3_episodes", LAB_EPISODE_COLUMNS, title, ref, "lab_toxicity")
    # A new episode starts at a grade >= 3 result whose previous graded result (same subject and term) was
    # below 3 or absent; ungraded results neither start nor end one. The episode's first result is new when
    # its (subject, LBSEQ, term) was not graded >= 3 at the previous cut. Only a subject's term with a grade >= 3
    # result can hold an episode: the windows sort those rows alone, not every graded result of the cut.
    new = c.new_flag_sql(reader, "e.usubjid || '/' || e.first_record || '/' || e.ctcae_term", "lab_toxicity",
                         _lab_key())
    df = reader.sql(f"""
WITH {SUBJ_CTE},
g AS (SELECT usubjid, ctcae_term, lbtestcd, direction, lbseq, {_lab_record()} AS record, lab_date, day, value, unit,
             grade,
             grade >= 3 AS high,
             coalesce(lag(grade >= 3) OVER w, FALSE) AS prev_high
      FROM lab_toxicity WHERE grade IS NOT NULL AND ctcae_term IS NOT NULL
        AND (usubjid, ctcae_term) IN (SELECT (usubjid, ctcae_term) FROM lab_toxicity WHERE grade >= 3)
      WINDOW w AS (PARTITION BY usubjid, ctcae_term ORDER BY lab_date NULLS LAST, day NULLS LAST, lbseq)),
r AS (SELECT *, sum(CASE WHEN high AND NOT prev_high THEN 1 ELSE 0 END)
                  OVER (PARTITION BY usubjid, ctcae_term ORDER BY lab_date NULLS LAST, day NULLS LAST, lbseq)
                  AS episode_no
      FROM g),
e AS (SELECT usubjid, ctcae_term, episode_no, any_value(lbtestcd) AS lbtestcd, any_value(direction) AS direction,
             min(day) FILTER (WHERE high) AS first_day, max(day) FILTER (WHERE high) AS last_day,
             min(lab_date) FILTER (WHERE high) AS first_date,
             arg_min(record, day) FILTER (WHERE high) AS first_record,
             max(grade) FILTER (WHERE high) AS worst_grade,
             arg_max(day, grade * 100000 - coalesce(day, 0)) FILTER (WHERE high) AS worst_day,
             arg_max(value, grade * 100000 - coalesce(day, 0)) FILTER (WHERE high) AS worst_value,
             any_value(unit) AS unit, count(*) FILTER (WHERE high) AS n_values,
             min(day) FILTER (WHERE NOT high) AS recovered_day
      FROM r WHERE episode_no > 0 GROUP BY usubjid, ctcae_term, episode_no)
SELECT sj.site, sj.cohort, sj.dose_level, e.usubjid, e.lbtestcd, e.ctcae_term, e.direction, e.first_day,
  e.worst_grade, e.worst_day, e.worst_value, e.unit, e.last_day, e.last_day - e.first_day + 1 AS days_at_grade3_plus,
  e.n_values, e.recovered_day, e.recovered_day IS NULL AS ongoing, {new} AS new_since_previous_cut
FROM e LEFT JOIN subj sj USING (usubjid)
ORDER BY e.usubjid, e.first_date NULLS LAST, e.first_day NULLS LAST, e.ctcae_term, e.episode_no""")
    notes = ["One row per episode: consecutive graded results of one CTCAE term at grade >= 3; a graded result "
             "below 3 ends it (recovered day). Days at grade >= 3 = last day at grade >= 3 - first day + 1. "
             "Every value is in the per-value listing (lab_grade3).",
             "Ongoing = no graded result below 3 after the episode by the data cut."]
    if df.empty:
        notes.insert(0, "No grade 3 or higher laboratory abnormalities at this data cut.")
    return c.finish(df[LAB_EPISODE_COLUMNS], name="lab_grade3_episodes", title=title, reference=ref, kind="listing",
                    notes=notes)


AESI_COLUMNS = ["aesi_category", "site", "cohort", "dose_level", "usubjid", "event_key", "term", "source",
                "onset_day", "end_day", "duration_days", "grade", "grading_system", "serious", "related",
                "outcome", "detail", "new_since_previous_cut"]


# Per AESI table (schema registry columns): the grade expression, the day column and the flag selecting rows.
_AESI_TABLES = {
    "icaht": {"grade": "greatest(coalesce(t.early_grade, 0), coalesce(t.late_grade, 0))",
              "day": "first_day_le_500", "flag": None},
    "iec_hs_screen": {"grade": None, "day": "flag_day", "flag": "first_flag"},
}


def _generic_rows(reader, table: str, category: str, grade_min: int | None = None, term=None,
                  day_sql=None) -> pd.DataFrame:
    """AESI rows from a derived table without event keys (icaht, iec_hs_screen), keyed by subject and day.

    ``term(have)`` and ``day_sql(have)`` give SQL for the row's term and day from the table's columns."""
    cols = c.table_columns(table)
    have = set(cols)
    spec = _AESI_TABLES[table]
    grade_sql, day, flag = spec["grade"], spec["day"], spec["flag"]
    term_expr = (term(have) if term else None) or "NULL"
    day_expr = day_sql(have) if day_sql else None
    shown = {"studyid", "data_cut", "usubjid", day, flag}
    detail = [f"'{x}=' || coalesce({x}::VARCHAR, '')" for x in cols if x not in shown]
    where = ["TRUE"]
    if grade_min is not None:
        where.append(f"{grade_sql} >= {int(grade_min)}")
    if flag:
        where.append(f"t.{flag} IS TRUE")
    key_sql = f"t.usubjid || '/{table}/' || coalesce(t.{day}::VARCHAR, '')"
    new = c.new_flag_sql(reader, key_sql, table, key_sql.replace("t.", ""))
    return reader.sql(f"""
WITH {SUBJ_CTE}
SELECT '{category}' AS aesi_category, sj.site, sj.cohort, sj.dose_level, t.usubjid, {key_sql} AS event_key,
  {term_expr} AS term, '{table}' AS source,
  {day_expr or f't.{day}'} AS onset_day,
  {grade_sql or 'NULL'} AS grade,
  concat_ws('; ', {', '.join(detail)}) AS detail,
  {new} AS new_since_previous_cut
FROM {table} t LEFT JOIN subj sj USING (usubjid)
WHERE {' AND '.join(where)}""")


def _icaht_worse_is_late(have: set[str]) -> str | None:
    if not {"early_grade", "late_grade"} <= have:
        return None
    return "coalesce(t.late_grade, 0) > coalesce(t.early_grade, 0)"


def _icaht_term(have: set[str]) -> str | None:
    """'Early ICAHT grade N (ANC)' or 'Late ICAHT grade N (platelets)': the phase with the worse grade (early on ties)."""
    late = _icaht_worse_is_late(have)
    if late is None:
        return None
    lineage = ("CASE upper(t.lineage) WHEN 'ANC' THEN ' (ANC)' WHEN 'PLT' THEN ' (platelets)' "
               "ELSE coalesce(' (' || t.lineage || ')', '') END") if "lineage" in have else "''"
    return (f"CASE WHEN {late} THEN 'Late ICAHT grade ' || t.late_grade "
            f"ELSE 'Early ICAHT grade ' || t.early_grade END || {lineage}")


def _icaht_day(have: set[str]) -> str | None:
    """Early: the first low day; late: the day of the late nadir (the late phase has no onset day of its own)."""
    late = _icaht_worse_is_late(have)
    if late is None or not {"first_day_le_500", "late_nadir_day"} <= have:
        return None
    return f"CASE WHEN {late} THEN t.late_nadir_day ELSE t.first_day_le_500 END"


def listing_aesi(reader, store=None):
    """AEs of special interest for cell therapy, one row per event and category."""
    title, ref = "Listing of adverse events of special interest", "FDA STF T18; cell-therapy AESI"
    cfg = c.study_settings(reader)
    cyto_rules = [r["id"] for r in cfg.get("dlt", {}).get("rules", []) if r.get("type") == "cytopenia_persisting"]
    new = c.new_ae_flag_sql(reader, "a")
    ae = reader.sql(f"""
WITH {SUBJ_CTE},
cat AS (
  SELECT 'Infection' AS aesi_category, * FROM adverse_events WHERE lower(aebodsys) = 'infections and infestations'
  UNION ALL
  SELECT 'Hypogammaglobulinaemia', * FROM adverse_events
   WHERE upper(coalesce(aedecod, aeterm)) LIKE '%HYPOGAMMAGLOBULIN%')
SELECT a.aesi_category, sj.site, sj.cohort, sj.dose_level, a.usubjid, a.event_key,
  coalesce(a.aedecod, a.aeterm) AS term, 'adverse_events' AS source, a.onset_day, a.end_day, a.duration_days,
  a.aetoxgr AS grade, a.grading_system, a.aeser AS serious, a.related, a.aeout AS outcome,
  'verbatim: ' || coalesce(a.aeterm, '') AS detail, {new} AS new_since_previous_cut, a.aest_date AS _onset_date
FROM cat a LEFT JOIN subj sj USING (usubjid)""")
    parts = [ae]
    notes = ["Infection: SOC 'Infections and infestations'. Hypogammaglobulinaemia: AE term. Secondary malignancy: "
             "the rows of the secondary malignancies listing (AE terms naming a new neoplasm, and malignancies "
             "reported as medical history that started after infusion).",
             _new_note(reader)]
    if reader.has_tables("secondary_malignancies"):
        mnew = c.new_flag_sql(reader, "m.event_key", "secondary_malignancies", "event_key")
        parts.append(reader.sql(f"""
WITH {SUBJ_CTE}
SELECT 'Secondary malignancy' AS aesi_category, sj.site, sj.cohort, sj.dose_level, m.usubjid, m.event_key,
  m.term, CASE WHEN m.source = 'MH' THEN 'medical_history' ELSE 'adverse_events' END AS source, m.onset_day,
  a.end_day, a.duration_days, m.ctcae_grade AS grade, a.grading_system, a.aeser AS serious, a.related,
  coalesce(a.aeout, CASE WHEN m.fatal THEN 'FATAL' END) AS outcome,
  concat_ws('; ', CASE WHEN m.source = 'MH' THEN 'reported as medical history, started after infusion'
                       ELSE 'verbatim: ' || coalesce(a.aeterm, '') END,
            CASE WHEN m.t_cell_malignancy THEN 'T-cell malignancy' END,
            CASE WHEN m.possible_relapse THEN 'relapse or new: the T-cell disease under study, transgene not positive' END,
            'CAR transgene: ' || m.car_transgene_result) AS detail,
  {mnew} AS new_since_previous_cut
FROM secondary_malignancies m LEFT JOIN adverse_events a ON a.event_key = m.event_key
LEFT JOIN subj sj ON sj.usubjid = m.usubjid"""))
    else:
        notes.append("Secondary malignancy: not available (derived table secondary_malignancies not in this "
                     "database file).")
    if reader.has_tables("dlt_candidates") and cyto_rules:
        dnew = c.new_flag_sql(reader, "d.event_key", "dlt_candidates", "event_key")
        cyto = reader.sql(f"""
WITH {SUBJ_CTE}
SELECT 'Prolonged cytopenia (' || d.rule_id || ')' AS aesi_category, sj.site, sj.cohort, sj.dose_level,
  d.usubjid, d.event_key,
  'Prolonged cytopenia (' || coalesce(d.term, '?') || ' grade ' || coalesce(d.grade::VARCHAR, '?')
    || ' at day ' || coalesce(d.onset_day::VARCHAR, '?') || ')' AS term, 'dlt_candidates' AS source, d.onset_day, NULL::INTEGER AS end_day,
  d.duration_days, d.grade, 'CTCAE' AS grading_system, NULL AS serious, NULL::BOOLEAN AS related,
  NULL AS outcome, d.reason || coalesce(': ' || d.evidence, '') AS detail, {dnew} AS new_since_previous_cut
FROM dlt_candidates d LEFT JOIN subj sj USING (usubjid)
WHERE d.rule_id IN (SELECT unnest($rules::VARCHAR[]))""", {"rules": cyto_rules})
        parts.append(cyto)
    else:
        notes.append("Prolonged cytopenia (DLT rule) not available: dlt_candidates is not in this database file.")
    for table, category, gmin, term, day_sql in (
        ("icaht", "Prolonged cytopenia (ICAHT grade >= 3)", 3, _icaht_term, _icaht_day),
        ("iec_hs_screen", "IEC-HS screen (first flagged day)", None, lambda have: "'IEC-HS screen positive'", None),
    ):
        rows = _generic_rows(reader, table, category, gmin, term, day_sql) if reader.has_tables(table) else None
        if rows is None:
            notes.append(f"{category}: not available (derived table {table} not in this database file).")
        else:
            parts.append(rows.reindex(columns=AESI_COLUMNS))
    # an AE of a subject never infused has no onset day: its onset date orders it (the other rows are of infused
    # subjects and have a day alone)
    df = pd.concat([p.reindex(columns=AESI_COLUMNS + ["_onset_date"]).astype("object") for p in parts],
                   ignore_index=True)
    df = df.sort_values(["usubjid", "onset_day", "_onset_date", "aesi_category", "event_key"], na_position="last",
                        kind="stable")[AESI_COLUMNS]
    if df.empty:
        notes.insert(0, "No adverse events of special interest at this data cut.")
    return c.finish(df.reset_index(drop=True), name="aesi", title=title, reference=ref, kind="listing", notes=notes)


def _finding_listing(reader, *, name: str, title: str, ref: str, subject: list[str], fields: dict[str, str],
                     key: str, order: str, notes: list[str], none_note: str) -> pd.DataFrame:
    """A listing of the derived table ``name`` (alias ``t``): the subject's site, cohort, dose level, USUBJID and
    the ``subject`` columns (age, sex), then ``fields`` (listing column -> SQL) and ``new_since_previous_cut``
    (``key`` absent from the previous cut); ``none_note`` leads the notes when there is no row."""
    columns = ["site", "cohort", "dose_level", "usubjid", *subject, *fields, "new_since_previous_cut"]
    if not reader.has_tables(name):
        return _missing(name, columns, title, ref, name)
    new = c.new_flag_sql(reader, key, name, key.replace("t.", ""))
    select = ", ".join([*(f"sj.{x}" for x in subject), *(f'{sql} AS "{col}"' for col, sql in fields.items())])
    df = reader.sql(f"""
WITH {SUBJ_CTE}
SELECT sj.site, sj.cohort, sj.dose_level, t.usubjid, {select}, {new} AS new_since_previous_cut
FROM {name} t LEFT JOIN subj sj USING (usubjid)
ORDER BY {order}""")
    return c.finish(df[columns], name=name, title=title, reference=ref, kind="listing",
                    notes=([none_note] if df.empty else []) + notes)


ELIG_FIELDS = ["criterion", "test", "value", "unit", "limit", "day", "detail"]


def listing_eligibility(reader, store=None):
    # the listing's 'limit' is the table's limit_value ('limit' is an SQL keyword)
    return _finding_listing(
        reader, name="eligibility_deviations", title="Listing of eligibility deviations",
        ref="ICH E3 16.2.2 (protocol deviations)", subject=["age", "sex"],
        fields={f: f't."{"limit_value" if f == "limit" else f}"' for f in ELIG_FIELDS},
        key="t.usubjid || '/' || coalesce(t.criterion, '') || '/' || coalesce(t.test, '')",
        order="t.usubjid, t.day NULLS LAST, t.criterion, t.test",
        notes=["Screening values checked against the protocol's eligibility limits (study.yaml): the last value "
               "before the first lymphodepletion dose (before day 0 without lymphodepletion), not the day-0 baseline.",
               "New since previous cut = the (subject, criterion, test) was not listed at the previous cut."],
        none_note="No eligibility deviations at this data cut.")


AE_GRADE_FIELDS = ["event_key", "aeterm", "aedecod", "ctcae_term", "aetoxgr", "ctcae_grades", "onset_day"]
# the AE's onset date, which orders the AEs of a subject never infused (no onset day)
_AE_ONSET_DATE = "(SELECT a.aest_date FROM adverse_events a WHERE a.event_key = t.event_key)"


def listing_ae_grade_checks(reader, store=None):
    """The Data quality page's "AE grades CTCAE does not define for the term" table: each a query for the site."""
    return _finding_listing(
        reader, name="ae_grade_checks", title="Listing of AE grades CTCAE does not define for the term",
        ref="CTCAE v5.0 (NCI, 2017)", subject=[], fields={f: f"t.{f}" for f in AE_GRADE_FIELDS},
        key="t.event_key", order=f"t.usubjid, {_AE_ONSET_DATE} NULLS LAST, t.onset_day NULLS LAST, t.event_key",
        notes=["aetoxgr: the grade the site reported; ctcae_grades: the grades CTCAE defines for the term (Sepsis has "
               "3, 4 and 5 only). Each is counted at its reported grade in every table until the site corrects it.",
               "New since previous cut = the event was not listed at the previous cut."],
        none_note="Every AE graded on CTCAE carries a grade CTCAE defines for its term at this data cut.")


DISC_FIELDS = ["syndrome", "episode_key", "ae_event_key", "aeseq", "onset_day", "reported_grade", "derived_grade",
               "discrepancy", "reported_grading_system", "evidence"]


def listing_grade_discrepancies(reader, store=None):
    """The CRS & ICANS page's "Derived vs reported grades" table: every reported CRS/ICANS AE whose grade differs
    from the ASTCT grade derived from the bedside assessments, and every one without the other."""
    return _finding_listing(
        reader, name="grade_discrepancies", title="Listing of derived against reported CRS and ICANS grades",
        ref="ASTCT 2019 (Lee et al.); reported AETOXGR", subject=[],
        fields={f: f"t.{f}" for f in DISC_FIELDS},
        key="coalesce(t.episode_key, t.ae_event_key) || '/' || t.discrepancy",
        order="t.usubjid, t.onset_day NULLS LAST, t.syndrome, t.episode_key, t.ae_event_key",
        notes=["Derived grade: the ASTCT consensus grade derived from the bedside assessments (the episode's "
               "maximum); reported grade: AETOXGR as the site reported it. A CRS/ICANS AE graded on another scale "
               "is listed with its grading system and not compared as if it were ASTCT.",
               "New since previous cut = the (episode or AE, discrepancy) was not listed at the previous cut."],
        none_note="Derived and reported grades agree at this data cut.")


LISTINGS: dict[str, c.OutputSpec] = {
    "ae": c.OutputSpec("All adverse events by subject", "ICH E3 12.2.4 / 16.2.7", listing_ae, takes_dlt_status=True,
                       reads=("AE",)),
    "sae": c.OutputSpec("Serious adverse events", "ICH E3 14.3.2; FDA STF T10", listing_sae, takes_dlt_status=True,
                        reads=("AE",)),
    "deaths": c.OutputSpec("Deaths", "FDA STF T9; ICH E3 14.3.2", listing_deaths, reads=c.DEATH_SOURCES),
    "dlt": c.OutputSpec("DLT candidates and adjudication", "Protocol DLT rules", listing_dlt, takes_dlt_status=True,
                        reads=c.DLT_SOURCES),
    "crs_icans_episodes": c.OutputSpec("CRS and ICANS episodes", "ASTCT 2019", listing_crs_icans,
                                       takes_dlt_status=True, reads=c.SYNDROME_SOURCES),
    "lab_grade3_episodes": c.OutputSpec("Grade >= 3 laboratory abnormalities (episodes)", "ICH E3 14.3.4",
                                        listing_lab_grade3_episodes, reads=("LB",)),
    "lab_grade3": c.OutputSpec("Grade >= 3 laboratory abnormalities (every value)", "ICH E3 14.3.4",
                               listing_lab_grade3, reads=("LB",)),
    "aesi": c.OutputSpec("Adverse events of special interest", "FDA STF T18", listing_aesi, reads=("AE", "MH", "LB")),
    "grade_discrepancies": c.OutputSpec("Derived against reported CRS and ICANS grades", "ASTCT 2019",
                                        listing_grade_discrepancies, reads=c.SYNDROME_SOURCES),
    "eligibility_deviations": c.OutputSpec("Eligibility deviations", "ICH E3 16.2.2", listing_eligibility,
                                           reads=("DM", "LB")),
    "ae_grade_checks": c.OutputSpec("AE grades CTCAE does not define for the term", "CTCAE v5.0",
                                    listing_ae_grade_checks, reads=("AE",)),
    **outcome_outputs.LISTING_SPECS,
}


def build_listing(reader: StudyReader, name: str, store=None, live=None) -> pd.DataFrame:
    """One listing as a DataFrame (attrs: name, title, reference, kind, notes); KeyError for unknown names.
    ``live``: the DLT state already computed for this reader and store
    (:func:`safety.export.common.current_dlt_status`)."""
    if name not in LISTINGS:
        raise KeyError(f"unknown listing {name!r}; valid: {', '.join(LISTINGS)}")
    return LISTINGS[name].build(reader, store, live)

"""CRS and ICANS episodes: from bedside assessments where a subject has them, from reported AEs where not or
where no gradable assessment covers the AE (`source` says which), and grade 5 where a death is attributed to the
syndrome. Rules and choices: docs/toxicities.md."""
from __future__ import annotations

from safety.core.vocabulary import (CRS_TERMS, ICANS_TERMS, SYNDROME_DEATH_PATTERNS, fatal_ae,
                                    syndrome_term_sql)
from safety.derive.toxicity._sql import SCOPE, insert, run
from safety.derive.toxicity.assessment_grading import moment
from safety.schema import TOXICITY_EPISODES

# A death is attributed to the episode of the syndrome that started at most this many days after it (an AE
# reported a day or two after the bedside onset still belongs to the same episode).
ATTRIBUTION_TOLERANCE_DAYS = 2
# how grade5_basis names a death record (not a reported AE) that makes an episode grade 5: the DLT screening
# reads these to keep that death and the episode one event
DEATH_CAUSE_BASIS = "cause of death: "
DEATH_DS_BASIS = "disposition (DS): "

# The order in which one reported AE of several speaks for them: the highest grade, then the earliest onset, then
# the lowest AESEQ (a key of arg_max over AE rows). Without the last two, two AEs of the same grade made the
# episode's max_grade_day and ae_event_key depend on the order DuckDB's threads met them.
WORST_AE_FIRST = "[coalesce(aetoxgr, -1), -onset_day, -coalesce(aeseq, 0)]"


def assessment_source(syndrome: str) -> str:
    return "crs_assessments" if syndrome == "CRS" else "icans_assessments"


def ae_sql(syndrome: str, with_assessments: bool | None = None) -> str:
    """Reported AEs of the syndrome; with_assessments True/False keeps only subjects with/without bedside
    assessments of it (None: all)."""
    terms = CRS_TERMS if syndrome == "CRS" else ICANS_TERMS
    subj = ""
    if with_assessments is not None:
        op = "IN" if with_assessments else "NOT IN"
        subj = (f" AND usubjid {op} (SELECT usubjid FROM {assessment_source(syndrome)} WHERE {SCOPE}"
                " AND usubjid IS NOT NULL)")
    return f"""
SELECT usubjid, aeseq, event_key, aetoxgr, grading_system, onset_day, end_day, ongoing, aeout, aesdth, aeen_date
FROM adverse_events
WHERE {SCOPE} AND {syndrome_term_sql()} IN {terms!r}{subj}
"""


def _med_window_sql(alias: str, since_mask_from: bool = False) -> str:
    """Per-episode medication use: records started from onset to the day after the last symptomatic day;
    ``since_mask_from``: from the episode's ``mask_from`` instead (a CRS episode graded from assessments: the
    moment since which therapy counts as given for it, assessment_grading._MASK_FROM)."""
    start = (f"{moment('m.start_day', 'm.start_time')} >= e.mask_from" if since_mask_from
             else "m.start_day >= e.onset_day")
    return f"""
  LEFT JOIN (
    SELECT e.usubjid, e.episode_no,
      count(*) FILTER (WHERE m.cls = 'tocilizumab') AS toci_n,
      min(m.start_day) FILTER (WHERE m.cls = 'tocilizumab') AS toci_first,
      min(m.start_day) FILTER (WHERE m.cls = 'corticosteroid') AS steroid_first,
      min(m.start_day) FILTER (WHERE m.cls = 'anakinra') AS anakinra_first,
      count(*) FILTER (WHERE m.cls = 'vasopressor') AS vaso_n
    FROM {alias} e JOIN (SELECT usubjid, lower(med_class) AS cls, start_day, start_time FROM medications
                         WHERE {SCOPE} AND start_day IS NOT NULL) m
      ON m.usubjid = e.usubjid AND {start} AND m.start_day <= e.last_symptomatic_day + 1
    GROUP BY e.usubjid, e.episode_no
  ) med ON med.usubjid = ep.usubjid AND med.episode_no = ep.episode_no
"""


def episodes_from_assessments(con, params: dict, syndrome: str) -> None:
    """Episodes of subjects with bedside assessments (into toxicity_episodes, and _tox_ep for evidence)."""
    syn = syndrome.lower()
    crs = syndrome == "CRS"
    support = """
      max(r.n_press + CASE WHEN r.vpn THEN 1 ELSE 0 END) AS vasopressor_max,
      bool_or(r.positive_pressure_o2) AS positive_pressure,
      bool_or(r.n_press > 0 OR r.vpn OR r.high_flow_o2 AND r.o2 NOT IN ('FACEMASK', 'NONREBREATHER', 'VENTURI')) AS icu_o2_press,
    """ if crs else "NULL::INTEGER AS vasopressor_max, NULL::BOOLEAN AS positive_pressure, NULL::BOOLEAN AS icu_o2_press,"
    # Where the grade >= 3 clock stops (docs/toxicities.md). A CRS assessment grades the support given since the one
    # before it, so the first one below 3 after the last grade >= 3 one says grade >= 3 was over by that last one.
    # An ICANS assessment (ICE, consciousness) is of its moment: grade >= 3 is over only where an assessment shows
    # the improvement, as "not improved to <= grade 2 within 72 h" reads.
    g3_clock_end = "ep.g3_last_time" if crs else "coalesce(after_g3.below3_time, ep.g3_last_time)"
    run(con, f"""
CREATE OR REPLACE TEMP TABLE _tox_ep AS
WITH g AS (SELECT * FROM _tox_{syn}_graded WHERE episode_no IS NOT NULL),
ep AS (
  SELECT r.usubjid, r.episode_no, min(r.episode_key) AS event_key,
    min(r.day) FILTER (WHERE r.row_grade >= 1) AS onset_day,
    max(r.day) FILTER (WHERE r.row_grade >= 1) AS last_symptomatic_day,
    max(r.assessment_time) FILTER (WHERE r.row_grade >= 1) AS last_sym_time,
    max(r.assessment_time) AS last_time,
    max(r.row_grade) AS max_grade,
    count(DISTINCT r.day) FILTER (WHERE r.row_grade >= 3) AS days_grade3_plus,
    min(r.day) FILTER (WHERE r.row_grade >= 3) AS grade3_plus_first_day,
    max(r.day) FILTER (WHERE r.row_grade >= 3) AS grade3_plus_last_day,
    min(r.assessment_time) FILTER (WHERE r.row_grade >= 3) AS g3_first_time,
    max(r.assessment_time) FILTER (WHERE r.row_grade >= 3) AS g3_last_time,
    min(r.mask_from) AS mask_from,
    {support}
  FROM g r GROUP BY r.usubjid, r.episode_no
),
-- the next episode's first assessment bounds what may still belong to this one
nxt AS (
  SELECT usubjid, episode_no, lead(first_time) OVER (PARTITION BY usubjid ORDER BY episode_no) AS next_time
  FROM (SELECT usubjid, episode_no, min(assessment_time) AS first_time FROM g GROUP BY usubjid, episode_no)
),
peak AS (
  SELECT g.usubjid, g.episode_no, min(g.day) AS max_grade_day,
         -- two assessments at one time with the worst grade: the first reason in text order, so that a load
         -- never depends on the order DuckDB's threads meet them
         arg_min(g.reason_text, (g.assessment_time, g.reason_text)) FILTER (WHERE g.assessment_time IS NOT NULL)
           AS max_evidence
  FROM (SELECT *, {'coalesce(comp_reason, ' + "'fever'" + ')' if crs else 'grade_reason'} || ' (' || evidence || ')' AS reason_text FROM g) g
  JOIN ep USING (usubjid, episode_no) WHERE g.row_grade = ep.max_grade
  GROUP BY g.usubjid, g.episode_no
),
after_g3 AS (
  -- first assessment of the same episode below grade 3 after its last grade >= 3 one: grade >= 3 had ended
  SELECT ep.usubjid, ep.episode_no, min(x.assessment_time) AS below3_time
  FROM ep JOIN g x ON x.usubjid = ep.usubjid AND x.episode_no = ep.episode_no
   AND x.row_grade < 3 AND x.assessment_time > ep.g3_last_time
  GROUP BY ep.usubjid, ep.episode_no
),
res AS (
  -- first grade-0 assessment after the last symptomatic one, before the next episode begins
  SELECT ep.usubjid, ep.episode_no, min(x.day) AS resolution_day
  FROM ep JOIN nxt USING (usubjid, episode_no)
  JOIN _tox_{syn}_graded x ON x.usubjid = ep.usubjid AND x.row_grade = 0
   AND (x.assessment_time > ep.last_sym_time OR x.day > ep.last_symptomatic_day)
   AND (nxt.next_time IS NULL OR x.assessment_time < nxt.next_time)
  GROUP BY ep.usubjid, ep.episode_no
),
later AS (
  -- any gradable assessment after the episode's last grade >= 3 one (in this episode or later)
  SELECT ep.usubjid, ep.episode_no, count(x.row_grade) AS n_later
  FROM ep JOIN _tox_{syn}_graded x ON x.usubjid = ep.usubjid AND x.assessment_time > ep.g3_last_time
  GROUP BY ep.usubjid, ep.episode_no
),
beyond AS (
  -- assessments after the episode's last one: an unresolved episode followed by them has ended unobserved
  SELECT ep.usubjid, ep.episode_no, count(*) AS n_beyond
  FROM ep JOIN _tox_{syn}_graded x ON x.usubjid = ep.usubjid AND x.assessment_time > ep.last_time
  GROUP BY ep.usubjid, ep.episode_no
),
g3 AS (
  -- still grade >= 3 at the subject's last assessment and alive, unresolved at the cut: the clock runs to the cut
  SELECT ep.usubjid, ep.episode_no,
         ep.g3_first_time IS NOT NULL AND after_g3.below3_time IS NULL AND res.resolution_day IS NULL
           AND coalesce(later.n_later, 0) = 0 AND s.death_day IS NULL AS g3_ongoing,
         s.first_infusion_date, s.death_day,
         CAST(greatest(ep.grade3_plus_last_day, least(s.last_known_alive_day, s.cut_day)) AS INTEGER) AS g3_cut_day
  FROM ep LEFT JOIN after_g3 USING (usubjid, episode_no) LEFT JOIN res USING (usubjid, episode_no)
  LEFT JOIN later USING (usubjid, episode_no)
  LEFT JOIN (SELECT usubjid, death_day, last_known_alive_day, first_infusion_date,
                    $c::DATE - first_infusion_date AS cut_day FROM subjects WHERE {SCOPE}) s USING (usubjid)
)
SELECT ep.*, peak.max_grade_day, peak.max_evidence, res.resolution_day,
  CASE WHEN g3.g3_ongoing AND g3.g3_cut_day IS NOT NULL
       THEN date_diff('second', ep.g3_first_time,
                      greatest(ep.g3_last_time, CAST(g3.first_infusion_date + CAST(g3.g3_cut_day + 1 AS INTEGER) AS TIMESTAMP))) / 3600.0
       ELSE date_diff('second', ep.g3_first_time, {g3_clock_end}) / 3600.0
  END AS grade3_plus_hours,
  CASE WHEN ep.g3_first_time IS NOT NULL THEN coalesce(g3.g3_ongoing, false) END AS grade3_plus_ongoing,
  CASE WHEN g3.g3_ongoing THEN coalesce(g3.g3_cut_day, ep.grade3_plus_last_day)
       ELSE ep.grade3_plus_last_day END AS grade3_plus_end_day,
  coalesce(med.toci_n, 0) AS toci_n, med.toci_first, med.steroid_first, med.anakinra_first, coalesce(med.vaso_n, 0) AS vaso_n,
  g3.death_day, coalesce(beyond.n_beyond, 0) > 0 AS has_later
FROM ep
LEFT JOIN after_g3 USING (usubjid, episode_no)
LEFT JOIN beyond USING (usubjid, episode_no)
JOIN peak USING (usubjid, episode_no)
LEFT JOIN res USING (usubjid, episode_no)
LEFT JOIN g3 USING (usubjid, episode_no)
{_med_window_sql('ep', since_mask_from=crs)}
""", params)
    insert(con, TOXICITY_EPISODES, f"""
SELECT $s::VARCHAR AS studyid, $c::DATE AS data_cut, usubjid, '{syndrome}' AS syndrome, episode_no, event_key,
  onset_day, last_symptomatic_day, last_symptomatic_day - onset_day + 1 AS duration_days,
  max_grade, max_grade_day, days_grade3_plus, grade3_plus_first_day, grade3_plus_last_day, grade3_plus_hours,
  grade3_plus_ongoing, grade3_plus_end_day, resolution_day,
  resolution_day IS NULL AND death_day IS NULL AND NOT has_later AS ongoing,
  CASE WHEN resolution_day IS NOT NULL THEN 'resolved' WHEN death_day IS NOT NULL THEN 'death'
       WHEN has_later THEN 'ended without a grade-0 assessment' ELSE 'ongoing at data cut' END AS resolution_status,
  toci_n > 0 AS tocilizumab, toci_first AS tocilizumab_first_day, toci_n AS tocilizumab_doses,
  steroid_first IS NOT NULL AS corticosteroid, steroid_first AS corticosteroid_first_day,
  anakinra_first IS NOT NULL AS anakinra, anakinra_first AS anakinra_first_day,
  vasopressor_max, positive_pressure,
  {'coalesce(icu_o2_press, false)' if crs else 'max_grade >= 3'} AS icu_level_support,
  'assessments' AS source, $grading AS grading_system,
  NULL::VARCHAR AS ae_event_key, NULL::INTEGER AS reported_grade,
  max_grade AS assessed_max_grade, NULL::VARCHAR AS grade5_basis
FROM _tox_ep WHERE onset_day IS NOT NULL
""", params)


def ae_days_sql(ae: str) -> str:
    """The AEs of the SELECT ``ae`` with an onset day, with their last day ``stop_day`` (the end day; for an AE
    without one, the last day known alive or the cut) and their subject's ``death_day``."""
    return f"""
SELECT ae.*, coalesce(ae.end_day, least(s.last_known_alive_day, s.cut_day), ae.onset_day) AS stop_day, s.death_day
FROM ({ae}) ae
LEFT JOIN (SELECT usubjid, death_day, last_known_alive_day, data_cut - first_infusion_date AS cut_day
           FROM subjects WHERE {SCOPE}) s USING (usubjid)
WHERE ae.onset_day IS NOT NULL
"""


def episodes_from_aes(con, params: dict, syndrome: str, ungraded: bool = False) -> None:
    """Episodes from reported AEs: overlapping or touching AE records of a subject form one episode.

    By default the AEs of subjects without bedside assessments of the syndrome, numbered from 1. With
    ``ungraded``, the AEs of subjects with assessments that no derived episode matches and no gradable assessment
    covers (``_tox_ungraded_aes``, discrepancies.ungraded_aes), numbered after the subject's derived episodes, so
    those keep their event keys (committee decisions are stored against them)."""
    if ungraded:
        a = f"""SELECT u.*, coalesce(d.n_derived, 0) AS first_no FROM _tox_ungraded_aes u
  LEFT JOIN (SELECT usubjid, max(episode_no) AS n_derived FROM _tox_{syndrome.lower()}_graded GROUP BY usubjid) d
  USING (usubjid)"""
    else:
        a = f"SELECT *, 0 AS first_no FROM ({ae_days_sql(ae_sql(syndrome, with_assessments=False))})"
    # one statement: the episodes go straight into toxicity_episodes, not through a temporary table (on the
    # load's critical path: crs_icans -> dlt_screening)
    episodes = f"""
WITH a AS ({a}),
o AS (
  SELECT *, max(stop_day) OVER (PARTITION BY usubjid ORDER BY onset_day, aeseq
                                ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_stop
  FROM a
),
n AS (
  SELECT *, first_no + sum(CASE WHEN prev_stop IS NULL OR onset_day > prev_stop + 1 THEN 1 ELSE 0 END)
              OVER (PARTITION BY usubjid ORDER BY onset_day, aeseq) AS episode_no
  FROM o
),
ep AS (
  SELECT usubjid, episode_no::INTEGER AS episode_no, usubjid || '/{syndrome}/' || episode_no AS event_key,
    min(onset_day) AS onset_day, max(stop_day) AS last_symptomatic_day, max(aetoxgr) AS max_grade,
    arg_max(onset_day, {WORST_AE_FIRST}) AS max_grade_day,
    arg_max(event_key, {WORST_AE_FIRST}) AS ae_event_key,
    bool_or(coalesce(ongoing, end_day IS NULL) AND end_day IS NULL) AS any_ongoing,
    -- grade >= 3 lasted as the records graded >= 3 say, not as long as the episode their grade 1-2 records extend
    min(onset_day) FILTER (WHERE aetoxgr >= 3) AS grade3_plus_first_day,
    max(stop_day) FILTER (WHERE aetoxgr >= 3) AS grade3_plus_last_day,
    bool_or(coalesce(ongoing, end_day IS NULL) AND end_day IS NULL) FILTER (WHERE aetoxgr >= 3) AS g3_ongoing,
    bool_or({fatal_ae('')}) AS fatal,
    max(end_day) AS end_day, max(death_day) AS death_day,
    -- the distinct systems in text order, from a list: a DISTINCT aggregate made DuckDB group the AEs twice
    -- and join the two (0.1 CPU s a syndrome at 20,000 subjects)
    array_to_string(list_sort(list_distinct(list(grading_system) FILTER (WHERE grading_system IS NOT NULL))),
                    ', ') AS grading_system
  FROM n GROUP BY usubjid, episode_no
)
SELECT ep.*, coalesce(med.toci_n, 0) AS toci_n, med.toci_first, med.steroid_first, med.anakinra_first,
       coalesce(med.vaso_n, 0) AS vaso_n
FROM ep
{_med_window_sql('ep')}
"""
    insert(con, TOXICITY_EPISODES, f"""
SELECT $s::VARCHAR AS studyid, $c::DATE AS data_cut, usubjid, '{syndrome}' AS syndrome, episode_no, event_key,
  onset_day, last_symptomatic_day, last_symptomatic_day - onset_day + 1 AS duration_days,
  max_grade, max_grade_day, NULL::INTEGER AS days_grade3_plus, grade3_plus_first_day,
  grade3_plus_last_day, NULL::DOUBLE AS grade3_plus_hours,
  CASE WHEN grade3_plus_first_day IS NOT NULL THEN coalesce(g3_ongoing, false) AND NOT fatal AND death_day IS NULL
  END AS grade3_plus_ongoing, grade3_plus_last_day AS grade3_plus_end_day,
  CASE WHEN NOT any_ongoing THEN end_day END AS resolution_day,
  any_ongoing AND NOT fatal AND death_day IS NULL AS ongoing,
  CASE WHEN fatal OR (any_ongoing AND death_day IS NOT NULL) THEN 'death'
       WHEN any_ongoing THEN 'ongoing at data cut' ELSE 'resolved' END AS resolution_status,
  toci_n > 0 AS tocilizumab, toci_first AS tocilizumab_first_day, toci_n AS tocilizumab_doses,
  steroid_first IS NOT NULL AS corticosteroid, steroid_first AS corticosteroid_first_day,
  anakinra_first IS NOT NULL AS anakinra, anakinra_first AS anakinra_first_day,
  {'CASE WHEN vaso_n > 0 THEN 1 ELSE 0 END' if syndrome == 'CRS' else 'NULL::INTEGER'} AS vasopressor_max,
  NULL::BOOLEAN AS positive_pressure,
  {'vaso_n > 0' if syndrome == 'CRS' else 'max_grade >= 3'} AS icu_level_support,
  'reported AE' AS source, coalesce(grading_system, $grading) AS grading_system,
  ae_event_key, max_grade AS reported_grade,
  max_grade AS assessed_max_grade, NULL::VARCHAR AS grade5_basis
FROM ({episodes})
""", params)


def attribute_deaths(con, params: dict, syndrome: str) -> None:
    """Grade 5: a death attributed to the syndrome (a reported AE of it graded 5 with outcome FATAL, or a cause of
    death in DS/DM naming it) makes the episode in progress (the latest one started by then) grade 5."""
    terms = CRS_TERMS if syndrome == "CRS" else ICANS_TERMS
    pat = SYNDROME_DEATH_PATTERNS[syndrome]
    tol = ATTRIBUTION_TOLERANCE_DAYS
    run(con, f"""
CREATE OR REPLACE TEMP TABLE _tox_g5 AS
WITH att AS (
  SELECT usubjid, coalesce(end_day, onset_day) AS day,
         'reported AE ' || event_key || ' grade 5, outcome ' || aeout AS basis
  FROM adverse_events
  WHERE {SCOPE} AND {syndrome_term_sql()} IN {terms!r}
    AND aetoxgr = 5 AND upper(aeout) LIKE '%FATAL%'
  UNION ALL
  SELECT usubjid, death_day, '{DEATH_CAUSE_BASIS}' || death_cause FROM subjects
  WHERE {SCOPE} AND death_cause IS NOT NULL AND regexp_matches(upper(death_cause), $pat)
  UNION ALL
  SELECT usubjid, day, '{DEATH_DS_BASIS}' || dsterm FROM disposition
  WHERE {SCOPE} AND upper(dsdecod) LIKE '%DEATH%' AND dsterm IS NOT NULL AND regexp_matches(upper(dsterm), $pat)
),
pick AS (
  SELECT a.usubjid, a.basis, arg_max(e.event_key, e.onset_day) AS event_key
  FROM att a JOIN toxicity_episodes e ON e.usubjid = a.usubjid AND e.studyid = $s AND e.data_cut = $c
   AND e.syndrome = '{syndrome}' AND e.onset_day <= coalesce(a.day, e.onset_day) + {tol}
  GROUP BY a.usubjid, a.basis
)
SELECT event_key, string_agg(DISTINCT basis, '; ' ORDER BY basis) AS basis FROM pick GROUP BY event_key
""", {**params, "pat": pat})
    run(con, """
UPDATE toxicity_episodes t SET max_grade = 5, grade5_basis = g.basis, resolution_status = 'death', ongoing = false
FROM _tox_g5 g WHERE t.studyid = $s AND t.data_cut = $c AND t.event_key = g.event_key
""", params)

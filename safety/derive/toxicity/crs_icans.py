"""ASTCT 2019 CRS and ICANS grades from bedside assessments, episodes, reconciliation with reported AEs,
biomarker context and the IEC-HS screen.

Source: Lee DW et al., ASTCT consensus grading, Biol Blood Marrow Transplant 2019;25:625-638; IEC-HS
screen after Hines et al., Transplant Cell Ther 2023 (unverified:
implemented as a screen for committee review, never as a diagnosis). Rules and choices: docs/toxicities.md.

Everything runs in DuckDB SQL over whole tables. The one recursive step is the CRS episode state
(fever masking depends on whether an episode is open, which depends on the masked grades), written as a
recursive CTE that walks every subject's assessment time points in parallel.
"""
from __future__ import annotations

from safety.core.vocabulary import CRS_TERMS, ICANS_TERMS
from safety.derive.graph import Derivation
from safety.schema import CRS_GRADES, ICANS_GRADES, TOXICITY_DAILY_GRADES, TOXICITY_EPISODES, GRADE_DISCREPANCIES, EPISODE_BIOMARKERS, IEC_HS_SCREEN
from safety.schema import CRS_ICANS_TABLES as TABLES
from safety.derive.toxicity._sql import insert, reset, run

GRADING_SYSTEM = "ASTCT 2019"
# An episode ends after grade 0 on this many distinct assessed days after its last symptomatic day ...
EPISODE_END_ZERO_DAYS = 2
# ... or when more than this many days pass between symptomatic assessments with nothing assessed between.
EPISODE_MAX_UNASSESSED_GAP = 7
MASKING_CLASSES = ("tocilizumab", "corticosteroid", "antipyretic")
# AE-to-episode matching tolerance (days) around the derived episode.
MATCH_TOLERANCE_DAYS = 2
# Biomarker window around an episode: onset - 1 to last symptomatic day + 3.
BIOMARKER_BEFORE, BIOMARKER_AFTER = 1, 3
# IEC-HS screen: a lineage has recovered from the lymphodepletion nadir when it is at or above the cytopenia
# threshold on IEC_HS_RECOVERY_VALUES consecutive measured days, the last on IEC_HS_RECOVERY_FROM_DAY or later.
IEC_HS_RECOVERY_FROM_DAY = 7
IEC_HS_RECOVERY_VALUES = 3  # consecutive measured days at or above the threshold (CIBMTR-style recovery)



_SCOPE = "studyid = $s AND data_cut = $c"

# --- per-record grading -------------------------------------------------------------------------------

_CRS_ROWS = f"""
CREATE OR REPLACE TEMP TABLE _tox_crs_rows AS
WITH a AS (
  SELECT usubjid, assessment_id, assessment_time, day, temp_c, hypotension,
         coalesce(vasopressors, 0) AS n_press, coalesce(vasopressin, false) AS vpn,
         nullif(upper(trim(oxygen)), '') AS o2, o2_flow_lmin,
         round(temp_c, 6) >= 38.0::DOUBLE AS fever
  FROM crs_assessments WHERE {_SCOPE}
), c AS (
  SELECT *,
    CASE WHEN n_press >= 2 THEN 4 WHEN n_press = 1 OR vpn THEN 3 WHEN hypotension THEN 2 ELSE 0 END AS hypotension_grade,
    CASE WHEN n_press >= 2 THEN n_press || ' vasopressors' || CASE WHEN vpn THEN ' + vasopressin' ELSE '' END
         WHEN n_press = 1 THEN 'one vasopressor' || CASE WHEN vpn THEN ' + vasopressin' ELSE '' END
         WHEN vpn THEN 'vasopressin alone (one vasopressor)'
         WHEN hypotension THEN 'hypotension without vasopressors' END AS hypotension_reason,
    CASE WHEN o2 IS NULL OR o2 = 'NONE' THEN 0
         WHEN o2 = 'BLOW_BY' THEN 2
         WHEN o2 = 'LOW_FLOW_NC' AND round(o2_flow_lmin, 6) > 6.0::DOUBLE THEN 3
         WHEN o2 = 'LOW_FLOW_NC' THEN 2
         WHEN o2 IN ('HIGH_FLOW_NC', 'FACEMASK', 'NONREBREATHER', 'VENTURI') THEN 3
         WHEN o2 IN ('CPAP', 'BIPAP', 'MECHANICAL_VENTILATION') THEN 4 END AS hypoxia_grade,
    CASE WHEN o2 = 'BLOW_BY' THEN 'blow-by oxygen'
         WHEN o2 = 'LOW_FLOW_NC' AND round(o2_flow_lmin, 6) > 6.0::DOUBLE THEN 'nasal cannula > 6 L/min'
         WHEN o2 = 'LOW_FLOW_NC' AND o2_flow_lmin IS NULL THEN 'low-flow nasal cannula (flow not recorded)'
         WHEN o2 = 'LOW_FLOW_NC' THEN 'low-flow nasal cannula <= 6 L/min'
         WHEN o2 = 'HIGH_FLOW_NC' THEN 'high-flow nasal cannula'
         WHEN o2 = 'FACEMASK' THEN 'facemask'
         WHEN o2 = 'NONREBREATHER' THEN 'non-rebreather mask'
         WHEN o2 = 'VENTURI' THEN 'Venturi mask'
         WHEN o2 = 'CPAP' THEN 'CPAP'
         WHEN o2 = 'BIPAP' THEN 'BiPAP'
         WHEN o2 = 'MECHANICAL_VENTILATION' THEN 'mechanical ventilation'
         WHEN o2 IS NOT NULL AND o2 <> 'NONE' THEN 'unrecognised oxygen value ' || o2 END AS hypoxia_reason
  FROM a
), g AS (
  SELECT *, greatest(hypotension_grade, hypoxia_grade) AS comp,
    concat_ws('; ',
      CASE WHEN temp_c IS NULL THEN 'temperature not recorded' ELSE 'T ' || round(temp_c, 1) || ' C' END,
      CASE WHEN n_press > 0 THEN n_press || ' vasopressor' || CASE WHEN n_press > 1 THEN 's' ELSE '' END END,
      CASE WHEN vpn THEN 'vasopressin' END,
      CASE WHEN hypotension AND n_press = 0 AND NOT vpn THEN 'hypotension' END,
      CASE WHEN hypotension IS NULL AND n_press = 0 AND NOT vpn THEN 'hypotension not recorded' END,
      CASE WHEN o2 IS NULL THEN 'oxygen not recorded' WHEN o2 <> 'NONE' THEN
           'oxygen ' || o2 || coalesce(' ' || round(o2_flow_lmin, 1) || ' L/min', '') END
    ) AS evidence
  FROM c
)
SELECT *,
  CASE WHEN hypoxia_grade IS NULL THEN NULL
       WHEN fever THEN greatest(1, comp) WHEN temp_c IS NULL THEN NULL ELSE 0 END AS g_req,
  CASE WHEN hypoxia_grade IS NULL THEN NULL
       WHEN fever THEN greatest(1, comp) ELSE comp END AS g_pot,
  CASE WHEN comp = 0 THEN NULL
       WHEN hypotension_grade = comp AND hypoxia_grade = comp THEN hypotension_reason || ' and ' || hypoxia_reason
       WHEN hypotension_grade = comp THEN hypotension_reason ELSE hypoxia_reason END AS comp_reason,
  CASE WHEN comp = 0 THEN NULL
       WHEN hypotension_grade = comp AND hypoxia_grade = comp THEN 'hypotension+hypoxia'
       WHEN hypotension_grade = comp THEN 'hypotension' ELSE 'hypoxia' END AS comp_name
FROM g
"""

_ICANS_ROWS = f"""
CREATE OR REPLACE TEMP TABLE _tox_icans_rows AS
WITH a AS (
  SELECT usubjid, assessment_id, assessment_time, day, ice_score,
         nullif(upper(trim(consciousness)), '') AS loc, nullif(upper(trim(seizure)), '') AS sz,
         nullif(upper(trim(motor_weakness)), '') AS motor, nullif(upper(trim(cerebral_edema)), '') AS oed
  FROM icans_assessments WHERE {_SCOPE}
), d AS (
  SELECT *,
    CASE WHEN ice_score IS NULL THEN NULL WHEN ice_score >= 10 THEN 0 WHEN ice_score >= 7 THEN 1
         WHEN ice_score >= 3 THEN 2 ELSE 3 END AS ice_grade,
    CASE loc WHEN 'AWAKE' THEN 0 WHEN 'AWAKENS_SPONTANEOUSLY' THEN 1 WHEN 'AWAKENS_TO_VOICE' THEN 2
             WHEN 'AWAKENS_TO_TACTILE' THEN 3 WHEN 'UNAROUSABLE' THEN 4 END AS consciousness_grade,
    CASE sz WHEN 'NONE' THEN 0 WHEN 'RAPIDLY_RESOLVING' THEN 3 WHEN 'PROLONGED_OR_REPETITIVE' THEN 4 END AS seizure_grade,
    CASE motor WHEN 'NONE' THEN 0 WHEN 'DEEP_FOCAL' THEN 4 END AS motor_grade,
    CASE oed WHEN 'NONE' THEN 0 WHEN 'FOCAL' THEN 3 WHEN 'DIFFUSE' THEN 4 END AS edema_grade
  FROM a
), g AS (
  SELECT *,
    greatest(consciousness_grade, seizure_grade, motor_grade, edema_grade) AS other_max,
    CASE WHEN ice_grade IS NULL AND coalesce(greatest(consciousness_grade, seizure_grade, motor_grade, edema_grade), 0) = 0
         THEN NULL ELSE greatest(ice_grade, consciousness_grade, seizure_grade, motor_grade, edema_grade) END AS grade
  FROM d
)
SELECT *, grade AS g_req, grade AS g_pot,
  CASE WHEN grade IS NULL THEN NULL WHEN grade = 0 THEN 'none' ELSE concat_ws('+',
    CASE WHEN ice_grade = grade THEN 'ICE' END,
    CASE WHEN consciousness_grade = grade THEN 'consciousness' END,
    CASE WHEN seizure_grade = grade THEN 'seizure' END,
    CASE WHEN motor_grade = grade THEN 'motor' END,
    CASE WHEN edema_grade = grade THEN 'cerebral oedema' END) END AS grade_component,
  CASE WHEN grade IS NULL THEN 'ICE not done and nothing else abnormal'
       WHEN grade = 0 THEN 'ICE ' || ice_score || ', no neurological findings'
       ELSE concat_ws(' and ',
    CASE WHEN ice_grade = grade THEN 'ICE ' || ice_score ||
         CASE ice_grade WHEN 1 THEN ' (7-9)' WHEN 2 THEN ' (3-6)' ELSE ' (0-2)' END END,
    CASE WHEN consciousness_grade = grade THEN
         CASE loc WHEN 'AWAKENS_SPONTANEOUSLY' THEN 'awakens spontaneously' WHEN 'AWAKENS_TO_VOICE' THEN 'awakens to voice'
                  WHEN 'AWAKENS_TO_TACTILE' THEN 'awakens only to touch' ELSE 'unarousable' END END,
    CASE WHEN seizure_grade = grade THEN
         CASE sz WHEN 'RAPIDLY_RESOLVING' THEN 'seizure resolving rapidly' ELSE 'prolonged or repetitive seizure' END END,
    CASE WHEN motor_grade = grade THEN 'deep focal motor weakness' END,
    CASE WHEN edema_grade = grade THEN
         CASE oed WHEN 'FOCAL' THEN 'focal cerebral oedema' ELSE 'diffuse cerebral oedema' END END) END AS grade_reason,
  concat_ws('; ', coalesce('ICE ' || ice_score, 'ICE not done'),
    coalesce(lower(loc), 'consciousness not recorded'),
    CASE WHEN sz IS NULL THEN 'seizure not recorded' WHEN sz <> 'NONE' THEN 'seizure ' || lower(sz) END,
    CASE WHEN motor IS NULL THEN 'motor not recorded' WHEN motor <> 'NONE' THEN 'motor ' || lower(motor) END,
    CASE WHEN oed IS NULL THEN 'oedema not recorded' WHEN oed <> 'NONE' THEN 'oedema ' || lower(oed) END,
    CASE WHEN (loc IS NOT NULL AND consciousness_grade IS NULL) OR (sz IS NOT NULL AND seizure_grade IS NULL)
           OR (motor IS NOT NULL AND motor_grade IS NULL) OR (oed IS NOT NULL AND edema_grade IS NULL)
         THEN 'unrecognised value ignored' END) AS evidence
FROM g
"""

# --- episodes: one recursive walk over every subject's time points -----------------------------------

def _timepoints_sql(rows: str, masking: bool) -> str:
    """Time points (distinct assessment times) with the worst grade under both fever states."""
    # A dose on the day of an assessment counts as given before it, unless both carry a time and the dose came
    # later (an assessment at 00:00 is taken as date-only).
    mask = f"""
      (SELECT max(coalesce(m.end_day, 1000000)) FROM medications m
       WHERE m.studyid = $s AND m.data_cut = $c AND m.usubjid = t.usubjid
         AND lower(m.med_class) IN {MASKING_CLASSES!r}
         AND (m.start_day < t.day
              OR (m.start_day = t.day AND (m.start_time IS NULL OR t.assessment_time IS NULL
                                           OR t.assessment_time = date_trunc('day', t.assessment_time)
                                           OR m.start_time <= t.assessment_time))))""" if masking else "NULL::INTEGER"
    return f"""
CREATE OR REPLACE TEMP TABLE _tox_tp AS
WITH t AS (
  SELECT usubjid, day, assessment_time, max(g_req) AS g_req, max(g_pot) AS g_pot
  FROM {rows} WHERE day IS NOT NULL GROUP BY usubjid, day, assessment_time
)
SELECT t.*, row_number() OVER (PARTITION BY usubjid ORDER BY day, assessment_time NULLS FIRST) AS rn,
       {mask} AS mask_end
FROM t
"""


_WALK = f"""
CREATE OR REPLACE TEMP TABLE _tox_walk AS
WITH RECURSIVE w AS (
  SELECT usubjid, rn, day, assessment_time, false AS masked, g_req AS grade,
         coalesce(g_req >= 1, false) AS is_open, coalesce(g_req >= 1, false) AS in_episode,
         CASE WHEN g_req >= 1 THEN 1 ELSE 0 END AS episode_no,
         CASE WHEN g_req >= 1 THEN day END AS onset_day,
         CASE WHEN g_req >= 1 THEN day END AS last_sym_day,
         NULL::INTEGER AS last_zero_day, 0 AS zero_days
  FROM _tox_tp WHERE rn = 1
  UNION ALL
  SELECT usubjid, rn, day, assessment_time, x_masked, x_grade,
         CASE WHEN x_grade >= 1 THEN true WHEN x_zero_days >= {EPISODE_END_ZERO_DAYS} THEN false ELSE x_open0 END,
         x_open0 OR coalesce(x_grade >= 1, false),
         x_episode_no, x_onset_day, x_last_sym_day, x_last_zero_day, x_zero_days
  FROM (
    SELECT t.usubjid, t.rn, t.day, t.assessment_time,
           w.is_open AND t.day - w.last_sym_day <= {EPISODE_MAX_UNASSESSED_GAP} AS x_open0,
           x_open0 AND coalesce(t.mask_end >= w.onset_day, false) AS x_masked,
           CASE WHEN x_masked THEN t.g_pot ELSE t.g_req END AS x_grade,
           coalesce(x_grade >= 1 AND NOT x_open0, false) AS x_started,
           coalesce(x_grade = 0 AND x_open0 AND t.day > w.last_sym_day
                    AND t.day > coalesce(w.last_zero_day, -1000000), false) AS x_zero_day,
           w.episode_no + CASE WHEN x_started THEN 1 ELSE 0 END AS x_episode_no,
           CASE WHEN x_started THEN t.day ELSE w.onset_day END AS x_onset_day,
           CASE WHEN x_grade >= 1 THEN t.day ELSE w.last_sym_day END AS x_last_sym_day,
           CASE WHEN x_zero_day THEN t.day ELSE w.last_zero_day END AS x_last_zero_day,
           CASE WHEN x_grade >= 1 THEN 0 WHEN x_zero_day THEN w.zero_days + 1 ELSE w.zero_days END AS x_zero_days
    FROM w JOIN _tox_tp t ON t.usubjid = w.usubjid AND t.rn = w.rn + 1
  )
)
SELECT usubjid, day, assessment_time, masked, grade, in_episode, episode_no FROM w
"""


def _grade_rows(con, params: dict, syndrome: str) -> None:
    """Grade every assessment of one syndrome into _tox_<syn>_graded (row grades + episode numbers)."""
    syn = syndrome.lower()
    run(con, _timepoints_sql(f"_tox_{syn}_rows", masking=(syndrome == "CRS")), params)
    run(con, _WALK, params)
    run(con, f"""
CREATE OR REPLACE TEMP TABLE _tox_{syn}_graded AS
SELECT r.*, coalesce(w.masked, false) AS masked,
       CASE WHEN w.masked THEN r.g_pot ELSE r.g_req END AS row_grade,
       CASE WHEN w.in_episode THEN w.episode_no END AS episode_no,
       CASE WHEN w.in_episode THEN r.usubjid || '/{syndrome}/' || w.episode_no END AS episode_key
FROM _tox_{syn}_rows r
LEFT JOIN _tox_walk w ON w.usubjid = r.usubjid AND w.day = r.day
     AND w.assessment_time IS NOT DISTINCT FROM r.assessment_time
""", params)


def _insert_crs_grades(con, params: dict) -> None:
    insert(con, CRS_GRADES, """
SELECT $s::VARCHAR AS studyid, $c::DATE AS data_cut, usubjid, assessment_id, assessment_time, day, temp_c, fever,
       NOT masked AS fever_required, hypotension_grade, hypoxia_grade, row_grade AS grade,
       CASE WHEN row_grade IS NULL THEN NULL
            WHEN row_grade = 0 THEN 'none'
            WHEN comp = 0 OR comp IS NULL THEN 'fever'
            ELSE comp_name END AS grade_component,
       CASE WHEN hypoxia_grade IS NULL THEN hypoxia_reason || ': not gradable'
            WHEN row_grade IS NULL AND comp > 0 THEN 'temperature not recorded and fever required: ' || comp_reason || ' not graded as CRS'
            WHEN row_grade IS NULL THEN 'temperature not recorded and fever required'
            WHEN fever AND comp = 0 THEN 'fever, no hypotension or hypoxia'
            WHEN fever THEN comp_reason
            WHEN masked AND comp > 0 THEN comp_reason || ' (afebrile; fever not required after anti-cytokine/antipyretic)'
            WHEN masked THEN 'afebrile after anti-cytokine/antipyretic, no hypotension or hypoxia'
            WHEN comp > 0 THEN 'afebrile, no CRS (' || comp_reason || ' without fever)'
            ELSE 'afebrile, no CRS' END AS grade_reason,
       evidence, episode_key
FROM _tox_crs_graded
""", params)


def _insert_icans_grades(con, params: dict) -> None:
    insert(con, ICANS_GRADES, """
SELECT $s::VARCHAR AS studyid, $c::DATE AS data_cut, usubjid, assessment_id, assessment_time, day, ice_score,
       ice_grade, consciousness_grade, seizure_grade, motor_grade, edema_grade, row_grade AS grade,
       grade_component, grade_reason, evidence, episode_key
FROM _tox_icans_graded
""", params)


def _insert_daily_from_assessments(con, params: dict, syndrome: str) -> None:
    syn = syndrome.lower()
    insert(con, TOXICITY_DAILY_GRADES, f"""
SELECT $s::VARCHAR AS studyid, $c::DATE AS data_cut, usubjid, '{syndrome}' AS syndrome, day,
       max(row_grade) AS grade, 'assessments' AS source, max(episode_key) AS episode_key
FROM _tox_{syn}_graded WHERE day IS NOT NULL GROUP BY usubjid, day
""", params)


def _med_window_sql(alias: str) -> str:
    """Per-episode medication use: records started from onset to the day after the last symptomatic day."""
    return f"""
  LEFT JOIN (
    SELECT e.usubjid, e.episode_no,
      count(*) FILTER (WHERE m.cls = 'tocilizumab') AS toci_n,
      min(m.start_day) FILTER (WHERE m.cls = 'tocilizumab') AS toci_first,
      min(m.start_day) FILTER (WHERE m.cls = 'corticosteroid') AS steroid_first,
      min(m.start_day) FILTER (WHERE m.cls = 'anakinra') AS anakinra_first,
      count(*) FILTER (WHERE m.cls = 'vasopressor') AS vaso_n
    FROM {alias} e JOIN (SELECT usubjid, lower(med_class) AS cls, start_day FROM medications
                         WHERE {_SCOPE} AND start_day IS NOT NULL) m
      ON m.usubjid = e.usubjid AND m.start_day BETWEEN e.onset_day AND e.last_symptomatic_day + 1
    GROUP BY e.usubjid, e.episode_no
  ) med ON med.usubjid = ep.usubjid AND med.episode_no = ep.episode_no
"""


def _episodes_from_assessments(con, params: dict, syndrome: str) -> None:
    syn = syndrome.lower()
    crs = syndrome == "CRS"
    support = """
      max(r.n_press + CASE WHEN r.vpn THEN 1 ELSE 0 END) AS vasopressor_max,
      bool_or(r.o2 IN ('CPAP', 'BIPAP', 'MECHANICAL_VENTILATION')) AS positive_pressure,
      bool_or(r.n_press > 0 OR r.vpn OR r.o2 IN ('HIGH_FLOW_NC', 'CPAP', 'BIPAP', 'MECHANICAL_VENTILATION')
              OR (r.o2 = 'LOW_FLOW_NC' AND round(r.o2_flow_lmin, 6) > 6.0::DOUBLE)) AS icu_o2_press,
    """ if crs else "NULL::INTEGER AS vasopressor_max, NULL::BOOLEAN AS positive_pressure, NULL::BOOLEAN AS icu_o2_press,"
    run(con, f"""
CREATE OR REPLACE TEMP TABLE _tox_ep AS
WITH g AS (SELECT * FROM _tox_{syn}_graded WHERE episode_no IS NOT NULL),
ep AS (
  SELECT r.usubjid, r.episode_no, min(r.episode_key) AS event_key,
    min(r.day) FILTER (WHERE r.row_grade >= 1) AS onset_day,
    max(r.day) FILTER (WHERE r.row_grade >= 1) AS last_symptomatic_day,
    max(r.assessment_time) FILTER (WHERE r.row_grade >= 1) AS last_sym_time,
    max(r.row_grade) AS max_grade,
    count(DISTINCT r.day) FILTER (WHERE r.row_grade >= 3) AS days_grade3_plus,
    min(r.day) FILTER (WHERE r.row_grade >= 3) AS grade3_plus_first_day,
    max(r.day) FILTER (WHERE r.row_grade >= 3) AS grade3_plus_last_day,
    min(r.assessment_time) FILTER (WHERE r.row_grade >= 3) AS g3_first_time,
    max(r.assessment_time) FILTER (WHERE r.row_grade >= 3) AS g3_last_time,
    {support}
  FROM g r GROUP BY r.usubjid, r.episode_no
),
peak AS (
  SELECT g.usubjid, g.episode_no, min(g.day) AS max_grade_day,
         arg_min(g.reason_text, g.assessment_time) AS max_evidence
  FROM (SELECT *, {'coalesce(comp_reason, ' + "'fever'" + ')' if crs else 'grade_reason'} || ' (' || evidence || ')' AS reason_text FROM g) g
  JOIN ep USING (usubjid, episode_no) WHERE g.row_grade = ep.max_grade
  GROUP BY g.usubjid, g.episode_no
),
after_g3 AS (
  -- first assessment below grade 3 after the first grade >= 3 one: the grade >= 3 clock stops there
  SELECT ep.usubjid, ep.episode_no, min(x.assessment_time) AS below3_time
  FROM ep JOIN _tox_{syn}_graded x ON x.usubjid = ep.usubjid
   AND x.assessment_time > ep.g3_first_time AND x.row_grade < 3
   AND x.assessment_time > ep.g3_last_time
  GROUP BY ep.usubjid, ep.episode_no
),
res AS (
  SELECT ep.usubjid, ep.episode_no, min(x.day) AS resolution_day
  FROM ep JOIN _tox_{syn}_graded x ON x.usubjid = ep.usubjid AND x.row_grade = 0
   AND (x.assessment_time > ep.last_sym_time OR x.day > ep.last_symptomatic_day)
  GROUP BY ep.usubjid, ep.episode_no
),
g3 AS (
  -- an episode still grade >= 3 at its last assessment and ongoing at the cut: the clock runs to the cut
  SELECT ep.usubjid, ep.episode_no,
         ep.g3_first_time IS NOT NULL AND after_g3.below3_time IS NULL AND res.resolution_day IS NULL
           AND s.death_day IS NULL AS g3_ongoing,
         s.first_infusion_date, s.death_day,
         CAST(greatest(ep.grade3_plus_last_day, least(s.last_known_alive_day, s.cut_day)) AS INTEGER) AS g3_cut_day
  FROM ep LEFT JOIN after_g3 USING (usubjid, episode_no) LEFT JOIN res USING (usubjid, episode_no)
  LEFT JOIN (SELECT usubjid, death_day, last_known_alive_day, first_infusion_date,
                    $c::DATE - first_infusion_date AS cut_day FROM subjects WHERE {_SCOPE}) s USING (usubjid)
)
SELECT ep.*, peak.max_grade_day, peak.max_evidence, res.resolution_day,
  CASE WHEN g3.g3_ongoing AND g3.g3_cut_day IS NOT NULL
       THEN date_diff('second', ep.g3_first_time,
                      greatest(ep.g3_last_time, CAST(g3.first_infusion_date + CAST(g3.g3_cut_day + 1 AS INTEGER) AS TIMESTAMP))) / 3600.0
       ELSE date_diff('second', ep.g3_first_time, coalesce(after_g3.below3_time, ep.g3_last_time)) / 3600.0
  END AS grade3_plus_hours,
  CASE WHEN ep.g3_first_time IS NOT NULL THEN coalesce(g3.g3_ongoing, false) END AS grade3_plus_ongoing,
  CASE WHEN g3.g3_ongoing THEN coalesce(g3.g3_cut_day, ep.grade3_plus_last_day)
       ELSE ep.grade3_plus_last_day END AS grade3_plus_end_day,
  coalesce(med.toci_n, 0) AS toci_n, med.toci_first, med.steroid_first, med.anakinra_first, coalesce(med.vaso_n, 0) AS vaso_n,
  g3.death_day
FROM ep
JOIN peak USING (usubjid, episode_no)
LEFT JOIN res USING (usubjid, episode_no)
LEFT JOIN after_g3 USING (usubjid, episode_no)
LEFT JOIN g3 USING (usubjid, episode_no)
{_med_window_sql('ep')}
""", params)
    insert(con, TOXICITY_EPISODES, f"""
SELECT $s::VARCHAR AS studyid, $c::DATE AS data_cut, usubjid, '{syndrome}' AS syndrome, episode_no, event_key,
  onset_day, last_symptomatic_day, last_symptomatic_day - onset_day + 1 AS duration_days,
  max_grade, max_grade_day, days_grade3_plus, grade3_plus_first_day, grade3_plus_last_day, grade3_plus_hours,
  grade3_plus_ongoing, grade3_plus_end_day, resolution_day,
  resolution_day IS NULL AND death_day IS NULL AS ongoing,
  CASE WHEN resolution_day IS NOT NULL THEN 'resolved' WHEN death_day IS NOT NULL THEN 'death'
       ELSE 'ongoing at data cut' END AS resolution_status,
  toci_n > 0 AS tocilizumab, toci_first AS tocilizumab_first_day, toci_n AS tocilizumab_doses,
  steroid_first IS NOT NULL AS corticosteroid, steroid_first AS corticosteroid_first_day,
  anakinra_first IS NOT NULL AS anakinra, anakinra_first AS anakinra_first_day,
  vasopressor_max, positive_pressure,
  {'coalesce(icu_o2_press, false)' if crs else 'max_grade >= 3'} AS icu_level_support,
  'assessments' AS source, $grading AS grading_system,
  NULL::VARCHAR AS ae_event_key, NULL::INTEGER AS reported_grade
FROM _tox_ep WHERE onset_day IS NOT NULL
""", params)


def _ae_sql(syndrome: str) -> str:
    terms = CRS_TERMS if syndrome == "CRS" else ICANS_TERMS
    return f"""
SELECT usubjid, aeseq, event_key, aetoxgr, grading_system, onset_day, end_day, ongoing, aeout
FROM adverse_events
WHERE {_SCOPE} AND upper(trim(coalesce(aedecod, aeterm))) IN {terms!r}
"""


def _episodes_from_aes(con, params: dict, syndrome: str) -> None:
    """Episodes from reported AEs: overlapping or touching AE records of a subject form one episode."""
    run(con, f"""
CREATE OR REPLACE TEMP TABLE _tox_ep AS
WITH ae AS ({_ae_sql(syndrome)}),
s AS (SELECT usubjid, death_day, last_known_alive_day, data_cut - first_infusion_date AS cut_day
      FROM subjects WHERE {_SCOPE}),
a AS (
  SELECT ae.*, coalesce(ae.end_day, least(s.last_known_alive_day, s.cut_day), ae.onset_day) AS stop_day, s.death_day
  FROM ae LEFT JOIN s USING (usubjid) WHERE ae.onset_day IS NOT NULL
),
o AS (
  SELECT *, max(stop_day) OVER (PARTITION BY usubjid ORDER BY onset_day, aeseq
                                ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_stop
  FROM a
),
n AS (
  SELECT *, sum(CASE WHEN prev_stop IS NULL OR onset_day > prev_stop + 1 THEN 1 ELSE 0 END)
              OVER (PARTITION BY usubjid ORDER BY onset_day, aeseq) AS episode_no
  FROM o
),
ep AS (
  SELECT usubjid, episode_no::INTEGER AS episode_no, usubjid || '/{syndrome}/' || episode_no AS event_key,
    min(onset_day) AS onset_day, max(stop_day) AS last_symptomatic_day, max(aetoxgr) AS max_grade,
    arg_max(onset_day, coalesce(aetoxgr, -1)) AS max_grade_day,
    arg_max(event_key, coalesce(aetoxgr, -1)) AS ae_event_key,
    bool_or(coalesce(ongoing, end_day IS NULL) AND end_day IS NULL) AS any_ongoing,
    bool_or(aetoxgr = 5 OR upper(aeout) LIKE '%FATAL%') AS fatal,
    max(end_day) AS end_day, string_agg(DISTINCT grading_system, ', ') AS grading_system, max(death_day) AS death_day
  FROM n GROUP BY usubjid, episode_no
)
SELECT ep.*, coalesce(med.toci_n, 0) AS toci_n, med.toci_first, med.steroid_first, med.anakinra_first,
       coalesce(med.vaso_n, 0) AS vaso_n
FROM ep
{_med_window_sql('ep')}
""", params)
    insert(con, TOXICITY_EPISODES, f"""
SELECT $s::VARCHAR AS studyid, $c::DATE AS data_cut, usubjid, '{syndrome}' AS syndrome, episode_no, event_key,
  onset_day, last_symptomatic_day, last_symptomatic_day - onset_day + 1 AS duration_days,
  max_grade, max_grade_day, NULL::INTEGER AS days_grade3_plus, NULL::INTEGER AS grade3_plus_first_day,
  NULL::INTEGER AS grade3_plus_last_day, NULL::DOUBLE AS grade3_plus_hours,
  NULL::BOOLEAN AS grade3_plus_ongoing, NULL::INTEGER AS grade3_plus_end_day,
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
  ae_event_key, max_grade AS reported_grade
FROM _tox_ep
""", params)
    insert(con, TOXICITY_DAILY_GRADES, f"""
SELECT $s::VARCHAR AS studyid, $c::DATE AS data_cut, e.usubjid, '{syndrome}' AS syndrome,
       unnest(range(e.onset_day, least(e.last_symptomatic_day, e.onset_day + 365) + 1)) AS day,
       e.max_grade AS grade, 'reported AE' AS source, e.event_key AS episode_key
FROM toxicity_episodes e
WHERE e.studyid = $s AND e.data_cut = $c AND e.syndrome = '{syndrome}' AND e.source = 'reported AE'
""", params)


def _discrepancies(con, params: dict, syndrome: str) -> None:
    """Match reported AEs to derived episodes (AE onset within the episode +/- tolerance) and compare grades."""
    tol = MATCH_TOLERANCE_DAYS
    run(con, f"""
CREATE OR REPLACE TEMP TABLE _tox_match AS
WITH ae AS ({_ae_sql(syndrome)}),
ep AS (SELECT e.usubjid, e.event_key, e.onset_day, e.last_symptomatic_day, e.max_grade, p.max_evidence, p.max_grade_day
       FROM toxicity_episodes e JOIN _tox_ep p ON p.event_key = e.event_key
       WHERE e.studyid = $s AND e.data_cut = $c AND e.syndrome = '{syndrome}'),
cand AS (
  SELECT ae.*, ep.event_key AS episode_key, ep.onset_day AS ep_onset, ep.max_grade, ep.max_evidence, ep.max_grade_day,
    row_number() OVER (PARTITION BY ae.event_key ORDER BY abs(ae.onset_day - ep.onset_day), ep.onset_day) AS k
  FROM ae JOIN ep ON ep.usubjid = ae.usubjid
   AND ae.onset_day BETWEEN ep.onset_day - {tol} AND ep.last_symptomatic_day + {tol}
)
SELECT * FROM cand WHERE k = 1
""", params)
    # The episode records its matched AE (the highest-graded one when a site split the event).
    run(con, """
UPDATE toxicity_episodes t SET ae_event_key = m.ae_key, reported_grade = m.rg
FROM (SELECT episode_key, arg_max(event_key, coalesce(aetoxgr, -1)) AS ae_key, max(aetoxgr) AS rg
      FROM _tox_match GROUP BY episode_key) m
WHERE t.studyid = $s AND t.data_cut = $c AND t.event_key = m.episode_key
""", params)
    ev = "'grade ' || max_grade || ' on day ' || max_grade_day || ': ' || max_evidence"
    insert(con, GRADE_DISCREPANCIES, f"""
WITH per_ep AS (
  SELECT episode_key, usubjid, arg_max(event_key, coalesce(aetoxgr, -1)) AS ae_event_key,
         arg_max(aeseq, coalesce(aetoxgr, -1)) AS aeseq, max(aetoxgr) AS reported_grade,
         arg_max(grading_system, coalesce(aetoxgr, -1)) AS reported_grading_system,
         any_value(ep_onset) AS onset_day, any_value(max_grade) AS max_grade,
         any_value(max_evidence) AS max_evidence, any_value(max_grade_day) AS max_grade_day
  FROM _tox_match GROUP BY episode_key, usubjid
)
SELECT $s::VARCHAR AS studyid, $c::DATE AS data_cut, usubjid, '{syndrome}' AS syndrome, episode_key, ae_event_key, aeseq,
  onset_day, reported_grade, max_grade AS derived_grade,
  CASE WHEN reported_grade IS NULL THEN 'reported AE has no grade'
       WHEN reported_grade < max_grade THEN 'reported lower than derived'
       WHEN reported_grade > max_grade THEN 'reported higher than derived'
       ELSE 'reported on a different grading system' END AS discrepancy,
  reported_grading_system,
  {ev} || CASE WHEN coalesce(reported_grading_system, $grading) <> $grading
               THEN ' [AE graded with ' || reported_grading_system || ', not ' || $grading || ']' ELSE '' END AS evidence
FROM per_ep LEFT JOIN (SELECT usubjid, death_day FROM subjects WHERE studyid = $s AND data_cut = $c) d USING (usubjid)
-- Grade 5 is death from the syndrome, which bedside assessments cannot show: a fatal grade-4
-- episode reported as grade 5 agrees with the evidence.
WHERE reported_grade IS NULL
   OR (reported_grade <> max_grade AND NOT (reported_grade = 5 AND max_grade = 4 AND d.death_day IS NOT NULL))
   OR coalesce(reported_grading_system, $grading) <> $grading
UNION ALL
SELECT $s, $c, e.usubjid, '{syndrome}', e.event_key, NULL, NULL, e.onset_day, NULL, e.max_grade,
  'no AE reported for derived episode', NULL, 'grade ' || e.max_grade || ' on day ' || p.max_grade_day || ': ' || p.max_evidence
FROM toxicity_episodes e JOIN _tox_ep p ON p.event_key = e.event_key
WHERE e.studyid = $s AND e.data_cut = $c AND e.syndrome = '{syndrome}'
  AND e.event_key NOT IN (SELECT episode_key FROM _tox_match)
UNION ALL
SELECT $s, $c, ae.usubjid, '{syndrome}', NULL, ae.event_key, ae.aeseq, ae.onset_day, ae.aetoxgr, NULL,
  'reported AE without derived episode', ae.grading_system,
  CASE WHEN n.n_assess IS NULL THEN 'no {syndrome} assessments recorded for the subject'
       ELSE n.n_assess || ' assessments, none with grade >= 1 within ' || {tol} || ' days of AE onset day ' || coalesce(ae.onset_day::VARCHAR, '?') END
FROM ({_ae_sql(syndrome)}) ae
LEFT JOIN (SELECT usubjid, count(*) AS n_assess FROM _tox_{syndrome.lower()}_rows GROUP BY usubjid) n USING (usubjid)
WHERE ae.event_key NOT IN (SELECT event_key FROM _tox_match)
""", params)


def _biomarkers(con, params: dict) -> None:
    insert(con, EPISODE_BIOMARKERS, f"""
WITH ep AS (SELECT usubjid, event_key, syndrome, onset_day, last_symptomatic_day FROM toxicity_episodes
            WHERE {_SCOPE}),
lb AS (SELECT usubjid, upper(lbtestcd) AS test, day, value FROM labs
       WHERE {_SCOPE} AND upper(lbtestcd) IN ('CRP', 'FERRITIN', 'IL6') AND value IS NOT NULL AND day IS NOT NULL),
x AS (
  SELECT ep.event_key, lb.test, lb.day, lb.value,
         row_number() OVER (PARTITION BY ep.event_key, lb.test ORDER BY lb.value DESC, lb.day) AS k
  FROM ep JOIN lb ON lb.usubjid = ep.usubjid
   AND lb.day BETWEEN ep.onset_day - {BIOMARKER_BEFORE} AND ep.last_symptomatic_day + {BIOMARKER_AFTER}
),
p AS (
  SELECT event_key,
    max(value) FILTER (WHERE test = 'CRP' AND k = 1) AS peak_crp, max(day) FILTER (WHERE test = 'CRP' AND k = 1) AS peak_crp_day,
    max(value) FILTER (WHERE test = 'FERRITIN' AND k = 1) AS peak_ferritin, max(day) FILTER (WHERE test = 'FERRITIN' AND k = 1) AS peak_ferritin_day,
    max(value) FILTER (WHERE test = 'IL6' AND k = 1) AS peak_il6, max(day) FILTER (WHERE test = 'IL6' AND k = 1) AS peak_il6_day
  FROM x GROUP BY event_key
)
SELECT $s::VARCHAR AS studyid, $c::DATE AS data_cut, ep.usubjid, ep.event_key AS episode_key, ep.syndrome, ep.onset_day,
  p.peak_crp, p.peak_crp_day, p.peak_crp_day - ep.onset_day AS peak_crp_rel_onset,
  p.peak_ferritin, p.peak_ferritin_day, p.peak_ferritin_day - ep.onset_day AS peak_ferritin_rel_onset,
  p.peak_il6, p.peak_il6_day, p.peak_il6_day - ep.onset_day AS peak_il6_rel_onset
FROM ep LEFT JOIN p USING (event_key)
""", params)


def _iec_hs(con, params: dict) -> None:
    """IEC-HS screen (rule documented in docs/toxicities.md; Hines 2023 criteria marked unverified)."""
    insert(con, IEC_HS_SCREEN, f"""
WITH lb AS (
  SELECT usubjid, upper(lbtestcd) AS test, day, value, uln FROM labs
  WHERE {_SCOPE} AND upper(lbtestcd) IN ('FERRITIN', 'NEUT', 'PLAT', 'ALT', 'AST', 'FIBRINO')
    AND value IS NOT NULL AND day IS NOT NULL
),
base AS (
  SELECT usubjid, arg_max(value, day) AS ferritin_at_infusion FROM lb
  WHERE test = 'FERRITIN' AND day BETWEEN -14 AND 0 GROUP BY usubjid
),
fer AS (
  SELECT f.usubjid, f.day, min(f.value) AS value, min(f.uln) AS uln FROM lb f WHERE f.test = 'FERRITIN' AND f.day >= 1
  GROUP BY f.usubjid, f.day
),
fer2 AS (
  SELECT fer.*, lag(value) OVER w AS prev_value,
         max(value) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prior_max,
         b.ferritin_at_infusion, value / nullif(b.ferritin_at_infusion, 0) AS fold
  FROM fer JOIN base b USING (usubjid)
  WINDOW w AS (PARTITION BY usubjid ORDER BY day)
),
-- Still climbing: above the previous value and above every earlier post-infusion value, so the ordinary
-- CRS ferritin peak and wobbles on its way down do not count (Hines 2023: rising as CRS resolves). It must
-- also be elevated, > 2 x ULN when the record has one: a doubling of a low ferritin within normal limits is
-- not an HLH-like signal.
cand AS (SELECT * FROM fer2 WHERE round(fold, 9) >= 2.0::DOUBLE
         AND (prev_value IS NULL OR value > prev_value) AND (prior_max IS NULL OR value > prior_max)
         AND (uln IS NULL OR uln <= 0 OR round(value, 9) > round(2.0::DOUBLE * uln, 9))),
-- New cytopenia is a fall after recovery from the lymphodepletion nadir: the lineage was below its threshold
-- after infusion, then at or above it on {IEC_HS_RECOVERY_VALUES} consecutive measured days (the last on day >= {IEC_HS_RECOVERY_FROM_DAY}),
-- then below it again. The nadir itself, and wobbles around the threshold on its way, do not count.
cnt AS (
  SELECT usubjid, test, day, min(value) AS value,
         min(value) < CASE test WHEN 'NEUT' THEN 1.0::DOUBLE ELSE 50.0::DOUBLE END AS low
  FROM lb WHERE test IN ('NEUT', 'PLAT') AND day >= 0 GROUP BY usubjid, test, day
),
cnt2 AS (
  SELECT *, bool_or(low) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS was_low,
         bool_and(NOT low) OVER (w ROWS BETWEEN {IEC_HS_RECOVERY_VALUES - 1} PRECEDING AND CURRENT ROW) AS run_ok,
         count(*) OVER (w ROWS BETWEEN {IEC_HS_RECOVERY_VALUES - 1} PRECEDING AND CURRENT ROW) AS run_n
  FROM cnt WINDOW w AS (PARTITION BY usubjid, test ORDER BY day)
),
recovered AS (
  SELECT usubjid, test, min(day) AS recovery_day FROM cnt2
  WHERE run_ok AND run_n = {IEC_HS_RECOVERY_VALUES} AND day >= {IEC_HS_RECOVERY_FROM_DAY}
    AND was_low  -- the nadir came before the run (whose values are all at or above the threshold)
  GROUP BY usubjid, test
),
lowcount AS (
  SELECT n.usubjid, n.day FROM cnt n JOIN recovered r USING (usubjid, test) WHERE n.low AND n.day > r.recovery_day
),
crit AS (
  SELECT c.usubjid, c.day,
    bool_or(l.test IN ('ALT', 'AST') AND l.uln > 0 AND round(l.value, 9) > round(5.0::DOUBLE * l.uln, 9)) AS transaminases,
    bool_or(l.test = 'FIBRINO' AND round(l.value, 9) < 1.5::DOUBLE) AS low_fibrinogen,
    bool_or(EXISTS (SELECT 1 FROM lowcount n WHERE n.usubjid = c.usubjid
                      AND n.day BETWEEN c.day - 3 AND c.day + 3)) AS new_cytopenia
  FROM cand c JOIN lb l ON l.usubjid = c.usubjid AND l.day BETWEEN c.day - 3 AND c.day + 3
  GROUP BY c.usubjid, c.day
),
crs AS (SELECT usubjid, event_key, onset_day, max_grade_day, last_symptomatic_day FROM toxicity_episodes
        WHERE {_SCOPE} AND syndrome = 'CRS'),
phase AS (
  SELECT c.usubjid, c.day,
    arg_max(crs.event_key, crs.max_grade_day) FILTER (WHERE crs.max_grade_day <= c.day) AS crs_episode_key,
    arg_max(CASE WHEN c.day <= crs.last_symptomatic_day THEN 'CRS resolving' ELSE 'after CRS' END, crs.max_grade_day)
      FILTER (WHERE crs.max_grade_day <= c.day) AS crs_phase,
    count(crs.event_key) AS n_crs,
    -- inside a CRS episode that has not reached its maximum yet (e.g. a second episode): ferritin rises with CRS
    coalesce(bool_or(c.day >= crs.onset_day AND c.day < crs.max_grade_day), FALSE) AS before_peak
  FROM cand c LEFT JOIN crs ON crs.usubjid = c.usubjid
  GROUP BY c.usubjid, c.day
),
flags AS (
  SELECT c.usubjid, c.day AS flag_day, c.value AS ferritin, c.ferritin_at_infusion, c.fold AS ferritin_fold,
    concat_ws(', ', CASE WHEN k.new_cytopenia THEN 'new cytopenia' END,
                    CASE WHEN k.transaminases THEN 'transaminases > 5 x ULN' END,
                    CASE WHEN k.low_fibrinogen THEN 'fibrinogen < 1.5 g/L' END) AS criteria_met,
    ph.crs_episode_key,
    coalesce(ph.crs_phase, CASE WHEN ph.n_crs = 0 THEN 'no CRS episode' END) AS crs_phase
  FROM cand c JOIN crit k USING (usubjid, day) JOIN phase ph USING (usubjid, day)
  WHERE (k.new_cytopenia OR k.transaminases OR k.low_fibrinogen) AND NOT ph.before_peak
)
SELECT $s::VARCHAR AS studyid, $c::DATE AS data_cut, usubjid, flag_day, ferritin, ferritin_at_infusion, ferritin_fold,
  criteria_met, crs_episode_key, crs_phase,
  row_number() OVER (PARTITION BY usubjid ORDER BY flag_day) = 1 AS first_flag,
  'screen, not a diagnosis' AS label
FROM flags WHERE crs_phase IS NOT NULL
""", params)


def derive_cell_therapy_toxicities(con, studyid, data_cut, config, review_store=None) -> None:
    """Build crs_grades, icans_grades, toxicity_daily_grades, toxicity_episodes, grade_discrepancies,
    episode_biomarkers and iec_hs_screen for one study and data cut."""
    config = config or {}
    reset(con, TABLES, studyid, data_cut)
    for syndrome, grading_key in (("CRS", "crs_grading"), ("ICANS", "icans_grading")):
        params = {"s": studyid, "c": data_cut, "grading": config.get(grading_key) or GRADING_SYSTEM}
        syn = syndrome.lower()
        source = "crs_assessments" if syndrome == "CRS" else "icans_assessments"
        run(con, _CRS_ROWS if syndrome == "CRS" else _ICANS_ROWS, params)
        n = run(con, f"SELECT count(*) FROM {source} WHERE {_SCOPE}", params).fetchone()[0]
        if n:
            _grade_rows(con, params, syndrome)
            (_insert_crs_grades if syndrome == "CRS" else _insert_icans_grades)(con, params)
            _insert_daily_from_assessments(con, params, syndrome)
            _episodes_from_assessments(con, params, syndrome)
            _discrepancies(con, params, syndrome)
        else:
            _episodes_from_aes(con, params, syndrome)
    params = {"s": studyid, "c": data_cut}
    _biomarkers(con, params)
    _iec_hs(con, params)
    for t in ("_tox_crs_rows", "_tox_icans_rows", "_tox_crs_graded", "_tox_icans_graded", "_tox_tp", "_tox_walk",
              "_tox_ep", "_tox_match"):
        con.execute(f"DROP TABLE IF EXISTS {t}")


DERIVATION = Derivation(
    name="crs_icans",
    writes=(*TABLES,),
    reads=('subjects', 'crs_assessments', 'icans_assessments', 'medications', 'adverse_events', 'labs'),
    run=derive_cell_therapy_toxicities,
)

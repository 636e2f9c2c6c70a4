"""ASTCT 2019 grade of every bedside CRS and ICANS assessment, fever masking, and the episode walk.

Source: Lee DW et al., ASTCT consensus grading, Biol Blood Marrow Transplant 2019;25:625-638.
Rules and the product's choices: docs/toxicities.md.

The one recursive step is the CRS episode state (fever masking depends on whether an episode is open, which
depends on the masked grades), written as a recursive CTE that walks every subject's assessment time points
in parallel.
"""
from __future__ import annotations

from safety.core.sql import after_infusion_sql, infusion_time_sql
from safety.core.vocabulary import ice_band_sql
from safety.derive.toxicity._sql import SCOPE, insert, run
from safety.schema import CRS_GRADES, ICANS_GRADES

# An episode ends after grade 0 on this many distinct assessed days after its last symptomatic day ...
EPISODE_END_ZERO_DAYS = 2
# ... or when more than this many days pass between symptomatic assessments with nothing assessed between.
EPISODE_MAX_UNASSESSED_GAP = 7
# Oxygen flow above this (L/min) is high-flow (ASTCT: low-flow nasal cannula <= 6 L/min).
HIGH_FLOW_ABOVE_LMIN = 6.0
# ASTCT grades ICANS of children aged 12 or younger with CAPD instead of ICE; CAPD >= 9 is grade 3.
CHILD_MAX_AGE_YEARS = 12
CAPD_GRADE3_FROM = 9

# Fever masking (Lee 2019: "once antipyretics or anti-cytokine therapy are given, fever is no longer
# required"): only therapy given for CRS, i.e. started once the episode has begun.
MASKING_CLASSES = ("tocilizumab", "anti_cytokine", "anakinra", "antipyretic")
# Corticosteroids mask only when systemic (an unrecorded route counts as systemic) and given for CRS/ICANS
# (an indication naming them, or none recorded during CRS).
STEROID_CLASS = "corticosteroid"
SYSTEMIC_ROUTES = ("INTRAVENOUS", "IV", "ORAL", "PO", "INTRAMUSCULAR", "IM", "SUBCUTANEOUS", "SC",
                   "ENTERAL", "NASOGASTRIC", "INTRAVENOUS BOLUS", "INTRAVENOUS DRIP")
MASKING_INDICATION_PATTERN = r"CRS|CYTOKINE|ICANS|NEUROTOX|IEC|FEVER|PYREXIA"
# A record whose category or indication says premedication or prophylaxis was given for the infusion or to prevent
# CRS, not to a patient who has CRS: it masks nothing, whatever its class (paracetamol premedication, prophylactic
# tocilizumab). Nor does a dose started before the infusion (the rule of _before_infusion).
PREMEDICATION_PATTERN = r"PRE-?MEDICAT|PROPHYLA|PREVENT"

# CRS and ICANS are responses after the immune effector cell infusion (Lee 2019): an assessment before it (day < 0,
# or day 0 before the infusion time when both carry one; the SDTM route's rule) is listed, not graded.
BEFORE_INFUSION_REASON = "before the CAR infusion: not graded"

# --- per-record grading -------------------------------------------------------------------------------

def _before_infusion(rows: str, ts: str, dtc: str) -> str:
    """``rows`` (an SQL subquery) with ``before_infusion``: its moment ``ts`` (a timestamp column; ``dtc``, the
    date/time as delivered, says whether it has a time) is before the subject's first CAR infusion, as
    ``safety.core.sql.after_infusion_sql`` reads it."""
    return f"""(
  SELECT x.*, coalesce(NOT {after_infusion_sql('j', f'x.{ts}', f'length(x.{dtc}) > 10')}, false) AS before_infusion
  FROM {rows} x
  LEFT JOIN (SELECT usubjid, first_infusion_date AS inf_date,
                    {infusion_time_sql('first_infusion_dtc')} AS inf_time
             FROM subjects WHERE {SCOPE}) j USING (usubjid))"""


_HF = f"round(o2_flow_lmin, 6) > {HIGH_FLOW_ABOVE_LMIN}::DOUBLE"

CRS_ROWS = f"""
CREATE OR REPLACE TEMP TABLE _tox_crs_rows AS
WITH a AS (
  SELECT usubjid, assessment_id, assessment_time, day, temp_c, hypotension,
         coalesce(vasopressors, 0) AS n_press, coalesce(vasopressin, false) AS vpn,
         nullif(upper(trim(oxygen)), '') AS o2, o2_flow_lmin,
         round(temp_c, 6) >= 38.0::DOUBLE AS fever, before_infusion
  FROM {_before_infusion(f"(SELECT * FROM crs_assessments WHERE {SCOPE})", "assessment_time", "crsdtc")}
), c AS (
  SELECT *,
    CASE WHEN n_press >= 2 THEN 4 WHEN n_press = 1 OR vpn THEN 3 WHEN hypotension THEN 2 ELSE 0 END AS hypotension_grade,
    CASE WHEN n_press >= 2 THEN n_press || ' vasopressors' || CASE WHEN vpn THEN ' + vasopressin' ELSE '' END
         WHEN n_press = 1 THEN 'one vasopressor' || CASE WHEN vpn THEN ' + vasopressin' ELSE '' END
         WHEN vpn THEN 'vasopressin alone (one vasopressor)'
         WHEN hypotension THEN 'hypotension without vasopressors' END AS hypotension_reason,
    -- flow, when recorded, decides between low-flow (grade 2) and high-flow (grade 3) nasal cannula
    CASE WHEN o2 IS NULL OR o2 = 'NONE' THEN 0
         WHEN o2 = 'BLOW_BY' THEN 2
         WHEN o2 IN ('LOW_FLOW_NC', 'HIGH_FLOW_NC') AND {_HF} THEN 3
         WHEN o2 IN ('LOW_FLOW_NC', 'HIGH_FLOW_NC') AND o2_flow_lmin IS NOT NULL THEN 2
         WHEN o2 = 'LOW_FLOW_NC' THEN 2
         WHEN o2 IN ('HIGH_FLOW_NC', 'FACEMASK', 'NONREBREATHER', 'VENTURI') THEN 3
         WHEN o2 IN ('CPAP', 'BIPAP', 'MECHANICAL_VENTILATION') THEN 4 END AS hypoxia_grade,
    CASE WHEN o2 = 'BLOW_BY' THEN 'blow-by oxygen'
         WHEN o2 = 'LOW_FLOW_NC' AND {_HF} THEN 'nasal cannula > 6 L/min'
         WHEN o2 = 'LOW_FLOW_NC' AND o2_flow_lmin IS NULL THEN 'low-flow nasal cannula (flow not recorded)'
         WHEN o2 = 'LOW_FLOW_NC' THEN 'low-flow nasal cannula <= 6 L/min'
         WHEN o2 = 'HIGH_FLOW_NC' AND {_HF} THEN 'high-flow nasal cannula > 6 L/min'
         WHEN o2 = 'HIGH_FLOW_NC' AND o2_flow_lmin IS NOT NULL
           THEN 'nasal cannula recorded as high-flow at ' || round(o2_flow_lmin, 1) || ' L/min (<= 6 L/min: low-flow)'
         WHEN o2 = 'HIGH_FLOW_NC' THEN 'high-flow nasal cannula (flow not recorded)'
         WHEN o2 = 'FACEMASK' THEN 'facemask'
         WHEN o2 = 'NONREBREATHER' THEN 'non-rebreather mask'
         WHEN o2 = 'VENTURI' THEN 'Venturi mask'
         WHEN o2 = 'CPAP' THEN 'CPAP'
         WHEN o2 = 'BIPAP' THEN 'BiPAP'
         WHEN o2 = 'MECHANICAL_VENTILATION' THEN 'mechanical ventilation'
         WHEN o2 IS NOT NULL AND o2 <> 'NONE' THEN 'unrecognised oxygen value ' || o2 END AS hypoxia_reason
  FROM a
), tp AS (
  -- The records of one time point (the same assessment time; date-only records of one day) describe one
  -- patient state and are graded together: a temperature in one record and the vasopressor in another are
  -- fever with a vasopressor (grade 3), not grade 1 beside an ungradable record. Each record keeps its own
  -- values and evidence; the grade is the time point's.
  SELECT * REPLACE (
      bool_or(fever) OVER w AS fever,
      max(hypotension_grade) OVER w AS hypotension_grade,
      arg_max(hypotension_reason, (hypotension_grade, hypotension_reason)) OVER w AS hypotension_reason,
      -- an unrecognised oxygen value leaves the time point ungradable, as it does a record alone
      CASE WHEN bool_or(hypoxia_grade IS NULL) OVER w THEN NULL ELSE max(hypoxia_grade) OVER w END AS hypoxia_grade,
      CASE WHEN bool_or(hypoxia_grade IS NULL) OVER w THEN arg_max(hypoxia_reason, hypoxia_grade IS NULL) OVER w
           ELSE arg_max(hypoxia_reason, (hypoxia_grade, hypoxia_reason)) OVER w END AS hypoxia_reason),
    count(temp_c) OVER w > 0 AS tp_temp_known, count(*) OVER w AS tp_records
  FROM c
  WINDOW w AS (PARTITION BY usubjid, day, assessment_time, before_infusion)
), g AS (
  SELECT *, greatest(hypotension_grade, hypoxia_grade) AS comp,
    concat_ws('; ',
      CASE WHEN temp_c IS NULL THEN 'temperature not recorded' ELSE 'T ' || round(temp_c, 1) || ' C' END,
      CASE WHEN n_press > 0 THEN n_press || ' vasopressor' || CASE WHEN n_press > 1 THEN 's' ELSE '' END END,
      CASE WHEN vpn THEN 'vasopressin' END,
      CASE WHEN hypotension AND n_press = 0 AND NOT vpn THEN 'hypotension' END,
      CASE WHEN hypotension IS NULL AND n_press = 0 AND NOT vpn THEN 'hypotension not recorded' END,
      CASE WHEN o2 IS NULL THEN 'oxygen not recorded' WHEN o2 <> 'NONE' THEN
           'oxygen ' || o2 || coalesce(' ' || round(o2_flow_lmin, 1) || ' L/min', '') END,
      CASE WHEN tp_records = 2 THEN 'graded with the other record at this time'
           WHEN tp_records > 2 THEN 'graded with the ' || (tp_records - 1) || ' other records at this time' END
    ) AS evidence
  FROM tp
)
SELECT *,
  CASE WHEN hypoxia_grade IS NULL OR before_infusion THEN NULL
       WHEN fever THEN greatest(1, comp) WHEN NOT tp_temp_known THEN NULL ELSE 0 END AS g_req,
  CASE WHEN hypoxia_grade IS NULL OR before_infusion THEN NULL
       WHEN fever THEN greatest(1, comp) ELSE comp END AS g_pot,
  CASE WHEN comp = 0 THEN NULL
       WHEN hypotension_grade = comp AND hypoxia_grade = comp THEN hypotension_reason || ' and ' || hypoxia_reason
       WHEN hypotension_grade = comp THEN hypotension_reason ELSE hypoxia_reason END AS comp_reason,
  CASE WHEN comp = 0 THEN NULL
       WHEN hypotension_grade = comp AND hypoxia_grade = comp THEN 'hypotension+hypoxia'
       WHEN hypotension_grade = comp THEN 'hypotension' ELSE 'hypoxia' END AS comp_name,
  o2 IN ('CPAP', 'BIPAP', 'MECHANICAL_VENTILATION') AS positive_pressure_o2,
  o2 IN ('CPAP', 'BIPAP', 'MECHANICAL_VENTILATION', 'FACEMASK', 'NONREBREATHER', 'VENTURI')
    OR (o2 IN ('LOW_FLOW_NC', 'HIGH_FLOW_NC') AND {_HF}) OR (o2 = 'HIGH_FLOW_NC' AND o2_flow_lmin IS NULL) AS high_flow_o2
FROM g
"""

ICANS_ROWS = f"""
CREATE OR REPLACE TEMP TABLE _tox_icans_rows AS
WITH a AS (
  SELECT i.usubjid, i.assessment_id, i.assessment_time, i.day, i.ice_score, i.capd_score, s.age, i.before_infusion,
         -- ASTCT: CAPD for children aged <= {CHILD_MAX_AGE_YEARS} (whole years; unknown age graded as an adult)
         coalesce(floor(s.age) <= {CHILD_MAX_AGE_YEARS}, false) AS child,
         nullif(upper(trim(i.consciousness)), '') AS loc, nullif(upper(trim(i.seizure)), '') AS sz,
         nullif(upper(trim(i.motor_weakness)), '') AS motor, nullif(upper(trim(i.cerebral_edema)), '') AS oed
  FROM {_before_infusion(f"(SELECT * FROM icans_assessments WHERE {SCOPE})", "assessment_time", "icansdtc")} i
  LEFT JOIN (SELECT usubjid, age FROM subjects WHERE {SCOPE}) s USING (usubjid)
), d AS (
  SELECT *, coalesce(loc = 'SEDATED', false) AS sedated,
    -- sedation for reasons other than ICANS hides consciousness and cognition: neither is gradable
    CASE WHEN ice_score IS NULL OR child OR loc = 'SEDATED' THEN NULL ELSE {ice_band_sql('ice_score')} END AS ice_grade,
    CASE WHEN capd_score IS NULL OR NOT child OR loc = 'SEDATED' THEN NULL WHEN capd_score = 0 THEN 0
         WHEN capd_score < {CAPD_GRADE3_FROM} THEN 1 ELSE 3 END AS capd_grade,
    CASE loc WHEN 'AWAKE' THEN 0 WHEN 'AWAKENS_SPONTANEOUSLY' THEN 1 WHEN 'AWAKENS_TO_VOICE' THEN 2
             WHEN 'AWAKENS_TO_TACTILE' THEN 3 WHEN 'UNAROUSABLE' THEN 4 END AS consciousness_grade,
    CASE sz WHEN 'NONE' THEN 0 WHEN 'RAPIDLY_RESOLVING' THEN 3 WHEN 'PROLONGED_OR_REPETITIVE' THEN 4 END AS seizure_grade,
    CASE motor WHEN 'NONE' THEN 0 WHEN 'DEEP_FOCAL' THEN 4 END AS motor_grade,
    CASE oed WHEN 'NONE' THEN 0 WHEN 'FOCAL' THEN 3 WHEN 'DIFFUSE' THEN 4 END AS edema_grade
  FROM a
), g AS (
  SELECT *, CASE WHEN child THEN capd_grade ELSE ice_grade END AS cog_grade,
    greatest(consciousness_grade, seizure_grade, motor_grade, edema_grade) AS other_max,
    CASE WHEN (CASE WHEN child THEN capd_grade ELSE ice_grade END) IS NULL
              AND coalesce(greatest(consciousness_grade, seizure_grade, motor_grade, edema_grade), 0) = 0
         THEN NULL
         ELSE greatest(CASE WHEN child THEN capd_grade ELSE ice_grade END,
                       consciousness_grade, seizure_grade, motor_grade, edema_grade) END AS grade
  FROM d
), r AS (
  SELECT *, CASE WHEN NOT before_infusion THEN grade END AS g_req, CASE WHEN NOT before_infusion THEN grade END AS g_pot,
    CASE WHEN grade IS NULL THEN NULL WHEN grade = 0 THEN 'none' ELSE concat_ws('+',
      CASE WHEN ice_grade = grade THEN 'ICE' END,
      CASE WHEN capd_grade = grade THEN 'CAPD' END,
      CASE WHEN consciousness_grade = grade THEN 'consciousness' END,
      CASE WHEN seizure_grade = grade THEN 'seizure' END,
      CASE WHEN motor_grade = grade THEN 'motor' END,
      CASE WHEN edema_grade = grade THEN 'cerebral oedema' END) END AS grade_component,
    concat_ws('; ',
      CASE WHEN sedated THEN 'sedated or intubated for reasons other than ICANS: consciousness and '
                             || CASE WHEN child THEN 'CAPD' ELSE 'ICE' END || ' not gradable' END,
      CASE WHEN child AND NOT sedated AND capd_score IS NULL AND ice_score IS NOT NULL
           THEN 'child aged ' || floor(age)::INTEGER || ' (<= {CHILD_MAX_AGE_YEARS}): ICANS is graded with CAPD, '
                || 'only an ICE score was recorded: not assessable' END,
      CASE WHEN NOT child AND capd_score IS NOT NULL AND ice_score IS NULL
           THEN 'CAPD recorded for a subject older than {CHILD_MAX_AGE_YEARS}: adults are graded with ICE' END
    ) AS gradability_note
  FROM g
)
SELECT * REPLACE (CASE WHEN NOT before_infusion THEN grade_component END AS grade_component),
  CASE WHEN before_infusion THEN '{BEFORE_INFUSION_REASON}'
       WHEN grade IS NULL THEN coalesce(nullif(gradability_note, ''),
         CASE WHEN child THEN 'CAPD not done and nothing else abnormal' ELSE 'ICE not done and nothing else abnormal' END)
       ELSE concat_ws('; ',
         CASE WHEN grade = 0 THEN CASE WHEN child THEN 'CAPD ' || capd_score ELSE 'ICE ' || ice_score END
                                  || ', no neurological findings'
         ELSE concat_ws(' and ',
           CASE WHEN ice_grade = grade THEN 'ICE ' || ice_score ||
                CASE ice_grade WHEN 1 THEN ' (7-9)' WHEN 2 THEN ' (3-6)' ELSE ' (0-2)' END END,
           CASE WHEN capd_grade = grade THEN 'CAPD ' || capd_score ||
                CASE capd_grade WHEN 1 THEN ' (1-8)' ELSE ' (>= {CAPD_GRADE3_FROM})' END END,
           CASE WHEN consciousness_grade = grade THEN
                CASE loc WHEN 'AWAKENS_SPONTANEOUSLY' THEN 'awakens spontaneously' WHEN 'AWAKENS_TO_VOICE' THEN 'awakens to voice'
                         WHEN 'AWAKENS_TO_TACTILE' THEN 'awakens only to touch' ELSE 'unarousable' END END,
           CASE WHEN seizure_grade = grade THEN
                CASE sz WHEN 'RAPIDLY_RESOLVING' THEN 'seizure resolving rapidly' ELSE 'prolonged or repetitive seizure' END END,
           CASE WHEN motor_grade = grade THEN 'deep focal motor weakness' END,
           CASE WHEN edema_grade = grade THEN
                CASE oed WHEN 'FOCAL' THEN 'focal cerebral oedema' ELSE 'diffuse cerebral oedema' END END) END,
         nullif(gradability_note, '')) END AS grade_reason,
  CASE WHEN child THEN 'CAPD' ELSE 'ICE' END AS cognitive_tool,
  concat_ws('; ', coalesce('ICE ' || ice_score, 'ICE not done'),
    CASE WHEN capd_score IS NOT NULL THEN 'CAPD ' || capd_score WHEN child THEN 'CAPD not done' END,
    CASE WHEN age IS NOT NULL THEN 'age ' || floor(age)::INTEGER END,
    coalesce(lower(loc), 'consciousness not recorded'),
    CASE WHEN sz IS NULL THEN 'seizure not recorded' WHEN sz <> 'NONE' THEN 'seizure ' || lower(sz) END,
    CASE WHEN motor IS NULL THEN 'motor not recorded' WHEN motor <> 'NONE' THEN 'motor ' || lower(motor) END,
    CASE WHEN oed IS NULL THEN 'oedema not recorded' WHEN oed <> 'NONE' THEN 'oedema ' || lower(oed) END,
    CASE WHEN (loc IS NOT NULL AND consciousness_grade IS NULL AND NOT sedated) OR (sz IS NOT NULL AND seizure_grade IS NULL)
           OR (motor IS NOT NULL AND motor_grade IS NULL) OR (oed IS NOT NULL AND edema_grade IS NULL)
         THEN 'unrecognised value ignored' END) AS evidence
FROM r
"""

# --- fever masking and the episode walk ----------------------------------------------------------------

def premedication_sql(alias: str = "") -> str:
    """SQL: the medications row ``alias`` was given as a premedication or prophylaxis (CMCAT or CMINDC), not to treat
    a toxicity the subject has."""
    a = f"{alias}." if alias else ""
    return f"regexp_matches(upper(concat_ws(' ', {a}cmcat, {a}cmindc)), '{PREMEDICATION_PATTERN}')"


def systemic_route_sql(alias: str = "") -> str:
    """SQL: the medications row ``alias`` was given systemically (``SYSTEMIC_ROUTES``, or no route recorded)."""
    a = f"{alias}." if alias else ""
    return f"(nullif(upper(trim({a}cmroute)), '') IS NULL OR upper(trim({a}cmroute)) IN {SYSTEMIC_ROUTES!r})"


def _masking_med_sql() -> str:
    """Medication records that can lift the fever requirement (class, route, indication, and given after the
    infusion and not as a premedication)."""
    meds = f"""(
    SELECT *, coalesce(start_time, cmst_date::TIMESTAMP) AS start_moment FROM medications
    WHERE {SCOPE} AND start_day IS NOT NULL AND NOT {premedication_sql()})"""
    return f"""
  SELECT usubjid, start_day, start_time FROM {_before_infusion(meds, "start_moment", "cmstdtc")}
  WHERE NOT before_infusion AND (
    lower(med_class) IN {MASKING_CLASSES!r}
    OR (lower(med_class) = '{STEROID_CLASS}' AND {systemic_route_sql()}
        AND (nullif(trim(cmindc), '') IS NULL OR regexp_matches(upper(cmindc), '{MASKING_INDICATION_PATTERN}'))))"""


def moment(day: str, ts: str) -> str:
    """A sortable moment in seconds from day 0: the study day and, when recorded, the time of day (a date-only
    value, or one at 00:00, is the start of its day)."""
    return f"({day} * 86400 + coalesce(epoch({ts}) - epoch(date_trunc('day', {ts})), 0))"


def _timepoints_sql(rows: str, masking: bool) -> str:
    """Time points (distinct assessment times) with the worst grade under both fever states, the moment of the
    time point before (``prev_moment``), and the moment of the latest masking medication given before the time
    point (``mask_moment``, compared in the walk with the moment the episode's fever may have begun)."""
    # A dose on the day of an assessment counts as given before it, unless both carry a time and the dose came
    # later (an assessment at 00:00 is taken as date-only).
    mask = f"""
      (SELECT max({moment('m.start_day', 'm.start_time')}) FROM _tox_mask_meds m
       WHERE m.usubjid = t.usubjid
         AND (m.start_day < t.day
              OR (m.start_day = t.day AND (m.start_time IS NULL OR t.assessment_time IS NULL
                                           OR t.assessment_time = date_trunc('day', t.assessment_time)
                                           OR m.start_time <= t.assessment_time))))""" if masking else "NULL::DOUBLE"
    return f"""
CREATE OR REPLACE TEMP TABLE _tox_tp AS
WITH t AS (
  SELECT usubjid, day, assessment_time, max(g_req) AS g_req, max(g_pot) AS g_pot
  FROM {rows} WHERE day IS NOT NULL AND NOT before_infusion GROUP BY usubjid, day, assessment_time
)
SELECT t.*, row_number() OVER (PARTITION BY usubjid ORDER BY day, assessment_time NULLS FIRST) AS rn,
       lag({moment('day', 'assessment_time')}) OVER (PARTITION BY usubjid ORDER BY day, assessment_time NULLS FIRST)
         AS prev_moment,
       {mask} AS mask_moment
FROM t
"""


# The moment from which therapy counts as given for an episode that begins at a time point: the fever a record
# shows (the highest temperature since the assessment before) may have begun right after that assessment, so
# therapy given since then counts (tocilizumab at 23:00 for a fever first recorded at 08:00 the next morning),
# at most from the start of the day before the onset, and always from the start of the onset day.
_MASK_FROM = f"""CASE WHEN t.prev_moment IS NULL THEN t.day * 86400.0
     ELSE least(t.day * 86400.0, greatest(t.prev_moment + 1, (t.day - 1) * 86400.0)) END"""


_WALK = f"""
CREATE OR REPLACE TEMP TABLE _tox_walk AS
WITH RECURSIVE w AS (
  SELECT usubjid, rn, day, assessment_time, false AS masked, g_req AS grade,
         coalesce(g_req >= 1, false) AS is_open, coalesce(g_req >= 1, false) AS in_episode,
         CASE WHEN g_req >= 1 THEN 1 ELSE 0 END AS episode_no,
         CASE WHEN g_req >= 1 THEN day END AS onset_day,
         CASE WHEN g_req >= 1 THEN {_MASK_FROM} END AS mask_from,
         CASE WHEN g_req >= 1 THEN day END AS last_sym_day,
         NULL::INTEGER AS last_zero_day, 0 AS zero_days
  FROM _tox_tp t WHERE rn = 1
  UNION ALL
  SELECT usubjid, rn, day, assessment_time, x_masked, x_grade,
         CASE WHEN x_grade >= 1 THEN true WHEN x_zero_days >= {EPISODE_END_ZERO_DAYS} THEN false ELSE x_open0 END,
         x_open0 OR coalesce(x_grade >= 1, false),
         x_episode_no, x_onset_day, x_mask_from, x_last_sym_day, x_last_zero_day, x_zero_days
  FROM (
    SELECT t.usubjid, t.rn, t.day, t.assessment_time,
           w.is_open AND t.day - w.last_sym_day <= {EPISODE_MAX_UNASSESSED_GAP} AS x_open0,
           -- masked only by therapy given for this episode: since its fever may have begun (_MASK_FROM)
           x_open0 AND coalesce(t.mask_moment >= w.mask_from, false) AS x_masked,
           CASE WHEN x_masked THEN t.g_pot ELSE t.g_req END AS x_grade,
           coalesce(x_grade >= 1 AND NOT x_open0, false) AS x_started,
           coalesce(x_grade = 0 AND x_open0 AND t.day > w.last_sym_day
                    AND t.day > coalesce(w.last_zero_day, -1000000), false) AS x_zero_day,
           w.episode_no + CASE WHEN x_started THEN 1 ELSE 0 END AS x_episode_no,
           CASE WHEN x_started THEN t.day ELSE w.onset_day END AS x_onset_day,
           CASE WHEN x_started THEN {_MASK_FROM} ELSE w.mask_from END AS x_mask_from,
           CASE WHEN x_grade >= 1 THEN t.day ELSE w.last_sym_day END AS x_last_sym_day,
           CASE WHEN x_zero_day THEN t.day ELSE w.last_zero_day END AS x_last_zero_day,
           CASE WHEN x_grade >= 1 THEN 0 WHEN x_zero_day THEN w.zero_days + 1 ELSE w.zero_days END AS x_zero_days
    FROM w JOIN _tox_tp t ON t.usubjid = w.usubjid AND t.rn = w.rn + 1
  )
)
SELECT usubjid, day, assessment_time, masked, grade, in_episode, episode_no, mask_from FROM w
"""


def grade_rows(con, params: dict, syndrome: str) -> None:
    """Grade every assessment of one syndrome into _tox_<syn>_rows and _tox_<syn>_graded (row grades and
    episode numbers). Needs the load's date macros on ``con`` (:func:`safety.ingest.sqlmacros.install`): ct_time
    reads the infusion time as ingest does (_before_infusion)."""
    syn = syndrome.lower()
    run(con, CRS_ROWS if syndrome == "CRS" else ICANS_ROWS, params)
    if syndrome == "CRS":
        run(con, f"CREATE OR REPLACE TEMP TABLE _tox_mask_meds AS {_masking_med_sql()}", params)
    run(con, _timepoints_sql(f"_tox_{syn}_rows", masking=(syndrome == "CRS")), params)
    run(con, _WALK, params)
    run(con, f"""
CREATE OR REPLACE TEMP TABLE _tox_{syn}_graded AS
SELECT r.*, coalesce(w.masked, false) AS masked,
       CASE WHEN w.masked THEN r.g_pot ELSE r.g_req END AS row_grade,
       CASE WHEN w.in_episode THEN w.episode_no END AS episode_no,
       CASE WHEN w.in_episode THEN w.mask_from END AS mask_from,
       CASE WHEN w.in_episode THEN r.usubjid || '/{syndrome}/' || w.episode_no END AS episode_key
FROM _tox_{syn}_rows r
LEFT JOIN _tox_walk w ON w.usubjid = r.usubjid AND w.day = r.day AND NOT r.before_infusion
     AND w.assessment_time IS NOT DISTINCT FROM r.assessment_time
""", params)


def insert_crs_grades(con, params: dict) -> None:
    insert(con, CRS_GRADES, f"""
SELECT $s::VARCHAR AS studyid, $c::DATE AS data_cut, usubjid, assessment_id, assessment_time, day, temp_c, fever,
       NOT masked AS fever_required, hypotension_grade, hypoxia_grade, row_grade AS grade,
       CASE WHEN row_grade IS NULL THEN NULL
            WHEN row_grade = 0 THEN 'none'
            WHEN comp = 0 OR comp IS NULL THEN 'fever'
            ELSE comp_name END AS grade_component,
       CASE WHEN before_infusion THEN '{BEFORE_INFUSION_REASON}'
            WHEN hypoxia_grade IS NULL THEN hypoxia_reason || ': not gradable'
            WHEN row_grade IS NULL AND comp > 0 THEN 'temperature not recorded and fever required: ' || comp_reason || ' not graded as CRS'
            WHEN row_grade IS NULL THEN 'temperature not recorded and fever required'
            WHEN fever AND comp = 0 THEN 'fever, no hypotension or hypoxia'
            WHEN fever THEN comp_reason
            WHEN masked AND comp > 0 THEN comp_reason || ' (afebrile; fever not required after anti-cytokine/antipyretic therapy for this CRS)'
            WHEN masked THEN 'afebrile after anti-cytokine/antipyretic therapy for this CRS, no hypotension or hypoxia'
            WHEN comp > 0 THEN 'afebrile, no CRS (' || comp_reason || ' without fever)'
            ELSE 'afebrile, no CRS' END AS grade_reason,
       evidence, episode_key
FROM _tox_crs_graded
""", params)


def insert_icans_grades(con, params: dict) -> None:
    insert(con, ICANS_GRADES, """
SELECT $s::VARCHAR AS studyid, $c::DATE AS data_cut, usubjid, assessment_id, assessment_time, day, ice_score,
       ice_grade, consciousness_grade, seizure_grade, motor_grade, edema_grade, row_grade AS grade,
       grade_component, grade_reason, evidence, episode_key, capd_score, capd_grade, cognitive_tool,
       sedated AS not_gradable_sedated
FROM _tox_icans_graded
""", params)

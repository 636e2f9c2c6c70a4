"""IEC-HS screen (`iec_hs_screen`): candidates for committee review, never a diagnosis.

Source: Hines MR et al., Immune effector cell-associated hemophagocytic lymphohistiocytosis-like syndrome,
Transplant Cell Ther 2023;29:438.e1-e16: ferritin elevated (> 2 x ULN or > 2 x the
baseline at infusion) and/or rapidly rising, onset as CRS resolves or after it (or without CRS), with
haemophagocytosis-like laboratory features. The thresholds are data (safety/data/iec_hs_criteria.csv); the
product's readings of what the paper leaves to clinical judgement are in docs/toxicities.md.
"""
from __future__ import annotations

from pathlib import Path

from safety.core.files import read_data_csv
from safety.core.sdtm_map import effective_rows
from safety.core.sql import temp_table
from safety.core.vocabulary import POSITIVE_PRESSURE_DEVICES, POST_INFUSION_FIRST_DAY, blood_result, fatal_ae
from safety.derive.outcomes._data import read_rules
from safety.derive.toxicity._sql import SCOPE, insert
from safety.derive.toxicity.assessment_grading import STEROID_CLASS, premedication_sql, systemic_route_sql
from safety.schema import IEC_HS_SCREEN

CRITERIA_FILE = Path(__file__).resolve().parents[2] / "data" / "iec_hs_criteria.csv"
# Findings count when measured within this many days of the ferritin value.
FEATURE_WINDOW_DAYS = 3
# Baseline: the latest value on days -14 to 0.
BASELINE_FROM_DAY = -14
# "Worsening" cytopenia: an existing cytopenia falls to at most this fraction of the previous value.
WORSENING_FRACTION = 0.5
# "New" cytopenia: a fall after RECOVERY_VALUES consecutive measured days at or above the threshold, the last on
# RECOVERY_FROM_DAY or later (recovered from the lymphodepletion nadir, or never below it).
RECOVERY_VALUES = 3
RECOVERY_FROM_DAY = 7
# After a CRS peak the ferritin must rise again by at least this factor over the previous value (more than
# assay and day-to-day variation): a ferritin falling, or wobbling, as CRS resolves is CRS.
RERISE_FACTOR = 1.25
# Management looked at for the grade: from the day before the flag to this many days after it.
GRADE_WINDOW_DAYS = 14
# IEC-HS-directed therapy (grade 2): Hines 2023's examples by class (anakinra, corticosteroids) and HLH-directed
# agents by name. No IL-6 blocker: tocilizumab and siltuximab (class anti_cytokine) are the CRS's drugs.
IEC_HS_DIRECTED_CLASSES = ("anakinra", "corticosteroid")
IEC_HS_DIRECTED_PATTERN = r"ruxolitinib|emapalumab|etoposide"


def _death_pattern() -> str:
    """The IEC-HS/HLH row's pattern of safety/data/death_causes.csv: one list of the syndrome's names for the screen's
    grade 5 and for the deaths' cause category."""
    rows = [r["pattern"] for r in read_rules("death_causes.csv") if r["cause_category"] == "IEC-HS/HLH"]
    if len(rows) != 1:
        raise ValueError(f"safety/data/death_causes.csv: {len(rows)} rows of cause_category IEC-HS/HLH (one needed)")
    return rows[0]


IEC_HS_DEATH_PATTERN = _death_pattern()
_COLUMNS = ("feature", "lbtestcd", "comparison", "threshold", "relative_to", "label", "source")
_RELATIVE = {"value", "uln", "baseline", "previous", "uln_or_baseline"}


def load_criteria(path: Path = CRITERIA_FILE) -> list[dict]:
    """The screen's thresholds; a malformed row fails loudly with the file and row."""
    rows = []
    for i, r in read_data_csv(path, _COLUMNS):
        if r["comparison"] not in ("<", ">", ">=") or r["relative_to"] not in _RELATIVE:
            raise ValueError(f"{path} row {i}: comparison must be <, > or >= and relative_to one of {sorted(_RELATIVE)}")
        try:
            thr = float(r["threshold"])
        except ValueError:
            raise ValueError(f"{path} row {i}: threshold {r['threshold']!r} is not a number") from None
        rows.append({**r, "lbtestcd": r["lbtestcd"].upper(), "threshold": thr})
    return rows


def _criteria_table(con) -> None:
    temp_table(con, "_iec_crit", {"feature": "VARCHAR", "test": "VARCHAR", "cmp": "VARCHAR", "thr": "DOUBLE",
                                  "rel": "VARCHAR", "label": "VARCHAR"},
               [(r["feature"], r["lbtestcd"], r["comparison"], r["threshold"], r["relative_to"], r["label"])
                for r in load_criteria()])


def _support_table(con, config: dict | None) -> None:
    """``_iec_support`` (what, match): the PR texts of life-threatening organ support, and of an indication naming
    another cause, from the SDTM map the CRS time points read (study rows included): one definition of each."""
    kinds = {"dialysis": "dialysis", "support_other_cause": "other cause", "support_crs_cause": "CRS cause"}
    rows = [("positive-pressure ventilation" if kind == "oxygen_device" else kinds[kind], match)
            for kind, match, code, _ in effective_rows(config)
            if kind in kinds or (kind == "oxygen_device" and code in POSITIVE_PRESSURE_DEVICES)]
    temp_table(con, "_iec_support", {"what": "VARCHAR", "match": "VARCHAR"}, rows)


def _lab_days_sql(test_cond: str, subjects: str | None = None) -> str:
    """Blood results of the tests ``upper(lbtestcd) {test_cond}`` per subject, test and day (lowest and highest
    value, ULN); with ``subjects`` (an SQL subquery) only theirs."""
    of = f" AND usubjid IN {subjects}" if subjects else ""
    return f"""
  SELECT usubjid, upper(lbtestcd) AS test, day, min(value) AS vmin, max(value) AS vmax, max(uln) AS uln FROM labs
  WHERE {SCOPE} AND upper(lbtestcd) {test_cond} AND value IS NOT NULL AND day IS NOT NULL
    AND {blood_result()}{of}
  GROUP BY ALL"""


def _baseline_sql(days: str) -> str:
    """Each subject's and test's baseline from the per-day results ``days``: the latest value on days -14 to 0."""
    return f"""
  SELECT usubjid, test, arg_max(vmax, day) AS baseline FROM {days} WHERE day BETWEEN {BASELINE_FROM_DAY} AND 0
  GROUP BY usubjid, test"""


def iec_hs(con, params: dict, config: dict | None = None) -> None:
    """Build iec_hs_screen for one study and cut (toxicity_episodes must be built already)."""
    _criteria_table(con)
    _support_table(con, config)
    w = FEATURE_WINDOW_DAYS
    insert(con, IEC_HS_SCREEN, f"""
WITH
-- the ferritin days of every subject first: the other tests (most of the labs) are read only for the subjects with
-- a ferritin candidate, and a subject's baseline and series depend on its own rows alone
lbf AS ({_lab_days_sql("= 'FERRITIN'")}),
basef AS ({_baseline_sql("lbf")}),
fc AS (SELECT * FROM _iec_crit WHERE test = 'FERRITIN'),
fer AS (
  SELECT l.usubjid, l.day, l.vmax AS value, l.uln, b.baseline,
         lag(l.vmax) OVER (PARTITION BY l.usubjid ORDER BY l.day) AS prev_value
  FROM lbf l LEFT JOIN basef b USING (usubjid, test)
),
ferc AS (
  SELECT f.*,
    (SELECT string_agg(fc.label, ' and ' ORDER BY fc.rel) FROM fc WHERE
       (fc.rel = 'uln' AND f.uln > 0 AND round(f.value, 9) > round(fc.thr * f.uln, 9))
       -- relative rises count only above the ULN: a doubling within normal limits is not hyperferritinaemia
       OR (fc.rel = 'baseline' AND f.baseline > 0 AND round(f.value, 9) > round(fc.thr * f.baseline, 9)
           AND (coalesce(f.uln, 0) <= 0 OR f.value > f.uln))
       OR (fc.rel = 'previous' AND f.prev_value > 0 AND round(f.value, 9) >= round(fc.thr * f.prev_value, 9)
           AND (coalesce(f.uln, 0) <= 0 OR f.value > f.uln))
    ) AS ferritin_criterion
  FROM fer f WHERE f.day >= {POST_INFUSION_FIRST_DAY}
),
crs AS (SELECT usubjid, event_key, onset_day, max_grade_day, last_symptomatic_day FROM toxicity_episodes
        WHERE {SCOPE} AND syndrome = 'CRS'),
phase AS (
  -- the latest CRS episode begun by the ferritin day decides the phase
  SELECT f.usubjid, f.day, arg_max(crs.event_key, crs.onset_day) AS crs_episode_key,
    arg_max(CASE WHEN f.day <= crs.max_grade_day THEN 'CRS not yet past its peak'
                 WHEN f.day <= crs.last_symptomatic_day THEN 'CRS resolving' ELSE 'after CRS' END, crs.onset_day) AS crs_phase
  FROM ferc f LEFT JOIN crs ON crs.usubjid = f.usubjid AND crs.onset_day <= f.day
  GROUP BY f.usubjid, f.day
),
cand AS (
  -- after a CRS peak the ferritin must be rising again: a ferritin falling as CRS resolves is CRS
  SELECT f.*, p.crs_episode_key, coalesce(p.crs_phase, 'no CRS episode') AS crs_phase
  FROM ferc f JOIN phase p USING (usubjid, day)
  WHERE f.ferritin_criterion IS NOT NULL
    AND coalesce(p.crs_phase, 'no CRS episode') <> 'CRS not yet past its peak'
    AND (p.crs_phase IS NULL OR f.prev_value IS NULL
         OR round(f.value, 9) >= round({RERISE_FACTOR}::DOUBLE * f.prev_value, 9))
),
lb AS ({_lab_days_sql("IN (SELECT test FROM _iec_crit)", "(SELECT usubjid FROM cand)")}),
base AS ({_baseline_sql("lb")}),
series AS (
  SELECT l.*, b.baseline, k.thr AS cyto_thr,
    lag(l.vmin) OVER win AS prev_min,
    round(l.vmin, 9) < round(k.thr, 9) AS low
  FROM lb l LEFT JOIN base b USING (usubjid, test)
  LEFT JOIN (SELECT test, thr FROM _iec_crit WHERE feature = 'cytopenia') k USING (test)
  WINDOW win AS (PARTITION BY l.usubjid, l.test ORDER BY l.day)
),
-- at or above the threshold on {RECOVERY_VALUES} consecutive measured days, the last on day {RECOVERY_FROM_DAY} or
-- later: recovered from the lymphodepletion nadir, or never below it (a first fall after that is new as well)
runs AS (
  SELECT *, bool_and(NOT low) OVER (w ROWS BETWEEN {RECOVERY_VALUES - 1} PRECEDING AND CURRENT ROW) AS run_ok,
         count(*) OVER (w ROWS BETWEEN {RECOVERY_VALUES - 1} PRECEDING AND CURRENT ROW) AS run_n
  FROM series WHERE cyto_thr IS NOT NULL AND day >= 0 WINDOW w AS (PARTITION BY usubjid, test ORDER BY day)
),
recovered AS (
  SELECT usubjid, test, min(day) AS recovery_day FROM runs
  WHERE run_ok AND run_n = {RECOVERY_VALUES} AND day >= {RECOVERY_FROM_DAY} GROUP BY usubjid, test
),
feat AS (
  SELECT s.usubjid, s.day, k.label AS criterion,
    CASE WHEN k.feature = 'cytopenia' THEN
           CASE WHEN s.day > r.recovery_day THEN 'new ' ELSE 'worsening ' END
           || k.label || ' (' || round(s.vmin, 2) || coalesce(' from ' || round(s.prev_min, 2), '') || ')'
         ELSE k.label || ' (' || round(CASE WHEN k.cmp = '<' THEN s.vmin ELSE s.vmax END, 2) || ')' END AS finding
  FROM series s JOIN _iec_crit k ON k.test = s.test AND k.feature NOT LIKE 'ferritin%'
  LEFT JOIN recovered r ON r.usubjid = s.usubjid AND r.test = s.test
  WHERE s.day >= {POST_INFUSION_FIRST_DAY} AND CASE
    -- new: a fall after recovery from the nadir; worsening: an existing cytopenia falls to half or less
    WHEN k.feature = 'cytopenia' THEN s.low
         AND (s.day > r.recovery_day
              OR (round(s.prev_min, 9) < round(k.thr, 9)
                  AND round(s.vmin, 9) <= round({WORSENING_FRACTION}::DOUBLE * s.prev_min, 9)))
    WHEN k.rel = 'value' AND k.cmp = '<' THEN round(s.vmin, 9) < round(k.thr, 9)
    WHEN k.rel = 'value' THEN round(s.vmax, 9) > round(k.thr, 9)
    WHEN k.rel = 'uln' THEN s.uln > 0 AND round(s.vmax, 9) > round(k.thr * s.uln, 9)
    WHEN k.rel = 'uln_or_baseline' THEN s.uln > 0
         AND round(s.vmax, 9) > round(k.thr * greatest(s.uln, coalesce(s.baseline, 0)), 9)
    ELSE false END
),
near AS (
  -- one finding per criterion: the one measured nearest the ferritin day (two that day: the first in text order)
  SELECT c.usubjid, c.day, arg_min(f.finding, (abs(f.day - c.day) * 1000 + f.day, f.finding)) AS finding
  FROM cand c JOIN feat f ON f.usubjid = c.usubjid AND f.day BETWEEN c.day - {w} AND c.day + {w}
  GROUP BY c.usubjid, c.day, f.criterion
),
flags AS (
  SELECT c.usubjid, c.day AS flag_day, c.value AS ferritin, c.uln AS ferritin_uln, c.baseline AS ferritin_at_infusion,
    c.value / nullif(c.baseline, 0) AS ferritin_fold, c.prev_value AS ferritin_previous, c.ferritin_criterion,
    string_agg(DISTINCT f.finding, ', ' ORDER BY f.finding) AS criteria_met, c.crs_episode_key, c.crs_phase
  FROM cand c JOIN near f ON f.usubjid = c.usubjid AND f.day = c.day
  GROUP BY ALL
),
meds AS (
  -- IEC-HS-directed: not a premedication or prophylaxis (hydrocortisone before a transfusion, prophylactic
  -- anakinra), and a corticosteroid only when systemic (a cream treats no IEC-HS), as the fever masking of CRS reads
  SELECT m.*, (lower(m.med_class) IN {IEC_HS_DIRECTED_CLASSES!r}
               OR regexp_matches(lower(coalesce(m.cmtrt, '')), '{IEC_HS_DIRECTED_PATTERN}'))
              AND NOT {premedication_sql('m')}
              AND (lower(m.med_class) IS DISTINCT FROM '{STEROID_CLASS}' OR {systemic_route_sql('m')}) AS directed,
         coalesce(m.cmdecod, m.cmtrt) || ' from day ' || m.start_day
           || coalesce(' to day ' || m.end_day, ' (no end recorded)') AS given
  FROM medications m WHERE m.studyid = $s AND m.data_cut = $c
),
mg AS (
  SELECT fl.usubjid, fl.flag_day,
    min(m.start_day) FILTER (WHERE lower(m.med_class) = 'vasopressor') AS vaso_day,
    min(m.start_day) FILTER (WHERE m.directed) AS directed_day,
    arg_min(coalesce(m.cmdecod, m.cmtrt), (m.start_day, coalesce(m.cmseq, -1), coalesce(m.cmdecod, m.cmtrt)))
      FILTER (WHERE m.directed) AS directed_drug
  FROM flags fl JOIN meds m ON m.usubjid = fl.usubjid
   AND m.start_day BETWEEN fl.flag_day - 1 AND fl.flag_day + {GRADE_WINDOW_DAYS}
  GROUP BY fl.usubjid, fl.flag_day
),
-- a drug begun before the window and given into it is not counted (Hines 2023 grades by the therapy the IEC-HS
-- needs and is silent on therapy begun for CRS or ICANS before it): the reason names it, the first begun
running AS (
  SELECT fl.usubjid, fl.flag_day,
    arg_min(m.given, (m.start_day, coalesce(m.cmseq, -1), m.given)) FILTER (WHERE m.directed) AS directed_running,
    arg_min(m.given, (m.start_day, coalesce(m.cmseq, -1), m.given)) FILTER (WHERE lower(m.med_class) = 'vasopressor')
      AS vaso_running
  FROM flags fl JOIN meds m ON m.usubjid = fl.usubjid
   AND m.start_day < fl.flag_day - 1 AND coalesce(m.end_day >= fl.flag_day - 1, true)
  GROUP BY fl.usubjid, fl.flag_day
),
sup AS (
  SELECT fl.usubjid, fl.flag_day, min(a.day) AS support_day
  FROM flags fl JOIN crs_assessments a ON a.usubjid = fl.usubjid AND a.studyid = $s AND a.data_cut = $c
   AND a.day BETWEEN fl.flag_day AND fl.flag_day + {GRADE_WINDOW_DAYS}
   AND (coalesce(a.vasopressors, 0) > 0 OR coalesce(a.vasopressin, false)
        OR list_contains($positive_pressure, upper(a.oxygen)))
  GROUP BY fl.usubjid, fl.flag_day
),
-- organ support PR records (Hines 2023 grade 4: dialysis, positive-pressure ventilation), as the CRS time points
-- read PR: a record whose indication names another cause (a procedure, airway protection in ICANS) and not CRS or
-- hypoxia is not counted. PR builds no CRS time point for a subject with a bedside CRS file, nor one for dialysis.
pr AS (
  SELECT p.usubjid, p.prseq, p.start_day, coalesce(p.prdecod, p.prtrt) AS name,
         min(k.what) AS what  -- a text naming both: 'dialysis' before 'positive-pressure ventilation'
  FROM procedures p JOIN _iec_support k ON k.what IN ('dialysis', 'positive-pressure ventilation')
   AND regexp_matches(lower(concat_ws(' ', p.prdecod, p.prtrt)), k.match)
  WHERE p.studyid = $s AND p.data_cut = $c AND p.start_day IS NOT NULL
    AND NOT (p.prindc IS NOT NULL
             AND EXISTS (SELECT 1 FROM _iec_support o WHERE o.what = 'other cause'
                                                        AND regexp_matches(lower(p.prindc), o.match))
             AND NOT EXISTS (SELECT 1 FROM _iec_support c WHERE c.what = 'CRS cause'
                                                            AND regexp_matches(lower(p.prindc), c.match)))
  GROUP BY ALL
),
org AS (
  SELECT fl.usubjid, fl.flag_day, min(pr.start_day) AS organ_day,
         arg_min(pr.what || ' (' || pr.name || ')', (pr.start_day, pr.what, pr.prseq)) AS organ_support
  FROM flags fl JOIN pr ON pr.usubjid = fl.usubjid
   AND pr.start_day BETWEEN fl.flag_day - 1 AND fl.flag_day + {GRADE_WINDOW_DAYS}
  GROUP BY fl.usubjid, fl.flag_day
),
-- the cause attributing a death to IEC-HS: as DS gives it, else a fatal AE naming IEC-HS (a death dated in DM, or
-- only by its fatal AE); NULL when neither names it
fatal AS (
  SELECT usubjid, arg_min(coalesce(aedecod, aeterm), aeseq) AS fatal_term FROM adverse_events
  WHERE {SCOPE} AND {fatal_ae('')} AND regexp_matches(upper(coalesce(aedecod, aeterm, '')), '{IEC_HS_DEATH_PATTERN}')
  GROUP BY usubjid
),
died AS (
  SELECT usubjid, death_day,
    CASE WHEN regexp_matches(upper(coalesce(death_cause, '')), '{IEC_HS_DEATH_PATTERN}') THEN death_cause
         ELSE f.fatal_term || ' (fatal AE)' END AS iec_hs_cause
  FROM subjects LEFT JOIN fatal f USING (usubjid) WHERE {SCOPE}
),
graded AS (
  SELECT fl.*, s.death_day, s.iec_hs_cause,
    CASE WHEN s.death_day >= fl.flag_day AND s.iec_hs_cause IS NOT NULL THEN 5
         WHEN mg.vaso_day IS NOT NULL OR sup.support_day IS NOT NULL OR org.organ_day IS NOT NULL THEN 4
         WHEN mg.directed_day IS NOT NULL THEN 2 ELSE 1 END AS grade,
    least(mg.vaso_day, sup.support_day) AS life_support_day, org.organ_day, org.organ_support,
    mg.directed_day, mg.directed_drug, run.directed_running, run.vaso_running
  FROM flags fl LEFT JOIN mg USING (usubjid, flag_day) LEFT JOIN sup USING (usubjid, flag_day)
  LEFT JOIN org USING (usubjid, flag_day) LEFT JOIN died s USING (usubjid)
  LEFT JOIN running run USING (usubjid, flag_day)
)
SELECT $s::VARCHAR AS studyid, $c::DATE AS data_cut, usubjid, flag_day, ferritin, ferritin_at_infusion, ferritin_fold,
  criteria_met, crs_episode_key, crs_phase,
  row_number() OVER (PARTITION BY usubjid ORDER BY flag_day) = 1 AS first_flag,
  'screen, not a diagnosis' AS label,
  ferritin_uln, ferritin_previous, ferritin_criterion, grade,
  CASE grade
    WHEN 5 THEN 'death on day ' || death_day || ' attributed to ' || iec_hs_cause
    WHEN 4 THEN 'life-threatening: ' || CASE
      WHEN life_support_day IS NULL OR organ_day < life_support_day THEN organ_support || ' from day ' || organ_day
      ELSE 'vasopressor or positive-pressure ventilation from day ' || life_support_day END
    WHEN 2 THEN 'IEC-HS-directed therapy (' || directed_drug || ') from day ' || directed_day
    ELSE 'no IEC-HS-directed therapy or organ support recorded within ' || {GRADE_WINDOW_DAYS} || ' days' END
  -- what would have raised the grade had it begun in the window: directed therapy below 2, a vasopressor below 4
  || CASE WHEN grade < 4 THEN coalesce('; begun before the window, not counted: ' || nullif(concat_ws(', ',
       CASE WHEN grade < 2 THEN directed_running END, vaso_running), ''), '') ELSE '' END
  || CASE WHEN grade < 3 THEN '; grade 3 (bleeding needing products, organ dysfunction) is not derivable from the data: '
                              || 'a lower bound' ELSE '' END AS grade_reason
FROM graded
""", {**params, "positive_pressure": list(POSITIVE_PRESSURE_DEVICES)})

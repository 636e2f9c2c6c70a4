"""Peak CRP, ferritin and IL-6 around every CRS/ICANS episode (`episode_biomarkers`)."""
from __future__ import annotations

from safety.core.vocabulary import blood_result
from safety.derive.toxicity._sql import SCOPE, insert
from safety.schema import EPISODE_BIOMARKERS

# Biomarker window around an episode: onset - 1 to last symptomatic day + 3.
BIOMARKER_BEFORE, BIOMARKER_AFTER = 1, 3


def biomarkers(con, params: dict) -> None:
    insert(con, EPISODE_BIOMARKERS, f"""
WITH ep AS (SELECT usubjid, event_key, syndrome, onset_day, last_symptomatic_day FROM toxicity_episodes
            WHERE {SCOPE}),
lb AS (SELECT usubjid, upper(lbtestcd) AS test, day, value FROM labs
       WHERE {SCOPE} AND upper(lbtestcd) IN ('CRP', 'FERRITIN', 'IL6') AND value IS NOT NULL AND day IS NOT NULL
         AND {blood_result()}),
x AS (
  SELECT ep.event_key, lb.test, lb.day, lb.value
  FROM ep JOIN lb ON lb.usubjid = ep.usubjid
   AND lb.day BETWEEN ep.onset_day - {BIOMARKER_BEFORE} AND ep.last_symptomatic_day + {BIOMARKER_AFTER}
),
p AS (
  -- the peak and its day (the first day of the peak value): one grouping, no sort
  SELECT event_key,
    max(value) FILTER (WHERE test = 'CRP') AS peak_crp, arg_max(day, [value, -day]) FILTER (WHERE test = 'CRP') AS peak_crp_day,
    max(value) FILTER (WHERE test = 'FERRITIN') AS peak_ferritin,
    arg_max(day, [value, -day]) FILTER (WHERE test = 'FERRITIN') AS peak_ferritin_day,
    max(value) FILTER (WHERE test = 'IL6') AS peak_il6, arg_max(day, [value, -day]) FILTER (WHERE test = 'IL6') AS peak_il6_day
  FROM x GROUP BY event_key
)
SELECT $s::VARCHAR AS studyid, $c::DATE AS data_cut, ep.usubjid, ep.event_key AS episode_key, ep.syndrome, ep.onset_day,
  p.peak_crp, p.peak_crp_day, p.peak_crp_day - ep.onset_day AS peak_crp_rel_onset,
  p.peak_ferritin, p.peak_ferritin_day, p.peak_ferritin_day - ep.onset_day AS peak_ferritin_rel_onset,
  p.peak_il6, p.peak_il6_day, p.peak_il6_day - ep.onset_day AS peak_il6_rel_onset
FROM ep LEFT JOIN p USING (event_key)
""", params)

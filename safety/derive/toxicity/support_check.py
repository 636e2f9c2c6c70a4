"""Vasopressors in CM that a subject's bedside CRS assessments of the same days do not record.

The CRS grade of a subject with the celltox assessment file is derived from that file alone: CM is never merged
into it (docs/input-format.md), so a norepinephrine given on day 2 and missing from the day-2 assessments leaves a
one-vasopressor hypotension (ASTCT grade 3) graded as fever alone. The check lists such records for the data
manager to query with the site. Assessments built from SDTM read their vasopressors from CM and are not checked.
"""
from __future__ import annotations

from safety.core.vocabulary import ASSESSMENT_SOURCE_FILE


def unrecorded_vasopressors_sql(subject_filter: str = "TRUE") -> str:
    """SQL: one row per CM vasopressor record (usubjid, cmseq, drug, start_day, end_day) and the days inside it whose
    bedside CRS assessments record no vasopressor (``assessed_days``, text), for the subjects ``subject_filter``
    keeps (an SQL condition on ``usubjid``, with the caller's parameters). A record without an end counts on its
    start day only."""
    return f"""
WITH a AS (
  SELECT usubjid, day, max(coalesce(vasopressors, 0)) AS n_press, bool_or(coalesce(vasopressin, false)) AS vpn
  FROM crs_assessments
  WHERE source = '{ASSESSMENT_SOURCE_FILE}' AND day IS NOT NULL AND {subject_filter}
  GROUP BY usubjid, day
),
m AS (
  SELECT usubjid, cmseq, coalesce(cmdecod, cmtrt) AS drug, start_day, end_day,
         coalesce(end_day, start_day) AS last_day
  FROM medications
  WHERE lower(med_class) = 'vasopressor' AND start_day IS NOT NULL AND {subject_filter}
)
SELECT m.usubjid, m.cmseq, m.drug, m.start_day, m.end_day,
       string_agg(CAST(a.day AS VARCHAR), ', ' ORDER BY a.day) AS assessed_days
FROM m JOIN a ON a.usubjid = m.usubjid AND a.day BETWEEN m.start_day AND m.last_day
WHERE a.n_press = 0 AND NOT a.vpn
GROUP BY m.usubjid, m.cmseq, m.drug, m.start_day, m.end_day
ORDER BY m.usubjid, m.start_day, m.cmseq
"""

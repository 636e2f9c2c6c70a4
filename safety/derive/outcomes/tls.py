"""Laboratory tumour lysis syndrome by Cairo-Bishop (Cairo & Bishop, Br J Haematol 2004;127:3-11).

Laboratory TLS = two or more of the criteria in safety/data/tls_cairo_bishop.csv (uric acid, potassium, phosphate
high; calcium low; each by an absolute limit or a 25 % change from baseline) met from 3 days before the initiation
of therapy to 7 days after it. In a CAR-T regimen the cytotoxic treatment starts with lymphodepletion and the CAR
infusion (day 0) starts a second lysis, so the window runs from 3 days before the first lymphodepleting dose
(subjects.lymphodepletion_start_day; the infusion when none is recorded) to day 7. The criteria need not fall on
the same day. Baseline is the latest value before therapy starts (the first lymphodepleting dose, else day 0), as
the paper's "from baseline" is the value before treatment: a value of the 3 days before counts both as the baseline
and against the absolute limits, and one drawn during lymphodepletion is never the baseline; without one only the
absolute limits apply. Limits are compared with
``>=`` / ``<=`` as the publication words them ("≥ 476 µmol/L"), after rounding both sides to 9 decimals.
A rule's ``population`` is 'all', 'adult' or 'child': the paper's phosphate limit is 2.1 mmol/L in children and
1.45 mmol/L in adults. A child is a subject younger than CHILD_BELOW_AGE years at enrolment (the paper does not
say; 18, as paediatric trials count); a subject of unknown age is graded with the adult limit, the lower one.
"""
from __future__ import annotations

from safety.core.sql import record_order
from safety.core.vocabulary import blood_result
from safety.derive.graph import Derivation
from safety.derive.outcomes import _data
from safety.derive.toxicity._sql import insert, reset
from safety.schema import TLS_SCREEN

DAYS_BEFORE_START = 3  # the window opens this many days before lymphodepletion (else the infusion)
WINDOW_LAST_DAY = 7
MIN_CRITERIA = 2
CHILD_BELOW_AGE = 18

_SQL = f"""
WITH rules AS (
  SELECT criterion, unnest(string_split(upper(tests), '|')) AS testcd, lower(population) AS population,
         lower(direction) AS direction, absolute_si, unit, pct_change FROM _tls_rules
),
lab AS (
  SELECT l.usubjid, r.criterion, r.direction, r.absolute_si, r.pct_change, l.day, l.value, l.lbdtc, l.lbseq,
         least(coalesce(s.lymphodepletion_start_day, 0), 0) AS therapy_start_day
  FROM labs l JOIN rules r ON upper(l.lbtestcd) = r.testcd
  JOIN subjects s ON s.studyid = l.studyid AND s.data_cut = l.data_cut AND s.usubjid = l.usubjid
  WHERE l.studyid = $s AND l.data_cut = $c AND l.value IS NOT NULL AND l.day IS NOT NULL AND s.infused
    AND (r.population = 'all'
         OR r.population = CASE WHEN s.age < {CHILD_BELOW_AGE} THEN 'child' ELSE 'adult' END)
    AND {blood_result('l')}
    AND lower(trim(l.unit)) = lower(r.unit)  -- a value in another unit, or of none, is never compared (as CTCAE grading)
),
base AS (
  SELECT usubjid, criterion, arg_max(lab.value, {record_order('lab')}) AS baseline FROM lab
  WHERE day < therapy_start_day
  GROUP BY usubjid, criterion
),
hits AS (
  SELECT lab.usubjid, lab.criterion, lab.day, lab.value, lab.lbdtc, lab.lbseq,
         CASE WHEN lab.direction = 'high' AND round(lab.value, 9) >= round(lab.absolute_si, 9) THEN 'abs'
              WHEN lab.direction = 'low' AND round(lab.value, 9) <= round(lab.absolute_si, 9) THEN 'abs'
              WHEN lab.direction = 'high' AND base.baseline > 0
                   AND round(lab.value, 9) >= round(base.baseline * (1 + lab.pct_change / 100.0), 9) THEN 'change'
              WHEN lab.direction = 'low' AND base.baseline > 0
                   AND round(lab.value, 9) <= round(base.baseline * (1 - lab.pct_change / 100.0), 9) THEN 'change'
         END AS how
  FROM lab LEFT JOIN base USING (usubjid, criterion)
  WHERE lab.day BETWEEN lab.therapy_start_day - {DAYS_BEFORE_START} AND {WINDOW_LAST_DAY}
),
firsts AS (
  -- the first result that meets the criterion, its value and how it met it taken from that one record
  SELECT usubjid, criterion, min(day) AS first_day, arg_min(h.value, {record_order('h')}) AS value,
         arg_min(h.how, {record_order('h')}) AS how
  FROM hits h WHERE how IS NOT NULL GROUP BY usubjid, criterion
),
per AS (
  SELECT usubjid, count(*) AS n,
         string_agg(criterion || ' d' || CAST(first_day AS VARCHAR) || ' ' || printf('%g', value) || ' (' || how || ')',
                    '; ' ORDER BY first_day, criterion) AS criteria,
         list(first_day ORDER BY first_day) AS days
  FROM firsts GROUP BY usubjid
)
SELECT $s AS studyid, $c AS data_cut, s.usubjid, CAST(coalesce(per.n, 0) AS INTEGER) AS criteria_met,
       per.criteria, coalesce(per.n, 0) >= {MIN_CRITERIA} AS laboratory_tls,
       CASE WHEN coalesce(per.n, 0) >= {MIN_CRITERIA} THEN per.days[{MIN_CRITERIA}] END AS first_day
FROM subjects s LEFT JOIN per USING (usubjid)
WHERE s.studyid = $s AND s.data_cut = $c AND s.infused
"""


def derive_tls(con, studyid, data_cut, config, review_store=None) -> None:
    """Rebuild tls_screen for one (study, cut)."""
    reset(con, (TLS_SCREEN,), studyid, data_cut)
    table = _data.install(con, "tls_cairo_bishop.csv")
    bad = [r[0] for r in con.execute(f"SELECT DISTINCT population FROM {table} "
                                     "WHERE population IS NULL OR population NOT IN ('all', 'adult', 'child')").fetchall()]
    if bad:  # a misspelt population would leave its rule applying to nobody
        raise ValueError(f"safety/data/tls_cairo_bishop.csv: population must be all, adult or child, not {bad}")
    insert(con, TLS_SCREEN, _SQL, {"s": studyid, "c": data_cut})


DERIVATION = Derivation(name="tls", writes=(TLS_SCREEN,), reads=("labs", "subjects"), run=derive_tls)

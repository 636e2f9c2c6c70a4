"""Cellular kinetics per subject and analyte (PC): Cmax, Tmax, AUC over days 0-28 and persistence.

One value per sample day (the highest when a day has several samples); a result below the LLOQ counts as 0 in
Cmax and the AUC and never as detectable. AUC is the linear trapezoid over the sample days inside 0-28 (no
extrapolation to day 28 when the last sample is earlier: ``auc_last_day`` says where it stopped). Tmax is the
first day at Cmax when several days tie. ``values_used`` lists what went in, so a reader can redo the sum.
"""
from __future__ import annotations

from safety.derive.graph import Derivation
from safety.derive.toxicity._sql import insert, reset
from safety.schema import CELLULAR_KINETICS

AUC_FIRST_DAY = 0
AUC_LAST_DAY = 28

_SQL = f"""
WITH d AS (
  SELECT usubjid, pctestcd, any_value(unit) AS unit, day,
         max(CASE WHEN below_lloq THEN 0.0 ELSE value END) AS v, bool_and(below_lloq) AS blq
  FROM pc_concentrations
  WHERE studyid = $s AND data_cut = $c AND day IS NOT NULL AND day >= 0 AND (value IS NOT NULL OR below_lloq)
  GROUP BY usubjid, pctestcd, day
),
t AS (
  SELECT usubjid, pctestcd, day, v,
         lead(day) OVER w AS nday, lead(v) OVER w AS nv
  FROM d WHERE day BETWEEN {AUC_FIRST_DAY} AND {AUC_LAST_DAY}
  WINDOW w AS (PARTITION BY usubjid, pctestcd ORDER BY day)
),
auc AS (
  SELECT usubjid, pctestcd, count(*) AS n, max(day) AS last_day,
         sum(CASE WHEN nday IS NOT NULL THEN (nday - day) * (v + nv) / 2.0 END) AS auc
  FROM t GROUP BY usubjid, pctestcd
),
agg AS (
  SELECT usubjid, pctestcd, any_value(unit) AS unit, count(*) AS n_samples, max(v) AS cmax,
         max(day) FILTER (WHERE NOT blq AND v > 0) AS last_detectable_day,
         string_agg(CAST(day AS VARCHAR) || ':' || CASE WHEN blq THEN 'BLQ' ELSE printf('%g', v) END, '; ' ORDER BY day)
           AS values_used
  FROM d GROUP BY usubjid, pctestcd
)
SELECT $s AS studyid, $c AS data_cut, agg.usubjid, agg.pctestcd, agg.unit, CAST(agg.n_samples AS INTEGER) AS n_samples,
       agg.cmax,
       CASE WHEN agg.cmax > 0 THEN (SELECT min(d.day) FROM d WHERE d.usubjid = agg.usubjid AND d.pctestcd = agg.pctestcd
                                     AND d.v = agg.cmax) END AS tmax_day,
       CASE WHEN auc.n >= 2 THEN auc.auc END AS auc_0_28,
       CASE WHEN auc.n >= 2 THEN auc.last_day END AS auc_last_day,
       agg.last_detectable_day, agg.values_used
FROM agg LEFT JOIN auc USING (usubjid, pctestcd)
"""


def derive_kinetics(con, studyid, data_cut, config, review_store=None) -> None:
    """Rebuild cellular_kinetics for one (study, cut)."""
    reset(con, (CELLULAR_KINETICS,), studyid, data_cut)
    insert(con, CELLULAR_KINETICS, _SQL, {"s": studyid, "c": data_cut})


DERIVATION = Derivation(name="cellular_kinetics", writes=(CELLULAR_KINETICS,), reads=("pc_concentrations",),
                        run=derive_kinetics)

"""Cellular kinetics per subject and analyte (PC): Cmax, Tmax, AUC over days 0-28 and persistence.

One value per sample day (the highest when a day has several samples); a result below the LLOQ counts as 0 in
Cmax and the AUC and never as detectable. AUC is the linear trapezoid over the sample days inside 0-28 (no
extrapolation to day 28 when the last sample is earlier: ``auc_last_day`` says where it stopped). Tmax is the
first day at Cmax when several days tie. ``values_used`` lists what went in, so a reader can redo the sum. A result
above the assay's upper limit ('>100000', not re-assayed diluted) is used at its bound, as the peak it is, with its
sign in ``values_used`` and the note that Cmax (and the AUC when it lies in days 0-28) is a lower bound.

The parameters are of peripheral blood, in one unit, as product labels give them (Cmax, Tmax and AUC0-28d in
blood): a sample of another specimen (bone marrow, CSF, tissue) or in another unit than the subject's most used
one is left out, and ``values_used`` says how many ("not used: 1 BONE MARROW sample"). A sample without a
specimen is taken as blood. Units are compared in their one spelling (safety.core.vocabulary.unit_spelling, as the
load matches units), so ``cells/ul`` is ``cells/uL``. :func:`curve_samples` is that choice of samples, which the
charts draw too.
"""
from __future__ import annotations

from safety.core.vocabulary import unit_spelling_sql
from safety.derive.graph import Derivation
from safety.derive.toxicity._sql import insert, reset
from safety.schema import CELLULAR_KINETICS

AUC_FIRST_DAY = 0
AUC_LAST_DAY = 28
BLOOD_SPECIMENS = r"BLOOD|PBMC|PERIPHERAL"  # PCSPEC values of peripheral blood (and its mononuclear cells)


def blood_specimen(spec: str) -> str:
    """SQL: the specimen ``spec`` (PCSPEC of a sample, PPSPEC of a sponsor's parameter) is peripheral blood, the
    specimen celltox's parameters are of; one not given is taken as blood."""
    return f"({spec} IS NULL OR regexp_matches(upper({spec}), '{BLOOD_SPECIMENS}'))"


def curve_samples(where: str = "TRUE") -> str:
    """SQL: the pc_concentrations rows ``where`` keeps that a kinetics curve may hold (day 0 on, a value or BLQ),
    each with ``used``: peripheral blood in the subject's main unit for the analyte, the samples the parameters are
    computed from and the charts draw. ``spec`` is the specimen (upper case), ``main_unit`` the main unit as most
    of its samples spell it. Units are compared in their one spelling (``cells/ul`` is ``cells/uL``)."""
    return f"""(
WITH pc AS (
  SELECT usubjid, pctestcd, unit, {unit_spelling_sql('unit')} AS unit_key, day, value, lloq, below_lloq, above_uloq,
         {blood_specimen('pcspec')} AS blood, upper(pcspec) AS spec
  FROM pc_concentrations
  WHERE {where} AND day IS NOT NULL AND day >= 0 AND (value IS NOT NULL OR below_lloq)
),
-- the unit of most blood samples (of two as many, the first in text order of the one spelling), as most of them
-- spell it
n AS (SELECT usubjid, pctestcd, unit_key, unit, count(*) AS n FROM pc WHERE blood GROUP BY ALL),
main AS (
  SELECT usubjid, pctestcd, arg_min_null(unit_key, (-n, coalesce(unit_key, ''))) AS unit_key  -- a missing unit is one too
  FROM (SELECT usubjid, pctestcd, unit_key, sum(n) AS n FROM n GROUP BY ALL)
  GROUP BY usubjid, pctestcd
),
spelt AS (
  SELECT n.usubjid, n.pctestcd, arg_min_null(n.unit, (-n.n, coalesce(n.unit, ''))) AS unit
  FROM n JOIN main m ON m.usubjid = n.usubjid AND m.pctestcd = n.pctestcd AND m.unit_key IS NOT DISTINCT FROM n.unit_key
  GROUP BY n.usubjid, n.pctestcd
)
SELECT pc.*, pc.blood AND pc.unit_key IS NOT DISTINCT FROM m.unit_key AS used, s.unit AS main_unit
FROM pc LEFT JOIN main m USING (usubjid, pctestcd) LEFT JOIN spelt s USING (usubjid, pctestcd)
)"""


_SQL = f"""
WITH pc AS (SELECT * FROM {curve_samples('studyid = $s AND data_cut = $c')}),
left_out AS (
  SELECT pc.usubjid, pc.pctestcd,
         string_agg(CASE WHEN spec IS NOT NULL THEN n || ' ' || spec || ' sample' || CASE WHEN n > 1 THEN 's' ELSE '' END
                         ELSE n || ' sample' || CASE WHEN n > 1 THEN 's' ELSE '' END || ' in ' || unit END,
                    ', ' ORDER BY spec NULLS LAST, unit) AS note
  FROM (SELECT usubjid, pctestcd, CASE WHEN NOT blood THEN spec END AS spec,
               CASE WHEN blood THEN coalesce(unit, 'no unit') END AS unit, count(*) AS n
        FROM pc WHERE NOT used GROUP BY ALL) pc
  GROUP BY ALL
),
d AS (
  SELECT usubjid, pctestcd, any_value(main_unit) AS unit, day,
         max(CASE WHEN below_lloq THEN 0.0 ELSE value END) AS v, bool_and(below_lloq) AS blq,
         -- the day's value is a bound when the sample giving it was reported above the assay's upper limit ('>100000')
         arg_max(coalesce(above_uloq, false),
                 (CASE WHEN below_lloq THEN 0.0 ELSE value END, coalesce(above_uloq, false))) AS above
  FROM pc WHERE used
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
         string_agg(CAST(day AS VARCHAR) || ':' || CASE WHEN blq THEN 'BLQ' WHEN above THEN '>' || printf('%g', v)
                                                        ELSE printf('%g', v) END, '; ' ORDER BY day) AS values_used,
         count(*) FILTER (WHERE above) AS n_above,
         count(*) FILTER (WHERE above AND day BETWEEN {AUC_FIRST_DAY} AND {AUC_LAST_DAY}) AS n_above_auc
  FROM d GROUP BY usubjid, pctestcd
)
SELECT $s AS studyid, $c AS data_cut, agg.usubjid, agg.pctestcd, agg.unit, CAST(agg.n_samples AS INTEGER) AS n_samples,
       agg.cmax,
       CASE WHEN agg.cmax > 0 THEN (SELECT min(d.day) FROM d WHERE d.usubjid = agg.usubjid AND d.pctestcd = agg.pctestcd
                                     AND d.v = agg.cmax) END AS tmax_day,
       CASE WHEN auc.n >= 2 THEN auc.auc END AS auc_0_28,
       CASE WHEN auc.n >= 2 THEN auc.last_day END AS auc_last_day,
       agg.last_detectable_day,
       agg.values_used
         || CASE WHEN agg.n_above_auc > 0 AND auc.n >= 2 THEN '; Cmax and AUC are lower bounds: '
                 WHEN agg.n_above > 0 THEN '; Cmax is a lower bound: ' ELSE '' END
         || CASE WHEN agg.n_above > 0 THEN agg.n_above || ' sample' || CASE WHEN agg.n_above > 1 THEN 's' ELSE '' END
                                           || ' above the assay''s upper limit' ELSE '' END
         || coalesce('; not used: ' || lo.note, '') AS values_used
FROM agg LEFT JOIN auc USING (usubjid, pctestcd) LEFT JOIN left_out lo USING (usubjid, pctestcd)
"""


def derive_kinetics(con, studyid, data_cut, config, review_store=None) -> None:
    """Rebuild cellular_kinetics for one (study, cut)."""
    reset(con, (CELLULAR_KINETICS,), studyid, data_cut)
    insert(con, CELLULAR_KINETICS, _SQL, {"s": studyid, "c": data_cut})


DERIVATION = Derivation(name="cellular_kinetics", writes=(CELLULAR_KINETICS,), reads=("pc_concentrations",),
                        run=derive_kinetics)

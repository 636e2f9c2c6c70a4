"""The sponsor's kinetic parameters (PP) beside celltox's own from PC (cellular_kinetics), with a difference flag.

Which PP parameter is compared with which celltox value, and how far apart they may be, is data
(safety/data/pp_parameters.csv): Cmax within 5% (relative to celltox's value), Tmax within 1 day, the AUC over
days 0-28 within 10%. A PP row names its analyte in PPCAT (the PCTESTCD or the PCTEST); with no PPCAT, the
subject's only analyte. celltox's parameters are of peripheral blood: a sponsor's parameter of another specimen
(PPSPEC bone marrow) is not compared with them (status 'specimen not blood'), as a marrow Cmax is no blood Cmax.
Tmax in hours, weeks or another unit of time is converted to days (safety/data/time_units.csv; no unit is days). A
Cmax in a unit that converts to PC's (safety/data/pc_unit_conversions.csv, the kinetics' one table: cells/mL to
cells/uL) is converted, and so is that analyte's AUC when its unit is day times the Cmax unit, ``note`` naming the
factor; a Cmax in a unit that does not convert is not compared (status 'unit differs') and neither is that analyte's
AUC. Units are compared in their one spelling (safety.core.vocabulary.unit_spelling, as the kinetics and the load
compare them), so ``copies/µg gDNA`` is ``copies/ug gDNA``. Choices are in docs/outcomes.md.
"""
from __future__ import annotations

from safety.core.files import install_time_units
from safety.core.vocabulary import unit_spelling_sql
from safety.derive.graph import Derivation
from safety.derive.outcomes import _data
from safety.derive.outcomes.kinetics import CONVERSIONS, blood_specimen
from safety.derive.toxicity._sql import insert, reset
from safety.schema import KINETICS_COMPARISON

AGREE, DIFFERS, UNIT_DIFFERS = "agree", "differs", "unit differs"
NOT_BLOOD = "specimen not blood"

_SQL = """
WITH tu AS (SELECT unit AS u, days FROM _time_units),  -- units upper case
analytes AS (
  SELECT DISTINCT usubjid, pctestcd, upper(pctest) AS pctest FROM pc_concentrations WHERE studyid = $s AND data_cut = $c
),
n_an AS (SELECT usubjid, count(DISTINCT pctestcd) AS n, any_value(pctestcd) AS only FROM analytes GROUP BY usubjid),
pp AS (
  SELECT p.*, {blood} AS blood, r.parameter, r.tolerance_kind, r.tolerance, r.interval_end_day AS want_end,
         coalesce((SELECT a.pctestcd FROM analytes a WHERE a.usubjid = p.usubjid
                     AND p.ppcat IN (a.pctestcd, a.pctest) LIMIT 1),
                  CASE WHEN p.ppcat IS NULL AND n_an.n = 1 THEN n_an.only END) AS pctestcd
  FROM pk_parameters p JOIN _pp_parameters r ON r.pptestcd = p.pptestcd
  LEFT JOIN n_an ON n_an.usubjid = p.usubjid
  WHERE p.studyid = $s AND p.data_cut = $c
    -- an interval parameter is the AUC over days 0-28 only when its interval says so
    AND (r.interval_end_day IS NULL OR (coalesce(p.interval_start_day, -1) = 0 AND p.interval_end_day = r.interval_end_day))
),
k AS (SELECT * FROM cellular_kinetics WHERE studyid = $s AND data_cut = $c),
cmax_unit AS (  -- the sponsor's blood Cmax unit per subject and analyte decides whether values can be compared
  SELECT usubjid, pctestcd, any_value(unit) AS unit FROM pp WHERE parameter = 'cmax' AND blood GROUP BY ALL
),
conv AS (SELECT * FROM {conversions}),
-- the factor from the sponsor's Cmax unit to celltox's, in their one spelling (µg is ug): 1 in the same unit, the
-- ratio of their factors to a common unit when both convert to it (cells/mL to cells/uL), NULL when they do not
unit_factor AS (
  SELECT u.*, CASE WHEN u.s_key = u.c_key THEN 1.0
                   WHEN coalesce(sc.to_key, u.s_key) = coalesce(cc.to_key, u.c_key)
                     THEN coalesce(sc.factor, 1.0) / coalesce(cc.factor, 1.0) END AS factor
  FROM (SELECT cu.usubjid, cu.pctestcd, cu.unit AS s_unit, {sponsor_cmax_unit} AS s_key, {celltox_unit} AS c_key
        FROM cmax_unit cu JOIN k ON k.usubjid = cu.usubjid AND k.pctestcd = cu.pctestcd
        WHERE cu.unit IS NOT NULL AND k.unit IS NOT NULL) u
  LEFT JOIN conv sc ON sc.from_key = u.s_key LEFT JOIN conv cc ON cc.from_key = u.c_key
),
j0 AS (
  SELECT pp.usubjid, pp.pctestcd, pp.ppcat, pp.ppseq, pp.pptestcd, pp.parameter, pp.value AS sponsor_value,
         pp.unit AS sponsor_unit, pp.pporres, pp.tolerance_kind, pp.tolerance, pp.blood,
         -- celltox's value of the same specimen only: none beside a marrow parameter
         CASE WHEN NOT pp.blood THEN NULL WHEN pp.parameter = 'cmax' THEN k.cmax
              WHEN pp.parameter = 'tmax_day' THEN CAST(k.tmax_day AS DOUBLE) WHEN pp.parameter = 'auc_0_28' THEN k.auc_0_28
              END AS celltox_value,
         CASE WHEN NOT pp.blood THEN NULL WHEN pp.parameter = 'cmax' THEN k.unit WHEN pp.parameter = 'tmax_day' THEN 'day'
              WHEN pp.parameter = 'auc_0_28' THEN 'day*' || k.unit END AS celltox_unit,
         pp.parameter = 'tmax_day' AND tu.days IS NULL AS time_unit_unknown,
         -- the factor applies to the Cmax, and to the AUC only in day times the Cmax unit ('day*cells/mL'); an AUC in
         -- another unit beside a converted Cmax is not compared. No sponsor Cmax unit or no celltox unit: 1, as before
         CASE WHEN pp.parameter = 'tmax_day' THEN tu.days
              WHEN uf.usubjid IS NULL THEN 1.0
              WHEN pp.parameter = 'cmax' OR uf.s_key = uf.c_key THEN uf.factor
              WHEN {auc_unit} IN ('DAY*' || uf.s_key, 'DAYS*' || uf.s_key, 'D*' || uf.s_key) THEN uf.factor
              END AS factor,
         pp.parameter <> 'tmax_day' AND uf.usubjid IS NOT NULL AND uf.s_key <> uf.c_key AS unit_converted,
         k.usubjid IS NOT NULL AS derived
  FROM pp
  LEFT JOIN k ON k.usubjid = pp.usubjid AND k.pctestcd = pp.pctestcd
  LEFT JOIN tu ON tu.u = coalesce(nullif(upper(replace(pp.unit, ' ', '')), ''), 'DAYS')  -- no unit: days
  LEFT JOIN unit_factor uf ON uf.usubjid = pp.usubjid AND uf.pctestcd = pp.pctestcd
),
j AS (
  SELECT *, sponsor_value * factor AS sponsor_in_celltox_unit,
         parameter <> 'tmax_day' AND factor IS NULL AS unit_differs
  FROM j0
)
SELECT $s AS studyid, $c AS data_cut, usubjid, coalesce(pctestcd, ppcat) AS analyte, ppseq, pptestcd, parameter,
       sponsor_value, sponsor_unit, celltox_value, celltox_unit,
       CASE WHEN NOT unit_differs AND NOT time_unit_unknown THEN sponsor_in_celltox_unit - celltox_value END AS difference,
       CASE WHEN NOT unit_differs AND NOT time_unit_unknown AND celltox_value <> 0
            -- + 0.0: a difference that rounds to zero from below is 0.0, not -0.0 (the page printed "-0")
            THEN round((sponsor_in_celltox_unit - celltox_value) / abs(celltox_value) * 100.0, 1) + 0.0 END AS difference_pct,
       CASE tolerance_kind WHEN 'relative' THEN printf('%g%%', tolerance * 100) ELSE printf('%g day', tolerance) END
         AS tolerance,
       CASE WHEN pctestcd IS NULL THEN 'analyte not in PC'
            WHEN NOT blood THEN '{not_blood}'
            WHEN NOT derived OR celltox_value IS NULL THEN 'not derived by celltox'
            WHEN sponsor_value IS NULL THEN 'not calculable by the sponsor'
            WHEN time_unit_unknown THEN 'time unit not recognised'
            WHEN unit_differs THEN '{unit_differs}'
            WHEN tolerance_kind = 'relative' AND abs(sponsor_in_celltox_unit - celltox_value)
                 > tolerance * abs(celltox_value) + 1e-9 THEN '{differs}'
            WHEN tolerance_kind = 'absolute' AND abs(sponsor_in_celltox_unit - celltox_value) > tolerance + 1e-9
                 THEN '{differs}'
            ELSE '{agree}' END AS status,
       CASE WHEN unit_converted AND NOT unit_differs AND blood
            THEN 'converted from ' || sponsor_unit || ' to ' || celltox_unit || ' (x' || printf('%g', factor) || ')'
            END AS note
FROM j
"""


def derive_kinetics_comparison(con, studyid, data_cut, config, review_store=None) -> None:
    """Rebuild kinetics_comparison for one (study, cut)."""
    reset(con, (KINETICS_COMPARISON,), studyid, data_cut)
    _data.install(con, "pp_parameters.csv")
    install_time_units(con)  # the load's table of units of time, on this derivation's cursor
    sql = _SQL.format(agree=AGREE, differs=DIFFERS, unit_differs=UNIT_DIFFERS, not_blood=NOT_BLOOD,
                      blood=blood_specimen("p.ppspec"), sponsor_cmax_unit=unit_spelling_sql("cu.unit"),
                      celltox_unit=unit_spelling_sql("k.unit"), auc_unit=unit_spelling_sql("pp.unit"),
                      conversions=CONVERSIONS)
    insert(con, KINETICS_COMPARISON, sql, {"s": studyid, "c": data_cut})


DERIVATION = Derivation(name="kinetics_comparison", writes=(KINETICS_COMPARISON,),
                        reads=("pk_parameters", "pc_concentrations", "cellular_kinetics"),
                        run=derive_kinetics_comparison)

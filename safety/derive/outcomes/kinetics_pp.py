"""The sponsor's kinetic parameters (PP) beside celltox's own from PC (cellular_kinetics), with a difference flag.

Which PP parameter is compared with which celltox value, and how far apart they may be, is data
(safety/data/pp_parameters.csv): Cmax within 5% (relative to celltox's value), Tmax within 1 day, the AUC over
days 0-28 within 10%. A PP row names its analyte in PPCAT (the PCTESTCD or the PCTEST); with no PPCAT, the
subject's only analyte. celltox's parameters are of peripheral blood: a sponsor's parameter of another specimen
(PPSPEC bone marrow) is not compared with them (status 'specimen not blood'), as a marrow Cmax is no blood Cmax.
Tmax in hours, weeks or another unit of time is converted to days (safety/data/time_units.csv; no unit is days). A
Cmax or an AUC is converted from its own unit (an AUC's with its day taken off: 'day*cells/mL' is cells/mL) when that
unit converts to PC's (safety/data/pc_unit_conversions.csv, the kinetics' one table: cells/mL to cells/uL), ``note``
naming the factor; a value in a unit that does not convert, or an AUC whose unit has no day, is not compared (status
'unit differs'). Units are compared in their one spelling (safety.core.vocabulary.unit_spelling, as the kinetics and the load
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
# the day in an AUC's unit, before or after the concentration ('day*cells/mL', 'cells/uL.d', 'days·cells/uL')
AUC_DAY = r"^\s*(days?|d)\s*[*.·]\s*|\s*[*.·]\s*(days?|d)\s*$"

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
-- each sponsor value's unit in the one spelling, as the value itself gives it: a Cmax's unit, an AUC's without its
-- day ('day*cells/mL' is cells/mL; an AUC unit with no day in it is not day times a concentration: NULL)
keyed AS (
  SELECT pp.*, k.usubjid AS k_usubjid, k.cmax, k.tmax_day, k.auc_0_28, k.unit AS k_unit,
         CASE WHEN pp.parameter = 'cmax' THEN {cmax_key}
              WHEN pp.parameter = 'auc_0_28' AND regexp_matches(pp.unit, '{auc_day}', 'i') THEN {auc_key} END AS s_key,
         {celltox_key} AS c_key
  FROM pp LEFT JOIN k ON k.usubjid = pp.usubjid AND k.pctestcd = pp.pctestcd
),
conv AS (SELECT * FROM {conversions}),
j0 AS (
  SELECT u.usubjid, u.pctestcd, u.ppcat, u.ppseq, u.pptestcd, u.parameter, u.value AS sponsor_value,
         u.unit AS sponsor_unit, u.pporres, u.tolerance_kind, u.tolerance, u.blood,
         -- celltox's value of the same specimen only: none beside a marrow parameter
         CASE WHEN NOT u.blood THEN NULL WHEN u.parameter = 'cmax' THEN u.cmax
              WHEN u.parameter = 'tmax_day' THEN CAST(u.tmax_day AS DOUBLE) WHEN u.parameter = 'auc_0_28' THEN u.auc_0_28
              END AS celltox_value,
         CASE WHEN NOT u.blood THEN NULL WHEN u.parameter = 'cmax' THEN u.k_unit WHEN u.parameter = 'tmax_day' THEN 'day'
              WHEN u.parameter = 'auc_0_28' THEN 'day*' || u.k_unit END AS celltox_unit,
         u.parameter = 'tmax_day' AND tu.days IS NULL AS time_unit_unknown,
         -- the factor from the value's own unit to celltox's: 1 in the same unit, the ratio of their factors to a
         -- common unit when both convert to it (cells/mL to cells/uL), NULL when they do not. No sponsor unit or no
         -- celltox unit: 1, the value compared as delivered
         CASE WHEN u.parameter = 'tmax_day' THEN tu.days
              WHEN u.unit IS NULL OR u.k_unit IS NULL THEN 1.0
              WHEN u.s_key = u.c_key THEN 1.0
              WHEN coalesce(sc.to_key, u.s_key) = coalesce(cc.to_key, u.c_key)
                THEN coalesce(sc.factor, 1.0) / coalesce(cc.factor, 1.0)
              END AS factor,
         u.parameter <> 'tmax_day' AND u.unit IS NOT NULL AND u.k_unit IS NOT NULL AND u.s_key <> u.c_key
           AS unit_converted,
         u.k_usubjid IS NOT NULL AS derived
  FROM keyed u
  LEFT JOIN tu ON tu.u = coalesce(nullif(upper(replace(u.unit, ' ', '')), ''), 'DAYS')  -- no unit: days
  LEFT JOIN conv sc ON sc.from_key = u.s_key LEFT JOIN conv cc ON cc.from_key = u.c_key
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
                      blood=blood_specimen("p.ppspec"), cmax_key=unit_spelling_sql("pp.unit"),
                      auc_day=AUC_DAY, auc_key=unit_spelling_sql(f"regexp_replace(pp.unit, '{AUC_DAY}', '', 'i')"),
                      celltox_key=unit_spelling_sql("k.unit"), conversions=CONVERSIONS)
    insert(con, KINETICS_COMPARISON, sql, {"s": studyid, "c": data_cut})


DERIVATION = Derivation(name="kinetics_comparison", writes=(KINETICS_COMPARISON,),
                        reads=("pk_parameters", "pc_concentrations", "cellular_kinetics"),
                        run=derive_kinetics_comparison)

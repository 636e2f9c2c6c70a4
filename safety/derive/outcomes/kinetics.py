"""Cellular kinetics per subject and analyte (PC): Cmax, Tmax, AUC over days 0-28 and persistence.

One value per sample day (the highest when a day has several samples); a result below the LLOQ counts as 0 in
Cmax and the AUC and never as detectable. AUC is the linear trapezoid over the sample days inside 0-28 (no
extrapolation to day 28 when the last sample is earlier: ``auc_last_day`` says where it stopped). Tmax is the
first day at Cmax when several days tie. ``values_used`` lists what went in, so a reader can redo the sum. A result
above the assay's upper limit ('>100000', not re-assayed diluted) is used at its bound, as the peak it is, with its
sign in ``values_used`` and the note that Cmax (and the AUC when it lies in days 0-28) is a lower bound.

The parameters are of peripheral blood, in one unit, as product labels give them (Cmax, Tmax and AUC0-28d in
blood): a sample of another specimen (bone marrow, CSF, tissue) is left out, and ``values_used`` says how many
("not used: 1 BONE MARROW sample"). A sample without a specimen is taken as blood. Units are compared in their one
spelling (safety.core.vocabulary.unit_spelling, as the load matches units), so ``cells/ul`` is ``cells/uL``. A
sample in a unit that converts to the subject's main unit (safety/data/pc_unit_conversions.csv: cells/mL to
cells/uL) is converted and used, ``values_used`` naming the samples and the factor; a unit that does not
(copies/ug gDNA beside cells/uL: two assays) is left out. The main unit is the one of the most blood samples
(counting those it converts from); of units as many samples are in, the one sampled first, then the first in text
order, and ``values_used`` says so. A subject and analyte without any blood sample keeps a row with no parameters
saying why. :func:`curve_samples` is that choice of samples, which the charts draw too.
"""
from __future__ import annotations

from safety.core.vocabulary import unit_spelling, unit_spelling_sql
from safety.derive.graph import Derivation
from safety.derive.outcomes import _data
from safety.derive.toxicity._sql import insert, reset
from safety.schema import CELLULAR_KINETICS

AUC_FIRST_DAY = 0
AUC_LAST_DAY = 28
BLOOD_SPECIMENS = r"BLOOD|PBMC|PERIPHERAL"  # PCSPEC values of peripheral blood (and its mononuclear cells)


def blood_specimen(spec: str) -> str:
    """SQL: the specimen ``spec`` (PCSPEC of a sample, PPSPEC of a sponsor's parameter) is peripheral blood, the
    specimen celltox's parameters are of; one not given is taken as blood."""
    return f"({spec} IS NULL OR regexp_matches(upper({spec}), '{BLOOD_SPECIMENS}'))"


def _conversions() -> str:
    """SQL: safety/data/pc_unit_conversions.csv as a VALUES list (from_key, to_key, factor), units in their one
    spelling. Written into the query (the packaged file, no input), so the charts read it on any connection."""
    rows, seen = [], set()
    for r in _data.read_rules("pc_unit_conversions.csv"):
        frm, to = unit_spelling(r["from_unit"]), unit_spelling(r["to_unit"])
        if frm in seen:  # a unit listed twice would count its samples twice
            raise ValueError(f"safety/data/pc_unit_conversions.csv: {r['from_unit']!r} is listed twice")
        seen.add(frm)
        rows.append("('{}', '{}', {!r})".format(frm.replace("'", "''"), to.replace("'", "''"), float(r["factor"])))
    return f"(VALUES {', '.join(rows)}) AS cu(from_key, to_key, factor)"


CONVERSIONS = _conversions()


def curve_samples(where: str = "TRUE") -> str:
    """SQL: the pc_concentrations rows ``where`` keeps that a kinetics curve may hold (day 0 on, a value or BLQ),
    each with ``used``: peripheral blood in the subject's main unit for the analyte or one converting to it, the
    samples the parameters are computed from and the charts draw. ``value`` and ``lloq`` of a used sample are in
    that unit (``converted``: from another, by ``to_main``); ``spec`` is the specimen (upper case), ``main_unit``
    the main unit as most of its samples spell it, ``unit_tie`` why it was chosen when another unit had as many
    blood samples (else NULL). Units are compared in their one spelling (``cells/ul`` is ``cells/uL``)."""
    return f"""(
WITH pc AS (
  SELECT p.usubjid, p.pctestcd, p.unit, p.unit_key, p.day, p.value, p.lloq, p.below_lloq, p.above_uloq, p.blood,
         p.spec, coalesce(cu.to_key, p.unit_key) AS dim, coalesce(cu.factor, 1.0) AS factor
  FROM (SELECT usubjid, pctestcd, unit, {unit_spelling_sql('unit')} AS unit_key, day, value, lloq, below_lloq,
               above_uloq, {blood_specimen('pcspec')} AS blood, upper(pcspec) AS spec
        FROM pc_concentrations
        WHERE {where} AND day IS NOT NULL AND day >= 0 AND (value IS NOT NULL OR below_lloq)) p
  -- the unit a sample's converts to (its dimension) and the factor; a unit not in the table is only itself
  LEFT JOIN {CONVERSIONS} ON cu.from_key = p.unit_key
),
n AS (  -- blood samples per unit as spelt (a missing unit is one too)
  SELECT usubjid, pctestcd, dim, unit_key, factor, unit, count(*) AS n, min(day) AS first_day
  FROM pc WHERE blood GROUP BY ALL
),
-- the dimension of most blood samples; of as many, the one sampled first (the expansion is measured in the first
-- weeks), then the first in text order of the one spelling
dims AS (
  SELECT *, row_number() OVER (PARTITION BY usubjid, pctestcd ORDER BY n_dim DESC, first_day, coalesce(dim, ''))
              AS rank,
         max(n_dim) OVER (PARTITION BY usubjid, pctestcd) AS top_n
  FROM (SELECT usubjid, pctestcd, dim, sum(n) AS n_dim, min(first_day) AS first_day,
               arg_min_null(unit, (-n, coalesce(unit, ''))) AS dim_unit  -- as most of its samples spell it
        FROM n GROUP BY usubjid, pctestcd, dim)
),
tie AS (
  SELECT usubjid, pctestcd,
         'units tied at ' || any_value(top_n) || ' blood sample' || CASE WHEN any_value(top_n) > 1 THEN 's' ELSE '' END
         || ' each (' || string_agg(coalesce(dim_unit, 'no unit'), ', ' ORDER BY rank) || '): '
         || coalesce(arg_min_null(dim_unit, rank), 'no unit') || ' used, '
         || CASE WHEN min(first_day) FILTER (WHERE rank > 1) > min(first_day) FILTER (WHERE rank = 1)
                 THEN 'sampled first (day ' || min(first_day) || ')'
                 ELSE 'first in text order of those first sampled on day ' || min(first_day) END AS unit_tie
  FROM dims WHERE n_dim = top_n GROUP BY usubjid, pctestcd HAVING count(*) > 1
),
-- in the main dimension, the unit of most samples (the same order), the one its other units are converted to
keys AS (
  SELECT n.usubjid, n.pctestcd, n.dim, n.unit_key, any_value(n.factor) AS factor, sum(n.n) AS n_key,
         min(n.first_day) AS first_key
  FROM n JOIN dims d ON d.usubjid = n.usubjid AND d.pctestcd = n.pctestcd AND d.rank = 1
                     AND d.dim IS NOT DISTINCT FROM n.dim
  GROUP BY n.usubjid, n.pctestcd, n.dim, n.unit_key
),
main AS (
  SELECT usubjid, pctestcd, any_value(dim) AS dim,
         arg_min_null(unit_key, (-n_key, first_key, coalesce(unit_key, ''))) AS unit_key,
         arg_min_null(factor, (-n_key, first_key, coalesce(unit_key, ''))) AS factor
  FROM keys GROUP BY usubjid, pctestcd
),
spelt AS (
  SELECT n.usubjid, n.pctestcd, arg_min_null(n.unit, (-n.n, coalesce(n.unit, ''))) AS unit
  FROM n JOIN main m ON m.usubjid = n.usubjid AND m.pctestcd = n.pctestcd AND m.unit_key IS NOT DISTINCT FROM n.unit_key
  GROUP BY n.usubjid, n.pctestcd
),
j AS (
  SELECT pc.*, pc.blood AND pc.dim IS NOT DISTINCT FROM m.dim AS used,
         CASE WHEN pc.dim IS NOT DISTINCT FROM m.dim THEN pc.factor / m.factor END AS to_main,
         pc.unit_key IS DISTINCT FROM m.unit_key AS other_unit, s.unit AS main_unit, t.unit_tie
  FROM pc LEFT JOIN main m USING (usubjid, pctestcd) LEFT JOIN spelt s USING (usubjid, pctestcd)
  LEFT JOIN tie t USING (usubjid, pctestcd)
)
SELECT * EXCLUDE (value, lloq, dim, factor, other_unit),
       CASE WHEN used THEN value * to_main ELSE value END AS value,
       CASE WHEN used THEN lloq * to_main ELSE lloq END AS lloq, used AND other_unit AS converted
FROM j
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
-- samples in another unit of the main unit's dimension, converted to it (cells/mL to cells/uL)
converted AS (
  SELECT usubjid, pctestcd,
         string_agg(n || ' sample' || CASE WHEN n > 1 THEN 's' ELSE '' END || ' in ' || unit || ' (x'
                    || printf('%g', to_main) || ')', ', ' ORDER BY unit) AS note
  FROM (SELECT usubjid, pctestcd, unit, to_main, count(*) AS n FROM pc WHERE converted GROUP BY ALL)
  GROUP BY ALL
),
main_unit AS (SELECT DISTINCT usubjid, pctestcd, main_unit, unit_tie FROM pc),
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
         || coalesce('; converted to ' || mu.main_unit || ': ' || cv.note, '') || coalesce('; ' || mu.unit_tie, '')
         || coalesce('; not used: ' || lo.note, '') AS values_used
FROM agg LEFT JOIN auc USING (usubjid, pctestcd) LEFT JOIN left_out lo USING (usubjid, pctestcd)
LEFT JOIN converted cv USING (usubjid, pctestcd) LEFT JOIN main_unit mu USING (usubjid, pctestcd)
UNION ALL BY NAME
-- an analyte of the subject without any blood sample keeps its row: no parameters, and why
SELECT $s AS studyid, $c AS data_cut, usubjid, pctestcd, CAST(0 AS INTEGER) AS n_samples,
       'no peripheral-blood sample: no parameters derived; not used: ' || note AS values_used
FROM left_out lo WHERE NOT EXISTS (SELECT 1 FROM agg WHERE agg.usubjid = lo.usubjid AND agg.pctestcd = lo.pctestcd)
"""


def derive_kinetics(con, studyid, data_cut, config, review_store=None) -> None:
    """Rebuild cellular_kinetics for one (study, cut)."""
    reset(con, (CELLULAR_KINETICS,), studyid, data_cut)
    insert(con, CELLULAR_KINETICS, _SQL, {"s": studyid, "c": data_cut})


DERIVATION = Derivation(name="cellular_kinetics", writes=(CELLULAR_KINETICS,), reads=("pc_concentrations",),
                        run=derive_kinetics)

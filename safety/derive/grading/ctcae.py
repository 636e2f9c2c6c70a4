"""CTCAE lab grading: every blood lab record graded for every CTCAE term its test maps to, in one
DuckDB SQL statement generated from the rule file (see safety/derive/grading/rules.py and docs/grading.md).

Conventions follow pharmaverse admiral (``derive_var_atoxgr_dir``): arms in case_when order, NA
conditions not met, both sides of each comparison rounded to 15 significant digits, absolute
criteria only when the record unit equals the rule's SI unit (case-insensitive), baseline
'abnormal' = baseline high.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from safety.core.sql import insert_rows, reset_derived
from safety.core.vocabulary import POST_INFUSION_FIRST_DAY, blood_result, censored_value
from safety.derive.graph import Derivation
from safety.schema import LAB_WORST_GRADES
from safety.schema.derived import LAB_TOXICITY  # noqa: F401 - callers import the table with the engine
from safety.schema.derived import (LAB_GRADE_TABLES, LAB_TOXICITY_REASONS, LAB_TOXICITY_RECORDS,
                                   UNIT_OTHER_REASON_ID, lab_toxicity_select)
from safety.derive.grading import rules as R

if TYPE_CHECKING:  # grade_labs and rule_table return DataFrames (tests, pages); the load's grading never does
    from collections.abc import Collection

    import pandas as pd


EXACT_MODES = ("guarded", "signif", "raw")

# reason_id of a dense term's reason: this plus its index in the plan's reasons (below it: the arms' own reasons
# by rule id, and the negative codes of missing values and units)
DENSE_REASON_BASE = 1_000_000

_HIGH_IND = "('HIGH', 'H', 'HIGH HIGH', 'HH')"
_NOT_HIGH_IND = "('NORMAL', 'N', 'LOW', 'L', 'LOW LOW', 'LL')"


def _q(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _dbl(x: float | None) -> str:
    # typed in every row, so the VALUES column is DOUBLE whatever the first row holds
    return "CAST(NULL AS DOUBLE)" if x is None else f"CAST('{x!r}' AS DOUBLE)"


@dataclass(frozen=True)
class Grading:
    """One grading run's SQL and the ids it writes. ``keys_sql`` selects the lab tests, units and CTCAE terms
    the source holds (lab_toxicity_terms' columns but lab_term_id, numbered ``key_no`` from 1); ``records_sql``
    selects lab_toxicity_records' columns, each record's lab_term_id read from the relation it was given;
    ``reasons`` (reason_id, grade_reason) are what the reason ids stand for."""
    keys_sql: str
    records_sql: str
    reasons: tuple[tuple, ...]


def grading(source: str = "labs", *, where: str | None = None, version: str = "5.0",
            lab_terms_path=None, rules_path=None, exact: str = "guarded", engine: str = "dense",
            keys_from: str = "_lt_keys", graded: Collection[tuple[str, int]] | None = None) -> Grading:
    """The SELECT that grades ``source`` (a table name or a parenthesised query with the labs
    columns) into lab_toxicity_records' columns, with the SELECT of its keys and its reasons. ``where`` filters
    the source (named parameters). ``keys_from`` names the relation the records read their lab_term_id from: the
    rows of ``keys_sql`` with a lab_term_id each (studyid, data_cut, lbtestcd, unit, term_id, lab_term_id).
    ``graded``: the (lbtestcd, term_id) pairs those keys hold, when known; the records' SELECT then carries the
    rules of those tests and terms only (the same records, less to compute per row). None: every pair of the map.
    ``exact``: 'guarded' (admiral's signif(x, 15) result, rounding only near ties), 'signif' (round
    both sides of every comparison) or 'raw' (no rounding; for measuring its cost only).
    ``engine``: 'dense' (terms of the usual shape in one expression, others per-term CASE) or
    'case' (every term as its own CASE; same grades, slower; kept as a cross-check)."""
    if exact not in EXACT_MODES:
        raise ValueError(f"exact must be one of {EXACT_MODES}")
    if engine not in ("dense", "case"):
        raise ValueError("engine must be 'dense' or 'case'")
    rules = R.load_rules(version, rules_path)
    term_map = R.load_lab_terms(rules, lab_terms_path)
    keys = sorted({(m.ctcae_term.upper(), m.direction) for m in term_map})
    term_ids = {k: i for i, k in enumerate(keys)}
    # A key joins only the terms row of its own test and term, so the others can be left out. With no pair the
    # whole map stays: its VALUES must not be empty, and no record joins a key either way.
    graded_map = [m for m in term_map if graded is None
                  or (m.lbtestcd, term_ids[(m.ctcae_term.upper(), m.direction)]) in graded] or term_map
    graded_pairs = {(m.lbtestcd, (m.ctcae_term.upper(), m.direction)) for m in graded_map}
    dense = {}
    if engine == "dense":
        for key, tid in term_ids.items():
            d = R.compile_dense(rules.terms[key])
            # An AND-ed PCHG condition (fibrinogen) would cost every row a CASE in the dense
            # expression; its term's own CASE costs only its rows.
            if d is not None and not any(a.extra for a in d.arms):
                dense[tid] = d
    # Results delivered in a conventional unit are graded with CTCAE's cut-offs in that unit (R.load_variants):
    # each variant is a dense term of its own (rule_id after the terms'), reported under its term's term_id.
    # The 'case' engine, a cross-check of the dense expression, grades every result by the SI cut-offs.
    variants = R.load_variants(rules, term_map, version) if engine == "dense" else []
    variant_ids = {(v.lbtestcd, v.key): len(term_ids) + i for i, v in enumerate(variants)}
    dense.update({variant_ids[(v.lbtestcd, v.key)]: v.dense for v in variants})
    n_rules = len(term_ids) + len(variants)
    # the reasons are every rule's, whatever the records' SELECT leaves out: a cut's reason ids stay the file's
    dense_reasons = R.dense_reasons(dense, n_rules)
    graded_rules = ({term_ids[key] for _, key in graded_pairs}
                    | {variant_ids[(v.lbtestcd, v.key)] for v in variants if (v.lbtestcd, v.key) in graded_pairs})
    dense = {rid: d for rid, d in dense.items() if rid in graded_rules}
    variants = [v for v in variants if (v.lbtestcd, v.key) in graded_pairs]
    fallback = {k: i for k, i in term_ids.items() if i not in dense and i in graded_rules}
    plan = R.dense_plan(dense, n_rules, exact) if dense else None
    params = plan.params if plan else {}
    # The term map with every per-term parameter of the dense expression as a column: joined once
    # with the labs, each parameter is a plain column of the row. rule_id picks the parameters (a term's, or a
    # conventional-unit variant's), term_id is the term reported; conv_factor is the conversion factor of the
    # results a variant row grades (NULL: every other result).
    term_cols = ["lbtestcd", "term_id", "rule_id", "conv_factor", "ctcae_term", "direction", "unit_check",
                 "unit_check_uc", "is_dense", *params]

    def term_row(m, key, rid, factor):
        return "(" + ", ".join([
            _q(m.lbtestcd), str(term_ids[key]), str(rid), "NULL::DOUBLE" if factor is None else _dbl(factor),
            _q(m.ctcae_term), _q(m.direction),
            _q(rules.terms[key].unit_check or ""), _q((rules.terms[key].unit_check or "").upper()),
            "TRUE" if rid in dense else "FALSE",
            *(_dbl(vals[rid]) for vals in params.values()),
        ]) + ")"

    by_test = {(v.lbtestcd, v.key): v for v in variants}
    terms_values = ", ".join(
        [term_row(m, key, term_ids[key], None)
         for m in graded_map for key in [(m.ctcae_term.upper(), m.direction)]]
        + [term_row(m, key, variant_ids[(m.lbtestcd, key)], by_test[(m.lbtestcd, key)].factor)
           for m in graded_map for key in [(m.ctcae_term.upper(), m.direction)] if (m.lbtestcd, key) in by_test])
    # the factor a result was converted by ('LBORRES x 0.2495'), when a variant grades that test from that unit
    conv_pairs = sorted({(v.lbtestcd, v.factor) for v in variants})
    conv_f = ("CASE " + " ".join(f"WHEN l.lbtestcd = {_q(code)} AND TRY_CAST(regexp_extract(l.value_source, "
                                 f"' x ([^ ]+)$', 1) AS DOUBLE) = {_dbl(fac)} THEN {_dbl(fac)}"
                                 for code, fac in conv_pairs) + " END"
              if conv_pairs else "NULL::DOUBLE")
    filt = f"WHERE {where}" if where else ""
    src = f"(SELECT * FROM {source} {filt})"
    base_high = (
        f"CASE WHEN upper(trim(lbnrind)) IN {_HIGH_IND} THEN TRUE "
        f"WHEN upper(trim(lbnrind)) IN {_NOT_HIGH_IND} THEN FALSE "
        f"ELSE coalesce({R.criterion_sql(R.parse_criterion('AVAL > ULN'), exact)}, FALSE) END"
    )
    case_code = R.outcome_case_sql(rules, fallback, exact) if fallback else "NULL"
    is_dense = "is_dense"
    if plan:
        layers = f"""t0 AS (SELECT *, {plan.row_cols} FROM graded),
t1 AS (SELECT *, {plan.threshold_cols} FROM t0),
t2 AS (SELECT *, {plan.grade_expr} AS _g FROM t1),
coded AS (
  SELECT *, CASE WHEN value IS NULL THEN {R.CODE_MISSING_VALUE}
                 WHEN unit_code IS NOT NULL THEN unit_code
                 {plan.na_expr}
                 WHEN {is_dense} THEN _g
                 ELSE ({case_code}) END AS code
  FROM t2)"""
        dense_reason = (f"WHEN {is_dense} THEN {DENSE_REASON_BASE} "
                        f"+ (rule_id * 5 + CAST(code AS INTEGER)) * 2 + CAST(baseline_high AS INTEGER)")
    else:
        layers = f"coded AS (SELECT *, {case_code} AS code FROM graded)"
        dense_reason = ""
    stride, na_slot = R.CODE_STRIDE, R.NA_SLOT
    if len(rules.arms) >= DENSE_REASON_BASE:
        raise R.RuleError(f"more than {DENSE_REASON_BASE} arms in {rules.path.name}")
    reasons = ((R.CODE_MISSING_VALUE, "missing value"), (R.CODE_UNIT_MISSING, "unit missing"),
               *((c, R.MISSING_REASON[v]) for v, c in R.NA_CODES.items()),
               *((a.rule_id, a.reason) for a in rules.arms),
               *((DENSE_REASON_BASE + i, r) for i, r in enumerate(dense_reasons)))
    map_values = ", ".join(
        f"({_q(m.lbtestcd)}, {term_ids[key]}, {_q(rules.terms[key].term)}, {_q(rules.terms[key].direction)}, "
        f"{_q(rules.terms[key].unit_check or '')})"
        for m in term_map for key in [(m.ctcae_term.upper(), m.direction)])
    # one key per test and unit the graded records hold, for each term the test maps to; the distinct
    # specimens first, so the blood filter reads a few hundred rows, not every record
    keys_sql = f"""
SELECT u.studyid, u.data_cut, m.term_id, u.lbtestcd, u.unit, m.ctcae_term, m.direction, m.unit_check,
       {_q(str(rules.version))} AS ctcae_version,
       row_number() OVER (ORDER BY u.studyid, u.data_cut, u.lbtestcd, u.unit NULLS FIRST, m.term_id) AS key_no
FROM (SELECT DISTINCT studyid, data_cut, lbtestcd, unit
      FROM (SELECT DISTINCT studyid, data_cut, lbtestcd, unit, lbspec, lbcat FROM {src}) WHERE {blood_result()}) u
JOIN (VALUES {map_values}) m(lbtestcd, term_id, ctcae_term, direction, unit_check) ON m.lbtestcd = u.lbtestcd
"""
    records_sql = f"""
WITH terms({", ".join(term_cols)}) AS (VALUES {terms_values}),
keyed AS MATERIALIZED (
  -- the unit and its check are the key's (each record joins the key of its own unit), computed once per key:
  -- not materialized, DuckDB computes them after the join, for every record
  SELECT k.studyid AS k_studyid, k.data_cut AS k_data_cut, k.unit AS k_unit, k.lab_term_id, t.*,
         upper(trim(k.unit)) AS unit_uc,
         CASE WHEN t.unit_check_uc = '' THEN NULL
              WHEN upper(trim(k.unit)) IS NULL THEN {R.CODE_UNIT_MISSING}
              WHEN upper(trim(k.unit)) <> t.unit_check_uc THEN {R.CODE_UNIT_OTHER} END AS unit_code
  FROM {keys_from} k JOIN terms t ON t.lbtestcd = k.lbtestcd AND t.term_id = k.term_id
),
based AS (
  -- the baseline joins each blood lab record once, before the term map doubles some of them. The baseline record
  -- is the one whose key (flag, day, LBSEQ) and value are the baseline's: LBSEQ is optional in LB, and a record
  -- without it is still told apart by its day and value (two records equal in all of them grade alike)
  SELECT l.studyid, l.data_cut, l.usubjid, l.lbseq, l.lbtestcd, l.value, l.unit,
         l.lln, l.uln, l.day, l.lb_date, b.base, b.base_high, {conv_f} AS conv_f,
         -- with LBSEQ (unique in the subject) it alone tells the record; without it, the rest of the key
         coalesce(CASE WHEN l.lbseq IS NOT NULL THEN l.lbseq = b.base_seq
                       ELSE b.base_seq = -2147483647 AND l.value = b.base AND coalesce(l.day, -2147483647) = b.base_day
                            AND CASE WHEN l.lbblfl = 'Y' THEN 1 ELSE 0 END = b.base_flag END, FALSE) AS is_baseline,
         -- a censored result lies beyond its bound ('<0.5' is below 0.5): graded as a value just past it
         {censored_value('l')} AS graded_value
  FROM {src} l
  LEFT JOIN (
    SELECT * EXCLUDE (base_k), base_k[1] AS base_flag, base_k[2] AS base_day, base_k[3] AS base_seq
    FROM (
      SELECT studyid, data_cut, usubjid, lbtestcd,
             arg_max(value, k) AS base, max(k) AS base_k, arg_max(bh, k) AS base_high
      FROM (
        SELECT studyid, data_cut, usubjid, lbtestcd, value,
               [CASE WHEN lbblfl = 'Y' THEN 1 ELSE 0 END, coalesce(day, -2147483647), coalesce(lbseq, -2147483647)] AS k,
               {base_high} AS bh
        FROM {src} s
        WHERE value IS NOT NULL AND (lbblfl = 'Y' OR day <= 0) AND {blood_result()}
          AND lbtestcd IN (SELECT lbtestcd FROM terms)
      )
      GROUP BY ALL
    )
  ) b ON b.studyid = l.studyid AND b.data_cut = l.data_cut AND b.usubjid = l.usubjid AND b.lbtestcd = l.lbtestcd
  WHERE {blood_result()} AND l.lbtestcd IN (SELECT lbtestcd FROM terms)
),
graded AS (
  SELECT l.usubjid, l.lbseq, t.* EXCLUDE (lbtestcd, k_studyid, k_data_cut, k_unit, conv_factor), l.graded_value AS value,
         l.value AS reported_value, l.lln, l.uln, l.base,
         coalesce(l.base_high, FALSE) AS baseline_high,
         l.is_baseline,
         CASE WHEN l.base <> 0 THEN (l.graded_value - l.base) / abs(l.base) * CAST(100 AS DOUBLE) END AS pchg,
         l.day, l.lb_date
  FROM based l
  JOIN keyed t ON t.lbtestcd = l.lbtestcd AND t.k_unit IS NOT DISTINCT FROM l.unit AND t.k_studyid = l.studyid
   AND t.k_data_cut = l.data_cut AND t.conv_factor IS NOT DISTINCT FROM l.conv_f
),
{layers}
SELECT usubjid, lbseq, lab_term_id, reported_value AS value, lln, uln,
       base AS baseline_value, baseline_high, is_baseline,
       CASE WHEN code >= 0 AND {is_dense} THEN CAST(code AS INTEGER)
            WHEN code >= 0 AND code % {stride} < {na_slot} THEN CAST(code % {stride} AS INTEGER) END AS grade,
       CAST(CASE WHEN code = {R.CODE_UNIT_OTHER} THEN {UNIT_OTHER_REASON_ID}
                 WHEN code < 0 THEN code
                 {dense_reason}
                 ELSE code // {stride} END AS INTEGER) AS reason_id,
       day, lb_date AS lab_date
FROM coded
"""
    return Grading(keys_sql, records_sql, tuple(reasons))


def _values(rows, types: tuple[str, ...]) -> str:
    return ", ".join("(" + ", ".join("NULL" if v is None else f"CAST({_q(str(v))} AS {t})"
                                     for v, t in zip(row, types)) + ")" for row in rows)


def grading_sql(source: str = "labs", *, where: str | None = None, version: str = "5.0",
                lab_terms_path=None, rules_path=None, exact: str = "guarded", engine: str = "dense") -> str:
    """The SELECT that grades ``source`` (see :func:`grading`) into lab_toxicity's columns: its records joined
    with their terms and reasons as the lab_toxicity view joins the stored ones."""
    g = grading(source, where=where, version=version, lab_terms_path=lab_terms_path, rules_path=rules_path,
                exact=exact, engine=engine, keys_from="_lt_keys")
    reasons = _values(g.reasons, ("INTEGER", "VARCHAR"))
    return f"""
WITH _lt_keys AS (SELECT *, CAST(key_no AS INTEGER) AS lab_term_id FROM ({g.keys_sql})),
_lt_records AS ({g.records_sql}),
_lt_cuts AS (SELECT DISTINCT studyid, data_cut FROM _lt_keys),
_lt_reasons AS (SELECT c.studyid, c.data_cut, v.* FROM _lt_cuts c, (VALUES {reasons}) v(reason_id, grade_reason))
{lab_toxicity_select("_lt_records", "_lt_keys", "_lt_reasons")}"""


def grade_labs(con, source: str = "labs", *, where: str | None = None, params: dict | None = None,
               version: str = "5.0", lab_terms_path=None, rules_path=None, exact: str = "guarded",
               engine: str = "dense") -> pd.DataFrame:
    """Grade an arbitrary lab relation in one SQL statement: a pandas DataFrame with lab_toxicity's columns.

    ``source`` is a table name or a parenthesised query with the columns of ``labs``."""
    sql = grading_sql(source, where=where, version=version, lab_terms_path=lab_terms_path,
                      rules_path=rules_path, exact=exact, engine=engine)
    cur = con.cursor()
    try:
        return cur.sql(sql, params=params or None).to_arrow_table().to_pandas()
    finally:
        cur.close()


# The worst post-infusion grade and its first day in one pass. The day of the worst grade is the earliest day
# with the highest grade: max(grade * 2^32 - day) orders rows exactly as [grade, -day] does (grades are small
# and non-negative, 1 <= day < 2^31) and, unlike a list, is a plain BIGINT for the aggregate. Records are
# grouped by their integer lab_term_id first; a test graded in two units has two, joined into one row after.
WORST_SQL = f"""
INSERT INTO lab_worst_grades (studyid, data_cut, usubjid, ctcae_term, direction, lbtestcd,
                              baseline_grade, worst_grade, worst_day, n_post)
SELECT $studyid, $data_cut, w.usubjid, t.ctcae_term, t.direction, t.lbtestcd, max(w.baseline_grade),
       max(w.worst_grade),
       CAST(CAST(max(w.worst_grade) AS BIGINT) * 4294967296 - max(w.worst_key) AS INTEGER) AS worst_day,
       CAST(sum(w.n_post) AS INTEGER)
FROM (
  SELECT usubjid, lab_term_id,
         max(grade) FILTER (WHERE is_baseline) AS baseline_grade,
         max(grade) FILTER (WHERE day >= {POST_INFUSION_FIRST_DAY}) AS worst_grade,
         max(CAST(grade AS BIGINT) * 4294967296 - day)
           FILTER (WHERE day >= {POST_INFUSION_FIRST_DAY} AND grade IS NOT NULL) AS worst_key,
         count(grade) FILTER (WHERE day >= {POST_INFUSION_FIRST_DAY}) AS n_post
  FROM lab_toxicity_records
  WHERE lab_term_id IN (SELECT lab_term_id FROM lab_toxicity_terms WHERE studyid = $studyid AND data_cut = $data_cut)
  GROUP BY usubjid, lab_term_id
) w
JOIN lab_toxicity_terms t ON t.lab_term_id = w.lab_term_id
GROUP BY w.usubjid, t.term_id, t.ctcae_term, t.direction, t.lbtestcd
"""

# a load's keys get the ids after the file's highest, so that every lab_term_id names one study and cut
_STORE_KEYS_SQL = """
INSERT INTO lab_toxicity_terms (studyid, data_cut, lab_term_id, term_id, lbtestcd, unit, ctcae_term, direction,
                                unit_check, ctcae_version)
SELECT studyid, data_cut, CAST((SELECT coalesce(max(lab_term_id), 0) FROM lab_toxicity_terms) + key_no AS INTEGER),
       term_id, lbtestcd, unit, ctcae_term, direction, unit_check, ctcae_version
FROM ({keys_sql})
"""


def derive_lab_toxicity(con, studyid: str, data_cut: dt.date, config: dict, review_store=None) -> None:
    """Rebuild lab_toxicity (its records, terms and reasons) and lab_worst_grades for one study and data cut."""
    version = str((config or {}).get("ctcae_version") or "5.0")
    lab_terms_path = (config or {}).get("lab_terms_path")  # optional study term map
    params = {"studyid": studyid, "data_cut": data_cut}
    reset_derived(con, (*LAB_GRADE_TABLES, LAB_WORST_GRADES), studyid, data_cut)
    keys_from = ("(SELECT studyid, data_cut, lbtestcd, unit, term_id, lab_term_id FROM lab_toxicity_terms "
                 "WHERE studyid = $studyid AND data_cut = $data_cut)")
    where = "studyid = $studyid AND data_cut = $data_cut"
    g = grading("labs", where=where, version=version, lab_terms_path=lab_terms_path, keys_from=keys_from)
    con.execute(_STORE_KEYS_SQL.format(keys_sql=g.keys_sql), params)
    # the records' SELECT written for the tests and terms the cut holds, not the whole file's
    graded = con.execute(f"SELECT DISTINCT lbtestcd, term_id FROM {keys_from}", params).fetchall()
    g = grading("labs", where=where, version=version, lab_terms_path=lab_terms_path, keys_from=keys_from,
                graded=set(graded))
    insert_rows(con, LAB_TOXICITY_REASONS.name, [(studyid, data_cut, *r) for r in g.reasons],
                ("VARCHAR", "DATE", "INTEGER", "VARCHAR"))
    con.execute(f"INSERT INTO {LAB_TOXICITY_RECORDS.name} ({', '.join(LAB_TOXICITY_RECORDS.column_names)}) "
                f"{g.records_sql}", params)
    con.execute(WORST_SQL, params)


def rule_table(version: str = "5.0") -> pd.DataFrame:
    """The rule file as a table (term, direction, grade, baseline, unit_check, criterion, reason,
    comment) for documentation pages."""
    import pandas as pd

    rules = R.load_rules(version)
    return pd.DataFrame([
        {"term": a.term, "direction": a.direction, "grade": a.grade, "baseline": a.baseline,
         "unit_check": rules.terms[(a.term.upper(), a.direction)].unit_check, "criterion": a.criterion_text,
         "reason": a.reason, "comment": a.comment}
        for a in rules.arms
    ])


DERIVATION = Derivation(
    name="ctcae_lab_grades",
    writes=(*LAB_GRADE_TABLES, LAB_WORST_GRADES),
    reads=('labs',),
    run=derive_lab_toxicity,
)

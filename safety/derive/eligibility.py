"""Eligibility deviations: age and the screening labs and vitals checked against study.yaml ``eligibility`` limits.

Eligibility is judged on the value the subject was enrolled on, not the day-0 (LBBLFL) baseline: the last
non-missing value dated before the first lymphodepletion dose (``subjects.lymphodepletion_start_day``), or
before day 0 when there was no lymphodepletion. Subjects not infused are not checked against lab and vital
limits (age only). Limits are inclusive unless
``inclusive: false`` (then the value must be strictly inside). ``max_x_uln`` compares with the record's own
ULN. A subject with no eligibility value for a checked test is listed too, with value NULL.
"""
from __future__ import annotations
from safety.core.sql import record_order, reset_derived, temp_table
from safety.core.vocabulary import blood_result
from safety.derive.graph import Derivation
from safety.schema import ELIGIBILITY_DEVIATIONS



def _rules(config: dict) -> list[tuple]:
    """(source, test, kind, bound, inclusive, criterion text) for every limit in study.yaml."""
    el = config.get("eligibility") or {}
    out = []
    age = el.get("age") or {}
    if age.get("min") is not None:
        out.append(("AGE", "AGE", "min", float(age["min"]), True, f"Age >= {age['min']}"))
    if age.get("max") is not None:
        out.append(("AGE", "AGE", "max", float(age["max"]), True, f"Age <= {age['max']}"))
    for source, entries in (("LB", el.get("labs") or []), ("VS", el.get("vitals") or [])):
        for e in entries:
            test = str(e["test"]).upper()
            inc = bool(e.get("inclusive", True))
            for kind, op in (("min", ">=" if inc else ">"), ("max", "<=" if inc else "<"), ("max_x_uln", "<=" if inc else "<")):
                if e.get(kind) is None:
                    continue
                text = f"{test} {op} {e[kind]}" + (" x ULN" if kind == "max_x_uln" else "")
                out.append((source, test, kind, float(e[kind]), inc, e.get("label") or text))
    return out


def derive_eligibility_deviations(con, studyid, data_cut, config, review_store=None) -> None:
    """Rebuild eligibility_deviations for one study and cut."""
    reset_derived(con, (ELIGIBILITY_DEVIATIONS,), studyid, data_cut)
    rules = _rules(config)
    if not rules:
        return
    temp_table(con, "_elig_rules", {"source": "VARCHAR", "test": "VARCHAR", "kind": "VARCHAR", "bound": "DOUBLE",
                                    "inclusive": "BOOLEAN", "criterion": "VARCHAR"}, rules)
    latest = record_order("o", dtc="dtc", seq="seq")  # the last value before lymphodepletion, labs and vitals alike
    # rounding both sides to 12 decimals keeps 3 x 1.2 == 3.6 (floating point) on the right side of a limit
    con.execute(f"""
        INSERT INTO eligibility_deviations BY NAME
        WITH subj AS (SELECT usubjid, age, first_infusion_date,
                             -- enrolment is judged before lymphodepletion starts (or before day 0 without it)
                             coalesce(lymphodepletion_start_day, 0) AS before_day,
                             lymphodepletion_start_day IS NOT NULL AS had_ld
                      FROM subjects WHERE studyid = $s AND data_cut = $c),
        obs AS (
            SELECT 'LB' AS source, l.usubjid, l.lbtestcd AS test, l.value, l.unit, l.uln, l.day, l.lbdtc AS dtc, l.lbseq AS seq
            FROM labs l WHERE l.studyid = $s AND l.data_cut = $c AND l.value IS NOT NULL AND {blood_result('l')}
            UNION ALL
            SELECT 'VS', v.usubjid, v.vstestcd, v.value, v.unit, NULL, v.day, v.vsdtc, v.vsseq
            FROM vitals v WHERE v.studyid = $s AND v.data_cut = $c AND v.value IS NOT NULL),
        base AS (
            SELECT o.source, o.usubjid, o.test,
                   arg_max(o.value, {latest}) AS value, arg_max(o.unit, {latest}) AS unit,
                   arg_max(o.uln, {latest}) AS uln, arg_max(o.day, {latest}) AS day
            FROM obs o JOIN subj s USING (usubjid)
            WHERE s.first_infusion_date IS NOT NULL AND o.day < s.before_day
            GROUP BY ALL),
        checked AS (
            SELECT s.usubjid, r.*, b.value, b.unit, b.uln, b.day, s.first_infusion_date, s.had_ld
            FROM _elig_rules r CROSS JOIN subj s
            LEFT JOIN base b ON b.usubjid = s.usubjid AND b.source = r.source AND b.test = r.test
            WHERE r.source <> 'AGE'
            UNION ALL
            SELECT s.usubjid, r.*, s.age, 'years', NULL, NULL, s.first_infusion_date, s.had_ld
            FROM _elig_rules r CROSS JOIN subj s WHERE r.source = 'AGE'),
        judged AS (
            SELECT *, CASE kind WHEN 'max_x_uln' THEN bound * uln ELSE bound END AS lim FROM checked)
        SELECT $s AS studyid, $c AS data_cut, usubjid, criterion, test, value, unit, lim AS limit_value, day,
               CASE WHEN value IS NULL AND source = 'AGE' THEN 'age not recorded'
                    WHEN value IS NULL AND had_ld THEN 'no value before lymphodepletion'
                    WHEN value IS NULL THEN 'no value before day 0'
                    WHEN lim IS NULL THEN 'no ULN on the eligibility record'
                    WHEN kind = 'min' THEN 'below minimum'
                    ELSE 'above maximum' END AS detail
        FROM judged
        WHERE (first_infusion_date IS NOT NULL OR source = 'AGE')
          AND (value IS NULL OR lim IS NULL
               OR (kind = 'min' AND (round(value, 12) < round(lim, 12) OR (NOT inclusive AND round(value, 12) = round(lim, 12))))
               OR (kind <> 'min' AND (round(value, 12) > round(lim, 12) OR (NOT inclusive AND round(value, 12) = round(lim, 12)))))
        ORDER BY usubjid, criterion
    """, {"s": studyid, "c": data_cut})


DERIVATION = Derivation(
    name="eligibility",
    writes=(ELIGIBILITY_DEVIATIONS,),
    reads=('subjects', 'labs', 'vitals'),
    run=derive_eligibility_deviations,
)

"""CAR-HEMATOTOX (Rejeski K et al., Blood 2021;138:2499-2513): a pre-lymphodepletion risk score for
haematotoxicity, shown to committees beside ICAHT.

Five markers, the last value of each on or before the start of lymphodepletion: ANC, haemoglobin, platelets
(haematopoietic reserve), CRP and ferritin (inflammation). Points per marker are data
(safety/data/car_hematotox.csv, SI units); a score >= 2 is high risk, 0-1 low. Choices: docs/toxicities.md.
"""
from __future__ import annotations

from pathlib import Path

from safety.core.files import read_data_csv
from safety.core.sql import record_order, temp_table
from safety.core.vocabulary import blood_result, censored_value, unit_missing
from safety.derive.graph import Derivation
from safety.derive.toxicity._sql import SCOPE, insert, reset
from safety.schema import CAR_HEMATOTOX

POINTS_FILE = Path(__file__).resolve().parents[2] / "data" / "car_hematotox.csv"
MARKERS = ("ANC", "HGB", "PLT", "CRP", "FERRITIN")
HIGH_RISK_FROM = 2
# Values older than this many days before the reference day are not used.
LOOKBACK_DAYS = 30
# Without a recorded lymphodepletion start, values on or before this day are used.
DEFAULT_REFERENCE_DAY = -1
_COLUMNS = ("marker", "lbtestcd", "points", "low", "low_inclusive", "high", "high_inclusive", "note")

# What a page calls the score, and the columns of car_hematotox it shows (the Labs page and the packet alike).
REFERENCE = "CAR-HEMATOTOX (Rejeski et al., Blood 2021;138:2499-2513)"
HEADING = "CAR-HEMATOTOX (Rejeski 2021): risk before lymphodepletion"
HIGH_RISK_LABEL = f"High risk (score ≥{HIGH_RISK_FROM})"
SHOWN_COLUMNS = ("usubjid", "risk", "score", "score_known", "reference_day", "inputs", "note")


def high_risk_subjects(rows) -> int:
    """The count behind HIGH_RISK_LABEL: car_hematotox rows (one per subject) whose risk is high, complete or not."""
    return int(rows["risk"].str.startswith("high").sum())


def _bound(v: str, path: Path, i: int):
    if v.strip() == "":
        return None
    try:
        return float(v)
    except ValueError:
        raise ValueError(f"{path} row {i}: bound {v!r} is not a number") from None


def load_points(path: Path = POINTS_FILE) -> list[tuple]:
    """Rows (marker, lbtestcd, points, low, low_inclusive, high, high_inclusive); bad rows fail loudly."""
    out = []
    for i, r in read_data_csv(path, _COLUMNS):
        if r["marker"] not in MARKERS:
            raise ValueError(f"{path} row {i}: marker {r['marker']!r} is not one of {MARKERS}")
        out.append((r["marker"], r["lbtestcd"].upper(), int(r["points"]), _bound(r["low"], path, i),
                    r["low_inclusive"].lower() == "true", _bound(r["high"], path, i),
                    r["high_inclusive"].lower() == "true"))
    return out


def derive_car_hematotox(con, studyid, data_cut, config, review_store=None) -> None:
    """Build ``car_hematotox`` for one study and data cut."""
    reset(con, (CAR_HEMATOTOX,), studyid, data_cut)
    temp_table(con, "_ht_points", {"marker": "VARCHAR", "test": "VARCHAR", "points": "INTEGER", "lo": "DOUBLE",
                                   "lo_inc": "BOOLEAN", "hi": "DOUBLE", "hi_inc": "BOOLEAN"}, load_points())
    m = {k: k.lower() for k in MARKERS}
    cols = ",\n  ".join(
        f"max(v.value) FILTER (WHERE v.marker = '{k}') AS {c}, max(v.day) FILTER (WHERE v.marker = '{k}') AS {c}_day, "
        f"max(v.pts) FILTER (WHERE v.marker = '{k}') AS {c}_points, "
        f"coalesce(max(v.censored) FILTER (WHERE v.marker = '{k}'), '') AS {c}_censored" for k, c in m.items())
    # a censored result ('>2000') lies beyond its bound, past the rounding: '>2000' ferritin is > 2000
    value = censored_value("lv", "round(lv.value, 9)")
    insert(con, CAR_HEMATOTOX, f"""
WITH s AS (
  SELECT usubjid, coalesce(lymphodepletion_start_day, {DEFAULT_REFERENCE_DAY}) AS reference_day,
         CASE WHEN lymphodepletion_start_day IS NULL THEN 'day {DEFAULT_REFERENCE_DAY} (no lymphodepletion recorded)'
              ELSE 'lymphodepletion start' END AS reference
  FROM subjects WHERE {SCOPE} AND first_infusion_date IS NOT NULL
),
res AS (
  SELECT l.*, p.marker, {unit_missing('l')} AS unitless
  FROM labs l JOIN s USING (usubjid)
  JOIN (SELECT DISTINCT marker, test FROM _ht_points) p ON p.test = upper(l.lbtestcd)
  WHERE l.studyid = $s AND l.data_cut = $c AND l.value IS NOT NULL AND {blood_result('l')}
    AND l.day BETWEEN s.reference_day - {LOOKBACK_DAYS} AND s.reference_day
),
-- a result without its unit cannot be scored against the SI cut-offs (as CTCAE grading says 'unit missing'): left
-- out, so the marker's last result with a unit counts, and the note says how many were left out
last_val AS (
  SELECT l.usubjid, l.marker, arg_max(l.value, {record_order('l')}) AS value,
         arg_max_null(l.censored, {record_order('l')}) AS censored, max(l.day) AS day
  FROM res l WHERE NOT l.unitless
  GROUP BY l.usubjid, l.marker
),
unitless AS (
  SELECT usubjid, 'without a unit, left out: ' || string_agg(marker || ' ' || n || ' result(s)', ', ' ORDER BY k)
         AS unitless_note
  FROM (SELECT usubjid, marker, count(*) AS n,
               list_position({list(MARKERS)}, marker) AS k FROM res WHERE unitless GROUP BY usubjid, marker)
  GROUP BY usubjid
),
v AS (
  SELECT lv.*, coalesce(max(p.points) FILTER (WHERE
      (p.lo IS NULL OR CASE WHEN p.lo_inc THEN {value} >= p.lo ELSE {value} > p.lo END)
      AND (p.hi IS NULL OR CASE WHEN p.hi_inc THEN {value} <= p.hi ELSE {value} < p.hi END)), 0) AS pts
  FROM last_val lv JOIN _ht_points p ON p.marker = lv.marker
  GROUP BY ALL
),
w AS (
  SELECT s.usubjid, any_value(s.reference_day) AS reference_day, any_value(s.reference) AS reference,
  {cols}
  FROM s LEFT JOIN v USING (usubjid) GROUP BY s.usubjid
)
SELECT $s::VARCHAR AS studyid, $c::DATE AS data_cut, w.*,
  CASE WHEN {' AND '.join(f'{c} IS NOT NULL' for c in m.values())}
       THEN {' + '.join(f'{c}_points' for c in m.values())} END AS score,
  {' + '.join(f'coalesce({c}_points, 0)' for c in m.values())} AS score_known,
  CASE WHEN {' AND '.join(f'{c} IS NOT NULL' for c in m.values())}
       THEN CASE WHEN {' + '.join(f'{c}_points' for c in m.values())} >= {HIGH_RISK_FROM} THEN 'high' ELSE 'low' END
       WHEN {' + '.join(f'coalesce({c}_points, 0)' for c in m.values())} >= {HIGH_RISK_FROM} THEN 'high (incomplete)'
       ELSE 'not assessable' END AS risk,
  concat_ws('; ',
    'ANC ' || anc_censored || anc || ' x10^9/L (day ' || anc_day || '): ' || anc_points,
    'Hb ' || hgb_censored || hgb || ' g/L (day ' || hgb_day || '): ' || hgb_points,
    'platelets ' || plt_censored || plt || ' x10^9/L (day ' || plt_day || '): ' || plt_points,
    'CRP ' || crp_censored || crp || ' mg/L (day ' || crp_day || '): ' || crp_points,
    'ferritin ' || ferritin_censored || ferritin || ' ug/L (day ' || ferritin_day || '): ' || ferritin_points) AS inputs,
  nullif(concat_ws('; ',
    nullif(concat_ws(', ', {', '.join(f"CASE WHEN {c} IS NULL THEN '{k} missing' END" for k, c in m.items())}), '')
      || ' (no value in the ' || {LOOKBACK_DAYS} || ' days up to day ' || reference_day || ')',
    u.unitless_note), '') AS note
FROM w LEFT JOIN unitless u USING (usubjid)
""", {"s": studyid, "c": data_cut})
    con.execute("DROP TABLE IF EXISTS _ht_points")


DERIVATION = Derivation(
    name="car_hematotox",
    writes=(CAR_HEMATOTOX,),
    reads=('subjects', 'labs'),
    run=derive_car_hematotox,
)

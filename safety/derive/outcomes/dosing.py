"""Dose actually given: planned versus actual cell dose per enrolled subject, and why some were never infused.

Planned dose per dose level comes from study.yaml ``planned_doses`` (in the unit of EXDOSU); the actual dose is the
sum of EXDOSE over CAR infusions. Subjects never infused keep a row with the reason from their last DS record, so
'enrolled', 'infused' and every denominator built on them can be read side by side.
"""
from __future__ import annotations

from safety.core.sql import temp_table
from safety.derive.graph import Derivation
from safety.derive.toxicity._sql import insert, reset
from safety.schema import DOSE_DELIVERED

_SQL = """
WITH ex AS (
  SELECT usubjid, sum(exdose) AS dose, any_value(exdosu) AS unit FROM exposures
  WHERE studyid = $s AND data_cut = $c AND is_car_infusion GROUP BY usubjid
),
ds AS (
  SELECT usubjid, arg_max(coalesce(dsterm, dsdecod), (dsst_date, dsseq)) AS reason FROM disposition
  WHERE studyid = $s AND data_cut = $c GROUP BY usubjid
),
planned AS (SELECT * FROM _planned_doses)
SELECT $s AS studyid, $c AS data_cut, s.usubjid, s.dose_level, planned.dose AS planned_dose, ex.dose AS actual_dose,
       ex.unit AS dose_unit, CASE WHEN planned.dose > 0 AND ex.dose IS NOT NULL THEN ex.dose / planned.dose * 100.0 END
         AS pct_of_planned,
       CAST(coalesce(s.infusions, 0) AS INTEGER) AS infusions, coalesce(s.infused, false) AS infused,
       CASE WHEN NOT coalesce(s.infused, false) THEN coalesce(ds.reason, 'not recorded') END AS not_infused_reason
FROM subjects s LEFT JOIN ex USING (usubjid) LEFT JOIN ds USING (usubjid)
LEFT JOIN planned ON planned.level = s.dose_level
WHERE s.studyid = $s AND s.data_cut = $c
"""


def derive_dose(con, studyid, data_cut, config, review_store=None) -> None:
    """Rebuild dose_delivered for one (study, cut)."""
    reset(con, (DOSE_DELIVERED,), studyid, data_cut)
    temp_table(con, "_planned_doses", {"level": "VARCHAR", "dose": "DOUBLE"},
               [(str(level), float(dose)) for level, dose in (config.get("planned_doses") or {}).items()])
    insert(con, DOSE_DELIVERED, _SQL, {"s": studyid, "c": data_cut})


DERIVATION = Derivation(name="dose_delivered", writes=(DOSE_DELIVERED,),
                        reads=("subjects", "exposures", "disposition"), run=derive_dose)

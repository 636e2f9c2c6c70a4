"""Immune reconstitution per monitored marker, and the product's on-target, off-tumour watch list.

Markers are study settings (study.yaml ``immune_monitoring``): IgG with hypogammaglobulinaemia below 4 g/L for
every product; CD19+ B cells (B-cell aplasia) for a CD19-directed product; NK-cell counts for an anti-CD56 product,
whose target is on NK cells. IVIG comes from infection_support. The watch list (``off_tumour_watch``) names AE
terms and system organ classes to follow as a group, e.g. for anti-CD56 (NCAM1 on neural tissue) peripheral
neuropathy and delayed neurological AEs outside ICANS; onset after ``late_after_day`` is flagged as late.

A marker's threshold is in its ``unit``: only values in that unit (in its one spelling, as the load compares units)
are compared with it, or counted (a load converts IgG and the lymphocyte subsets to g/L and 10^9/L,
safety/data/unit_conversions.csv, and the settings convert a marker of such a test to that unit: 10 cells/uL is
0.01 x10^9/L; a CD19 percentage of lymphocytes stays a percentage and is not an absolute count). A marker without a
unit compares every value.
A result censored at the assay's limit ('<10' cells/uL, '<400' mg/dL: labs.value holds the bound) lies beyond its
bound when compared with the threshold, as CTCAE grading and ICAHT read it (``censored_value``): CD19+ '<10' cells/uL
is below 10 cells/uL. :func:`marker_values` is that choice of results, which the Outcomes page's chart draws too.
"""
from __future__ import annotations

from safety.core.sql import record_order, temp_table
from safety.core.vocabulary import POST_INFUSION_FIRST_DAY, blood_result, censored_value, unit_spelling_sql
from safety.derive.graph import Derivation
from safety.derive.toxicity._sql import insert, reset
from safety.schema import IMMUNE_RECONSTITUTION, OFF_TUMOUR_EVENTS


def marker_values(markers: str, where: str = "TRUE") -> str:
    """SQL: the lab results a monitored marker is judged on, the table's and the chart's: blood results with a value
    and a day, of infused subjects, in the marker's unit (a marker without a unit: every value). ``markers`` is a
    relation with ``test`` (upper case) and ``unit``, whose columns each row carries; ``where`` filters ``labs l``.
    ``cv`` is the value as compared with the threshold: a censored result ('<10') just beyond its bound."""
    return f"""(
  SELECT l.usubjid, m.*, l.day, l.value, {censored_value('l')} AS cv, l.lbdtc, l.lbseq
  FROM labs l JOIN {markers} m ON upper(l.lbtestcd) = m.test
  JOIN subjects s ON s.studyid = l.studyid AND s.data_cut = l.data_cut AND s.usubjid = l.usubjid
  WHERE {where} AND l.value IS NOT NULL AND l.day IS NOT NULL AND s.infused
    AND {blood_result('l')}  -- a CSF IgG is no hypogammaglobulinaemia
    AND (m.unit IS NULL OR {unit_spelling_sql('l.unit')} = {unit_spelling_sql('m.unit')})  -- 350 mg/dL is not below 4 g/L
)"""


def subjects_below(rows) -> tuple[int, int]:
    """(subjects below the threshold from day 1 on, subjects tested from day 1 on) among ``rows`` of one marker
    (immune_reconstitution): the Outcomes page's "<finding>" metric. A subject with no value after the infusion (only
    a screening value: it died, or left, before the first sample) is in the table, with ``n_values`` 0, and is not
    one of the tested; counted, it lowered the share of B-cell aplasia or hypogammaglobulinaemia."""
    tested = rows[rows["n_values"] > 0]
    return (int(tested.loc[tested["first_below_day"].notna(), "usubjid"].nunique()),
            int(tested["usubjid"].nunique()))


_IMMUNE = f"""
WITH lab AS (SELECT * FROM {marker_values('_immune_markers', 'l.studyid = $s AND l.data_cut = $c')}),
ivig AS (
  SELECT usubjid, count(*) AS n, min(start_day) AS first_day FROM infection_support
  WHERE studyid = $s AND data_cut = $c AND support = 'IVIG' AND start_day >= 0 GROUP BY usubjid
)
SELECT $s AS studyid, $c AS data_cut, lab.usubjid, lab.test, any_value(lab.label) AS label,
       any_value(lab.threshold) AS threshold, any_value(lab.finding) AS finding,
       CAST(count(*) FILTER (WHERE lab.day >= {POST_INFUSION_FIRST_DAY}) AS INTEGER) AS n_values,
       arg_max(lab.value, {record_order('lab')}) FILTER (WHERE lab.day < {POST_INFUSION_FIRST_DAY}) AS baseline_value,
       -- a censored result ('<10', labs.censored) lies beyond its bound: cv, not value, is compared and ordered
       arg_min(lab.value, (lab.cv, lab.day)) FILTER (WHERE lab.day >= {POST_INFUSION_FIRST_DAY}) AS nadir,
       arg_min(lab.day, (lab.cv, lab.day)) FILTER (WHERE lab.day >= {POST_INFUSION_FIRST_DAY}) AS nadir_day,
       min(lab.day) FILTER (WHERE lab.day >= {POST_INFUSION_FIRST_DAY} AND lab.cv < lab.threshold) AS first_below_day,
       arg_max(lab.value, {record_order('lab')}) AS last_value, max(lab.day) AS last_day,
       arg_max(lab.cv, {record_order('lab')}) < any_value(lab.threshold) AS below_at_last,
       CAST(coalesce(any_value(ivig.n), 0) AS INTEGER) AS ivig_doses, any_value(ivig.first_day) AS first_ivig_day
FROM lab LEFT JOIN ivig USING (usubjid)
GROUP BY lab.usubjid, lab.test
"""

_OFF_TUMOUR = """
SELECT $s AS studyid, $c AS data_cut, a.usubjid, a.event_key, $label AS watch_label,
       coalesce(a.aedecod, a.aeterm) AS term, a.aebodsys, a.aetoxgr AS ctcae_grade, a.onset_day,
       a.onset_day > $late AS late_onset, coalesce(a.related, false) AS related, coalesce(a.ongoing, false) AS ongoing
FROM adverse_events a
WHERE a.studyid = $s AND a.data_cut = $c AND a.onset_day IS NOT NULL AND a.onset_day >= 0
  AND (list_contains($socs, upper(coalesce(a.aebodsys, '')))
       OR len(list_filter($terms, lambda t: contains(upper(coalesce(a.aedecod, '') || ' | ' || coalesce(a.aeterm, '')), t))) > 0)
  AND len(list_filter($excl, lambda t: contains(upper(coalesce(a.aedecod, '') || ' | ' || coalesce(a.aeterm, '')), t))) = 0
"""


def derive_immune(con, studyid, data_cut, config, review_store=None) -> None:
    """Rebuild immune_reconstitution and off_tumour_events for one (study, cut)."""
    p = {"s": studyid, "c": data_cut}
    reset(con, (IMMUNE_RECONSTITUTION, OFF_TUMOUR_EVENTS), studyid, data_cut)
    temp_table(con, "_immune_markers", {"test": "VARCHAR", "label": "VARCHAR", "threshold": "DOUBLE",
                                        "finding": "VARCHAR", "unit": "VARCHAR"},
               [(m["test"].upper(), m.get("label", m["test"]), m["below"], m.get("finding", f"below {m['below']}"),
                 m.get("unit") or None) for m in config.get("immune_monitoring", [])])
    insert(con, IMMUNE_RECONSTITUTION, _IMMUNE, p)
    w = config.get("off_tumour_watch", {})
    if w.get("terms") or w.get("socs"):
        icans_terms = [t.upper() for t in config.get("dlt", {}).get("syndrome_terms", {}).get("ICANS", [])]
        insert(con, OFF_TUMOUR_EVENTS, _OFF_TUMOUR,
               {**p, "label": w.get("label") or "on-target, off-tumour watch list", "late": int(w.get("late_after_day", 30)),
                "socs": [x.upper() for x in w.get("socs", [])], "terms": [x.upper() for x in w.get("terms", [])],
                "excl": sorted({*(x.upper() for x in w.get("exclude_terms", [])), *icans_terms})})


DERIVATION = Derivation(name="immune_reconstitution", writes=(IMMUNE_RECONSTITUTION, OFF_TUMOUR_EVENTS),
                        reads=("labs", "subjects", "infection_support", "adverse_events"), run=derive_immune)

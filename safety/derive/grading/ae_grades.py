"""AE grades CTCAE does not define for the term: a site's 'grade 2 sepsis' (CTCAE v5.0 defines Sepsis at grades
3, 4 and 5 only) is a query, not a grade to count.

AEDECOD is matched to the CTCAE term list of the study's CTCAE version (safety/rules/ctcae_v5_terms.csv, made from
NCI's workbook by safety/rules/make_ctcae_terms.py) case aside: CTCAE terms are MedDRA lowest level terms, as AEDECOD
carries them. Only AEs graded on CTCAE are checked (CRS and ICANS graded on ASTCT are not); an AE whose term is no
CTCAE term is not checked. The grade itself is kept as reported: nothing is regraded.
"""
from __future__ import annotations

from safety.core.files import read_data_csv
from safety.core.sql import temp_table
from safety.derive.grading.rules import terms_file
from safety.derive.graph import Derivation
from safety.derive.toxicity._sql import insert, reset
from safety.schema import AE_GRADE_CHECKS

_SQL = """
SELECT $s AS studyid, $c AS data_cut, a.usubjid, a.event_key, a.aeterm, a.aedecod, t.ctcae_term, a.aetoxgr,
       replace(t.grades, '|', ', ') AS ctcae_grades, a.onset_day
FROM adverse_events a JOIN _ctcae_terms t ON lower(trim(a.aedecod)) = lower(t.ctcae_term)
WHERE a.studyid = $s AND a.data_cut = $c AND a.aetoxgr IS NOT NULL AND starts_with(a.grading_system, 'CTCAE')
  AND NOT list_contains(string_split(t.grades, '|'), CAST(a.aetoxgr AS VARCHAR))
"""


def derive_ae_grade_checks(con, studyid, data_cut, config, review_store=None) -> None:
    """Rebuild ae_grade_checks for one study and cut."""
    reset(con, (AE_GRADE_CHECKS,), studyid, data_cut)
    terms = read_data_csv(terms_file(config.get("ctcae_version", "5.0")), ("ctcae_term", "grades"), exact=False)
    temp_table(con, "_ctcae_terms", {"ctcae_term": "VARCHAR", "grades": "VARCHAR"},
               [(r["ctcae_term"], r["grades"]) for _, r in terms])
    insert(con, AE_GRADE_CHECKS, _SQL + " ORDER BY a.usubjid, a.onset_day, a.event_key", {"s": studyid, "c": data_cut})


DERIVATION = Derivation(name="ae_grade_checks", writes=(AE_GRADE_CHECKS,), reads=("adverse_events",),
                        run=derive_ae_grade_checks)

"""CRS and ICANS: one derivation that builds crs_grades, icans_grades, toxicity_episodes and grade_discrepancies,
in that order, and (re)creates the view toxicity_daily_grades over them (safety/schema/derived.py).

The jobs live in their own modules: assessment_grading (ASTCT grade of every bedside assessment, fever masking,
the episode walk), episodes (episodes from assessments or reported AEs, grade 5), discrepancies (reported
against derived). The lab screens around the episodes (biomarkers, IEC-HS) are the next
derivation, episode_lab_screens (episode_labs.py). Rules and choices: docs/toxicities.md.
"""
from __future__ import annotations

from safety.derive.graph import Derivation
from safety.derive.toxicity import assessment_grading as ag
from safety.derive.toxicity._sql import SCOPE, reset, run
from safety.derive.toxicity.discrepancies import discrepancies, ungraded_aes
from safety.derive.toxicity.episodes import assessment_source, attribute_deaths, episodes_from_aes, episodes_from_assessments
from safety.ingest.sqlmacros import install as install_date_macros
from safety.schema import CRS_ICANS_TABLES as TABLES

GRADING_SYSTEM = "ASTCT 2019"
_TEMP = ("_tox_crs_rows", "_tox_icans_rows", "_tox_crs_graded", "_tox_icans_graded", "_tox_tp", "_tox_walk",
         "_tox_ep", "_tox_ungraded_aes", "_tox_match", "_tox_mask_meds", "_tox_g5")


def derive_cell_therapy_toxicities(con, studyid, data_cut, config, review_store=None) -> None:
    """Build the CRS/ICANS tables for one study and data cut."""
    config = config or {}
    reset(con, TABLES, studyid, data_cut)
    macros = False  # the date macros grading reads, installed on the cursor once, when there is something to grade
    for syndrome, grading_key in (("CRS", "crs_grading"), ("ICANS", "icans_grading")):
        params = {"s": studyid, "c": data_cut, "grading": config.get(grading_key) or GRADING_SYSTEM}
        n = run(con, f"SELECT count(*) FROM {assessment_source(syndrome)} WHERE {SCOPE}", params).fetchone()[0]
        if n:
            if not macros:
                install_date_macros(con)
                macros = True
            ag.grade_rows(con, params, syndrome)
            (ag.insert_crs_grades if syndrome == "CRS" else ag.insert_icans_grades)(con, params)
            episodes_from_assessments(con, params, syndrome)
            # a reported AE that no gradable assessment covers is an episode too: ungradable rows are no evidence
            ungraded_aes(con, params, syndrome)
            episodes_from_aes(con, params, syndrome, ungraded=True)
        # subjects without bedside assessments of the syndrome: their reported AEs are the episode
        episodes_from_aes(con, params, syndrome)
        attribute_deaths(con, params, syndrome)
        if n:
            discrepancies(con, params, syndrome)
    for t in _TEMP:
        con.execute(f"DROP TABLE IF EXISTS {t}")


DERIVATION = Derivation(
    name="crs_icans",
    writes=(*TABLES,),
    reads=('subjects', 'crs_assessments', 'icans_assessments', 'medications', 'adverse_events', 'disposition'),
    run=derive_cell_therapy_toxicities,
)

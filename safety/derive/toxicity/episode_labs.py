"""The lab screens around CRS/ICANS episodes: one derivation that builds episode_biomarkers (peak CRP, ferritin
and IL-6 of each episode) and iec_hs_screen, once crs_icans has built the episodes.

A derivation of its own, not the end of crs_icans: the DLT screening reads the episodes but neither screen, so
it starts as soon as the episodes are committed and the screens run beside it (the load's critical path is
crs_icans -> dlt_screening -> stopping_rules). Rules and choices: docs/toxicities.md.
"""
from __future__ import annotations

from safety.derive.graph import Derivation
from safety.derive.toxicity._sql import reset
from safety.derive.toxicity.biomarkers import biomarkers
from safety.derive.toxicity.iec_hs import iec_hs
from safety.schema import EPISODE_LAB_TABLES as TABLES


def derive_episode_lab_screens(con, studyid, data_cut, config, review_store=None) -> None:
    """Build episode_biomarkers and iec_hs_screen for one study and data cut."""
    reset(con, TABLES, studyid, data_cut)
    params = {"s": studyid, "c": data_cut}
    biomarkers(con, params)
    iec_hs(con, params, config)
    con.execute("DROP TABLE IF EXISTS _iec_crit")
    con.execute("DROP TABLE IF EXISTS _iec_support")


DERIVATION = Derivation(
    name="episode_lab_screens",
    writes=(*TABLES,),
    reads=('subjects', 'labs', 'toxicity_episodes', 'medications', 'crs_assessments', 'procedures'),
    run=derive_episode_lab_screens,
)

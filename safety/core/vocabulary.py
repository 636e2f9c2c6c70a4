"""The field's words that more than one place uses, defined once: every reader imports them from here.

Terms are compared upper-case and trimmed (AEDECOD first, AETERM when AEDECOD is empty).
"""
from __future__ import annotations

# MedDRA preferred terms and the common site spellings of the two syndromes ASTCT grades.
CRS_TERMS: tuple[str, ...] = ("CYTOKINE RELEASE SYNDROME", "CRS")
ICANS_TERMS: tuple[str, ...] = (
    "IMMUNE EFFECTOR CELL-ASSOCIATED NEUROTOXICITY SYNDROME",
    "IMMUNE EFFECTOR CELL ASSOCIATED NEUROTOXICITY SYNDROME",
    "ICANS",
    "NEUROTOXICITY",
)
SYNDROME_TERMS: dict[str, tuple[str, ...]] = {"CRS": CRS_TERMS, "ICANS": ICANS_TERMS}

# Words in a cause of death (DS DSTERM / DM) or an AE that attribute a death to the syndrome (grade 5).
SYNDROME_DEATH_PATTERNS: dict[str, str] = {
    "CRS": r"CYTOKINE RELEASE|\bCRS\b",
    "ICANS": r"ICANS|NEUROTOXICITY|IMMUNE EFFECTOR CELL.ASSOCIATED NEURO",
}

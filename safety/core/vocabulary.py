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

# Neurotoxicity PTs besides ICANS that count as a DLT at grade >= 4 when reported as AEs: seizures,
# encephalopathy (MedDRA PTs) and cerebral oedema in MedDRA and CTCAE spellings. ICANS itself is graded from
# assessments, or read from its AE terms (ICANS_TERMS) where a subject has none.
NEUROTOXICITY_AE_TERMS: tuple[str, ...] = (
    "SEIZURE", "SEIZURES", "GENERALISED TONIC-CLONIC SEIZURE", "GENERALIZED TONIC-CLONIC SEIZURE",
    "STATUS EPILEPTICUS", "PARTIAL SEIZURES", "FOCAL DYSCOGNITIVE SEIZURES",
    "ENCEPHALOPATHY", "TOXIC ENCEPHALOPATHY", "METABOLIC ENCEPHALOPATHY", "LEUKOENCEPHALOPATHY",
    "BRAIN OEDEMA", "BRAIN EDEMA", "CEREBRAL OEDEMA", "CEREBRAL EDEMA", "EDEMA CEREBRAL",
)
NEUROTOXICITY_TERMS: tuple[str, ...] = ICANS_TERMS + NEUROTOXICITY_AE_TERMS

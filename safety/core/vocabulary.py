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

# Coded values of the bedside CRS/ICANS inputs (celltox files, or built from SDTM by safety/ingest/sdtm_assessments.py).
OXYGEN_DEVICES: tuple[str, ...] = ("NONE", "BLOW_BY", "LOW_FLOW_NC", "HIGH_FLOW_NC", "FACEMASK", "NONREBREATHER", "VENTURI",
                                   "CPAP", "BIPAP", "MECHANICAL_VENTILATION")
# SEDATED: consciousness depressed by sedation or intubation for a reason other than ICANS (not graded as ICANS).
CONSCIOUSNESS_LEVELS: tuple[str, ...] = ("AWAKE", "AWAKENS_SPONTANEOUSLY", "AWAKENS_TO_VOICE", "AWAKENS_TO_TACTILE",
                                         "UNAROUSABLE", "SEDATED")
SEIZURE_VALUES: tuple[str, ...] = ("NONE", "RAPIDLY_RESOLVING", "PROLONGED_OR_REPETITIVE")
MOTOR_VALUES: tuple[str, ...] = ("NONE", "DEEP_FOCAL")
EDEMA_VALUES: tuple[str, ...] = ("NONE", "FOCAL", "DIFFUSE")

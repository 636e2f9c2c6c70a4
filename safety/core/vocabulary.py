"""The field's words that more than one place uses, defined once: every reader imports them from here.

Terms are compared upper-case and trimmed (AEDECOD first, AETERM when AEDECOD is empty).
"""
from __future__ import annotations

import re

# MedDRA preferred terms and the common site spellings of the two syndromes ASTCT grades.
CRS_TERMS: tuple[str, ...] = ("CYTOKINE RELEASE SYNDROME", "CRS")
ICANS_TERMS: tuple[str, ...] = (
    "IMMUNE EFFECTOR CELL-ASSOCIATED NEUROTOXICITY SYNDROME",
    "IMMUNE EFFECTOR CELL ASSOCIATED NEUROTOXICITY SYNDROME",
    "ICANS",
    "NEUROTOXICITY",
)
SYNDROME_TERMS: dict[str, tuple[str, ...]] = {"CRS": CRS_TERMS, "ICANS": ICANS_TERMS}
# The signs ASTCT 2019 grades CRS by (fever, hypotension, hypoxia), as MedDRA PTs and site spellings: reported as
# AEs of their own during a CRS episode they are that CRS, not further toxicities (organ toxicities during CRS are
# graded by CTCAE and are; Lee et al. 2019).
# Hypotension and hypoxia set its grades 2-4; fever only makes it grade 1, whatever its height.
CRS_HYPOTENSION_HYPOXIA_TERMS: tuple[str, ...] = (
    "HYPOTENSION", "BLOOD PRESSURE DECREASED", "HYPOXIA", "HYPOXAEMIA", "HYPOXEMIA", "OXYGEN SATURATION DECREASED",
)
CRS_SIGN_TERMS: tuple[str, ...] = ("FEVER", "PYREXIA", *CRS_HYPOTENSION_HYPOXIA_TERMS)


def syndrome_term_sql(aedecod: str = "aedecod", aeterm: str = "aeterm") -> str:
    """SQL: the term a reported AE is matched to CRS_TERMS / ICANS_TERMS by (AEDECOD, else AETERM: an AE not yet
    coded is still the syndrome), for both the episodes and the grading scale the load gives the AE."""
    return f"upper(trim(coalesce({aedecod}, {aeterm})))"

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

# --- one adverse event across data cuts ------------------------------------------------------------------
def ae_term_sql(alias: str) -> str:
    """SQL: the term an adverse_events row ``alias`` is compared by across cuts (AEDECOD, else AETERM, upper case).
    Its key is built on AESEQ, which a sponsor's regenerated dataset may give to another event: a key whose term
    changed is another event (new since the previous cut, and a committee decision on it needs re-review)."""
    return f"upper(coalesce({alias}.aedecod, {alias}.aeterm))"


# --- how the AE summaries name an event (the SOC/PT tables, the Adverse events page, the PDF AE listing) ------
SOC_NOT_CODED = "(SOC not coded)"
UNCODED_PT_PREFIX = "Uncoded: "
NO_REPORTED_TERM = "(no term)"


def ae_soc_sql(aebodsys: str = "aebodsys") -> str:
    """SQL: the system organ class an AE is counted under: AEBODSYS, else '(SOC not coded)'."""
    return f"coalesce({aebodsys}, '{SOC_NOT_CODED}')"


def ae_pt_label(aedecod: str | None, aeterm: str | None) -> str:
    """The preferred term an AE is counted and named under, never empty: AEDECOD, else 'Uncoded: ' and the reported
    term in upper case (spellings differing in case are one row), else 'Uncoded: (no term)' (the load requires
    AETERM or AEDECOD as a column, not in every row). A value that is not text (None, NaN) is missing."""
    if isinstance(aedecod, str):
        return aedecod
    return UNCODED_PT_PREFIX + (aeterm.upper() if isinstance(aeterm, str) else NO_REPORTED_TERM)


def ae_pt_sql(aedecod: str = "aedecod", aeterm: str = "aeterm") -> str:
    """SQL of :func:`ae_pt_label` over the column expressions ``aedecod`` and ``aeterm``."""
    return f"coalesce({aedecod}, '{UNCODED_PT_PREFIX}' || coalesce(upper({aeterm}), '{NO_REPORTED_TERM}'))"


# --- deaths ---------------------------------------------------------------------------------------------
def fatal_ae(alias: str) -> str:
    """SQL: the adverse_events row ``alias`` ended in a death known at the cut. Grade 5, a fatal outcome or the
    results-in-death flag, with the death dated or recorded: an end date (the load keeps only ends on or before
    the cut), or the fatal outcome or flag, which the load withholds when the AE ended after the cut or has a start
    but no end and no death is recorded in DM or DS. A grade 5 alone, with a start but no end, outcome or flag, reads
    as such an AE and is no death at the cut (counting it dated a death after the cut at the AE's start, before the
    cut). An AE with no date at all is known at the cut it came in, so its death is one at the cut, its day not
    known: the load keeps its outcome and flag and marks it not ongoing (``ongoing`` false without an end), which
    is how a grade 5 alone says so here; unless DM dates the death after the cut."""
    a = f"{alias}." if alias else ""
    fatal_record = f"upper(coalesce({a}aeout, '')) = 'FATAL' OR upper(coalesce({a}aesdth, '')) = 'Y'"
    return (f"(({a}aetoxgr = 5 OR {fatal_record}) "
            f"AND ({a}aeen_date IS NOT NULL OR {fatal_record} OR NOT coalesce({a}ongoing, true)))")


# --- an event with no end date --------------------------------------------------------------------------
def open_end(death: str, cut: str) -> str:
    """SQL: the date an event with no end date runs to (an ongoing AE, a medication whose end is not recorded): the
    subject's death, else the data cut. adverse_events.duration_days counts to it and the subject profile draws to
    it, so that a bar is as long as the listing's duration."""
    return f"least({death}, {cut})"


# --- the disease under study -------------------------------------------------------------------------
# A term (a cause of death, an AE, an MH record) is compared with the subject's diagnosis (subjects.diagnosis) as
# words: upper case without accents, a possessive 's dropped, every run of other characters one space, British
# spellings American, a plural s dropped. In order, (RE2 pattern, replacement):
DISEASE_WORD_SPELLINGS: tuple[tuple[str, str], ...] = (
    (r"'S\b", ""),                      # Hodgkin's -> Hodgkin
    (r"[^A-Z0-9]+", " "),               # NK/T-cell -> NK T CELL
    (r"\bHODGKIN DISEASE\b", "HODGKIN LYMPHOMA"),  # MedDRA's 'Hodgkin's disease' is Hodgkin lymphoma
    (r"AEM", "EM"),                     # leukaemia, haematological, anaemia
    (r"TUMOUR", "TUMOR"),
    (r"OE(DEM|SOPHAG)", r"E\1"),        # oedema, oesophageal
    (r"\b([A-Z]{3,})S\b", r"\1"),       # lymphomas, neoplasms, cells
)


def disease_words(x: str) -> str:
    """SQL: the text ``x`` as words for comparing with a diagnosis, ' NK T CELL LYMPHOMA ' (a space each side, so
    that containment is of whole words); NULL when ``x`` is NULL."""
    s = f"upper(strip_accents({x}))"
    for pattern, replacement in DISEASE_WORD_SPELLINGS:  # our own constants, never input
        s = f"regexp_replace({s}, '{pattern.replace(chr(39), chr(39) * 2)}', '{replacement}', 'g')"
    return f"(' ' || trim({s}) || ' ')"


def names_disease_under_study(term: str, diagnosis: str) -> str:
    """SQL: the term names the subject's disease under study, or the diagnosis names the term: 'Extranodal
    NK/T-cell lymphoma' for NK/T-cell lymphoma, 'Acute myeloid leukemia' for acute myeloid leukaemia, 'Lymphoma' for
    diffuse large B-cell lymphoma. False when either is missing or has no words (a subject without a diagnosis)."""
    t, d = disease_words(term), disease_words(diagnosis)
    return f"coalesce(trim({t}) <> '' AND trim({d}) <> '' AND (contains({t}, {d}) OR contains({d}, {t})), false)"


# --- the safety population and the adverse events counted against it --------------------------------------
# FDA Standard Safety Tables: the subjects who received the product, here infused on or before the cut (a
# condition on the subjects table). A subject lymphodepleted but never infused is not in it.
SAFETY_POPULATION = "infused IS TRUE"


def counted_ae(alias: str) -> str:
    """SQL: the adverse_events row ``alias`` counts in the committee's AE tables and the app's AE counts: a
    treatment-emergent AE of a subject in the safety population. An AE whose treatment-emergent flag is unknown
    (no onset date) counts, as the FDA guide advises for missing onset dates."""
    return (f"({alias}.treatment_emergent IS NOT FALSE AND {alias}.usubjid IN "
            f"(SELECT usubjid FROM subjects WHERE {SAFETY_POPULATION}))")


# --- subject disposition at a cut (subjects.status; the overview's tiles and the packet's disposition table) ---
# (label, condition on the subjects table, what it means)
# the cohort of a subject whose DM gives none, as the committee tables and the DLT counts name it
NO_COHORT = "(no cohort)"
SUBJECT_DISPOSITION: tuple[tuple[str, str, str], ...] = (
    ("Screened", "TRUE", "Subjects in DM at this data cut"),
    ("Infused", SAFETY_POPULATION, "Received at least one CAR infusion"),
    ("In follow-up", "status = 'in follow-up'", "Infused, alive, before month 12"),
    ("Completed month 12", "status = 'completed'", "Reached the month-12 visit"),
    ("Discontinued", "status = 'discontinued'", "Left the study early, alive"),
    ("Died", "status = 'died'", "Died on or before the data cut"),
)
# the select list counting each of them over the subjects table: columns n0 .. n5, in that order
SUBJECT_DISPOSITION_COUNTS = ", ".join(f"count(*) FILTER (WHERE {cond}) AS n{i}"
                                       for i, (_, cond, _) in enumerate(SUBJECT_DISPOSITION))

# --- who may do what ---------------------------------------------------------------------------------
ROLES: tuple[str, ...] = ("committee", "investigator", "data_manager", "admin")

# --- committee decisions on DLT candidates ------------------------------------------------------------
# The values a decision takes, and what each means for counting. The newest decision per event is in force.
DECISIONS: tuple[str, ...] = ("confirmed", "rejected", "added", "withdrawn")
DLT_DECISIONS: tuple[str, ...] = ("confirmed", "added")   # counted as a DLT
NOT_DLT_DECISIONS: tuple[str, ...] = ("rejected",)       # counted as not a DLT
# 'withdrawn' takes the earlier decision back: the candidate is pending again, as if never decided.
WITHDRAWN = "withdrawn"
DECISION_MEANING: dict[str, str] = {
    "confirmed": "a screened candidate the committee counts as a DLT",
    "added": "a DLT the screening rules missed, added by the committee and counted",
    "rejected": "a screened candidate the committee does not count as a DLT",
    "withdrawn": "the earlier decision is taken back: the candidate is pending again",
}
# Decisions a secretary may enter from signed minutes (``python -m safety review decide``).
CLI_DECISIONS: tuple[str, ...] = ("confirmed", "rejected", "withdrawn")

# --- the DLT window ------------------------------------------------------------------------------------
# Days after infusion (day 0) whose onsets count as DLTs unless study.yaml ``dlt.window`` says otherwise.
DLT_WINDOW_START_DAY = 0
DLT_WINDOW_END_DAY = 28

# --- post-infusion -------------------------------------------------------------------------------------
# The first study day after infusion (day 0, which holds the pre-infusion baseline): the lab summaries' worst
# post-infusion grade, the eDISH peaks, the IEC-HS screen's findings and the immune markers' nadirs count values
# from this day on.
POST_INFUSION_FIRST_DAY = 1

# --- SDTM Y/N flags ---------------------------------------------------------------------------------------
# The NY codelist (AESER, AESDTH, LBBLFL ...): each code and the spellings read as it (upper case, trimmed). A
# Parquet boolean reads as 'TRUE'/'FALSE'; an EDC export may write 'Yes' or 1. Any other value is quarantined.
NY_CODES: dict[str, tuple[str, ...]] = {
    "Y": ("Y", "YES", "TRUE", "1"),
    "N": ("N", "NO", "FALSE", "0"),
    "U": ("U", "UNK", "UNKNOWN"),
    "NA": ("NA",),
}

# --- lab specimens ---------------------------------------------------------------------------------------
# CSF, urine and other specimens share their test codes with blood (a CSF NEUT of 2 /uL, a urine creatinine, a CSF
# IgG): every derivation that reads a blood measure (CTCAE grades, ICAHT, CAR-HEMATOTOX, TLS, the episode lab
# screens, immune markers, eligibility) keeps blood results only. Blood is an empty LBSPEC or one naming blood,
# serum or plasma (WHOLE BLOOD, VENOUS BLOOD, SERUM OR PLASMA), with an LBCAT that is not urinalysis.
BLOOD_SPECIMEN_PATTERN = "BLOOD|SERUM|PLASMA"


def blood_result(alias: str = "") -> str:
    """SQL: the labs row ``alias`` (or the row in scope, when empty) is a blood result."""
    a = f"{alias}." if alias else ""
    return (f"(({a}lbspec IS NULL OR trim({a}lbspec) = '' "
            f"OR regexp_matches(upper({a}lbspec), '{BLOOD_SPECIMEN_PATTERN}')) "
            f"AND NOT coalesce(contains(upper({a}lbcat), 'URIN'), FALSE))")



def unit_missing(alias: str = "") -> str:
    """SQL: the labs row ``alias`` has no unit (none or blank), so its number cannot be read in the SI unit a rule's
    cut-offs use: CTCAE grading says 'unit missing', ICAHT and CAR-HEMATOTOX leave it out."""
    a = f"{alias}." if alias else ""
    return f"(nullif(trim({a}unit), '') IS NULL)"

# --- censored lab results -----------------------------------------------------------------------------------
# A censored result ('<0.5', '>1000': labs.value holds the bound, labs.censored the sign) lies beyond its bound.
# Every rule that compares one with a cut-off (CTCAE grades, ICAHT, CAR-HEMATOTOX) reads it as a value this fraction
# of its bound beyond it: past the rounding the comparisons make (CTCAE's 15 significant digits; ICAHT and
# CAR-HEMATOTOX add it after their rounding to 9 decimals) and far inside any lab's own precision, so '<0.5' meets
# "< 0.5", '>1000' meets "> 20 x ULN" of 50, and no other threshold moves.
CENSORED_STEP = "1e-12"


def censored_value(alias: str, value: str | None = None) -> str:
    """SQL: the labs row ``alias``'s value (or the expression ``value`` made from it) as compared with a cut-off:
    just beyond its bound when the result is censored."""
    v = value or f"{alias}.value"
    return (f"CASE {alias}.censored WHEN '<' THEN {v} - abs({v}) * {CENSORED_STEP} "
            f"WHEN '>' THEN {v} + abs({v}) * {CENSORED_STEP} ELSE {v} END")


# --- unit spellings ----------------------------------------------------------------------------------------
# A unit as written, brought to one form by these steps in order: the load matches delivered units to
# safety/data/unit_conversions.csv by them (SQL macro ct_unit), and study.yaml's lab-limit units are matched the same
# way (unit_spelling), so a setting may name a unit in any spelling the load reads.
UNIT_SPELLING_REPLACE: tuple[tuple[str, str], ...] = ((" ", ""), ("µ", "u"), ("μ", "u"))  # every one, then upper case
UNIT_SPELLING_REPLACE_UPPER: tuple[tuple[str, str], ...] = (("MC", "U"),)                  # every one
UNIT_SPELLING_PATTERNS: tuple[tuple[str, str], ...] = (                                    # the first match of each
    (r"^X", ""), (r"10(\*\*|\*|E|\^)?([0-9])", r"10^\2"), (r"CELLS/", "/"), (r"^GI/L$", "10^9/L"),
    (r"^K/UL$", "10^3/UL"))


def unit_spelling(unit: str) -> str:
    """A unit in its one form ('x10E9/L' and '10*9/L' are '10^9/L', 'µmol/L' is 'UMOL/L')."""
    s = unit
    for old, new in UNIT_SPELLING_REPLACE:
        s = s.replace(old, new)
    s = s.upper()
    for old, new in UNIT_SPELLING_REPLACE_UPPER:
        s = s.replace(old, new)
    for pattern, repl in UNIT_SPELLING_PATTERNS:
        s = re.sub(pattern, repl, s, count=1)
    return s


def unit_spelling_sql(expr: str) -> str:
    """SQL of :func:`unit_spelling` over the text ``expr`` (DuckDB's regexp_replace replaces the first match)."""
    s = expr
    for old, new in UNIT_SPELLING_REPLACE:
        s = f"replace({s}, '{old}', '{new}')"
    s = f"upper({s})"
    for old, new in UNIT_SPELLING_REPLACE_UPPER:
        s = f"replace({s}, '{old}', '{new}')"
    for pattern, repl in UNIT_SPELLING_PATTERNS:
        s = f"regexp_replace({s}, '{pattern}', '{repl}')"
    return s


# --- results below an assay's limit -------------------------------------------------------------------
# A result written as text meaning "nothing measurable was found": below the lower limit of quantification or of
# detection, or not detected. A kinetics sample (PC) so written is below the LLOQ; a microbiology result (MB) so
# written is no finding. Any text starting with '<' ('<5', '<LLOQ') means the same and keeps its bound.
BELOW_LIMIT_TEXTS: tuple[str, ...] = ("BLQ", "BQL", "<LLOQ", "<LOD", "ND", "NEG", "TND", "NOT DETECTED",
                                      "NOT DETECTABLE", "NON DETECTED", "UNDETECTABLE", "UNDETECTED")

# --- response assessments (RS) ----------------------------------------------------------------------
# RSTESTCD of the overall response (target, non-target and new lesions together, Cheson 2014): the only RS rows
# read as a response or a progression when the delivery carries RSTESTCD. Component rows (TRGRESP, NTRGRESP,
# NEWLIND) and a derived best response (BESTRESP) are not a time-point overall response.
OVERALL_RESPONSE_TESTS: tuple[str, ...] = ("OVRLRESP", "OVRLRSP", "OVRRESP", "OVERALL RESPONSE")
# RSEVAL read by default when the delivery names the assessor (study.yaml response.assessor chooses another).
DEFAULT_RESPONSE_ASSESSOR = "INVESTIGATOR"
# SQL: the responses row in scope is read as a response or a progression: the overall response (RSTESTCD in
# OVERALL_RESPONSE_TESTS, or no RSTESTCD) of the study's assessor (or no RSEVAL). A target-lesion CR beside an
# overall PR, or an independent reviewer's PR beside the investigator's SD, is not the subject's response (Cheson
# 2014: the overall response of one assessment). Parameters: overall_response_params().
OVERALL_RESPONSE_ROW = ("(rstestcd IS NULL OR list_contains($rs_tests, rstestcd)) "
                        "AND (rseval IS NULL OR rseval = $rs_assessor)")


def overall_response_params(cfg: dict) -> dict:
    """The parameters of ``OVERALL_RESPONSE_ROW`` from a study configuration."""
    return {"rs_tests": list(OVERALL_RESPONSE_TESTS),
            "rs_assessor": str(cfg.get("response", {}).get("assessor", DEFAULT_RESPONSE_ASSESSOR)).upper()}


def ice_band_sql(score: str) -> str:
    """SQL: the ICANS grade the ASTCT 2019 consensus gives an ICE score (10: 0, 7-9: 1, 3-6: 2, 0-2: 3), the one
    band read by the grading and by the SDTM build of an ICE whose missing items cannot change it."""
    return f"CASE WHEN {score} >= 10 THEN 0 WHEN {score} >= 7 THEN 1 WHEN {score} >= 3 THEN 2 ELSE 3 END"


# --- bedside CRS/ICANS inputs ------------------------------------------------------------------------
# Where a crs_assessments / icans_assessments row came from (its ``source``): the celltox assessment file, or built
# from SDTM domains by safety/ingest/sdtm_assessments.py.
ASSESSMENT_SOURCE_FILE = "assessment file"
ASSESSMENT_SOURCE_SDTM = "SDTM"
# Coded values of the bedside CRS/ICANS inputs (celltox files, or built from SDTM by safety/ingest/sdtm_assessments.py).
OXYGEN_DEVICES: tuple[str, ...] = ("NONE", "BLOW_BY", "LOW_FLOW_NC", "HIGH_FLOW_NC", "FACEMASK", "NONREBREATHER", "VENTURI",
                                   "CPAP", "BIPAP", "MECHANICAL_VENTILATION")
# ASTCT 2019 grade 4 hypoxia, and the organ support of an IEC-HS grade 4 (Hines 2023): positive-pressure devices.
POSITIVE_PRESSURE_DEVICES: tuple[str, ...] = ("CPAP", "BIPAP", "MECHANICAL_VENTILATION")
# SEDATED: consciousness depressed by sedation or intubation for a reason other than ICANS (not graded as ICANS).
CONSCIOUSNESS_LEVELS: tuple[str, ...] = ("AWAKE", "AWAKENS_SPONTANEOUSLY", "AWAKENS_TO_VOICE", "AWAKENS_TO_TACTILE",
                                         "UNAROUSABLE", "SEDATED")
SEIZURE_VALUES: tuple[str, ...] = ("NONE", "RAPIDLY_RESOLVING", "PROLONGED_OR_REPETITIVE")
MOTOR_VALUES: tuple[str, ...] = ("NONE", "DEEP_FOCAL")
EDEMA_VALUES: tuple[str, ...] = ("NONE", "FOCAL", "DIFFUSE")

# Words in a cause of death (DS DSTERM / DM) or an AE that attribute a death to the syndrome (grade 5).
SYNDROME_DEATH_PATTERNS: dict[str, str] = {
    "CRS": r"CYTOKINE RELEASE|\bCRS\b",
    "ICANS": r"ICANS|NEUROTOXICITY|IMMUNE EFFECTOR CELL.ASSOCIATED NEURO",
}

# --- deliveries ------------------------------------------------------------------------------------------
def dropped_domains_note(before, now, previous_cut) -> str | None:
    """The warning for domains delivered at the study's previous cut (``before``) and missing from this one
    (``now``): their tables are empty at this cut, so every page and listing would read "none recorded" unseen.
    None when nothing was dropped, or when either cut's domains are unknown."""
    before, now = (None if x is None else list(x) for x in (before, now))  # lists, or a page's arrays
    dropped = [d for d in (before or []) if d not in now] if now else []
    if not dropped or previous_cut is None:
        return None
    return (f"{', '.join(dropped)} delivered at the {previous_cut:%Y-%m-%d} cut and not at this one: nothing of it "
            "is loaded at this cut, so its listings read as none recorded")


# --- lymphodepletion ----------------------------------------------------------------------------------
# EX/CM text naming a lymphodepleting drug (the ingest's lymphodepletion start, the subject profile's doses)
LYMPHODEPLETION_PATTERN = r"(lymphodeplet|fludara|cyclophosph|bendamust|cytoxan|endoxan)"


def lymphodepleting_ex_sql() -> str:
    """SQL over an exposures row: a lymphodepleting dose (not the cell product, naming a lymphodepleting drug), with
    LYMPHODEPLETION_PATTERN as the parameter $ld_pattern. With CM's med_class 'lymphodepletion', the one rule of
    subjects.lymphodepletion_start_day and of the doses the subject profile draws."""
    return "(NOT is_car_infusion AND regexp_matches(lower(concat_ws(' ', excat, extrt)), $ld_pattern))"


# --- a subsequent line of therapy ---------------------------------------------------------------------
# CMCAT (upper case) of a medication that begins a subsequent line of anticancer therapy: 'SUBSEQUENT ANTI-CANCER
# THERAPY', 'FOLLOW-UP ANTICANCER THERAPY', 'POST-TREATMENT ANTI-CANCER THERAPY', 'NEXT LINE', 'SALVAGE THERAPY'.
# Bridging, lymphodepletion, prophylaxis and supportive care name none. T-ICAHT censors the early platelet window there.
SUBSEQUENT_THERAPY_CATEGORY = (r"SUBSEQUENT|NEXT[- ]LINE|(NEW|FURTHER) (LINE|ANTI)|SALVAGE"
                               r"|(POST|FOLLOW)[- ]?(UP|TREATMENT|STUDY|INFUSION|CAR[- ]?T?)[- ]*(ANTI|THERAP|TREATMENT)")

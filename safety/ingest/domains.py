"""What ingest reads: domain codes, column-name normalisation (names, lower case, SDTM labels), and per-domain
validation specs. Specs are data; the engine in :mod:`safety.ingest.engine` turns them into SQL."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from safety.core.vocabulary import CONSCIOUSNESS_LEVELS, EDEMA_VALUES, MOTOR_VALUES, OXYGEN_DEVICES, SEIZURE_VALUES

# SDTM domains celltox loads, plus the two celltox-defined files.
DOMAIN_CODES = {"DM", "EX", "AE", "LB", "VS", "CM", "RS", "DS", "QS", "PR", "FA", "CE", "PC", "MB", "PP", "MH"}
ALL_DOMAINS = ("DM", "EX", "AE", "LB", "VS", "CM", "RS", "DS", "QS", "PR", "FA", "CE", "CRS", "ICANS", "PC", "MB",
               "PP", "MH")
OPTIONAL_DOMAINS = ("EX", "AE", "LB", "VS", "CM", "RS", "DS", "QS", "PR", "FA", "CE", "CRS", "ICANS", "PC", "MB",
                    "PP", "MH")

# SDTM variable labels (SDTMIG) accepted as column headers for the core variables. "--" is the domain prefix.
# Keys are compared after lower-casing and dropping everything but letters and digits.
LABEL_ALIASES: dict[str, str] = {
    "Study Identifier": "STUDYID",
    "Domain Abbreviation": "DOMAIN",
    "Unique Subject Identifier": "USUBJID",
    "Subject Identifier for the Study": "SUBJID",
    "Study Site Identifier": "SITEID",
    "Sequence Number": "--SEQ",
    "Age": "AGE",
    "Sex": "SEX",
    "Race": "RACE",
    "Country": "COUNTRY",
    "Planned Arm Code": "ARMCD",
    "Description of Planned Arm": "ARM",
    "Actual Arm Code": "ACTARMCD",
    "Description of Actual Arm": "ACTARM",
    "Date/Time of Informed Consent": "RFICDTC",
    "Date/Time of First Study Treatment": "RFXSTDTC",
    "Date/Time of Death": "DTHDTC",
    "Reported Term for the Adverse Event": "AETERM",
    "Dictionary-Derived Term": "--DECOD",
    "Body System or Organ Class": "AEBODSYS",
    "Standard Toxicity Grade": "AETOXGR",
    "Severity/Intensity": "AESEV",
    "Serious Event": "AESER",
    "Causality": "AEREL",
    "Action Taken with Study Treatment": "AEACN",
    "Outcome of Adverse Event": "AEOUT",
    "Start Date/Time of Adverse Event": "AESTDTC",
    "End Date/Time of Adverse Event": "AEENDTC",
    "Lab Test or Examination Short Name": "LBTESTCD",
    "Lab Test or Examination Name": "LBTEST",
    "Category for Lab Test": "LBCAT",
    "Result or Finding in Original Units": "--ORRES",
    "Original Units": "--ORRESU",
    "Character Result/Finding in Std Format": "--STRESC",
    "Numeric Result/Finding in Standard Units": "--STRESN",
    "Standard Units": "--STRESU",
    "Reference Range Lower Limit in Orig Unit": "--ORNRLO",
    "Reference Range Upper Limit in Orig Unit": "--ORNRHI",
    "Reference Range Lower Limit-Std Units": "--STNRLO",
    "Reference Range Upper Limit-Std Units": "--STNRHI",
    "Reference Range Indicator": "--NRIND",
    "Baseline Flag": "--BLFL",
    "Date/Time of Specimen Collection": "LBDTC",
    "Vital Signs Test Short Name": "VSTESTCD",
    "Vital Signs Test Name": "VSTEST",
    "Date/Time of Measurements": "VSDTC",
    "Name of Treatment": "EXTRT",
    "Dose": "--DOSE",
    "Dose Units": "--DOSU",
    "Start Date/Time of Treatment": "EXSTDTC",
    "End Date/Time of Treatment": "EXENDTC",
    "Reported Name of Drug, Med, or Therapy": "CMTRT",
    "Start Date/Time of Medication": "CMSTDTC",
    "End Date/Time of Medication": "CMENDTC",
    "Indication": "CMINDC",
    "Standardized Disposition Term": "DSDECOD",
    "Reported Term for the Disposition Event": "DSTERM",
    "Start Date/Time of Disposition Event": "DSSTDTC",
    "Visit Name": "VISIT",
    "Related Domain Abbreviation": "RDOMAIN",
    "Identifying Variable": "IDVAR",
    "Identifying Variable Value": "IDVARVAL",
    "Qualifier Variable Name": "QNAM",
    "Data Value": "QVAL",
}


def _label_key(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


_ALIASES = {_label_key(k): v for k, v in LABEL_ALIASES.items()}
_IDENT = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")


def canonical_name(name: str, domain: str | None) -> str | None:
    """The SDTM variable name for a delivered header (any case, or a label); None when it is not a usable name."""
    raw = name.strip()
    alias = _ALIASES.get(_label_key(raw))
    if alias:
        prefix = domain if domain and len(domain) == 2 else ("" if alias.startswith("--") else "")
        if alias.startswith("--"):
            return (prefix + alias[2:]) if prefix else None
        return alias
    up = raw.upper()
    return up if _IDENT.match(up) else None


@dataclass(frozen=True)
class DomainSpec:
    """How one domain is validated: required columns (any one of each group), key, dates, numbers, codes."""
    code: str
    table: str
    required: tuple[tuple[str, ...], ...]
    seq: str | None = None                       # --SEQ: duplicate key check (USUBJID + --SEQ)
    start_dates: tuple[str, ...] = ()            # imputed to the start of a partial period
    end_dates: tuple[str, ...] = ()              # imputed to the end of a partial period
    cut_date: str | None = None                  # the date compared with the data cut
    full_dates_only: tuple[str, ...] = ()        # partial dates refused (assessment times)
    numbers: tuple[str, ...] = ()                # must be numeric when given
    integers: tuple[tuple[str, int | None, int | None], ...] = ()  # (column, min, max) whole numbers
    codes: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (column, allowed values upper case) when given
    flags: tuple[str, ...] = ()                  # Y/N flags (NY codelist, safety.core.vocabulary.NY_CODES)
    expected: tuple[str, ...] = ()               # read by the load: a file without one is noted, its rows load
    required_values: tuple[str, ...] = ()        # must not be empty in a row
    # Delivered columns the loader reads from the staging table; the others are left out of it (None keeps all).
    # Worth it for the domains of hundreds of thousands of rows or more (LB, AE); quarantined rows re-read their raw
    # record from the file.
    staged: tuple[str, ...] | None = None
    # The other variables the load reads (docs/input-format.md, "Domains and variables read")
    reads: tuple[str, ...] = ()

    @property
    def variables_read(self) -> frozenset[str]:
        """Every variable the load reads in a file of the domain: a header among them is read as that variable."""
        return frozenset({"STUDYID", "DOMAIN", "USUBJID", *(col for group in self.required for col in group),
                          *([self.seq] if self.seq else []), *self.start_dates, *self.end_dates,
                          *self.full_dates_only, *self.numbers, *(col for col, _, _ in self.integers),
                          *(col for col, _ in self.codes), *self.flags, *self.expected, *self.required_values,
                          *(self.staged or ()), *self.reads})


SPECS: dict[str, DomainSpec] = {
    "DM": DomainSpec("DM", "subjects", expected=("SITEID", "RFICDTC"),
                     required=(("USUBJID",),),
                     start_dates=("RFICDTC", "RFXSTDTC", "DTHDTC"), cut_date="RFICDTC",
                     numbers=("AGE",),
                     reads=("SUBJID", "AGEU", "SEX", "RACE", "COUNTRY", "ARM", "ARMCD", "ACTARM", "ACTARMCD",
                            "DTHFL")),
    "EX": DomainSpec("EX", "exposures", expected=("EXSTDTC",),
                     required=(("USUBJID",), ("EXTRT",)), seq="EXSEQ",
                     start_dates=("EXSTDTC",), end_dates=("EXENDTC",), cut_date="EXSTDTC",
                     numbers=("EXDOSE",), integers=(("EXSEQ", None, None), ("EXSTDY", None, None)),
                     reads=("EXCAT", "EXDOSU", "EXROUTE")),
    "DS": DomainSpec("DS", "disposition", expected=("DSSTDTC",),
                     required=(("USUBJID",), ("DSDECOD", "DSTERM")), seq="DSSEQ",
                     start_dates=("DSSTDTC",), cut_date="DSSTDTC", integers=(("DSSEQ", None, None),),
                     reads=("DSCAT",)),
    "CM": DomainSpec("CM", "medications", expected=("CMSTDTC", "CMENDTC"),
                     required=(("USUBJID",), ("CMTRT", "CMDECOD")), seq="CMSEQ",
                     start_dates=("CMSTDTC",), end_dates=("CMENDTC",), cut_date="CMSTDTC",
                     numbers=("CMDOSE",), integers=(("CMSEQ", None, None),),
                     reads=("CMCAT", "CMINDC", "CMDOSU", "CMROUTE", "CMDOSFRM")),
    "AE": DomainSpec("AE", "adverse_events", expected=("AESTDTC", "AEENDTC", "AETOXGR", "AESER"),
                     required=(("USUBJID",), ("AESEQ",), ("AETERM", "AEDECOD")),
                     seq="AESEQ", start_dates=("AESTDTC",), end_dates=("AEENDTC",), cut_date="AESTDTC",
                     integers=(("AESEQ", None, None), ("AETOXGR", 1, 5), ("AESTDY", None, None)),
                     flags=("AESER", "AESDTH", "AESLIFE", "AESHOSP", "AESDISAB", "AESCONG", "AESMIE"),
                     required_values=("AESEQ",),
                     staged=("AETERM", "AEDECOD", "AEBODSYS", "AESEV", "AEREL", "AEACN", "AEOUT", "AESTDTC", "AEENDTC",
                             "AESER", "AESDTH", "AESLIFE", "AESHOSP", "AESDISAB", "AESCONG", "AESMIE"),
                     reads=("AEBODSYS", "AESEV", "AEREL", "AEACN", "AEOUT")),
    "LB": DomainSpec("LB", "labs", expected=("LBDTC",),
                     required=(("USUBJID",), ("LBTESTCD",), ("LBORRES", "LBSTRESC", "LBSTRESN")),
                     seq="LBSEQ", start_dates=("LBDTC",), cut_date="LBDTC",
                     numbers=("LBSTRESN", "LBSTNRLO", "LBSTNRHI", "LBORNRLO", "LBORNRHI"),
                     integers=(("LBSEQ", None, None), ("LBDY", None, None)), flags=("LBBLFL",),
                     required_values=("LBTESTCD",),
                     staged=("LBTEST", "LBCAT", "LBSPEC", "LBORRES", "LBORRESU", "LBSTRESC", "LBNRIND", "LBBLFL",
                             "LBSTAT", "VISIT", "LBDTC"),
                     reads=("LBSTRESU",)),
    "VS": DomainSpec("VS", "vitals", expected=("VSDTC",),
                     required=(("USUBJID",), ("VSTESTCD",), ("VSORRES", "VSSTRESN", "VSSTRESC")),
                     seq="VSSEQ", start_dates=("VSDTC",), cut_date="VSDTC",
                     numbers=("VSSTRESN",), integers=(("VSSEQ", None, None),), flags=("VSBLFL",),
                     required_values=("VSTESTCD",),
                     reads=("VSTEST", "VSSTRESU", "VSORRESU", "VISIT")),
    "RS": DomainSpec("RS", "responses", expected=("RSDTC",),
                     required=(("USUBJID",), ("RSSTRESC", "RSORRES")), seq="RSSEQ",
                     start_dates=("RSDTC",), cut_date="RSDTC", integers=(("RSSEQ", None, None),),
                     reads=("RSTESTCD", "RSEVAL", "VISIT")),
    "CRS": DomainSpec("CRS", "crs_assessments", required=(("USUBJID",), ("CRSDTC",)),
                      start_dates=("CRSDTC",), cut_date="CRSDTC", full_dates_only=("CRSDTC",),
                      numbers=("TEMP_C", "O2_FLOW_LMIN"), integers=(("VASOPRESSORS", 0, None),),
                      codes=(("HYPOTENSION", ("Y", "N")), ("VASOPRESSIN", ("Y", "N")),
                             ("OXYGEN", OXYGEN_DEVICES)),
                      required_values=("CRSDTC",),
                      reads=("COMMENT", "CRSCOM")),
    "ICANS": DomainSpec("ICANS", "icans_assessments", required=(("USUBJID",), ("ICANSDTC",)),
                        start_dates=("ICANSDTC",), cut_date="ICANSDTC", full_dates_only=("ICANSDTC",),
                        integers=(("ICE_SCORE", 0, 10), ("CAPD_SCORE", 0, 32)),
                        codes=(("CONSCIOUSNESS", CONSCIOUSNESS_LEVELS),
                               ("SEIZURE", SEIZURE_VALUES),
                               ("MOTOR_WEAKNESS", MOTOR_VALUES),
                               ("CEREBRAL_EDEMA", EDEMA_VALUES)),
                        required_values=("ICANSDTC",),
                        reads=("COMMENT", "ICANSCOM")),
    # The standard domains behind the CRS/ICANS inputs when no celltox files are delivered
    # (safety/ingest/sdtm_assessments.py builds the assessments from them).
    "QS": DomainSpec("QS", "questionnaires", expected=("QSDTC",),
                     required=(("USUBJID",), ("QSTESTCD",), ("QSORRES", "QSSTRESC", "QSSTRESN")),
                     seq="QSSEQ", start_dates=("QSDTC",), cut_date="QSDTC", numbers=("QSSTRESN",),
                     integers=(("QSSEQ", None, None),), required_values=("QSTESTCD",),
                     reads=("QSCAT", "QSSCAT", "QSTEST", "QSSTAT", "QSGRPID", "VISIT")),
    "PR": DomainSpec("PR", "procedures", expected=("PRSTDTC",),
                     required=(("USUBJID",), ("PRTRT", "PRDECOD")), seq="PRSEQ",
                     start_dates=("PRSTDTC",), end_dates=("PRENDTC",), cut_date="PRSTDTC",
                     numbers=("PRDOSE",), integers=(("PRSEQ", None, None),),
                     reads=("PRCAT", "PRINDC", "PRDOSU")),
    "FA": DomainSpec("FA", "findings_about", expected=("FADTC",),
                     required=(("USUBJID",), ("FATESTCD",), ("FAORRES", "FASTRESC", "FASTRESN")),
                     seq="FASEQ", start_dates=("FADTC",), cut_date="FADTC", numbers=("FASTRESN",),
                     integers=(("FASEQ", None, None),), required_values=("FATESTCD",),
                     reads=("FACAT", "FAOBJ", "FATEST", "VISIT")),
    "CE": DomainSpec("CE", "clinical_events", expected=("CESTDTC",),
                     required=(("USUBJID",), ("CETERM", "CEDECOD")), seq="CESEQ",
                     start_dates=("CESTDTC",), end_dates=("CEENDTC",), cut_date="CESTDTC",
                     integers=(("CESEQ", None, None),),
                     reads=("CECAT", "CEOCCUR", "CESEV")),
    # Cellular kinetics: CAR transgene copies/ug gDNA (qPCR) or CAR+ cells/uL (flow), one row per sample and test.
    "PC": DomainSpec("PC", "pc_concentrations", expected=("PCDTC",),
                     required=(("USUBJID",), ("PCTESTCD",), ("PCORRES", "PCSTRESC", "PCSTRESN")),
                     seq="PCSEQ", start_dates=("PCDTC",), cut_date="PCDTC", numbers=("PCSTRESN", "PCLLOQ"),
                     integers=(("PCSEQ", None, None),), required_values=("PCTESTCD",),
                     reads=("PCTEST", "PCORRESU", "PCSTRESU", "PCSPEC", "PCSTAT", "VISIT")),
    # Microbiology: organisms found (MBORRES / MBSTRESC), read as infection findings.
    "MB": DomainSpec("MB", "microbiology", expected=("MBDTC",),
                     required=(("USUBJID",), ("MBTESTCD", "MBTEST"), ("MBORRES", "MBSTRESC")),
                     seq="MBSEQ", start_dates=("MBDTC",), cut_date="MBDTC", integers=(("MBSEQ", None, None),),
                     reads=("MBSPEC", "VISIT")),
    # Pharmacokinetic parameters as the sponsor computed them (Cmax, Tmax, AUC), one row per subject, analyte
    # (PPCAT) and parameter; compared with celltox's own from PC (safety/derive/outcomes/kinetics_pp.py).
    "PP": DomainSpec("PP", "pk_parameters", required=(("USUBJID",), ("PPTESTCD",), ("PPORRES", "PPSTRESC", "PPSTRESN")),
                     seq="PPSEQ", start_dates=("PPRFTDTC",), cut_date="PPRFTDTC", numbers=("PPSTRESN",),
                     integers=(("PPSEQ", None, None),), required_values=("PPTESTCD",),
                     reads=("PPTEST", "PPCAT", "PPSTRESU", "PPORRESU", "PPSTAT", "PPSTINT", "PPENINT", "PPSPEC")),
    # Medical history: prior conditions, and conditions reported as history at a later visit (a malignancy
    # starting after infusion counts as a new malignancy, safety/derive/outcomes/malignancy.py).
    "MH": DomainSpec("MH", "medical_history", required=(("USUBJID",), ("MHTERM", "MHDECOD")), seq="MHSEQ",
                     start_dates=("MHSTDTC", "MHDTC"), end_dates=("MHENDTC",), cut_date="MHSTDTC",
                     integers=(("MHSEQ", None, None),),
                     reads=("MHCAT", "MHSCAT", "MHBODSYS", "MHOCCUR", "MHENRTPT", "VISIT")),
}

# Processing order: each step may use what the earlier ones established (day 0 from EX, death from DS,
# lymphodepletion from CM).
ORDER = ("DM", "EX", "DS", "CM", "AE", "LB", "VS", "RS", "QS", "PR", "FA", "CE", "CRS", "ICANS", "PC", "MB", "PP", "MH")

# EX/CM text that marks lymphodepleting or bridging therapy rather than the cell product.
NOT_CAR_PATTERN = r"(lymphodeplet|bridg|condition|chemotherap|fludara|cyclophosph|bendamust|cytoxan|endoxan|etoposide|cytarabine|carboplatin|melphalan|mesna)"
RELATED_PATTERN = r"^(y|yes|related|possible|possibly( related)?|probable|probably( related)?|definite|definitely( related)?|likely|likely related|certain)$"
# AEREL values that record no assessment yet ("UNKNOWN", WHO-UMC's "conditional/unclassified"): adverse_events.related
# is then NULL, as for a blank AEREL, not FALSE; "NOT APPLICABLE" (no study treatment given) stays unrelated
UNASSESSED_CAUSALITY = ("unk", "unknown", "not assessed", "not yet assessed", "not assessable", "unassessable",
                        "unclassifiable", "unassessable/unclassifiable", "conditional", "unclassified",
                        "conditional/unclassified", "pending")

# Plausible values. A value outside is a typing or unit error (AGE 1e308, a temperature in Fahrenheit, a
# negative dose): the row is quarantined with the reason, never loaded as if it were true. Bounds inclusive;
# None = no bound. AGE is checked in years (AGEU converted by safety/data/time_units.csv; empty AGEU = years).
LIMITS: dict[str, tuple[tuple[str, float | None, float | None], ...]] = {
    "DM": (("AGE", 0, 120),),
    "EX": (("EXDOSE", 0, None),),
    "CM": (("CMDOSE", 0, None),),
    "CRS": (("TEMP_C", 25, 45), ("O2_FLOW_LMIN", 0, 100)),
    "PP": (("PPSTRESN", 0, None),),  # Cmax, Tmax and AUC are never negative
}
# Lab results are concentrations, counts and activities, never below zero, except these tests.
LAB_NEGATIVE_ALLOWED = ("BASEEXC", "BE", "ANIONGAP")

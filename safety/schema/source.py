"""Source tables: what ingest loads from a study folder, plus its bookkeeping (quarantine, load log)."""
from __future__ import annotations

from safety.schema.base import KEY, SUBJ, C, Table, _dated


def enrollment_order_sql(infusion_date: str, usubjid: str) -> str:
    """SQL of subjects.enrollment_order over the rows it is computed on: the rank of the first infusion date
    (ties by USUBJID), NULL when not infused. The load ranks the study; a site scope ranks its own subjects, so
    a rank never tells a site how many subjects other sites infused."""
    return (f"CASE WHEN {infusion_date} IS NOT NULL THEN CAST(row_number() OVER (PARTITION BY {infusion_date} IS NULL "
            f"ORDER BY {infusion_date}, {usubjid}) AS INTEGER) END")

STUDIES = Table(
    "studies",
    "One row per study and data cut: what was loaded and the validated protocol settings.",
    KEY + (
        C("title", "VARCHAR", "Study title (study.yaml)."),
        C("product", "VARCHAR", "Investigational product name."),
        C("product_type", "VARCHAR", "CAR-T, CAR-NK, CAR-ITNK, TCR-T or other."),
        C("ctcae_version", "VARCHAR", "CTCAE version used for lab and AE grades, e.g. '5.0'."),
        C("crs_grading", "VARCHAR", "Grading system for CRS, e.g. 'ASTCT 2019'."),
        C("icans_grading", "VARCHAR", "Grading system for ICANS, e.g. 'ASTCT 2019'."),
        C("domains_present", "VARCHAR[]", "Domains loaded (DM, EX, AE, LB, VS, CM, RS, DS, CRS, ICANS)."),
        C("domains_missing", "VARCHAR[]", "Optional domains the delivery did not contain."),
        C("config_json", "VARCHAR", "The validated study.yaml with defaults filled in, as JSON."),
        C("source_dir", "VARCHAR", "Folder the study was loaded from."),
        C("loaded_at", "TIMESTAMP", "When the load finished (UTC)."),
        C("load_id", "VARCHAR", "Identifier of the load (see load_log)."),
        C("celltox_version", "VARCHAR", "celltox version that made the load."),
    ),
    per_subject=False,
)

SUBJECTS = Table(
    "subjects",
    "One row per subject in DM, with the infusion anchor (day 0) and follow-up status at the data cut.",
    KEY + SUBJ + (
        C("subjid", "VARCHAR", "Subject identifier within the study (SUBJID)."),
        C("siteid", "VARCHAR", "Study site (SITEID)."),
        C("age", "DOUBLE", "Age in years (AGE converted by its AGEU: 30 MONTHS is 2.5)."),
        C("sex", "VARCHAR", "Sex (SEX)."),
        C("race", "VARCHAR", "Race (RACE)."),
        C("country", "VARCHAR", "Country (COUNTRY)."),
        C("arm", "VARCHAR", "Actual arm (ACTARM, else ARM)."),
        C("cohort", "VARCHAR", "Cohort: SUPPDM COHORT, else ACTARMCD/ARMCD."),
        C("dose_level", "VARCHAR", "Dose level: SUPPDM DOSELVL, else the cell dose of the first infusion (EXDOSE EXDOSU), else the cohort."),
        C("product", "VARCHAR", "Product: the first infusion's EXTRT, else study.yaml product."),
        C("diagnosis", "VARCHAR", "Disease under study, from SUPPDM DIAGNOSIS when given."),
        C("rficdtc", "VARCHAR", "Informed consent date as delivered (RFICDTC)."),
        C("consent_date", "DATE", "Informed consent date (screening)."),
        C("first_infusion_dtc", "VARCHAR", "First CAR infusion start as delivered (EXSTDTC, else DM.RFXSTDTC; "
          "RFXSTDTC when it stood in for a partial EXSTDTC)."),
        C("first_infusion_date", "DATE", "Day 0: date of the first CAR infusion. NULL when not infused."),
        C("infusion_source", "VARCHAR", "Where day 0 came from: 'EX', 'DM.RFXSTDTC', or 'DM.RFXSTDTC (EXSTDTC "
          "partial)' when the first CAR infusion's EXSTDTC is partial and RFXSTDTC a complete date inside its period."),
        C("infusions", "INTEGER", "Number of CAR infusions received."),
        C("lymphodepletion_start_day", "INTEGER", "Day of the first lymphodepleting dose (negative), from EX or CM."),
        C("infused", "BOOLEAN", "Received at least one CAR infusion on or before the cut."),
        C("death_date", "DATE", "Date of death on or before the cut: DM.DTHDTC, else the DS death record, else the end "
                                "of the latest fatal AE (a death recorded only as an AE)."),
        C("death_day", "INTEGER", "Day of death relative to infusion."),
        C("death_source", "VARCHAR", "Where death_date comes from: 'DM', 'DS' or 'AE'; NULL when alive at the cut. Set "
                                     "with death_date NULL for a death recorded without a date (DS DEATH without "
                                     "DSSTDTC, else DM DTHFL Y without DTHDTC): status 'died', the day unknown."),
        C("death_date_flag", "VARCHAR", "'D' (day) or 'M' (month and day) when death_date was imputed from a "
          "partial date: DM's DTHDTC with no DS death date in its period (its first day), or a fatal AE's end (the "
          "period's last day, not after the cut); NULL for a full date."),
        C("death_cause", "VARCHAR", "Cause of death from DS (DSTERM) where given."),
        C("last_known_alive_date", "DATE", "Latest dated record of the subject on or before the cut (or death date)."),
        C("last_known_alive_day", "INTEGER", "last_known_alive_date relative to infusion."),
        C("disposition", "VARCHAR", "Last disposition event (DS.DSDECOD), e.g. COMPLETED, DEATH, PROGRESSIVE DISEASE, WITHDRAWAL BY SUBJECT."),
        C("disposition_day", "INTEGER", "Day of that disposition event."),
        C("status", "VARCHAR", "Status at the cut: 'screened' (not infused), 'in follow-up', 'completed' (month 12 reached), 'discontinued', 'died'."),
        C("enrollment_order", "INTEGER", "Rank of first infusion date within the study (1 = first infused); NULL when not infused. "
                                         "Read in a site scope, the rank within the scope's subjects."),
    ),
    extra_columns_note="Plus one VARCHAR column `supp_<qnam>` per SUPPDM qualifier delivered.",
)

EXPOSURES = Table(
    "exposures",
    "Exposure records (EX): CAR infusions and, where delivered in EX, lymphodepleting chemotherapy.",
    KEY + SUBJ + (
        C("exseq", "INTEGER", "Sequence number (EXSEQ)."),
        C("extrt", "VARCHAR", "Treatment name (EXTRT)."),
        C("excat", "VARCHAR", "Category (EXCAT)."),
        C("exdose", "DOUBLE", "Dose (EXDOSE)."),
        C("exdosu", "VARCHAR", "Dose unit (EXDOSU)."),
        C("exroute", "VARCHAR", "Route (EXROUTE)."),
    ) + _dated("exst", "Start of exposure") + (
        C("exendtc", "VARCHAR", "End of exposure as delivered."),
        C("exen_date", "DATE", "End of exposure as a date."),
        C("day", "INTEGER", "Start day relative to the first CAR infusion (day 0)."),
        C("exdy", "INTEGER", "SDTM study day (EXSTDY) when delivered."),
        C("is_car_infusion", "BOOLEAN", "True for the cell product; false for lymphodepletion or bridging therapy."),
    ),
    extra_columns_note="Plus `supp_<qnam>` columns for SUPPEX qualifiers.",
)

ADVERSE_EVENTS = Table(
    "adverse_events",
    "Adverse events (AE) with days from infusion, durations and the grade as reported.",
    KEY + SUBJ + (
        C("aeseq", "INTEGER", "Sequence number (AESEQ)."),
        C("event_key", "VARCHAR", "Stable key '<usubjid>/AE/<aeseq>' used by adjudications and 'new since' comparisons."),
        C("aeterm", "VARCHAR", "Reported term (AETERM)."),
        C("aedecod", "VARCHAR", "Preferred term (AEDECOD)."),
        C("aebodsys", "VARCHAR", "System organ class (AEBODSYS)."),
        C("aetoxgr", "INTEGER", "Toxicity grade as reported (AETOXGR, 1-5). NULL when not delivered: never derived from AESEV."),
        C("aesev", "VARCHAR", "Severity (AESEV), kept and shown as severity when AETOXGR is absent."),
        C("grading_system", "VARCHAR", "How aetoxgr was graded: 'ASTCT 2019' for CRS/ICANS terms (AEDECOD, else AETERM), 'CTCAE v<version>' otherwise, unless a SUPPAE qualifier (AETOXGRS, GRADSCAL) names the scale; 'severity' when only AESEV."),
        C("aeser", "VARCHAR", "Serious (Y/N)."),
        C("aesdth", "VARCHAR", "Serious: results in death (Y/N)."),
        C("aeslife", "VARCHAR", "Serious: life-threatening (Y/N)."),
        C("aeshosp", "VARCHAR", "Serious: hospitalisation (Y/N)."),
        C("aesdisab", "VARCHAR", "Serious: disability (Y/N)."),
        C("aescong", "VARCHAR", "Serious: congenital anomaly (Y/N)."),
        C("aesmie", "VARCHAR", "Serious: other medically important event (Y/N)."),
        C("aerel", "VARCHAR", "Causality as reported (AEREL)."),
        C("related", "BOOLEAN", "AEREL is possible, probable, definite, related or Y; NULL when AEREL is blank or "
          "records no assessment yet (unknown, pending, conditional/unclassified)."),
        C("aeacn", "VARCHAR", "Action taken (AEACN)."),
        C("aeout", "VARCHAR", "Outcome (AEOUT)."),
    ) + _dated("aest", "AE start") + (
        C("aeendtc", "VARCHAR", "AE end as delivered."),
        C("aeen_date", "DATE", "AE end as a date (partial end dates imputed to the last day of the period, not after death or the cut); NULL when the AE ends after the cut, a partial end whose period lies wholly after it included."),
        C("aeen_date_flag", "VARCHAR", "Imputation flag for the end date."),
        C("onset_day", "INTEGER", "Start day relative to the first CAR infusion (day 0)."),
        C("end_day", "INTEGER", "End day relative to infusion; NULL when ongoing."),
        C("ongoing", "BOOLEAN", "No end date on or before the cut."),
        C("ended_before_infusion", "BOOLEAN", "Ended on day 0 before the first CAR infusion's time (AEENDTC and the "
          "infusion start both carry a time): over before dosing, so outside the DLT window."),
        C("duration_days", "INTEGER", "End - start + 1 days (ADaM); an event not ended counts to the cut, or to the death of a subject who died."),
        C("aestdy", "INTEGER", "SDTM study day of start (AESTDY) when delivered."),
        C("treatment_emergent", "BOOLEAN", "Onset on or after the start of lymphodepletion (or day 0 when none); "
          "without a start date, TRUE unless the AE ended before that day. A partial start whose period holds "
          "that day (and whose end allows it) is imputed to it, or to day 0 when the period holds that too, so an AE "
          "whose status is unknown is counted, as "
          "the FDA Standard Safety Tables count AEs with a missing start date (docs/input-format.md, Dates)."),
    ),
    extra_columns_note="Plus `supp_<qnam>` columns for SUPPAE qualifiers.",
)

LABS = Table(
    "labs",
    "Laboratory results (LB) in SI units with reference ranges; conventional units converted from a table.",
    KEY + SUBJ + (
        C("lbseq", "INTEGER", "Sequence number (LBSEQ)."),
        C("lbtestcd", "VARCHAR", "Test code (LBTESTCD), upper case."),
        C("lbtest", "VARCHAR", "Test name (LBTEST)."),
        C("lbcat", "VARCHAR", "Category (LBCAT)."),
        C("lbspec", "VARCHAR", "Specimen (LBSPEC), e.g. BLOOD, SERUM, URINE."),
        C("lborres", "VARCHAR", "Original result text (LBORRES)."),
        C("lborresu", "VARCHAR", "Original unit (LBORRESU)."),
        C("lbstresc", "VARCHAR", "Standard result text (LBSTRESC)."),
        C("value", "DOUBLE", "Result in SI units: LBSTRESN, else LBORRES converted to SI. Censored results hold their bound."),
        C("unit", "VARCHAR", "SI unit of value (and of lln/uln)."),
        C("lln", "DOUBLE", "Lower limit of normal in SI (LBSTNRLO, else converted LBORNRLO)."),
        C("uln", "DOUBLE", "Upper limit of normal in SI (LBSTNRHI, else converted LBORNRHI)."),
        C("value_source", "VARCHAR", "'LBSTRESN', 'LBSTRESC' or 'LBORRES x <factor>' (converted)."),
        C("censored", "VARCHAR", "'<' or '>' for censored results such as '<0.5'; NULL otherwise."),
        C("lbnrind", "VARCHAR", "Reference range indicator as delivered (LBNRIND), upper case."),
        C("lbblfl", "VARCHAR", "Baseline flag (LBBLFL)."),
        C("lbstat", "VARCHAR", "Completion status (LBSTAT), e.g. NOT DONE."),
        C("visit", "VARCHAR", "Visit name (VISIT)."),
    ) + _dated("lb", "Collection date") + (
        C("day", "INTEGER", "Collection day relative to the first CAR infusion (day 0)."),
        C("lbdy", "INTEGER", "SDTM study day (LBDY) when delivered."),
    ),
    extra_columns_note="Plus `supp_<qnam>` columns for SUPPLB qualifiers.",
)

VITALS = Table(
    "vitals",
    "Vital signs and baseline performance measures (VS). ECOG, LVEF and OXYSAT are read from VS for eligibility checks.",
    KEY + SUBJ + (
        C("vsseq", "INTEGER", "Sequence number (VSSEQ)."),
        C("vstestcd", "VARCHAR", "Test code (VSTESTCD), upper case: TEMP, SYSBP, DIABP, PULSE, RESP, OXYSAT, WEIGHT, HEIGHT, ECOG, LVEF."),
        C("vstest", "VARCHAR", "Test name (VSTEST)."),
        C("vsorres", "VARCHAR", "Original result (VSORRES)."),
        C("value", "DOUBLE", "Numeric result in standard units (VSSTRESN, else numeric VSORRES)."),
        C("unit", "VARCHAR", "Standard unit (VSSTRESU)."),
        C("vsblfl", "VARCHAR", "Baseline flag (VSBLFL)."),
        C("visit", "VARCHAR", "Visit name."),
    ) + _dated("vs", "Measurement date") + (
        C("day", "INTEGER", "Day relative to infusion."),
    ),
)

MEDICATIONS = Table(
    "medications",
    "Concomitant and supportive medications (CM), classed for toxicity management (tocilizumab, corticosteroid, ...).",
    KEY + SUBJ + (
        C("cmseq", "INTEGER", "Sequence number (CMSEQ)."),
        C("cmtrt", "VARCHAR", "Medication as reported (CMTRT)."),
        C("cmdecod", "VARCHAR", "Standardised name (CMDECOD)."),
        C("cmcat", "VARCHAR", "Category (CMCAT)."),
        C("cmindc", "VARCHAR", "Indication (CMINDC)."),
        C("cmdose", "DOUBLE", "Dose (CMDOSE)."),
        C("cmdosu", "VARCHAR", "Dose unit (CMDOSU)."),
        C("cmroute", "VARCHAR", "Route (CMROUTE)."),
        C("med_class", "VARCHAR", "Class from safety/data/medication_classes.csv: tocilizumab, anti_cytokine, corticosteroid, anakinra, vasopressor, antipyretic, lymphodepletion, ivig, antiepileptic, anti_infective, other."),
    ) + _dated("cmst", "Start") + (
        C("cmendtc", "VARCHAR", "End as delivered."),
        C("cmen_date", "DATE", "End as a date."),
        C("start_day", "INTEGER", "Start day relative to infusion."),
        C("end_day", "INTEGER", "End day relative to infusion; NULL when ongoing."),
        C("start_time", "TIMESTAMP", "Start date and time when CMSTDTC carries a time (hours at least); NULL for a date only."),
        C("cmdosfrm", "VARCHAR", "Dose form (CMDOSFRM); for oxygen it may name the device, e.g. NASAL CANNULA."),
    ),
)

RESPONSES = Table(
    "responses",
    "Disease response assessments (RS): CR, CRi, PR, SD, PD.",
    KEY + SUBJ + (
        C("rsseq", "INTEGER", "Sequence number (RSSEQ)."),
        C("rstestcd", "VARCHAR", "Test code (RSTESTCD), e.g. OVRLRESP."),
        C("rsorres", "VARCHAR", "Response as reported."),
        C("response", "VARCHAR", "Standardised response (RSSTRESC, upper case): CR, CRI, PR, SD, PD, NE."),
        C("rseval", "VARCHAR", "Evaluator (RSEVAL), e.g. INVESTIGATOR, INDEPENDENT ASSESSOR."),
        C("visit", "VARCHAR", "Visit name, e.g. MONTH 3."),
    ) + _dated("rs", "Assessment date") + (
        C("day", "INTEGER", "Day relative to infusion; NULL when a partial RSDTC's month or year holds the infusion "
                            "date (before or after infusion unknown: read as neither a response nor a progression)."),
    ),
)

DISPOSITION = Table(
    "disposition",
    "Disposition events (DS): completion, discontinuation, death.",
    KEY + SUBJ + (
        C("dsseq", "INTEGER", "Sequence number (DSSEQ)."),
        C("dsterm", "VARCHAR", "Reported term (DSTERM), e.g. the cause of death."),
        C("dsdecod", "VARCHAR", "Standardised disposition term (DSDECOD), upper case."),
        C("dscat", "VARCHAR", "Category (DSCAT)."),
    ) + _dated("dsst", "Event date") + (
        C("day", "INTEGER", "Day relative to infusion."),
    ),
)

CRS_ASSESSMENTS = Table(
    "crs_assessments",
    "Bedside CRS assessments (celltox input file crs_assessments, see docs/input-format.md).",
    KEY + SUBJ + (
        C("assessment_id", "INTEGER", "Source row number within the load, a stable id for this record."),
        C("crsdtc", "VARCHAR", "Assessment date/time as delivered (CRSDTC)."),
        C("assessment_time", "TIMESTAMP", "Assessment date/time; date-only values at 00:00."),
        C("assessment_date", "DATE", "Assessment date."),
        C("day", "INTEGER", "Day relative to infusion."),
        C("temp_c", "DOUBLE", "Highest temperature since the previous assessment (degrees C)."),
        C("hypotension", "BOOLEAN", "Hypotension present."),
        C("vasopressors", "INTEGER", "Number of vasopressors running, vasopressin not counted."),
        C("vasopressin", "BOOLEAN", "Vasopressin running."),
        C("oxygen", "VARCHAR", "Oxygen support: NONE, BLOW_BY, LOW_FLOW_NC, HIGH_FLOW_NC, FACEMASK, NONREBREATHER, VENTURI, CPAP, BIPAP, MECHANICAL_VENTILATION."),
        C("o2_flow_lmin", "DOUBLE", "Oxygen flow in L/min when recorded."),
        C("comment", "VARCHAR", "Free-text comment."),
        C("source", "VARCHAR", "'assessment file' (the celltox file) or 'SDTM' (built from VS, CM, PR, FA, CE by safety/ingest/sdtm_assessments.py)."),
        C("provenance", "VARCHAR", "For SDTM rows: the delivered records behind the time point, as domain and sequence numbers, e.g. 'VSSEQ 41, 42; CMSEQ 17'. NULL for file rows."),
    ),
)

ICANS_ASSESSMENTS = Table(
    "icans_assessments",
    "Bedside ICANS assessments (celltox input file icans_assessments, see docs/input-format.md).",
    KEY + SUBJ + (
        C("assessment_id", "INTEGER", "Source row number within the load, a stable id for this record."),
        C("icansdtc", "VARCHAR", "Assessment date/time as delivered (ICANSDTC)."),
        C("assessment_time", "TIMESTAMP", "Assessment date/time; date-only values at 00:00."),
        C("assessment_date", "DATE", "Assessment date."),
        C("day", "INTEGER", "Day relative to infusion."),
        C("ice_score", "INTEGER", "ICE score 0-10; NULL when not done."),
        C("consciousness", "VARCHAR", "AWAKE, AWAKENS_SPONTANEOUSLY, AWAKENS_TO_VOICE, AWAKENS_TO_TACTILE, UNAROUSABLE, or SEDATED (sedated or intubated for reasons other than ICANS: consciousness and ICE/CAPD not gradable)."),
        C("seizure", "VARCHAR", "NONE, RAPIDLY_RESOLVING, PROLONGED_OR_REPETITIVE."),
        C("motor_weakness", "VARCHAR", "NONE, DEEP_FOCAL."),
        C("cerebral_edema", "VARCHAR", "NONE, FOCAL, DIFFUSE."),
        C("comment", "VARCHAR", "Free-text comment."),
        C("capd_score", "INTEGER", "Cornell Assessment of Pediatric Delirium score 0-32 (children aged 12 or younger); NULL when not done."),
        C("source", "VARCHAR", "'assessment file' (the celltox file) or 'SDTM' (built from QS, FA, CE, AE by safety/ingest/sdtm_assessments.py)."),
        C("provenance", "VARCHAR", "For SDTM rows: the delivered records behind the time point, as domain and sequence numbers, e.g. 'QSSEQ 101-110; AESEQ 7'. NULL for file rows."),
    ),
)

QUARANTINE = Table(
    "quarantine",
    "Input rows that were not loaded, each with the reason. For every file: rows read = loaded + quarantined + after the cut.",
    KEY + (
        C("load_id", "VARCHAR", "The load that quarantined the row."),
        C("domain", "VARCHAR", "Domain of the file (AE, LB, CRS, ...)."),
        C("source_file", "VARCHAR", "File name as delivered."),
        C("row_number", "INTEGER", "1-based data row number in the file (header excluded)."),
        C("usubjid", "VARCHAR", "USUBJID of the row when it had one."),
        C("field", "VARCHAR", "The variable at fault (e.g. AESTDTC)."),
        C("reason", "VARCHAR", "Why the row was not loaded, e.g. \"unparseable date '2024-13-45'\"."),
        C("raw_record", "VARCHAR", "The row as delivered, as JSON."),
    ),
    group="bookkeeping",
    per_subject=False,
)

LOAD_LOG = Table(
    "load_log",
    "One row per source file per load: what was read, loaded and quarantined, with the file's SHA-256.",
    KEY + (
        C("load_id", "VARCHAR", "Identifier of the load."),
        C("domain", "VARCHAR", "Domain of the file."),
        C("source_file", "VARCHAR", "File name as delivered."),
        C("file_format", "VARCHAR", "xpt, sas7bdat, csv, parquet or xlsx."),
        C("sha256", "VARCHAR", "SHA-256 of the file's bytes."),
        C("rows_read", "BIGINT", "Data rows in the file."),
        C("rows_loaded", "BIGINT", "Rows loaded into the domain table."),
        C("rows_quarantined", "BIGINT", "Rows kept in quarantine."),
        C("rows_after_cutoff", "BIGINT", "Rows dated after the data cut, left out by design."),
        C("cutoff", "DATE", "The --cutoff given, NULL when none."),
        C("loaded_at", "TIMESTAMP", "When the load ran (UTC)."),
        C("celltox_version", "VARCHAR", "celltox version."),
        C("notes", "VARCHAR", "How the file was read where not exactly as delivered ('; ' between notes): not UTF-8, "
          "columns not read or not delivered (no AESTDTC column), Y/N flags read as their code ('Yes' as Y); and, on "
          "the LB or VS file, a test study.yaml names that no loaded result has, or an immune-marker unit no stored "
          "value is in (docs/study-config.md). NULL when read as delivered."),
    ),
    group="bookkeeping",
    per_subject=False,
)

PC_CONCENTRATIONS = Table(
    "pc_concentrations",
    "Cellular kinetics samples (PC): CAR transgene copies/ug genomic DNA (qPCR) or CAR+ cells/uL (flow cytometry).",
    KEY + SUBJ + (
        C("pcseq", "INTEGER", "Sequence number (PCSEQ)."),
        C("pctestcd", "VARCHAR", "Analyte code (PCTESTCD), upper case, e.g. CARTGDNA, CARCELLS."),
        C("pctest", "VARCHAR", "Analyte name (PCTEST)."),
        C("pcorres", "VARCHAR", "Result as delivered (PCORRES)."),
        C("value", "DOUBLE", "Numeric result (PCSTRESN, else the number in the result text); a censored '<5' holds 5."),
        C("unit", "VARCHAR", "Unit (PCSTRESU, else PCORRESU)."),
        C("lloq", "DOUBLE", "Lower limit of quantitation (PCLLOQ) when delivered."),
        C("below_lloq", "BOOLEAN", "Result reported below the LLOQ or not detected (BLQ, '<...', value < PCLLOQ)."),
        C("above_uloq", "BOOLEAN", "Result reported above the assay's upper limit ('>100000'): value holds the bound, "
          "the true value is higher."),
        C("pcspec", "VARCHAR", "Specimen (PCSPEC), e.g. BLOOD."),
        C("visit", "VARCHAR", "Visit name."),
    ) + _dated("pc", "Sample date") + (
        C("day", "INTEGER", "Sample day relative to infusion (day 0)."),
    ),
    extra_columns_note="Plus `supp_<qnam>` columns for SUPPPC qualifiers.",
)

MICROBIOLOGY = Table(
    "microbiology",
    "Microbiology findings (MB): organisms identified by culture, PCR or antigen tests.",
    KEY + SUBJ + (
        C("mbseq", "INTEGER", "Sequence number (MBSEQ)."),
        C("mbtestcd", "VARCHAR", "Test code (MBTESTCD), e.g. ORGANISM, CMVDNA."),
        C("mbtest", "VARCHAR", "Test name (MBTEST)."),
        C("mborres", "VARCHAR", "Result as delivered (MBORRES)."),
        C("organism", "VARCHAR", "Organism or result, upper case (MBSTRESC, else MBORRES); NEGATIVE / NO GROWTH when none."),
        C("mbspec", "VARCHAR", "Specimen (MBSPEC)."),
        C("visit", "VARCHAR", "Visit name."),
    ) + _dated("mb", "Collection date") + (
        C("day", "INTEGER", "Collection day relative to infusion (day 0)."),
    ),
    extra_columns_note="Plus `supp_<qnam>` columns for SUPPMB qualifiers.",
)

SOURCE_TABLES = (
    STUDIES, SUBJECTS, EXPOSURES, ADVERSE_EVENTS, LABS, VITALS, MEDICATIONS, RESPONSES,
    DISPOSITION, CRS_ASSESSMENTS, ICANS_ASSESSMENTS, QUARANTINE, LOAD_LOG,
    PC_CONCENTRATIONS, MICROBIOLOGY,
)

# --- SDTM domains read for the CRS/ICANS inputs (QS, PR, FA, CE) -------------------------------------

QUESTIONNAIRES = Table(
    "questionnaires",
    "Questionnaire items and totals (QS): the ICE score and its ten items, CAPD for children, level of consciousness.",
    KEY + SUBJ + (
        C("qsseq", "INTEGER", "Sequence number (QSSEQ)."),
        C("qscat", "VARCHAR", "Category (QSCAT), e.g. ICE, CAPD."),
        C("qsscat", "VARCHAR", "Subcategory (QSSCAT)."),
        C("qstestcd", "VARCHAR", "Item or total code (QSTESTCD), upper case, e.g. ICETOT, ICE01."),
        C("qstest", "VARCHAR", "Item name (QSTEST)."),
        C("qsorres", "VARCHAR", "Result as collected (QSORRES)."),
        C("qsstresc", "VARCHAR", "Standardised result text (QSSTRESC)."),
        C("value", "DOUBLE", "Numeric result: QSSTRESN, else a numeric QSSTRESC or QSORRES."),
        C("qsstat", "VARCHAR", "Completion status (QSSTAT), e.g. NOT DONE."),
        C("qsgrpid", "VARCHAR", "Group identifier (QSGRPID)."),
        C("visit", "VARCHAR", "Visit name."),
    ) + _dated("qs", "Assessment date") + (
        C("assessment_time", "TIMESTAMP", "QSDTC as a timestamp; a date only gives 00:00."),
        C("has_time", "BOOLEAN", "QSDTC carries a time."),
        C("day", "INTEGER", "Day relative to infusion."),
    ),
    extra_columns_note="Plus `supp_<qnam>` columns for SUPPQS qualifiers.",
)

PROCEDURES = Table(
    "procedures",
    "Procedures (PR): respiratory support such as high-flow oxygen, CPAP, BiPAP, intubation and mechanical ventilation.",
    KEY + SUBJ + (
        C("prseq", "INTEGER", "Sequence number (PRSEQ)."),
        C("prtrt", "VARCHAR", "Procedure as reported (PRTRT)."),
        C("prdecod", "VARCHAR", "Standardised procedure name (PRDECOD)."),
        C("prcat", "VARCHAR", "Category (PRCAT)."),
        C("prindc", "VARCHAR", "Indication (PRINDC)."),
        C("prdose", "DOUBLE", "Dose (PRDOSE), e.g. an oxygen flow."),
        C("prdosu", "VARCHAR", "Dose unit (PRDOSU), e.g. L/min."),
    ) + _dated("prst", "Start") + (
        C("prendtc", "VARCHAR", "End as delivered."),
        C("pren_date", "DATE", "End as a date."),
        C("start_day", "INTEGER", "Start day relative to infusion."),
        C("end_day", "INTEGER", "End day relative to infusion; NULL when ongoing."),
        C("start_time", "TIMESTAMP", "Start date and time when PRSTDTC carries a time; NULL for a date only."),
        C("end_time", "TIMESTAMP", "End date and time when PRENDTC carries a time; NULL for a date only."),
    ),
    extra_columns_note="Plus `supp_<qnam>` columns for SUPPPR qualifiers.",
)

FINDINGS_ABOUT = Table(
    "findings_about",
    "Findings about events or interventions (FA): e.g. seizure occurrence, cerebral oedema on imaging, level of consciousness.",
    KEY + SUBJ + (
        C("faseq", "INTEGER", "Sequence number (FASEQ)."),
        C("facat", "VARCHAR", "Category (FACAT)."),
        C("faobj", "VARCHAR", "Object of the observation (FAOBJ), e.g. SEIZURE, CEREBRAL OEDEMA."),
        C("fatestcd", "VARCHAR", "Test code (FATESTCD), upper case, e.g. OCCUR, LOC."),
        C("fatest", "VARCHAR", "Test name (FATEST)."),
        C("faorres", "VARCHAR", "Result as collected (FAORRES)."),
        C("fastresc", "VARCHAR", "Standardised result (FASTRESC)."),
        C("value", "DOUBLE", "Numeric result when there is one."),
        C("visit", "VARCHAR", "Visit name."),
    ) + _dated("fa", "Assessment date") + (
        C("assessment_time", "TIMESTAMP", "FADTC as a timestamp; a date only gives 00:00."),
        C("has_time", "BOOLEAN", "FADTC carries a time."),
        C("day", "INTEGER", "Day relative to infusion."),
    ),
    extra_columns_note="Plus `supp_<qnam>` columns for SUPPFA qualifiers.",
)

CLINICAL_EVENTS = Table(
    "clinical_events",
    "Clinical events (CE): pre-specified events such as seizure, hypotension or cerebral oedema, with occurrence.",
    KEY + SUBJ + (
        C("ceseq", "INTEGER", "Sequence number (CESEQ)."),
        C("ceterm", "VARCHAR", "Reported term (CETERM)."),
        C("cedecod", "VARCHAR", "Standardised term (CEDECOD)."),
        C("cecat", "VARCHAR", "Category (CECAT)."),
        C("ceoccur", "VARCHAR", "Occurrence (CEOCCUR, Y/N), upper case; N means the event did not happen."),
        C("cesev", "VARCHAR", "Severity (CESEV)."),
    ) + _dated("cest", "Start") + (
        C("ceendtc", "VARCHAR", "End as delivered."),
        C("ceen_date", "DATE", "End as a date."),
        C("start_day", "INTEGER", "Start day relative to infusion."),
        C("start_time", "TIMESTAMP", "Start date and time when CESTDTC carries a time; NULL for a date only."),
    ),
    extra_columns_note="Plus `supp_<qnam>` columns for SUPPCE qualifiers.",
)

SOURCE_TABLES = SOURCE_TABLES + (QUESTIONNAIRES, PROCEDURES, FINDINGS_ABOUT, CLINICAL_EVENTS)


# --- sponsor PK parameters (PP) and medical history (MH) ------------------------------------------------

PK_PARAMETERS = Table(
    "pk_parameters",
    "Pharmacokinetic parameters as the sponsor computed them (PP): Cmax, Tmax, AUC per subject and analyte, shown "
    "beside celltox's own from PC (kinetics_comparison).",
    KEY + SUBJ + (
        C("ppseq", "INTEGER", "Sequence number (PPSEQ)."),
        C("pptestcd", "VARCHAR", "Parameter code (PPTESTCD), upper case, e.g. CMAX, TMAX, AUCINT."),
        C("pptest", "VARCHAR", "Parameter name (PPTEST)."),
        C("ppcat", "VARCHAR", "Analyte the parameter belongs to (PPCAT: the PCTESTCD or PCTEST), upper case."),
        C("pporres", "VARCHAR", "Result as delivered (PPORRES)."),
        C("value", "DOUBLE", "Numeric result: PPSTRESN, else a numeric PPSTRESC or PPORRES; NULL for 'NC' (not calculable)."),
        C("unit", "VARCHAR", "Unit (PPSTRESU, else PPORRESU)."),
        C("ppstat", "VARCHAR", "Completion status (PPSTAT), e.g. NOT DONE."),
        C("ppstint", "VARCHAR", "Start of the interval of an interval parameter (PPSTINT, ISO 8601 duration, e.g. P0D)."),
        C("ppenint", "VARCHAR", "End of the interval (PPENINT, e.g. P28D or PT672H)."),
        C("interval_start_day", "DOUBLE", "PPSTINT in days; NULL when not given or not in days, hours or weeks."),
        C("interval_end_day", "DOUBLE", "PPENINT in days; NULL when not given or not in days, hours or weeks."),
        C("ppspec", "VARCHAR", "Specimen (PPSPEC)."),
    ) + _dated("pprft", "Reference time point (PPRFTDTC, the infusion)"),
    extra_columns_note="Plus `supp_<qnam>` columns for SUPPPP qualifiers.",
)

MEDICAL_HISTORY = Table(
    "medical_history",
    "Medical history (MH): prior conditions, and conditions reported as history at a later visit. A malignancy "
    "starting after infusion is a new malignancy (secondary_malignancies); one before it is prior history "
    "(prior_malignancies).",
    KEY + SUBJ + (
        C("mhseq", "INTEGER", "Sequence number (MHSEQ)."),
        C("mhterm", "VARCHAR", "Reported term (MHTERM)."),
        C("mhdecod", "VARCHAR", "Dictionary-derived term (MHDECOD)."),
        C("mhcat", "VARCHAR", "Category (MHCAT), upper case, e.g. PRIMARY DIAGNOSIS, GENERAL MEDICAL HISTORY."),
        C("mhscat", "VARCHAR", "Subcategory (MHSCAT)."),
        C("mhbodsys", "VARCHAR", "Body system or organ class (MHBODSYS)."),
        C("mhoccur", "VARCHAR", "Occurrence (MHOCCUR, Y/N) of a pre-specified condition; N means it did not occur."),
        C("mhenrtpt", "VARCHAR", "End relative to the reference time point (MHENRTPT), e.g. ONGOING."),
        C("visit", "VARCHAR", "Visit at which the history was taken."),
    ) + _dated("mhst", "Start of the condition") + (
        C("mhendtc", "VARCHAR", "End as delivered."),
        C("mhen_date", "DATE", "End as a date."),
        C("mhdtc", "VARCHAR", "Date the history was collected (MHDTC) as delivered."),
        C("mh_collection_date", "DATE", "MHDTC as a date (the first day of a partial date)."),
        C("start_day", "INTEGER", "Start day relative to infusion (day 0); NULL without a start or an infusion."),
        C("end_day", "INTEGER", "End day relative to infusion."),
        C("collection_day", "INTEGER", "Collection day relative to infusion."),
    ),
    extra_columns_note="Plus `supp_<qnam>` columns for SUPPMH qualifiers.",
)

SOURCE_TABLES = SOURCE_TABLES + (PK_PARAMETERS, MEDICAL_HISTORY)

"""Column labels: the one table of human headers that every dashboard table and every export uses.

Keyed by column name (the same name means the same thing in every table of the registry). A column not
listed gets its name with underscores as spaces and a capital first letter, so no raw code ever heads a
table; list a column here when that is not good enough.
"""
from __future__ import annotations

COLUMN_LABELS: dict[str, str] = {
    # subjects
    "studyid": "Study", "data_cut": "Data cut", "usubjid": "Subject", "subjid": "Subject no.",
    "siteid": "Site", "site": "Site", "cohort": "Cohort", "dose_level": "Dose level", "product": "Product",
    "age": "Age", "sex": "Sex", "race": "Race", "country": "Country", "arm": "Arm", "diagnosis": "Diagnosis",
    "infused": "Infused", "infusions": "Infusions", "status": "Status", "enrollment_order": "Enrolment no.",
    "death_date": "Death date", "death_day": "Death day", "death_cause": "Cause of death",
    "last_known_alive_day": "Last known alive day", "last_known_alive_date": "Last known alive",
    "disposition": "Disposition", "disposition_day": "Disposition day", "consent_date": "Consent date",
    "first_infusion_date": "Infusion date", "lymphodepletion_start_day": "Lymphodepletion day",
    # pharmacokinetic parameters (PP)
    "ppseq": "PP seq", "pptestcd": "PP test code", "pptest": "PP test", "ppcat": "PP category",
    "ppstresn": "Value", "ppstresu": "Unit", "ppspec": "Specimen", "parameter": "Parameter",
    "sponsor_value": "Sponsor's value", "sponsor_unit": "Sponsor's unit", "celltox_value": "celltox value",
    "celltox_unit": "celltox unit", "difference_pct": "Difference (%)",
    # medical history (prior malignancies)
    "mhseq": "MH seq", "mhcat": "MH category",
    # infections
    "window_start": "Window start day",
    "window_end": "Window end day", "subjects_with_episode": "Subjects with an episode",
    "patient_days": "Patient-days at risk", "per_100_patient_days": "Per 100 patient-days",
    "support": "Support", "prophylaxis": "Prophylaxis", "subjects": "Subjects", "records": "Records",
    "episodes": "Episodes",
    # adverse events
    "aeseq": "AE seq", "event_key": "Event key", "aeterm": "Verbatim term", "verbatim_term": "Verbatim term",
    "aedecod": "Preferred term", "preferred_term": "Preferred term", "aebodsys": "System organ class",
    "system_organ_class": "SOC", "aetoxgr": "Grade", "aesev": "Severity", "aeser": "Serious",
    "aerel": "Causality", "aeout": "Outcome", "aeacn": "Action taken", "aest_date": "Onset date",
    "aeen_date": "End date", "onset_date": "Onset date", "onset_date_imputed": "Onset date imputed", "onset_day": "Onset day",
    "end_date": "End date", "end_date_imputed": "End date imputed",
    "end_day": "End day", "ongoing": "Ongoing", "duration_days": "Duration (days)",
    "grading_system": "Grading system", "grade": "Grade", "severity": "Severity", "serious": "Serious",
    "serious_criteria": "Serious criteria", "causality": "Causality", "related": "Related",
    "action_taken": "Action taken", "outcome": "Outcome", "treatment_emergent": "TEAE",
    "in_dlt_window": "In DLT window", "adjudicated_dlt": "Adjudicated DLT",
    "tocilizumab_during_event": "Tocilizumab", "corticosteroid_during_event": "Steroids",
    "new_since_previous_cut": "New since previous cut", "fatal_ae_terms": "Fatal AEs (PT / verbatim)",
    # DLT
    "rule_id": "Rule", "reason": "Reason", "term": "Term", "source": "Source", "in_window": "In window",
    "evidence": "Evidence", "adjudication": "Decision", "decision": "Decision", "adjudicated_by": "Reviewer",
    "reviewer": "Reviewer", "adjudicated_at": "Decided at", "decided_at": "Decided at",
    "adjudication_rationale": "Rationale", "rationale": "Rationale", "needs_rereview": "Needs re-review",
    "also_matches": "Also meets", "evaluable": "DLT-evaluable", "pending": "Pending",
    "counts_as_dlt": "Counts as DLT", "dlt_confirmed": "DLT confirmed",
    "followed_through_window": "Followed through window", "followed_through_day": "Followed to day",
    "evaluable_n": "Evaluable (n)", "events": "Events", "boundary_events": "Boundary (events)",
    "stop_if_events_ge": "Stop at >=", "escalate_if_le": "Escalate at <=", "deescalate_if_ge": "De-escalate at >=",
    "eliminate_if_ge": "Eliminate at >=", "n": "n", "method": "Method", "monitored_event": "Monitored event",
    # CRS / ICANS
    "syndrome": "Syndrome", "episode_no": "Episode", "last_symptomatic_day": "Last symptomatic day",
    "max_grade": "Worst grade", "max_grade_day": "Day of worst grade", "worst_grade": "Worst grade",
    "days_grade3_plus": "Days at grade >= 3", "grade3_plus_hours": "Hours at grade >= 3",
    "grade3_plus_first_day": "First day grade >= 3", "grade3_plus_last_day": "Last day grade >= 3",
    "grade3_plus_ongoing": "Grade >= 3 ongoing", "grade3_plus_end_day": "Grade >= 3 end day",
    "resolution_day": "Resolution day", "resolution_status": "Resolution",
    "tocilizumab": "Tocilizumab", "tocilizumab_first_day": "Tocilizumab day",
    "tocilizumab_doses": "Tocilizumab doses", "corticosteroid": "Steroids",
    "corticosteroid_first_day": "Steroids day", "anakinra": "Anakinra", "anakinra_first_day": "Anakinra day",
    "vasopressor_max": "Vasopressors (max)", "positive_pressure": "Positive pressure",
    "icu_level_support": "ICU-level support", "ae_event_key": "AE key", "reported_grade": "Reported grade",
    "derived_grade": "Derived grade", "discrepancy": "Discrepancy",
    "median_days_onset_to_tocilizumab": "Median days onset to tocilizumab",
    # labs
    "lbseq": "Lab seq", "lbtestcd": "Test", "lbtest": "Test name", "ctcae_term": "CTCAE term",
    "direction": "Dir", "day": "Day", "lab_date": "Lab date", "value": "Value", "unit": "Unit",
    "lln": "LLN", "uln": "ULN", "baseline_value": "Baseline", "baseline_grade": "Baseline grade",
    "grade_reason": "Grade reason", "first_day": "First day", "last_day": "Last day",
    "days_at_grade3_plus": "Days at grade >= 3", "n_values": "Values", "worst_day": "Day of worst grade",
    "lineage": "Lineage", "early_grade": "Early ICAHT grade", "late_grade": "Late ICAHT grade",
    "days_le_500": "Days ANC <= 0.5 / PLT < 50", "days_le_100": "Days ANC <= 0.1 / PLT < 20",
    "first_day_le_500": "First day ANC <= 0.5 / PLT < 50", "late_values_below": "Late values ANC <= 1.5 / PLT < 100",
    # other
    "aesi_category": "AESI category", "detail": "Detail", "criterion": "Criterion", "test": "Test",
    "limit": "Limit", "description": "Description", "category": "Category", "change": "Change",
    "changes": "Changes", "med_class": "Class", "cmdecod": "Medication", "start_day": "Start day",
    "response": "Response", "visit": "Visit",
    # outcomes beyond CRS/ICANS (safety/derive/outcomes/)
    "sources": "Recorded in", "cause_category": "Cause category", "delivered_cause": "Cause as delivered",
    "fatal_ae_term": "Fatal AE", "cause_from": "Category from", "cause_conflict": "Sources disagree",
    "progression_day": "Progression day", "non_relapse": "Non-relapse", "treatment_related": "Treatment-related",
    "nrm_by_day28": "NRM by d28", "nrm_by_day100": "NRM by d100", "nrm_by_day365": "NRM by d365",
    "pathogen_class": "Pathogen class", "pathogen": "Pathogen", "invasive_mould": "Invasive mould",
    "ctcae_grade": "Grade", "fatal": "Fatal", "onset_window": "Window", "latency_days": "Latency (days)",
    "latency_months": "Latency (months)", "t_cell_malignancy": "T-cell malignancy", "possible_relapse": "Possible relapse",
    "car_transgene_result": "CAR transgene", "pctestcd": "Analyte", "n_samples": "Samples", "cmax": "Cmax",
    "tmax_day": "Tmax (day)", "auc_0_28": "AUC d0-28", "auc_last_day": "AUC to day",
    "last_detectable_day": "Last detectable day", "values_used": "Values used (day:value)",
    "planned_dose": "Planned dose", "actual_dose": "Actual dose", "dose_unit": "Dose unit",
    "pct_of_planned": "% of planned", "not_infused_reason": "Reason not infused",
}


def column_label(name: str) -> str:
    """The header people read for column ``name``."""
    name = str(name)
    if name in COLUMN_LABELS:
        return COLUMN_LABELS[name]
    text = name.replace("_", " ").strip()
    return text[:1].upper() + text[1:] if text else name

"""Derived tables: what the derivations in ``safety/derive/`` write. Declared here, apart from the engines,
so the registry is complete by a plain import and no derivation has to be imported to know the schema."""
from __future__ import annotations

from safety.core.vocabulary import POST_INFUSION_FIRST_DAY
from safety.schema.base import KEY, SUBJ, C, Table

# --- eligibility ---

ELIGIBILITY_DEVIATIONS = Table(
    "eligibility_deviations",
    "Screening values outside the study.yaml eligibility limits (age, labs, vitals), one row per subject and criterion: "
    "the last value before the first lymphodepletion dose (before day 0 without lymphodepletion), not the day-0 baseline.",
    KEY + SUBJ + (
        C("criterion", "VARCHAR", "The criterion as text, e.g. 'BILI <= 1.5 x ULN' or 'Age >= 18' (study.yaml label when given)."),
        C("test", "VARCHAR", "AGE, or the LBTESTCD / VSTESTCD checked."),
        C("value", "DOUBLE", "The subject's eligibility value (labs in SI units): the last non-missing value dated before the "
                             "first lymphodepletion dose, or before day 0 without lymphodepletion (the screening value, not "
                             "the day-0 baseline); NULL when there is none."),
        C("unit", "VARCHAR", "Unit of value."),
        C("limit_value", "DOUBLE", "The limit the value broke, in the unit of value (for x ULN: factor x the record's ULN). "
                                   "Named limit_value because LIMIT is an SQL keyword."),
        C("day", "INTEGER", "Day of the eligibility value's record relative to infusion (NULL for age)."),
        C("detail", "VARCHAR", "Why it is a deviation, e.g. 'above maximum', 'no value before lymphodepletion', "
                               "'no value before day 0' (no lymphodepletion recorded)."),
    ),
    group="derived",
)


# --- DLT stopping and escalation rules ---

STOPPING_RULE_STATUS = Table(
    "stopping_rule_status",
    "The configured stopping / escalation rule evaluated at the cut, per study (cohort NULL) or per cohort "
    "(BOIN, 3+3). Computed at load from the decisions in the review store then; the app recomputes it live.",
    KEY + (
        C("cohort", "VARCHAR", "Dose level (or cohort, stopping_rule.group_by) for BOIN / 3+3; NULL = whole study."),
        C("method", "VARCHAR", "bayesian_beta_binomial, pocock, boin or three_plus_three."),
        C("monitored_event", "VARCHAR", "dlt, crs_grade3, icans_grade3, crs_icans_grade3 or treatment_related_death."),
        C("evaluable_n", "INTEGER", "Evaluable subjects (DLT-evaluable, or followed through the window or with the event)."),
        C("events", "INTEGER", "Evaluable subjects with the monitored event (confirmed DLTs when adjudicated)."),
        C("pending", "INTEGER", "Subjects without a confirmed DLT who have in-window candidates not yet adjudicated."),
        C("statistic", "DOUBLE", "Posterior probability, binomial tail probability, or observed rate (BOIN, "
                                 "3+3: NULL while no subject is evaluable)."),
        C("statistic_label", "VARCHAR", "What the statistic is, e.g. 'P(rate > 0.25 | data)'."),
        C("boundary", "VARCHAR", "The boundary at the current n in words."),
        C("boundary_events", "INTEGER", "Event count at the current n that triggers stop (or de-escalation for BOIN/3+3)."),
        C("decision", "VARCHAR", "continue / stop, or escalate / stay / de-escalate / eliminate."),
        C("events_to_boundary", "VARCHAR", "The earliest crossing in words: how many more events in how many next "
                                           "subjects would cross."),
        C("events_needed", "INTEGER", "More events needed to cross (0 when crossed; NULL when it cannot be crossed)."),
        C("within_next", "INTEGER", "Within how many next evaluable subjects those events would cross."),
        C("sentence", "VARCHAR", "One plain sentence for the overview page."),
        C("computed_from", "VARCHAR", "'adjudicated' (confirmed DLTs), 'screened candidates' (no adjudications "
                                      "available) or 'toxicity data' (non-DLT monitored events)."),
        C("decision_if_pending_confirmed", "VARCHAR", "The decision with every pending in-window DLT candidate "
                                                      "counted as a DLT (equal to decision when nothing is pending)."),
        C("evaluable_n_if_pending_confirmed", "INTEGER", "Evaluable subjects with every pending candidate confirmed."),
        C("events_if_pending_confirmed", "INTEGER", "Subjects with the event with every pending candidate confirmed."),
        C("pending_changes_decision", "BOOLEAN", "decision_if_pending_confirmed differs from decision: the pending "
                                                 "adjudications would change the call (shown as an alarm)."),
    ),
    group="derived",
    per_subject=False,
)

STOPPING_BOUNDARIES = Table(
    "stopping_boundaries",
    "The configured rule's boundary table as protocols print it: for each evaluable n, the event count that triggers it.",
    KEY + (
        C("cohort", "VARCHAR", "NULL: the table applies to the study (or to every cohort for BOIN / 3+3)."),
        C("method", "VARCHAR", "The stopping_rule.method."),
        C("n", "INTEGER", "Number of evaluable subjects (1..max_n; 1..6 for 3+3)."),
        C("stop_if_events_ge", "INTEGER", "Stop when events >= this (beta-binomial, Pocock); NULL = no stop possible at n."),
        C("escalate_if_le", "INTEGER", "BOIN / 3+3: escalate when events <= this."),
        C("deescalate_if_ge", "INTEGER", "BOIN / 3+3: de-escalate when events >= this."),
        C("eliminate_if_ge", "INTEGER", "BOIN: eliminate the dose (and higher) when events >= this (n >= 3)."),
        C("statistic_at_boundary", "DOUBLE", "Posterior probability (beta-binomial) or P(Bin(n, p0) >= b) (Pocock) at the boundary count."),
        C("nominal_level", "DOUBLE", "Pocock: the constant nominal level alpha*; beta-binomial: the posterior cut-off."),
    ),
    group="derived",
    per_subject=False,
)


# --- DLT screening ---

DLT_CANDIDATES = Table(
    "dlt_candidates",
    "Events that meet a protocol DLT rule (study.yaml dlt.rules), one row per event key, for committee "
    "adjudication. Screening only: the DLT decision is the committee's (see the review store).",
    KEY + SUBJ + (
        C("event_key", "VARCHAR", "Stable key of the event: '<usubjid>/AE/<aeseq>', '<usubjid>/CRS/<n>', "
                                  "'<usubjid>/ICANS/<n>', '<usubjid>/LB/<lbtestcd>-D<from_day>' or '<usubjid>/DEATH'."),
        C("source", "VARCHAR", "'AE', 'CRS episode', 'ICANS episode', 'lab' or 'death' (a death with no fatal AE)."),
        C("rule_id", "VARCHAR", "The first rule (config order) the event meets, e.g. 'R3'."),
        C("reason", "VARCHAR", "That rule's plain-language reason."),
        C("also_matches", "VARCHAR", "Other rule ids the event also meets, comma-separated; NULL when none."),
        C("term", "VARCHAR", "Event term: AEDECOD (else AETERM), 'CRS'/'ICANS', the lab test code, or 'Death'."),
        C("onset_day", "INTEGER", "Onset day relative to infusion (day 0); for lab rules the day of the lab."),
        C("end_day", "INTEGER", "End day; NULL when ongoing or not applicable (lab)."),
        C("grade", "INTEGER", "Grade the rule used: AETOXGR, episode maximum ASTCT grade, or the lab's CTCAE grade."),
        C("duration_days", "INTEGER", "Duration the rule measured (ADaM: end - start + 1; for CRS/ICANS grade >= 3 "
                                      "rules the days from first to last day at grade >= 3); ongoing events count to the cut."),
        C("ongoing", "BOOLEAN", "The event had not ended at the data cut."),
        C("in_window", "BOOLEAN", "Onset inside the DLT window (dlt.window); with the onset unknown, true unless the "
                                   "event ended (else the subject died) before the window; always true for cytopenia rules."),
        C("evidence", "VARCHAR", "The data behind the flag in words, e.g. 'CRS grade 3 on days 2-6 (5 days)'."),
        C("event_fingerprint", "VARCHAR", "grade|onset_day|end_day|duration|TERM (upper case; 'ongoing' for end "
                                          "and duration while ongoing): a change on reload flags an adjudication for "
                                          "re-review."),
        C("cohort", "VARCHAR", "Subject's cohort."),
        C("dose_level", "VARCHAR", "Subject's dose level."),
    ),
    group="derived",
)

DLT_EVALUABILITY = Table(
    "dlt_evaluability",
    "DLT evaluability per subject at the cut: infused and either followed through the DLT window or with a "
    "confirmed DLT. A death or discontinuation inside the window without a DLT makes the subject not "
    "evaluable (usually replaced). Confirmed = committee decision in the review store at load time.",
    KEY + SUBJ + (
        C("cohort", "VARCHAR", "Cohort."),
        C("dose_level", "VARCHAR", "Dose level."),
        C("infused", "BOOLEAN", "Received the cell product (or counted so on a committee DLT decision in force: "
                                "follow_up_status)."),
        C("evaluable", "BOOLEAN", "DLT-evaluable on adjudicated decisions."),
        C("reason", "VARCHAR", "Why, e.g. 'followed through day 28', 'DLT candidate confirmed', 'not infused', "
                               "'followed to day 12 of 28 so far', 'died on day 9 without DLT' ('died on day 9; DLT candidate "
                               "pending adjudication' while one awaits the committee)."),
        C("followed_through_day", "INTEGER", "Last day known alive, capped at the window end; NULL when not infused (no day 0)."),
        C("window_end_day", "INTEGER", "Last day of the DLT window (dlt.window.end_day)."),
        C("followed_through_window", "BOOLEAN", "Known alive on or after the window's last day."),
        C("death_day", "INTEGER", "Day of death, if any."),
        C("dlt_confirmed", "BOOLEAN", "At least one committee-confirmed (or added) DLT."),
        C("candidates_in_window", "INTEGER", "Screened candidates with onset in the window."),
        C("pending_in_window", "INTEGER", "Of those, candidates without a decision in force (or needing re-review)."),
        C("evaluable_if_candidates_confirmed", "BOOLEAN", "Evaluable if every in-window candidate were a DLT "
                                                         "(used when no adjudications are available)."),
        C("follow_up_status", "VARCHAR", "subjects.status at the cut ('in follow-up', 'discontinued', 'died', ...); "
                                         "'not in this data cut' or 'no infusion in this data cut' for a subject "
                                         "counted as infused on a committee DLT decision alone (docs/dlt.md)."),
        C("rereview_in_window", "INTEGER", "Adjudicated events of the subject whose data changed since the decision."),
        C("crs_max_grade_window", "INTEGER", "Highest CRS grade with onset in the window (episodes, else AEs); 0 when none."),
        C("icans_max_grade_window", "INTEGER", "Highest ICANS grade with onset in the window (episodes, else AEs); 0 when none."),
        C("treatment_related_death", "BOOLEAN", "A related AE with fatal outcome (grade 5) and onset in the window, or a non-relapse death (DM, DS or AE; table deaths) on a day in the window (of unknown day: unless known alive after the window)."),
    ),
    group="derived",
)


# --- CRS and ICANS ---

_SYN = C("syndrome", "VARCHAR", "'CRS' or 'ICANS'.")

CRS_GRADES = Table(
    "crs_grades",
    "ASTCT 2019 CRS grade of every crs_assessments record, with the component that set it.",
    KEY + SUBJ + (
        C("assessment_id", "INTEGER", "crs_assessments.assessment_id of the graded record."),
        C("assessment_time", "TIMESTAMP", "Assessment date/time."),
        C("day", "INTEGER", "Day relative to infusion."),
        C("temp_c", "DOUBLE", "Temperature (degrees C) as recorded; NULL when not recorded."),
        C("fever", "BOOLEAN", "temp_c >= 38.0 C (NULL when temperature not recorded)."),
        C("fever_required", "BOOLEAN", "True unless fever is masked: within an open CRS episode after tocilizumab, another anti-cytokine (anakinra ...), a systemic corticosteroid or an antipyretic was given for it (until the episode ends)."),
        C("hypotension_grade", "INTEGER", "Hypotension component: 0 none, 2 without vasopressors, 3 one vasopressor (+/- vasopressin, or vasopressin alone), 4 two or more (vasopressin not counted)."),
        C("hypoxia_grade", "INTEGER", "Oxygen component: 0 none, 2 blow-by or nasal cannula <= 6 L/min, 3 high-flow/>6 L/min, facemask, non-rebreather, Venturi, 4 CPAP/BiPAP/mechanical ventilation; NULL for an unrecognised device."),
        C("grade", "INTEGER", "ASTCT CRS grade 0-4; NULL when not gradable or taken before the CAR infusion (see grade_reason)."),
        C("grade_component", "VARCHAR", "What set the grade: 'none', 'fever', 'hypotension', 'hypoxia', 'hypotension+hypoxia'."),
        C("grade_reason", "VARCHAR", "Why, in words, e.g. 'one vasopressor', 'high-flow nasal cannula', 'afebrile, no CRS', 'before the CAR infusion: not graded'."),
        C("evidence", "VARCHAR", "The recorded findings, e.g. 'T 38.9 C; 1 vasopressor; oxygen HIGH_FLOW_NC 30 L/min'."),
        C("episode_key", "VARCHAR", "event_key of the CRS episode this assessment belongs to, NULL outside episodes."),
    ),
    group="derived",
)

ICANS_GRADES = Table(
    "icans_grades",
    "ASTCT 2019 ICANS grade (adult, ICE-based) of every icans_assessments record: the worst domain.",
    KEY + SUBJ + (
        C("assessment_id", "INTEGER", "icans_assessments.assessment_id of the graded record."),
        C("assessment_time", "TIMESTAMP", "Assessment date/time."),
        C("day", "INTEGER", "Day relative to infusion."),
        C("ice_score", "INTEGER", "ICE score 0-10 as recorded; NULL when not done."),
        C("ice_grade", "INTEGER", "ICE domain: 10 -> 0, 7-9 -> 1, 3-6 -> 2, 0-2 -> 3; NULL when not done."),
        C("consciousness_grade", "INTEGER", "Consciousness domain: awake 0, awakens spontaneously 1, to voice 2, only to touch 3, unarousable 4."),
        C("seizure_grade", "INTEGER", "Seizure domain: none 0, rapidly resolving 3, prolonged or repetitive 4."),
        C("motor_grade", "INTEGER", "Motor domain: none 0, deep focal weakness 4."),
        C("edema_grade", "INTEGER", "Raised ICP / cerebral oedema domain: none 0, focal 3, diffuse 4."),
        C("grade", "INTEGER", "ASTCT ICANS grade 0-4 = the worst domain; NULL when not gradable (ICE not done and nothing else abnormal) or taken before the CAR infusion."),
        C("grade_component", "VARCHAR", "Domain(s) that set the grade: 'none', 'ICE', 'consciousness', 'seizure', 'motor', 'cerebral oedema' (joined with '+' on ties)."),
        C("grade_reason", "VARCHAR", "Why, in words; for NULL grades e.g. 'ICE not done and nothing else abnormal', 'before the CAR infusion: not graded'."),
        C("evidence", "VARCHAR", "The recorded findings."),
        C("episode_key", "VARCHAR", "event_key of the ICANS episode this assessment belongs to, NULL outside episodes."),
        C("capd_score", "INTEGER", "CAPD score as recorded (children); NULL when not done."),
        C("capd_grade", "INTEGER", "CAPD domain for a child aged <= 12: 0 -> 0, 1-8 -> 1, >= 9 -> 3; NULL for adults, when not done or sedated."),
        C("cognitive_tool", "VARCHAR", "'CAPD' for a subject aged 12 or younger (DM age), else 'ICE'."),
        C("not_gradable_sedated", "BOOLEAN", "Consciousness recorded SEDATED (sedation or intubation for reasons other than ICANS): consciousness and ICE/CAPD not gradable."),
    ),
    group="derived",
)

# A reported AE's days are drawn for its first year at most (an AE open at the cut a year on).
MAX_REPORTED_AE_DAYS = 365

# Assessed days: the worst grade of the day's graded assessments. Reported-AE days: each day of a reported-AE
# episode at the AE grade (reported_grade: a death attributed to the syndrome later raises the episode's
# max_grade to 5, not the AE's days). A join with range(), so DuckDB spreads the expansion over its threads.
_DAILY_GRADES_SQL = "".join(f"""
SELECT studyid, data_cut, usubjid, '{syndrome}' AS syndrome, day, max(grade) AS grade, 'assessments' AS source,
       max(episode_key) AS episode_key
FROM {graded.name} WHERE day IS NOT NULL GROUP BY studyid, data_cut, usubjid, day
UNION ALL""" for graded, syndrome in ((CRS_GRADES, "CRS"), (ICANS_GRADES, "ICANS"))) + f"""
SELECT e.studyid, e.data_cut, e.usubjid, e.syndrome, CAST(d.range AS INTEGER) AS day, e.reported_grade AS grade,
       'reported AE' AS source, e.event_key AS episode_key
FROM toxicity_episodes e,
     range(e.onset_day, least(e.last_symptomatic_day, e.onset_day + {MAX_REPORTED_AE_DAYS}) + 1) d
WHERE e.source = 'reported AE'
"""

TOXICITY_DAILY_GRADES = Table(
    "toxicity_daily_grades",
    "Worst CRS and ICANS grade per subject and day (assessed days, or the days of a reported AE), for swimlanes. "
    "A view: computed when read from crs_grades, icans_grades and toxicity_episodes, so it always says what they "
    "say (a reported AE's days were 1.45 million stored rows for 20,000 subjects; docs/performance-history.md).",
    KEY + SUBJ + (
        _SYN,
        C("day", "INTEGER", "Day relative to infusion."),
        C("grade", "INTEGER", "Worst grade of the day; NULL when every assessment that day was not gradable."),
        C("source", "VARCHAR", "'assessments' (derived) or 'reported AE' (the AE grade spread over its days, at most "
                               f"its first {MAX_REPORTED_AE_DAYS} days)."),
        C("episode_key", "VARCHAR", "Episode the day belongs to, NULL outside episodes."),
    ),
    group="derived",
    view_sql=_DAILY_GRADES_SQL,
)

TOXICITY_EPISODES = Table(
    "toxicity_episodes",
    "CRS and ICANS episodes per subject: timing, maximum grade, management, support and resolution at the cut.",
    KEY + SUBJ + (
        _SYN,
        C("episode_no", "INTEGER", "Episode number per subject and syndrome, in time order; an episode from a reported AE that the subject's assessments could not grade comes after the derived ones, whose numbers never move for it."),
        C("event_key", "VARCHAR", "Stable key '<usubjid>/CRS/<n>' or '<usubjid>/ICANS/<n>'."),
        C("onset_day", "INTEGER", "First day with grade >= 1."),
        C("last_symptomatic_day", "INTEGER", "Last day with grade >= 1."),
        C("duration_days", "INTEGER", "last_symptomatic_day - onset_day + 1."),
        C("max_grade", "INTEGER", "Maximum grade over the episode."),
        C("max_grade_day", "INTEGER", "First day the maximum grade was reached."),
        C("days_grade3_plus", "INTEGER", "Number of distinct days with grade >= 3 (NULL for reported-AE episodes)."),
        C("grade3_plus_first_day", "INTEGER", "First day with grade >= 3 (reported-AE episodes: the first onset of an AE record graded >= 3)."),
        C("grade3_plus_last_day", "INTEGER", "Last day with grade >= 3 (reported-AE episodes: the last end of an AE record graded >= 3, an ongoing one counted to the cut or the last day known alive)."),
        C("grade3_plus_hours", "DOUBLE", "Hours grade >= 3 lasted by the assessments: CRS from the first to the last grade >= 3 assessment of the episode (an assessment grades the support since the one before it); ICANS from the first grade >= 3 assessment to the first later one of the episode below grade 3 (an assessment is of its moment), else to the last grade >= 3 one; to the end of grade3_plus_end_day if grade3_plus_ongoing. NULL without grade >= 3 or for reported-AE episodes."),
        C("grade3_plus_ongoing", "BOOLEAN", "Still grade >= 3 at the last assessment of an episode ongoing at the cut (reported-AE episodes: an AE record graded >= 3 ongoing at the cut, the subject alive): its grade >= 3 time runs to the cut (or to the last day known alive, if earlier)."),
        C("grade3_plus_end_day", "INTEGER", "Day the grade >= 3 time is counted to: grade3_plus_last_day, or the cut day (last day known alive, if earlier) when grade3_plus_ongoing."),
        C("resolution_day", "INTEGER", "First assessed day with grade 0 after the last symptomatic day (AE end day for reported-AE episodes)."),
        C("ongoing", "BOOLEAN", "True when resolution_status is 'ongoing at data cut'."),
        C("resolution_status", "VARCHAR", "'resolved' (a grade-0 assessment followed, or the AE ended), 'ongoing at data cut', 'death' (not resolved before the subject died; always for grade 5), or 'ended without a grade-0 assessment' (closed by the unassessed-gap rule with later assessments)."),
        C("tocilizumab", "BOOLEAN", "Tocilizumab started between onset and the day after the last symptomatic day."),
        C("tocilizumab_first_day", "INTEGER", "Day of the first such tocilizumab dose."),
        C("tocilizumab_doses", "INTEGER", "Number of tocilizumab records started in that window."),
        C("corticosteroid", "BOOLEAN", "Corticosteroid started in the episode window."),
        C("corticosteroid_first_day", "INTEGER", "Day of the first such corticosteroid."),
        C("anakinra", "BOOLEAN", "Anakinra started in the episode window."),
        C("anakinra_first_day", "INTEGER", "Day of the first such anakinra dose."),
        C("vasopressor_max", "INTEGER", "CRS: most vasopressors running at one assessment, vasopressin included; reported-AE episodes: 1 when a vasopressor was given in the window, else 0. NULL for ICANS."),
        C("positive_pressure", "BOOLEAN", "CRS: CPAP, BiPAP or mechanical ventilation at any assessment (NULL for ICANS and reported-AE episodes)."),
        C("icu_level_support", "BOOLEAN", "CRS: any vasopressor, or high-flow (HIGH_FLOW_NC or nasal cannula > 6 L/min) or positive-pressure oxygen; ICANS: max grade >= 3."),
        C("source", "VARCHAR", "'assessments' (derived) or 'reported AE' (the subject has no assessment data for the syndrome, or none of its assessments could be graded on the AE's days and no derived episode matches the AE)."),
        C("grading_system", "VARCHAR", "'ASTCT 2019' for derived episodes; for reported-AE episodes the AE's grading_system."),
        C("ae_event_key", "VARCHAR", "event_key of the matched reported AE (highest grade when several; of those, the earliest onset, then the lowest AESEQ), if any."),
        C("reported_grade", "INTEGER", "AETOXGR of the matched reported AE(s) (highest)."),
        C("assessed_max_grade", "INTEGER", "Maximum grade from the assessments (or the reported AE) before a death was attributed: max_grade is 5 when grade5_basis is set."),
        C("grade5_basis", "VARCHAR", "Why the episode is grade 5 (death attributed to the syndrome): a reported AE of it graded 5 with outcome FATAL, or a DS/DM cause of death naming it; NULL otherwise."),
    ),
    group="derived",
)

GRADE_DISCREPANCIES = Table(
    "grade_discrepancies",
    "Where a site-reported CRS/ICANS AE grade differs from the grade derived from assessments, or one exists without the other.",
    KEY + SUBJ + (
        _SYN,
        C("episode_key", "VARCHAR", "Derived episode event_key (NULL for a reported AE with no derived episode)."),
        C("ae_event_key", "VARCHAR", "Reported AE event_key (NULL when no AE was reported)."),
        C("aeseq", "INTEGER", "AESEQ of the reported AE."),
        C("onset_day", "INTEGER", "Onset day of the derived episode, else of the AE."),
        C("reported_grade", "INTEGER", "AETOXGR as reported."),
        C("derived_grade", "INTEGER", "Maximum grade derived from assessments."),
        C("discrepancy", "VARCHAR", "'reported lower than derived', 'reported higher than derived', 'no AE reported for derived episode', 'reported AE without derived episode', 'reported AE has no grade', 'reported on a different grading system', 'hypotension or hypoxia reported higher than derived CRS' (an AE of hypotension or hypoxia begun during the derived CRS episode and graded above it: ae_event_key, aeseq, reported_grade and reported_grading_system are that AE's)."),
        C("reported_grading_system", "VARCHAR", "The AE's grading_system (a CRS/ICANS AE graded on another scale is not comparable)."),
        C("evidence", "VARCHAR", "Why the derived grade is what it is, e.g. 'grade 3 on day 3: one vasopressor (T 38.9 C; 1 vasopressor)'; for a reported AE without derived episode, whether the assessments near it showed no grade >= 1 or none on its days was gradable (then the AE is a 'reported AE' episode, named)."),
    ),
    group="derived",
)

EPISODE_BIOMARKERS = Table(
    "episode_biomarkers",
    "Peak CRP, ferritin and IL-6 per CRS/ICANS episode (window: onset - 1 to last symptomatic day + 3).",
    KEY + SUBJ + (
        C("episode_key", "VARCHAR", "Episode event_key."),
        _SYN,
        C("onset_day", "INTEGER", "Episode onset day."),
        C("peak_crp", "DOUBLE", "Highest CRP in the window (SI, labs.unit)."),
        C("peak_crp_day", "INTEGER", "Day of the peak CRP (relative to infusion)."),
        C("peak_crp_rel_onset", "INTEGER", "peak_crp_day - onset_day."),
        C("peak_ferritin", "DOUBLE", "Highest ferritin in the window."),
        C("peak_ferritin_day", "INTEGER", "Day of the peak ferritin."),
        C("peak_ferritin_rel_onset", "INTEGER", "peak_ferritin_day - onset_day."),
        C("peak_il6", "DOUBLE", "Highest IL-6 in the window."),
        C("peak_il6_day", "INTEGER", "Day of the peak IL-6."),
        C("peak_il6_rel_onset", "INTEGER", "peak_il6_day - onset_day."),
    ),
    group="derived",
)

IEC_HS_SCREEN = Table(
    "iec_hs_screen",
    "Candidates for IEC-HS review (Hines 2023, rule unverified): a screen, not a diagnosis. See docs/toxicities.md.",
    KEY + SUBJ + (
        C("flag_day", "INTEGER", "Day of the ferritin value that met the screen."),
        C("ferritin", "DOUBLE", "That ferritin value (highest of the day): > 2 x ULN, > 2 x ferritin_at_infusion or doubled since the previous value, and rising when after a CRS peak."),
        C("ferritin_at_infusion", "DOUBLE", "Latest ferritin on days -14 to 0; NULL when none (the > 2 x ULN branch still applies)."),
        C("ferritin_fold", "DOUBLE", "ferritin / ferritin_at_infusion."),
        C("criteria_met", "VARCHAR", "Haemophagocytosis-like findings within 3 days (comma-separated, with values): new or worsening cytopenia, ALT/AST > 5 x ULN, fibrinogen < 1.5 g/L, LDH > 2 x ULN, triglycerides > 3.0 mmol/L."),
        C("crs_episode_key", "VARCHAR", "The CRS episode whose peak preceded the flag, if any."),
        C("crs_phase", "VARCHAR", "'CRS resolving' (after the latest episode's peak day), 'after CRS', or 'no CRS episode'."),
        C("first_flag", "BOOLEAN", "The subject's first flagged day."),
        C("label", "VARCHAR", "Always 'screen, not a diagnosis'."),
        C("ferritin_uln", "DOUBLE", "ULN of that ferritin record."),
        C("ferritin_previous", "DOUBLE", "The ferritin value measured before it (any day)."),
        C("ferritin_criterion", "VARCHAR", "Which ferritin criterion was met: '> 2 x ULN', '> 2 x baseline', 'doubled since the previous value' (safety/data/iec_hs_criteria.csv)."),
        C("grade", "INTEGER", "Screen grade (Hines 2023): 1 no directed therapy or support recorded, 2 IEC-HS-directed therapy, 4 vasopressor, positive pressure or dialysis (CM, CRS assessments, PR), 5 death attributed to IEC-HS/HLH. Grade 3 cannot be derived: grades 1-2 are lower bounds."),
        C("grade_reason", "VARCHAR", "The grade in words, with the drug or support and its day; below grade 4, a directed drug or vasopressor begun before the window and given into it, named as not counted."),
    ),
    group="derived",
)

# the view last: it reads the tables before it
CRS_ICANS_TABLES = (CRS_GRADES, ICANS_GRADES, TOXICITY_EPISODES, GRADE_DISCREPANCIES, TOXICITY_DAILY_GRADES)
EPISODE_LAB_TABLES = (EPISODE_BIOMARKERS, IEC_HS_SCREEN)  # the lab screens around the episodes


# --- ICAHT ---

ICAHT = Table(
    "icaht",
    "Early (days 0-30) and late (days 31-100) ICAHT per infused subject and lineage (ANC: EHA/EBMT 2023; PLT: "
    "T-ICAHT proposal). Every infused subject has both rows: without results the grades are NULL and the note says so.",
    KEY + SUBJ + (
        C("lineage", "VARCHAR", "'ANC' (LBTESTCD NEUT) or 'PLT' (PLAT)."),
        C("early_grade", "INTEGER", "Early ICAHT grade 0-4; NULL when no value in days 0-30."),
        C("late_grade", "INTEGER", "Late ICAHT grade 0-4 (days 31-100, ended earlier by a relapse, progression or subsequent line of therapy); NULL when no value in that window."),
        C("days_le_500", "INTEGER", "ANC: duration of the longest episode with ANC <= 0.5 x10^9/L in days 0-30 (episodes less than 3 days apart joined, as the grade uses). PLT: days with PLT < 50 x10^9/L in days 0-30 before a relapse, progression or subsequent line of therapy (T-ICAHT censors there), recovery gaps shorter than 3 days counted."),
        C("days_le_100", "INTEGER", "ANC: longest joined episode with ANC <= 0.1 x10^9/L in days 0-30. PLT: days with PLT < 20 in days 0-30 before a relapse, progression or subsequent line of therapy (short gaps counted)."),
        C("first_day_le_500", "INTEGER", "First day (0-30) at or below the 0.5 (ANC) / below the 50 (PLT) threshold."),
        C("never_recovered", "BOOLEAN", "ANC <= 0.5 from day 3 or earlier with no recovery (3 consecutive days > 0.5) by day 30, before death or the last value, and none the values leave possible (a day above 0.5 or without a value, followed by days without a value): forces early grade 4."),
        C("late_nadir", "DOUBLE", "Lowest measured value on days 31-100 (x10^9/L)."),
        C("late_nadir_day", "INTEGER", "Day of late_nadir."),
        C("late_values_below", "INTEGER", "Measured values on days 31-100 at or below 1.5 (ANC) / below 100 (PLT); a late grade needs at least 2 (ANC: or one value that is the only one of those days)."),
        C("recovery_day", "INTEGER", "First of 3 consecutive days above 0.5 (ANC) / at or above 20 (PLT) after the last early low day; NULL if never low or not recovered."),
        C("n_values", "INTEGER", "Measured values (days with a result) in days 0-30."),
        C("evaluable", "BOOLEAN", "Early grade is final: values in days 0-30, follow-up through day 30 (or death, or recovery observed), and at most half of days 0-30 unknown."),
        C("note", "VARCHAR", "Why not evaluable, unknown (uninterpolated) days, forced grade 4, results left out for want of a unit, etc."),
        C("early_unknown_days", "INTEGER", "Days 0-30 without a measured or interpolated value (the grid runs at least to day 30 or the end of follow-up, so the days after the last value count)."),
        C("early_evaluability", "VARCHAR", "'fully evaluable', 'not fully evaluable' (most of days 0-30 unknown: early_grade is a lower bound), 'provisional' (follow-up ends before day 30), or 'not assessable'."),
        C("early_grade_is_lower_bound", "BOOLEAN", "True when early_grade is a lower bound rather than final."),
        C("early_grade_reason", "VARCHAR", "The early grade in words: which duration (ANC <= 0.5 or <= 0.1) set it, or no recovery by day 30."),
        C("late_grade_reason", "VARCHAR", "The late grade in words: what set it (ANC: the nadir; platelets: the days below 20 for grade 3-4, "
                                            "else the second-lowest value), or why no grade (one low value is transient)."),
    ),
    group="derived",
)


# --- CTCAE lab grading ---

# lab_toxicity is a view over three stored tables: each graded record's values with two small integer ids
# (lab_toxicity_records), the study, cut, lab test, unit and CTCAE term each lab_term_id stands for
# (lab_toxicity_terms), and per study and cut the reason texts (lab_toxicity_reasons). Every text a record
# would repeat lives once in the small tables: writing 2.4 million records at 20,000 subjects was the costliest
# part of a load's largest write, and most of it was compressing those repeated texts (docs/performance-history.md,
# fourteenth and fifteenth passes).

# reason_id of a record whose unit is not the rule's SI unit: its text names the record's unit and the term's
UNIT_OTHER_REASON_ID = -3

_LBSEQ = C("lbseq", "INTEGER", "LBSEQ of the lab record graded.")
_LBTESTCD = C("lbtestcd", "VARCHAR", "Test code (LBTESTCD).")
_CTCAE_TERM = C("ctcae_term", "VARCHAR", "CTCAE term graded, e.g. 'Anemia', 'Neutrophil count decreased'.")
_DIRECTION = C("direction", "VARCHAR", "'L' (decreased/hypo terms) or 'H' (increased/hyper terms).")
_CTCAE_VERSION = C("ctcae_version", "VARCHAR", "CTCAE version of the rule file used, e.g. '5.0'.")
_VALUE = C("value", "DOUBLE", "Result used (labs.value, SI).")
_UNIT = C("unit", "VARCHAR", "Unit of the result (labs.unit).")
_GRADED_VALUES = (
    C("lln", "DOUBLE", "Lower limit of normal of the record."),
    C("uln", "DOUBLE", "Upper limit of normal of the record."),
    C("baseline_value", "DOUBLE", "Baseline value of the subject's test: the LBBLFL='Y' record, else the last non-missing value on or before day 0."),
    C("baseline_high", "BOOLEAN", "Baseline abnormal high: its LBNRIND is HIGH/H (NORMAL/LOW = not high), else its value > its ULN. False when no baseline."),
    C("is_baseline", "BOOLEAN", "This record is the baseline record."),
    C("grade", "INTEGER", "CTCAE grade 0-4; NULL when not gradable (see grade_reason)."),
)
_GRADED_WHEN = (
    C("day", "INTEGER", "Collection day relative to the first CAR infusion (day 0)."),
    C("lab_date", "DATE", "Collection date (labs.lb_date)."),
)

LAB_TOXICITY_RECORDS = Table(
    "lab_toxicity_records",
    "The stored part of lab_toxicity: one row per graded blood lab record and CTCAE term. Its study, cut, test, "
    "unit and term are those of its lab_term_id (lab_toxicity_terms), its reason text that of its reason_id "
    "(lab_toxicity_reasons). Read lab_toxicity instead.",
    SUBJ + (
        _LBSEQ,
        C("lab_term_id", "INTEGER", "lab_toxicity_terms.lab_term_id: the study, cut, lab test, unit and CTCAE term "
                                    "of the record."),
        _VALUE, *_GRADED_VALUES,
        C("reason_id", "INTEGER", f"Why the grade: lab_toxicity_reasons.reason_id of the same study and cut; "
                                  f"{UNIT_OTHER_REASON_ID} = the unit is not the term's SI unit (the text is made "
                                  "from lab_toxicity_terms.unit and unit_check)."),
        *_GRADED_WHEN,
    ),
    group="derived",
    read_through="lab_toxicity",
    snapshot_delete=("DELETE FROM lab_toxicity_records WHERE lab_term_id IN "
                     "(SELECT lab_term_id FROM lab_toxicity_terms WHERE studyid = $studyid AND data_cut = $data_cut)"),
)

LAB_TOXICITY_TERMS = Table(
    "lab_toxicity_terms",
    "What a load graded, per study and cut: one row per lab test, unit and CTCAE term (and direction) its "
    "records were graded for; what lab_toxicity_records.lab_term_id stands for.",
    KEY + (
        C("lab_term_id", "INTEGER", "Id of the row, unique in the file (a load numbers its rows after the file's "
                                    "highest)."),
        C("term_id", "INTEGER", "Id of the CTCAE term and direction within the study and cut (one term graded from "
                                "several tests or units has one term_id)."),
        _LBTESTCD, _UNIT, _CTCAE_TERM, _DIRECTION,
        C("unit_check", "VARCHAR", "The SI unit the term's absolute criteria need ('' when none)."),
        _CTCAE_VERSION,
    ),
    group="derived",
    per_subject=False,
    read_through="lab_toxicity",
)

LAB_TOXICITY_REASONS = Table(
    "lab_toxicity_reasons",
    "The reasons a load's grades give, per study and cut: what lab_toxicity_records.reason_id stands for.",
    KEY + (
        C("reason_id", "INTEGER", "Id of the reason within the study and cut."),
        C("grade_reason", "VARCHAR", "The reason in words (see lab_toxicity.grade_reason)."),
    ),
    group="derived",
    per_subject=False,
    read_through="lab_toxicity",
)


def lab_toxicity_select(records: str, terms: str, reasons: str) -> str:
    """lab_toxicity's columns from relations with the columns of its three stored tables: the view's SELECT,
    and that of ``grade_labs`` over its own rows, so both say the same."""
    return f"""
SELECT t.studyid, t.data_cut, r.usubjid, r.lbseq, t.lbtestcd, t.ctcae_term, t.direction, r.value, t.unit, r.lln,
       r.uln, r.baseline_value, r.baseline_high, r.is_baseline, r.grade,
       CASE WHEN r.reason_id = {UNIT_OTHER_REASON_ID} THEN 'unit ' || t.unit || ' not ' || t.unit_check
            ELSE g.grade_reason END AS grade_reason,
       t.ctcae_version, r.day, r.lab_date
FROM {records} r
JOIN {terms} t ON t.lab_term_id = r.lab_term_id
LEFT JOIN {reasons} g ON g.studyid = t.studyid AND g.data_cut = t.data_cut AND g.reason_id = r.reason_id
"""


# Rows with lab_toxicity's columns (in {rows}) stored in its three tables: a file an earlier celltox wrote kept
# lab_toxicity as a table (or stored it otherwise), and test fixtures write whole rows. A test, unit and term
# new to its study and cut gets the file's next lab_term_id (and its term the cut's term_id when the cut has
# the term); a reason text new to its cut gets the cut's next reason_id. Texts are stored as they read, the
# unit reason among them.
_LAB_TOXICITY_STORE_SQL = (
    """INSERT INTO lab_toxicity_terms (studyid, data_cut, lab_term_id, term_id, lbtestcd, unit, ctcae_term,
                                       direction, unit_check, ctcae_version)
    SELECT n.studyid, n.data_cut,
           CAST((SELECT coalesce(max(lab_term_id), 0) FROM lab_toxicity_terms)
                + row_number() OVER (ORDER BY n.studyid, n.data_cut, n.ctcae_term, n.direction, n.lbtestcd, n.unit)
                AS INTEGER),
           CAST(coalesce(k.term_id, coalesce(m.top, -1) + dense_rank() OVER (
               PARTITION BY n.studyid, n.data_cut, k.term_id IS NULL ORDER BY n.ctcae_term, n.direction)) AS INTEGER),
           n.lbtestcd, n.unit, n.ctcae_term, n.direction, k.unit_check, n.ctcae_version
    FROM (SELECT studyid, data_cut, lbtestcd, unit, ctcae_term, direction, any_value(ctcae_version) AS ctcae_version
          FROM {rows} GROUP BY ALL) n
    LEFT JOIN (SELECT studyid, data_cut, ctcae_term, direction, min(term_id) AS term_id,
                      any_value(unit_check) AS unit_check
               FROM lab_toxicity_terms GROUP BY ALL) k
      ON k.studyid = n.studyid AND k.data_cut = n.data_cut AND k.ctcae_term IS NOT DISTINCT FROM n.ctcae_term
     AND k.direction IS NOT DISTINCT FROM n.direction
    LEFT JOIN (SELECT studyid, data_cut, max(term_id) AS top FROM lab_toxicity_terms GROUP BY ALL) m
      ON m.studyid = n.studyid AND m.data_cut = n.data_cut
    WHERE NOT EXISTS (SELECT 1 FROM lab_toxicity_terms t WHERE t.studyid = n.studyid AND t.data_cut = n.data_cut
                      AND t.lbtestcd IS NOT DISTINCT FROM n.lbtestcd AND t.unit IS NOT DISTINCT FROM n.unit
                      AND t.ctcae_term IS NOT DISTINCT FROM n.ctcae_term
                      AND t.direction IS NOT DISTINCT FROM n.direction)""",
    """INSERT INTO lab_toxicity_reasons (studyid, data_cut, reason_id, grade_reason)
    SELECT n.studyid, n.data_cut,
           CAST(greatest(coalesce(m.top, 0), 0) + row_number() OVER (PARTITION BY n.studyid, n.data_cut
                                                                    ORDER BY n.grade_reason) AS INTEGER),
           n.grade_reason
    FROM (SELECT DISTINCT studyid, data_cut, grade_reason FROM {rows} WHERE grade_reason IS NOT NULL) n
    LEFT JOIN (SELECT studyid, data_cut, max(reason_id) AS top FROM lab_toxicity_reasons GROUP BY ALL) m
      USING (studyid, data_cut)
    WHERE NOT EXISTS (SELECT 1 FROM lab_toxicity_reasons g WHERE g.studyid = n.studyid AND g.data_cut = n.data_cut
                      AND g.grade_reason = n.grade_reason)""",
    """INSERT INTO lab_toxicity_records BY NAME
    SELECT x.usubjid, x.lbseq, t.lab_term_id, x.value, x.lln, x.uln,
           x.baseline_value, x.baseline_high, x.is_baseline, x.grade, g.reason_id, x.day, x.lab_date
    FROM {rows} x
    JOIN lab_toxicity_terms t ON t.studyid = x.studyid AND t.data_cut = x.data_cut
     AND t.lbtestcd IS NOT DISTINCT FROM x.lbtestcd AND t.unit IS NOT DISTINCT FROM x.unit
     AND t.ctcae_term IS NOT DISTINCT FROM x.ctcae_term AND t.direction IS NOT DISTINCT FROM x.direction
    LEFT JOIN (SELECT studyid, data_cut, grade_reason, min(reason_id) AS reason_id FROM lab_toxicity_reasons
               GROUP BY ALL) g
      ON g.studyid = x.studyid AND g.data_cut = x.data_cut AND g.grade_reason = x.grade_reason""",
)

LAB_TOXICITY = Table(
    "lab_toxicity",
    "CTCAE grade of every blood lab record for each term its test maps to (safety/data/lab_terms.csv): "
    "one row per lab record and term. Urine and other non-blood specimens are left out (not graded). "
    "A view over lab_toxicity_records, lab_toxicity_terms and lab_toxicity_reasons.",
    KEY + SUBJ + (
        _LBSEQ, _LBTESTCD, _CTCAE_TERM, _DIRECTION, _VALUE, _UNIT, *_GRADED_VALUES,
        C("grade_reason", "VARCHAR", "Why NULL ('missing value', 'missing LLN', 'missing ULN', 'missing baseline', 'unit missing', 'unit <u> not <expected>'); for graded records the criterion met, e.g. 'value > 3 x ULN'."),
        _CTCAE_VERSION, *_GRADED_WHEN,
    ),
    group="derived",
    view_sql=lab_toxicity_select("lab_toxicity_records", "lab_toxicity_terms", "lab_toxicity_reasons"),
    store_sql=_LAB_TOXICITY_STORE_SQL,
)

# the view last: its tables exist before it
LAB_GRADE_TABLES = (LAB_TOXICITY_RECORDS, LAB_TOXICITY_TERMS, LAB_TOXICITY_REASONS, LAB_TOXICITY)

LAB_WORST_GRADES = Table(
    "lab_worst_grades",
    f"Per subject, CTCAE term and test: grade of the baseline record and worst post-infusion grade (day >= {POST_INFUSION_FIRST_DAY}).",
    KEY + SUBJ + (
        C("ctcae_term", "VARCHAR", "CTCAE term."),
        C("direction", "VARCHAR", "'L' or 'H'."),
        C("lbtestcd", "VARCHAR", "Test code."),
        C("baseline_grade", "INTEGER", "Grade of the baseline record; NULL when no baseline or not gradable."),
        C("worst_grade", "INTEGER", "Worst grade among graded records from day 1 on; NULL when none graded."),
        C("worst_day", "INTEGER", "First day (>= 1) at the worst grade."),
        C("n_post", "INTEGER", "Number of graded (non-NULL) records from day 1 on."),
    ),
    group="derived",
)


# --- AE grades CTCAE does not define for the term ---

AE_GRADE_CHECKS = Table(
    "ae_grade_checks",
    "AEs graded on CTCAE whose reported grade (AETOXGR) is one CTCAE does not define for the term (AEDECOD matched "
    "to the CTCAE term list, safety/rules/ctcae_v5_terms.csv): Sepsis has grades 3-5 only, so a 'grade 2 sepsis' "
    "is a query for the site. AEs whose term is no CTCAE term are not checked.",
    KEY + SUBJ + (
        C("event_key", "VARCHAR", "adverse_events.event_key."),
        C("aeterm", "VARCHAR", "Reported term (AETERM)."),
        C("aedecod", "VARCHAR", "Dictionary-derived term (AEDECOD)."),
        C("ctcae_term", "VARCHAR", "The CTCAE term it matched (case aside)."),
        C("aetoxgr", "INTEGER", "The reported grade."),
        C("ctcae_grades", "VARCHAR", "The grades CTCAE defines for the term, e.g. '3, 4, 5'."),
        C("onset_day", "INTEGER", "AE onset day relative to the first CAR infusion (day 0)."),
    ),
    group="derived",
)


# --- CAR-HEMATOTOX ---

CAR_HEMATOTOX = Table(
    "car_hematotox",
    "CAR-HEMATOTOX score (Rejeski et al., Blood 2021) per infused subject from the last values before lymphodepletion: "
    "low (0-1) or high (>= 2) risk of haematotoxicity, with every input and its points.",
    KEY + SUBJ + (
        C("reference_day", "INTEGER", "Values are taken on or before this day: the lymphodepletion start day, else day -1."),
        C("reference", "VARCHAR", "'lymphodepletion start' or 'day -1 (no lymphodepletion recorded)'."),
        C("anc", "DOUBLE", "ANC (x10^9/L), last value before the reference."), C("anc_day", "INTEGER", "Day of that ANC."),
        C("anc_points", "INTEGER", "ANC < 1.2 x10^9/L = 1, else 0."),
        C("hgb", "DOUBLE", "Haemoglobin (g/L)."), C("hgb_day", "INTEGER", "Day of that haemoglobin."),
        C("hgb_points", "INTEGER", "Haemoglobin < 90 g/L (9.0 g/dL) = 1, else 0."),
        C("plt", "DOUBLE", "Platelets (x10^9/L)."), C("plt_day", "INTEGER", "Day of that platelet count."),
        C("plt_points", "INTEGER", "Platelets < 75 = 2, 75-175 = 1, > 175 = 0."),
        C("crp", "DOUBLE", "CRP (mg/L)."), C("crp_day", "INTEGER", "Day of that CRP."),
        C("crp_points", "INTEGER", "CRP >= 30 mg/L (3.0 mg/dL) = 1, else 0."),
        C("ferritin", "DOUBLE", "Ferritin (ug/L)."), C("ferritin_day", "INTEGER", "Day of that ferritin."),
        C("ferritin_points", "INTEGER", "Ferritin > 2000 = 2, 650-2000 = 1, < 650 = 0."),
        C("score", "INTEGER", "Sum of the points (0-7); NULL when an input is missing."),
        C("score_known", "INTEGER", "Sum of the points of the inputs present (a lower bound when some are missing)."),
        C("risk", "VARCHAR", "'high' (score >= 2), 'low' (0-1), or 'high (incomplete)' when the known points already reach 2, else 'not assessable'."),
        C("inputs", "VARCHAR", "The inputs in words, e.g. 'ANC 0.9 (day -6): 1; Hb 102 g/L: 0; ...'."),
        C("note", "VARCHAR", "Missing inputs, and results left out for want of a unit."),
    ),
    group="derived",
)


# --- outcomes beyond CRS/ICANS: infections, deaths and NRM, kinetics, TLS, immune reconstitution,
# --- off-tumour watch list, secondary malignancies, dose given, response (safety/derive/outcomes/) ---

INFECTION_EPISODES = Table(
    "infection_episodes",
    "One row per infection episode: an AE in the infections SOC or naming a pathogen, and positive microbiology "
    "(MB) not matched to such an AE within 7 days; classed by safety/data/infection_classes.csv.",
    KEY + SUBJ + (
        C("event_key", "VARCHAR", "adverse_events.event_key for AE episodes; '<usubjid>/MB/<mbseq>' for MB-only episodes."),
        C("source", "VARCHAR", "'AE' or 'MB'."),
        C("term", "VARCHAR", "AE preferred term (else reported term), or the MB organism (the test name, upper case, "
                             "for a result naming none)."),
        C("pathogen_class", "VARCHAR", "bacterial, viral, fungal or other/unspecified."),
        C("pathogen", "VARCHAR", "CMV, EBV, HHV-6, BK virus, respiratory virus, invasive mould, ... ('unspecified' when none)."),
        C("invasive_mould", "BOOLEAN", "Invasive mould infection (aspergillosis, mucormycosis, fusariosis, ...)."),
        C("ctcae_grade", "INTEGER", "AETOXGR of the AE; NULL for MB-only episodes."),
        C("severity", "VARCHAR", "'grade 1-2', 'grade 3-4', 'grade 5' or 'not graded'."),
        C("serious", "BOOLEAN", "AESER = Y."),
        C("fatal", "BOOLEAN", "Grade 5, AEOUT FATAL or AESDTH = Y."),
        C("onset_day", "INTEGER", "Onset day relative to infusion (day 0)."),
        C("onset_date", "DATE", "Onset date (imputed as onset_date_flag says)."),
        C("onset_date_flag", "VARCHAR", "Imputation flag of the onset date as in ADaM: NULL = complete date, 'D' = day, "
                                        "'M' = month and day imputed (a partial AESTDTC or MBDTC), 'Y' = the AE has no "
                                        "start date and its onset is taken as day 0 (its end day when it ended before)."),
        C("end_day", "INTEGER", "End day; NULL when ongoing or MB-only."),
        C("grade3_onset_day", "INTEGER", "Onset day of the episode's first record of grade >= 3 or fatal (a new record "
                                         "for a change of grade); NULL when it has none. The grade >= 3 infection "
                                         "cumulative incidence and the grade >= 3 incidence density count it."),
        C("onset_window", "VARCHAR", "'day 0-30', 'day 31-90', 'day 91-365', 'before day 0' or 'after day 365' (by onset day)."),
        C("grade3_onset_window", "VARCHAR", "The window of grade3_onset_day (labels as onset_window); NULL when it is NULL. "
                                            "The grade >= 3 rows of the incidence density and of the packet count "
                                            "an episode here."),
    ),
    group="derived",
)

INFECTION_INCIDENCE_DENSITY = Table(
    "infection_incidence_density",
    "Infection episodes per 100 patient-days at risk, per window, pathogen class and severity. Days at risk of a "
    "subject in a window: from its first day to the last known alive day (death included), infused subjects only; "
    "for the whole study (dose_level 'all') and for each dose level.",
    KEY + (
        C("dose_level", "VARCHAR", "'all' for the whole study, else the dose level the rows count ('not assigned' "
                                   "for subjects without one)."),
        C("onset_window", "VARCHAR", "'day 0-30', 'day 31-90' or 'day 91-365': episodes counted by onset day."),
        C("window_start", "INTEGER", "First day of the window."),
        C("window_end", "INTEGER", "Last day of the window."),
        C("pathogen_class", "VARCHAR", "'all', bacterial, viral, fungal or other/unspecified."),
        C("severity", "VARCHAR", "'any grade' or 'grade >= 3'."),
        C("episodes", "INTEGER", "Episodes with onset in the window (grade >= 3: whose grade >= 3 record began in it, "
                                 "infection_episodes.grade3_onset_window)."),
        C("subjects_with_episode", "INTEGER", "Subjects with at least one such episode."),
        C("subjects_at_risk", "INTEGER", "Infused subjects followed into the window."),
        C("patient_days", "INTEGER", "Patient-days at risk in the window."),
        C("per_100_patient_days", "DOUBLE", "episodes / patient_days x 100; NULL when no patient-days."),
    ),
    group="derived",
    per_subject=False,
)

INFECTION_SUPPORT = Table(
    "infection_support",
    "IVIG, G-CSF and anti-infective medications (CM) classed by safety/data/infection_support.csv, with "
    "prophylaxis told apart from treatment.",
    KEY + SUBJ + (
        C("cmseq", "INTEGER", "CM sequence number."),
        C("support", "VARCHAR", "IVIG, G-CSF, antiviral, antifungal, anti-Pneumocystis or antibacterial."),
        C("cmtrt", "VARCHAR", "Medication as reported."),
        C("cmindc", "VARCHAR", "Indication."),
        C("prophylaxis", "BOOLEAN", "Indication or category says prophylaxis (or IVIG for hypogammaglobulinaemia)."),
        C("start_day", "INTEGER", "Start day relative to infusion."),
        C("end_day", "INTEGER", "End day; NULL when ongoing."),
    ),
    group="derived",
)

DEATHS = Table(
    "deaths",
    "Every death from DM (DTHDTC), DS (DEATH) and AE (grade 5 / FATAL / AESDTH), one row per subject, with its cause "
    "category from the delivered cause and the fatal AE (safety/data/death_causes.csv) and non-relapse mortality flags. "
    "The treatment-related-death monitored event reads `treatment_related` here.",
    KEY + SUBJ + (
        C("death_date", "DATE", "Date of death: DM/DS, else the fatal AE's end (or start) date; NULL for a death "
                                "recorded without a date (DS DEATH without DSSTDTC, DM DTHFL Y without DTHDTC, a fatal "
                                "AE without AESTDTC or AEENDTC)."),
        C("death_day", "INTEGER", "Day of death relative to infusion (day 0); NULL for subjects never infused and for a "
                                  "death without a date (then the nrm_by_day flags are NULL too)."),
        C("sources", "VARCHAR", "Where the death is recorded: any of 'DM', 'DS', 'AE', comma separated."),
        C("delivered_cause", "VARCHAR", "Cause as delivered (DS DSTERM of the DEATH record, else subjects.death_cause)."),
        C("fatal_ae_key", "VARCHAR", "event_key of the fatal AE (the latest one when several)."),
        C("fatal_ae_term", "VARCHAR", "Preferred term of the fatal AE."),
        C("fatal_ae_related", "BOOLEAN", "The fatal AE is at least possibly related."),
        C("cause_category", "VARCHAR", "progression/relapse, infection, CRS, ICANS, IEC-HS/HLH, haemorrhage, secondary malignancy or other."),
        C("cause_from", "VARCHAR", "'delivered cause' or 'fatal AE': what the category was read from (the delivered cause unless it says only 'other')."),
        C("cause_conflict", "BOOLEAN", "The delivered cause and the fatal AE give different categories."),
        C("progression_day", "INTEGER", "First documented progression/relapse (RS PD, DS PROGRESSIVE DISEASE, progression AE) before death; NULL when none."),
        C("relapse_related", "BOOLEAN", "Death from progression/relapse (cause category), or after documented progression."),
        C("non_relapse", "BOOLEAN", "Non-relapse death: not from progression/relapse and without documented progression before it."),
        C("treatment_related", "BOOLEAN", "Treatment-related death for monitoring: an infused subject's non-relapse death (any source)."),
        C("nrm_by_day28", "BOOLEAN", "Non-relapse death on or before day 28."),
        C("nrm_by_day100", "BOOLEAN", "Non-relapse death on or before day 100."),
        C("nrm_by_day365", "BOOLEAN", "Non-relapse death on or before day 365."),
    ),
    group="derived",
)

NRM_ESTIMATES = Table(
    "nrm_estimates",
    "Non-relapse mortality at days 28, 100 and 365 among infused subjects: crude count and the Aalen-Johansen "
    "cumulative incidence with progression/relapse as competing event (statsmodels CumIncidenceRight).",
    KEY + (
        C("horizon_day", "INTEGER", "28, 100 or 365."),
        C("n_infused", "INTEGER", "Infused subjects (the denominator)."),
        C("nrm_deaths", "INTEGER", "Non-relapse deaths on or before the horizon."),
        C("followed_to_horizon", "INTEGER", "Infused subjects followed to the horizon or dead or progressed before it."),
        C("crude_pct", "DOUBLE", "nrm_deaths / n_infused x 100."),
        C("cumulative_incidence_pct", "DOUBLE", "Aalen-Johansen cumulative incidence of NRM at the horizon, percent."),
        C("n_at_risk", "INTEGER", "Subjects still at risk (alive, not progressed, followed) at the horizon."),
    ),
    group="derived",
    per_subject=False,
)

CELLULAR_KINETICS = Table(
    "cellular_kinetics",
    "Per subject and analyte (PC): Cmax, Tmax, AUC over days 0-28 by the linear trapezoid and the last day the CAR "
    "was detectable, with the values used.",
    KEY + SUBJ + (
        C("pctestcd", "VARCHAR", "Analyte code."),
        C("unit", "VARCHAR", "Unit of the values: the subject's main blood unit for the analyte, a sample in a unit that "
                             "converts to it converted (safety/data/pc_unit_conversions.csv); NULL without a blood sample."),
        C("n_samples", "INTEGER", "Post-infusion samples (day >= 0); 0 without a blood sample (no parameters, "
                                  "values_used says why)."),
        C("cmax", "DOUBLE", "Highest value from day 0 on."),
        C("tmax_day", "INTEGER", "Day of Cmax (the first such day when tied)."),
        C("auc_0_28", "DOUBLE", "Linear trapezoid over samples on days 0-28 (values below the LLOQ count as 0); "
                                "NULL with fewer than two samples there."),
        C("auc_last_day", "INTEGER", "Last sample day inside 0-28 used for the AUC."),
        C("last_detectable_day", "INTEGER", "Last day with a value above the LLOQ (persistence)."),
        C("values_used", "VARCHAR", "'day:value' pairs used, in day order ('BLQ' for values below the LLOQ, '>100000' "
          "for one above the assay's upper limit, then the note that Cmax and the AUC are lower bounds), the samples "
          "converted to the unit and the factor, why the unit was chosen when another had as many samples, and the "
          "samples not used."),
    ),
    group="derived",
)

TLS_SCREEN = Table(
    "tls_screen",
    "Laboratory tumour lysis syndrome by Cairo-Bishop (2004): two or more of the criteria in "
    "safety/data/tls_cairo_bishop.csv met from 3 days before the first lymphodepleting dose (before the infusion "
    "when none is recorded) to 7 days after infusion. One row per infused subject.",
    KEY + SUBJ + (
        C("criteria_met", "INTEGER", "Number of distinct criteria met in the window."),
        C("criteria", "VARCHAR", "The criteria met, with the first day and value, e.g. 'uric acid d2 0.52 (abs)'."),
        C("laboratory_tls", "BOOLEAN", "criteria_met >= 2."),
        C("first_day", "INTEGER", "Day the second criterion was first met; NULL when not laboratory TLS."),
    ),
    group="derived",
)

IMMUNE_RECONSTITUTION = Table(
    "immune_reconstitution",
    "Per subject and monitored marker of study.yaml immune_monitoring (IgG; CD19+ B cells for a B-cell target; "
    "NK cells for an anti-CD56 product): baseline, nadir, first day below the threshold, last value, IVIG.",
    KEY + SUBJ + (
        C("test", "VARCHAR", "LBTESTCD of the marker."),
        C("label", "VARCHAR", "Label from study.yaml."),
        C("threshold", "DOUBLE", "Value below which the finding is present (e.g. IgG < 4 g/L)."),
        C("finding", "VARCHAR", "What below the threshold means, e.g. 'hypogammaglobulinaemia', 'B-cell aplasia'."),
        C("n_values", "INTEGER", f"Post-infusion values (day >= {POST_INFUSION_FIRST_DAY})."),
        C("baseline_value", "DOUBLE", "Last value on or before day 0."),
        C("nadir", "DOUBLE", f"Lowest value from day {POST_INFUSION_FIRST_DAY} on (a censored '<10' lies below 10; "
          "the bound as loaded)."),
        C("nadir_day", "INTEGER", "Day of the nadir."),
        C("first_below_day", "INTEGER", f"First day from day {POST_INFUSION_FIRST_DAY} with a value below the threshold "
          "(a result censored at or below it, '<10' against 10, is below it)."),
        C("last_value", "DOUBLE", "Latest value."),
        C("last_day", "INTEGER", "Day of the latest value."),
        C("below_at_last", "BOOLEAN", "The latest value is below the threshold."),
        C("ivig_doses", "INTEGER", "IVIG administrations (CM) from day 0 on."),
        C("first_ivig_day", "INTEGER", "First IVIG day from day 0 on."),
    ),
    group="derived",
)

OFF_TUMOUR_EVENTS = Table(
    "off_tumour_events",
    "AEs on the product's on-target, off-tumour watch list (study.yaml off_tumour_watch), e.g. peripheral neuropathy "
    "and delayed neurological AEs outside ICANS for an anti-CD56 product.",
    KEY + SUBJ + (
        C("event_key", "VARCHAR", "adverse_events.event_key."),
        C("watch_label", "VARCHAR", "The watch list's label."),
        C("term", "VARCHAR", "Preferred term (else reported term)."),
        C("aebodsys", "VARCHAR", "System organ class."),
        C("ctcae_grade", "INTEGER", "AETOXGR."),
        C("onset_day", "INTEGER", "Onset day relative to infusion."),
        C("late_onset", "BOOLEAN", "Onset after off_tumour_watch.late_after_day (day 30 by default)."),
        C("related", "BOOLEAN", "At least possibly related."),
        C("ongoing", "BOOLEAN", "Not resolved at the cut."),
    ),
    group="derived",
)

SECONDARY_MALIGNANCIES = Table(
    "secondary_malignancies",
    "New malignancies after infusion (AE terms naming a neoplasm, and MH malignancies starting after infusion; no "
    "follow-up limit), with latency, T-cell "
    "malignancies marked and the CAR-transgene test result where delivered (SUPPAE CARTGRES / CARTEST).",
    KEY + SUBJ + (
        C("event_key", "VARCHAR", "adverse_events.event_key; '<usubjid>/MH/<mhseq>' for a medical-history record."),
        C("term", "VARCHAR", "Preferred term (else reported term)."),
        C("onset_day", "INTEGER", "Onset day relative to infusion."),
        C("latency_days", "INTEGER", "Days from infusion to onset (= onset_day)."),
        C("latency_months", "DOUBLE", "latency_days / 30.4375, one decimal."),
        C("t_cell_malignancy", "BOOLEAN", "A T-cell lymphoma or leukaemia (FDA boxed warning, January 2024)."),
        C("car_transgene_result", "VARCHAR", "CAR transgene in the tumour as delivered (POSITIVE, NEGATIVE, PENDING); NULL when not delivered."),
        C("ctcae_grade", "INTEGER", "AETOXGR."),
        C("fatal", "BOOLEAN", "Fatal outcome."),
        C("source", "VARCHAR", "'AE', or 'MH' for a malignancy reported as medical history with a start after infusion."),
        C("possible_relapse", "BOOLEAN", "A T-cell malignancy naming the subject's T-cell disease under study whose "
                                         "tumour was not found CAR-transgene positive (not tested, or pending): "
                                         "relapse cannot be told from a new T-cell malignancy; listed for review."),
    ),
    group="derived",
)

DOSE_DELIVERED = Table(
    "dose_delivered",
    "Planned versus actual cell dose per enrolled subject, and why enrolled subjects were never infused, so that every "
    "denominator can be read.",
    KEY + SUBJ + (
        C("dose_level", "VARCHAR", "Assigned dose level."),
        C("planned_dose", "DOUBLE", "Planned dose of the level (study.yaml planned_doses); NULL when not set."),
        C("actual_dose", "DOUBLE", "Sum of EXDOSE over the CAR infusions."),
        C("dose_unit", "VARCHAR", "EXDOSU of the infusion."),
        C("pct_of_planned", "DOUBLE", "actual / planned x 100."),
        C("infusions", "INTEGER", "CAR infusions received."),
        C("infused", "BOOLEAN", "Received at least one CAR infusion."),
        C("not_infused_reason", "VARCHAR", "For subjects never infused: the DS term (e.g. WITHDRAWAL BY SUBJECT, DEATH), else 'not recorded'."),
    ),
    group="derived",
)

RESPONSE_OUTCOMES = Table(
    "response_outcomes",
    "Per infused subject: best overall response under the study's criteria (study.yaml response), first response, "
    "progression, duration of response and progression/relapse-free survival from the first response.",
    KEY + SUBJ + (
        C("criteria", "VARCHAR", "Response criteria that apply (e.g. 'Lugano 2014'), from study.yaml."),
        C("responders_definition", "VARCHAR", "Responses counted, e.g. 'CR + PR'."),
        C("counted_responses", "VARCHAR[]", "The standardised RS responses counted for this subject, e.g. ['CR', 'PR']."),
        C("best_response", "VARCHAR", "Best overall response before progression, ranked by the published criteria (safety/data/response_criteria.csv: e.g. sCR > CR > VGPR > PR > MR > SD > PD for IMWG 2016, CR > CRh > CRi > MLFS > PR > NR > relapse for ELN 2022; NE last), the code as the criteria write it (sCR, CRi, CRh); other texts as delivered (the study's progression codes ranked with PD, others with NE); 'not assessed' when none."),
        C("responder", "BOOLEAN", "best_response is one of the counted responses."),
        C("first_response_day", "INTEGER", "First assessment with a counted response."),
        C("progression_day", "INTEGER", "First progression/relapse after the first response (RS, else DS PROGRESSIVE DISEASE)."),
        C("first_progression_day", "INTEGER", "First progression/relapse on day 0 or later (RS overall response, DS PROGRESSIVE DISEASE or an AE progression term): no response from this day on is counted."),
        C("death_day", "INTEGER", "Day of death, if any."),
        C("last_assessment_day", "INTEGER", "Last response assessment (censoring for duration of response)."),
        C("dor_days", "INTEGER", "Duration of response: first response to progression or death, else to the last assessment (censored)."),
        C("dor_event", "BOOLEAN", "dor_days ends in progression or death (false = censored)."),
        C("pfs_from_response_days", "INTEGER", "DFS/PFS from the first response: to progression, relapse or death, else to last known alive."),
        C("pfs_event", "BOOLEAN", "pfs_from_response_days ends in an event."),
    ),
    group="derived",
)

OUTCOME_TABLES = (INFECTION_EPISODES, INFECTION_INCIDENCE_DENSITY, INFECTION_SUPPORT, DEATHS, NRM_ESTIMATES,
                  CELLULAR_KINETICS, TLS_SCREEN, IMMUNE_RECONSTITUTION, OFF_TUMOUR_EVENTS, SECONDARY_MALIGNANCIES,
                  DOSE_DELIVERED, RESPONSE_OUTCOMES)


# --- sponsor kinetics (PP) beside celltox's, and prior malignancies from medical history (MH) ------------

KINETICS_COMPARISON = Table(
    "kinetics_comparison",
    "The sponsor's kinetic parameters (PP: Cmax, Tmax, AUC days 0-28) beside celltox's own from PC "
    "(cellular_kinetics), with the difference and a flag where they disagree beyond the tolerance of "
    "safety/data/pp_parameters.csv.",
    KEY + SUBJ + (
        C("analyte", "VARCHAR", "PCTESTCD the parameter belongs to (from PPCAT); PPCAT itself when no PC analyte matches."),
        C("ppseq", "INTEGER", "PPSEQ of the sponsor's row."),
        C("pptestcd", "VARCHAR", "Sponsor's parameter code, e.g. CMAX, TMAX, AUCINT."),
        C("parameter", "VARCHAR", "celltox column compared: cmax, tmax_day or auc_0_28."),
        C("sponsor_value", "DOUBLE", "Value as delivered (PP), in the sponsor's unit."),
        C("sponsor_unit", "VARCHAR", "Sponsor's unit."),
        C("celltox_value", "DOUBLE", "celltox's value from PC (cellular_kinetics)."),
        C("celltox_unit", "VARCHAR", "celltox's unit (PC's unit; day for Tmax; day* the unit for the AUC)."),
        C("difference", "DOUBLE", "Sponsor minus celltox, the sponsor's Tmax converted to days; NULL when units differ."),
        C("difference_pct", "DOUBLE", "difference / celltox value x 100, one decimal."),
        C("tolerance", "VARCHAR", "The tolerance applied, e.g. '5%' or '1 day'."),
        C("status", "VARCHAR", "'agree', 'differs' (beyond the tolerance), 'unit differs', 'not derived by celltox', "
                               "'not calculable by the sponsor', 'analyte not in PC', 'time unit not recognised' or "
                               "'specimen not blood' (a PPSPEC bone-marrow parameter: celltox's are of blood, so "
                               "celltox_value is empty)."),
        C("note", "VARCHAR", "How the sponsor's value was converted to celltox's unit before comparing, e.g. "
                             "'converted from cells/mL to cells/uL (x0.001)' (safety/data/pc_unit_conversions.csv); "
                             "NULL when it is in that unit."),
    ),
    group="derived",
)

PRIOR_MALIGNANCIES = Table(
    "prior_malignancies",
    "Malignancies in medical history (MH) that started on or before the day of infusion: prior history, not counted "
    "as new malignancies, shown as context beside secondary_malignancies.",
    KEY + SUBJ + (
        C("mhseq", "INTEGER", "MHSEQ."),
        C("term", "VARCHAR", "MH dictionary term (else reported term)."),
        C("mhcat", "VARCHAR", "MH category, e.g. PRIMARY DIAGNOSIS."),
        C("start_date", "DATE", "Start (partial dates imputed, see Dates)."),
        C("start_day", "INTEGER", "Start day relative to infusion (<= 0; NULL when not dated)."),
        C("ongoing", "BOOLEAN", "No end date, or MHENRTPT ONGOING."),
        C("t_cell_malignancy", "BOOLEAN", "A T-cell lymphoma or leukaemia."),
    ),
    group="derived",
)

PP_MH_TABLES = (KINETICS_COMPARISON, PRIOR_MALIGNANCIES)

"""The events DLT screening and adjudication talk about: the fatal AE (defined in safety.core.vocabulary), whether an
event lies in the DLT window, and the event fingerprint.

The fingerprint is stored with a committee decision; when a reload changes the event (grade, dates), the
fingerprint differs and the decision is flagged for re-review. Candidates (screening) and decisions
(adjudication) compute it with this one function, so the two always agree.
"""
from __future__ import annotations

from safety.core.vocabulary import ae_term_sql, fatal_ae

# An AE that ended in a death known at the cut (fatal_ae), as DLT screening and evaluability write it
FATAL_AE = fatal_ae("a")

# dlt_candidates.source of a CRS / ICANS episode
SOURCE_LABEL = {"CRS": "CRS episode", "ICANS": "ICANS episode"}


def death_event_key_sql(usubjid: str) -> str:
    """SQL: the DLT event key of a subject's death, ``<usubjid>/DEATH``."""
    return f"{usubjid} || '/DEATH'"


# dlt_candidates.source of a death screened or decided as ``<usubjid>/DEATH``
DEATH_SOURCE = "death"


def death_events_sql(subjects: str) -> str:
    """SELECT of the deaths a DLT review screens and decides, one per subject who died at a known day or, infused,
    on a day not recorded (DM DTHFL Y without DTHDTC, a DS death without DSSTDTC, a fatal AE without dates), from
    ``subjects`` (a relation with the columns of subjects): the key ``<usubjid>/DEATH``, term 'Death', onset and end
    on the day of death (blank when not recorded), grade 5, one day, not ongoing; with death_day, death_cause,
    infused and last_known_alive_day for the rules and the evidence. Screening and the decisions read this one
    definition, so a decided death's fingerprint is its candidate's."""
    return (f"SELECT usubjid, death_day, death_cause, infused, last_known_alive_day, "
            f"{death_event_key_sql('usubjid')} AS event_key, "
            "'Death' AS term, death_day AS onset_day, death_day AS end_day, 5 AS grade, 1 AS duration_days, "
            f"false AS ongoing FROM {subjects} "
            "WHERE death_day IS NOT NULL OR (coalesce(infused, false) AND death_source IS NOT NULL)")


def death_day_text_sql(death_day: str, last_known_alive_day: str) -> str:
    """SQL: the day of a death as the DLT review words it: 'day 9', or for a death of unknown day 'a day not
    recorded (known alive on day 3)' (the death evidence and the evaluability reason alike)."""
    return (f"CASE WHEN {death_day} IS NOT NULL THEN 'day ' || CAST({death_day} AS VARCHAR) "
            f"ELSE 'a day not recorded (known alive on day ' || coalesce(CAST({last_known_alive_day} AS VARCHAR), '?') "
            "|| ')' END")


def death_in_window_sql(death_day: str, last_known_alive_day: str) -> str:
    """SQL: a death lies in the DLT window ($win_start..$win_end): its day is in it, or its day is not recorded and
    the subject was not known alive after the window's last day (the death cannot be earlier than the last day known
    alive, and may be any day after it): a death is never left out of the window for want of a date."""
    return (f"coalesce({death_day} BETWEEN $win_start AND $win_end "
            f"OR ({death_day} IS NULL AND coalesce({last_known_alive_day} <= $win_end, true)), false)")


# a CRS/ICANS episode as a DLT event: its last day and its grade, in screening and in the decisions alike
EPISODE_END_DAY = "onset_day + duration_days - 1"
EPISODE_GRADE = "max_grade"


def lab_event_key_sql(usubjid: str, test: str, from_day: str) -> str:
    """SQL: the key of a persisting-cytopenia event, ``<usubjid>/LB/<test>-D<from_day>`` (read back by
    :data:`LAB_EVENT_KEY`)."""
    return f"{usubjid} || '/LB/' || {test} || '-D' || CAST({from_day} AS VARCHAR)"


# the test and the day of a key made by lab_event_key_sql (a regular expression, groups 1 and 2)
LAB_EVENT_KEY = r"/LB/(.+)-D(-?[0-9]+)$"


def death_evidence_sql(subject: str) -> str:
    """SQL: the evidence of a death screened as ``<usubjid>/DEATH`` (``subject``: an alias of a subjects row)."""
    return (f"'Death on ' || {death_day_text_sql(f'{subject}.death_day', f'{subject}.last_known_alive_day')} "
            f"|| ' (cause: ' || coalesce({subject}.death_cause, 'not recorded') || ')'")


def lab_evidence_sql(test: str, grade: str, day: str, from_day: str) -> str:
    """SQL: the evidence of a persisting-cytopenia event, the first graded lab of ``test`` on or after ``from_day``."""
    return (f"{test} || ' grade ' || CAST({grade} AS VARCHAR) || ' on day ' || CAST({day} AS VARCHAR) "
            f"|| ' (first lab on or after day ' || CAST({from_day} AS VARCHAR) || ')'")


def in_window_sql(onset: str, latest_onset: str, infused: str, before_dosing: str = "false") -> str:
    """SQL: the event lies in the DLT window ($win_start..$win_end). With its onset unknown (no AESTDTC), it counts
    as in the window unless the latest day it can have begun (``latest_onset``: its end, else the death, else the
    last day known alive) is before the window: missing start dates are included conservatively (FDA Standard
    Safety Tables), so a death or a toxicity is never left unscreened for want of a start date. An event over before
    the infusion (``before_dosing``: adverse_events.ended_before_infusion) is not in a window that starts at dosing
    (day 0): the observation starts when the cells are given."""
    return (f"CASE WHEN coalesce({before_dosing}, false) AND $win_start >= 0 THEN false "
            f"WHEN {onset} IS NOT NULL THEN {onset} BETWEEN $win_start AND $win_end "
            f"ELSE coalesce({latest_onset} >= $win_start, coalesce({infused}, false)) END")


def event_in_window_sql(event: str, subject: str) -> str:
    """SQL: the DLT event ``event`` (an alias with source, onset_day, end_day, ended_before_infusion) of the subject
    ``subject`` (an alias of a subjects row) lies in the DLT window: a death by :func:`death_in_window_sql`, any other
    event by :func:`in_window_sql` (an unknown onset by the latest day it can have begun). Screening and the
    decisions on events no longer screened use this one rule."""
    return (f"CASE WHEN {event}.source = '{DEATH_SOURCE}' "
            f"THEN {death_in_window_sql(f'{event}.onset_day', f'{subject}.last_known_alive_day')} "
            f"ELSE {in_window_sql(f'{event}.onset_day', latest_onset_sql(f'{event}.end_day', subject), f'{subject}.infused', f'{event}.ended_before_infusion')} END")


def latest_onset_sql(end: str, subject: str) -> str:
    """SQL: the latest day an event of unknown onset can have begun: its end, else the subject's death, else the
    last day the subject was known alive (``subject`` is an alias of a subjects row)."""
    return f"coalesce({end}, {subject}.death_day, {subject}.last_known_alive_day)"


def fingerprint_sql(alias: str, grade="grade", onset="onset_day", end="end_day", duration="duration_days",
                    ongoing="ongoing", term: str | None = None) -> str:
    """SQL text of the event fingerprint (grade|onset|end|duration|TERM; 'ongoing' while ongoing, so an ongoing
    event's growing duration alone does not trigger re-review). The term (upper case, ``term``: an SQL expression,
    by default the alias's ``term`` column) is part of it because a key can pass to another event: a corrected
    delivery that drops an AE and numbers the rest again gives AESEQ 2 to what was AESEQ 3."""
    a = alias + "."
    term_sql = term if term is not None else f"{a}term"
    return (f"concat(coalesce(CAST({a}{grade} AS VARCHAR), ''), '|', coalesce(CAST({a}{onset} AS VARCHAR), ''), '|', "
            f"CASE WHEN coalesce({a}{ongoing}, false) THEN 'ongoing' ELSE coalesce(CAST({a}{end} AS VARCHAR), '') END, '|', "
            f"CASE WHEN coalesce({a}{ongoing}, false) THEN 'ongoing' ELSE coalesce(CAST({a}{duration} AS VARCHAR), '') END, '|', "
            f"upper(trim(replace(coalesce(CAST({term_sql} AS VARCHAR), ''), '|', '/'))))")


def same_event_sql(decided: str, current: str) -> str:
    """SQL: the fingerprint stored with a decision (``decided``) is the event's ``current`` one. A fingerprint stored
    before the term was part of it (four fields) is compared with the current one's first four."""
    return (f"CASE WHEN length({decided}) - length(replace({decided}, '|', '')) = 3 "
            f"THEN {decided} IS NOT DISTINCT FROM regexp_replace({current}, '\\|[^|]*$', '') "
            f"ELSE {decided} IS NOT DISTINCT FROM {current} END")


def ae_fingerprint_sql(alias: str) -> str:
    """Fingerprint of an adverse_events row: the same text a candidate screened from that AE carries."""
    return fingerprint_sql(alias, grade="aetoxgr", term=ae_term_sql(alias))

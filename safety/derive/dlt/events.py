"""The events DLT screening and adjudication talk about: what makes an AE fatal, and the event fingerprint.

The fingerprint is stored with a committee decision; when a reload changes the event (grade, dates), the
fingerprint differs and the decision is flagged for re-review. Candidates (screening) and decisions
(adjudication) compute it with this one function, so the two always agree.
"""
from __future__ import annotations


def fatal_ae(alias: str) -> str:
    """SQL: the adverse_events row ``alias`` ended in a death known at the cut. Grade 5, a fatal outcome or the
    results-in-death flag, with the death dated or recorded: an end date (the load keeps only ends on or before
    the cut), or the fatal outcome or flag, which the load withholds when the AE ended after the cut or has no end
    and no death is recorded in DM or DS. A grade 5 alone, with no end, outcome or flag, reads as such an AE and is
    no death at the cut (counting it dated a death after the cut at the AE's start, before the cut)."""
    a = f"{alias}." if alias else ""
    fatal_record = f"upper(coalesce({a}aeout, '')) = 'FATAL' OR upper(coalesce({a}aesdth, '')) = 'Y'"
    return f"(({a}aetoxgr = 5 OR {fatal_record}) AND ({a}aeen_date IS NOT NULL OR {fatal_record}))"


# An AE that ended in a death known at the cut (fatal_ae), as DLT screening and evaluability write it
FATAL_AE = fatal_ae("a")


def fingerprint_sql(alias: str, grade="grade", onset="onset_day", end="end_day", duration="duration_days",
                    ongoing="ongoing") -> str:
    """SQL text of the event fingerprint (grade|onset|end|duration; 'ongoing' while ongoing, so an ongoing
    event's growing duration alone does not trigger re-review)."""
    a = alias + "."
    return (f"concat(coalesce(CAST({a}{grade} AS VARCHAR), ''), '|', coalesce(CAST({a}{onset} AS VARCHAR), ''), '|', "
            f"CASE WHEN coalesce({a}{ongoing}, false) THEN 'ongoing' ELSE coalesce(CAST({a}{end} AS VARCHAR), '') END, '|', "
            f"CASE WHEN coalesce({a}{ongoing}, false) THEN 'ongoing' ELSE coalesce(CAST({a}{duration} AS VARCHAR), '') END)")


def ae_fingerprint_sql(alias: str) -> str:
    """Fingerprint of an adverse_events row: the same text a candidate screened from that AE carries."""
    return fingerprint_sql(alias, grade="aetoxgr")

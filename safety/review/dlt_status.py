"""The committee's DLT facts as the review store stands now: one function every page and export calls.

:func:`dlt_status` applies the decisions in force (the review store, read at the moment of the call) to the
derivation stored at load (``dlt_candidates``, ``dlt_evaluability``) and the study's stopping rule, and
returns a :class:`DltStatus`: the review rows with their status and "adjudicated DLT" label, the live
evaluability, the live stopping and escalation rows with their sentences, and the counts. The overview, DLT
review, swimmer and subject pages and every packet format read these, so a decision recorded a second ago
shows the same everywhere. The stored ``stopping_rule_status`` table keeps the state at load time only; it
is never shown as current.

It lives in ``review/`` rather than ``derive/``: derivations run at load and never see a decision made
afterwards; this is where the stored derivation meets the store of decisions people make.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from safety.core.config import dlt_window, stored_config
from safety.core.vocabulary import NO_COHORT
from safety.derive.dlt.decisions import review_table
from safety.derive.dlt.evaluability import COUNTED_ON_DECISION, NOT_IN_CUT, live_evaluability
from safety.derive.dlt.stopping import status_rows
from safety.review.store import ReviewStore

# The listing label of a review row ("Adjudicated DLT" column in the DLT listing and the subject profile).
ADJUDICATED_YES, ADJUDICATED_NO, ADJUDICATED_PENDING = "Yes", "No", "Pending"
ADJUDICATED_NOT_IN_WINDOW = "Not adjudicated (outside DLT window)"


@dataclass(frozen=True)
class DltCounts:
    """Counts the overview, DLT review and the packet's DLT summary all print (subjects unless named events)."""
    subjects: int               # subjects at the cut (in the selection)
    infused: int                # infused at the cut, and those counted on a DLT decision alone (next line)
    counted_on_decision: int    # of ``infused``: not in the cut or not infused in it, counted for a DLT decision in
                                # force (docs/dlt.md); the overview's Infused and the packet's DLT summary count them
    evaluable: int              # DLT-evaluable now (decisions applied)
    candidates: int             # screened candidate events
    candidates_in_window: int   # screened candidate events with onset in the DLT window
    candidates_out_of_window: int
    confirmed_events: int       # events counted as a DLT (confirmed or added)
    confirmed_subjects: int     # subjects with at least one such event
    pending: int                # in-window candidate events awaiting a decision (incl. withdrawn, rejected+re-review)
    pending_subjects: int
    rejected: int               # events rejected, decision still valid
    withdrawn: int              # events whose decision was withdrawn (pending again when in the window)
    needs_rereview: int         # decisions whose event changed or left the screening since


@dataclass(frozen=True)
class DltStatus:
    """The DLT state of one study and cut with the decisions in force now.

    ``review``: one row per screened candidate or adjudicated event (columns of
    :data:`safety.derive.dlt.decisions.REVIEW_COLUMNS` plus ``adjudicated_dlt``), pending first.
    ``evaluability``: one row per subject (``dlt_evaluability`` columns, decisions applied now).
    ``stopping``: ``stopping_rule_status`` columns computed now (``computed_from`` says on what), or an
    empty frame for a site-scoped reader (stopping rules are study-wide). ``counts``: :class:`DltCounts`.
    """
    studyid: str
    data_cut: dt.date
    window: tuple[int, int]
    review: pd.DataFrame
    evaluability: pd.DataFrame
    stopping: pd.DataFrame
    counts: DltCounts
    study_wide: bool

    def for_subjects(self, usubjids) -> "DltStatus":
        """The same state limited to some subjects (a page's cohort filter); the stopping rows stay study-wide."""
        keep = set(usubjids)
        review = self.review[self.review["usubjid"].isin(keep)].reset_index(drop=True)
        ev = self.evaluability[self.evaluability["usubjid"].isin(keep)].reset_index(drop=True)
        return replace(self, review=review, evaluability=ev, counts=_counts(review, ev, _present(ev)))

    def counted_on_decision(self) -> pd.DataFrame:
        """The evaluability rows of the subjects counted as infused on a committee DLT decision alone (not in the
        cut, or no infusion in it: ``follow_up_status`` says which), by subject; a cohort not given reads
        :data:`NO_COHORT`, as the committee tables name it."""
        rows = self.evaluability[_on_decision(self.evaluability)].reset_index(drop=True)
        return rows.assign(cohort=[c if isinstance(c, str) else NO_COHORT for c in rows["cohort"]])

    def sentences(self) -> list[str]:
        """The stopping and escalation sentences, study row first, as a committee reads them now."""
        if self.stopping.empty:
            return []
        return [str(s) for s in self.stopping["sentence"]]

    def adjudicated_dlt(self) -> dict[str, str]:
        """event_key -> the listing's "Adjudicated DLT" label (Yes / No / Pending / not adjudicated)."""
        # through numpy: iterating Arrow-backed string columns element by element costs seconds at 100k rows
        return dict(zip(self.review["event_key"].to_numpy(dtype=object),
                        self.review["adjudicated_dlt"].to_numpy(dtype=object)))


# every AE the site reported a CRS/ICANS episode as, with the episodes' keys (toxicity_episodes.ae_event_key): the
# relation the listings and the overview read to treat the AE and its episode as one clinical event
REPORTED_AS_SQL = ("SELECT ae_event_key, list(event_key ORDER BY event_key) AS episodes FROM toxicity_episodes "
                   "WHERE ae_event_key IS NOT NULL GROUP BY ae_event_key")


def on_reported_aes(labels: dict[str, str], reported_as: dict[str, list[str]],
                    order: tuple[str, ...] = (ADJUDICATED_YES, ADJUDICATED_PENDING, ADJUDICATED_NO,
                                              ADJUDICATED_NOT_IN_WINDOW)) -> dict[str, str]:
    """``labels`` (event key -> DLT label) with each CRS/ICANS episode's label also on the AE the site reported it
    as (``reported_as``: AE key -> its episodes' keys, from ``toxicity_episodes.ae_event_key``), where the AE has
    no label of its own: a confirmed CRS episode is a DLT on the CRS AE's row of a listing too. Of two episodes
    one AE reports, the label first in ``order`` (the listing's: Yes, Pending, No, not adjudicated)."""
    rank = {x: i for i, x in enumerate(order)}
    out = dict(labels)
    for ae_key, episodes in reported_as.items():
        if ae_key in labels:
            continue
        found = sorted((labels[e] for e in episodes if e in labels), key=lambda x: rank.get(x, len(rank)))
        if found:
            out[ae_key] = found[0]
    return out


def adjudicated_labels(review: pd.DataFrame) -> pd.Series:
    """The listing label of every review row at once: Yes (counted as DLT), No (rejected), Pending, or not
    adjudicated (outside the DLT window); else the row's ``status``. The first rule that holds wins."""
    if not len(review):
        return pd.Series([], index=review.index, dtype=object)
    dlt, pending = _flag(review, "counts_as_dlt"), _flag(review, "pending")
    rejected = (review["decision"] == "rejected").fillna(False).astype(bool)
    out_of_window = _flag(review, "screened") & ~_flag(review, "in_window")
    # counts_as_dlt first: still counted while a changed event awaits re-review (``status`` says so)
    label = np.select([dlt, pending, rejected, out_of_window],
                      [ADJUDICATED_YES, ADJUDICATED_PENDING, ADJUDICATED_NO, ADJUDICATED_NOT_IN_WINDOW],
                      default=None)
    return pd.Series(np.where(pd.isna(label), review["status"].astype(str), label), index=review.index, dtype="str")


def adjudicated_label(row) -> str:
    """What one review row means for a listing (:func:`adjudicated_labels` of a one-row frame)."""
    cols = ["counts_as_dlt", "pending", "decision", "screened", "in_window", "status"]
    return str(adjudicated_labels(pd.DataFrame([{c: row[c] for c in cols}])).iat[0])


def _flag(df: pd.DataFrame, col: str) -> pd.Series:
    return df[col].fillna(False).astype(bool) if len(df) else pd.Series(dtype=bool)


def _on_decision(ev: pd.DataFrame) -> pd.Series:
    """Rows counted as infused on a committee DLT decision alone (:data:`COUNTED_ON_DECISION`)."""
    if not len(ev):
        return pd.Series([], index=ev.index, dtype=bool)
    return _flag(ev, "infused") & ev["follow_up_status"].isin(COUNTED_ON_DECISION).fillna(False).astype(bool)


def _present(ev: pd.DataFrame) -> int:
    """Subjects in the cut (a decided subject gone from the cut has an evaluability row but is not one)."""
    return int((ev["follow_up_status"] != NOT_IN_CUT).sum()) if len(ev) else 0


def _counts(review: pd.DataFrame, ev: pd.DataFrame, subjects: int) -> DltCounts:
    screened = _flag(review, "screened")
    in_win = _flag(review, "in_window")
    dlt = _flag(review, "counts_as_dlt")
    pend = _flag(review, "pending")
    rer = _flag(review, "needs_rereview")
    dec = review["decision"] if len(review) else pd.Series(dtype=object)
    return DltCounts(
        subjects=int(subjects),
        infused=int(_flag(ev, "infused").sum()),
        counted_on_decision=int(_on_decision(ev).sum()),
        evaluable=int(_flag(ev, "evaluable").sum()),
        candidates=int(screened.sum()),
        candidates_in_window=int((screened & in_win).sum()),
        candidates_out_of_window=int((screened & ~in_win).sum()),
        confirmed_events=int(dlt.sum()),
        confirmed_subjects=int(review.loc[dlt, "usubjid"].nunique()) if len(review) else 0,
        pending=int(pend.sum()),
        pending_subjects=int(review.loc[pend, "usubjid"].nunique()) if len(review) else 0,
        rejected=int(((dec == "rejected") & ~rer).sum()),
        withdrawn=int((dec == "withdrawn").sum()),
        needs_rereview=int(rer.sum()),
    )


def counted_on_decision_note(status: DltStatus) -> str | None:
    """The sentence the overview, the DLT review and the packet's DLT summary print under their counts when some
    subjects are counted as infused on a committee DLT decision alone (:meth:`DltStatus.counted_on_decision`), naming
    them and why; None when there are none."""
    rows = status.counted_on_decision()
    if rows.empty:
        return None
    names = ", ".join(f"{u} ({why})" for u, why in zip(rows["usubjid"].astype(str), rows["follow_up_status"]))
    return (f"{len(rows)} subject{'' if len(rows) == 1 else 's'} counted as infused and DLT-evaluable on a committee "
            f"DLT decision in force: {names}. The DLT stays counted, here and in the stopping rules, until the "
            "committee decides again (re-review it on the DLT review page).")


def counted_on_decision_by_cohort(status: DltStatus | None) -> dict[str, tuple[int, int]]:
    """Per cohort (the evaluability row's, :data:`NO_COHORT` when it has none): (subjects not in the cut at all, subjects)
    counted as infused on a committee DLT decision alone: what the overview's Screened and Infused tiles and the
    packet's disposition table add to the cut's own subjects, so that they count the subjects the DLT figures
    count. Empty without a status."""
    out: dict[str, tuple[int, int]] = {}
    if status is None:
        return out
    rows = status.counted_on_decision()
    for cohort, why in zip(rows["cohort"], rows["follow_up_status"]):
        gone, n = out.get(cohort, (0, 0))
        out[cohort] = (gone + int(why == NOT_IN_CUT), n + 1)
    return out


def dlt_status(reader, store: ReviewStore | None, config: dict | None = None) -> DltStatus:
    """The DLT state of the reader's study and cut with the decisions in ``store`` as they are now.

    ``config`` is the study.yaml the cut was loaded with (read from the database when not given). Without a
    store nothing is adjudicated: every in-window candidate is pending and the stopping rows say they are
    computed from screened candidates.
    """
    cfg = config if config is not None else stored_config(reader.scalar("SELECT config_json FROM studies LIMIT 1"))
    review = review_table(reader, store, cfg)
    review["adjudicated_dlt"] = adjudicated_labels(review) if len(review) else []
    ev = live_evaluability(reader, store, cfg)
    study_wide = reader.scope.all_sites
    if study_wide:
        stopping = status_rows(ev, cfg, reader.scope.studyid, reader.scope.data_cut, adjudicated=store is not None)
    else:
        stopping = status_rows(ev.iloc[0:0], cfg, reader.scope.studyid, reader.scope.data_cut,
                               adjudicated=store is not None).iloc[0:0]
    return DltStatus(studyid=reader.scope.studyid, data_cut=reader.scope.data_cut,
                     window=dlt_window(cfg), review=review, evaluability=ev,
                     stopping=stopping, counts=_counts(review, ev, _present(ev)), study_wide=study_wide)


def live_stopping_status(reader, store: ReviewStore | None, config: dict) -> pd.DataFrame:
    """stopping_rule_status rows recomputed now from the decisions in force (study-wide readers only)."""
    if not reader.scope.all_sites:
        raise PermissionError("stopping rules are study-wide: a site-scoped reader cannot compute them")
    return dlt_status(reader, store, config).stopping

"""The committee meeting summary: the five questions the overview answers on its first screen.

1. Is any stopping or escalation boundary crossed, or about to be, counting pending candidates as events?
2. Which subjects have new or pending DLT candidates?
3. Who died since the last data cut, and of what?
4. Who had grade >= 3 CRS, ICANS or infection since the last data cut?
5. What is new since the last signed-off cut, by severity, with counts?

Everything reads through a :class:`StudyReader` (site scope enforced there) and the review store. The
decisions in force come from :func:`committee_status`, the one place the overview asks for them, so a
later domain function for committee decisions replaces it there alone.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pandas as pd

from safety.access.reader import StudyReader
from safety.derive.dlt.decisions import in_previous_review
from safety.derive.dlt.stopping import event_label
from safety.review import changes as review_changes
from safety.review.dlt_status import REPORTED_AS_SQL, DltStatus, dlt_status

# A rule box's colour (docs/dashboard.md "Status colours").
CROSSED, NEAR, INSIDE = "crossed", "near", "inside"
CROSSING_DECISIONS = ("stop", "eliminate", "de-escalate")

# Sort order of "what is new": the higher the rank, the nearer the top.
NEW_KIND_RANK = {"death": 50, "dlt_candidate": 40}


@dataclass(frozen=True)
class CommitteeStatus:
    """The decisions in force now: live stopping rows and the DLT review table (candidates + decisions)."""
    rules: pd.DataFrame  # stopping_rule_status columns; empty when site-scoped (rules are study-wide)
    candidates: pd.DataFrame  # DltStatus.review columns (event_key, usubjid, term, grade, decision, pending ...)
    window: tuple[int, int] | None = None  # the study's DLT window (start_day, end_day) the rules count events in


def committee_status(reader: StudyReader, store, config: dict | None,
                     status: DltStatus | None = None) -> CommitteeStatus:
    """Stopping status and DLT candidates with the committee's decisions in force now
    (:func:`safety.review.dlt_status.dlt_status`, the same numbers every page and the packet print; pass
    ``status`` when the caller already holds it for this reader and store)."""
    status = status if status is not None else dlt_status(reader, store, config)
    rules = status.stopping if reader.scope.all_sites else pd.DataFrame()
    return CommitteeStatus(rules=rules, candidates=status.review, window=status.window)


def _int_or_none(v):
    return None if v is None or pd.isna(v) else int(v)


def _worst_decision(row) -> str:
    """The rule's decision with every pending in-window candidate confirmed (computed by the rule itself)."""
    alt = row.get("decision_if_pending_confirmed")
    return str(row.get("decision") if alt is None or pd.isna(alt) else alt).lower()


def rule_level(row) -> str:
    """'crossed' when the rule's decision crosses a boundary, or would with every pending candidate confirmed
    (``decision_if_pending_confirmed``); 'near' when the pending candidates would change the decision
    (``pending_changes_decision``) or one more event would cross; 'inside' otherwise."""
    decision = str(row.get("decision") or "").lower()
    events = _int_or_none(row.get("events")) or 0
    bound = _int_or_none(row.get("boundary_events"))
    needed = _int_or_none(row.get("events_needed"))
    changes = row.get("pending_changes_decision")
    if decision in CROSSING_DECISIONS or needed == 0 or _worst_decision(row) in CROSSING_DECISIONS:
        return CROSSED
    if (changes is not None and not pd.isna(changes) and bool(changes)) or needed == 1 \
            or (bound is not None and events + 1 >= bound):
        return NEAR
    return INSIDE


def rule_rows(status: CommitteeStatus) -> pd.DataFrame:
    """One row per rule (study or cohort): label, level, the status in words (with the pending candidates
    counted as events for the worst case), the rule's full sentence, and the monitored event named with the
    DLT window it is counted in (``event_label``: 'DLT (onset days 0-28)')."""
    cols = ["label", "level", "adjudicated_crossed", "method", "decision", "events", "evaluable_n", "pending",
            "boundary_events", "sentence", "worst_case", "status_text", "event_label"]
    r = status.rules
    if r is None or r.empty:
        return pd.DataFrame(columns=cols)
    out = []
    for row in r.to_dict("records"):
        cohort = row.get("cohort")
        events, n = _int_or_none(row.get("events")) or 0, _int_or_none(row.get("evaluable_n")) or 0
        pending = _int_or_none(row.get("pending")) or 0
        bound = _int_or_none(row.get("boundary_events"))
        level = rule_level(row)
        adjudicated = str(row.get("decision") or "").lower() in CROSSING_DECISIONS
        cand = f"{pending} pending {_plural(pending, 'candidate')}"
        y2, n2 = _int_or_none(row.get("events_if_pending_confirmed")), _int_or_none(row.get("evaluable_n_if_pending_confirmed"))
        # the boundary belongs to an n: it is quoted only when confirming the candidates leaves n as it is (a
        # candidate in a subject not yet evaluable adds one to n, and the boundary at n + 1 may differ)
        worst = (f"{events + pending if y2 is None else y2} of {n if n2 is None else n2}"
                 + (f", boundary {bound}" if bound is not None and (n2 is None or n2 == n) else "")
                 + (f", {_worst_decision(row)}" if _worst_decision(row) != str(row.get("decision") or "").lower() else "")
                 ) if pending else ""
        if level == CROSSED and adjudicated:
            status_text = "boundary crossed"
        elif level == CROSSED:
            status_text = f"crossed if the {cand} {'is' if pending == 1 else 'are'} confirmed ({worst})"
        elif level == NEAR:
            status_text = "one event from the boundary" + (f" ({cand}: {worst})" if pending else "")
        else:
            status_text = "inside the boundary" + (f" ({cand}: {worst})" if pending else "")
        out.append({"label": "Study" if cohort is None or pd.isna(cohort) else str(cohort),
                    "level": level, "adjudicated_crossed": adjudicated,
                    "method": row.get("method"), "decision": row.get("decision"),
                    "events": events, "evaluable_n": n, "pending": pending, "boundary_events": bound,
                    "sentence": str(row.get("sentence") or ""), "worst_case": worst,
                    "status_text": status_text,
                    "event_label": event_label(str(row.get("monitored_event")), status.window)})
    order = {CROSSED: 0, NEAR: 1, INSIDE: 2}
    df = pd.DataFrame(out, columns=cols)
    return df.sort_values("level", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return word if n == 1 else (plural or word + "s")


def _new_sql(reader: StudyReader, key: str, prev_table: str, prev_key: str | None = None) -> str:
    if reader.scope.previous_cut is None:
        return "TRUE"
    return f"({key}) NOT IN (SELECT {prev_key or key} FROM prev_{prev_table} WHERE {prev_key or key} IS NOT NULL)"


def dlt_candidate_rows(reader: StudyReader, status: CommitteeStatus, store) -> pd.DataFrame:
    """DLT candidates pending adjudication or re-review, then those new since the previous cut (not in its DLT
    review: :func:`safety.derive.dlt.decisions.in_previous_review`, which reads the committee's decisions in
    ``store``); worst grade first."""
    cols = ["usubjid", "event_key", "term", "grade", "onset_day", "rule_id", "state", "new"]
    c = status.candidates
    if c is None or c.empty:
        return pd.DataFrame(columns=cols)
    prev = in_previous_review(reader, store)
    c = c.copy()
    c["new"] = ~c["event_key"].isin(prev)
    pending = c["pending"].fillna(False).astype(bool)
    rereview = c["needs_rereview"].fillna(False).astype(bool) if "needs_rereview" in c else False
    keep = c[pending | rereview | c["new"]].copy()
    keep["state"] = [("pending" if p else "re-review" if rr else str(d) if isinstance(d, str) else str(s))
                     for p, rr, d, s in zip(keep["pending"].fillna(False).astype(bool),
                                            keep["needs_rereview"].fillna(False).astype(bool)
                                            if "needs_rereview" in keep else [False] * len(keep),
                                            keep["decision"], keep["status"])]
    keep["grade"] = pd.to_numeric(keep["grade"], errors="coerce").astype("Int64")
    keep["onset_day"] = pd.to_numeric(keep["onset_day"], errors="coerce").astype("Int64")
    # Awaiting the committee first (pending, then re-review), then new ones already decided; worst grade first.
    keep["_o"] = keep["state"].map({"pending": 0, "re-review": 1}).fillna(2)
    keep = keep.sort_values(["_o", "grade", "usubjid", "event_key"], ascending=[True, False, True, True],
                            na_position="last")
    return keep[cols].reset_index(drop=True)


def death_rows(reader: StudyReader) -> pd.DataFrame:
    """Deaths recorded since the previous cut (every death at a study's first cut): subject, day, cause.

    Read from the derived ``deaths`` table (DM, DS and fatal AEs, safety/derive/outcomes/deaths.py), the one
    definition of a death: a death recorded only as a fatal AE is named here too. ``death_cause`` is the
    delivered cause, else the fatal AE's term; ``cause_category`` its category (progression/relapse, infection, ...).
    """
    new = _new_sql(reader, "usubjid", "deaths")
    return reader.sql(f"""SELECT usubjid, death_day,
                                 coalesce(delivered_cause, fatal_ae_term, 'cause not recorded') AS death_cause,
                                 cause_category
                          FROM deaths WHERE {new}
                          ORDER BY death_day NULLS LAST, usubjid""")


def severe_toxicity_rows(reader: StudyReader) -> pd.DataFrame:
    """Grade >= 3 CRS or ICANS episodes and grade >= 3 infections new since the previous cut, worst first.

    CRS/ICANS come from the derived episodes (toxicity_episodes, ASTCT grade); infections from the derived
    ``infection_episodes`` (safety/derive/outcomes/infections.py: the infections SOC or a term naming a
    pathogen), graded episodes of grade >= 3 or fatal.
    """
    ep_new = _new_sql(reader, "event_key", "toxicity_episodes")
    inf_new = _new_sql(reader, "event_key", "infection_episodes")
    return reader.sql(f"""
        SELECT usubjid, syndrome AS toxicity, syndrome AS term, max_grade AS grade, onset_day, event_key
        FROM toxicity_episodes WHERE max_grade >= 3 AND syndrome IN ($crs, $icans) AND {ep_new}
        UNION ALL
        SELECT usubjid, 'Infection', term, coalesce(ctcae_grade, CASE WHEN fatal THEN 5 END), onset_day, event_key
        FROM infection_episodes WHERE (ctcae_grade >= 3 OR fatal) AND {inf_new}
        ORDER BY grade DESC, usubjid, onset_day""", {"crs": "CRS", "icans": "ICANS"})


def new_events(reader: StudyReader, since: dt.date | None) -> pd.DataFrame:
    """What is new or changed since ``since`` (safety.review.changes), with grade and seriousness, most severe
    first: deaths, then DLT candidates, then by grade (serious before not serious at the same grade)."""
    cols = ["usubjid", "category", "change", "description", "grade", "serious", "event_key", "rank",
            "episode_key", "in_window"]
    if since is None:
        return pd.DataFrame(columns=cols)
    ch = review_changes.changes_since(reader, since)
    ch = ch[ch["change"] != "removed"]
    if ch.empty:
        return pd.DataFrame(columns=cols)
    # episode_key: the CRS/ICANS episode an AE reports (one clinical event with it); in_window: a candidate's
    ae = reader.sql(f"""WITH e AS ({REPORTED_AS_SQL})
                        SELECT a.event_key, a.aetoxgr AS grade, a.aeser = 'Y' AS serious, e.episodes[1] AS episode_key
                        FROM adverse_events a LEFT JOIN e ON e.ae_event_key = a.event_key""")
    ep = reader.sql("SELECT event_key, max_grade AS grade, FALSE AS serious FROM toxicity_episodes")
    dlt = reader.sql("SELECT event_key, max(grade) AS grade, FALSE AS serious, bool_or(in_window) AS in_window "
                     "FROM dlt_candidates GROUP BY event_key")
    facts = {"adverse_event": ae, "crs_episode": ep, "icans_episode": ep, "dlt_candidate": dlt}
    parts = []
    for cat, d in ch.groupby("category", sort=False):
        f = facts.get(cat)
        d = d.merge(f, on="event_key", how="left") if f is not None else d.assign(grade=pd.NA, serious=False)
        parts.append(d)
    out = pd.concat(parts, ignore_index=True)
    for col in ("episode_key", "in_window"):  # only AEs carry the one and candidates the other
        if col not in out:
            out[col] = None
    out["grade"] = pd.to_numeric(out["grade"], errors="coerce").astype("Int64")
    out["serious"] = out["serious"].astype("boolean").fillna(False).astype(bool)
    base = out["category"].map(NEW_KIND_RANK).fillna(0)
    out["rank"] = base + out["grade"].fillna(0).astype(int) * 2 + out["serious"].astype(int)
    out = out.sort_values(["rank", "usubjid", "event_key"], ascending=[False, True, True], na_position="last")
    return out[cols].reset_index(drop=True)


def new_counts(events: pd.DataFrame) -> dict[str, int]:
    """Counts of new deaths, new DLT candidates (in the DLT window: one outside it awaits no decision; those are
    ``dlt_candidates_outside``), new SAEs and new grade >= 3 adverse events."""
    new = events[events["change"] == "new"] if len(events) else events
    ae = new[new["category"] == "adverse_event"] if len(new) else new
    is_candidate = (new["category"] == "dlt_candidate") if len(new) else None
    candidate = is_candidate & (new["in_window"].astype("boolean").fillna(True)) if len(new) else None
    return {
        "deaths": int((new["category"] == "death").sum()) if len(new) else 0,
        "dlt_candidates": int(candidate.sum()) if len(new) else 0,
        "dlt_candidates_outside": int((is_candidate & ~candidate).sum()) if len(new) else 0,
        "saes": int(ae["serious"].sum()) if len(ae) else 0,
        "grade3_plus": int((ae["grade"].fillna(0) >= 3).sum()) if len(ae) else 0,
    }


def one_line_per_event(events: pd.DataFrame) -> pd.DataFrame:
    """:func:`new_events` with one row per clinical event, for a list a committee reads: an AE that is a DLT
    candidate under its own key, or reports a CRS/ICANS episode (the episode and its candidate), is one event,
    shown as its most severe row (the candidate before the AE), serious when any of its rows is; a candidate's
    description says it is one, and whether it is outside the DLT window."""
    if events.empty:
        return events
    out = events.copy()
    # an event without a key (a change of a subject's record) is a line of its own
    out["_event"] = out["episode_key"].fillna(out["event_key"]).fillna("row " + out.index.astype(str).to_series(index=out.index))
    serious = out.groupby(["usubjid", "_event"])["serious"].transform("any")
    out["serious"] = serious.astype(bool)
    out = out.sort_values("rank", ascending=False, kind="stable").drop_duplicates(["usubjid", "_event"])
    cand = out["category"] == "dlt_candidate"
    outside = cand & (out["in_window"].astype("boolean") == False)  # noqa: E712 - NA stays in window
    out.loc[cand, "description"] = ("DLT candidate" + outside[cand].map({True: " (outside the DLT window)",
                                                                           False: ""})
                                    + ": " + out.loc[cand, "description"].astype(str))
    return out.drop(columns="_event").reset_index(drop=True)


@dataclass(frozen=True)
class MeetingSummary:
    """The five answers of the overview, each a small DataFrame (or counts)."""
    previous_cut: dt.date | None
    since: dt.date | None  # the cut "what is new" compares with
    since_signed_off: bool  # True when ``since`` is the last signed-off cut, False when the previous cut
    rules: pd.DataFrame
    dlt_candidates: pd.DataFrame
    deaths: pd.DataFrame
    severe: pd.DataFrame
    new: pd.DataFrame
    counts: dict = field(default_factory=dict)
    dlt: DltStatus | None = None  # the DLT state the answers were computed from (the overview's metrics too)


def meeting_summary(reader: StudyReader, store, config: dict | None,
                    status: DltStatus | None = None) -> MeetingSummary:
    """The overview's five answers for the reader's study, cut and site scope.

    ``status``: the :func:`safety.review.dlt_status.dlt_status` of the same reader and store when the caller
    holds it already (computed here otherwise); it is returned as ``dlt`` so a page computes it once.

    "Since the last cut" (deaths, severe toxicities, new candidates) compares with the previous data cut;
    "what is new" compares with the last cut the committee signed off, or the previous cut when none is.
    """
    sc = reader.scope
    signed = review_changes.last_signed_off_cut(store, sc.studyid, before=sc.data_cut) if store is not None else None
    since = signed or sc.previous_cut
    dlt = status if status is not None else dlt_status(reader, store, config)
    status = committee_status(reader, store, config, dlt)
    events = new_events(reader, since)
    return MeetingSummary(previous_cut=sc.previous_cut, since=since, since_signed_off=signed is not None,
                          rules=rule_rows(status), dlt_candidates=dlt_candidate_rows(reader, status, store),
                          deaths=death_rows(reader), severe=severe_toxicity_rows(reader), new=events,
                          counts=new_counts(events), dlt=dlt)

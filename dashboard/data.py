"""Queries shared by several pages (the DLT state with decisions applied, changes between cuts, incidence).

Everything reads through :mod:`dashboard.state` (scoped, cached); numbers a page shares with the packet come
from the domain functions of ``safety/`` (imported plainly), pages only format them.
"""
from __future__ import annotations

import dataclasses
import datetime as dt

import pandas as pd
import streamlit as st

from dashboard import state
from safety.core.vocabulary import open_end
from safety.derive.dlt.events import LAB_EVENT_KEY
from safety.core.vocabulary import LYMPHODEPLETION_PATTERN, lymphodepleting_ex_sql
from safety.review import dlt_status as dlt_live
from safety.review.changes import changes_since
from safety.review import meeting as meeting_rules


def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Exact binomial CI for k of n (as proportions); (0, 0) when n = 0 (nothing to estimate, drawn as 0)."""
    if n == 0:
        return 0.0, 0.0
    # imported on first use: scipy costs a second at start and the app's first page does not need it
    from safety.derive.toxicity import summary as tox_summary
    lo, hi = tox_summary.clopper_pearson(k, n, 1 - alpha)
    return float(lo), float(hi)


def candidate_choices(candidates: pd.DataFrame, needle: str = "", limit: int | None = None) -> tuple[pd.DataFrame, dict, int]:
    """DLT candidates in the order the committee works through them, a label per event key, and how many matched.

    Undecided before decided, in-window before out of window, then by subject and event. ``needle``
    keeps the candidates whose label (event key, rule, term) contains it, ignoring case; ``limit``
    keeps the first rows. Returns (candidates, {event_key: label}, number matching before the limit).
    """
    if candidates.empty:
        return candidates, {}, 0
    ordered = candidates.assign(_decided=candidates["decision"].notna(),
                                _in_window=candidates["in_window"] if "in_window" in candidates else True) \
        .sort_values(["_decided", "_in_window", "usubjid", "event_key"], ascending=[True, False, True, True])
    # an event the committee added has no rule, one whose subject left the cut no term: the label still reads
    rule = ordered["rule_id"].astype("string").fillna("no screening rule")
    term = ordered["term"].astype("string").fillna("event not in this cut")
    labels = (ordered["event_key"].astype("string") + " – " + rule + " / " + term).astype(object)
    if needle:
        keep = labels.str.contains(needle, case=False, regex=False)
        ordered, labels = ordered[keep], labels[keep]
    matched = len(ordered)
    if limit is not None:  # before the dict: iterating 100k labels costs more than the rest of the page
        ordered, labels = ordered.head(limit), labels.head(limit)
    return ordered.drop(columns=["_decided", "_in_window"]), dict(zip(ordered["event_key"], labels)), matched


def dlt_status(v: state.View) -> dlt_live.DltStatus:
    """The DLT state with the decisions in force now (:func:`safety.review.dlt_status.dlt_status`, the same
    call the packet makes), limited to the subjects the sidebar filters keep; stopping rows stay study-wide."""
    status = state.call_cached(dlt_live.dlt_status, state.STORE, state.study_config(v), v=v)
    if not v.filtered:
        return status
    flt, fp = state.subject_filter(v)
    return status.for_subjects(state.q(f"SELECT usubjid FROM subjects WHERE {flt}", fp, v=v)["usubjid"])


@st.cache_data(show_spinner=False, max_entries=200)
def _dlt_marks(v: state.View, sstamp: tuple, lanes: tuple) -> pd.DataFrame:
    review = dlt_status(v).review
    return review[review["usubjid"].isin(lanes) & (review["counts_as_dlt"] | review["pending"]).astype(bool)] \
        .reset_index(drop=True)


def dlt_marks(v: state.View, lanes) -> pd.DataFrame:
    """Review rows (:func:`dlt_status`) of the subjects ``lanes`` whose event counts as a DLT now or awaits the
    committee: what the swimmer plot marks. Cached per cut, scope, filters, subjects and the review store's
    version, so a page of 100 subjects does not unpickle every candidate of the study on each rerun."""
    return _dlt_marks(_shared_view(v), state.store_stamp(v.db_path), tuple(lanes))


def changes(v: state.View, base_cut: dt.date | None) -> pd.DataFrame:
    """What is new or changed at ``v.data_cut`` compared with ``base_cut`` (:func:`safety.review.changes.changes_since`),
    limited to the sidebar's subjects."""
    if base_cut is None:
        return pd.DataFrame(columns=["category", "change", "usubjid", "event_key", "description"])
    bv = dataclasses.replace(v, previous_cut=base_cut)
    df = state.call_cached(changes_since, base_cut, v=bv)
    if v.filtered:
        flt, fp = state.subject_filter(v)
        keep = set(state.q(f"SELECT usubjid FROM subjects WHERE {flt}", fp, v=v)["usubjid"])
        df = df[df["usubjid"].isin(keep) | df["usubjid"].isna()]
    return df.drop(columns=["changes"])


def incidence(v: state.View, syndrome: str) -> pd.DataFrame:
    """The packet's incidence rows of ``syndrome`` (:func:`safety.derive.toxicity.summary.incidence_table`: any
    grade, maximum grade 1-5 with 0 where no subject had it, grade >= 3; per cohort and all infused, with 95% CIs)
    for the infused subjects the sidebar filters keep."""
    from safety.derive.toxicity import summary as tox_summary
    subjects = None
    if v.filtered:
        flt, fp = state.subject_filter(v)
        subjects = tuple(sorted(state.q(f"SELECT usubjid FROM subjects WHERE {flt}", fp, v=v)["usubjid"]))
    return state.call_cached(tox_summary.incidence_table, syndrome, "cohort", subjects=subjects, v=v)


def boundary_rows(v: state.View, method: str, cohort) -> pd.DataFrame:
    """The boundary table of a rule: rows for this cohort, else the study-wide rows (cohort NULL)."""
    b = state.q("SELECT * FROM stopping_boundaries WHERE method = $m ORDER BY n", {"m": method}, v=v)
    own = b[b["cohort"] == cohort] if cohort is not None and not pd.isna(cohort) else b.iloc[0:0]
    return own if not own.empty else b[b["cohort"].isna()]


# -- one subject -----------------------------------------------------------------------------------------

_EMPTY = {"daily": ["syndrome", "day", "grade"], "episodes": ["syndrome", "episode_no", "onset_day"],
          "dlt_candidates": ["event_key", "rule_id", "term", "onset_day", "grade"]}


def _data_view(v: state.View) -> state.View:
    # one subject's rows, and the overview's answers before the filters, depend on the cut and scope only:
    # share the cache across users and sidebar filters
    return dataclasses.replace(v, cohorts=(), dose_levels=(), products=(), username="", title="")


def _shared_view(v: state.View) -> state.View:
    # the rows depend on the cut, the scope (sites) and the sidebar filters, not on who asks: shared cache
    return dataclasses.replace(v, username="", title="")


# A subject's lab results with their CTCAE grades. A graded record is its lab record by LBSEQ and, LBSEQ being
# optional in LB, by its test, date and value too (without LBSEQ these alone tell the records apart).
# the day, from infusion, an event with no end runs to: the death, else the cut (adverse_events.duration_days's end)
OPEN_END_DAY = f"datediff('day', s.first_infusion_date, {open_end('s.death_date', 's.data_cut')}) AS open_end_day"
PROFILE_LABS_SQL = """SELECT l.lbtestcd, l.lbtest, l.day, l.value, l.unit, l.lln, l.uln, t.grade
                      FROM labs l LEFT JOIN lab_toxicity t ON t.usubjid = l.usubjid
                       AND t.lbseq IS NOT DISTINCT FROM l.lbseq AND t.lbtestcd = l.lbtestcd
                       AND t.lab_date IS NOT DISTINCT FROM l.lb_date AND t.value IS NOT DISTINCT FROM l.value"""


@st.cache_data(show_spinner=False, max_entries=2000)
def _subject_data(v: state.View, usubjid: str) -> dict[str, pd.DataFrame]:
    rd, p = state.reader(v), {"u": usubjid}
    has = {t: state.has_tables(t, v=v) for t in ("toxicity_daily_grades", "toxicity_episodes", "dlt_candidates",
                                                 "lab_toxicity", "deaths")}
    out = {
        # the death as the derived deaths table has it (DM, DS or a fatal AE), as every other page and the packet;
        # open_end_day: the day an event with no end is drawn to, the end adverse_events.duration_days counts to
        "subject": rd.sql(f"SELECT s.* REPLACE (d.death_day AS death_day), {OPEN_END_DAY} FROM subjects s "
                          "LEFT JOIN deaths d USING (usubjid) WHERE s.usubjid = $u" if has["deaths"] else
                          f"SELECT s.*, {OPEN_END_DAY} FROM subjects s WHERE usubjid = $u", p),
        "aes": rd.sql("""SELECT event_key, aedecod, aebodsys, aetoxgr, aesev, grading_system, aeser = 'Y' AS serious,
                                related, onset_day, end_day, ongoing, duration_days, aeout
                         FROM adverse_events WHERE usubjid = $u ORDER BY onset_day NULLS LAST, aeseq""", p),
        "meds": rd.sql("""SELECT med_class, cmdecod, start_day, end_day FROM medications
                          WHERE usubjid = $u AND med_class IN ('tocilizumab', 'corticosteroid', 'anakinra', 'vasopressor')
                          ORDER BY start_day""", p),
        "responses": rd.sql("SELECT day, response, visit FROM responses WHERE usubjid = $u ORDER BY day", p),
        # every CAR infusion (a re-infusion too) and the lymphodepleting doses, from EX and CM as the load finds
        # the first of them (subjects.lymphodepletion_start_day)
        "dosing": rd.sql(f"""
            SELECT CASE WHEN is_car_infusion THEN 'CAR infusion' ELSE 'Lymphodepletion' END AS kind,
                   coalesce(extrt, excat) AS name, day AS start_day,
                   day + coalesce(datediff('day', exst_date, exen_date), 0) AS end_day
            FROM exposures WHERE usubjid = $u AND day IS NOT NULL
              AND (is_car_infusion OR {lymphodepleting_ex_sql()})
            UNION ALL
            SELECT 'Lymphodepletion', cmdecod, start_day, coalesce(end_day, start_day) FROM medications
            WHERE usubjid = $u AND med_class = 'lymphodepletion' AND start_day IS NOT NULL
            ORDER BY kind, start_day, name""", {**p, "ld_pattern": LYMPHODEPLETION_PATTERN}),
        "labs": rd.sql((PROFILE_LABS_SQL if has["lab_toxicity"] else
                        "SELECT lbtestcd, lbtest, day, value, unit, lln, uln, NULL::INTEGER AS grade FROM labs l")
                       + " WHERE l.usubjid = $u AND l.value IS NOT NULL ORDER BY l.day", p),
    }
    out["daily"] = rd.sql("SELECT syndrome, day, max(grade) AS grade FROM toxicity_daily_grades WHERE usubjid = $u "
                          "GROUP BY ALL ORDER BY day", p) if has["toxicity_daily_grades"] else None
    out["episodes"] = rd.sql("SELECT * EXCLUDE (studyid, data_cut, usubjid) FROM toxicity_episodes WHERE usubjid = $u "
                             "ORDER BY onset_day", p) if has["toxicity_episodes"] else None
    out["dlt_candidates"] = rd.sql("SELECT event_key, rule_id, term, onset_day, grade FROM dlt_candidates "
                                   "WHERE usubjid = $u ORDER BY event_key", p) \
        if has["dlt_candidates"] else None
    for name, cols in _EMPTY.items():
        if out[name] is None:
            out[name] = pd.DataFrame({c: pd.Series(dtype="object") for c in cols})
    return out


def subject_data(v: state.View, usubjid: str) -> dict[str, pd.DataFrame]:
    """Everything the profile shows for one subject, one scoped query per table, cached per cut and scope:
    subject, aes, daily, episodes, meds, responses, labs, dlt_candidates, dosing (kind 'CAR infusion' or
    'Lymphodepletion', name, start_day, end_day)."""
    return _subject_data(_data_view(v), usubjid)


def last_day_charted(d: dict[str, pd.DataFrame]) -> int:
    """The last day of one subject's follow-up that the profile's charts hold (:func:`subject_data`): last known
    alive, death, and every dated event, dose, lab and response. A record with no end is drawn on to the death or
    the cut, past this day: it is ongoing, not a later event."""
    s = d["subject"].iloc[0]
    days = [s["last_known_alive_day"], s["death_day"]]
    for name, cols in (("aes", ["onset_day", "end_day"]), ("meds", ["start_day", "end_day"]), ("daily", ["day"]),
                       ("responses", ["day"]), ("labs", ["day"]), ("dosing", ["end_day"])):
        days += [d[name][c].max() for c in cols if len(d[name])]
    known = [float(x) for x in days if x is not None and not pd.isna(x)]
    return int(max(known, default=0))


def subject_dlt_keys(v: state.View, usubjid: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(counted, pending): event keys of the subject's events that count as DLTs now (the committee's decisions
    in force, as on the DLT review), and of in-window candidates awaiting a decision. A rejected candidate, one
    outside the window and a withdrawn-then-rejected one are neither: the profile must not call them DLTs. Read off
    :func:`subject_dlt_labels`, so a chart's marks and a table's words cannot disagree."""
    labels = subject_dlt_labels(v, usubjid)
    return (tuple(sorted(k for k, label in labels.items() if label == dlt_live.ADJUDICATED_YES)),
            tuple(sorted(k for k, label in labels.items() if label == dlt_live.ADJUDICATED_PENDING)))


def subject_dlt_labels(v: state.View, usubjid: str) -> dict[str, str]:
    """Event key -> the listings' "Adjudicated DLT" label (Yes, No, Pending, not adjudicated: outside the DLT
    window; :func:`safety.review.dlt_status.adjudicated_labels`) of the subject's candidates and adjudicated
    events, so the profile's tables say what the AE listing and the DLT review say."""
    review = dlt_status(v).review
    mine = review[review["usubjid"] == usubjid]
    return dict(zip(mine["event_key"], dlt_live.adjudicated_labels(mine)))


@st.cache_data(show_spinner=False, max_entries=2000)
def _subject_figure(v: state.View, usubjid: str, kind: str, window: tuple, day_range: tuple, dlt_keys: tuple,
                    pending_keys: tuple, tests: tuple) -> dict:
    from dashboard import figures as F
    d = subject_data(v, usubjid)
    lab_dlts = _lab_dlts(d["dlt_candidates"], dlt_keys + pending_keys, pending_keys)
    if kind == "timeline":
        s = d["subject"].iloc[0]
        return state.figure_dict(F.subject_timeline(usubjid, d["aes"], d["daily"], d["meds"], d["responses"],
                                                    s["death_day"], window, list(dlt_keys), day_range=day_range,
                                                    episodes=d["episodes"], lab_dlts=lab_dlts,
                                                    pending_keys=list(pending_keys), open_end_day=s["open_end_day"],
                                                    dosing=d["dosing"]))
    return state.figure_dict(F.key_labs_figure(usubjid, d["labs"], list(tests), window, day_range=day_range,
                                               lab_dlts=lab_dlts))


def _lab_dlts(candidates: pd.DataFrame, keys: tuple, pending_keys: tuple = ()) -> pd.DataFrame:
    """DLTs and pending candidates keyed on a lab result (``<usubjid>/LB/<lbtestcd>-D<day>``) among ``keys``:
    event_key, lbtestcd, day, label (a pending one says so)."""
    key = candidates["event_key"].str.extract(LAB_EVENT_KEY)[0]
    on_lab = candidates["event_key"].isin(keys) & key.notna()
    c, tests = candidates[on_lab], key[on_lab]
    pending = c["event_key"].isin(pending_keys)
    return pd.DataFrame({"event_key": c["event_key"], "lbtestcd": tests, "day": c["onset_day"],
                         "label": c["term"].astype("string").fillna(tests) + " grade "
                                  + c["grade"].astype("Int64").astype("string").fillna("?")
                                  + " (" + c["rule_id"].astype("string").fillna("added by the committee")
                                  + pending.map({True: ", pending", False: ""}) + ")",
                         "pending": pending})


def subject_figure(v: state.View, usubjid: str, kind: str, window: tuple, day_range: tuple,
                   dlt_keys: tuple = (), tests: tuple = (), pending_keys: tuple = ()) -> dict:
    """The profile's timeline (kind 'timeline') or key-labs figure ('labs') as a cached Plotly dict, keyed
    by plain values (no DataFrame hashing on each run). ``dlt_keys`` count as DLTs, ``pending_keys`` await the
    committee (:func:`subject_dlt_keys`)."""
    return _subject_figure(_data_view(v), usubjid, kind, tuple(window), tuple(day_range), tuple(dlt_keys),
                           tuple(pending_keys), tuple(tests))


# -- the committee meeting ---------------------------------------------------------------------------------

@st.cache_data(show_spinner=False, max_entries=200)
def _meeting(v: state.View, sstamp: tuple) -> meeting_rules.MeetingSummary:
    # The DLT state comes from the cache the DLT review, swimmer and listings share, and travels with the
    # answers: the overview computes it once for the five answers, its toxicity metrics and stopping rows.
    status = state.call_cached(dlt_live.dlt_status, state.STORE, state.study_config(v), v=v)
    return meeting_rules.meeting_summary(state.reader(v), state.review_store(v.db_path), state.study_config(v),
                                         status=status)


def meeting(v: state.View):
    """The overview's five answers (safety.review.meeting.meeting_summary) for this cut and scope, with the
    sidebar's subject filters applied to the per-subject lists and to ``dlt`` (as :func:`dlt_status` does)."""
    m = _meeting(_data_view(v), state.store_stamp(v.db_path))
    if not v.filtered:
        return m
    flt, fp = state.subject_filter(v)
    keep = set(state.q(f"SELECT usubjid FROM subjects WHERE {flt}", fp, v=v)["usubjid"])
    lists = {name: getattr(m, name) for name in ("dlt_candidates", "deaths", "severe", "new")}
    lists = {name: df[df["usubjid"].isin(keep)].reset_index(drop=True) for name, df in lists.items()}
    return dataclasses.replace(m, **lists, counts=meeting_rules.new_counts(lists["new"]), dlt=m.dlt.for_subjects(keep))


def new_events(v: state.View, since: dt.date) -> pd.DataFrame:
    """New or changed events since ``since``, most severe first (safety.review.meeting.new_events), within
    the sidebar's subject filters."""
    df = state.call_cached(meeting_rules.new_events, since, v=v)
    if v.filtered:
        flt, fp = state.subject_filter(v)
        keep = set(state.q(f"SELECT usubjid FROM subjects WHERE {flt}", fp, v=v)["usubjid"])
        df = df[df["usubjid"].isin(keep)].reset_index(drop=True)
    return df


# -- lab listings on the Labs page ---------------------------------------------------------------------------

@st.cache_data(show_spinner=False, max_entries=200)
def _lab_listing(v: state.View, sstamp: tuple, name: str, terms: tuple) -> pd.DataFrame:
    # sstamp (the review store's version) is part of the key only, as for every cached call. The listings
    # module is imported here: it pulls in the outcome estimators (statsmodels, scipy), which the app's
    # first page does not need.
    from safety.export import listings
    df = state.call_cached(listings.build_listing, name, None, v=v)
    if v.filtered and "usubjid" in df.columns:
        flt, fp = state.subject_filter(v)
        df = df[df["usubjid"].isin(set(state.q(f"SELECT usubjid FROM subjects WHERE {flt}", fp, v=v)["usubjid"]))]
    if terms:
        df = df[df["ctcae_term"].isin(terms)]
    return df.drop(columns=["site", "dose_level"], errors="ignore").reset_index(drop=True)


def lab_listing(v: state.View, name: str, terms: tuple = ()) -> pd.DataFrame:
    """A lab listing of safety.export.listings ('lab_grade3_episodes', 'lab_grade3') for the sidebar's subjects
    and the chosen CTCAE terms (all when none), filtered once per cut, scope, filter and terms."""
    return _lab_listing(_shared_view(v), state.store_stamp(v.db_path), name, tuple(terms))


@dataclasses.dataclass(frozen=True)
class Preview:
    """The first rows of a table (what a page draws) and facts about all of it."""
    rows: pd.DataFrame
    total: int
    subjects: int
    terms: tuple


@st.cache_data(show_spinner=False, max_entries=200)
def _lab_listing_preview(v: state.View, sstamp: tuple, name: str, terms: tuple, limit: int) -> Preview:
    df = _lab_listing(v, sstamp, name, terms)
    return Preview(df.head(limit), len(df), int(df["usubjid"].nunique()),
                   tuple(sorted(df["ctcae_term"].dropna().unique())))


def lab_listing_preview(v: state.View, name: str, terms: tuple = (), limit: int = 1000) -> Preview:
    """:func:`lab_listing`'s first ``limit`` rows with its row, subject and term counts: a rerun unpickles
    the rows it draws, not the whole listing."""
    return _lab_listing_preview(_shared_view(v), state.store_stamp(v.db_path), name, tuple(terms), limit)


def lab_listing_terms(v: state.View, name: str) -> list[str]:
    """The CTCAE terms present in a lab listing for the sidebar's subjects."""
    return list(lab_listing_preview(v, name).terms)

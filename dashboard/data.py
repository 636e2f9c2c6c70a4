"""Queries shared by several pages (DLT counts with adjudications, changes between cuts, incidence).

Everything reads through :mod:`dashboard.state` (scoped, cached); decisions come from the review store.
Domain functions of ``safety/`` are used when installed; the fallbacks here are plain SQL over the
contract columns of docs/architecture.md.
"""
from __future__ import annotations

import dataclasses
import datetime as dt

import pandas as pd
import streamlit as st
from scipy import stats

from dashboard import state
from safety.review import meeting as meeting_rules

DLT_DECISIONS = ("confirmed", "added")


def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Exact binomial CI for k of n (as proportions); (0, 0) when n = 0."""
    fn = state.domain("safety.derive.toxicity.summary", "clopper_pearson")
    if fn is not None:
        lo, hi = fn(k, n, 1 - alpha)
        return float(lo), float(hi)
    if n == 0:
        return 0.0, 0.0
    lo = 0.0 if k == 0 else stats.beta.ppf(alpha / 2, k, n - k + 1)
    hi = 1.0 if k == n else stats.beta.ppf(1 - alpha / 2, k + 1, n - k)
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
    labels = ordered["event_key"] + " – " + ordered["rule_id"].astype(str) + " / " + ordered["term"].astype(str)
    if needle:
        keep = labels.str.contains(needle, case=False, regex=False)
        ordered, labels = ordered[keep], labels[keep]
    matched = len(ordered)
    if limit is not None:  # before the dict: iterating 100k labels costs more than the rest of the page
        ordered, labels = ordered.head(limit), labels.head(limit)
    return ordered.drop(columns=["_decided", "_in_window"]), dict(zip(ordered["event_key"], labels)), matched


def latest_decisions(v: state.View) -> pd.DataFrame:
    """The newest adjudication per event key for this study (any cut), as a DataFrame."""
    rows = state.review_store(v.db_path).latest_adjudications(v.studyid)
    cols = ["event_key", "usubjid", "rule_id", "decision", "rationale", "reviewer", "decided_at", "data_cut",
            "event_fingerprint"]
    return pd.DataFrame(rows, columns=["id", "studyid"] + cols)[cols] if rows else pd.DataFrame(columns=cols)


def dlt_status(v: state.View) -> dict:
    """Candidates in the DLT window joined to their current decision; counts of confirmed/pending/rejected.

    Confirmed counts subjects with a confirmed (or committee-added) DLT; pending counts in-window
    candidates without a decision. Only subjects in scope and in the sidebar filters count.
    """
    flt, fp = state.subject_filter(v)
    review_table = state.domain("safety.derive.dlt.adjudication", "review_table")
    if review_table is not None and state.has_tables("dlt_candidates", "dlt_evaluability", v=v):
        subjects = set(state.q(f"SELECT usubjid FROM subjects WHERE {flt}", fp, v=v)["usubjid"])
        rt = state.call_cached("safety.derive.dlt.adjudication", "review_table", state.STORE, study_config_safe(v), v=v)
        rt = rt[rt["usubjid"].isin(subjects)].reset_index(drop=True)
        dec = latest_decisions(v)
        return {
            "candidates": rt,
            "decisions": dec[dec["usubjid"].isin(subjects)],
            "confirmed_events": int(rt["counts_as_dlt"].fillna(False).astype(bool).sum()),
            "confirmed_subjects": int(rt.loc[rt["counts_as_dlt"].fillna(False).astype(bool), "usubjid"].nunique()),
            "pending": int(rt["pending"].fillna(False).astype(bool).sum()),
            "rejected": int((rt["decision"] == "rejected").sum()),
            "needs_rereview": int(rt["needs_rereview"].fillna(False).astype(bool).sum()),
        }
    cands = state.q(f"SELECT * FROM dlt_candidates WHERE {flt} ORDER BY onset_day, usubjid", fp, v=v) \
        if state.has_tables("dlt_candidates", v=v) else pd.DataFrame(columns=["usubjid", "event_key", "in_window"])
    subjects = set(state.q(f"SELECT usubjid FROM subjects WHERE {flt}", fp, v=v)["usubjid"])
    dec = latest_decisions(v)
    dec = dec[dec["usubjid"].isin(subjects)]
    merged = cands.merge(dec[["event_key", "decision", "rationale", "reviewer", "decided_at"]], on="event_key", how="left")
    in_window = merged[merged["in_window"].fillna(True).astype(bool)] if "in_window" in merged else merged
    pending = in_window[in_window["decision"].isna() | (in_window["decision"] == "withdrawn")]
    confirmed_keys = set(dec.loc[dec["decision"].isin(DLT_DECISIONS), "event_key"])
    confirmed_subjects = set(dec.loc[dec["decision"].isin(DLT_DECISIONS), "usubjid"])
    return {
        "candidates": merged,
        "decisions": dec,
        "confirmed_events": len(confirmed_keys),
        "confirmed_subjects": len(confirmed_subjects),
        "pending": int(len(pending)),
        "rejected": int((dec["decision"] == "rejected").sum()),
    }


def study_config_safe(v: state.View) -> dict | None:
    try:
        return state.study_config(v)
    except Exception:
        return None


def changes(v: state.View, base_cut: dt.date | None) -> pd.DataFrame:
    """What is new or changed at ``v.data_cut`` compared with ``base_cut``, one row per subject and event.

    Uses safety.review.changes.changes_since when installed; otherwise compares event keys and grades in SQL.
    """
    cols = ["usubjid", "change", "event_key", "detail"]
    if base_cut is None:
        return pd.DataFrame(columns=cols)
    bv = dataclasses.replace(v, previous_cut=base_cut)
    flt, fp = state.subject_filter(v)
    fn = state.domain("safety.review.changes", "changes_since")
    if fn is not None:
        try:
            df = state.call_cached("safety.review.changes", "changes_since", base_cut, v=bv)
        except Exception as exc:  # a domain bug must not hide the comparison: fall back to plain SQL
            state.st.caption(f"(safety.review.changes failed: {type(exc).__name__}; showing the dashboard's own comparison)")
        else:
            keep = set(state.q(f"SELECT usubjid FROM subjects WHERE {flt}", fp, v=v)["usubjid"])
            df = df[df["usubjid"].isin(keep) | df["usubjid"].isna()] if v.filtered else df
            return df.drop(columns=[c for c in ("changes",) if c in df.columns])
    parts = [
        """SELECT usubjid, 'new subject' AS change, NULL AS event_key,
                  concat_ws(' ', 'cohort', cohort, '·', status) AS detail
           FROM subjects WHERE usubjid NOT IN (SELECT usubjid FROM prev_subjects)""",
        """SELECT s.usubjid, 'died' AS change, NULL, concat('day ', s.death_day, ': ', coalesce(s.death_cause, ''))
           FROM subjects s LEFT JOIN prev_subjects p USING (usubjid)
           WHERE s.death_date IS NOT NULL AND p.death_date IS NULL""",
        """SELECT a.usubjid, 'new AE' AS change, a.event_key,
                  concat(a.aedecod, ' grade ', coalesce(CAST(a.aetoxgr AS VARCHAR), '?'),
                         CASE WHEN a.aeser = 'Y' THEN ' (serious)' ELSE '' END, ', onset day ', a.onset_day)
           FROM adverse_events a WHERE a.event_key NOT IN (SELECT event_key FROM prev_adverse_events)""",
        """SELECT a.usubjid, 'AE grade changed', a.event_key,
                  concat(a.aedecod, ': grade ', p.aetoxgr, ' -> ', a.aetoxgr)
           FROM adverse_events a JOIN prev_adverse_events p USING (event_key)
           WHERE a.aetoxgr IS DISTINCT FROM p.aetoxgr""",
    ]
    if state.has_tables("dlt_candidates", v=v):
        parts.append("""SELECT usubjid, 'new DLT candidate', event_key, concat(rule_id, ': ', reason)
                        FROM dlt_candidates WHERE event_key NOT IN (SELECT event_key FROM prev_dlt_candidates)""")
    sql = f"SELECT * FROM ({' UNION ALL '.join(parts)}) x WHERE {flt} ORDER BY usubjid, change"
    df = state.q(sql, fp, v=bv)
    df.columns = cols
    return df


def incidence(v: state.View, syndrome: str, by_cohort: bool = True) -> pd.DataFrame:
    """Subjects by maximum grade of ``syndrome`` among infused subjects, overall and per cohort, with 95% CI.

    Columns: group, grade, subjects, total, pct, ci_low, ci_high. Grade 0 = infused, no episode.
    """
    flt, fp = state.subject_filter(v, column="s.usubjid")
    df = state.q(f"""
        WITH mx AS (SELECT usubjid, max(max_grade) AS g FROM toxicity_episodes
                    WHERE syndrome = $syndrome GROUP BY usubjid),
             base AS (SELECT s.usubjid, coalesce(s.cohort, '(none)') AS cohort, coalesce(mx.g, 0) AS grade
                      FROM subjects s LEFT JOIN mx USING (usubjid) WHERE s.infused AND {flt})
        SELECT 'All' AS "group", grade, count(*) AS subjects, (SELECT count(*) FROM base) AS total FROM base GROUP BY grade
        UNION ALL
        SELECT cohort, grade, count(*), (SELECT count(*) FROM base b2 WHERE b2.cohort = base.cohort) FROM base GROUP BY cohort, grade
        ORDER BY 1, 2""", {"syndrome": syndrome, **fp}, v=v)
    if not by_cohort:
        df = df[df["group"] == "All"]
    cis = [clopper_pearson(int(k), int(n)) for k, n in zip(df["subjects"], df["total"])]
    df["pct"] = 100.0 * df["subjects"] / df["total"]
    df["ci_low"] = [100 * lo for lo, _ in cis]
    df["ci_high"] = [100 * hi for _, hi in cis]
    return df


def boundary_rows(v: state.View, method: str, cohort) -> pd.DataFrame:
    """The boundary table of a rule: rows for this cohort, else the study-wide rows (cohort NULL)."""
    b = state.q("SELECT * FROM stopping_boundaries WHERE method = $m ORDER BY n", {"m": method}, v=v)
    own = b[b["cohort"] == cohort] if cohort is not None and not pd.isna(cohort) else b.iloc[0:0]
    return own if not own.empty else b[b["cohort"].isna()]


# -- one subject -----------------------------------------------------------------------------------------

_EMPTY = {"daily": ["syndrome", "day", "grade"], "episodes": ["syndrome", "episode_no", "onset_day"],
          "dlt_candidates": ["event_key", "rule_id", "term", "onset_day", "grade"]}


def _data_view(v: state.View) -> state.View:
    # one subject's rows depend on the cut and scope only: share the cache across users and sidebar filters
    return dataclasses.replace(v, cohorts=(), dose_levels=(), products=(), username="", title="")


@st.cache_data(show_spinner=False, max_entries=2000)
def _subject_data(v: state.View, usubjid: str) -> dict[str, pd.DataFrame]:
    rd, p = state.reader(v), {"u": usubjid}
    has = {t: state.has_tables(t, v=v) for t in ("toxicity_daily_grades", "toxicity_episodes", "dlt_candidates",
                                                 "lab_toxicity")}
    out = {
        "subject": rd.sql("SELECT * FROM subjects WHERE usubjid = $u", p),
        "aes": rd.sql("""SELECT event_key, aedecod, aebodsys, aetoxgr, aesev, grading_system, aeser = 'Y' AS serious,
                                related, onset_day, end_day, ongoing, duration_days, aeout
                         FROM adverse_events WHERE usubjid = $u ORDER BY onset_day NULLS LAST, aeseq""", p),
        "meds": rd.sql("""SELECT med_class, cmdecod, start_day, end_day FROM medications
                          WHERE usubjid = $u AND med_class IN ('tocilizumab', 'corticosteroid', 'anakinra', 'vasopressor')
                          ORDER BY start_day""", p),
        "responses": rd.sql("SELECT day, response, visit FROM responses WHERE usubjid = $u ORDER BY day", p),
        "labs": rd.sql(("""SELECT l.lbtestcd, l.lbtest, l.day, l.value, l.unit, l.lln, l.uln, t.grade
                           FROM labs l LEFT JOIN lab_toxicity t USING (usubjid, lbseq)""" if has["lab_toxicity"] else
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
    subject, aes, daily, episodes, meds, responses, labs, dlt_candidates."""
    return _subject_data(_data_view(v), usubjid)


def subject_dlt_keys(v: state.View, usubjid: str) -> tuple[str, ...]:
    """Event keys of the subject's DLT candidates and of events the committee confirmed or added as DLTs."""
    keys = set(subject_data(v, usubjid)["dlt_candidates"]["event_key"].dropna())
    dec = latest_decisions(v)
    keys |= set(dec.loc[(dec["usubjid"] == usubjid) & dec["decision"].isin(DLT_DECISIONS), "event_key"])
    return tuple(sorted(keys))


@st.cache_data(show_spinner=False, max_entries=2000)
def _subject_figure(v: state.View, usubjid: str, kind: str, window: tuple, day_range: tuple, dlt_keys: tuple,
                    tests: tuple) -> dict:
    from dashboard import figures as F
    d = subject_data(v, usubjid)
    lab_dlts = _lab_dlts(d["dlt_candidates"], dlt_keys)
    if kind == "timeline":
        s = d["subject"].iloc[0]
        return F.subject_timeline(usubjid, d["aes"], d["daily"], d["meds"], d["responses"], s["death_day"], window,
                                  list(dlt_keys), day_range=day_range, episodes=d["episodes"],
                                  lab_dlts=lab_dlts).to_dict()
    return F.key_labs_figure(usubjid, d["labs"], list(tests), window, day_range=day_range, lab_dlts=lab_dlts).to_dict()


def _lab_dlts(candidates: pd.DataFrame, dlt_keys: tuple) -> pd.DataFrame:
    """DLTs keyed on a lab result (``<usubjid>/LB/<lbtestcd>-D<day>``): event_key, lbtestcd, day, label."""
    c = candidates[candidates["event_key"].isin(dlt_keys) & candidates["event_key"].str.contains("/LB/", regex=False)]
    tests = c["event_key"].str.split("/LB/", regex=False).str[-1].str.rsplit("-D", n=1).str[0]
    return pd.DataFrame({"event_key": c["event_key"], "lbtestcd": tests, "day": c["onset_day"],
                         "label": c["term"].astype(str) + " grade " + c["grade"].astype("Int64").astype(str)
                                  + " (" + c["rule_id"].astype(str) + ")"})


def subject_figure(v: state.View, usubjid: str, kind: str, window: tuple, day_range: tuple,
                   dlt_keys: tuple = (), tests: tuple = ()) -> dict:
    """The profile's timeline (kind 'timeline') or key-labs figure ('labs') as a cached Plotly dict, keyed
    by plain values (no DataFrame hashing on each run)."""
    return _subject_figure(_data_view(v), usubjid, kind,
                           tuple(window), tuple(day_range), tuple(dlt_keys), tuple(tests))


# -- the committee meeting ---------------------------------------------------------------------------------

def meeting(v: state.View):
    """The overview's five answers (safety.review.meeting.meeting_summary) for this cut and scope, with the
    sidebar's subject filters applied to the per-subject lists."""
    m = state.call_cached("safety.review.meeting", "meeting_summary", state.STORE, study_config_safe(v), v=v)
    if not v.filtered:
        return m
    flt, fp = state.subject_filter(v)
    keep = set(state.q(f"SELECT usubjid FROM subjects WHERE {flt}", fp, v=v)["usubjid"])
    lists = {name: getattr(m, name) for name in ("dlt_candidates", "deaths", "severe", "new")}
    lists = {name: df[df["usubjid"].isin(keep)].reset_index(drop=True) for name, df in lists.items()}
    return dataclasses.replace(m, **lists, counts=meeting_rules.new_counts(lists["new"]))


def new_events(v: state.View, since: dt.date) -> pd.DataFrame:
    """New or changed events since ``since``, most severe first (safety.review.meeting.new_events), within
    the sidebar's subject filters."""
    df = state.call_cached("safety.review.meeting", "new_events", since, v=v)
    if v.filtered:
        flt, fp = state.subject_filter(v)
        keep = set(state.q(f"SELECT usubjid FROM subjects WHERE {flt}", fp, v=v)["usubjid"])
        df = df[df["usubjid"].isin(keep)].reset_index(drop=True)
    return df

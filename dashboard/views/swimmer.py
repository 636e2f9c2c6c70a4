"""Swimmer plot: follow-up to month 12 with responses, key toxicities and death; ORR and Kaplan-Meier OS/DFS."""
import pandas as pd
import streamlit as st

from dashboard import data, state
from dashboard import figures as F
from dashboard import figures_outcomes as FO
from dashboard.figures_svg import response_rate_svg
from safety.core.numbers import fixed
from safety.derive.outcomes import survival
from safety.core.vocabulary import overall_response_params
from safety.derive.outcomes.response import COUNTED_RESPONSE_ROWS_SQL, orr

MAX_LANES = 100  # subjects per swimmer chart
UNKNOWN_ONSET_AT = "onset unknown, marked at its end, day"  # what the hover says before the day

v = state.view()
st.title("Follow-up, response and survival")
st.caption(state.filter_caption(v) + " · days from infusion (day 0) · context for the risk-benefit judgement")
flt, fp = state.subject_filter(v)

# deaths from the derived table (DM, DS or a fatal AE), as the packet's swimmer plot and deaths listing
with_deaths = state.has_tables("deaths")
death_day, death_cause = ("d.death_day", "coalesce(d.delivered_cause, d.cause_category)") if with_deaths else \
    ("s.death_day", "s.death_cause")
subj = state.q(f"""SELECT s.usubjid, s.cohort, s.status, s.enrollment_order, {death_day} AS death_day,
                          {death_cause} AS death_cause,
                          coalesce({death_day}, s.last_known_alive_day) AS end_day,
                          coalesce('#' || CAST(s.enrollment_order AS BIGINT) || ' ' || s.usubjid, s.usubjid) AS label
                   FROM subjects s {"LEFT JOIN deaths d USING (usubjid)" if with_deaths else ""}
                   WHERE s.infused AND {state.subject_filter(v, column="s.usubjid")[0]}
                   ORDER BY s.enrollment_order NULLS LAST, s.usubjid""", fp)
if not with_deaths:
    st.caption("Deaths from DM and DS only: the derived table deaths (which adds deaths recorded only as a fatal "
               "AE) is not in this database file; reload the study to add it.")
if subj.empty:
    state.empty("No infused subjects in this selection: nothing to follow up.")
    st.stop()

# One bar per subject: a program-scale study is paged, and only the events of the subjects shown are fetched.
lanes = state.page_of(list(subj["usubjid"]), MAX_LANES, key="swimmer_first")
shown = subj[subj["usubjid"].isin(lanes)]
in_lanes = "usubjid IN (SELECT unnest($lanes))"
lp = {"lanes": lanes}
events = [state.q(f"SELECT usubjid, day, 'response' AS kind, upper(response) AS text, NULL::INTEGER AS grade "
                  f"FROM responses WHERE response IS NOT NULL AND {in_lanes}", lp)]
if state.has_tables("toxicity_episodes"):
    events.append(state.q(f"SELECT usubjid, onset_day AS day, 'toxicity' AS kind, syndrome AS text, max_grade AS grade "
                          f"FROM toxicity_episodes WHERE max_grade >= 2 AND {in_lanes}", lp))
# An AE with no start date (not one that ended before day 0) is marked at its end, else at the end of the
# subject's bar, and says so: the profile marks it there too (docs/dashboard.md).
events.append(state.q(f"""SELECT usubjid, coalesce(onset_day, end_day) AS day, 'toxicity' AS kind, aedecod AS text,
                                 aetoxgr AS grade, CASE WHEN onset_day IS NULL THEN $unknown END AS at
                          FROM adverse_events WHERE aetoxgr >= 3 AND {in_lanes}
                          AND (onset_day >= 0 OR (onset_day IS NULL AND coalesce(end_day, 0) >= 0))
                          AND lower(aedecod) NOT IN ('cytokine release syndrome',
                              'immune effector cell-associated neurotoxicity syndrome')""",
                      {**lp, "unknown": UNKNOWN_ONSET_AT}))
# DLTs as the committee's decisions stand now (the same call as the overview, DLT review and the packet); a
# candidate AE with no start date is marked at its end day, as the review rows give it (a pending one must not go
# missing)
review = data.dlt_marks(v, lanes)
events.append(pd.DataFrame({"usubjid": review["usubjid"],
                            "day": review["onset_day"].fillna(review["end_day"]),
                            "kind": ["dlt" if c else "dlt pending" for c in review["counts_as_dlt"].astype(bool)],
                            "text": review["term"].fillna("event").astype(str) + " (" + review["status"] + ")",
                            "grade": None,
                            "at": review["onset_day"].isna().map({True: UNKNOWN_ONSET_AT, False: None})}))
deaths = shown.dropna(subset=["death_day"])
events.append(pd.DataFrame({"usubjid": deaths["usubjid"], "day": deaths["death_day"], "kind": "death",
                            "text": deaths["death_cause"].fillna("cause not given"), "grade": None}))
ev = pd.concat([e for e in events if not e.empty], ignore_index=True) if any(not e.empty for e in events) \
    else pd.DataFrame(columns=["usubjid", "day", "kind", "text", "grade", "at"])
# no date at all (no start, ongoing): at the end of the subject's bar, its last follow-up day
ev["day"] = ev["day"].fillna(ev["usubjid"].map(shown.set_index("usubjid")["end_day"]))
state.chart(F.swimmer_plot, shown, ev)
late = ev[(ev["day"] > F.SWIMMER_DAYS) & (ev["kind"] != "response")]
if not late.empty:  # a late toxicity (a secondary malignancy) must not pass unseen beyond the chart's edge
    st.caption(f"After month 12 (day {F.SWIMMER_DAYS}), not drawn: " + "; ".join(
        f"{state.plain_text(r.usubjid)} {state.plain_text(str(r.text))} day {r.day:g}"
        for r in late.sort_values(["usubjid", "day"]).itertuples()) + ". The subject profile shows them.")

has_resp = state.has_tables("response_outcomes")
outcomes = state.q(f"SELECT * FROM response_outcomes WHERE {flt}", fp) if has_resp else None

# Beneath the swimmer plot one chart at a time: only the open tab runs. The response rates are plain SVG, so the
# browser draws one Plotly chart on this view, not two (each costs it two full draws when it appears).
views = st.tabs(["Objective response rate among infused subjects", "Kaplan-Meier"], key="swimmer_view_tab",
                on_change="rerun")
if views[0].open:
    with views[0]:
        n = len(subj)
        # no responses read: not an ORR of 0
        if not state.note_not_delivered("RS", what="the response rates"):
            # A response counts as the best overall response counts it (response.py COUNTED_RESPONSE_ROWS_SQL: the
            # study's criteria for that subject, a code as the response its criteria read it as, before progression).
            counted = (COUNTED_RESPONSE_ROWS_SQL if has_resp else
                       "SELECT usubjid, day, visit FROM responses WHERE upper(response) IN ('CR', 'CRI')")
            resp = state.q(f"""
                SELECT tp.timepoint, count(DISTINCT r.usubjid) AS responders
                FROM (VALUES ('Month 3', 3, 77, 105), ('Month 6', 6, 160, 210), ('Month 12', 12, 330, 400))
                     tp(timepoint, m, lo, hi)
                LEFT JOIN ({counted}) r
                     ON {state.subject_filter(v, column='r.usubjid')[0]}
                     AND (upper(r.visit) = 'MONTH ' || tp.m OR (r.visit IS NULL AND r.day BETWEEN tp.lo AND tp.hi))
                GROUP BY tp.timepoint, tp.m ORDER BY tp.m""",
                {**fp, **(overall_response_params(state.study_config(v)) if has_resp else {})})
            if outcomes is not None:
                res = orr(outcomes)
                best = res["responders"]
                st.caption(res["text"])
                counted_as = res["counted_as"]
            else:
                best = state.scalar("SELECT count(DISTINCT usubjid) FROM responses "
                                    f"WHERE upper(response) IN ('CR', 'CRI') AND {flt}", fp) or 0
                counted_as = "CR + CRi"
            resp = pd.concat([resp, pd.DataFrame({"timepoint": ["Best overall"], "responders": [best]})],
                             ignore_index=True)
            resp["evaluable"] = n
            cis = [data.clopper_pearson(int(k), n) for k in resp["responders"]]
            resp["pct"] = 100 * resp["responders"] / n
            resp["ci_low"] = [100 * lo for lo, _ in cis]
            resp["ci_high"] = [100 * hi for _, hi in cis]
            cols = st.columns(len(resp))
            for col, r in zip(cols, resp.itertuples()):
                col.metric(f"ORR {r.timepoint}", f"{int(r.responders)} / {n}",
                           help=f"{fixed(r.pct, 0)}% (95% CI {fixed(r.ci_low, 0)}-{fixed(r.ci_high, 0)}%)")
            state.draw_svg(response_rate_svg(resp, counted_as))

if views[1].open:
    with views[1]:
        os_time, os_event = subj["end_day"].fillna(0).astype(float), subj["death_day"].notna().astype(int)
        groups = [("Overall survival (from infusion)", survival.kaplan_meier(os_time, os_event),
                   survival.at_risk(os_time))]
        if outcomes is not None and outcomes["first_response_day"].notna().any():
            rr = outcomes[outcomes["first_response_day"].notna()]
            t = rr["pfs_from_response_days"].astype(float)
            groups.append(("DFS/PFS from first response",
                           survival.kaplan_meier(t, rr["pfs_event"].fillna(False).astype(int)), survival.at_risk(t)))
        # two clocks on one axis: each curve's own start, said on the axis
        state.chart(FO.kaplan_meier_figure, groups, "Overall survival and DFS/PFS from first response", "Probability",
                    x_title="Days from infusion (OS) or from first response (DFS/PFS)", key="swimmer_km")
        st.caption("OS: death from any cause, censored at last known alive. DFS/PFS: progression/relapse or death, "
                   "timed from the first response under the study's criteria, censored at last known alive "
                   "(Kaplan-Meier, statsmodels; numbers at risk beneath).")

"""CRS & ICANS: incidence by maximum grade with CIs, onset/duration, daily-grade swimlanes, management,
and derived-vs-reported grade discrepancies."""
import streamlit as st

from dashboard import data, state
from dashboard.tables import plural
from dashboard import figures as F
from safety.core.delivery import NOT_DELIVERED, not_delivered_note
from safety.core.numbers import interval, of_n, percent_value
from safety.export.common import grade_discrepancy_events_sql, grade_discrepancy_sentence

v = state.view()
st.title("CRS & ICANS")
st.caption(state.filter_caption(v) + " · ASTCT 2019 consensus grades · days from infusion (day 0)")
flt, fp = state.subject_filter(v)

if not state.require("toxicity_episodes", "toxicity_daily_grades", what="CRS and ICANS summaries"):
    st.stop()

episodes = state.q(f"SELECT * FROM toxicity_episodes WHERE {flt} ORDER BY usubjid, syndrome, episode_no", fp)
infused = state.scalar(f"SELECT count(*) FROM subjects WHERE infused AND {flt}", fp) or 0
if infused == 0:
    state.empty("No infused subjects in this selection: CRS and ICANS start after the CAR infusion.")
    st.stop()
# no assessments and no AEs to grade from: no data, not subjects at grade 0
missing = state.note_not_delivered("CRS", "ICANS", what="the CRS and ICANS counts below")
if len(missing) == 2:
    st.stop()

cols = st.columns(4)
for i, syndrome in enumerate(("CRS", "ICANS")):
    e = episodes[episodes["syndrome"] == syndrome]
    any_n = e["usubjid"].nunique()
    g3 = e.loc[e["max_grade"] >= 3, "usubjid"].nunique()
    cols[2 * i].metric(f"{syndrome} any grade", NOT_DELIVERED if syndrome in missing else of_n(any_n, infused),
                       help=f"Infused subjects with at least one {syndrome} episode")
    cols[2 * i + 1].metric(f"{syndrome} grade ≥3", NOT_DELIVERED if syndrome in missing else of_n(g3, infused),
                           help=f"Infused subjects with any {syndrome} episode of grade 3 or more")

MAX_LANES = 100  # swimlane rows per chart
MAX_TABLE_ROWS = 1000  # episode rows shown on the page

# One chart view at a time: only the open tab runs, and the browser draws one chart (each Plotly chart costs it
# two full draws when it appears), so the page answers at once on every visit.
views = st.tabs(["Incidence by grade", "Onset and duration", "Daily grades, days 0-30"], key="crs_view_tab",
                on_change="rerun")
with views[0]:
    if views[0].open:
        st.caption("Subjects by maximum grade, with 95% Clopper-Pearson confidence intervals.")
        # Only the open tab of each pair runs and draws (choosing the other reruns the page): half the charts to
        # build and to send on each visit.
        tabs = st.tabs(["CRS", "ICANS"], key="crs_incidence_tab", on_change="rerun")
        for tab, syndrome in zip(tabs, ("CRS", "ICANS")):
            if not tab.open:
                continue
            with tab:
                if syndrome in missing:
                    state.empty(f"{not_delivered_note(syndrome)}: no grades to show.")
                    continue
                if episodes[episodes["syndrome"] == syndrome].empty:
                    state.empty(f"This selection has no {syndrome} episodes (all {infused} infused subjects grade 0).")
                # the packet's incidence rows (any grade, maximum grade 1-5, grade >= 3), a grade no subject had as 0
                inc = data.incidence(v, syndrome)
                bars = inc[inc["grade"].notna() & (inc["subjects"] > 0)].astype({"grade": int})
                state.chart(F.incidence_by_grade_bar, bars.assign(pct=100.0 * bars["subjects"] / bars["total"]),
                            title=f"{syndrome}: subjects by maximum grade", key=f"inc_{syndrome}")
                # the packet's words: one decimal, rounded as every table (safety.core.numbers)
                tbl = inc[["group", "category", "subjects", "total"]].assign(**{
                    "%": [percent_value(k, n) for k, n in zip(inc["subjects"], inc["total"])],
                    "95% CI (%)": [interval(lo, hi) for lo, hi in zip(inc["ci_low"], inc["ci_high"])]})
                state.table(tbl, subject_col=None)

with views[1]:
    if views[1].open:
        if episodes.empty:
            state.empty("This selection has no CRS or ICANS episodes.")
        else:
            state.chart(F.onset_duration_figure, episodes)

with views[2]:
    if views[2].open:
        subj = state.q(f"SELECT usubjid, enrollment_order, cohort FROM subjects WHERE infused AND {flt} "
                       "ORDER BY enrollment_order NULLS LAST, usubjid", fp)
        order_mode = st.radio("Row order", ["Enrollment order", "Subject id"], horizontal=True)
        order = list(subj["usubjid"]) if order_mode == "Enrollment order" else sorted(subj["usubjid"])
        order = state.page_of(order, MAX_LANES, key="swimlane_first")
        # Only the lanes shown are fetched: a program-scale study has millions of daily grades.
        daily = state.q("SELECT usubjid, syndrome, day, max(grade) AS grade FROM toxicity_daily_grades "
                        "WHERE day BETWEEN 0 AND 30 AND usubjid IN (SELECT unnest($lanes)) GROUP BY ALL",
                        {"lanes": order})
        shown = subj[subj["usubjid"].isin(order)]
        labels = {r.usubjid: f"#{int(r.enrollment_order)} {r.usubjid}"
                  if r.enrollment_order == r.enrollment_order and r.enrollment_order is not None else r.usubjid
                  for r in shown.itertuples()}
        tabs = st.tabs(["CRS", "ICANS"], key="crs_swimlane_tab", on_change="rerun")
        for tab, syndrome in zip(tabs, ("CRS", "ICANS")):
            if not tab.open:
                continue
            with tab:
                d = daily[daily["syndrome"] == syndrome]
                if d.empty:
                    state.empty(f"This study has no {syndrome} daily grades in days 0-30 for this selection.")
                    continue
                state.chart(F.swimlane_heatmap, d, order, syndrome, labels=labels, key=f"swim_{syndrome}")


st.subheader("Tocilizumab, corticosteroids and anakinra")
if episodes.empty:
    state.empty("No episodes, so no toxicity management to show.")
else:
    # subjects, as the packet's CRS/ICANS summary counts them (a subject treated in two episodes is one)
    mgmt = state.q(f"""
        SELECT syndrome, count(*) AS episodes, count(DISTINCT usubjid) AS subjects,
               count(DISTINCT usubjid) FILTER (WHERE tocilizumab) AS subjects_tocilizumab,
               count(DISTINCT usubjid) FILTER (WHERE corticosteroid) AS subjects_corticosteroid,
               count(DISTINCT usubjid) FILTER (WHERE anakinra) AS subjects_anakinra,
               count(DISTINCT usubjid) FILTER (WHERE icu_level_support) AS subjects_icu_level_support,
               median(tocilizumab_first_day - onset_day) AS median_days_onset_to_tocilizumab
        FROM toxicity_episodes WHERE {flt} GROUP BY syndrome ORDER BY syndrome""", fp)
    st.caption("Subjects with an episode, and subjects treated with each (in any of their episodes), as the "
               "packet's CRS/ICANS summary counts them; the episode listing below has each episode's treatment.")
    state.table(mgmt, subject_col=None)
    ep_cols = ["usubjid", "syndrome", "episode_no", "onset_day", "duration_days", "max_grade", "max_grade_day",
               "ongoing", "tocilizumab", "tocilizumab_first_day", "corticosteroid", "corticosteroid_first_day",
               "anakinra", "icu_level_support", "source"]
    if len(episodes) > MAX_TABLE_ROWS:
        st.caption(f"Showing the {MAX_TABLE_ROWS:,} highest-grade of {len(episodes):,} episodes; "
                   "the full CRS/ICANS episode listing is on Listings & export.")
        state.table(episodes.sort_values(["max_grade", "usubjid"], ascending=[False, True])
                    .head(MAX_TABLE_ROWS)[ep_cols])
    else:
        state.table(episodes[ep_cols])

st.subheader("Derived vs reported grades")
if state.require("grade_discrepancies", what="the discrepancy check"):
    disc = state.q(f"SELECT * FROM grade_discrepancies WHERE {flt} ORDER BY usubjid, onset_day", fp)
    if disc.empty and state.not_delivered("AE"):  # no reported grade to compare with: nothing agrees
        state.empty(f"{not_delivered_note('AE')}: there are no reported grades to compare the derived ones with.")
    elif disc.empty:
        state.empty("Derived ASTCT grades agree with the reported AE grades for every episode in this selection.")
    else:
        # events counted as the Adverse events page and the packet count them (an episode with two kinds of
        # discrepancy is one event); the table lists each discrepancy
        differ = state.q(grade_discrepancy_events_sql(flt), fp)
        st.markdown(f"{grade_discrepancy_sentence(differ)}; {plural(len(disc), 'discrepancy', 'discrepancies')} below.")
        state.table(disc.drop(columns=["studyid", "data_cut"], errors="ignore"))

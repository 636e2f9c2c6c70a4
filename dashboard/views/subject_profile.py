"""Subject profile: one timeline from screening to month 12 and the subject's events."""
import streamlit as st

from dashboard import data, state
from dashboard import figures as F

v = state.view()
st.title("Subject profile")
flt, fp = state.subject_filter(v)
subjects = state.q(f"SELECT usubjid, siteid, cohort, status FROM subjects WHERE {flt} ORDER BY usubjid", fp)
if subjects.empty:
    state.empty("No subjects in this selection.")
    st.stop()
ids = list(subjects["usubjid"])
wanted = st.query_params.get("usubjid")
if wanted and wanted not in ids:
    st.warning(f"Subject {wanted} is not in this study, data cut, site scope or filter.")
index = ids.index(wanted) if wanted in ids else 0
usubjid = st.selectbox("Subject", ids, index=index, key=f"profile_subject_{wanted}")
if st.query_params.get("usubjid") != usubjid:
    st.query_params["usubjid"] = usubjid
state.log_subject_view(usubjid)
P = {"u": usubjid}

s = state.q("SELECT * FROM subjects WHERE usubjid = $u", P).iloc[0]
st.caption(state.filter_caption(v))
cols = st.columns(6)
cols[0].metric("Site", s["siteid"] or "-")
cols[1].metric("Dose level", s["dose_level"] or "-", help=f"Cohort: {s['cohort'] or '-'}")
cols[2].metric("Age / sex", f"{'' if s['age'] != s['age'] or s['age'] is None else int(s['age'])} / {s['sex'] or '-'}")
cols[3].metric("Status", s["status"] or "-")
cols[4].metric("Last known alive", "-" if s["last_known_alive_day"] is None or s["last_known_alive_day"] != s["last_known_alive_day"] else f"day {int(s['last_known_alive_day'])}")
cols[5].metric("Death", "-" if s["death_day"] is None or s["death_day"] != s["death_day"] else f"day {int(s['death_day'])}")
st.markdown(f"**Cohort:** {s['cohort'] or '-'} · **Diagnosis:** {s['diagnosis'] or '-'} · **Product:** {s['product'] or '-'}")
if not s["infused"]:
    state.empty("This subject was screened but not infused: there is no day 0, so no timeline.")

aes = state.q("""SELECT event_key, aedecod, aebodsys, aetoxgr, aesev, grading_system, aeser = 'Y' AS serious, related,
                        onset_day, end_day, ongoing, duration_days, aeout
                 FROM adverse_events WHERE usubjid = $u ORDER BY onset_day NULLS LAST, aeseq""", P)
daily = state.q("SELECT syndrome, day, max(grade) AS grade FROM toxicity_daily_grades WHERE usubjid = $u GROUP BY ALL ORDER BY day", P) \
    if state.has_tables("toxicity_daily_grades") else aes.iloc[0:0].assign(syndrome=None, day=None, grade=None)[["syndrome", "day", "grade"]]
meds = state.q("""SELECT med_class, cmdecod, start_day, end_day FROM medications
                  WHERE usubjid = $u AND med_class IN ('tocilizumab', 'corticosteroid', 'anakinra', 'vasopressor')
                  ORDER BY start_day""", P)
resp = state.q("SELECT day, response, visit FROM responses WHERE usubjid = $u ORDER BY day", P)
dlt_keys = []
if state.has_tables("dlt_candidates"):
    dlt_keys = list(state.q("SELECT DISTINCT event_key FROM dlt_candidates WHERE usubjid = $u", P)["event_key"])
dec = data.latest_decisions(v)
dlt_keys += list(dec.loc[(dec["usubjid"] == usubjid) & dec["decision"].isin(data.DLT_DECISIONS), "event_key"])
# Episode keys (<u>/CRS/1) flag the AE rows of that syndrome too, so the marker lands on a visible bar.
window = state.dlt_window(v)

if s["infused"]:
    end = 400 if (s["last_known_alive_day"] or 0) > 200 else max(60, int((s["last_known_alive_day"] or 30) + 10))
    start = int(s["lymphodepletion_start_day"]) - 2 if s["lymphodepletion_start_day"] == s["lymphodepletion_start_day"] and s["lymphodepletion_start_day"] is not None else -10
    zoom = st.radio("Days shown", ["Days -10 to 35 (acute)", f"Whole follow-up (to day {end})"], horizontal=True)
    day_range = (min(start, -10), 35) if zoom.startswith("Days -10") else (min(start, -10), end)
    if aes.empty and daily.empty:
        state.empty("This subject has no adverse events or CRS/ICANS grades at this data cut.")
    state.chart(F.subject_timeline, usubjid, aes, daily, meds, resp, s["death_day"], window, dlt_keys,
                                       day_range=day_range)
    labs = state.q("""SELECT l.lbtestcd, l.lbtest, l.day, l.value, l.unit, l.lln, l.uln, t.grade
                      FROM labs l LEFT JOIN lab_toxicity t USING (usubjid, lbseq)
                      WHERE l.usubjid = $u AND l.value IS NOT NULL ORDER BY l.day""", P) \
        if state.has_tables("lab_toxicity") else \
        state.q("SELECT lbtestcd, lbtest, day, value, unit, lln, uln, NULL::INTEGER AS grade FROM labs "
                "WHERE usubjid = $u AND value IS NOT NULL ORDER BY day", P)
    key = ["NEUT", "PLAT", "HGB", "ALT", "BILI", "CREAT", "CRP", "FERRITIN", "IL6"]
    available = [t for t in key if t in set(labs["lbtestcd"])] + sorted(set(labs["lbtestcd"]) - set(key))
    if not available:
        state.empty("This subject has no lab results.")
    else:
        chosen = st.multiselect("Labs", available, default=[t for t in ["NEUT", "PLAT", "ALT", "CRP"] if t in available] or available[:2])
        if chosen:
            state.chart(F.key_labs_figure, usubjid, labs, chosen, window, day_range=day_range)

st.subheader("Adverse events")
if aes.empty:
    state.empty("No adverse events recorded for this subject.")
else:
    shown = aes.copy()
    shown["DLT"] = shown["event_key"].isin(dlt_keys)
    st.dataframe(shown, hide_index=True, width="stretch")
if state.has_tables("toxicity_episodes"):
    ep = state.q("SELECT * EXCLUDE (studyid, data_cut, usubjid) FROM toxicity_episodes WHERE usubjid = $u ORDER BY onset_day", P)
    if not ep.empty:
        st.subheader("CRS / ICANS episodes (derived)")
        st.dataframe(ep, hide_index=True, width="stretch")
if not meds.empty:
    st.subheader("Toxicity management")
    st.dataframe(meds, hide_index=True, width="stretch")

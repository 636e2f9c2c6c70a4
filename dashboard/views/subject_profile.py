"""Subject profile: one timeline from lymphodepletion to the end of follow-up and the subject's events."""
import pandas as pd
import streamlit as st

from dashboard import data, state
from dashboard.tables import text
from safety.core.delivery import not_delivered_note
from safety.derive.outcomes import kinetics
from safety.review.dlt_status import on_reported_aes

v = state.view()
st.title("Subject profile")
flt, fp = state.subject_filter(v)
subjects = state.q(f"SELECT usubjid, siteid, cohort, status FROM subjects WHERE {flt} ORDER BY usubjid", fp)
ids = list(subjects["usubjid"])
wanted = st.query_params.get("usubjid")
if wanted and wanted not in ids and state.selection_moved():
    # the subject was open when the study, cut or a filter changed in the sidebar: no request for him here, so no
    # refusal either; the new selection's first subject opens
    st.info(f"Subject {state.plain_text(wanted[:80])} is not in this selection; its first subject is shown.")
    del st.query_params["usubjid"]
    wanted = None
if wanted and wanted not in ids:  # also when the scope has no subject at all: that refusal is audited too
    # Nothing but the message, the same whether the subject exists elsewhere or not; the attempt is audited, as
    # a view is. The id comes from the URL, so it is shown as plain text (a link or image in it must not render).
    st.warning(f"Subject {state.plain_text(wanted[:80])} is not in this study, data cut, site scope or filter.")
    state.log_subject_refused(wanted)
    if st.button("Choose another subject", key="profile_clear_subject"):
        del st.query_params["usubjid"]
        st.rerun()
    st.stop()
if subjects.empty:
    state.empty("No subjects in this selection.")
    st.stop()


def _picked() -> None:
    st.query_params["usubjid"] = st.session_state[PICKER]


# One key for the picker, the URL its one source: a pick writes the URL (before the rerun), a link or a reload
# names the subject in it. A key that changed with the URL's subject lost every other pick.
PICKER = "profile_subject"
if wanted in ids:
    st.session_state[PICKER] = wanted
elif st.session_state.get(PICKER) not in ids:
    st.session_state[PICKER] = ids[0]
usubjid = st.selectbox("Subject", ids, key=PICKER, on_change=_picked)
if st.query_params.get("usubjid") != usubjid:
    st.query_params["usubjid"] = usubjid
state.log_subject_view(usubjid)
d = data.subject_data(v, usubjid)  # one query per table, cached per cut and scope
s = d["subject"].iloc[0]
aes, meds = d["aes"], d["meds"]
st.caption(state.filter_caption(v))
dosing = d["dosing"]
car_days = sorted(set(dosing.loc[dosing["kind"] == "CAR infusion", "start_day"].astype(int)))
ld = dosing[dosing["kind"] == "Lymphodepletion"]
cols = st.columns(7)
cols[0].metric("Site", text(s["siteid"]))
cols[1].metric("Dose level", text(s["dose_level"]), help=f"Cohort: {text(s['cohort'])}")
cols[2].metric("Age / sex", f"{text(s['age'])} / {text(s['sex'])}")
cols[3].metric("Status", text(s["status"]))
cols[4].metric("Last known alive", "-" if pd.isna(s["last_known_alive_day"]) else f"day {int(s['last_known_alive_day'])}")
cols[5].metric("Death", "-" if pd.isna(s["death_day"]) else f"day {int(s['death_day'])}")
cols[6].metric("CAR infusions", "-" if pd.isna(s["infusions"]) else int(s["infusions"]),
               help="On days " + ", ".join(str(x) for x in car_days) if car_days else None)
ld_text = (f"days {int(ld['start_day'].min())} to {int(ld['end_day'].max())} "
           f"({', '.join(text(n) for n in sorted(set(ld['name'].dropna())))})" if not ld.empty else "not recorded")
st.markdown(f"**Cohort:** {text(s['cohort'])} · **Diagnosis:** {text(s['diagnosis'])} · **Product:** {text(s['product'])}"
            f" · **CAR infusions:** {', '.join(f'day {x}' for x in car_days) or 'none'}"
            f" · **Lymphodepletion:** {ld_text}")
if not s["infused"]:
    state.empty("This subject was screened but not infused: there is no day 0, so no timeline.")

# The charts mark DLTs that count now and candidates awaiting the committee, told apart (a rejected or
# out-of-window candidate is not drawn); AE keys, CRS/ICANS episode keys (<u>/CRS/1) and <u>/DEATH are all marked
# where drawn. The tables carry the AE listing's "Adjudicated DLT" words for every candidate.
dlt_keys, pending_keys = data.subject_dlt_keys(v, usubjid)
DLT_LABELS = data.subject_dlt_labels(v, usubjid)
window = state.dlt_window(v)

if s["infused"]:
    last = data.last_day_charted(d)
    start = int(s["lymphodepletion_start_day"]) - 2 if s["lymphodepletion_start_day"] == s["lymphodepletion_start_day"] and s["lymphodepletion_start_day"] is not None else -10
    zoom = st.radio("Days shown", ["Days -10 to 35 (acute)", f"Whole follow-up (to day {last})"], horizontal=True)
    # the whole follow-up reaches the last event drawn: a late event (a secondary malignancy) is never cut off
    day_range = (min(start, -10), 35) if zoom.startswith("Days -10") else (min(start, -10), max(60, last + 10))
    if aes.empty and d["daily"].empty:
        state.empty("This subject has no adverse events or CRS/ICANS grades at this data cut.")
    # One chart at a time: only the open tab runs, and the browser draws one chart (each Plotly chart costs it two
    # full draws when it appears), so the profile answers at once on every visit. The day range is shared.
    _pc = None
    if state.has_tables("pc_concentrations", "cellular_kinetics"):
        _pc = state.q(f"SELECT pctestcd, main_unit AS unit, day, value, lloq, below_lloq, used "
                      f"FROM {kinetics.curve_samples('usubjid = $u')} ORDER BY day", {"u": usubjid})
    names = ["Timeline", "Key labs"] + (["CAR expansion and persistence"] if _pc is not None and not _pc.empty else [])
    views = st.tabs(names, key="profile_view_tab", on_change="rerun")
    if views[0].open:
        with views[0]:
            state.draw_figure(data.subject_figure(v, usubjid, "timeline", window, day_range, dlt_keys,
                                                  pending_keys=pending_keys), key="timeline")
    if views[1].open:
        with views[1]:
            labs = d["labs"]
            key = ["NEUT", "PLAT", "HGB", "ALT", "BILI", "CREAT", "CRP", "FERRITIN", "IL6"]
            present = set(labs["lbtestcd"])
            available = [t for t in key if t in present] + sorted(present - set(key))
            if not available:
                state.empty("This subject has no lab results.")
            else:
                default = [t for t in ["NEUT", "PLAT", "ALT", "CRP"] if t in available] or available[:2]
                chosen = st.multiselect("Labs", available, default=default)
                if chosen:
                    state.draw_figure(data.subject_figure(v, usubjid, "labs", window, day_range, dlt_keys,
                                                          tests=tuple(chosen), pending_keys=pending_keys),
                                      key="labs")
    if len(views) > 2 and views[2].open:
        with views[2]:
            # Cellular kinetics beside the CRS/ICANS grades (PC), when delivered.
            from dashboard import figures_outcomes

            # the samples the parameters are computed from (blood, the subject's unit), as the table below
            drawn = _pc[_pc["used"]].copy()
            drawn["lloq"] = drawn["lloq"].fillna(drawn["value"].min())
            if drawn.empty:
                state.empty("No peripheral-blood sample in the subject's unit to draw.")
            else:
                state.chart(figures_outcomes.subject_kinetics, drawn, d["daily"], usubjid, key="profile_kinetics")
            not_drawn = figures_outcomes.samples_not_drawn(_pc)
            if not_drawn:
                st.caption(not_drawn)
            _kin = state.q("SELECT * EXCLUDE (studyid, data_cut, usubjid) FROM cellular_kinetics WHERE usubjid = $u",
                           {"u": usubjid})
            state.table(_kin, subject_col=None)

ep = d["episodes"]
st.subheader("Adverse events")
if aes.empty:
    # no AE file at this cut is no data, not a subject without adverse events
    state.empty(f"{not_delivered_note('AE')}: no adverse events can be shown for this subject."
                if state.not_delivered("AE") else "No adverse events recorded for this subject.")
else:
    shown = aes.copy()
    # a CRS/ICANS episode's mark also on the AE the site reported it as, as the AE listing shows it
    linked = ep.dropna(subset=["ae_event_key"]) if "ae_event_key" in ep else ep.iloc[0:0]
    marks = on_reported_aes(DLT_LABELS, linked.groupby("ae_event_key")["event_key"].agg(list).to_dict()
                            if len(linked) else {})
    shown["adjudicated_dlt"] = shown["event_key"].map(marks)
    state.table(shown, subject_col=None)
if not ep.empty:
    st.subheader("CRS / ICANS episodes (derived)")
    shown = ep.copy()
    if "event_key" in shown:
        shown.insert(0, "adjudicated_dlt", shown["event_key"].map(DLT_LABELS))
    state.table(shown, subject_col=None)
if not meds.empty:
    st.subheader("Toxicity management")
    state.table(meds, subject_col=None)

"""Overview: enrolment and follow-up, DLTs, SAEs, severe CRS/ICANS, the stopping rule, what is new."""
import pandas as pd
import streamlit as st

from dashboard import data, state
from dashboard import figures as F
from safety.derive.dlt.stopping import chart_title, event_label

v = state.view()
user = state.user()
st.title("Safety overview")
st.caption(state.filter_caption(v))
flt, fp = state.subject_filter(v)

c = state.q(f"""
    SELECT count(*) AS screened,
           count(*) FILTER (WHERE infused) AS infused,
           count(*) FILTER (WHERE status = 'in follow-up') AS in_follow_up,
           count(*) FILTER (WHERE status = 'completed') AS completed,
           count(*) FILTER (WHERE status = 'discontinued') AS discontinued,
           count(*) FILTER (WHERE status = 'died') AS died
    FROM subjects WHERE {flt}""", fp).iloc[0]
st.subheader("Subjects")
cols = st.columns(6)
for col, (label, key, help_text) in zip(cols, [
        ("Screened", "screened", "Subjects in DM at this data cut"),
        ("Infused", "infused", "Received at least one CAR infusion"),
        ("In follow-up", "in_follow_up", "Infused, alive, before month 12"),
        ("Completed month 12", "completed", "Reached the month-12 visit"),
        ("Discontinued", "discontinued", "Left the study early, alive"),
        ("Died", "died", "Died on or before the data cut")]):
    col.metric(label, int(c[key]), help=help_text)

st.subheader("Toxicity")
dlt = data.dlt_status(v)  # decisions applied now: the same numbers the packet prints
sae = state.q(f"""SELECT count(*) AS events, count(DISTINCT usubjid) AS subjects
                  FROM adverse_events WHERE aeser = 'Y' AND {flt}""", fp).iloc[0]
sev = {"CRS": None, "ICANS": None}
if state.has_tables("toxicity_episodes"):
    g3 = state.q(f"""SELECT syndrome, count(DISTINCT usubjid) AS subjects FROM toxicity_episodes
                     WHERE max_grade >= 3 AND {flt} GROUP BY syndrome""", fp)
    sev = {s: int(g3.loc[g3["syndrome"] == s, "subjects"].sum()) for s in sev}
cols = st.columns(6)
cols[0].metric("DLT-evaluable", dlt.counts.evaluable,
               help="Infused and followed through the DLT window, or had a confirmed DLT")
cols[1].metric("DLTs confirmed", dlt.counts.confirmed_subjects, help="Subjects with a DLT confirmed or added by the committee")
cols[2].metric("DLTs pending", dlt.counts.pending, help="Candidates in the DLT window awaiting adjudication")
cols[3].metric("SAEs", int(sae["events"]), help=f"Serious adverse events in {int(sae['subjects'])} subjects")
cols[4].metric("CRS grade ≥3", "n/a" if sev["CRS"] is None else sev["CRS"], help="Subjects with a CRS episode of grade 3 or more (ASTCT)")
cols[5].metric("ICANS grade ≥3", "n/a" if sev["ICANS"] is None else sev["ICANS"], help="Subjects with an ICANS episode of grade 3 or more (ASTCT)")

st.subheader("Stopping rule")
if v.sites is not None:
    state.empty("Study-wide stopping-rule status is shown only to roles that see every site.")
else:
    status = dlt.stopping  # computed now from the decisions in force, not the copy stored at load
    if status.empty:
        state.empty("No stopping-rule status was derived for this data cut.")
    else:
        for _, r in status.iterrows():
            decision = str(r["decision"] or "").lower()
            box = st.error if decision in ("stop", "eliminate", "de-escalate") else st.success
            box(("**" + str(r["cohort"]) + "**: " if r["cohort"] else "") + str(r["sentence"]))
        first = status.iloc[0]
        if state.has_tables("stopping_boundaries"):
            b = data.boundary_rows(v, first["method"], first["cohort"])
            same = status[status["method"] == first["method"]]
            pts = pd.DataFrame({"label": same["cohort"].fillna("study"), "n": same["evaluable_n"], "events": same["events"]})
            if b.empty:
                state.empty("No boundary table was derived for this rule.")
            else:
                state.chart(F.stopping_boundary_chart, b, points=pts, event_label=event_label(first["monitored_event"]),
                            title=chart_title(first["method"], first["monitored_event"]))

st.subheader("What is new")
store = state.review_store(v.db_path)
signoffs = [s for s in store.signoffs(v.studyid) if s["data_cut"] < v.data_cut.isoformat()]
last_signed = max((s["data_cut"] for s in signoffs), default=None)
import datetime as _dt  # noqa: E402
options = {}
if v.previous_cut:
    options[f"since the previous data cut ({v.previous_cut.isoformat()})"] = v.previous_cut
if last_signed:
    options[f"since the last signed-off cut ({last_signed})"] = _dt.date.fromisoformat(last_signed)
if not options:
    state.empty("This is the first data cut of the study: nothing to compare with yet.")
else:
    label = st.radio("Compare", list(options), horizontal=True, label_visibility="collapsed")
    ch = data.changes(v, options[label])
    if ch.empty:
        state.empty("No new subjects, events, grade changes or DLT candidates since that cut.")
    else:
        keys = [c for c in ("category", "change") if c in ch.columns]
        summary = ch.groupby(keys).size().rename("n").reset_index()
        st.markdown(" · ".join(f"**{r.n}** " + " ".join(str(getattr(r, k)).replace("_", " ") for k in reversed(keys))
                               for r in summary.itertuples()))
        state.table(ch)

if state.can(user, "can_sign_off"):
    st.subheader("Committee sign-off")
    done = [s for s in store.signoffs(v.studyid) if s["data_cut"] == v.data_cut.isoformat()]
    for s in done:
        st.success(f"Signed off by {s['reviewer']} at {s['signed_at'][:16]} UTC: {s['comment']}")
    with st.form("signoff"):
        comment = st.text_area("Comment for the record", placeholder="Reviewed at the safety review meeting of ...")
        if st.form_submit_button("Mark this data cut as reviewed"):
            if not comment.strip():
                st.error("A sign-off needs a comment.")
            else:
                store.add_signoff(studyid=v.studyid, data_cut=v.data_cut.isoformat(),
                                  reviewer=getattr(user, "username", "?"), comment=comment)
                st.success("Sign-off recorded.")
                st.rerun()

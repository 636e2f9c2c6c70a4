"""DLT review: candidates with evidence, the adjudication form, history, evaluability, the stopping boundary."""
import pandas as pd
import streamlit as st

from dashboard import data, state
from dashboard.tables import plural, text
from dashboard.figures_svg import rule_boundary_svg
from safety.core.vocabulary import CLI_DECISIONS
from safety.derive.dlt.decisions import record_decision
from safety.derive.dlt.stopping import event_label, method_name
from safety.review import meeting as meeting_rules
from safety.review.dlt_status import counted_on_decision_note

BOX = {meeting_rules.CROSSED: st.error, meeting_rules.NEAR: st.warning, meeting_rules.INSIDE: st.success}
MAX_TABLE_ROWS = 1000  # candidate and evaluability rows shown on the page
MAX_PICKER_OPTIONS = 500  # candidates offered in the adjudication list at once

v = state.view()
user = state.user()
st.title("DLT review")
w0, w1 = state.dlt_window(v)
st.caption(state.filter_caption(v) + f" · DLT window days {w0}-{w1} from infusion")
flt, fp = state.subject_filter(v)

if not state.require("dlt_candidates", what="DLT review"):
    st.stop()
# DLT rules read the AEs and the CRS/ICANS grades: one not delivered is events not screened, not none
state.note_not_delivered("AE", "CRS", "ICANS", what="the candidates and counts below")
status = data.dlt_status(v)  # decisions applied now: the same numbers the packet prints
cands = status.review
m = st.columns(4)
m[0].metric("Candidates", len(cands), help="Events flagged by the protocol's DLT rules at this data cut, and "
                                           "events the committee adjudicated")
m[1].metric("Pending adjudication", status.counts.pending, help="Candidates in the DLT window awaiting a decision")
m[2].metric("Confirmed DLTs (subjects)", status.counts.confirmed_subjects)
m[3].metric("Rejected", status.counts.rejected)

st.subheader("Candidates and evidence")
if cands.empty:
    state.empty("No event meets a DLT rule in this selection at this data cut.")
else:
    shown = cands.copy()
    # "pending" as the tile counts it: an undecided candidate outside the DLT window is not awaiting a decision
    awaiting = shown["pending"].fillna(False).astype(bool)
    shown["decision"] = shown["decision"].mask(shown["decision"].isna() & awaiting, "pending")
    keep = ["usubjid", "event_key", "status", "adjudicated_dlt", "rule_id", "reason", "term", "onset_day", "grade",
            "duration_days", "ongoing", "in_window", "decision", "needs_rereview", "reviewer", "decided_at", "evidence"]
    if len(shown) > MAX_TABLE_ROWS:
        # Pending in-window candidates are what the committee works through; the full list is in the DLT listing.
        shown = shown.sort_values(["in_window", "decision", "usubjid"], ascending=[False, False, True])
        st.caption(f"Showing {MAX_TABLE_ROWS:,} of {len(shown):,} candidates (in window first); "
                   "all of them are in the DLT listing on Listings & export.")
        shown = shown.head(MAX_TABLE_ROWS)
    state.table(shown[keep], export_name="dlt_candidates", title="DLT candidates and decisions")


if state.can(user, "can_adjudicate"):
    st.subheader("Adjudicate")
    subjects = list(state.q(f"SELECT usubjid FROM subjects WHERE infused AND {flt} ORDER BY usubjid", fp)["usubjid"])
    mode = st.radio("Action", ["Decide on a candidate", "Add a DLT the rules missed"], horizontal=True)
    if mode == "Decide on a candidate":
        needle = ""
        if len(cands) > MAX_PICKER_OPTIONS:
            # Tens of thousands of options make a slow, unusable list: a search narrows it first.
            needle = st.text_input("Find a candidate (subject id, rule or term)", key="dlt_find").strip()
        ordered, label_of, matched = data.candidate_choices(cands, needle, limit=MAX_PICKER_OPTIONS)
        if len(cands) > MAX_PICKER_OPTIONS:
            st.caption(f"{matched:,} candidates match; the list offers the first {MAX_PICKER_OPTIONS} "
                       "(undecided in-window first).")
    with st.form("adjudicate", clear_on_submit=True):
        if mode == "Decide on a candidate":
            if ordered.empty:
                st.write("No candidates to decide on.")
            key = st.selectbox("Candidate", list(ordered["event_key"]) if not ordered.empty else [],
                               format_func=lambda k: label_of.get(k, k))
            decision = st.radio("Decision", list(CLI_DECISIONS), horizontal=True)
        else:
            usubjid = st.selectbox("Subject", subjects)
            aes = state.q("SELECT event_key, aedecod, aetoxgr, onset_day FROM adverse_events WHERE usubjid = $u ORDER BY onset_day",
                          {"u": usubjid}) if usubjid else None
            keys = list(aes["event_key"]) if aes is not None else []
            key = st.selectbox("Event", keys)
            decision = "added"
        rationale = st.text_area("Rationale (required, goes on the record)")
        submitted = st.form_submit_button("Record decision", type="primary")
    if submitted:
        if not key:
            st.error("Choose an event.")
        elif not rationale.strip():
            st.error("A decision needs a rationale.")
        else:
            store = state.review_store(v.db_path)
            try:
                record_decision(store, state.reader(v), key, decision, rationale, getattr(user, "username", "?"))
            except ValueError as exc:  # the decision is refused when it does not fit the cut: say why
                st.error(text(exc))
                st.stop()
            st.success(f"Recorded: {text(key)} {decision}.")
            st.rerun()
else:
    st.caption("Adjudication is open to committee members only.")

st.subheader("Decision history")
all_hist = state.review_store(v.db_path).adjudication_history(v.studyid)
keep_subjects = set(state.q(f"SELECT usubjid FROM subjects WHERE {flt}", fp)["usubjid"])
hist = [h for h in all_hist if h["usubjid"] in keep_subjects]
if not hist:
    # a site scope is not told whether decisions on other sites' subjects exist; an all-sites one is
    state.empty("No adjudications recorded yet for this study." if not all_hist and v.sites is None else
                "No adjudications for the subjects in this selection (site scope and filters).")
else:
    # the store numbers every site's decisions: gaps in a site scope's ids would count the others
    state.table(pd.DataFrame(hist).sort_values("id", ascending=False)
                .drop(columns=["studyid"] + (["id"] if v.sites is not None else [])))

st.subheader("Evaluability")
ev = status.evaluability.drop(columns=["studyid", "data_cut"]).sort_values(["cohort", "usubjid"])
if not status.counts.infused:
    state.empty("No infused subjects in this selection.")
else:
    st.markdown(f"**{status.counts.evaluable}** of {plural(status.counts.infused, 'infused subject')} "
                + ("is" if status.counts.evaluable == 1 else "are") + " DLT-evaluable.")
    # the subjects counted on a committee DLT decision alone: infused here as on the overview and in the rules
    if (on_decision := counted_on_decision_note(status)) is not None:
        st.warning(text(on_decision), icon=":material/warning:")
    if len(ev) > MAX_TABLE_ROWS:
        st.caption(f"Showing {MAX_TABLE_ROWS:,} of {len(ev):,} subjects, those not evaluable first; "
                   "the sidebar's cohort filter narrows the list.")
        ev = ev.sort_values(["evaluable", "cohort", "usubjid"]).head(MAX_TABLE_ROWS)
    state.table(ev)

st.subheader("Stopping boundary")
if v.sites is not None:
    state.empty("Study-wide stopping boundaries are shown only to roles that see every site.")
else:
    st_rows = status.stopping  # computed now from the decisions in force, not the copy stored at load
    if st_rows.empty:
        state.empty("No stopping-rule status was derived for this data cut.")
    else:
        state.rules_not_filtered(v)
    for method, rows in st_rows.groupby("method", sort=False):
        for _, r in rows.iterrows():
            level = meeting_rules.rule_level(r)
            label = text(r["cohort"]) if pd.notna(r["cohort"]) else "Study"
            BOX[level](f"**{label}** · {method_name(r['method'])} · monitored: "
                       f"{event_label(r['monitored_event'], status.window)} — {text(r['sentence'])}")
        b = data.boundary_rows(v, method, rows["cohort"].iloc[0])
        if b.empty:
            state.empty(f"No boundary table for {method}.")
            continue
        pts = pd.DataFrame({"label": rows["cohort"].fillna("study"), "n": rows["evaluable_n"], "events": rows["events"]})
        c1, c2 = st.columns([2, 1])
        event = rows["monitored_event"].iloc[0]
        state.draw_svg(rule_boundary_svg(b, pts, method, event, status.window), where=c1)
        b = b.assign(method=b["method"].map(method_name)) if "method" in b else b  # 'BOIN', not the code 'boin'
        state.table(b.drop(columns=["studyid", "data_cut"], errors="ignore").dropna(axis=1, how="all"),
                    subject_col=None, where=c2)

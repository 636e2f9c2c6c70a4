"""Overview: the meeting's five questions on the first screen (boundaries, DLT candidates, deaths, severe
CRS/ICANS/infections, what is new), then enrolment and follow-up, the stopping rule chart and sign-off."""
import datetime as _dt

import pandas as pd
import streamlit as st

from dashboard import data, state, tables
from dashboard.tables import plural, text
from dashboard.figures_svg import rule_boundary_svg
from safety.core.delivery import NOT_DELIVERED, domain_label
from safety.core.numbers import of_n
from safety.core.vocabulary import SUBJECT_DISPOSITION, SUBJECT_DISPOSITION_COUNTS, counted_ae
from safety.derive.dlt.stopping import event_label, method_name
from safety.review import meeting as meeting_rules
from safety.review.dlt_status import counted_on_decision_by_cohort, counted_on_decision_note

v = state.view()
user = state.user()
# The five answers must fit one 1440 x 900 screen: less padding above the title and between the links.
st.markdown("""<style>
.block-container {padding-top: 2.2rem;}
.block-container h1 {font-size: 2.1rem; padding-bottom: 0.2rem;}
.block-container h5 {padding-top: 0.3rem; padding-bottom: 0.3rem;}
div[data-testid="stPageLink"] a {padding-top: 0; padding-bottom: 0; min-height: 1.5rem;}
div[data-testid="stPageLink"] a * {white-space: normal; overflow: visible; text-overflow: clip;}
div[data-testid="stAlert"] > div {padding: 0.4rem 0.7rem;}
</style>""", unsafe_allow_html=True)
st.title("Safety overview")
st.caption(state.filter_caption(v))
flt, fp = state.subject_filter(v)

MAX_NAMES = 6  # names per question on the first screen; the rest are one click away
PROFILE = "views/subject_profile.py"
BOX = {meeting_rules.CROSSED: "error", meeting_rules.NEAR: "warning", meeting_rules.INSIDE: "success"}


def names(rows: pd.DataFrame, label, where, more: str) -> None:
    """One link per row to the subject's profile (same session, same study and cut)."""
    for r in rows.head(MAX_NAMES).itertuples():
        where.page_link(PROFILE, label=label(r), query_params={"usubjid": r.usubjid, "studyid": v.studyid,
                                                               "cut": v.data_cut.isoformat()})
    if len(rows) > MAX_NAMES:
        where.caption(f"and {len(rows) - MAX_NAMES} more: {more}")


def new_counts_line(k: dict) -> str:
    """The headline of what is new since a cut (:func:`safety.review.meeting.new_counts`); new DLT candidates
    outside the DLT window, listed below it, are counted apart: they await no decision."""
    outside = k["dlt_candidates_outside"]
    return (f"**{plural(k['deaths'], 'new death')}** · **{plural(k['dlt_candidates'], 'new DLT candidate')}**"
            + (f" (and {outside} outside the DLT window)" if outside else "")
            + f" · **{plural(k['saes'], 'new SAE')}** · **{plural(k['grade3_plus'], 'new grade ≥3 AE')}**")


def grade_text(g) -> str:
    return "" if g is None or pd.isna(g) else f"grade {int(g)}"


m = data.meeting(v)
prev_text = f"since {m.previous_cut.isoformat()}" if m.previous_cut else "at this first data cut"
q1, q2, q3 = st.columns([1.25, 1, 1], gap="medium")
q4, q5 = st.columns([1, 1.25], gap="medium")

methods = sorted({method_name(x) for x in m.rules["method"].dropna()}) if not m.rules.empty else []
q1.markdown("##### Stopping and escalation boundaries" + (f" ({', '.join(methods)})" if methods else ""))
if v.sites is not None:
    q1.caption("Study-wide boundaries are shown only to roles that see every site.")
elif m.rules.empty:
    q1.caption("No stopping rule status for this data cut.")
else:
    state.rules_not_filtered(v, where=q1)
    for r in m.rules.itertuples():
        now = f"{r.decision}: " + (f"{r.events} of {r.evaluable_n} with a {r.event_label}" if r.evaluable_n
                                   else f"no subject evaluable yet for {r.event_label}")
        # a boundary crossed only if the pending candidates are confirmed leads with that, in red: read first,
        # the decision as it stands ("escalate") would say the opposite of the box
        box = (f"**{text(r.label)}** · {r.status_text} · now {now}" if r.level == meeting_rules.CROSSED
               and not r.adjudicated_crossed else f"**{text(r.label)}** · {now} · {r.status_text}")
        getattr(q1, BOX[r.level])(box, icon=":material/error:" if r.level == meeting_rules.CROSSED else
                     ":material/warning:" if r.level == meeting_rules.NEAR else ":material/check_circle:")

def none_of(what: str, *domains: str) -> str:
    """'No <what>.', or, with some of ``domains`` (those it is read from) not delivered at this cut, the same
    in what was delivered, naming them (briefly: the warning above the tiles says why): a domain not delivered
    could hold some."""
    unseen = [domain_label(d) for d in state.not_delivered(*domains)]
    return f"No {what}" + (f" in what was delivered ({', '.join(unseen)} not delivered at this data cut)."
                           if unseen else ".")


q2.markdown("##### DLT candidates new or pending")
if m.dlt_candidates.empty:
    q2.caption(none_of("new or pending DLT candidates", "AE", "CRS", "ICANS"))
else:
    names(m.dlt_candidates, lambda r: f"**{text(r.usubjid)}** "
          + (f"{text(r.term)} {grade_text(r.grade)}" if isinstance(r.term, str) else "(event not in this data cut)")
          + f" · {r.state}"
          + (" · new" if r.new and m.previous_cut else ""), q2, "see DLT review")
q3.markdown(f"##### Deaths {prev_text}")
if m.deaths.empty:
    q3.caption(none_of("deaths", "DS", "AE"))
else:
    names(m.deaths, lambda r: f"**{text(r.usubjid)}** day {'?' if pd.isna(r.death_day) else int(r.death_day)}: "
          f"{text(r.death_cause)}", q3, "see the deaths listing on Listings & export")

q4.markdown(f"##### Grade ≥3 CRS, ICANS or infection {prev_text}")
if m.severe.empty:
    q4.caption(none_of("grade ≥3 CRS, ICANS or infection", "AE", "CRS", "ICANS"))
else:
    names(m.severe, lambda r: f"**{text(r.usubjid)}** {text(r.toxicity)}"
          + (f" ({text(r.term)})" if r.term != r.toxicity else "") + f" {grade_text(r.grade)}"
          + ("" if pd.isna(r.onset_day) else f", day {int(r.onset_day)}"), q4, "see CRS & ICANS and Adverse events")
basis = "last signed-off cut" if m.since_signed_off else "previous cut"
q5.markdown(f"##### New since the {basis}" + (f" ({m.since.isoformat()})" if m.since else ""))
if m.since is None:
    q5.caption("This is the first data cut of the study: nothing to compare with yet.")
else:
    k = m.counts
    q5.markdown(new_counts_line(k))
    if m.new.empty:
        q5.caption("No new or changed events.")
    else:
        names(meeting_rules.one_line_per_event(m.new),
              lambda r: f"**{text(r.usubjid)}** {r.change}: {text(r.description)}" + (" · serious" if r.serious else ""),
              q5, "see What is new below, most severe first")

st.divider()

c = state.q(f"SELECT {SUBJECT_DISPOSITION_COUNTS} FROM subjects WHERE {flt}", fp).iloc[0]
disposition = {label: int(c[f"n{i}"]) for i, (label, _, _) in enumerate(SUBJECT_DISPOSITION)}
dlt = m.dlt  # decisions applied now (computed once with the answers above): the numbers the packet prints
# a subject counted as infused on a committee DLT decision alone (not in this cut, or no infusion in it) is screened
# and infused here as in the DLT review, the stopping rules and the packet's disposition and DLT summary: one
# denominator (docs/dlt.md)
in_cut_infused = disposition["Infused"]
extra = counted_on_decision_by_cohort(dlt).values()
disposition["Screened"] += sum(gone for gone, _ in extra)
disposition["Infused"] += sum(n for _, n in extra)
st.subheader("Subjects")
cols = st.columns(len(SUBJECT_DISPOSITION))
for col, (label, _, help_text) in zip(cols, SUBJECT_DISPOSITION):
    if label in ("Screened", "Infused") and dlt.counts.counted_on_decision:
        help_text += (", and those counted on a committee DLT decision in force though this data cut does not hold "
                      "them or their infusion (below)")
    col.metric(label, disposition[label], help=help_text)
if (on_decision := counted_on_decision_note(dlt)) is not None:
    st.warning(text(on_decision) + " They are counted as screened and infused above; the other tiles count this data "
               "cut's subjects.", icon=":material/warning:")

st.subheader("Toxicity")
# the AEs the packet's AE overview and the Adverse events page count: an SAE of a subject never infused is not one
sae = state.q(f"""SELECT count(*) AS events, count(DISTINCT usubjid) AS subjects
                  FROM adverse_events a WHERE a.aeser = 'Y' AND {counted_ae('a')} AND {flt}""", fp).iloc[0]
sev = {"CRS": None, "ICANS": None}
if state.has_tables("toxicity_episodes"):
    g3 = state.q(f"""SELECT syndrome, count(DISTINCT usubjid) AS subjects FROM toxicity_episodes
                     WHERE max_grade >= 3 AND {flt} GROUP BY syndrome""", fp)
    sev = {s: int(g3.loc[g3["syndrome"] == s, "subjects"].sum()) for s in sev}
# a domain not delivered is no data, not zero events: its tiles say so (and the note above them which one)
missing = state.note_not_delivered("AE", "CRS", "ICANS", what="the tiles and the stopping rule below")
no_dlt_source = len(missing) == 3  # DLTs are read from AEs and the CRS/ICANS grades: none of them delivered
cols = st.columns(6)
cols[0].metric("DLT-evaluable", dlt.counts.evaluable,
               help="Infused and followed through the DLT window, or had a confirmed DLT")
cols[1].metric("DLTs confirmed", NOT_DELIVERED if no_dlt_source else dlt.counts.confirmed_subjects,
               help="Subjects with a DLT confirmed or added by the committee")
cols[2].metric("DLT candidates pending", NOT_DELIVERED if no_dlt_source else dlt.counts.pending,
               help="Candidate events in the DLT window awaiting adjudication, in "
                    f"{plural(dlt.counts.pending_subjects, 'subject')}")
# events and subjects side by side, both of the safety population: the packet's AE overview counts subjects
cols[3].metric("SAEs: events (subjects)",
               NOT_DELIVERED if "AE" in missing else f"{int(sae['events'])} ({int(sae['subjects'])})",
               help=f"{plural(int(sae['events']), 'serious adverse event')} in {plural(int(sae['subjects']), 'subject')}: "
                    "treatment-emergent SAEs of infused subjects, as the packet's AE overview counts its subjects and "
                    "the Adverse events page (Serious only) its events; the SAE listing also lists the SAEs of "
                    "subjects never infused")
# of the infused subjects this cut holds, as the CRS & ICANS page says it (it holds no episode of a subject counted on
# a DLT decision alone)
infused = in_cut_infused
for col, syndrome in zip(cols[4:], ("CRS", "ICANS")):
    col.metric(f"{syndrome} grade ≥3", NOT_DELIVERED if syndrome in missing
               else "n/a" if sev[syndrome] is None else of_n(sev[syndrome], infused),
               help=f"Infused subjects with any {syndrome} episode of grade 3 or more (ASTCT), of the {infused} infused"
                    + (" in this data cut" if dlt.counts.counted_on_decision else ""))

st.subheader("Stopping rule")
if v.sites is not None:
    state.empty("Study-wide stopping-rule status is shown only to roles that see every site.")
else:
    status = dlt.stopping  # computed now from the decisions in force, not the copy stored at load
    if no_dlt_source and not status.empty:
        st.warning("The rule below counts no events: AE, CRS and ICANS assessments were not delivered at this data "
                   "cut, so its 'continue' is no data, not subjects without events.", icon=":material/block:")
    if status.empty:
        state.empty("No stopping-rule status was derived for this data cut.")
    else:
        for _, r in status.iterrows():
            level = meeting_rules.rule_level(r)
            # the sentence says "had a DLT"; the label beside it names the window the rule counts in, as on DLT review
            getattr(st, BOX[level])((f"**{text(r['cohort'])}**: " if pd.notna(r["cohort"]) else "")
                                    + f"Monitored: {event_label(r['monitored_event'], dlt.window)} — {text(r['sentence'])}")
        first = status.iloc[0]
        if state.has_tables("stopping_boundaries"):
            b = data.boundary_rows(v, first["method"], first["cohort"])
            same = status[status["method"] == first["method"]]
            pts = pd.DataFrame({"label": same["cohort"].fillna("study"), "n": same["evaluable_n"], "events": same["events"]})
            if b.empty:
                state.empty("No boundary table was derived for this rule.")
            else:
                state.draw_svg(rule_boundary_svg(b, pts, first["method"], first["monitored_event"], dlt.window))

st.subheader("What is new")
store = state.review_store(v.db_path)
signoffs = [s for s in store.signoffs(v.studyid) if s["data_cut"] < v.data_cut.isoformat()]
last_signed = max((s["data_cut"] for s in signoffs), default=None)
options = {}
previous = v.previous_cut.isoformat() if v.previous_cut else None
if previous:
    signed = ", the last signed off" if last_signed == previous else ""
    options[f"since the previous data cut ({previous}{signed})"] = v.previous_cut
if last_signed and last_signed != previous:  # one choice per cut: the same cut twice compared the same rows
    options[f"since the last signed-off cut ({last_signed})"] = _dt.date.fromisoformat(last_signed)
if not options:
    state.empty("This is the first data cut of the study: nothing to compare with yet.")
else:
    label = st.radio("Compare", list(options), horizontal=True, label_visibility="collapsed")
    base = options[label]
    ch = m.new if base == m.since else data.new_events(v, base)  # the answers above hold the default comparison
    if ch.empty:
        state.empty("No new subjects, events, grade changes or DLT candidates since that cut.")
    else:
        k = meeting_rules.new_counts(ch)
        st.markdown(f"{new_counts_line(k)} · "
                    f"{plural(len(ch), 'new or changed event')} in all, most severe first (deaths, DLT candidates, "
                    "then by grade, serious before non-serious)")
        state.table(ch.drop(columns=["rank", "episode_key"]), export_name="new_since",
                    title=f"New or changed since {base.isoformat()}")

if state.can(user, "can_sign_off"):
    st.subheader("Committee sign-off")
    done = [s for s in store.signoffs(v.studyid) if s["data_cut"] == v.data_cut.isoformat()]
    for s in done:
        st.success(f"Signed off by {text(s['reviewer'])} at {s['signed_at'][:16]} UTC: {text(s['comment'])}")
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

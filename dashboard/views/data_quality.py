"""Data quality: load log with file hashes and the files not read as delivered, quarantined rows, missing grades,
AE grades CTCAE does not define for the term, eligibility deviations, derived-vs-reported discrepancies,
vasopressors in CM that the bedside CRS assessments do not record."""
import streamlit as st

from dashboard import state
from dashboard.tables import plural, text
from safety.core.config import settings_changed_note
from safety.core.vocabulary import dropped_domains_note
from safety.derive.toxicity.support_check import unrecorded_vasopressors_sql

v = state.view()
st.title("Data quality")
st.caption(state.filter_caption(v))
flt, fp = state.subject_filter(v)

log = state.q("SELECT * FROM load_log ORDER BY loaded_at, domain")
quar = state.q("SELECT * FROM quarantine ORDER BY domain, row_number") if v.sites is None else None
missing_ae = state.q(f"""SELECT usubjid, event_key, aedecod, aesev, grading_system, onset_day FROM adverse_events
                         WHERE aetoxgr IS NULL AND {flt} ORDER BY usubjid, onset_day""", fp)
missing_lab = state.q(f"""SELECT ctcae_term, grade_reason, count(*) AS results, count(DISTINCT usubjid) AS subjects
                          FROM lab_toxicity WHERE grade IS NULL AND {flt} GROUP BY ALL ORDER BY results DESC""", fp) \
    if state.has_tables("lab_toxicity") else None
m = st.columns(4)
m[0].metric("Files loaded", len(log))
m[1].metric("Rows quarantined", "n/a" if quar is None else len(quar))
m[2].metric("AEs without a toxicity grade", len(missing_ae))
m[3].metric("Lab results not gradable", "n/a" if missing_lab is None else int(missing_lab["results"].sum()))

st.subheader("Load log")
for f in log[log["notes"].notna()].itertuples():
    st.warning(f"**{text(f.source_file)}**: {text(f.notes)}")  # file names and headers as delivered
if v.previous_cut is not None:
    before = state.q("SELECT domains_present, config_json FROM prev_studies")
    now = state.q("SELECT domains_present, config_json FROM studies")

    def first(df, col):
        return df[col][0] if len(df) else None

    dropped = dropped_domains_note(first(before, "domains_present"), first(now, "domains_present"), v.previous_cut)
    moved = settings_changed_note(first(before, "config_json"), first(now, "config_json"), v.previous_cut)
    for note in (dropped, moved):
        if note:
            st.warning(note + ".")
if log.empty:
    state.empty("No load log for this data cut.")
else:
    state.table(log.drop(columns=["studyid"], errors="ignore"), subject_col=None,
                column_config={"sha256": st.column_config.TextColumn("SHA-256", width="medium")})

st.subheader("Quarantined rows")
if quar is None:
    state.empty("Quarantine is study-wide bookkeeping, shown only to roles that see every site.")
elif quar.empty:
    st.success("No rows were quarantined in this load.")
else:
    # a row quarantined as a whole (a ragged CSV line) has no field: dropna=False keeps it, so the table adds up
    by = (quar.groupby(["domain", "field", "reason"], dropna=False).size().rename("rows").reset_index()
          .sort_values("rows", ascending=False))
    state.table(by, subject_col=None)
    with st.expander(f"All {len(quar)} quarantined rows"):
        state.table(quar.drop(columns=["studyid", "data_cut"], errors="ignore"))

st.subheader("Missing grades")
if missing_ae.empty:
    st.success("Every adverse event carries a toxicity grade (AETOXGR).")
else:
    st.markdown(f"**{plural(len(missing_ae), 'adverse event')}** without AETOXGR (severity shown instead; never derived from AESEV).")
    state.table(missing_ae)
if missing_lab is not None and not missing_lab.empty:
    st.markdown("**Lab results that could not be graded, and why**")
    state.table(missing_lab, subject_col=None)

st.subheader("AE grades CTCAE does not define for the term")
if state.require("ae_grade_checks", what="the AE grade check"):
    odd = state.q(f"SELECT * EXCLUDE (studyid, data_cut) FROM ae_grade_checks WHERE {flt} ORDER BY usubjid, onset_day",
                  fp)
    if odd.empty:
        st.success("Every AE graded on CTCAE carries a grade CTCAE defines for its term (terms that are no CTCAE "
                   "term are not checked).")
    else:
        st.markdown(f"**{plural(len(odd), 'adverse event')}** reported at a grade CTCAE does not define for the "
                    "term (Sepsis, for one, has grades 3 to 5 only): counted as reported, each a query for the site.")
        state.table(odd)

st.subheader("Eligibility deviations")
if state.require("eligibility_deviations", what="the eligibility check"):
    el = state.q(f"SELECT * EXCLUDE (studyid, data_cut) FROM eligibility_deviations WHERE {flt} ORDER BY usubjid", fp)
    if el.empty:
        st.success("Every subject's screening values are within the study.yaml eligibility limits.")
    else:
        st.markdown(f"**{plural(el['usubjid'].nunique(), 'subject')}** with "
                    f"**{plural(len(el), 'screening value')}** outside the limits (the last value before "
                    "lymphodepletion, or before day 0 without it; not the day-0 baseline).")
        state.table(el)

st.subheader("Derived vs reported CRS/ICANS grades")
if state.require("grade_discrepancies", what="the discrepancy check"):
    d = state.q(f"SELECT * EXCLUDE (studyid, data_cut) FROM grade_discrepancies WHERE {flt} ORDER BY usubjid", fp)
    if d.empty:
        st.success("Derived and reported grades agree.")
    else:
        state.table(d)

st.subheader("Vasopressors in CM that the bedside CRS assessments do not record")
if state.has_tables("crs_assessments", "medications"):
    gaps = state.q(unrecorded_vasopressors_sql(flt), fp)
    if gaps.empty:
        st.success("Every vasopressor in CM is recorded in the bedside CRS assessments of its days (or those days "
                   "have none).")
    else:
        st.markdown(f"**{plural(len(gaps), 'vasopressor record')}** in CM on days whose bedside CRS assessments "
                    "record no vasopressor. The CRS grade comes from those assessments alone (CM is not merged into "
                    "them), so each may be a grade 3 or 4 graded lower: query the site.")
        state.table(gaps)

"""Adverse events: subjects by system organ class and preferred term, worst grade, cohort; click through."""
import pandas as pd
import streamlit as st

from dashboard import state
from dashboard import figures as F
from dashboard.tables import text
from safety.core.numbers import percent_value
from safety.core.vocabulary import SAFETY_POPULATION, ae_pt_sql, ae_soc_sql, counted_ae
from safety.export.common import grade_discrepancy_events_sql, grade_discrepancy_sentence

v = state.view()
st.title("Adverse events")
st.caption(state.filter_caption(v) + " · treatment-emergent AEs of infused subjects · grade = reported CTCAE / ASTCT grade")
flt, fp = state.subject_filter(v, column="a.usubjid")

c1, c2, c3, c4 = st.columns(4)
serious = c1.toggle("Serious only", help="AESER = Y")
related = c2.toggle("Related only", help="AEREL possible, probable, definite, related or Y")
grade_min = c3.radio("Worst grade", ["Any grade", "Grade ≥3"], horizontal=True)
by = c4.radio("Columns", ["Overall", "By cohort"], horizontal=True)
# the safety population, as in the committee tables: an AE of a subject never infused (after lymphodepletion, say)
# is not counted against the infused subjects
conds = [counted_ae("a"), flt]
if serious:
    conds.append("a.aeser = 'Y'")
if related:
    conds.append("a.related")
where = " AND ".join(conds)
# the SOC and PT an AE is counted under, as the committee tables count it ('Uncoded: ...' for an AE with no PT)
PT = ae_pt_sql("a.aedecod", "a.aeterm")
min_g = 3 if grade_min == "Grade ≥3" else 0

infused = state.q(f"SELECT coalesce(cohort, '(none)') AS cohort, count(*) AS n FROM subjects s "
                  f"WHERE {SAFETY_POPULATION} AND {state.subject_filter(v, column='s.usubjid')[0]} GROUP BY ALL", fp)
n_total = int(infused["n"].sum())
worst = state.q(f"""
    SELECT a.usubjid, coalesce(s.cohort, '(none)') AS cohort, {ae_soc_sql('a.aebodsys')} AS aebodsys,
           {PT} AS aedecod, max(a.aetoxgr) AS worst_grade
    FROM adverse_events a JOIN subjects s USING (usubjid)
    WHERE {where} GROUP BY ALL""", fp)
worst = worst[worst["worst_grade"].fillna(0) >= min_g] if min_g else worst
if state.note_not_delivered("AE", what="the adverse event counts"):  # no data, not "no adverse events"
    st.stop()
m = st.columns(4)
m[0].metric("Subjects with an AE", int(worst["usubjid"].nunique()), help=f"of {n_total} infused subjects")
m[1].metric("Subjects with grade ≥3", int(worst.loc[worst["worst_grade"] >= 3, "usubjid"].nunique()))
m[2].metric("Preferred terms", int(worst["aedecod"].nunique()))
m[3].metric("Events", int(state.scalar(f"SELECT count(*) FROM adverse_events a WHERE {where}" +
                                       (" AND a.aetoxgr >= 3" if min_g else ""), fp) or 0))
# CRS and ICANS rows here are the sites' grades; the CRS & ICANS page grades the same events from the bedside
# assessments (ASTCT). Where the two differ a committee should not have to find that out by comparing pages.
if not state.missing_tables("grade_discrepancies"):
    dflt, dfp = state.subject_filter(v, column="d.usubjid")
    differ = state.q(grade_discrepancy_events_sql(dflt), dfp)
    if len(differ):
        st.warning(f"CRS and ICANS rows count the grade the site reported. For these subjects, "
                   f"{grade_discrepancy_sentence(differ)}: see Derived vs reported grades on the CRS & ICANS page.",
                   icon=":material/compare_arrows:")
        st.page_link("views/crs_icans.py", label="CRS & ICANS: derived vs reported grades",
                     icon=":material/local_fire_department:")
if worst.empty:
    state.empty("No adverse events match these filters.")
    st.stop()

# One row per SOC/PT: subjects with the term (worst grade any / >=3), overall or per cohort.
def _counts(df: pd.DataFrame) -> pd.DataFrame:
    subjects = df.groupby(["aebodsys", "aedecod"])["usubjid"].nunique()
    severe = df[df["worst_grade"] >= 3].groupby(["aebodsys", "aedecod"])["usubjid"].nunique()
    return pd.DataFrame({"subjects": subjects, "grade ≥3": severe.reindex(subjects.index, fill_value=0)})

if by == "Overall":
    table = _counts(worst)
    table["%"] = [percent_value(k, n_total) for k in table["subjects"]]
else:
    parts = {}
    for cohort, d in worst.groupby("cohort"):
        c = _counts(d)
        parts[f"{cohort} (N={int(infused.loc[infused['cohort'] == cohort, 'n'].sum())})"] = c
    table = pd.concat(parts, axis=1).fillna(0).astype(int)
    table.columns = [" ".join(c) for c in table.columns]
    table["all subjects"] = worst.groupby(["aebodsys", "aedecod"])["usubjid"].nunique()
table = table.sort_values(table.columns[0] if by == "Overall" else "all subjects", ascending=False).reset_index()
table = table.sort_values(["aebodsys"], kind="stable")

soc_pt = worst.groupby(["aebodsys", "aedecod", "worst_grade"], dropna=False)["usubjid"].nunique().rename("subjects").reset_index()
state.chart(F.ae_soc_pt_bar, soc_pt)

st.subheader("By system organ class and preferred term")
st.caption("Select a row to list its subjects.")
event = state.table(table, subject_col=None, on_select="rerun", selection_mode="single-row", key="ae_table")
rows = event.selection.rows if event is not None and hasattr(event, "selection") else []
terms = list(table["aedecod"])
default = terms.index(table.iloc[rows[0]]["aedecod"]) if rows else 0
term = st.selectbox("Subjects with the preferred term", terms, index=default)
# the choices above apply to the list too (the table's grade >= 3 row counts the subjects with such an event)
subj = state.q(f"""
    SELECT a.usubjid, s.cohort, s.siteid, a.event_key, a.aedecod, a.aeterm, a.aetoxgr, a.aeser, a.aerel, a.onset_day,
           a.end_day, a.ongoing, a.aeout
    FROM adverse_events a JOIN subjects s USING (usubjid)
    WHERE {where} AND {PT} = $term {"AND a.aetoxgr >= 3" if min_g else ""}
    ORDER BY a.aetoxgr DESC NULLS LAST, a.usubjid""", {**fp, "term": term})
chosen = [x for x, on in (("serious only", serious), ("related only", related), ("grade ≥3", min_g)) if on]
narrowed = f" ({', '.join(chosen)})" if chosen else ""
title = f"Subjects with {term}{narrowed}"  # the CSV file's title, as typed
st.caption(f"Subjects with {text(term)}{narrowed}")
state.table(subj, export_name="ae_subjects", title=title)

"""Labs: worst CTCAE grades and shifts, values over time as multiples of ULN/LLN, eDISH, cytopenia, ICAHT."""
import streamlit as st

from dashboard import data, state, tables
from dashboard import figures as F
from safety.derive.grading import liver, summary
from safety.core.vocabulary import blood_result
from safety.derive.toxicity import hematotox, icaht

v = state.view()
st.title("Laboratory safety")
st.caption(state.filter_caption(v) + " · CTCAE v5.0 grades derived from values in SI units")
flt, fp = state.subject_filter(v)
state.note_not_delivered("LB", what="the lab grades, charts and ICAHT below")  # no lab file is no data, not normal labs

# Only the open tab runs (a click on another reruns the page for it): four tabs of queries and charts on
# every visit made the page the slowest of the app.
tab_worst, tab_time, tab_liver, tab_cyto = st.tabs(["Worst grades & shifts", "Values over time", "Liver (eDISH)",
                                                    "Cytopenia & ICAHT"], key="labs_tab", on_change="rerun")

MAX_LINES = 60  # subject lines per chart; more is unreadable on a projector

if tab_worst.open:
    with tab_worst:
        if state.require("lab_worst_grades", what="the worst-grade table"):
            # Counted in DuckDB (one row per term), not from every subject's row in pandas on each rerun; the rows
            # counted are the committee tables' (infused subjects, once per term at the worst grade over its tests).
            worst = summary.worst_per_term_sql(flt)
            summ = state.q(f"""WITH w AS ({worst})
                               SELECT ctcae_term, count(DISTINCT usubjid) AS "subjects evaluated",
                                      count(DISTINCT usubjid) FILTER (WHERE worst_grade >= 3) AS "worst grade ≥3",
                                      count(DISTINCT usubjid) FILTER (WHERE worst_grade >= 4) AS "worst grade 4"
                               FROM w GROUP BY ctcae_term
                               ORDER BY "worst grade ≥3" DESC, ctcae_term""", fp)
            if summ.empty:
                state.empty("No graded post-infusion lab results in this selection.")
            else:
                n_subj = state.scalar(f"SELECT count(*) FROM subjects WHERE infused AND {flt}", fp) or 0
                n_ge3 = state.scalar(f"WITH w AS ({worst}) SELECT count(DISTINCT usubjid) FROM w WHERE worst_grade >= 3",
                                     fp) or 0
                st.metric("Subjects with any lab grade ≥3", int(n_ge3), help=f"of {n_subj} infused subjects")
                st.caption("Subjects evaluated: infused subjects with a graded value from day 1; a subject counts once "
                           "per term, at the worst grade over the tests mapped to it (as in the committee packet).")
                state.table(summ, subject_col=None)
                st.markdown("**Grade ≥3 abnormalities as episodes** (first day, worst grade, last day, days at grade ≥3)")
                terms_g3 = data.lab_listing_terms(v, "lab_grade3_episodes")
                if not terms_g3:
                    state.empty("No grade ≥3 lab abnormality in this selection.")
                else:
                    chosen_terms = st.multiselect("CTCAE terms", terms_g3, placeholder="All terms", key="lab_episode_terms")
                    ep = data.lab_listing_preview(v, "lab_grade3_episodes", tuple(chosen_terms), tables.MAX_ROWS)
                    st.caption(f"{tables.plural(ep.total, 'episode')} in {tables.plural(ep.subjects, 'subject')}.")
                    state.table(ep.rows, height=320, total=ep.total,
                                everything=lambda: data.lab_listing(v, "lab_grade3_episodes", tuple(chosen_terms)),
                                export_name="lab_grade3_episodes", title="Grade >= 3 laboratory abnormalities (episodes)")
                    # the values listing is built only when the drill-down is opened (a rerun), not on every visit
                    drill = st.expander("Every grade ≥3 value (drill-down)", key="lab_values_open", on_change="rerun")
                    if drill.open:
                        with drill:
                            values = data.lab_listing_preview(v, "lab_grade3", tuple(chosen_terms), tables.MAX_ROWS)
                            state.table(values.rows, height=320, total=values.total)
                st.markdown("**Shift from baseline grade to worst post-baseline grade**")
                term = st.selectbox("CTCAE term", list(summ["ctcae_term"].sort_values()))
                counts = state.q(f"""WITH w AS ({worst})
                                     SELECT coalesce('baseline ' || CAST(baseline_grade AS INTEGER), 'missing') AS baseline_grade,
                                            coalesce('worst ' || CAST(worst_grade AS INTEGER), 'missing') AS worst_grade,
                                            count(DISTINCT usubjid) AS n
                                     FROM w WHERE ctcae_term = $term GROUP BY ALL""",
                                 {"term": term, **fp})
                if not counts.empty:
                    shift = counts.pivot(index="baseline_grade", columns="worst_grade", values="n").fillna(0).astype(int)
                    shift["total"] = shift.sum(axis=1)
                    shift.loc["total"] = shift.sum()
                    state.table(shift.reset_index(), subject_col=None)
                with st.expander("Subjects"):
                    rows = f"""FROM lab_worst_grades WHERE ctcae_term = $term AND n_post > 0
                               AND usubjid IN (SELECT usubjid FROM ({worst}) w WHERE ctcae_term = $term)"""
                    state.table(state.q(f"SELECT * EXCLUDE (studyid, data_cut) {rows} ORDER BY usubjid LIMIT $n",
                                        {"term": term, "n": tables.MAX_ROWS, **fp}),
                                total=int(state.scalar(f"SELECT count(*) {rows}", {"term": term, **fp}) or 0))

if tab_time.open:
    with tab_time:
        tests = state.q(f"""SELECT lbtestcd, any_value(lbtest) AS lbtest, count(*) AS n,
                                   count(*) FILTER (WHERE uln IS NOT NULL) AS with_uln,
                                   count(*) FILTER (WHERE lln IS NOT NULL AND lln > 0) AS with_lln
                            FROM labs WHERE value IS NOT NULL AND {flt} GROUP BY lbtestcd ORDER BY lbtestcd""", fp)
        if tests.empty:
            state.empty("This study has no lab results in this selection.")
        else:
            c1, c2 = st.columns(2)
            codes = list(tests["lbtestcd"])
            test = c1.selectbox("Test", codes, index=codes.index("ALT") if "ALT" in codes else 0,
                                format_func=lambda t: f"{t} – {tests.set_index('lbtestcd').loc[t, 'lbtest']}")
            direction = c2.radio("Relative to", ["ULN (rises)", "LLN (falls)"], horizontal=True,
                                 index=1 if test in ("NEUT", "PLAT", "HGB", "LYM", "WBC", "ALB", "FIBRINO") else 0)
            ref = "uln" if direction.startswith("ULN") else "lln"
            # One line per subject: beyond MAX_LINES subjects, draw the most extreme (highest peak above ULN,
            # lowest trough below LLN), which are the ones a committee reads; the caption gives the total.
            extreme = "max(multiple) DESC" if ref == "uln" else "min(multiple) ASC"
            # blood results only, as graded: a urine or CSF result of the same test code is another measure
            d = state.q(f"""WITH r AS (SELECT usubjid, day, value, unit, value / {ref} AS multiple FROM labs
                                       WHERE lbtestcd = $t AND value IS NOT NULL AND {ref} > 0 AND {blood_result()}
                                         AND {flt}),
                            top AS (SELECT usubjid FROM r GROUP BY usubjid ORDER BY {extreme}, usubjid LIMIT $n)
                            SELECT *, (SELECT count(DISTINCT usubjid) FROM r) AS n_subjects FROM r
                            WHERE usubjid IN (SELECT usubjid FROM top) ORDER BY usubjid, day""",
                        {"t": test, "n": MAX_LINES, **fp})
            if d.empty:
                state.empty(f"No {tables.text(test)} results with a {ref.upper()} in this selection, so no multiples to show.")
            else:
                n_all = int(d["n_subjects"].iat[0])
                if n_all > MAX_LINES:
                    st.caption(f"Showing the {MAX_LINES} of {n_all} subjects with the most extreme {tables.text(test)} "
                               f"relative to {ref.upper()}.")
                state.chart(F.lab_multiples_figure, d.drop(columns="n_subjects"), test, "high" if ref == "uln" else "low")

if tab_liver.open:
    with tab_liver:
        e = state.q(liver.edish_sql(flt), fp)
        if e.empty:
            state.empty("No subject has both an aminotransferase (ALT or AST) and total bilirubin (with ULN) after "
                        "infusion: no eDISH plot.")
        else:
            hy = e[e["possible_hys_law"]].drop(columns="possible_hys_law")
            st.metric("Subjects in the possible Hy's law quadrant (peaks at any time after infusion)", len(hy),
                      help=f"Peak ALT or AST ≥ {liver.AMINOTRANSFERASE_XULN} × ULN and peak total bilirubin "
                           f"≥ {liver.BILIRUBIN_XULN} × ULN after infusion; the peaks need not be together")
            st.caption("Peaks at any time after infusion, as eDISH plots them: the table gives the day of each peak "
                       "and the peak ALP, so the time relation and cholestasis are judged case by case (a Hy's law "
                       f"case has no initial cholestasis, ALP < {liver.CHOLESTASIS_ALP_XULN} × ULN; FDA DILI guidance "
                       "2009). ALP is shown, not applied to the count.")
            state.chart(F.edish_figure, e)
            if not hy.empty:
                state.table(hy)

if tab_cyto.open:
    with tab_cyto:
        # blood results only, as ICAHT grades them: a CSF neutrophil count of 2 cells/uL is no ANC of 0.002
        cy = state.q(f"""WITH r AS (SELECT usubjid, lbtestcd, day, value FROM labs
                                    WHERE lbtestcd IN ('NEUT', 'PLAT') AND value > 0 AND day BETWEEN -7 AND 100
                                      AND {blood_result()} AND {flt}),
                         top AS (SELECT usubjid FROM r GROUP BY usubjid
                                 ORDER BY min(value) FILTER (WHERE lbtestcd = 'NEUT') NULLS LAST, usubjid LIMIT $n)
                         SELECT *, (SELECT count(DISTINCT usubjid) FROM r) AS n_subjects FROM r
                         WHERE usubjid IN (SELECT usubjid FROM top)""", {"n": MAX_LINES, **fp})
        if cy.empty:
            state.empty("This study has no ANC or platelet results between day -7 and day 100.")
        else:
            n_all = int(cy["n_subjects"].iat[0])
            if n_all > MAX_LINES:
                st.caption(f"Showing the {MAX_LINES} of {n_all} subjects with the lowest ANC nadir.")
            state.chart(F.cytopenia_recovery_figure, cy.drop(columns="n_subjects"))
        st.markdown(f"**{icaht.HEADING}**")
        if state.require("icaht", what="the ICAHT grades"):
            ic = state.q(f"SELECT * EXCLUDE (studyid, data_cut) FROM icaht WHERE {flt} ORDER BY usubjid, lineage", fp)
            if ic.empty:
                state.empty("No ICAHT grades were derived for this selection.")
            else:
                m = st.columns(2)
                m[0].metric(icaht.EARLY_GRADE3_LABEL, icaht.subjects_at_grade3(ic, "early_grade"),
                            help=icaht.EARLY_GRADE3_HELP)
                m[1].metric(icaht.LATE_GRADE3_LABEL, icaht.subjects_at_grade3(ic, "late_grade"),
                            help=icaht.LATE_GRADE3_HELP)
                state.table(ic)
        st.markdown(f"**{hematotox.HEADING}**")
        if state.require("car_hematotox", what="the CAR-HEMATOTOX scores"):
            ht = state.q(f"""SELECT {', '.join(hematotox.SHOWN_COLUMNS)} FROM car_hematotox
                             WHERE {flt} ORDER BY usubjid""", fp)
            if ht.empty:
                state.empty("No CAR-HEMATOTOX score was derived for this selection.")
            else:
                st.metric(hematotox.HIGH_RISK_LABEL, hematotox.high_risk_subjects(ht))
                state.table(ht)

"""Outcomes beyond CRS and ICANS: deaths and non-relapse mortality, infections, cumulative incidence, response,
immune reconstitution, cellular kinetics, TLS, secondary malignancies, the off-tumour watch list, dose given."""
import pandas as pd
import streamlit as st

from dashboard import figures_outcomes as FO
from dashboard import state
from dashboard.tables import labelled, text
from safety.core.delivery import not_delivered_note
from safety.core.numbers import fixed, percent
from safety.derive.outcomes import immune, kinetics, survival
from safety.derive.outcomes.deaths import NRM_HORIZONS, undated_deaths_note
from safety.derive.outcomes.infections import ALL_DOSE_LEVELS, WINDOWS, grade3_by_window
from safety.derive.outcomes.kinetics_pp import DIFFERS as KINETICS_DIFFERS
from safety.derive.outcomes.response import best_response_order, orr

v = state.view()
cfg = state.study_config(v)
st.title("Outcomes beyond CRS and ICANS")
st.caption(state.filter_caption(v) + " · days from the first CAR infusion (day 0)")
flt, fp = state.subject_filter(v)
infused = state.q(f"SELECT usubjid FROM subjects WHERE infused AND first_infusion_date IS NOT NULL AND {flt}", fp)
n_inf = len(infused)
P = {"s": v.studyid, "c": v.data_cut}


def endpoint(name: str):
    data = survival.endpoint_data(state.q, name, cfg, v.studyid, v.data_cut)  # scoped, cached per cut
    data = data[data["usubjid"].isin(infused["usubjid"])]
    curve = survival.cumulative_incidence(data["time"], data["status"], cause=1)
    return data, curve, survival.at_risk(data["time"])


def pct(k: int, n: int) -> str:
    return f"{k}/{n} ({percent(k, n)}%)" if n else "0/0"


# Only the open tab runs (choosing another reruns the page for it): nine tabs of queries, survival curves and
# charts on every visit made this the slowest page of the app.
TABS = ["Deaths & NRM", "Infections", "Cumulative incidence", "Response", "Immune reconstitution",
        "Cellular kinetics", "TLS & malignancies", "Off-tumour watch list", "Dose given"]
tabs = st.tabs(TABS, key="outcomes_tab", on_change="rerun")

if tabs[0].open:
    with tabs[0]:
        if state.require("deaths", what="the deaths table"):
            state.note_not_delivered("DS", "AE", what="the death counts below")  # DM alone records some deaths
            deaths = state.q(f"SELECT * FROM deaths WHERE {flt} ORDER BY death_day NULLS LAST, usubjid", fp)
            cols = st.columns(4)
            cols[0].metric("Deaths", len(deaths), help="From DM, DS and fatal AEs (any source)")
            data, curve, risk = endpoint("NRM")
            for col, h in zip(cols[1:], NRM_HORIZONS):
                k = int(deaths[f"nrm_by_day{h}"].fillna(False).astype(bool).sum()) if len(deaths) else 0
                # named and rounded as the packet's deaths_nrm row, the Aalen-Johansen estimate beside it
                col.metric(f"Non-relapse deaths by day {h}",
                           f"{k}/{n_inf} ({percent(k, n_inf)}%)" if n_inf else "-",
                           help=f"Crude proportion of infused subjects. NRM cumulative incidence (Aalen-Johansen, "
                                f"progression/relapse competing): "
                                f"{fixed(100 * survival.value_at(curve, h, 'cumulative_incidence'))}%")
            st.caption("Non-relapse mortality: death without documented progression or relapse before it; "
                       "denominator: infused subjects. Cause category from the delivered cause, else the fatal AE "
                       "(safety/data/death_causes.csv).")
            # deaths the by-day counts cannot place: said where the counts are read, as the packet says it
            for note in undated_deaths_note(deaths):
                st.warning(note)
            if deaths.empty:
                state.empty("No deaths in this selection.")
            else:
                state.table(deaths[["usubjid", "death_day", "death_date", "sources", "cause_category", "delivered_cause",
                                    "fatal_ae_term", "cause_from", "cause_conflict", "progression_day", "non_relapse",
                                    "treatment_related", "nrm_by_day28", "nrm_by_day100", "nrm_by_day365"]])
            title, ev, comp = survival.ENDPOINTS["NRM"]
            state.chart(FO.cumulative_incidence_figure, curve, risk, title, ev, comp, key="nrm_ci")

if tabs[1].open:
    with tabs[1]:
        if state.require("infection_episodes", "infection_support", what="the infection tables"):
            ep = state.q(f"SELECT * FROM infection_episodes WHERE {flt} ORDER BY usubjid, onset_day", fp)
            post = ep[ep["onset_window"].isin([w for w, _, _ in WINDOWS])]
            # by the day the grade >= 3 record began, as the packet and the cumulative incidence count them
            g3 = grade3_by_window(ep)
            g3 = g3[g3["onset_window"].isin([w for w, _, _ in WINDOWS])]
            # infections are read from the AEs (the microbiology names their pathogens): none delivered is no data
            no_ae = state.note_not_delivered("AE", what="the infection counts below")
            c1, c2, c3 = st.columns(3)
            c1.metric("Infection episodes (days 0-365)", len(post))
            c2.metric("Subjects with grade ≥ 3 infection", pct(g3["usubjid"].nunique(), n_inf))
            c3.metric("Invasive mould infections", int(post["invasive_mould"].fillna(False).astype(bool).sum()))
            if post.empty:
                if not no_ae:
                    state.empty("No infection episodes in days 0-365 in this selection.")
            else:
                order = [w for w, _, _ in WINDOWS]
                tab = pd.crosstab([post["pathogen_class"], post["severity"]],
                                  pd.Categorical(post["onset_window"], categories=order), dropna=False)
                tab.columns = [str(c) for c in tab.columns]  # plain labels, in window order
                st.markdown("**Episodes by pathogen class, severity and window (onset day)**")
                st.dataframe(labelled(tab), width="stretch")
            # study-level table: readable only by a scope covering every site, and only meaningful without subject
            # filters other than dose level (the table holds each dose level's own rows)
            if (v.sites is None and state.has_tables("infection_incidence_density")
                    and not any((v.cohorts, v.products))):
                dens = state.q("SELECT * FROM infection_incidence_density "
                               "ORDER BY dose_level <> 'all', dose_level, window_start, pathogen_class, severity")
                levels = [str(x) for x in v.dose_levels] if v.dose_levels else [ALL_DOSE_LEVELS]
                shown = dens[dens["dose_level"].isin(levels)]
                if len(shown):
                    st.markdown("**Incidence density per 100 patient-days at risk** ("
                                + ("whole study" if levels == [ALL_DOSE_LEVELS] else "dose level " + text(", ".join(levels))) + ")")
                    st.dataframe(labelled(shown.drop(columns=["studyid", "data_cut"], errors="ignore")),
                                 hide_index=True, width="stretch")
                per_dose = dens[(dens["dose_level"] != ALL_DOSE_LEVELS) & (dens["pathogen_class"] == "all")]
                if len(per_dose):
                    st.markdown("**Per dose level: all infections, episodes per 100 patient-days (episodes / patient-days)**")
                    per_dose = per_dose.assign(cell=[
                        fixed(r, 2, "-") + f" ({e} / {d})"
                        for r, e, d in zip(per_dose["per_100_patient_days"], per_dose["episodes"], per_dose["patient_days"])])
                    pivot = per_dose.pivot_table(index=["dose_level", "severity"], columns="onset_window", values="cell",
                                                 aggfunc="first")
                    st.dataframe(labelled(pivot[[w for w, _, _ in WINDOWS if w in pivot.columns]]), width="stretch")
            else:
                st.caption("Incidence density is a study-level table: shown for the whole study and per dose level, to "
                           "roles that see every site, without cohort or product filters.")
            st.markdown("**Episodes**")
            state.table(ep.drop(columns=["studyid", "data_cut"], errors="ignore"))
            sup = state.q(f"SELECT * FROM infection_support WHERE {flt} ORDER BY usubjid, start_day", fp)
            st.markdown("**IVIG, G-CSF and anti-infectives (CM)**")
            if sup.empty:
                state.empty(f"{not_delivered_note('CM')}: no medication can be shown." if state.not_delivered("CM")
                            else "No IVIG, G-CSF or anti-infective medication in this selection.")
            else:
                summ = (sup.groupby(["support", "prophylaxis"]).agg(subjects=("usubjid", "nunique"), records=("cmseq", "count"))
                        .reset_index())
                st.dataframe(labelled(summ), hide_index=True, width="stretch")
                with st.expander("Medication records"):
                    state.table(sup.drop(columns=["studyid", "data_cut"], errors="ignore"))

if tabs[2].open:
    with tabs[2]:
        names = list(survival.ENDPOINTS)
        pick = st.radio("Event", names, horizontal=True, format_func=lambda n: survival.ENDPOINTS[n][0], key="ci_event")
        needs = {"CRS": "toxicity_episodes", "ICANS": "toxicity_episodes", "infection_g3": "infection_episodes",
                 "NRM": "deaths"}[pick]
        if state.require(needs, what="this curve"):
            data, curve, risk = endpoint(pick)
            title, ev, comp = survival.ENDPOINTS[pick]
            state.chart(FO.cumulative_incidence_figure, curve, risk, title, ev, comp, key="ci_fig")
            est = pd.DataFrame({"Day": list(NRM_HORIZONS),
                                "Cumulative incidence": [f"{fixed(100 * survival.value_at(curve, h, 'cumulative_incidence'))}%"
                                                         for h in NRM_HORIZONS],
                                "At risk": [int((data["time"] >= h).sum()) for h in NRM_HORIZONS]})
            st.dataframe(est, hide_index=True)
            st.caption(f"Aalen-Johansen estimator (statsmodels CumIncidenceRight); event: {ev}; competing event: {comp}; "
                       f"censored at last known alive. {int((data['status'] == 1).sum())} events, "
                       f"{int((data['status'] == 2).sum())} competing events among {len(data)} infused subjects.")

if tabs[3].open:
    with tabs[3]:
        if state.require("response_outcomes", what="the response table"):
            r = state.q(f"SELECT * FROM response_outcomes WHERE {flt} ORDER BY usubjid", fp)
            res = orr(r)
            st.metric("Objective response rate", pct(res["responders"], res["n"]))
            st.markdown(res["text"])
            if len(r):
                bor = r.groupby(["criteria", "best_response"]).size().unstack(fill_value=0)
                bor = bor[best_response_order(bor.columns, survival.progression_lists(cfg)[1])]
                st.markdown("**Best overall response**")
                st.dataframe(labelled(bor), width="stretch")
                resp = r[r["first_response_day"].notna()]
                groups = []
                for label, tcol, ecol in (("Duration of response", "dor_days", "dor_event"),
                                          ("DFS/PFS from first response", "pfs_from_response_days", "pfs_event")):
                    t = resp[tcol].astype(float)
                    e = resp[ecol].fillna(False).astype(bool).astype(int)
                    groups.append((label, survival.kaplan_meier(t, e), survival.at_risk(t)))
                if len(resp):
                    # timed from each responder's first response, not from infusion: the axis says so
                    state.chart(FO.kaplan_meier_figure, groups, "From first response: Kaplan-Meier",
                                "Probability without progression or death", "Days from first response", key="dor_km")
                    med = {g[0]: survival.median_time(g[1]) for g in groups}
                    st.caption("Median " + "; ".join(f"{k}: {'not reached' if m is None else fixed(m, 0) + ' days'}"
                                                     for k, m in med.items()) +
                               ". Duration of response is censored at the last response assessment, DFS/PFS at last known alive.")
                state.table(r.drop(columns=["studyid", "data_cut"], errors="ignore"))

if tabs[4].open:
    with tabs[4]:
        if state.require("immune_reconstitution", what="the immune reconstitution table"):
            imm = state.q(f"SELECT * FROM immune_reconstitution WHERE {flt} ORDER BY test, usubjid", fp)
            markers = cfg.get("immune_monitoring", [])
            if not markers:
                state.empty("No immune markers are monitored for this study (study.yaml immune_monitoring).")
            for m in markers:
                rows = imm[imm["test"] == m["test"]]
                st.subheader(m.get("label", m["test"]))
                st.metric(m.get("finding", "below threshold"), pct(*immune.subjects_below(rows)),
                          help=f"Subjects with a value below {m['below']} {m.get('unit', '')} from day 1 on, of those "
                               "tested from day 1 on (a subject with only a value before the infusion is not counted)")
                # the results the table is computed from: blood, in the marker's unit (no CSF IgG, no CD19 %)
                flt_l, fp_l = state.subject_filter(v, column="l.usubjid")
                lab = state.q(f"SELECT usubjid, day, value FROM "
                              f"{immune.marker_values('(SELECT upper($t) AS test, CAST($u AS VARCHAR) AS unit)', flt_l)}",
                              {**fp_l, "t": m["test"], "u": m.get("unit") or None})
                ivig = (state.q(f"SELECT usubjid, start_day FROM infection_support WHERE support = 'IVIG' AND {flt}", fp)
                        if m["test"] == "IGG" and state.has_tables("infection_support") else pd.DataFrame(columns=["usubjid", "start_day"]))
                if len(lab):
                    state.chart(FO.marker_over_time, lab, ivig, m.get("label", m["test"]), float(m["below"]),
                                m.get("unit", ""), m.get("finding", ""), key=f"marker_{m['test']}")
                state.table(rows.drop(columns=["studyid", "data_cut"], errors="ignore"))

if tabs[5].open:
    with tabs[5]:
        if state.require("cellular_kinetics", what="the cellular kinetics table"):
            kin = state.q(f"SELECT * FROM cellular_kinetics WHERE {flt} ORDER BY usubjid", fp)
            if kin.empty:
                state.empty("No cellular kinetics (PC) delivered for this selection.")
            else:
                # the samples the parameters are computed from (blood, the subject's unit), not marrow on the blood line
                pc = state.q(f"SELECT usubjid, pctestcd, unit, day, value, lloq, below_lloq, used "
                             f"FROM {kinetics.curve_samples(flt)}", fp)
                crs = (state.q(f"SELECT usubjid, max(max_grade) AS crs_max_grade FROM toxicity_episodes "
                               f"WHERE syndrome = 'CRS' AND {flt} GROUP BY usubjid", fp)
                       if state.has_tables("toxicity_episodes") else pd.DataFrame(columns=["usubjid", "crs_max_grade"]))
                test = st.selectbox("Analyte", sorted(kin["pctestcd"].unique()), key="pc_test")
                k1 = kin[kin["pctestcd"] == test]
                unit = str(k1["unit"].dropna().iloc[0]) if k1["unit"].notna().any() else ""
                p1 = pc[pc["pctestcd"] == test]
                not_drawn = FO.samples_not_drawn(p1)
                p1 = p1[p1["used"]].copy()
                p1["lloq"] = p1["lloq"].fillna(p1["value"].min() if p1["value"].notna().any() else 1.0)
                state.chart(FO.expansion_by_crs_grade, p1, crs, unit, key="pc_lines")
                if not_drawn:
                    st.caption(not_drawn)
                state.chart(FO.cmax_by_crs_grade, k1, crs, unit, key="pc_cmax")
                st.caption("Cmax and Tmax from day 0; AUC days 0-28 by the linear trapezoid (values below the LLOQ as 0); "
                           "last day detectable = persistence. 'values used' lists every value that went in.")
                state.table(k1.drop(columns=["studyid", "data_cut"], errors="ignore"))
            if state.has_tables("kinetics_comparison"):
                cmp_ = state.q(f"SELECT * FROM kinetics_comparison WHERE {flt} "
                               "ORDER BY status <> 'differs', usubjid, analyte, parameter, ppseq", fp)
                if len(cmp_):
                    st.markdown("**The sponsor's parameters (PP) beside celltox's**")
                    differs = cmp_[cmp_["status"] == KINETICS_DIFFERS]
                    if len(differs):
                        st.warning(f"{len(differs)} sponsor value(s) differ from celltox's beyond the tolerance "
                                   f"({differs['usubjid'].nunique()} subject(s)).")
                    st.caption("Tolerance: Cmax 5%, Tmax 1 day, AUC days 0-28 10% (safety/data/pp_parameters.csv); a "
                               "sponsor Tmax in hours is converted to days; a Cmax (and AUC) in a unit that converts to "
                               "celltox's is converted, the note naming the factor "
                               "(safety/data/pc_unit_conversions.csv); another Cmax unit is not compared.")
                    state.table(cmp_.drop(columns=["studyid", "data_cut"], errors="ignore"))

if tabs[6].open:
    with tabs[6]:
        if state.require("tls_screen", "secondary_malignancies", what="the TLS and secondary malignancy tables"):
            tls = state.q(f"SELECT * FROM tls_screen WHERE {flt} ORDER BY criteria_met DESC, usubjid", fp)
            st.subheader("Tumour lysis syndrome (Cairo-Bishop laboratory criteria)")
            st.metric("Laboratory TLS", pct(int(tls["laboratory_tls"].fillna(False).astype(bool).sum()), len(tls)))
            st.caption("Two or more of uric acid, potassium, phosphate (high) and calcium (low), by absolute limit or "
                       "25 % change from baseline, from 3 days before lymphodepletion (before the infusion when "
                       "none is recorded) to day 7; baseline is the last value before that "
                       "(safety/data/tls_cairo_bishop.csv).")
            state.table(tls[tls["criteria_met"] >= 1].drop(columns=["studyid", "data_cut"], errors="ignore"))
            st.subheader("Secondary malignancies")
            no_source = state.note_not_delivered("AE", "MH", what="the malignancies listed below")
            sm = state.q(f"SELECT * FROM secondary_malignancies WHERE {flt} ORDER BY onset_day", fp)
            if sm.empty:
                if len(no_source) < 2:  # with neither AE nor MH delivered, the warning above says it all
                    state.empty("No new malignancy after infusion in this selection (no follow-up limit applied).")
            else:
                if sm["t_cell_malignancy"].fillna(False).astype(bool).any():
                    st.error("T-cell malignancy after infusion: see the FDA boxed warning (January 2024); test the tumour "
                             "for the CAR transgene.")
                state.table(sm.drop(columns=["studyid", "data_cut"], errors="ignore"))
            st.caption("From AEs and from medical history (MH) records that started after infusion (source MH).")
            if state.has_tables("prior_malignancies"):
                pm = state.q(f"SELECT * FROM prior_malignancies WHERE {flt} ORDER BY usubjid, start_day NULLS FIRST", fp)
                if len(pm):
                    with st.expander(f"Prior malignancies in medical history ({len(pm)}): before infusion, not counted"):
                        state.table(pm.drop(columns=["studyid", "data_cut"], errors="ignore"))

if tabs[7].open:
    with tabs[7]:
        w = cfg.get("off_tumour_watch", {})
        if not (w.get("terms") or w.get("socs")):
            state.empty("This study has no on-target, off-tumour watch list (study.yaml off_tumour_watch).")
        elif state.require("off_tumour_events", what="the watch list"):
            st.markdown(f"**{w.get('label') or 'On-target, off-tumour watch list'}**")
            ot = state.q(f"SELECT * FROM off_tumour_events WHERE {flt} ORDER BY onset_day", fp)
            late = ot[ot["late_onset"].fillna(False).astype(bool)]
            c1, c2 = st.columns(2)
            c1.metric(f"Subjects, onset by day {w.get('late_after_day', 30)}", ot.loc[~ot.index.isin(late.index), "usubjid"].nunique())
            c2.metric(f"Subjects, onset after day {w.get('late_after_day', 30)}", late["usubjid"].nunique())
            st.caption("Terms: " + ", ".join(w.get("terms", [])) + (("; organ classes: " + ", ".join(w["socs"])) if w.get("socs") else "")
                       + ". ICANS terms are excluded (tracked as ICANS).")
            st.markdown("**Late onset**")
            state.table(late.drop(columns=["studyid", "data_cut"], errors="ignore"))
            st.markdown("**Early onset**")
            state.table(ot[~ot.index.isin(late.index)].drop(columns=["studyid", "data_cut"], errors="ignore"))

if tabs[8].open:
    with tabs[8]:
        if state.require("dose_delivered", what="the dose table"):
            dd = state.q(f"SELECT * FROM dose_delivered WHERE {flt} ORDER BY infused DESC, usubjid", fp)
            c1, c2, c3 = st.columns(3)
            c1.metric("Enrolled", len(dd))
            c2.metric("Infused", int(dd["infused"].fillna(False).astype(bool).sum()))
            c3.metric("Never infused", int((~dd["infused"].fillna(False).astype(bool)).sum()))
            off = dd[dd["pct_of_planned"].notna() & ((dd["pct_of_planned"] - 100).abs() > 0.5)]
            if len(off):
                st.warning(f"{len(off)} subject(s) received a dose different from the planned dose of their level.")
            st.caption("Denominators: safety tables count infused subjects; the never-infused are listed with the reason.")
            state.table(dd.drop(columns=["studyid", "data_cut"], errors="ignore"))

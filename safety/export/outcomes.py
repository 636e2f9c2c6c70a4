"""Packet outputs for the outcomes beyond CRS/ICANS: deaths with cause and NRM, infections, secondary malignancies
and prior ones, cellular kinetics and the sponsor's (PP) beside them, dose given, and the Labs page's ICAHT grades and
CAR-HEMATOTOX scores (listings); NRM and deaths by cause, infections by window, response (tables).

Each builder takes a scoped reader and returns a frame with attrs like every other output; a missing derived
table gives an empty output with a note, never an error. Cumulative incidence is computed from the scoped rows
(statsmodels Aalen-Johansen through :mod:`safety.derive.outcomes.survival`), so a site-scoped packet stays in scope.
"""
from __future__ import annotations

import pandas as pd

from safety.access.reader import StudyReader
from safety.core.numbers import NO_DENOMINATOR, fixed, n_pct
from safety.derive.dlt.events import death_event_key_sql
from safety.derive.outcomes import survival
from safety.derive.outcomes.deaths import NRM_HORIZONS, undated_deaths_note
from safety.derive.outcomes.infections import (ALL_DOSE_LEVELS, NO_DOSE_LEVEL, PATHOGEN_CLASSES, WINDOWS,
                                               grade3_by_window)
from safety.derive.outcomes.response import CRITERIA_REFERENCE, best_response_order, criteria_reference, orr
from safety.derive.toxicity import hematotox, icaht
from safety.export import common as c

SUBJ = ("subj AS (SELECT usubjid, siteid AS site, cohort, dose_level, age, sex FROM subjects)")


def _new(reader: StudyReader, key_expr: str, table: str, key: str) -> str:
    return c.new_flag_sql(reader, key_expr, table, key)


def _missing(name, title, ref, table, columns, kind):
    return c.empty(columns, name=name, title=title, reference=ref, kind=kind,
                   notes=[f"Not available: the derived table {table} is not in this database file."])


def _listing(reader, name, title, reference, table, columns, sql, notes):
    if not reader.has_tables(table):
        return _missing(name, title, reference, table, columns, "listing")
    df = reader.sql(sql)
    if df.empty:
        notes = [f"No rows at this data cut."] + notes
    return c.finish(df.reindex(columns=columns), name=name, title=title, reference=reference, kind="listing",
                    notes=notes)


DEATH_CAUSE_COLUMNS = ["site", "cohort", "dose_level", "usubjid", "age", "sex", "event_key", "death_date", "death_day",
                       "sources", "cause_category", "delivered_cause", "fatal_ae_term", "cause_from", "cause_conflict",
                       "progression_day", "non_relapse", "treatment_related", "nrm_by_day28", "nrm_by_day100",
                       "nrm_by_day365", "new_since_previous_cut"]


def listing_death_causes(reader, store=None):
    sql = f"""WITH {SUBJ}
SELECT sj.*, {death_event_key_sql('d.usubjid')} AS event_key, d.* EXCLUDE (studyid, data_cut, usubjid),
       {_new(reader, "d.usubjid", "deaths", "usubjid")} AS new_since_previous_cut
FROM deaths d LEFT JOIN subj sj USING (usubjid) ORDER BY d.death_day NULLS LAST, d.usubjid"""
    return _listing(reader, "death_causes", "Listing of deaths with cause category and non-relapse mortality",
                    "FDA STF T8-T9; EBMT/EHA CAR-T best practice (NRM)", "deaths", DEATH_CAUSE_COLUMNS, sql,
                    ["Every death recorded in DM (DTHDTC), DS (DEATH) or as a fatal AE (grade 5, AESDTH Y or AEOUT "
                     "FATAL). Cause category from the delivered cause, else the fatal AE (safety/data/death_causes.csv).",
                     "Non-relapse: not from progression/relapse and without documented progression before death. "
                     "Treatment-related (monitored event) = non-relapse death of an infused subject.",
                     "A death recorded without a date (DS DEATH without DSSTDTC, DM DTHFL Y without DTHDTC, a fatal AE "
                     "without AESTDTC or AEENDTC) is listed with the death day and the non-relapse deaths by day blank."])


INFECTION_COLUMNS = ["site", "cohort", "dose_level", "usubjid", "event_key", "source", "term", "pathogen_class",
                     "pathogen", "invasive_mould", "ctcae_grade", "severity", "serious", "fatal", "onset_day",
                     "onset_date", "onset_date_imputed", "end_day", "onset_window", "new_since_previous_cut"]


def listing_infections(reader, store=None):
    sql = f"""WITH {SUBJ}
SELECT sj.*, e.* EXCLUDE (studyid, data_cut, usubjid),
       {c.IMPUTED_DATE_SQL.format(flag="e.onset_date_flag")} AS onset_date_imputed,
       {_new(reader, "e.event_key", "infection_episodes", "event_key")} AS new_since_previous_cut
FROM infection_episodes e LEFT JOIN subj sj USING (usubjid) ORDER BY e.usubjid, e.onset_day, e.event_key"""
    return _listing(reader, "infections", "Listing of infection episodes", "EBMT/EHA CAR-T best practice (infections)",
                    "infection_episodes", INFECTION_COLUMNS, sql,
                    ["AEs in the SOC Infections and infestations or naming a pathogen, and positive microbiology (MB) "
                     "without such an AE within 7 days. Pathogen class from safety/data/infection_classes.csv.",
                     "Windows by onset day: day 0-30, 31-90, 91-365. An AE without a start date is counted with its "
                     "onset on day 0 (or its end, if before day 0): onset date imputed 'whole date'."])


MALIGNANCY_COLUMNS = ["site", "cohort", "dose_level", "usubjid", "event_key", "source", "term", "onset_day", "latency_days",
                      "latency_months", "t_cell_malignancy", "car_transgene_result", "possible_relapse", "ctcae_grade",
                      "fatal", "new_since_previous_cut"]


def listing_secondary_malignancies(reader, store=None):
    sql = f"""WITH {SUBJ}
SELECT sj.*, m.* EXCLUDE (studyid, data_cut, usubjid),
       {_new(reader, "m.event_key", "secondary_malignancies", "event_key")} AS new_since_previous_cut
FROM secondary_malignancies m LEFT JOIN subj sj USING (usubjid) ORDER BY m.onset_day, m.usubjid"""
    return _listing(reader, "secondary_malignancies", "Listing of new malignancies after infusion",
                    "FDA boxed warning on T-cell malignancies (January 2024); FDA LTFU guidance (2020)",
                    "secondary_malignancies", MALIGNANCY_COLUMNS, sql,
                    ["New malignancies with onset after day 0, with no follow-up limit: AEs, and malignancies in "
                     "medical history (MH) that started after day 0 (source MH; an MH record within 30 days of a "
                     "malignancy AE of the subject is that AE). T-cell malignancies marked; CAR transgene result from "
                     "SUPPAE/SUPPMH CARTGRES / CARTEST when delivered. A T-cell malignancy naming the subject's "
                     "T-cell disease under study is listed unless its tumour tested CAR-transgene negative "
                     "(possible_relapse when it was not found positive).",
                     "Malignancies in MH that started on or before day 0 are prior history: listed in "
                     "prior_malignancies, not here."])


PRIOR_MALIGNANCY_COLUMNS = ["site", "cohort", "dose_level", "usubjid", "mhseq", "term", "mhcat", "start_date", "start_day",
                            "ongoing", "t_cell_malignancy"]


def listing_prior_malignancies(reader, store=None):
    sql = f"""WITH {SUBJ}
SELECT sj.*, m.* EXCLUDE (studyid, data_cut, usubjid)
FROM prior_malignancies m LEFT JOIN subj sj USING (usubjid) ORDER BY m.usubjid, m.start_date NULLS FIRST, m.start_day NULLS FIRST, m.mhseq"""
    return _listing(reader, "prior_malignancies", "Listing of malignancies in medical history before infusion",
                    "ICH E3 16.2.4 (medical history)", "prior_malignancies", PRIOR_MALIGNANCY_COLUMNS, sql,
                    ["Malignancies in MH that started on or before day 0 (or with no start date): prior history, "
                     "context for the new malignancies, not counted as new."])


KINETICS_COLUMNS = ["site", "cohort", "dose_level", "usubjid", "pctestcd", "unit", "n_samples", "cmax", "tmax_day",
                    "auc_0_28", "auc_last_day", "last_detectable_day", "values_used"]


def listing_cellular_kinetics(reader, store=None):
    sql = f"""WITH {SUBJ}
SELECT sj.*, k.* EXCLUDE (studyid, data_cut, usubjid)
FROM cellular_kinetics k LEFT JOIN subj sj USING (usubjid) ORDER BY k.usubjid, k.pctestcd"""
    return _listing(reader, "cellular_kinetics", "Listing of cellular kinetics parameters", "ICH E3 16.2.5",
                    "cellular_kinetics", KINETICS_COLUMNS, sql,
                    ["Cmax/Tmax from day 0 (first day when tied); AUC days 0-28 by the linear trapezoid with values "
                     "below the LLOQ as 0; last day detectable = last value above the LLOQ."])


KINETICS_COMPARISON_COLUMNS = ["site", "cohort", "dose_level", "usubjid", "analyte", "pptestcd", "parameter",
                               "sponsor_value", "sponsor_unit", "celltox_value", "celltox_unit", "difference",
                               "difference_pct", "tolerance", "status", "note"]


def listing_kinetics_comparison(reader, store=None):
    sql = f"""WITH {SUBJ}
SELECT sj.*, k.* EXCLUDE (studyid, data_cut, usubjid)
FROM kinetics_comparison k LEFT JOIN subj sj USING (usubjid)
ORDER BY k.status <> 'differs', k.usubjid, k.analyte, k.parameter, k.ppseq"""
    return _listing(reader, "kinetics_comparison", "Listing of the sponsor's kinetic parameters (PP) beside celltox's",
                    "ICH E3 16.2.5", "kinetics_comparison", KINETICS_COMPARISON_COLUMNS, sql,
                    ["Sponsor's Cmax, Tmax and AUC days 0-28 (PP) beside celltox's from PC; 'differs' beyond the "
                     "tolerance: Cmax 5%, Tmax 1 day, AUC 10% (safety/data/pp_parameters.csv). Disagreements first.",
                     "difference = sponsor minus celltox; difference_pct = difference as a percentage of celltox's "
                     "value. A sponsor's Cmax (and AUC) in a unit that converts to celltox's is converted first "
                     "(safety/data/pc_unit_conversions.csv), the note naming the factor; another unit is not "
                     "compared ('unit differs')."])


DOSE_COLUMNS = ["site", "cohort", "dose_level", "usubjid", "planned_dose", "actual_dose", "dose_unit", "pct_of_planned",
                "infusions", "infused", "not_infused_reason"]


def listing_dose_delivered(reader, store=None):
    sql = f"""WITH {SUBJ}
SELECT sj.*, x.* EXCLUDE (studyid, data_cut, usubjid, dose_level)
FROM dose_delivered x LEFT JOIN subj sj USING (usubjid) ORDER BY x.infused DESC, x.usubjid"""
    return _listing(reader, "dose_delivered", "Listing of planned and actual cell dose, and subjects never infused",
                    "ICH E3 16.2.5; FDA STF T3", "dose_delivered", DOSE_COLUMNS, sql,
                    ["Planned dose per dose level from study.yaml planned_doses; actual = sum of EXDOSE over CAR "
                     "infusions. Subjects never infused are listed with the reason (DS)."])


# The Labs page's ICAHT table: every column of icaht (its order, the page's SELECT *), the subject's beside them
ICAHT_COLUMNS = ["site", "cohort", "dose_level", "usubjid",
                 *(x for x in c.table_columns("icaht") if x not in ("studyid", "data_cut", "usubjid"))]


def listing_icaht(reader, store=None):
    """The Labs page's ICAHT grades, in its order (subject, lineage), with the counts of its two metrics."""
    sql = f"""WITH {SUBJ}
SELECT sj.*, i.* EXCLUDE (studyid, data_cut, usubjid)
FROM icaht i LEFT JOIN subj sj USING (usubjid) ORDER BY i.usubjid, i.lineage"""
    df = _listing(reader, "icaht", "Listing of ICAHT grades (early and late) per subject and lineage",
                  icaht.REFERENCE, "icaht", ICAHT_COLUMNS, sql,
                  [f"Source: {icaht.REFERENCE}. Early ICAHT: days 0-{icaht.EARLY_LAST_DAY}; late: {icaht.LATE_WINDOW}. "
                   "One row per infused subject and lineage (ANC, "
                   "PLT); a lineage without results is listed as not assessable, its grades blank. An early grade "
                   "that is not fully evaluable is a lower bound (early evaluability, note).",
                   "Rules and choices: docs/toxicities.md (ICAHT). Sorted by subject and lineage, as the Labs page."])
    return df


def icaht_counts(df) -> list[str]:
    """The Labs page's two ICAHT metrics, counted by the page's function over the listing's rows."""
    metrics = ((icaht.EARLY_GRADE3_LABEL, "early_grade", icaht.EARLY_GRADE3_HELP),
               (icaht.LATE_GRADE3_LABEL, "late_grade", icaht.LATE_GRADE3_HELP))
    return [f"{label}: {icaht.subjects_at_grade3(df, col)}. {why}." for label, col, why in metrics]


# The Labs page's CAR-HEMATOTOX table, the subject's columns beside it
CAR_HEMATOTOX_COLUMNS = ["site", "cohort", "dose_level", *hematotox.SHOWN_COLUMNS]


def listing_car_hematotox(reader, store=None):
    """The Labs page's CAR-HEMATOTOX scores, in its order (subject), with the count of its metric."""
    sql = f"""WITH {SUBJ}
SELECT sj.*, {', '.join(f'h.{x}' for x in hematotox.SHOWN_COLUMNS if x != 'usubjid')}
FROM car_hematotox h LEFT JOIN subj sj USING (usubjid) ORDER BY h.usubjid"""
    df = _listing(reader, "car_hematotox", "Listing of CAR-HEMATOTOX scores before lymphodepletion",
                  hematotox.REFERENCE, "car_hematotox", CAR_HEMATOTOX_COLUMNS, sql,
                  [f"{hematotox.REFERENCE}: the last ANC, haemoglobin, platelets, CRP and ferritin on or before the "
                   f"reference day (the lymphodepletion start, else day {hematotox.DEFAULT_REFERENCE_DAY}), at most "
                   f"{hematotox.LOOKBACK_DAYS} days before it; points per marker from safety/data/car_hematotox.csv.",
                   f"Risk: high (score >= {hematotox.HIGH_RISK_FROM}) or low; with an input missing (note), 'high "
                   f"(incomplete)' when the points of the inputs present already reach {hematotox.HIGH_RISK_FROM}, "
                   "else 'not assessable'. Score known: the points of the inputs present. Sorted by subject, as the "
                   "Labs page."])
    return df


def car_hematotox_counts(df) -> list[str]:
    """The Labs page's CAR-HEMATOTOX metric over the listing's rows."""
    return [f"{hematotox.HIGH_RISK_LABEL}: {hematotox.high_risk_subjects(df)}."]


# -- tables ---------------------------------------------------------------------------------------

def table_deaths_nrm(reader, store=None):
    name, title, ref = "deaths_nrm", "Deaths by cause and non-relapse mortality", "FDA STF T8; EBMT/EHA (NRM)"
    cols = ["Row", "Statistic"]
    if not reader.has_tables("deaths"):
        return _missing(name, title, ref, "deaths", cols, "table")
    deaths = reader.sql("SELECT * FROM deaths")
    n = int(reader.scalar("SELECT count(*) FROM subjects WHERE infused AND first_infusion_date IS NOT NULL") or 0)
    rows = [("Infused subjects (N)", str(n)), ("Deaths, any cause", n_pct(len(deaths), n))]
    for cat, k in deaths.groupby("cause_category").size().sort_values(ascending=False).items():
        rows.append((f"  {cat}", n_pct(int(k), n)))
    cfg = c.study_settings(reader)
    data = survival.endpoint_data(reader.sql, "NRM", cfg, reader.scope.studyid, reader.scope.data_cut)
    # the three points only: the same numbers as the statsmodels curve, without its 1-2 s import per packet
    nrm_at = dict(zip(NRM_HORIZONS, survival.cumulative_incidence_at(data["time"], data["status"], NRM_HORIZONS)))
    for h in NRM_HORIZONS:
        k = int(deaths[f"nrm_by_day{h}"].fillna(False).astype(bool).sum()) if len(deaths) else 0
        rows.append((f"Non-relapse deaths by day {h}", n_pct(k, n)))
        # over no infused subject the estimate is undefined, not 0.0
        rows.append((f"NRM cumulative incidence at day {h} (Aalen-Johansen), %",
                     f"{fixed(100 * nrm_at[h])} (at risk {int((data['time'] >= h).sum())})" if len(data["time"])
                     else f"{NO_DENOMINATOR} (no subject infused)"))
    df = pd.DataFrame(rows, columns=cols)
    return c.finish(df, name=name, title=title, reference=ref, kind="table",
                    notes=["n (%) of infused subjects. Deaths from DM, DS and fatal AEs.",
                           "NRM: death without documented progression/relapse before it; progression/relapse is the "
                           "competing event; censoring at last known alive (the Aalen-Johansen estimate of statsmodels' CumIncidenceRight).",
                           *undated_deaths_note(deaths)])


def table_infections(reader, store=None):
    name, title, ref = "infections_by_window", "Infection episodes by window, pathogen class and severity", \
        "EBMT/EHA CAR-T best practice (infections)"
    windows = [w for w, _, _ in WINDOWS]
    cols = ["Pathogen class", "Severity"] + [f"{w}: episodes / subjects n (%) / per 100 patient-days" for w in windows]
    if not reader.has_tables("infection_episodes", "infection_incidence_density"):
        return _missing(name, title, ref, "infection_episodes", cols, "table")
    ep = reader.sql("SELECT * FROM infection_episodes")
    dens = reader.sql("SELECT * FROM infection_incidence_density") if reader.scope.all_sites else None
    n = int(reader.scalar("SELECT count(*) FROM subjects WHERE infused AND first_infusion_date IS NOT NULL") or 0)
    infused = reader.sql("SELECT usubjid, coalesce(dose_level, $none) AS dose_level FROM subjects "
                         "WHERE infused AND first_infusion_date IS NOT NULL", {"none": NO_DOSE_LEVEL})
    rows = []
    # (dose level, window, pathogen class, severity) -> the first density row's rate, looked up per cell
    rates: dict = {}
    if dens is not None:
        keys = zip(dens["dose_level"], dens["onset_window"], dens["pathogen_class"], dens["severity"])
        for key, rate in zip(keys, dens["per_100_patient_days"]):
            rates.setdefault(key, rate)

    def cells_of(e, n_den, dose, cls, sev):
        by_window = e.groupby("onset_window")["usubjid"].agg(["size", "nunique"])
        cells = []
        for w in windows:
            episodes, subjects = (int(by_window.at[w, "size"]), int(by_window.at[w, "nunique"])) \
                if w in by_window.index else (0, 0)
            rate = rates.get((dose, w, cls, sev))
            rate = fixed(rate, 2)
            cells.append(f"{episodes} / {n_pct(subjects, n_den)} / {rate or '-'}")
        return cells

    for cls in ("all", *PATHOGEN_CLASSES):
        for sev in ("any grade", "grade >= 3"):
            e = ep if cls == "all" else ep[ep["pathogen_class"] == cls]
            if sev == "grade >= 3":
                e = grade3_by_window(e)
            rows.append((cls, sev, *cells_of(e, n, ALL_DOSE_LEVELS, cls, sev)))
    # all pathogens per dose level: subjects n (%) of the level's infused subjects
    for dose, g in infused.groupby("dose_level", sort=True):
        e = ep[ep["usubjid"].isin(g["usubjid"])]
        for sev in ("any grade", "grade >= 3"):
            rows.append((f"all, dose level {dose} (N={len(g)})", sev,
                         *cells_of(e if sev == "any grade" else grade3_by_window(e), len(g), dose, "all", sev)))
    notes = [f"Infused subjects N={n}. Episodes counted by onset day (grade >= 3: the onset of the episode's first "
             "grade >= 3 record); subjects n (%) of infused subjects."]
    notes.append("Per 100 patient-days: episodes / days followed in the window x 100 (study-level; '-' for a "
                 "site-scoped packet)." if dens is not None else
                 "Incidence density is study-level and not shown in a site-scoped packet.")
    return c.finish(pd.DataFrame(rows, columns=cols), name=name, title=title, reference=ref, kind="table", notes=notes)


def table_response(reader, store=None):
    """Best overall response and ORR per criteria in use, its reference line citing those criteria
    (:func:`~safety.derive.outcomes.response.criteria_reference`, what the swimmer page's chart names)."""
    name, title = "response", "Best overall response and objective response rate"
    cols = ["Criteria", "Row", "n (%)"]
    if not reader.has_tables("response_outcomes"):
        return _missing(name, title, CRITERIA_REFERENCE, "response_outcomes", cols, "table")
    r = reader.sql("SELECT * FROM response_outcomes")
    rows = []
    progression = survival.progression_lists(c.study_settings(reader))[1]
    for (crit, definition), g in r.groupby(["criteria", "responders_definition"]):
        n = len(g)
        rows.append((crit, "Infused subjects (N)", str(n)))
        for bor in best_response_order(g["best_response"], progression):
            rows.append((crit, f"Best overall response {bor}", n_pct(int((g["best_response"] == bor).sum()), n)))
        rows.append((crit, f"ORR ({definition})", n_pct(int(g["responder"].fillna(False).astype(bool).sum()), n)))
    res = orr(r)
    resp = r[r["first_response_day"].notna()]
    med = survival.median_survival_time(resp["dor_days"].astype(float),
                                        resp["dor_event"].fillna(False).astype(bool).astype(int)) if len(resp) else None
    rows.append(("All", "Median duration of response, days (Kaplan-Meier)",
                 "not reached" if med is None else fixed(med, 0)))
    return c.finish(pd.DataFrame(rows, columns=cols), name=name, title=title, reference=criteria_reference(res),
                    kind="table", notes=[res["text"], "Duration of response from the first response to "
                                         "progression/relapse or death, censored at the last response assessment."])


LISTING_SPECS = {
    "death_causes": c.OutputSpec("Deaths with cause category and NRM", "FDA STF T8-T9", listing_death_causes,
                                 reads=c.DEATH_SOURCES),
    "infections": c.OutputSpec("Infection episodes", "EBMT/EHA CAR-T best practice", listing_infections,
                               reads=("AE", "MB", "CM")),
    "secondary_malignancies": c.OutputSpec("New malignancies after infusion", "FDA boxed warning 2024",
                                           listing_secondary_malignancies, reads=("AE", "MH")),
    "cellular_kinetics": c.OutputSpec("Cellular kinetics", "ICH E3 16.2.5", listing_cellular_kinetics, reads=("PC",)),
    "kinetics_comparison": c.OutputSpec("Sponsor kinetics (PP) beside celltox's", "ICH E3 16.2.5",
                                        listing_kinetics_comparison, reads=("PP", "PC")),
    "prior_malignancies": c.OutputSpec("Malignancies in medical history before infusion", "ICH E3 16.2.4",
                                       listing_prior_malignancies, reads=("MH",)),
    "dose_delivered": c.OutputSpec("Planned and actual dose; never infused", "ICH E3 16.2.5", listing_dose_delivered,
                                   reads=("DM", "EX", "DS")),
    "icaht": c.OutputSpec("ICAHT grades (early and late) per subject and lineage", icaht.REFERENCE, listing_icaht,
                          reads=("LB",), counts=icaht_counts),
    "car_hematotox": c.OutputSpec("CAR-HEMATOTOX scores before lymphodepletion", hematotox.REFERENCE,
                                  listing_car_hematotox, reads=("LB",), counts=car_hematotox_counts),
}
TABLE_SPECS = {
    "deaths_nrm": c.OutputSpec("Deaths by cause and NRM", "FDA STF T8", table_deaths_nrm,
                               reads=c.DEATH_SOURCES + ("RS",)),
    "infections_by_window": c.OutputSpec("Infections by window", "EBMT/EHA CAR-T best practice", table_infections,
                                         reads=("AE", "MB")),
    "response": c.OutputSpec("Response by study criteria", CRITERIA_REFERENCE, table_response, reads=("RS",)),
}

"""Committee summary tables: subjects n (%) per cohort and overall, in the FDA Standard Safety Tables shape.

The safety population is every subject infused on or before the data cut; AE tables count
treatment-emergent AEs (an AE whose treatment-emergent flag is unknown is included, as the FDA guide
advises for missing onset dates). A subject is counted once per row, at the worst grade.
Column headers read like ``Cohort DL1 (N=6) n (%)``; the overall column comes last.
"""
from __future__ import annotations

import re

import pandas as pd

from safety.access.reader import StudyReader
from safety.core.numbers import fixed, interval, n_pct
from safety.core.vocabulary import NO_COHORT, POST_INFUSION_FIRST_DAY, SUBJECT_DISPOSITION, SUBJECT_DISPOSITION_COUNTS
from safety.core.vocabulary import SAFETY_POPULATION, ae_pt_sql, ae_soc_sql, counted_ae, fatal_ae
from safety.derive.dlt.stopping import event_label, method_name, statistic_text
from safety.derive.grading.summary import grade3_counts, shift_table, worst_per_term_sql
from safety.derive.toxicity import summary as tox
from safety.export import common as c
from safety.export import outcomes as outcome_outputs
from safety.review.dlt_status import counted_on_decision_by_cohort, counted_on_decision_note

POP_CTE = (f"pop AS (SELECT usubjid, coalesce(cohort, '{NO_COHORT}') AS cohort FROM subjects "
           f"WHERE {SAFETY_POPULATION})")
TEAE_CTE = f"teae AS (SELECT a.*, p.cohort FROM adverse_events a JOIN pop p USING (usubjid) WHERE {counted_ae('a')})"
OVERALL = "\x00overall"  # sorts apart from any real cohort name


def _natural(s: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(s))]


def population(reader: StudyReader, also: list[str] | tuple[str, ...] = ()) -> list[tuple[str, str, int]]:
    """[(group key, display name, N)] for each cohort in natural order, then overall; ``also``: the cohort of each
    subject counted beside the cut's infused subjects (the DLT summary's, counted on a DLT decision alone)."""
    df = reader.sql(f"WITH {POP_CTE} SELECT cohort, count(*) AS n FROM pop GROUP BY cohort")
    sizes = {r.cohort: int(r.n) for r in df.itertuples(index=False)}
    for g in also:
        sizes[g] = sizes.get(g, 0) + 1
    groups = sorted(sizes.items(), key=lambda t: _natural(t[0]))
    out = [(g, g if g.lower().startswith("cohort") else f"Cohort {g}", n) for g, n in groups]
    out.append((OVERALL, "Overall", sum(n for _, n in groups)))
    return out


def _header(name: str, n: int, what: str = "n (%)") -> str:
    return f"{name} (N={n}) {what}"


def _counts(reader: StudyReader, rows_sql: str, keys: list[str], params: dict | None = None) -> pd.DataFrame:
    """Distinct subjects per (keys..., cohort) and per keys overall. ``rows_sql`` yields keys + usubjid + cohort."""
    k = ", ".join(keys)
    return reader.sql(f"""
WITH {POP_CTE}, {TEAE_CTE}, r AS ({rows_sql})
SELECT {k}, cohort, count(DISTINCT usubjid) AS n FROM r GROUP BY {k}, cohort
UNION ALL
SELECT {k}, '{OVERALL}' AS cohort, count(DISTINCT usubjid) AS n FROM r GROUP BY {k}""", params)


def _pivot(counts: pd.DataFrame, keys: list[str], groups, what="n (%)") -> pd.DataFrame:
    if counts.empty:
        wide = pd.DataFrame(columns=keys)
    else:
        wide = counts.pivot_table(index=keys, columns="cohort", values="n", aggfunc="sum", fill_value=0)
        wide = wide.reset_index()
        wide.columns.name = None
    for g, name, n in groups:
        vals = wide[g] if g in wide.columns else pd.Series(0, index=wide.index)
        wide[_header(name, n, what)] = [n_pct(v, n) for v in vals]
    return wide[keys + [_header(name, n, what) for _, name, n in groups]]


OVERVIEW_ROWS = [
    ("any", "Any adverse event", "TRUE"),
    ("g3", "Any grade >= 3 adverse event", "aetoxgr >= 3"),
    ("g5", "Any grade 5 adverse event", "aetoxgr = 5"),
    ("sev_only", "Any adverse event with severity only (no toxicity grade)", "aetoxgr IS NULL"),
    ("ser", "Any serious adverse event", "upper(aeser) = 'Y'"),
    ("ser_dth", "  Serious: results in death", "upper(aesdth) = 'Y'"),
    ("ser_life", "  Serious: life-threatening", "upper(aeslife) = 'Y'"),
    ("ser_hosp", "  Serious: hospitalisation (initial or prolonged)", "upper(aeshosp) = 'Y'"),
    ("ser_dis", "  Serious: disability or incapacity", "upper(aesdisab) = 'Y'"),
    ("ser_cong", "  Serious: congenital anomaly", "upper(aescong) = 'Y'"),
    ("ser_mie", "  Serious: other medically important event", "upper(aesmie) = 'Y'"),
    ("rel", "Any related adverse event", "related IS TRUE"),
    ("rel_g3", "Any related grade >= 3 adverse event", "related IS TRUE AND aetoxgr >= 3"),
    ("rel_ser", "Any related serious adverse event", "related IS TRUE AND upper(aeser) = 'Y'"),
    ("death", "Adverse event leading to death",
     fatal_ae("")),
]


DEATHS_ROW = "Deaths (any cause, on or before the cut)"


def table_disposition(reader, store=None, live=None):
    """Subjects by status at the cut, per cohort and overall: the overview's Subjects tiles, by cohort. Every
    subject in DM counts (screened and not infused too), so each column's N is its screened subjects; a subject
    counted as infused on a committee DLT decision alone (docs/dlt.md) is screened and infused here too, as on the
    overview and in the DLT figures."""
    by = reader.sql(f"SELECT coalesce(cohort, '{NO_COHORT}') AS cohort, {SUBJECT_DISPOSITION_COUNTS} "
                    "FROM subjects GROUP BY ALL")
    counts = {g: [int(by.loc[by["cohort"] == g, f"n{i}"].iat[0]) for i in range(len(SUBJECT_DISPOSITION))]
              for g in by["cohort"]}
    live = live if live is not None else c.current_dlt_status(reader, store)
    labels = [label for label, _, _ in SUBJECT_DISPOSITION]
    for g, (gone, n) in counted_on_decision_by_cohort(live).items():
        row = counts.setdefault(g, [0] * len(SUBJECT_DISPOSITION))
        row[labels.index("Screened")] += gone
        row[labels.index("Infused")] += n
    groups = sorted(counts, key=_natural)
    counts[OVERALL] = [sum(counts[g][i] for g in groups) for i in range(len(SUBJECT_DISPOSITION))]
    names = [(g, g if g.lower().startswith("cohort") else f"Cohort {g}") for g in groups] + [(OVERALL, "Overall")]
    out = pd.DataFrame({"Status": labels})
    for g, name in names:
        n = counts[g][0]
        out[_header(name, n)] = [n_pct(v, n) for v in counts[g]]
    notes = [f"{label}: {meaning}." for label, _, meaning in SUBJECT_DISPOSITION]
    notes.append("N: the cohort's subjects in DM at this data cut (screened, infused or not); percentages of N. "
                 "Each subject is in one of In follow-up, Completed month 12, Discontinued and Died once infused.")
    if live is not None and (note := counted_on_decision_note(live)) is not None:
        notes.append(note + " They are counted as screened and infused above (the subject's status at this data cut "
                            "is not known, so in none of the other rows), as the DLT summary counts them.")
    return c.finish(out, name="disposition", title="Subject disposition", reference="ICH E3 10.1", kind="table",
                    notes=notes)


def table_ae_overview(reader, store=None):
    groups = population(reader)
    union = "\nUNION ALL\n".join(
        f"SELECT {i} AS row_no, usubjid, cohort FROM teae WHERE {cond}" for i, (_, _, cond) in enumerate(OVERVIEW_ROWS))
    has_deaths = reader.has_tables("deaths")
    if has_deaths:  # the one definition of a death (DM, DS or fatal AE), as the deaths listing and the app
        union += "\nUNION ALL\nSELECT 99 AS row_no, d.usubjid, p.cohort FROM deaths d JOIN pop p USING (usubjid)"
    wide = _pivot(_counts(reader, union, ["row_no"]), ["row_no"], groups)
    labels = {i: lab for i, (_, lab, _) in enumerate(OVERVIEW_ROWS)} | {99: DEATHS_ROW}
    full = pd.DataFrame({"row_no": list(labels)}).merge(wide, on="row_no", how="left")
    for col in full.columns[1:]:
        full[col] = full[col].fillna("0")
    if not has_deaths:
        full.loc[full["row_no"] == 99, list(full.columns[1:])] = "-"
    full.insert(0, "Category", full["row_no"].map(labels))
    notes = _pop_notes() + [c.ae_grading_note(reader)] + c.grade_discrepancy_note(reader)
    if has_deaths:
        notes.append("Deaths: every death recorded in DM, DS or as a fatal AE (derived table deaths, the deaths "
                     "listing), of subjects in the safety population.")
        never = int(reader.scalar("SELECT count(*) FROM deaths WHERE usubjid NOT IN "
                                  f"(SELECT usubjid FROM subjects WHERE {SAFETY_POPULATION})") or 0)
        if never:
            notes.append(f"{never} death(s) of subjects never infused are in the deaths listing, not in this table.")
    else:
        notes.append("Deaths: not available, the derived table deaths is not in this database file.")
    return c.finish(full.drop(columns="row_no"), name="ae_overview", title="Overview of adverse events",
                    reference="FDA STF T7 (2025) / T6 (2022)", kind="table", notes=notes)


def _pop_notes() -> list[str]:
    return ["Safety population: subjects infused on or before the data cut. Subjects counted once per row.",
            "Treatment-emergent AEs; AEs with unknown treatment-emergent status are included."]


def _soc_pt(reader, where: str, name: str, title: str, reference: str, grades: bool):
    groups = population(reader)
    rows = f"SELECT {ae_soc_sql()} AS soc, {ae_pt_sql()} AS pt, usubjid, cohort, aetoxgr FROM teae WHERE {where}"
    # is_pt keeps a SOC's total row apart from its PT rows whatever a PT is called (a NULL PT once fell into the total)
    k_any = reader.sql(f"""
WITH {POP_CTE}, {TEAE_CTE}, r AS ({rows}),
w AS (SELECT soc, pt, usubjid, cohort, max(aetoxgr) AS worst FROM r GROUP BY ALL),
ws AS (SELECT soc, usubjid, cohort, max(aetoxgr) AS worst FROM r GROUP BY ALL),
lv AS (SELECT soc, TRUE AS is_pt, pt, usubjid, cohort, worst FROM w UNION ALL
       SELECT soc, FALSE AS is_pt, '' AS pt, usubjid, cohort, worst FROM ws)
SELECT soc, is_pt, pt, cohort, count(*) AS n, count(*) FILTER (WHERE worst >= 3) AS n3,
  count(*) FILTER (WHERE worst = 1) AS g1, count(*) FILTER (WHERE worst = 2) AS g2,
  count(*) FILTER (WHERE worst = 3) AS g3, count(*) FILTER (WHERE worst = 4) AS g4,
  count(*) FILTER (WHERE worst = 5) AS g5, count(*) FILTER (WHERE worst IS NULL) AS gna
FROM lv GROUP BY soc, is_pt, pt, cohort
UNION ALL
SELECT soc, is_pt, pt, '{OVERALL}', count(*), count(*) FILTER (WHERE worst >= 3),
  count(*) FILTER (WHERE worst = 1), count(*) FILTER (WHERE worst = 2), count(*) FILTER (WHERE worst = 3),
  count(*) FILTER (WHERE worst = 4), count(*) FILTER (WHERE worst = 5), count(*) FILTER (WHERE worst IS NULL)
FROM lv GROUP BY soc, is_pt, pt""")
    keys = ["soc", "is_pt", "pt"]
    cols = []
    out = None
    for metric, what in (("n", "any grade n (%)"), ("n3", "grade >= 3 n (%)")) if grades else (("n", "n (%)"),):
        part = _pivot(k_any.rename(columns={metric: "_v"})[keys + ["cohort", "_v"]].rename(columns={"_v": "n"}),
                      keys, groups, what)
        out = part if out is None else out.merge(part, on=keys, how="outer")
        cols += [col for col in part.columns if col not in keys]
    if out is None or out.empty:
        df = pd.DataFrame(columns=["System organ class", "Preferred term"] + cols)
    else:
        overall = k_any[k_any["cohort"] == OVERALL].set_index(keys)
        if grades:
            for g, lab in (("g1", "1"), ("g2", "2"), ("g3", "3"), ("g4", "4"), ("g5", "5"), ("gna", "not graded")):
                col = f"Overall worst grade {lab} n"
                out[col] = [int(overall.at[k, g]) if k in overall.index else 0
                            for k in zip(out["soc"], out["is_pt"], out["pt"])]
                cols.append(col)
        tot = {k: int(v) for k, v in overall["n"].items()}
        soc_n = {s: tot.get((s, False, ""), 0) for s in out["soc"]}
        out["_soc_n"] = out["soc"].map(soc_n)
        out["_n"] = [tot.get(k, 0) for k in zip(out["soc"], out["is_pt"], out["pt"])]
        out = out.sort_values(["_soc_n", "soc", "is_pt", "_n", "pt"], ascending=[False, True, True, False, True],
                              kind="stable")
        out["Preferred term"] = out["pt"].where(out["is_pt"], "Any event in SOC")
        df = out.rename(columns={"soc": "System organ class"})[["System organ class", "Preferred term"] + cols]
    notes = _pop_notes() + ["Sorted by overall frequency. A subject is counted once per SOC and once per PT, "
                            "at the worst grade."] + c.grade_discrepancy_note(reader)
    return c.finish(df, name=name, title=title, reference=reference, kind="table", notes=notes)


def table_ae_by_soc_pt(reader, store=None):
    return _soc_pt(reader, "TRUE", "ae_by_soc_pt", "Adverse events by system organ class, preferred term and worst grade",
                   "FDA STF T14", grades=True)


def table_sae_by_soc_pt(reader, store=None):
    return _soc_pt(reader, "upper(aeser) = 'Y'", "sae_by_soc_pt",
                   "Serious adverse events by system organ class and preferred term", "FDA STF T10", grades=False)


def _unavailable(name, title, reference, table):
    return c.empty(["Category"], name=name, title=title, reference=reference, kind="table",
                   notes=[f"Not available: the derived table {table} is not in this database file."])


def _fmt_num(v) -> str:
    return "-" if v is None or pd.isna(v) else (f"{v:.0f}" if float(v).is_integer() else fixed(v))


def _fmt_med_range(med, lo, hi) -> str:
    return "-" if med is None or pd.isna(med) else f"{_fmt_num(med)} ({_fmt_num(lo)}-{_fmt_num(hi)})"


def _summary_group(key) -> str:
    """safety.derive.toxicity.summary group keys -> this module's population keys (same subjects, other labels)."""
    from safety.derive.toxicity import summary as tox
    return OVERALL if key == tox.ALL_LABEL else NO_COHORT if key == "(missing)" else str(key)


def table_crs_icans_summary(reader, store=None):
    """Incidence, onset, duration and management per syndrome, computed by safety.derive.toxicity.summary (the
    functions behind the dashboard's CRS/ICANS page), so packet and app show the same numbers."""
    name, title, ref = "crs_icans_summary", "CRS and ICANS: incidence by maximum grade, onset, duration and management", \
        "ASTCT 2019 (Lee 2019); FDA STF T18"
    if not reader.has_tables("toxicity_episodes"):
        return _unavailable(name, title, ref, "toxicity_episodes")
    flag = {f: f"bool_or(e.{f} IS TRUE)" for f in ("tocilizumab", "corticosteroid", "anakinra", "icu_level_support",
                                                   "ongoing")}
    # Management per cohort (management_summary is study-level only); same definition: subjects with the
    # treatment in any episode of the syndrome.
    per = reader.sql(f"""
WITH {POP_CTE}
SELECT e.syndrome, e.usubjid, p.cohort,
  {flag['tocilizumab']} AS tocilizumab, {flag['corticosteroid']} AS corticosteroid, {flag['anakinra']} AS anakinra,
  {flag['icu_level_support']} AS icu, {flag['ongoing']} AS ongoing
FROM toxicity_episodes e JOIN pop p USING (usubjid) GROUP BY ALL""")
    # the incidence rows the dashboard's CRS & ICANS page shows: one definition of which rows there are
    inc = {syn: tox.incidence_table(reader, syn, by="cohort") for syn in tox.SYNDROMES}
    ons = {syn: tox.onset_duration_summary(reader, syn, by="cohort") for syn in tox.SYNDROMES}
    mgmt = tox.management_summary(reader).set_index("syndrome")
    groups = population(reader)
    rows: list[dict] = []

    def add(label_text: str, value_of) -> None:
        row = {"Category": label_text}
        for g, gname, n in groups:
            row[_header(gname, n)] = value_of(g, n)
        rows.append(row)

    for syn in tox.SYNDROMES:
        og = {_summary_group(k): r for k, r in ons[syn].set_index("group").iterrows()}
        ps = per[per["syndrome"] == syn]

        for category, _ in tox.INCIDENCE_CATEGORIES:
            cells = {_summary_group(r["group"]): r for r in inc[syn][inc[syn]["category"] == category]
                     .to_dict("records")}
            add(f"{syn}: {category}", lambda g, n: n_pct(cells[g]["subjects"] if g in cells else 0, n))
            if category in (tox.ANY_GRADE, tox.GRADE3_PLUS):
                add(f"{syn}: {category}, 95% CI (%)",
                    lambda g, n: interval(cells[g]["ci_low"], cells[g]["ci_high"]) if g in cells else "-")

        def mg(col, frame_col):
            def f(g, n):
                if g == OVERALL and syn in mgmt.index:
                    return n_pct(mgmt.at[syn, col], n)
                d = ps if g == OVERALL else ps[ps["cohort"] == g]
                return n_pct(int(d[frame_col].fillna(False).astype(bool).sum()), n)
            return f

        add(f"{syn}: tocilizumab", mg("n_subjects_tocilizumab", "tocilizumab"))
        add(f"{syn}: corticosteroids", mg("n_subjects_corticosteroid", "corticosteroid"))
        add(f"{syn}: anakinra", mg("n_subjects_anakinra", "anakinra"))
        add(f"{syn}: ICU-level support", mg("n_subjects_icu_level_support", "icu"))
        add(f"{syn}: ongoing at data cut",
            lambda g, n: n_pct(int((ps if g == OVERALL else ps[ps["cohort"] == g])["ongoing"]
                                  .fillna(False).astype(bool).sum()), n))
        add(f"{syn}: day of first onset, median (range)",
            lambda g, n: _fmt_med_range(og[g]["onset_day_median"], og[g]["onset_day_min"], og[g]["onset_day_max"])
            if g in og else "-")
        add(f"{syn}: duration of first episode in days, median (range)",
            lambda g, n: _fmt_med_range(og[g]["duration_days_median"], og[g]["duration_days_min"],
                                        og[g]["duration_days_max"]) if g in og else "-")
    df = pd.DataFrame(rows)
    notes = ["Computed with safety.derive.toxicity.summary, as on the dashboard's CRS/ICANS page. Population: infused "
             "subjects at the data cut. Subjects counted once, at their maximum grade over all episodes; "
             "management counts subjects with it in any episode.",
             "95% CI: exact (Clopper-Pearson) interval of the percentage of infused subjects.",
             "Onset and duration: each subject's first episode of the syndrome (day 0 = first infusion); "
             "an ongoing episode counts to the data cut."]
    return c.finish(df, name=name, title=title, reference=ref, kind="table", notes=notes)


def _term_label(term, direction) -> str:
    return str(term) + ("" if direction is None or pd.isna(direction) else f" ({direction})")


# No FDA STF display (Integrated Guide v2.0, 2025) is a CTCAE grade table: T52-53 count the last on-treatment value at
# or above the STF's own abnormality levels (T56-57), F15 plots baseline against max/min post-baseline values.
LAB_WORST_GRADE_REF = "Shaped after FDA STF T52-53 (2025; worst post-baseline CTCAE grade, not last value >= Level 2)"
LAB_SHIFT_REF = "Shaped after FDA STF F15 (2025; a baseline vs max/min post-baseline figure there, CTCAE grades here)"


def table_lab_worst_grade(reader, store=None):
    """Worst post-baseline grade per CTCAE term and cohort; the grade >= 3 row comes from
    safety.derive.grading.summary.grade3_counts (the dashboard's numbers)."""
    name, title, ref = "lab_worst_grade", "Laboratory abnormalities: worst post-baseline CTCAE grade", \
        LAB_WORST_GRADE_REF
    if not reader.has_tables("lab_worst_grades"):
        return _unavailable(name, title, ref, "lab_worst_grades")
    # The rows every lab summary counts (safety.derive.grading.summary.worst_per_term_sql): an infused subject once
    # per term and direction with a graded post-infusion value, at the worst grade over the tests mapped to it.
    counts = reader.sql(f"""
WITH {POP_CTE},
w AS ({worst_per_term_sql()}),
r AS (SELECT w.ctcae_term || CASE WHEN w.direction IS NULL THEN '' ELSE ' (' || w.direction || ')' END AS term,
        w.usubjid, p.cohort, w.worst_grade FROM w JOIN pop p USING (usubjid)),
lv AS (SELECT term, 0 AS lvl, usubjid, cohort FROM r
       UNION ALL SELECT term, worst_grade, usubjid, cohort FROM r WHERE worst_grade >= 1)
SELECT term, lvl, cohort, count(DISTINCT usubjid) AS n FROM lv GROUP BY ALL
UNION ALL SELECT term, lvl, '{OVERALL}', count(DISTINCT usubjid) FROM lv GROUP BY ALL""")
    notes = [f"Worst grade after baseline (day >= {POST_INFUSION_FIRST_DAY}) per subject and CTCAE term (L = low, H = high direction).",
             "Percentages of the cohort's safety population N."]
    g3 = grade3_counts(reader, by="cohort")
    if not g3.empty:
        g3 = g3.assign(term=[_term_label(t, d) for t, d in zip(g3["ctcae_term"], g3["direction"])],
                       lvl=9, cohort=g3["cohort"].map(lambda k: OVERALL if k == "All" else
                                                      NO_COHORT if k == "Missing" else k),
                       n=g3["n_grade_3_plus"].astype(int))
        counts = pd.concat([counts, g3.loc[g3["n"] > 0, ["term", "lvl", "cohort", "n"]]], ignore_index=True)
    notes.append("Grade >= 3: safety.derive.grading.summary.grade3_counts, as on the dashboard's laboratory page.")
    groups = population(reader)
    wide = _pivot(counts, ["term", "lvl"], groups).sort_values(["term", "lvl"], kind="stable")
    lvl_label = {0: "Evaluated (gradable post-baseline value)", 9: "Grade >= 3"} | {g: f"Grade {g}" for g in range(1, 6)}
    wide.insert(1, "Worst grade", wide["lvl"].map(lvl_label))
    df = wide.drop(columns="lvl").rename(columns={"term": "CTCAE term"})
    return c.finish(df, name=name, title=title, reference=ref, kind="table", notes=notes)


SHIFT_LEVELS = ["0", "1", "2", "3", "4", "missing"]


def table_lab_shift(reader, store=None):
    """Baseline x worst post-baseline grade per term, from safety.derive.grading.summary.shift_table."""
    name, title, ref = "lab_shift", "Laboratory shift: baseline grade to worst post-baseline grade (all cohorts)", \
        LAB_SHIFT_REF
    if not reader.has_tables("lab_worst_grades"):
        return _unavailable(name, title, ref, "lab_worst_grades")
    columns = ["CTCAE term", "Baseline grade"] + [f"Worst grade {w} n" for w in SHIFT_LEVELS] + ["Total n"]
    notes = [f"Infused subjects with a graded post-baseline (day >= {POST_INFUSION_FIRST_DAY}) value, by baseline grade (rows) and worst "
             "post-baseline grade (columns); a subject counts once per term, at the worst grade over its tests. "
             "All cohorts."]
    long = shift_table(reader)
    notes.append("Computed with safety.derive.grading.summary.shift_table, as on the dashboard's laboratory page.")
    if long.empty:
        return c.finish(pd.DataFrame(columns=columns), name=name, title=title, reference=ref, kind="table",
                        notes=notes)
    lvl = lambda g: "missing" if pd.isna(g) else str(int(g))  # noqa: E731
    long = long.assign(term=[_term_label(t, d) for t, d in zip(long["ctcae_term"], long["direction"])],
                       baseline=long["baseline_grade"].map(lvl), worst=long["worst_grade"].map(lvl),
                       subjects=long["subjects"].astype(int))
    wide = long.pivot_table(index=["term", "baseline"], columns="worst", values="subjects", aggfunc="sum",
                            fill_value=0)
    wide = wide.reindex(columns=SHIFT_LEVELS, fill_value=0).astype(int)
    wide["Total n"] = wide.sum(axis=1)
    wide.columns = [f"Worst grade {w} n" if w != "Total n" else w for w in wide.columns]
    out = wide.reset_index().rename(columns={"term": "CTCAE term", "baseline": "Baseline grade"})
    out["_b"] = out["Baseline grade"].map(lambda b: SHIFT_LEVELS.index(b) if b in SHIFT_LEVELS else 99)
    out = out.sort_values(["CTCAE term", "_b"], kind="stable").drop(columns="_b")
    return c.finish(out[columns], name=name, title=title, reference=ref, kind="table", notes=notes)


def table_dlt_summary(reader, store=None, live=None):
    name, title, ref = "dlt_summary", "Dose-limiting toxicities by cohort", "Protocol DLT rules"
    notes = ["Percentages of the cohort's infused subjects. Adjudicated = the committee decision in force when "
             "the table was made; awaiting = a candidate in the DLT window without a decision in force (a withdrawn "
             "decision leaves it awaiting); candidates outside the window are not awaited."]
    # the infused subjects, and those counted as infused on a committee DLT decision alone (not in the cut, or no
    # infusion in it), in the cohort their evaluability row names: the subjects the overview, the DLT review and the
    # stopping rules count (docs/dlt.md)
    dpop = "SELECT usubjid, cohort FROM pop UNION ALL SELECT unnest($on_u::VARCHAR[]), unnest($on_c::VARCHAR[])"
    parts = [f"SELECT 0 AS row_no, usubjid, cohort FROM ({dpop}) dpop"]
    params: dict = {"on_u": [], "on_c": []}
    live = live if live is not None else c.current_dlt_status(reader, store)
    if live is not None:
        rv, ev = live.review, live.evaluability
        on_decision = live.counted_on_decision()
        params["on_u"] = [str(u) for u in on_decision["usubjid"]]
        params["on_c"] = [str(x) for x in on_decision["cohort"]]
        if (note := counted_on_decision_note(live)) is not None:
            notes.append(note + " They are in the rows and the column totals above.")
        screened = rv["screened"].astype(bool)
        in_window = rv["in_window"].fillna(False).astype(bool)
        sets = {1: ev.loc[ev["evaluable"].astype(bool), "usubjid"],
                2: rv.loc[screened, "usubjid"],
                3: rv.loc[screened & in_window, "usubjid"],
                4: rv.loc[rv["counts_as_dlt"].astype(bool), "usubjid"],
                5: rv.loc[rv["pending"].astype(bool), "usubjid"]}
        if store is None:
            sets.pop(4)
            notes.append("No review store given: adjudicated DLTs are not shown.")
        for k, ids in sets.items():
            params[f"s{k}"] = sorted(set(ids.astype(str)))
            parts.append(f"SELECT {k}, usubjid, cohort FROM ({dpop}) dpop "
                         f"WHERE usubjid IN (SELECT unnest($s{k}::VARCHAR[]))")
    else:
        notes.append("DLT tables missing from the database file (written before the DLT derivations existed).")
    groups = population(reader, also=params["on_c"])
    counts = _counts(reader, "\nUNION ALL\n".join(parts), ["row_no"], params)
    labels = {0: "Infused subjects", 1: "DLT-evaluable subjects", 2: "Subjects with a screened DLT candidate",
              3: "Subjects with a candidate in the DLT window", 4: "Subjects with an adjudicated DLT",
              5: "Subjects with candidates awaiting adjudication"}
    shown = [int(p.split(" ", 2)[1].rstrip(",")) for p in parts]
    wide = _pivot(counts, ["row_no"], groups)
    full = pd.DataFrame({"row_no": sorted(set(shown))}).merge(wide, on="row_no", how="left").fillna("0")
    full.insert(0, "Category", full["row_no"].map(labels))
    return c.finish(full.drop(columns="row_no"), name=name, title=title, reference=ref, kind="table", notes=notes)


STOP_COLUMNS = {"cohort": "Cohort", "method": "Method", "monitored_event": "Monitored event",
                "evaluable_n": "Evaluable n", "events": "Events", "pending": "Pending",
                "statistic_label": "Statistic measured", "statistic": "Statistic",
                "boundary": "Boundary", "decision": "Decision",
                "decision_if_pending_confirmed": "Decision if pending confirmed", "sentence": "Summary"}


def table_stopping_rules(reader, store=None, live=None):
    """The stopping and escalation rules computed now from the decisions in force (the same rows the app shows)."""
    name, title, ref = "stopping_rules", "Safety stopping rule status", "Protocol stopping rules"
    live = live if live is not None else c.current_dlt_status(reader, store)
    if live is None:
        return c.empty(list(STOP_COLUMNS.values()), name=name, title=title, reference=ref, kind="table",
                       notes=["Not available: the DLT tables are not in this database file."])
    df = live.stopping.reindex(columns=list(STOP_COLUMNS))
    # the event named as the pages name it, with the DLT window it is counted in ('DLT (onset days 0-28)')
    df["monitored_event"] = [event_label(str(e), live.window) for e in df["monitored_event"]]
    df["method"] = [method_name(str(m)) for m in df["method"]]  # 'BOIN', as the pages and the protocol say
    # the statistic as the app's sentence prints it ('0.857', a rate '0.33'), in every file: not 0.857142857142857
    df["statistic"] = [statistic_text(v, str(lbl)) for v, lbl in zip(df["statistic"], df["statistic_label"])]
    notes = ["Study-level status (visible to all-sites scopes only), computed from the committee decisions in "
             "force when the table was made" + ("" if store is not None else
                                                 " (no review store given: screened candidates counted as DLTs)") + ".",
             "Evaluable subjects differ by monitored event: for DLT, DLT-evaluable on the decisions in force (a "
             "subject with a pending candidate who did not complete the window is not yet evaluable); for the other "
             "events, followed through the window or with the event. One cohort's n can so differ between rows."]
    if df.empty:
        notes.insert(0, c.site_scoped_boundary_note(reader) or "No stopping-rule status rows at this data cut.")
    return c.finish(df.rename(columns=STOP_COLUMNS), name=name, title=title, reference=ref, kind="table", notes=notes)


TABLES: dict[str, c.OutputSpec] = {
    "disposition": c.OutputSpec("Subject disposition", "ICH E3 10.1", table_disposition, takes_dlt_status=True,
                                reads=("DM", "EX", "DS")),
    "ae_overview": c.OutputSpec("Overview of adverse events", "FDA STF T7", table_ae_overview, reads=("AE",)),
    "ae_by_soc_pt": c.OutputSpec("AEs by SOC, PT and worst grade", "FDA STF T14", table_ae_by_soc_pt, reads=("AE",)),
    "sae_by_soc_pt": c.OutputSpec("SAEs by SOC and PT", "FDA STF T10", table_sae_by_soc_pt, reads=("AE",)),
    "crs_icans_summary": c.OutputSpec("CRS and ICANS summary", "ASTCT 2019", table_crs_icans_summary,
                                      reads=c.SYNDROME_SOURCES + ("CM",)),
    "lab_worst_grade": c.OutputSpec("Lab worst post-baseline grade", LAB_WORST_GRADE_REF, table_lab_worst_grade,
                                    reads=("LB",)),
    "lab_shift": c.OutputSpec("Lab shift baseline to worst grade", LAB_SHIFT_REF, table_lab_shift, reads=("LB",)),
    "dlt_summary": c.OutputSpec("DLTs by cohort", "Protocol DLT rules", table_dlt_summary, takes_dlt_status=True,
                                reads=c.DLT_SOURCES),
    "stopping_rules": c.OutputSpec("Stopping rule status", "Protocol stopping rules", table_stopping_rules,
                                   takes_dlt_status=True, reads=c.DLT_SOURCES),
    **outcome_outputs.TABLE_SPECS,
}


def build_table(reader: StudyReader, name: str, store=None, live=None) -> pd.DataFrame:
    """One summary table as a DataFrame (attrs: name, title, reference, kind, notes); KeyError for unknown names.
    ``live``: the DLT state already computed for this reader and store
    (:func:`safety.export.common.current_dlt_status`)."""
    if name not in TABLES:
        raise KeyError(f"unknown table {name!r}; valid: {', '.join(TABLES)}")
    return TABLES[name].build(reader, store, live)

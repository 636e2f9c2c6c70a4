"""Committee summary tables: subjects n (%) per cohort and overall, in the FDA Standard Safety Tables shape.

The safety population is every subject infused on or before the data cut; AE tables count
treatment-emergent AEs (an AE whose treatment-emergent flag is unknown is included, as the FDA guide
advises for missing onset dates). A subject is counted once per row, at the worst grade.
Column headers read like ``Cohort DL1 (N=6) n (%)``; the overall column comes last.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import pandas as pd

from safety.access import StudyReader
from safety.export import common as c

POP_CTE = ("pop AS (SELECT usubjid, coalesce(cohort, '(no cohort)') AS cohort FROM subjects "
           "WHERE infused IS TRUE)")
TEAE_CTE = ("teae AS (SELECT a.*, p.cohort FROM adverse_events a JOIN pop p USING (usubjid) "
            "WHERE a.treatment_emergent IS NOT FALSE)")
OVERALL = "\x00overall"  # sorts apart from any real cohort name


def _natural(s: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(s))]


def population(reader: StudyReader) -> list[tuple[str, str, int]]:
    """[(group key, display name, N)] for each cohort in natural order, then overall."""
    df = reader.sql(f"WITH {POP_CTE} SELECT cohort, count(*) AS n FROM pop GROUP BY cohort")
    groups = sorted(((r.cohort, int(r.n)) for r in df.itertuples(index=False)), key=lambda t: _natural(t[0]))
    out = [(g, g if g.lower().startswith("cohort") else f"Cohort {g}", n) for g, n in groups]
    out.append((OVERALL, "Overall", sum(n for _, n in groups)))
    return out


def npct(n, total) -> str:
    """'3 (50.0)'; '0' for none; percentages of the column's N."""
    n = 0 if n is None or pd.isna(n) else int(n)
    if n == 0 or not total:
        return str(n)
    return f"{n} ({100.0 * n / total:.1f})"


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
        wide[_header(name, n, what)] = [npct(v, n) for v in vals]
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
     "aetoxgr = 5 OR upper(aesdth) = 'Y' OR upper(aeout) LIKE '%FATAL%'"),
]


def table_ae_overview(reader, store=None):
    groups = population(reader)
    union = "\nUNION ALL\n".join(
        f"SELECT {i} AS row_no, usubjid, cohort FROM teae WHERE {cond}" for i, (_, _, cond) in enumerate(OVERVIEW_ROWS))
    union += ("\nUNION ALL\nSELECT 99 AS row_no, s.usubjid, p.cohort FROM subjects s JOIN pop p USING (usubjid) "
              "WHERE s.death_date IS NOT NULL")
    wide = _pivot(_counts(reader, union, ["row_no"]), ["row_no"], groups)
    labels = {i: lab for i, (_, lab, _) in enumerate(OVERVIEW_ROWS)} | {99: "Deaths (any cause, on or before the cut)"}
    full = pd.DataFrame({"row_no": list(labels)}).merge(wide, on="row_no", how="left")
    for col in full.columns[1:]:
        full[col] = full[col].fillna("0")
    full.insert(0, "Category", full["row_no"].map(labels))
    return c.finish(full.drop(columns="row_no"), name="ae_overview", title="Overview of adverse events",
                    reference="FDA STF T7 (2025) / T6 (2022)", kind="table",
                    notes=_pop_notes() + ["Grades as reported (AETOXGR); ASTCT 2019 for CRS/ICANS, CTCAE otherwise."])


def _pop_notes() -> list[str]:
    return ["Safety population: subjects infused on or before the data cut. Subjects counted once per row.",
            "Treatment-emergent AEs; AEs with unknown treatment-emergent status are included."]


def _soc_pt(reader, where: str, name: str, title: str, reference: str, grades: bool):
    groups = population(reader)
    rows = (f"SELECT coalesce(aebodsys, '(SOC not coded)') AS soc, coalesce(aedecod, 'Uncoded: ' || upper(aeterm)) AS pt, "
            f"usubjid, cohort, aetoxgr FROM teae WHERE {where}")
    k_any = reader.sql(f"""
WITH {POP_CTE}, {TEAE_CTE}, r AS ({rows}),
w AS (SELECT soc, pt, usubjid, cohort, max(aetoxgr) AS worst FROM r GROUP BY ALL),
ws AS (SELECT soc, usubjid, cohort, max(aetoxgr) AS worst FROM r GROUP BY ALL),
lv AS (SELECT soc, pt, usubjid, cohort, worst FROM w UNION ALL
       SELECT soc, NULL AS pt, usubjid, cohort, worst FROM ws)
SELECT soc, pt, cohort, count(*) AS n, count(*) FILTER (WHERE worst >= 3) AS n3,
  count(*) FILTER (WHERE worst = 1) AS g1, count(*) FILTER (WHERE worst = 2) AS g2,
  count(*) FILTER (WHERE worst = 3) AS g3, count(*) FILTER (WHERE worst = 4) AS g4,
  count(*) FILTER (WHERE worst = 5) AS g5, count(*) FILTER (WHERE worst IS NULL) AS gna
FROM lv GROUP BY soc, pt, cohort
UNION ALL
SELECT soc, pt, '{OVERALL}', count(*), count(*) FILTER (WHERE worst >= 3),
  count(*) FILTER (WHERE worst = 1), count(*) FILTER (WHERE worst = 2), count(*) FILTER (WHERE worst = 3),
  count(*) FILTER (WHERE worst = 4), count(*) FILTER (WHERE worst = 5), count(*) FILTER (WHERE worst IS NULL)
FROM lv GROUP BY soc, pt""")
    k_any["pt"] = k_any["pt"].astype("object").where(k_any["pt"].notna(), "")
    keys = ["soc", "pt"]
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
                out[col] = [int(overall.at[(s, p), g]) if (s, p) in overall.index else 0
                            for s, p in zip(out["soc"], out["pt"])]
                cols.append(col)
        tot = {k: int(v) for k, v in overall["n"].items()}
        soc_n = {s: tot.get((s, ""), 0) for s in out["soc"]}
        out["_soc_n"] = out["soc"].map(soc_n)
        out["_n"] = [tot.get((s, p), 0) for s, p in zip(out["soc"], out["pt"])]
        out["_is_pt"] = out["pt"] != ""
        out = out.sort_values(["_soc_n", "soc", "_is_pt", "_n", "pt"], ascending=[False, True, True, False, True],
                              kind="stable")
        out["Preferred term"] = out["pt"].where(out["_is_pt"], "Any event in SOC")
        df = out.rename(columns={"soc": "System organ class"})[["System organ class", "Preferred term"] + cols]
    notes = _pop_notes() + ["Sorted by overall frequency. A subject is counted once per SOC and once per PT, "
                            "at the worst grade."]
    return c.finish(df, name=name, title=title, reference=reference, kind="table", notes=notes)


def table_ae_by_soc_pt(reader, store=None):
    return _soc_pt(reader, "TRUE", "ae_by_soc_pt", "Adverse events by system organ class, preferred term and worst grade",
                   "FDA STF T14", grades=True)


def table_sae_by_soc_pt(reader, store=None):
    return _soc_pt(reader, "upper(aeser) = 'Y'", "sae_by_soc_pt",
                   "Serious adverse events by system organ class and preferred term", "FDA STF T10", grades=False)


def _unavailable(name, title, reference, table):
    return c.empty(["Category"], name=name, title=title, reference=reference, kind="table",
                   notes=[f"Not available: the derived table {table} is not installed or not in the database."])


def _med_range(s: pd.Series) -> str:
    s = pd.to_numeric(s, errors="coerce").dropna()
    if s.empty:
        return "-"
    med = s.median()
    med_txt = f"{med:.0f}" if float(med).is_integer() else f"{med:.1f}"
    return f"{med_txt} ({s.min():.0f}-{s.max():.0f})"


def table_crs_icans_summary(reader, store=None):
    name, title, ref = "crs_icans_summary", "CRS and ICANS: incidence by maximum grade, onset, duration and management", \
        "ASTCT 2019 (Lee 2019); FDA STF T18"
    if not c.registered("toxicity_episodes"):
        return _unavailable(name, title, ref, "toxicity_episodes")
    have = set(c.table_columns("toxicity_episodes"))
    flag = {f: (f"bool_or(e.{f} IS TRUE)" if f in have else "NULL::BOOLEAN")
            for f in ("tocilizumab", "corticosteroid", "anakinra", "icu_level_support", "ongoing")}
    per = c.try_sql(reader, f"""
WITH {POP_CTE}
SELECT e.syndrome, e.usubjid, p.cohort, max(e.max_grade) AS max_grade, min(e.onset_day) AS first_onset_day,
  {flag['tocilizumab']} AS tocilizumab, {flag['corticosteroid']} AS corticosteroid, {flag['anakinra']} AS anakinra,
  {flag['icu_level_support']} AS icu, {flag['ongoing']} AS ongoing, count(*) AS episodes
FROM toxicity_episodes e JOIN pop p USING (usubjid) GROUP BY ALL""")
    eps = c.try_sql(reader, f"WITH {POP_CTE} SELECT e.syndrome, p.cohort, e.duration_days FROM toxicity_episodes e "
                            "JOIN pop p USING (usubjid)")
    if per is None or eps is None:
        return _unavailable(name, title, ref, "toxicity_episodes")
    groups = population(reader)
    rows: list[dict] = []
    syndromes = sorted(set(per["syndrome"].dropna()) | {"CRS", "ICANS"}, key=lambda s: (s not in ("CRS", "ICANS"), s))
    for syn in syndromes:
        ps, es = per[per["syndrome"] == syn], eps[eps["syndrome"] == syn]
        spec = [(f"{syn}: any grade", lambda d: len(d))]
        spec += [(f"{syn}: maximum grade {g}", (lambda g: lambda d: int((d["max_grade"] == g).sum()))(g))
                 for g in range(1, 6)]
        spec += [(f"{syn}: grade >= 3", lambda d: int((d["max_grade"] >= 3).sum())),
                 (f"{syn}: tocilizumab", lambda d: int(d["tocilizumab"].fillna(False).astype(bool).sum())),
                 (f"{syn}: corticosteroids", lambda d: int(d["corticosteroid"].fillna(False).astype(bool).sum())),
                 (f"{syn}: anakinra", lambda d: int(d["anakinra"].fillna(False).astype(bool).sum())),
                 (f"{syn}: ICU-level support", lambda d: int(d["icu"].fillna(False).astype(bool).sum())),
                 (f"{syn}: ongoing at data cut", lambda d: int(d["ongoing"].fillna(False).astype(bool).sum()))]
        for lab, f in spec:
            row = {"Category": lab}
            for g, gname, n in groups:
                d = ps if g == OVERALL else ps[ps["cohort"] == g]
                row[_header(gname, n)] = npct(f(d), n)
            rows.append(row)
        for lab, frame, col in ((f"{syn}: day of first onset, median (range)", ps, "first_onset_day"),
                                (f"{syn}: episode duration in days, median (range)", es, "duration_days")):
            row = {"Category": lab}
            for g, gname, n in groups:
                d = frame if g == OVERALL else frame[frame["cohort"] == g]
                row[_header(gname, n)] = _med_range(d[col])
            rows.append(row)
    df = pd.DataFrame(rows)
    notes = ["Safety population: subjects infused on or before the data cut. Subjects counted once, at their "
             "maximum grade over all episodes; management counts subjects with it in any episode.",
             "Onset: day of the first episode from infusion (day 0). Duration: per episode, ongoing episodes to the cut."]
    return c.finish(df, name=name, title=title, reference=ref, kind="table", notes=notes)


def table_lab_worst_grade(reader, store=None):
    name, title, ref = "lab_worst_grade", "Laboratory abnormalities: worst post-baseline CTCAE grade", "FDA STF T52-53"
    if not c.registered("lab_worst_grades"):
        return _unavailable(name, title, ref, "lab_worst_grades")
    counts = c.try_sql(reader, f"""
WITH {POP_CTE}, r AS (
  SELECT w.ctcae_term || CASE WHEN w.direction IS NULL THEN '' ELSE ' (' || w.direction || ')' END AS term,
    w.usubjid, p.cohort, w.worst_grade FROM lab_worst_grades w JOIN pop p USING (usubjid)),
lv AS (SELECT term, 0 AS lvl, usubjid, cohort FROM r WHERE worst_grade IS NOT NULL
       UNION ALL SELECT term, worst_grade, usubjid, cohort FROM r WHERE worst_grade >= 1
       UNION ALL SELECT term, 9, usubjid, cohort FROM r WHERE worst_grade >= 3)
SELECT term, lvl, cohort, count(DISTINCT usubjid) AS n FROM lv GROUP BY ALL
UNION ALL SELECT term, lvl, '{OVERALL}', count(DISTINCT usubjid) FROM lv GROUP BY ALL""")
    if counts is None:
        return _unavailable(name, title, ref, "lab_worst_grades")
    groups = population(reader)
    wide = _pivot(counts, ["term", "lvl"], groups).sort_values(["term", "lvl"], kind="stable")
    lvl_label = {0: "Evaluated (gradable post-baseline value)", 9: "Grade >= 3"} | {g: f"Grade {g}" for g in range(1, 6)}
    wide.insert(1, "Worst grade", wide["lvl"].map(lvl_label))
    df = wide.drop(columns="lvl").rename(columns={"term": "CTCAE term"})
    return c.finish(df, name=name, title=title, reference=ref, kind="table",
                    notes=["Worst grade after baseline per subject and CTCAE term (L = low, H = high direction).",
                           "Percentages of the cohort's safety population N."])


def table_lab_shift(reader, store=None):
    name, title, ref = "lab_shift", "Laboratory shift: baseline grade to worst post-baseline grade (all cohorts)", \
        "FDA STF F15 (shift)"
    if not c.registered("lab_worst_grades"):
        return _unavailable(name, title, ref, "lab_worst_grades")
    df = c.try_sql(reader, f"""
WITH {POP_CTE}
SELECT w.ctcae_term || CASE WHEN w.direction IS NULL THEN '' ELSE ' (' || w.direction || ')' END AS term,
  coalesce(w.baseline_grade::VARCHAR, 'missing') AS baseline,
  coalesce(w.worst_grade::VARCHAR, 'missing') AS worst, count(DISTINCT w.usubjid) AS n
FROM lab_worst_grades w JOIN pop p USING (usubjid) GROUP BY ALL""")
    if df is None:
        return _unavailable(name, title, ref, "lab_worst_grades")
    worst_levels = ["0", "1", "2", "3", "4", "missing"]
    if df.empty:
        out = pd.DataFrame(columns=["CTCAE term", "Baseline grade"] + [f"Worst grade {w} n" for w in worst_levels]
                           + ["Total n"])
    else:
        wide = df.pivot_table(index=["term", "baseline"], columns="worst", values="n", aggfunc="sum", fill_value=0)
        wide = wide.reindex(columns=worst_levels, fill_value=0).astype(int)
        wide["Total n"] = wide.sum(axis=1)
        wide.columns = [f"Worst grade {w} n" if w != "Total n" else w for w in wide.columns]
        out = wide.reset_index().rename(columns={"term": "CTCAE term", "baseline": "Baseline grade"})
        out = out.sort_values(["CTCAE term", "Baseline grade"], kind="stable")
    return c.finish(out, name=name, title=title, reference=ref, kind="table",
                    notes=["Subjects by baseline grade (rows) and worst post-baseline grade (columns); "
                           "safety population, all cohorts."])


def table_dlt_summary(reader, store=None):
    name, title, ref = "dlt_summary", "Dose-limiting toxicities by cohort", "Protocol DLT rules"
    groups = population(reader)
    parts = ["SELECT 0 AS row_no, usubjid, cohort FROM pop"]
    notes = ["Percentages of the cohort's infused subjects. Adjudicated = latest committee decision."]
    if c.registered("dlt_evaluability") and "evaluable" in c.table_columns("dlt_evaluability"):
        parts.append("SELECT 1, v.usubjid, p.cohort FROM dlt_evaluability v JOIN pop p USING (usubjid) "
                     "WHERE v.evaluable IS TRUE")
    else:
        notes.append("DLT evaluability not available (dlt_evaluability not installed).")
    have_cand = c.registered("dlt_candidates")
    if have_cand:
        parts.append("SELECT 2, d.usubjid, p.cohort FROM dlt_candidates d JOIN pop p USING (usubjid)")
        parts.append("SELECT 3, d.usubjid, p.cohort FROM dlt_candidates d JOIN pop p USING (usubjid) WHERE d.in_window")
    else:
        notes.append("DLT candidates not available (dlt_candidates not installed).")
    adj = c.adjudications_frame(store, reader.scope.studyid)
    yes = sorted(adj.loc[adj["adjudication"].isin(["confirmed", "added"]), "event_key"].astype(str))
    no = sorted(adj.loc[adj["adjudication"].isin(["rejected", "withdrawn"]), "event_key"].astype(str))
    yes_subj = sorted(set(adj.loc[adj["adjudication"].isin(["confirmed", "added"]), "adjudication_usubjid"].astype(str)))
    if store is not None:
        parts.append("SELECT 4, p.usubjid, p.cohort FROM pop p WHERE p.usubjid IN (SELECT unnest($yes_subj::VARCHAR[]))")
        if have_cand:
            parts.append("SELECT 5, d.usubjid, p.cohort FROM dlt_candidates d JOIN pop p USING (usubjid) "
                         "WHERE d.event_key NOT IN (SELECT unnest($yes::VARCHAR[])) "
                         "AND d.event_key NOT IN (SELECT unnest($no::VARCHAR[]))")
    else:
        notes.append("No review store given: adjudicated DLTs are not shown.")
    query = "\nUNION ALL\n".join(parts)
    try:
        counts = _counts(reader, query, ["row_no"], {"yes": yes, "no": no, "yes_subj": yes_subj})
    except Exception:  # noqa: BLE001 - a derived table missing from the file: show what we can
        parts = parts[:1]
        counts = _counts(reader, parts[0], ["row_no"])
        notes.append("DLT tables missing from the database file.")
    labels = {0: "Infused subjects", 1: "DLT-evaluable subjects", 2: "Subjects with a screened DLT candidate",
              3: "Subjects with a candidate in the DLT window", 4: "Subjects with an adjudicated DLT",
              5: "Subjects with candidates awaiting adjudication"}
    shown = [int(p.split(" ", 2)[1].rstrip(",")) for p in parts]
    wide = _pivot(counts, ["row_no"], groups)
    full = pd.DataFrame({"row_no": sorted(set(shown))}).merge(wide, on="row_no", how="left").fillna("0")
    full.insert(0, "Category", full["row_no"].map(labels))
    return c.finish(full.drop(columns="row_no"), name=name, title=title, reference=ref, kind="table", notes=notes)


STOP_COLUMNS = {"cohort": "Cohort", "method": "Method", "monitored_event": "Monitored event",
                "evaluable_n": "Evaluable n", "events": "Events", "pending": "Pending", "statistic": "Statistic",
                "boundary": "Boundary", "decision": "Decision", "sentence": "Summary"}


def table_stopping_rules(reader, store=None):
    name, title, ref = "stopping_rules", "Safety stopping rule status", "Protocol stopping rules"
    if not c.registered("stopping_rule_status"):
        return c.empty(list(STOP_COLUMNS.values()), name=name, title=title, reference=ref, kind="table",
                       notes=["Not available: the derived table stopping_rule_status is not installed."])
    have = set(c.table_columns("stopping_rule_status"))
    sel = ", ".join(f'"{k}"' if k in have else f'NULL AS "{k}"' for k in STOP_COLUMNS)
    df = c.try_sql(reader, f"SELECT {sel} FROM stopping_rule_status ORDER BY cohort NULLS FIRST, monitored_event")
    if df is None:
        return c.empty(list(STOP_COLUMNS.values()), name=name, title=title, reference=ref, kind="table",
                       notes=["Not available: stopping_rule_status is not in the database."])
    notes = ["Study-level status (visible to all-sites scopes only)."]
    if df.empty:
        notes.insert(0, "No stopping-rule status rows at this data cut" +
                     ("" if reader.scope.all_sites else " (site-scoped readers see no study-wide aggregates)") + ".")
    return c.finish(df.rename(columns=STOP_COLUMNS), name=name, title=title, reference=ref, kind="table", notes=notes)


@dataclass(frozen=True)
class TableSpec:
    title: str
    reference: str
    builder: Callable[..., pd.DataFrame]


TABLES: dict[str, TableSpec] = {
    "ae_overview": TableSpec("Overview of adverse events", "FDA STF T7", table_ae_overview),
    "ae_by_soc_pt": TableSpec("AEs by SOC, PT and worst grade", "FDA STF T14", table_ae_by_soc_pt),
    "sae_by_soc_pt": TableSpec("SAEs by SOC and PT", "FDA STF T10", table_sae_by_soc_pt),
    "crs_icans_summary": TableSpec("CRS and ICANS summary", "ASTCT 2019", table_crs_icans_summary),
    "lab_worst_grade": TableSpec("Lab worst post-baseline grade", "FDA STF T52-53", table_lab_worst_grade),
    "lab_shift": TableSpec("Lab shift baseline to worst grade", "FDA STF F15", table_lab_shift),
    "dlt_summary": TableSpec("DLTs by cohort", "Protocol DLT rules", table_dlt_summary),
    "stopping_rules": TableSpec("Stopping rule status", "Protocol stopping rules", table_stopping_rules),
}


def build_table(reader: StudyReader, name: str, store=None) -> pd.DataFrame:
    """One summary table as a DataFrame (attrs: name, title, reference, kind, notes); KeyError for unknown names."""
    if name not in TABLES:
        raise KeyError(f"unknown table {name!r}; valid: {', '.join(TABLES)}")
    return TABLES[name].builder(reader, store)

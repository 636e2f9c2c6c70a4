"""Incidence summaries of CRS and ICANS for committee packets and the dashboard.

Every function takes a :class:`safety.access.reader.StudyReader` (so study, cut and site scope apply) and returns a
DataFrame. Denominator: infused subjects (``subjects.first_infusion_date`` not NULL). A subject counts once,
at the maximum grade over all episodes of the syndrome. Confidence intervals are exact (Clopper-Pearson).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

SYNDROMES = ("CRS", "ICANS")
GROUPINGS = {"study": None, "product": "product", "cohort": "cohort", "dose_level": "dose_level"}
ALL_LABEL = "All infused"


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact two-sided confidence interval for a binomial proportion k/n; (nan, nan) when n is 0."""
    if n <= 0:
        return (math.nan, math.nan)
    if not 0 <= k <= n:
        raise ValueError(f"k must be between 0 and n, got k={k}, n={n}")
    # the beta quantile scipy.stats.beta.ppf computes, from scipy.special (imported on first use: scipy.stats
    # would cost every page and packet that imports this module 1-2 s)
    from scipy.special._ufuncs import _beta_ppf
    a = 1.0 - level
    lo = 0.0 if k == 0 else float(_beta_ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(_beta_ppf(1 - a / 2, k + 1, n - k))
    return (lo, hi)


def _check(syndrome: str, by: str | None = None) -> None:
    if syndrome not in SYNDROMES:
        raise ValueError(f"syndrome must be one of {SYNDROMES}, got {syndrome!r}")
    if by is not None and by not in GROUPINGS:
        raise ValueError(f"by must be one of {tuple(GROUPINGS)}, got {by!r}")


def _subject_max(reader, syndrome: str, subjects=None) -> pd.DataFrame:
    """One row per infused subject with the maximum grade of the syndrome (0 when no episode); only the subjects
    ``subjects`` names when it is given (a page's filtered selection)."""
    df = reader.sql("""
        SELECT s.usubjid, s.product, s.cohort, s.dose_level, s.enrollment_order,
               coalesce(e.max_grade, 0) AS max_grade, e.n_episodes, e.first_onset_day, e.first_duration_days,
               e.grading_systems, e.sources
        FROM subjects s
        LEFT JOIN (
          SELECT usubjid, max(max_grade) AS max_grade, count(*) AS n_episodes,
                 arg_min(onset_day, episode_no) AS first_onset_day, arg_min(duration_days, episode_no) AS first_duration_days,
                 string_agg(DISTINCT grading_system, ', ' ORDER BY grading_system) AS grading_systems,
                 string_agg(DISTINCT source, ', ' ORDER BY source) AS sources
          FROM toxicity_episodes WHERE syndrome = $syndrome GROUP BY usubjid
        ) e USING (usubjid)
        WHERE s.first_infusion_date IS NOT NULL
        ORDER BY s.enrollment_order NULLS LAST, s.usubjid
    """, {"syndrome": syndrome})
    return df if subjects is None else df[df["usubjid"].isin(list(subjects))].reset_index(drop=True)


def _groups(df: pd.DataFrame, by: str):
    col = GROUPINGS[by]
    if col is None:
        yield ALL_LABEL, df
        return
    for key, g in df.groupby(df[col].fillna("(missing)"), sort=True):
        yield key, g
    yield ALL_LABEL, df


def _rate(k: int, n: int, level: float) -> tuple[float, float, float]:
    lo, hi = clopper_pearson(k, n, level)
    return (k / n if n else math.nan, lo, hi)


def incidence_by_grade(reader, syndrome: str, by: str = "cohort", level: float = 0.95,
                       subjects=None) -> pd.DataFrame:
    """Subjects infused, with any grade and grade >= 3 (proportion and exact CI), and per maximum grade 1-5.
    ``subjects`` (usubjids) keeps only those subjects, denominators included; None keeps every one in scope."""
    _check(syndrome, by)
    df = _subject_max(reader, syndrome, subjects)
    rows = []
    for key, g in _groups(df, by):
        n = len(g)
        k_any = int((g["max_grade"] >= 1).sum())
        k_3 = int((g["max_grade"] >= 3).sum())
        p_any, lo_any, hi_any = _rate(k_any, n, level)
        p_3, lo_3, hi_3 = _rate(k_3, n, level)
        row = {"group": key, "n_infused": n,
               "n_any_grade": k_any, "pct_any_grade": 100 * p_any, "any_grade_ci_low": 100 * lo_any,
               "any_grade_ci_high": 100 * hi_any,
               "n_grade3_plus": k_3, "pct_grade3_plus": 100 * p_3, "grade3_plus_ci_low": 100 * lo_3,
               "grade3_plus_ci_high": 100 * hi_3}
        for gr in range(1, 6):
            row[f"n_max_grade_{gr}"] = int((g["max_grade"] == gr).sum())
        systems = sorted({s for v in g["grading_systems"].dropna() for s in str(v).split(", ")})
        row["grading_systems"] = ", ".join(systems)
        row["mixed_grading_systems"] = len(systems) > 1
        sources = sorted({s for v in g["sources"].dropna() for s in str(v).split(", ")})
        row["sources"] = ", ".join(sources)
        rows.append(row)
    out = pd.DataFrame(rows)
    out.insert(0, "syndrome", syndrome)
    out.insert(1, "by", by)
    return out


# The rows of the incidence table, in the order the packet's CRS/ICANS summary and the dashboard's CRS & ICANS page
# print them: (category, column of incidence_by_grade holding its count). Every maximum grade 1-5 is a row, 0 where
# no subject had it.
ANY_GRADE = "any grade"
GRADE3_PLUS = "grade >= 3"
INCIDENCE_CATEGORIES = ((ANY_GRADE, "n_any_grade"),
                        *((f"maximum grade {g}", f"n_max_grade_{g}") for g in range(1, 6)),
                        (GRADE3_PLUS, "n_grade3_plus"))


def incidence_table(reader, syndrome: str, by: str = "cohort", level: float = 0.95, subjects=None) -> pd.DataFrame:
    """:func:`incidence_by_grade` as the table the packet and the dashboard print: one row per group and category
    of :data:`INCIDENCE_CATEGORIES` (any grade, maximum grade 1 to 5, grade >= 3), every category present with 0
    subjects where no subject had it.

    Columns: group (as :func:`incidence_by_grade` names it), category, grade (1-5 for a maximum grade, NA for any
    grade and grade >= 3), subjects, total (infused subjects of the group), ci_low, ci_high (exact interval of the
    percentage, NaN when the group has no subject)."""
    inc = incidence_by_grade(reader, syndrome, by=by, level=level, subjects=subjects)
    ci_of = {ANY_GRADE: ("any_grade_ci_low", "any_grade_ci_high"),
             GRADE3_PLUS: ("grade3_plus_ci_low", "grade3_plus_ci_high")}
    rows = []
    for r in inc.to_dict("records"):
        n = int(r["n_infused"])
        for category, column in INCIDENCE_CATEGORIES:
            k = int(r[column])
            if category in ci_of:  # the interval incidence_by_grade computed, not a second computation of it
                lo, hi = r[ci_of[category][0]], r[ci_of[category][1]]
            else:
                lo, hi = (100 * x for x in clopper_pearson(k, n, level))
            rows.append({"group": r["group"], "category": category,
                         "grade": int(column.rsplit("_", 1)[1]) if column.startswith("n_max_grade_") else pd.NA,
                         "subjects": k, "total": n, "ci_low": lo, "ci_high": hi})
    out = pd.DataFrame(rows, columns=["group", "category", "grade", "subjects", "total", "ci_low", "ci_high"])
    out["grade"] = out["grade"].astype("Int64")
    out.insert(0, "syndrome", syndrome)
    return out


def _med_range(s: pd.Series) -> tuple[float, float, float]:
    s = s.dropna()
    if s.empty:
        return (math.nan, math.nan, math.nan)
    return (float(np.median(s)), float(s.min()), float(s.max()))


def onset_duration_summary(reader, syndrome: str, by: str = "cohort") -> pd.DataFrame:
    """Median (range) onset day and duration of each subject's first episode of the syndrome, per group."""
    _check(syndrome, by)
    df = _subject_max(reader, syndrome)
    rows = []
    for key, g in _groups(df, by):
        with_ep = g[g["n_episodes"].fillna(0) > 0]
        med_on, min_on, max_on = _med_range(with_ep["first_onset_day"])
        med_du, min_du, max_du = _med_range(with_ep["first_duration_days"])
        rows.append({"group": key, "n_infused": len(g), "n_subjects_with_episode": len(with_ep),
                     "n_episodes": int(with_ep["n_episodes"].sum()),
                     "onset_day_median": med_on, "onset_day_min": min_on, "onset_day_max": max_on,
                     "duration_days_median": med_du, "duration_days_min": min_du, "duration_days_max": max_du})
    out = pd.DataFrame(rows)
    out.insert(0, "syndrome", syndrome)
    out.insert(1, "by", by)
    return out


def incidence_by_enrollment_order(reader, syndrome: str, level: float = 0.95) -> pd.DataFrame:
    """One row per infused subject in enrollment order with cumulative any-grade and grade >= 3 incidence."""
    _check(syndrome)
    df = _subject_max(reader, syndrome)[["enrollment_order", "usubjid", "product", "cohort", "dose_level", "max_grade"]]
    df = df.reset_index(drop=True)
    df["any_grade"] = df["max_grade"] >= 1
    df["grade3_plus"] = df["max_grade"] >= 3
    df["cum_n"] = np.arange(1, len(df) + 1)
    df["cum_any_grade"] = df["any_grade"].cumsum()
    df["cum_grade3_plus"] = df["grade3_plus"].cumsum()
    df["cum_pct_any_grade"] = 100 * df["cum_any_grade"] / df["cum_n"]
    df["cum_pct_grade3_plus"] = 100 * df["cum_grade3_plus"] / df["cum_n"]
    ci = [clopper_pearson(int(k), int(n), level) for k, n in zip(df["cum_grade3_plus"], df["cum_n"])]
    df["cum_grade3_plus_ci_low"] = [100 * c[0] for c in ci]
    df["cum_grade3_plus_ci_high"] = [100 * c[1] for c in ci]
    df.insert(0, "syndrome", syndrome)
    return df


def management_summary(reader) -> pd.DataFrame:
    """Per syndrome: episodes and subjects, and how many received tocilizumab, corticosteroids, anakinra, ICU-level support."""
    df = reader.sql("""
        SELECT syndrome,
          count(*) AS n_episodes, count(DISTINCT usubjid) AS n_subjects,
          count(DISTINCT usubjid) FILTER (WHERE tocilizumab) AS n_subjects_tocilizumab,
          median(tocilizumab_doses) FILTER (WHERE tocilizumab) AS tocilizumab_doses_median,
          max(tocilizumab_doses) AS tocilizumab_doses_max,
          count(DISTINCT usubjid) FILTER (WHERE corticosteroid) AS n_subjects_corticosteroid,
          count(DISTINCT usubjid) FILTER (WHERE anakinra) AS n_subjects_anakinra,
          count(DISTINCT usubjid) FILTER (WHERE icu_level_support) AS n_subjects_icu_level_support,
          median(tocilizumab_first_day - onset_day) FILTER (WHERE tocilizumab) AS tocilizumab_days_from_onset_median
        FROM toxicity_episodes GROUP BY syndrome ORDER BY syndrome
    """)
    full = pd.DataFrame({"syndrome": list(SYNDROMES)}).merge(df, on="syndrome", how="left")
    for c in full.columns:
        if c.startswith("n_"):
            full[c] = full[c].fillna(0).astype(int)
    for what in ("tocilizumab", "corticosteroid", "anakinra", "icu_level_support"):
        n = full["n_subjects"].replace(0, np.nan)
        full[f"pct_subjects_{what}"] = 100 * full[f"n_subjects_{what}"] / n
    return full

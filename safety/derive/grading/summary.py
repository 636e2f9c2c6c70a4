"""Committee summaries of CTCAE lab grades, read through a scoped StudyReader.

- :func:`shift_table`: subjects by baseline grade x worst post-infusion grade, per term.
- :func:`grade3_counts`: subjects with a post-infusion grade >= 3 per term and cohort, with N.
- :func:`worst_per_term_sql`: the rows the shift table, the packet's worst-grade table and the laboratory page
  count (a subject once per term).

Post-infusion = day >= POST_INFUSION_FIRST_DAY (safety.core.vocabulary; lab_worst_grades). The population is the infused subjects at the cut.
"""
from __future__ import annotations

import pandas as pd

from safety.core.numbers import percent_value

GROUP_COLUMNS = ("cohort", "dose_level", "product", "arm", "siteid")
GRADE_LABELS = ["Grade 0", "Grade 1", "Grade 2", "Grade 3", "Grade 4", "Missing"]


def _label(g) -> str:
    return "Missing" if pd.isna(g) else f"Grade {int(g)}"


def worst_per_term_sql(subjects: str = "TRUE") -> str:
    """SELECT of one row per infused subject, CTCAE term and direction with a graded post-infusion value:
    usubjid, ctcae_term, direction, baseline_grade, worst_grade (the worst over the tests mapped to the term).

    What :func:`shift_table`, the packet's worst-grade table and the laboratory page count. ``subjects`` narrows
    the subjects further: an SQL predicate on ``usubjid`` written by the caller (named parameters, no user text)."""
    return f"""
        SELECT usubjid, ctcae_term, direction, max(baseline_grade) AS baseline_grade, max(worst_grade) AS worst_grade
        FROM lab_worst_grades
        WHERE n_post > 0 AND usubjid IN (SELECT usubjid FROM subjects WHERE infused) AND ({subjects})
        GROUP BY usubjid, ctcae_term, direction"""


def shift_table(reader, term: str | None = None, wide: bool = False) -> pd.DataFrame:
    """Infused subjects with post-infusion lab grades, counted by baseline grade and worst
    post-infusion grade per CTCAE term (a subject counts once per term: worst over its tests).

    Long form: ctcae_term, direction, baseline_grade, worst_grade (nullable ints; NULL = no graded
    baseline / no graded post-infusion record), subjects. ``wide=True``: one row per term and
    baseline grade with columns 'Grade 0' .. 'Grade 4', 'Missing', 'Total'."""
    df = reader.sql(
        f"""
        WITH w AS ({worst_per_term_sql()})
        SELECT ctcae_term, direction, baseline_grade, worst_grade, count(*) AS subjects
        FROM w WHERE $term IS NULL OR lower(ctcae_term) = lower($term) GROUP BY ALL
        ORDER BY ctcae_term, direction, baseline_grade NULLS LAST, worst_grade NULLS LAST
        """,
        {"term": term},
    )
    for c in ("baseline_grade", "worst_grade", "subjects"):
        df[c] = df[c].astype("Int64")
    if not wide:
        return df
    if df.empty:
        return pd.DataFrame(columns=["ctcae_term", "direction", "baseline_grade", *GRADE_LABELS, "Total"])
    df = df.assign(baseline_grade=df.baseline_grade.map(_label), worst_grade=df.worst_grade.map(_label))
    out = df.pivot_table(index=["ctcae_term", "direction", "baseline_grade"], columns="worst_grade",
                         values="subjects", aggfunc="sum", fill_value=0)
    out = out.reindex(columns=GRADE_LABELS, fill_value=0)
    out["Total"] = out.sum(axis=1)
    out.columns.name = None
    return out.reset_index()


def grade3_counts(reader, by: str = "cohort") -> pd.DataFrame:
    """Infused subjects with a post-infusion CTCAE grade >= 3 (and = 4) per term and group.

    Columns: ctcae_term, direction, <by>, n_subjects (N infused in the group), n_grade_3_plus,
    pct_grade_3_plus, n_grade_4. Every group appears for every term seen; an 'All' group is added."""
    if by not in GROUP_COLUMNS:
        raise ValueError(f"by must be one of {', '.join(GROUP_COLUMNS)}")
    # {by} is one of our own column names (checked above), never user text.
    df = reader.sql(
        f"""
        WITH pop AS (
          SELECT usubjid, coalesce(CAST({by} AS VARCHAR), 'Missing') AS grp FROM subjects WHERE infused
          UNION ALL
          SELECT usubjid, 'All' FROM subjects WHERE infused
        ),
        n AS (SELECT grp, count(DISTINCT usubjid) AS n_subjects FROM pop GROUP BY grp),
        w AS (SELECT usubjid, ctcae_term, direction, max(worst_grade) AS worst_grade
              FROM lab_worst_grades GROUP BY ALL),
        t AS (SELECT DISTINCT ctcae_term, direction FROM w)
        SELECT t.ctcae_term, t.direction, n.grp AS {by}, n.n_subjects,
               count(DISTINCT w.usubjid) FILTER (WHERE w.worst_grade >= 3) AS n_grade_3_plus,
               count(DISTINCT w.usubjid) FILTER (WHERE w.worst_grade >= 4) AS n_grade_4
        FROM t CROSS JOIN n
        LEFT JOIN pop ON pop.grp = n.grp
        LEFT JOIN w ON w.usubjid = pop.usubjid AND w.ctcae_term = t.ctcae_term AND w.direction = t.direction
        GROUP BY t.ctcae_term, t.direction, n.grp, n.n_subjects
        ORDER BY t.ctcae_term, t.direction, (n.grp = 'All'), n.grp
        """
    )
    for c in ("n_subjects", "n_grade_3_plus", "n_grade_4"):
        df[c] = df[c].astype("Int64")
    df["pct_grade_3_plus"] = [percent_value(k, n) for k, n in zip(df.n_grade_3_plus, df.n_subjects)]
    return df[["ctcae_term", "direction", by, "n_subjects", "n_grade_3_plus", "pct_grade_3_plus", "n_grade_4"]]

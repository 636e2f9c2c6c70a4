"""Immune effector cell-associated haematotoxicity (ICAHT), early and late, from the ANC and platelet series.

Rules: EHA/EBMT consensus (Rejeski et al., Blood 2023;142:865-877) for neutrophils, as encoded by the
reference implementation emilyliangmd/automatedicahtgrading; the thrombocytopenia
proposal (T-ICAHT, §4.1, secondary source) for platelets. One SQL pass over the whole labs table: a daily
grid per subject built with generate_series from each measured day to the next (its value, then the linear
interpolation), gaps-and-islands windows for episodes. Only the grid days something reads are built, as most
days of a sparse series are unknown: for every series its days 0-30 with a value (the other early days are the
unknown ones), and the whole grid only for the few series with an early low day (their recovery) or two late
platelet values < 20 (their days < 20). Choices are documented in docs/toxicities.md.
"""
from __future__ import annotations

from safety.core.vocabulary import SUBSEQUENT_THERAPY_CATEGORY, blood_result, censored_value, unit_missing
from safety.derive.graph import Derivation
from safety.derive.outcomes.survival import PROGRESSION_SQL, progression_params
from safety.schema import ICAHT
from safety.derive.toxicity._sql import insert, reset, run

EARLY_LAST_DAY = 30
LATE_LAST_DAY = 100
# Up to this many missing days in a row are interpolated between two measured days (measured days at most 8 days
# apart), as Liang's reference implementation does between two values (zoo::na.approx(maxgap = 7); its rule = 2 at the
# series' ends is not followed, docs/toxicities.md).
MAX_MISSING_DAYS = 7
RECOVERY_DAYS = 3          # consecutive days above the threshold that count as recovery
# More than this share of days 0-30 unknown: the early grade is "not fully evaluable" and only a lower bound.
MAX_UNKNOWN_SHARE = 0.5

# What a page calls these grades. Each row is one lineage and a subject's count covers both, so every heading
# and metric names both lineages, each with the source its grade follows.
HEADING = "ICAHT: ANC (EHA/EBMT 2023) and platelets (T-ICAHT proposal)"
EARLY_GRADE3_LABEL = "Early ICAHT grade ≥3 (ANC or platelets)"
LATE_GRADE3_LABEL = "Late ICAHT grade ≥3 (ANC or platelets)"
EARLY_GRADE3_HELP = f"Subjects with an early grade ≥3 (days 0-{EARLY_LAST_DAY}) in either lineage, ANC or platelets"
LATE_WINDOW = f"days {EARLY_LAST_DAY + 1}-{LATE_LAST_DAY}, or to a relapse, progression or subsequent therapy before"
LATE_GRADE3_HELP = f"Subjects with a late grade ≥3 ({LATE_WINDOW}) in either lineage, ANC or platelets"
# The source the grades follow, as an output's reference line names it.
REFERENCE = "EHA/EBMT ICAHT consensus (Rejeski et al., Blood 2023;142:865-877); platelets: T-ICAHT proposal"


def subjects_at_grade3(rows, column: str) -> int:
    """The count behind EARLY_GRADE3_LABEL (``column`` early_grade) and LATE_GRADE3_LABEL (late_grade): the unique
    subjects among ``rows`` (icaht rows, both lineages) graded 3 or more, as the Labs page and the packet count them."""
    return int(rows.loc[rows[column] >= 3, "usubjid"].nunique())


# the last early day whose count is graded (a series' early_end): EARLY_LAST_DAY; for platelets the day before a
# relapse or progression or a subsequent line of therapy, whichever comes first (end_day), as T-ICAHT censors the
# early window there (Rejeski et al., Blood 2025, Table 1; death ends the grid itself). The EHA/EBMT early ANC window
# is not censored (the reference implementation grids days 0-30 whatever follows).
_EARLY_END = (f"CASE WHEN lineage = 'PLT' THEN least({EARLY_LAST_DAY}, coalesce(end_day, {EARLY_LAST_DAY} + 1) - 1) "
              f"ELSE {EARLY_LAST_DAY} END")


def _grid(span: str, last: str, unknown_days: bool = True) -> str:
    """SQL: the daily grid, days 0..``last`` (an expression of ``span``'s columns), of the series in ``span``, each day
    flagged low, deep and up. Each measured day covers the days up to the next measured one, which carries the value
    on its own day and the linear interpolation between the two (at most MAX_MISSING_DAYS missing days between
    them); the other days are unknown (NULL value and flags), and ``unknown_days=False`` leaves them out."""
    interpolated = f"n_day - p_day - 1 <= {MAX_MISSING_DAYS}"
    # a measured day's segment ends at the next one, or at the measured day itself when the days between are unknown
    seg_end = (f"least(coalesce(n_day - 1, {last}), {last})" if unknown_days
               else f"least(CASE WHEN {interpolated} THEN n_day - 1 ELSE p_day END, {last})")
    before_first = f"""
    SELECT usubjid, lineage, unnest(generate_series(0, least(first_day - 1, {last}))) AS day,
           CAST(NULL AS BOOLEAN) AS measured, CAST(NULL AS DOUBLE) AS v, CAST(NULL AS DOUBLE) AS c, early_end
    FROM {span} WHERE {last} >= 0 AND first_day > 0
    UNION ALL""" if unknown_days else ""
    return f"""
  SELECT usubjid, lineage, day, measured, v, early_end,
    CASE WHEN c IS NULL THEN NULL WHEN lineage = 'ANC' THEN c <= 0.5::DOUBLE ELSE c < 50.0::DOUBLE END AS low,
    CASE WHEN c IS NULL THEN NULL WHEN lineage = 'ANC' THEN c <= 0.1::DOUBLE ELSE c < 20.0::DOUBLE END AS deep,
    -- recovery threshold: ANC > 0.5; PLT >= 20 (T-ICAHT)
    CASE WHEN c IS NULL THEN NULL WHEN lineage = 'ANC' THEN c > 0.5::DOUBLE ELSE c >= 20.0::DOUBLE END AS up
  FROM ({before_first}
    SELECT usubjid, lineage, day, measured, v, round(v, 9) + sh AS c, early_end FROM (
      SELECT usubjid, lineage, day, day = p_day AS measured,
        CASE WHEN day = p_day THEN p_v
             WHEN {interpolated} THEN p_v + (n_v - p_v) * (day - p_day)::DOUBLE / (n_day - p_day) END AS v,
        CASE WHEN day = p_day THEN p_sh
             WHEN {interpolated} THEN p_sh + (n_sh - p_sh) * (day - p_day)::DOUBLE / (n_day - p_day) END AS sh,
        early_end
      FROM (
        SELECT g.usubjid, g.lineage, g.p_day, g.p_v, g.p_sh, g.n_day, g.n_v, g.n_sh, sp.early_end,
               unnest(generate_series(greatest(g.p_day, 0), {seg_end})) AS day
        FROM seg g JOIN {span} sp USING (usubjid, lineage) WHERE {last} >= 0
      )
    )
  )"""


_SQL = f"""
WITH subj AS (
  SELECT s.usubjid, s.death_day, s.last_known_alive_day,
         -- the first of relapse/progression and a subsequent line of therapy ends the late window (EHA/EBMT, as the
         -- reference implementation) and T-ICAHT's early platelet window
         least(p.prog_day, t.ther_day) AS end_day,
         CASE WHEN t.ther_day < coalesce(p.prog_day, t.ther_day + 1)
              THEN 'a subsequent therapy (' || t.ther_name || ')' ELSE 'relapse/progression' END AS end_what
  FROM subjects s
  -- relapse or progression: the day it is recorded, as the NRM estimate reads it
  LEFT JOIN (SELECT usubjid, min(day) AS prog_day FROM ({PROGRESSION_SQL}) GROUP BY usubjid) p USING (usubjid)
  -- a subsequent line of therapy: a medication after the infusion day whose category names one (CMCAT)
  LEFT JOIN (SELECT usubjid, min(start_day) AS ther_day, arg_min(coalesce(cmdecod, cmtrt), (start_day, cmseq)) AS ther_name
             FROM medications WHERE studyid = $s AND data_cut = $c AND start_day >= 1
               AND regexp_matches(upper(coalesce(cmcat, '')), $subsequent_therapy)
             GROUP BY usubjid) t USING (usubjid)
  WHERE s.studyid = $s AND s.data_cut = $c AND s.first_infusion_date IS NOT NULL
),
res AS (
  SELECT l.usubjid, CASE upper(l.lbtestcd) WHEN 'NEUT' THEN 'ANC' ELSE 'PLT' END AS lineage, l.day, l.value,
         {censored_value('l')} AS cv, {unit_missing('l')} AS unitless
  FROM labs l JOIN subj USING (usubjid)
  WHERE l.studyid = $s AND l.data_cut = $c AND upper(l.lbtestcd) IN ('NEUT', 'PLAT') AND {blood_result('l')}
    AND l.value IS NOT NULL AND l.day BETWEEN -{MAX_MISSING_DAYS + 1} AND {LATE_LAST_DAY} + {MAX_MISSING_DAYS + 1}
    AND (subj.death_day IS NULL OR l.day <= subj.death_day)
),
-- a count without its unit (300: cells/uL or x10^9/L?) is left out, as CTCAE grading does, and the note says so
unitless AS (
  SELECT usubjid, lineage, count(*) || ' ' || CASE lineage WHEN 'ANC' THEN 'ANC (NEUT)' ELSE 'platelet (PLAT)' END
         || ' result(s) without a unit left out (not read as x10^9/L)' AS unitless_note
  FROM res WHERE unitless GROUP BY usubjid, lineage
),
-- v: the day's lowest value; sh: what its censoring adds to it when compared with a cut-off ('<20' lies below 20),
-- added after the rounding to 9 decimals, which would erase it
obs AS (
  SELECT usubjid, lineage, day, arg_min(value, cv) AS v, min(cv) - arg_min(value, cv) AS sh
  FROM res WHERE NOT unitless GROUP BY usubjid, lineage, day
),
-- the grid runs to the last value, and at least to day {EARLY_LAST_DAY} or the end of follow-up (death, last known
-- alive), as the reference implementation's does: the early days after the last value are unknown, not left out
span AS (
  SELECT *, {_EARLY_END} AS early_end FROM (
  SELECT o.usubjid, o.lineage,
         least({LATE_LAST_DAY}, coalesce(any_value(s.death_day), 100000),
               greatest(max(o.day), least({EARLY_LAST_DAY},
                                          coalesce(any_value(s.death_day), any_value(s.last_known_alive_day), max(o.day)))))
           AS last_day,
         min(o.day) AS first_day, any_value(s.death_day) AS death_day, any_value(s.last_known_alive_day) AS lka,
         any_value(s.end_day) AS end_day, any_value(s.end_what) AS end_what
  FROM obs o JOIN subj s USING (usubjid) GROUP BY o.usubjid, o.lineage
  )
),
-- each measured day with the next one, the grid's segments (_grid)
seg AS (
  SELECT usubjid, lineage, day AS p_day, v AS p_v, sh AS p_sh, lead(day) OVER w AS n_day, lead(v) OVER w AS n_v,
         lead(sh) OVER w AS n_sh
  FROM obs WINDOW w AS (PARTITION BY usubjid, lineage ORDER BY day)
),
-- the grid's early days with a value, of every series: the early runs read no other, and the unknown early days
-- are the others (counts). Most grid days are unknown in a sparse series.
flag AS ({_grid('span', f'least(last_day, {EARLY_LAST_DAY})', unknown_days=False)}),
-- runs of consecutive early low (or deep) days, then runs less than 3 days apart joined
runs AS (
  SELECT usubjid, lineage, kind, min(day) AS r_start, max(day) AS r_end FROM (
    SELECT usubjid, lineage, day, 'low' AS kind, day - row_number() OVER (PARTITION BY usubjid, lineage ORDER BY day) AS grp
    FROM flag WHERE low AND day <= early_end
    UNION ALL
    SELECT usubjid, lineage, day, 'deep', day - row_number() OVER (PARTITION BY usubjid, lineage ORDER BY day)
    FROM flag WHERE deep AND day <= early_end
  ) GROUP BY usubjid, lineage, kind, grp
),
joined AS (
  SELECT usubjid, lineage, kind, min(r_start) AS j_start, max(r_end) AS j_end FROM (
    SELECT *, sum(CASE WHEN prev_end IS NULL OR r_start - prev_end - 1 >= {RECOVERY_DAYS} THEN 1 ELSE 0 END)
                OVER (PARTITION BY usubjid, lineage, kind ORDER BY r_start) AS j
    FROM (SELECT *, lag(r_end) OVER (PARTITION BY usubjid, lineage, kind ORDER BY r_start) AS prev_end FROM runs)
  ) GROUP BY usubjid, lineage, kind, j
),
dur AS (
  SELECT usubjid, lineage,
    max(j_end - j_start + 1) FILTER (WHERE kind = 'low') AS low_longest,
    sum(j_end - j_start + 1) FILTER (WHERE kind = 'low') AS low_total,
    max(j_end - j_start + 1) FILTER (WHERE kind = 'deep') AS deep_longest,
    sum(j_end - j_start + 1) FILTER (WHERE kind = 'deep') AS deep_total,
    min(j_start) FILTER (WHERE kind = 'low') AS first_low,
    max(j_end) FILTER (WHERE kind = 'low') AS last_low
  FROM joined GROUP BY usubjid, lineage
),
late AS (
  SELECT usubjid, lineage, arg_min(v, (c, day)) AS late_nadir, min(c) AS late_nadir_c,
    arg_min(day, (c, day)) AS late_nadir_day,
    count(*) FILTER (WHERE CASE WHEN lineage = 'ANC' THEN c <= 1.5::DOUBLE ELSE c < 100.0::DOUBLE END) AS n_below,
    count(*) FILTER (WHERE lineage = 'PLT' AND c < 20.0::DOUBLE) AS n_plt20,
    list_sort(list(v))[2] AS second_lowest, list_sort(list(c))[2] AS second_lowest_c, count(*) AS n_late
  FROM (SELECT o.*, round(o.v, 9) + o.sh AS c FROM obs o JOIN subj s USING (usubjid)
        WHERE o.day < coalesce(s.end_day, {LATE_LAST_DAY} + 1))
  WHERE day BETWEEN {EARLY_LAST_DAY} + 1 AND {LATE_LAST_DAY} GROUP BY usubjid, lineage
),
-- the whole grid (unknown days, and days after {EARLY_LAST_DAY}, too) only of the series that read it: recovery after
-- an early low day (rec, maybe), and platelet days < 20 once two late values are < 20 (late_plt_days, which grades
-- no other series). Most series have neither.
gridded AS (
  SELECT * FROM span sp WHERE EXISTS (SELECT 1 FROM dur d WHERE d.usubjid = sp.usubjid AND d.lineage = sp.lineage
                                                              AND d.first_low IS NOT NULL)
    OR EXISTS (SELECT 1 FROM late l WHERE l.usubjid = sp.usubjid AND l.lineage = sp.lineage AND l.n_plt20 >= 2)
),
grid AS ({_grid('gridded', 'last_day')}),
-- a day starts a recovery when it and the next two days are above the threshold. Only days above it, after
-- the first low day of a series that has one, can start one (recov reads no other): the window sorts those
-- alone, and among them the day two rows on is day + 2 exactly when the two days between are above too.
rec AS (
  SELECT f.usubjid, f.lineage, f.day, coalesce(lead(f.day, 2) OVER w = f.day + 2, false) AS recovered3
  FROM grid f SEMI JOIN dur d ON d.usubjid = f.usubjid AND d.lineage = f.lineage AND f.day > d.first_low
  WHERE f.up
  WINDOW w AS (PARTITION BY f.usubjid, f.lineage ORDER BY f.day)
),
-- a recovery the values cannot rule out, for the series that may be forced to grade 4 (ANC low from day 3 or
-- earlier): a day by day {EARLY_LAST_DAY} above 0.5, or without a value, whose next two days are not known to be
-- low. A day without a value (a longer gap, or after the last value while alive) may be above, as unknown days are
-- never counted low; a day after death is not. The grid has every day from 0 to its last, so the frame holds the
-- next two days.
maybe AS (
  SELECT f.usubjid, f.lineage, min(f.day) AS may_recover_day, arg_min(f.up IS NULL, f.day) AS may_recover_unknown
  FROM (
    SELECT f.usubjid, f.lineage, f.day, f.up, bool_or(f.low) OVER w AS low_next, count(*) OVER w AS n_next
    FROM grid f SEMI JOIN dur d ON d.usubjid = f.usubjid AND d.lineage = f.lineage AND d.first_low <= 3
      AND f.day > d.first_low
    WHERE f.lineage = 'ANC' AND f.day <= {EARLY_LAST_DAY} + 2
    WINDOW w AS (PARTITION BY f.usubjid, f.lineage ORDER BY f.day ROWS BETWEEN 1 FOLLOWING AND 2 FOLLOWING)
  ) f JOIN span sp USING (usubjid, lineage)
  WHERE coalesce(f.up, true) AND f.day <= {EARLY_LAST_DAY} AND NOT coalesce(f.low_next, false)
    AND (f.n_next = 2 OR sp.death_day IS NULL OR sp.death_day >= f.day + 2)
  GROUP BY f.usubjid, f.lineage
),
-- the grid has each day 0..last_day once, so the early days without a value are those flag leaves out
counts AS (
  SELECT sp.usubjid, sp.lineage, count(*) FILTER (WHERE f.measured AND f.day <= {EARLY_LAST_DAY}) AS n_values,
    -- a platelet day censored at progression is neither low nor unknown
    greatest(least(sp.last_day, sp.early_end) + 1, 0) - count(*) FILTER (WHERE f.day <= sp.early_end) AS unknown_days
  FROM span sp LEFT JOIN flag f USING (usubjid, lineage) GROUP BY sp.usubjid, sp.lineage, sp.last_day, sp.early_end
),
recov AS (
  SELECT r.usubjid, r.lineage,
    min(r.day) FILTER (WHERE r.recovered3 AND r.day > d.last_low) AS recovery_day,
    -- recovery counts only when it starts by day {EARLY_LAST_DAY} (EHA/EBMT: grade 4 = no recovery in the early window)
    bool_or(r.recovered3 AND r.day > d.first_low AND r.day <= {EARLY_LAST_DAY}) AS any_recovery
  FROM rec r JOIN dur d USING (usubjid, lineage) GROUP BY r.usubjid, r.lineage
),
early AS (
  SELECT sp.usubjid, sp.lineage, sp.death_day, sp.lka, sp.last_day, sp.end_day, sp.end_what,
    coalesce(d.low_longest, 0) AS low_longest, coalesce(d.low_total, 0) AS low_total,
    coalesce(d.deep_longest, 0) AS deep_longest, coalesce(d.deep_total, 0) AS deep_total,
    d.first_low, d.last_low, coalesce(k.n_values, 0) AS n_values, coalesce(k.unknown_days, 0) AS unknown_days,
    rv.recovery_day, rv.any_recovery, mr.may_recover_day, mr.may_recover_unknown
  FROM span sp LEFT JOIN dur d USING (usubjid, lineage) LEFT JOIN counts k USING (usubjid, lineage)
  LEFT JOIN recov rv USING (usubjid, lineage) LEFT JOIN maybe mr USING (usubjid, lineage)
),
late_plt_days AS (
  SELECT f.usubjid, f.lineage, count(*) FILTER (WHERE f.deep) AS plt20_days
  FROM grid f JOIN subj s USING (usubjid)
  WHERE f.lineage = 'PLT' AND f.day BETWEEN {EARLY_LAST_DAY} + 1 AND {LATE_LAST_DAY}
    AND f.day < coalesce(s.end_day, {LATE_LAST_DAY} + 1)
  GROUP BY f.usubjid, f.lineage
),
seen AS (
  SELECT e.*, l.late_nadir, l.late_nadir_c, l.late_nadir_day, l.n_below, l.second_lowest, l.second_lowest_c, l.n_late,
    l.n_plt20, lp.plt20_days,
    e.lineage = 'ANC' AND e.first_low <= 3 AND NOT coalesce(e.any_recovery, false)
      AND (e.death_day IS NOT NULL OR greatest(coalesce(e.lka, 0), e.last_day) >= {EARLY_LAST_DAY})
      AS without_recovery_seen,
    e.unknown_days > {MAX_UNKNOWN_SHARE} * ({EARLY_LAST_DAY} + 1) AS mostly_unknown,
    e.n_values > 0 AND e.unknown_days <= {MAX_UNKNOWN_SHARE} * ({EARLY_LAST_DAY} + 1)
      AND (greatest(coalesce(e.lka, 0), e.last_day) >= {EARLY_LAST_DAY} OR e.death_day IS NOT NULL
           OR e.recovery_day IS NOT NULL OR (e.first_low IS NULL AND e.last_day >= {EARLY_LAST_DAY})) AS evaluable
  FROM early e LEFT JOIN late l USING (usubjid, lineage) LEFT JOIN late_plt_days lp USING (usubjid, lineage)
),
graded AS (
  SELECT *, without_recovery_seen AND may_recover_day IS NULL AS never_recovered,
         without_recovery_seen AND may_recover_day IS NOT NULL AS recovery_unconfirmed
  FROM seen
)
SELECT $s::VARCHAR AS studyid, $c::DATE AS data_cut, usubjid, lineage,
  unknown_days AS early_unknown_days,
  CASE WHEN n_values = 0 THEN 'not assessable' WHEN mostly_unknown THEN 'not fully evaluable'
       WHEN NOT evaluable THEN 'provisional' ELSE 'fully evaluable' END AS early_evaluability,
  n_values > 0 AND (mostly_unknown OR NOT evaluable) AS early_grade_is_lower_bound,
  CASE WHEN n_values = 0 THEN NULL
       WHEN lineage = 'ANC' AND never_recovered THEN 'ANC <= 0.5 from day ' || first_low || ' with no recovery by day {EARLY_LAST_DAY}'
       WHEN lineage = 'ANC' AND (low_longest >= 31 OR deep_longest >= 14) THEN
         CASE WHEN deep_longest >= 14 THEN 'ANC <= 0.1 for ' || deep_longest || ' days (>= 14)' ELSE 'ANC <= 0.5 for ' || low_longest || ' days' END
       WHEN lineage = 'ANC' AND low_longest >= 14 THEN 'ANC <= 0.5 for ' || low_longest || ' days (14-30)'
       WHEN lineage = 'ANC' AND deep_longest >= 7 THEN 'ANC <= 0.1 for ' || deep_longest || ' days (7-13)'
       WHEN lineage = 'ANC' AND low_longest >= 7 THEN 'ANC <= 0.5 for ' || low_longest || ' days (7-13)'
       WHEN lineage = 'ANC' AND low_longest >= 1 THEN 'ANC <= 0.5 for ' || low_longest || ' days (1-6)'
       WHEN lineage = 'ANC' THEN 'ANC never <= 0.5 in days 0-{EARLY_LAST_DAY}'
       WHEN deep_total >= 1 THEN 'platelets < 20 on ' || deep_total || ' days'
       WHEN low_total >= 1 THEN 'platelets < 50 on ' || low_total || ' days'
       ELSE 'platelets never < 50 in days 0-{EARLY_LAST_DAY}' END
    || CASE WHEN lineage = 'PLT' AND end_day <= {EARLY_LAST_DAY}
            THEN ' before ' || end_what || ' on day ' || end_day ELSE '' END
    || CASE WHEN mostly_unknown THEN '; ' || unknown_days || ' of {EARLY_LAST_DAY + 1} days unknown: not fully evaluable, grade is a lower bound'
            ELSE '' END AS early_grade_reason,
  CASE WHEN late_nadir IS NULL THEN 'no value after day {EARLY_LAST_DAY}'
            || CASE WHEN end_day <= {LATE_LAST_DAY} THEN ' before ' || end_what || ' on day ' || end_day ELSE '' END
       WHEN n_below = 0 THEN 'no value ' || CASE WHEN lineage = 'ANC' THEN '<= 1.5' ELSE '< 100' END || ' after day {EARLY_LAST_DAY}'
       WHEN lineage = 'ANC' AND n_late = 1 THEN 'the only value after day {EARLY_LAST_DAY} (' || round(late_nadir, 2)
            || ' on day ' || late_nadir_day || ') sets the grade'
       WHEN n_below = 1 THEN 'one value ' || CASE WHEN lineage = 'ANC' THEN '<= 1.5' ELSE '< 100' END
            || ' after day {EARLY_LAST_DAY} (' || round(late_nadir, 2) || ' on day ' || late_nadir_day
            || '): transient, a late grade needs a second test at that level'
       WHEN lineage = 'ANC' THEN n_below || ' values <= 1.5; the nadir ' || round(late_nadir, 2) || ' on day '
            || late_nadir_day || ' sets the grade'
       -- T-ICAHT grade 3-4: two or more tests < 20, graded by the days below 20, not by the second-lowest value
       WHEN n_plt20 >= 2 AND plt20_days >= 1 THEN n_plt20 || ' values < 20 after day {EARLY_LAST_DAY}: '
            || plt20_days || ' day' || CASE WHEN plt20_days > 1 THEN 's' ELSE '' END || ' with platelets < 20 ('
            || CASE WHEN plt20_days >= 14 THEN '>= 14' ELSE '1-13' END || ') set the grade'
       ELSE n_below || ' values < 100; second-lowest ' || round(second_lowest, 2)
            || ' sets the grade (two tests at that level)' END AS late_grade_reason,
  CASE WHEN n_values = 0 THEN NULL
       WHEN lineage = 'ANC' THEN CASE
         WHEN never_recovered OR low_longest >= 31 OR deep_longest >= 14 THEN 4
         WHEN low_longest >= 14 OR deep_longest >= 7 THEN 3
         WHEN low_longest >= 7 THEN 2 WHEN low_longest >= 1 THEN 1 ELSE 0 END
       ELSE CASE WHEN deep_total >= 14 THEN 4 WHEN deep_total >= 1 THEN 3
                 WHEN low_total >= 7 THEN 2 WHEN low_total >= 1 THEN 1 ELSE 0 END END AS early_grade,
  CASE WHEN late_nadir IS NULL THEN NULL
       -- EHA/EBMT as Liang's reference code: the nadir sets the grade once a second value is <= 1.5 too (not
       -- transient), or when it is the only value of the late window
       WHEN lineage = 'ANC' THEN CASE WHEN n_below = 0 OR (n_below = 1 AND n_late > 1) THEN 0
         WHEN late_nadir_c <= 0.1::DOUBLE THEN 4 WHEN late_nadir_c <= 0.5::DOUBLE THEN 3
         WHEN late_nadir_c <= 1.0::DOUBLE THEN 2 ELSE 1 END
       ELSE greatest(
         CASE WHEN n_plt20 >= 2 AND plt20_days >= 14 THEN 4 WHEN n_plt20 >= 2 AND plt20_days >= 1 THEN 3 ELSE 0 END,
         CASE WHEN n_below < 2 THEN 0 WHEN second_lowest_c < 50.0::DOUBLE THEN 2 ELSE 1 END) END AS late_grade,
  CASE WHEN lineage = 'ANC' THEN low_longest ELSE low_total END AS days_le_500,
  CASE WHEN lineage = 'ANC' THEN deep_longest ELSE deep_total END AS days_le_100,
  first_low AS first_day_le_500, never_recovered,
  late_nadir, late_nadir_day, n_below AS late_values_below, recovery_day, n_values, evaluable,
  nullif(concat_ws('; ',
    CASE WHEN n_values = 0 THEN 'no value in days 0-30' END,
    CASE WHEN n_values > 0 AND NOT evaluable AND NOT mostly_unknown THEN 'follow-up ends before day 30 without recovery: early grade provisional' END,
    CASE WHEN mostly_unknown THEN 'not fully evaluable: ' || unknown_days || ' of {EARLY_LAST_DAY + 1} early days unknown, early grade is a lower bound' END,
    CASE WHEN never_recovered THEN 'low from day ' || first_low || ' and not recovered by day {EARLY_LAST_DAY}: grade 4' END,
    CASE WHEN recovery_unconfirmed AND may_recover_unknown THEN 'ANC unknown from day ' || may_recover_day
         || ': recovery by day {EARLY_LAST_DAY} not ruled out, graded by the duration (grade 4 had it not recovered)'
         WHEN recovery_unconfirmed THEN 'ANC above 0.5 on day ' || may_recover_day
         || ' with the next days unknown: recovery by day {EARLY_LAST_DAY} not confirmed, graded by the duration'
         || ' (grade 4 had it not recovered)' END,
    CASE WHEN unknown_days > 0 THEN unknown_days || ' day(s) in 0-30 unknown (no value, and not between two values'
         || ' at most {MAX_MISSING_DAYS + 1} days apart: not interpolated)' END,
    CASE WHEN late_nadir IS NOT NULL AND n_below = 1 AND (n_late > 1 OR lineage = 'PLT')
         THEN 'one low value after day 30: late grade needs 2' END,
    CASE WHEN lineage = 'PLT' AND end_day <= {EARLY_LAST_DAY}
         THEN 'early platelet days from ' || end_what || ' on day ' || end_day
              || ' not counted (T-ICAHT censors the early window at progression or a subsequent line of therapy)' END,
    CASE WHEN end_day <= {LATE_LAST_DAY}
         THEN 'late window ended by ' || end_what || ' on day ' || end_day || ' (values from that day not graded)' END,
    unitless_note
  ), '') AS note
FROM graded LEFT JOIN unitless USING (usubjid, lineage)
UNION ALL BY NAME
-- an infused subject without any result of a lineage is listed as not assessable rather than left out
SELECT $s::VARCHAR AS studyid, $c::DATE AS data_cut, s.usubjid, l.lineage, 0 AS n_values, false AS evaluable,
  'not assessable' AS early_evaluability,
  'no ' || CASE l.lineage WHEN 'ANC' THEN 'ANC (NEUT)' ELSE 'platelet (PLAT)' END
    || ' result between day -{MAX_MISSING_DAYS + 1} and day {LATE_LAST_DAY + MAX_MISSING_DAYS + 1}: not assessable'
    || coalesce('; ' || u.unitless_note, '') AS note
FROM subj s CROSS JOIN (VALUES ('ANC'), ('PLT')) l(lineage)
LEFT JOIN unitless u ON u.usubjid = s.usubjid AND u.lineage = l.lineage
WHERE NOT EXISTS (SELECT 1 FROM span sp WHERE sp.usubjid = s.usubjid AND sp.lineage = l.lineage)
"""


def derive_icaht(con, studyid, data_cut, config, review_store=None) -> None:
    """Build ``icaht`` (early and late, ANC and PLT) for one study and data cut."""
    reset(con, (ICAHT,), studyid, data_cut)
    insert(con, ICAHT, _SQL, {"s": studyid, "c": data_cut, "subsequent_therapy": SUBSEQUENT_THERAPY_CATEGORY,
                              **progression_params(config or {})})


DERIVATION = Derivation(
    name="icaht",
    writes=(ICAHT,),
    reads=('subjects', 'labs', 'responses', 'disposition', 'adverse_events', 'medications'),
    run=derive_icaht,
)

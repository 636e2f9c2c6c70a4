"""Liver signal: eDISH peaks and the possible Hy's law quadrant, read through a scoped StudyReader.

Hy's law (FDA DILI guidance 2009): ALT **or** AST >= 3 x ULN with total bilirubin >= 2 x ULN. eDISH (Watkins,
Guo) plots each subject's peak aminotransferase (the higher of ALT and AST, each as a multiple of its own ULN)
against the peak total bilirubin. See docs/grading.md "Liver: eDISH and Hy's law".
"""
from __future__ import annotations

from safety.core.vocabulary import POST_INFUSION_FIRST_DAY, blood_result

AMINOTRANSFERASE_XULN = 3  # ALT or AST >= 3 x ULN (FDA DILI guidance 2009)
BILIRUBIN_XULN = 2         # total bilirubin >= 2 x ULN
CHOLESTASIS_ALP_XULN = 2   # Hy's law cases have no initial cholestasis: ALP < 2 x ULN (FDA DILI guidance 2009)


def edish_sql(subjects: str = "TRUE") -> str:
    """SELECT of one row per subject with a blood aminotransferase and total bilirubin that have a ULN after infusion
    (from POST_INFUSION_FIRST_DAY: the day-0 baseline is not treatment-emergent): usubjid,
    peak_alt_xuln, peak_ast_xuln, peak_aminotransferase_xuln (the higher of the two), aminotransferase (the test
    of that peak, 'ALT' or 'AST'), aminotransferase_day, peak_bili_xuln, bili_day, peak_alp_xuln, alp_day,
    possible_hys_law (the quadrant: both peaks at any time after infusion; ALP is shown, not applied; a day is the
    first day of its peak).

    What the Labs page's eDISH plots and counts. ``subjects``: an SQL predicate on ``usubjid`` written by the caller
    (named parameters, no user text)."""
    return f"""
        WITH r AS (
          SELECT usubjid, lbtestcd, day, value / uln AS xuln FROM labs
          WHERE lbtestcd IN ('ALT', 'AST', 'BILI', 'ALP') AND value IS NOT NULL AND uln > 0
            AND day >= {POST_INFUSION_FIRST_DAY} AND {blood_result()} AND ({subjects})),
        p AS (
          SELECT usubjid,
                 max(xuln) FILTER (WHERE lbtestcd = 'ALT') AS peak_alt_xuln,
                 max(xuln) FILTER (WHERE lbtestcd = 'AST') AS peak_ast_xuln,
                 max(xuln) FILTER (WHERE lbtestcd IN ('ALT', 'AST')) AS peak_aminotransferase_xuln,
                 -- the earliest peak; ALT before AST when both reach it on the same day
                 arg_max(lbtestcd, (xuln, -day, lbtestcd = 'ALT')) FILTER (WHERE lbtestcd IN ('ALT', 'AST'))
                   AS aminotransferase,
                 arg_max(day, (xuln, -day)) FILTER (WHERE lbtestcd IN ('ALT', 'AST')) AS aminotransferase_day,
                 max(xuln) FILTER (WHERE lbtestcd = 'BILI') AS peak_bili_xuln,
                 arg_max(day, (xuln, -day)) FILTER (WHERE lbtestcd = 'BILI') AS bili_day,
                 max(xuln) FILTER (WHERE lbtestcd = 'ALP') AS peak_alp_xuln,
                 arg_max(day, (xuln, -day)) FILTER (WHERE lbtestcd = 'ALP') AS alp_day
          FROM r GROUP BY usubjid)
        SELECT *, peak_aminotransferase_xuln >= {AMINOTRANSFERASE_XULN} AND peak_bili_xuln >= {BILIRUBIN_XULN}
                    AS possible_hys_law
        FROM p WHERE peak_aminotransferase_xuln IS NOT NULL AND peak_bili_xuln IS NOT NULL
        ORDER BY usubjid"""


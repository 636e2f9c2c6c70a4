"""Cumulative incidence with competing risks (Aalen-Johansen) and Kaplan-Meier, with numbers at risk.

The estimators are statsmodels' (``CumIncidenceRight`` is the Aalen-Johansen estimator, ``SurvfuncRight`` the
Kaplan-Meier product-limit estimator), not hand-written; this module only shapes subject data into (time, status)
and the estimates into step curves a page, a figure or a packet table can read. Times are days from infusion.
``status``: 0 = censored, 1 = the event of interest, 2 = the competing event.
"""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

from safety.core.sql import run_sql
from safety.core.vocabulary import OVERALL_RESPONSE_ROW, overall_response_params
from safety.derive.outcomes.response_codes import PROGRESSION_CODES

if TYPE_CHECKING:  # the curves are DataFrames for pages; a load's NRM estimates read arrays (endpoint_arrays)
    import pandas as pd

RISK_TABLE_DAYS = (0, 28, 100, 180, 365)  # numbers at risk printed under every curve
# The row of numbers at risk under a curve timed from infusion: its set is the infused subjects in view, at
# risk from day 0 (under a cohort filter or a site scope, not all of the study's).
AT_RISK_FROM_INFUSION = "Infused subjects"

# endpoint -> (title, event, competing event). One place for what each curve means.
ENDPOINTS = {
    "CRS": ("Cumulative incidence of CRS", "first CRS onset (any grade)", "death before CRS"),
    "ICANS": ("Cumulative incidence of ICANS", "first ICANS onset (any grade)", "death before ICANS"),
    "infection_g3": ("Cumulative incidence of grade >= 3 infection", "first grade >= 3 infection", "death before it"),
    "NRM": ("Non-relapse mortality", "death without prior progression/relapse", "progression/relapse (or death from it)"),
}


def at_risk(time: np.ndarray, days=RISK_TABLE_DAYS) -> pd.DataFrame:
    """Numbers at risk at each day: subjects whose time (event, competing event or censoring) is >= that day."""
    import pandas as pd

    time = np.asarray(time, float)
    return pd.DataFrame({"day": list(days), "n_at_risk": [int((time >= d).sum()) for d in days]})


def cumulative_incidence(time, status, cause: int = 1) -> pd.DataFrame:
    """Aalen-Johansen cumulative incidence of ``cause`` as a step curve starting at (0, 0).

    Columns: day, cumulative_incidence, se, n_at_risk (just before the day), events (of ``cause`` that day)."""
    import pandas as pd

    time = np.asarray(time, float)
    status = np.asarray(status, int)
    base = pd.DataFrame({"day": [0.0], "cumulative_incidence": [0.0], "se": [0.0],
                         "n_at_risk": [int(len(time))], "events": [0]})
    if len(time) == 0 or not (status == cause).any():
        return base
    from statsmodels.duration.survfunc import CumIncidenceRight  # on first use: 1-2 s to import

    with warnings.catch_warnings():  # statsmodels divides by zero in the last variance term (n at risk = events)
        warnings.simplefilter("ignore", RuntimeWarning)
        fit = CumIncidenceRight(time, status)
    times = np.asarray(fit.times, float)
    ci = np.asarray(fit.cinc[cause - 1], float)
    se = np.asarray(fit.cinc_se[cause - 1], float)
    n_risk = np.array([int((time >= t).sum()) for t in times])
    ev = np.array([int(((time == t) & (status == cause)).sum()) for t in times])
    curve = pd.DataFrame({"day": times, "cumulative_incidence": ci, "se": se, "n_at_risk": n_risk, "events": ev})
    if curve["day"].iloc[0] > 0:
        curve = pd.concat([base, curve], ignore_index=True)
    return curve


def _product_limit(time: np.ndarray, event: np.ndarray):
    """Distinct times, each row's index into them, events and numbers at risk at each time, and the product-limit
    survival there, with statsmodels' own arithmetic (``_calc_survfunc_right``: the log-sum, survival below 1e-16
    set to 0)."""
    utime, rtime = np.unique(time, return_inverse=True)
    ml = len(utime)
    d = np.bincount(rtime, weights=event.astype(np.float64), minlength=ml)
    n = np.bincount(rtime, minlength=ml)
    n = np.cumsum(n[::-1])[::-1]  # at risk just before each time
    sp = 1 - d / n.astype(np.float64)
    tiny = sp < 1e-16
    sp[tiny] = 1e-16
    sp = np.exp(np.cumsum(np.log(sp)))
    sp[tiny] = 0
    return utime, rtime, d, n, sp


# The product-limit survival is a product of fractions computed as exp(sum(log)): 1/2 comes out as
# 0.5000000000000001, and the median would move to the next event day. Survival within this of 0.5 is 0.5.
HALF_TOLERANCE = 1e-9


def _reaches_half(survival):
    """Survival at or below one half (``HALF_TOLERANCE``): where the median is."""
    return survival <= 0.5 + HALF_TOLERANCE


def median_survival_time(time, event) -> float | None:
    """``median_time(kaplan_meier(time, event))`` without importing statsmodels (1-2 s): the first event day
    at which the product-limit survival is <= 0.5, None when not reached. For tables that need the median only."""
    time = np.asarray(time, float)
    event = np.asarray(event, int).astype(bool)
    if len(time) == 0 or not event.any():
        return None
    utime, _, d, _, sp = _product_limit(time, event)
    below = utime[(d > 0) & _reaches_half(sp)]
    return float(below[0]) if len(below) else None


def cumulative_incidence_at(time, status, days, cause: int = 1) -> list[float]:
    """``value_at(cumulative_incidence(time, status, cause), day, "cumulative_incidence")`` for each day: the
    Aalen-Johansen point estimate with statsmodels' own arithmetic (``_calc_incidence_right``), without importing
    statsmodels, which would cost every load 1-2 s for three numbers (the NRM estimates)."""
    time = np.asarray(time, float)
    status = np.asarray(status, int)
    if len(time) == 0 or not (status == cause).any():
        return [0.0 for _ in days]
    utime, rtime, _, n, sp = _product_limit(time, status >= 1)
    dk = np.bincount(rtime, weights=(status == cause).astype(np.float64), minlength=len(utime))
    ci = np.cumsum(np.r_[1, sp[:-1]] / n * dk)
    out = []
    for day in days:
        i = int(np.searchsorted(utime, day, side="right")) - 1
        # the curve starts at (0, 0) when the first time is after day 0
        out.append(float(ci[i]) if i >= 0 else (0.0 if utime[0] > 0 else float(ci[0])))
    return out


def kaplan_meier(time, event) -> pd.DataFrame:
    """Kaplan-Meier survival as a step curve starting at (0, 1). Columns: day, survival, n_at_risk, events."""
    import pandas as pd

    time = np.asarray(time, float)
    event = np.asarray(event, int)
    base = pd.DataFrame({"day": [0.0], "survival": [1.0], "n_at_risk": [int(len(time))], "events": [0]})
    if len(time) == 0 or not event.any():
        return base
    from statsmodels.duration.survfunc import SurvfuncRight  # on first use: 1-2 s to import

    fit = SurvfuncRight(time, event)
    curve = pd.DataFrame({"day": np.asarray(fit.surv_times, float), "survival": np.asarray(fit.surv_prob, float),
                          "n_at_risk": np.asarray(fit.n_risk, int), "events": np.asarray(fit.n_events, int)})
    if curve["day"].iloc[0] > 0:
        curve = pd.concat([base, curve], ignore_index=True)
    return curve


def value_at(curve: pd.DataFrame, day: float, column: str) -> float:
    """The step curve's value at ``day`` (right-continuous: events on that day included)."""
    upto = curve[curve["day"] <= day]
    return float(upto[column].iloc[-1]) if len(upto) else float(curve[column].iloc[0])


def median_time(curve: pd.DataFrame) -> float | None:
    """First day the Kaplan-Meier survival is <= 0.5; None when not reached."""
    below = curve[_reaches_half(curve["survival"])]
    return float(below["day"].iloc[0]) if len(below) else None


_COMPETING_SQL = {
    # one row per infused subject: first event day, death day, censoring day
    "CRS": "SELECT usubjid, min(onset_day) AS ev FROM toxicity_episodes WHERE studyid = $s AND data_cut = $c "
           "AND syndrome = 'CRS' AND onset_day >= 0 GROUP BY usubjid",
    "ICANS": "SELECT usubjid, min(onset_day) AS ev FROM toxicity_episodes WHERE studyid = $s AND data_cut = $c "
             "AND syndrome = 'ICANS' AND onset_day >= 0 GROUP BY usubjid",
    "infection_g3": "SELECT usubjid, min(grade3_onset_day) AS ev FROM infection_episodes WHERE studyid = $s "
                    "AND data_cut = $c AND grade3_onset_day >= 0 GROUP BY usubjid",
}


def endpoint_data(query, endpoint: str, config: dict, studyid: str, data_cut) -> pd.DataFrame:
    """Per infused subject: usubjid, time (days), status (0 censored, 1 event, 2 competing) for ``endpoint``.

    ``query(sql, params) -> DataFrame`` runs the SQL: a page's or an export's scoped query (``StudyReader.sql``,
    which passes on only the parameters the SQL uses); a load reads the same SELECT through :func:`endpoint_arrays`."""
    return query(*endpoint_sql(endpoint, config, studyid, data_cut)).astype({"time": float, "status": int})


def endpoint_arrays(con, endpoint: str, config: dict, studyid: str, data_cut) -> tuple[np.ndarray, np.ndarray]:
    """:func:`endpoint_data`'s (time, status) as arrays over a plain connection, without pandas (a load's NRM)."""
    rows = run_sql(con, *endpoint_sql(endpoint, config, studyid, data_cut)).fetchall()
    return np.array([r[1] for r in rows], dtype=float), np.array([r[2] for r in rows], dtype=int)


def endpoint_sql(endpoint: str, config: dict, studyid: str, data_cut) -> tuple[str, dict]:
    """The SELECT of :func:`endpoint_data` and its parameters: one row per infused subject, by usubjid; time
    is never missing or below 0 (a subject without follow-up is censored at day 0)."""
    p = {"s": studyid, "c": data_cut}
    if endpoint == "NRM":
        cte = "r AS (SELECT usubjid, min(day) AS prog FROM (" + PROGRESSION_SQL + ") GROUP BY usubjid)"
        sql = """
        -- a death of unknown day cannot be placed in time: the subject is censored at the last known alive day
        SELECT s.usubjid,
               CASE WHEN d.non_relapse AND d.death_day IS NOT NULL THEN d.death_day
                    WHEN r.prog IS NOT NULL THEN r.prog
                    WHEN d.relapse_related AND d.death_day IS NOT NULL THEN d.death_day
                    ELSE s.last_known_alive_day END AS time,
               CASE WHEN d.non_relapse AND d.death_day IS NOT NULL THEN 1
                    WHEN r.prog IS NOT NULL OR (d.relapse_related AND d.death_day IS NOT NULL) THEN 2
                    ELSE 0 END AS status
        FROM subjects s
        LEFT JOIN deaths d ON d.studyid = s.studyid AND d.data_cut = s.data_cut AND d.usubjid = s.usubjid
        LEFT JOIN r ON r.usubjid = s.usubjid
        WHERE s.studyid = $s AND s.data_cut = $c AND s.infused AND s.first_infusion_date IS NOT NULL"""
        p = {**p, **progression_params(config)}
    else:
        cte = f"e AS ({_COMPETING_SQL[endpoint]})"
        sql = """
        SELECT s.usubjid,
               CASE WHEN e.ev IS NOT NULL AND (d.death_day IS NULL OR e.ev <= d.death_day) THEN e.ev
                    WHEN d.death_day IS NOT NULL THEN d.death_day ELSE s.last_known_alive_day END AS time,
               CASE WHEN e.ev IS NOT NULL AND (d.death_day IS NULL OR e.ev <= d.death_day) THEN 1
                    WHEN d.death_day IS NOT NULL THEN 2 ELSE 0 END AS status
        FROM subjects s LEFT JOIN e USING (usubjid)
        -- every death from DM, DS and AE competes (the deaths table), not only a DM death date
        LEFT JOIN deaths d ON d.studyid = s.studyid AND d.data_cut = s.data_cut AND d.usubjid = s.usubjid
        WHERE s.studyid = $s AND s.data_cut = $c AND s.infused AND s.first_infusion_date IS NOT NULL"""
    return (f"WITH {cte}, x AS ({sql}) SELECT usubjid, CAST(greatest(coalesce(time, 0), 0) AS DOUBLE) AS time, "
            "CAST(status AS BIGINT) AS status FROM x ORDER BY usubjid", p)


# progression/relapse days per subject after the infusion (day 0 on): RS overall responses in the study's
# progression list, DS PROGRESSIVE DISEASE, AEs with a progression term (dlt.progression_terms). A progression
# recorded before day 0 (during bridging) is why the subject was treated, not a relapse after it: it neither makes a
# later death a relapse death nor competes with NRM. Parameters: those of :func:`progression_params`.
PROGRESSION_SQL = f"""
  SELECT usubjid, day FROM responses WHERE studyid = $s AND data_cut = $c AND day >= 0
    AND list_contains($rs_prog, upper(response)) AND {OVERALL_RESPONSE_ROW}
  UNION ALL
  SELECT usubjid, day FROM disposition WHERE studyid = $s AND data_cut = $c AND day >= 0
    AND upper(dsdecod) = 'PROGRESSIVE DISEASE'
  UNION ALL
  SELECT usubjid, onset_day AS day FROM adverse_events WHERE studyid = $s AND data_cut = $c AND onset_day >= 0
    AND (list_contains($prog_terms, upper(aedecod)) OR list_contains($prog_terms, upper(aeterm)))
"""


def progression_lists(cfg: dict) -> tuple[list[str], list[str]]:
    """(progression AE terms, RS progression responses), upper case, from a study configuration. The RS responses
    are the study's ``response.progression`` and the progression codes of the published criteria
    (``response_codes.PROGRESSION_CODES``: PD, PMD, relapse), which no criteria reads otherwise."""
    terms = [t.upper() for t in cfg.get("dlt", {}).get("progression_terms",
                                                           ["DISEASE PROGRESSION", "PROGRESSIVE DISEASE"])]
    rs = [t.upper() for t in cfg.get("response", {}).get("progression", ["PD", "PMD", "RELAPSE", "PROGRESSIVE DISEASE"])]
    return terms, rs + [c for c in PROGRESSION_CODES if c not in rs]


def progression_params(cfg: dict) -> dict:
    """The parameters of ``PROGRESSION_SQL`` besides $s and $c."""
    prog_terms, rs_prog = progression_lists(cfg)
    return {"prog_terms": prog_terms, "rs_prog": rs_prog, **overall_response_params(cfg)}

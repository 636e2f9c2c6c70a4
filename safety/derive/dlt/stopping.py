"""Stopping and dose-escalation rules: exact statistics (scipy.special) and the per-cut status tables.

Methods (``stopping_rule.method`` in study.yaml):
  bayesian_beta_binomial  stop when P(rate > threshold | y, n) > posterior_cutoff, prior Beta(prior_a, prior_b)
                          (Thall, Simon & Estey 1995; Geller et al. 2003 "BB")
  pocock                  stop when y >= b_n, b_n the smallest b with P(Bin(n, p0) >= b) <= alpha*, the constant
                          nominal level alpha* set so P(ever crossing | p0) over looks min_n..max_n = alpha
                          (Ivanova, Qaqish & Schell 2005), computed exactly by dynamic programming over n
  boin                    per dose level: escalate if y/n <= lambda_e, de-escalate if y/n >= lambda_d, eliminate
                          if n >= 3 and P(rate > target | Beta(1+y, 1+n-y)) > boin_elimination_cutoff; an
                          eliminated dose eliminates every higher dose too (Liu & Yuan 2015)
  three_plus_three        per dose level: 0/3 escalate, 1/3 expand to 6, <= 1/6 escalate, >= 2/3 or >= 2/6 MTD
                          exceeded (de-escalate), as are >= 2 among more than 6; no next step is invented for
                          at most 1 among more than 6 evaluable subjects

Every status row carries two decisions: on the committee's decisions in force (``decision``) and with every
pending in-window DLT candidate counted as a DLT (``decision_if_pending_confirmed``), so a committee sees when
the adjudications still to come would change the call.

The monitored event (``stopping_rule.event``) is the DLT, or a pre-specified toxicity with onset in the DLT
window: CRS grade >= 3, ICANS grade >= 3, either, or treatment-related death.
"""
from __future__ import annotations

import datetime as dt
import math
import re

from collections import Counter
from typing import TYPE_CHECKING

import numpy as np

from safety.access.reader import Scope, StudyReader
from safety.core.numbers import fixed
from safety.core.config import DEFAULTS, dlt_window
from safety.core.sql import create_missing, existing, insert_rows, reset_derived
from safety.derive.dlt.evaluability import live_evaluability_arrays
from safety.derive.graph import Derivation
from safety.schema import STOPPING_RULE_STATUS, STOPPING_BOUNDARIES

if TYPE_CHECKING:  # the rules run on plain rows; pages get DataFrames (status_rows, boundary_rows, boin_table)
    import pandas as pd


METHOD_NAMES = {"bayesian_beta_binomial": "Bayesian beta-binomial", "pocock": "Pocock-type", "boin": "BOIN",
                "three_plus_three": "3+3"}


def method_name(method: str) -> str:
    """The rule's name as a protocol prints it ('boin' -> 'BOIN')."""
    return METHOD_NAMES.get(method, method)


OBSERVED_RATE = "observed rate"  # the statistic a dose rule (BOIN, 3+3) measures: events / evaluable subjects


def statistic_text(statistic, label: str) -> str:
    """A status row's ``statistic`` as the app's sentences and every packet file print it: an observed rate (BOIN,
    3+3) to 2 decimals ('0.33'), a probability (beta-binomial posterior, Pocock tail) to 3 ('0.857'), rounded by
    :func:`safety.core.numbers.fixed`; '' when there is none (no subject evaluable: no rate)."""
    return fixed(statistic, 2 if label == OBSERVED_RATE else 3)


def beta_sf(x, a, b):
    """P(X > x) for X ~ Beta(a, b), elementwise: the ``scipy.special`` function ``scipy.stats.beta.sf`` calls.

    scipy.special, not scipy.stats: the same numbers for a fraction of the import (scipy.stats costs 1-2 s
    of every load); imported on first use."""
    from scipy.special import betaincc
    return betaincc(a, b, x)


def binom_sf(k, n, p):
    """P(X > k) for X ~ Bin(n, p), elementwise: the ``scipy.special`` function ``scipy.stats.binom.sf`` calls,
    with 1 below the support (k < 0) as ``scipy.stats`` gives it."""
    from scipy.special._ufuncs import _binom_sf
    k = np.asarray(k)
    return np.where(k < 0, 1.0, _binom_sf(np.maximum(k, 0), n, p))


# --- beta-binomial -----------------------------------------------------------------------------------


def beta_binomial_posterior(y: int, n: int, p0: float, a: float, b: float) -> float:
    """P(p > p0 | y events in n) under a Beta(a, b) prior: the Beta(a + y, b + n - y) upper tail."""
    return float(beta_sf(p0, a + y, b + n - y))


def beta_binomial_boundary(n: int, p0: float, a: float, b: float, cutoff: float) -> int | None:
    """Smallest y (0..n) with posterior P(p > p0) > cutoff; None when no count at n crosses.

    The posterior rises with y (Beta(a + y, b + n - y) moves right as events replace non-events), so the
    smallest crossing count is found by bisection: about log2(n) tails instead of n + 1 (at 20,000 evaluable
    subjects the scan of every count cost 40 ms of each look)."""
    if not beta_sf(p0, a + n, b) > cutoff:
        return None
    lo, hi = -1, n  # post(lo) <= cutoff (or lo below the range), post(hi) > cutoff
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if beta_sf(p0, a + mid, b + n - mid) > cutoff:
            hi = mid
        else:
            lo = mid
    return hi


def beta_binomial_boundaries(max_n: int, p0: float, a: float, b: float, cutoff: float,
                             min_n: int = 1) -> dict[int, int | None]:
    """b_n for n = 1..max_n (None before min_n or when no count crosses)."""
    return {n: (beta_binomial_boundary(n, p0, a, b, cutoff) if n >= min_n else None) for n in range(1, max_n + 1)}


# --- Pocock-type continuous monitoring ---------------------------------------------------------------


def crossing_probability(bounds: dict[int, int | None], p: float) -> float:
    """Exact P(y_n >= b_n for some n) when each subject has the event with probability p (looks in ``bounds``)."""
    max_n = max(bounds) if bounds else 0
    alive = np.zeros(max_n + 2)
    alive[0] = 1.0  # probability of y events so far without having crossed
    crossed = 0.0
    for n in range(1, max_n + 1):
        nxt = alive * (1 - p)
        nxt[1:] += alive[:-1] * p
        alive = nxt
        b = bounds.get(n)
        if b is not None:
            crossed += alive[b:].sum()
            alive[b:] = 0.0
    return float(crossed)


def _pocock_bounds_at(level: float, p0: float, max_n: int, min_n: int) -> dict[int, int | None]:
    out = {}
    for n in range(1, max_n + 1):
        if n < min_n:
            out[n] = None
            continue
        tails = binom_sf(np.arange(n + 1) - 1, n, p0)  # P(X >= b), b = 0..n
        ok = np.nonzero(tails <= level * (1 + 1e-12))[0]
        ok = ok[ok >= 1]
        out[n] = int(ok[0]) if ok.size else None
    return out


def pocock_boundaries(p0: float, max_n: int, alpha: float, min_n: int = 1) -> tuple[float, dict[int, int | None]]:
    """The constant nominal level alpha* and b_n (n = 1..max_n) so that P(ever crossing | p0) <= alpha.

    The crossing probability is a step function of the nominal level that jumps only at binomial tail
    values P(Bin(n, p0) >= b); alpha* is the largest such value whose boundaries keep the overall crossing
    probability at or below ``alpha`` (found by bisection over the sorted candidates, each checked exactly).
    """
    level, _ = pocock_level_range(p0, max_n, alpha, min_n)
    return level, _pocock_bounds_at(level, p0, max_n, min_n)


def pocock_level_range(p0: float, max_n: int, alpha: float, min_n: int = 1) -> tuple[float, float]:
    """[lo, hi): every nominal level in it gives the same Pocock boundaries. lo is the attained tail value
    :func:`pocock_boundaries` reports; hi the next tail value, at which the overall level would exceed alpha
    (p0 0.20, N 24, alpha 0.10: [0.0377, 0.0400), the published 'alpha* ~ 0.040')."""
    cands = sorted({float(t) for n in range(max(min_n, 1), max_n + 1)
                    for t in binom_sf(np.arange(1, n + 1) - 1, n, p0)})
    lo, hi, best = 0, len(cands) - 1, None
    while lo <= hi:  # crossing probability rises with the level: bisect over the candidate jump points
        mid = (lo + hi) // 2
        if crossing_probability(_pocock_bounds_at(cands[mid], p0, max_n, min_n), p0) <= alpha + 1e-12:
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    if best is None:
        return 0.0, cands[0] if cands else 1.0
    return cands[best], (cands[best + 1] if best + 1 < len(cands) else 1.0)


def binomial_tail(y: int, n: int, p0: float) -> float:
    """P(Bin(n, p0) >= y)."""
    return float(binom_sf(y - 1, n, p0))


# --- BOIN --------------------------------------------------------------------------------------------


def boin_intervals(target: float, phi1: float | None = None, phi2: float | None = None) -> tuple[float, float]:
    """(lambda_e, lambda_d) for target rate phi; phi1 = 0.6 phi and phi2 = 1.4 phi unless given."""
    phi1 = 0.6 * target if phi1 is None else phi1
    phi2 = 1.4 * target if phi2 is None else phi2
    lam_e = math.log((1 - phi1) / (1 - target)) / math.log(target * (1 - phi1) / (phi1 * (1 - target)))
    lam_d = math.log((1 - target) / (1 - phi2)) / math.log(phi2 * (1 - target) / (target * (1 - phi2)))
    return lam_e, lam_d


def boin_table(target: float, max_n: int, elimination_cutoff: float = 0.95, phi1: float | None = None,
               phi2: float | None = None) -> pd.DataFrame:
    """:func:`boin_rows` as a DataFrame."""
    import pandas as pd

    return pd.DataFrame(boin_rows(target, max_n, elimination_cutoff, phi1, phi2))


def boin_rows(target: float, max_n: int, elimination_cutoff: float = 0.95, phi1: float | None = None,
              phi2: float | None = None) -> list[dict]:
    """BOIN count boundaries for n = 1..max_n: escalate_if_le, deescalate_if_ge, eliminate_if_ge (n >= 3;
    None when no count at n is eliminated)."""
    lam_e, lam_d = boin_intervals(target, phi1, phi2)
    rows = []
    for n in range(1, max_n + 1):
        # round before floor/ceil so n * lambda landing on an integer is not lost to floating point
        e = math.floor(round(n * lam_e, 10))
        d = math.ceil(round(n * lam_d, 10))
        elim = None
        if n >= 3:
            ys = np.arange(n + 1)
            hit = np.nonzero(beta_sf(target, ys + 1, n - ys + 1) > elimination_cutoff)[0]
            elim = int(hit[0]) if hit.size else None
        rows.append({"n": n, "escalate_if_le": e, "deescalate_if_ge": d, "eliminate_if_ge": elim})
    return rows


def boin_decision(n: int, y: int, target: float, elimination_cutoff: float = 0.95, phi1: float | None = None,
                  phi2: float | None = None) -> str:
    """'eliminate', 'de-escalate', 'stay' or 'escalate' for y DLTs in n at the current dose."""
    if n <= 0:
        return "stay"
    lam_e, lam_d = boin_intervals(target, phi1, phi2)
    if n >= 3 and float(beta_sf(target, y + 1, n - y + 1)) > elimination_cutoff:
        return "eliminate"
    rate = y / n
    if rate <= lam_e + 1e-12:
        return "escalate"
    if rate >= lam_d - 1e-12:
        return "de-escalate"
    return "stay"


# --- 3+3 ---------------------------------------------------------------------------------------------


def three_plus_three_decision(n: int, y: int) -> str:
    """3+3 at one dose, its published decisions only (clinical-rules section 6.1):
    0/3 escalate; 1/3 'stay' (expand to 6); <= 1/6 escalate; >= 2/3 or >= 2/6 'de-escalate' (MTD exceeded).

    2 or more DLTs at a dose exceed the MTD however many were treated there: more subjects cannot make a dose
    safer. Fewer than 3 (or 4-5) evaluable subjects without 2 DLTs: 'stay' (complete the cohort). More than 6
    evaluable subjects with at most 1 DLT is outside the design: 'not defined' (the MTD is not exceeded, but 3+3
    gives no next step there; the protocol decides).
    """
    if y >= 2:
        return "de-escalate"
    if n > 6:
        return THREE_PLUS_THREE_UNDEFINED
    if n < 3:
        return "stay"
    if n == 3:
        return "escalate" if y == 0 else "stay"
    if n < 6:
        return "stay"
    return "escalate"


THREE_PLUS_THREE_UNDEFINED = "not defined"


def three_plus_three_p_escalate(p: float) -> float:
    """P(escalate from a dose with true DLT rate p) = (1-p)^3 + 3p(1-p)^2 (1-p)^3."""
    return (1 - p) ** 3 + 3 * p * (1 - p) ** 2 * (1 - p) ** 3


# --- status rows -------------------------------------------------------------------------------------

EVENT_LABEL = {
    "dlt": "DLT", "crs_grade3": "CRS grade >= 3", "icans_grade3": "ICANS grade >= 3",
    "crs_icans_grade3": "CRS or ICANS grade >= 3", "treatment_related_death": "treatment-related death",
}

# The published source a protocol cites for each method, printed with the method's name.
METHOD_SOURCES = {"bayesian_beta_binomial": "Thall, Simon & Estey 1995", "pocock": "Ivanova, Qaqish & Schell 2005",
                  "boin": "Liu & Yuan 2015", "three_plus_three": "rule-based"}
GROUP_WORDS = {"dose_level": "dose level", "cohort": "cohort"}
# Decisions that close a dose (or the study): shown as alarms.
ALARM_DECISIONS = ("stop", "eliminate", "de-escalate")

STATUS_COLUMNS = STOPPING_RULE_STATUS.column_names


def window_words(event: str, window: tuple[int, int]) -> str:
    """The DLT window (study.yaml ``dlt.window``, :func:`safety.core.config.dlt_window`) as the monitored event is
    counted in it: 'onset days 0-28'; a treatment-related death counts by its day (or its fatal AE's onset),
    'days 0-28'."""
    start, end = (int(d) for d in window)
    span = f"{start}-{end}" if start >= 0 else f"{start} to {end}"
    return f"days {span}" if event == "treatment_related_death" else f"onset days {span}"


def event_label(event: str, window: tuple[int, int] | None = None, count: int = 1) -> str:
    """The monitored event in words ('crs_icans_grade3' -> 'CRS or ICANS grade >= 3'); with the study's DLT
    ``window`` (start_day, end_day), the window it is counted in: 'DLT (onset days 0-28)',
    'treatment-related death (days 0-28)'. Every label a committee reads of a stopping rule passes the window.

    ``count`` other than 1 gives the plural a count reads with: '2 more DLTs', '2 more CRS or ICANS grade >= 3
    events' (a label ending in its grade takes 'events', not an 's' on the number)."""
    label = EVENT_LABEL.get(event, event)
    if count != 1:
        label += " events" if label[-1:].isdigit() else "s"
    return label if window is None else f"{label} ({window_words(event, window)})"


def boundary_axis_title(label: str) -> str:
    """The stopping-boundary chart's y axis for an event named by :func:`event_label`: 'Subjects with DLT (onset
    days 0-28)'. The committee packet and the pages draw the same words."""
    return f"Subjects with {label}"


def rule_title(config: dict) -> str:
    """The configured rule headed as a protocol prints it: method, its source, monitored event, parameters.

    The event is named with the study's DLT window. BOIN: 'BOIN dose escalation (Liu & Yuan 2015) on DLT (onset
    days 0-28), target rate 0.3, by dose level'; a beta-binomial rule on CRS/ICANS: 'Bayesian beta-binomial
    safety monitoring (Thall, Simon & Estey 1995) of CRS or ICANS grade >= 3 (onset days 0-28): stop if
    P(rate > 0.25 | data) > 0.9'.
    """
    sr = config["stopping_rule"]
    method, label, p0 = sr["method"], event_label(sr["event"], dlt_window(config)), float(sr["threshold"])
    src = METHOD_SOURCES.get(method, "")
    group = GROUP_WORDS.get(sr.get("group_by", "dose_level"), sr.get("group_by"))
    if method == "boin":
        return f"BOIN dose escalation ({src}) on {label}, target rate {p0:g}, by {group}"
    if method == "three_plus_three":
        return f"3+3 dose escalation on {label}, by {group}"
    if method == "bayesian_beta_binomial":
        return (f"Bayesian beta-binomial safety monitoring ({src}) of {label}: "
                f"stop if P(rate > {p0:g} | data) > {float(sr['posterior_cutoff']):g}")
    if method == "pocock":
        return (f"Pocock-type safety monitoring ({src}) of {label}: rate {p0:g}, "
                f"overall crossing probability {float(sr['alpha']):g}")
    return f"{method_name(method)} on {label}"


def method_cited(method: str) -> str:
    """The method's name with its published source, as sentences open: 'BOIN (Liu & Yuan 2015)'."""
    src = METHOD_SOURCES.get(method)
    return f"{method_name(method)}{f' ({src})' if src and src != 'rule-based' else ''}"


def chart_title(method: str, event: str, window: tuple[int, int] | None = None) -> str:
    """A boundary chart's title from a status row: method, its source and the monitored event, with the DLT
    ``window`` when given ('BOIN (Liu & Yuan 2015) on DLT (onset days 0-28): events against the boundaries')."""
    return f"{method_cited(method)} on {event_label(event, window)}: events against the boundaries"


def dose_order_key(value, order: list | tuple = ()) -> tuple:
    """Sort key of a dose level: its place in ``stopping_rule.dose_order`` when listed, else the first number
    in its text ('DL-1' < 'DL1' < 'DL2' < 'DL10'), then the text."""
    text = str(value)
    if order and text in [str(o) for o in order]:
        return (0, [str(o) for o in order].index(text), 0.0, text)
    m = re.search(r"-?\d+(?:\.\d+)?", text)
    return (1, 0, float(m.group()) if m else math.inf, text)


# the per-subject evaluability columns the rules read (dlt_evaluability's, with the decisions in force)
SUBJECT_COLUMNS = ("infused", "evaluable", "dlt_confirmed", "candidates_in_window", "pending_in_window",
                   "evaluable_if_candidates_confirmed", "followed_through_window", "crs_max_grade_window",
                   "icans_max_grade_window", "treatment_related_death", "dose_level", "cohort")


def _missing(v) -> bool:
    """NULL, or NaN (a DataFrame's missing number)."""
    return v is None or v != v


def _bools(column) -> np.ndarray:
    """Each value as a bool, missing (None or NaN) as False."""
    return np.nan_to_num(np.array(column, dtype=float)) != 0


def _ints(column) -> np.ndarray:
    """Each value as an integer, missing as 0."""
    return np.nan_to_num(np.array(column, dtype=float)).astype(np.int64)


def _subject_flags(subjects: dict[str, list], event: str, adjudicated: bool,
                   pending_confirmed: bool = False) -> tuple[np.ndarray, ...]:
    """Per subject, in order: (event, evaluable, pending, pending candidates) for the monitored event, as arrays.

    ``pending_confirmed``: every pending in-window candidate counted as a DLT on top of the decisions in force
    (the subject becomes evaluable by that DLT)."""
    infused = _bools(subjects["infused"])
    if event == "dlt":
        confirmed = _bools(subjects["dlt_confirmed"])
        cand = _ints(subjects["candidates_in_window"]) > 0
        pending_n = _ints(subjects["pending_in_window"])
        pending = pending_n > 0
        if adjudicated:
            extra = infused & pending & pending_confirmed
            ev = infused & confirmed | extra
            evaluable = _bools(subjects["evaluable"]) | extra
            is_pending = infused & ~confirmed & pending
        else:
            ev = infused & (confirmed | cand)
            evaluable = _bools(subjects["evaluable_if_candidates_confirmed"])
            is_pending = infused & cand & ~confirmed
        return ev, evaluable, is_pending, np.where(is_pending, pending_n, 0)
    crs = _ints(subjects["crs_max_grade_window"]) >= 3
    icans = _ints(subjects["icans_max_grade_window"]) >= 3
    hit = {"crs_grade3": crs, "icans_grade3": icans, "crs_icans_grade3": crs | icans,
           "treatment_related_death": _bools(subjects["treatment_related_death"])}[event]
    ev = infused & hit
    evaluable = infused & (_bools(subjects["followed_through_window"]) | ev)
    return ev, evaluable, np.zeros(len(ev), dtype=bool), np.zeros(len(ev), dtype=np.int64)


def _lookahead(n: int, y: int, trigger, horizon: int) -> tuple[int | None, int | None]:
    """(events needed, within next m subjects): the earliest m <= horizon at which trigger(n+m) - y <= m."""
    for m in range(1, horizon + 1):
        b = trigger(n + m)
        if b is None:
            continue
        need = max(b - y, 0)
        if need <= m:
            return need, m
    return None, None


def _more(k: int, m: int, event: str, verb: str, n: int) -> str:
    """The earliest crossing in words: '2 more DLTs in the next 2 subjects would stop', the monitored ``event``
    named by :func:`event_label` ('1 DLT in the next subject ...' while none of ``n`` is evaluable yet)."""
    evs = f"{k} {'more ' if n else ''}{event_label(event, count=k)}"
    subj = "the next subject" if m == 1 else f"the next {m} subjects"
    return f"{evs} in {subj} would {verb}"


def _counts(flags: tuple[np.ndarray, ...], among: np.ndarray | None = None) -> tuple[int, int, int, int]:
    """(evaluable n, events among them, subjects with pending candidates, pending candidates), of every subject
    or of those ``among`` marks."""
    ev, evaluable, pending, pending_candidates = (f if among is None else f[among] for f in flags)
    return (int(evaluable.sum()), int((ev & evaluable).sum()), int(pending.sum()),
            int(pending_candidates[pending].sum()))


def _observed(y: int, n: int, label: str, basis: str) -> str:
    """The counts a sentence starts with: '3 of 8 evaluable subjects had a DLT', or that none is evaluable yet."""
    if not n:
        return "no subject is evaluable yet"
    return f"{y} of {n} evaluable subject{'s' if n != 1 else ''} had a {label}{basis}"


def _pending_sentence(pend: int, cands: int, decision: str, alt: str, alt_y: int, alt_n: int) -> str:
    """The pending candidates in plain words: whether confirming them all would change the decision."""
    if not pend:
        return ""
    what = f"{cands} pending candidate{'s' if cands != 1 else ''}"
    if cands != pend:
        what += f" ({pend} subject{'s' if pend != 1 else ''})"
    if alt != decision:
        return (f" {what[0].upper()}{what[1:]} would change {decision} to {alt} if confirmed "
                f"({alt_y} of {alt_n}).")
    return f" With the {what} confirmed ({alt_y} of {alt_n}) the decision would still be {decision}."


def _past_plan(n: int, max_n: int) -> str:
    """The look-ahead once more subjects are evaluable than planned: the rule has no planned subjects left to look
    at, which says nothing of whether its boundary (computed at n) can still be crossed; the default size is named
    as such, a study.yaml without a stopping_rule never having planned it."""
    default = DEFAULTS["stopping_rule"]["max_n"]
    why = (f" (stopping_rule.max_n: {default} is the default when study.yaml sets none)" if max_n == default
           else " (stopping_rule.max_n)")
    return f"{n} evaluable, past the planned {max_n}{why}: no look-ahead beyond the planned size"


def _study_decision(sr: dict, n: int, y: int) -> dict:
    """Whole-study monitoring (beta-binomial, Pocock) at (n, y): statistic, boundary, decision and look-ahead;
    ``measure`` is the statistic against its criterion in words, or before min_n that the rule is not applied yet."""
    method, p0, max_n, min_n = sr["method"], float(sr["threshold"]), int(sr["max_n"]), int(sr["min_n"])
    if method == "bayesian_beta_binomial":
        a, b, cutoff = float(sr["prior_a"]), float(sr["prior_b"]), float(sr["posterior_cutoff"])
        stat = beta_binomial_posterior(y, n, p0, a, b)
        stat_label = f"P(rate > {p0:g} | data)"

        def trigger(k):
            return beta_binomial_boundary(k, p0, a, b, cutoff) if k >= min_n else None
        bnd = trigger(n) if n >= 1 else None
        boundary = (f"stop if {bnd} or more of {n} (posterior > {cutoff:g})" if bnd is not None
                    else f"no count of {n} crosses posterior > {cutoff:g}")
        crit = f"against the stopping cut-off {cutoff:g}"
    else:
        alpha = float(sr["alpha"])
        level, bounds = pocock_boundaries(p0, max_n, alpha, min_n)
        stat = binomial_tail(y, n, p0) if n >= 1 else 1.0
        stat_label = f"P(>= {y} events in {n} | rate {p0:g})"

        def trigger(k):
            if k < min_n:
                return None
            return bounds.get(k) if k <= max_n else _pocock_bounds_at(level, p0, k, min_n)[k]
        bnd = trigger(n) if n >= 1 else None
        boundary = (f"stop if {bnd} or more of {n} (nominal level {fixed(level, 4)})" if bnd is not None
                    else f"no stop possible at n = {n}")
        crit = f"against the nominal level {fixed(level, 4)}"
    if n < min_n:  # not monitored yet: the statistic may pass the cut-off, the rule does not look before min_n
        start = f"the rule is applied from {min_n} evaluable subject{'s' if min_n != 1 else ''}"
        boundary, crit = f"no stop before n = {min_n} ({start})", None
    measure = f"{stat_label} = {statistic_text(stat, stat_label)} {crit}" if crit else start
    crossed = bnd is not None and y >= bnd
    if crossed:
        need, within, ahead = 0, 0, "boundary crossed"
    else:
        need, within = _lookahead(n, y, trigger, max(max_n - n, 0))
        ahead = (_more(need, within, sr["event"], "stop", n) if need is not None
                 else _past_plan(n, max_n) if n > max_n
                 else f"the boundary cannot be crossed within the planned {max_n} subjects")
    return dict(statistic=stat, statistic_label=stat_label, boundary=boundary, boundary_events=bnd,
                decision="stop" if crossed else "continue", events_to_boundary=ahead, events_needed=need,
                within_next=within, measure=measure, crossed=crossed)


def _dose_decision(sr: dict, n: int, y: int, table: dict[int, dict] | None) -> dict:
    """BOIN or 3+3 at one dose (or cohort) at (n, y): decision, boundary in words and look-ahead."""
    if sr["method"] == "boin":
        p0 = float(sr["threshold"])
        phi1, phi2 = sr.get("boin_phi1"), sr.get("boin_phi2")
        lam_e, lam_d = boin_intervals(p0, phi1, phi2)
        decision = boin_decision(n, y, p0, float(sr["boin_elimination_cutoff"]), phi1, phi2)
        boundary = f"escalate if rate <= {fixed(lam_e, 3)}, de-escalate if >= {fixed(lam_d, 3)}"
        bnd = None
        if n >= 1:
            bnd = table[n]["deescalate_if_ge"]
            el = table[n]["eliminate_if_ge"]
            boundary += f"; at n = {n}: escalate if <= {table[n]['escalate_if_le']}, " \
                        f"de-escalate if >= {bnd}" + (f", eliminate if >= {el}" if el is not None else "")
        parts = []
        if decision not in ("de-escalate", "eliminate"):
            k, m = _lookahead(n, y, lambda j: table[j]["deescalate_if_ge"], 3)
            if k is not None:
                parts.append(_more(k, m, sr["event"], "de-escalate", n))
        if decision != "eliminate":
            k, m = _lookahead(n, y, lambda j: table[j]["eliminate_if_ge"], 3)
            if k is not None:
                parts.append(_more(k, m, sr["event"], "eliminate the dose and every higher dose", n))
        need, within = (0, 0) if decision in ("de-escalate", "eliminate") else \
            _lookahead(n, y, lambda j: table[j]["deescalate_if_ge"], 3)
        words = decision
        size = int(sr.get("boin_cohort_size") or 1)
        if decision == "escalate" and n < size:
            # BOIN decides on a completed cohort (R BOIN cohortsize): 0 of 1 or 2 of a first cohort of 3 does not
            # escalate yet; de-escalation and elimination are shown at once, as they keep subjects safe. Past the
            # first cohort the counts hold at least one whole cohort (later ones may be back-filled or replaced)
            decision = "stay"
            words = f"stay (fewer evaluable than a cohort of {size}: escalation waits for a complete cohort)"
    else:
        decision = three_plus_three_decision(n, y)
        boundary = "3+3: escalate if 0 of 3 or <= 1 of 6; expand to 6 if 1 of 3; MTD exceeded if >= 2 of 3 or of 6"
        bnd = 2
        parts, need, within = [], None, None
        if decision == "de-escalate":
            need, within = 0, 0
        elif n < 6:
            # the earliest crossing within the dose's 6, not the rest of them: 2 DLTs exceed the MTD at any n, so
            # 1 of 3 is one DLT in the next subject away (2 of 4), and 0 of 3 two DLTs in the next 2 (2 of 5)
            need, within = _lookahead(n, y, lambda j: bnd, 6 - n)
            if need is not None:
                parts.append(_more(need, within, sr["event"], "exceed the MTD", n))
        elif decision == THREE_PLUS_THREE_UNDEFINED:  # a dose treated past 6: its next DLTs still exceed the MTD
            need, within = 2 - y, 2 - y
            parts.append(_more(need, within, sr["event"], "exceed the MTD", n))
        words = {"de-escalate": "MTD exceeded, de-escalate",
                 THREE_PLUS_THREE_UNDEFINED: "not defined by 3+3 (more than 6 evaluable subjects at one dose; "
                                             "the protocol decides); the MTD is not exceeded"}.get(decision, decision)
        if decision == "stay" and n == 3 and y == 1:
            words = "stay and expand to 6"
    ahead = "; ".join(parts) if parts else ("boundary crossed" if decision in ("de-escalate", "eliminate")
                                             else "no crossing within the next cohort")
    return dict(decision=decision, words=words, boundary=boundary, boundary_events=bnd, parts=parts,
                events_to_boundary=ahead, events_needed=need, within_next=within)


def _carry_elimination(keys: list, decisions: dict) -> dict:
    """BOIN: a dose eliminated eliminates every higher dose (``keys`` in increasing dose order).
    Returns {key: the lower eliminated dose} for the doses eliminated by carry-over."""
    carried, lowest = {}, None
    for k in keys:
        if lowest is not None and decisions[k] != "eliminate":
            decisions[k] = "eliminate"
            carried[k] = lowest
        elif lowest is None and decisions[k] == "eliminate":
            lowest = k
    return carried


def _hold_at_limits(order: list, decisions: dict, method: str, dose_order) -> dict:
    """A call to move to a dose that is not there to be given: 'stay' (``decisions`` changed in place). BOIN
    (R BOIN get.oc) escalates only to a dose not eliminated, never past the highest dose, and de-escalates never
    below the lowest; 3+3 escalates from a dose only while the next one has not exceeded the MTD (the highest dose
    with at most 1 of 6), and 0 of 3 there is expanded to 6. Doses in increasing order, ``stopping_rule.dose_order``
    when listed; only then are the highest and lowest treated doses known to be the ends of the plan (a protocol's
    DL-1 may never have been given), so only then do they hold a call at the ends. Returns {dose: why}."""
    plan = [str(d) for d in dose_order] if dose_order else [k for k in order if k != "(none)"]
    held = {}
    for k in order:
        if k not in plan:
            continue
        i = plan.index(k)
        higher = plan[i + 1] if i + 1 < len(plan) else None
        if decisions[k] == "escalate":
            if higher is None and dose_order:
                held[k] = "the highest dose level: none higher to escalate to"
            elif higher is not None and decisions.get(higher) == "eliminate":
                held[k] = f"the higher dose level {higher} is eliminated"
            elif method == "three_plus_three" and higher is not None and decisions.get(higher) == "de-escalate":
                held[k] = f"the higher dose level {higher} exceeded the MTD"
        elif decisions[k] == "de-escalate" and method == "boin" and i == 0 and dose_order:
            held[k] = "the lowest dose level: none lower to de-escalate to"
        if k in held:
            decisions[k] = "stay"
    return held


def _lowest_dose(order: list, dose_order) -> str | None:
    """The study's lowest dose level: the first of ``stopping_rule.dose_order`` when listed (a lower dose nobody
    has been treated at yet is still one to go down to), else the lowest dose level treated."""
    if dose_order:
        return str(dose_order[0])
    return next((k for k in order if k != "(none)"), None)


def status_rows(subjects: pd.DataFrame, config: dict, studyid: str, data_cut, adjudicated: bool) -> pd.DataFrame:
    """:func:`status_records` of a DataFrame of per-subject evaluability, as stopping_rule_status's DataFrame."""
    import pandas as pd

    rows = status_records({c: subjects[c].tolist() for c in SUBJECT_COLUMNS}, config, adjudicated)
    out = pd.DataFrame(rows, columns=[c for c in STATUS_COLUMNS if c not in ("studyid", "data_cut")])
    out.insert(0, "data_cut", pd.to_datetime(pd.Series([data_cut] * len(out), dtype="object")).dt.date)
    out.insert(0, "studyid", studyid)
    return out


def status_records(subjects: dict[str, list], config: dict, adjudicated: bool) -> list[dict]:
    """stopping_rule_status rows (every column but studyid and data_cut) from per-subject evaluability, one list
    or NumPy array per column of :data:`SUBJECT_COLUMNS`, the subjects in any order (missing as None or NaN).

    Each row has the decision on the committee's decisions in force and, side by side, the decision with every
    pending in-window candidate counted as a DLT (``decision_if_pending_confirmed``); ``pending_changes_decision``
    is true when the two differ, and the sentence then says so."""
    sr = config["stopping_rule"]
    method, event = sr["method"], sr["event"]
    label = event_label(event)
    flags = _subject_flags(subjects, event, adjudicated)
    alt_flags = (_subject_flags(subjects, event, adjudicated, pending_confirmed=True)
                 if event == "dlt" and adjudicated else flags)
    computed_from = ("adjudicated" if adjudicated else "screened candidates") if event == "dlt" else "toxicity data"
    basis = "" if computed_from != "screened candidates" else " (screened candidates, not yet adjudicated)"
    rows = []
    if method in ("bayesian_beta_binomial", "pocock"):
        n, y, pend, cands = _counts(flags)
        n2, y2, _, _ = _counts(alt_flags)
        d, alt = _study_decision(sr, n, y), _study_decision(sr, n2, y2)
        ahead = d["events_to_boundary"]
        sentence = (f"{method_cited(method)}: {_observed(y, n, label, basis)}; {d['measure']}: {d['decision']}. "
                    + (f"{ahead[0].upper()}{ahead[1:]}." if not d["crossed"] else "The stopping boundary is crossed.")
                    + _pending_sentence(pend, cands, d["decision"], alt["decision"], y2, n2))
        rows.append(dict(cohort=None, method=method, monitored_event=event, evaluable_n=n, events=y, pending=pend,
                         statistic=d["statistic"], statistic_label=d["statistic_label"], boundary=d["boundary"],
                         boundary_events=d["boundary_events"], decision=d["decision"],
                         events_to_boundary=ahead, events_needed=d["events_needed"], within_next=d["within_next"],
                         sentence=sentence, computed_from=computed_from,
                         decision_if_pending_confirmed=alt["decision"], evaluable_n_if_pending_confirmed=n2,
                         events_if_pending_confirmed=y2, pending_changes_decision=alt["decision"] != d["decision"]))
    else:
        group = sr.get("group_by", "dose_level")
        word = GROUP_WORDS.get(group, group)
        keys = np.array(["(none)" if _missing(k) else k for k in subjects[group]], dtype=object)
        table = None
        if method == "boin":
            largest = max(Counter(keys.tolist()).values(), default=0)
            table = {r["n"]: r for r in boin_rows(float(sr["threshold"]), max(int(sr["max_n"]), largest) + 3,
                                                  float(sr["boin_elimination_cutoff"]), sr.get("boin_phi1"),
                                                  sr.get("boin_phi2"))}
        order = sorted(set(keys.tolist()), key=lambda k: dose_order_key(k, sr.get("dose_order") or ()))
        per, alts = {}, {}
        for k in order:
            n, y, pend, cands = _counts(flags, keys == k)
            n2, y2, _, _ = _counts(alt_flags, keys == k)
            per[k] = (n, y, pend, cands, _dose_decision(sr, n, y, table))
            alts[k] = (n2, y2, _dose_decision(sr, n2, y2, table))
        decided = {k: per[k][4]["decision"] for k in order}
        decided_alt = {k: alts[k][2]["decision"] for k in order}
        carried, carried_alt, lowest, held = {}, {}, None, {}
        if method == "boin" and group == "dose_level":  # elimination carries to higher doses only by dose
            carried, carried_alt = _carry_elimination(order, decided), _carry_elimination(order, decided_alt)
            lowest = _lowest_dose(order, sr.get("dose_order") or ())
        if group == "dose_level":  # a move to a dose that cannot be given stays where it is
            held = _hold_at_limits(order, decided, method, sr.get("dose_order") or ())
            _hold_at_limits(order, decided_alt, method, sr.get("dose_order") or ())
        stop = "so the trial stops for safety"  # Liu & Yuan 2015: the lowest dose eliminated leaves none to treat at
        for k in order:
            n, y, pend, cands, d = per[k]
            n2, y2, _ = alts[k]
            decision, alt = decided[k], decided_alt[k]
            rate = y / n if n else None  # no evaluable subject: no observed rate
            words = d["words"]
            if k in carried:
                words = f"eliminate (the lower {word} {carried[k]} is eliminated" + \
                    (f"; it is the lowest, {stop})" if carried[k] == lowest else ")")
            elif k == lowest and decision == "eliminate":
                words = f"eliminate; it is the lowest {word}, {stop}"
            elif k in held:
                words = ("stay and expand to 6" if method == "three_plus_three" and n == 3 and y == 0
                         else "stay: the MTD" if method == "three_plus_three" else "stay") + f" ({held[k]})"
            ahead = d["events_to_boundary"] if k not in carried else "boundary crossed at a lower dose"
            if k in carried_alt and k not in carried:  # the change comes from a lower dose's pending candidates
                lower = f"the pending candidates at the lower {word} {carried_alt[k]}"
                pending_text = (_pending_sentence(pend, cands, decision, alt, y2, n2) if pend else "") + \
                    f" With {lower} confirmed, {word} {k} would be eliminated too ({decision} now)."
            else:
                pending_text = _pending_sentence(pend, cands, decision, alt, y2, n2)
            if k == lowest and alt == "eliminate" and decision != "eliminate":
                pending_text += f" Eliminating the lowest {word} would stop the trial for safety."
            sentence = (f"{method_cited(method)}, {word} {k}: {_observed(y, n, label, basis)}"
                        + (f" (rate {statistic_text(rate, OBSERVED_RATE)})" if n else " (no rate)") + f": {words}."
                        + (f" {ahead[0].upper()}{ahead[1:]}." if d["parts"] and k not in carried else "")
                        + pending_text)
            rows.append(dict(cohort=k, method=method, monitored_event=event, evaluable_n=n, events=y,
                             pending=pend, statistic=rate, statistic_label=OBSERVED_RATE, boundary=d["boundary"],
                             boundary_events=d["boundary_events"], decision=decision, events_to_boundary=ahead,
                             events_needed=0 if k in carried else d["events_needed"],
                             within_next=0 if k in carried else d["within_next"],
                             sentence=sentence, computed_from=computed_from,
                             decision_if_pending_confirmed=alt, evaluable_n_if_pending_confirmed=n2,
                             events_if_pending_confirmed=y2, pending_changes_decision=alt != decision))
    return rows


# stopping_boundaries columns a rule's rows hold (the rest are the key: studyid, data_cut, cohort, method)
_BOUNDARY_COLUMNS = [c for c in STOPPING_BOUNDARIES.column_names if c not in ("studyid", "data_cut", "cohort", "method")]


def boundary_rows(config: dict, studyid: str, data_cut) -> pd.DataFrame:
    """stopping_boundaries rows for the configured rule, as a DataFrame."""
    import pandas as pd

    out = pd.DataFrame(boundary_records(config)).reindex(columns=_BOUNDARY_COLUMNS)
    for c in ("n", "stop_if_events_ge", "escalate_if_le", "deescalate_if_ge", "eliminate_if_ge"):
        out[c] = out[c].astype("Int64")
    for c in ("statistic_at_boundary", "nominal_level"):
        out[c] = out[c].astype("float64")
    out.insert(0, "method", config["stopping_rule"]["method"])
    out.insert(0, "cohort", pd.Series([None] * len(out), dtype="object"))
    out.insert(0, "data_cut", pd.Series([data_cut] * len(out), dtype="object"))
    out.insert(0, "studyid", studyid)
    return out


def boundary_records(config: dict) -> list[dict]:
    """stopping_boundaries rows for the configured rule: n and the counts and levels the rule uses at n (a
    column the rule does not use is absent)."""
    sr = config["stopping_rule"]
    method, p0, max_n, min_n = sr["method"], float(sr["threshold"]), int(sr["max_n"]), int(sr["min_n"])
    rows = []
    if method == "bayesian_beta_binomial":
        a, b, cutoff = float(sr["prior_a"]), float(sr["prior_b"]), float(sr["posterior_cutoff"])
        for n, bn in beta_binomial_boundaries(max_n, p0, a, b, cutoff, min_n).items():
            rows.append(dict(n=n, stop_if_events_ge=bn, nominal_level=cutoff,
                             statistic_at_boundary=None if bn is None else beta_binomial_posterior(bn, n, p0, a, b)))
    elif method == "pocock":
        level, bounds = pocock_boundaries(p0, max_n, float(sr["alpha"]), min_n)
        for n, bn in bounds.items():
            rows.append(dict(n=n, stop_if_events_ge=bn, nominal_level=level,
                             statistic_at_boundary=None if bn is None else binomial_tail(bn, n, p0)))
    elif method == "boin":
        rows = boin_rows(p0, max_n, float(sr["boin_elimination_cutoff"]), sr.get("boin_phi1"), sr.get("boin_phi2"))
    else:
        for n in range(1, 7):
            rows.append(dict(n=n, escalate_if_le={3: 0, 6: 1}.get(n), deescalate_if_ge=2 if n >= 2 else None))
    return rows


def derive_stopping_status(con, studyid: str, data_cut: dt.date, config: dict, review_store=None) -> None:
    """Rebuild stopping_rule_status and stopping_boundaries for one study and cut.

    With a review store, DLT counts use the committee's decisions in force at load time; without one they
    use the screened candidates (every in-window candidate counted as a DLT) and say so.
    """
    create_missing(con, (STOPPING_RULE_STATUS, STOPPING_BOUNDARIES))
    subjects = (live_evaluability_arrays(StudyReader(con, Scope(studyid, data_cut)), review_store, config,
                                         SUBJECT_COLUMNS)
                if existing(con, ("dlt_evaluability",)) else {c: [] for c in SUBJECT_COLUMNS})
    key = {"studyid": studyid, "data_cut": data_cut, "method": config["stopping_rule"]["method"]}
    status = [{**key, **r} for r in status_records(subjects, config, adjudicated=review_store is not None)]
    bounds = [{**key, **r} for r in boundary_records(config)]
    con.execute("BEGIN TRANSACTION")
    try:
        reset_derived(con, (STOPPING_RULE_STATUS, STOPPING_BOUNDARIES), studyid, data_cut)
        for t, rows in ((STOPPING_RULE_STATUS, status), (STOPPING_BOUNDARIES, bounds)):
            insert_rows(con, t.name, [tuple(r.get(c.name) for c in t.columns) for r in rows],
                        tuple(c.value_type for c in t.columns))
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


DERIVATION = Derivation(
    name="stopping_rules",
    writes=(STOPPING_RULE_STATUS, STOPPING_BOUNDARIES),
    reads=('subjects', 'dlt_evaluability', 'dlt_candidates'),
    run=derive_stopping_status,
)

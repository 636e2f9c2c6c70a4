"""Stopping and dose-escalation rules: exact statistics (scipy) and the per-cut status tables.

Methods (``stopping_rule.method`` in study.yaml):
  bayesian_beta_binomial  stop when P(rate > threshold | y, n) > posterior_cutoff, prior Beta(prior_a, prior_b)
                          (Thall, Simon & Estey 1995; Geller et al. 2003 "BB")
  pocock                  stop when y >= b_n, b_n the smallest b with P(Bin(n, p0) >= b) <= alpha*, the constant
                          nominal level alpha* set so P(ever crossing | p0) over looks min_n..max_n = alpha
                          (Ivanova, Qaqish & Schell 2005), computed exactly by dynamic programming over n
  boin                    per cohort: escalate if y/n <= lambda_e, de-escalate if y/n >= lambda_d, eliminate if
                          n >= 3 and P(rate > target | Beta(1+y, 1+n-y)) > boin_elimination_cutoff (Liu & Yuan 2015)
  three_plus_three        per cohort: 0/3 escalate, 1/3 expand to 6, <= 1/6 escalate, >= 2 DLTs de-escalate

The monitored event (``stopping_rule.event``) is the DLT, or a pre-specified toxicity with onset in the DLT
window: CRS grade >= 3, ICANS grade >= 3, either, or treatment-related death.
"""
from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd

from safety.access.reader import Scope, StudyReader
from safety.core.sql import reset_derived
from safety.derive.dlt.evaluability import live_evaluability
from safety.derive.graph import Derivation
from safety.schema import STOPPING_RULE_STATUS, STOPPING_BOUNDARIES


METHOD_NAMES = {"bayesian_beta_binomial": "Bayesian beta-binomial", "pocock": "Pocock-type", "boin": "BOIN",
                "three_plus_three": "3+3"}


def method_name(method: str) -> str:
    """The rule's name as a protocol prints it ('boin' -> 'BOIN')."""
    return METHOD_NAMES.get(method, method)


def _stats():
    """scipy.stats, imported on first use: loading a study registers this module's tables without needing it."""
    from scipy import stats
    return stats


# --- beta-binomial -----------------------------------------------------------------------------------


def beta_binomial_posterior(y: int, n: int, p0: float, a: float, b: float) -> float:
    """P(p > p0 | y events in n) under a Beta(a, b) prior: the Beta(a + y, b + n - y) upper tail."""
    return float(_stats().beta.sf(p0, a + y, b + n - y))


def beta_binomial_boundary(n: int, p0: float, a: float, b: float, cutoff: float) -> int | None:
    """Smallest y (0..n) with posterior P(p > p0) > cutoff; None when no count at n crosses."""
    ys = np.arange(n + 1)
    post = _stats().beta.sf(p0, a + ys, b + n - ys)
    hit = np.nonzero(post > cutoff)[0]
    return int(hit[0]) if hit.size else None


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
        tails = _stats().binom.sf(np.arange(n + 1) - 1, n, p0)  # P(X >= b), b = 0..n
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
                    for t in _stats().binom.sf(np.arange(1, n + 1) - 1, n, p0)})
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
    return float(_stats().binom.sf(y - 1, n, p0))


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
    """BOIN count boundaries for n = 1..max_n: escalate_if_le, deescalate_if_ge, eliminate_if_ge (n >= 3)."""
    lam_e, lam_d = boin_intervals(target, phi1, phi2)
    rows = []
    for n in range(1, max_n + 1):
        # round before floor/ceil so n * lambda landing on an integer is not lost to floating point
        e = math.floor(round(n * lam_e, 10))
        d = math.ceil(round(n * lam_d, 10))
        elim = None
        if n >= 3:
            ys = np.arange(n + 1)
            hit = np.nonzero(_stats().beta.sf(target, ys + 1, n - ys + 1) > elimination_cutoff)[0]
            elim = int(hit[0]) if hit.size else None
        rows.append({"n": n, "escalate_if_le": e, "deescalate_if_ge": d, "eliminate_if_ge": elim})
    return pd.DataFrame(rows)


def boin_decision(n: int, y: int, target: float, elimination_cutoff: float = 0.95, phi1: float | None = None,
                  phi2: float | None = None) -> str:
    """'eliminate', 'de-escalate', 'stay' or 'escalate' for y DLTs in n at the current dose."""
    if n <= 0:
        return "stay"
    lam_e, lam_d = boin_intervals(target, phi1, phi2)
    if n >= 3 and float(_stats().beta.sf(target, y + 1, n - y + 1)) > elimination_cutoff:
        return "eliminate"
    rate = y / n
    if rate <= lam_e + 1e-12:
        return "escalate"
    if rate >= lam_d - 1e-12:
        return "de-escalate"
    return "stay"


# --- 3+3 ---------------------------------------------------------------------------------------------


def three_plus_three_decision(n: int, y: int) -> str:
    """3+3 at one dose: 0/3 escalate; 1/3 stay (expand to 6); <= 1/6 escalate; >= 2 DLTs de-escalate.

    Fewer than 3 (or 4-5) evaluable subjects without 2 DLTs: 'stay' (complete the cohort). Beyond 6 (an
    expanded dose) the 1-in-6 rate applies: escalate if y <= n / 6, else de-escalate.
    """
    if y >= 2 and n <= 6:
        return "de-escalate"
    if n < 3:
        return "stay"
    if n == 3:
        return "escalate" if y == 0 else "stay"
    if n < 6:
        return "stay"
    if n == 6:
        return "escalate"
    return "escalate" if y <= n / 6 else "de-escalate"


def three_plus_three_p_escalate(p: float) -> float:
    """P(escalate from a dose with true DLT rate p) = (1-p)^3 + 3p(1-p)^2 (1-p)^3."""
    return (1 - p) ** 3 + 3 * p * (1 - p) ** 2 * (1 - p) ** 3


# --- status rows -------------------------------------------------------------------------------------

EVENT_LABEL = {
    "dlt": "DLT", "crs_grade3": "CRS grade >= 3", "icans_grade3": "ICANS grade >= 3",
    "crs_icans_grade3": "CRS or ICANS grade >= 3", "treatment_related_death": "treatment-related death",
}

STATUS_COLUMNS = STOPPING_RULE_STATUS.column_names


def _subject_flags(subjects: pd.DataFrame, event: str, adjudicated: bool) -> pd.DataFrame:
    """Per subject: evaluable, event, pending for the monitored event."""
    s = subjects.copy()
    infused = s["infused"].fillna(False).astype(bool)
    followed = s["followed_through_window"].fillna(False).astype(bool)
    confirmed = s["dlt_confirmed"].fillna(False).astype(bool)
    cand = s["candidates_in_window"].fillna(0).astype(int) > 0
    pending = s["pending_in_window"].fillna(0).astype(int) > 0
    if event == "dlt":
        if adjudicated:
            s["ev"] = infused & confirmed
            s["evaluable_"] = s["evaluable"].fillna(False).astype(bool)
            s["pending_"] = infused & ~confirmed & pending
        else:
            s["ev"] = infused & (confirmed | cand)
            s["evaluable_"] = s["evaluable_if_candidates_confirmed"].fillna(False).astype(bool)
            s["pending_"] = infused & cand & ~confirmed
        return s
    crs = s["crs_max_grade_window"].fillna(0).astype(int) >= 3
    icans = s["icans_max_grade_window"].fillna(0).astype(int) >= 3
    trd = s["treatment_related_death"].fillna(False).astype(bool)
    ev = {"crs_grade3": crs, "icans_grade3": icans, "crs_icans_grade3": crs | icans, "treatment_related_death": trd}[event]
    s["ev"] = infused & ev
    s["evaluable_"] = infused & (followed | ev)
    s["pending_"] = False
    return s


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


def _more(k: int, m: int, what: str, verb: str) -> str:
    evs = f"{k} more {what}" + ("" if k == 1 else "s")
    subj = "the next subject" if m == 1 else f"the next {m} subjects"
    return f"{evs} in {subj} would {verb}"


def status_rows(subjects: pd.DataFrame, config: dict, studyid: str, data_cut, adjudicated: bool) -> pd.DataFrame:
    """stopping_rule_status rows from per-subject evaluability (dlt_evaluability columns)."""
    sr = config["stopping_rule"]
    method, event = sr["method"], sr["event"]
    label = EVENT_LABEL[event]
    flags = _subject_flags(subjects, event, adjudicated) if len(subjects) else subjects.assign(ev=[], evaluable_=[], pending_=[])
    computed_from = ("adjudicated" if adjudicated else "screened candidates") if event == "dlt" else "toxicity data"
    p0, max_n, min_n = float(sr["threshold"]), int(sr["max_n"]), int(sr["min_n"])
    rows = []

    def counts(df):
        ev = df[df["evaluable_"].astype(bool)] if len(df) else df
        return int(len(ev)), int(ev["ev"].astype(bool).sum()) if len(ev) else 0, int(df["pending_"].astype(bool).sum()) if len(df) else 0

    def pend_text(pend):
        if not pend:
            return ""
        return (f" ({pend} more subject{'s' if pend != 1 else ''} with {'candidates' if pend != 1 else 'a candidate'}"
                " pending adjudication; the decision is provisional)")

    basis = "" if computed_from != "screened candidates" else " (screened candidates, not yet adjudicated)"
    if method in ("bayesian_beta_binomial", "pocock"):
        n, y, pend = counts(flags)
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
            boundary = (f"stop if {bnd} or more of {n} (nominal level {level:.4f})" if bnd is not None
                        else f"no stop possible at n = {n}")
            crit = f"against the nominal level {level:.4f}"
        crossed = bnd is not None and y >= bnd
        decision = "stop" if crossed else "continue"
        if crossed:
            need, within, ahead = 0, 0, "boundary crossed"
        else:
            need, within = _lookahead(n, y, trigger, max(max_n - n, 0))
            ahead = (_more(need, within, label, "stop") if need is not None
                     else f"the boundary cannot be crossed within the planned {max_n} subjects")
        sentence = (f"{y} of {n} evaluable subject{'s' if n != 1 else ''} had a {label}{basis}{pend_text(pend)}; "
                    f"{stat_label} = {stat:.3f} {crit}: {decision}. "
                    + (f"{ahead[0].upper()}{ahead[1:]}." if not crossed else "The stopping boundary is crossed."))
        rows.append(dict(cohort=None, method=method, monitored_event=event, evaluable_n=n, events=y, pending=pend,
                         statistic=stat, statistic_label=stat_label, boundary=boundary, boundary_events=bnd,
                         decision=decision, events_to_boundary=ahead, events_needed=need, within_next=within,
                         sentence=sentence, computed_from=computed_from))
    else:
        group = sr.get("group_by", "cohort")
        keys = flags[group].fillna("(none)") if len(flags) else pd.Series(dtype=str)
        if method == "boin":
            phi1, phi2 = sr.get("boin_phi1"), sr.get("boin_phi2")
            elim_cut = float(sr["boin_elimination_cutoff"])
            lam_e, lam_d = boin_intervals(p0, phi1, phi2)
            largest = int(keys.value_counts().max()) if len(flags) else 0
            table = boin_table(p0, max(max_n, largest) + 3, elim_cut, phi1, phi2).set_index("n")
        for cohort, df in (flags.groupby(keys, sort=True) if len(flags) else []):
            n, y, pend = counts(df)
            rate = y / n if n else 0.0
            if method == "boin":
                decision = boin_decision(n, y, p0, elim_cut, phi1, phi2)
                boundary = f"escalate if rate <= {lam_e:.3f}, de-escalate if >= {lam_d:.3f}"
                bnd = None
                if n >= 1:
                    bnd = int(table.at[n, "deescalate_if_ge"])
                    el = table.at[n, "eliminate_if_ge"]
                    boundary += f"; at n = {n}: escalate if <= {int(table.at[n, 'escalate_if_le'])}, " \
                                f"de-escalate if >= {bnd}" + (f", eliminate if >= {int(el)}" if pd.notna(el) else "")
                parts = []
                if decision not in ("de-escalate", "eliminate"):
                    k, m = _lookahead(n, y, lambda j: int(table.at[j, "deescalate_if_ge"]), 3)
                    if k is not None:
                        parts.append(_more(k, m, "DLT", "de-escalate"))
                if decision != "eliminate":
                    k, m = _lookahead(n, y, lambda j: (None if pd.isna(table.at[j, "eliminate_if_ge"])
                                                       else int(table.at[j, "eliminate_if_ge"])), 3)
                    if k is not None:
                        parts.append(_more(k, m, "DLT", "eliminate the dose"))
                need, within = (0, 0) if decision in ("de-escalate", "eliminate") else \
                    _lookahead(n, y, lambda j: int(table.at[j, "deescalate_if_ge"]), 3)
            else:
                decision = three_plus_three_decision(n, y)
                boundary = "3+3: escalate if 0 of 3 or <= 1 of 6; de-escalate if >= 2"
                bnd = 2
                parts, need, within = [], None, None
                if decision != "de-escalate" and n < 6:
                    need, within = 2 - y, 6 - n
                    if need <= within:
                        parts.append(_more(need, within, "DLT", "de-escalate").replace("in the next", "among the next"))
                    else:
                        need, within = None, None
                elif decision == "de-escalate":
                    need, within = 0, 0
            ahead = "; ".join(parts) if parts else ("boundary crossed" if decision in ("de-escalate", "eliminate")
                                                     else "no crossing within the next cohort")
            sentence = (f"Cohort {cohort}: {y} of {n} evaluable subject{'s' if n != 1 else ''} had a {label}{basis}"
                        f"{pend_text(pend)} (rate {rate:.2f}): {decision}."
                        + (f" {ahead[0].upper()}{ahead[1:]}." if parts else ""))
            rows.append(dict(cohort=cohort, method=method, monitored_event=event, evaluable_n=n, events=y,
                             pending=pend, statistic=rate, statistic_label="observed rate", boundary=boundary,
                             boundary_events=bnd, decision=decision, events_to_boundary=ahead, events_needed=need,
                             within_next=within, sentence=sentence, computed_from=computed_from))
    out = pd.DataFrame(rows, columns=[c for c in STATUS_COLUMNS if c not in ("studyid", "data_cut")])
    out.insert(0, "data_cut", pd.to_datetime(pd.Series([data_cut] * len(out), dtype="object")).dt.date)
    out.insert(0, "studyid", studyid)
    return out


def boundary_rows(config: dict, studyid: str, data_cut) -> pd.DataFrame:
    """stopping_boundaries rows for the configured rule."""
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
        t = boin_table(p0, max_n, float(sr["boin_elimination_cutoff"]), sr.get("boin_phi1"), sr.get("boin_phi2"))
        rows = t.to_dict("records")
    else:
        for n in range(1, 7):
            rows.append(dict(n=n, escalate_if_le={3: 0, 6: 1}.get(n), deescalate_if_ge=2 if n >= 2 else None))
    cols = [c for c in STOPPING_BOUNDARIES.column_names if c not in ("studyid", "data_cut", "cohort", "method")]
    out = pd.DataFrame(rows).reindex(columns=cols)
    for c in ("n", "stop_if_events_ge", "escalate_if_le", "deescalate_if_ge", "eliminate_if_ge"):
        out[c] = out[c].astype("Int64")
    for c in ("statistic_at_boundary", "nominal_level"):
        out[c] = out[c].astype("float64")
    out.insert(0, "method", method)
    out.insert(0, "cohort", pd.Series([None] * len(out), dtype="object"))
    out.insert(0, "data_cut", pd.Series([data_cut] * len(out), dtype="object"))
    out.insert(0, "studyid", studyid)
    return out


def derive_stopping_status(con, studyid: str, data_cut: dt.date, config: dict, review_store=None) -> None:
    """Rebuild stopping_rule_status and stopping_boundaries for one study and cut.

    With a review store, DLT counts use the committee's decisions in force at load time; without one they
    use the screened candidates (every in-window candidate counted as a DLT) and say so.
    """
    for t in (STOPPING_RULE_STATUS, STOPPING_BOUNDARIES):
        con.execute(t.ddl())
    has_eval = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'dlt_evaluability'").fetchone()[0]
    if has_eval:
        reader = StudyReader(con, Scope(studyid, data_cut))
        subjects = live_evaluability(reader, review_store, config)
    else:
        subjects = pd.DataFrame()
    status = status_rows(subjects, config, studyid, data_cut, adjudicated=review_store is not None)
    bounds = boundary_rows(config, studyid, data_cut)
    con.execute("BEGIN TRANSACTION")
    try:
        reset_derived(con, (STOPPING_RULE_STATUS, STOPPING_BOUNDARIES), studyid, data_cut)
        for t, df in ((STOPPING_RULE_STATUS, status), (STOPPING_BOUNDARIES, bounds)):
            if len(df):
                con.register("_stopping_rows", df)
                try:
                    con.execute(f"INSERT INTO {t.name} BY NAME SELECT * FROM _stopping_rows")
                finally:
                    con.unregister("_stopping_rows")
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

"""Every derivation that a load runs, by plain import, in the order their reads and writes demand.

A derivation is a :class:`safety.derive.graph.Derivation`: name, tables written, tables read, and one
``run`` that deletes and rebuilds its rows for a (study, cut). To add one, declare ``DERIVATION`` in its
module, import it here and add it to ``ALL``; :func:`ordered` places it after the tables it reads.

A load runs them two at a time, each on a connection of its own, a derivation starting once every derivation
that writes a table it reads has finished: most of their statements keep one core busy, so two side by side
finish sooner than one after the other, with the same rows. The lab grades, which read nothing but ``labs``,
start as soon as the load has committed it, beside the rest of the load (:func:`start`).
"""
from __future__ import annotations

import datetime as dt
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from safety.derive import eligibility
from safety.derive.dlt import screening, stopping
from safety.derive.grading import ae_grades, ctcae
from safety.derive.graph import Derivation, GraphError, ordered
from safety.derive.outcomes import deaths, dosing, immune, infections, kinetics, malignancy, response, tls
from safety.derive.outcomes import kinetics_pp
from safety.derive.toxicity import crs_icans, episode_labs, hematotox, icaht

ALL: tuple[Derivation, ...] = (
    eligibility.DERIVATION,
    ctcae.DERIVATION,
    ae_grades.DERIVATION,
    crs_icans.DERIVATION,
    episode_labs.DERIVATION,
    icaht.DERIVATION,
    hematotox.DERIVATION,
    screening.DERIVATION,
    stopping.DERIVATION,
    infections.DERIVATION,
    deaths.DERIVATION,
    kinetics.DERIVATION,
    tls.DERIVATION,
    immune.DERIVATION,
    malignancy.DERIVATION,
    dosing.DERIVATION,
    response.DERIVATION,
    kinetics_pp.DERIVATION,
)

ORDER: list[Derivation] = ordered(ALL)  # computed at import: a bad graph fails at start, not mid-load


def derivation(name: str) -> Derivation:
    """The derivation called ``name``; GraphError names the known ones when there is none."""
    for d in ORDER:
        if d.name == name:
            return d
    raise GraphError(f"no derivation called {name!r}; known: {', '.join(d.name for d in ORDER)}")


WORKERS = 2  # derivations run side by side (DuckDB spreads each statement over the cores as well)


def run_derivations(con, studyid: str, data_cut: dt.date, config: dict, review_store=None,
                    only: list[str] | None = None, workers: int = WORKERS,
                    started: dict[Future, Derivation] | None = None) -> list[str]:
    """Run every derivation (or the named ones) for one study and cut; returns the names run, in graph order.

    With ``workers`` > 1 independent derivations run at the same time, each on its own cursor of ``con`` (which
    must have no open transaction: they read what is committed). ``started``: derivations already running
    (:func:`start`), not run again; the ones that read their tables wait for them. The first failure stops the
    run and is raised.
    """
    chosen = ORDER if only is None else [d for d in ORDER if d.name in {derivation(n).name for n in only}]
    started = dict(started or {})
    if workers <= 1 or len(chosen) < 2:
        finish(started, raise_error=True)
        early = {d.name for d in started.values()}
        for d in chosen:
            if d.name not in early:
                d(con, studyid, data_cut, config, review_store=review_store)
    else:
        _run_side_by_side(con, chosen, workers, (studyid, data_cut, config), review_store, started)
    return [d.name for d in chosen]


def ready_after(tables) -> list[Derivation]:
    """The derivations that read nothing but ``tables``: they can start as soon as those are committed."""
    return [d for d in ORDER if set(d.reads) <= set(tables)]


def start(con, chosen: list[Derivation], studyid: str, data_cut: dt.date, config: dict,
          review_store=None) -> dict[Future, Derivation]:
    """Start ``chosen`` now, each on its own cursor of ``con``, while the caller goes on with the load; hand the
    result to :func:`run_derivations` (``started``), or to :func:`finish` if the load stops before."""
    if not chosen:
        return {}
    pool = ThreadPoolExecutor(len(chosen), thread_name_prefix="derive-early")
    try:
        return {pool.submit(_on_cursor, con, d, (studyid, data_cut, config), review_store): d for d in chosen}
    finally:
        pool.shutdown(wait=False)


def finish(started: dict[Future, Derivation], raise_error: bool = False) -> None:
    """Wait for derivations started with :func:`start` (a load that fails must not close their connection under
    them); with ``raise_error`` the first of their errors is raised."""
    wait(started)
    if raise_error:
        for f in started:
            f.result()


def _on_cursor(con, d: Derivation, args: tuple, review_store) -> None:
    cur = con.cursor()  # its own transaction and temp tables
    try:
        d(cur, *args, review_store=review_store)
    finally:
        cur.close()


def _run_side_by_side(con, chosen: list[Derivation], workers: int, args: tuple, review_store,
                      started: dict[Future, Derivation]) -> None:
    writer = {t: d.name for d in chosen for t in d.written_names}
    needs = {d.name: {writer[r] for r in d.reads if r in writer and writer[r] != d.name} for d in chosen}
    # of the ready ones, those that more derivations wait for (directly or not) start first: the DLT screening
    # waits for the lab grades, the CRS/ICANS episodes and the deaths, and the stopping rules wait for it
    after: dict[str, set[str]] = {d.name: set() for d in chosen}
    for d in reversed(chosen):  # graph order reversed: a derivation's dependents are complete before it
        for n in needs[d.name]:
            after[n] |= {d.name} | after[d.name]

    early = {d.name for d in started.values()}
    pending = sorted((d for d in chosen if d.name not in early), key=lambda d: -len(after[d.name]))
    running, done = dict(started), set()
    with ThreadPoolExecutor(workers, thread_name_prefix="derive") as pool:
        try:
            while pending or running:
                for d in [d for d in pending if needs[d.name] <= done][:max(0, workers - len(running))]:
                    pending.remove(d)
                    running[pool.submit(_on_cursor, con, d, args, review_store)] = d
                if not running:
                    raise GraphError("derivations wait for each other: " + ", ".join(d.name for d in pending))
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for f in finished:
                    done.add(running.pop(f).name)
                    f.result()  # raises the derivation's error; the ones still running finish first
        except BaseException:
            pending.clear()
            wait(running)
            raise

"""Every derivation that a load runs, by plain import, in the order their reads and writes demand.

A derivation is a :class:`safety.derive.graph.Derivation`: name, tables written, tables read, and one
``run`` that deletes and rebuilds its rows for a (study, cut). To add one, declare ``DERIVATION`` in its
module, import it here and add it to ``ALL``; :func:`ordered` places it after the tables it reads.
"""
from __future__ import annotations

import datetime as dt

from safety.derive import eligibility
from safety.derive.dlt import screening, stopping
from safety.derive.grading import ctcae
from safety.derive.graph import Derivation, GraphError, ordered
from safety.derive.outcomes import deaths, dosing, immune, infections, kinetics, malignancy, response, tls
from safety.derive.outcomes import kinetics_pp
from safety.derive.toxicity import crs_icans, hematotox, icaht

ALL: tuple[Derivation, ...] = (
    eligibility.DERIVATION,
    ctcae.DERIVATION,
    crs_icans.DERIVATION,
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


def run_derivations(con, studyid: str, data_cut: dt.date, config: dict, review_store=None,
                    only: list[str] | None = None) -> list[str]:
    """Run every derivation (or the named ones, in graph order) for one study and cut; returns the names run."""
    chosen = ORDER if only is None else [d for d in ORDER if d.name in {derivation(n).name for n in only}]
    for d in chosen:
        d(con, studyid, data_cut, config, review_store=review_store)
    return [d.name for d in chosen]

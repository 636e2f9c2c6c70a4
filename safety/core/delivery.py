"""Whether a domain was delivered for a data cut: one definition for the pages and the packet.

A domain the delivery did not contain holds no rows, and a count of its rows reads 0: "no AEs", "all subjects CRS
grade 0". Where a domain was not delivered a page or an output says so instead ("AE not delivered at this data cut"),
so an empty result means "no data", not "no events". What was delivered is ``studies.domains_present``, written by
the load.

CRS and ICANS have no SDTM domain: their assessments come from the celltox files (crs_assessments,
icans_assessments, loaded as the domains CRS and ICANS) or are built from the SDTM domains that hold their bedside
inputs (safety/ingest/sdtm_assessments.py), and their episodes are also read from the reported AEs. They count as
delivered when any of these is.
"""
from __future__ import annotations

from typing import Callable, Iterable

import pandas as pd

# A count's place when the domain it counts was not delivered: the words, not 0
NOT_DELIVERED = "not delivered"

# The domains a syndrome's assessments and episodes are read from (safety/ingest/sdtm_assessments.py): its celltox
# file; VS, CM and PR (temperature, pressure, oxygen, vasopressors) for CRS; QS (ICE, CAPD, consciousness) for
# ICANS; FA and CE (findings, pre-specified events) and AE (reported episodes, seizures, motor weakness) for both.
BUILT_FROM: dict[str, tuple[str, ...]] = {
    "CRS": ("CRS", "VS", "CM", "PR", "QS", "FA", "CE", "AE"),
    "ICANS": ("ICANS", "QS", "FA", "CE", "AE"),
}


def _sources_in_words(syndrome: str) -> str:
    """The sources a syndrome's "not delivered" note names, read from BUILT_FROM: its celltox file, then the SDTM
    domains ('no crs_assessments file, nor the SDTM VS, CM, PR, QS, FA, CE or AE it is built from')."""
    sdtm = BUILT_FROM[syndrome][1:]
    return (f"no {syndrome.lower()}_assessments file, nor the SDTM {', '.join(sdtm[:-1])} or {sdtm[-1]} "
            "it is built from")


def domains_present(sql: Callable[[str], pd.DataFrame]) -> frozenset[str] | None:
    """The domains delivered for the cut ``sql`` reads (``studies.domains_present``): a reader's ``sql`` or the
    app's ``state.q``; None when the cut has no record of them (a database not written by the load), every domain
    then being taken as delivered rather than each named missing."""
    df = sql("SELECT domains_present AS d FROM studies LIMIT 1")
    if df.empty or df["d"].iloc[0] is None or (not hasattr(df["d"].iloc[0], "__len__") and pd.isna(df["d"].iloc[0])):
        return None
    return frozenset(str(d) for d in df["d"].iloc[0])


def delivered(domain: str, present: Iterable[str] | None) -> bool:
    """Whether ``domain`` (an SDTM domain, or CRS / ICANS) was delivered, of the ``present`` domains
    (:func:`domains_present`; None: not recorded, taken as delivered)."""
    if present is None:
        return True
    have = set(present)
    return any(d in have for d in BUILT_FROM.get(domain, (domain,)))


def not_delivered(domains: Iterable[str], present: Iterable[str] | None) -> list[str]:
    """Those of ``domains`` not delivered, in the order given."""
    return [d for d in domains if not delivered(d, present)]


def domain_label(domain: str) -> str:
    """What a domain is called where it is said not delivered: 'AE', 'CRS assessments'."""
    return f"{domain} assessments" if domain in BUILT_FROM else domain


def not_delivered_note(domain: str) -> str:
    """'AE not delivered at this data cut', naming for CRS and ICANS the sources none of which was delivered."""
    why = f" ({_sources_in_words(domain)})" if domain in BUILT_FROM else ""
    return f"{domain_label(domain)} not delivered at this data cut{why}"

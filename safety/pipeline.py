"""The derivations that ingest runs after loading, in order. Each rebuilds its tables for one study and cut.

A derivation is a function ``derive(con, studyid, data_cut, config) -> None`` that deletes its own rows
for (studyid, data_cut) and inserts them afresh: derived tables are rebuilt, never patched.
Modules imported here register their tables with :func:`safety.schema.register`.
"""
from __future__ import annotations

import datetime as dt
import importlib
from typing import Callable

Derivation = Callable[..., None]

# (module, function) in run order; later derivations read earlier ones' tables.
DERIVATIONS: list[tuple[str, str]] = [
    ("safety.eligibility", "derive_eligibility_deviations"),
    ("safety.grading.ctcae", "derive_lab_toxicity"),
    ("safety.toxicity.crs_icans", "derive_cell_therapy_toxicities"),
    ("safety.toxicity.icaht", "derive_icaht"),
    ("safety.dlt.screening", "derive_dlt"),
    ("safety.dlt.stopping", "derive_stopping_status"),
]


def _load(module: str, func: str) -> Derivation | None:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module or module.startswith(str(exc.name)):
            return None  # derivation not installed yet
        raise
    return getattr(mod, func)


def derivations() -> list[tuple[str, Derivation]]:
    """The available derivations as (name, function), in run order."""
    out = []
    for module, func in DERIVATIONS:
        f = _load(module, func)
        if f is not None:
            out.append((f"{module}.{func}", f))
    return out


def run_derivations(con, studyid: str, data_cut: dt.date, config: dict, review_store=None) -> list[str]:
    """Run every derivation for one study and cut; returns the names run."""
    done = []
    for name, f in derivations():
        f(con, studyid, data_cut, config, review_store=review_store)
        done.append(name)
    return done


# Import for table registration (schema.all_tables() imports this module).
derivations()

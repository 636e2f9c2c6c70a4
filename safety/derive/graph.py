"""A derivation as a declared node: its name, the tables it reads and writes, and one ``run``.

Each derivation module declares one ``DERIVATION = Derivation(...)``; :mod:`safety.derive.pipeline`
lists them by plain import and orders them from what they read. ``run(con, studyid, data_cut, config)``
deletes the rows it owns for that (study, cut) and inserts them afresh in SQL over whole tables.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable

from safety.schema import Table

RunFn = Callable[..., None]


@dataclass(frozen=True)
class Derivation:
    """One derivation: ``writes`` are the tables it owns, ``reads`` the tables it needs (by name)."""
    name: str
    writes: tuple[Table, ...]
    reads: tuple[str, ...]
    run: RunFn

    def __call__(self, con, studyid: str, data_cut: dt.date, config: dict, review_store=None) -> None:
        self.run(con, studyid, data_cut, config, review_store=review_store)

    @property
    def written_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.writes)


class GraphError(RuntimeError):
    """The declared derivations do not form a runnable graph (a cycle, a table written twice, an unknown name)."""


def ordered(derivations: tuple[Derivation, ...]) -> list[Derivation]:
    """The derivations in an order where every table is written before it is read (stable: declared order
    breaks ties). Fails loudly on a cycle or on two derivations writing one table."""
    writer: dict[str, Derivation] = {}
    for d in derivations:
        for t in d.written_names:
            if t in writer:
                raise GraphError(f"table {t} is written by both {writer[t].name} and {d.name}")
            writer[t] = d
    names = [d.name for d in derivations]
    if len(set(names)) != len(names):
        raise GraphError(f"derivation names are not unique: {names}")
    needs = {d.name: {writer[r].name for r in d.reads if r in writer and writer[r].name != d.name}
             for d in derivations}
    done: list[Derivation] = []
    placed: set[str] = set()
    pending = list(derivations)
    while pending:
        ready = [d for d in pending if needs[d.name] <= placed]
        if not ready:
            raise GraphError("derivations read each other's tables in a cycle: "
                             + ", ".join(sorted(d.name for d in pending)))
        d = ready[0]
        done.append(d)
        placed.add(d.name)
        pending.remove(d)
    return done

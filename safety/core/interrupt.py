"""Ctrl-C, remembered for the whole command.

DuckDB takes a SIGINT that arrives during a query as its own: the query ends with a RuntimeError ('Query
interrupted') and no KeyboardInterrupt reaches the code around it, which may then report a misleading error
(a file 'cannot be read') or carry on. The handler installed here notes the signal before Python raises
KeyboardInterrupt as usual, so a command can still tell that the user asked it to stop.
"""
from __future__ import annotations

import signal

INTERRUPTED = 130  # the exit status of a command ended by Ctrl-C (SIGINT), as shells report it: 128 + 2

_received: list[int] = []


def _note(signum, frame):
    _received.append(signum)
    raise KeyboardInterrupt


def install() -> None:
    """Note every Ctrl-C from now on (not where SIGINT is ignored, as for a job started in the background)."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _note)


def received() -> bool:
    """Whether Ctrl-C came since :func:`install`."""
    return bool(_received)


def check() -> None:
    """Raise KeyboardInterrupt if Ctrl-C came, even where DuckDB took it for its own."""
    if _received:
        raise KeyboardInterrupt

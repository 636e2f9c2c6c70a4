"""The account a command acts as (``review --as``, ``export --user``): named in users.yaml and proved by its
password, as the app's sign-in form proves it.

A committee decision or an export recorded under a name is an electronic record signed by that name: the name
alone would let anyone who can run the command sign as a committee member. So the command asks for the
account's password (typed at a terminal, or one line on standard input with ``--password-stdin``), applies the
app's lock after repeated failures (CELLTOX_LOCKOUT_ATTEMPTS within CELLTOX_LOCKOUT_MINUTES, counted in the
same audit log), and records each attempt there as the app does, with method 'command line'.
"""
from __future__ import annotations

import datetime as dt
import getpass
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from safety.access.auth import User

METHOD = "command line"


class Refused(Exception):
    """What the command refuses, in one line (the caller prints it and exits 2)."""


def add_password_argument(parser) -> None:
    """``--password-stdin``, for a command that acts as an account."""
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the account's password from the first line of standard input (default: ask for "
                             "it at the terminal)")


def right_words(right: Callable) -> str:
    """'adjudicate' for auth.can_adjudicate: what a refusal says the account may not do."""
    return right.__name__.removeprefix("can_").replace("_", " ")


def _password(flag: str, name: str, from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if sys.stdin is not None and sys.stdin.isatty():
        return getpass.getpass(f"Password for {name}: ")
    raise Refused(f"{flag} {name}: the account's password is needed: type it when asked at a terminal, or give it "
                  "on standard input with --password-stdin")


def _accounts_beside(flag: str, name: str, users: str | None, db: str | Path) -> Path:
    """users.yaml beside the database: the one account file a command acting as an account reads. --users or
    $CELLTOX_USERS may name it (by any path), never another file: an account file of one's own, where any name
    has a password one knows, would let whoever runs the command sign as anyone. The file beside the database is
    guarded as the database and its review store are, by their folder's permissions."""
    from safety.access.auth import users_file

    beside = users_file(None, db, env={})
    chosen = users_file(users, db)
    if chosen is not None and chosen.resolve() != beside.resolve():
        raise Refused(f"{flag} {name}: a command that acts as an account reads the accounts beside the database "
                      f"({beside}), not {chosen} (given by {'--users' if users else 'CELLTOX_USERS'})")
    return beside


def signed_in(flag: str, name: str, users: str | None, db: str | Path, right: Callable[["User"], bool],
              refusal: Callable[["User"], str], review_store, from_stdin: bool, command: str) -> "User":
    """The enabled account ``name`` of the account file, proved by its password and holding ``right``.

    ``flag`` ('--as', '--user') and ``refusal(user)`` word the one-line refusals; ``review_store`` (None when the
    database has none yet) holds the audit log the lock is counted in and each attempt is recorded in."""
    from safety.access.auth import AccessPolicy, AuthError, UserStore, sign_in_locked_until, writable_by_others

    path = _accounts_beside(flag, name, users, db)
    if not path.exists():
        raise Refused(f"{flag} {name}: no account file at {path}, beside the database")
    # a file others may write could hold a password of theirs for this account: it signs nothing
    if problem := writable_by_others(path):
        raise Refused(f"{flag} {name}: {problem}")
    store = UserStore(path)
    try:
        store.check()
        account = store.get(name)
    except AuthError as exc:  # its message names the file
        raise Refused(f"{flag} {name}: {exc}") from None
    # the account file is readable to whoever runs the command: naming what is wrong with the account gives
    # nothing away, and saves asking for a password that cannot help
    if account is None or getattr(account, "disabled", False):
        raise Refused(f"{flag} {name}: no enabled account {name!r} in {path}")
    if not right(account):
        raise Refused(f"{flag} {name}: {refusal(account)}")
    try:
        policy = AccessPolicy.from_env(db)
    except AuthError as exc:
        raise Refused(str(exc)) from None
    password = _password(flag, name, from_stdin)
    now = dt.datetime.now(dt.timezone.utc)
    audit = review_store.append_audit if review_store is not None else (lambda *a, **k: None)
    detail = {"method": METHOD, "command": command}
    locked_until = (sign_in_locked_until(review_store, name, now, int(policy.lockout_attempts),
                                         policy.lockout_minutes) if review_store is not None else None)
    if locked_until is not None:
        audit(name[:64], "sign_in_locked", None, {**detail, "until": locked_until.isoformat()})
        raise Refused(f"{flag} {name}: too many failed sign-ins for this account; try again after "
                      f"{locked_until:%H:%M} UTC, or ask an administrator (python -m safety users unlock {name} --db {db})")
    user = store.authenticate(name, password)
    if user is None:
        audit(name[:64], "sign_in_failure", None, detail)
        raise Refused(f"{flag} {name}: wrong password")
    audit(user.username, "sign_in_success", None, {**detail, "role": user.role})
    return user

"""Accounts, roles and the sign-in policy. Pure Python: the Streamlit sign-in gate is dashboard/auth.py.

Roles (see docs/access.md):

- ``committee``: all sites; adjudicates DLTs, signs off data cuts, views the audit log, exports.
- ``investigator``: the listed sites of the listed studies only (a site id is unique only within its study);
  read-only; no study-wide aggregates, no exports.
- ``data_manager``: all sites; data quality, loads and exports; does not adjudicate or sign off.
- ``admin``: manages accounts and views the audit log; sees NO patient data (its scope covers no site).

Accounts live in a YAML file (``users: {name: {role, sites, display_name, email, password_hash,
disabled}}``, an investigator's ``sites`` per study: ``{ITNK-B-01: ["01", "02"]}``) holding bcrypt hashes only;
it is written atomically with mode 0600.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import bcrypt
import yaml

from safety.access.reader import Scope
from safety.core.files import load_yaml

from safety.core.vocabulary import ROLES  # noqa: E402 - one list of roles
ROLE_LABELS = {
    "committee": "Safety committee",
    "investigator": "Site investigator",
    "data_manager": "Data manager",
    "admin": "Administrator",
}
AUTH_MODES = ("required", "off", "oidc")
DEFAULT_SESSION_MINUTES = 30
DEFAULT_SESSION_MAX_HOURS = 12
# Failed password sign-ins that lock a username, and for how long (a sliding window over the audit log).
DEFAULT_LOCKOUT_ATTEMPTS = 5
DEFAULT_LOCKOUT_MINUTES = 15
DEFAULT_BCRYPT_ROUNDS = 12
MIN_PASSWORD_LENGTH = 10
_BCRYPT_MAX_BYTES = 72
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_SITE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,63}$")
_STUDY = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")  # STUDYID is free text: any printable, no line break


class AuthError(ValueError):
    """An account operation that cannot be done; the message says why."""


class AccountRefused(AuthError):
    """A well-formed account that may not sign in until an administrator fixes it; the message names the fix."""


SitesByStudy = tuple[tuple[str, tuple[str, ...]], ...]


def _sites_by_study(sites) -> SitesByStudy:
    """``{study: site ids}`` (or its pairs) as sorted pairs: hashable, and equal however it was written."""
    pairs = sites.items() if isinstance(sites, Mapping) else sites
    out = []
    for pair in pairs:
        if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str)
                and not isinstance(pair[1], str)):
            # a plain list of site ids: SITEID is unique only within a study, so it must say which
            raise AuthError(f"sites are given per study ({{study: [site, ...]}}), not {sites!r}")
        out.append((pair[0], tuple(pair[1])))
    return tuple(sorted(out))


@dataclass(frozen=True)
class User:
    """A signed-in person. ``sites``: an investigator's site ids per study (``{study: (site, ...)}``, kept as
    sorted pairs); None for every other role."""
    username: str
    role: str
    sites: SitesByStudy | None = None
    display_name: str = ""
    email: str | None = None
    demo: bool = False  # the built-in demo user of the sample database

    def __post_init__(self):
        if self.role not in ROLES:
            raise AuthError(f"unknown role {self.role!r}; roles are {', '.join(ROLES)}")
        if self.sites is not None:
            object.__setattr__(self, "sites", _sites_by_study(self.sites))
        if self.role == "investigator" and not any(ids for _, ids in self.sites or ()):
            raise AuthError(f"investigator {self.username!r} needs at least one site of a study")

    def sites_of(self, studyid: str) -> tuple[str, ...]:
        """The investigator's sites of ``studyid``: () for a study they have no site in."""
        return dict(self.sites or ()).get(studyid, ())

    @property
    def label(self) -> str:
        """'Display Name (Safety committee)' for page headers and audit views."""
        name = self.display_name or self.username
        return f"{name} ({ROLE_LABELS[self.role]})"


DEMO_USER = User("demo", "committee", None, "Demo committee member", demo=True)
AUTH_OFF_USER = User("local", "committee", None, "Local user (sign-in off)")


# -- permissions ----------------------------------------------------------------------------------
# The roles that see subject-level data (an administrator manages accounts and reads the audit log, and sees none)
PATIENT_DATA_ROLES: tuple[str, ...] = ("committee", "investigator", "data_manager")


def can_view_patient_data(user: User) -> bool:
    """Subject-level pages and listings (within the user's scope)."""
    return user.role in PATIENT_DATA_ROLES


def can_view_study_aggregates(user: User) -> bool:
    """Study-wide tables (stopping rules, boundaries, quarantine): only all-site roles."""
    return can_view_patient_data(user) and user.sites is None


def can_adjudicate(user: User) -> bool:
    return user.role == "committee"


def can_sign_off(user: User) -> bool:
    return user.role == "committee"


def can_export(user: User) -> bool:
    """Committee listings/tables and data extracts leave the app: committee and data managers only."""
    return user.role in ("committee", "data_manager")


def can_view_data_quality(user: User) -> bool:
    """Load log, quarantine and grade discrepancies (study-wide bookkeeping)."""
    return user.role in ("committee", "data_manager")


def can_view_audit(user: User) -> bool:
    return user.role in ("committee", "admin")


def can_manage_users(user: User) -> bool:
    return user.role == "admin"


def scope_for(user: User, studyid: str, data_cut: dt.date, previous_cut: dt.date | None = None) -> Scope:
    """The read scope of ``user`` in ``studyid``: investigators their sites of that study (none in a study they
    have no site in: SITEID is unique only within a study), admin no site at all, others every site."""
    if user.role == "investigator":
        sites: tuple[str, ...] | None = user.sites_of(studyid)
    elif user.role == "admin":
        sites = ()  # an empty scope: every per-subject table is empty, study-level tables hidden
    else:
        sites = None
    return Scope(studyid, data_cut, sites, previous_cut)


def studies_for(user: User, studyids: Iterable[str]) -> list[str]:
    """The studies of ``studyids`` the user may choose: an investigator's those with a site of theirs, every
    other role's all of them (admin's scope is empty in each)."""
    if user.role != "investigator":
        return list(studyids)
    return [s for s in studyids if user.sites_of(s)]


# -- sessions -------------------------------------------------------------------------------------
def session_expired(signed_in_at: dt.datetime, last_activity: dt.datetime, now: dt.datetime,
                    idle_minutes: float = DEFAULT_SESSION_MINUTES,
                    max_hours: float = DEFAULT_SESSION_MAX_HOURS) -> bool:
    """True when the session has been idle longer than ``idle_minutes`` or open longer than ``max_hours``."""
    if now - last_activity > dt.timedelta(minutes=idle_minutes):
        return True
    return now - signed_in_at > dt.timedelta(hours=max_hours)


@dataclass
class SessionRecord:
    """One signed-in session as the server keeps it (the browser holds only the token)."""
    username: str
    method: str
    signed_in_at: dt.datetime
    last_activity: dt.datetime
    client: str = ""


class SessionRegistry:
    """Server-side sessions behind the session token, shared by every tab and reload of one browser.

    A token is 256 random bits (``secrets.token_urlsafe``); the registry keeps only its SHA-256, so a leaked
    registry does not leak tokens. :meth:`resume` refuses a token that is unknown, revoked (sign-out, account
    change), past the idle or absolute timeout, or presented by another client (IP address and browser, when
    known). Kept in memory: restarting the app signs everyone out."""

    def __init__(self):
        self._lock = threading.Lock()
        self._sessions: dict[str, SessionRecord] = {}

    @staticmethod
    def _key(token: str) -> str:
        return hashlib.sha256(str(token).encode("utf-8")).hexdigest()

    def create(self, username: str, method: str, now: dt.datetime, client: str = "") -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[self._key(token)] = SessionRecord(username, method, now, now, client)
        return token

    def resume(self, token: str | None, now: dt.datetime, idle_minutes: float = DEFAULT_SESSION_MINUTES,
               max_hours: float = DEFAULT_SESSION_MAX_HOURS, client: str = "") -> tuple[str, SessionRecord | None]:
        """('ok', record) and the idle clock restarted; ('expired', record) once, the session then removed;
        ('unknown', None) for no, a revoked or a foreign token."""
        if not token:
            return "unknown", None
        key = self._key(token)
        with self._lock:
            rec = self._sessions.get(key)
            if rec is None or not hmac.compare_digest(rec.client, client):
                return "unknown", None
            if session_expired(rec.signed_in_at, rec.last_activity, now, idle_minutes, max_hours):
                del self._sessions[key]
                return "expired", rec
            rec.last_activity = now
            return "ok", rec

    def record(self, token: str | None) -> SessionRecord | None:
        """The live record behind ``token`` (None when unknown), without touching its idle clock."""
        with self._lock:
            return self._sessions.get(self._key(token)) if token else None

    def revoke(self, token: str | None) -> SessionRecord | None:
        """End one session (sign-out); returns it, or None when there was none."""
        if not token:
            return None
        with self._lock:
            return self._sessions.pop(self._key(token), None)

    def revoke_user(self, username: str) -> int:
        """End every session of ``username`` (account removed, disabled or changed); how many were ended."""
        with self._lock:
            keys = [k for k, r in self._sessions.items() if r.username == username]
            for k in keys:
                del self._sessions[k]
        return len(keys)

    def __len__(self) -> int:
        return len(self._sessions)


def sign_in_locked_until(review_store, username: str, now: dt.datetime,
                         attempts: int = DEFAULT_LOCKOUT_ATTEMPTS,
                         minutes: float = DEFAULT_LOCKOUT_MINUTES) -> dt.datetime | None:
    """When ``username`` may try a password again, or None when it may now.

    A username is locked once it has ``attempts`` failed sign-ins within ``minutes`` and no successful one
    (nor an administrator's unlock, audited as ``sign_in_unlocked``) since; the lock lifts ``minutes`` after
    the first of those failures. The count comes from the audit log, so it holds across browser sessions and
    app restarts, and it applies to unknown usernames too (a lock says nothing about whether an account
    exists). ``attempts`` 0 turns the lock off."""
    if attempts <= 0:
        return None
    name, since = username[:64], now - dt.timedelta(minutes=minutes)
    entries = review_store.audit_entries(username=name, since=since) + [
        e for e in review_store.audit_entries(action="sign_in_unlocked", since=since)
        if json.loads(e["detail"] or "{}").get("account") == name]
    failures: list[dt.datetime] = []
    for entry in sorted(entries, key=lambda e: e["seq"]):
        if entry["action"] in ("sign_in_success", "sign_in_unlocked"):
            failures = []
        elif entry["action"] == "sign_in_failure":
            failures.append(dt.datetime.fromisoformat(entry["at"]))
    if len(failures) < attempts:
        return None
    until = failures[-attempts] + dt.timedelta(minutes=minutes)
    return until if until > now else None


@dataclass(frozen=True)
class AccessPolicy:
    """How the app signs people in.

    ``mode``: 'required' (password sign-in, the default), 'oidc' (Streamlit st.login with roles from
    users.yaml by e-mail) or 'off' (no sign-in; only when the operator sets CELLTOX_AUTH=off).
    ``demo``: the database is the embedded sample database and the operator did not ask for sign-in:
    the app runs as :data:`DEMO_USER`, labelled DEMO on every page.
    """
    mode: str = "required"
    users_path: Path | None = None
    session_minutes: float = DEFAULT_SESSION_MINUTES
    session_max_hours: float = DEFAULT_SESSION_MAX_HOURS
    demo: bool = False
    oidc_provider: str | None = None
    lockout_attempts: int = DEFAULT_LOCKOUT_ATTEMPTS
    lockout_minutes: float = DEFAULT_LOCKOUT_MINUTES

    def __post_init__(self):
        if self.mode not in AUTH_MODES:
            raise AuthError(f"CELLTOX_AUTH must be one of {', '.join(AUTH_MODES)}, not {self.mode!r}")
        if self.session_minutes <= 0 or self.session_max_hours <= 0:
            raise AuthError("session timeouts must be positive")
        if self.lockout_attempts < 0 or self.lockout_attempts != int(self.lockout_attempts) or self.lockout_minutes <= 0:
            raise AuthError("CELLTOX_LOCKOUT_ATTEMPTS must be a whole number >= 0 and CELLTOX_LOCKOUT_MINUTES positive")

    @classmethod
    def from_env(cls, db_path: str | Path | None, is_sample_db: bool = False,
                 env: Mapping[str, str] | None = None) -> "AccessPolicy":
        """Read CELLTOX_AUTH, CELLTOX_USERS, CELLTOX_SESSION_MINUTES, CELLTOX_SESSION_MAX_HOURS,
        CELLTOX_OIDC_PROVIDER, CELLTOX_LOCKOUT_ATTEMPTS, CELLTOX_LOCKOUT_MINUTES. Anything unreadable raises :class:`AuthError` (the app refuses to start
        rather than fall back to no sign-in)."""
        env = os.environ if env is None else env
        raw_mode = (env.get("CELLTOX_AUTH") or "").strip().lower()
        mode = raw_mode or "required"
        # The sample database runs as a labelled demo unless the operator explicitly asked for sign-in.
        demo = bool(is_sample_db) and raw_mode in ("", "demo")
        if mode == "demo":
            if not is_sample_db:
                raise AuthError("CELLTOX_AUTH=demo is only allowed with the embedded sample database")
            mode = "required"
        users_path = users_file(None, db_path, env)

        def _num(name: str, default: float) -> float:
            text = env.get(name)
            if text is None or not str(text).strip():
                return default
            try:
                return float(text)
            except ValueError:
                raise AuthError(f"{name} must be a number, not {text!r}") from None

        return cls(mode=mode, users_path=users_path,
                   session_minutes=_num("CELLTOX_SESSION_MINUTES", DEFAULT_SESSION_MINUTES),
                   session_max_hours=_num("CELLTOX_SESSION_MAX_HOURS", DEFAULT_SESSION_MAX_HOURS),
                   demo=demo, oidc_provider=(env.get("CELLTOX_OIDC_PROVIDER") or None),
                   lockout_attempts=_num("CELLTOX_LOCKOUT_ATTEMPTS", DEFAULT_LOCKOUT_ATTEMPTS),
                   lockout_minutes=_num("CELLTOX_LOCKOUT_MINUTES", DEFAULT_LOCKOUT_MINUTES))


# -- the account file -----------------------------------------------------------------------------
def users_file(explicit: str | Path | None, db_path: str | Path | None,
               env: Mapping[str, str] | None = None) -> Path | None:
    """Where the account file is: ``explicit`` (a command's --users), else $CELLTOX_USERS, else users.yaml beside
    the study database; None when none of the three is given. The app and every command resolve it here, so a
    path that works for one (``~`` included) works for all."""
    env = os.environ if env is None else env
    chosen = explicit or env.get("CELLTOX_USERS")
    if chosen:
        return Path(chosen).expanduser()
    if db_path is not None:
        return Path(db_path).expanduser().resolve().parent / "users.yaml"
    return None


def _check_username(username: str) -> str:
    if not isinstance(username, str) or not _USERNAME.match(username):
        raise AuthError("a username is 1-64 characters: letters, digits, '.', '_', '-', '@' "
                        "(starting with a letter or digit)")
    return username


def _check_study(study) -> str:
    study = str(study or "").strip()
    if not _STUDY.match(study):
        raise AuthError(f"invalid study id {study!r}")
    return study


def _site_list(sites) -> tuple[str, ...]:
    """Site ids from '01,02' (the command line) or a list, each checked, each once; may be empty."""
    if isinstance(sites, str):
        sites = [s for s in re.split(r"[,\s]+", sites) if s]
    out = []
    for s in sites or ():
        s = str(s).strip()
        if not _SITE.match(s):
            raise AuthError(f"invalid site id {s!r}")
        out.append(s)
    return tuple(dict.fromkeys(out))


def _check_sites(role: str, sites, study: str | None = None) -> dict[str, tuple[str, ...]] | None:
    """An investigator's sites per study: ``sites`` as ``{study: ids}``, or ids ('01,02' or a list) of ``study``."""
    if role != "investigator":
        if sites not in (None, "", (), [], {}) or study:
            raise AuthError(f"role {role!r} covers all sites; sites are only for investigators")
        return None
    if isinstance(sites, Mapping):
        if study:
            raise AuthError("give the study either with the sites ({study: sites}) or as study, not both")
        given = list(sites.items())
    elif not study:
        # SITEID is unique only within a study: site 01 of one study is another centre than site 01 of the next
        raise AuthError("an investigator's sites belong to a study: name it (--study STUDY --sites 01,02)")
    else:
        given = [(study, sites)]
    out = {}
    for st_, ids in given:
        ids = _site_list(ids)
        if ids:
            out[_check_study(st_)] = ids
    if not out:
        raise AuthError("an investigator needs at least one site (--study STUDY --sites 01,02)")
    return out


def _check_password(password: str) -> bytes:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise AuthError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    raw = password.encode("utf-8")
    if len(raw) > _BCRYPT_MAX_BYTES:
        raise AuthError(f"a password may be at most {_BCRYPT_MAX_BYTES} bytes (bcrypt's limit)")
    return raw


_ACCOUNT_KEYS = ("role", "sites", "display_name", "email", "password_hash", "disabled")


def account_problem(username, rec) -> str | None:
    """What is wrong with one hand-edited account record (None when it is valid).

    Strict on purpose: a misstated record must never widen access. ``sites`` maps each study to a list of
    quoted site ids, only for investigators (every other role covers all sites, or none for admin). A list of
    site ids without their study (an account file of an earlier celltox) is well-formed here: that one account is
    refused by :func:`sites_without_study`, the others still sign in."""
    if not isinstance(username, str) or not _USERNAME.match(username):
        return "not a valid username (letters, digits, '.', '_', '-', '@')"
    if not isinstance(rec, dict):
        return "expected a mapping of role, sites, display_name, email, password_hash, disabled"
    unknown = [k for k in rec if k not in _ACCOUNT_KEYS]
    if unknown:
        return f"unknown field {unknown[0]!r} (fields: {', '.join(_ACCOUNT_KEYS)})"
    role = rec.get("role")
    if role not in ROLES:
        return f"role {role!r} is not one of {', '.join(ROLES)}"
    sites = rec.get("sites")
    if role != "investigator":
        if sites not in (None, []):
            return (f"role {role} covers {'no' if role == 'admin' else 'all'} sites, but sites: {sites!r} is given; "
                    f"remove sites (only investigators are limited to sites)")
    else:
        example = 'e.g. sites: {ITNK-B-01: ["01"]}'
        if isinstance(sites, list) and sites:
            lists = [sites]  # sites without their study: refused by sites_without_study
        elif isinstance(sites, dict) and sites:
            lists = []
            for study, ids in sites.items():
                if not isinstance(study, str) or not _STUDY.match(study):
                    return f"study {study!r} is not a study id: quote it, {example}"
                if not isinstance(ids, list) or not ids:
                    return f"the sites of study {study} must be a list of quoted site ids, {example}, not {ids!r}"
                lists.append(ids)
        else:
            return f"an investigator needs sites per study as lists of quoted site ids, {example}, not {sites!r}"
        for site in (site for ids in lists for site in ids):
            if not isinstance(site, str):
                return f"site {site!r} is not text: quote site ids, {example}"
            if not _SITE.match(site):
                return f"invalid site id {site!r}"
    for key in ("display_name", "email", "password_hash"):
        if rec.get(key) is not None and not isinstance(rec[key], str):
            return f"{key} must be text"
    if rec.get("disabled") is not None and not isinstance(rec["disabled"], bool):
        return "disabled must be true or false"
    return None


def sites_without_study(username: str, rec, path: Path) -> str | None:
    """Why an investigator account of an earlier account file may not sign in: its sites name no study. SITEID is
    unique only within a study, so which study's site 01 it meant is not guessed; one line naming the fix."""
    if not (isinstance(rec, dict) and rec.get("role") == "investigator" and isinstance(rec.get("sites"), list)):
        return None
    ids = ",".join(str(s) for s in rec["sites"])
    return (f"account {username!r} lists sites {ids} without their study (an account file of an earlier celltox), "
            f"so it may not sign in or act until an administrator names the study: "
            f"python -m safety users set-sites {username} --study STUDY --sites {ids} --users {path}")


def writable_by_others(path: Path) -> str | None:
    """What is wrong when the account file can be written by others than its owner (its group, every user:
    mode & 0o022), naming the file and the fix; None when only its owner can write it. Others may read it."""
    try:
        mode = Path(path).stat().st_mode
    except OSError:
        return None
    who = [w for bit, w in ((0o002, "every user of this machine"), (0o020, "its group")) if mode & bit]
    if not who:
        return None
    return (f"{path} can be written by {' and '.join(who)}: anyone who can write it can give themselves any "
            f"role. Run: chmod 600 {path}")


def file_permission_warnings(path: Path) -> list[str]:
    """Warnings when the account file can be written by others than its owner (the app and ``users`` warn; a
    command acting as an account refuses, :func:`safety.commands.accounts.signed_in`)."""
    problem = writable_by_others(path)
    return [problem] if problem else []


class UserStore:
    """The account file. Reads it afresh on every call, so edits by the CLI apply to the running app."""

    def __init__(self, path: str | Path, rounds: int | None = None):
        self.path = Path(path)
        self.rounds = int(rounds or os.environ.get("CELLTOX_BCRYPT_ROUNDS") or DEFAULT_BCRYPT_ROUNDS)
        self._dummy_hash: bytes | None = None

    # reading
    def _read(self, strict: bool = True) -> dict:
        """The accounts. ``strict`` (every read that signs someone in) refuses the whole file when one account
        is misstated, with a one-line error naming it; the CLI's read-modify-write reads leniently, so an
        administrator can still remove or fix a bad account."""
        if not self.path.exists():
            return {}
        try:
            with open(self.path, encoding="utf-8") as fh:
                data = load_yaml(fh) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise AuthError(f"{self.path}: cannot be read as YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(data, dict) or not isinstance(data.get("users", {}) or {}, dict):
            raise AuthError(f"{self.path}: expected a mapping 'users: {{name: {{...}}}}'")
        users = dict(data.get("users") or {})
        if strict:
            for name, rec in users.items():
                problem = account_problem(name, rec)
                if problem:
                    raise AuthError(f"{self.path}: account {name!r}: {problem}")
        return users

    def check(self) -> list[str]:
        """Validate the file (raises AuthError naming the first misstated account); returns warnings about
        its permissions (group- or world-writable: someone else could give themselves any role)."""
        self._read()
        return file_permission_warnings(self.path)

    def _to_user(self, username: str, rec: dict) -> User:
        problem = account_problem(username, rec)
        if problem:
            raise AuthError(f"account {username!r}: {problem}")
        if refusal := sites_without_study(username, rec, self.path):
            raise AccountRefused(refusal)
        sites = rec.get("sites")
        return User(username=username, role=rec.get("role"), sites=sites or None,
                    display_name=rec.get("display_name") or "", email=rec.get("email") or None)

    def get(self, username: str) -> User | None:
        """The enabled account ``username`` as a User, or None (unknown or disabled)."""
        rec = self._read().get(username)
        if not isinstance(rec, dict) or rec.get("disabled"):
            return None
        return self._to_user(username, rec)

    def list(self) -> list[dict]:
        """Every account without its hash: username, role, sites ({study: [site, ...]}, or the bare list of an
        account that names no study), display_name, email, disabled, problem (why it may not sign in, or None)."""
        out = []
        for name, rec in sorted(self._read().items()):
            sites = rec.get("sites")
            out.append({"username": name, "role": rec.get("role"),
                        "sites": ({k: list(v) for k, v in sites.items()} if isinstance(sites, dict)
                                  else list(sites or []) or None),
                        "display_name": rec.get("display_name") or "", "email": rec.get("email") or None,
                        "disabled": bool(rec.get("disabled")),
                        "problem": sites_without_study(name, rec, self.path)})
        return out

    def find_by_email(self, email: str) -> User | None:
        """The enabled account whose e-mail matches (case-insensitive), for OIDC; None if none or ambiguous."""
        if not email:
            return None
        wanted = email.strip().lower()
        hits = [(n, r) for n, r in self._read().items()
                if isinstance(r, dict) and (r.get("email") or "").strip().lower() == wanted]
        if len(hits) != 1 or hits[0][1].get("disabled"):
            return None
        return self._to_user(*hits[0])

    # writing
    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict]:
        """Read-modify-write under an exclusive lock; the file is replaced atomically on success."""
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            users = self._read(strict=False)
            yield users
            self._write(users)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _write(self, users: dict) -> None:
        text = ("# celltox accounts: managed by `python -m safety users`. bcrypt hashes only.\n"
                + yaml.safe_dump({"users": users}, sort_keys=True, allow_unicode=True))
        fd, tmp = tempfile.mkstemp(prefix=".users-", suffix=".yaml", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        os.chmod(self.path, 0o600)

    def _hash(self, password: str) -> str:
        return bcrypt.hashpw(_check_password(password), bcrypt.gensalt(self.rounds)).decode("ascii")

    def add(self, username: str, role: str, password: str, sites=None, display_name: str = "",
            email: str | None = None, study: str | None = None) -> User:
        """Create an account; raises AuthError when it exists or an input is invalid. An investigator's
        ``sites``: ``{study: ids}``, or ids ('01,02' or a list) of ``study``."""
        _check_username(username)
        if role not in ROLES:
            raise AuthError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
        by_study = _check_sites(role, sites, study)
        password_hash = self._hash(password)
        with self._locked() as users:
            if username in users:
                raise AuthError(f"account {username!r} exists")
            users[username] = {"role": role,
                               "sites": {k: list(v) for k, v in by_study.items()} if by_study else None,
                               "display_name": (display_name or "").strip(),
                               "email": (email or "").strip() or None,
                               "password_hash": password_hash, "disabled": False}
        return User(username, role, by_study, (display_name or "").strip(), (email or "").strip() or None)

    def set_sites(self, username: str, study: str, sites) -> dict[str, tuple[str, ...]]:
        """Give investigator ``username`` the sites ``sites`` ('01,02', or '' for none) of ``study``, replacing
        that study's; returns every study's sites. An account whose sites name no study (an earlier account file)
        gets exactly these: its old list is dropped, never read as sites of ``study``."""
        study, ids = _check_study(study), _site_list(sites)
        with self._locked() as users:
            rec = users.get(username)
            if not isinstance(rec, dict):
                raise AuthError(f"no account {username!r}")
            if rec.get("role") != "investigator":
                raise AuthError(f"account {username!r} is a {rec.get('role')} account; sites are only for investigators")
            old = rec.get("sites") if isinstance(rec.get("sites"), dict) else {}
            new = {k: list(v) for k, v in old.items() if k != study}
            if ids:
                new[study] = list(ids)
            if not new:
                raise AuthError(f"an investigator needs at least one site; to end {username}'s access, "
                                f"disable or remove the account")
            rec["sites"] = new
        return {k: tuple(v) for k, v in new.items()}

    def remove(self, username: str) -> None:
        with self._locked() as users:
            if username not in users:
                raise AuthError(f"no account {username!r}")
            del users[username]

    def set_password(self, username: str, password: str) -> None:
        password_hash = self._hash(password)
        with self._locked() as users:
            if username not in users:
                raise AuthError(f"no account {username!r}")
            users[username]["password_hash"] = password_hash

    def set_disabled(self, username: str, disabled: bool = True) -> None:
        with self._locked() as users:
            if username not in users:
                raise AuthError(f"no account {username!r}")
            users[username]["disabled"] = bool(disabled)

    def authenticate(self, username: str, password: str) -> User | None:
        """The User when the password matches an enabled account, else None.

        bcrypt runs for unknown and disabled accounts too, so the answer takes about the same time
        whether or not the username exists."""
        pw = password.encode("utf-8") if isinstance(password, str) else b""
        try:
            rec = self._read().get(username) if isinstance(username, str) else None
        except AuthError:
            rec = None
        stored = rec.get("password_hash") if isinstance(rec, dict) else None
        if not stored:
            stored = self._dummy()
        try:
            ok = bcrypt.checkpw(pw[:_BCRYPT_MAX_BYTES], stored.encode("ascii") if isinstance(stored, str) else stored)
        except ValueError:
            ok = False
        if len(pw) > _BCRYPT_MAX_BYTES or not pw:
            ok = False  # never accept a truncated match or an empty password
        if not ok or not isinstance(rec, dict) or rec.get("disabled"):
            return None
        try:
            return self._to_user(username, rec)
        except AccountRefused:
            raise  # the right password: say what the administrator must fix
        except AuthError:
            return None  # a hand-edited record with a bad role or no sites signs nobody in

    def _dummy(self) -> bytes:
        if self._dummy_hash is None:
            self._dummy_hash = bcrypt.hashpw(b"celltox-no-such-user", bcrypt.gensalt(self.rounds))
        return self._dummy_hash


def oidc_user(store: UserStore, claims: Mapping) -> User | None:
    """Map an OIDC identity (``st.user``: needs a verified-looking ``email``) to the account with that e-mail.

    No account, a disabled account, or an e-mail the provider marks unverified gives None: an identity
    provider proves who someone is, users.yaml says what they may see."""
    email = (claims.get("email") or "").strip() if claims else ""
    if not email or claims.get("email_verified") is False:
        return None
    user = store.find_by_email(email)
    if user is None:
        return None
    return replace(user, email=email)

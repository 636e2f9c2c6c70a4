"""The review store: the one place celltox writes decisions people make.

DLT adjudications, data-cut sign-offs and the audit log live in their own SQLite file beside the study
database (``<db>.review.sqlite`` unless told otherwise), never in a table that ingest rewrites, so they
survive reloads and new data cuts. Every table is append-only (triggers refuse UPDATE and DELETE); a
correction is a new row. Audit entries carry a SHA-256 chained to the previous entry (an HMAC when
``CELLTOX_AUDIT_KEY`` is set), and the audit entry of an adjudication or sign-off records every stored
field of its row, so an edit made behind the triggers' back is found by :func:`verify_audit_chain`; a
rewrite of the whole file is found against a head hash recorded elsewhere (``expect_heads``).
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import io
import json
import os
import sqlite3
import threading
from pathlib import Path

from safety.core.files import spreadsheet_text
from safety.core.vocabulary import DECISIONS  # noqa: E402 - the one list of decision values

GENESIS = "0" * 64
# Actions written by celltox (others may be added; an action is free text but never empty).
AUDIT_ACTIONS = ("sign_in_success", "sign_in_failure", "sign_in_locked", "sign_in_unlocked", "sign_out", "session_expired", "session_revoked",
                 "view_subject", "view_subject_refused", "export", "data_load", "adjudication", "signoff", "user_admin", "audit_seal")
# The environment variable holding the audit key: entries are then chained with HMAC-SHA256, which
# someone holding only the file cannot recompute. Unset: plain SHA-256.
AUDIT_KEY_ENV = "CELLTOX_AUDIT_KEY"
_HMAC_PREFIX = "hmac:"
_CHAIN_V2 = "celltox-audit-2"
# Every stored field of a decision row, as its audit entry records it (free text as a SHA-256).
# studyid is the entry's own studyid, the reviewer its username.
ADJUDICATION_FIELDS = ("event_key", "usubjid", "rule_id", "decision", "decided_at", "data_cut", "event_fingerprint")
SIGNOFF_FIELDS = ("data_cut", "signed_at")
_TEXT_FIELDS = {"adjudications": "rationale", "signoffs": "comment"}
AUDIT_COLUMNS = ("seq", "at", "username", "action", "studyid", "detail", "prev_hash", "entry_hash")

_DDL = """
CREATE TABLE IF NOT EXISTS adjudications (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  studyid TEXT NOT NULL,
  event_key TEXT NOT NULL,
  usubjid TEXT NOT NULL,
  rule_id TEXT,
  decision TEXT NOT NULL CHECK (decision IN ('confirmed', 'rejected', 'added', 'withdrawn')),
  rationale TEXT NOT NULL,
  reviewer TEXT NOT NULL,
  decided_at TEXT NOT NULL,
  data_cut TEXT NOT NULL,
  event_fingerprint TEXT
);
CREATE TABLE IF NOT EXISTS signoffs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  studyid TEXT NOT NULL,
  data_cut TEXT NOT NULL,
  reviewer TEXT NOT NULL,
  comment TEXT NOT NULL,
  signed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_log (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  at TEXT NOT NULL,
  username TEXT NOT NULL,
  action TEXT NOT NULL,
  studyid TEXT,
  detail TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  entry_hash TEXT NOT NULL
);
"""


def _append_only_triggers(table: str) -> str:
    return f"""
CREATE TRIGGER IF NOT EXISTS {table}_no_update BEFORE UPDATE ON {table}
BEGIN SELECT RAISE(ABORT, '{table} is append-only: add a new row instead'); END;
CREATE TRIGGER IF NOT EXISTS {table}_no_delete BEFORE DELETE ON {table}
BEGIN SELECT RAISE(ABORT, '{table} is append-only: nothing is deleted'); END;
"""


def default_review_path(db_path: str | Path) -> Path:
    """``study.duckdb`` -> ``study.review.sqlite`` in the same folder (the folder of the file a link names: a
    database reached through a link has one review store, wherever it is opened from)."""
    p = Path(db_path)
    p = p.resolve() if p.is_symlink() else p
    return p.with_name(p.stem + ".review.sqlite")


def not_a_review_store(path: str | Path) -> str | None:
    """Why the existing file ``path`` is no celltox review store ('file is not a database'), or None: a SQLite
    file with none of the store's tables is another program's, not a store whose log was cut (an empty file is a
    new store)."""
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            con.close()
    except sqlite3.Error as exc:
        return str(exc)
    if tables and not tables & {"audit_log", "adjudications", "signoffs"}:
        return "a SQLite database without the store's tables"
    return None


def now_utc() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


def _entry_hash(prev_hash: str, at: str, username: str, action: str, studyid: str | None, detail: str) -> str:
    """The first chain format (entries written before the sequence number was hashed); verified, never written."""
    payload = json.dumps([prev_hash, at, username, action, studyid, detail], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def entry_hash(seq: int, prev_hash: str, at: str, username: str, action: str, studyid: str | None, detail: str,
               key: bytes | None = None) -> str:
    """The hash of one audit entry: SHA-256 (or ``hmac:`` + HMAC-SHA256 with ``key``) over every stored field."""
    payload = json.dumps([_CHAIN_V2, int(seq), prev_hash, at, username, action, studyid, detail],
                         ensure_ascii=False).encode("utf-8")
    if key:
        return _HMAC_PREFIX + hmac.new(key, payload, hashlib.sha256).hexdigest()
    return hashlib.sha256(payload).hexdigest()


def audit_key_from_env(env=None) -> bytes | None:
    """The audit key from ``CELLTOX_AUDIT_KEY`` (None when unset); a key shorter than 16 characters is refused."""
    text = (os.environ if env is None else env).get(AUDIT_KEY_ENV) or ""
    if not text:
        return None
    if len(text) < 16:
        raise ValueError(f"{AUDIT_KEY_ENV} is too short: use at least 16 random characters (e.g. `openssl rand -hex 32`)")
    return text.encode("utf-8")


def text_sha256(text) -> str:
    return hashlib.sha256(("" if text is None else str(text)).encode("utf-8")).hexdigest()


def row_sha256(row: dict) -> str:
    """SHA-256 over every stored field of a decision row (for sealing rows written before full-field entries)."""
    return hashlib.sha256(json.dumps({k: (None if v is None else str(v)) for k, v in sorted(row.items())},
                                     ensure_ascii=False).encode("utf-8")).hexdigest()


class ReviewStore:
    """Append-only store of adjudications, sign-offs and the audit log (SQLite, safe across processes)."""

    def __init__(self, path: str | Path, key: bytes | None | bool = True):
        """``key``: the HMAC key of the audit chain; True (default) reads ``CELLTOX_AUDIT_KEY``, None = no key."""
        self.path = Path(path)
        self.key = audit_key_from_env() if key is True else (key or None)
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.executescript(_DDL)
            for t in ("adjudications", "signoffs", "audit_log"):
                con.executescript(_append_only_triggers(t))

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        con.row_factory = sqlite3.Row
        return con

    # -- reads -------------------------------------------------------------------------------
    def query(self, sql: str, params: dict | tuple = ()) -> list[dict]:
        """Rows of a read query as dicts (parameters bound, never formatted)."""
        with self._connect() as con:
            return [dict(r) for r in con.execute(sql, params).fetchall()]

    # -- writes ------------------------------------------------------------------------------
    def _insert(self, con: sqlite3.Connection, table: str, row: dict) -> int:
        cols = ", ".join(row)
        marks = ", ".join(f":{k}" for k in row)
        cur = con.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks})", row)
        return cur.lastrowid

    def _audit_in(self, con: sqlite3.Connection, username: str, action: str, studyid: str | None,
                  detail: dict | None) -> dict:
        """Append a chained entry inside the caller's open write transaction."""
        if not isinstance(username, str) or not username.strip():
            raise ValueError("an audit entry needs a username")
        if not isinstance(action, str) or not action.strip():
            raise ValueError("an audit entry needs an action")
        detail_text = json.dumps(detail or {}, sort_keys=True, ensure_ascii=False, default=str)
        last = con.execute("SELECT seq, entry_hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        counter = con.execute("SELECT seq FROM sqlite_sequence WHERE name = 'audit_log'").fetchone()
        prev = last[1] if last else GENESIS
        # the sequence number is hashed too, so it is fixed before the insert (inside the write lock)
        seq = max(last[0] if last else 0, counter[0] if counter else 0) + 1
        at = now_utc()
        row = {"seq": seq, "at": at, "username": username, "action": action, "studyid": studyid,
               "detail": detail_text, "prev_hash": prev,
               "entry_hash": entry_hash(seq, prev, at, username, action, studyid, detail_text, self.key)}
        self._insert(con, "audit_log", row)
        return row

    def _write(self, fn):
        """Run ``fn(con)`` in one IMMEDIATE transaction (serialised across threads and processes)."""
        with self._lock, self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                out = fn(con)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return out

    def append_audit(self, username: str, action: str, studyid: str | None = None, detail: dict | None = None) -> dict:
        """Add one chained audit entry and return it (seq, at, username, action, studyid, detail, hashes)."""
        return self._write(lambda con: self._audit_in(con, username, action, studyid, detail))

    def add_adjudication(self, *, studyid: str, event_key: str, usubjid: str, rule_id: str | None,
                         decision: str, rationale: str, reviewer: str, data_cut: str,
                         event_fingerprint: str | None) -> int:
        """Record one committee decision (a new row; earlier decisions stay in the history)."""
        if not rationale or not rationale.strip():
            raise ValueError("a decision needs a rationale")
        if decision not in DECISIONS:
            raise ValueError(f"decision must be one of {', '.join(DECISIONS)}")
        if not reviewer or not str(reviewer).strip():
            raise ValueError("a decision needs a reviewer")
        row = {"studyid": studyid, "event_key": event_key, "usubjid": usubjid, "rule_id": rule_id,
               "decision": decision, "rationale": rationale.strip(), "reviewer": reviewer,
               "decided_at": now_utc(), "data_cut": str(data_cut), "event_fingerprint": event_fingerprint}

        def write(con):
            new_id = self._insert(con, "adjudications", row)
            # same transaction: a decision never exists without its audit entry
            # every stored field of the row, so any later edit of it is found by verify_audit_chain
            self._audit_in(con, reviewer, "adjudication", studyid,
                           {**{k: row[k] for k in ADJUDICATION_FIELDS}, "adjudication_id": new_id,
                            "rationale_sha256": text_sha256(row["rationale"])})
            return new_id

        return self._write(write)

    def add_signoff(self, *, studyid: str, data_cut: str, reviewer: str, comment: str) -> int:
        """Mark a data cut as reviewed by the committee (a comment is required)."""
        if not comment or not str(comment).strip():
            raise ValueError("a sign-off needs a comment")
        if not reviewer or not str(reviewer).strip():
            raise ValueError("a sign-off needs a reviewer")
        row = {"studyid": studyid, "data_cut": str(data_cut), "reviewer": reviewer,
               "comment": str(comment).strip(), "signed_at": now_utc()}

        def write(con):
            new_id = self._insert(con, "signoffs", row)
            self._audit_in(con, reviewer, "signoff", studyid,
                           {**{k: row[k] for k in SIGNOFF_FIELDS}, "signoff_id": new_id,
                            "comment_sha256": text_sha256(row["comment"])})
            return new_id

        return self._write(write)

    def head(self) -> dict | None:
        """The newest audit entry's ``seq`` and ``entry_hash`` (None for an empty log): the hash to record."""
        rows = self.query("SELECT seq, entry_hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        return rows[0] if rows else None

    def seal(self, username: str) -> dict | None:
        """Append one ``audit_seal`` entry holding :func:`row_sha256` of every decision row whose audit entry
        predates full-field entries (stores written by earlier versions), and return it. With a key, the seal
        is the first keyed entry of a store that had none.

        The chain is verified first: the seal vouches for the rows as they are now."""
        ok, message = verify_audit_chain(self.path, key=self.key, _unkeyed_head_ok=True)
        if not ok:
            raise ValueError(f"the audit chain is broken, so it cannot be sealed: {message}")
        legacy = _legacy_rows(self.path)
        return self.append_audit(username, "audit_seal", None,
                                 {t: {str(i): row_sha256(r) for i, r in rows.items()} for t, rows in legacy.items()})

    def adjudication_history(self, studyid: str) -> list[dict]:
        return self.query("SELECT * FROM adjudications WHERE studyid = ? ORDER BY id", (studyid,))

    def latest_adjudications(self, studyid: str, as_of_cut: str | dt.date | None = None) -> list[dict]:
        """The decision in force per event key: the one made on the latest data cut, the newest row of that cut.
        With ``as_of_cut``, among the decisions made on that cut or an earlier one: a decision made on a later cut
        was not there to apply to it, and one recorded later on an earlier cut (a March packet issued again) is
        about that cut's data, so it does not override what a later cut's committee decided."""
        cut = "" if as_of_cut is None else " AND data_cut <= ?"
        return self.query(
            "SELECT a.* FROM adjudications a JOIN (SELECT id, row_number() OVER (PARTITION BY event_key "
            f"ORDER BY data_cut DESC, id DESC) AS rn FROM adjudications WHERE studyid = ?{cut}) m "
            "ON a.id = m.id AND m.rn = 1 ORDER BY a.id",
            (studyid,) if as_of_cut is None else (studyid, str(as_of_cut)),
        )

    def signoffs(self, studyid: str) -> list[dict]:
        return self.query("SELECT * FROM signoffs WHERE studyid = ? ORDER BY id", (studyid,))

    def last_signoff(self, studyid: str, before: str | dt.date | None = None) -> dict | None:
        """The sign-off of the latest signed-off cut (optionally only cuts before ``before``), or None."""
        sql = "SELECT * FROM signoffs WHERE studyid = :s"
        params: dict = {"s": studyid}
        if before is not None:
            sql += " AND data_cut < :b"
            params["b"] = str(before)
        rows = self.query(sql + " ORDER BY data_cut DESC, id DESC LIMIT 1", params)
        return rows[0] if rows else None

    def audit_entries(self, studyid: str | None = None, *, username: str | None = None,
                      action: str | None = None, since: str | dt.datetime | None = None,
                      until: str | dt.datetime | None = None, limit: int | None = None) -> list[dict]:
        """Audit entries, oldest first. ``studyid`` keeps that study's entries plus study-less ones
        (sign-ins); ``since``/``until`` compare the UTC timestamp ``at``; ``limit`` keeps the newest n."""
        where, params = [], {}
        if studyid is not None:
            where.append("(studyid = :studyid OR studyid IS NULL)")
            params["studyid"] = studyid
        if username:
            where.append("username = :username")
            params["username"] = username
        if action:
            where.append("action = :action")
            params["action"] = action
        if since is not None:
            where.append("at >= :since")
            params["since"] = since.isoformat() if isinstance(since, dt.datetime) else str(since)
        if until is not None:
            where.append("at <= :until")
            params["until"] = until.isoformat() if isinstance(until, dt.datetime) else str(until)
        sql = "SELECT * FROM audit_log" + (" WHERE " + " AND ".join(where) if where else "")
        if limit is not None:
            params["limit"] = int(limit)
            sql = f"SELECT * FROM ({sql} ORDER BY seq DESC LIMIT :limit)"
        return self.query(sql + " ORDER BY seq", params)


def audit_csv(entries: list[dict]) -> str:
    """Audit entries as CSV text (columns :data:`AUDIT_COLUMNS`), safe to open in a spreadsheet."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(AUDIT_COLUMNS)
    for e in entries:
        w.writerow([spreadsheet_text(e.get(c)) for c in AUDIT_COLUMNS])
    return buf.getvalue()


def _norm(v):
    return None if v is None else str(v)


def _load(path: Path):
    """Audit rows, the AUTOINCREMENT counter and every decision row (by table and id) of a store, read-only."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    try:
        rows = [dict(r) for r in con.execute(
            "SELECT seq, at, username, action, studyid, detail, prev_hash, entry_hash FROM audit_log ORDER BY seq")]
        counter = con.execute("SELECT seq FROM sqlite_sequence WHERE name = 'audit_log'").fetchone()
        tables = {t: {r["id"]: dict(r) for r in con.execute(f"SELECT * FROM {t} ORDER BY id")}
                  for t in ("adjudications", "signoffs")}
    finally:
        con.close()
    return rows, (counter[0] if counter else None), tables


_ACTION_OF = {"adjudications": ("adjudication", "adjudication_id"), "signoffs": ("signoff", "signoff_id")}


def _row_id(value) -> int | None:
    """A decision row id as an audit entry records it (an integer; digits written as text by an earlier
    celltox), or None when it is not one."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


def _decision_entries(rows: list[dict]) -> tuple[dict, dict, str | None]:
    """Audit entries per decision table and row id, sealed row digests (table -> id -> (digest, seq)), and the
    first problem found (None when there is none).

    A decision row has exactly one audit entry of its action, written with it, and is sealed at most once: a
    second entry for a row id (which would vouch for the row as edited after the first) is a problem, as is an
    id that is not one."""
    audited: dict[str, dict] = {"adjudications": {}, "signoffs": {}}
    sealed: dict[str, dict] = {"adjudications": {}, "signoffs": {}}
    for e in rows:
        try:
            d = json.loads(e["detail"])
        except ValueError:
            continue
        if not isinstance(d, dict):
            continue
        for table, (action, id_key) in _ACTION_OF.items():
            if e["action"] == action and d.get(id_key) is not None:
                rid = _row_id(d[id_key])
                if rid is None:
                    return audited, sealed, (f"audit entry {e['seq']}: {id_key} {d[id_key]!r} is not a row id "
                                             f"(written behind the store's back)")
                if rid in audited[table]:
                    return audited, sealed, (f"{table} row {rid} has two audit entries ({audited[table][rid]['seq']} "
                                             f"and {e['seq']}); a decision row has one, written with it (the later "
                                             f"one was added behind the store's back, as after an edit of the row)")
                audited[table][rid] = {"detail": d, "username": e["username"], "studyid": e["studyid"],
                                       "seq": e["seq"]}
            if e["action"] == "audit_seal" and isinstance(d.get(table), dict):
                for key, digest in d[table].items():
                    rid = _row_id(key)
                    if rid is None:
                        return audited, sealed, (f"audit entry {e['seq']}: {table} {key!r} is not a row id "
                                                 f"(written behind the store's back)")
                    if rid in sealed[table]:
                        return audited, sealed, (f"{table} row {rid} is sealed twice (audit entries "
                                                 f"{sealed[table][rid][1]} and {e['seq']}); a row is sealed once "
                                                 f"(the later seal was added behind the store's back)")
                    sealed[table][rid] = (digest, e["seq"])
    return audited, sealed, None


def _legacy_rows(path: str | Path) -> dict[str, dict]:
    """Decision rows whose audit entry predates full-field entries and that no seal covers yet."""
    rows, _, tables = _load(Path(path))
    audited, sealed, _ = _decision_entries(rows)  # called after a successful verify: no problem is left
    out: dict[str, dict] = {}
    for table, by_id in tables.items():
        text_key = _TEXT_FIELDS[table] + "_sha256"
        out[table] = {i: r for i, r in by_id.items()
                      if i in audited[table] and text_key not in audited[table][i]["detail"] and i not in sealed[table]}
    return out


def _check_row(table: str, row: dict, entry: dict, sealed: dict) -> tuple[str | None, bool]:
    """(problem or None, whether the row is covered field by field) for one decision row and its audit entry."""
    rid, d, seq = row["id"], entry["detail"], entry["seq"]
    fields = ADJUDICATION_FIELDS if table == "adjudications" else SIGNOFF_FIELDS
    recorded = {"studyid": entry["studyid"], "reviewer": entry["username"]}
    recorded.update({k: d[k] for k in fields if k in d})
    for k, v in recorded.items():
        if _norm(row.get(k)) != _norm(v):
            return (f"{table} row {rid}: {k} is {row.get(k)!r} but audit entry {seq} recorded {v!r} "
                    f"(edited after it was written)"), True
    text = _TEXT_FIELDS[table]
    if text + "_sha256" in d:
        if text_sha256(row.get(text)) != d[text + "_sha256"]:
            return (f"{table} row {rid}: the {text} differs from the one audit entry {seq} recorded "
                    f"(edited after it was written)"), True
        return None, True
    if rid in sealed:
        digest, seal_seq = sealed[rid]
        if row_sha256(row) != digest:
            return (f"{table} row {rid}: a field differs from the seal in audit entry {seal_seq} "
                    f"(edited after it was sealed)"), True
        return None, True
    return None, False


def verify_audit_chain(path: str | Path, expect_heads=(), key: bytes | None | bool = True,
                       _unkeyed_head_ok: bool = False) -> tuple[bool, str]:
    """Recompute the audit chain. Returns (ok, message naming the first broken entry).

    Checks each entry's hash (over seq, time, user, action, study, detail and the previous hash) and its link
    to the previous entry, that sequence numbers have no gap, that no entry after the last one was removed
    (SQLite's AUTOINCREMENT counter), that every adjudication and sign-off row matches, field by field, the
    audit entry written with it (each row has exactly one, and a row of an earlier celltox is sealed at most once),
    and that no audited row was removed. ``expect_heads``: hashes recorded
    earlier (committee minutes, an anchor file, an export's footer); each must still be an entry of the
    chain, which finds a log cut at its end or rewritten as a whole. ``key`` (default: ``CELLTOX_AUDIT_KEY``)
    checks HMAC-keyed entries; with a key, the newest entry must be keyed."""
    store_path = Path(path)
    if not store_path.exists():
        return False, f"no review store at {store_path}"
    if key is True:
        try:
            key = audit_key_from_env()
        except ValueError as exc:
            return False, str(exc)
    try:
        rows, counter, tables = _load(store_path)
    except sqlite3.DatabaseError as exc:
        return False, f"review store {store_path} cannot be read as an audit log: {exc}"
    prev = GENESIS
    expected_seq = 1
    first_format, keyed, unchecked_keyed, current_seen, keyed_seen = 0, 0, 0, False, False
    for e in rows:
        seq = e["seq"]
        if seq != expected_seq:
            return False, (f"audit entry {expected_seq}: missing (entries {expected_seq}-{seq - 1} were removed)"
                           if seq > expected_seq else f"audit entry {seq}: sequence number out of order")
        if e["prev_hash"] != prev:
            return False, f"audit entry {seq}: previous-hash link broken (an entry before it was removed or altered)"
        fields = (e["prev_hash"], e["at"], e["username"], e["action"], e["studyid"], e["detail"])
        stored = e["entry_hash"] or ""
        if stored.startswith(_HMAC_PREFIX):
            keyed_seen = current_seen = True
            if key is None:
                unchecked_keyed += 1
            elif entry_hash(seq, *fields, key=key) != stored:
                return False, (f"audit entry {seq}: content does not match its keyed hash (edited after it was "
                               f"written, or {AUDIT_KEY_ENV} is not the key it was written with)")
            else:
                keyed += 1
        elif keyed_seen:
            return False, (f"audit entry {seq}: written without the audit key after keyed entries "
                           f"(forged by someone without {AUDIT_KEY_ENV})")
        elif entry_hash(seq, *fields) == stored:
            current_seen = True
        elif not current_seen and _entry_hash(*fields) == stored:
            first_format += 1  # written by an earlier celltox, before the sequence number was hashed
        else:
            return False, f"audit entry {seq}: content does not match its hash (edited after it was written)"
        prev = stored
        expected_seq += 1
    last_seq = rows[-1]["seq"] if rows else 0
    if counter is not None and counter > last_seq:
        return False, (f"audit entry {last_seq + 1}: missing (entries {last_seq + 1}-{counter} were "
                       f"removed from the end of the log)")
    if key is not None and rows and not rows[-1]["entry_hash"].startswith(_HMAC_PREFIX) and not _unkeyed_head_ok:
        return False, (f"audit entry {last_seq}: the newest entry carries no audit key although {AUDIT_KEY_ENV} "
                       f"is set (forged, or no entry was written since the key was set: run "
                       f"`python -m safety audit seal` with the key once)")
    audited, sealed, problem = _decision_entries(rows)
    if problem:
        return False, problem
    uncovered = 0
    for table, by_id in tables.items():
        for rid, row in by_id.items():
            entry = audited[table].get(rid)
            if entry is None:
                return False, f"{table} row {rid} has no audit entry (written behind the store's back)"
            problem, covered = _check_row(table, row, entry, sealed[table])
            if problem:
                return False, problem
            uncovered += not covered
        for rid, entry in sorted(audited[table].items()):
            if rid not in by_id:
                return False, f"{table} row {rid} (audit entry {entry['seq']}) was removed"
    hashes = {e["entry_hash"]: e["seq"] for e in rows}
    for wanted in expect_heads:
        wanted = str(wanted).strip()
        if wanted and wanted not in hashes:
            return False, (f"the recorded head hash {wanted} is not in the audit log: the log was cut or "
                           f"rewritten after that hash was recorded")
    head = prev
    message = f"audit chain intact: {len(rows)} entries, head hash {head}"
    notes = []
    if expect_heads:
        notes.append("recorded head(s) found at entry " + ", ".join(str(hashes[str(h).strip()]) for h in expect_heads
                                                                    if str(h).strip()))
    if keyed:
        notes.append(f"{keyed} entries keyed and checked with {AUDIT_KEY_ENV}")
    if unchecked_keyed:
        notes.append(f"{unchecked_keyed} keyed entries not checked: set {AUDIT_KEY_ENV} to check them")
    if first_format:
        notes.append(f"entries 1-{first_format} use the first chain format (sequence number not hashed)")
    if uncovered:
        notes.append(f"NOTE: {uncovered} decision row(s) were written by an earlier celltox whose audit entries do "
                     f"not cover the rationale, comment or time: run `python -m safety audit seal` once to cover them")
    return True, message + ("; " + "; ".join(notes) if notes else "")

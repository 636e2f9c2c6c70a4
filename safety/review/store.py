"""The review store: the one place celltox writes decisions people make.

DLT adjudications, data-cut sign-offs and the audit log live in their own SQLite file beside the study
database (``<db>.review.sqlite`` unless told otherwise), never in a table that ingest rewrites, so they
survive reloads and new data cuts. Every table is append-only (triggers refuse UPDATE and DELETE); a
correction is a new row. Audit entries carry a SHA-256 chained to the previous entry, so an edit made
behind the triggers' back is found by :func:`verify_audit_chain`.
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import sqlite3
import threading
from pathlib import Path

from safety.core.vocabulary import DECISIONS  # noqa: E402 - the one list of decision values

GENESIS = "0" * 64
# Actions written by celltox (others may be added; an action is free text but never empty).
AUDIT_ACTIONS = ("sign_in_success", "sign_in_failure", "sign_in_locked", "sign_in_unlocked", "sign_out", "session_expired", "session_revoked",
                 "view_subject", "export", "data_load", "adjudication", "signoff", "user_admin")
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
    """``study.duckdb`` -> ``study.review.sqlite`` in the same folder."""
    p = Path(db_path)
    return p.with_name(p.stem + ".review.sqlite")


def now_utc() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


def _entry_hash(prev_hash: str, at: str, username: str, action: str, studyid: str | None, detail: str) -> str:
    payload = json.dumps([prev_hash, at, username, action, studyid, detail], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class ReviewStore:
    """Append-only store of adjudications, sign-offs and the audit log (SQLite, safe across processes)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
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
        last = con.execute("SELECT entry_hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        prev = last[0] if last else GENESIS
        at = now_utc()
        row = {"at": at, "username": username, "action": action, "studyid": studyid,
               "detail": detail_text, "prev_hash": prev,
               "entry_hash": _entry_hash(prev, at, username, action, studyid, detail_text)}
        row["seq"] = self._insert(con, "audit_log", row)
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
            self._audit_in(con, reviewer, "adjudication", studyid,
                           {"event_key": event_key, "usubjid": usubjid, "decision": decision,
                            "rule_id": rule_id, "data_cut": str(data_cut), "adjudication_id": new_id})
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
            self._audit_in(con, reviewer, "signoff", studyid, {"data_cut": str(data_cut), "signoff_id": new_id})
            return new_id

        return self._write(write)

    def adjudication_history(self, studyid: str) -> list[dict]:
        return self.query("SELECT * FROM adjudications WHERE studyid = ? ORDER BY id", (studyid,))

    def latest_adjudications(self, studyid: str) -> list[dict]:
        """The current decision per event key: the newest row wins."""
        return self.query(
            "SELECT a.* FROM adjudications a JOIN (SELECT event_key, max(id) AS id FROM adjudications "
            "WHERE studyid = ? GROUP BY event_key) m ON a.id = m.id ORDER BY a.id",
            (studyid,),
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


def _csv_cell(value) -> str:
    text = "" if value is None else str(value)
    # a cell starting with = + - @ is a formula to a spreadsheet; user names of failed sign-ins are
    # attacker-controlled, so such cells are quoted with a leading apostrophe
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def audit_csv(entries: list[dict]) -> str:
    """Audit entries as CSV text (columns :data:`AUDIT_COLUMNS`), safe to open in a spreadsheet."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(AUDIT_COLUMNS)
    for e in entries:
        w.writerow([_csv_cell(e.get(c)) for c in AUDIT_COLUMNS])
    return buf.getvalue()


def verify_audit_chain(path: str | Path) -> tuple[bool, str]:
    """Recompute the audit chain. Returns (ok, message naming the first broken entry).

    Checks each entry's hash and its link to the previous entry, that sequence numbers have no gap,
    that no entry after the last one was removed (SQLite's AUTOINCREMENT counter), and that every
    adjudication and sign-off row has its audit entry."""
    store_path = Path(path)
    if not store_path.exists():
        return False, f"no review store at {store_path}"
    con = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True)
    try:
        rows = con.execute(
            "SELECT seq, at, username, action, studyid, detail, prev_hash, entry_hash FROM audit_log ORDER BY seq"
        ).fetchall()
        counter = con.execute("SELECT seq FROM sqlite_sequence WHERE name = 'audit_log'").fetchone()
        # the fields the audit entry repeats, to find a decision edited behind the triggers' back
        decisions = {r[0]: {"event_key": r[1], "decision": r[2], "username": r[3], "data_cut": r[4]}
                     for r in con.execute("SELECT id, event_key, decision, reviewer, data_cut FROM adjudications")}
        signoffs = {r[0]: {"data_cut": r[1], "username": r[2]}
                    for r in con.execute("SELECT id, data_cut, reviewer FROM signoffs")}
    except sqlite3.DatabaseError as exc:
        return False, f"review store {store_path} cannot be read as an audit log: {exc}"
    finally:
        con.close()
    prev = GENESIS
    expected_seq = 1
    audited: dict[str, dict] = {"adjudication": {}, "signoff": {}}
    for seq, at, username, action, studyid, detail, prev_hash, entry_hash in rows:
        if seq != expected_seq:
            return False, (f"audit entry {expected_seq}: missing (entries {expected_seq}-{seq - 1} were removed)"
                           if seq > expected_seq else f"audit entry {seq}: sequence number out of order")
        if prev_hash != prev:
            return False, f"audit entry {seq}: previous-hash link broken (an entry before it was removed or altered)"
        if _entry_hash(prev_hash, at, username, action, studyid, detail) != entry_hash:
            return False, f"audit entry {seq}: content does not match its hash (edited after it was written)"
        if action in audited:
            try:
                d = json.loads(detail)
                key = d.get("adjudication_id" if action == "adjudication" else "signoff_id")
                if key is not None:
                    audited[action][key] = {**d, "username": username, "seq": seq}
            except (ValueError, AttributeError):
                pass
        prev = entry_hash
        expected_seq += 1
    last_seq = rows[-1][0] if rows else 0
    if counter is not None and counter[0] > last_seq:
        return False, (f"audit entry {last_seq + 1}: missing (entries {last_seq + 1}-{counter[0]} were "
                       f"removed from the end of the log)")
    for table, action, rows_by_id in (("adjudications", "adjudication", decisions), ("signoffs", "signoff", signoffs)):
        for row_id, fields in sorted(rows_by_id.items()):
            entry = audited[action].get(row_id)
            if entry is None:
                return False, f"{table} row {row_id} has no audit entry (written behind the store's back)"
            for k, v in fields.items():
                if k in entry and str(entry[k]) != str(v):
                    return False, (f"{table} row {row_id}: {k} is {v!r} but audit entry {entry['seq']} "
                                   f"recorded {entry[k]!r} (edited after it was written)")
        for row_id, entry in sorted(audited[action].items()):
            if row_id not in rows_by_id:
                return False, f"{table} row {row_id} (audit entry {entry['seq']}) was removed"
    head = prev
    return True, f"audit chain intact: {len(rows)} entries, head hash {head}"

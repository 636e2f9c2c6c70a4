"""The review store: the one place celltox writes decisions people make.

DLT adjudications, data-cut sign-offs and the audit log live in their own SQLite file beside the study
database (``<db>.review.sqlite`` unless told otherwise), never in a table that ingest rewrites, so they
survive reloads and new data cuts. Every table is append-only (triggers refuse UPDATE and DELETE); a
correction is a new row. Audit entries carry a SHA-256 chained to the previous entry, so an edit made
behind the triggers' back is found by :func:`verify_audit_chain`.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
import threading
from pathlib import Path

GENESIS = "0" * 64

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

    def append_audit(self, username: str, action: str, studyid: str | None = None, detail: dict | None = None) -> dict:
        """Add one chained audit entry and return it."""
        detail_text = json.dumps(detail or {}, sort_keys=True, ensure_ascii=False, default=str)
        with self._lock, self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                last = con.execute("SELECT entry_hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
                prev = last[0] if last else GENESIS
                at = now_utc()
                row = {"at": at, "username": username, "action": action, "studyid": studyid,
                       "detail": detail_text, "prev_hash": prev,
                       "entry_hash": _entry_hash(prev, at, username, action, studyid, detail_text)}
                row["seq"] = self._insert(con, "audit_log", row)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return row

    def add_adjudication(self, *, studyid: str, event_key: str, usubjid: str, rule_id: str | None,
                         decision: str, rationale: str, reviewer: str, data_cut: str,
                         event_fingerprint: str | None) -> int:
        """Record one committee decision (a new row; earlier decisions stay in the history)."""
        if not rationale or not rationale.strip():
            raise ValueError("a decision needs a rationale")
        row = {"studyid": studyid, "event_key": event_key, "usubjid": usubjid, "rule_id": rule_id,
               "decision": decision, "rationale": rationale.strip(), "reviewer": reviewer,
               "decided_at": now_utc(), "data_cut": str(data_cut), "event_fingerprint": event_fingerprint}
        with self._lock, self._connect() as con:
            new_id = self._insert(con, "adjudications", row)
        self.append_audit(reviewer, "adjudication", studyid,
                          {"event_key": event_key, "decision": decision, "rule_id": rule_id,
                           "data_cut": str(data_cut), "adjudication_id": new_id})
        return new_id

    def add_signoff(self, *, studyid: str, data_cut: str, reviewer: str, comment: str) -> int:
        """Mark a data cut as reviewed by the committee."""
        row = {"studyid": studyid, "data_cut": str(data_cut), "reviewer": reviewer,
               "comment": (comment or "").strip(), "signed_at": now_utc()}
        with self._lock, self._connect() as con:
            new_id = self._insert(con, "signoffs", row)
        self.append_audit(reviewer, "signoff", studyid, {"data_cut": str(data_cut), "signoff_id": new_id})
        return new_id

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

    def audit_entries(self, studyid: str | None = None) -> list[dict]:
        if studyid is None:
            return self.query("SELECT * FROM audit_log ORDER BY seq")
        return self.query("SELECT * FROM audit_log WHERE studyid = ? OR studyid IS NULL ORDER BY seq", (studyid,))


def verify_audit_chain(path: str | Path) -> tuple[bool, str]:
    """Recompute the audit chain. Returns (ok, message naming the first broken entry)."""
    store_path = Path(path)
    if not store_path.exists():
        return False, f"no review store at {store_path}"
    con = sqlite3.connect(store_path)
    try:
        rows = con.execute(
            "SELECT seq, at, username, action, studyid, detail, prev_hash, entry_hash FROM audit_log ORDER BY seq"
        ).fetchall()
    finally:
        con.close()
    prev = GENESIS
    for seq, at, username, action, studyid, detail, prev_hash, entry_hash in rows:
        if prev_hash != prev:
            return False, f"audit entry {seq}: previous-hash link broken (an entry before it was removed or altered)"
        if _entry_hash(prev_hash, at, username, action, studyid, detail) != entry_hash:
            return False, f"audit entry {seq}: content does not match its hash (edited after it was written)"
        prev = entry_hash
    return True, f"audit chain intact: {len(rows)} entries"

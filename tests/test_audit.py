"""The audit trail: tamper evidence (hash chain, gaps, truncation, edited decisions) and the audit CLI."""
from __future__ import annotations

import csv
import hashlib
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from safety.review.store import ReviewStore, audit_csv, verify_audit_chain

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path):
    s = ReviewStore(tmp_path / "study.review.sqlite")
    s.append_audit("carol", "sign_in_success", None, {"method": "password"})
    s.append_audit("ivan", "sign_in_failure", None, {"method": "password"})
    s.append_audit("carol", "view_subject", "CTX-001", {"usubjid": "CTX-001-101-001", "data_cut": "2024-06-01"})
    s.add_adjudication(studyid="CTX-001", event_key="CTX-001-101-001/AE/1", usubjid="CTX-001-101-001",
                       rule_id="R2", decision="confirmed", rationale="CRS grade 4", reviewer="carol",
                       data_cut="2024-06-01", event_fingerprint=None)
    s.add_signoff(studyid="CTX-001", data_cut="2024-06-01", reviewer="carol", comment="reviewed")
    s.append_audit("dana", "export", "CTX-001", {"what": "ae_listing", "data_cut": "2024-06-01",
                                                 "file_sha256": "ab" * 32, "format": "xlsx"})
    s.append_audit("ingest", "data_load", "CTX-001", {"data_cut": "2024-06-01", "load_id": "L1"})
    return s


def _tamper(path, *statements):
    """Do what someone with file access could: drop the triggers, then edit."""
    con = sqlite3.connect(path)
    for t in ("audit_log", "adjudications", "signoffs"):
        con.execute(f"DROP TRIGGER IF EXISTS {t}_no_update")
        con.execute(f"DROP TRIGGER IF EXISTS {t}_no_delete")
    for s in statements:
        con.execute(s)
    con.commit()
    con.close()


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "safety", "audit", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_every_action_has_an_entry_with_time_and_user(store):
    entries = store.audit_entries()
    assert [(e["username"], e["action"]) for e in entries] == [
        ("carol", "sign_in_success"), ("ivan", "sign_in_failure"), ("carol", "view_subject"),
        ("carol", "adjudication"), ("carol", "signoff"), ("dana", "export"), ("ingest", "data_load")]
    assert all(e["at"].endswith("+00:00") for e in entries)
    adj = json.loads(entries[3]["detail"])
    assert adj["event_key"] == "CTX-001-101-001/AE/1" and adj["decision"] == "confirmed"
    assert json.loads(entries[5]["detail"])["file_sha256"] == "ab" * 32
    ok, msg = verify_audit_chain(store.path)
    assert ok and "7 entries" in msg and entries[-1]["entry_hash"] in msg


def test_edit_after_dropping_trigger_is_found(store):
    _tamper(store.path, "UPDATE audit_log SET username = 'mallory' WHERE seq = 3")
    ok, msg = verify_audit_chain(store.path)
    assert not ok and msg.startswith("audit entry 3:") and "hash" in msg


def test_edit_with_recomputed_own_hash_breaks_the_next_link(store):
    from safety.review.store import _entry_hash
    row = store.audit_entries()[1]
    forged = _entry_hash(row["prev_hash"], row["at"], "someone", row["action"], row["studyid"], row["detail"])
    _tamper(store.path, f"UPDATE audit_log SET username = 'someone', entry_hash = '{forged}' WHERE seq = 2")
    ok, msg = verify_audit_chain(store.path)
    assert not ok and msg.startswith("audit entry 3:") and "link" in msg


def test_deleted_middle_entry_is_found(store):
    _tamper(store.path, "DELETE FROM audit_log WHERE seq = 2")
    ok, msg = verify_audit_chain(store.path)
    assert not ok and "audit entry 2" in msg and "removed" in msg


def test_deleted_last_entries_are_found(store):
    _tamper(store.path, "DELETE FROM audit_log WHERE seq >= 6")
    ok, msg = verify_audit_chain(store.path)
    assert not ok and "audit entry 6" in msg and "end of the log" in msg


def test_edited_decision_is_found(store):
    _tamper(store.path, "UPDATE adjudications SET decision = 'rejected' WHERE id = 1")
    ok, msg = verify_audit_chain(store.path)
    assert not ok and "adjudications row 1" in msg and "decision" in msg


def test_decision_without_audit_entry_is_found(store):
    _tamper(store.path, "INSERT INTO signoffs (studyid, data_cut, reviewer, comment, signed_at) "
                        "VALUES ('CTX-001', '2024-09-01', 'mallory', 'fake', '2024-09-02')")
    ok, msg = verify_audit_chain(store.path)
    assert not ok and "signoffs row 2 has no audit entry" in msg


def test_deleted_decision_is_found(store):
    _tamper(store.path, "DELETE FROM adjudications WHERE id = 1")
    ok, msg = verify_audit_chain(store.path)
    assert not ok and "adjudications row 1" in msg and "removed" in msg


def test_cli_verify_exit_codes(store):
    r = _cli("verify", "--review-db", str(store.path))
    assert r.returncode == 0 and "intact" in r.stdout
    _tamper(store.path, "UPDATE audit_log SET detail = '{}' WHERE seq = 6")
    r = _cli("verify", "--review-db", str(store.path))
    assert r.returncode == 1 and "audit entry 6" in r.stderr
    r = _cli("verify", "--review-db", str(store.path.with_name("missing.sqlite")))
    assert r.returncode == 1 and "no review store" in r.stderr


def test_cli_verify_finds_store_beside_db(store):
    r = _cli("verify", "--db", str(store.path.with_name("study.duckdb")))
    assert r.returncode == 0, r.stderr


def test_cli_export_writes_csv_with_hash(store, tmp_path):
    out = tmp_path / "audit.csv"
    r = _cli("export", "--review-db", str(store.path), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert hashlib.sha256(out.read_bytes()).hexdigest() in r.stdout
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [row["action"] for row in rows][:3] == ["sign_in_success", "sign_in_failure", "view_subject"]
    assert len(rows) == 7 and rows[5]["username"] == "dana"
    r = _cli("export", "--review-db", str(store.path), "--out", str(out), "--action", "export")
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert r.returncode == 0 and [row["seq"] for row in rows] == ["6"]


def test_export_neutralises_spreadsheet_formulas(tmp_path):
    s = ReviewStore(tmp_path / "r.sqlite")
    s.append_audit("=HYPERLINK(\"http://evil\")", "sign_in_failure", None, {"method": "password"})
    text = audit_csv(s.audit_entries())
    row = list(csv.DictReader(text.splitlines()))[0]
    assert row["username"] == "'=HYPERLINK(\"http://evil\")"

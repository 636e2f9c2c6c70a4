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
    from safety.review.store import entry_hash
    row = store.audit_entries()[1]
    forged = entry_hash(2, row["prev_hash"], row["at"], "someone", row["action"], row["studyid"], row["detail"])
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


# -- every stored field, the counter, the anchor and the key ---------------------------------------------
@pytest.mark.parametrize("statement, field", [
    ("UPDATE adjudications SET rationale = 'no DLT' WHERE id = 1", "rationale"),
    ("UPDATE adjudications SET event_fingerprint = 'f00d' WHERE id = 1", "event_fingerprint"),
    ("UPDATE adjudications SET usubjid = 'CTX-001-101-002' WHERE id = 1", "usubjid"),
    ("UPDATE adjudications SET rule_id = 'R9' WHERE id = 1", "rule_id"),
    ("UPDATE adjudications SET studyid = 'CTX-002' WHERE id = 1", "studyid"),
    ("UPDATE adjudications SET decided_at = '2024-06-02T10:00:00+00:00' WHERE id = 1", "decided_at"),
    ("UPDATE adjudications SET reviewer = 'mallory' WHERE id = 1", "reviewer"),
    ("UPDATE signoffs SET comment = 'not reviewed' WHERE id = 1", "comment"),
    ("UPDATE signoffs SET signed_at = '2024-01-01T00:00:00+00:00' WHERE id = 1", "signed_at"),
])
def test_every_stored_field_of_a_decision_is_covered(store, statement, field):
    _tamper(store.path, statement)
    ok, msg = verify_audit_chain(store.path)
    assert not ok and field in msg and "edited" in msg, msg
    r = _cli("verify", "--review-db", str(store.path))
    assert r.returncode == 1 and "BROKEN" in r.stderr


def test_tail_cut_with_counter_lowered_is_found_against_the_recorded_head(store, tmp_path):
    head = store.head()
    assert head["seq"] == 7 and verify_audit_chain(store.path, expect_heads=[head["entry_hash"]])[0]
    _tamper(store.path, "DELETE FROM audit_log WHERE seq >= 6",
            "UPDATE sqlite_sequence SET seq = 5 WHERE name = 'audit_log'")
    r = _cli("verify", "--review-db", str(store.path), "--expect-head", head["entry_hash"])
    assert r.returncode == 1 and "was cut or rewritten" in r.stderr and head["entry_hash"] in r.stderr
    anchor = tmp_path / "anchors.txt"
    anchor.write_text(f"# committee minutes 2024-06-05\n{head['seq']} {head['entry_hash']} 2024-06-05T10:00:00Z\n")
    r = _cli("verify", "--review-db", str(store.path), "--anchor", str(anchor))
    assert r.returncode == 1 and "was cut or rewritten" in r.stderr


def test_anchor_file_is_recorded_and_checked(store, tmp_path):
    anchor = tmp_path / "anchors.txt"
    r = _cli("verify", "--review-db", str(store.path), "--record-anchor", str(anchor))
    assert r.returncode == 0, r.stderr
    seq, digest, _ = anchor.read_text().split()
    assert (int(seq), digest) == (7, store.head()["entry_hash"])
    store.append_audit("carol", "view_subject", "CTX-001", {"usubjid": "CTX-001-101-003"})
    r = _cli("verify", "--review-db", str(store.path), "--anchor", str(anchor))
    assert r.returncode == 0 and "found at entry 7" in r.stdout, r.stderr
    r = _cli("verify", "--review-db", str(store.path), "--expect-head", "nothex")
    assert r.returncode == 2 and "not an audit head hash" in r.stderr


def test_whole_chain_rewritten_is_found_against_the_recorded_head(store):
    from safety.review.store import GENESIS, entry_hash
    head = store.head()["entry_hash"]
    _tamper(store.path, "UPDATE adjudications SET rationale = 'no DLT' WHERE id = 1")
    # the attacker recomputes every entry (no key is needed for a plain chain) ...
    con = sqlite3.connect(store.path)
    prev = GENESIS
    for seq, at, user, action, study, detail in con.execute(
            "SELECT seq, at, username, action, studyid, detail FROM audit_log ORDER BY seq").fetchall():
        if action == "adjudication":
            d = json.loads(detail)
            d["rationale_sha256"] = hashlib.sha256(b"no DLT").hexdigest()
            detail = json.dumps(d, sort_keys=True)
        h = entry_hash(seq, prev, at, user, action, study, detail)
        con.execute("UPDATE audit_log SET detail = ?, prev_hash = ?, entry_hash = ? WHERE seq = ?", (detail, prev, h, seq))
        prev = h
    con.commit()
    con.close()
    assert verify_audit_chain(store.path)[0]  # ... which only the recorded head can tell
    ok, msg = verify_audit_chain(store.path, expect_heads=[head])
    assert not ok and "cut or rewritten" in msg


def test_keyed_chain_cannot_be_forged_without_the_key(tmp_path, monkeypatch):
    from safety.review.store import GENESIS, entry_hash
    key = b"k" * 32
    s = ReviewStore(tmp_path / "r.sqlite", key=key)
    s.append_audit("carol", "sign_in_success", None, {"method": "password"})
    s.add_signoff(studyid="CTX-001", data_cut="2024-06-01", reviewer="carol", comment="reviewed")
    assert s.head()["entry_hash"].startswith("hmac:")
    assert verify_audit_chain(s.path, key=key)[0]
    ok, msg = verify_audit_chain(s.path, key=None)
    assert ok and "not checked" in msg
    # someone holding the file rewrites the chain without the key: plain hashes or a wrong key
    _tamper(s.path, "UPDATE signoffs SET comment = 'x' WHERE id = 1")
    con = sqlite3.connect(s.path)
    prev = GENESIS
    for seq, at, user, action, study, detail in con.execute(
            "SELECT seq, at, username, action, studyid, detail FROM audit_log ORDER BY seq").fetchall():
        if action == "signoff":
            d = json.loads(detail)
            d["comment_sha256"] = hashlib.sha256(b"x").hexdigest()
            detail = json.dumps(d, sort_keys=True)
        h = entry_hash(seq, prev, at, user, action, study, detail, key=b"guess" * 8)
        con.execute("UPDATE audit_log SET detail = ?, prev_hash = ?, entry_hash = ? WHERE seq = ?", (detail, prev, h, seq))
        prev = h
    con.commit()
    con.close()
    monkeypatch.setenv("CELLTOX_AUDIT_KEY", key.decode())
    r = _cli("verify", "--review-db", str(s.path))
    assert r.returncode == 1 and "audit entry 1" in r.stderr and "keyed hash" in r.stderr
    # a plain entry appended after keyed ones is a forgery too
    _tamper(s.path, "DELETE FROM audit_log", "DELETE FROM signoffs", "DELETE FROM sqlite_sequence")
    s2 = ReviewStore(s.path, key=key)
    s2.append_audit("carol", "sign_in_success", None, {})
    ReviewStore(s.path, key=None).append_audit("mallory", "sign_in_success", None, {})
    ok, msg = verify_audit_chain(s.path, key=key)
    assert not ok and "audit entry 2" in msg and "without the audit key" in msg


def _legacy_store(path):
    """A review store as an earlier celltox wrote it: first chain format, decision entries with few fields."""
    from safety.review.store import GENESIS, _entry_hash
    ReviewStore(path)
    con = sqlite3.connect(path)
    con.execute("INSERT INTO adjudications (studyid, event_key, usubjid, rule_id, decision, rationale, reviewer, "
                "decided_at, data_cut) VALUES ('CTX-001', 'K/AE/1', 'K', 'R2', 'confirmed', 'grade 4', 'carol', "
                "'2024-06-02T10:00:00+00:00', '2024-06-01')")
    prev = GENESIS
    for seq, action, detail in ((1, "sign_in_success", {"method": "password"}),
                                (2, "adjudication", {"event_key": "K/AE/1", "usubjid": "K", "decision": "confirmed",
                                                     "rule_id": "R2", "data_cut": "2024-06-01", "adjudication_id": 1})):
        text = json.dumps(detail, sort_keys=True)
        at = f"2024-06-02T10:00:0{seq}+00:00"
        h = _entry_hash(prev, at, "carol", action, "CTX-001", text)
        con.execute("INSERT INTO audit_log (seq, at, username, action, studyid, detail, prev_hash, entry_hash) "
                    "VALUES (?, ?, 'carol', ?, 'CTX-001', ?, ?, ?)", (seq, at, action, text, prev, h))
        prev = h
    con.commit()
    con.close()


def test_store_of_an_earlier_version_verifies_with_a_migration_note_and_seals(tmp_path):
    path = tmp_path / "old.review.sqlite"
    _legacy_store(path)
    ok, msg = verify_audit_chain(path)
    assert ok and "first chain format" in msg and "audit seal" in msg
    r = _cli("seal", "--review-db", str(path), "--user", "carol")
    assert r.returncode == 0 and "sealed: audit entry 3" in r.stdout, r.stderr
    ok, msg = verify_audit_chain(path)
    assert ok and "NOTE" not in msg
    ReviewStore(path).add_adjudication(studyid="CTX-001", event_key="K/AE/1", usubjid="K", rule_id="R2",
                                       decision="withdrawn", rationale="resolved", reviewer="carol",
                                       data_cut="2024-06-01", event_fingerprint=None)
    assert verify_audit_chain(path)[0]
    _tamper(path, "UPDATE adjudications SET rationale = 'not a DLT' WHERE id = 1")
    ok, msg = verify_audit_chain(path)
    assert not ok and "adjudications row 1" in msg and "seal" in msg


def test_audit_export_refuses_a_date_that_is_not_one(store, tmp_path):
    """--since 2026-02-30 was compared as text and matched entries; now a one-line usage error."""
    r = _cli("export", "--review-db", str(store.path), "--out", str(tmp_path / "a.csv"), "--since", "2026-02-30")
    assert r.returncode == 2 and not (tmp_path / "a.csv").exists()
    assert r.stderr.strip().splitlines()[-1] == (
        "python -m safety audit export: error: argument --since: invalid ISO 8601 date or time value: '2026-02-30'")
    assert _cli("export", "--review-db", str(store.path), "--out", str(tmp_path / "b.csv"),
                "--since", "2024-01-01").returncode == 0


def test_an_output_that_cannot_be_written_is_refused_with_exit_2(store, unwritable_folder):
    """Exit 1 is a broken chain here: an --out or anchor file in a folder that cannot be written exited 1 with
    'Permission denied' (after a verify that passed, for the anchor). Exit 2, one line naming the path."""
    out, anchor = unwritable_folder / "audit.csv", unwritable_folder / "anchors.txt"
    why = f"the folder {unwritable_folder} is not writable"
    r = _cli("export", "--review-db", str(store.path), "--out", str(out))
    assert (r.returncode, r.stderr.strip(), r.stdout) == (2, f"error: {out}: {why}", "")
    r = _cli("verify", "--review-db", str(store.path), "--record-anchor", str(anchor))
    assert (r.returncode, r.stderr.strip(), r.stdout) == (2, f"error: {anchor}: {why}", "")
    assert list(unwritable_folder.iterdir()) == []


def _append_forged(path, action, detail, username="carol", studyid="CTX-001"):
    """Append one entry as someone holding the file can: chained to the head, its hash made with the public
    entry_hash (no key), no earlier entry touched."""
    from safety.review.store import entry_hash
    con = sqlite3.connect(path)
    seq, prev = con.execute("SELECT seq, entry_hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    at, text = "2026-12-06T04:12:00.000000+00:00", json.dumps(detail, sort_keys=True)
    con.execute("INSERT INTO audit_log (seq, at, username, action, studyid, detail, prev_hash, entry_hash) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (seq + 1, at, username, action, studyid, text, prev,
                 entry_hash(seq + 1, prev, at, username, action, studyid, text)))
    con.commit()
    con.close()
    return seq + 1


def test_edited_decision_covered_by_a_second_entry_is_found_even_against_the_anchor(store, tmp_path):
    anchor = tmp_path / "anchors.txt"
    assert _cli("verify", "--review-db", str(store.path), "--record-anchor", str(anchor)).returncode == 0
    head = store.head()["entry_hash"]
    _tamper(store.path, "UPDATE adjudications SET decision = 'rejected', rationale = 'not a DLT' WHERE id = 1")
    row = dict(zip(("event_key", "usubjid", "rule_id", "decision", "decided_at", "data_cut", "event_fingerprint"),
                   sqlite3.connect(store.path).execute(
                       "SELECT event_key, usubjid, rule_id, decision, decided_at, data_cut, event_fingerprint "
                       "FROM adjudications WHERE id = 1").fetchone()))
    seq = _append_forged(store.path, "adjudication", {**row, "adjudication_id": 1,
                                                      "rationale_sha256": hashlib.sha256(b"not a DLT").hexdigest()})
    assert seq == 8
    r = _cli("verify", "--review-db", str(store.path), "--anchor", str(anchor), "--expect-head", head)
    assert r.returncode == 1 and r.stdout == "", r.stdout
    assert r.stderr == ("BROKEN: adjudications row 1 has two audit entries (4 and 8); a decision row has one, "
                        "written with it (the later one was added behind the store's back, as after an edit of "
                        "the row)\n")


def test_second_signoff_entry_for_one_row_is_found(store):
    _append_forged(store.path, "signoff", json.loads(store.audit_entries(action="signoff")[0]["detail"]))
    r = _cli("verify", "--review-db", str(store.path))
    assert r.returncode == 1 and r.stderr.startswith("BROKEN: signoffs row 1 has two audit entries (5 and 8)")


def test_second_seal_of_a_row_is_found(tmp_path):
    from safety.review.store import row_sha256
    path = tmp_path / "old.review.sqlite"
    _legacy_store(path)
    assert _cli("seal", "--review-db", str(path), "--user", "carol").returncode == 0
    _tamper(path, "UPDATE adjudications SET rationale = 'not a DLT' WHERE id = 1")
    con = sqlite3.connect(path)
    con.row_factory = sqlite3.Row
    edited = dict(con.execute("SELECT * FROM adjudications WHERE id = 1").fetchone())
    con.close()
    _append_forged(path, "audit_seal", {"adjudications": {"1": row_sha256(edited)}, "signoffs": {}})
    r = _cli("verify", "--review-db", str(path))
    assert r.returncode == 1 and r.stderr.startswith("BROKEN: adjudications row 1 is sealed twice (audit entries 3 "
                                                     "and 4)"), r.stderr


@pytest.mark.parametrize("action, detail", [("adjudication", {"adjudication_id": "x"}),
                                            ("signoff", {"signoff_id": [1]}),
                                            ("audit_seal", {"adjudications": {"x": "ab"}})])
def test_entry_whose_row_id_is_not_one_is_reported_in_one_line(store, tmp_path, action, detail):
    seq = _append_forged(store.path, action, detail)
    r = _cli("verify", "--review-db", str(store.path))
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1, r.stderr
    assert r.stderr.startswith(f"BROKEN: audit entry {seq}:") and "is not a row id" in r.stderr
    out = tmp_path / "a.csv"
    r = _cli("export", "--review-db", str(store.path), "--out", str(out))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert len(r.stderr.splitlines()) == 1 and "is not a row id" in r.stderr
    assert r.stderr.startswith(f"WARNING: the audit chain is broken: audit entry {seq}:")
    assert len(list(csv.reader(out.open()))) == 9  # written, as for other damage, with the warning


def test_verify_names_a_file_that_is_no_review_store_without_calling_it_broken(store, tmp_path):
    """A wrong --review-db (a text file, another program's SQLite database) is no evidence of tampering: one
    line, exit 2 (unusable input), not 'BROKEN' and exit 1, the status of a chain that was altered."""
    from access_fixtures import files_that_are_no_review_store
    for path, why in files_that_are_no_review_store(tmp_path):
        for action in (("verify",), ("export", "--out", str(tmp_path / "a.csv"))):
            r = _cli(*action, "--review-db", str(path))
            assert (r.returncode, r.stdout, r.stderr) == (2, "", f"error: {path}: not a celltox review store ({why})\n")
    # a store whose log was emptied out is still a store: its chain is reported broken
    _tamper(store.path, "DROP TABLE audit_log")
    r = _cli("verify", "--review-db", str(store.path))
    assert r.returncode == 1 and r.stderr.startswith("BROKEN: ")

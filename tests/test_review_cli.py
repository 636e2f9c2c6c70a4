"""`python -m safety review decide|list`: a committee secretary enters decisions from signed minutes with the
same checks, audit entry and effect as the DLT review form; accounts without the right are refused."""
from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_export_fixtures import CUT2, STUDY, build_db

from safety.access.auth import UserStore
from safety.review.store import ReviewStore, default_review_path

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery staple"
KEY = "CT-001-S03/ICANS/1"


@pytest.fixture
def db(tmp_path):
    path = build_db(tmp_path / "study.duckdb")
    users = UserStore(tmp_path / "users.yaml", rounds=4)
    users.add("alice", "committee", PASSWORD)
    users.add("ivan", "investigator", PASSWORD, sites={STUDY: ["101"]})
    users.add("dora", "data_manager", PASSWORD)
    return path


def _review(*args, password: str | None = PASSWORD, **env_extra):
    """The command with the --as account's password on standard input (``password=None``: none given)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), **env_extra)
    if "CELLTOX_USERS" not in env_extra:
        env.pop("CELLTOX_USERS", None)
    extra = ("--password-stdin",) if password is not None else ()
    return subprocess.run([sys.executable, "-m", "safety", "review", *args, *extra], cwd=ROOT, env=env,
                          input=(password + "\n") if password is not None else "", capture_output=True, text=True,
                          timeout=300)


def _decide(db, event=KEY, decision="confirmed", user="alice", rationale="SRC minutes 2025-04-02, item 3",
            password: str | None = PASSWORD, **env_extra):
    return _review("decide", "--db", str(db), "--study", STUDY, "--cut", CUT2.isoformat(), "--event", event,
                   "--decision", decision, "--rationale", rationale, "--as", user, password=password, **env_extra)


def _list(db, user="alice"):
    r = _review("list", "--db", str(db), "--study", STUDY, "--cut", CUT2.isoformat(), "--as", user)
    assert r.returncode == 0, r.stderr
    return {row["event_key"]: row for row in csv.DictReader(io.StringIO(r.stdout))}


def test_decide_records_with_audit_entry_and_shows_in_list(db):
    before = _list(db)
    assert before[KEY]["status"] == "pending" and before[KEY]["adjudicated_dlt"] == "Pending"
    r = _decide(db)
    assert r.returncode == 0, r.stderr
    store = ReviewStore(default_review_path(db))
    [row] = store.adjudication_history(STUDY)
    assert (row["event_key"], row["decision"], row["reviewer"]) == (KEY, "confirmed", "alice")
    assert row["rationale"] == "SRC minutes 2025-04-02, item 3" and row["data_cut"] == CUT2.isoformat()
    audit = [e for e in store.audit_entries(STUDY) if e["action"] == "adjudication"]
    assert len(audit) == 1 and audit[0]["username"] == "alice" and KEY in audit[0]["detail"]
    after = _list(db)
    assert after[KEY]["status"] == "confirmed" and after[KEY]["adjudicated_dlt"] == "Yes"
    assert after[KEY]["reviewer"] == "alice"


def test_withdrawn_decision_makes_the_candidate_pending_again(db):
    assert _decide(db).returncode == 0
    assert _decide(db, decision="withdrawn", rationale="recorded in error").returncode == 0
    row = _list(db)[KEY]
    assert row["status"] == "pending (earlier decision withdrawn)" and row["adjudicated_dlt"] == "Pending"


@pytest.mark.parametrize("user, why", [("ivan", "may not adjudicate"), ("dora", "may not adjudicate"),
                                       ("mallory", "no enabled account 'mallory'")])
def test_accounts_without_the_right_are_refused_in_one_line(db, user, why):
    r = _decide(db, user=user)
    assert r.returncode == 2 and why in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert ReviewStore(default_review_path(db)).adjudication_history(STUDY) == []


def test_same_checks_as_the_form(db):
    r = _decide(db, event="CT-001-S01/AE/1")  # an AE that is not a screened candidate
    assert r.returncode == 2 and "not a DLT candidate" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = _decide(db, decision="withdrawn")  # nothing in force to withdraw
    assert r.returncode == 2 and "no decision in force to withdraw" in r.stderr
    r = _decide(db, rationale="   ")
    assert r.returncode == 2 and "rationale" in r.stderr
    r = _decide(db, decision="added")  # not a secretary's decision: argparse refuses it
    assert r.returncode == 2 and "invalid choice" in r.stderr
    r = _review("decide", "--db", str(db), "--study", STUDY, "--cut", "2025-02-01", "--event", KEY,
                "--decision", "confirmed", "--rationale", "x", "--as", "alice")
    assert r.returncode == 2 and "2025-01-31, 2025-03-31" in r.stderr
    assert ReviewStore(default_review_path(db)).adjudication_history(STUDY) == []


def test_list_is_refused_to_an_account_without_patient_data(tmp_path, db):
    UserStore(tmp_path / "users.yaml", rounds=4).add("adam", "admin", PASSWORD)
    r = _review("list", "--db", str(db), "--study", STUDY, "--cut", CUT2.isoformat(), "--as", "adam")
    assert r.returncode == 2 and "may not view patient data" in r.stderr


def test_the_account_file_beside_the_database_may_be_named_by_a_home_relative_setting(tmp_path, db):
    r = _review("list", "--db", str(db), "--study", STUDY, "--cut", CUT2.isoformat(), "--as", "alice",
                CELLTOX_USERS="~/users.yaml", HOME=str(db.parent))
    assert r.returncode == 0, r.stderr
    assert KEY in {row["event_key"] for row in csv.DictReader(io.StringIO(r.stdout))}


def test_an_account_file_of_ones_own_cannot_sign_a_decision(tmp_path, db):
    """Whoever runs the command could write an account file where 'alice' has a password they know: a command
    acting as an account reads only the accounts beside the database, whatever --users or CELLTOX_USERS say."""
    own = tmp_path / "mine" / "users.yaml"
    own.parent.mkdir()
    UserStore(own, rounds=4).add("alice", "committee", "a-password-i-chose")
    for how in ({"args": ("--users", str(own))}, {"env": {"CELLTOX_USERS": str(own)}}):
        r = _review("decide", "--db", str(db), "--study", STUDY, "--cut", CUT2.isoformat(), "--event", KEY,
                    "--decision", "confirmed", "--rationale", "x", "--as", "alice", *how.get("args", ()),
                    password="a-password-i-chose", **how.get("env", {}))
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "reads the accounts beside the database" in r.stderr and str(own) in r.stderr
    assert ReviewStore(default_review_path(db)).adjudication_history(STUDY) == []


def _audit(db, action):
    return [e for e in ReviewStore(default_review_path(db)).audit_entries(action=action)]


def test_a_decision_under_a_name_needs_that_accounts_password(db):
    """Anyone who could run the command could sign a decision as a committee member by naming her: the
    account's password proves it, each attempt is audited as the app's sign-in is, and the app's lock applies."""
    r = _decide(db, password="not her password")
    assert r.returncode == 2 and r.stderr.strip().endswith("--as alice: wrong password")
    assert len(r.stderr.strip().splitlines()) == 1
    r = _decide(db, password=None)  # no terminal to ask at, nothing on standard input
    assert r.returncode == 2 and "--password-stdin" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert ReviewStore(default_review_path(db)).adjudication_history(STUDY) == []
    [failure] = _audit(db, "sign_in_failure")
    assert failure["username"] == "alice" and '"method": "command line"' in failure["detail"]
    assert "review decide" in failure["detail"] and "not her password" not in failure["detail"]
    assert _decide(db).returncode == 0
    assert [e["username"] for e in _audit(db, "sign_in_success")] == ["alice"]


def test_repeated_wrong_passwords_lock_the_account_for_the_command_as_for_the_app(db):
    for _ in range(2):
        assert _decide(db, password="guess", CELLTOX_LOCKOUT_ATTEMPTS="2").returncode == 2
    r = _decide(db, CELLTOX_LOCKOUT_ATTEMPTS="2")  # the right password, too late
    assert r.returncode == 2 and "too many failed sign-ins" in r.stderr and "users unlock alice" in r.stderr
    assert ReviewStore(default_review_path(db)).adjudication_history(STUDY) == []
    assert len(_audit(db, "sign_in_locked")) == 1


def test_a_review_store_that_cannot_be_written_is_refused_in_one_line(db, unwritable_folder):
    """Both actions write the store (the sign-in's audit entry, the decision): exit 2 naming it, not exit 1 with
    SQLite's 'unable to open database file'."""
    review = unwritable_folder / "study.review.sqlite"
    r = _review(
        "decide", "--db", str(db), "--study", STUDY, "--cut", CUT2.isoformat(), "--event", KEY, "--decision",
        "confirmed", "--rationale", "minutes", "--as", "alice", "--review-db", str(review))
    assert (r.returncode, r.stderr.strip()) == (
        2, f"python -m safety review: error: {review}: the folder {unwritable_folder} is not writable")
    r = _review("list", "--db", str(db), "--study", STUDY, "--cut", CUT2.isoformat(), "--as", "alice",
                "--review-db", str(review))
    assert (r.returncode, r.stderr.strip()) == (
        2, f"python -m safety review: error: {review}: the folder {unwritable_folder} is not writable")
    assert list(unwritable_folder.iterdir()) == []


@pytest.mark.parametrize("mode, who", [(0o666, "every user of this machine and its group"),
                                       (0o620, "its group")])
def test_an_account_file_others_may_write_signs_nothing(tmp_path, db, mode, who):
    """Whoever may write the account file could give 'alice' a password of theirs: a command acting as an account
    refuses it in one line naming the file and the fix, before it asks for a password or records anything."""
    users = tmp_path / "users.yaml"
    users.chmod(mode)
    for r in (_decide(db), _review("list", "--db", str(db), "--study", STUDY, "--cut", CUT2.isoformat(),
                                   "--as", "alice")):
        assert r.returncode == 2 and r.stdout == "", r.stdout
        assert r.stderr == (f"python -m safety review: error: --as alice: {users} can be written by {who}: anyone "
                            f"who can write it can give themselves any role. Run: chmod 600 {users}\n")
    store = ReviewStore(default_review_path(db))
    assert store.adjudication_history(STUDY) == [] and store.audit_entries(action="sign_in_success") == []
    users.chmod(0o644)  # others may read it (the account file is open to whoever runs the command): signs
    assert _decide(db).returncode == 0
    assert [e["username"] for e in _audit(db, "adjudication")] == ["alice"]


def test_an_account_file_that_is_not_yaml_is_named_once(tmp_path, db):
    users = tmp_path / "users.yaml"
    users.write_text("users: [unclosed\n")
    r = _review("list", "--db", str(db), "--study", STUDY, "--cut", CUT2.isoformat(), "--as", "alice")
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
    assert r.stderr.startswith(f"python -m safety review: error: --as alice: {users}: cannot be read as YAML: ")
    assert r.stderr.count(str(users)) == 1

"""`python -m safety users`: add, list, set-password, disable, remove, as an operator runs them."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from safety.access.auth import UserStore
from safety.review.store import ReviewStore, verify_audit_chain

ROOT = Path(__file__).resolve().parents[1]
PW1 = "first long passphrase"
PW2 = "second long passphrase"


def _users(*args, stdin: str | None = None, env_extra: dict | None = None):
    env = dict(os.environ, CELLTOX_BCRYPT_ROUNDS="4")
    env.pop("CELLTOX_USERS", None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "safety", "users", *args], cwd=ROOT, input=stdin,
                          capture_output=True, text=True, timeout=60, env=env)


def test_users_cli_lifecycle(tmp_path):
    db = tmp_path / "study.duckdb"
    path = tmp_path / "users.yaml"
    r = _users("--db", str(db), "add", "carol", "--role", "committee", "--display-name", "Carol C",
               "--email", "carol@example.org", "--password-stdin", stdin=PW1 + "\n")
    assert r.returncode == 0, r.stderr
    r = _users("add", "ivan", "--role", "investigator", "--study", "CTX-001", "--sites", "101,102", "--password-stdin",
               "--users", str(path), stdin=PW1 + "\n")
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600

    r = _users("list", "--json", "--users", str(path))
    rows = {u["username"]: u for u in json.loads(r.stdout)}
    assert rows["ivan"]["sites"] == {"CTX-001": ["101", "102"]} and rows["carol"]["role"] == "committee"
    assert rows["ivan"]["problem"] is None
    assert "password_hash" not in r.stdout and "$2b$" not in r.stdout
    r = _users("list", env_extra={"CELLTOX_USERS": str(path)})
    assert "carol" in r.stdout and "CTX-001:101,102" in r.stdout
    # the sites column: every site for the committee, none for an administrator (no patient data)
    r = _users("add", "ada", "--role", "admin", "--password-stdin", "--users", str(path), stdin=PW1 + "\n")
    assert r.returncode == 0, r.stderr
    listed = {line.split()[0]: line.split()[2] for line in _users("list", "--users", str(path)).stdout.splitlines()[1:]}
    assert (listed["carol"], listed["ivan"], listed["ada"]) == ("all", "CTX-001:101,102", "none")

    r = _users("set-password", "ivan", "--password-stdin", "--users", str(path), stdin=PW2 + "\n")
    assert r.returncode == 0, r.stderr
    s = UserStore(path)
    assert s.authenticate("ivan", PW1) is None and s.authenticate("ivan", PW2).sites == (("CTX-001", ("101", "102")),)

    r = _users("disable", "ivan", "--users", str(path))
    assert r.returncode == 0 and UserStore(path).authenticate("ivan", PW2) is None
    r = _users("remove", "ivan", "--users", str(path))
    assert r.returncode == 0 and "ivan" not in path.read_text()

    text = path.read_text()
    for pw in (PW1, PW2):
        assert pw not in text and pw not in r.stdout
    # the --db form wrote an audit entry for the account change; never a password
    review = tmp_path / "study.review.sqlite"
    entries = ReviewStore(review).audit_entries(action="user_admin")
    assert [json.loads(e["detail"])["op"] for e in entries] == ["add"]
    assert all(PW1 not in e["detail"] for e in entries) and verify_audit_chain(review)[0]


def test_users_cli_errors(tmp_path):
    path = tmp_path / "users.yaml"
    r = _users("add", "bob", "--role", "investigator", "--password-stdin", "--users", str(path), stdin=PW1 + "\n")
    assert r.returncode == 2 and "site" in r.stderr and not path.exists()
    r = _users("add", "bob", "--role", "investigator", "--sites", "01", "--password-stdin", "--users", str(path),
               stdin=PW1 + "\n")
    assert (r.returncode, r.stderr.strip()) == (
        2, "error: an investigator's sites belong to a study: name it (--study STUDY --sites 01,02)")
    assert not path.exists()
    r = _users("add", "bob", "--role", "committee", "--password-stdin", "--users", str(path), stdin="short\n")
    assert r.returncode == 2 and "at least" in r.stderr
    r = _users("remove", "nobody", "--users", str(path))
    assert r.returncode == 2 and "no account" in r.stderr
    r = _users("list")
    assert r.returncode == 2 and "--users" in r.stderr
    r = _users("add", "bob", "--role", "wizard", "--users", str(path))
    assert r.returncode == 2


def test_users_cli_unlock_lifts_a_sign_in_lock(tmp_path):
    import datetime as dt
    from safety.access.auth import sign_in_locked_until
    from safety.review.store import default_review_path
    db = tmp_path / "study.duckdb"
    store = ReviewStore(default_review_path(db))
    for _ in range(5):
        store.append_audit("carol", "sign_in_failure")
    assert sign_in_locked_until(store, "carol", dt.datetime.now(dt.timezone.utc)) is not None
    r = _users("unlock", "carol", "--users", str(tmp_path / "users.yaml"))
    assert r.returncode == 2 and "needs the review store" in r.stderr  # nowhere to record it: refused
    r = _users("unlock", "carol", "--db", str(db))
    assert r.returncode == 0, r.stderr
    assert sign_in_locked_until(store, "carol", dt.datetime.now(dt.timezone.utc)) is None
    last = store.audit_entries()[-1]
    assert last["action"] == "sign_in_unlocked" and json.loads(last["detail"]) == {"account": "carol"}
    assert last["username"].startswith("cli:") and verify_audit_chain(default_review_path(db))[0]
    # failures after the unlock count again
    for _ in range(5):
        store.append_audit("carol", "sign_in_failure")
    assert sign_in_locked_until(store, "carol", dt.datetime.now(dt.timezone.utc)) is not None


def test_list_warns_about_a_world_writable_account_file_and_names_a_bad_account(tmp_path):
    import yaml
    path = tmp_path / "users.yaml"
    path.write_text(yaml.safe_dump({"users": {"carol": {"role": "committee", "sites": "01"}}}))
    path.chmod(0o666)
    r = _users("list", "--users", str(path))
    assert "every user of this machine" in r.stderr and "chmod 600" in r.stderr
    assert r.returncode != 0 and "account 'carol'" in r.stderr and "Traceback" not in r.stderr


def test_users_add_warns_of_a_site_with_no_subject_of_its_study_in_the_database(tmp_path):
    """A mistyped site id scopes an investigator to nothing: the operator is told, naming the study's sites there.
    Site 10 of another study is another centre: it was counted as known, so the warning did not come."""
    import duckdb

    db = tmp_path / "study.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE subjects (studyid VARCHAR, usubjid VARCHAR, siteid VARCHAR)")
    con.execute("INSERT INTO subjects VALUES ('S', 'S-01-001', '01'), ('S', 'S-02-001', '02'), "
                "('T', 'T-10-001', '10')")
    con.close()
    r = _users("--db", str(db), "add", "ivan", "--role", "investigator", "--study", "S", "--sites", "01,10",
               "--password-stdin", stdin=PW1 + "\n")
    assert r.returncode == 0, r.stderr  # a site may open before its first subject is loaded
    assert r.stderr.strip() == (f"warning: no subject of S in {db} belongs to site 10 (S's sites there: 01, 02); "
                                "the account sees no subject of that site until one is loaded")
    assert UserStore(tmp_path / "users.yaml").get("ivan").sites == (("S", ("01", "10")),)
    r = _users("--db", str(db), "add", "iris", "--role", "investigator", "--study", "S", "--sites", "02",
               "--password-stdin", stdin=PW1 + "\n")
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
    # a study id the database does not hold: said, naming the studies there
    r = _users("--db", str(db), "set-sites", "iris", "--study", "s", "--sites", "01")
    assert r.returncode == 0 and r.stdout.strip() == "sites of iris: S:02;s:01", r.stdout
    assert f"warning: no subject of study s in {db} (studies there: S, T)" in r.stderr


def test_an_account_whose_sites_name_no_study_is_listed_as_refused_until_set_sites_names_it(tmp_path):
    """An account file of an earlier celltox: its investigator may not act (review --as says why and how to fix
    it: test_access_studies), `users list` shows the account refused and the command that fixes it."""
    import yaml
    path = tmp_path / "users.yaml"
    r = _users("add", "carol", "--role", "committee", "--password-stdin", "--users", str(path), stdin=PW1 + "\n")
    assert r.returncode == 0, r.stderr
    data = yaml.safe_load(path.read_text())
    data["users"]["ivan"] = dict(data["users"]["carol"], role="investigator", sites=["01"])
    path.write_text(yaml.safe_dump(data))
    r = _users("list", "--users", str(path))
    listed = {line.split()[0]: line.split()[2:4] for line in r.stdout.splitlines()[1:]}
    assert listed == {"carol": ["all", "active"], "ivan": ["01", "refused"]}
    assert r.stderr.strip() == (f"error: account 'ivan' lists sites 01 without their study (an account file of an "
                                f"earlier celltox), so it may not sign in or act until an administrator names the "
                                f"study: python -m safety users set-sites ivan --study STUDY --sites 01 --users {path}")
    assert json.loads(_users("list", "--json", "--users", str(path)).stdout)[1]["problem"] == r.stderr[7:].strip()
    r = _users("set-sites", "ivan", "--study", "ITNK-B-01", "--sites", "01", "--users", str(path))
    assert r.returncode == 0, r.stderr
    r = _users("list", "--users", str(path))
    assert "ITNK-B-01:01" in r.stdout and "refused" not in r.stdout and r.stderr == ""
    assert UserStore(path).authenticate("ivan", PW1).sites == (("ITNK-B-01", ("01",)),)


def test_a_home_relative_account_file_is_the_one_the_app_reads(tmp_path, monkeypatch):
    # A service's environment file passes CELLTOX_USERS with its '~' unexpanded; the app and the commands resolve
    # it alike, so the account an operator adds is the one the sign-in form finds.
    from safety.access.auth import AccessPolicy

    home = tmp_path / "home"
    home.mkdir()
    env = {"CELLTOX_USERS": "~/accounts.yaml", "HOME": str(home)}
    r = _users("add", "carol", "--role", "committee", "--password-stdin", stdin=PW1 + "\n", env_extra=env)
    assert r.returncode == 0, r.stderr
    assert UserStore(home / "accounts.yaml").authenticate("carol", PW1).role == "committee"
    assert not (ROOT / "~").exists()
    monkeypatch.setenv("HOME", str(home))
    policy = AccessPolicy.from_env(tmp_path / "study.duckdb", env={"CELLTOX_USERS": "~/accounts.yaml"})
    assert policy.users_path == home / "accounts.yaml"
    # --users given on the command line wins over the setting
    other = tmp_path / "other.yaml"
    r = _users("add", "dave", "--role", "data_manager", "--password-stdin", "--users", str(other),
               stdin=PW1 + "\n", env_extra=env)
    assert r.returncode == 0, r.stderr
    assert "dave" in other.read_text() and "dave" not in (home / "accounts.yaml").read_text()


def test_an_account_file_or_review_store_that_cannot_be_written_is_refused_before_the_change(tmp_path,
                                                                                          unwritable_folder):
    """It exited 1 naming users.yaml.lock; with a review store it could not write, the account was added and
    its audit entry failed (exit 1, 'unable to open database file'). Exit 2, one line, nothing changed."""
    path = unwritable_folder / "users.yaml"
    r = _users("add", "carol", "--role", "committee", "--password-stdin", "--users", str(path), stdin=PW1 + "\n")
    assert (r.returncode, r.stderr.strip()) == (2, f"error: {path}: the folder {unwritable_folder} is not writable")
    path = tmp_path / "users.yaml"
    review = unwritable_folder / "study.review.sqlite"
    for args in (("add", "carol", "--role", "committee", "--password-stdin"), ("unlock", "carol")):
        r = _users(*args, "--users", str(path), "--review-db", str(review), stdin=PW1 + "\n")
        assert (r.returncode, r.stderr.strip()) == (
            2, f"error: {review}: the folder {unwritable_folder} is not writable")
    assert not path.exists() and list(unwritable_folder.iterdir()) == []
    r = _users("list", "--users", str(unwritable_folder / "users.yaml"))  # reads only
    assert r.returncode == 0 and r.stderr == ""


def test_users_refuses_an_account_file_in_a_missing_folder(tmp_path):
    """A mistyped --users path made its folders and an account file nothing reads; now one line, exit 2, nothing
    created (as ingest and export refuse a path in a missing folder)."""
    path = tmp_path / "missing" / "dir" / "users.yaml"
    r = _users("--users", str(path), "add", "z", "--role", "committee", "--password-stdin", stdin=PW1 + "\n")
    assert (r.returncode, r.stdout, r.stderr) == (2, "", f"error: {path}: the folder {path.parent} does not exist\n")
    assert not (tmp_path / "missing").exists()

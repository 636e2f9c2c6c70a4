"""Accounts, roles, permissions, the sign-in policy, sessions and the OIDC role mapping."""
from __future__ import annotations

import datetime as dt
import os
import stat

import bcrypt
import pytest
import yaml

from access_fixtures import ACCOUNTS, OTHER_STUDY, PASSWORD, STUDY, make_users
from safety.access import auth
from safety.access.auth import (
    DEMO_USER, AccessPolicy, AuthError, User, UserStore, can_adjudicate, can_export, can_manage_users,
    can_sign_off, can_view_audit, can_view_data_quality, can_view_patient_data, can_view_study_aggregates,
    oidc_user, scope_for, session_expired,
)

CUT = dt.date(2024, 6, 1)


@pytest.fixture
def users(tmp_path):
    return make_users(tmp_path / "users.yaml")


@pytest.fixture
def store(tmp_path, users):
    return UserStore(tmp_path / "users.yaml", rounds=4)


# -- roles and permissions -----------------------------------------------------------------------
PERMS = {  # role: (adjudicate, sign_off, export, data_quality, audit, manage_users, patient_data, aggregates)
    "committee":        (True, True, True, True, True, False, True, True),
    "investigator_101": (False, False, False, False, False, False, True, False),
    "data_manager":     (False, False, True, True, False, False, True, True),
    "admin":            (False, False, False, False, True, True, False, False),
}


@pytest.mark.parametrize("key", PERMS)
def test_permission_matrix(users, key):
    u = users[key]
    got = (can_adjudicate(u), can_sign_off(u), can_export(u), can_view_data_quality(u), can_view_audit(u),
           can_manage_users(u), can_view_patient_data(u), can_view_study_aggregates(u))
    assert got == PERMS[key]


def test_scope_for_each_role(users):
    assert scope_for(users["committee"], STUDY, CUT).sites is None
    assert scope_for(users["data_manager"], STUDY, CUT).sites is None
    assert scope_for(users["investigator_101"], STUDY, CUT).sites == ("101",)
    assert scope_for(users["admin"], STUDY, CUT).sites == ()  # no patient data for admin
    s = scope_for(users["investigator_102"], STUDY, CUT, dt.date(2024, 3, 1))
    assert s.previous_cut == dt.date(2024, 3, 1) and s.data_cut == CUT and s.studyid == STUDY


def test_an_investigators_sites_are_of_their_study_only(users):
    """Site 101 of another study is another centre (SITEID is unique only within a study): the investigator of
    the first study's site 101 got site 101 of every study."""
    assert scope_for(users["investigator_101"], OTHER_STUDY, CUT).sites == ()  # as empty as admin's
    assert scope_for(users["committee"], OTHER_STUDY, CUT).sites is None
    assert auth.studies_for(users["investigator_101"], [OTHER_STUDY, STUDY]) == [STUDY]
    assert auth.studies_for(users["data_manager"], [OTHER_STUDY, STUDY]) == [OTHER_STUDY, STUDY]
    both = User("x", "investigator", {STUDY: ["101"], OTHER_STUDY: ("102", "103")})
    assert scope_for(both, OTHER_STUDY, CUT).sites == ("102", "103") and scope_for(both, STUDY, CUT).sites == ("101",)


def test_user_validation():
    with pytest.raises(AuthError):
        User("x", "superuser")
    with pytest.raises(AuthError):
        User("x", "investigator", None)  # an investigator without sites would otherwise see all
    with pytest.raises(AuthError, match="per study"):
        User("x", "investigator", ["101"])  # whose site 101?
    with pytest.raises(AuthError):
        User("x", "investigator", {"S": []})
    assert User("x", "investigator", {"S": ["101"]}).sites == (("S", ("101",)),)
    assert DEMO_USER.demo and DEMO_USER.role == "committee"


# -- the account file ----------------------------------------------------------------------------
def test_file_holds_hashes_only_and_is_private(tmp_path, users):
    path = tmp_path / "users.yaml"
    text = path.read_text()
    assert PASSWORD not in text
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    data = yaml.safe_load(text)["users"]
    assert set(data) == {name for name, _, _ in ACCOUNTS.values()}
    for rec in data.values():
        assert rec["password_hash"].startswith("$2b$")
    assert data["ivan"]["sites"] == {STUDY: ["101"]} and data["carol"]["sites"] is None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".users-")]  # no temp file left


def test_authenticate_right_and_wrong(store):
    u = store.authenticate("ivan", PASSWORD)
    assert u == User("ivan", "investigator", {STUDY: ("101",)}, "Ivan")
    assert store.authenticate("ivan", PASSWORD + "x") is None
    assert store.authenticate("ivan", PASSWORD.upper()) is None
    assert store.authenticate("ivan", "") is None
    assert store.authenticate("IVAN", PASSWORD) is None
    assert store.authenticate("nobody", PASSWORD) is None
    assert store.authenticate("ivan", PASSWORD + "x" * 80) is None  # bcrypt would truncate at 72 bytes


def test_unknown_user_still_runs_bcrypt(store, monkeypatch):
    calls = []
    real = bcrypt.checkpw
    monkeypatch.setattr(auth.bcrypt, "checkpw", lambda pw, h: calls.append(h) or real(pw, h))
    assert store.authenticate("nobody", PASSWORD) is None
    assert store.authenticate("' OR 1=1 --", PASSWORD) is None
    assert len(calls) == 2


def test_disabled_account_cannot_sign_in(store):
    store.set_disabled("carol")
    assert store.authenticate("carol", PASSWORD) is None and store.get("carol") is None
    store.set_disabled("carol", False)
    assert store.authenticate("carol", PASSWORD).role == "committee"


def test_set_password_and_remove(store):
    store.set_password("dana", "a brand new passphrase")
    assert store.authenticate("dana", PASSWORD) is None
    assert store.authenticate("dana", "a brand new passphrase").role == "data_manager"
    store.remove("dana")
    assert store.authenticate("dana", "a brand new passphrase") is None
    assert "dana" not in {u["username"] for u in store.list()}
    with pytest.raises(AuthError):
        store.remove("dana")


@pytest.mark.parametrize("kwargs,msg", [
    ({"username": "carol"}, "exists"),
    ({"username": "a b"}, "username"),
    ({"username": "x'; DROP TABLE--"}, "username"),
    ({"username": "../../etc/passwd"}, "username"),
    ({"role": "root"}, "role"),
    ({"role": "investigator", "sites": None}, "site"),
    ({"role": "committee", "sites": "101"}, "sites are only"),
    ({"role": "investigator", "study": "S", "sites": "101,'; --"}, "invalid site id"),
    ({"role": "investigator", "sites": "101"}, "sites belong to a study"),
    ({"role": "investigator", "study": "S", "sites": ""}, "at least one site"),
    ({"role": "investigator", "study": "S\nX", "sites": "101"}, "invalid study id"),
    ({"role": "committee", "study": "S"}, "sites are only"),
    ({"password": "short"}, "at least"),
    ({"password": "x" * 73}, "72"),
])
def test_invalid_accounts_refused(store, kwargs, msg):
    args = {"username": "newbie", "role": "committee", "password": PASSWORD, "sites": None}
    args.update(kwargs)
    before = store.path.read_bytes()
    with pytest.raises(AuthError, match=msg):
        store.add(**args)
    assert store.path.read_bytes() == before


def test_hand_edited_bad_record_signs_nobody_in(tmp_path):
    path = tmp_path / "users.yaml"
    h = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    path.write_text(yaml.safe_dump({"users": {
        "eve": {"role": "investigator", "sites": None, "password_hash": h},  # no sites: would be all
        "mal": {"role": "god", "password_hash": h},
    }}))
    s = UserStore(path, rounds=4)
    assert s.authenticate("eve", PASSWORD) is None
    assert s.authenticate("mal", PASSWORD) is None


# -- sign-in policy ------------------------------------------------------------------------------
def test_policy_defaults_require_sign_in(tmp_path):
    p = AccessPolicy.from_env(tmp_path / "study.duckdb", is_sample_db=False, env={})
    assert p.mode == "required" and not p.demo and p.session_minutes == 30
    assert p.users_path == (tmp_path / "users.yaml").resolve()


def test_policy_sample_db_is_demo_unless_sign_in_asked(tmp_path):
    db = tmp_path / "sample.duckdb"
    assert AccessPolicy.from_env(db, is_sample_db=True, env={}).demo
    assert not AccessPolicy.from_env(db, is_sample_db=True, env={"CELLTOX_AUTH": "required"}).demo
    assert not AccessPolicy.from_env(db, is_sample_db=False, env={}).demo
    assert AccessPolicy.from_env(db, is_sample_db=True, env={"CELLTOX_AUTH": "demo"}).demo
    with pytest.raises(AuthError):
        AccessPolicy.from_env(db, is_sample_db=False, env={"CELLTOX_AUTH": "demo"})


def test_policy_from_env_values(tmp_path):
    env = {"CELLTOX_AUTH": "OIDC", "CELLTOX_USERS": str(tmp_path / "acc.yaml"),
           "CELLTOX_SESSION_MINUTES": "15", "CELLTOX_OIDC_PROVIDER": "okta"}
    p = AccessPolicy.from_env(tmp_path / "x.duckdb", env=env)
    assert (p.mode, p.users_path, p.session_minutes, p.oidc_provider) == ("oidc", tmp_path / "acc.yaml", 15.0, "okta")
    assert AccessPolicy.from_env(None, env={"CELLTOX_AUTH": "off"}).mode == "off"


@pytest.mark.parametrize("env", [{"CELLTOX_AUTH": "none"}, {"CELLTOX_AUTH": "of"},
                                 {"CELLTOX_SESSION_MINUTES": "thirty"}, {"CELLTOX_SESSION_MINUTES": "0"}])
def test_policy_refuses_unreadable_settings(tmp_path, env):
    with pytest.raises(AuthError):
        AccessPolicy.from_env(tmp_path / "x.duckdb", env=env)


def test_policy_reads_the_lockout_settings(tmp_path):
    p = AccessPolicy.from_env(tmp_path / "x.duckdb", env={})
    assert (p.lockout_attempts, p.lockout_minutes) == (5, 15)
    p = AccessPolicy.from_env(tmp_path / "x.duckdb", env={"CELLTOX_LOCKOUT_ATTEMPTS": "3", "CELLTOX_LOCKOUT_MINUTES": "60"})
    assert (p.lockout_attempts, p.lockout_minutes) == (3, 60)
    for bad in ({"CELLTOX_LOCKOUT_ATTEMPTS": "-1"}, {"CELLTOX_LOCKOUT_ATTEMPTS": "2.5"},
                {"CELLTOX_LOCKOUT_MINUTES": "0"}, {"CELLTOX_LOCKOUT_ATTEMPTS": "five"}):
        with pytest.raises(AuthError):
            AccessPolicy.from_env(tmp_path / "x.duckdb", env=bad)


def test_failed_sign_ins_lock_a_username_for_the_window(tmp_path):
    from safety.review.store import ReviewStore
    store = ReviewStore(tmp_path / "r.sqlite")
    for _ in range(4):
        store.append_audit("carol", "sign_in_failure")
    store.append_audit("dave", "sign_in_failure")
    now = dt.datetime.now(dt.timezone.utc)
    assert auth.sign_in_locked_until(store, "carol", now) is None  # 4 of 5
    store.append_audit("carol", "sign_in_failure")
    now = dt.datetime.now(dt.timezone.utc)
    first = dt.datetime.fromisoformat(store.audit_entries(username="carol")[0]["at"])
    until = auth.sign_in_locked_until(store, "carol", now)
    assert until == first + dt.timedelta(minutes=15)
    assert auth.sign_in_locked_until(store, "dave", now) is None
    assert auth.sign_in_locked_until(store, "carol", now, attempts=6) is None
    assert auth.sign_in_locked_until(store, "carol", now, attempts=0) is None  # lock turned off
    # the lock lifts when the first of the five failures leaves the window
    assert auth.sign_in_locked_until(store, "carol", until + dt.timedelta(seconds=1)) is None
    # a successful sign-in restarts the count
    store.append_audit("carol", "sign_in_success")
    assert auth.sign_in_locked_until(store, "carol", dt.datetime.now(dt.timezone.utc)) is None


def test_session_expiry():
    t0 = dt.datetime(2024, 6, 1, 9, 0, tzinfo=dt.timezone.utc)
    m = dt.timedelta(minutes=1)
    assert not session_expired(t0, t0 + 10 * m, t0 + 40 * m, idle_minutes=30)
    assert session_expired(t0, t0 + 10 * m, t0 + 41 * m, idle_minutes=30)
    # active all day still ends at the absolute limit
    late = t0 + dt.timedelta(hours=12, minutes=1)
    assert session_expired(t0, late - m, late, idle_minutes=30, max_hours=12)
    assert not session_expired(t0, late - m, late, idle_minutes=30, max_hours=13)


# -- OIDC mapping --------------------------------------------------------------------------------
def test_oidc_maps_email_to_account(tmp_path):
    s = UserStore(tmp_path / "u.yaml", rounds=4)
    s.add("ivan", "investigator", PASSWORD, study="S", sites="101", email="Ivan@Site101.example.org")
    s.add("carol", "committee", PASSWORD, email="carol@dsmb.example.org")
    s.add("dup1", "committee", PASSWORD, email="shared@example.org")
    s.add("dup2", "data_manager", PASSWORD, email="shared@example.org")
    u = oidc_user(s, {"email": "ivan@site101.example.org", "email_verified": True})
    assert (u.username, u.role, u.sites) == ("ivan", "investigator", (("S", ("101",)),))
    assert oidc_user(s, {"email": "stranger@example.org"}) is None
    assert oidc_user(s, {"email": "carol@dsmb.example.org", "email_verified": False}) is None
    assert oidc_user(s, {"email": ""}) is None and oidc_user(s, {}) is None
    assert oidc_user(s, {"email": "shared@example.org"}) is None  # ambiguous: no guess
    s.set_disabled("carol")
    assert oidc_user(s, {"email": "carol@dsmb.example.org"}) is None


# -- a hand-edited account file is validated strictly ------------------------------------------------
def _hand_edited(tmp_path, **record) -> UserStore:
    h = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    path = tmp_path / "users.yaml"
    path.write_text(yaml.safe_dump({"users": {
        "ok": {"role": "investigator", "sites": {"S": ["02"]}, "password_hash": h},
        "acct": {"password_hash": h, **record}}}))
    path.chmod(0o600)
    return UserStore(path, rounds=4)


@pytest.mark.parametrize("record, says", [
    ({"role": "committee", "sites": ["01"]}, "role committee covers all sites"),
    ({"role": "investigator", "sites": "01"}, "lists of quoted site ids"),   # not sites 0 and 1
    ({"role": "investigator", "sites": 1}, "lists of quoted site ids"),       # not a traceback
    ({"role": "investigator", "sites": {}}, "lists of quoted site ids"),
    ({"role": "investigator", "sites": [1]}, "site 1 is not text"),
    ({"role": "investigator", "sites": {"S": "01"}}, "the sites of study S must be a list of quoted site ids"),
    ({"role": "investigator", "sites": {"S": [1]}}, "site 1 is not text"),
    ({"role": "investigator", "sites": {1: ["01"]}}, "study 1 is not a study id"),
    ({"role": "admin", "sites": ["01"]}, "role admin covers no sites"),
    ({"role": "investigator", "sites": ["01"], "disabled": "no"}, "disabled must be true or false"),
    ({"role": "committee", "site": ["01"]}, "unknown field 'site'"),
    ({"role": "superuser"}, "role 'superuser' is not one of"),
])
def test_misstated_account_is_refused_with_one_line_naming_it(tmp_path, record, says):
    store = _hand_edited(tmp_path, **record)
    with pytest.raises(AuthError) as err:
        store.check()
    msg = str(err.value)
    assert "account 'acct'" in msg and says in msg and "\n" not in msg, msg
    # nobody signs in with such a file, not even the valid account beside it
    assert store.authenticate("acct", PASSWORD) is None and store.authenticate("ok", PASSWORD) is None
    # the administrator can still fix it with the command line
    store.remove("acct")
    assert store.check() == [] and store.authenticate("ok", PASSWORD).sites == (("S", ("02",)),)


def test_an_account_whose_sites_name_no_study_is_refused_alone_and_named_with_its_fix(tmp_path):
    """An account file of an earlier celltox lists an investigator's sites without their study. Which study's
    site 01 was meant is not guessed: that account may not sign in (the others may), with one line naming it and
    the command that fixes it; the list shows it."""
    store = _hand_edited(tmp_path, role="investigator", sites=["01", "02"])
    assert store.check() == []  # well-formed: the file is not refused as a whole
    assert store.authenticate("ok", PASSWORD).sites == (("S", ("02",)),)
    fix = f"python -m safety users set-sites acct --study STUDY --sites 01,02 --users {store.path}"
    for attempt in (lambda: store.get("acct"), lambda: store.authenticate("acct", PASSWORD)):
        with pytest.raises(auth.AccountRefused) as err:
            attempt()
        msg = str(err.value)
        assert msg.startswith("account 'acct' lists sites 01,02 without their study") and fix in msg, msg
        assert "\n" not in msg
    assert store.authenticate("acct", "not the password") is None  # a wrong password learns nothing more
    rows = {u["username"]: u for u in store.list()}
    assert rows["acct"]["problem"].endswith(fix) and rows["ok"]["problem"] is None
    # the administrator names the study: the old list is replaced, not kept as sites of it
    assert store.set_sites("acct", "CD56-CART-01", "01") == {"CD56-CART-01": ("01",)}
    assert store.authenticate("acct", PASSWORD).sites == (("CD56-CART-01", ("01",)),)
    assert store.set_sites("acct", "ITNK-B-01", "02,03") == {"CD56-CART-01": ("01",), "ITNK-B-01": ("02", "03")}
    assert store.set_sites("acct", "CD56-CART-01", "") == {"ITNK-B-01": ("02", "03")}
    with pytest.raises(AuthError, match="at least one site"):
        store.set_sites("acct", "ITNK-B-01", "")
    store.add("cora", "committee", PASSWORD)
    with pytest.raises(AuthError, match="only for investigators"):
        store.set_sites("cora", "S", "01")


def test_loose_account_file_permissions_are_warned_about(tmp_path, users):
    path = tmp_path / "users.yaml"
    assert UserStore(path).check() == []
    path.chmod(0o666)
    (warning,) = UserStore(path).check()
    assert "every user of this machine and its group" in warning and "chmod 600" in warning
    path.chmod(0o620)
    assert "its group" in UserStore(path).check()[0]


# -- the server-side session registry ------------------------------------------------------------------
def test_session_registry_timeouts_revocation_and_client_binding():
    reg = auth.SessionRegistry()
    t0 = dt.datetime(2024, 6, 1, 9, 0, tzinfo=dt.timezone.utc)
    token = reg.create("carol", "password", t0, client="browser-a")
    assert reg.resume(token, t0 + dt.timedelta(minutes=10), 30, 12, "browser-a")[0] == "ok"
    assert reg.resume(token, t0 + dt.timedelta(minutes=11), 30, 12, "browser-b") == ("unknown", None)
    assert reg.resume(token, t0 + dt.timedelta(minutes=39), 30, 12, "browser-a")[0] == "ok"  # idle clock restarted
    status, rec = reg.resume(token, t0 + dt.timedelta(minutes=70), 30, 12, "browser-a")
    assert status == "expired" and rec.username == "carol"
    assert reg.resume(token, t0 + dt.timedelta(minutes=71), 30, 12, "browser-a")[0] == "unknown"  # gone
    t = reg.create("dana", "password", t0)
    for minute in range(0, 12 * 60 + 21, 20):  # active all day: the absolute limit still ends it
        status, _ = reg.resume(t, t0 + dt.timedelta(minutes=minute), 30, 12)
    assert status == "expired"
    a, b = reg.create("ivan", "password", t0), reg.create("ivan", "oidc", t0)
    assert reg.revoke_user("ivan") == 2 and reg.resume(a, t0, 30, 12)[0] == "unknown"
    c = reg.create("eve", "password", t0)
    assert reg.revoke(c).username == "eve" and reg.resume(c, t0, 30, 12)[0] == "unknown"

"""The Streamlit sign-in gate (dashboard/auth.py) run headless with AppTest."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from access_fixtures import PASSWORD, make_users
from safety.review.store import ReviewStore, verify_audit_chain

ROOT = Path(__file__).resolve().parents[1]

APP = f"""
import os, sys
from pathlib import Path
sys.path.insert(0, {str(ROOT)!r})
import streamlit as st
from safety.access.auth import AccessPolicy
from safety.review.store import ReviewStore
from dashboard.auth import sign_in_gate, demo_banner, log_subject_view

policy = AccessPolicy(mode=os.environ["T_MODE"], users_path=Path(os.environ["T_USERS"]),
                      session_minutes=30, demo=os.environ.get("T_DEMO") == "1")
store = ReviewStore(os.environ["T_REVIEW"])
user = sign_in_gate(policy, store)
demo_banner()
st.markdown(f"PAGE for {{user.username}} as {{user.role}}")
if os.environ.get("T_VIEW"):
    log_subject_view(store, user, "CTX-001", "2024-06-01", os.environ["T_VIEW"])
"""


@pytest.fixture
def app(tmp_path, monkeypatch):
    make_users(tmp_path / "users.yaml")
    script = tmp_path / "app.py"
    script.write_text(APP)
    monkeypatch.setenv("T_MODE", "required")
    monkeypatch.setenv("T_USERS", str(tmp_path / "users.yaml"))
    monkeypatch.setenv("T_REVIEW", str(tmp_path / "r.sqlite"))
    monkeypatch.delenv("T_DEMO", raising=False)
    monkeypatch.delenv("T_VIEW", raising=False)
    return script


def _texts(at) -> str:
    parts = [m.value for m in at.markdown] + [w.value for w in at.warning] + [e.value for e in at.error]
    parts += [i.value for i in at.info] + [c.value for c in at.caption]
    return "\n".join(str(p) for p in parts)


def _sign_in(at, username, password):
    at.text_input(key="celltox_username").input(username)
    at.text_input(key="celltox_password").input(password)
    at.button[0].click()
    return at.run()


def _actions(tmp_path):
    return [(e["username"], e["action"]) for e in ReviewStore(tmp_path / "r.sqlite").audit_entries()]


def test_demo_mode_needs_no_sign_in_and_is_labelled(app, monkeypatch, tmp_path):
    monkeypatch.setenv("T_DEMO", "1")
    at = AppTest.from_file(str(app)).run()
    assert not at.exception
    assert "PAGE for demo as committee" in _texts(at)
    assert sum("DEMO — synthetic sample data" in w.value for w in at.warning) == 1  # once, not twice
    assert not at.text_input  # no sign-in form


def test_sign_in_required_shows_only_the_form(app):
    at = AppTest.from_file(str(app)).run()
    assert not at.exception
    assert "PAGE for" not in _texts(at)
    from streamlit.proto.TextInput_pb2 import TextInput
    assert at.text_input(key="celltox_password").proto.type == TextInput.PASSWORD  # masked


def test_wrong_password_is_refused_and_audited(app, tmp_path):
    at = _sign_in(AppTest.from_file(str(app)).run(), "carol", "not the password")
    assert "PAGE for" not in _texts(at)
    assert "wrong password" in _texts(at)
    at = _sign_in(at, "nobody", PASSWORD)
    assert "PAGE for" not in _texts(at)
    assert _actions(tmp_path) == [("carol", "sign_in_failure"), ("nobody", "sign_in_failure")]
    store_text = (tmp_path / "r.sqlite").read_bytes()
    assert b"not the password" not in store_text and PASSWORD.encode() not in store_text


def test_repeated_wrong_passwords_lock_the_username_not_others(app, tmp_path):
    at = AppTest.from_file(str(app)).run()
    for _ in range(5):
        at = _sign_in(at, "carol", "not the password")
    # the right password no longer helps: the name is locked, and the password is not checked
    at = _sign_in(at, "carol", PASSWORD)
    assert "PAGE for" not in _texts(at)
    assert "Too many failed sign-ins" in _texts(at) and "UTC" in _texts(at)
    assert _actions(tmp_path) == [("carol", "sign_in_failure")] * 5 + [("carol", "sign_in_locked")]
    at = _sign_in(at, "ivan", PASSWORD)
    assert "PAGE for ivan as investigator" in _texts(at)
    assert verify_audit_chain(tmp_path / "r.sqlite")[0]


def test_sign_in_success_then_sign_out(app, tmp_path):
    at = AppTest.from_file(str(app))
    at.query_params.update(studyid="CTX-001", usubjid="CTX-001-102-007")  # the page the user had open
    at = _sign_in(at.run(), "ivan", PASSWORD)
    assert not at.exception
    assert "PAGE for ivan as investigator" in _texts(at)
    assert "sites 101" in _texts(at)
    assert not at.warning  # no demo banner for a real sign-in
    at.sidebar.button(key="celltox_sign_out").click()
    at = at.run()
    assert "PAGE for" not in _texts(at) and "signed out" in _texts(at)
    # the next user signing in on this tab is not sent to the subject the one who left had open
    assert "usubjid" not in at.query_params and "studyid" not in at.query_params
    assert _actions(tmp_path) == [("ivan", "sign_in_success"), ("ivan", "sign_out")]
    assert verify_audit_chain(tmp_path / "r.sqlite")[0]


def _session(at):
    """The server-side record of this browser's session (the idle clock lives there, shared by its tabs)."""
    from dashboard.auth import SESSIONS
    return SESSIONS.record(at.session_state["celltox_session_token"])


def test_idle_session_expires(app, tmp_path):
    at = _sign_in(AppTest.from_file(str(app)).run(), "carol", PASSWORD)
    assert "PAGE for carol" in _texts(at)
    _session(at).last_activity = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=31)
    at = at.run()
    assert "PAGE for" not in _texts(at)
    assert "expired" in _texts(at)
    assert _actions(tmp_path)[-1] == ("carol", "session_expired")


def test_active_session_stays_signed_in(app):
    at = _sign_in(AppTest.from_file(str(app)).run(), "carol", PASSWORD)
    _session(at).last_activity = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=29)
    at = at.run()
    assert "PAGE for carol" in _texts(at)


def test_removed_account_is_signed_out_at_next_run(app, tmp_path):
    from safety.access.auth import UserStore
    at = _sign_in(AppTest.from_file(str(app)).run(), "dana", PASSWORD)
    assert "PAGE for dana" in _texts(at)
    UserStore(tmp_path / "users.yaml").set_disabled("dana")
    at = at.run()
    assert "PAGE for" not in _texts(at) and "no longer active" in _texts(at)
    assert _actions(tmp_path)[-1] == ("dana", "session_revoked")


def test_subject_view_audited_once_per_profile(app, tmp_path, monkeypatch):
    monkeypatch.setenv("T_VIEW", "CTX-001-101-001")
    at = _sign_in(AppTest.from_file(str(app)).run(), "ivan", PASSWORD)
    at.run()
    at.run()  # widget reruns do not log again
    views = ReviewStore(tmp_path / "r.sqlite").audit_entries(action="view_subject")
    assert len(views) == 1 and views[0]["username"] == "ivan"
    assert json.loads(views[0]["detail"]) == {"usubjid": "CTX-001-101-001", "data_cut": "2024-06-01"}


def test_auth_off_is_labelled(app, monkeypatch):
    monkeypatch.setenv("T_MODE", "off")
    at = AppTest.from_file(str(app)).run()
    assert "PAGE for local as committee" in _texts(at)
    assert "Sign-in is turned off" in _texts(at)


# -- sessions across reloads and tabs ------------------------------------------------------------------
def _reload(app, at):
    """What a reload or a new tab does: a fresh browser session holding only the URL (with its token)."""
    fresh = AppTest.from_file(str(app))
    for k, v in at.query_params.items():
        fresh.query_params[k] = v
    return fresh.run()


def test_reload_and_new_tab_keep_the_session(app, tmp_path):
    at = _sign_in(AppTest.from_file(str(app)).run(), "ivan", PASSWORD)
    token = at.query_params["session"]
    assert len(token) >= 40 and at.session_state["celltox_session_token"] == token
    reloaded = _reload(app, at)
    assert "PAGE for ivan as investigator" in _texts(reloaded) and not reloaded.text_input
    assert _actions(tmp_path) == [("ivan", "sign_in_success")]  # no second sign-in
    from dashboard.auth import SESSIONS
    assert SESSIONS.record("not-" + token) is None  # the registry keys on the exact token


def test_sign_out_revokes_the_token_in_every_tab(app, tmp_path):
    at = _sign_in(AppTest.from_file(str(app)).run(), "ivan", PASSWORD)
    token = at.query_params["session"]
    other_tab = _reload(app, at)
    at.sidebar.button(key="celltox_sign_out").click()
    at = at.run()
    assert "session" not in at.query_params
    other_tab = other_tab.run()  # the next interaction in the other tab
    assert "PAGE for" not in _texts(other_tab) and other_tab.text_input(key="celltox_password")
    stale = AppTest.from_file(str(app))
    stale.query_params["session"] = token  # the old URL, from the history
    assert "PAGE for" not in _texts(stale.run())
    assert _actions(tmp_path) == [("ivan", "sign_in_success"), ("ivan", "sign_out")]


def test_reload_after_idle_or_absolute_timeout_asks_to_sign_in(app, tmp_path):
    at = _sign_in(AppTest.from_file(str(app)).run(), "carol", PASSWORD)
    _session(at).last_activity -= dt.timedelta(minutes=31)
    reloaded = _reload(app, at)
    assert "PAGE for" not in _texts(reloaded) and "expired" in _texts(reloaded)
    assert _actions(tmp_path)[-1] == ("carol", "session_expired")
    at = _sign_in(AppTest.from_file(str(app)).run(), "carol", PASSWORD)
    _session(at).signed_in_at -= dt.timedelta(hours=12, minutes=1)  # active, but open too long
    reloaded = _reload(app, at)
    assert "PAGE for" not in _texts(reloaded) and "expired" in _texts(reloaded)


def test_forged_or_unknown_token_signs_nobody_in(app):
    at = AppTest.from_file(str(app))
    at.query_params["session"] = "A" * 43
    at = at.run()
    assert "PAGE for" not in _texts(at) and at.text_input(key="celltox_password")
    assert "session" not in at.query_params


def test_sign_in_keeps_the_requested_subject(app):
    at = AppTest.from_file(str(app))
    at.query_params["usubjid"] = "CTX-001-101-001"
    at.query_params["cut"] = "2024-06-01"
    at = _sign_in(at.run(), "ivan", PASSWORD)
    assert "PAGE for ivan" in _texts(at)
    assert at.query_params["usubjid"] == "CTX-001-101-001" and at.query_params["cut"] == "2024-06-01"


def test_misstated_account_file_refuses_sign_in_with_one_line(app, tmp_path):
    import yaml
    path = tmp_path / "users.yaml"
    data = yaml.safe_load(path.read_text())
    data["users"]["carol"]["sites"] = ["01"]
    path.write_text(yaml.safe_dump(data))
    at = AppTest.from_file(str(app)).run()
    assert not at.exception and not at.text_input
    assert any("account 'carol'" in e.value and "covers all sites" in e.value for e in at.error)


def test_group_writable_account_file_is_warned_about(app, tmp_path):
    (tmp_path / "users.yaml").chmod(0o664)
    at = AppTest.from_file(str(app)).run()
    assert any("can be written by its group" in w.value and "chmod 600" in w.value for w in at.warning)


def test_an_account_whose_sites_name_no_study_is_refused_at_sign_in_naming_the_fix(app, tmp_path):
    """ivan's sites ["101"] without their study (an account file of an earlier celltox) signed him in to site 101
    of every study. With the right password he is now told why he may not sign in and what fixes it; the other
    accounts still sign in, and the administrator is shown the account."""
    import yaml
    path = tmp_path / "users.yaml"
    data = yaml.safe_load(path.read_text())
    data["users"]["ivan"]["sites"] = ["101"]
    path.write_text(yaml.safe_dump(data))
    fix = f"python -m safety users set-sites ivan --study STUDY --sites 101 --users {path}"
    at = _sign_in(AppTest.from_file(str(app)).run(), "ivan", PASSWORD)
    assert not at.exception and "PAGE for" not in _texts(at)
    (refusal,) = [e.value for e in at.error]
    assert refusal.startswith("Sign-in refused: account 'ivan' lists sites 101 without their study") and fix in refusal
    at = _sign_in(AppTest.from_file(str(app)).run(), "ivan", "not the password")
    assert "without their study" not in _texts(at) and "wrong password" in _texts(at)
    assert _actions(tmp_path) == [("ivan", "sign_in_failure")] * 2
    at = _sign_in(AppTest.from_file(str(app)).run(), "adam", PASSWORD)
    assert "PAGE for adam as admin" in _texts(at)
    assert any(fix in w.value for w in at.sidebar.warning)

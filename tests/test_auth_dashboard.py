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
    at = _sign_in(AppTest.from_file(str(app)).run(), "ivan", PASSWORD)
    assert not at.exception
    assert "PAGE for ivan as investigator" in _texts(at)
    assert "sites 101" in _texts(at)
    assert not at.warning  # no demo banner for a real sign-in
    at.sidebar.button(key="celltox_sign_out").click()
    at = at.run()
    assert "PAGE for" not in _texts(at) and "signed out" in _texts(at)
    assert _actions(tmp_path) == [("ivan", "sign_in_success"), ("ivan", "sign_out")]
    assert verify_audit_chain(tmp_path / "r.sqlite")[0]


def test_idle_session_expires(app, tmp_path):
    at = _sign_in(AppTest.from_file(str(app)).run(), "carol", PASSWORD)
    assert "PAGE for carol" in _texts(at)
    at.session_state["celltox_last_activity"] = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=31)
    at = at.run()
    assert "PAGE for" not in _texts(at)
    assert "expired" in _texts(at)
    assert _actions(tmp_path)[-1] == ("carol", "session_expired")


def test_active_session_stays_signed_in(app):
    at = _sign_in(AppTest.from_file(str(app)).run(), "carol", PASSWORD)
    at.session_state["celltox_last_activity"] = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=29)
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

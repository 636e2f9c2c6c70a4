"""The Streamlit sign-in gate: demo mode, password sign-in, OIDC (st.login), session expiry, sign-out.

dashboard/app.py calls :func:`sign_in_gate` once per run, before ``st.navigation``; every page calls
:func:`demo_banner` (a no-op unless the app runs on the sample database or with sign-in off) and
:func:`log_subject_view` when it shows a subject profile. Roles and permissions are in safety/access/auth.py.
"""
from __future__ import annotations

import datetime as dt

import streamlit as st

from safety.access.auth import (
    AUTH_OFF_USER, DEMO_USER, ROLE_LABELS, AccessPolicy, AuthError, User, UserStore, oidc_user,
    can_view_patient_data, session_expired, sign_in_locked_until,
)

_USER = "celltox_user"
_SIGNED_IN_AT = "celltox_signed_in_at"
_LAST_ACTIVITY = "celltox_last_activity"
_METHOD = "celltox_auth_method"
_BANNER_SHOWN = "celltox_banner_shown"
_NOTICE = "celltox_auth_notice"
_LAST_VIEW = "celltox_last_subject_view"
_KEYS = (_USER, _SIGNED_IN_AT, _LAST_ACTIVITY, _METHOD, _LAST_VIEW)

DEMO_TEXT = "DEMO — synthetic sample data. No sign-in: you are a demo committee member."
AUTH_OFF_TEXT = "Sign-in is turned off (CELLTOX_AUTH=off): every visitor acts as a committee member."


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _audit(review_store, username: str, action: str, detail: dict | None = None) -> None:
    if review_store is not None:
        review_store.append_audit(username, action, None, detail or {})


def current_user() -> User | None:
    """The user of this browser session (after :func:`sign_in_gate`), else None."""
    return st.session_state.get(_USER)


def _end_session(review_store, action: str, notice: str | None = None) -> None:
    user = st.session_state.get(_USER)
    if user is not None and not user.demo and action:
        _audit(review_store, user.username, action, {"method": st.session_state.get(_METHOD)})
    for k in _KEYS:
        st.session_state.pop(k, None)
    if notice:
        st.session_state[_NOTICE] = notice


def demo_banner() -> None:
    """Show the DEMO (or sign-in off) banner. Call on every page; shown once per run."""
    if st.session_state.get(_BANNER_SHOWN):
        return
    user = st.session_state.get(_USER)
    if user is None:
        return
    if user.demo:
        st.warning(DEMO_TEXT, icon=":material/warning:")  # a font glyph: emoji render as boxes without emoji fonts
    elif st.session_state.get(_METHOD) == "off":
        st.error(AUTH_OFF_TEXT)
    else:
        return
    st.session_state[_BANNER_SHOWN] = True


def _sidebar(review_store, policy: AccessPolicy) -> None:
    user: User = st.session_state[_USER]
    with st.sidebar:
        if user.demo:
            st.markdown("**DEMO** · synthetic sample data")
            return
        where = ("no patient data" if not can_view_patient_data(user) else "all sites" if user.sites is None
                 else ("sites " + ", ".join(user.sites) if user.sites else "no sites"))
        st.caption(f"Signed in as **{user.display_name or user.username}** · {ROLE_LABELS[user.role]} · {where}")
        if st.session_state.get(_METHOD) == "off":
            return
        if st.button("Sign out", key="celltox_sign_out"):
            method = st.session_state.get(_METHOD)
            _end_session(review_store, "sign_out", "You are signed out.")
            if method == "oidc":
                st.logout()
            st.rerun()


def _refresh(user: User, policy: AccessPolicy, store: UserStore | None) -> User | None:
    """Re-read the account each run so a removed, disabled or changed account takes effect at once."""
    if store is None:
        return user
    try:
        if st.session_state.get(_METHOD) == "oidc":
            return oidc_user(store, {"email": user.email or ""})
        return store.get(user.username)
    except AuthError:
        return None


def _password_form(policy: AccessPolicy, store: UserStore, review_store) -> None:
    st.title("celltox · sign in")
    notice = st.session_state.pop(_NOTICE, None)
    if notice:
        st.info(notice)
    with st.form("celltox_sign_in", clear_on_submit=True):
        username = st.text_input("Username", key="celltox_username", autocomplete="username")
        password = st.text_input("Password", type="password", key="celltox_password",
                                 autocomplete="current-password")
        submitted = st.form_submit_button("Sign in")
    if not submitted:
        st.stop()
    username = (username or "").strip()
    locked_until = sign_in_locked_until(review_store, username or "(blank)", _now(),
                                        int(policy.lockout_attempts), policy.lockout_minutes)
    if locked_until is not None:
        # the password is not even checked, so a locked name cannot be used to guess it
        _audit(review_store, username[:64] or "(blank)", "sign_in_locked", {"method": "password",
                                                                           "until": locked_until.isoformat()})
        st.error(f"Too many failed sign-ins for this username. Try again after "
                 f"{locked_until:%H:%M} UTC, or ask an administrator to check the account.")
        st.stop()
    try:
        user = store.authenticate(username, password or "")
    except AuthError:
        user = None
    if user is None:
        # the attempted name is recorded (truncated), never the password
        _audit(review_store, username[:64] or "(blank)", "sign_in_failure", {"method": "password"})
        st.error("Unknown username or wrong password.")
        st.stop()
    now = _now()
    st.session_state.update({_USER: user, _SIGNED_IN_AT: now, _LAST_ACTIVITY: now, _METHOD: "password"})
    _audit(review_store, user.username, "sign_in_success", {"method": "password", "role": user.role})
    st.rerun()


def _oidc_gate(policy: AccessPolicy, store: UserStore, review_store) -> None:
    """OIDC via st.login; the role comes from users.yaml by the identity's e-mail."""
    st_user = st.user
    if not st_user.get("is_logged_in"):
        st.title("celltox · sign in")
        notice = st.session_state.pop(_NOTICE, None)
        if notice:
            st.info(notice)
        if st.button("Sign in with your organisation's account", key="celltox_oidc_login"):
            if policy.oidc_provider:
                st.login(policy.oidc_provider)
            else:
                st.login()
        st.stop()
    claims = {k: st_user.get(k) for k in ("email", "email_verified", "name", "sub")}
    user = oidc_user(store, claims)
    if user is None:
        _audit(review_store, (claims.get("email") or "(no e-mail)")[:128], "sign_in_failure",
               {"method": "oidc", "reason": "no enabled account with this e-mail"})
        st.error("Your identity is confirmed, but no celltox account is linked to it. Ask an administrator.")
        if st.button("Sign out", key="celltox_oidc_logout"):
            st.logout()
        st.stop()
    now = _now()
    st.session_state.update({_USER: user, _SIGNED_IN_AT: now, _LAST_ACTIVITY: now, _METHOD: "oidc"})
    _audit(review_store, user.username, "sign_in_success", {"method": "oidc", "role": user.role})


def sign_in_gate(policy: AccessPolicy, review_store) -> User:
    """Return the signed-in User, or render the sign-in page and stop the run.

    Demo mode returns :data:`safety.access.auth.DEMO_USER` and shows the DEMO banner. Otherwise the session
    expires after ``policy.session_minutes`` idle (audit 'session_expired'); sign-ins are audited as
    'sign_in_success' / 'sign_in_failure'."""
    st.session_state[_BANNER_SHOWN] = False
    if policy.demo:
        st.session_state.update({_USER: DEMO_USER, _METHOD: "demo"})
        demo_banner()
        _sidebar(review_store, policy)
        return DEMO_USER
    if policy.mode == "off":
        st.session_state.update({_USER: AUTH_OFF_USER, _METHOD: "off"})
        demo_banner()
        _sidebar(review_store, policy)
        return AUTH_OFF_USER
    if review_store is None:
        st.error("The review store (audit log) is not available, so sign-in is refused.")
        st.stop()
    if policy.users_path is None or not policy.users_path.exists():
        st.error("No account file: set CELLTOX_USERS or create accounts with `python -m safety users add`.")
        st.stop()
    store = UserStore(policy.users_path)

    user = st.session_state.get(_USER)
    if user is not None and (user.demo or st.session_state.get(_METHOD) not in ("password", "oidc")):
        for k in _KEYS:  # a leftover demo/off identity never carries into a signed-in app
            st.session_state.pop(k, None)
        user = None
    if user is not None:
        now = _now()
        if session_expired(st.session_state[_SIGNED_IN_AT], st.session_state[_LAST_ACTIVITY], now,
                           policy.session_minutes, policy.session_max_hours):
            method = st.session_state.get(_METHOD)
            _end_session(review_store, "session_expired", "Your session expired. Please sign in again.")
            if method == "oidc":
                st.logout()
            user = None
        else:
            fresh = _refresh(user, policy, store)
            if fresh is None:
                _end_session(review_store, "session_revoked", "Your account is no longer active.")
                user = None
            else:
                user = fresh
                st.session_state[_USER] = fresh
                st.session_state[_LAST_ACTIVITY] = now
    if user is None:
        if policy.mode == "oidc":
            _oidc_gate(policy, store, review_store)
        else:
            _password_form(policy, store, review_store)
        user = st.session_state[_USER]
    _sidebar(review_store, policy)
    return user


def log_subject_view(review_store, user: User, studyid: str, data_cut, usubjid: str) -> None:
    """Audit a subject-profile view ('view_subject'); reruns of the same profile are logged once."""
    key = (studyid, str(data_cut), usubjid)
    if st.session_state.get(_LAST_VIEW) == key:
        return
    _audit_view = {"usubjid": usubjid, "data_cut": str(data_cut)}
    if review_store is not None:
        review_store.append_audit(user.username, "view_subject", studyid, _audit_view)
    st.session_state[_LAST_VIEW] = key

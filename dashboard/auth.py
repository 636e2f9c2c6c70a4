"""The Streamlit sign-in gate: demo mode, password sign-in, OIDC (st.login), sessions, sign-out.

dashboard/app.py calls :func:`sign_in_gate` once per run, before ``st.navigation``, and
:func:`go_to_requested_page` right after it; every page calls :func:`demo_banner` (a no-op unless the app
runs on the sample database or with sign-in off) and :func:`log_subject_view` when it shows a subject profile.
Roles and permissions are in safety/access/auth.py.

Sessions survive a reload and carry over to a new tab: a signed-in browser holds an unguessable session
token in the URL (``?session=``), checked against the server-side :class:`SessionRegistry` on every run,
which applies the idle and absolute timeouts and forgets the token at sign-out (docs/access.md says why a
URL token and not a cookie).
"""
from __future__ import annotations

import datetime as dt
import hashlib
from urllib.parse import urlsplit

import streamlit as st

from safety.access.auth import (
    AUTH_OFF_USER, DEMO_USER, ROLE_LABELS, AccessPolicy, AccountRefused, AuthError, SessionRegistry, User, UserStore,
    can_view_patient_data, oidc_user, sign_in_locked_until,
)

_USER = "celltox_user"
_SIGNED_IN_AT = "celltox_signed_in_at"
_LAST_ACTIVITY = "celltox_last_activity"
_METHOD = "celltox_auth_method"
_BANNER_SHOWN = "celltox_banner_shown"
_NOTICE = "celltox_auth_notice"
_LAST_VIEW = "celltox_last_subject_view"
_TOKEN = "celltox_session_token"
_NEXT = "celltox_requested_page"
_KEYS = (_USER, _SIGNED_IN_AT, _LAST_ACTIVITY, _METHOD, _LAST_VIEW, _TOKEN)
SESSION_PARAM = "session"
# One registry per app process: every browser tab and reload of a signed-in browser finds its session here.
SESSIONS = SessionRegistry()

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


def session_query() -> dict[str, str]:
    """``{"session": token}`` to add to a link that opens another page or tab of this app ({} without one)."""
    token = st.session_state.get(_TOKEN)
    return {SESSION_PARAM: token} if token else {}


def _client() -> str:
    """Who presents a token: a session is refused from another IP address or browser (a link sent to someone)."""
    try:
        ip, agent = st.context.ip_address, st.context.headers.get("User-Agent")
    except Exception:  # noqa: BLE001 - no browser context (headless tests)
        ip, agent = "", ""
    ip, agent = (v if isinstance(v, str) else "" for v in (ip, agent))
    if not ip and not agent:
        return ""
    return hashlib.sha256(f"{ip}|{agent}".encode("utf-8")).hexdigest()


def _forget(notice: str | None = None) -> None:
    """Drop this browser session's identity and its token from the URL."""
    for k in _KEYS:
        st.session_state.pop(k, None)
    if SESSION_PARAM in st.query_params:
        del st.query_params[SESSION_PARAM]
    if notice:
        st.session_state[_NOTICE] = notice


def _end_session(review_store, action: str, notice: str | None = None) -> None:
    user = st.session_state.get(_USER)
    if user is not None and not user.demo and action:
        _audit(review_store, user.username, action, {"method": st.session_state.get(_METHOD)})
    SESSIONS.revoke(st.session_state.get(_TOKEN))
    _forget(notice)


def _start_session(user: User, method: str) -> None:
    """Register the signed-in user server-side and put the session token in the URL."""
    now = _now()
    token = SESSIONS.create(user.username, method, now, _client())
    st.session_state.update({_USER: user, _SIGNED_IN_AT: now, _LAST_ACTIVITY: now, _METHOD: method, _TOKEN: token})
    st.query_params[SESSION_PARAM] = token


def _remember_requested_page() -> None:
    """Before the sign-in form: note the page and query (subject, study, cut) the browser asked for."""
    if _NEXT in st.session_state:
        return
    try:
        url = st.context.url or ""
    except Exception:  # noqa: BLE001
        url = ""
    path = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1] if url else ""
    params = {k: v for k, v in st.query_params.to_dict().items() if k != SESSION_PARAM}
    st.session_state[_NEXT] = (path, params)


def _no_page_list() -> None:
    """The sign-in form comes with no page list in the sidebar: without a navigation of this run the browser keeps
    the last one, so after a sign-out it still listed the previous user's pages. Every page is registered,
    hidden and never run, so the address asked for (a subject link) is kept for after the sign-in."""
    from dashboard.navigation import PAGES, streamlit_pages

    st.navigation(streamlit_pages(PAGES), position="hidden")


def go_to_requested_page(pages) -> None:
    """After a sign-in, open the page and subject the browser asked for before it (a deep link or a
    reload after the session ended). Call right after ``st.navigation(pages)``; a no-op otherwise."""
    target = st.session_state.pop(_NEXT, None)
    user = st.session_state.get(_USER)
    if not target or user is None or user.demo or st.session_state.get(_METHOD) not in ("password", "oidc"):
        return
    path, params = target
    page = next((p for p in pages if path and p.url_path == path), None)
    wanted = {**params, **session_query()}
    if page is None and not path and not params:  # after a sign-out, or the bare address: the overview
        page = next((p for p in pages if p.url_path == ""), None)
    if page is None:
        for k, v in params.items():  # the default page: keep the study and cut asked for
            st.query_params.setdefault(k, v)
        return
    st.switch_page(page, query_params=wanted)


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
                 else "; ".join(f"{study} sites {', '.join(ids)}" for study, ids in user.sites))
        st.caption(f"Signed in as **{user.display_name or user.username}** · {ROLE_LABELS[user.role]} · {where}")
        if st.session_state.get(_METHOD) == "off":
            return
        if st.button("Sign out", key="celltox_sign_out"):
            method = st.session_state.get(_METHOD)
            _end_session(review_store, "sign_out", "You are signed out.")
            # the next sign-in in this tab opens the overview: not the page, subject, study or cut the user who
            # left had open (another site's subject would be named to the next user, and his refusal audited)
            st.query_params.clear()
            st.session_state[_NEXT] = ("", {})
            if method == "oidc":
                st.logout()
            st.rerun()


def _refresh(username: str, method: str, store: UserStore, previous: User | None) -> User | None:
    """Re-read the account each run so a removed, disabled or changed account takes effect at once."""
    try:
        if method == "oidc" and previous is not None:
            return oidc_user(store, {"email": previous.email or ""})
        return store.get(username)
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
    except AccountRefused as exc:  # the right password, an account an administrator must fix first
        _audit(review_store, username[:64], "sign_in_failure", {"method": "password", "reason": str(exc)[:200]})
        st.error(f"Sign-in refused: {exc}")
        st.stop()
    except AuthError:
        user = None
    if user is None:
        # the attempted name is recorded (truncated), never the password
        _audit(review_store, username[:64] or "(blank)", "sign_in_failure", {"method": "password"})
        st.error("Unknown username or wrong password.")
        st.stop()
    _start_session(user, "password")
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
    try:
        user = oidc_user(store, claims)
    except AccountRefused as exc:
        _audit(review_store, (claims.get("email") or "(no e-mail)")[:128], "sign_in_failure",
               {"method": "oidc", "reason": str(exc)[:200]})
        st.error(f"Sign-in refused: {exc}")
        if st.button("Sign out", key="celltox_oidc_logout"):
            st.logout()
        st.stop()
    if user is None:
        _audit(review_store, (claims.get("email") or "(no e-mail)")[:128], "sign_in_failure",
               {"method": "oidc", "reason": "no enabled account with this e-mail"})
        st.error("Your identity is confirmed, but no celltox account is linked to it. Ask an administrator.")
        if st.button("Sign out", key="celltox_oidc_logout"):
            st.logout()
        st.stop()
    _start_session(user, "oidc")
    _audit(review_store, user.username, "sign_in_success", {"method": "oidc", "role": user.role})


def sign_in_gate(policy: AccessPolicy, review_store) -> User:
    """Return the signed-in User, or render the sign-in page and stop the run.

    Demo mode returns :data:`safety.access.auth.DEMO_USER` and shows the DEMO banner. Otherwise the account
    file is validated, and the session token of this tab (or of the URL: a reload, a new tab) is looked up in
    :data:`SESSIONS`, which ends it after ``policy.session_minutes`` idle or ``policy.session_max_hours``
    (audit 'session_expired'); sign-ins are audited as 'sign_in_success' / 'sign_in_failure'."""
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
    try:
        warnings = store.check()
    except AuthError as exc:  # a misstated account never widens access: nobody signs in until it is fixed
        st.error(f"The account file is not valid, so sign-in is refused: {exc}")
        st.stop()

    leftover = st.session_state.get(_USER)
    if leftover is not None and (leftover.demo or st.session_state.get(_METHOD) not in ("password", "oidc")):
        for k in _KEYS:  # a leftover demo/off identity never carries into a signed-in app
            st.session_state.pop(k, None)
    # The server-side session behind the token (this tab's, or the one in the URL of a reload or new tab).
    token = st.session_state.get(_TOKEN) or st.query_params.get(SESSION_PARAM)
    user = None
    if token:
        status, rec = SESSIONS.resume(token, _now(), policy.session_minutes, policy.session_max_hours, _client())
        if status == "ok":
            fresh = _refresh(rec.username, rec.method, store, st.session_state.get(_USER))
            if fresh is None:
                SESSIONS.revoke_user(rec.username)
                _audit(review_store, rec.username, "session_revoked", {"method": rec.method})
                _forget("Your account is no longer active.")
                if rec.method == "oidc":
                    st.logout()
            else:
                user = fresh
                st.session_state.update({_USER: fresh, _METHOD: rec.method, _TOKEN: token,
                                         _SIGNED_IN_AT: rec.signed_in_at, _LAST_ACTIVITY: rec.last_activity})
                if st.query_params.get(SESSION_PARAM) != token:  # a page switch drops it from the URL
                    st.query_params[SESSION_PARAM] = token
        elif status == "expired":
            _audit(review_store, rec.username, "session_expired", {"method": rec.method})
            _forget("Your session expired. Please sign in again.")
            if rec.method == "oidc":
                st.logout()
        else:
            _forget("Your session has ended (signed out elsewhere, or the app was restarted). Please sign in again.")
    else:
        _forget()
    if user is None:
        _remember_requested_page()
        _no_page_list()
        for w in warnings:
            st.warning(w)
        if policy.mode == "oidc":
            _oidc_gate(policy, store, review_store)
        else:
            _password_form(policy, store, review_store)
        user = st.session_state[_USER]
    elif user.role == "admin":
        # an account that may not sign in is named to the one who can fix it, not on the sign-in page
        for w in warnings + [u["problem"] for u in store.list() if u["problem"]]:
            st.sidebar.warning(w)
    _sidebar(review_store, policy)
    return user


def _audit_profile_once(review_store, user: User, studyid: str, action: str, detail: dict) -> None:
    """Append ``action`` for a subject profile unless this session's last profile entry was the same one:
    reruns of one profile (or of one refusal) are logged once."""
    key = (action, studyid, tuple(sorted(detail.items())))
    if st.session_state.get(_LAST_VIEW) == key:
        return
    if review_store is not None:
        review_store.append_audit(user.username, action, studyid, detail)
    st.session_state[_LAST_VIEW] = key


def log_subject_refused(review_store, user: User, studyid: str, data_cut, requested: str) -> None:
    """Audit a profile asked for by its address that is not in the user's scope ('view_subject_refused'): a
    subject of another site, or an id that is no subject."""
    _audit_profile_once(review_store, user, studyid, "view_subject_refused",
                        {"usubjid_requested": requested[:80], "data_cut": str(data_cut)})


def log_subject_view(review_store, user: User, studyid: str, data_cut, usubjid: str) -> None:
    """Audit a subject-profile view ('view_subject')."""
    _audit_profile_once(review_store, user, studyid, "view_subject", {"usubjid": usubjid, "data_cut": str(data_cut)})

"""Who is looking and what is selected: sign-in, the user's scope and rights, the sidebar's selection
(:class:`View`) and the subject filter it adds to queries."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from dashboard import auth as auth_ui
from dashboard.database import is_sample
from safety.access import auth as safety_auth
from safety.access import reader as access
from safety.review.store import ReviewStore

VIEW_KEY = "celltox_view"
USER_KEY = "celltox_user"

# The rights a page may ask about, each the one function of safety.access.auth that decides it.
PERMISSIONS = {
    "can_view_patient_data": safety_auth.can_view_patient_data,
    "can_view_study_aggregates": safety_auth.can_view_study_aggregates,
    "can_adjudicate": safety_auth.can_adjudicate,
    "can_sign_off": safety_auth.can_sign_off,
    "can_export": safety_auth.can_export,
    "can_view_data_quality": safety_auth.can_view_data_quality,
    "can_view_audit": safety_auth.can_view_audit,
    "can_manage_users": safety_auth.can_manage_users,
}


def sign_in(db_path: Path, store: ReviewStore):
    """The signed-in user through dashboard.auth (which renders its form and stops the run until then)."""
    try:
        policy = safety_auth.AccessPolicy.from_env(db_path, is_sample_db=is_sample(db_path))
    except Exception as exc:  # an unreadable auth setting refuses to start rather than open unguarded
        st.error(f"Sign-in settings are not valid: {exc}")
        st.stop()
    return auth_ui.sign_in_gate(policy, store)


def scope_for(user, studyid: str, data_cut: dt.date, previous_cut: dt.date | None) -> access.Scope:
    """The user's scope (site-limited for investigators)."""
    return safety_auth.scope_for(user, studyid, data_cut, previous_cut)


def studies_for(user, studyids) -> list[str]:
    """The studies of ``studyids`` the user may choose in the sidebar."""
    return safety_auth.studies_for(user, studyids)


def can(user, permission: str) -> bool:
    """Whether ``user`` has ``permission`` (a key of :data:`PERMISSIONS`; a misspelt one is a KeyError)."""
    return bool(PERMISSIONS[permission](user))


@dataclass(frozen=True)
class View:
    """Everything that decides which rows a page shows."""
    db_path: str
    stamp: float
    studyid: str
    data_cut: dt.date
    sites: tuple[str, ...] | None
    previous_cut: dt.date | None
    cohorts: tuple[str, ...] = ()
    dose_levels: tuple[str, ...] = ()
    products: tuple[str, ...] = ()
    username: str = "demo"
    title: str = ""

    @property
    def filtered(self) -> bool:
        return bool(self.cohorts or self.dose_levels or self.products)


def set_view(v: View, user) -> None:
    st.session_state[VIEW_KEY] = v
    st.session_state[USER_KEY] = user


SELECTION_MOVED_KEY = "celltox_selection_moved"


def note_selection_moved(moved: bool) -> None:
    """Record whether the sidebar moved the selection in this run (its study, cut or a filter changed there)."""
    st.session_state[SELECTION_MOVED_KEY] = moved


def selection_moved() -> bool:
    """Whether the sidebar moved the selection in this run: a subject the address still names was open in the
    earlier selection, not asked for in this one (a link naming a study, cut and subject is a request)."""
    return bool(st.session_state.get(SELECTION_MOVED_KEY))


def view() -> View:
    """The current selection (set by app.py before the page runs)."""
    v = st.session_state.get(VIEW_KEY)
    if v is None:
        st.error("Open the dashboard through dashboard/app.py.")
        st.stop()
    return v


def user():
    """The signed-in user (set by app.py before the page runs)."""
    u = st.session_state.get(USER_KEY)
    if u is None:
        st.error("Open the dashboard through dashboard/app.py.")
        st.stop()
    return u


def subject_filter(v: View | None = None, column: str = "usubjid") -> tuple[str, dict]:
    """SQL predicate (and its parameters) limiting ``column`` to the subjects the sidebar filters keep.

    ``TRUE`` when no filter is set. The subquery reads the scoped ``subjects`` table, so it never widens
    the reader's own study/cut/site scope.
    """
    v = v or view()
    conds, params = [], {}
    for field_name, values, pname in (("cohort", v.cohorts, "f_cohorts"), ("dose_level", v.dose_levels, "f_dose_levels"),
                                      ("product", v.products, "f_products")):
        if values:
            conds.append(f"{field_name} IN (SELECT unnest(${pname}))")
            params[pname] = list(values)
    if not conds:
        return "TRUE", {}
    return f"{column} IN (SELECT usubjid FROM subjects WHERE {' AND '.join(conds)})", params


def selection(v: View | None = None) -> list[tuple[str, str]]:
    """What the pages show, as (words, value) pairs: the study and data cut, then the sites, cohorts, dose levels
    and products when the scope or the sidebar narrows them. The values are the delivered ones, as typed."""
    v = v or view()
    bits = [("Study", v.studyid), ("data cut", v.data_cut.isoformat())]
    if v.sites is not None:
        bits.append(("sites", ", ".join(v.sites)))
    for words, values in (("cohort", v.cohorts), ("dose level", v.dose_levels), ("product", v.products)):
        if values:
            bits.append((words, ", ".join(values)))
    return bits


def selection_text(v: View | None = None) -> str:
    """:func:`selection` as plain text, for a file's notes."""
    return " · ".join(f"{words} {value}" for words, value in selection(v))

"""What the pages cache per data cut never outlives a committee decision and never crosses a site scope.

Both tests run the pages with Streamlit's caches warm, as a server does after the first visit: nothing is
cleared between the runs that are compared.
"""
from __future__ import annotations

import pytest

from safety.derive.dlt.decisions import record_decision
from safety.review.dlt_status import dlt_status
from test_app_roles import PASSWORD, STUDY, _check_page, _goto, _signed_in, env as roles_env, roles_db, site_of  # noqa: F401
from test_decisions_live import _metrics, env, sample_db  # noqa: F401

LAB_TABS = ["Worst grades & shifts", "Values over time", "Liver (eDISH)", "Cytopenia & ICAHT"]


def test_a_cached_page_shows_a_decision_as_soon_as_it_is_recorded(env):
    from streamlit.testing.v1 import AppTest
    from test_decisions_live import APP

    db, con, reader, store = env
    rv = dlt_status(reader, store).review
    with_dlt = set(rv.loc[rv["counts_as_dlt"].astype(bool), "usubjid"])
    pick = rv[rv["pending"].astype(bool) & rv["screened"].astype(bool) & ~rv["usubjid"].isin(with_dlt)]
    key = pick.iloc[0]["event_key"]

    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.switch_page("views/dlt_review.py")
    at.run()
    at.run()  # the second run answers from the caches
    assert not at.exception, [e.value for e in at.exception]
    pending = int(_metrics(at)["Pending adjudication"])
    confirmed = int(_metrics(at)["Confirmed DLTs (subjects)"])
    assert at.dataframe[0].value.set_index("event_key").loc[key, "status"] != "confirmed"

    # recorded outside this session (another committee member, or the command line)
    record_decision(store, reader, key, "confirmed", "meets the protocol definition (SRC minutes)", "dr.test")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert int(_metrics(at)["Pending adjudication"]) == pending - 1
    assert int(_metrics(at)["Confirmed DLTs (subjects)"]) == confirmed + 1
    assert at.dataframe[0].value.set_index("event_key").loc[key, "status"] == "confirmed"

    # the DLT listing of the export page (a cached call of the domain function) follows as well
    at.switch_page("views/listings.py")
    at.session_state["listing_name"] = "dlt"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.dataframe[0].value.set_index("event_key").loc[key, "adjudicated_dlt"] == "Yes"
    record_decision(store, reader, key, "withdrawn", "recorded against the wrong subject", "dr.test")
    at.run()
    assert at.dataframe[0].value.set_index("event_key").loc[key, "adjudicated_dlt"] == "Pending"


@pytest.fixture
def two_investigators(roles_env):  # noqa: F811
    """ivy (site 02, an account of test_app_roles) and iris, an investigator of site 01, on the same server."""
    from pathlib import Path

    from safety.access.auth import UserStore
    from test_app_roles import _users_path

    users = UserStore(Path(_users_path()), rounds=4)
    users.add("iris", "investigator", PASSWORD, sites={"ITNK-B-01": ("01",)}, display_name="Iris")
    yield roles_env
    users.remove("iris")


def _visit_cached_pages(username: str, site: str, site_of: dict) -> set[str]:  # noqa: F811
    """Every tab of Labs, CRS & ICANS, Adverse events and every listing, as ``username``: subjects seen."""
    seen = set()
    for tab in LAB_TABS:
        at = _signed_in(username)
        at.session_state["labs_tab"] = tab
        seen |= _check_page(_goto(at, "labs"), f"labs[{tab}] as {username}", site_of, {site})
    at = _signed_in(username)
    for page in ("crs_icans", "adverse_events"):
        seen |= _check_page(_goto(at, page), f"{page} as {username}", site_of, {site})
    _goto(at, "listings")
    names = list(next(s for s in at.selectbox if s.label == "Listing").options)
    for i in range(len(names)):
        next(s for s in at.selectbox if s.label == "Listing").select_index(i)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        seen |= _check_page(at, f"listings[{names[i]}] as {username}", site_of, {site})
    return seen


def test_two_investigators_of_different_sites_never_see_each_others_cached_rows(two_investigators, site_of):  # noqa: F811
    # ivy fills the caches, iris (another site) reads after her, then ivy again after iris
    ivy = _visit_cached_pages("ivy", "02", site_of)
    iris = _visit_cached_pages("iris", "01", site_of)
    again = _visit_cached_pages("ivy", "02", site_of)
    assert {site_of[u] for u in ivy if u.startswith(STUDY)} == {"02"}
    assert {site_of[u] for u in iris if u.startswith(STUDY)} == {"01"}
    assert again == ivy

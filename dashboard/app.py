"""celltox dashboard: ``python -m dashboard [-- --db PATH]`` (or ``streamlit run dashboard/app.py [-- --db PATH]``).

Opens the database given with ``--db``, else $CELLTOX_DB, else the embedded sample database (built on
first start). Signs the user in, offers the study, data cut and subject filters in the sidebar, then
runs the selected page. Pages live in dashboard/views/ and read only through dashboard.state.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import dataclasses  # noqa: E402
import datetime as dt  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

import streamlit as st  # noqa: E402

from dashboard import freshness, state, warmup  # noqa: E402
from dashboard.auth import go_to_requested_page  # noqa: E402
from dashboard.navigation import PAGES, check_pages, streamlit_pages  # noqa: E402

# The tab icon is served by the app itself: a Material icon would be fetched from fonts.gstatic.com by every
# browser that opens the app.
st.set_page_config(page_title="celltox safety", page_icon=str(ROOT / "dashboard" / "icon.svg"), layout="wide")
# Also set here, so a start from another folder (without .streamlit/config.toml) hides them too: no Deploy
# button or developer menu, no unaudited table download (dashboard/tables.py offers the audited one), and a
# failing page's exception type only, never its message or traceback (the server's paths, a query's text).
st.set_option("client.toolbarMode", "viewer")
st.set_option("client.disableDataExport", True)
st.set_option("client.showErrorDetails", "type")

def _sidebar(user, db_path: str) -> state.View | None:
    stamp = state.db_stamp(db_path)
    cuts = state.study_cuts(db_path, stamp)
    if cuts.empty:
        st.sidebar.error("This database has no studies loaded.")
        return None
    # an investigator chooses among the studies they have sites in (a site id is unique only within its study)
    cuts = cuts[cuts["studyid"].isin(state.studies_for(user, dict.fromkeys(cuts["studyid"])))]
    if cuts.empty:
        st.sidebar.error("None of the studies your account has sites in is loaded in this database: "
                         + ", ".join(study for study, _ in user.sites or ()) + ".")
        return None
    qp = st.query_params
    studies = list(dict.fromkeys(cuts["studyid"]))
    titles = {r.studyid: (r.title if isinstance(r.title, str) and r.title.strip() else r.studyid)
              for r in cuts.itertuples()}
    default_study = qp.get("studyid") if qp.get("studyid") in studies else _landing_study(user, db_path, stamp, cuts)
    st.sidebar.markdown("### Study")
    studyid = st.sidebar.selectbox("Study", studies, index=studies.index(default_study),
                                   format_func=lambda s: s if titles.get(s, s) == s else f"{s} – {titles[s]}",
                                   key="sb_study",
                                   label_visibility="collapsed")
    study_cuts = sorted(cuts.loc[cuts["studyid"] == studyid, "data_cut"], reverse=True)
    cut_labels = [c.isoformat() for c in study_cuts]
    default_cut = qp.get("cut") if qp.get("cut") in cut_labels else state.landing_cut(cuts, studyid)[1].isoformat()
    cut_label = st.sidebar.selectbox("Data cut", cut_labels, index=cut_labels.index(default_cut), key=f"sb_cut_{studyid}")
    data_cut = dt.date.fromisoformat(cut_label)
    # the sidebar moved away from a study or cut the address named (a link names one the sidebar then shows)
    moved = any(qp.get(k) in options and qp.get(k) != val
                for k, val, options in (("studyid", studyid, studies), ("cut", cut_label, cut_labels)))
    # the address names the study and cut shown, so a reload or a copied link opens them (not the latest cut)
    for k, val in (("studyid", studyid), ("cut", cut_label)):
        if qp.get(k) != val:
            qp[k] = val
    prev = state.previous_cut_of(db_path, stamp, studyid, data_cut)
    scope = state.scope_for(user, studyid, data_cut, prev)
    base = state.View(db_path=db_path, stamp=stamp, studyid=studyid, data_cut=data_cut, sites=scope.sites,
                      previous_cut=scope.previous_cut, username=getattr(user, "username", "?"),
                      title=titles.get(studyid, ""))
    opts = state.filter_options(base)
    if scope.sites is not None and opts.empty:
        st.warning(f"None of your sites ({state.plain_text(', '.join(scope.sites) or 'none')}) has subjects in "
                   f"{state.plain_text(studyid)} at data cut "
                   f"{data_cut.isoformat()}: every number below is zero for that reason. Choose another study in "
                   "the sidebar.")
    st.sidebar.markdown("### Filter subjects")
    cohorts = st.sidebar.multiselect("Cohort", sorted(opts["cohort"].dropna().unique()), key=f"sb_cohort_{studyid}",
                                     placeholder="All cohorts")
    doses = st.sidebar.multiselect("Dose level", sorted(opts["dose_level"].dropna().unique()),
                                   key=f"sb_dose_{studyid}", placeholder="All dose levels")
    products = st.sidebar.multiselect("Product", sorted(opts["product"].dropna().unique()),
                                      key=f"sb_product_{studyid}", placeholder="All products")
    if scope.sites is not None:
        st.sidebar.caption("Your access covers sites: " + state.plain_text(", ".join(scope.sites)))
    if prev:
        st.sidebar.caption(f"Previous data cut: {prev.isoformat()}")
    v = dataclasses.replace(base, cohorts=tuple(cohorts), dose_levels=tuple(doses), products=tuple(products))
    before = st.session_state.get(state.VIEW_KEY)
    state.note_selection_moved(moved or (before is not None and before.studyid == studyid
                                         and (before.cohorts, before.dose_levels, before.products)
                                         != (v.cohorts, v.dose_levels, v.products)))
    return v


def _landing_study(user, db_path: str, stamp: float, cuts) -> str:
    """The study the sidebar opens on when the URL names none: the first with subjects at a site the user may see
    (an investigator of site 02 does not land on a study site 02 does not take part in), else the first."""
    first = state.landing_cut(cuts)[0]
    for studyid in dict.fromkeys(cuts["studyid"]):
        data_cut = state.landing_cut(cuts, studyid)[1]
        scope = state.scope_for(user, studyid, data_cut, None)
        if scope.sites is None:
            return first
        v = state.View(db_path=db_path, stamp=stamp, studyid=studyid, data_cut=data_cut, sites=scope.sites,
                       previous_cut=None, username=getattr(user, "username", "?"), title="")
        if not state.filter_options(v).empty:
            return studyid
    return first


def _pages(user) -> list:
    """The pages this user may open (an administrator sees no patient data: docs/access.md)."""
    return streamlit_pages(p for p in PAGES if state.can(user, p.right))


def _say_when_a_page_is_closed(user) -> None:
    """A page this role may not open, asked for by its address (/data_quality, a link from a colleague), shows
    the first page instead: said, rather than a silent switch."""
    url = st.context.url
    if not url or user is None:
        return
    asked = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
    closed = next((p for p in PAGES if p.url == asked and not state.can(user, p.right)), None)
    if closed is not None:
        st.warning(f"The page {closed.title} is not open to your role ({user.role}); this is the first page you "
                   "may open.", icon=":material/lock:")


def main() -> None:
    check_pages()  # a misspelt page file fails here, at start
    db_path = state.resolve_db_path()
    try:
        db = state.ensure_database(str(db_path))
        state.connection(db)
    except Exception as exc:  # one sentence (a load running, a program writing the file), not a traceback
        st.error(freshness.open_problem(db_path, exc))
        st.stop()
    freshness.notice(db)
    outdated = state.missing_columns(db, state.db_stamp(db))
    if outdated:  # a file of an earlier version: pages would fail on the columns it lacks, or show less than the packet
        st.error("This database file was written by an earlier version of celltox: "
                 + "; ".join(f"table {t} lacks {', '.join(cols)}" for t, cols in sorted(outdated.items()))
                 + ". Reload each study into a new file (`python -m safety ingest STUDY_FOLDER --db NEW.duckdb`) "
                   "and open that one.")
        st.stop()
    try:
        store = state.review_store(db)
    except ValueError as exc:  # e.g. CELLTOX_AUDIT_KEY too short: one line, not a traceback
        st.error(f"Cannot open the review store (audit log): {exc}")
        st.stop()
    user = state.sign_in(Path(db), store)
    # Navigation first, then the shared sidebar widgets, then the page: Streamlit keeps widgets drawn
    # between st.navigation and run() stable across reruns and page switches.
    pages = _pages(user)
    nav = st.navigation(pages)
    go_to_requested_page(pages)  # after a sign-in: the page and subject the browser asked for
    v = _sidebar(user, db)
    if v is None:
        st.stop()
    state.set_view(v, user)
    _say_when_a_page_is_closed(user)
    nav.run()
    warmup.preload_in_browser()  # after the page: the browser loads Plotly's script once it is idle
    warmup.start()  # after the page: the first page never waits for libraries only later pages use


main()

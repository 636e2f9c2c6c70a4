"""celltox dashboard: ``streamlit run dashboard/app.py [-- --db PATH]``.

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

import streamlit as st  # noqa: E402

from dashboard import state  # noqa: E402
from safety.access import reader as access  # noqa: E402

st.set_page_config(page_title="celltox safety", page_icon=":material/monitor_heart:", layout="wide")

# Not "pages/": Streamlit serves a folder of that name as a legacy multipage app, bypassing app.py.
PAGES = Path(__file__).resolve().parent / "views"


def _sidebar(user, db_path: str) -> state.View | None:
    stamp = state.db_stamp(db_path)
    cuts = state.study_cuts(db_path, stamp)
    if cuts.empty:
        st.sidebar.error("This database has no studies loaded.")
        return None
    qp = st.query_params
    studies = list(dict.fromkeys(cuts["studyid"]))
    titles = {r.studyid: (r.title or r.studyid) for r in cuts.itertuples()}
    default_study = qp.get("studyid") if qp.get("studyid") in studies else studies[0]
    st.sidebar.markdown("### Study")
    studyid = st.sidebar.selectbox("Study", studies, index=studies.index(default_study),
                                   format_func=lambda s: f"{s} – {titles.get(s, '')}", key="sb_study",
                                   label_visibility="collapsed")
    study_cuts = sorted(cuts.loc[cuts["studyid"] == studyid, "data_cut"], reverse=True)
    cut_labels = [c.isoformat() for c in study_cuts]
    default_cut = qp.get("cut") if qp.get("cut") in cut_labels else cut_labels[0]
    cut_label = st.sidebar.selectbox("Data cut", cut_labels, index=cut_labels.index(default_cut), key=f"sb_cut_{studyid}")
    data_cut = dt.date.fromisoformat(cut_label)
    prev = access.previous_cut(state.connection(db_path), studyid, data_cut)
    scope = state.scope_for(user, studyid, data_cut, prev)
    base = state.View(db_path=db_path, stamp=stamp, studyid=studyid, data_cut=data_cut, sites=scope.sites,
                      previous_cut=scope.previous_cut, username=getattr(user, "username", "?"),
                      title=titles.get(studyid, ""))
    opts = state.q("SELECT DISTINCT cohort, dose_level, product FROM subjects", v=base)
    st.sidebar.markdown("### Filter subjects")
    cohorts = st.sidebar.multiselect("Cohort", sorted(opts["cohort"].dropna().unique()), key=f"sb_cohort_{studyid}",
                                     placeholder="All cohorts")
    doses = st.sidebar.multiselect("Dose level", sorted(opts["dose_level"].dropna().unique()),
                                   key=f"sb_dose_{studyid}", placeholder="All dose levels")
    products = st.sidebar.multiselect("Product", sorted(opts["product"].dropna().unique()),
                                      key=f"sb_product_{studyid}", placeholder="All products")
    if scope.sites is not None:
        st.sidebar.caption("Your access covers sites: " + ", ".join(scope.sites))
    if prev:
        st.sidebar.caption(f"Previous data cut: {prev.isoformat()}")
    return dataclasses.replace(base, cohorts=tuple(cohorts), dose_levels=tuple(doses), products=tuple(products))


def _pages(user) -> list:
    def page(file: str, title: str, icon: str, url: str, default: bool = False):
        return st.Page(str(PAGES / file), title=title, icon=icon, url_path=url, default=default)

    pages = []
    if state.can(user, "can_view_patient_data"):  # an administrator sees no patient data (docs/access.md)
        pages += [
            # The default page lives at the root URL ("/"); Streamlit ignores its url_path.
            page("overview.py", "Overview", ":material/dashboard:", "overview", default=True),
            page("crs_icans.py", "CRS & ICANS", ":material/local_fire_department:", "crs_icans"),
            page("subject_profile.py", "Subject profile", ":material/person:", "subject_profile"),
            page("adverse_events.py", "Adverse events", ":material/warning:", "adverse_events"),
            page("labs.py", "Labs", ":material/science:", "labs"),
            page("dlt_review.py", "DLT review", ":material/gavel:", "dlt_review"),
            page("swimmer.py", "Swimmer plot", ":material/timeline:", "swimmer"),
            page("outcomes.py", "Outcomes", ":material/monitoring:", "outcomes"),
            page("listings.py", "Listings & export", ":material/description:", "listings"),
        ]
    if state.can(user, "can_view_data_quality"):
        pages.append(page("data_quality.py", "Data quality", ":material/fact_check:", "data_quality"))
    if state.can(user, "can_view_audit"):
        pages.append(page("audit_log.py", "Audit log", ":material/history:", "audit_log"))
    return pages


def main() -> None:
    db_path = state.resolve_db_path()
    try:
        db = state.ensure_database(str(db_path))
    except Exception as exc:  # say what is wrong instead of a traceback
        st.error(f"Cannot open the database {db_path}: {exc}")
        st.stop()
    store = state.review_store(db)
    user = state.sign_in(Path(db), store)
    # Navigation first, then the shared sidebar widgets, then the page: Streamlit keeps widgets drawn
    # between st.navigation and run() stable across reruns and page switches.
    nav = st.navigation(_pages(user))
    v = _sidebar(user, db)
    if v is None:
        st.stop()
    state.set_view(v, user)
    nav.run()


main()

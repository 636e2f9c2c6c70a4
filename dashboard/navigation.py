"""The dashboard's pages: file, title, icon, address and the right that opens each. A page file that is
missing (a misspelt name) fails at start, not when someone clicks."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Not "pages/": Streamlit serves a folder of that name as a legacy multipage app, bypassing app.py.
PAGES_DIR = Path(__file__).resolve().parent / "views"


@dataclass(frozen=True)
class PageSpec:
    file: str
    title: str
    icon: str
    url: str
    right: str  # a key of dashboard.session.PERMISSIONS
    default: bool = False


PAGES: tuple[PageSpec, ...] = (
    # The default page lives at the root URL ("/"); Streamlit ignores its url_path.
    PageSpec("overview.py", "Overview", ":material/dashboard:", "overview", "can_view_patient_data", default=True),
    PageSpec("crs_icans.py", "CRS & ICANS", ":material/local_fire_department:", "crs_icans", "can_view_patient_data"),
    PageSpec("subject_profile.py", "Subject profile", ":material/person:", "subject_profile", "can_view_patient_data"),
    PageSpec("adverse_events.py", "Adverse events", ":material/warning:", "adverse_events", "can_view_patient_data"),
    PageSpec("labs.py", "Labs", ":material/science:", "labs", "can_view_patient_data"),
    PageSpec("dlt_review.py", "DLT review", ":material/gavel:", "dlt_review", "can_view_patient_data"),
    PageSpec("swimmer.py", "Swimmer plot", ":material/timeline:", "swimmer", "can_view_patient_data"),
    PageSpec("outcomes.py", "Outcomes", ":material/monitoring:", "outcomes", "can_view_patient_data"),
    PageSpec("listings.py", "Listings & export", ":material/description:", "listings", "can_view_patient_data"),
    PageSpec("data_quality.py", "Data quality", ":material/fact_check:", "data_quality", "can_view_data_quality"),
    PageSpec("audit_log.py", "Audit log", ":material/history:", "audit_log", "can_view_audit"),
)


def streamlit_pages(specs) -> list:
    """``st.Page`` objects of ``specs`` (a filtered PAGES) for ``st.navigation``."""
    import streamlit as st

    return [st.Page(str(PAGES_DIR / p.file), title=p.title, icon=p.icon, url_path=p.url, default=p.default)
            for p in specs]


def check_pages() -> None:
    """Raise when a declared page file or right does not exist."""
    from dashboard.session import PERMISSIONS

    missing = [p.file for p in PAGES if not (PAGES_DIR / p.file).is_file()]
    if missing:
        raise FileNotFoundError(f"dashboard pages not found in {PAGES_DIR}: {', '.join(missing)}")
    unknown = [p.right for p in PAGES if p.right not in PERMISSIONS]
    if unknown:
        raise KeyError(f"unknown rights for dashboard pages: {', '.join(unknown)}")

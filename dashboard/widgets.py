"""Showing: tables with profile links, cached Plotly figures, paging, empty states, and the audit entries
a page writes when it shows patient data."""
from __future__ import annotations

import re
from urllib.parse import quote_plus, urlencode

import pandas as pd
import streamlit as st

from dashboard import auth as auth_ui
from dashboard import tables
from dashboard.database import review_store
from dashboard.reading import missing_tables, not_delivered
from safety.core.delivery import not_delivered_note
from dashboard.session import View, selection, user, view

# -- showing ---------------------------------------------------------------------------------------------

def subject_url(usubjid: str, v: View | None = None) -> str:
    """Relative link to a subject's profile that keeps the study, cut and session (it opens in a new tab)."""
    return subject_urls([usubjid], v)[0]


def subject_urls(usubjids, v: View | None = None) -> list[str | None]:
    """:func:`subject_url` for a whole column (None where the value is not a subject id): the study, cut and
    session part of the link is encoded once, not once per row."""
    v = v or view()
    rest = urlencode({"studyid": v.studyid, "cut": v.data_cut.isoformat(), **auth_ui.session_query()})
    return [f"./subject_profile?usubjid={quote_plus(s)}&{rest}" if isinstance(s, str) else None for s in usubjids]


def table(df: pd.DataFrame, subject_col: str | None = "usubjid", height: int | None = None, **kwargs):
    """The dashboard's table (dashboard.tables.show_table): labels, integers, profile links, audited download
    (a preview of the first rows when there are many)."""
    return tables.show_table(df, subject_col=subject_col, height=height, **kwargs)


TEMPLATE = "plotly_white"  # the look of every dashboard chart


def figure_dict(fig) -> dict:
    """``fig`` as the plain dict that is drawn, with the dashboard's template."""
    d = fig.to_dict()
    # Always set: a built figure carries Plotly's default template, which importing Streamlit makes its own
    # ("streamlit"), so "unless the figure sets one" would never apply.
    d.setdefault("layout", {})["template"] = _template()
    return d


_TEMPLATE_JSON: dict = {}


def _template() -> dict:
    # built once per process from Plotly's own template (a plain dict, shared read-only by every figure)
    if not _TEMPLATE_JSON:
        import plotly.io as pio
        _TEMPLATE_JSON.update(pio.templates[TEMPLATE].to_plotly_json())
    return _TEMPLATE_JSON


@st.cache_data(show_spinner=False, max_entries=1000)
def _figure_dict(_builder, builder_name: str, stamp: float, args: tuple, kwargs: dict) -> dict:
    # _builder is not hashed (leading underscore); its qualified name keys the cache instead
    return figure_dict(_builder(*args, **kwargs))


class _BuiltFigure:
    """Wraps a cached figure dict so st.plotly_chart skips re-validating it (plotly re-builds a Figure from
    a plain dict on every call, ~30 ms for a subject timeline); the dict came from a built Figure."""

    _cls = None

    @classmethod
    def of(cls, fig: dict):
        if cls._cls is None:
            import plotly.graph_objects as go

            class Built(go.Figure):
                def __init__(self, d):
                    super().__init__()
                    self._celltox_dict = d

                def to_dict(self):
                    return self._celltox_dict

            cls._cls = Built
        return cls._cls(fig)


def draw_figure(fig: dict, key: str | None = None, where=None) -> None:
    """Draw a figure dict built by a dashboard.figures builder (an empty figure becomes an empty state)."""
    if not fig.get("data"):  # Plotly refuses a figure without traces (e.g. a site with no grade >= 1 CRS)
        title = (fig.get("layout", {}).get("title") or {}).get("text")
        (where or st).info(f"Nothing to chart in this selection{' (' + plain_text(title) + ')' if title else ''}.",
                           icon=":material/info:")
        return
    (where or st).plotly_chart(_BuiltFigure.of(fig), width="stretch", key=key, config={"displaylogo": False})


def draw_svg(svg: str, where=None) -> None:
    """Draw an SVG chart built by dashboard.figures_svg, inline in the page (no chart library to load)."""
    # st.html's sanitizer keeps HTML only and would drop the SVG; the builder escapes every text it writes
    (where or st).markdown(svg, unsafe_allow_html=True)


def chart(builder, *args, key: str | None = None, where=None, **kwargs) -> None:
    """Draw ``builder(*args, **kwargs)`` (a dashboard.figures function) with the figure cached as a dict.

    Building Plotly objects is most of a page's server time; the cache is keyed by the builder, its
    inputs (DataFrames hashed by content) and the database version.
    """
    draw_figure(_figure_dict(builder, f"{builder.__module__}.{builder.__qualname__}", view().stamp, args, kwargs),
                key=key, where=where)


def page_of(items: list, per_page: int = 100, key: str | None = None, noun: str = "subject") -> list:
    """The slice of ``items`` to draw, with a "first shown" input when there are more than ``per_page``.

    A chart of thousands of rows is neither readable on a projector nor fast; it is paged instead.
    """
    if len(items) <= per_page:
        return items
    first = st.number_input(f"First {noun} shown (of {len(items):,}; {per_page} at a time)", min_value=1,
                            max_value=len(items), value=1, step=per_page, key=key)
    return items[int(first) - 1:int(first) - 1 + per_page]


def plain_text(text: str) -> str:
    """``text`` escaped for Markdown: shown as typed (no link, image, emphasis or HTML), on one line. For every
    value from the delivered data or the URL that a page writes into Markdown: st.markdown, captions, alerts,
    metric labels, values and help, widget and page-link labels all render it."""
    return re.sub(r"([\\`*_{}\[\]()<>#+\-.!|~:&])", r"\\\1", " ".join(str(text).split()))


RULES_NOT_FILTERED = ("Every rule of the study, each over all of its subjects: the sidebar's cohort, dose level and "
                      "product filters do not apply here.")


def rules_not_filtered(v: View, where=None) -> None:
    """Under a cohort, dose level or product filter, say that the stopping rules shown are the study's: a rule
    counts every evaluable subject of its cohort or dose level, so a sidebar filter does not narrow it."""
    if v.filtered:
        (where or st).caption(RULES_NOT_FILTERED)


def filter_caption(v: View | None = None) -> str:
    """A page's caption of what it shows (:func:`dashboard.session.selection`), the study and cut in bold, each
    delivered value shown as typed."""
    (_, study), (_, cut), *narrowed = selection(v)
    return " · ".join([f"Study **{plain_text(study)}**", f"data cut **{cut}**"]
                      + [f"{words} {plain_text(values)}" for words, values in narrowed])


def empty(message: str) -> None:
    """An empty state that says what is missing."""
    st.info(message, icon=":material/info:")


def note_not_delivered(*domains: str, what: str = "the counts below") -> list[str]:
    """Say which of ``domains`` were not delivered at this data cut, so that ``what`` (plural: "the counts below")
    reads as no data, not as no events (the packet's notes say the same); returns them (empty: all delivered,
    nothing shown)."""
    missing = not_delivered(*domains)
    if missing:
        st.warning("; ".join(not_delivered_note(d) for d in missing)
                   + f": {what} show no data from {'it' if len(missing) == 1 else 'them'}, not an absence of events.",
                   icon=":material/block:")
    return missing


def require(*tables: str, what: str = "this section") -> bool:
    """Show a clear message and return False when a derived table this section needs is not there."""
    missing = missing_tables(*tables)
    if missing:
        empty(f"{what.capitalize()} needs the derived table(s) {', '.join(missing)}, which this database "
              "does not have yet (run the derivations: `python -m safety ingest`).")
        return False
    return True


def log_subject_view(usubjid: str) -> None:
    """Audit 'view_subject' for the signed-in user (once per profile shown, through dashboard.auth)."""
    v = view()
    auth_ui.log_subject_view(review_store(v.db_path), user(), v.studyid, v.data_cut, usubjid)


def log_subject_refused(requested: str) -> None:
    """Audit 'view_subject_refused' for the signed-in user (a profile out of scope asked for by its address)."""
    v = view()
    auth_ui.log_subject_refused(review_store(v.db_path), user(), v.studyid, v.data_cut, requested)


def audit(action: str, detail: dict) -> None:
    """Append an audit entry (e.g. view_subject) for the signed-in user."""
    v = view()
    try:
        review_store(v.db_path).append_audit(getattr(user(), "username", "unknown"), action, v.studyid, detail)
    except Exception as exc:  # never block reading on an audit write problem, but say so
        st.warning(f"Could not write the audit entry: {exc}")

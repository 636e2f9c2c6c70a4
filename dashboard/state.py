"""The one import of a page: the dashboard's state and helpers, gathered from the modules that own them.

- :mod:`dashboard.database`: where the data is (path, connection, review store, stored study settings);
- :mod:`dashboard.session`: who is looking and what is selected (sign-in, rights, :class:`View`, filters);
- :mod:`dashboard.reading`: scoped, cached queries and cached calls of domain functions;
- :mod:`dashboard.widgets`: tables, figures, paging, empty states, audit entries.

Pages write ``from dashboard import state`` and ``state.q(...)``; new code may import the owning module.
"""
from __future__ import annotations

from dashboard.database import (  # noqa: F401
    ROOT, SAMPLE_DB, connection, db_stamp, ensure_database, is_sample, landing_cut, missing_columns, previous_cut_of,
    resolve_db_path, review_store,
    store_stamp, study_cuts,
)
from dashboard.reading import (  # noqa: F401
    STORE, call_cached, dlt_window, filter_options, has_tables, missing_tables, not_delivered, q, reader, scalar,
    study_config,
)
from dashboard.session import (  # noqa: F401
    PERMISSIONS, USER_KEY, VIEW_KEY, View, can, note_selection_moved, scope_for, selection_moved,
    set_view, sign_in, studies_for, subject_filter, user, view,
)
from dashboard.widgets import (  # noqa: F401
    audit, chart, draw_figure, draw_svg, empty, figure_dict, filter_caption, log_subject_refused, log_subject_view,
    note_not_delivered, page_of, plain_text, require,
    RULES_NOT_FILTERED, rules_not_filtered,
    subject_url, subject_urls,
    table,
)

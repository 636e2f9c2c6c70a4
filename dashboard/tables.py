"""The one table widget of the dashboard: human column labels, integers as integers, blanks for missing
values, a link to each subject's profile, and an audited CSV download for roles that may export.

Streamlit's own table toolbar download is switched off for the whole app (``client.disableDataExport``
in app.py and .streamlit/config.toml): the only way to take rows away is :func:`download_button`, which
writes the packet's CSV (header block, integers as integers) and records the export in the audit log.
"""
from __future__ import annotations

import hashlib

import pandas as pd
import streamlit as st

from dashboard import state
from safety.export import common as export_common
from safety.export.csv_writer import csv_text
from safety.schema.labels import column_label

# Key columns get a width that shows them whole at 1440 px; free text gets room.
SUBJECT_WIDTH = 190
NARROW = {"grade", "max_grade", "worst_grade", "aetoxgr", "baseline_grade", "reported_grade", "derived_grade",
          "early_grade", "late_grade", "episode_no", "rule_id", "age", "sex", "aeseq", "lbseq", "day", "onset_day",
          "end_day", "death_day", "duration_days", "n", "events", "pending", "evaluable_n", "lbtestcd", "first_day",
          "last_day", "days_at_grade3_plus", "grade3_plus_hours", "days_grade3_plus", "max_grade_day", "worst_day"}
WIDE = {"evidence", "reason", "description", "changes", "rationale", "detail", "sentence", "grade_reason",
        "death_cause", "aedecod", "preferred_term", "term"}


def plural(n: int, word: str, many: str | None = None) -> str:
    """'1 episode', '2 episodes' (``many`` for irregular plurals)."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def text(value, missing: str = "-") -> str:
    """A value for a sentence or metric: ``missing`` for None/NaN/NaT, whole numbers without '.0'."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return missing
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def tidy(df: pd.DataFrame) -> pd.DataFrame:
    """Whole-number float columns as nullable integers (39, not 39.0); other columns unchanged."""
    out = df.copy()
    for col in out.columns:
        s = out[col]
        if pd.api.types.is_float_dtype(s):
            vals = s.dropna()
            if len(vals) and (vals == vals.round()).all() and vals.abs().max() < 2 ** 53:
                out[col] = s.astype("Int64")
        elif s.dtype == object and s.notna().any():
            vals = s.dropna()
            if vals.map(lambda x: isinstance(x, (int, float)) and not isinstance(x, bool)
                        and float(x).is_integer()).all():
                out[col] = pd.to_numeric(s, errors="coerce").astype("Int64")
    return out


def column_config(df: pd.DataFrame, given: dict | None = None) -> dict:
    """Labels and widths for every column of ``df`` (an entry in ``given`` wins)."""
    config = {}
    for col in df.columns:
        name = str(col)
        label = column_label(name)
        # a key column is as wide as its header (about 8 px a character at the app's font), never cut
        width = SUBJECT_WIDTH if name == "usubjid" else max(70, 8 * len(label) + 34) if name in NARROW else \
            "large" if name in WIDE else None
        if pd.api.types.is_bool_dtype(df[col]):
            config[col] = st.column_config.CheckboxColumn(label, width=max(70, 8 * len(label) + 34))
        elif pd.api.types.is_integer_dtype(df[col]):
            config[col] = st.column_config.NumberColumn(label, format="%d", width=width)
        else:
            config[col] = st.column_config.Column(label, width=width)
    config.update(given or {})
    return config


def show_table(df: pd.DataFrame, subject_col: str | None = "usubjid", height: int | None = None,
               export_name: str | None = None, title: str | None = None, where=None, **kwargs):
    """Draw ``df`` as the dashboard's table; returns st.dataframe's result (the selection when one is asked for).

    ``export_name`` (a file-name stem) offers an audited CSV download of these rows to roles with the
    export right; ``title`` heads that file.
    """
    given = dict(kwargs.pop("column_config", {}) or {})
    shown = tidy(df)
    if subject_col and subject_col in shown.columns and not shown.empty:
        v = state.view()  # looked up once for the whole column, not once per row
        shown.insert(0, "profile", [state.subject_url(s, v) if isinstance(s, str) else None
                                    for s in shown[subject_col]])
        given["profile"] = st.column_config.LinkColumn("Profile", display_text="open ↗", width="small",
                                                       help="Open this subject's profile")
    if "column_order" not in kwargs:  # free text last, so the key columns show whole at 1440 px
        kwargs["column_order"] = [c for c in shown.columns if str(c) not in WIDE] + \
                                 [c for c in shown.columns if str(c) in WIDE]
    result = (where or st).dataframe(shown, hide_index=kwargs.pop("hide_index", True), width=kwargs.pop("width", "stretch"),
                          column_config=column_config(shown, given), height=height or "auto", placeholder="",
                          **kwargs)
    if export_name and not df.empty:
        download_button(df, export_name, title or export_name.replace("_", " ").capitalize(), where=where)
    return result


def csv_export(df: pd.DataFrame, title: str, reference: str = "celltox dashboard") -> bytes:
    """The CSV of ``df`` with the packet's header block (title, study, cut, scope, generated time, sidebar
    filters) and integers written as integers, as the packet's CSV (safety.export.csv_writer)."""
    v = state.view()
    meta = export_common.packet_meta(state.reader(v))
    out = df.copy()
    notes = list(df.attrs.get("notes") or []) + ["Shown on the dashboard for " + state.filter_caption(v).replace("**", "")]
    out.attrs = {"title": title, "reference": reference, "notes": notes}
    return csv_text(out, meta).encode("utf-8")


def _audit(name: str, rows: int, payload: bytes) -> None:
    v = state.view()
    state.audit("export", {"listing": name, "format": "csv", "rows": rows, "data_cut": v.data_cut.isoformat(),
                           "sha256": hashlib.sha256(payload).hexdigest(), "filters": state.filter_caption(v)})


def download_button(df: pd.DataFrame, name: str, title: str, label: str = "Download CSV", where=None) -> bool:
    """An audited CSV download of ``df`` for roles with the export right; nothing for the others."""
    if not state.can(state.user(), "can_export"):
        return False
    v = state.view()
    payload = csv_export(df, title)
    stem = f"{v.studyid}_{v.data_cut.isoformat()}_{name}"
    (where or st).download_button(label, payload, f"{stem}.csv", "text/csv", key=f"dl_{name}",
                                  on_click=_audit, args=(name, int(len(df)), payload))
    return True

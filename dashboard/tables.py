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
from dashboard.session import selection_text
from safety.export import common as export_common
from safety.export.csv_writer import csv_text
from safety.schema.labels import column_label

# Key columns get a width that shows them whole at 1440 px; free text gets room.
SUBJECT_WIDTH = 190
NARROW = {"grade", "max_grade", "worst_grade", "aetoxgr", "baseline_grade", "reported_grade", "derived_grade",
          "early_grade", "late_grade", "episode_no", "rule_id", "age", "sex", "aeseq", "lbseq", "day", "onset_day",
          "end_day", "death_day", "duration_days", "n", "events", "pending", "evaluable_n", "lbtestcd", "first_day",
          "last_day", "days_at_grade3_plus", "grade3_plus_hours", "days_grade3_plus", "max_grade_day", "worst_day"}
MAX_ROWS = 1000  # rows drawn in one table; an audited download holds every row
WIDE = {"evidence", "reason", "description", "changes", "rationale", "detail", "sentence", "grade_reason",
        "death_cause", "aedecod", "preferred_term", "term"}
# wide but naming the row: they keep their place beside the SOC and the key, where a reader looks for them
NAMING = {"aedecod", "preferred_term", "term"}


def labelled(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with the headers people read (:func:`column_label`) on its columns, its index levels and the name of
    its column axis: for a crosstab or pivot drawn as it is, which :func:`show_table` does not take."""
    out = df.rename(columns=lambda c: column_label(c) if isinstance(c, str) else c)
    out.index = out.index.set_names([column_label(n) if n is not None else None for n in out.index.names])
    if out.columns.name is not None:
        out.columns.name = column_label(out.columns.name)
    return out


def plural(n: int, word: str, many: str | None = None) -> str:
    """'1 episode', '2 episodes' (``many`` for irregular plurals)."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def text(value, missing: str = "-") -> str:
    """A delivered value for a sentence, label or metric, all of which render Markdown: shown as typed
    (:func:`dashboard.widgets.plain_text`), ``missing`` for None/NaN/NaT, whole numbers without '.0'."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return state.plain_text(missing)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return state.plain_text(str(value))


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
            # a cheap look at the kinds first: a column of text is never checked value by value
            if pd.api.types.infer_dtype(vals, skipna=True) not in ("integer", "floating", "mixed-integer-float"):
                continue
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
               export_name: str | None = None, title: str | None = None, where=None, total: int | None = None,
               everything=None, **kwargs):
    """Draw ``df`` as the dashboard's table; returns st.dataframe's result (the selection when one is asked for).

    At most :data:`MAX_ROWS` rows are drawn, with a caption saying how many there are. ``export_name`` (a
    file-name stem) offers an audited CSV download of every row to roles with the export right; ``title``
    heads that file. When ``df`` is already a preview, ``total`` is the number of rows of the whole table and
    ``everything()`` returns it (called only when the download is clicked).
    """
    given = dict(kwargs.pop("column_config", {}) or {})
    total = len(df) if total is None else total
    if total > min(len(df), MAX_ROWS):
        # Every row drawn is serialised, sent and laid out by the browser: a preview, and the rest on request.
        offered = bool(export_name) and state.can(state.user(), "can_export")
        (where or st).caption(f"Showing the first {min(len(df), MAX_ROWS):,} of {total:,} rows"
                              + ("; the CSV download holds every row." if offered else "."))
    shown = tidy(df.head(MAX_ROWS))
    if subject_col and subject_col in shown.columns and not shown.empty:
        shown.insert(0, "profile", state.subject_urls(shown[subject_col], state.view()))
        given["profile"] = st.column_config.LinkColumn("Profile", display_text="open ↗", width="small",
                                                       help="Open this subject's profile")
    if "column_order" not in kwargs:  # free text last, so the key columns show whole at 1440 px
        last = WIDE - NAMING
        kwargs["column_order"] = [c for c in shown.columns if str(c) not in last] + \
                                 [c for c in shown.columns if str(c) in last]
    result = (where or st).dataframe(shown, hide_index=kwargs.pop("hide_index", True), width=kwargs.pop("width", "stretch"),
                          column_config=column_config(shown, given), height=height or "auto", placeholder="",
                          **kwargs)
    if export_name and total:
        download_button(everything if everything is not None else df, export_name,
                        title or export_name.replace("_", " ").capitalize(), where=where, rows=total)
    return result


def _as_shown(df: pd.DataFrame, v: state.View | None, **attrs):
    """(``df`` with ``attrs`` and the sidebar filters among its notes, the packet's metadata of the view): what a
    download of a page's table writes, so a filtered subset says so in the file."""
    v = v or state.view()
    out = df.copy()
    notes = list(df.attrs.get("notes") or []) + ["Shown on the dashboard for " + selection_text(v)]
    out.attrs = {**attrs, "notes": notes}
    return out, export_common.packet_meta(state.reader(v))


def csv_export(df: pd.DataFrame, title: str, reference: str = "celltox dashboard", v: state.View | None = None) -> bytes:
    """The CSV of ``df`` with the packet's header block (title, study, cut, scope, generated time, sidebar
    filters) and integers written as integers, as the packet's CSV (safety.export.csv_writer)."""
    out, meta = _as_shown(df, v, title=title, reference=reference)
    return csv_text(out, meta).encode("utf-8")


def xlsx_export(df: pd.DataFrame, name: str, title: str, reference: str = "celltox dashboard",
                v: state.View | None = None) -> bytes:
    """The workbook of ``df`` as the packet writes one (safety.export.xlsx_writer): a cover sheet with study, cut,
    scope and generated time, then the listing under its title with the sidebar filters among its notes, so a
    filtered subset cannot pass for the whole listing."""
    import tempfile
    from pathlib import Path

    from safety.export.xlsx_writer import write_xlsx

    out, meta = _as_shown(df, v, name=name, title=title, reference=reference, kind="listing")
    with tempfile.TemporaryDirectory(prefix="celltox-xlsx-") as tmp:
        return write_xlsx([out], meta, Path(tmp) / f"{name}.xlsx").read_bytes()


def audited_file(make, name: str, fmt: str, rows: int):
    """A download's contents written only when the user clicks (``make()`` returns the bytes), with the
    export recorded in the audit log (who, what, how many rows, SHA-256 of the file) before it is handed out.

    Writing every table's file on every rerun cost more than drawing the page; Streamlit calls this on the
    click, outside the script run, so the view, user and store are taken now.
    """
    v = state.view()
    username = getattr(state.user(), "username", "unknown")
    store = state.review_store(v.db_path)
    detail = {"listing": name, "format": fmt, "rows": int(rows), "data_cut": v.data_cut.isoformat(),
              "filters": state.filter_caption(v)}

    def written() -> bytes:
        payload = make(v)
        # no unaudited export: when the entry cannot be written the download fails
        store.append_audit(username, "export", v.studyid, {**detail, "sha256": hashlib.sha256(payload).hexdigest()})
        return payload

    return written


def audited_download(where, label: str, make, name: str, fmt: str, rows: int, file_name: str, mime: str,
                     key: str | None = None) -> None:
    """A download button whose file is written on the click and audited then (:func:`audited_file`).

    The click reruns nothing (``on_click="ignore"``): the file and its audit entry are made apart from the page's
    script. A rerun would redraw the whole page for nothing, and it registers the button's file anew, dropping the
    one the click asked for if the rerun ends first (the download then fails)."""
    (where or st).download_button(label, audited_file(make, name, fmt, rows), file_name, mime, key=key,
                                  on_click="ignore")


def download_button(df, name: str, title: str, label: str = "Download CSV", where=None, rows: int | None = None) -> bool:
    """An audited CSV download of ``df`` (a DataFrame, or a function returning it, called on the click) for
    roles with the export right (written on the click); nothing for the others."""
    if not state.can(state.user(), "can_export"):
        return False
    v = state.view()
    stem = f"{v.studyid}_{v.data_cut.isoformat()}_{name}"
    frame = df if callable(df) else (lambda: df)
    rows = len(df) if rows is None else rows
    audited_download(where, label, lambda view: csv_export(frame(), title, v=view), name, "csv", rows,
                     f"{stem}.csv", "text/csv", key=f"dl_{name}")
    return True

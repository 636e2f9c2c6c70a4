"""XLSX output (xlsxwriter): a cover sheet, then one sheet per output with a header block,
a frozen header row, fitted column widths and grade cells coloured with safety.core.palette.

The workbook is reproducible: its created date is the data cut, and xlsxwriter stores fixed zip
timestamps, so the same database and cut give the same bytes except the generation-time cell.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import xlsxwriter

from safety.export.common import GRADE_COLUMNS, PacketMeta, grade_of, label, text_value
from safety.core.palette import GRADE_COLORS, GRADE_TEXT

MAX_WIDTH = 60
HEADER_ROWS = 5  # title, study/cut, generated, reference, blank


def _cell(v):
    """Numbers stay numbers and dates dates in Excel (a date-time with its time); everything else as text."""
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, bool):
        return "Y" if v else "N"
    if isinstance(v, dt.date):
        return v
    if isinstance(v, float):
        return None if v != v else v
    if isinstance(v, int):
        return v
    t = text_value(v)
    try:
        import numpy as np
        if isinstance(v, (np.integer, np.floating)):
            f = v.item()
            return None if f != f else f
    except ImportError:  # pragma: no cover
        pass
    return t


def _sheet_name(name: str, used: set[str]) -> str:
    base = "".join(ch for ch in name if ch not in "[]:*?/\\")[:31] or "sheet"
    out, i = base, 2
    while out.lower() in used:
        out = f"{base[:28]}_{i}"
        i += 1
    used.add(out.lower())
    return out


def write_xlsx(outputs: list[pd.DataFrame], meta: PacketMeta, path: Path) -> Path:
    """Write the workbook: cover sheet, then one sheet per output, in the given order."""
    path = Path(path)
    wb = xlsxwriter.Workbook(str(path), {"strings_to_numbers": False, "strings_to_formulas": False,
                                         "strings_to_urls": False, "nan_inf_to_errors": True})
    created = dt.datetime.combine(meta.data_cut, dt.time())
    wb.set_properties({"title": f"{meta.studyid} committee outputs, data cut {meta.data_cut}",
                       "subject": "Safety listings and tables", "author": "celltox",
                       "company": "", "comments": f"celltox {meta.version}", "created": created})
    wb.set_custom_property("data_cut", meta.data_cut.isoformat())
    f_title = wb.add_format({"bold": True, "font_size": 13})
    f_bold = wb.add_format({"bold": True})
    f_head = wb.add_format({"bold": True, "bg_color": "#DDDDDD", "border": 1, "text_wrap": True, "valign": "top"})
    f_note = wb.add_format({"italic": True, "font_color": "#444444"})
    # the CSV's ISO spelling, so that a date reads the same in every file of the packet
    f_date = wb.add_format({"num_format": "yyyy-mm-dd", "align": "left"})
    f_datetime = wb.add_format({"num_format": "yyyy-mm-dd hh:mm", "align": "left"})
    f_grade = {g: wb.add_format({"bg_color": GRADE_COLORS[g], "font_color": GRADE_TEXT[g], "align": "center"})
               for g in GRADE_COLORS}
    used: set[str] = {"cover"}
    names = [_sheet_name(o.attrs.get("name", f"output{i}"), used) for i, o in enumerate(outputs)]

    cover = wb.add_worksheet("Cover")
    cover.write(0, 0, "Safety committee outputs", f_title)
    row = 2
    for line in meta.header_lines():
        cover.write(row, 0, line)
        row += 1
    cover.write(row, 0, meta.generated_line)
    row += 1
    if meta.audit_line:
        cover.write(row, 0, meta.audit_line)
        row += 1
    for line in meta.hash_lines():
        cover.write(row, 0, line)
        row += 1
    row += 1
    cover.write_row(row, 0, ["Sheet", "Title", "Reference", "Rows"], f_bold)
    for sheet, out in zip(names, outputs):
        row += 1
        cover.write_url(row, 0, f"internal:'{sheet}'!A1", string=sheet)
        cover.write_row(row, 1, [out.attrs.get("title", ""), out.attrs.get("reference", ""), len(out)])
    cover.write(row + 2, 0, "Confidential", f_bold)
    cover.set_column(0, 0, 70)
    cover.set_column(1, 1, 60)
    cover.set_column(2, 2, 30)

    for sheet, out in zip(names, outputs):
        ws = wb.add_worksheet(sheet)
        a = out.attrs
        ws.write(0, 0, a.get("title", sheet), f_title)
        ws.write(1, 0, f"{meta.short_label} | celltox {meta.version} | {a.get('reference', '')} | Confidential")
        ws.write(2, 0, meta.generated_line)
        ws.write(3, 0, f"Rows: {len(out)}")
        hr = HEADER_ROWS
        cols = list(out.columns)
        is_listing = a.get("kind") == "listing"
        heads = [label(col) if is_listing else str(col) for col in cols]
        ws.write_row(hr, 0, heads, f_head)
        widths = [min(MAX_WIDTH, max(8, len(h) if is_listing else min(len(h), 24))) for h in heads]
        for j, col in enumerate(cols):
            values = out[col].tolist()
            grade_col = col in GRADE_COLUMNS
            texts = [text_value(v) for v in values]
            if texts:
                widths[j] = min(MAX_WIDTH, max(widths[j], max(len(t) for t in texts) + 1))
            for i, v in enumerate(values):
                val = _cell(v)
                if val is None:
                    continue
                g = grade_of(texts[i]) if grade_col else None
                if g is not None:
                    ws.write_number(hr + 1 + i, j, g, f_grade[g])
                elif isinstance(val, (int, float)):
                    ws.write_number(hr + 1 + i, j, val)
                elif isinstance(val, dt.datetime):
                    timed = (val.hour, val.minute, val.second) != (0, 0, 0)  # as text_value writes it
                    ws.write_datetime(hr + 1 + i, j, val.replace(tzinfo=None), f_datetime if timed else f_date)
                elif isinstance(val, dt.date):
                    ws.write_datetime(hr + 1 + i, j, val, f_date)
                else:
                    ws.write_string(hr + 1 + i, j, val)
            ws.set_column(j, j, widths[j] + 1)
        ws.freeze_panes(hr + 1, 0)
        if cols:
            ws.autofilter(hr, 0, hr + max(len(out), 1), len(cols) - 1)
        nr = hr + len(out) + 2
        for n in a.get("notes", []):
            ws.write(nr, 0, n, f_note)
            nr += 1
        ws.set_landscape()
        ws.repeat_rows(hr)
        ws.set_header(f"&L{_hf(meta.short_label)}&C{_hf(a.get('title', ''))}&RPage &P of &N")
        audit = f"&C{meta.audit_line}" if meta.audit_line else ""  # hex digits only: no & to escape, not cut
        ws.set_footer(f"&LConfidential{audit}&Rcelltox {_hf(meta.version)}")
    wb.close()
    return path


def _hf(text: str) -> str:
    return str(text).replace("&", "&&")[:80]

"""The PDF committee packet (fpdf2): cover page, table of contents, overview figures, then the
tables and listings; every page has the study and cut in its header and "Confidential", the
generation time and "Page x of y" in its footer.

Letter landscape. DejaVu Sans when installed, else core Helvetica (Latin-1). A character the font in
use has no glyph for (CJK, for one, in DejaVu) is shown as a visible mark (:attr:`_Packet.mark`), never
dropped, and the page says so (:data:`MARK_NOTE`). Listings longer than ``max_rows`` are cut in the PDF with a note pointing at
the complete CSV/XLSX/RTF files. The creation date is fixed to the data cut, so the same database and
cut give the same PDF apart from the generation-time text.
"""
from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path
from typing import Callable

import pandas as pd
from fpdf import FPDF

from safety.export import PDF_MAX_ROWS
from safety.export.common import CONFIDENTIAL, GRADE_COLUMNS, PacketMeta, grade_of, label, text_frame
from safety.core.palette import GRADE_COLORS, GRADE_TEXT
from safety.core.vocabulary import ae_pt_label

DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
DEFAULT_MAX_ROWS = PDF_MAX_ROWS


def _rgb(h: str) -> tuple[int, int, int]:
    h = h.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


class _Packet(FPDF):
    def __init__(self, meta: PacketMeta | None):
        super().__init__(orientation="L", unit="mm", format="Letter")
        self.meta = meta  # None in a document made ahead (new_document); write_pdf sets it
        self.section_title = ""
        self.unicode = (DEJAVU / "DejaVuSans.ttf").exists() and (DEJAVU / "DejaVuSans-Bold.ttf").exists()
        if self.unicode:
            self.add_font("DejaVu", "", str(DEJAVU / "DejaVuSans.ttf"))
            self.add_font("DejaVu", "B", str(DEJAVU / "DejaVuSans-Bold.ttf"))
            cond = DEJAVU / "DejaVuSansCondensed.ttf"
            cond_b = DEJAVU / "DejaVuSansCondensed-Bold.ttf"
            self.add_font("DejaVuCond", "", str(cond if cond.exists() else DEJAVU / "DejaVuSans.ttf"))
            self.add_font("DejaVuCond", "B", str(cond_b if cond_b.exists() else DEJAVU / "DejaVuSans-Bold.ttf"))
            self.body_font, self.table_font = "DejaVu", "DejaVuCond"
            # the characters every face has a glyph for (the bold faces have a few fewer)
            self.drawable = frozenset.intersection(*(frozenset(f.cmap) for f in self.fonts.values()))
        else:
            self.body_font = self.table_font = "Helvetica"
            self.drawable = frozenset(range(0x20, 0x7F)) | frozenset(range(0xA0, 0x100))
        self.mark = "\ufffd" if 0xFFFD in self.drawable else "?"
        self.marked = 0  # texts in which a character was shown as the mark
        self._marks: dict[int, str] = {}  # str.translate table: character -> mark (or space for whitespace)
        self.set_auto_page_break(True, margin=16)
        self.set_margins(10, 16, 10)
        self.alias_nb_pages()

    def t(self, text) -> str:
        """``text`` as the PDF draws it: each character the font in use has no glyph for replaced by the mark
        (whitespace other than a line break by a space), and counted in ``marked``. Every text enters the PDF
        through here."""
        s = str(text)
        if s.isascii() and s.isprintable():  # every face has printable ASCII
            return s
        missing = {ord(c) for c in s} - self.drawable - {0x0A}
        if not missing:
            return s
        for c in missing:
            if c not in self._marks:
                self._marks[c] = " " if chr(c).isspace() else self.mark
        if any(self._marks[c] != " " for c in missing):
            self.marked += 1
        return s.translate(self._marks)

    def header(self):
        if self.page_no() == 1:
            return
        self.set_font(self.body_font, "", 8)
        self.set_text_color(80, 80, 80)
        self.set_xy(10, 7)
        title = "Contents" if self.page_no() <= getattr(self, "toc_last_page", 0) else self.section_title
        self.cell(0, 4, self.t(f"{self.meta.short_label} | {title}"[:180]), align="L")
        self.set_text_color(0, 0, 0)
        self.set_y(16)

    def footer(self):
        self.set_y(-12)
        self.set_font(self.body_font, "", 7)
        self.set_text_color(80, 80, 80)
        w = self.w - 20
        self.cell(w / 3, 4, self.t(f"{CONFIDENTIAL} | celltox {self.meta.version}"), align="L")
        self.cell(w / 3, 4, self.t(self.meta.generated_line), align="C")
        self.cell(w / 3, 4, f"Page {self.page_no()} of {{nb}}", align="R")
        if self.meta.audit_line:
            self.set_xy(10, self.h - 8)
            self.set_font(self.body_font, "", 6)
            self.cell(w, 3, self.t(self.meta.audit_line), align="C")
        self.set_text_color(0, 0, 0)


TOC_TITLE_H, TOC_ROW_H = 10, 6  # mm: the "Contents" heading and one entry


def _render_toc(pdf: _Packet, outline):
    pdf.set_x(pdf.l_margin)  # fpdf2 calls this with x where the document ended
    pdf.set_font(pdf.body_font, "B", 16)
    pdf.cell(0, TOC_TITLE_H, "Contents", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(pdf.body_font, "", 10)
    for entry in outline:
        indent = 6 * entry.level
        link = pdf.add_link(page=entry.page_number)
        pdf.set_x(10 + indent)
        pdf.cell(pdf.w - 40 - indent, TOC_ROW_H, pdf.t(entry.name)[:150], link=link)
        pdf.cell(20, TOC_ROW_H, str(entry.page_number), align="R", link=link, new_x="LMARGIN", new_y="NEXT")


def _toc_pages(pdf: _Packet, entries: int) -> int:
    """Pages the contents take for ``entries`` sections (one per figure and output): the heading and the rows
    of the first page, then full pages of rows, as :func:`_render_toc` lays them out."""
    first = int((pdf.page_break_trigger - pdf.t_margin - TOC_TITLE_H) // TOC_ROW_H)
    more = int((pdf.page_break_trigger - pdf.t_margin) // TOC_ROW_H)
    return 1 + max(0, -(-(entries - first) // more))


# said under a table, or on the cover, whose text has a character shown as the mark
MARK_NOTE = ("PDF only: characters the PDF font cannot draw are shown as {mark}; the CSV, XLSX and RTF files hold "
             "the exact text.")


def _cover(pdf: _Packet, meta: PacketMeta, outputs: list[pd.DataFrame]):
    marked = pdf.marked
    pdf.add_page()
    pdf.set_font(pdf.body_font, "B", 22)
    pdf.ln(10)
    pdf.multi_cell(0, 11, pdf.t("Safety Review Committee packet"), align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(pdf.body_font, "B", 14)
    pdf.multi_cell(0, 8, pdf.t(f"{meta.studyid}" + (f" - {meta.title}" if meta.title else "")), align="L",
                   new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font(pdf.body_font, "", 11)
    for line in meta.header_lines() + [meta.generated_line]:
        pdf.multi_cell(0, 6, pdf.t(line), align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font(pdf.body_font, "", 8)
    for line in meta.hash_lines():
        pdf.multi_cell(0, 4, pdf.t(line), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font(pdf.body_font, "", 10)
    n_t = sum(o.attrs.get("kind") == "table" for o in outputs)
    n_l = sum(o.attrs.get("kind") == "listing" for o in outputs)
    pdf.multi_cell(0, 6, pdf.t(f"Contents: overview figures, {n_t} tables, {n_l} listings. "
                               "Grade colours: 1 blue, 2 yellow, 3 orange, 4 vermillion, 5 black."),
                   new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    pdf.set_font(pdf.body_font, "B", 12)
    pdf.cell(0, 8, CONFIDENTIAL.upper() + " - for the Safety Review Committee only", new_x="LMARGIN", new_y="NEXT")
    for line in (meta.short_label, meta.audit_line or ""):  # the page headers and footers
        pdf.t(line)
    if pdf.marked > marked:
        pdf.ln(2)
        pdf.set_font(pdf.body_font, "", 9)
        pdf.multi_cell(0, 5, MARK_NOTE.format(mark=pdf.mark), new_x="LMARGIN", new_y="NEXT")


def _section_page(pdf: _Packet, title: str) -> None:
    """Start a section on a new page, or on the blank page the contents placeholder left open."""
    if getattr(pdf, "fresh_page", False):
        pdf.fresh_page = False
        return
    pdf.section_title = title
    pdf.add_page()


def _figure_page(pdf: _Packet, title: str) -> tuple[int, float]:
    """A figure's page with its title; returns (page, y) where its image or note goes (:func:`_figure_contents`)."""
    _section_page(pdf, title)
    pdf.start_section(pdf.t(f"Figure: {title}"), level=0)
    pdf.set_font(pdf.body_font, "B", 13)
    pdf.cell(0, 8, pdf.t(title), new_x="LMARGIN", new_y="NEXT")
    return pdf.page, pdf.get_y()


NOTE_H, FIGURE_NOTE_H = 4, 8  # mm: a line of a note under a figure, and of the note that stands for a missing one


def _figure_contents(pdf: _Packet, slots: list[tuple[int, float]], figures) -> None:
    """Draw each figure's image (or the note saying why it is missing) on the page :func:`_figure_page` made for it.

    Called after the tables and listings are laid out (the renderer finishes the figures meanwhile). Each figure
    fits its page (the image box leaves room for its note), so no page is added and no page number moves. Font
    and colours are set again on each page, as a new page sets them."""
    last_page, last_x, last_y = pdf.page, pdf.get_x(), pdf.get_y()
    pdf.set_auto_page_break(False)
    for (page, y), (_, png, note) in zip(slots, figures):
        pdf.page = page
        pdf.current_font_is_set_on_page = False
        pdf.set_fill_color(255, 255, 255)  # two colours in turn: the page's stream gets the grey whatever was last set
        pdf.set_fill_color(240, 240, 240)
        pdf.set_text_color(0, 0, 0)
        pdf.set_xy(pdf.l_margin, y)
        room = pdf.page_break_trigger - y
        if png:
            pdf.set_font(pdf.body_font, "", 8)
            lines = _note_lines(pdf, pdf.t(note)) if note else []
            h = min(pdf.h - y - 24, room - NOTE_H * len(lines))
            pdf.image(io.BytesIO(png), x=10, w=min(pdf.w - 20, 240), keep_aspect_ratio=True, h=h)
            if note:
                pdf.multi_cell(0, NOTE_H, pdf.t(note), new_x="LMARGIN", new_y="NEXT")
        else:
            pdf.set_font(pdf.body_font, "", 11)
            text = pdf.t(note or "Figure unavailable.")
            lines = _note_lines(pdf, text)
            fit = max(1, int(room // FIGURE_NOTE_H))
            if len(lines) > fit:  # a message longer than the page (never seen): what fits, marked as cut
                text = "\n".join(lines[:fit - 1] + [lines[fit - 1][:-6] + " [...]"])
            pdf.multi_cell(0, FIGURE_NOTE_H, text, border=1, fill=True, new_x="LMARGIN", new_y="NEXT")
    pdf.set_auto_page_break(True, margin=16)
    pdf.page = last_page
    pdf.current_font_is_set_on_page = False
    pdf.set_xy(last_x, last_y)


def _note_lines(pdf: _Packet, text: str) -> list[str]:
    """The lines ``multi_cell`` breaks ``text`` into at the current font and full width."""
    return pdf.multi_cell(0, NOTE_H, text, dry_run=True, output="LINES")


# Listings keep every column in CSV/XLSX/RTF; on a landscape PDF page a reader needs the key ones at a
# legible size (the full AE listing has 32 columns). Names missing from a frame are skipped.
PDF_COLUMNS: dict[str, list[str]] = {
    "ae": ["usubjid", "cohort", "aeseq", "preferred_term", "onset_day", "end_day", "duration_days",
           "grading_system", "grade", "serious", "related", "outcome", "in_dlt_window", "adjudicated_dlt",
           "tocilizumab_during_event", "corticosteroid_during_event", "new_since_previous_cut"],
    "dlt": ["usubjid", "cohort", "event_key", "rule_id", "reason", "term", "onset_day", "grade", "duration_days",
            "in_window", "evidence", "adjudication", "adjudicated_dlt", "adjudicated_by", "adjudication_rationale",
            "new_since_previous_cut"],
    "crs_icans_episodes": ["usubjid", "cohort", "syndrome", "episode_no", "onset_day", "duration_days", "max_grade",
                           "max_grade_day", "ongoing", "tocilizumab", "corticosteroid", "anakinra",
                           "icu_level_support", "reported_grade", "adjudicated_dlt", "new_since_previous_cut"],
    "lab_grade3": ["usubjid", "cohort", "lbtestcd", "ctcae_term", "direction", "lab_date", "day", "value", "unit",
                   "lln", "uln", "baseline_value", "grade", "new_since_previous_cut"],
    "aesi": ["aesi_category", "usubjid", "cohort", "event_key", "term", "onset_day", "duration_days", "grade",
             "serious", "related", "outcome", "detail", "new_since_previous_cut"],
    # the grade reasons say the durations (days_le_500, days_le_100) in words
    "icaht": ["usubjid", "cohort", "lineage", "early_grade", "early_evaluability", "early_grade_reason", "recovery_day",
              "late_grade", "late_grade_reason", "late_nadir", "late_nadir_day", "note"],
}
PDF_COLUMNS["sae"] = PDF_COLUMNS["ae"]

UNCODED_NOTE = ("PDF only: an AE without a preferred term is named as the SOC/PT tables count it, 'Uncoded: ' and its "
                "verbatim term in upper case ('Uncoded: (no term)' without one either); the CSV, XLSX and RTF files "
                "keep both terms as delivered.")
DATE_FOR_DAY_NOTE = ("PDF only: an AE of a subject never infused has no study day (day 0 is the infusion); its onset "
                     "and end dates stand in the onset and end day columns.")


def _ae_cells(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The AE listing as its few PDF columns can name and time each event (ICH E3 12.2.4: the term, the onset): the
    preferred term as the SOC/PT tables name it (safety.core.vocabulary.ae_pt_label), and a date where there is no
    study day; with the notes that say so."""
    notes = []
    if len(df) and not df["preferred_term"].map(lambda v: isinstance(v, str)).all():
        named = [ae_pt_label(pt, term) for pt, term in zip(df["preferred_term"], df["verbatim_term"])]
        df, notes = df.assign(preferred_term=named), [UNCODED_NOTE]
    undated = {day: df[day].isna() & df[date].notna() for day, date in (("onset_day", "onset_date"),
                                                                        ("end_day", "end_date"))}
    if any(u.any() for u in undated.values()):
        df = df.assign(onset_day=df["onset_day"].astype(object).where(~undated["onset_day"], df["onset_date"]),
                       end_day=df["end_day"].astype(object).where(~undated["end_day"], df["end_date"]))
        notes.append(DATE_FOR_DAY_NOTE)
    return df, notes


# Cells a listing shows otherwise in the PDF, where fewer columns must name and time an event than in the other
# formats: name -> function(frame) -> (the frame to show, the notes saying what differs from the other formats).
PDF_CELLS: dict[str, Callable[[pd.DataFrame], tuple[pd.DataFrame, list[str]]]] = {"ae": _ae_cells, "sae": _ae_cells}

MAX_COL_MM = 70.0


def _col_widths(pdf: FPDF, heads: list[str], rows: list[list[str]], total: float) -> tuple[list[float], bool]:
    """Column widths in mm: each column at least as wide as its longest word, so that no word is broken
    mid-letter, the rest of the page shared in proportion to the columns' natural widths. A table too wide for
    whole words lets its words break after a hyphen, slash or separator (``CD56-CART-01-`` / ``01-021``,
    ``RECOVERED/`` / ``RESOLVED``), as printed listings wrap identifiers; only a table too wide even for that
    is shrunk evenly, and only then may a word be cut between letters. A word wider than ``MAX_COL_MM`` (no
    column is wider) is cut between letters whatever the table. A cut between letters ends with a hyphen
    (:func:`_wrap`). Every row shown is measured. Returns the widths and whether every piece of every word
    fits whole."""
    pad = 2 * pdf.c_margin + 0.6
    cells = [{r[j] for r in rows} for j in range(len(heads))]  # each column's distinct texts
    width = _measurer(pdf)

    def minima(split) -> list[float]:
        out = []
        for j, h in enumerate(heads):
            words = {w for c in cells[j] for w in split(c)} | set(split(h))
            out.append(min(MAX_COL_MM, max((width(w) for w in words), default=0.0) + pad))
        return out

    natural = []
    for j, h in enumerate(heads):
        longest = max((width(c) for c in cells[j]), default=0.0)
        head_word = max((width(w) for w in h.split()), default=0.0)
        natural.append(min(MAX_COL_MM, max(longest, head_word) + pad))
    minimum = minima(str.split)
    if sum(minimum) > total:
        minimum = minima(_pieces)
    natural = [max(n, m) for n, m in zip(natural, minimum)]
    if sum(natural) <= total:
        k = total / sum(natural)
        return [n * k for n in natural], True
    if sum(minimum) >= total:  # too many columns even at word width: shrink evenly
        k = total / sum(minimum)
        return [m * k for m in minimum], False
    spare = total - sum(minimum)
    want = [n - m for n, m in zip(natural, minimum)]
    return [m + spare * w / sum(want) for m, w in zip(minimum, want)], True


# where a word may break when it is wider than its column: after these characters
_BREAK_AFTER = re.compile(r"(?<=[-/_;=,|])(?=.)")


def _pieces(text: str) -> list[str]:
    """The words of ``text``, each broken after its hyphens, slashes and separators."""
    return [p for w in text.split() for p in _BREAK_AFTER.split(w)]


HEAD_FILL = (221, 221, 221)
# a table whose words do not fit whole at its font is set smaller, down to the last of these (points)
TABLE_SMALLER_FONTS = (6.0, 5.5)


def _measurer(pdf: FPDF):
    """Width in mm of a text in the current font and size, remembered per text. The font's own width
    table, without ``get_string_width``'s markdown and style handling (the text is plain here)."""
    font, size_pt, k = pdf.current_font, pdf.font_size_pt, pdf.k
    cache: dict[str, float] = {}

    def measure(text: str) -> float:
        w = cache.get(text)
        if w is None:
            w = cache[text] = font.get_text_width(text, size_pt, None)[1] / k
        return w
    return measure


def _wrap(text: str, width: float, measure) -> list[str]:
    """Greedy word wrap to ``width`` mm. A word wider than the width breaks after a hyphen, slash or separator
    where it can, and is cut between letters only where it cannot, with a hyphen at the cut. A line's leading
    spaces (a sub-row's indent, ``  Serious: results in death``) indent each of its lines."""
    lines: list[str] = []
    space = measure(" ")
    for para in text.split("\n"):
        body = para.lstrip(" ")
        indent = para[:len(para) - len(body)]
        if indent:
            start = len(lines)
            lines.extend(indent + x for x in _wrap(body, max(width - measure(indent), width / 2), measure))
            if not body:
                lines[start] = ""
            continue
        line, used = "", 0.0
        for word in para.split():
            w = measure(word)
            if line and used + space + w <= width:
                line, used = f"{line} {word}", used + space + w
                continue
            if line:
                lines.append(line)
            while w > width and len(word) > 1:  # break an over-long word where it reaches the edge
                k = 1
                while k < len(word) and measure(word[:k + 1]) <= width:
                    k += 1
                soft = [m.start() for m in _BREAK_AFTER.finditer(word[:k + 1]) if 0 < m.start() <= k]
                if soft:
                    lines.append(word[:soft[-1]])
                    word = word[soft[-1]:]
                else:  # between letters: a hyphen says the word goes on
                    while k > 1 and measure(word[:k] + "-") > width:
                        k -= 1
                    lines.append(word[:k] + "-")
                    word = word[k:]
                w = measure(word)
            line, used = word, w
        lines.append(line)
    return lines or [""]


CUT_MARK = "[...]"  # ends a cell cut to a page's height
CUT_NOTE = ("PDF only: a cell longer than a page is cut where it ends with [...]; the CSV, XLSX and RTF files hold "
            "the full text.")


def _clip(lines: list[str], max_lines: int, width: float, measure) -> list[str]:
    """``lines`` cut to ``max_lines``, the last ending with :data:`CUT_MARK` (words dropped to make room)."""
    if len(lines) <= max_lines:
        return lines
    last = lines[max_lines - 1].rstrip()
    while last and measure(f"{last} {CUT_MARK}") > width:
        last = last.rsplit(" ", 1)[0] if " " in last.strip() else last[:-1]
    return lines[:max_lines - 1] + [f"{last} {CUT_MARK}" if last.strip() else CUT_MARK]


def _table(pdf: _Packet, heads: list[str], rows: list[list[str]], widths: list[float], font_size: float,
           grade_idx: set[int], styles: dict) -> bool:
    """Draw a table row by row: wrapped cells, headings (bold, grey) repeated on every page, a line under
    the headings, grade cells in the grade colours. A cell longer than a page is cut to it, marked
    (:func:`_clip`); returns whether one was.

    Written with fpdf2's low-level text and rectangles: its ``table()`` lays out every cell through
    ``multi_cell`` (about 2 ms a cell on this machine, most of a packet's time); this keeps one word-width
    lookup per distinct word."""
    lh = font_size * 0.5
    pad = pdf.c_margin
    top_pad = 0.0  # as fpdf2 tables: the line height (half the font size in mm) carries the spacing

    pdf.set_font(pdf.table_font, "B", font_size)
    head_lines = [_wrap(h, w - 2 * pad, _measurer(pdf)) for h, w in zip(heads, widths)]
    pdf.set_font(pdf.table_font, "", font_size)
    measure = _measurer(pdf)
    max_lines = max(1, int((pdf.page_break_trigger - pdf.t_margin) / lh) - 6)

    def draw(lines_per_cell, fills, colors, bold: bool) -> None:
        h = max(len(x) for x in lines_per_cell) * lh + 2 * top_pad
        y, x = pdf.get_y(), pdf.l_margin
        if bold:
            pdf.set_font(pdf.table_font, "B", font_size)
        for j, lines in enumerate(lines_per_cell):
            if fills[j] is not None:
                pdf.set_fill_color(*fills[j])
                pdf.rect(x, y, widths[j], h, style="F")
            if colors[j] is not None:
                pdf.set_text_color(*colors[j])
            for i, line in enumerate(lines):
                if line:
                    pdf.text(x + pad, y + top_pad + i * lh + 0.5 * lh + 0.3 * pdf.font_size, line)
            if colors[j] is not None:
                pdf.set_text_color(0, 0, 0)
            x += widths[j]
        if bold:
            pdf.set_font(pdf.table_font, "", font_size)
            pdf.set_draw_color(0, 0, 0)
            pdf.line(pdf.l_margin, y + h, pdf.l_margin + sum(widths), y + h)
        pdf.set_y(y + h)

    n = len(heads)
    head_h = max(len(x) for x in head_lines) * lh + 2 * top_pad

    def headings() -> None:
        draw(head_lines, [HEAD_FILL] * n, [None] * n, True)

    if pdf.get_y() + head_h + lh + 2 * top_pad > pdf.page_break_trigger:
        pdf.add_page()
    headings()
    cut = False
    for row in rows:
        cells = [_wrap(text, w - 2 * pad, measure) for text, w in zip(row, widths)]
        if any(len(c) > max_lines for c in cells):
            cells = [_clip(c, max_lines, w - 2 * pad, measure) for c, w in zip(cells, widths)]
            cut = True
        h = max(len(x) for x in cells) * lh + 2 * top_pad
        if pdf.get_y() + h > pdf.page_break_trigger:
            pdf.add_page()  # header() and footer() run; the headings come again
            headings()
        fills, colors = [None] * n, [None] * n
        for j in grade_idx:
            g = grade_of(row[j])
            if g is not None:
                fills[j], colors[j] = styles[g]
        draw(cells, fills, colors, False)
    return cut


def _output(pdf: _Packet, df: pd.DataFrame, max_rows: int):
    a = df.attrs
    marked = pdf.marked
    listing = a.get("kind") == "listing"
    title = a.get("title", a.get("name", ""))
    _section_page(pdf, title)
    pdf.start_section(pdf.t(("Listing: " if listing else "Table: ") + title), level=0)
    pdf.set_font(pdf.body_font, "B", 12)
    pdf.multi_cell(0, 7, pdf.t(title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(pdf.body_font, "", 8)
    shown = df if len(df) <= max_rows else df.iloc[:max_rows]
    info = f"{a.get('reference', '')} | rows: {len(df)}"
    if len(shown) < len(df):
        info += (f" | PDF shows the first {len(shown)} rows; the complete listing is in the CSV, XLSX and RTF files")
    pdf.multi_cell(0, 4, pdf.t(info), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1)
    shown, pdf_notes = PDF_CELLS.get(a.get("name", ""), lambda d: (d, []))(shown)
    cols = list(df.columns)
    pick = [c for c in PDF_COLUMNS.get(a.get("name", ""), []) if c in cols]
    if pick and len(pick) < len(cols):
        cols = pick
        shown = shown[cols]
        pdf.multi_cell(0, 4, pdf.t(f"PDF shows {len(cols)} of {len(df.columns)} columns; every column is in the "
                                   "CSV, XLSX and RTF files."), new_x="LMARGIN", new_y="NEXT")
    heads = [pdf.t(label(c) if listing else str(c)) for c in cols]
    rows = [[pdf.t(x) for x in r] for r in text_frame(shown)]
    cut = False
    if not cols or not rows:
        pdf.set_font(pdf.body_font, "", 9)
        pdf.multi_cell(0, 5, pdf.t("No rows."), new_x="LMARGIN", new_y="NEXT")
    else:
        font_size = 6.5 if len(cols) > 14 else 7 if len(cols) > 8 else 8
        for font_size in [font_size] + [f for f in TABLE_SMALLER_FONTS if f < font_size]:
            pdf.set_font(pdf.table_font, "B", font_size)  # headings are bold: measure the wider face
            widths, whole = _col_widths(pdf, heads, rows, pdf.w - 20)
            if whole:
                break
        pdf.set_font(pdf.table_font, "", font_size)
        grade_idx = {j for j, c in enumerate(cols) if c in GRADE_COLUMNS}
        styles = {g: (_rgb(GRADE_COLORS[g]), _rgb(GRADE_TEXT[g])) for g in GRADE_COLORS}
        cut = _table(pdf, heads, rows, widths, font_size, grade_idx, styles)
    pdf.ln(2)
    pdf.set_font(pdf.body_font, "", 7)
    notes = [pdf.t(n) for n in a.get("notes", []) + pdf_notes]
    if cut:
        notes.append(CUT_NOTE)
    if pdf.marked > marked:
        notes.append(MARK_NOTE.format(mark=pdf.mark))
    for n in notes:
        pdf.multi_cell(0, 3.5, n, new_x="LMARGIN", new_y="NEXT")


def new_document() -> _Packet:
    """The packet's empty document with its fonts loaded (fpdf2 parses the four TrueType fonts' character maps
    and widths: 0.2-0.5 s of Python), for :func:`write_pdf`'s ``document``: the same document it would make
    itself, so the same PDF. :func:`safety.export.packet.pdf_document_ahead` makes it in a thread."""
    return _Packet(None)


def write_pdf(outputs: list[pd.DataFrame], meta: PacketMeta, path: Path, figures=(),
              max_rows: int = DEFAULT_MAX_ROWS, figure_titles: list[str] | None = None,
              document: Callable[[], _Packet] | None = None) -> Path:
    """Write the packet: cover, contents, figures [(title, png bytes or None, note)], tables, listings.

    ``figures`` may also be a function returning that list (figures still being rendered). With their
    ``figure_titles`` (the titles of that list, in order) the figure pages get their titles and the tables and
    listings are laid out before the function is called, so the renderer finishes meanwhile; without, it is
    called once the fonts are loaded and the cover drawn. ``document``: a function returning a
    :func:`new_document` made ahead (used once), else the document is made here."""
    path = Path(path)
    if document is not None:
        pdf = document()
        pdf.meta = meta
    else:
        pdf = _Packet(meta)
    pdf.set_title(f"{meta.studyid} safety committee packet, data cut {meta.data_cut}")
    pdf.set_author("celltox")
    pdf.set_creator(f"celltox {meta.version}")
    pdf.set_creation_date(dt.datetime.combine(meta.data_cut, dt.time(), tzinfo=dt.timezone.utc))
    _cover(pdf, meta, outputs)
    if callable(figures) and figure_titles is None:
        figures = figures()
    titles = list(figure_titles) if callable(figures) else [t for t, _, _ in figures]
    ordered = [o for o in outputs if o.attrs.get("kind") == "table"] + \
              [o for o in outputs if o.attrs.get("kind") != "table"]
    pdf.section_title = "Contents"
    pdf.add_page()
    # The placeholder breaks to a new page after the contents; the first section starts on it, so its
    # header must already carry that section's title.
    first = titles[:1] + [o.attrs.get("title", o.attrs.get("name", "")) for o in ordered][:1]
    pdf.section_title = first[0] if first else ""
    # Exactly the pages the contents need are reserved (their headers say "Contents"). fpdf2's extra pages
    # (allow_extra_pages) are appended after the footers and the contents were numbered, and shift every number.
    toc_pages = _toc_pages(pdf, len(titles) + len(ordered))
    pdf.toc_last_page = pdf.page + toc_pages - 1
    pdf.insert_toc_placeholder(_render_toc, pages=toc_pages)
    pdf.fresh_page = True
    slots = [_figure_page(pdf, title) for title in titles]
    for df in ordered:
        _output(pdf, df, max_rows)
    if callable(figures):
        figures = figures()
    if [t for t, _, _ in figures] != titles:
        raise ValueError(f"the rendered figures {[t for t, _, _ in figures]} are not those titled {titles}")
    _figure_contents(pdf, slots, figures)
    pdf.output(str(path))
    return path

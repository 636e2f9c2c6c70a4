"""RTF output in the usual landscape listing layout, written as plain RTF text (no dependencies).

Letter landscape, 0.5 inch margins; a page header with study, data cut and "Page x of y"; a footer
with the generation time, celltox version and "Confidential"; the title block; a table whose first
row (\\trhdr) repeats on every page; grade cells shaded with safety.core.palette; footnotes below.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from safety.export.common import GRADE_COLUMNS, PacketMeta, grade_of, label, text_frame
from safety.core.palette import GRADE_COLORS, GRADE_TEXT

PAGE_W, PAGE_H, MARGIN = 15840, 12240, 720
TABLE_W = PAGE_W - 2 * MARGIN
FONT_HALF_POINTS = 14  # 7 pt body text in tables


def esc(text: str) -> str:
    """Escape text for RTF: control characters, and non-ASCII as \\uN? (signed 16-bit)."""
    out = []
    for ch in str(text):
        o = ord(ch)
        if ch in "\\{}":
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\line ")
        elif ch == "\t":
            out.append(" ")
        elif o < 32:
            continue
        elif o < 128:
            out.append(ch)
        elif o < 0x10000:
            out.append(f"\\u{o if o < 32768 else o - 65536}?")
        else:  # outside the BMP: a surrogate pair
            v = o - 0x10000
            for s in (0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF)):
                out.append(f"\\u{s - 65536}?")
    return "".join(out)


def _hex_rgb(h: str) -> tuple[int, int, int]:
    h = h.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def _colortable() -> tuple[str, dict[int, int], dict[int, int]]:
    colours = ["#000000", "#DDDDDD"]
    bg, fg = {}, {}
    for g in sorted(GRADE_COLORS):
        for table, value in ((bg, GRADE_COLORS[g]), (fg, GRADE_TEXT[g])):
            if value not in colours:
                colours.append(value)
            table[g] = colours.index(value) + 1  # RTF colour 0 is "auto"
    entries = "".join("\\red%d\\green%d\\blue%d;" % _hex_rgb(c) for c in colours)
    return "{\\colortbl ;" + entries + "}", bg, fg


def _widths(heads: list[str], rows: list[list[str]]) -> list[int]:
    """Column widths in twips, proportional to content length (capped), filling the page width."""
    sample = rows[:500]
    lens = []
    for j, h in enumerate(heads):
        longest = max([len(h) // 2 + 1] + [min(len(r[j]), 40) for r in sample]) if sample else len(h)
        lens.append(max(3, min(40, longest)))
    total = sum(lens)
    ws = [max(360, int(TABLE_W * n / total)) for n in lens]
    ws[-1] += TABLE_W - sum(ws)
    return ws


def rtf_text(df: pd.DataFrame, meta: PacketMeta) -> str:
    a = df.attrs
    ctab, bg, fg = _colortable()
    kind_listing = a.get("kind") == "listing"
    cols = list(df.columns)
    heads = [label(c) if kind_listing else str(c) for c in cols]
    rows = text_frame(df)
    widths = _widths(heads, rows)
    edges = []
    x = 0
    for w in widths:
        x += w
        edges.append(x)
    grade_idx = {j for j, c in enumerate(cols) if c in GRADE_COLUMNS}
    p = []
    p.append("{\\rtf1\\ansi\\ansicpg1252\\deff0\\uc1")
    p.append("{\\fonttbl{\\f0\\fswiss\\fcharset0 Arial;}{\\f1\\fmodern\\fcharset0 Courier New;}}")
    p.append(ctab)
    p.append("{\\info{\\title " + esc(a.get("title", "")) + "}{\\author celltox}}")
    p.append(f"\\paperw{PAGE_W}\\paperh{PAGE_H}\\margl{MARGIN}\\margr{MARGIN}\\margt{MARGIN + 360}"
             f"\\margb{MARGIN + 360}\\landscape\\headery{MARGIN // 2}\\footery{MARGIN // 2}")
    p.append("\\sectd\\lndscpsxn\\pgwsxn%d\\pghsxn%d" % (PAGE_W, PAGE_H))
    p.append("{\\header\\pard\\plain\\f0\\fs16\\tqr\\tx%d %s\\tab Page {\\field{\\*\\fldinst PAGE}{\\fldrslt 1}}"
             " of {\\field{\\*\\fldinst NUMPAGES}{\\fldrslt 1}}\\par}" % (TABLE_W, esc(meta.short_label + " | " + a.get("title", ""))))
    audit = ("\\pard\\plain\\f0\\fs14 " + esc(meta.audit_line) + "\\par") if meta.audit_line else ""
    p.append("{\\footer\\pard\\plain\\f0\\fs14\\tqr\\tx%d %s\\tab Confidential\\par%s}"
             % (TABLE_W, esc(f"{meta.generated_line} | celltox {meta.version}"), audit))
    p.append("\\pard\\plain\\f0\\fs24\\b " + esc(a.get("title", "")) + "\\b0\\par")
    p.append("\\pard\\plain\\f0\\fs16 " + esc(a.get("reference", "")) + "\\par")
    for line in meta.header_lines() + [meta.generated_line]:
        p.append("\\pard\\plain\\f0\\fs16 " + esc(line) + "\\par")
    for line in meta.hash_lines():
        p.append("\\pard\\plain\\f1\\fs12 " + esc(line) + "\\par")
    p.append("\\pard\\plain\\f0\\fs16 " + esc(f"Rows: {len(df)}") + "\\par\\pard\\par")

    def row_def(header: bool) -> str:
        d = "\\trowd\\trgaph40\\trleft0" + ("\\trhdr" if header else "")
        return d

    cell_border = "\\clbrdrt\\brdrs\\brdrw5\\clbrdrb\\brdrs\\brdrw5\\clbrdrl\\brdrs\\brdrw5\\clbrdrr\\brdrs\\brdrw5"
    # header row
    hdr = [row_def(True)]
    for e in edges:
        hdr.append(f"{cell_border}\\clcbpat2\\cellx{e}")
    hdr.append("\n")
    for h in heads:
        hdr.append(f"\\pard\\intbl\\plain\\f0\\fs{FONT_HALF_POINTS}\\b {esc(h)}\\cell")
    hdr.append("\\row")
    p.append("".join(hdr))
    # Body rows: no cell borders and paragraph settings once per row keep big listings compact.
    plain_def = row_def(False) + "".join(f"\\cellx{e}" for e in edges)
    para = f"\\pard\\intbl\\plain\\f0\\fs{FONT_HALF_POINTS} "
    for r in rows:
        gcells = {j: g for j in grade_idx if (g := grade_of(r[j])) is not None}
        if gcells:
            d = [row_def(False)]
            for j, e in enumerate(edges):
                d.append(("\\clcbpat%d" % bg[gcells[j]] if j in gcells else "") + f"\\cellx{e}")
            line = ["".join(d), "\n", para]
        else:
            line = [plain_def, "\n", para]
        for j, t in enumerate(r):
            if j in gcells:
                line.append("{\\cf%d %s}\\cell " % (fg[gcells[j]], esc(t)))
            else:
                line.append(esc(t) + "\\cell ")
        line.append("\\row")
        p.append("".join(line))
    if not rows:
        p.append("\\pard\\plain\\f0\\fs16\\i No rows.\\i0\\par")
    p.append("\\pard\\plain\\f0\\fs16\\par")
    for n in a.get("notes", []):
        p.append("\\pard\\plain\\f0\\fs14\\i " + esc(n) + "\\i0\\par")
    p.append("}")
    return "\n".join(p) + "\n"


def write_rtf(df: pd.DataFrame, meta: PacketMeta, path: Path) -> Path:
    path = Path(path)
    path.write_text(rtf_text(df, meta), encoding="ascii", newline="\n")
    return path

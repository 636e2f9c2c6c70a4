"""Write ctcae_v5_terms.csv from NCI's CTCAE v5.0 workbook: one row per CTCAE term with the grades it defines.

    python safety/rules/make_ctcae_terms.py CTCAE_v5.0_2017-11-27.xlsx [safety/rules/ctcae_v5_terms.csv]

A grade is defined when its cell holds a description; NCI writes '-' (with non-breaking spaces around it, as in
its header cells) for a grade the term does not have: Sepsis has grades 3, 4 and 5 only. The terms' names are
MedDRA lowest level terms, as a site reports them in AEDECOD.
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "ctcae_v5_terms.csv"


def _clean(value) -> str:
    return "" if value is None else str(value).replace("\xa0", " ").strip()


def main(argv: list[str]) -> int:
    import openpyxl

    if not argv:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    out = Path(argv[1]) if len(argv) > 1 else OUT
    wb = openpyxl.load_workbook(argv[0], read_only=True)
    rows = []
    try:
        sheet = wb.worksheets[0]
        header = [_clean(c) for c in next(sheet.iter_rows(max_row=1, values_only=True))]
        col = {name: header.index(name) for name in ("MedDRA Code", "MedDRA SOC", "CTCAE Term")}
        grade_cols = [header.index(f"Grade {g}") for g in range(1, 6)]
        for r in sheet.iter_rows(min_row=2, values_only=True):
            term = _clean(r[col["CTCAE Term"]])
            if not term:
                continue
            grades = [str(g) for g, i in zip(range(1, 6), grade_cols) if _clean(r[i]) not in ("", "-")]
            rows.append((term, _clean(r[col["MedDRA SOC"]]), _clean(r[col["MedDRA Code"]]), "|".join(grades)))
    finally:
        wb.close()
    with out.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(("ctcae_term", "soc", "meddra_code", "grades"))
        w.writerows(sorted(rows, key=lambda r: (r[1], r[0])))
    print(f"{out}: {len(rows)} terms")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

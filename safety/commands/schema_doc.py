"""Write docs/schema.md from the table registry in safety/schema/ (the doc is generated, never hand-edited)."""
from __future__ import annotations

from pathlib import Path

from safety import schema

HEADER = """# The celltox database

Generated from `safety/schema/` by `python -m safety schema-doc`; do not edit by hand.

A celltox database is one DuckDB file. Every study table carries `studyid` and `data_cut` (`lab_toxicity_records`, stored
behind the view `lab_toxicity`, through its `lab_term_id`): each
`python -m safety ingest --cutoff` adds (or replaces) one snapshot of a study, so several studies and
several data cuts of each live side by side. Query a cut with
`WHERE studyid = ? AND data_cut = ?`. Decisions people make (DLT adjudications, sign-offs, the audit
log) are not here: they live in the append-only review store beside it (`<db>.review.sqlite`).

**Time.** `day` (and `onset_day`, `start_day`, ...) counts days from the subject's first CAR infusion:
the infusion day is day 0, lymphodepletion days are negative and there is no gap at zero. SDTM's own
study day (`--DY`, which has no day 0) is kept beside it where delivered.

**Dates.** Text dates are kept as delivered (`--DTC`); the `_date` column holds a date and `_date_flag`
says what was imputed: `D` (day), `M` (month and day). Start dates are imputed to the first day of
the known period, but never before day 0 when the period contains the infusion (an AE starting
"2024-03" with an infusion on 2024-03-12 starts 2024-03-12) unless the record's own end is before the
infusion: a start is never imputed after its end; end dates to the last day of the period,
never after death or the data cut. An end whose whole period lies after the cut ("2025-01" at a cut on
2024-12-31) is an end after the cut, as a full date after it is: no end is loaded and the record is ongoing.
"""


def render() -> str:
    parts = [HEADER]
    groups = {"source": "Loaded from the delivery", "bookkeeping": "Load bookkeeping", "derived": "Derived tables"}
    tables = schema.all_tables()
    for group, title in groups.items():
        parts.append(f"\n## {title}\n")
        for t in (t for t in tables if t.group == group):
            parts.append(f"\n### `{t.name}`\n\n{t.description}\n\n| column | type | meaning |\n|---|---|---|")
            for c in t.columns:
                parts.append(f"| `{c.name}` | {c.value_type} | {c.description} |")
            if t.extra_columns_note:
                parts.append(f"\n{t.extra_columns_note}")
    return "\n".join(parts) + "\n"


def add_arguments(parser) -> None:
    parser.add_argument("--out", default="docs/schema.md", help="where to write (default docs/schema.md)")


def run(args) -> int:
    Path(args.out).write_text(render(), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0

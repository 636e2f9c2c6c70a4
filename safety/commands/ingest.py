"""Load a study folder into a celltox DuckDB database, then run every derivation.

STUDY_DIR holds one study's datasets as sponsors deliver them, one file per domain (or several per
domain, e.g. lbch.xpt + lbhe.xpt, which are combined):

  formats   .xpt (SAS transport v5/v8), .sas7bdat, .csv, .parquet, .xlsx (every sheet)
  domains   dm (required), ex, ae, lb, vs, cm, rs, ds, mh, pc, pp, mb, supp-- (merged onto the parent as
            supp_<qnam>), crs_assessments and icans_assessments (celltox files, see docs/input-format.md),
            or without them qs, pr, fa, ce (CRS and ICANS built from SDTM)
  settings  study.yaml (optional): product, CTCAE version, DLT rules, stopping rule, eligibility

The domain comes from the file name (dm.xpt, lbch.xpt, suppae.csv) or else the DOMAIN column. Column
names may be in any case or given as SDTM labels ("Unique Subject Identifier").

--cutoff YYYY-MM-DD is the data cut: only records dated on or before it are loaded, as the committee
saw the study on that day (AEs ending after it are ongoing; a death after it is not shown). Without it
the cut is the latest date in the delivery. Loading the same study and cut again replaces that snapshot.

Rows that cannot be loaded are kept in the `quarantine` table with the reason and the raw record (a
ragged CSV line, a bad date, an implausible value such as AGE -1), and the first ten are printed after the
summary; for every file rows read = loaded + quarantined + after the cut (table `load_log`).

The load runs in a copy of the database that replaces it only when the load and every derivation are done:
the app can stay open (it switches to the new cut within seconds), and a failed or killed load leaves the
database as it was.

Exit status: 0 the study loaded (quarantined rows allowed); 2 unusable input or a busy database (no DM
dataset, an unreadable, empty, truncated or damaged file, no USUBJID column in DM, a wrong study.yaml key or
term map, a --db or --review-db path that is a folder, in a missing folder or one that cannot be written, or not
such a file, another load into the same database running, a --cutoff after today), reported as one line
"error: <file>: <problem>"; the database is then unchanged; 1 the study loaded but its summary could not be written (the output was piped
into a reader that had left, as `| head` does), or the machine refused a write half-way (a full disk), said in
one line; 130 interrupted (Ctrl-C), said in one line: the database is unchanged unless the load was already
switched in. docs/input-format.md lists every refusal and quarantine reason.
"""
from __future__ import annotations

import sys
from pathlib import Path

from safety.core import interrupt


def add_arguments(parser) -> None:
    parser.add_argument("study_dir", metavar="STUDY_DIR", help="folder with the study's datasets and study.yaml")
    parser.add_argument("--db", required=True, metavar="PATH", help="DuckDB database file (created when missing)")
    parser.add_argument("--cutoff", metavar="YYYY-MM-DD", help="data cut: leave out records dated after it")
    parser.add_argument("--review-db", metavar="PATH",
                        help="review store for the audit entry (default: <db>.review.sqlite beside the database)")
    parser.add_argument("--no-derivations", action="store_true", help="load only; do not run the derivations")


def _table(result) -> str:
    head = ("file", "domain", "read", "loaded", "quarantined", "after cut")
    rows = [(f.source_file, f.domain, f.rows_read, f.rows_loaded, f.rows_quarantined, f.rows_after_cutoff)
            for f in result.files]
    rows.append(("total", "", *(sum(r[i] for r in rows) for i in range(2, 6))))
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    fmt = lambda r: "  ".join(str(v).ljust(w) if i < 2 else str(v).rjust(w) for i, (v, w) in enumerate(zip(r, widths)))
    lines = [fmt(head), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows]
    return "\n".join(lines)


QUARANTINE_SHOWN = 10  # the first rows of the quarantine printed after a load; the table keeps every one


def _quarantine_lines(db, load_id: str, total: int) -> str:
    """The load's first quarantined rows, one line each: file, data row, field and reason."""
    from safety.access.reader import connect

    con = connect(db, read_only=True)
    try:
        # rows quarantined because of another row (the subject's DM record, a SUPP row's parent) after the rows
        # that are themselves wrong: a bad DM record must not hide behind its hundred consequences
        rows = con.execute("""SELECT source_file, row_number, field, reason FROM quarantine WHERE load_id = $1
                              ORDER BY reason LIKE 'subject % has a quarantined DM record'
                                       OR reason LIKE 'the % record it qualifies is quarantined',
                                       source_file, row_number LIMIT $2""", [load_id, QUARANTINE_SHOWN]).fetchall()
    finally:
        con.close()
    lines = [f"  {f} row {n}" + (f", {fld}" if fld else "") + f": {why}" for f, n, fld, why in rows]
    if total > len(rows):
        lines.append(f"  ... and {total - len(rows)} more")
    return "\n".join(lines)


def _cut_warnings(result) -> list[str]:
    """A cut that leaves every subject out is legal but rarely meant (a cut after today is refused)."""
    out = []
    dm = [f for f in result.files if f.domain == "DM"]
    if dm and not sum(f.rows_loaded for f in dm):
        out.append(f"no subject is in this snapshot: every DM record is quarantined or dated after the data cut "
                   f"{result.data_cut.isoformat()}")
    return out


def run(args) -> int:
    from safety.ingest import IngestError, ingest_study
    from safety.ingest.snapshot import file_version

    before = file_version(args.db)
    try:
        try:
            result = ingest_study(args.study_dir, args.db, cutoff=args.cutoff, review_store_path=args.review_db,
                                  run_derivations=not args.no_derivations)
        except IngestError as exc:
            interrupt.check()  # a query DuckDB stopped for Ctrl-C reads as a file it 'cannot read'
            print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
            return 2
        except Exception:
            interrupt.check()  # DuckDB's own 'Query interrupted', or what failed after it
            raise
        interrupt.check()
    except KeyboardInterrupt:
        # the load runs in a copy, so the database is as it was unless the copy was already switched in
        if file_version(args.db) == before:
            print(f"interrupted: {args.db} is unchanged", file=sys.stderr)
        else:
            print(f"interrupted after the load was switched in: {args.db} holds the new snapshot", file=sys.stderr)
        return interrupt.INTERRUPTED
    print(f"study {result.studyid}, data cut {result.data_cut.isoformat()} -> {Path(args.db)}  (load {result.load_id})")
    print(_table(result))
    if result.domains_missing:
        print(f"not delivered: {', '.join(result.domains_missing)}")
    if result.skipped_files:
        print(f"not read (domain not used by celltox): {', '.join(result.skipped_files)}")
    if result.unread_files:
        print(f"not read (not a format celltox reads: .xpt, .sas7bdat, .csv, .parquet, .xlsx): "
              f"{', '.join(result.unread_files)}")
    for note in result.notes:
        print(f"note: {note}")
    for warning in _cut_warnings(result):
        print(f"warning: {warning}")
    if any(result.built_from_sdtm.values()):
        print(f"built from SDTM (subjects without celltox file rows, source = 'SDTM'): "
              f"{result.built_from_sdtm.get('crs_assessments', 0)} CRS and "
              f"{result.built_from_sdtm.get('icans_assessments', 0)} ICANS assessments")
    if result.quarantined:
        load_id = result.load_id.replace("'", "''")  # a study id may hold a quote: the hint is pasted as SQL
        print(f"{result.quarantined} row(s) quarantined: see table quarantine "
              f"(SELECT * FROM quarantine WHERE load_id = '{load_id}')")
        print(_quarantine_lines(args.db, result.load_id, result.quarantined))
    if result.derivations:
        print(f"derivations run: {', '.join(n.rsplit('.', 1)[-1] for n in result.derivations)}")
        from safety.derive.dlt.vanished import print_load_warnings
        print_load_warnings(args.db, result.studyid, result.data_cut, args.review_db)
    return 0

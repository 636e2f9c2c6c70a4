"""Write the safety committee packet for one study and data cut: listings and tables as CSV, RTF
and one XLSX workbook, plus the PDF packet with cover, contents and overview figures.

Without --user the command runs with the all-sites scope (every site's subjects and the study-wide
stopping-rule status) and is audited under the login name ("cli:<login>"): whoever can read the database
file can read every site anyway. With --user NAME (or $CELLTOX_USER) the export takes that account's role
and site scope from users.yaml and is audited as it, once its password proves it (asked for at the terminal, or
the first line of standard input with --password-stdin; docs/access.md): a role without the export right
(investigator, admin) is refused.
The cut defaults to the study's latest. Adjudications are read from the review store beside the
database (<db>.review.sqlite) or --review-db; each export is recorded in its audit log.

Example:
  python -m safety export --db study.duckdb --study CT-001 --out packet/ --format pdf,xlsx
"""
from __future__ import annotations

import argparse
import datetime as dt
import getpass
import os
import sys
from pathlib import Path

from typing import TYPE_CHECKING

from safety.commands.accounts import Refused, add_password_argument, signed_in
from safety.export import FORMATS

if TYPE_CHECKING:
    from safety.access.auth import User


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", required=True, help="study database (DuckDB file)")
    p.add_argument("--study", required=True, help="study identifier (STUDYID)")
    p.add_argument("--out", required=True, help="folder to write the files into (created if missing)")
    p.add_argument("--cutoff", help="data cut date YYYY-MM-DD (default: the study's latest cut)")
    p.add_argument("--format", default=",".join(FORMATS),
                   help=f"comma-separated formats among {','.join(FORMATS)} (default: all)")
    p.add_argument("--only", help="comma-separated output names (default: all; docs/exports.md lists them, and an "
                                  "unknown name is refused with the valid ones)")
    p.add_argument("--review-db", help="review store with adjudications (default: <db>.review.sqlite if it exists)")
    p.add_argument("--user", help="a celltox account: export with its role and site scope and audit it as that "
                                  "account (default: $CELLTOX_USER, else all sites audited as cli:<login>)")
    p.add_argument("--users", help="users.yaml beside --db, by another path if need be (so may "
                   "$CELLTOX_USERS); any other account file is refused (docs/access.md)")
    add_password_argument(p)
    p.add_argument("--pdf-max-rows", type=_rows, default=1000,
                   help="rows per listing in the PDF before it points to the full files (default 1000)")


def _rows(text: str) -> int:
    """A row count of at least 1 (argparse turns the ValueError into a one-line usage error)."""
    n = int(text)
    if n < 1:
        raise ValueError(text)
    return n


_rows.__name__ = "row count (1 or more)"  # argparse names the type in its message


def _fail(msg: str) -> int:
    print(f"python -m safety export: error: {msg}", file=sys.stderr)
    return 2


def _split(text: str | None) -> list[str]:
    """The names of a comma-separated option, each once (``ae,sae,ae`` wrote ae twice and failed half-way)."""
    return list(dict.fromkeys(x.strip() for x in (text or "").split(",") if x.strip()))


def run(args) -> int:
    formats = _split(args.format)
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        return _fail(f"unknown format {', '.join(bad) or '(none)'}; valid formats: {', '.join(FORMATS)}")
    renderer = None
    if "pdf" in formats:
        # The figure renderer (a child process: Python, kaleido, Chromium; about 3 s to start) starts before
        # this process imports pandas, DuckDB and Plotly, so both starts overlap; write_outputs closes it.
        from safety.export.renderer import Renderer
        renderer = Renderer()
    try:
        return _export(args, formats, renderer)
    finally:
        if renderer is not None:
            renderer.close()  # a refused export: the renderer goes without having been used


def _export(args, formats: list[str], renderer) -> int:
    # heavy imports here, not at the top: `python -m safety --help` stays fast
    from safety.access.auth import scope_for
    from safety.access.reader import available_cuts, connect
    from safety.core.files import not_a_duckdb_file, unwritable
    from safety.core.sql import existing
    from safety.export.packet import OutputBlocked, output_names, write_outputs

    only = _split(args.only) or None
    if only:
        unknown = [n for n in only if n not in output_names()]
        if unknown:
            return _fail(f"unknown output {', '.join(unknown)}; valid names: {', '.join(output_names())}")
    db = Path(args.db)
    if not db.exists():
        return _fail(f"no database at {db}")
    if db.is_file() and (what := not_a_duckdb_file(db)):
        return _fail(f"{db}: {what}, not a celltox database; give the file the loads wrote")
    from safety.review.store import ReviewStore, default_review_path, not_a_review_store
    review = Path(args.review_db) if args.review_db else default_review_path(db)
    audited = bool(args.review_db) or review.exists()  # the export's audit entry is written there
    for path, folder in [(Path(args.out), True)] + ([(review, False)] if audited else []):
        if why := unwritable(path, folder):
            return _fail(f"{path}: {why}")
    if review.is_file() and (why := not_a_review_store(review)):
        return _fail(f"{review}: not a celltox review store ({why})")
    try:
        con = connect(db, read_only=True)
    except Exception as exc:  # noqa: BLE001 - a locked or corrupt file: one line, exit 2
        return _fail(f"cannot open {db}: {exc}")
    try:
        if not existing(con, ("studies",)):
            return _fail(f"{db}: not a celltox database (it has no studies table); give the file the loads wrote")
        cuts = available_cuts(con)
        studies = sorted(set(cuts["studyid"]))
        if args.study not in studies:
            return _fail(f"unknown study {args.study!r}; studies in {db.name}: {', '.join(studies) or 'none'}")
        mine = sorted({_d(v) for v in cuts.loc[cuts["studyid"] == args.study, "data_cut"]})
        if args.cutoff:
            try:
                cut = dt.date.fromisoformat(args.cutoff)
            except ValueError:
                return _fail(f"--cutoff {args.cutoff!r} is not a date (YYYY-MM-DD)")
            if cut not in mine:
                return _fail(f"no data cut {cut} for {args.study}; available cuts: "
                             + ", ".join(d.isoformat() for d in mine))
        else:
            cut = mine[-1]
        store = ReviewStore(review) if audited else None
        from safety.export.common import make_reader
        name = args.user or os.environ.get("CELLTOX_USER")
        sites = None
        if name:
            account = _account(name, args, db, store)
            if isinstance(account, str):
                return _fail(account)
            sites = scope_for(account, args.study, cut).sites
            user = account.username
        else:
            user = "cli:" + _login()
        reader = make_reader(con, args.study, cut, sites=sites)
        try:
            paths = write_outputs(reader, args.out, formats=formats, only=only, store=store, user=user,
                                  pdf_max_rows=args.pdf_max_rows, renderer=renderer)
        except OutputBlocked as exc:
            return _fail(str(exc))
    finally:
        con.close()
    for p in paths:
        print(p)
    _warn_missing_figures(renderer)
    return 0


def _warn_missing_figures(renderer) -> None:
    """One line on stderr when the renderer could not draw the PDF's figures (no browser, one that never
    answered): the packet is written with a note in each figure's place, and whoever exported it should know."""
    if renderer is None:
        return
    missing = [why for png, why in renderer.result() if png is None]
    if missing:
        print(f"python -m safety export: warning: the PDF packet has {len(missing)} figure(s) not drawn: "
              f"{missing[0].removeprefix('figure unavailable: ')}", file=sys.stderr)


def _account(name: str, args, db: Path, review_store) -> User | str:
    """The enabled account ``name`` allowed to export, proved by its password, or the one-line reason it cannot."""
    from safety.access.auth import ROLE_LABELS, can_export
    try:
        return signed_in("--user", name, args.users, db, can_export,
                         lambda u: f"the {ROLE_LABELS[u.role].lower()} role may not export (docs/access.md)",
                         review_store, args.password_stdin, "export")
    except Refused as exc:
        return str(exc)


def _d(v) -> dt.date:
    return v.date() if isinstance(v, dt.datetime) else v if isinstance(v, dt.date) else dt.date.fromisoformat(str(v)[:10])


def _login() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001
        return "cli"

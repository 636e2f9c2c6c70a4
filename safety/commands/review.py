"""Committee decisions from the command line, for a secretary entering them from signed minutes.

  python -m safety review decide --db study.duckdb --study S --cut 2025-03-31 --event KEY \
      --decision confirmed|rejected|withdrawn --rationale "minutes of 2025-04-02, item 3" --as alice
  python -m safety review list --db study.duckdb --study S --cut 2025-03-31 --as alice   (CSV on stdout)

``--as`` names an account of users.yaml beside the database (--users or $CELLTOX_USERS may name that file, no
other), proved by its password (asked for at the terminal, or the first line of standard input with
--password-stdin; docs/access.md). A decision goes
through the same checks, the same review store and the same audit entry as the DLT review page's form, and
takes effect at once on every page and in the next packet. An account without the adjudicate right is
refused (exit 2, one line). ``list`` prints each DLT candidate and adjudicated event with the decision in
force (the DLT review table), and needs an account that may see patient data.
"""
from __future__ import annotations

import csv
import datetime as dt
import sys
from pathlib import Path

from safety.commands.accounts import Refused, add_password_argument, right_words, signed_in
from safety.core.vocabulary import CLI_DECISIONS

LIST_COLUMNS = ["event_key", "usubjid", "cohort", "dose_level", "rule_id", "reason", "term", "onset_day", "grade",
                "in_window", "status", "adjudicated_dlt", "decision", "reviewer", "decided_at", "rationale",
                "needs_rereview"]


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="review_command", metavar="ACTION")
    for name, help_text in (("decide", "record one committee decision on a DLT candidate"),
                            ("list", "print the DLT candidates and decisions in force as CSV")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--db", required=True, help="study database (the review store and users.yaml sit beside it)")
        p.add_argument("--study", required=True, help="study id")
        p.add_argument("--cut", required=True, metavar="YYYY-MM-DD", help="data cut")
        p.add_argument("--as", dest="as_user", required=True, metavar="USER",
                       help="account of users.yaml, proved by its password")
        add_password_argument(p)
        p.add_argument("--users", help="users.yaml beside --db, by another path if need be (so may "
                       "$CELLTOX_USERS); any other account file is refused (docs/access.md)")
        p.add_argument("--review-db", help="review store (default: <db>.review.sqlite beside --db)")
        if name == "decide":
            p.add_argument("--event", required=True, metavar="KEY", help="event key of the candidate")
            p.add_argument("--decision", required=True, choices=CLI_DECISIONS)
            p.add_argument("--rationale", required=True, help="the committee's reason (goes on the record)")


def _fail(msg: str) -> int:
    print(f"python -m safety review: error: {msg}", file=sys.stderr)
    return 2


def run(args) -> int:
    # heavy imports here, not at the top: `python -m safety --help` stays fast
    from safety.access import auth
    from safety.access.reader import Scope, StudyReader, available_cuts, connect
    from safety.derive.dlt.decisions import record_decision
    from safety.review.dlt_status import dlt_status
    from safety.core.files import spreadsheet_text, unwritable
    from safety.review.store import ReviewStore, default_review_path

    if not getattr(args, "review_command", None):
        return _fail("choose an action: decide or list")
    try:
        try:
            cut = dt.date.fromisoformat(args.cut)
        except ValueError:
            raise Refused(f"--cut {args.cut!r} is not a date (YYYY-MM-DD)") from None
        db = Path(args.db)
        if not db.exists():
            raise Refused(f"no database at {db}")
        review = Path(args.review_db) if args.review_db else default_review_path(db)
        if why := unwritable(review):  # both actions write it: the sign-in's audit entry, the decision
            raise Refused(f"{review}: {why}")
        store = ReviewStore(review)
        right = auth.can_adjudicate if args.review_command == "decide" else auth.can_view_patient_data
        user = signed_in("--as", args.as_user, args.users, db, right,
                         lambda u: f"account {u.username!r} (role {u.role}) may not {right_words(right)}",
                         store, args.password_stdin, f"review {args.review_command}")
        con = connect(db, read_only=True)
        try:
            cuts = available_cuts(con)
            mine = {(c.date() if isinstance(c, dt.datetime) else c)
                    for c in cuts.loc[cuts["studyid"] == args.study, "data_cut"]}
            if not mine:
                raise Refused(f"unknown study {args.study!r}; studies in {db.name}: "
                               + (", ".join(sorted(set(cuts["studyid"]))) or "none"))
            if cut not in mine:
                raise Refused(f"no data cut {cut} for {args.study}; available cuts: "
                               + ", ".join(d.isoformat() for d in sorted(mine)))
            reader = StudyReader(con, auth.scope_for(user, args.study, cut))
            if args.review_command == "decide":
                try:
                    new_id = record_decision(store, reader, args.event, args.decision, args.rationale, user.username)
                except ValueError as exc:  # the same checks as the DLT review form
                    raise Refused(str(exc)) from None
                print(f"recorded decision {new_id}: {args.event} {args.decision} by {user.username}")
                return 0
            review = dlt_status(reader, store).review
            w = csv.writer(sys.stdout, lineterminator="\n")
            w.writerow(LIST_COLUMNS)
            for row in review.reindex(columns=LIST_COLUMNS).itertuples(index=False):
                w.writerow([spreadsheet_text(None if (v is None or v != v) else v) for v in row])
            return 0
        finally:
            con.close()
    except Refused as exc:
        return _fail(str(exc))

"""Verify or export the tamper-evident audit log of a review store.

  python -m safety audit verify --review-db study.review.sqlite     exit 0 intact, 1 broken (entry named)
  python -m safety audit export --review-db study.review.sqlite --out audit.csv [--studyid S]
                                [--since 2025-01-01] [--until 2025-02-01] [--user U] [--action A]

--db study.duckdb may be given instead of --review-db (the store beside it). `verify` prints the head
hash: record it elsewhere (e.g. in the committee minutes) to detect a log truncated at its end.
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from safety.review.store import ReviewStore, audit_csv, default_review_path, verify_audit_chain


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="audit_command", metavar="ACTION")
    v = sub.add_parser("verify", help="recompute the hash chain; exit 1 naming the first broken entry")
    e = sub.add_parser("export", help="write the audit log to CSV")
    for p in (v, e):
        p.add_argument("--review-db", help="the review store (SQLite)")
        p.add_argument("--db", help="study database; the review store beside it is used")
    e.add_argument("--out", required=True, help="CSV file to write")
    e.add_argument("--studyid", help="only this study's entries (plus study-less ones such as sign-ins)")
    e.add_argument("--since", help="from this UTC time/date (ISO 8601)")
    e.add_argument("--until", help="up to this UTC time/date (ISO 8601)")
    e.add_argument("--user", help="only this username")
    e.add_argument("--action", help="only this action, e.g. export or sign_in_failure")


def _store_path(args) -> Path | None:
    if args.review_db:
        return Path(args.review_db)
    if args.db:
        return default_review_path(args.db)
    return None


def run(args) -> int:
    cmd = getattr(args, "audit_command", None)
    if not cmd:
        print("usage: python -m safety audit {verify,export} --review-db PATH", file=sys.stderr)
        return 2
    path = _store_path(args)
    if path is None:
        print("error: give --review-db PATH (or --db PATH)", file=sys.stderr)
        return 2
    if not path.exists():
        print(f"error: no review store at {path}", file=sys.stderr)
        return 1 if cmd == "verify" else 2
    if cmd == "verify":
        ok, message = verify_audit_chain(path)
        print(("OK: " if ok else "BROKEN: ") + message, file=sys.stdout if ok else sys.stderr)
        return 0 if ok else 1
    ok, message = verify_audit_chain(path)
    entries = ReviewStore(path).audit_entries(args.studyid, username=args.user, action=args.action,
                                             since=args.since, until=args.until)
    data = audit_csv(entries).encode("utf-8")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    print(f"wrote {len(entries)} audit entries to {out} (sha256 {hashlib.sha256(data).hexdigest()})")
    if not ok:
        print(f"WARNING: the audit chain is broken: {message}", file=sys.stderr)
        return 1
    return 0

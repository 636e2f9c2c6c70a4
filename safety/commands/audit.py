"""Verify or export the tamper-evident audit log of a review store.

  python -m safety audit verify --review-db study.review.sqlite     exit 0 intact, 1 broken (entry named),
                                                                    2 no review store at all (another file)
         [--expect-head HASH ...] [--anchor anchors.txt] [--record-anchor anchors.txt]
  python -m safety audit seal --review-db study.review.sqlite       cover rows written by an earlier celltox
  python -m safety audit export --review-db study.review.sqlite --out audit.csv [--studyid S]
                                [--since 2025-01-01] [--until 2025-02-01] [--user U] [--action A]

--db study.duckdb may be given instead of --review-db (the store beside it). `verify` prints the head
hash: record it elsewhere (the committee minutes, an anchor file on another machine) and give it back with
--expect-head or --anchor to detect a log cut at its end or rewritten as a whole. With CELLTOX_AUDIT_KEY set,
keyed (HMAC) entries are checked with the key.
"""
from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import re
import sys
from pathlib import Path

from safety.core.files import unwritable
from safety.review.store import (ReviewStore, audit_csv, default_review_path, not_a_review_store,
                                 verify_audit_chain)

_HASH = re.compile(r"^(hmac:)?[0-9a-f]{64}$")


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="audit_command", metavar="ACTION")
    v = sub.add_parser("verify", help="recompute the hash chain; exit 1 naming the first broken entry")
    e = sub.add_parser("export", help="write the audit log to CSV")
    s = sub.add_parser("seal", help="append one entry covering every field of decision rows written by an "
                                    "earlier celltox (and start a keyed chain when CELLTOX_AUDIT_KEY is set)")
    v.add_argument("--expect-head", action="append", default=[], metavar="HASH",
                   help="a head hash recorded earlier; verify fails unless it is still an entry of the chain")
    v.add_argument("--anchor", metavar="FILE",
                   help="anchor file: every hash in it (one '<seq> <hash> <time>' line each) must be in the chain")
    v.add_argument("--record-anchor", metavar="FILE",
                   help="after a successful verify, append the current head to this anchor file")
    s.add_argument("--user", help="user name for the seal entry (default: the login name)")
    for p in (v, e, s):
        p.add_argument("--review-db", help="the review store (SQLite)")
        p.add_argument("--db", help="study database; the review store beside it is used")
    e.add_argument("--out", required=True, help="CSV file to write")
    e.add_argument("--studyid", help="only this study's entries (plus study-less ones such as sign-ins)")
    e.add_argument("--since", type=_when, help="from this UTC time/date (ISO 8601)")
    e.add_argument("--until", type=_when, help="up to this UTC time/date (ISO 8601)")
    e.add_argument("--user", help="only this username")
    e.add_argument("--action", help="only this action, e.g. export or sign_in_failure")


def _when(text: str) -> str:
    """An ISO 8601 date or time as given (the store compares the text): one that is not a real one
    (2026-02-30) is a usage error rather than a filter that silently matches the wrong entries."""
    import datetime as dt

    dt.datetime.fromisoformat(text)  # a ValueError is argparse's one-line usage error
    return text


_when.__name__ = "ISO 8601 date or time"  # argparse names the type in its message


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
    if why := not_a_review_store(path):  # a wrong path is no evidence of tampering: not exit 1 (broken)
        print(f"error: {path}: not a celltox review store ({why})", file=sys.stderr)
        return 2
    # what the action writes, checked before it reads the log: exit 1 means a broken chain here
    written = args.record_anchor if cmd == "verify" else path if cmd == "seal" else args.out
    if written and (why := unwritable(written)):
        print(f"error: {written}: {why}", file=sys.stderr)
        return 2
    if cmd == "verify":
        expect = [h.strip() for h in args.expect_head]
        if args.anchor:
            try:
                expect += anchor_hashes(Path(args.anchor))
            except (OSError, ValueError) as exc:
                print(f"error: anchor file {args.anchor}: {exc}", file=sys.stderr)
                return 2
        bad = [h for h in expect if not _HASH.match(h)]
        if bad:
            print(f"error: {bad[0]!r} is not an audit head hash (64 hex digits, or hmac: and 64)", file=sys.stderr)
            return 2
        ok, message = verify_audit_chain(path, expect_heads=expect)
        print(("OK: " if ok else "BROKEN: ") + message, file=sys.stdout if ok else sys.stderr)
        if ok and args.record_anchor:
            head = ReviewStore(path).head()
            if head is not None:
                with open(args.record_anchor, "a", encoding="utf-8") as fh:
                    fh.write(f"{head['seq']} {head['entry_hash']} {dt.datetime.now(dt.timezone.utc):%Y-%m-%dT%H:%M:%SZ}\n")
                print(f"recorded head entry {head['seq']} in {args.record_anchor}")
        return 0 if ok else 1
    if cmd == "seal":
        try:
            entry = ReviewStore(path).seal(args.user or _login())
        except ValueError as exc:
            print(f"BROKEN: {exc}", file=sys.stderr)
            return 1
        print(f"sealed: audit entry {entry['seq']}, head hash {entry['entry_hash']}")
        return 0
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


def anchor_hashes(path: Path) -> list[str]:
    """The hashes of an anchor file: one '<seq> <hash> [<time>]' per line; '#' starts a comment."""
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split("#", 1)[0].split()
        if not parts:
            continue
        if len(parts) < 2 or not parts[0].isdigit() or not _HASH.match(parts[1]):
            raise ValueError(f"line {n}: expected '<seq> <hash> [<time>]'")
        out.append(parts[1])
    return out


def _login() -> str:
    try:
        return "cli:" + getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        return "cli"

"""Manage sign-in accounts in users.yaml (bcrypt hashes only; the file is written with mode 0600).

  python -m safety users add alice --role committee --display-name "Alice A." [--email a@x.org]
  python -m safety users add bob --role investigator --study CTX-001 --sites 101,102
  python -m safety users set-sites bob --study CTX-002 --sites 07     (sites of another study; '' removes them)
  python -m safety users list
  python -m safety users set-password alice
  python -m safety users disable bob | enable bob
  python -m safety users remove bob
  python -m safety users unlock bob --db study.duckdb   (after too many failed sign-ins)

Passwords are prompted for (twice) or read from standard input with --password-stdin; never from the
command line, where they would stay in the shell history. The account file is --users, else
$CELLTOX_USERS, else users.yaml beside --db. With --db (or --review-db) each change is also written
to the audit log as 'user_admin'. An investigator's sites belong to a study (a site id is unique only within
its study); with --db they are checked against that study's subjects.
"""
from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path

from safety.core.vocabulary import ROLES


def add_arguments(parser) -> None:
    parser.add_argument("--users", help="account file (default: $CELLTOX_USERS, else users.yaml beside --db)")
    parser.add_argument("--db", help="study database; locates users.yaml and the review store beside it")
    parser.add_argument("--review-db", help="review store for the audit entry (default: beside --db)")
    sub = parser.add_subparsers(dest="users_command", metavar="ACTION")
    a = sub.add_parser("add", help="create an account")
    a.add_argument("username")
    a.add_argument("--role", required=True, choices=ROLES)
    a.add_argument("--study", help="the study the --sites belong to (investigators only)")
    a.add_argument("--sites", help="comma-separated site ids of --study (investigators only)")
    a.add_argument("--display-name", default="")
    a.add_argument("--email", help="e-mail, used to map an OIDC sign-in to this account")
    a.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    r = sub.add_parser("remove", help="delete an account")
    r.add_argument("username")
    lst = sub.add_parser("list", help="list accounts (never the hashes)")
    lst.add_argument("--json", action="store_true")
    sp = sub.add_parser("set-password", help="set a new password")
    sp.add_argument("username")
    sp.add_argument("--password-stdin", action="store_true")
    for name in ("disable", "enable"):
        d = sub.add_parser(name, help=f"{name} an account (kept in the file)")
        d.add_argument("username")
    u = sub.add_parser("unlock", help="lift the lock after too many failed sign-ins (needs --db or --review-db)")
    u.add_argument("username")
    ss = sub.add_parser("set-sites", help="set an investigator's sites of one study")
    ss.add_argument("username")
    ss.add_argument("--study", required=True, help="the study the sites belong to")
    ss.add_argument("--sites", required=True, help="comma-separated site ids of --study ('' removes the study)")
    # the file options may also follow the action (`users add bob --users x.yaml`)
    for p in (a, r, lst, sp, u, ss) + tuple(sub.choices[n] for n in ("disable", "enable")):
        p.add_argument("--users", default=argparse.SUPPRESS, help="account file")
        p.add_argument("--db", default=argparse.SUPPRESS, help="study database")
        p.add_argument("--review-db", default=argparse.SUPPRESS, help="review store for the audit entry")


def _read_password(args) -> str:
    from safety.access.auth import AuthError

    if args.password_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    first = getpass.getpass("New password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise AuthError("the two passwords differ")
    return first


def _review_path(args):
    review = args.review_db
    if not review and args.db:
        from safety.review.store import default_review_path
        review = default_review_path(args.db)
    return review


def _unknown_site_warnings(args, sites: dict) -> list[str]:
    """Sites ({study: ids}) that no subject of their study in --db belongs to (a mistyped id, or a study id,
    scopes an investigator to nothing). Kept as a warning: a site may open before its first subject is loaded."""
    if not sites or not args.db or not Path(args.db).is_file():
        return []
    from safety.access.reader import connect

    import duckdb

    con = connect(args.db)
    warnings = []
    try:
        for study, ids in sites.items():
            # SITEID is unique only within its study: site 01 of another study is another centre
            known = {r[0] for r in con.execute("SELECT DISTINCT siteid FROM subjects WHERE studyid = $s "
                                               "AND siteid IS NOT NULL", {"s": study}).fetchall()}
            if not known:
                studies = [r[0] for r in con.execute("SELECT DISTINCT studyid FROM subjects ORDER BY 1").fetchall()]
                warnings.append(f"no subject of study {study} in {args.db} (studies there: "
                                f"{', '.join(map(str, studies)) or 'none'}); the account sees nothing of it until "
                                "its subjects are loaded")
                continue
            unknown = [s for s in ids if s not in known]
            if unknown:
                warnings.append(f"no subject of {study} in {args.db} belongs to site {', '.join(unknown)} ({study}'s "
                                f"sites there: {', '.join(sorted(known))}); the account sees no subject of that site "
                                "until one is loaded")
    except duckdb.Error as e:
        return [f"the sites were not checked against {args.db}: {str(e).splitlines()[0]}"]
    finally:
        con.close()
    return warnings


def _sites_text(sites) -> str:
    """'ITNK-B-01:01,02;CD56-CART-01:01' for the list's sites column (a bare list: the ids alone)."""
    if isinstance(sites, dict):
        return ";".join(f"{study}:{','.join(ids)}" for study, ids in sites.items())
    return ",".join(sites)


def _audit(args, detail: dict, action: str = "user_admin") -> None:
    review = _review_path(args)
    if not review:
        return
    from safety.review.store import ReviewStore
    try:
        operator = getpass.getuser()
    except Exception:  # no login name in some containers
        operator = "unknown"
    ReviewStore(review).append_audit(f"cli:{operator}", action, None, detail)


def run(args) -> int:
    # heavy (bcrypt, duckdb): not needed for --help
    from safety.access.auth import PATIENT_DATA_ROLES, AuthError, UserStore, file_permission_warnings, users_file
    from safety.core.files import unwritable

    if not getattr(args, "users_command", None):
        print("usage: python -m safety users {add,remove,list,set-password,set-sites,disable,enable,unlock} ...",
              file=sys.stderr)
        return 2
    path = users_file(args.users, args.db)
    if path is None:
        print("error: say which account file: --users PATH, $CELLTOX_USERS or --db", file=sys.stderr)
        return 2
    cmd = args.users_command
    if cmd != "list":  # what the action writes: the account file (not to unlock) and the review store it audits in
        review = _review_path(args)
        for target in ([] if cmd == "unlock" else [Path(path)]) + ([Path(review)] if review else []):
            # a mistyped folder would get an account file nothing reads (ingest and export refuse such a path too)
            if not target.parent.is_dir() and not target.is_dir():
                print(f"error: {target}: the folder {target.parent} does not exist", file=sys.stderr)
                return 2
            if why := unwritable(target):
                print(f"error: {target}: {why}", file=sys.stderr)
                return 2
    store = UserStore(path)
    for warning in file_permission_warnings(path):
        print(f"warning: {warning}", file=sys.stderr)
    try:
        if cmd == "list":
            rows = store.list()
            if args.json:
                print(json.dumps(rows, indent=2))
            elif not rows:
                print(f"no accounts in {path}")
            else:
                print(f"{'username':<20} {'role':<13} {'sites':<24} {'status':<9} display name")
                for u in rows:
                    # no sites listed: every site for a role that sees patient data, none for an administrator
                    sites = (_sites_text(u["sites"]) if u["sites"]
                             else "all" if u["role"] in PATIENT_DATA_ROLES else "none")
                    status = "refused" if u["problem"] else "disabled" if u["disabled"] else "active"
                    print(f"{u['username']:<20} {u['role']:<13} {sites:<24} {status:<9} {u['display_name']}")
            for u in rows:
                if u["problem"]:
                    print(f"error: {u['problem']}", file=sys.stderr)
            return 0
        if cmd == "add":
            password = _read_password(args)
            user = store.add(args.username, args.role, password, sites=args.sites, study=args.study,
                             display_name=args.display_name, email=args.email)
            sites = {study: list(ids) for study, ids in user.sites or ()} or None
            _audit(args, {"op": "add", "account": user.username, "role": user.role, "sites": sites})
            print(f"added {user.username} ({user.role}) to {path}")
            for warning in _unknown_site_warnings(args, sites):
                print(f"warning: {warning}", file=sys.stderr)
        elif cmd == "set-sites":
            sites = {study: list(ids) for study, ids in store.set_sites(args.username, args.study, args.sites).items()}
            _audit(args, {"op": "set-sites", "account": args.username, "sites": sites})
            print(f"sites of {args.username}: {_sites_text(sites)}")
            for warning in _unknown_site_warnings(args, {k: v for k, v in sites.items() if k == args.study}):
                print(f"warning: {warning}", file=sys.stderr)
        elif cmd == "remove":
            store.remove(args.username)
            _audit(args, {"op": "remove", "account": args.username})
            print(f"removed {args.username}")
        elif cmd == "set-password":
            if args.username not in {u["username"] for u in store.list()}:
                raise AuthError(f"no account {args.username!r}")
            store.set_password(args.username, _read_password(args))
            _audit(args, {"op": "set-password", "account": args.username})
            print(f"password changed for {args.username}")
        elif cmd == "unlock":
            # the lock lives in the audit log, so the unlock is an audit entry there
            if not _review_path(args):
                raise AuthError("unlock needs the review store: --db STUDY.duckdb or --review-db PATH")
            _audit(args, {"account": args.username}, action="sign_in_unlocked")
            print(f"unlocked {args.username}: failed sign-ins before now no longer count")
        elif cmd in ("disable", "enable"):
            store.set_disabled(args.username, cmd == "disable")
            _audit(args, {"op": cmd, "account": args.username})
            print(f"{cmd}d {args.username}")
    except AuthError as exc:  # a refusal, as every command's (docs/access.md): one line, exit 2
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0

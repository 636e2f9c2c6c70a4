"""``python -m safety``: the command line. Each subcommand lives in its own module with
``add_arguments(parser)`` and ``run(args) -> int``; this file only dispatches. Command modules import
their heavy libraries inside ``run`` so that ``--help`` answers at once."""
from __future__ import annotations

import argparse
import sys

from safety import __version__
from safety.core import interrupt


# One plain import per command, made only when that command runs: `--help` and `--version` import no
# command module (they cost 0.1-0.3 s together: the table registry, the review store).
def _ingest():
    from safety.commands import ingest
    return ingest


def _export():
    from safety.commands import export
    return export


def _review():
    from safety.commands import review
    return review


def _users():
    from safety.commands import users
    return users


def _audit():
    from safety.commands import audit
    return audit


def _schema_doc():
    from safety.commands import schema_doc
    return schema_doc


# name -> (function returning the command's module, one-line help)
COMMANDS = {
    "ingest": (_ingest, "load a study folder into a DuckDB database and run every derivation"),
    "export": (_export, "write committee listings and tables (CSV, XLSX, RTF, PDF)"),
    "review": (_review, "record committee DLT decisions from signed minutes, or list them (CSV)"),
    "users": (_users, "manage sign-in accounts (add, list, set-password, set-sites, disable, enable, unlock, remove)"),
    "audit": (_audit, "verify or export the tamper-evident audit log"),
    "schema-doc": (_schema_doc, "write docs/schema.md from the table registry"),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # exit 2 with one line, never a traceback
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with ``argv``, only the command named in it is imported and given its arguments (the
    top level has no option taking a value, so the first word not starting with '-' is the command)."""
    chosen = None if argv is None else next((a for a in argv if not a.startswith("-")), "")
    parser = _Parser(prog="python -m safety", description="celltox: safety monitoring for cell-therapy trials.")
    parser.add_argument("--version", action="version", version=f"celltox {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (load, help_text) in COMMANDS.items():
        if chosen is not None and name != chosen:
            sub.add_parser(name, help=help_text)
            continue
        mod = load()
        p = sub.add_parser(name, help=help_text, description=(mod.__doc__ or help_text).strip(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    interrupt.install()
    try:
        code = _run(args)
    except KeyboardInterrupt:
        code = None
    # Ctrl-C: one line, never a traceback (a command that said it already returns INTERRUPTED)
    if code is None or (interrupt.received() and code != interrupt.INTERRUPTED):
        print(f"python -m safety {args.command}: interrupted", file=sys.stderr)
        return interrupt.INTERRUPTED
    return code


def _run(args) -> int:
    try:
        return int(args._run(args) or 0)
    except BrokenPipeError:
        raise  # the reader of the output left: python -m safety leaves quietly
    except OSError as exc:
        interrupt.check()
        # the machine refused half-way (disk full, a name too long): one line. The paths a command writes are
        # checked before it starts (safety.core.files.unwritable): a folder it cannot write is exit 2 there
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"python -m safety {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        interrupt.check()  # DuckDB takes Ctrl-C during a query as its own error ('Query interrupted')
        if type(exc).__module__.split(".")[0] not in ("duckdb", "_duckdb", "sqlite3"):
            raise
        # a database file that is not what the command needs (another program's DuckDB or SQLite file)
        print(f"python -m safety {args.command}: error: {' '.join(str(exc).split())[:300]}", file=sys.stderr)
        return 1

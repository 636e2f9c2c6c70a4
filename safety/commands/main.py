"""``python -m safety``: the command line. Each subcommand lives in its own module with
``add_arguments(parser)`` and ``run(args) -> int``; this file only dispatches. Command modules import
their heavy libraries inside ``run`` so that ``--help`` answers at once."""
from __future__ import annotations

import argparse
import sys

from safety import __version__
from safety.commands import audit, export, ingest, review, schema_doc, users

# name -> (module, one-line help)
COMMANDS = {
    "ingest": (ingest, "load a study folder into a DuckDB database and run every derivation"),
    "export": (export, "write committee listings and tables (CSV, XLSX, RTF, PDF)"),
    "review": (review, "record committee DLT decisions from signed minutes, or list them (CSV)"),
    "users": (users, "manage sign-in accounts (add, remove, list, set-password)"),
    "audit": (audit, "verify or export the tamper-evident audit log"),
    "schema-doc": (schema_doc, "write docs/schema.md from the table registry"),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # exit 2 with one line, never a traceback
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m safety", description="celltox: safety monitoring for cell-therapy trials.")
    parser.add_argument("--version", action="version", version=f"celltox {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (mod, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=(mod.__doc__ or help_text).strip(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    return int(args._run(args) or 0)

"""``python -m safety``: the command line. Each subcommand lives in its own module with
``add_arguments(parser)`` and ``run(args) -> int``; this file only dispatches."""
from __future__ import annotations

import argparse
import importlib
import sys

from safety import __version__

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "ingest": ("safety.commands.ingest", "load a study folder into a DuckDB database and run every derivation"),
    "export": ("safety.commands.export", "write committee listings and tables (CSV, XLSX, RTF, PDF)"),
    "users": ("safety.commands.users", "manage sign-in accounts (add, remove, list, set-password)"),
    "audit": ("safety.commands.audit", "verify or export the tamper-evident audit log"),
    "schema-doc": ("safety.commands.schema_doc", "write docs/schema.md from the table registry"),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # exit 2 with one line, never a traceback
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m safety", description="celltox: safety monitoring for cell-therapy trials.")
    parser.add_argument("--version", action="version", version=f"celltox {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module, help_text) in COMMANDS.items():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                continue
            raise
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

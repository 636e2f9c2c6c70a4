"""Start the dashboard: ``python -m dashboard [streamlit run options] [-- --db PATH]``.

The same as ``streamlit run dashboard/app.py`` with the same options, except that the libraries the pages
need are imported before the server takes its first browser connection (``dashboard.warmup.import_ahead``),
and the overview's answers for the landing study and cut are computed beside the server's start
(``dashboard.warmup.prepare_landing_page``): the app's first page then shows in about half the time. Run it
from the project folder.
"""
from __future__ import annotations

import sys
from pathlib import Path

APP = Path(__file__).resolve().with_name("app.py")
ROOT = APP.parents[1]


def main(argv: list[str] | None = None) -> None:
    """Import ahead, then hand over to Streamlit's own ``run`` command (it exits the process)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from dashboard import warmup

    args = sys.argv[1:] if argv is None else argv
    warmup.import_ahead()
    from dashboard.database import resolve_db_path, unknown_app_options

    # the app's own arguments follow "--" (e.g. -- --db PATH); the ones before it are Streamlit's
    app_args = args[args.index("--") + 1:] if "--" in args else []
    unknown = unknown_app_options(app_args)
    if unknown:
        print(f"python -m dashboard: error: unknown option {' '.join(unknown)} after '--': the app takes --db PATH "
              "there; Streamlit's options (e.g. --server.port 8600) go before '--'", file=sys.stderr)
        raise SystemExit(2)
    warmup.start_preparing_landing_page(resolve_db_path(app_args))
    from streamlit.web import cli

    cli.main(["run", str(APP), *args], prog_name="streamlit")


if __name__ == "__main__":
    main()

"""Start the dashboard: ``python -m dashboard [streamlit run options] [-- --db PATH]``.

The same as ``streamlit run dashboard/app.py`` with the same options, except that the libraries the pages
need are imported before the server takes its first browser connection (``dashboard.warmup.import_ahead``):
the app's first page then shows in about half the time. Run it from the project folder.
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

    warmup.import_ahead()
    from streamlit.web import cli

    cli.main(["run", str(APP), *(sys.argv[1:] if argv is None else argv)], prog_name="streamlit")


if __name__ == "__main__":
    main()

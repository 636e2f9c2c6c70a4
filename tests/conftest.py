"""Shared fixtures. Tests use real DuckDB files in a temporary folder."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture
def db_path(tmp_path) -> Path:
    return tmp_path / "study.duckdb"


@pytest.fixture
def figure_browser() -> None:
    """For a test that needs the PDF's figures drawn: skipped when kaleido finds no browser on this machine
    (the README's test command installs Python packages only); in CI, where `.ci/run` installs Chromium, a
    missing browser is a failure, not a skip."""
    from missing_tool import missing_tool
    from safety.export._render import browser_found

    if not browser_found():
        missing_tool("no browser for the PDF figures (apt-get install chromium)")

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

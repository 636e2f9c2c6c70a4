"""What a test does when this machine lacks a tool it needs (Debian's Chromium, a browser for the PDF figures)."""
from __future__ import annotations

import os

import pytest


def missing_tool(reason: str) -> None:
    """Skip the test, saying why; in CI, whose `.ci/run` installs every tool the tests need, fail it instead."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)

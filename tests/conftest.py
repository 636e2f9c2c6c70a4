"""Shared fixtures. Tests use real DuckDB files in a temporary folder."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto`: one worker per core this process may run on (a container's CPU set, not the host's count)."""
    return len(os.sched_getaffinity(0))


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


@pytest.fixture(scope="session")
def sample_database(tmp_path_factory):
    """Writes the sample database (both studies at both cuts, with the demo committee's decisions) to a path and
    returns the (study folder, data cut) pairs loaded. Built once per test session by the real builder, then
    copied with its review store: every module still gets a file of its own to write into."""
    built: dict = {}

    def write(path: Path) -> list[tuple[str, str]]:
        from safety.review.store import default_review_path
        from safety.sample_db import build_sample_database

        if not built:
            source = tmp_path_factory.mktemp("sample_built_once") / "celltox_sample.duckdb"
            built["loaded"] = build_sample_database(source)
            built["path"] = source
        shutil.copyfile(built["path"], path)
        shutil.copyfile(default_review_path(built["path"]), default_review_path(path))
        return list(built["loaded"])

    return write


@pytest.fixture
def unwritable_folder(tmp_path):
    """A folder this process cannot write in: read-only (mode 0555), and for root, whom modes do not stop, also
    immutable (chattr +i). Skipped, saying why, where neither stops this process."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    immutable = os.access(folder, os.W_OK) and shutil.which("chattr") is not None and subprocess.run(
        ["chattr", "+i", str(folder)], capture_output=True).returncode == 0
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("a read-only folder is writable for this user (root) and chattr +i is not available here")
        yield folder
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)

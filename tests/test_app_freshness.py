"""The app during loads: it says once that a new data cut was loaded, and says in one sentence why it cannot
open a database (a first load running) instead of DuckDB's lock message."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from safety.ingest import ingest_study, snapshot
from test_ingest_fixtures import make_study

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys
sys.path.insert(0, {root!r})
import streamlit as st
from dashboard import freshness
freshness.notice({db!r})
st.write("page")
"""


def test_a_new_load_is_announced_once(tmp_path):
    db = tmp_path / "trial.duckdb"
    study = make_study(tmp_path / "s", "csv")
    ingest_study(study, db, cutoff="2024-03-01", run_derivations=False)
    script = tmp_path / "page.py"
    script.write_text(SCRIPT.format(root=str(ROOT), db=str(db)))
    at = AppTest.from_file(str(script)).run()
    assert not at.info and not at.exception
    at.run()
    assert not at.info
    ingest_study(study, db, cutoff="2024-04-01", run_derivations=False)
    at.run()
    assert len(at.info) == 1 and at.info[0].value.startswith("A new data cut was loaded at ")
    at.run()
    assert not at.info  # said once


def test_the_app_says_a_first_load_is_running_instead_of_a_traceback(tmp_path, monkeypatch):
    db = tmp_path / "trial.duckdb"
    monkeypatch.setenv("CELLTOX_DB", str(db))
    with snapshot.load_lock(db):
        at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "The first data load into trial.duckdb is running; the app opens the database when it has finished "
        "(reload this page in a minute)."]


def test_the_app_says_another_program_is_writing_the_database(tmp_path, monkeypatch):
    db = tmp_path / "trial.duckdb"
    ingest_study(make_study(tmp_path / "s", "csv"), db, run_derivations=False)
    marker = tmp_path / "held"
    code = textwrap.dedent("""
        import sys, time, duckdb
        from pathlib import Path
        con = duckdb.connect(sys.argv[1])
        Path(sys.argv[2]).write_text("holding")
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code, str(db), str(marker)])
    try:
        end = time.monotonic() + 60
        while not marker.exists():
            assert time.monotonic() < end and proc.poll() is None
            time.sleep(0.05)
        monkeypatch.setenv("CELLTOX_DB", str(db))
        at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=60).run()
    finally:
        proc.kill()
        proc.wait(30)
    assert not at.exception
    (err,) = at.error
    assert err.value.startswith(f"The database trial.duckdb is open for writing in process {proc.pid};")
    assert str(tmp_path) not in err.value

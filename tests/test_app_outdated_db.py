"""A database file written by an earlier celltox (a table without a column this version declares): the app
says so in one sentence with the command to reload, instead of failing on a page; the embedded demo is rebuilt."""
from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from safety import schema
from test_app_minidb import build_mini_database

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")


@pytest.fixture
def clear_caches():
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


def _old_file(path: Path) -> Path:
    build_mini_database(path)
    con = duckdb.connect(str(path))
    con.execute("ALTER TABLE infection_incidence_density DROP COLUMN dose_level")
    con.close()
    return path


def test_missing_columns_names_the_table_and_column(tmp_path):
    db = _old_file(tmp_path / "old.duckdb")
    con = duckdb.connect(str(db), read_only=True)
    assert schema.missing_columns(con) == {"infection_incidence_density": ["dose_level"]}
    con.close()
    fresh = build_mini_database(tmp_path / "new.duckdb")
    con = duckdb.connect(str(fresh), read_only=True)
    assert schema.missing_columns(con) == {}
    con.close()


def test_app_refuses_an_outdated_file_in_one_sentence(tmp_path, monkeypatch, clear_caches):
    db = _old_file(tmp_path / "old.duckdb")
    monkeypatch.setenv("CELLTOX_DB", str(db))
    monkeypatch.setenv("CELLTOX_AUTH", "off")
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert len(errors) == 1
    assert "earlier version of celltox" in errors[0]
    assert "table infection_incidence_density lacks dose_level" in errors[0]
    assert "python -m safety ingest" in errors[0]
    assert not at.title  # no page ran on the outdated file


def test_an_outdated_demo_database_is_rebuilt(tmp_path, monkeypatch, clear_caches):
    from dashboard import database

    sample = tmp_path / "sample.duckdb"
    _old_file(sample)
    monkeypatch.setattr(database, "SAMPLE_DB", sample)
    built = []
    import safety.sample_db as sample_db

    def fake_build(path, sample_root=None):  # the real build takes a minute: the mini study stands in
        built.append(Path(path))
        shutil.copy(build_mini_database(tmp_path / "rebuilt.duckdb"), path)
    monkeypatch.setattr(sample_db, "ensure_sample_database", fake_build)
    assert database.ensure_database.__wrapped__(str(sample)) == str(sample)
    assert built == [sample]
    con = duckdb.connect(str(sample), read_only=True)
    assert schema.missing_columns(con) == {}
    con.close()

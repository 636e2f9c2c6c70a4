"""Rules of the house that keep patient data inside its scope and the docs true."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]


def _py_files(*folders: str) -> list[Path]:
    return sorted(p for f in folders for p in (ROOT / f).rglob("*.py"))


def test_schema_doc_matches_the_table_registry(tmp_path):
    # docs/schema.md is generated; a table or column change without regenerating it fails here.
    # A fresh process, so tables other tests register in this one cannot leak into the comparison.
    out = tmp_path / "schema.md"
    subprocess.run([sys.executable, "-m", "safety", "schema-doc", "--out", str(out)], cwd=ROOT, check=True,
                   capture_output=True)
    assert (ROOT / "docs" / "schema.md").read_text(encoding="utf-8") == out.read_text(encoding="utf-8"), \
        "docs/schema.md is stale: run `python -m safety schema-doc`"


def test_domain_core_never_imports_streamlit():
    offenders = []
    for path in _py_files("safety"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n == "streamlit" or n.startswith("streamlit.") or n.startswith("dashboard") for n in names):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


# Pages and exports read only through safety.access.reader.StudyReader: no connection, cursor or schema-qualified table.
_DIRECT = re.compile(r"\.execute\(|\.cursor\(|duckdb\.connect\(|\bmain\.[a-z_]+\b|(?<![.\w])read_(?:csv|parquet|json)\w*\(")


def test_pages_and_exports_never_query_the_database_directly():
    offenders = []
    for path in _py_files("dashboard/views", "safety/export"):
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if _DIRECT.search(line) and not line.lstrip().startswith("#"):
                offenders.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}")
    assert offenders == []


def test_the_guard_above_would_catch_a_direct_query():
    assert _DIRECT.search('rows = con.execute("SELECT * FROM adverse_events")')
    assert _DIRECT.search("SELECT * FROM main.adverse_events")
    assert _DIRECT.search("SELECT * FROM read_csv('dm.csv')")
    assert not _DIRECT.search('reader.sql("SELECT * FROM adverse_events")')
    assert not _DIRECT.search("pd.read_csv(path, comment='#')")

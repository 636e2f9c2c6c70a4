"""The README's start command, ``python -m dashboard``: Streamlit's own ``run`` with the pages' libraries imported
before the first browser connects (the browser test, tests/test_e2e_browser.py, serves the app through it)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dashboard import __main__ as launcher
from dashboard import warmup

ROOT = Path(__file__).resolve().parents[1]


def test_the_launcher_hands_every_option_to_streamlit_run(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(warmup, "import_ahead", lambda: calls.append("import_ahead"))
    monkeypatch.setattr(warmup, "start_preparing_landing_page", lambda db: calls.append(("prepare", db)))
    import streamlit.web.cli as cli
    monkeypatch.setattr(cli, "main", lambda args, prog_name: calls.append((prog_name, args)))
    monkeypatch.chdir(tmp_path)
    launcher.main(["--server.port=8600", "--", "--db", "trial.duckdb"])
    # the landing page is prepared for the database the app will open (the argument after "--", resolved)
    assert calls == ["import_ahead", ("prepare", tmp_path / "trial.duckdb"),
                     ("streamlit", ["run", str(ROOT / "dashboard" / "app.py"), "--server.port=8600",
                                    "--", "--db", "trial.duckdb"])]
    calls.clear()
    monkeypatch.setenv("CELLTOX_DB", str(tmp_path / "from_env.duckdb"))
    launcher.main(["--server.port=8600"])
    assert calls[1] == ("prepare", tmp_path / "from_env.duckdb")


def test_the_launcher_refuses_an_option_after_the_separator_that_is_not_the_apps(monkeypatch, capsys):
    """``-- --db X --server.port 8600`` used to start on the default port without a word: the app ignored the
    Streamlit option it was handed. Now the start stops at once and says where the option goes."""
    calls = []
    monkeypatch.setattr(warmup, "import_ahead", lambda: None)
    monkeypatch.setattr(warmup, "start_preparing_landing_page", lambda db: calls.append(db))
    import streamlit.web.cli as cli
    monkeypatch.setattr(cli, "main", lambda args, prog_name: calls.append(args))
    with pytest.raises(SystemExit) as stopped:
        launcher.main(["--", "--db", "trial.duckdb", "--server.port=8599"])
    assert stopped.value.code == 2 and calls == []
    assert capsys.readouterr().err == ("python -m dashboard: error: unknown option --server.port=8599 after '--': the "
                                       "app takes --db PATH there; Streamlit's options (e.g. --server.port 8600) go "
                                       "before '--'\n")


def test_preparing_the_landing_page_leaves_a_missing_database_alone(tmp_path):
    missing = tmp_path / "not_built.duckdb"
    warmup.prepare_landing_page(missing)
    assert not missing.exists() and list(tmp_path.iterdir()) == []


def test_the_browser_is_asked_to_preload_the_plotly_script_of_the_installed_streamlit():
    # Found by name in Streamlit's front end; a Streamlit release that renames it fails here, not silently.
    chunk = warmup.plotly_chunk()
    assert chunk and (warmup.STREAMLIT_JS / chunk).stat().st_size > 1_000_000
    html = warmup._PRELOAD.format(chunk=f'"{chunk}"')
    assert f'"{chunk}"' in html and "requestIdleCallback" in html
    # the module is imported by the URL of the front end's entry script, which Streamlit's page loads from
    index = (warmup.STREAMLIT_JS.parents[1] / "index.html").read_text()
    assert 'type="module"' in index and "/static/js/index." in index


def test_import_ahead_leaves_the_pages_libraries_imported_and_out_of_the_collectors_reach():
    # A fresh interpreter: what this test process imported before must not count.
    code = ("import gc, sys; from dashboard import warmup; "
            "before = set(sys.modules); warmup.import_ahead(); "
            "print(gc.get_freeze_count()); "
            "print(' '.join(m for m in ('pandas', 'duckdb', 'statsmodels.duration.survfunc', "
            "'scipy.special', 'safety.export.listings', 'dashboard.figures', "
            "'plotly.graph_objs.layout.xaxis.title._font', 'plotly.graph_objs.bar._error_y') "
            "if m in sys.modules and m not in before))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    frozen, imported = out.stdout.splitlines()
    # the libraries are hundreds of thousands of objects; Streamlit's collection after each run now skips them
    assert int(frozen) > 100_000
    assert imported.split() == ["pandas", "duckdb", "statsmodels.duration.survfunc",
                                "scipy.special", "safety.export.listings", "dashboard.figures",
                                "plotly.graph_objs.layout.xaxis.title._font", "plotly.graph_objs.bar._error_y"]
    assert "No runtime found" not in out.stderr  # the cache decorators' warning is held back while importing


def test_no_page_relies_on_streamlit_magic_which_the_app_turns_off():
    # .streamlit/config.toml sets runner.magicEnabled = false: a bare expression on a page would silently
    # stop showing. Calls and docstrings are what magic leaves alone anyway.
    import ast
    import tomllib

    assert tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["runner"]["magicEnabled"] is False
    scripts = [ROOT / "dashboard" / "app.py", *sorted((ROOT / "dashboard" / "views").glob("*.py"))]
    bare = [f"{p.name}:{node.lineno}" for p in scripts for node in ast.walk(ast.parse(p.read_text()))
            if isinstance(node, ast.Expr) and not isinstance(node.value, ast.Call)
            and not (isinstance(node.value, ast.Constant) and isinstance(node.value.value, str))]
    assert len(scripts) == 12 and bare == []

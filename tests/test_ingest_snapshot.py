"""A load never interrupts readers and is all-or-nothing: a private copy is loaded and derived, then switched in.

Real processes: the load that is killed, the reader that queries while a load runs, and the program that holds
the database open for writing are subprocesses, as they are in use.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from safety.access import reader as access
from safety.ingest import IngestError, ingest_study, snapshot
from test_ingest_fixtures import DM, DOMAINS, LB, make_study

ROOT = Path(__file__).resolve().parents[1]


def q(db, sql, params=None):
    con = access.connect(db)
    try:
        return con.cursor().sql(sql, params=params or {}).to_arrow_table().to_pandas()
    finally:
        con.close()


def python(code: str, *args, **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'tests'}")
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def wait_for(path: Path, proc: subprocess.Popen, seconds: float = 240) -> None:
    end = time.monotonic() + seconds
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"process ended early: {proc.communicate()}")
        assert time.monotonic() < end, f"{path.name} did not appear"
        time.sleep(0.05)


def snapshot_facts(db, cut="2024-05-01"):
    """What a committee sees of one cut: subjects, labs, lab grades, AEs, and which load wrote them."""
    p = {"c": cut}
    return {
        "load_id": q(db, "SELECT load_id FROM studies WHERE data_cut = $c", p).load_id.tolist(),
        "labs": int(q(db, "SELECT count(*) n FROM labs WHERE data_cut = $c", p).n[0]),
        "lab_toxicity": int(q(db, "SELECT count(*) n FROM lab_toxicity WHERE data_cut = $c", p).n[0]),
        "graded": int(q(db, "SELECT count(*) n FROM lab_toxicity WHERE data_cut = $c AND grade IS NOT NULL", p).n[0]),
        "adverse_events": int(q(db, "SELECT count(*) n FROM adverse_events WHERE data_cut = $c", p).n[0]),
        "subjects": int(q(db, "SELECT count(*) n FROM subjects WHERE data_cut = $c", p).n[0]),
    }


def more_labs() -> dict:
    """The fixture study with three more ALT results for S-001: a reload of the same cut that differs."""
    extra = pd.DataFrame({c: [LB[c].iloc[3]] * 3 for c in LB.columns})
    extra["LBSEQ"] = [11, 12, 13]
    extra["LBORRES"] = ["90", "130", "250"]
    return dict(DOMAINS, lb=pd.concat([LB, extra], ignore_index=True))


KILLED_LOAD = """
    import sys, time
    from pathlib import Path
    from safety.derive import pipeline
    from safety.derive.graph import Derivation
    from safety.ingest import ingest_study

    study, db, marker = sys.argv[1:4]
    # once the lab grades of the new load are written, pause the next derivation: the parent kills us there
    i = next(i for i, d in enumerate(pipeline.ORDER) if d.name == "ctcae_lab_grades") + 1
    nxt = pipeline.ORDER[i]
    def paused(*a, **kw):
        Path(marker).write_text("in derivations")
        time.sleep(600)
    pipeline.ORDER[i] = Derivation(nxt.name, nxt.writes, nxt.reads, paused)
    ingest_study(study, db)
"""


def test_killed_reload_leaves_the_previous_snapshot_of_the_cut_complete(tmp_path):
    db = tmp_path / "trial.duckdb"
    ingest_study(make_study(tmp_path / "first", "csv"), db)
    before = snapshot_facts(db)
    assert before["labs"] > 0 and before["lab_toxicity"] > 0 and before["graded"] > 0

    study = make_study(tmp_path / "second", "csv", domains=more_labs())
    marker = tmp_path / "derivations.started"
    proc = python(KILLED_LOAD, study, db, marker)
    try:
        wait_for(marker, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL

    # the cut is exactly the earlier load, with its grades: never a cut half-loaded or without grades
    assert snapshot_facts(db) == before
    # the killed load's copy is swept by the next load, which then goes through
    r = ingest_study(study, db)
    after = snapshot_facts(db)
    assert after["load_id"] == [r.load_id] and after["labs"] == before["labs"] + 3
    assert after["lab_toxicity"] > before["lab_toxicity"]
    assert not list(tmp_path.glob("trial.duckdb.loading*"))


READER = """
    import json, sys, time
    from pathlib import Path
    from safety.access import reader as access
    from safety.ingest import snapshot

    db, ready, stop = (Path(a) for a in sys.argv[1:4])
    con, version = access.connect(db), snapshot.file_version(db)
    old = []  # connections to earlier files stay open, as in the app while a page still renders
    seen, errors, queries = set(), [], 0
    ready.write_text("reading")
    while not stop.exists() or queries < 20:
        if snapshot.file_version(db) != version:
            old.append(con)
            con, version = access.connect(db), snapshot.file_version(db)
        try:
            cur = con.cursor()
            cuts = [str(r[0]) for r in cur.execute("SELECT data_cut FROM studies ORDER BY 1").fetchall()]
            n = cur.execute("SELECT count(*) FROM adverse_events WHERE data_cut = $c", {"c": cuts[-1]}).fetchone()[0]
            assert n > 0, "a cut without adverse events"
            seen.add(tuple(cuts))
        except Exception as exc:
            errors.append(" ".join(str(exc).split())[:200])
        queries += 1
        for c in old:  # the old file still answers
            c.cursor().execute("SELECT count(*) FROM subjects").fetchone()
    print(json.dumps({"seen": sorted(seen), "errors": errors, "queries": queries}))
"""


def test_a_reader_querying_during_a_load_gets_no_error_and_then_sees_the_new_cut(tmp_path):
    db = tmp_path / "trial.duckdb"
    study = make_study(tmp_path / "s", "csv")
    ingest_study(study, db, cutoff="2024-03-01")
    ready, stop = tmp_path / "reader.ready", tmp_path / "reader.stop"
    proc = python(READER, db, ready, stop)
    try:
        wait_for(ready, proc)
        r = ingest_study(study, db, cutoff="2024-04-01")  # while the reader holds the file and queries it
        time.sleep(0.5)
        stop.write_text("stop")
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["errors"] == []
    assert report["seen"][0] == ["2024-03-01"]
    assert report["seen"][-1] == ["2024-03-01", "2024-04-01"]
    assert str(r.data_cut) == "2024-04-01"
    # the review store beside the database is the same file, with both loads in its audit log
    from safety.review.store import ReviewStore, default_review_path
    rows = ReviewStore(default_review_path(db)).query("SELECT action FROM audit_log")
    assert [x["action"] for x in rows] == ["data_load", "data_load"]


def test_an_open_reader_keeps_its_file_and_a_new_connection_gets_the_new_one(tmp_path):
    db = tmp_path / "trial.duckdb"
    study = make_study(tmp_path / "s", "csv")
    ingest_study(study, db, cutoff="2024-03-01", run_derivations=False)
    held = access.connect(db)
    version = snapshot.file_version(db)
    ingest_study(study, db, cutoff="2024-04-01", run_derivations=False)
    assert snapshot.file_version(db) != version
    cuts = lambda con: [str(r[0]) for r in con.cursor().execute("SELECT data_cut FROM studies ORDER BY 1").fetchall()]
    assert cuts(held) == ["2024-03-01"]
    fresh = access.connect(db)
    assert cuts(fresh) == ["2024-03-01", "2024-04-01"]
    held.close()
    fresh.close()


def test_a_failed_first_load_leaves_no_database_file(tmp_path):
    study = make_study(tmp_path / "s", "csv")
    DM.drop(columns=["USUBJID"]).to_csv(study / "dm.csv", index=False)
    db = tmp_path / "trial.duckdb"
    with pytest.raises(IngestError, match="no USUBJID column"):
        ingest_study(study, db, run_derivations=False)
    assert not db.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("trial.duckdb")] == ["trial.duckdb.lock"]


def test_a_second_load_at_the_same_time_is_refused_in_one_line(tmp_path):
    db = tmp_path / "trial.duckdb"
    study = make_study(tmp_path / "s", "csv")
    ingest_study(study, db, run_derivations=False)
    with snapshot.load_lock(db):
        assert snapshot.load_running(db)
        with pytest.raises(IngestError) as exc:
            ingest_study(study, db, run_derivations=False)
    msg = str(exc.value)
    assert msg.startswith("trial.duckdb: another load into this database is running (process ")
    assert "\n" not in msg
    assert not snapshot.load_running(db)


HOLDER = """
    import sys, time, duckdb
    from pathlib import Path
    con = duckdb.connect(sys.argv[1])  # a program holding the database open for writing
    Path(sys.argv[2]).write_text("holding")
    time.sleep(600)
"""


def test_a_database_held_for_writing_is_refused_and_the_app_says_why(tmp_path):
    db = tmp_path / "trial.duckdb"
    study = make_study(tmp_path / "s", "csv")
    ingest_study(study, db, run_derivations=False)
    marker = tmp_path / "held"
    proc = python(HOLDER, db, marker)
    try:
        wait_for(marker, proc)
        with pytest.raises(IngestError, match="^trial.duckdb: the database is open for writing in another program"):
            ingest_study(study, db, run_derivations=False)
        with pytest.raises(duckdb.Error) as exc:
            access.connect(db)
        sentence = snapshot.open_problem(db, exc.value)
        assert sentence.startswith(f"The database trial.duckdb is open for writing in process {proc.pid};")
        assert str(tmp_path) not in sentence and "\n" not in sentence
    finally:
        proc.kill()
        proc.wait(30)


def test_the_app_says_a_first_load_is_running(tmp_path):
    db = tmp_path / "trial.duckdb"
    with snapshot.load_lock(db):
        try:
            access.connect(db)
        except FileNotFoundError as exc:
            sentence = snapshot.open_problem(db, exc)
    assert sentence.startswith("The first data load into trial.duckdb is running;")

"""`python -m safety ingest`: exit codes, the per-file table, one-line errors and no tracebacks."""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import duckdb

from test_ingest_fixtures import DM, make_study

ROOT = Path(__file__).resolve().parents[1]


def run(*args):
    return subprocess.run([sys.executable, "-m", "safety", "ingest", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_load_prints_table_and_exits_0(tmp_path, monkeypatch):
    study = make_study(tmp_path / "s", "csv")
    db = tmp_path / "db.duckdb"
    p = run(study, "--db", db, "--cutoff", "2024-02-15", "--no-derivations")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert "study CT-TEST-01, data cut 2024-02-15" in lines[0]
    ae = next(l for l in lines if l.startswith("ae.csv")).split()
    assert ae == ["ae.csv", "AE", "7", "2", "4", "1"]
    assert any(l.startswith("total") for l in lines)
    # the quarantined rows themselves follow the count: file, data row, field and reason
    at = lines.index(next(l for l in lines if l.startswith("9 row(s) quarantined")))
    assert lines[at + 1:at + 3] == ["  ae.csv row 3, AETOXGR: AETOXGR 7 outside 1-5",
                                    "  ae.csv row 5, AEENDTC: AE end 2024-02-10 before start 2024-02-20"]
    assert "  lb.csv row 5, LBORRESU: unknown unit 'furlong' for BILI (see safety/data/unit_conversions.csv)" in lines
    assert len(lines) == at + 10 and lines[-1].startswith("  suppae.csv row 3, IDVARVAL: ")
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM subjects").fetchall()[0][0] == 4
    con.close()
    # past the first rows, the rest are counted, not printed
    from safety.commands import ingest as command
    load_id = p.stdout.split("(load ")[1].split(")")[0]
    monkeypatch.setattr(command, "QUARANTINE_SHOWN", 4)
    shown = command._quarantine_lines(db, load_id, 9).splitlines()
    assert shown == lines[at + 1:at + 5] + ["  ... and 5 more"]


def test_a_load_piped_into_a_reader_that_has_left_loads_and_says_nothing_more(tmp_path):
    # `python -m safety ingest ... | head -1`: the reader leaves before the summary is written
    study = make_study(tmp_path / "s", "csv")
    db = tmp_path / "db.duckdb"
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        p = subprocess.run([sys.executable, "-m", "safety", "ingest", str(study), "--db", str(db), "--cutoff",
                            "2024-02-15", "--no-derivations"], cwd=ROOT, stdout=write_end,
                           stderr=subprocess.PIPE, text=True, timeout=300)
    finally:
        os.close(write_end)
    assert p.returncode == 1
    assert "Traceback" not in p.stderr and "BrokenPipeError" not in p.stderr, p.stderr
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM subjects").fetchall()[0][0] == 4
    con.close()


def test_unusable_input_exits_2_with_one_line(tmp_path):
    study = make_study(tmp_path / "s", "csv")
    DM.drop(columns=["USUBJID"]).to_csv(study / "dm.csv", index=False)
    p = run(study, "--db", tmp_path / "db.duckdb")
    assert p.returncode == 2
    assert p.stderr.strip() == "error: dm.csv: no USUBJID column"
    assert "Traceback" not in p.stderr + p.stdout


def test_a_dm_of_only_its_header_is_refused_and_the_database_kept(tmp_path):
    """A DM cut down to its header would quarantine every other record as "not in DM" and make a cut with no
    subject the newest one the committee sees: the load is refused in one line and the database stays as it was."""
    study = make_study(tmp_path / "s", "csv")
    db = tmp_path / "db.duckdb"
    assert run(study, "--db", db, "--cutoff", "2024-02-15").returncode == 0
    before = db.read_bytes()
    DM.iloc[0:0].to_csv(study / "dm.csv", index=False)
    p = run(study, "--db", db)
    assert p.returncode == 2
    assert p.stderr.strip() == ("error: dm.csv: no DM records (only the header): a delivery without its subjects "
                                "is not loaded")
    assert db.read_bytes() == before


def test_a_database_path_that_is_no_database_is_refused_before_anything_is_written(tmp_path):
    study = make_study(tmp_path / "s", "csv")
    other = tmp_path / "ae.csv"
    other.write_text("STUDYID,USUBJID\nX,1\n")
    empty = tmp_path / "new.duckdb"
    empty.touch()
    for path, what in ((other, "not a DuckDB database"), (empty, "an empty file")):
        p = run(study, "--db", path)
        assert p.returncode == 2
        assert p.stderr.strip() == f"error: {path}: {what}; give the database the study's cuts are in, or a new file name"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["ae.csv", "new.duckdb", "s"]  # no lock, no copy beside them
    assert other.read_text() == "STUDYID,USUBJID\nX,1\n"


def test_a_database_or_review_store_in_a_folder_that_cannot_be_written_is_refused_before_any_work(
        tmp_path, unwritable_folder):
    """It exited 1, the code of a study loaded whose summary could not be written, naming the load's lock file
    (x.duckdb.lock: Operation not permitted): exit 2 and one line naming the path given, nothing loaded."""
    study = make_study(tmp_path / "s", "csv")
    db = unwritable_folder / "x.duckdb"
    p = run(study, "--db", db, "--no-derivations")
    assert (p.returncode, p.stderr.strip(), p.stdout) == (
        2, f"error: {db}: the folder {unwritable_folder} is not writable", "")
    ok = tmp_path / "ok.duckdb"
    store = unwritable_folder / "ok.review.sqlite"  # the audit entry failed after the load was switched in
    p = run(study, "--db", ok, "--review-db", store, "--no-derivations")
    assert (p.returncode, p.stderr.strip()) == (2, f"error: {store}: the folder {unwritable_folder} is not writable")
    assert not ok.exists() and list(unwritable_folder.iterdir()) == []
    under_a_file = tmp_path / "notes.txt" / "x.duckdb"  # stops root too
    (tmp_path / "notes.txt").write_text("x")
    p = run(study, "--db", under_a_file, "--no-derivations")
    assert (p.returncode, p.stderr.strip()) == (2, f"error: {under_a_file}: {tmp_path / 'notes.txt'} is a file, "
                                                   "not a folder")


def test_a_database_reached_through_a_link_is_loaded_where_it_lies(tmp_path):
    """--db naming a link: the load replaces the file the link names, with its lock and review store beside it
    (it replaced the link with a copy, splitting the study's cuts and its audit trail in two)."""
    study = make_study(tmp_path / "s", "csv")
    real = tmp_path / "real" / "trial.duckdb"
    real.parent.mkdir()
    assert run(study, "--db", real, "--cutoff", "2024-02-15").returncode == 0
    link = tmp_path / "link.duckdb"
    link.symlink_to(real)
    assert run(study, "--db", link, "--cutoff", "2024-03-15").returncode == 0
    assert link.is_symlink() and not (tmp_path / "link.review.sqlite").exists()
    con = duckdb.connect(str(real), read_only=True)
    assert [str(r[0]) for r in con.execute("SELECT data_cut FROM studies ORDER BY 1").fetchall()] == [
        "2024-02-15", "2024-03-15"]
    con.close()
    r = run(study, "--db", "")
    assert (r.returncode, r.stderr.strip()) == (2, "error: --db '.': give the database file, e.g. trial.duckdb")


def test_no_dm_and_bad_yaml_and_bad_cutoff(tmp_path):
    study = make_study(tmp_path / "s", "csv")
    (study / "dm.csv").unlink()
    p = run(study, "--db", tmp_path / "db.duckdb")
    assert p.returncode == 2 and p.stderr.startswith("error: s: no DM dataset")
    study2 = make_study(tmp_path / "t", "csv", study_yaml="product_type: CAR-X\n")
    p = run(study2, "--db", tmp_path / "db.duckdb")
    assert p.returncode == 2 and "'product_type' must be one of" in p.stderr and len(p.stderr.splitlines()) == 1
    p = run(study2, "--db", tmp_path / "db.duckdb", "--cutoff", "2024-02-30")
    assert p.returncode == 2 and p.stderr.strip() == "error: --cutoff: '2024-02-30' is not a date YYYY-MM-DD"


def test_help_explains_formats_cutoff_and_exit_codes():
    p = subprocess.run([sys.executable, "-m", "safety", "ingest", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0
    for word in (".xpt", ".sas7bdat", ".parquet", ".xlsx", "--cutoff", "crs_assessments", "Exit status", "quarantine"):
        assert word in p.stdout


def test_a_file_of_an_earlier_version_is_refused_in_one_line_and_kept(tmp_path):
    study = make_study(tmp_path / "s", "csv")
    db = tmp_path / "db.duckdb"
    assert run(study, "--db", db, "--cutoff", "2024-02-15", "--no-derivations").returncode == 0
    con = duckdb.connect(str(db))
    con.execute("ALTER TABLE subjects DROP COLUMN lymphodepletion_start_day")  # as an earlier version wrote it
    before = con.execute("SELECT count(*) FROM subjects").fetchone()[0]
    con.close()
    p = run(study, "--db", db, "--cutoff", "2024-03-01")
    assert p.returncode == 2
    assert p.stderr.strip() == (f"error: {db}: written by an earlier version of celltox (table subjects lacks "
                                "lymphodepletion_start_day): load the study into a new database file (--db NEW.duckdb)")
    assert "Traceback" not in p.stderr + p.stdout
    con = duckdb.connect(str(db), read_only=True)  # the file is as it was
    assert con.execute("SELECT count(*), max(data_cut) FROM subjects").fetchone() == (before, dt.date(2024, 2, 15))
    con.close()


def test_a_load_with_every_derivation_imports_neither_pandas_nor_pyarrow(tmp_path):
    # pandas and pyarrow cost every load about 0.4 CPU s of imports (docs/performance-history.md, sixteenth pass): the
    # load, its derivations and the stopping rules run on DuckDB and plain rows; pages read DataFrames
    studies = [str(ROOT / "sample_data" / s) for s in ("car_itnk", "car_t_cd56")]
    code = ("import sys; from safety.commands.main import main; "
            f"codes = [main(['ingest', s, '--db', {str(tmp_path / 'db.duckdb')!r}]) for s in {studies!r}]; "
            "print(codes, sorted(m for m in ('pandas', 'pyarrow') if m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[-1] == "[0, 0] []"
    con = duckdb.connect(str(tmp_path / "db.duckdb"), read_only=True)
    assert con.execute("SELECT count(DISTINCT studyid) FROM stopping_rule_status").fetchone()[0] == 2
    con.close()


def test_the_summary_names_unread_files_warns_of_odd_cuts_and_shows_causes_first(tmp_path):
    """What a data manager reads after a load: a dataset in a format nobody reads is named, a cut that leaves
    every subject out or lies in the future is called out, the quarantine hint pastes as SQL, and a bad DM
    record is listed before the records quarantined because of it."""
    dm = DM.astype({"AGE": object})
    dm.loc[dm.USUBJID == "S-001", "AGE"] = "old"
    study = make_study(tmp_path / "s", "csv", study_yaml="studyid: CT'TEST\n")
    from test_ingest_fixtures import write_frame
    write_frame(dm, study / "dm.csv")
    (study / "mh.txt").write_text("USUBJID,MHTERM\nS-001,Asthma\n")
    (study / "README.md").write_text("delivery notes\n")
    (study / "pr.csv").symlink_to(tmp_path / "gone" / "pr.csv")  # a link to nothing is named, not "not delivered"
    db = tmp_path / "db.duckdb"
    p = run(study, "--db", db, "--no-derivations")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert ("not read (not a format celltox reads: .xpt, .sas7bdat, .csv, .parquet, .xlsx): mh.txt, "
            "pr.csv (a link to a file that does not exist)") in lines
    hint = next(line for line in lines if "row(s) quarantined" in line)
    load_id = p.stdout.split("(load ")[1].split(")")[0]
    sql = "SELECT" + hint.split("(SELECT", 1)[1].rsplit(")", 1)[0]
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute(sql).fetchall() and {r[2] for r in con.execute(sql).fetchall()} == {load_id}
    finally:
        con.close()
    shown = lines[lines.index(hint) + 1:]
    assert "  dm.csv row 1, AGE: non-numeric value 'old'" in shown[:10]
    assert shown[-1].startswith("  ... and ")  # S-001's own records follow, quarantined because of it
    assert not any(line.startswith("warning:") for line in lines)

    p = run(study, "--db", db, "--no-derivations", "--cutoff", "2000-01-01")
    assert p.returncode == 0, p.stderr
    assert ("warning: no subject is in this snapshot: every DM record is quarantined or dated after the data cut "
            "2000-01-01") in p.stdout.splitlines()


def test_a_cutoff_after_today_is_refused_and_the_latest_cut_kept(tmp_path):
    """A typing error in the year of --cutoff made a snapshot that became the study's latest cut (the one the app
    and an export show by default); it is refused in one line naming the date and today. Today is a cut."""
    study = make_study(tmp_path / "s", "csv")
    db = tmp_path / "db.duckdb"
    assert run(study, "--db", db, "--no-derivations", "--cutoff", "2024-02-15").returncode == 0
    today = dt.date.today()
    for later in (today + dt.timedelta(days=1), dt.date(2999, 1, 1)):
        p = run(study, "--db", db, "--no-derivations", "--cutoff", later)
        assert (p.returncode, p.stdout) == (2, "")
        assert p.stderr == (f"error: --cutoff: {later} is after today ({today}): the committee cannot have seen "
                            "data of a day to come (a typing error?)\n")
    assert run(study, "--db", db, "--no-derivations", "--cutoff", today).returncode == 0
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert [r[0] for r in con.execute("SELECT data_cut FROM studies ORDER BY data_cut").fetchall()] == \
            [dt.date(2024, 2, 15), today]
    finally:
        con.close()


def test_a_header_that_is_no_variable_name_is_named_with_a_guess(tmp_path):
    """'AE TOXGR' is read by nothing: every AE would load without its grade, so the summary says so."""
    from test_ingest_fixtures import AE, write_frame
    study = make_study(tmp_path / "s", "csv")
    # 'Causality' is the SDTM label of AEREL: read; 'AE TOXGR' is nothing celltox knows
    write_frame(AE.rename(columns={"AETOXGR": "AE TOXGR", "AEREL": "Causality", "AEOUT": "Outcome notes"}),
                study / "ae.csv")
    p = run(study, "--db", tmp_path / "db.duckdb", "--no-derivations")
    assert p.returncode == 0, p.stderr
    assert ("note: ae.csv: column(s) 'AE TOXGR' (AETOXGR?), 'Outcome notes' not read: not an SDTM variable name "
            "or label; no AETOXGR column: every row loads without it") in p.stdout.splitlines()


def test_a_study_id_that_differs_from_dm_is_named(tmp_path):
    study = make_study(tmp_path / "s", "csv", study_yaml="studyid: CT-TEST-02\n")
    p = run(study, "--db", tmp_path / "db.duckdb", "--no-derivations")
    assert p.returncode == 0, p.stderr
    assert "note: dm.csv: STUDYID CT-TEST-01 in the file, CT-TEST-02 in study.yaml: loaded as CT-TEST-02" in \
        p.stdout.splitlines()
    same = make_study(tmp_path / "t", "csv", study_yaml="studyid: CT-TEST-01\n")
    assert "note:" not in run(same, "--db", tmp_path / "db2.duckdb", "--no-derivations").stdout


def test_ctrl_c_during_a_load_says_one_line_exits_130_and_keeps_the_database(tmp_path):
    """Ctrl-C half-way through a load (here while the AE rows are checked) is one line and exit 130, as a
    shell reports a command ended by SIGINT; never a traceback. The load ran in a copy: the database is as it was."""
    study = make_study(tmp_path / "s", "csv")
    db = tmp_path / "db.duckdb"
    assert run(study, "--db", db, "--cutoff", "2024-02-15", "--no-derivations").returncode == 0
    before = db.read_bytes()
    # a KeyboardInterrupt in Python code, and a SIGINT DuckDB took as its own ('Query interrupted') after which
    # the load failed otherwise or went on: every one is the same line, and nothing is switched in
    for stop in ("raise KeyboardInterrupt",
                 "import signal\n    try:\n        signal.raise_signal(signal.SIGINT)\n    except KeyboardInterrupt:\n"
                 "        raise RuntimeError('Query interrupted')",
                 "import signal\n    try:\n        signal.raise_signal(signal.SIGINT)\n    except KeyboardInterrupt:\n"
                 "        pass\n    return built(*args, **kwargs)"):
        # as at a terminal: a process started in the background inherits SIGINT ignored
        code = ("import signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
                "import sys, safety.ingest.engine as engine\nbuilt = engine.build_typed\n"
                f"def stop(*args, **kwargs):\n    {stop}\n"
                "engine.build_typed = stop\n"
                "from safety.commands.main import main\nsys.exit(main())\n")
        p = subprocess.run([sys.executable, "-c", code, "ingest", str(study), "--db", str(db), "--no-derivations"],
                           cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert (p.returncode, p.stderr, p.stdout) == (130, f"interrupted: {db} is unchanged\n", ""), stop
        assert db.read_bytes() == before
    assert sorted(x.name for x in tmp_path.iterdir()) == ["db.duckdb", "db.duckdb.lock", "db.review.sqlite", "s"]  # no copy left


def test_ctrl_c_in_any_command_is_one_line_and_exit_130(monkeypatch, capsys):
    from safety.commands import main, schema_doc

    def stop(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(schema_doc, "run", stop)
    assert main.main(["schema-doc"]) == 130
    assert capsys.readouterr().err == "python -m safety schema-doc: interrupted\n"


def test_a_loop_of_links_is_named_as_one(tmp_path):
    """A link to itself (mh.csv -> mh.csv) and two links to each other were named 'a link to a file that does not
    exist', which sends the sender looking for a missing file."""
    study = make_study(tmp_path / "s", "csv")
    (study / "mh.csv").symlink_to("mh.csv")
    (study / "cm_a.csv").symlink_to("cm_b.csv")
    (study / "cm_b.csv").symlink_to("cm_a.csv")
    (study / "pr.csv").symlink_to(tmp_path / "gone.csv")
    p = run(study, "--db", tmp_path / "db.duckdb", "--no-derivations")
    assert p.returncode == 0, p.stderr
    assert ("not read (not a format celltox reads: .xpt, .sas7bdat, .csv, .parquet, .xlsx): cm_a.csv (a loop "
            "of links), cm_b.csv (a loop of links), mh.csv (a loop of links), pr.csv (a link to a file that does not "
            "exist)") in p.stdout.splitlines()


def test_a_folder_named_like_a_dataset_is_named(tmp_path):
    """A folder lb.csv was passed over without a word while the summary said 'not delivered: LB'."""
    study = make_study(tmp_path / "s", "csv")
    (study / "lb.csv").unlink()
    (study / "lb.csv").mkdir()
    p = run(study, "--db", tmp_path / "db.duckdb", "--no-derivations")
    assert p.returncode == 0, p.stderr
    assert ("not read (not a format celltox reads: .xpt, .sas7bdat, .csv, .parquet, .xlsx): lb.csv (a folder)"
            in p.stdout.splitlines())


def test_another_programs_duckdb_file_is_not_called_an_earlier_celltox(tmp_path):
    """A DuckDB file with a table of celltox's name (adverse_events(x INT)) was 'written by an earlier version of
    celltox'; it never was one: it is named another program's database, and kept."""
    study = make_study(tmp_path / "s", "csv")
    db = tmp_path / "other.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE adverse_events (x INT)")
    con.close()
    before = db.read_bytes()
    p = run(study, "--db", db, "--no-derivations")
    assert (p.returncode, p.stdout) == (2, "")
    assert p.stderr == (f"error: {db}: not a celltox database (it has no studies table, and its adverse_events table "
                        "is not celltox's); give the database the study's cuts are in, or a new file name\n")
    assert db.read_bytes() == before


def test_a_device_as_database_is_refused_before_its_lock_is_taken(tmp_path):
    """--db /dev/null failed half-way naming a '/dev/null.loading-...' copy and left /dev/null.lock in /dev."""
    lock = Path("/dev/null.lock")
    had_lock = lock.exists()
    study = make_study(tmp_path / "s", "csv")
    try:
        p = run(study, "--db", "/dev/null", "--review-db", tmp_path / "r.sqlite", "--no-derivations")
        assert (p.returncode, p.stdout) == (2, "")
        assert p.stderr == "error: /dev/null: a device or other special file, not a database file\n"
        assert lock.exists() == had_lock
    finally:
        if lock.exists() and not had_lock:
            lock.unlink()

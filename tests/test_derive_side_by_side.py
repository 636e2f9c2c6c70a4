"""A load runs its derivations two at a time: the derived tables are the same as one after the other, a
derivation starts only after those whose tables it reads, and a failing derivation stops the load with its error."""
from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import duckdb
import pytest

from safety import schema
from safety.core.config import load_study_config
from safety.derive import pipeline
from safety.derive.graph import Derivation
from safety.ingest import ingest_study

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "sample_data" / "car_t_cd56"


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """The sample study loaded without derivations, and its study id and cut."""
    db = tmp_path_factory.mktemp("side") / "base.duckdb"
    r = ingest_study(STUDY, db, run_derivations=False)
    return db, r.studyid, r.data_cut


def derive(src: Path, dst: Path, studyid, cut, workers: int) -> dict[str, list]:
    """Every derived table's rows (sorted) after running every derivation with ``workers`` side by side."""
    shutil.copy(src, dst)
    con = duckdb.connect(str(dst))
    try:
        config = load_study_config(STUDY)
        pipeline.run_derivations(con, studyid, cut, config, workers=workers)
        out = {}
        for t in schema.DERIVED_TABLES:
            cols = ", ".join(f'"{c}"' for c in t.column_names)
            out[t.name] = con.execute(f"SELECT {cols} FROM {t.name} ORDER BY ALL").fetchall()
        return out
    finally:
        con.close()


def test_side_by_side_derives_the_same_rows_as_one_after_the_other(loaded, tmp_path):
    db, studyid, cut = loaded
    one = derive(db, tmp_path / "one.duckdb", studyid, cut, workers=1)
    two = derive(db, tmp_path / "two.duckdb", studyid, cut, workers=2)
    assert sum(len(v) for v in one.values()) > 1000 and len(one["lab_toxicity"]) > 100
    assert one["dlt_candidates"] and one["toxicity_episodes"] and one["stopping_rule_status"]
    for name in one:
        assert two[name] == one[name], name


def test_a_derivation_starts_after_the_ones_whose_tables_it_reads_and_an_error_stops_the_run(loaded, tmp_path,
                                                                                              monkeypatch):
    db, studyid, cut = loaded
    shutil.copy(db, tmp_path / "x.duckdb")
    events: list[tuple[str, str]] = []
    lock = threading.Lock()

    def wrap(d: Derivation, fail: bool = False) -> Derivation:
        def run(con, *a, **kw):
            with lock:
                events.append(("start", d.name))
            time.sleep(0.05)
            if fail:
                raise RuntimeError(f"{d.name} failed on purpose")
            d.run(con, *a, **kw)
            with lock:
                events.append(("end", d.name))
        return Derivation(d.name, d.writes, d.reads, run)

    order = [wrap(d, fail=d.name == "crs_icans") for d in pipeline.ORDER]
    monkeypatch.setattr(pipeline, "ORDER", order)
    con = duckdb.connect(str(tmp_path / "x.duckdb"))
    try:
        with pytest.raises(RuntimeError, match="crs_icans failed on purpose"):
            pipeline.run_derivations(con, studyid, cut, {}, workers=2)
    finally:
        con.close()
    started = [n for e, n in events if e == "start"]
    ended = [n for e, n in events if e == "end"]
    # dlt_screening reads toxicity_episodes (crs_icans): it never starts once crs_icans has failed
    assert "crs_icans" in started and "crs_icans" not in ended
    assert "dlt_screening" not in started and "stopping_rules" not in started
    # what ran, ran after what it reads
    for n in started:
        d = next(d for d in order if d.name == n)
        for dep in {w.name for w in order for t in w.written_names if t in d.reads and w.name != n}:
            assert ("end", dep) in events and events.index(("end", dep)) < events.index(("start", n)), (n, dep)


def test_the_lab_grades_start_with_the_labs_and_a_load_failing_later_waits_for_them_and_leaves_nothing(
        tmp_path, monkeypatch):
    from safety.ingest import IngestError, engine
    events: list[str] = []

    def wrap(d: Derivation) -> Derivation:
        def run(con, *a, **kw):
            events.append(f"start {d.name}")
            time.sleep(1.0)  # still running when the load fails
            d.run(con, *a, **kw)
            events.append(f"end {d.name}")
        return Derivation(d.name, d.writes, d.reads, run)

    def subjects_fail(*a, **kw):
        events.append("subjects")
        raise IngestError("dm.xpt: row 3, field RFICDTC: stopped on purpose")

    monkeypatch.setattr(pipeline, "ORDER", [wrap(d) for d in pipeline.ORDER])
    monkeypatch.setattr(engine, "load_subjects", subjects_fail)
    db = tmp_path / "first.duckdb"
    with pytest.raises(IngestError, match="stopped on purpose"):
        ingest_study(STUDY, db)
    # the grades (they read nothing but labs) started before the rest of the load was done, and had ended
    # before the failed load returned; nothing of the load is left
    assert events[0] == "start ctcae_lab_grades" and "subjects" in events
    assert events.count("end ctcae_lab_grades") == 1 and not any(e.startswith("start crs") for e in events)
    assert not db.exists() and not list(tmp_path.glob("first.duckdb.loading*"))
    assert not list(tmp_path.glob("first.review*"))


def test_the_dlt_screening_does_not_wait_for_the_lab_screens_around_the_episodes():
    writer = {t: d.name for d in pipeline.ORDER for t in d.written_names}

    def needs(name: str) -> set[str]:
        return {writer[r] for r in pipeline.derivation(name).reads if r in writer and writer[r] != name}

    # the critical path of a load is crs_icans -> dlt_screening -> stopping_rules: the biomarker peaks and the
    # IEC-HS screen run beside the DLT screening, not before it
    assert needs("dlt_screening") == {"ctcae_lab_grades", "crs_icans", "deaths"}
    assert needs("episode_lab_screens") == {"crs_icans"}
    assert "episode_lab_screens" not in needs("stopping_rules")


@pytest.mark.parametrize("study", ["car_t_cd56", "car_itnk"])
def test_every_derivation_declares_the_derived_tables_it_reads(study, tmp_path_factory):
    """Side by side, a derivation that read a derived table it does not declare could read it half-built: here
    each runs on a database holding no derived table but those it declares, and must not miss one."""
    folder = tmp_path_factory.mktemp(f"reads_{study}")
    full = folder / "full.duckdb"
    r = ingest_study(ROOT / "sample_data" / study, full)
    config = load_study_config(ROOT / "sample_data" / study)
    for d in pipeline.ORDER:
        db = folder / f"{d.name}.duckdb"
        shutil.copy(full, db)
        con = duckdb.connect(str(db))
        try:
            for t in schema.DERIVED_TABLES:
                if t.name not in d.reads and t.name not in d.written_names:
                    con.execute(f"DROP {'VIEW' if t.is_view else 'TABLE'} IF EXISTS {t.name}")
            before = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in d.written_names}
            try:
                d(con, r.studyid, r.data_cut, config)
            except duckdb.CatalogException as exc:
                pytest.fail(f"{d.name} reads a table it does not declare: {exc}")
            # the same rows as in the full load: nothing it reads was missing
            assert {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in d.written_names} == before, d.name
        finally:
            con.close()


def test_derivations_reading_only_delivered_domains_start_before_the_subjects_are_built_and_read_none_of_them(
        tmp_path, monkeypatch):
    """Once every domain is in, the load commits and starts the derivations that read none of the tables it
    still writes (the subjects, the assessments built from SDTM): they run beside the rest of the load, so each
    must give the rows it gives on the finished file, without reading one of those tables."""
    from safety.ingest import WRITTEN_AFTER_DOMAINS, engine
    events: list[str] = []
    real_start, real_subjects = pipeline.start, engine.load_subjects

    def start(con, chosen, *a, **kw):
        events.extend(f"start {d.name}" for d in chosen)
        return real_start(con, chosen, *a, **kw)

    def load_subjects(*a, **kw):
        events.append("subjects")
        return real_subjects(*a, **kw)

    monkeypatch.setattr(pipeline, "start", start)
    monkeypatch.setattr(engine, "load_subjects", load_subjects)
    study = ROOT / "sample_data" / "car_itnk"
    db = tmp_path / "itnk.duckdb"
    r = ingest_study(study, db)
    before_subjects = events[:events.index("subjects")]
    # the secondary malignancies read the subjects' diagnosis (the disease under study is no new malignancy)
    assert before_subjects == ["start ctcae_lab_grades", "start ae_grade_checks", "start cellular_kinetics"]
    early = [pipeline.derivation(e.split()[1]) for e in before_subjects]
    assert all(not set(d.reads) & WRITTEN_AFTER_DOMAINS for d in early)

    # on the finished file without those tables, each gives the same rows as in the load (the sample has
    # CAR-T expansion data, so there are rows to compare)
    con = duckdb.connect(str(db))
    try:
        loaded = {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for d in early for t in d.written_names}
        assert len(loaded["cellular_kinetics"]) == 30
        for t in sorted(WRITTEN_AFTER_DOMAINS):
            con.execute(f"DROP TABLE {t}")
        config = load_study_config(study)
        for d in early:
            try:
                d(con, r.studyid, r.data_cut, config)
            except duckdb.CatalogException as exc:
                pytest.fail(f"{d.name} reads a table the load writes after it started: {exc}")
        assert {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in loaded} == loaded
    finally:
        con.close()


def test_a_derivation_on_a_loaded_file_changes_no_catalog_entry_and_creates_what_a_file_lacks(loaded, tmp_path):
    """A load creates every table first; a derivation then only deletes and inserts rows. An open transaction that
    had created (even ``IF NOT EXISTS``) would make DuckDB refuse a checkpoint and skip its automatic one."""
    from safety.core.sql import reset_derived
    db, studyid, cut = loaded
    shutil.copy(db, tmp_path / "x.duckdb")
    con = duckdb.connect(str(tmp_path / "x.duckdb"))
    try:
        deriving, other = con.cursor(), con.cursor()
        deriving.execute("BEGIN TRANSACTION")
        reset_derived(deriving, schema.DERIVED_TABLES, studyid, cut)
        other.execute("CHECKPOINT")  # "Cannot CHECKPOINT: there are other write transactions active" otherwise
        deriving.execute("ROLLBACK")
    finally:
        con.close()

    fresh = duckdb.connect(str(tmp_path / "fresh.duckdb"))
    try:
        reset_derived(fresh, schema.LAB_GRADE_TABLES, studyid, cut)
        have = {r[0] for r in fresh.execute("SELECT table_name FROM duckdb_tables() UNION ALL "
                                            "SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
        assert have == {"lab_toxicity_records", "lab_toxicity_terms", "lab_toxicity_reasons", "lab_toxicity"}
    finally:
        fresh.close()

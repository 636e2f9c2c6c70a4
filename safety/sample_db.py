"""The sample database: every study folder under sample_data/ ingested once per data cut in its study.yaml."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import duckdb
import yaml

from safety.core.config import load_study_config, stored_config
from safety.ingest.snapshot import lock_path

DEFAULT_SAMPLE_ROOT = Path(__file__).resolve().parents[1] / "sample_data"


def study_folders(sample_root: Path) -> list[Path]:
    """Folders under ``sample_root`` holding a study.yaml and a DM dataset, sorted by name."""
    out = []
    for p in sorted(Path(sample_root).iterdir()) if Path(sample_root).is_dir() else []:
        if p.is_dir() and ((p / "study.yaml").exists() or (p / "study.yml").exists()) \
                and any(f.stem.lower() == "dm" for f in p.iterdir() if f.is_file()):
            out.append(p)
    return out


def build_sample_database(db_path, sample_root=None) -> list[tuple[str, str]]:
    """Ingest every sample study once per listed data cut (oldest first; one load without a cut when none).

    Returns the (study folder, data cut) pairs loaded. The review store goes beside ``db_path``.
    """
    from safety.ingest import ingest_study

    root = Path(sample_root) if sample_root is not None else DEFAULT_SAMPLE_ROOT
    decisions = _demo_decisions(root)
    loaded = []
    for folder in study_folders(root):
        cuts = sorted(load_study_config(folder)["data_cuts"]) or [None]
        for cut in cuts:
            r = ingest_study(folder, db_path, cutoff=cut)
            loaded.append((folder.name, r.data_cut.isoformat()))
            batch = decisions.get((r.studyid, r.data_cut.isoformat()))
            if batch:
                _apply_decisions(db_path, r.studyid, r.data_cut, batch)
    return loaded


def _demo_decisions(root: Path) -> dict[tuple[str, str], dict]:
    """The demo committee's decisions (sample_data/committee_decisions.yaml), keyed by (studyid, cut)."""
    path = root / "committee_decisions.yaml"
    if not path.exists():
        return {}
    entries = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    return {(e["studyid"], str(e["data_cut"])): e for e in entries}


def _apply_decisions(db_path, studyid: str, data_cut, batch: dict) -> None:
    """Record the demo decisions through the same checked path the DLT review page uses, then refresh
    the stored stopping-rule status so it reflects them, as the next load would."""
    from safety.access.reader import Scope, StudyReader, connect
    from safety.derive.dlt.decisions import record_decision
    from safety.derive.dlt.stopping import derive_stopping_status
    from safety.review.store import ReviewStore, default_review_path

    store = ReviewStore(default_review_path(db_path))
    con = connect(db_path, read_only=True)
    try:
        reader = StudyReader(con, Scope(studyid, data_cut))
        for d in batch["decisions"]:
            record_decision(store, reader, d["event_key"], d["decision"], d["rationale"], batch["reviewer"])
    finally:
        con.close()
    con = duckdb.connect(str(db_path))
    try:
        stored = con.execute("SELECT config_json FROM studies WHERE studyid = $s AND data_cut = $c",
                             {"s": studyid, "c": data_cut}).fetchone()[0]
        derive_stopping_status(con, studyid, data_cut, stored_config(stored), review_store=store)
    finally:
        con.close()


def ensure_sample_database(db_path, sample_root=None) -> Path:
    """Build the sample database at ``db_path`` unless it exists. Built in a temporary file and renamed,
    so a half-built database never exists under the final name."""
    db_path = Path(db_path)
    if db_path.exists():
        return db_path
    db_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=db_path.stem + ".", suffix=".building.duckdb", dir=db_path.parent)
    os.close(fd)
    os.unlink(tmp)  # DuckDB wants to create the file itself
    tmp = Path(tmp)
    try:
        build_sample_database(tmp, sample_root)
        from safety.review.store import default_review_path
        tmp_review, final_review = default_review_path(tmp), default_review_path(db_path)
        if tmp_review.exists() and not final_review.exists():
            os.replace(tmp_review, final_review)
        os.replace(tmp, db_path)
    finally:
        for p in (tmp, Path(str(tmp) + ".wal"), lock_path(tmp)):  # the lock of loads into this temporary file
            if p.exists():
                p.unlink()
        from safety.review.store import default_review_path
        if default_review_path(tmp).exists():
            default_review_path(tmp).unlink()
    return db_path

"""Ingest: a study folder of SDTM datasets (+ crs/icans assessments, study.yaml) -> one snapshot in DuckDB.

``ingest_study`` loads (or reloads) one (studyid, data_cut) snapshot and runs every derivation for it on a
private copy of the database, switches the copy in atomically (:mod:`safety.ingest.snapshot`), then appends a
'data_load' entry to the review store's audit log. See docs/input-format.md.
"""
from __future__ import annotations

import csv
import datetime as dt
import getpass
import json
import sys
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from safety import __version__, schema
from safety.core.config import ConfigError, load_study_config, settings_changed_note, settings_file
from safety.core.files import not_a_duckdb_file, unwritable
from safety.core.sql import existing, insert_rows
from safety.core.vocabulary import dropped_domains_note
from safety.ingest import engine, sdtm_domains, snapshot
from safety.ingest.connection import connect_load, skip_vacuum
from safety.ingest.sdtm_assessments import build_sdtm_assessments
from safety.ingest.settings_check import dose_levels_not_ordered, unmatched_settings
from safety.ingest.domains import ALL_DOMAINS, OPTIONAL_DOMAINS, ORDER, SPECS
from safety.ingest.errors import IngestError
from safety.ingest.readers import StagedFile, detect_domain, discover, file_error, row_counts, stage, unread_files
from safety.ingest.sqlmacros import install as install_macros
from safety.review.store import ReviewStore, default_review_path, not_a_review_store

__all__ = ["ingest_study", "IngestError", "LoadResult", "FileCount"]

LOADERS = {**engine.LOADERS, **sdtm_domains.LOADERS}
# Domain tables the load still writes after its domains are in: the assessment rows built from SDTM, and the
# subjects, whose last-known-alive date reads them.
WRITTEN_AFTER_DOMAINS = frozenset({"crs_assessments", "icans_assessments", "subjects"})


@dataclass
class FileCount:
    """What happened to one delivered file. rows_read = rows_loaded + rows_quarantined + rows_after_cutoff."""
    source_file: str
    domain: str
    file_format: str
    sha256: str
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    rows_after_cutoff: int
    note: str = ""  # how the file was read where not exactly as delivered (load_log.notes)


@dataclass
class LoadResult:
    """The outcome of one load."""
    studyid: str
    data_cut: dt.date
    load_id: str
    files: list[FileCount] = field(default_factory=list)
    quarantined: int = 0
    skipped_files: list[str] = field(default_factory=list)  # data files of domains celltox does not read
    unread_files: list[str] = field(default_factory=list)  # files in a format celltox does not read (ae.txt)
    notes: list[str] = field(default_factory=list)  # '<file>: how it was read', e.g. not UTF-8
    domains_present: list[str] = field(default_factory=list)
    domains_missing: list[str] = field(default_factory=list)
    derivations: list[str] = field(default_factory=list)
    # rows built from SDTM for subjects without celltox file rows: {'crs_assessments': n, 'icans_assessments': n}
    built_from_sdtm: dict[str, int] = field(default_factory=dict)


def _parse_cutoff(cutoff) -> dt.date | None:
    """The data cut given, refused when it is no date or lies after today: a future cut (a typing error for the
    year) would become the study's latest snapshot, the one the app and an export show by default."""
    if cutoff is None or isinstance(cutoff, dt.date):
        cut = cutoff.date() if isinstance(cutoff, dt.datetime) else cutoff
    else:
        try:
            cut = dt.date.fromisoformat(str(cutoff).strip())
        except ValueError:
            raise IngestError(f"--cutoff: '{cutoff}' is not a date YYYY-MM-DD") from None
    today = dt.date.today()
    if cut is not None and cut > today:
        raise IngestError(f"--cutoff: {cut.isoformat()} is after today ({today.isoformat()}): the committee cannot "
                          "have seen data of a day to come (a typing error?)")
    return cut


def _studyid(con, dm_files: list[StagedFile], config: dict, study_dir: Path) -> tuple[str, tuple[str, ...]]:
    """The study's id (study.yaml's, else DM's STUDYID, else the folder's name) and the STUDYIDs a record may
    carry: the study's, and DM's too when study.yaml names the study otherwise (a record of DM's study is one of
    this study); none when neither DM nor study.yaml names the study."""
    ids = set()
    for f in dm_files:
        if "STUDYID" in f.columns:
            ids |= {r[0] for r in con.execute(
                f"SELECT DISTINCT ct_nz(STUDYID) FROM {f.relation} WHERE ct_nz(STUDYID) IS NOT NULL", f.params).fetchall()}
    if config.get("studyid"):
        if ids and config["studyid"] not in ids:  # loaded under the settings' id; the files say another
            dm_files[0].add_note(f"STUDYID {', '.join(sorted(ids)[:3])} in the file, {config['studyid']} in "
                                 f"study.yaml: loaded as {config['studyid']}")
            return config["studyid"], (config["studyid"], *sorted(ids))
        return config["studyid"], (config["studyid"],)
    if len(ids) > 1:
        raise IngestError(f"{dm_files[0].name}: several STUDYID values ({', '.join(sorted(ids)[:5])}); "
                          "deliver one study per folder or set studyid in study.yaml")
    if not ids:
        return study_dir.name, ()
    studyid = ids.pop()
    return studyid, (studyid,)


def _latest_date(con) -> dt.date:
    """The latest valid date in the delivery (dates after today are typing errors and do not move the cut)."""
    d = con.execute("SELECT max(lo) FILTER (WHERE lo <= current_date) FROM _dates").fetchone()[0]
    return d or dt.datetime.now(dt.timezone.utc).date()


def _delete_snapshot(con, studyid: str, data_cut: dt.date) -> int:
    """Delete the rows of (studyid, data_cut) from every table the file has (none in a new file: a first load
    skips some sixty DELETEs); returns how many rows were deleted."""
    tables = schema.all_tables()
    present = existing(con, [t.name for t in tables])
    deleted = 0
    for t in tables:  # registry order: lab_toxicity_records before the terms it is deleted by
        sql = t.delete_snapshot_sql()
        if t.name in present and sql:
            deleted += con.execute(sql, {"studyid": studyid, "data_cut": data_cut}).fetchone()[0]
    return deleted


def ingest_study(study_dir, db_path, cutoff: dt.date | str | None = None, review_store_path=None,
                 run_derivations: bool = True) -> LoadResult:
    """Load (or reload) one study folder into the DuckDB file at ``db_path`` as the snapshot (studyid, data_cut).

    data_cut is ``cutoff`` or, when none, the latest date in the delivery. Raises :class:`IngestError` with a
    one-line message naming the file for unusable input (no DM, unreadable file, no USUBJID, bad study.yaml).
    """
    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        raise IngestError(f"{study_dir}: not a folder")
    cut_given = _parse_cutoff(cutoff)
    try:
        config = load_study_config(study_dir)
    except ConfigError as exc:
        raise IngestError(str(exc)) from None

    db_path = Path(db_path)
    if not db_path.name:  # '' or '.': a folder, not a file
        raise IngestError(f"--db {str(db_path)!r}: give the database file, e.g. trial.duckdb")
    if db_path.is_symlink():  # the load replaces the file the link names, not the link (and locks it there)
        db_path = db_path.resolve()
    _check_paths(db_path, review_store_path, config)
    files = discover(study_dir)
    _refuse_one_dataset_twice(files)
    # The load and its derivations run on a private copy that replaces the database only when all of it is
    # done (safety/ingest/snapshot.py): a failure or a kill leaves the previous snapshot as it was.
    with snapshot.new_snapshot(db_path) as work_path:
        new_file = not work_path.exists()  # a first load: the copy is made only of a database that exists
        try:
            con = connect_load(work_path)
        except duckdb.Error as exc:
            raise IngestError(f"{db_path}: cannot create the new snapshot ({' '.join(str(exc).split())[:200]})") from None
        try:
            outdated = {} if new_file else schema.missing_columns(con)
            if outdated and not existing(con, ("studies",)):  # another program's tables, not celltox's of old
                raise IngestError(f"{db_path}: not a celltox database (it has no studies table, and its "
                                  f"{', '.join(sorted(outdated))} table is not celltox's); give the database the "
                                  "study's cuts are in, or a new file name")
            if outdated:  # a load would stop half-way on the first column the file lacks
                raise IngestError(f"{db_path}: written by an earlier version of celltox ("
                                  + "; ".join(f"table {t} lacks {', '.join(c)}" for t, c in sorted(outdated.items()))
                                  + "): load the study into a new database file (--db NEW.duckdb)")
            result = _ingest(con, study_dir, db_path, files, config, cut_given, review_store_path, run_derivations,
                             new_file)
            con.execute("CHECKPOINT")
        except duckdb.Error as exc:
            raise file_error(con, files, exc) from None
        finally:
            con.close()
    _audit(db_path, review_store_path, result)
    return result


def _ingest(con, study_dir, db_path, files, config, cut_given, review_store_path, run_derivations,
            new_file: bool = False) -> LoadResult:
    install_macros(con)
    engine.install_reference_tables(con)
    for f in files:
        stage(con, f)
        detect_domain(con, f)
    read = row_counts(con, files)
    skipped = [f.name for f in files if f.domain is None]
    files = [f for f in files if f.domain is not None]
    by_domain: dict[str, list[StagedFile]] = {}
    supp: dict[str, list[StagedFile]] = {}
    for f in files:
        if f.domain == "SUPP":
            supp.setdefault(f.supp_parent, []).append(f)
        else:
            by_domain.setdefault(f.domain, []).append(f)
    if "DM" not in by_domain:
        raise IngestError(f"{study_dir.name}: no DM dataset (expected dm.xpt, dm.sas7bdat, dm.csv, dm.parquet or dm.xlsx)")
    for f in by_domain["DM"]:
        if "USUBJID" not in f.columns:
            raise IngestError(f"{f.name}: no USUBJID column")
    if not sum(read[f.index] for f in by_domain["DM"]):
        # every other record would be quarantined as "not in DM" and the cut would show no subject
        raise IngestError(f"{', '.join(f.name for f in by_domain['DM'])}: no DM records (only the header): "
                          "a delivery without its subjects is not loaded")
    for parent, sfiles in supp.items():
        if parent not in by_domain or parent not in SPECS:
            raise IngestError(f"{sfiles[0].name}: qualifiers for domain {parent}, which the delivery does not contain")

    studyid, studyids = _studyid(con, by_domain["DM"], config, study_dir)
    engine.install_date_lookup(con, by_domain)
    data_cut = cut_given or _latest_date(con)
    loaded_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    load_id = f"{studyid}:{data_cut.isoformat()}:{loaded_at.strftime('%Y%m%dT%H%M%S')}:{uuid.uuid4().hex[:8]}"
    ctx = engine.Ctx(con, studyid, data_cut, load_id, config, studyids=studyids)
    if run_derivations:  # their libraries (NumPy, scipy.special) import while DuckDB runs the load's SQL
        threading.Thread(target=_import_derivations, name="celltox-import-derivations", daemon=True).start()

    # LB right after day 0 is known (DM, EX): the labs read nothing of DS, CM or AE, and the derivations that read
    # nothing but labs (the lab grades) start once it is committed, beside the rest of the load. The load is
    # still all-or-nothing: it goes into a private copy that is switched in only when all of it has succeeded.
    order = [d for d in ORDER if d != "LB"]
    order.insert(order.index("EX") + 1, "LB")
    store, store_is_new, early = None, False, {}
    con.execute("BEGIN TRANSACTION")
    try:
        if run_derivations:  # the derivations started during the load read the committee's decisions
            store_is_new = not Path(review_store_path or default_review_path(db_path)).exists()
            store = _review_store(db_path, review_store_path)
        schema.create_schema(con)  # first: it lays out anew the tables an earlier celltox laid out otherwise
        # a new file holds no earlier snapshot; a load that deleted nothing has nothing for the vacuum to reclaim
        if new_file or not _delete_snapshot(con, studyid, data_cut):
            skip_vacuum(con)
        cols: dict[str, engine.Cols] = {}
        supp_info: dict[str, engine.SuppInfo | None] = {}
        for dom in order:
            if dom not in by_domain:
                continue
            spec = SPECS[dom]
            supp_info[dom] = engine.prepare_supp(ctx, dom, supp.get(dom, []), by_domain[dom])
            c = engine.build_typed(ctx, spec, by_domain[dom], supp_info[dom])
            cols[dom] = c
            engine.mark_supp_by_parent(ctx, dom, supp_info[dom], c)
            if dom == "DM":
                engine.insert_dm_ids(ctx, c)
                if "EX" not in by_domain:
                    engine.set_infusions(ctx, c, False, None)
                    engine.note_day0_imputed(ctx, by_domain["DM"], [])
            elif dom == "EX":
                engine.add_is_car(ctx, c)
                engine.set_infusions(ctx, cols["DM"], True, c)
                engine.note_day0_imputed(ctx, by_domain["DM"], by_domain["EX"])
            if dom != "DM":
                LOADERS[dom](ctx, c, supp_info[dom])
            if dom == "RS":
                engine.note_rs_not_read(ctx, by_domain[dom])
            if dom == "DS" or (dom == "EX" and "DS" not in by_domain):
                engine.set_deaths(ctx, cols["DM"])
            if dom == "CM" or (dom == "EX" and "CM" not in by_domain):
                engine.set_lymphodepletion(ctx)
            if dom == "AE":
                engine.set_ae_deaths(ctx)
            engine.count_and_quarantine(ctx, dom, f"_t_{dom}", by_domain[dom], c)
            if supp.get(dom):
                engine.count_and_quarantine(ctx, dom, f"_t_SUPP{dom}", supp[dom])
            engine.drop_staging(ctx, dom)
            if dom == "LB" and run_derivations:
                early = _commit_and_start(con, {"labs"}, early, studyid, data_cut, config, store)
        if "EX" not in by_domain and "DS" not in by_domain:
            engine.set_deaths(ctx, cols["DM"])
        if "EX" not in by_domain and "CM" not in by_domain:
            engine.set_lymphodepletion(ctx)
        if run_derivations:
            # every domain's table is final now but those written below: the derivations that read none of
            # those (second primary malignancies, cellular kinetics) start beside the rest of the load
            early = _commit_and_start(con, {s.table for s in SPECS.values()} - WRITTEN_AFTER_DOMAINS, early,
                                      studyid, data_cut, config, store)
        # CRS/ICANS assessments from VS, CM, PR, QS, FA, CE and AE for subjects without celltox file rows; before
        # subjects, whose last-known-alive date reads the assessment tables
        built = build_sdtm_assessments(ctx, by_domain.get("QS", []))
        engine.load_subjects(ctx, cols["DM"], supp_info.get("DM"))
        engine.note_undated_deaths(ctx, by_domain["DM"])

        unordered = dose_levels_not_ordered(con, studyid, data_cut, config)
        if unordered:  # refused, not warned: the escalation and elimination decisions read the order
            listed = ", ".join(config["stopping_rule"]["dose_order"])
            raise IngestError(f"{settings_file(study_dir)}: 'stopping_rule.dose_order' ({listed}) "
                              f"does not list the dose level{'s' if len(unordered) > 1 else ''} "
                              f"{', '.join(unordered)} of infused subjects (subjects.dose_level); list every dose "
                              "level from lowest to highest as the data write it, or leave the key out")
        for dom, notes in unmatched_settings(con, studyid, data_cut, config, set(by_domain)).items():
            for note in notes:  # kept with the file's other notes (load_log.notes, the Data quality page)
                by_domain[dom][0].add_note(note)
        result = LoadResult(studyid=studyid, data_cut=data_cut, load_id=load_id, skipped_files=skipped,
                            unread_files=unread_files(study_dir), built_from_sdtm=built,
                            notes=[f"{f.name}: {f.note}" for f in files if f.note])
        for f in files:
            loaded, quar, after = ctx.counts.get(f.index, [0, 0, 0])
            if loaded + quar + after != read[f.index]:
                raise IngestError(f"{f.name}: internal reconciliation failed ({read[f.index]} read, "
                                  f"{loaded} loaded, {quar} quarantined, {after} after the cut)")
            dom = f"SUPP{f.supp_parent}" if f.domain == "SUPP" else f.domain
            result.files.append(FileCount(f.name, dom, f.file_format, f.sha256, read[f.index], loaded, quar, after,
                                          f.note))
        result.quarantined = sum(fc.rows_quarantined for fc in result.files)
        result.domains_present = [d for d in ALL_DOMAINS if d in by_domain]
        result.domains_missing = [d for d in OPTIONAL_DOMAINS if d not in by_domain]
        earlier = con.execute("""SELECT data_cut, domains_present, config_json FROM studies
                                 WHERE studyid = $s AND data_cut < $c
                                 ORDER BY data_cut DESC LIMIT 1""", {"s": studyid, "c": data_cut}).fetchone()
        config_json = json.dumps(config, sort_keys=True, default=str)
        dropped = dropped_domains_note(earlier[1], list(by_domain), earlier[0]) if earlier else None
        moved = settings_changed_note(earlier[2], config_json, earlier[0]) if earlier else None
        result.notes += [n for n in (dropped, moved) if n]
        insert_rows(
            con, "load_log",
            [(studyid, data_cut, load_id, fc.domain, fc.source_file, fc.file_format, fc.sha256, fc.rows_read,
              fc.rows_loaded, fc.rows_quarantined, fc.rows_after_cutoff, cut_given, loaded_at, __version__,
              fc.note or None)
             for fc in result.files],
            ("VARCHAR", "DATE", "VARCHAR", "VARCHAR", "VARCHAR", "VARCHAR", "VARCHAR", "BIGINT", "BIGINT", "BIGINT",
             "BIGINT", "DATE", "TIMESTAMP", "VARCHAR", "VARCHAR"))
        con.execute("""INSERT INTO studies BY NAME SELECT $s AS studyid, $c AS data_cut, $title AS title,
            $product AS product, $ptype AS product_type, $ctcae AS ctcae_version, $crs AS crs_grading,
            $icans AS icans_grading, $present AS domains_present, $missing AS domains_missing, $cfg AS config_json,
            $src AS source_dir, $at AS loaded_at, $lid AS load_id, $ver AS celltox_version""",
                    {"s": studyid, "c": data_cut, "title": config.get("title"), "product": config.get("product"),
                     "ptype": config.get("product_type"), "ctcae": config.get("ctcae_version"),
                     "crs": config.get("crs_grading"), "icans": config.get("icans_grading"),
                     "present": result.domains_present, "missing": result.domains_missing,
                     "cfg": config_json, "src": str(study_dir.resolve()),
                     "at": loaded_at, "lid": load_id, "ver": __version__})
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        if early:  # they use this connection: they end before it is closed
            from safety.derive import pipeline

            pipeline.finish(early)
        if store_is_new:  # a failed first load leaves no review store behind either
            store.path.unlink(missing_ok=True)
        raise

    if run_derivations:
        from safety.derive import pipeline

        result.derivations = pipeline.run_derivations(con, studyid, data_cut, config, review_store=store,
                                                      started=early)
    return result


def _refuse_one_dataset_twice(files: list) -> None:
    """ae.csv beside ae.xpt is one dataset delivered twice, perhaps two versions of it: which one is the delivery
    is the sender's to say. Loaded, the first by name would be kept and the other's rows quarantined as duplicates
    (or, with no --SEQ, loaded twice)."""
    seen: dict[str, str] = {}
    for f in files:
        first = seen.setdefault(f.path.stem.lower(), f.name)
        if first != f.name:
            raise IngestError(f"{first} and {f.name} are the same dataset in two formats; deliver one of them")


def _commit_and_start(con, final_tables: set[str], early: dict, studyid: str, data_cut: dt.date, config: dict,
                      store) -> dict:
    """Commit the load so far and start the derivations that read nothing but ``final_tables`` and are not in
    ``early`` yet, beside the rest of the load; returns ``early`` with them. The load goes on in a new
    transaction. Still all-or-nothing: the load writes a private copy, switched in only when all of it is done."""
    from safety.derive import pipeline  # here, not at the top: it imports while the load runs

    con.execute("COMMIT")
    con.execute("BEGIN TRANSACTION")
    started = {d.name for d in early.values()}
    ready = [d for d in pipeline.ready_after(final_tables) if d.name not in started]
    return {**early, **pipeline.start(con, ready, studyid, data_cut, config, store)}


def _import_derivations() -> None:
    """Import the derivations and the libraries they use (NumPy and scipy.special; pandas is for pages and a load
    never imports it). Run in a background thread during the load: DuckDB releases Python's lock while it
    executes, so the imports (about 0.2 s) cost a small study's load little.
    A failure here is raised again, in the load, by the same import in ``_ingest``. Meanwhile Python hands its
    lock back within 0.5 ms (not 5 ms) when the load's thread wants it at the end of a statement."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    try:
        import scipy.special  # noqa: F401 - the stopping rules' exact tails

        from safety.derive import pipeline  # noqa: F401
    except Exception:  # noqa: BLE001 - raised again where the load imports it
        pass
    finally:
        sys.setswitchinterval(interval)


def _check_paths(db_path: Path, review_store_path, config: dict) -> None:
    """Refuse at the start, in one line, what would otherwise fail half-way: a database path that is a folder, in a
    folder that does not exist or that cannot be written, a review store that is not one, a study term map the
    grading cannot read."""
    store = Path(review_store_path or default_review_path(db_path))
    for path, what in ((db_path, "database"), (store, "review store")):
        if path.is_dir():
            raise IngestError(f"{path}: a folder, not a {what} file (give a file path, e.g. {path / 'trial.duckdb'})"
                              if what == "database" else f"{path}: a folder, not a {what} file")
        if path.exists() and not path.is_file():  # /dev/null: before the load puts its lock beside it
            raise IngestError(f"{path}: a device or other special file, not a {what} file")
        why = unwritable(path)
        if why:
            raise IngestError(f"{path}: {why}")
        if not path.parent.is_dir():
            raise IngestError(f"{path}: the folder {path.parent} does not exist")
    if db_path.is_file():  # refused before the load takes its lock, so nothing is written beside it
        what = not_a_duckdb_file(db_path)
        if what:
            raise IngestError(f"{db_path}: {what}; give the database the study's cuts are in, or a new file name")
    if store.exists() and (why := not_a_review_store(store)):
        raise IngestError(f"{store}: not a celltox review store ({why})")
    if config.get("lab_terms_path"):
        from safety.derive.grading import rules

        try:
            rules.load_lab_terms(rules.load_rules(str(config.get("ctcae_version") or "5.0")), config["lab_terms_path"])
        except (rules.RuleError, OSError, UnicodeDecodeError, csv.Error) as exc:
            raise IngestError(f"study.yaml lab_terms_path: {' '.join(str(exc).split())}") from None


def _review_store(db_path, review_store_path):
    return ReviewStore(review_store_path or default_review_path(db_path))


def _audit(db_path, review_store_path, result: LoadResult) -> None:
    try:
        user = getpass.getuser() or "cli"
    except Exception:  # no login name (containers): the command line made the load
        user = "cli"
    _review_store(db_path, review_store_path).append_audit(user, "data_load", result.studyid, {
        "data_cut": result.data_cut.isoformat(), "load_id": result.load_id, "db": str(Path(db_path).resolve()),
        "files": [{"file": f.source_file, "sha256": f.sha256, "rows_read": f.rows_read, "rows_loaded": f.rows_loaded,
                   "rows_quarantined": f.rows_quarantined, "rows_after_cutoff": f.rows_after_cutoff}
                  for f in result.files],
        "skipped_files": result.skipped_files, "derivations": result.derivations,
    })

"""Studies delivered in part (DM and AE alone, no study.yaml title, no AE or CRS/ICANS source, no infused subject):
what the packet and the app say where a domain was not delivered or a denominator is empty."""
from __future__ import annotations

import csv
import datetime as dt
import re
import shutil
from pathlib import Path

import duckdb
import pytest

from safety.export import common as c
from safety.ingest import ingest_study

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "car_itnk"
STUDY = "ITNK-B-01"
KEEP = {"ITNK-B-01-01-001", "ITNK-B-01-02-002", "ITNK-B-01-03-003", "ITNK-B-01-03-007", "ITNK-B-01-02-031",
        "ITNK-B-01-01-015"}  # five infused subjects and the one never infused (031)


def _copy_trimmed(dest: Path, files: tuple[str, ...], subjects: set[str]) -> None:
    for name in files:
        with open(SAMPLE / name, newline="") as fh:
            r = csv.DictReader(fh)
            fields, rows = r.fieldnames, [row for row in r if row["USUBJID"] in subjects]
        with open(dest / name, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)


def build_study(tmp: Path, name: str, files: tuple[str, ...], *, subjects: set[str] = KEEP,
                yaml_edit=lambda y: y, with_yaml: bool = True, cutoff: dt.date | None = None) -> Path:
    """Load a part of the sample study (``files`` of ``subjects``) and return the database path."""
    src = tmp / name
    src.mkdir()
    _copy_trimmed(src, files, subjects)
    if with_yaml:
        (src / "study.yaml").write_text(yaml_edit((SAMPLE / "study.yaml").read_text()))
    db = tmp / f"{name}.duckdb"
    ingest_study(src, db, cutoff=cutoff) if cutoff else ingest_study(src, db)
    return db


def _reader(db: Path):
    con = duckdb.connect(str(db), read_only=True)
    cut = con.execute("SELECT max(data_cut) FROM studies").fetchone()[0]
    return c.make_reader(con, STUDY, cut)


@pytest.fixture(scope="module")
def dm_ae_no_yaml(tmp_path_factory):
    return build_study(tmp_path_factory.mktemp("a"), "dm_ae", ("dm.csv", "ae.csv"), with_yaml=False)


@pytest.fixture(scope="module")
def no_title(tmp_path_factory):
    return build_study(tmp_path_factory.mktemp("h"), "no_title", ("dm.csv", "ex.csv", "ae.csv"),
                       yaml_edit=lambda y: re.sub(r"(?m)^title:.*\n", "", y))


@pytest.mark.parametrize("study", ["dm_ae_no_yaml", "no_title"])
def test_a_study_without_a_title_is_named_by_its_id_alone(study, request, tmp_path):
    meta = c.packet_meta(_reader(request.getfixturevalue(study)))
    assert meta.title == ""
    assert meta.header_lines()[0] == "Study: ITNK-B-01"

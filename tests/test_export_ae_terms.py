"""How the AE outputs name and order events the site left uncoded or dated without an infusion: the sample study
ITNK-B-01 (sample_data/car_itnk) loaded through the real ingest with these AEs added.

01-001 (infused 2024-11-20, cohort ESCALATION DL1): AESEQ 102 with no AETERM, AEDECOD or AEBODSYS (grade 1),
AESEQ 103 with AETERM 'Skin rash' only (grade 2). 01-005 (infused 2025-02-19, DL1): AESEQ 101 with AEBODSYS
'Infections and infestations' and no term (grade 3, serious). 02-031, never infused: AEs whose AESEQ order is not
their onset order.
"""
from __future__ import annotations

import csv
import datetime as dt
import shutil
from pathlib import Path

import duckdb
import pytest

from safety.access.reader import Scope, StudyReader
from safety.export.tables import build_table
from safety.ingest import ingest_study

ROOT = Path(__file__).resolve().parents[1]
STUDY, CUT = "ITNK-B-01", dt.date(2026, 9, 30)
U = "ITNK-B-01-01-"
NEVER = "ITNK-B-01-02-031"
INFECTIONS = "Infections and infestations"
# (USUBJID, AESEQ, AETERM, AEDECOD, AEBODSYS, AETOXGR, AESER, AESTDTC, AEENDTC)
ADDED = [
    (U + "001", 102, "", "", "", "1", "N", "2024-11-25", "2024-11-26"),
    (U + "001", 103, "Skin rash", "", "", "2", "N", "2024-11-25", "2024-11-26"),
    (U + "005", 101, "", "", INFECTIONS, "3", "Y", "2025-02-25", "2025-02-27"),
    (NEVER, 101, "Tiredness", "Fatigue", "General disorders and administration site conditions", "2", "N",
     "2026-03-10", "2026-03-15"),
    (NEVER, 102, "Headache", "Headache", "Nervous system disorders", "1", "N", "2026-03-01", "2026-03-02"),
    (NEVER, 103, "Sepsis", "Sepsis", INFECTIONS, "1", "N", "2026-03-20", "2026-03-22"),
    (NEVER, 104, "Sepsis", "Sepsis", INFECTIONS, "2", "N", "2026-03-05", "2026-03-06"),
]


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ae_terms")
    study = folder / "car_itnk"
    shutil.copytree(ROOT / "sample_data" / "car_itnk", study)
    path = study / "ae.csv"
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    columns = list(rows[0])
    for usubjid, seq, term, decod, soc, grade, ser, start, end in ADDED:
        row = dict.fromkeys(columns, "")
        row.update(STUDYID=STUDY, DOMAIN="AE", USUBJID=usubjid, AESEQ=str(seq), AETERM=term, AEDECOD=decod,
                   AEBODSYS=soc, AETOXGR=grade, AESER=ser, AESDTH="N", AEREL="POSSIBLY RELATED",
                   AEOUT="RECOVERED/RESOLVED", AESTDTC=start, AEENDTC=end)
        rows.append(row)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)
    ingest_study(study, folder / "s.duckdb", cutoff=CUT)
    return folder / "s.duckdb"


@pytest.fixture(scope="module")
def reader(db):
    con = duckdb.connect(str(db), read_only=True)
    yield StudyReader(con, Scope(STUDY, CUT))
    con.close()


def _rows(df, soc: str) -> dict[str, list]:
    """The table's rows of one SOC by preferred term: [DL1 column, overall column, worst grade 1, 2, 3 n]."""
    part = df[df["System organ class"] == soc]
    dl1 = next(col for col in df.columns if col.startswith("Cohort ESCALATION DL1") and "grade >= 3" not in col)
    overall = next(col for col in df.columns if col.startswith("Overall (N=30)") and "grade >= 3" not in col)
    worst = [f"Overall worst grade {g} n" for g in (1, 2, 3)] if "Overall worst grade 1 n" in df.columns else []
    return {r["Preferred term"]: [r[dl1], r[overall], *(int(r[w]) for w in worst)] for _, r in part.iterrows()}


def test_an_ae_with_no_term_is_counted_once_in_its_soc_and_under_its_own_pt(reader):
    """The SOC total once counted 01-001 twice (the PT of an AE with neither AETERM nor AEDECOD was NULL, the total's
    marker) and the AE had no PT row; an AE with a SOC and no term inflated that real SOC's total the same way."""
    df = build_table(reader, "ae_by_soc_pt")
    assert _rows(df, "(SOC not coded)") == {
        "Any event in SOC": ["1 (11.1)", "1 (3.3)", 0, 1, 0],
        "Uncoded: SKIN RASH": ["1 (11.1)", "1 (3.3)", 0, 1, 0],
        "Uncoded: (no term)": ["1 (11.1)", "1 (3.3)", 1, 0, 0]}
    # the sample's 12 infused subjects with an infection (2 in DL1), and 01-005; 01-005 once, at grade 3
    infections = _rows(df, INFECTIONS)
    assert infections["Any event in SOC"] == ["3 (33.3)", "13 (43.3)", 3, 7, 3]
    assert infections["Uncoded: (no term)"] == ["1 (11.1)", "1 (3.3)", 0, 0, 1]
    # serious: the sample's 2 (none in DL1), and 01-005
    sae = _rows(build_table(reader, "sae_by_soc_pt"), INFECTIONS)
    assert sae == {"Any event in SOC": ["1 (11.1)", "3 (10.0)"], "Lung infection": ["0", "1 (3.3)"],
                   "Urinary tract infection": ["0", "1 (3.3)"], "Uncoded: (no term)": ["1 (11.1)", "1 (3.3)"]}


def test_the_adverse_events_page_names_an_uncoded_ae_as_the_tables_do(db, tmp_path, monkeypatch):
    """The page dropped an AE with neither AETERM nor AEDECOD from its table (its term was NULL) and named one with
    AETERM only by the raw term ('Skin rash'), not by the tables' PT ('Uncoded: SKIN RASH')."""
    from streamlit.testing.v1 import AppTest
    import streamlit as st

    copy = tmp_path / "app.duckdb"  # the app's own file: the module's connection keeps the other open
    shutil.copyfile(db, copy)
    monkeypatch.setenv("CELLTOX_DB", str(copy))
    monkeypatch.setenv("CELLTOX_AUTH", "off")
    st.cache_data.clear()
    st.cache_resource.clear()
    try:
        at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=120)
        at.run()
        at.switch_page("views/adverse_events.py")
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        table = at.dataframe[0].value
        shown = {(r["aebodsys"], r["aedecod"]): int(r["subjects"]) for _, r in table.iterrows()
                 if r["aedecod"].startswith("Uncoded")}
        assert shown == {("(SOC not coded)", "Uncoded: (no term)"): 1, ("(SOC not coded)", "Uncoded: SKIN RASH"): 1,
                         (INFECTIONS, "Uncoded: (no term)"): 1}
        box = next(s for s in at.selectbox if s.label == "Subjects with the preferred term")
        box.set_value("Uncoded: (no term)").run()
        assert not at.exception, [e.value for e in at.exception]
        listed = next(d.value for d in at.dataframe if "event_key" in d.value.columns)
        assert sorted(listed["event_key"]) == [U + "001/AE/102", U + "005/AE/101"]
    finally:
        st.cache_data.clear()
        st.cache_resource.clear()

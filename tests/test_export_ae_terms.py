"""How the AE outputs name and order events the site left uncoded or dated without an infusion: the sample study
ITNK-B-01 (sample_data/car_itnk) loaded through the real ingest with these AEs added.

01-001 (infused 2024-11-20, cohort ESCALATION DL1): AESEQ 102 with no AETERM, AEDECOD or AEBODSYS (grade 1),
AESEQ 103 with AETERM 'Skin rash' only (grade 2). 01-005 (infused 2025-02-19, DL1): AESEQ 101 with AEBODSYS
'Infections and infestations' and no term (grade 3, serious). 02-031, never infused (so no study day): AEs, lab
values and malignancies in medical history whose sequence numbers are not in the order of their dates.
"""
from __future__ import annotations

import csv
import datetime as dt
import re
import shutil
from pathlib import Path

import duckdb
import pytest

from safety.access.reader import Scope, StudyReader
from safety.export.listings import build_listing
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
    (NEVER, 101, "Tiredness", "Fatigue", "General disorders and administration site conditions", "2", "Y",
     "2026-03-10", "2026-03-15"),
    (NEVER, 102, "Headache", "Headache", "Nervous system disorders", "1", "Y", "2026-03-01", "2026-03-02"),
    # Sepsis has grades 3-5 in CTCAE: both are AE grade checks, and infections (AESI)
    (NEVER, 103, "Sepsis", "Sepsis", INFECTIONS, "1", "N", "2026-03-20", "2026-03-22"),
    (NEVER, 104, "Sepsis", "Sepsis", INFECTIONS, "2", "N", "2026-03-05", "2026-03-06"),
]
# 02-031's neutrophils (10^9/L), by date: 0.2 (grade 4), 2.5, 0.3 (grade 4): two grade >= 3 episodes
NEUT = [(101, "0.3", "2026-08-01"), (102, "0.2", "2026-07-24"), (103, "2.5", "2026-07-28")]
# 02-031's malignancies in medical history (before any infusion, so prior ones)
MH = [(101, "Basal cell carcinoma", "2020-05"), (102, "Prostate cancer", "2015-03")]


def _append(path: Path, added: list[dict]) -> None:
    """Add rows to a delivery's CSV file, every column not given empty."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    columns = list(rows[0])
    rows += [dict.fromkeys(columns, "") | row for row in added]
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ae_terms")
    study = folder / "car_itnk"
    shutil.copytree(ROOT / "sample_data" / "car_itnk", study)
    _append(study / "ae.csv", [
        dict(STUDYID=STUDY, DOMAIN="AE", USUBJID=usubjid, AESEQ=str(seq), AETERM=term, AEDECOD=decod, AEBODSYS=soc,
             AETOXGR=grade, AESER=ser, AESDTH="N", AEREL="POSSIBLY RELATED", AEOUT="RECOVERED/RESOLVED",
             AESTDTC=start, AEENDTC=end)
        for usubjid, seq, term, decod, soc, grade, ser, start, end in ADDED])
    _append(study / "lb.csv", [
        dict(STUDYID=STUDY, DOMAIN="LB", USUBJID=NEVER, LBSEQ=str(seq), LBTESTCD="NEUT", LBTEST="Neutrophils",
             LBCAT="HEMATOLOGY", LBSPEC="BLOOD", LBORRES=value, LBORRESU="10^9/L", LBORNRLO="2", LBORNRHI="7.5",
             LBSTRESC=value, LBSTRESN=value, LBSTRESU="10^9/L", LBSTNRLO="2", LBSTNRHI="7.5", LBDTC=date)
        for seq, value, date in NEUT])
    _append(study / "mh.csv", [
        dict(STUDYID=STUDY, DOMAIN="MH", USUBJID=NEVER, MHSEQ=str(seq), MHTERM=term, MHDECOD=term,
             MHCAT="ONCOLOGY HISTORY", MHSTDTC=start, MHENRTPT="BEFORE")
        for seq, term, start in MH])
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


def _never_infused(df, column: str) -> list:
    return list(df.loc[df["usubjid"] == NEVER, column])


def test_listings_order_the_events_of_a_subject_never_infused_by_date(reader):
    """A subject never infused has no study day (day 0 is the infusion): its rows were in AESEQ (LBSEQ, MHSEQ)
    order, Fatigue on 10 March before Headache on 1 March. They are in the order of their dates, as the listings
    promise ('sorted by subject then onset')."""
    ae = build_listing(reader, "ae")
    assert _never_infused(ae, "aeseq") == [102, 104, 101, 103]
    assert [str(d) for d in _never_infused(ae, "onset_date")] == ["2026-03-01", "2026-03-05", "2026-03-10",
                                                                  "2026-03-20"]
    assert _never_infused(build_listing(reader, "sae"), "aeseq") == [102, 101]
    assert _never_infused(build_listing(reader, "aesi"), "event_key") == [NEVER + "/AE/104", NEVER + "/AE/103"]
    assert _never_infused(build_listing(reader, "ae_grade_checks"), "event_key") == [NEVER + "/AE/104",
                                                                                     NEVER + "/AE/103"]
    labs = build_listing(reader, "lab_grade3")
    assert _never_infused(labs, "lbseq") == [102, 101] and _never_infused(labs, "grade") == [4, 4]
    # in date order the 2.5 on 28 July ends the first episode; in LBSEQ order both low values were one episode
    episodes = build_listing(reader, "lab_grade3_episodes")
    assert _never_infused(episodes, "worst_value") == [0.2, 0.3]
    assert _never_infused(episodes, "n_values") == [1, 1]
    assert _never_infused(build_listing(reader, "prior_malignancies"), "mhseq") == [102, 101]


def test_the_pdf_ae_listing_names_an_uncoded_ae_and_dates_a_subject_never_infused(reader, tmp_path):
    """ICH E3 12.2.4 names each AE by its terms and gives its onset. The PDF, which shows a few columns of the AE
    listing, printed an AE with no preferred term with no name at all ('103 5 6 2') and a subject never infused with
    no timing ('102 Headache 2'). The CSV, XLSX and RTF files keep their columns and values (an interface)."""
    import openpyxl
    import pypdf
    from safety.export.common import label
    from safety.export.csv_writer import read_export_csv
    from safety.export.listings import AE_COLUMNS
    from safety.export.packet import write_outputs

    at = dt.datetime(2026, 10, 1, 8, 0, tzinfo=dt.timezone.utc)
    paths = write_outputs(reader, tmp_path / "out", formats=("csv", "xlsx", "rtf", "pdf"), only=["ae"],
                          generated_at=at, figures=False)
    pdf = next(p for p in paths if p.suffix == ".pdf")
    text = " ".join(" ".join(p.extract_text() for p in pypdf.PdfReader(pdf).pages).split())
    text = re.sub(r"(?<=[-/]) ", "", text)  # a cell's text wrapped after a hyphen or slash, as one line
    # AE seq, preferred term, onset day, end day, duration
    assert "103 Uncoded: SKIN RASH 5 6 2" in text and "102 Uncoded: (no term) 5 6 2" in text
    assert "102 Headache 2026-03-01 2026-03-02 2" in text and "101 Fatigue 2026-03-10 2026-03-15 6" in text
    assert ("PDF only: an AE without a preferred term is named as the SOC/PT tables count it, 'Uncoded: ' and its "
            "verbatim term in upper case") in text
    assert ("PDF only: an AE of a subject never infused has no study day (day 0 is the infusion); its onset and end "
            "dates stand in the onset and end day columns.") in text
    csv_ae = read_export_csv(next(p for p in paths if p.suffix == ".csv"))
    assert list(csv_ae.columns) == AE_COLUMNS
    rash = csv_ae[csv_ae["event_key"] == U + "001/AE/103"].iloc[0]
    assert (rash["verbatim_term"], rash["preferred_term"]) == ("Skin rash", "")
    headache = csv_ae[csv_ae["event_key"] == NEVER + "/AE/102"].iloc[0]
    assert (headache["onset_date"], headache["onset_day"]) == ("2026-03-01", "")
    sheet = openpyxl.load_workbook(next(p for p in paths if p.suffix == ".xlsx"))["ae"]
    assert [c.value for c in sheet[6]] == [label(c) for c in AE_COLUMNS]
    rtf = next(p for p in paths if p.suffix == ".rtf").read_text()
    assert "Uncoded" not in rtf and "Skin rash\\cell" in rtf


def test_the_pdf_and_the_tables_name_an_ae_by_one_rule(db):
    """safety.core.vocabulary.ae_pt_label (the PDF listing) and ae_pt_sql (the tables, the page) give every AE of the
    study, and a few more spellings, the same name."""
    from safety.core.vocabulary import ae_pt_label, ae_pt_sql

    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{db}' AS s (READ_ONLY)")
        rows = con.execute(f"SELECT aedecod, aeterm, {ae_pt_sql()} FROM s.adverse_events UNION ALL "
                           f"SELECT d, t, {ae_pt_sql('d', 't')} FROM (VALUES (NULL, 'Fièvre ≥ 38 °C'), "
                           f"('Pyrexia', 'fever'), (NULL, 'rash, itchy')) v(d, t)").fetchall()
    finally:
        con.close()
    assert ("Pyrexia", "fever", "Pyrexia") in rows
    assert (None, "Fièvre ≥ 38 °C", "Uncoded: FIÈVRE ≥ 38 °C") in rows and (None, None, "Uncoded: (no term)") in rows
    assert [ae_pt_label(d, t) for d, t, _ in rows] == [name for _, _, name in rows]

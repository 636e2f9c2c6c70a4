"""Hard input: every row is loaded or quarantined with its reason, or the file is refused in one line
`error: <file>: <problem>` with exit 2. Never a traceback, never a silent loss."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from safety.ingest import IngestError, ingest_study
from test_ingest_fixtures import AE, DM, DOMAINS, LB, SUPPAE, make_study

ROOT = Path(__file__).resolve().parents[1]


def q(db, sql, params=None):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.sql(sql, params=params or {}).to_arrow_table().to_pandas()
    finally:
        con.close()


def cli(study, db):
    return subprocess.run([sys.executable, "-m", "safety", "ingest", str(study), "--db", str(db), "--no-derivations"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def big_lb(n: int = 13176) -> pd.DataFrame:
    """n lab rows (the size of the delivery where a ragged line used to hide the file's columns)."""
    base = LB.iloc[[0, 3]]  # BILI and ALT of S-001, both load
    df = pd.concat([base] * (n // 2), ignore_index=True)
    df["LBSEQ"] = range(1, len(df) + 1)
    return df


def reconciles(db) -> None:
    log = q(db, "SELECT source_file, rows_read, rows_loaded, rows_quarantined, rows_after_cutoff FROM load_log")
    assert (log.rows_read == log.rows_loaded + log.rows_quarantined + log.rows_after_cutoff).all()
    per_file = q(db, "SELECT source_file, count(*) AS n FROM quarantine GROUP BY ALL")
    merged = log.merge(per_file, on="source_file", how="left").fillna({"n": 0})
    assert (merged.rows_quarantined == merged.n).all()


# -- CSV ---------------------------------------------------------------------------------------------

def test_one_ragged_line_in_lb_quarantines_that_row_only(tmp_path):
    study = make_study(tmp_path / "s", "csv", domains=dict(DOMAINS, lb=big_lb()))
    lines = (study / "lb.csv").read_text().splitlines()
    lines[5001] += ",EXTRA"  # data row 5001, line 5002 of the file
    (study / "lb.csv").write_text("\n".join(lines) + "\n")
    db = tmp_path / "db.duckdb"
    r = ingest_study(study, db, run_derivations=False)
    lb = next(f for f in r.files if f.source_file == "lb.csv")
    assert (lb.rows_read, lb.rows_loaded, lb.rows_quarantined) == (13176, 13175, 1)
    qr = q(db, "SELECT row_number, usubjid, reason, raw_record FROM quarantine WHERE source_file = 'lb.csv'")
    assert qr.row_number.tolist() == [5001]
    assert qr.reason[0] == "line 5002: 15 fields where the header has 14"
    assert qr.usubjid[0] == "S-001"
    raw = json.loads(qr.raw_record[0])
    assert raw["line"] == 5002 and raw["fields"][-1] == "EXTRA" and len(raw["fields"]) == 15
    reconciles(db)


def test_one_ragged_line_in_dm_quarantines_that_subject_not_the_file(tmp_path):
    study = make_study(tmp_path / "s", "csv")
    lines = (study / "dm.csv").read_text().splitlines()
    lines[2] += ",EXTRA"  # S-002
    (study / "dm.csv").write_text("\n".join(lines) + "\n")
    db = tmp_path / "db.duckdb"
    p = cli(study, db)
    assert p.returncode == 0, p.stderr
    assert "no USUBJID column" not in p.stdout + p.stderr
    assert q(db, "SELECT usubjid FROM subjects ORDER BY 1").usubjid.tolist() == ["S-001", "S-003", "S-004", "S-005"]
    qr = q(db, "SELECT row_number, usubjid, reason FROM quarantine WHERE source_file = 'dm.csv'")
    assert qr.values.tolist() == [[2, "S-002", "line 3: 15 fields where the header has 14"]]
    reasons = q(db, "SELECT reason FROM quarantine WHERE usubjid = 'S-002' AND source_file <> 'dm.csv'").reason
    assert "subject S-002 has a quarantined DM record" in set(reasons)
    assert q(db, "SELECT count(*) n FROM adverse_events WHERE usubjid = 'S-002'").n[0] == 0
    reconciles(db)


def test_a_line_of_one_field_is_quarantined_in_plain_words(tmp_path):
    study = make_study(tmp_path / "s", "csv")
    lines = (study / "dm.csv").read_text().splitlines()
    lines[3] = lines[3].split(",")[0]  # S-003 cut short after its first field
    (study / "dm.csv").write_text("\n".join(lines) + "\n")
    db = tmp_path / "db.duckdb"
    p = cli(study, db)
    assert p.returncode == 0, p.stderr
    qr = q(db, "SELECT row_number, reason FROM quarantine WHERE source_file = 'dm.csv'")
    assert qr.values.tolist() == [[3, "line 4: 1 field where the header has 14"]]
    reconciles(db)


def test_supp_idvar_not_a_parent_column_is_quarantined(tmp_path):
    supp = SUPPAE.assign(IDVAR="AEGRPID")  # AE has no AEGRPID column
    study = make_study(tmp_path / "s", "csv", domains=dict(DOMAINS, suppae=supp))
    db = tmp_path / "db.duckdb"
    p = cli(study, db)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    qr = q(db, "SELECT field, reason FROM quarantine WHERE source_file = 'suppae.csv'")
    assert qr.values.tolist() == [["IDVAR", "IDVAR AEGRPID is not a column of the AE dataset"]] * 3
    assert "supp_aeicu" not in q(db, "SELECT * FROM adverse_events LIMIT 0").columns
    reconciles(db)


@pytest.mark.parametrize("case, expected", [
    ("empty", "error: ae.csv: empty file (no header row)"),
    ("title", "error: ae.csv: line 1 has 2 field(s) where the lines below have 13: a title above the header row? "
              "Remove the lines above the column names"),
    ("plain_title", "error: ae.csv: line 1 is a title ('Listing 16.2.7 Adverse events'), not the header row; "
                    "remove the lines above the column names"),
    ("unbalanced", "error: ae.csv: line 4: unexpected end of data (a quote that is not closed?)"),
])
def test_unusable_ae_file_is_refused_in_one_line(tmp_path, case, expected):
    study = make_study(tmp_path / "s", "csv")
    text = AE.to_csv(index=False)
    if case == "empty":
        (study / "ae.csv").write_text("")
    elif case == "title":
        (study / "ae.csv").write_text("Adverse events listing, CT-TEST-01\n" + text)
    elif case == "plain_title":
        (study / "ae.csv").write_text("Listing 16.2.7 Adverse events\n" + text)
    else:
        lines = text.splitlines()
        lines[3] = lines[3].replace("Headache", '"Headache')  # a quote opened and never closed
        (study / "ae.csv").write_text("\n".join(lines) + "\n")
    db = tmp_path / "db.duckdb"
    p = cli(study, db)
    assert (p.returncode, p.stderr.strip()) == (2, expected)
    assert "Traceback" not in p.stderr + p.stdout
    assert not db.exists()  # a refused first load leaves no database file


def test_utf16_ae_file_loads(tmp_path):
    study = make_study(tmp_path / "s", "csv")
    (study / "ae.csv").write_text(AE.to_csv(index=False), encoding="utf-16")
    db = tmp_path / "db.duckdb"
    r = ingest_study(study, db, run_derivations=False)
    ae = next(f for f in r.files if f.source_file == "ae.csv")
    assert (ae.rows_read, ae.rows_loaded, ae.rows_quarantined) == (7, 3, 4)
    assert q(db, "SELECT event_key FROM adverse_events ORDER BY 1").event_key.tolist() == \
        ["S-001/AE/1", "S-001/AE/2", "S-003/AE/1"]


def test_ae_file_without_aeseq_quarantines_its_rows_with_the_reason(tmp_path):
    study = make_study(tmp_path / "s", "csv", domains=dict(DOMAINS, ae=AE.drop(columns=["AESEQ"])))
    db = tmp_path / "db.duckdb"
    p = cli(study, db)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert set(q(db, "SELECT reason FROM quarantine WHERE source_file = 'ae.csv'").reason) == \
        {"required column AESEQ missing from file"}
    # the qualifiers that point at AESEQ cannot join: quarantined too, with their reason
    assert set(q(db, "SELECT reason FROM quarantine WHERE source_file = 'suppae.csv'").reason) == \
        {"IDVAR AESEQ is not a column of the AE dataset"}
    reconciles(db)


def test_latin1_file_with_its_first_accent_past_one_mebibyte_loads(tmp_path):
    lb = big_lb(16000)
    lb.loc[len(lb) - 1, "LBTEST"] = "Bilirubine totale (é)"
    study = make_study(tmp_path / "s", "csv", domains=dict(DOMAINS, lb=lb))
    (study / "lb.csv").write_bytes(lb.to_csv(index=False).encode("latin-1"))
    first_accent = (study / "lb.csv").read_bytes().index("é".encode("latin-1"))
    assert first_accent > 1 << 20
    db = tmp_path / "db.duckdb"
    r = ingest_study(study, db, run_derivations=False)
    lb_count = next(f for f in r.files if f.source_file == "lb.csv")
    assert (lb_count.rows_read, lb_count.rows_loaded) == (16000, 16000)
    assert q(db, "SELECT lbtest FROM labs WHERE lbseq = 16000").lbtest[0] == "Bilirubine totale (é)"


def test_csv_with_mixed_crlf_and_lf_line_endings_loads(tmp_path):
    study = make_study(tmp_path / "s", "csv", domains=dict(DOMAINS, lb=big_lb(2000)))
    lines = (study / "lb.csv").read_text().splitlines()
    (study / "lb.csv").write_bytes("".join(ln + ("\r\n" if i % 3 else "\n") for i, ln in enumerate(lines)).encode())
    db = tmp_path / "db.duckdb"
    r = ingest_study(study, db, run_derivations=False)
    lb = next(f for f in r.files if f.source_file == "lb.csv")
    assert (lb.rows_read, lb.rows_loaded, lb.rows_quarantined) == (2000, 2000, 0)
    assert q(db, "SELECT count(*) n FROM labs WHERE lbdtc LIKE '%\r%' OR visit LIKE '%\r%'").n[0] == 0


# -- other formats -------------------------------------------------------------------------------------

def test_rows_on_a_second_xlsx_sheet_are_loaded_and_counted(tmp_path):
    study = make_study(tmp_path / "s", "csv", skip=("ae",))
    with pd.ExcelWriter(study / "ae.xlsx") as w:
        AE.iloc[:4].to_excel(w, sheet_name="AE", index=False)
        AE.iloc[4:].to_excel(w, sheet_name="AE (2)", index=False)
        pd.DataFrame().to_excel(w, sheet_name="empty", index=False)
    db = tmp_path / "db.duckdb"
    r = ingest_study(study, db, run_derivations=False)
    ae = next(f for f in r.files if f.source_file == "ae.xlsx")
    assert (ae.rows_read, ae.rows_loaded, ae.rows_quarantined) == (7, 3, 4)
    # rows are numbered across the sheets: the second sheet's S-999 row is data row 7
    assert q(db, "SELECT reason FROM quarantine WHERE source_file = 'ae.xlsx' AND row_number = 7").reason[0] == \
        "subject S-999 not in DM"
    reconciles(db)


def test_a_sheet_with_other_columns_refuses_the_workbook(tmp_path):
    study = make_study(tmp_path / "s", "csv", skip=("ae",))
    with pd.ExcelWriter(study / "ae.xlsx") as w:
        AE.to_excel(w, sheet_name="AE", index=False)
        pd.DataFrame({"NOTE": ["coded with MedDRA 27.0"]}).to_excel(w, sheet_name="notes", index=False)
    p = cli(study, tmp_path / "db.duckdb")
    assert p.returncode == 2
    assert p.stderr.strip() == ("error: ae.xlsx: sheet 'notes' holds 1 row(s) with other columns than sheet 'AE'; "
                                "deliver one dataset per workbook (its continuation sheets with the same columns)")


def test_truncated_xpt_is_refused(tmp_path):
    import pyreadstat
    study = make_study(tmp_path / "s", "csv", skip=("lb",))
    lb = big_lb(400).astype({"LBSEQ": "float64"})
    for c in lb.columns:
        if lb[c].dtype.kind not in "if":
            lb[c] = lb[c].astype(str)
    pyreadstat.write_xport(lb, str(study / "lb.xpt"), table_name="LB", file_format_version=8)
    data = (study / "lb.xpt").read_bytes()
    for cut in (len(data) * 2 // 3, len(data) - 160):  # mid-record, and on an 80-byte boundary inside a row
        (study / "lb.xpt").write_bytes(data[:cut])
        p = cli(study, tmp_path / "db.duckdb")
        assert p.returncode == 2, p.stdout
        assert p.stderr.startswith("error: lb.xpt: truncated or damaged SAS transport file")
        assert len(p.stderr.strip().splitlines()) == 1
    (study / "lb.xpt").write_bytes(data)
    assert cli(study, tmp_path / "db.duckdb").returncode == 0


def test_corrupt_parquet_is_refused_in_one_line(tmp_path):
    study = make_study(tmp_path / "s", "csv", skip=("lb",))
    big_lb(3200).astype(str).to_parquet(study / "lb.parquet", index=False)
    data = bytearray((study / "lb.parquet").read_bytes())
    data[len(data) // 3: len(data) // 3 + 400] = b"Z" * 400  # damaged pages, intact footer
    (study / "lb.parquet").write_bytes(bytes(data))
    p = cli(study, tmp_path / "db.duckdb")
    assert p.returncode == 2
    assert p.stderr.startswith("error: lb.parquet: cannot read parquet file (")
    assert len(p.stderr.strip().splitlines()) == 1 and str(study) not in p.stderr
    (study / "lb.parquet").write_bytes(b"PAR1 not a parquet file PAR1")
    p = cli(study, tmp_path / "db.duckdb")
    assert p.returncode == 2 and p.stderr.startswith("error: lb.parquet: cannot read parquet file (")


# -- keys and values -----------------------------------------------------------------------------------

def test_a_duplicate_of_a_quarantined_record_says_that_neither_is_loaded(tmp_path):
    # A ragged copy of S-001 AESEQ 2 comes before the clean record: the ragged line is quarantined for its
    # fields, the clean record as its duplicate, and its reason says so (not "the first record is kept").
    study = make_study(tmp_path / "s", "csv")
    lines = (study / "ae.csv").read_text().splitlines()
    clean = next(line for line in lines[1:] if "S-001" in line and "Cytokine release syndrome" in line)
    lines.insert(lines.index(clean), clean + ",x,y,z")
    (study / "ae.csv").write_text("\n".join(lines) + "\n")
    db = tmp_path / "db.duckdb"
    ingest_study(study, db, run_derivations=False)
    assert q(db, "SELECT event_key FROM adverse_events WHERE usubjid = 'S-001' ORDER BY 1")["event_key"].tolist() \
        == ["S-001/AE/1"]
    qr = q(db, "SELECT row_number, reason FROM quarantine WHERE source_file = 'ae.csv' ORDER BY 1").values.tolist()
    ragged = lines.index(clean + ",x,y,z") + 1  # its line in the file; rows count from 1 after the header
    assert [ragged - 1, f"line {ragged}: 16 fields where the header has 13"] in qr
    assert [ragged, "duplicate key (USUBJID + AESEQ); the first record is quarantined too, so neither is loaded: "
                    "deliver the record once"] in qr


def test_aeseq_03_beside_3_is_one_key(tmp_path):
    ae = AE.copy().astype(str)
    ae.loc[len(ae)] = ae.loc[0]  # S-001 AESEQ 1 again, written '01'
    ae.loc[len(ae) - 1, "AESEQ"] = "01"
    ae.loc[len(ae) - 1, "AETERM"] = "Fever (resent)"
    study = make_study(tmp_path / "s", "csv", domains=dict(DOMAINS, ae=ae))
    db = tmp_path / "db.duckdb"
    ingest_study(study, db, run_derivations=False)
    keys = q(db, "SELECT event_key, aeterm FROM adverse_events WHERE usubjid = 'S-001' ORDER BY 1")
    assert keys.values.tolist() == [["S-001/AE/1", "Fever"], ["S-001/AE/2", "Cytokine release syndrome"]]
    qr = q(db, "SELECT field, reason FROM quarantine WHERE source_file = 'ae.csv' AND row_number = 8")
    assert qr.values.tolist() == [["AESEQ", "duplicate key (USUBJID + AESEQ); the first record is kept"]]
    # a qualifier addressed as IDVARVAL '02' reaches AESEQ 2
    supp = SUPPAE.copy()
    supp.loc[0, "IDVARVAL"] = "02"
    study2 = make_study(tmp_path / "t", "csv", domains=dict(DOMAINS, suppae=supp))
    db2 = tmp_path / "db2.duckdb"
    ingest_study(study2, db2, run_derivations=False)
    assert q(db2, "SELECT supp_aeicu FROM adverse_events WHERE event_key = 'S-001/AE/2'").supp_aeicu[0] == "Y"


def test_implausible_values_are_quarantined_with_a_reason(tmp_path):
    dm = DM.copy().astype(str)
    dm.loc[0, "AGE"] = "1e308"
    dm.loc[1, "AGE"] = "-1"
    lb = LB.copy()
    lb.loc[3, "LBORRES"] = "-5"  # ALT
    study = make_study(tmp_path / "s", "csv", domains=dict(DOMAINS, dm=dm, lb=lb))
    db = tmp_path / "db.duckdb"
    ingest_study(study, db, run_derivations=False)
    qr = q(db, "SELECT source_file, row_number, field, reason FROM quarantine "
               "WHERE source_file IN ('dm.csv', 'lb.csv') AND row_number IN (1, 2, 4) ORDER BY 1, 2")
    assert qr.values.tolist() == [
        ["dm.csv", 1, "AGE", "implausible AGE 1e308 (plausible: 0-120 years)"],
        ["dm.csv", 2, "AGE", "implausible AGE -1 (plausible: 0-120 years)"],
        ["lb.csv", 1, "USUBJID", "subject S-001 has a quarantined DM record"],
        ["lb.csv", 2, "USUBJID", "subject S-001 has a quarantined DM record"],
        ["lb.csv", 4, "LBORRES", "implausible negative result '-5' for ALT"],
    ]
    # ALT -5 of a subject whose DM row loads
    lb2 = LB.copy()
    lb2.loc[6, "LBORRES"] = "-5"  # S-002 NEUT
    study2 = make_study(tmp_path / "t", "csv", domains=dict(DOMAINS, lb=lb2))
    ingest_study(study2, tmp_path / "db2.duckdb", run_derivations=False)
    qr2 = q(tmp_path / "db2.duckdb", "SELECT field, reason FROM quarantine WHERE source_file = 'lb.csv' AND row_number = 7")
    assert qr2.values.tolist() == [["LBORRES", "implausible negative result '-5' for NEUT"]]


def test_age_in_months_is_checked_in_years(tmp_path):
    dm = DM.copy().astype(str)
    dm["AGEU"] = "YEARS"
    dm.loc[2, ["AGE", "AGEU"]] = ["540", "MONTHS"]  # 45 years
    dm.loc[3, ["AGE", "AGEU"]] = ["1700", "MONTHS"]  # 141 years
    study = make_study(tmp_path / "s", "csv", domains=dict(DOMAINS, dm=dm))
    db = tmp_path / "db.duckdb"
    ingest_study(study, db, run_derivations=False)
    assert q(db, "SELECT usubjid FROM subjects ORDER BY 1").usubjid.tolist() == ["S-001", "S-002", "S-003", "S-005"]
    assert q(db, "SELECT reason FROM quarantine WHERE source_file = 'dm.csv'").reason.tolist() == \
        ["implausible AGE 1700 (plausible: 0-120 years)"]

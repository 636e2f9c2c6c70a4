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
from test_ingest_fixtures import AE, CM, DM, DOMAINS, LB, SUPPAE, make_study

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


def quarantined(db, where: str) -> list[list]:
    """[file, data row, field, reason] of the quarantined rows that ``where`` (SQL over quarantine) keeps."""
    return q(db, "SELECT source_file, row_number, field, reason FROM quarantine WHERE " + where
                 + " ORDER BY source_file, row_number").values.tolist()


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


def test_a_qualifier_with_idvarval_but_no_idvar_is_quarantined_not_spread_over_the_subject(tmp_path):
    """IDVARVAL '2' with IDVAR empty names a record by a variable nobody gave: read as subject-level it would have
    qualified every AE of S-001 (and beside another subject-level qualifier of S-001 the load stopped with an
    internal reconciliation error). It is quarantined, naming IDVAR; the subject-level row beside it loads."""
    extra = pd.DataFrame([dict(STUDYID=SUPPAE.STUDYID[0], RDOMAIN="AE", USUBJID="S-001", IDVAR="", IDVARVAL="2",
                               QNAM="AESOSP", QLABEL="Other", QVAL="hospital transfer"),
                          dict(STUDYID=SUPPAE.STUDYID[0], RDOMAIN="AE", USUBJID="S-001", IDVAR="", IDVARVAL="",
                               QNAM="AETRTEM", QLABEL="Treatment emergent", QVAL="Y")])
    supp = pd.concat([SUPPAE, extra], ignore_index=True)
    study = make_study(tmp_path / "s", "csv", domains=dict(DOMAINS, suppae=supp))
    db = tmp_path / "db.duckdb"
    p = cli(study, db)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    qr = q(db, "SELECT row_number, field, reason FROM quarantine WHERE source_file = 'suppae.csv' AND field = 'IDVAR'")
    assert qr.values.tolist() == [[4, "IDVAR", "IDVARVAL '2' given without IDVAR: the parent record it names is "
                                               "unknown"]]
    ae = q(db, "SELECT usubjid, supp_aetrtem FROM adverse_events WHERE usubjid = 'S-001'")
    assert len(ae) > 1 and set(ae.supp_aetrtem) == {"Y"}
    assert "supp_aesosp" not in ae.columns
    reconciles(db)


def test_a_combined_suppqual_file_is_refused_with_how_to_split_it(tmp_path):
    """SDTM before 3.1.2 delivered every domain's qualifiers in one SUPPQUAL: left unread (as a file of a domain
    celltox does not use) its rows were lost without a word. The load stops in one line saying how to split it."""
    suppdm = pd.DataFrame([dict(STUDYID=SUPPAE.STUDYID[0], RDOMAIN="DM", USUBJID="S-001", IDVAR="", IDVARVAL="",
                                QNAM="COHORT", QLABEL="Cohort", QVAL="A")])
    domains = {k: v for k, v in DOMAINS.items() if k != "suppae"}
    domains["suppqual"] = pd.concat([SUPPAE, suppdm], ignore_index=True)
    study = make_study(tmp_path / "s", "csv", domains=domains)
    p = cli(study, tmp_path / "db.duckdb")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip() == ("error: suppqual.csv: qualifiers of several domains in one file (RDOMAIN AE, DM): "
                                "celltox reads one SUPP-- file per domain; split it by RDOMAIN into suppae.csv, "
                                "suppdm.csv")


def test_two_car_infusions_on_day_0_take_the_earlier_time(tmp_path):
    """A split dose of S-002 at 10:00 (EXSEQ 1) and 08:00 (EXSEQ 2), and a record of that day without a time: day
    0's time is 08:00, whatever the file order, so a fever at 09:00 is after the infusion (it was read as before)."""
    from test_ingest_fixtures import EX
    ex = EX.copy()
    ex.loc[ex.USUBJID == "S-002", ["EXSTDTC", "EXENDTC"]] = ["2024-02-10T10:00", "2024-02-10T10:30"]
    extra = ex[ex.USUBJID == "S-002"].assign(EXSEQ=2, EXDOSE=0.5, EXSTDTC="2024-02-10T08:00", EXENDTC="2024-02-10T08:20")
    undated = extra.assign(EXSEQ=3, EXSTDTC="2024-02-10", EXENDTC="2024-02-10")
    study = make_study(tmp_path / "s", "csv", domains=dict(DOMAINS, ex=pd.concat([ex, undated, extra])))
    db = tmp_path / "db.duckdb"
    p = cli(study, db)
    assert p.returncode == 0, p.stderr
    got = q(db, "SELECT first_infusion_dtc, CAST(first_infusion_date AS VARCHAR) AS d, infusions FROM subjects "
                "WHERE usubjid = 'S-002'")
    assert got.values.tolist() == [["2024-02-10T08:00", "2024-02-10", 3]]


def test_a_result_that_overflows_its_unit_conversion_is_quarantined(tmp_path):
    """BILI 1e308 mg/dL is a number, 1.7e310 umol/L is not: it loaded as inf and graded 4."""
    lb = LB.copy()
    i = lb.index[lb["LBTESTCD"] == "BILI"][0]
    lb.loc[i, ["LBORRES", "LBORRESU"]] = ["1e308", "mg/dL"]
    for col in ("LBSTRESN", "LBSTRESC", "LBSTRESU"):
        if col in lb:
            lb.loc[i, col] = None
    study = make_study(tmp_path / "s", "csv", domains=dict(DOMAINS, lb=lb))
    db = tmp_path / "db.duckdb"
    assert cli(study, db).returncode == 0
    qr = q(db, "SELECT row_number, reason FROM quarantine WHERE source_file = 'lb.csv' AND reason LIKE '%converted%'")
    assert qr.values.tolist() == [[int(i) + 1, "result 1e+308 mg/dL is beyond any number once converted to umol/L"]]
    assert q(db, "SELECT count(*) AS n FROM labs WHERE NOT isfinite(value)").n[0] == 0
    reconciles(db)


def test_a_date_before_1900_is_quarantined_as_a_typing_error(tmp_path):
    """AESTDTC 0000-01-01 loaded as 1 BC and then every export of the cut failed (Python has no year 0)."""
    ae = AE.copy()
    ae.loc[0, "AESTDTC"] = "0000-01-01"
    ae.loc[4, "AESTDTC"] = "1899-12-31"
    study = make_study(tmp_path / "s", "csv", domains=dict(DOMAINS, ae=ae))
    db = tmp_path / "db.duckdb"
    p = cli(study, db)
    assert p.returncode == 0, p.stderr
    qr = q(db, "SELECT row_number, field, reason FROM quarantine WHERE source_file = 'ae.csv' AND field = 'AESTDTC' "
               "ORDER BY row_number")
    assert qr.values.tolist() == [[1, "AESTDTC", "date '0000-01-01' is before 1900 (a typing error?)"],
                                  [5, "AESTDTC", "date '1899-12-31' is before 1900 (a typing error?)"]]
    assert str(q(db, "SELECT min(aest_date) AS d FROM adverse_events").d[0]) >= "1900-01-01"
    reconciles(db)


def test_two_qualifier_names_that_make_one_column_keep_the_first_and_quarantine_the_other(tmp_path):
    """GR-1, GR_1 and 'GR 1' all become column supp_gr_1: before, the second value was stored nowhere (and a third
    on another record emptied the first) while every row counted as loaded."""
    extra = pd.DataFrame({"STUDYID": [SUPPAE["STUDYID"][0]] * 3, "RDOMAIN": ["AE"] * 3,
                          "USUBJID": ["S-001", "S-001", "S-001"], "IDVAR": ["AESEQ"] * 3, "IDVARVAL": ["1", "1", "2"],
                          "QNAM": ["GR-1", "GR_1", "GR 1"], "QLABEL": ["x"] * 3, "QVAL": ["first", "second", "third"]})
    study = make_study(tmp_path / "s", "csv", domains=dict(DOMAINS, suppae=pd.concat([SUPPAE, extra])))
    db = tmp_path / "db.duckdb"
    p = cli(study, db)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    ae = q(db, "SELECT aeseq, supp_gr_1 FROM adverse_events WHERE usubjid = 'S-001' ORDER BY aeseq")
    assert dict(ae.values.tolist())[1] == "first"
    qr = q(db, "SELECT row_number, field, reason FROM quarantine WHERE source_file = 'suppae.csv' AND field = 'QNAM' "
             "ORDER BY row_number")
    reason = "QNAM {} becomes column supp_gr_1 as QNAM GR-1 does (the first is kept): give the qualifiers distinct names"
    assert qr.values.tolist() == [[5, "QNAM", reason.format("GR_1")], [6, "QNAM", reason.format("GR 1")]]
    reconciles(db)


def test_a_qualifier_given_for_the_subject_and_for_one_record_applies_the_records_own_and_loses_nothing(tmp_path):
    """SUPPAE AETOXGRS 'Lee 2014' for AESEQ 2 and 'CTCAE v5.0' for the subject (no IDVAR): the subject's value was
    taken for every AE, the CRS graded on Lee 2014 carried CTCAE v5.0, and both rows counted as loaded. The record
    keeps its own, the subject's fills the others, noted. A group's value (AEGRPID G3) replaced on every record it
    reaches by the record's own (AESEQ 1) is quarantined; two values of equal specificity (AEGRPID G1, AESPID A) on
    one record quarantine the later. Every row is loaded or quarantined, and the counts reconcile."""
    ae = AE.assign(AEGRPID=["G1", "G1", "", "G3", "", "", ""], AESPID=["", "A", "", "", "", "", ""])
    ae.loc[4, "AEENDTC"] = ""                                      # S-001 AESEQ 3 loads
    extra = pd.DataFrame([
        ("S-001", "AESEQ", "2", "AETOXGRS", "Lee 2014"),           # row 4
        ("S-001", "", "", "AETOXGRS", "CTCAE v5.0"),               # row 5
        ("S-003", "AEGRPID", "G3", "AETOXGRS", "Lee 2014"),        # row 6
        ("S-003", "AESEQ", "1", "AETOXGRS", "CTCAE v5.0"),         # row 7
        ("S-001", "AEGRPID", "G1", "AESRC", "chart"),              # row 8
        ("S-001", "AESPID", "A", "AESRC", "CRF"),                  # row 9
    ], columns=["USUBJID", "IDVAR", "IDVARVAL", "QNAM", "QVAL"]).assign(STUDYID=SUPPAE.STUDYID[0], RDOMAIN="AE",
                                                                        QLABEL="x")
    study = make_study(tmp_path / "s", "csv", domains=dict(DOMAINS, ae=ae, suppae=pd.concat([SUPPAE, extra])))
    db = tmp_path / "db.duckdb"
    ingest_study(study, db, run_derivations=False)
    with duckdb.connect(str(db), read_only=True) as con:
        aes = con.execute("SELECT usubjid, aeseq, grading_system, supp_aetoxgrs, supp_aesrc FROM adverse_events "
                          "WHERE usubjid IN ('S-001', 'S-003') ORDER BY 1, 2").fetchall()
    assert aes == [("S-001", 1, "CTCAE v5.0", "CTCAE v5.0", "chart"), ("S-001", 2, "Lee 2014", "Lee 2014", "chart"),
                   ("S-001", 3, "CTCAE v5.0", "CTCAE v5.0", None), ("S-003", 1, "CTCAE v5.0", "CTCAE v5.0", None)]
    qr = q(db, "SELECT row_number, field, reason FROM quarantine WHERE source_file = 'suppae.csv' ORDER BY 1")
    assert qr.values.tolist() == [
        [3, "IDVARVAL", "no matching AE record for this qualifier"],
        [6, "QVAL", "AETOXGRS 'Lee 2014' for AEGRPID G3 is replaced on every AE record it qualifies by a more "
                    "specific value, which the record keeps: suppae.csv row 7 (AESEQ 1, 'CTCAE v5.0')"],
        [9, "QVAL", "AESRC 'CRF' for AESPID A contradicts suppae.csv row 8 (AEGRPID G1, 'chart') on the same AE "
                    "record, neither more specific (the first is kept)"]]
    log = q(db, "SELECT rows_read, rows_loaded, rows_quarantined, notes FROM load_log WHERE source_file = 'suppae.csv'")
    assert log.values.tolist() == [[9, 6, 3, "1 qualifier row replaced on some records by a more specific value, "
                                    "which those records keep: row 5 AETOXGRS (no IDVAR: every record of the subject) "
                                    "on 1 of 3 AE records, by suppae.csv row 4 (AESEQ 2, 'Lee 2014')"]]
    reconciles(db)


@pytest.mark.parametrize("case, expected", [
    ("empty", "error: ae.csv: empty file (no header row)"),
    ("blank", "error: ae.csv: empty file (no header row)"),
    ("blank_line_1", "error: ae.csv: line 1 is blank; the header row (the column names) must be the first line"),
    ("title", "error: ae.csv: line 1 has 2 field(s) where the lines below have 13: a title above the header row? "
              "Remove the lines above the column names"),
    ("plain_title", "error: ae.csv: line 1 is a title ('Listing 16.2.7 Adverse events'), not the header row; "
                    "remove the lines above the column names"),
    ("unbalanced", "error: ae.csv: line 4: unexpected end of data (a quote that is not closed?)"),
    # a header row short of one name: not a title, and the unnamed column's values must not vanish
    ("header_short", "error: ae.csv: the header row (line 1) names 12 column(s) where the lines below have 13 fields: "
                     "give every column one name in the header row"),
])
def test_unusable_ae_file_is_refused_in_one_line(tmp_path, case, expected):
    study = make_study(tmp_path / "s", "csv")
    text = AE.to_csv(index=False)
    if case == "empty":
        (study / "ae.csv").write_text("")
    elif case == "blank":  # white space and blank lines only: it read as two rows with no column
        (study / "ae.csv").write_text("   \n\n\n")
    elif case == "blank_line_1":
        (study / "ae.csv").write_text("  \n" + text)
    elif case == "title":
        (study / "ae.csv").write_text("Adverse events listing, CT-TEST-01\n" + text)
    elif case == "header_short":
        header, body = text.split("\n", 1)
        (study / "ae.csv").write_text(header.rsplit(",", 1)[0] + "\n" + body)
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


@pytest.mark.parametrize("suffix", [".xpt", ".sas7bdat", ".xlsx", ".parquet"])
def test_an_empty_binary_file_is_refused_as_empty(tmp_path, suffix):
    """A 0-byte file gave the reader's own words ('Unable to read from file', 'File is not a zip file')."""
    study = make_study(tmp_path / "s", "csv")
    (study / "cm.csv").unlink(missing_ok=True)
    (study / f"cm{suffix}").write_bytes(b"")
    p = cli(study, tmp_path / "db.duckdb")
    assert (p.returncode, p.stderr.strip()) == (2, f"error: cm{suffix}: empty file (0 bytes)")


def _ae_csv_with_header(study, header: list[str], encoding: str, trailing: str = "") -> None:
    """ae.csv of AE's rows under ``header`` (AE's names with some emptied), ``trailing`` after every line."""
    lines = [",".join(header)] + AE.to_csv(index=False, header=False).splitlines()
    (study / "ae.csv").write_text("".join(f"{ln}{trailing}\n" for ln in lines), encoding=encoding)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])  # DuckDB's reader; Python's (every UTF-16 file)
def test_a_csv_column_of_values_without_a_name_refuses_the_file_naming_its_position(tmp_path, encoding):
    """An empty header cell above values (``...,AESEQ,,AEDECOD,...``): the readers named the column themselves
    (DuckDB column03, Python COL4), which reads as a variable name, so the column's values were left out without a
    word and every AE loaded without its term. The file is refused as a workbook with such a cell is; a column
    empty in the header and in every line (a delimiter at the end of every line) holds nothing and loads as
    before, without a note."""
    study = make_study(tmp_path / "s", "csv")
    header = list(AE.columns)
    db = tmp_path / "db.duckdb"
    _ae_csv_with_header(study, ["" if h == "AETERM" else h for h in header], encoding)
    p = cli(study, db)
    assert (p.returncode, p.stderr.strip()) == (
        2, "error: ae.csv: field 4 of the header row (line 1) is empty above a column of values; write the column's "
           "name there, or delete the column")
    assert not db.exists()
    _ae_csv_with_header(study, ["" if h in ("AETERM", "AEOUT") else h for h in header], encoding)
    p = cli(study, db)
    assert (p.returncode, p.stderr.strip()) == (
        2, "error: ae.csv: fields 4, 11 of the header row (line 1) are empty above columns of values; write the "
           "columns' names there, or delete the columns")
    # a listing's caption with a delimiter for every column, above the header: a title, not twelve unnamed columns
    (study / "ae.csv").write_text("Listing 16.2.7 Adverse events" + "," * 12 + "\n" + AE.to_csv(index=False),
                                  encoding=encoding)
    p = cli(study, db)
    assert (p.returncode, p.stderr.strip()) == (
        2, "error: ae.csv: line 1 is a title ('Listing 16.2.7 Adverse events'), not the header row; remove the lines "
           "above the column names")
    assert not db.exists()
    _ae_csv_with_header(study, header, encoding, trailing=",")
    r = ingest_study(study, db, run_derivations=False)
    ae = next(f for f in r.files if f.source_file == "ae.csv")
    assert (r.notes, ae.rows_read, ae.rows_loaded, ae.rows_quarantined) == ([], 7, 3, 4)
    assert q(db, "SELECT aeterm FROM adverse_events ORDER BY event_key").aeterm.tolist() == [
        "Fever", "Cytokine release syndrome", "Neutropenia"]
    reconciles(db)


@pytest.mark.parametrize("titles", [
    ["Listing 16.2.7, Adverse events", "Protocol CT-TEST-01, cut 2024-03-31"],
    ["Listing 16.2.7, Adverse events", "Protocol CT-TEST-01, cut 2024-03-31, page 1", "Safety population, all sites"],
])
def test_several_title_lines_above_a_csv_header_refuse_the_file(tmp_path, titles):
    """Two title lines of two fields each: the first two lines agreed, so the file loaded with exit 0 and every
    row quarantined ('required column USUBJID missing', 'line 4: 13 fields where the header has 2'). Most lines
    having more fields than the first is the sign that the header lies lower: refused as one title line is."""
    study = make_study(tmp_path / "s", "csv")
    (study / "ae.csv").write_text("\n".join(titles) + "\n" + AE.to_csv(index=False))
    db = tmp_path / "db.duckdb"
    p = cli(study, db)
    lines = len(titles) - 1 + 1 + len(AE)  # the other title lines, the header, the rows
    assert (p.returncode, p.stderr.strip()) == (
        2, f"error: ae.csv: line 1 has 2 field(s) where {len(AE) + 1} of the {lines} lines below have 13: a title "
           "above the header row? Remove the lines above the column names")
    assert not db.exists()


def test_a_csv_file_with_ragged_lines_short_of_most_still_loads(tmp_path):
    """The title rule takes most of the lines: a file with some lines of a field too many (three of seven) loads,
    those rows quarantined with their reason."""
    study = make_study(tmp_path / "s", "csv")
    lines = AE.to_csv(index=False).splitlines()
    for i in (2, 4, 6):
        lines[i] += ",EXTRA"
    (study / "ae.csv").write_text("\n".join(lines) + "\n")
    db = tmp_path / "db.duckdb"
    p = cli(study, db)
    assert p.returncode == 0, p.stderr
    assert [[n, why] for _, n, _, why in quarantined(db, "source_file = 'ae.csv' AND reason LIKE 'line%'")] == [
        [n, f"line {n + 1}: 14 fields where the header has 13"] for n in (2, 4, 6)]
    reconciles(db)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_ae_file_loads(tmp_path, encoding):
    """With its byte-order mark or without it (the -le/-be codecs write none), as Excel's "Unicode text" does."""
    study = make_study(tmp_path / "s", "csv")
    (study / "ae.csv").write_text(AE.to_csv(index=False), encoding=encoding)
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
    assert [ragged, f"duplicate key (USUBJID + AESEQ) of ae.csv row {ragged - 1}; the first record is quarantined "
                    "too, so neither is loaded: deliver the record once"] in qr


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
    assert qr.values.tolist() == [["AESEQ", "duplicate key (USUBJID + AESEQ) of ae.csv row 1; the first record is "
                                            "kept"]]
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
    assert quarantined(db, "source_file IN ('dm.csv', 'lb.csv') AND row_number IN (1, 2, 4)") == [
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


def test_supp_rows_follow_their_parent_into_quarantine_or_after_the_cut(tmp_path):
    """A qualifier's value lives on its parent's row: a quarantined parent takes its SUPP rows with it, a parent
    after the cut makes them after-cut rows; none is counted as loaded while its value is stored nowhere."""
    suppae = pd.concat([SUPPAE, pd.DataFrame({
        "STUDYID": [SUPPAE.STUDYID[0]] * 2, "RDOMAIN": ["AE"] * 2, "USUBJID": ["S-002", "S-003"],
        "IDVAR": ["AESEQ"] * 2, "IDVARVAL": ["1", "1"], "QNAM": ["AEICU"] * 2, "QLABEL": ["ICU admission"] * 2,
        "QVAL": ["Y", "N"]})], ignore_index=True)
    # S-002 AESEQ 1 has AETOXGR 7 (quarantined); S-003 AESEQ 1 starts 2024-03, after the cut below
    dm = DM.astype({"AGE": object})
    dm.loc[dm.USUBJID == "S-005", "AGE"] = "old"  # S-005's DM row is quarantined, so is its subject qualifier
    suppdm = pd.concat([DOMAINS["suppdm"], pd.DataFrame({
        "STUDYID": [DM.STUDYID[0]], "RDOMAIN": ["DM"], "USUBJID": ["S-005"], "IDVAR": [""], "IDVARVAL": [""],
        "QNAM": ["DOSELVL"], "QVAL": ["DL2 (3e6/kg)"]})], ignore_index=True)
    study = make_study(tmp_path / "s", "csv", domains=dict(DOMAINS, dm=dm, suppae=suppae, suppdm=suppdm))
    db = tmp_path / "db.duckdb"
    r = ingest_study(study, db, run_derivations=False, cutoff="2024-02-15")
    counts = {f.source_file: (f.rows_read, f.rows_loaded, f.rows_quarantined, f.rows_after_cutoff) for f in r.files}
    # suppae: S-001/2 loaded; S-001/1 (AESEQ 1 starts 2024-02-02) loaded; S-002/9 no parent; S-002/1 parent
    # quarantined; S-003/1 parent after the cut
    assert counts["suppae.csv"] == (5, 2, 2, 1)
    assert counts["suppdm.csv"] == (3, 2, 1, 0)
    qr = q(db, "SELECT source_file, usubjid, field, reason FROM quarantine "
               "WHERE source_file IN ('suppae.csv', 'suppdm.csv') ORDER BY source_file, row_number")
    assert qr.values.tolist() == [
        ["suppae.csv", "S-002", "IDVARVAL", "no matching AE record for this qualifier"],
        ["suppae.csv", "S-002", "IDVARVAL", "the AE record it qualifies is quarantined"],
        ["suppdm.csv", "S-005", "USUBJID", "the DM record it qualifies is quarantined"],
    ]
    reconciles(db)


def _cli_args(study, db, *extra):
    return subprocess.run([sys.executable, "-m", "safety", "ingest", str(study), "--db", str(db), "--no-derivations",
                           *extra], cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("case, expected", [
    ("list_value", "error: {study}/study.yaml: 'ctcae_version' must be one of 5.0, got [5]"),
    ("latin1", "error: {study}/study.yaml: line 2 is not UTF-8 text; save the file as UTF-8"),
    ("impossible_date", "error: {study}/study.yaml: a value is not a real date (day is out of range for month); "
                        "write dates as YYYY-MM-DD"),
    ("term_map_columns", "error: study.yaml lab_terms_path: {study}/lt.csv: columns must include lbtestcd, "
                         "ctcae_term (and direction)"),
    ("db_is_folder", "error: {tmp}/dbdir: a folder, not a database file (give a file path, e.g. "
                     "{tmp}/dbdir/trial.duckdb)"),
    ("db_folder_missing", "error: {tmp}/nowhere/db.duckdb: the folder {tmp}/nowhere does not exist"),
    ("review_not_sqlite", "error: {study}/dm.csv: not a celltox review store (file is not a database)"),
])
def test_a_wrong_setting_or_path_is_refused_in_one_line(tmp_path, case, expected):
    """Mistakes in study.yaml or in the command's paths: one line naming the file, exit 2, nothing written."""
    study = make_study(tmp_path / "s", "csv")
    yaml_text = (study / "study.yaml").read_text(encoding="utf-8")
    db, extra = tmp_path / "db.duckdb", []
    if case == "list_value":
        (study / "study.yaml").write_text(yaml_text + "ctcae_version: [5]\n", encoding="utf-8")
    elif case == "latin1":
        (study / "study.yaml").write_bytes(yaml_text.replace("Test study", "Test study H\xf4pital").encode("latin-1"))
    elif case == "impossible_date":
        (study / "study.yaml").write_text(yaml_text + "data_cuts: [2026-02-30]\n", encoding="utf-8")
    elif case == "term_map_columns":
        (study / "lt.csv").write_text("code,term\nALT,Alanine aminotransferase increased\n", encoding="utf-8")
        (study / "study.yaml").write_text(yaml_text + "lab_terms_path: lt.csv\n", encoding="utf-8")
    elif case == "db_is_folder":
        db = tmp_path / "dbdir"
        db.mkdir()
    elif case == "db_folder_missing":
        db = tmp_path / "nowhere" / "db.duckdb"
    elif case == "review_not_sqlite":
        extra = ["--review-db", str(study / "dm.csv")]
    p = _cli_args(study, db, *extra)
    assert (p.returncode, p.stderr.strip()) == (2, expected.format(study=study, tmp=tmp_path))
    assert "Traceback" not in p.stdout + p.stderr
    assert not (tmp_path / "db.duckdb").exists()


@pytest.mark.parametrize("fmt, rename", [("csv", "AETOXGR"), ("csv", "aetoxgr"), ("xlsx", "AETOXGR"),
                                         ("parquet", "aetoxgr")])
def test_a_variable_delivered_twice_refuses_the_file(tmp_path, fmt, rename):
    """Two columns for one variable (a repeated header, or one name in two cases): which holds the data is the
    sender's to say; loading the first would drop the other's values unseen."""
    ae = AE.copy()
    ae.insert(len(ae.columns), "X", ["5"] * len(ae))
    study = make_study(tmp_path / "s", fmt, domains=dict(DOMAINS, ae=ae))
    path = study / f"ae.{fmt}"
    if fmt == "csv":
        text = path.read_text().splitlines()
        text[0] = text[0].rsplit(",", 1)[0] + "," + rename
        path.write_text("\n".join(text) + "\n")
    else:
        write = ae.rename(columns={"X": "AETOXGR"}) if fmt == "xlsx" else ae.rename(columns={"X": rename})
        from test_ingest_fixtures import write_frame
        write_frame(write, path)
    db = tmp_path / "db.duckdb"
    p = cli(study, db)
    expected = ("error: ae.{fmt}: the column 'AETOXGR' appears twice; deliver it once"
                if rename == "AETOXGR" else
                "error: ae.{fmt}: columns 'AETOXGR' and 'aetoxgr' both mean AETOXGR; deliver one of them")
    assert (p.returncode, p.stderr.strip()) == (2, expected.format(fmt=fmt))
    assert not db.exists()


def test_a_workbook_formula_without_its_computed_value_refuses_the_file(tmp_path):
    """openpyxl writes formulas without the value Excel would have stored: the grade would load as missing."""
    import openpyxl

    study = make_study(tmp_path / "s", "xlsx")
    wb = openpyxl.load_workbook(study / "ae.xlsx")
    ws = wb.active
    col = [c.value for c in ws[1]].index("AETOXGR") + 1
    ws.cell(row=2, column=col, value="=1+2")
    wb.save(study / "ae.xlsx")
    db = tmp_path / "db.duckdb"
    p = cli(study, db)
    letter = openpyxl.utils.get_column_letter(col)
    assert (p.returncode, p.stderr.strip()) == (
        2, f"error: ae.xlsx: sheet '{ws.title}' cell {letter}2 holds the formula =1+2 with no computed value; "
           "open and save the workbook in Excel, or deliver the values")
    assert not db.exists()
    # the same workbook with plain values loads
    ws.cell(row=2, column=col, value="1")
    wb.save(study / "ae.xlsx")
    assert cli(study, db).returncode == 0
    # a workbook Excel saved stores each formula's value, an empty text among them: it loads
    _with_cached_values(study / "ae.xlsx", {f"{letter}2": ("=IF(1=1,\"\",1)", ""), f"{letter}3": ("=1+2", "3")})
    db2 = tmp_path / "db2.duckdb"
    p = cli(study, db2)
    assert p.returncode == 0, p.stderr
    grades = dict(q(db2, "SELECT event_key, aetoxgr FROM adverse_events").values.tolist())
    assert grades["S-001/AE/2"] == 3 and grades["S-001/AE/1"] != grades["S-001/AE/1"]  # 3 stored; '' is missing


def test_an_excel_error_cell_quarantines_its_row_naming_the_cell(tmp_path):
    """A formula Excel could not compute stores #N/A: pandas reads it as an empty cell, so a grade-4 AE loaded as
    ungraded with nothing said. Now its row is quarantined naming the column, sheet and cell."""
    import openpyxl

    study = make_study(tmp_path / "s", "xlsx")
    wb = openpyxl.load_workbook(study / "ae.xlsx")
    ws = wb.active
    col = [c.value for c in ws[1]].index("AETOXGR") + 1
    letter = openpyxl.utils.get_column_letter(col)
    ws.cell(row=3, column=col, value="#N/A")   # openpyxl stores a known error code as an error cell
    wb.save(study / "ae.xlsx")
    db = tmp_path / "db.duckdb"
    p = cli(study, db)
    assert p.returncode == 0, p.stderr
    qr = q(db, "SELECT row_number, reason FROM quarantine WHERE source_file = 'ae.xlsx' AND reason LIKE '%Excel%'")
    assert qr.values.tolist() == [[2, f"AETOXGR: Excel error #N/A in sheet '{ws.title}' cell {letter}3 (a formula "
                                      "that failed in the workbook); correct it and deliver again"]]
    assert "S-001/AE/2" not in set(q(db, "SELECT event_key FROM adverse_events")["event_key"])
    reconciles(db)


def test_an_empty_sheet_before_the_data_is_ignored_and_na_text_stays_text(tmp_path):
    """docs/input-format.md: empty sheets are ignored, also before the dataset's sheet; 'NA' typed in a cell is
    text, as in a CSV (pandas' default would have made it missing)."""
    study = make_study(tmp_path / "s", "csv", skip=("ae",))
    ae = AE.copy()
    ae.loc[0, "AEOUT"] = "NA"
    with pd.ExcelWriter(study / "ae.xlsx") as w:
        pd.DataFrame().to_excel(w, sheet_name="Sheet1", index=False)
        ae.to_excel(w, sheet_name="AE", index=False)
    db = tmp_path / "db.duckdb"
    r = ingest_study(study, db, run_derivations=False)
    f = next(x for x in r.files if x.source_file == "ae.xlsx")
    assert f.rows_read == len(AE)
    first = q(db, "SELECT aeout FROM adverse_events WHERE usubjid = $u AND aeseq = $s",
              {"u": ae.loc[0, "USUBJID"], "s": int(ae.loc[0, "AESEQ"])})
    assert first.aeout.tolist() == ["NA"]
    reconciles(db)


def _with_cached_values(path, cells: dict) -> None:
    """Rewrite cells of the first sheet as formulas with a stored value, as Excel saves them (openpyxl
    writes formulas without one)."""
    import re
    import shutil
    import zipfile
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                text = data.decode("utf-8")
                for ref, (formula, value) in cells.items():
                    cell = f'<c r="{ref}" t="str"><f>{formula[1:].replace(chr(34), "&quot;")}</f><v>{value}</v></c>'
                    text = re.sub(rf'<c r="{ref}"[^>]*?(/>|>.*?</c>)', cell, text, count=1)
                data = text.encode("utf-8")
            dst.writestr(item, data)
    shutil.move(tmp, path)


def test_parquet_timestamps_with_a_time_zone_keep_the_sites_clock(tmp_path):
    """A CRS assessment at 06:00 in Shanghai written as a zoned timestamp is day 1 at the site, as the same
    time written as text; read as its UTC instant it would fall on the day before."""
    from test_ingest_fixtures import CRS
    crs = CRS.iloc[:2].copy()  # two days; the third row's temperature is quarantined
    zoned = pd.to_datetime(crs.CRSDTC.str.slice(0, 10) + "T06:00").dt.tz_localize("Asia/Shanghai")
    study = make_study(tmp_path / "s", "csv")
    (study / "crs_assessments.csv").unlink()
    crs.assign(CRSDTC=zoned).to_parquet(study / "crs_assessments.parquet", index=False)
    db = tmp_path / "db.duckdb"
    r = ingest_study(study, db, run_derivations=False)
    assert next(f for f in r.files if f.source_file == "crs_assessments.parquet").rows_quarantined == 0
    got = q(db, "SELECT crsdtc, assessment_date FROM crs_assessments ORDER BY usubjid, crsdtc")
    want = sorted(zip(crs.USUBJID, crs.CRSDTC.str.slice(0, 10)))
    assert got.crsdtc.tolist() == [d + "T06:00" for _, d in want]  # as any timestamp reads: no seconds when zero
    assert [str(d) for d in got.assessment_date] == [d for _, d in want]


def test_a_windows_1252_file_and_a_mixed_one_keep_their_text(tmp_path):
    """Excel on Windows writes Windows-1252 (’ “ ” – €, which Latin-1 reads as control characters); a UTF-8 file
    with one such line keeps its UTF-8 text (not 'CÃ©phalÃ©e'). The summary says the file is not UTF-8."""
    ae = AE.copy()
    ae.loc[0, "AETERM"] = "Patient’s “worst” – €5 fever"
    study = make_study(tmp_path / "s", "csv", domains=dict(DOMAINS, ae=ae))
    (study / "ae.csv").write_bytes(ae.to_csv(index=False).encode("cp1252"))
    db = tmp_path / "db.duckdb"
    r = ingest_study(study, db, run_derivations=False)
    assert r.notes == ["ae.csv: not UTF-8: its other bytes were read as Windows-1252"]
    assert q(db, "SELECT aeterm FROM adverse_events WHERE usubjid = 'S-001' AND aeseq = 1").aeterm[0] == \
        "Patient’s “worst” – €5 fever"

    mixed = AE.copy()
    mixed.loc[0, "AETERM"] = "Céphalée"
    text = mixed.to_csv(index=False).encode("utf-8")
    lines = text.splitlines()
    lines[2] = lines[2].replace(b"Cytokine release syndrome", "Fièvre".encode("cp1252"))
    (study / "ae.csv").write_bytes(b"\n".join(lines) + b"\n")
    db2 = tmp_path / "db2.duckdb"
    r = ingest_study(study, db2, run_derivations=False)
    terms = q(db2, "SELECT aeseq, aeterm FROM adverse_events WHERE usubjid = 'S-001' ORDER BY aeseq")
    assert terms.aeterm.tolist()[:2] == ["Céphalée", "Fièvre"]
    assert r.notes == ["ae.csv: not UTF-8: its other bytes were read as Windows-1252"]
    p = cli(study, tmp_path / "db3.duckdb")
    assert "note: ae.csv: not UTF-8: its other bytes were read as Windows-1252" in p.stdout.splitlines()


def test_a_repeated_header_refuses_the_file_through_the_careful_reader_too(tmp_path):
    """A ragged line sends the file to Python's reader, which must see a repeated column as DuckDB's does."""
    study = make_study(tmp_path / "s", "csv")
    lines = AE.to_csv(index=False).splitlines()
    lines[0] += ",AETOXGR"
    lines[1:] = [ln + ",5" for ln in lines[1:]]
    lines[3] += ",EXTRA"  # one ragged line
    (study / "ae.csv").write_text("\n".join(lines) + "\n")
    p = cli(study, tmp_path / "db.duckdb")
    assert (p.returncode, p.stderr.strip()) == (2, "error: ae.csv: the column 'AETOXGR' appears twice; deliver it once")


def test_a_date_after_the_day_of_the_load_is_quarantined_not_dropped_as_after_the_cut(tmp_path):
    """AESTDTC 2062 for 2026 is a typing error: it is quarantined with its reason, not counted 'after the cut'
    with none; an end date in the future does not turn the AE into an ongoing one either."""
    ae = AE.copy()
    ae.loc[0, "AESTDTC"] = "2062-02-02"
    ae.loc[4, "AEENDTC"] = "2062-02-24"  # S-001 AESEQ 3 starts 2024-02-20
    ae.loc[4, "AESTDTC"] = "2024-02-10"
    lb = LB.copy()
    lb.loc[0, "LBDTC"] = "2062-02-05"
    study = make_study(tmp_path / "s", "csv", domains=dict(DOMAINS, ae=ae, lb=lb))
    db = tmp_path / "db.duckdb"
    r = ingest_study(study, db, run_derivations=False)
    ae_count = next(f for f in r.files if f.source_file == "ae.csv")
    assert ae_count.rows_after_cutoff == 0
    assert quarantined(db, "reason LIKE '%after the day of the load%'") == [
        ["ae.csv", 1, "AESTDTC", "date '2062-02-02' is after the day of the load (a typing error?)"],
        ["ae.csv", 5, "AEENDTC", "date '2062-02-24' is after the day of the load (a typing error?)"],
        ["lb.csv", 1, "LBDTC", "date '2062-02-05' is after the day of the load (a typing error?)"],
    ]
    assert q(db, "SELECT count(*) AS n FROM adverse_events WHERE usubjid = 'S-001' AND aeseq IN (1, 3)").n[0] == 0
    reconciles(db)


def test_workbook_date_cells_load_as_the_dates_the_sender_typed(tmp_path):
    """Excel keeps a date cell as a date-time at midnight: it loads as 2024-02-02, not 2024-02-02T00:00:00; a
    date-time cell keeps its time."""
    import datetime as dt
    ae = AE.copy().astype(object)
    ae["AESTDTC"] = [dt.datetime(2024, 2, 2), "2024-02", dt.datetime(2024, 2, 11), dt.datetime(2024, 3, 1, 8, 15),
                     dt.datetime(2024, 2, 20, 14, 30), dt.datetime(2024, 2, 12), dt.datetime(2024, 2, 12)]
    study = make_study(tmp_path / "s", "xlsx", domains=dict(DOMAINS, ae=ae))
    db = tmp_path / "db.duckdb"
    ingest_study(study, db, run_derivations=False)
    got = dict(q(db, "SELECT event_key, aestdtc FROM adverse_events").values.tolist())
    assert got["S-001/AE/1"] == "2024-02-02" and got["S-001/AE/2"] == "2024-02"
    assert got["S-003/AE/1"] == "2024-03-01T08:15"


@pytest.mark.parametrize("fmt", ["parquet", "xpt", "sas7bdat"])
def test_dates_delivered_as_timestamps_load_as_a_workbooks_date_cells(tmp_path, monkeypatch, fmt):
    """pandas writes a date column as a timestamp (Parquet TIMESTAMP, SAS DATETIME): a date at midnight loaded as
    '2024-02-03 00:00:00', so every medication started at 00:00. It reads as a workbook's date cell now: midnight
    as the date, else the ISO 8601 date and time (seconds only when there are any)."""
    import datetime as dt

    import pyreadstat
    cm = CM.copy()
    cm["CMSTDTC"] = pd.to_datetime(["2024-02-03", "2024-02-04T18:30", "2024-03-07T08:15:30"], format="ISO8601")
    cm["CMENDTC"] = [dt.date(2024, 2, 3), None, dt.date(2024, 3, 9)]  # Parquet DATE, SAS DATE
    cm["CMSEQ"] = cm.CMSEQ.astype(float)
    study = make_study(tmp_path / "s", "csv", skip=("cm",))
    if fmt == "parquet":
        cm.to_parquet(study / "cm.parquet", index=False)
    elif fmt == "xpt":
        pyreadstat.write_xport(cm, str(study / "cm.xpt"), table_name="CM")
        assert pyreadstat.read_xport(str(study / "cm.xpt"))[1].original_variable_types["CMSTDTC"] == "DATETIME"
    else:  # pyreadstat cannot write sas7bdat: its reader gives the frame it would read (datetime64 columns)
        (study / "cm.sas7bdat").write_bytes(b"not really sas")
        monkeypatch.setattr(pyreadstat, "read_sas7bdat", lambda path, **kw: (cm.copy(), None))
    db = tmp_path / "db.duckdb"
    r = ingest_study(study, db, run_derivations=False)
    f = next(x for x in r.files if x.source_file == f"cm.{fmt}")
    assert (f.rows_read, f.rows_loaded) == (3, 3)
    got = q(db, "SELECT cmstdtc, cmendtc, start_time FROM medications ORDER BY usubjid, cmseq")
    assert got.cmstdtc.tolist() == ["2024-02-03", "2024-02-04T18:30", "2024-03-07T08:15:30"]
    assert got.cmendtc.tolist()[::2] == ["2024-02-03", "2024-03-09"] and pd.isna(got.cmendtc[1])
    assert pd.isna(got.start_time[0])  # a date has no time
    assert got.start_time[1] == dt.datetime(2024, 2, 4, 18, 30)
    reconciles(db)



def test_parquet_lab_dates_as_timestamps_beside_numeric_results_load_as_dates(tmp_path):
    """Lab results read as numbers straight from Parquet (no text round trip); the dates beside them are read by
    the same rule as every other timestamp, not as '2024-01-25 00:00:00'."""
    lb = LB.copy()
    lb["LBDTC"] = pd.to_datetime(lb.LBDTC, format="ISO8601")
    lb["LBSTRESN"] = pd.to_numeric(lb.LBSTRESN).astype(float)
    study = make_study(tmp_path / "s", "csv", skip=("lb",))
    lb.to_parquet(study / "lb.parquet", index=False)
    db = tmp_path / "db.duckdb"
    ingest_study(study, db, run_derivations=False)
    got = q(db, "SELECT lbseq, lbdtc FROM labs WHERE usubjid = 'S-001' ORDER BY lbseq")
    assert got.lbdtc.tolist() == ["2024-01-25", "2024-01-25T08:00", "2024-02-05", "2024-01-25"]
    reconciles(db)


def _patched(data: bytes, value: str, new: bytes) -> bytes:
    """``data`` (a SAS file's bytes) with the blank-padded text ``value`` replaced by ``new`` of the same width."""
    old = value.encode().ljust(len(new))
    assert data.count(old) == 1 and len(new) >= len(value)
    return data.replace(old, new)


def test_an_xpt_file_with_windows_1252_text_loads_with_a_note(tmp_path):
    """SAS transport files carry no encoding and SAS on Windows writes Windows-1252: one 'è' in AETERM refused the
    whole delivery ("'utf-8' codec can't decode byte 0xe8"), naming no variable. The file is read as a CSV that is
    not UTF-8 is: its UTF-8 text as it is, every other byte as Windows-1252, and the summary says so."""
    from test_ingest_fixtures import write_frame
    study = make_study(tmp_path / "s", "csv", skip=("ae",))
    write_frame(AE, study / "ae.xpt")
    data = (study / "ae.xpt").read_bytes()
    data = _patched(data, "Fever", "Fièvre ’38,5’".encode("cp1252"))
    data = _patched(data, "Neutropenia", "Neutropénie".encode("utf-8"))  # a file that mixes both keeps its UTF-8
    (study / "ae.xpt").write_bytes(data)
    db = tmp_path / "db.duckdb"
    r = ingest_study(study, db, run_derivations=False)
    assert r.notes == ["ae.xpt: not UTF-8: its other bytes were read as Windows-1252"]
    f = next(x for x in r.files if x.source_file == "ae.xpt")
    assert (f.rows_read, f.rows_loaded, f.rows_quarantined) == (7, 3, 4)
    got = dict(q(db, "SELECT event_key, aeterm FROM adverse_events").values.tolist())
    assert got["S-001/AE/1"] == "Fièvre ’38,5’" and got["S-003/AE/1"] == "Neutropénie"
    reconciles(db)


def test_a_sas7bdat_file_with_windows_1252_text_loads_with_a_note(tmp_path, monkeypatch):
    """A sas7bdat file that says nothing of its encoding (or says UTF-8) is decoded by pyreadstat as UTF-8 and
    failed as the XPT file did; it is read the same way now."""
    import pyreadstat
    raw = AE.assign(AETERM=AE.AETERM.replace({"Fever": "Fièvre ’38,5’"}))

    def fake_read(path, encoding=None, **kw):  # as pyreadstat: UTF-8 unless told, else the encoding given
        if encoding is None:
            raise UnicodeDecodeError("utf-8", b"\xe8", 0, 1, "invalid continuation byte")
        return raw.assign(AETERM=[t.encode("cp1252").decode(encoding) for t in raw.AETERM]), None

    study = make_study(tmp_path / "s", "csv", skip=("ae",))
    (study / "ae.sas7bdat").write_bytes(b"not really sas")
    monkeypatch.setattr(pyreadstat, "read_sas7bdat", fake_read)
    db = tmp_path / "db.duckdb"
    r = ingest_study(study, db, run_derivations=False)
    assert r.notes == ["ae.sas7bdat: not UTF-8: its other bytes were read as Windows-1252"]
    assert q(db, "SELECT aeterm FROM adverse_events WHERE event_key = 'S-001/AE/1'").aeterm[0] == "Fièvre ’38,5’"
    reconciles(db)


def _workbook(path, rows: list[list], merge: str | None = None, title: str = "AE") -> None:
    import openpyxl
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = title
    for row in rows:
        ws.append(row)
    if merge:
        ws.merge_cells(merge)
    wb.save(path)


def test_a_workbook_with_a_title_above_its_header_is_refused_in_one_line(tmp_path):
    """A listing's caption in row 1 (merged across the columns, the header in row 2) loaded with exit 0 and every
    row quarantined for a missing USUBJID, with a note of ten 'Unnamed: n' columns. It is refused as a CSV file
    with a title line is."""
    study = make_study(tmp_path / "s", "csv", skip=("ae",))
    rows = [list(AE.columns)] + AE.astype(object).values.tolist()
    _workbook(study / "ae.xlsx", [["Listing 16.2.7 Adverse events"]] + rows, merge="A1:M1")
    db = tmp_path / "db.duckdb"
    with pytest.raises(IngestError) as exc:
        ingest_study(study, db, run_derivations=False)
    assert str(exc.value) == ("ae.xlsx: sheet 'AE' row 1 is a title ('Listing 16.2.7 Adverse events'), not the header "
                              "row; remove the rows above the column names")
    assert not db.exists()
    p = cli(study, db)
    assert (p.returncode, p.stderr.strip()) == (2, f"error: {exc.value}")
    _workbook(study / "ae.xlsx", [[]] + rows)  # the header one row down, below an empty row
    with pytest.raises(IngestError) as exc:
        ingest_study(study, db, run_derivations=False)
    assert str(exc.value) == ("ae.xlsx: sheet 'AE' row 1 is empty, not the header row; remove the rows above the "
                              "column names")


def test_a_workbook_header_with_an_empty_cell_above_values_is_refused_naming_the_cell(tmp_path):
    """A column whose header cell is empty has no variable to be read as ('Unnamed: 3' to pandas): its values were
    left out with a note naming a column nobody delivered. The workbook is refused naming the cell; an empty
    column between the named ones (no header, no values) holds nothing and loads without a word."""
    study = make_study(tmp_path / "s", "csv", skip=("ae",))
    header = list(AE.columns)
    values = AE.astype(object).values.tolist()
    blank = header.index("AETOXGR")
    _workbook(study / "ae.xlsx", [header[:blank] + [None] + header[blank + 1:]] + values)
    db = tmp_path / "db.duckdb"
    p = cli(study, db)
    letter = "ABCDEFGHIJKLM"[blank]
    assert (p.returncode, p.stderr.strip()) == (
        2, f"error: ae.xlsx: sheet 'AE' cell {letter}1 is empty above a column of values; write the column's "
           "name there, or delete the column")
    assert not db.exists()
    _workbook(study / "ae.xlsx", [r[:blank] + [None] + r[blank:] for r in [header] + values])
    r = ingest_study(study, db, run_derivations=False)
    assert r.notes == []
    assert next(f for f in r.files if f.source_file == "ae.xlsx").rows_loaded == 3
    reconciles(db)


def test_age_is_kept_in_years_whatever_its_unit_and_an_age_unit_not_known_is_quarantined(tmp_path):
    """AGE is converted to years by its AGEU (the CDISC terms and the spellings sponsors use, any case) before the
    0-120 years check and before it is stored: 30 MONTHS is a child of 2.5, not an adult of 30. An AGEU that is
    no unit of age quarantines the DM row, and the subject's other records with it."""
    extra = pd.DataFrame({"STUDYID": DM.STUDYID[0], "DOMAIN": "DM", "RFICDTC": "2024-01-10",
                          "USUBJID": [f"S-1{i:02d}" for i in range(11)],
                          "AGE": ["26", "12", "104", "730", "8766", "52", "40", "7", "1e308", "6", "3"],
                          "AGEU": ["months", "MO", "WKS", "D", "HOURS", "Yr", "", "YEAR", "YEAR", "Mos", "y"]})
    dm = pd.concat([DM.astype(str), extra], ignore_index=True).fillna("")
    dm.loc[0:4, "AGEU"] = ["YRS", "Y", "MONTHS", "YEAR", "QUARTERS"]
    dm.loc[0:4, "AGE"] = ["250", "-4", "30", "1e308", "40"]
    study = make_study(tmp_path / "s", "csv", domains=dict(DOMAINS, dm=dm))
    db = tmp_path / "db.duckdb"
    ingest_study(study, db, run_derivations=False)
    assert quarantined(db, "source_file = 'dm.csv'") == [
        ["dm.csv", 1, "AGE", "implausible AGE 250 (plausible: 0-120 years)"],
        ["dm.csv", 2, "AGE", "implausible AGE -4 (plausible: 0-120 years)"],
        ["dm.csv", 4, "AGE", "implausible AGE 1e308 (plausible: 0-120 years)"],
        ["dm.csv", 5, "AGEU", "AGEU 'QUARTERS' is not a unit of age (YEARS, MONTHS, WEEKS, DAYS, HOURS)"],
        ["dm.csv", 14, "AGE", "implausible AGE 1e308 (plausible: 0-120 years)"],
    ]
    ages = q(db, "SELECT usubjid, age FROM subjects ORDER BY usubjid")
    assert dict(zip(ages.usubjid, ages.age.round(6))) == {
        "S-003": 2.5, "S-100": 2.166667, "S-101": 1.0, "S-102": 1.993155, "S-103": 1.998631, "S-104": 1.0,
        "S-105": 52.0, "S-106": 40.0, "S-107": 7.0, "S-109": 0.5, "S-110": 3.0}
    # the other records of a subject whose DM row is quarantined follow it into quarantine
    assert quarantined(db, "source_file = 'ae.csv' AND usubjid = 'S-005'") == [] and \
        quarantined(db, "source_file = 'ex.csv' AND usubjid IN ('S-001', 'S-004')") == [
            ["ex.csv", 1, "USUBJID", "subject S-001 has a quarantined DM record"],
            ["ex.csv", 2, "USUBJID", "subject S-001 has a quarantined DM record"],
            ["ex.csv", 3, "USUBJID", "subject S-001 has a quarantined DM record"],
            ["ex.csv", 5, "USUBJID", "subject S-004 has a quarantined DM record"],
        ]
    reconciles(db)


def test_an_age_unit_without_an_age_is_not_checked(tmp_path):
    dm = DM.astype(str)
    dm["AGEU"] = "YEARS"
    dm.loc[1, ["AGE", "AGEU"]] = ["", "QUARTERS"]
    study = make_study(tmp_path / "s", "csv", domains=dict(DOMAINS, dm=dm))
    db = tmp_path / "db.duckdb"
    ingest_study(study, db, run_derivations=False)
    assert quarantined(db, "source_file = 'dm.csv'") == []
    assert q(db, "SELECT age FROM subjects WHERE usubjid = 'S-002'").age.isna().all()


def _other_study_rows() -> dict:
    """The fixture study with records of study OTHER-STUDY-99 in DM, AE, LB, SUPPAE and the CRS file, a LB STUDYID
    padded with spaces and a CM STUDYID left empty."""
    other = "OTHER-STUDY-99"
    dm, ae, lb, cm = DM.astype(str), AE.astype(str), LB.astype(str), CM.astype(str)
    dm.loc[4, "STUDYID"] = other  # S-005
    ae.loc[[0, 4], "STUDYID"] = other  # S-001 AESEQ 1 and 3
    lb.loc[0, "STUDYID"] = f" {DM.STUDYID[0]} "
    lb.loc[1, "STUDYID"] = other
    cm.loc[0, "STUDYID"] = ""
    suppae = SUPPAE.astype(str)
    suppae.loc[0, "STUDYID"] = other  # qualifies S-001 AESEQ 2, which loads
    crs = DOMAINS["crs_assessments"].copy()
    crs.insert(0, "STUDYID", [other, DM.STUDYID[0], DM.STUDYID[0]])
    return dict(DOMAINS, dm=dm, ae=ae, lb=lb, cm=cm, suppae=suppae, crs_assessments=crs)


def test_a_record_of_another_study_is_quarantined_in_every_domain_and_an_empty_studyid_loads(tmp_path):
    study = make_study(tmp_path / "s", "csv", domains=_other_study_rows())
    db = tmp_path / "db.duckdb"
    ingest_study(study, db, run_derivations=False)
    reason = "STUDYID 'OTHER-STUDY-99' is not this study's (CT-TEST-01)"
    assert quarantined(db, "field = 'STUDYID'") == [
        ["ae.csv", 1, "STUDYID", reason], ["ae.csv", 5, "STUDYID", reason],
        ["crs_assessments.csv", 1, "STUDYID", reason], ["dm.csv", 5, "STUDYID", reason],
        ["lb.csv", 2, "STUDYID", reason], ["suppae.csv", 1, "STUDYID", reason]]
    assert quarantined(db, "source_file = 'suppae.csv' AND row_number = 2") == [
        ["suppae.csv", 2, "IDVARVAL", "the AE record it qualifies is quarantined"]]
    assert q(db, "SELECT aeseq FROM adverse_events WHERE usubjid = 'S-001' ORDER BY 1").aeseq.tolist() == [2]
    assert q(db, "SELECT lbseq FROM labs WHERE usubjid = 'S-001' ORDER BY 1").lbseq.tolist() == [1, 3, 4]
    assert q(db, "SELECT cmseq FROM medications WHERE usubjid = 'S-001' ORDER BY 1").cmseq.tolist() == [1, 2]
    assert "S-005" not in q(db, "SELECT usubjid FROM subjects").usubjid.tolist()
    assert set(q(db, "SELECT DISTINCT studyid FROM adverse_events UNION SELECT studyid FROM labs").studyid) == \
        {"CT-TEST-01"}
    reconciles(db)


def test_a_study_named_otherwise_in_study_yaml_takes_the_records_of_its_dm_study(tmp_path):
    """study.yaml's studyid names the study DM calls CT-TEST-01 (noted on dm.csv): records of CT-TEST-01 are this
    study's; those of a third study are not. A study named after its folder (no STUDYID in DM, no study.yaml
    studyid) checks no record's STUDYID."""
    study = make_study(tmp_path / "s", "csv", domains=dict(_other_study_rows(), dm=DM),
                       study_yaml="studyid: ALIAS-01\nproduct: CTX-101\n")
    db = tmp_path / "db.duckdb"
    result = ingest_study(study, db, run_derivations=False)
    assert quarantined(db, "field = 'STUDYID'") == [
        ["ae.csv", 1, "STUDYID", "STUDYID 'OTHER-STUDY-99' is not this study's (ALIAS-01)"],
        ["ae.csv", 5, "STUDYID", "STUDYID 'OTHER-STUDY-99' is not this study's (ALIAS-01)"],
        ["crs_assessments.csv", 1, "STUDYID", "STUDYID 'OTHER-STUDY-99' is not this study's (ALIAS-01)"],
        ["lb.csv", 2, "STUDYID", "STUDYID 'OTHER-STUDY-99' is not this study's (ALIAS-01)"],
        ["suppae.csv", 1, "STUDYID", "STUDYID 'OTHER-STUDY-99' is not this study's (ALIAS-01)"]]
    assert "dm.csv: STUDYID CT-TEST-01 in the file, ALIAS-01 in study.yaml: loaded as ALIAS-01" in result.notes
    domains = dict(DOMAINS, dm=DM.drop(columns="STUDYID"))
    domains["ae"] = AE.assign(STUDYID="ANY-STUDY")
    folder = make_study(tmp_path / "folder", "csv", domains=domains, study_yaml=None)
    ingest_study(folder, tmp_path / "db2.duckdb", run_derivations=False)
    assert quarantined(tmp_path / "db2.duckdb", "field = 'STUDYID'") == []


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("zone", [None, "UTC", "Asia/Shanghai"])
def test_parquet_timestamps_of_every_precision_read_as_the_sites_clock(tmp_path, unit, zone):
    """pyarrow writes nanoseconds by default, which DuckDB names TIMESTAMP_NS or, with a zone, TIMESTAMPTZ_NS: the
    file loads as one at microseconds does (the clock time in its zone), not refused by a cast error."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from test_ingest_fixtures import CRS
    crs = CRS.iloc[:2].copy()
    clock = pd.to_datetime(crs.CRSDTC.str.slice(0, 10) + "T06:00")
    stamps = pa.array(clock.dt.tz_localize(zone) if zone else clock).cast(pa.timestamp(unit, tz=zone))
    table = pa.Table.from_pandas(crs.drop(columns="CRSDTC"), preserve_index=False).append_column("CRSDTC", stamps)
    study = make_study(tmp_path / "s", "csv")
    (study / "crs_assessments.csv").unlink()
    pq.write_table(table, study / "crs_assessments.parquet")
    r = ingest_study(study, tmp_path / "db.duckdb", run_derivations=False)
    assert next(f for f in r.files if f.source_file == "crs_assessments.parquet").rows_quarantined == 0
    got = q(tmp_path / "db.duckdb", "SELECT crsdtc FROM crs_assessments ORDER BY usubjid, crsdtc").crsdtc.tolist()
    assert got == sorted(d + "T06:00" for d in crs.CRSDTC.str.slice(0, 10))


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_control_character_in_a_value_quarantines_its_row(tmp_path, fmt):
    """A NUL inside a preferred term is invisible in the listings but would count as a term of its own in the
    committee tables: the row is quarantined naming the field and the character, and the counts reconcile. A tab
    is whitespace the sender can see, and loads."""
    ae = AE.copy()
    ae.loc[0, "AETERM"] = ae.loc[0, "AEDECOD"] = "Cyto\x00kine release syndrome"
    ae.loc[1, "AETERM"] = "Fever\twith chills"
    study = make_study(tmp_path / "s", "csv", domains=dict(DOMAINS, ae=ae))
    if fmt == "parquet":
        (study / "ae.csv").unlink()
        ae.to_parquet(study / "ae.parquet", index=False)
    db = tmp_path / "db.duckdb"
    r = ingest_study(study, db, run_derivations=False)
    f = next(f for f in r.files if f.domain == "AE")
    assert f.rows_read == f.rows_loaded + f.rows_quarantined + f.rows_after_cutoff
    quarantined = q(db, "SELECT field, reason, raw_record FROM quarantine WHERE source_file = $f", {"f": f.source_file})
    assert len(quarantined) == f.rows_quarantined
    row = quarantined[quarantined.reason.str.startswith("control")]
    assert row[["field", "reason"]].values.tolist() == [["AEDECOD", "control character U+0000"]]
    loaded = q(db, "SELECT aeseq, aeterm FROM adverse_events WHERE usubjid = $u ORDER BY aeseq",
               {"u": ae.USUBJID[0]})
    assert int(ae.AESEQ[0]) not in loaded.aeseq.tolist()
    assert "Fever\twith chills" in loaded.aeterm.tolist()


def test_a_control_character_in_a_lab_text_result_or_test_code_quarantines_its_row(tmp_path):
    """The check reads a lab result's text only when it is no number (most results are): a text result 'abc' with a
    NUL, and a test code with an ESC, are quarantined naming their field; the numeric results load."""
    lb = LB.copy()
    lb.loc[5, "LBORRES"] = "ab\x00c"
    lb.loc[6, "LBTESTCD"] = "NEUT\x1b"
    study = make_study(tmp_path / "s", "csv", domains=dict(DOMAINS, lb=lb))
    db = tmp_path / "db.duckdb"
    r = ingest_study(study, db, run_derivations=False)
    f = next(f for f in r.files if f.domain == "LB")
    assert f.rows_read == f.rows_loaded + f.rows_quarantined + f.rows_after_cutoff
    got = q(db, "SELECT field, reason FROM quarantine WHERE source_file = $f AND reason LIKE 'control%' "
                "ORDER BY field", {"f": f.source_file})
    assert got.values.tolist() == [["LBORRES", "control character U+0000"], ["LBTESTCD", "control character U+001B"]]
    assert q(db, "SELECT lbseq FROM labs WHERE usubjid = 'S-002' AND lbseq IN (2, 3)").empty
    assert q(db, "SELECT count(*) AS n FROM labs WHERE usubjid = 'S-001'").n[0] == 4  # numbers and '<0.5' load


def test_a_long_csv_value_loads_and_one_too_long_is_named_as_such(tmp_path, monkeypatch):
    """A 2,000,000-character AETERM (quoted, the quote closed) loads as it is, from a regular file and from one
    the careful reader takes (a mixed line ending): it was refused with 'field larger than field limit (131072)
    (a quote that is not closed?)'. A value past the limit both readers apply is refused saying it is too long."""
    from safety.ingest import readers
    ae = AE.copy()
    ae.loc[0, "AETERM"] = "Cytokine release syndrome " + "x" * 2_000_000
    for name, ending in (("regular", "\n"), ("mixed", "\r\n")):
        study = make_study(tmp_path / name, "csv", domains=dict(DOMAINS, ae=ae))
        text = (study / "ae.csv").read_text()
        (study / "ae.csv").write_text(text.replace("\n", ending, 1) if ending != "\n" else text, newline="")
        db = tmp_path / f"{name}.duckdb"
        r = ingest_study(study, db, run_derivations=False)
        assert r.notes == []
        got = q(db, "SELECT length(aeterm) AS n FROM adverse_events WHERE usubjid = 'S-001' AND aeseq = 1").n
        assert got.tolist() == [len(ae.loc[0, "AETERM"])]
    monkeypatch.setattr(readers, "CSV_MAX_VALUE", 1_000_000)
    with pytest.raises(IngestError) as exc:
        ingest_study(tmp_path / "mixed", tmp_path / "too_long.duckdb", run_derivations=False)
    assert str(exc.value) == "ae.csv: line 2: a value longer than 1,000,000 characters, the most celltox reads in one field"


@pytest.mark.parametrize("column, values, says", [
    ("AETERM", lambda terms: [[t, "b"] for t in terms], "a list in each row (VARCHAR[])"),
    ("AETOXGR", lambda grades: [{"g": int(g)} for g in grades], "a struct in each row (STRUCT(g BIGINT))"),
])
def test_a_parquet_column_of_lists_or_structs_is_refused_naming_it(tmp_path, column, values, says):
    """A list column in AETERM loaded as its printed form ('[Cytokine release syndrome, b]') without a word, and
    every AE with it: the file is refused naming the column (a column of another name is not read, and loads)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    study = make_study(tmp_path / "s", "csv")
    (study / "ae.csv").unlink()
    table = pa.Table.from_pandas(AE.drop(columns=column).astype(str), preserve_index=False)
    pq.write_table(table.append_column(column, pa.array(values(AE[column].tolist()))), study / "ae.parquet")
    with pytest.raises(IngestError) as exc:
        ingest_study(study, tmp_path / "db.duckdb", run_derivations=False)
    assert str(exc.value) == f"ae.parquet: the column '{column}' holds {says}, not one value; deliver {column} as plain values"
    pq.write_table(table.append_column(column, pa.array(AE[column].astype(str).tolist()))
                   .append_column("SPONSOR_TAGS", pa.array([["a"]] * len(AE))), study / "ae.parquet")
    r = ingest_study(study, tmp_path / "db.duckdb", run_derivations=False)
    assert next(f for f in r.files if f.source_file == "ae.parquet").rows_read == len(AE)


def test_only_columns_whose_distinct_values_hold_a_control_character_are_read_row_by_row():
    """The distinct values decide which columns the row-by-row check reads: a clean column, or one empty in every
    row, is not read again; a column with one bad value among many clean ones is."""
    from safety.ingest.readers import columns_with_control_characters
    rel = ("(SELECT 'NEUT' AS a, CASE WHEN i = 700 THEN 'mmol/L\x07' ELSE 'mmol/L' END AS b, "
           "CAST(NULL AS VARCHAR) AS c FROM range(1000) t(i))")
    con = duckdb.connect()
    assert con.execute(columns_with_control_characters(["a", "b", "c"], rel)).fetchone() == (False, True, False)


def test_a_control_character_in_a_parquet_lab_unit_quarantines_only_its_row(tmp_path):
    """In a Parquet delivery, a unit with a BEL among thousands of clean ones is found and its row quarantined,
    naming LBORRESU; every other row of that test and unit loads."""
    lb = LB.copy()
    lb.loc[3, "LBORRESU"] = str(lb.loc[3, "LBORRESU"]) + "\x07"
    study = make_study(tmp_path / "s", "parquet", domains=dict(DOMAINS, lb=lb))
    db = tmp_path / "db.duckdb"
    r = ingest_study(study, db, run_derivations=False)
    f = next(f for f in r.files if f.domain == "LB")
    assert f.rows_read == f.rows_loaded + f.rows_quarantined + f.rows_after_cutoff
    got = q(db, "SELECT field, reason FROM quarantine WHERE source_file = $f AND reason LIKE 'control%'",
            {"f": f.source_file})
    assert got.values.tolist() == [["LBORRESU", "control character U+0007"]]
    clean = ingest_study(make_study(tmp_path / "clean", "parquet"), tmp_path / "clean.duckdb", run_derivations=False)
    assert f.rows_loaded == next(f for f in clean.files if f.domain == "LB").rows_loaded - 1
    assert q(db, "SELECT lbseq FROM labs WHERE usubjid = $u AND lbseq = $s",
             {"u": lb.USUBJID[3], "s": int(lb.LBSEQ[3])}).empty

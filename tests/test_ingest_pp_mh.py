"""PP (the sponsor's kinetic parameters) and MH (medical history) delivered as SDTM: loaded, bad rows quarantined
with their reason, every file reconciled, and read by the kinetics comparison and the malignancy derivations."""
from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from safety.ingest import ingest_study
from test_ingest_fixtures import DOMAINS, STUDY, make_study

# S-001 infused 2024-02-01 (day 0); S-002 on 2024-02-10
PC = pd.DataFrame({
    "STUDYID": STUDY, "USUBJID": ["S-001"] * 4, "PCSEQ": [1, 2, 3, 4],
    "PCTESTCD": ["CARTGDNA"] * 4, "PCTEST": ["CAR transgene copies"] * 4,
    "PCORRES": ["BLQ", "1000", "400", "100"], "PCSTRESN": ["", "1000", "400", "100"],
    "PCSTRESU": ["copies/ug gDNA"] * 4, "PCLLOQ": ["50"] * 4,
    "PCDTC": ["2024-02-01", "2024-02-08", "2024-02-15", "2024-02-29"],
})
PP = pd.DataFrame({
    "STUDYID": STUDY, "USUBJID": ["S-001", "S-001", "S-001", "S-001", "S-001", "S-404", "S-001"],
    "PPSEQ": [1, 2, 3, 4, 5, 1, 5],
    "PPTESTCD": ["CMAX", "TMAX", "AUCINT", "AUCINT", "LAMZHL", "CMAX", "CMAX"],
    "PPCAT": ["CARTGDNA", "CAR transgene copies", "CARTGDNA", "CARTGDNA", "CARTGDNA", "CARTGDNA", "CARTGDNA"],
    "PPORRES": ["1500", "168", "11900", "-5", "12.5", "900", "1000"],
    "PPSTRESN": ["1500", "168", "11900", "-5", "12.5", "900", "1000"],
    "PPSTRESU": ["copies/ug gDNA", "h", "day*copies/ug gDNA", "day*copies/ug gDNA", "day", "copies/ug gDNA",
                 "copies/ug gDNA"],
    "PPSTINT": ["", "", "P0D", "P0D", "", "", ""],
    "PPENINT": ["", "", "PT672H", "P28D", "", "", ""],
    "PPRFTDTC": ["2024-02-01"] * 7,
})
MH = pd.DataFrame({
    "STUDYID": STUDY, "USUBJID": ["S-001", "S-001", "S-001", "S-002", "S-002"],
    "MHSEQ": [1, 2, 3, 1, 1],
    "MHTERM": ["Basal cell carcinoma", "Squamous cell carcinoma of skin", "Hypertension", "Asthma", "Asthma again"],
    "MHDECOD": ["Basal cell carcinoma", "Squamous cell carcinoma of skin", "Hypertension", "Asthma", "Asthma"],
    "MHCAT": ["GENERAL MEDICAL HISTORY"] * 5,
    "MHSTDTC": ["2019-05", "2024-06-09", "2015", "2010", "2011"],
    "MHDTC": ["2024-01-10", "2024-07-01", "2024-01-10", "2024-01-20", "2024-01-20"],
})


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    root = tmp_path_factory.mktemp("ppmh")
    study = make_study(root / "s", "csv", domains={**DOMAINS, "pc": PC, "pp": PP, "mh": MH})
    path = root / "db.duckdb"
    r = ingest_study(study, path, cutoff="2024-09-30")
    assert "PP" in r.domains_present and "MH" in r.domains_present
    con = duckdb.connect(str(path), read_only=True)
    yield con
    con.close()


def rows(con, sql):
    return con.sql(sql).to_arrow_table().to_pandas()


def test_pp_and_mh_rows_load_or_are_quarantined_with_their_reason(db):
    q = rows(db, "SELECT source_file, row_number, usubjid, field, reason FROM quarantine "
                 "WHERE source_file IN ('pp.csv', 'mh.csv') ORDER BY source_file, row_number")
    got = {(f, n): reason for f, n, reason in zip(q.source_file, q.row_number, q.reason)}
    assert got == {("pp.csv", 4): got[("pp.csv", 4)],               # a negative AUC
                   ("pp.csv", 6): "subject S-404 not in DM",
                   ("pp.csv", 7): "duplicate key (USUBJID + PPSEQ) of pp.csv row 5; the first record is kept",
                   ("mh.csv", 5): "duplicate key (USUBJID + MHSEQ) of mh.csv row 4; the first record is kept"}
    assert got[("pp.csv", 4)].startswith("implausible PPSTRESN -5")
    log = rows(db, "SELECT source_file, rows_read, rows_loaded, rows_quarantined, rows_after_cutoff FROM load_log "
                   "WHERE source_file IN ('pp.csv', 'mh.csv') ORDER BY source_file")
    assert log.values.tolist() == [["mh.csv", 5, 4, 1, 0], ["pp.csv", 7, 4, 3, 0]]
    pp = rows(db, "SELECT pptestcd, ppcat, value, unit, interval_start_day, interval_end_day FROM pk_parameters ORDER BY ppseq")
    assert pp.pptestcd.tolist() == ["CMAX", "TMAX", "AUCINT", "LAMZHL"]
    assert (pp.interval_start_day[2], pp.interval_end_day[2]) == (0.0, 28.0)  # PT672H = 28 days
    mh = rows(db, "SELECT mhterm, start_day, coalesce(mhst_date_flag, '') AS flag, collection_day FROM medical_history ORDER BY usubjid, mhseq")
    # 2019-05 -> 2019-05-01 (day imputed): 1737 days before 2024-02-01; 2024-06-09 is day 129
    assert mh.values.tolist()[:2] == [["Basal cell carcinoma", -1737, "D", -22],
                                      ["Squamous cell carcinoma of skin", 129, "", 151]]


def test_pp_compared_and_mh_malignancies_counted(db):
    k = rows(db, "SELECT pptestcd, status, celltox_value, sponsor_value FROM kinetics_comparison ORDER BY ppseq")
    # celltox: Cmax 1000 on day 7, AUC 0-28 = 7*1000/2 + 7*1400/2 + 14*500/2 = 11900
    assert k.values.tolist() == [["CMAX", "differs", 1000.0, 1500.0], ["TMAX", "agree", 7.0, 168.0],
                                 ["AUCINT", "agree", 11900.0, 11900.0]]
    new = rows(db, "SELECT usubjid, term, source, latency_days FROM secondary_malignancies")
    assert new.values.tolist() == [["S-001", "Squamous cell carcinoma of skin", "MH", 129]]
    prior = rows(db, "SELECT usubjid, term, start_day FROM prior_malignancies")
    assert prior.values.tolist() == [["S-001", "Basal cell carcinoma", -1737]]


def test_pc_text_result_that_is_no_number_is_quarantined_not_loaded_without_a_value(tmp_path):
    """'1,000' and '>ULOQ' loaded as samples of no value and left the kinetics without a word; below-LLOQ texts,
    '<5', numbers and a sample not done load as before."""
    texts = ["1,000", ">ULOQ", "BLQ", "<5", "12.5", "", "not detected"]
    pc = pd.DataFrame({
        "STUDYID": STUDY, "USUBJID": ["S-001"] * 7, "PCSEQ": list(range(1, 8)), "PCTESTCD": ["CARTGDNA"] * 7,
        "PCORRES": texts, "PCSTRESU": ["copies/ug gDNA"] * 7, "PCSTAT": ["", "", "", "", "", "NOT DONE", ""],
        "PCDTC": [f"2024-02-{d:02d}" for d in range(2, 9)],
    })
    db = tmp_path / "db.duckdb"
    ingest_study(make_study(tmp_path / "s", "csv", domains={**DOMAINS, "pc": pc}), db, cutoff="2024-09-30",
                 run_derivations=False)
    con = duckdb.connect(str(db), read_only=True)
    quarantined = con.sql("SELECT row_number, field, reason FROM quarantine WHERE source_file = 'pc.csv' "
                          "ORDER BY row_number").fetchall()
    loaded = con.sql("SELECT pcseq, value, below_lloq FROM pc_concentrations ORDER BY pcseq").fetchall()
    log = con.sql("SELECT rows_read, rows_loaded, rows_quarantined FROM load_log WHERE source_file = 'pc.csv'").fetchall()
    con.close()
    assert quarantined == [(1, "PCORRES", "non-numeric result '1,000'"), (2, "PCORRES", "non-numeric result '>ULOQ'")]
    assert loaded == [(3, None, True), (4, 5.0, True), (5, 12.5, False), (6, None, None), (7, None, True)]
    assert log == [(7, 5, 2)]


def test_a_pc_result_above_the_assays_upper_limit_is_a_lower_bound_not_an_exact_peak(tmp_path):
    """A qPCR peak reported above the assay's range ('>100000', the sample not re-assayed diluted) lies above its
    bound: it loaded as exactly 100000 with nothing to say so, and Cmax (and the AUC it enters) read as exact values
    in the page and the packet listing. The sample is still used (it is the peak: leaving it out would report a
    lower Cmax), with its sign in values_used and a note that Cmax and the AUC are lower bounds."""
    pc = pd.DataFrame({
        "STUDYID": STUDY, "USUBJID": ["S-001"] * 4, "PCSEQ": [1, 2, 3, 4], "PCTESTCD": ["CARTGDNA"] * 4,
        "PCORRES": ["<50", ">100000", "30000", "800"], "PCSTRESU": ["copies/ug gDNA"] * 4, "PCLLOQ": ["50"] * 4,
        "PCDTC": ["2024-02-01", "2024-02-08", "2024-02-15", "2024-02-29"],     # days 0, 7, 14, 28
    })
    db = tmp_path / "db.duckdb"
    ingest_study(make_study(tmp_path / "s", "csv", domains={**DOMAINS, "pc": pc}), db, cutoff="2024-09-30")
    con = duckdb.connect(str(db), read_only=True)
    try:
        k = con.sql("SELECT cmax, tmax_day, auc_0_28, values_used FROM cellular_kinetics").fetchall()
        assert k == [(100000.0, 7, 350000.0 + 455000.0 + 215600.0,
                      "0:BLQ; 7:>100000; 14:30000; 28:800; Cmax and AUC are lower bounds: 1 sample above the assay's "
                      "upper limit")]
        loaded = con.sql("SELECT pcseq, value, below_lloq, above_uloq FROM pc_concentrations ORDER BY pcseq").fetchall()
        assert loaded == [(1, 50.0, True, False), (2, 100000.0, False, True), (3, 30000.0, False, False),
                          (4, 800.0, False, False)]
    finally:
        con.close()


def compared(tmp_path, pp: pd.DataFrame, columns: str, pc: pd.DataFrame = PC) -> list[tuple]:
    """``columns`` of kinetics_comparison, by subject and PPSEQ, after a real load of the fixture study with ``pc``
    and ``pp``."""
    db = tmp_path / "db.duckdb"
    ingest_study(make_study(tmp_path / "s", "csv", domains={**DOMAINS, "pc": pc, "pp": pp}), db, cutoff="2024-09-30")
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.sql(f"SELECT {columns} FROM kinetics_comparison ORDER BY usubjid, ppseq").fetchall()
    finally:
        con.close()


def test_a_sponsor_bone_marrow_parameter_is_not_compared_with_the_blood_value(tmp_path):
    """celltox's parameters are of peripheral blood. A sponsor's bone-marrow Cmax (PPSPEC BONE MARROW) was set beside
    the blood Cmax and shown as 'differs'; its flow-cytometry unit also decided whether the blood Cmax and AUC could be
    compared at all. The marrow row now says it is another specimen and carries no celltox value; the blood rows (and
    one without PPSPEC, taken as blood) are compared as before."""
    pp = pd.DataFrame({
        "STUDYID": STUDY, "USUBJID": ["S-001"] * 4, "PPSEQ": [1, 2, 3, 4],
        "PPTESTCD": ["CMAX", "CMAX", "AUCINT", "TMAX"], "PPCAT": ["CARTGDNA"] * 4,
        "PPORRES": ["1000", "5000", "11900", "7"], "PPSTRESN": ["1000", "5000", "11900", "7"],
        "PPSTRESU": ["copies/ug gDNA", "cells/uL", "day*copies/ug gDNA", "day"],
        "PPSPEC": ["BLOOD", "BONE MARROW", "", "BONE MARROW"],
        "PPSTINT": ["", "", "P0D", ""], "PPENINT": ["", "", "P28D", ""], "PPRFTDTC": ["2024-02-01"] * 4,
    })
    got = compared(tmp_path, pp, "pptestcd, sponsor_value, celltox_value, celltox_unit, difference, status")
    assert got == [("CMAX", 1000.0, 1000.0, "copies/ug gDNA", 0.0, "agree"),
                   ("CMAX", 5000.0, None, None, None, "specimen not blood"),
                   ("AUCINT", 11900.0, 11900.0, "day*copies/ug gDNA", 0.0, "agree"),
                   ("TMAX", 7.0, None, None, None, "specimen not blood")]


def test_a_sponsor_unit_spelt_with_the_micro_sign_is_the_pc_unit(tmp_path):
    """The sponsor writes 'copies/µg gDNA' where PC has 'copies/ug gDNA': one unit, as the load and the kinetics
    read units. The comparison took them for two ('unit differs') and compared neither Cmax nor the AUC."""
    pp = pd.DataFrame({
        "STUDYID": STUDY, "USUBJID": ["S-001"] * 2, "PPSEQ": [1, 2], "PPTESTCD": ["CMAX", "AUCINT"],
        "PPCAT": ["CARTGDNA"] * 2, "PPORRES": ["1020", "14000"], "PPSTRESN": ["1020", "14000"],
        "PPSTRESU": ["copies/µg gDNA", "day*copies/µg gDNA"], "PPSTINT": ["", "P0D"], "PPENINT": ["", "P28D"],
        "PPRFTDTC": ["2024-02-01"] * 2,
    })
    got = compared(tmp_path, pp, "pptestcd, celltox_value, difference_pct, status")
    # celltox: Cmax 1000, AUC 0-28 11900; the sponsor's AUC is 17.6% higher, beyond the 10% tolerance
    assert got == [("CMAX", 1000.0, 2.0, "agree"), ("AUCINT", 11900.0, 17.6, "differs")]

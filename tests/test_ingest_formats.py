"""Every delivery format loads to the same database; split domains, SUPP merging, labels and lower-case headers."""
from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from safety.ingest import ingest_study
from test_ingest_fixtures import AE, DM, LB, SUPPAE, make_study


def q(db, sql, params=None):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.sql(sql, params=params or {}).to_arrow_table().to_pandas()
    finally:
        con.close()


SNAPSHOT_SQL = {
    "subjects": "SELECT usubjid, age, cohort, dose_level, first_infusion_date, infusion_source, status FROM subjects ORDER BY usubjid",
    "adverse_events": "SELECT event_key, aetoxgr, aest_date, aeen_date, onset_day, ongoing, supp_aeicu FROM adverse_events ORDER BY event_key",
    "labs": "SELECT usubjid, lbtestcd, value, unit, lln, uln, censored FROM labs ORDER BY usubjid, lbtestcd",
    "quarantine": "SELECT source_file, row_number, field FROM quarantine ORDER BY source_file, row_number",
}


@pytest.mark.parametrize("fmt", ["csv", "parquet", "xlsx", "xpt"])
def test_each_format_loads_the_same_rows(tmp_path, fmt):
    study = make_study(tmp_path / fmt, fmt)
    db = tmp_path / f"{fmt}.duckdb"
    r = ingest_study(study, db, run_derivations=False)
    assert r.studyid == "CT-TEST-01"
    assert str(r.data_cut) == "2024-05-01"  # latest date in the delivery (S-005's consent)
    assert {f.file_format for f in r.files} == {fmt}
    subj = q(db, SNAPSHOT_SQL["subjects"])
    assert list(subj.usubjid) == ["S-001", "S-002", "S-003", "S-004", "S-005"]
    assert subj.age.tolist() == [54.0, 61.0, 45.0, 70.0, 38.0]
    labs = q(db, SNAPSHOT_SQL["labs"])
    bili = labs[(labs.usubjid == "S-001") & (labs.lbtestcd == "BILI")].iloc[0]
    assert bili.value == pytest.approx(1.2 * 17.1) and bili.unit == "umol/L" and bili.uln == pytest.approx(20.52)
    # the xpt, csv, parquet and xlsx deliveries give identical tables
    if fmt != "csv":
        ref = tmp_path / "ref.duckdb"
        ingest_study(make_study(tmp_path / "ref", "csv"), ref, run_derivations=False)
        for name, sql in SNAPSHOT_SQL.items():
            got = q(db, sql).drop(columns=["source_file"], errors="ignore")
            exp = q(ref, sql).drop(columns=["source_file"], errors="ignore")
            pd.testing.assert_frame_equal(got, exp, check_dtype=False, obj=name)


def test_sas7bdat_reader_path(tmp_path, monkeypatch):
    # pyreadstat cannot write sas7bdat: the reader path is exercised with read_sas7bdat returning a frame
    import pyreadstat
    study = make_study(tmp_path / "s", "csv")
    (study / "dm.csv").unlink()
    (study / "dm.sas7bdat").write_bytes(b"not really sas")
    calls = []

    def fake_read(path, **kw):
        calls.append(path)
        return DM.copy(), None

    monkeypatch.setattr(pyreadstat, "read_sas7bdat", fake_read)
    r = ingest_study(study, tmp_path / "db.duckdb", run_derivations=False)
    assert calls and calls[0].endswith("dm.sas7bdat")
    dm = [f for f in r.files if f.domain == "DM"][0]
    assert (dm.file_format, dm.rows_read, dm.rows_loaded) == ("sas7bdat", 5, 5)


def test_split_domain_files_are_combined(tmp_path):
    study = make_study(tmp_path / "s", "csv", skip=("lb",))
    LB.iloc[:4].to_csv(study / "lbch.csv", index=False)
    LB.iloc[4:].to_parquet(study / "lbhe.parquet", index=False)  # split across formats too
    db = tmp_path / "db.duckdb"
    r = ingest_study(study, db, run_derivations=False)
    lb_files = {f.source_file: (f.domain, f.rows_read) for f in r.files if f.domain == "LB"}
    assert lb_files == {"lbch.csv": ("LB", 4), "lbhe.parquet": ("LB", 4)}
    assert q(db, "SELECT count(*) n FROM labs").n[0] == 6  # 8 rows, 2 quarantined (unknown unit, 'abc')


def test_supp_qualifiers_merge_onto_parent(tmp_path):
    db = tmp_path / "db.duckdb"
    ingest_study(make_study(tmp_path / "s", "csv"), db, run_derivations=False)
    ae = q(db, "SELECT event_key, supp_aeicu FROM adverse_events ORDER BY event_key")
    assert dict(zip(ae.event_key, ae.supp_aeicu.fillna("-"))) == {"S-001/AE/1": "N", "S-001/AE/2": "Y", "S-003/AE/1": "-"}
    subj = q(db, "SELECT usubjid, dose_level, supp_doselvl FROM subjects ORDER BY usubjid")
    assert subj.dose_level.tolist()[:3] == ["DL1 (1e6/kg)", "DL1 (1e6/kg)", "DL2"]
    # the qualifier for S-002 AESEQ 9 has no parent record: quarantined, not dropped
    qr = q(db, "SELECT source_file, field, reason FROM quarantine WHERE source_file = 'suppae.csv'")
    assert qr.field.tolist() == ["IDVARVAL"] and "no matching AE record" in qr.reason[0]


def test_labels_as_headers_and_lower_case_names(tmp_path):
    dm = DM.rename(columns={"USUBJID": "Unique Subject Identifier", "AGE": "age", "SITEID": "siteid"})
    ae = AE.rename(columns={"USUBJID": "Unique Subject Identifier", "AESEQ": "Sequence Number",
                            "AESTDTC": "Start Date/Time of Adverse Event", "AETOXGR": "aetoxgr"})
    study = make_study(tmp_path / "s", "csv", skip=("dm", "ae"))
    dm.to_csv(study / "dm.csv", index=False)
    ae.to_csv(study / "ae.csv", index=False)
    db = tmp_path / "db.duckdb"
    ingest_study(study, db, run_derivations=False)
    subj = q(db, "SELECT usubjid, age, siteid FROM subjects ORDER BY usubjid")
    assert subj.usubjid.tolist()[0] == "S-001" and subj.age[0] == 54 and subj.siteid[0] == "10"
    ae_db = q(db, "SELECT event_key, aetoxgr, aestdtc FROM adverse_events ORDER BY event_key")
    assert ae_db.event_key.tolist() == ["S-001/AE/1", "S-001/AE/2", "S-003/AE/1"]
    assert ae_db.aestdtc.tolist() == ["2024-02-02", "2024-02", "2024-03"]


def test_domain_from_domain_column_and_optional_domains_missing(tmp_path):
    study = make_study(tmp_path / "s", "csv", skip=("ex", "ae", "lb", "vs", "cm", "ds", "rs", "crs_assessments",
                                                     "icans_assessments", "suppae", "suppdm", "dm"))
    DM.to_csv(study / "demographics_export.csv", index=False)  # name does not tell; DOMAIN column does
    (study / "su.csv").write_text("USUBJID,SUTRT\nS-001,Tobacco\n")
    db = tmp_path / "db.duckdb"
    r = ingest_study(study, db, run_derivations=False)
    assert [f.domain for f in r.files] == ["DM"]
    assert r.skipped_files == ["su.csv"]
    assert r.domains_missing == ["EX", "AE", "LB", "VS", "CM", "RS", "DS", "QS", "PR", "FA", "CE", "CRS", "ICANS", "PC",
                                 "MB", "PP", "MH"]
    st = q(db, "SELECT domains_present, domains_missing FROM studies")
    assert list(st.domains_present[0]) == ["DM"] and "AE" in list(st.domains_missing[0])
    # no EX: day 0 from DM.RFXSTDTC
    s = q(db, "SELECT usubjid, first_infusion_date, infusion_source FROM subjects ORDER BY usubjid")
    assert str(s.first_infusion_date[0]) == "2024-02-01" and s.infusion_source[0] == "DM.RFXSTDTC"

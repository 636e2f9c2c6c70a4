"""Bad input is quarantined with a reason and the raw record; every file reconciles; dates, day 0, cutoff, reload."""
from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from safety.ingest import IngestError, ingest_study
from safety.ingest.domains import SPECS
from test_ingest_fixtures import AE, CM, CRS, DM, DOMAINS, EX, LB, STUDY, make_study


def q(db, sql, params=None):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.sql(sql, params=params or {}).to_arrow_table().to_pandas()
    finally:
        con.close()


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    root = tmp_path_factory.mktemp("val")
    study = make_study(root / "s", "csv")
    db = root / "db.duckdb"
    result = ingest_study(study, db, run_derivations=False)
    return db, result


def reasons(db):
    df = q(db, "SELECT source_file, row_number, usubjid, field, reason, raw_record FROM quarantine ORDER BY source_file, row_number")
    return {(r.source_file, r.row_number): (r.field, r.reason) for r in df.itertuples()}, df


def test_every_file_reconciles(loaded):
    db, result = loaded
    log = q(db, "SELECT * FROM load_log")
    assert len(log) == 12
    assert (log.rows_read == log.rows_loaded + log.rows_quarantined + log.rows_after_cutoff).all()
    assert all(len(h) == 64 for h in log.sha256)
    per_file = q(db, "SELECT source_file, count(*) n FROM quarantine GROUP BY ALL")
    merged = log.merge(per_file, on="source_file", how="left").fillna({"n": 0})
    assert (merged.rows_quarantined == merged.n).all()
    ae = log[log.source_file == "ae.csv"].iloc[0]
    assert (ae.rows_read, ae.rows_loaded, ae.rows_quarantined) == (7, 3, 4)
    assert result.quarantined == 9


def test_bad_rows_have_reasons_and_raw_records(loaded):
    db, _ = loaded
    r, df = reasons(db)
    assert r[("ae.csv", 3)] == ("AETOXGR", "AETOXGR 7 outside 1-5")
    assert r[("ae.csv", 5)] == ("AEENDTC", "AE end 2024-02-10 before start 2024-02-20")
    assert r[("ae.csv", 6)][0] == "AESEQ" and "duplicate key" in r[("ae.csv", 6)][1]
    assert r[("ae.csv", 7)] == ("USUBJID", "subject S-999 not in DM")
    assert r[("lb.csv", 5)][0] == "LBORRESU" and "unknown unit 'furlong' for BILI" in r[("lb.csv", 5)][1]
    assert r[("lb.csv", 6)] == ("LBORRES", "non-numeric result 'abc'")
    assert r[("crs_assessments.csv", 3)] == ("TEMP_C", "non-numeric value 'oops'")
    assert r[("icans_assessments.csv", 2)] == ("ICE_SCORE", "ICE_SCORE 11 outside 0-10")
    raw = json.loads(df[(df.source_file == "ae.csv") & (df.row_number == 7)].raw_record.iloc[0])
    assert raw["USUBJID"] == "S-999" and raw["AETERM"] == "Ghost" and raw["AESEQ"] == "1"


def test_duplicate_key_keeps_the_first(loaded):
    db, _ = loaded
    ae = q(db, "SELECT aeterm FROM adverse_events WHERE usubjid = 'S-002'")
    # S-002 AESEQ 1 appears twice: row 3 (grade 7, quarantined for that) and row 6 (duplicate, quarantined)
    assert ae.empty


def test_partial_dates_are_imputed_with_flags(loaded):
    db, _ = loaded
    ae = q(db, "SELECT event_key, aestdtc, aest_date, aest_date_flag, onset_day, ongoing, duration_days FROM adverse_events ORDER BY 1")
    crs = ae[ae.event_key == "S-001/AE/2"].iloc[0]
    assert crs.aestdtc == "2024-02" and str(crs.aest_date) == "2024-02-01" and crs.aest_date_flag == "D"
    # 2024-03 contains S-003's infusion (2024-03-12): imputed to day 0, not 2024-03-01
    s3 = ae[ae.event_key == "S-003/AE/1"].iloc[0]
    assert str(s3.aest_date) == "2024-03-12" and s3.onset_day == 0 and s3.ongoing
    assert s3.duration_days == (pd.Timestamp("2024-05-01") - pd.Timestamp("2024-03-12")).days + 1


def test_partial_end_date_not_after_death(tmp_path):
    ae = pd.DataFrame({"USUBJID": ["S-002"], "AESEQ": [5], "AETERM": ["Sepsis"], "AETOXGR": ["5"],
                       "AESTDTC": ["2024-03-15"], "AEENDTC": ["2024-03"], "AEOUT": ["FATAL"]})
    study = make_study(tmp_path / "s", "csv", skip=("ae", "suppae"))
    ae.to_csv(study / "ae.csv", index=False)
    db = tmp_path / "db.duckdb"
    ingest_study(study, db, run_derivations=False)
    row = q(db, "SELECT aeen_date, aeen_date_flag, end_day FROM adverse_events").iloc[0]
    assert str(row.aeen_date) == "2024-03-20" and row.aeen_date_flag == "D"  # death 2024-03-20, not 03-31


def test_day0_from_ex_and_lymphodepletion(loaded):
    db, _ = loaded
    s = q(db, "SELECT * FROM subjects ORDER BY usubjid").set_index("usubjid")
    assert str(s.loc["S-001", "first_infusion_date"]) == "2024-02-01" and s.loc["S-001", "infusion_source"] == "EX"
    assert s.loc["S-001", "lymphodepletion_start_day"] == -5
    assert s.loc["S-003", "infusion_source"] == "DM.RFXSTDTC"   # no EX record: DM anchors day 0
    assert s.loc["S-003", "lymphodepletion_start_day"] == -5    # fludarabine in CM
    assert not s.loc["S-004", "infused"] and s.loc["S-004", "status"] == "screened"
    assert s.loc["S-002", "status"] == "died" and s.loc["S-002", "death_day"] == 39
    assert s.loc["S-002", "death_cause"] == "Multi-organ failure"
    assert s.loc["S-001", "enrollment_order"] == 1 and s.loc["S-003", "enrollment_order"] == 3
    ex = q(db, "SELECT exseq, day, is_car_infusion FROM exposures WHERE usubjid = 'S-001' ORDER BY exseq")
    assert ex.day.tolist() == [-5, -5, 0] and ex.is_car_infusion.tolist() == [False, False, True]


def test_labs_converted_censored_and_upper_cased(loaded):
    db, _ = loaded
    lb = q(db, "SELECT * FROM labs WHERE usubjid = 'S-001' ORDER BY lbtestcd").set_index("lbtestcd")
    assert lb.loc["NEUT", "value"] == pytest.approx(1.5) and lb.loc["NEUT", "unit"] == "10^9/L"
    assert lb.loc["NEUT", "lln"] == pytest.approx(1.8) and lb.loc["NEUT", "value_source"] == "LBORRES x 0.001"
    assert lb.loc["CRP", "censored"] == "<" and lb.loc["CRP", "value"] == pytest.approx(5.0) and lb.loc["CRP", "lborres"] == "<0.5"
    assert lb.loc["ALT", "unit"] == "U/L" and lb.loc["ALT", "value_source"] == "LBORRES"  # not in the table: as given
    assert lb.loc["BILI", "lbnrind"] == "NORMAL"
    hgb = q(db, "SELECT value, unit FROM labs WHERE lbtestcd = 'HGB'").iloc[0]
    assert (hgb.value, hgb.unit) == (95.0, "g/L")


def test_missing_unit_loads_and_stresn_in_conventional_units_is_converted(tmp_path):
    lb = pd.DataFrame({"USUBJID": ["S-001", "S-001"], "LBSEQ": [1, 2], "LBTESTCD": ["CREAT", "GLUC"],
                       "LBSTRESN": ["1.0", "100"], "LBSTRESU": ["", "mg/dL"], "LBDTC": ["2024-02-02", "2024-02-02"]})
    study = make_study(tmp_path / "s", "csv", skip=("lb",))
    lb.to_csv(study / "lb.csv", index=False)
    db = tmp_path / "db.duckdb"
    ingest_study(study, db, run_derivations=False)
    got = q(db, "SELECT lbtestcd, value, unit FROM labs ORDER BY 1")
    assert got.value.tolist()[0] == 1.0 and pd.isna(got.unit[0])          # no unit: loaded, grading says why
    assert got.value[1] == pytest.approx(5.55) and got.unit[1] == "mmol/L"


def test_medication_start_time_kept_when_delivered(tmp_path):
    study = make_study(tmp_path / "s", "csv", skip=("cm",))
    cm = CM.copy()
    cm.loc[0, "CMSTDTC"] = "2024-02-03T18:30"
    cm.to_csv(study / "cm.csv", index=False)
    db = tmp_path / "db.duckdb"
    ingest_study(study, db, run_derivations=False)
    got = q(db, "SELECT cmtrt, cmst_date, start_time FROM medications ORDER BY usubjid, cmseq")
    assert str(got.start_time[0]) == "2024-02-03 18:30:00" and str(got.cmst_date[0]) == "2024-02-03"
    assert got.start_time[1:].isna().all()  # a date alone has no time


def test_aetoxgr_absent_keeps_severity(tmp_path):
    study = make_study(tmp_path / "s", "csv", skip=("ae", "suppae"))
    AE.drop(columns=["AETOXGR"]).iloc[:2].to_csv(study / "ae.csv", index=False)
    db = tmp_path / "db.duckdb"
    ingest_study(study, db, run_derivations=False)
    ae = q(db, "SELECT aetoxgr, aesev, grading_system FROM adverse_events ORDER BY aeseq")
    assert ae.aetoxgr.isna().all() and ae.aesev.tolist() == ["MILD", "MODERATE"]
    assert ae.grading_system.tolist() == ["severity", "severity"]


def test_unparseable_date_and_missing_required_column(tmp_path):
    study = make_study(tmp_path / "s", "csv", skip=("ex",))
    ex = EX.copy()
    ex.loc[1, "EXSTDTC"] = "2024-13-45"
    ex.to_csv(study / "ex.csv", index=False)
    LB.drop(columns=["LBTESTCD"]).to_csv(study / "lb.csv", index=False)
    db = tmp_path / "db.duckdb"
    r = ingest_study(study, db, run_derivations=False)
    qr = q(db, "SELECT source_file, field, reason FROM quarantine WHERE source_file IN ('ex.csv', 'lb.csv')")
    assert ("ex.csv", "EXSTDTC", "unparseable date '2024-13-45'") in set(map(tuple, qr.values))
    lbq = qr[qr.source_file == "lb.csv"]
    assert len(lbq) == 8 and set(lbq.reason) == {"required column LBTESTCD missing from file"}
    assert [f.rows_loaded for f in r.files if f.source_file == "lb.csv"] == [0]


def test_cutoff_leaves_out_later_records(tmp_path):
    study = make_study(tmp_path / "s", "csv")
    db = tmp_path / "db.duckdb"
    r = ingest_study(study, db, cutoff="2024-02-15", run_derivations=False)
    assert str(r.data_cut) == "2024-02-15"
    log = q(db, "SELECT source_file, rows_read, rows_loaded, rows_quarantined, rows_after_cutoff, cutoff FROM load_log").set_index("source_file")
    assert log.loc["ae.csv", "rows_after_cutoff"] == 1          # S-003's AE 2024-03
    assert log.loc["dm.csv", "rows_after_cutoff"] == 1          # S-005 consented after the cut (S-004 on it)
    assert str(log.loc["dm.csv", "cutoff"]) == "2024-02-15"
    s = q(db, "SELECT usubjid, death_date, status FROM subjects ORDER BY usubjid")
    assert s.usubjid.tolist() == ["S-001", "S-002", "S-003", "S-004"]
    assert s.death_date.isna().all() and s.status.tolist()[1] == "in follow-up"  # death 2024-03-20 not shown
    ae = q(db, "SELECT event_key, aeen_date, ongoing, aeout FROM adverse_events ORDER BY 1")
    assert ae.ongoing.tolist() == [False, False]


def test_ae_ending_after_cut_is_ongoing(tmp_path):
    study = make_study(tmp_path / "s", "csv")
    db = tmp_path / "db.duckdb"
    ingest_study(study, db, cutoff="2024-02-05", run_derivations=False)
    ae = q(db, "SELECT event_key, aeendtc, aeen_date, ongoing, aeout, duration_days FROM adverse_events ORDER BY 1").set_index("event_key")
    crs = ae.loc["S-001/AE/2"]   # 2024-02 .. 2024-02-09: ends after the cut
    assert crs.ongoing and pd.isna(crs.aeen_date) and pd.isna(crs.aeendtc) and pd.isna(crs.aeout)
    assert crs.duration_days == 5  # 2024-02-01 .. cut 2024-02-05
    assert not ae.loc["S-001/AE/1", "ongoing"]


def test_an_ae_not_ended_runs_to_the_death_not_to_the_cut(tmp_path):
    """S-003's neutropenia (from 2024-03-12, no end) in a subject who died on 2024-03-21: 10 days, not the 111
    days to the cut (a day-9 death showed an ongoing vomiting of 520 days)."""
    db = tmp_path / "db.duckdb"
    ingest_study(make_study(tmp_path / "s", "csv"), db, cutoff="2024-06-30", run_derivations=False)
    assert q(db, "SELECT duration_days FROM adverse_events WHERE event_key = 'S-003/AE/1'").duration_days[0] == 111
    dm = DM.copy()
    dm.loc[dm["USUBJID"] == "S-003", "DTHDTC"] = "2024-03-21"
    db2 = tmp_path / "db2.duckdb"
    ingest_study(make_study(tmp_path / "t", "csv", domains=dict(DOMAINS, dm=dm)), db2, cutoff="2024-06-30",
                 run_derivations=False)
    ae = q(db2, "SELECT event_key, duration_days FROM adverse_events ORDER BY 1").set_index("event_key")
    assert ae.loc["S-003/AE/1", "duration_days"] == 10 and ae.loc["S-001/AE/1", "duration_days"] == 3


def test_a_partial_dm_death_date_is_the_ds_death_date_in_its_period_else_its_first_day_flagged(tmp_path):
    """DTHDTC '2024-03' with a DS death on 2024-03-20 is 2024-03-20 (it read 2024-03-01, before the subject's last
    records, moving the death day, NRM and the DLT window); DTHDTC '2024-04' with no DS death is 2024-04-01, with
    death_date_flag 'D' saying it was imputed. A full DTHDTC is kept and not flagged."""
    dm = DM.copy()
    dm.loc[dm["USUBJID"] == "S-002", "DTHDTC"] = "2024-03"
    dm.loc[dm["USUBJID"] == "S-003", "DTHDTC"] = "2024-04"
    dm.loc[dm["USUBJID"] == "S-001", "DTHDTC"] = "2024-05-02"
    db = tmp_path / "db.duckdb"
    ingest_study(make_study(tmp_path / "s", "csv", domains=dict(DOMAINS, dm=dm)), db, cutoff="2024-06-30",
                 run_derivations=False)
    s = q(db, "SELECT usubjid, death_date, death_source, death_date_flag FROM subjects WHERE death_date IS NOT NULL "
              "ORDER BY usubjid")
    got = [(r.usubjid, str(r.death_date)[:10], r.death_source, None if pd.isna(r.death_date_flag) else r.death_date_flag)
           for r in s.itertuples()]
    assert got == [("S-001", "2024-05-02", "DM", None), ("S-002", "2024-03-20", "DS", None),
                   ("S-003", "2024-04-01", "DM", "D")]


def _fatal_sepsis_study(root, aeendtc, cmendtc="2024-03-09", exendtc="2024-03-03"):
    """The small study with S-003 dying of a grade-5 sepsis (AEOUT FATAL, AESDTH Y) from 2024-03-15, ending on
    ``aeendtc``; S-003's medication ends on ``cmendtc`` and S-004's fludarabine on ``exendtc``."""
    ae = pd.concat([AE.assign(AESDTH=""), pd.DataFrame({
        "STUDYID": [STUDY], "USUBJID": ["S-003"], "AESEQ": [2], "AETERM": ["Sepsis"], "AEDECOD": ["SEPSIS"],
        "AEBODSYS": ["INF"], "AETOXGR": ["5"], "AESEV": ["SEVERE"], "AESER": ["Y"], "AESDTH": ["Y"],
        "AEREL": ["POSSIBLE"], "AEOUT": ["FATAL"], "AESTDTC": ["2024-03-15"], "AEENDTC": [aeendtc]})],
        ignore_index=True)
    cm = CM.copy()
    cm.loc[cm["USUBJID"] == "S-003", "CMENDTC"] = cmendtc
    ex = EX.copy()
    ex.loc[ex["USUBJID"] == "S-004", "EXENDTC"] = exendtc
    return make_study(root, "csv", domains=dict(DOMAINS, ae=ae, cm=cm, ex=ex))


def test_a_death_recorded_only_as_a_fatal_ae_is_the_subjects_death(tmp_path):
    """S-003 dies of a grade-5 sepsis ended 2024-03-21, with no DM death date and no DS death record: the subject
    is 'died' at the cut (the overview's tiles and the packet's disposition read subjects.status), dated at the
    AE's end, and the neutropenia still ongoing runs to that death (10 days), as with a death recorded in DM;
    a medication ended "2024-03" ends at that death, not on 2024-03-31. The same AE ending after the cut is no
    death at the cut."""
    def load(aeendtc, name):
        db = tmp_path / f"{name}.duckdb"
        ingest_study(_fatal_sepsis_study(tmp_path / name, aeendtc, cmendtc="2024-03"), db, cutoff="2024-06-30")
        return db

    db = load("2024-03-21", "dies")
    s = q(db, "SELECT usubjid, status, death_date, death_day, death_source, last_known_alive_date FROM subjects "
              "ORDER BY usubjid").set_index("usubjid")
    s3 = s.loc["S-003"]
    assert (s3.status, str(s3.death_date)[:10], s3.death_source, str(s3.last_known_alive_date)[:10]) == \
        ("died", "2024-03-21", "AE", "2024-03-21")
    assert s.death_source.dropna().to_dict() == {"S-002": "DS", "S-003": "AE"}
    ae = q(db, "SELECT event_key, duration_days FROM adverse_events ORDER BY 1").set_index("event_key")
    assert ae.loc["S-003/AE/1", "duration_days"] == 10 and ae.loc["S-003/AE/2", "duration_days"] == 7
    deaths = q(db, "SELECT usubjid, death_date, sources FROM deaths ORDER BY usubjid").set_index("usubjid")
    assert deaths.sources.to_dict() == {"S-002": "DS", "S-003": "AE"}
    assert str(deaths.death_date["S-003"])[:10] == "2024-03-21"
    cm = q(db, "SELECT cmendtc, cmen_date, end_day FROM medications WHERE usubjid = 'S-003'").iloc[0]
    assert (cm.cmendtc, str(cm.cmen_date)[:10], cm.end_day) == ("2024-03", "2024-03-21", 9)

    db = load("2024-07-02", "after_cut")
    s3 = q(db, "SELECT status, death_date, death_source FROM subjects WHERE usubjid = 'S-003'").iloc[0]
    assert s3.status != "died" and pd.isna(s3.death_date) and pd.isna(s3.death_source)
    assert q(db, "SELECT usubjid FROM deaths").usubjid.tolist() == ["S-002"]
    assert q(db, "SELECT duration_days FROM adverse_events WHERE event_key = 'S-003/AE/1'").duration_days[0] == 111
    assert str(q(db, "SELECT cmen_date FROM medications WHERE usubjid = 'S-003'").cmen_date[0])[:10] == "2024-03-31"


@pytest.mark.parametrize("aeendtc", ["2024-07", "2025"])
def test_a_partial_end_date_after_the_cut_is_an_end_after_the_cut(tmp_path, aeendtc):
    """AEENDTC '2024-07' or '2025' with the cut on 2024-06-30: the whole period lies after the cut, so the fatal
    sepsis is ongoing at the cut with its outcome and results-in-death flag withheld, and no death at the cut, as
    for the full date 2024-07-02 (it loaded ended on the cut day with the death shown). A medication ended
    '2024-07' and an EX record ended '2025' are likewise not ended at the cut. Every row still reconciles."""
    db = tmp_path / "db.duckdb"
    ingest_study(_fatal_sepsis_study(tmp_path / "s", aeendtc, cmendtc="2024-07", exendtc="2025"), db,
                 cutoff="2024-06-30")
    ae = q(db, "SELECT aeendtc, aeen_date, aeen_date_flag, ongoing, aeout, aesdth, duration_days, end_day "
               "FROM adverse_events WHERE event_key = 'S-003/AE/2'").iloc[0]
    assert ae.ongoing and ae.isna()[["aeendtc", "aeen_date", "aeen_date_flag", "aeout", "aesdth", "end_day"]].all()
    assert ae.duration_days == 108                                   # 2024-03-15 .. cut 2024-06-30
    s3 = q(db, "SELECT status, death_date, death_source FROM subjects WHERE usubjid = 'S-003'").iloc[0]
    assert s3.status != "died" and pd.isna(s3.death_date) and pd.isna(s3.death_source)
    assert q(db, "SELECT usubjid FROM deaths").usubjid.tolist() == ["S-002"]
    cm = q(db, "SELECT cmendtc, cmen_date, end_day FROM medications WHERE usubjid = 'S-003'").iloc[0]
    assert cm.isna().all()
    ex = q(db, "SELECT exendtc, exen_date FROM exposures WHERE usubjid = 'S-004'").iloc[0]
    assert ex.isna().all()
    log = q(db, "SELECT source_file, rows_read, rows_loaded, rows_quarantined, rows_after_cutoff FROM load_log "
                "WHERE source_file IN ('ae.csv', 'cm.csv', 'ex.csv') ORDER BY 1")
    assert [tuple(r)[1:] for r in log.itertuples(index=False)] == [(8, 4, 4, 0), (3, 3, 0, 0), (5, 5, 0, 0)]

    full = tmp_path / "full.duckdb"
    ingest_study(_fatal_sepsis_study(tmp_path / "f", "2024-07-02"), full, cutoff="2024-06-30")
    cols = "aeendtc, aeen_date, ongoing, aeout, aesdth, duration_days"
    sql = f"SELECT {cols} FROM adverse_events WHERE event_key = 'S-003/AE/2'"
    pd.testing.assert_frame_equal(q(db, sql), q(full, sql))


def test_a_partial_end_date_whose_period_holds_the_cut_ends_on_the_cut(tmp_path):
    """AEENDTC '2024-06' with the cut on 2024-06-15: the period's last day after the cut is not used (docs/
    input-format.md: a partial end gets the last day of its period, not after death or the cut), so the sepsis
    ended on the cut day, flagged 'D', with its fatal outcome, and the subject died then (source AE); a
    medication ended '2024-06' ends on that death."""
    db = tmp_path / "db.duckdb"
    ingest_study(_fatal_sepsis_study(tmp_path / "s", "2024-06", cmendtc="2024-06"), db, cutoff="2024-06-15")
    ae = q(db, "SELECT aeendtc, aeen_date, aeen_date_flag, ongoing, aeout, aesdth "
               "FROM adverse_events WHERE event_key = 'S-003/AE/2'").iloc[0]
    assert (ae.aeendtc, str(ae.aeen_date)[:10], ae.aeen_date_flag, ae.ongoing, ae.aeout, ae.aesdth) == \
        ("2024-06", "2024-06-15", "D", False, "FATAL", "Y")
    s3 = q(db, "SELECT status, death_date, death_source FROM subjects WHERE usubjid = 'S-003'").iloc[0]
    assert (s3.status, str(s3.death_date)[:10], s3.death_source) == ("died", "2024-06-15", "AE")
    cm = q(db, "SELECT cmendtc, cmen_date FROM medications WHERE usubjid = 'S-003'").iloc[0]
    assert (cm.cmendtc, str(cm.cmen_date)[:10]) == ("2024-06", "2024-06-15")


def test_reload_gives_the_same_database(tmp_path):
    study = make_study(tmp_path / "s", "csv")
    db = tmp_path / "db.duckdb"
    ingest_study(study, db, run_derivations=False)
    tables = ["subjects", "exposures", "adverse_events", "labs", "vitals", "medications", "responses",
              "disposition", "crs_assessments", "icans_assessments", "quarantine", "load_log", "studies"]
    volatile = {"load_id", "loaded_at"}

    def snapshot():
        out = {}
        for t in tables:
            df = q(db, f"SELECT * FROM {t}")
            df = df.drop(columns=[c for c in df.columns if c in volatile])
            out[t] = df.sort_values(list(df.columns[:4])).reset_index(drop=True)
        return out

    first = snapshot()
    ingest_study(study, db, run_derivations=False)
    second = snapshot()
    for t in tables:
        pd.testing.assert_frame_equal(first[t], second[t], obj=t)
    assert len(first["subjects"]) == 5


def test_two_cuts_and_two_studies_live_side_by_side(tmp_path):
    study = make_study(tmp_path / "s", "csv")
    db = tmp_path / "db.duckdb"
    ingest_study(study, db, cutoff="2024-02-15", run_derivations=False)
    ingest_study(study, db, run_derivations=False)
    other = make_study(tmp_path / "o", "csv", study_yaml="studyid: OTHER-2\n")
    ingest_study(other, db, run_derivations=False)
    n = q(db, "SELECT studyid, data_cut, count(*) n FROM subjects GROUP BY ALL ORDER BY ALL")
    assert n.n.tolist() == [4, 5, 5] and n.studyid.tolist() == ["CT-TEST-01", "CT-TEST-01", "OTHER-2"]


@pytest.mark.parametrize("case, message", [
    ("no_dm", "no DM dataset"),
    ("no_usubjid", "dm.csv: no USUBJID column"),
    ("unreadable", "dm.xlsx: cannot read xlsx file"),
    ("bad_yaml_key", "unknown key 'dlt.windw'"),
])
def test_unusable_input_raises_one_line(tmp_path, case, message):
    study = make_study(tmp_path / "s", "csv")
    if case == "no_dm":
        (study / "dm.csv").unlink()
    elif case == "no_usubjid":
        DM.drop(columns=["USUBJID"]).to_csv(study / "dm.csv", index=False)
    elif case == "unreadable":
        (study / "dm.csv").unlink()
        (study / "dm.xlsx").write_bytes(b"PK\x03\x04 this is not a workbook")
    elif case == "bad_yaml_key":
        (study / "study.yaml").write_text("dlt:\n  windw: {start_day: 0}\n")
    with pytest.raises(IngestError) as exc:
        ingest_study(study, tmp_path / "db.duckdb", run_derivations=False)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_failed_load_leaves_previous_snapshot(tmp_path):
    study = make_study(tmp_path / "s", "csv")
    db = tmp_path / "db.duckdb"
    ingest_study(study, db, run_derivations=False)
    DM.drop(columns=["USUBJID"]).to_csv(study / "dm.csv", index=False)
    with pytest.raises(IngestError):
        ingest_study(study, db, run_derivations=False)
    assert q(db, "SELECT count(*) n FROM subjects").n[0] == 5


def test_audit_entry_with_file_hashes(tmp_path):
    from safety.review.store import ReviewStore, default_review_path
    study = make_study(tmp_path / "s", "csv")
    db = tmp_path / "db.duckdb"
    r = ingest_study(study, db, run_derivations=False)
    rows = ReviewStore(default_review_path(db)).query("SELECT username, action, studyid, detail FROM audit_log")
    assert len(rows) == 1 and rows[0]["action"] == "data_load" and rows[0]["studyid"] == "CT-TEST-01"
    detail = json.loads(rows[0]["detail"])
    assert detail["load_id"] == r.load_id and {f["file"] for f in detail["files"]} >= {"dm.csv", "ae.csv"}
    assert all(len(f["sha256"]) == 64 for f in detail["files"])


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_quarantined_lab_rows_keep_every_delivered_column(tmp_path, fmt):
    """The lab staging table holds only what the loader needs; the raw record still has every column as delivered."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from test_ingest_fixtures import DOMAINS
    lb = LB.copy()
    lb.loc[2, "LBSEQ"] = 2  # a duplicate key (S-001, LBSEQ 2): the later record is quarantined
    domains = dict(DOMAINS, lb=lb)
    study = make_study(tmp_path / "s", "csv", domains=domains)
    if fmt == "parquet":  # numeric Parquet columns are staged natively: their raw text must still round-trip
        (study / "lb.csv").unlink()
        typed = lb.assign(LBSEQ=lb["LBSEQ"].astype("int64"),
                          LBSTNRLO=pd.to_numeric(lb["LBORNRLO"], errors="coerce"))
        pq.write_table(pa.Table.from_pandas(typed, preserve_index=False), study / "lb.parquet")
    db = tmp_path / "db.duckdb"
    ingest_study(study, db, run_derivations=False)
    quarantined = q(db, "SELECT row_number, field, reason, raw_record FROM quarantine WHERE domain = 'LB' ORDER BY row_number")
    assert list(quarantined.row_number) == [3, 5, 6]
    assert quarantined.field.tolist() == ["LBSEQ", "LBORRESU", "LBORRES"]
    raws = [json.loads(r) for r in quarantined.raw_record]
    delivered = list(lb.columns) + (["LBSTNRLO"] if fmt == "parquet" else [])
    assert all(set(r) == set(delivered) for r in raws)
    assert raws[0]["LBTESTCD"] == "CRP" and raws[0]["LBSEQ"] == "2" and raws[0]["USUBJID"] == "S-001"
    assert raws[1]["LBORRESU"] == "furlong" and raws[1]["LBTESTCD"] == "BILI" and raws[1]["LBORNRHI"] == "1.2"
    if fmt == "parquet":
        assert raws[1]["LBSTNRLO"] == "0.1"
    log = q(db, "SELECT rows_read, rows_loaded, rows_quarantined FROM load_log WHERE domain = 'LB'")
    assert tuple(log.iloc[0]) == (8, 5, 3)


def test_flags_read_as_their_code_and_files_not_read_as_delivered_are_noted_in_the_load_log(tmp_path):
    """AESER 'Yes' and 'TRUE' are Y (an SAE counted as serious: the SAE count read aeser = 'Y' and dropped them),
    'x' is no Y/N flag and quarantines its row naming the field; a misspelled AEENDTC header is noted as the likely
    misspelling (every AE loaded with no end, silently), and the notes are kept in load_log.notes for the Data
    quality page. A later cut without CM says CM was delivered at the earlier cut."""
    ae = AE.copy()
    ae.loc[0, "AESER"], ae.loc[1, "AESER"], ae.loc[3, "AESER"] = "Yes", "x", "TRUE"
    ae = ae.rename(columns={"AEENDTC": "AEENDT"})
    db = tmp_path / "db.duckdb"
    r = ingest_study(make_study(tmp_path / "s", "csv", domains=dict(DOMAINS, ae=ae)), db, cutoff="2024-03-31",
                     run_derivations=False)
    aes = q(db, "SELECT event_key, aeser, aeen_date FROM adverse_events ORDER BY 1").set_index("event_key")
    assert aes.loc["S-001/AE/1", "aeser"] == "Y" and aes.loc["S-003/AE/1", "aeser"] == "Y"
    assert "S-001/AE/2" not in aes.index and aes.aeen_date.isna().all()
    quar = q(db, "SELECT field, reason FROM quarantine WHERE domain = 'AE' AND field = 'AESER'")
    assert quar.reason.tolist() == ["'x' is not a Y/N flag (Y, N, U or NA)"]
    note = q(db, "SELECT notes FROM load_log WHERE source_file = 'ae.csv'").notes[0]
    assert note == ("no AEENDTC column: every row loads without it ('AEENDT' is delivered: a misspelling of AEENDTC?); "
                    "Y/N flags read as their code: AESER 'TRUE' as Y (1 row), AESER 'Yes' as Y (1 row)")
    assert f"ae.csv: {note}" in r.notes
    assert q(db, "SELECT count(*) AS n FROM load_log WHERE notes IS NOT NULL").n[0] == 1

    later = ingest_study(make_study(tmp_path / "t", "csv", domains=dict(DOMAINS, ae=ae), skip=("cm",)), db,
                         cutoff="2024-06-30", run_derivations=False)
    assert ("CM delivered at the 2024-03-31 cut and not at this one: nothing of it is loaded at this cut, so "
            "its listings read as none recorded") in later.notes


def test_the_misspelling_hint_names_an_unread_header_never_a_variable_the_load_reads(tmp_path):
    """An AE file with AESERIOUS instead of AESER was noted "('AESEQ' is delivered: a misspelling of AESER?)":
    AESEQ is the key, read as itself, and the header actually left unread went unnamed. Without AESER and with
    no unread header like it, the note gives no hint (AESEQ and AESEV are read)."""
    db = tmp_path / "db.duckdb"
    ingest_study(make_study(tmp_path / "s", "csv", domains=dict(DOMAINS, ae=AE.rename(columns={"AESER": "AESERIOUS"}))),
                 db, cutoff="2024-03-31", run_derivations=False)
    note = q(db, "SELECT notes FROM load_log WHERE source_file = 'ae.csv'").notes[0]
    assert note == "no AESER column: every row loads without it ('AESERIOUS' is delivered: a misspelling of AESER?)"

    ingest_study(make_study(tmp_path / "t", "csv", domains=dict(DOMAINS, ae=AE.drop(columns=["AESER"]))),
                 db, cutoff="2024-03-31", run_derivations=False)
    assert q(db, "SELECT notes FROM load_log WHERE source_file = 'ae.csv'").notes[0] == (
        "no AESER column: every row loads without it")


def test_the_variables_each_domain_reads_are_those_the_input_format_lists():
    """``DomainSpec.variables_read`` (a header among them is never offered as a misspelling) is the row of its
    domain in docs/input-format.md "Domains and variables read", no more and no less."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "input-format.md").read_text(encoding="utf-8")
    table = text.split("## Domains and variables read", 1)[1].split("\n\n", 2)[1]
    rows = {}
    for line in table.splitlines()[2:]:
        domain, *cells = [c.strip() for c in line.strip("|").split("|")]
        rows[domain] = set(re.findall(r"\b[A-Z][A-Z0-9]{2,}\b", re.sub(r"\([^)]*\)", "", " ".join(cells))))
    for code, spec in SPECS.items():
        if code in rows:
            assert spec.variables_read - {"STUDYID", "DOMAIN", "USUBJID"} == rows[code] - {"STUDYID", "USUBJID"}, code


def test_rows_repeated_in_every_column_without_a_seq_load_once_and_one_dataset_twice_is_refused(tmp_path):
    """The CRS assessment file (no --SEQ) with its first two rows delivered again, and LB without LBSEQ with one
    result repeated, loaded every copy (each assessment graded twice, each result counted twice): the copies are
    quarantined, the first kept, and the counts reconcile. crs_assessments.csv beside crs_assessments.parquet is
    refused in one line, nothing loaded."""
    crs = pd.concat([CRS, CRS.iloc[:2]], ignore_index=True)
    lb = pd.concat([LB, LB.iloc[[1]]], ignore_index=True).drop(columns=["LBSEQ"])
    db = tmp_path / "db.duckdb"
    ingest_study(make_study(tmp_path / "s", "csv", domains=dict(DOMAINS, crs_assessments=crs, lb=lb)), db,
                 cutoff="2024-06-30", run_derivations=False)
    log = q(db, "SELECT source_file, rows_read, rows_loaded, rows_quarantined FROM load_log").set_index("source_file")
    assert log.loc["crs_assessments.csv"].tolist() == [5, 2, 3]       # 'oops' and the two copies
    assert log.loc["lb.csv"].tolist() == [9, 6, 3]                    # furlong, 'abc' and the copy
    quar = q(db, "SELECT domain, row_number, reason FROM quarantine WHERE reason LIKE 'an exact copy%' ORDER BY 1, 2")
    assert [(r.domain, r.row_number) for r in quar.itertuples()] == [("CRS", 4), ("CRS", 5), ("LB", 9)]
    assert quar.reason[0] == ("an exact copy of crs_assessments.csv row 1 (every column equal, and no --SEQ to tell "
                              "them apart); the first is kept")
    assert q(db, "SELECT count(*) AS n FROM crs_assessments").n[0] == 2

    study = make_study(tmp_path / "t", "csv")
    CRS.to_parquet(study / "crs_assessments.parquet")
    with pytest.raises(IngestError, match=r"^crs_assessments.csv and crs_assessments.parquet are the same dataset "
                                          r"in two formats; deliver one of them$"):
        ingest_study(study, tmp_path / "db2.duckdb", run_derivations=False)
    assert not (tmp_path / "db2.duckdb").exists()


def test_an_end_before_its_start_on_the_same_day_and_a_seq_past_the_integer_range_are_quarantined_by_name(tmp_path):
    """An AE starting 2024-02-02T10:00 and ending 08:00 the same day loaded as a one-day event; AESEQ 3000000000
    is a whole number, quarantined as beyond the range kept, not as 'not a whole number'."""
    ae = AE.copy()
    ae.loc[0, "AESTDTC"], ae.loc[0, "AEENDTC"] = "2024-02-02T10:00", "2024-02-02T08:00"
    ae.loc[1, "AEENDTC"] = "2024-02-09T08:00"                       # a date-time end after a partial start: kept
    ae.loc[3, "AESEQ"] = 3000000000
    db = tmp_path / "db.duckdb"
    ingest_study(make_study(tmp_path / "s", "csv", domains=dict(DOMAINS, ae=ae)), db, cutoff="2024-06-30",
                 run_derivations=False)
    quar = q(db, "SELECT row_number, field, reason FROM quarantine WHERE source_file = 'ae.csv' ORDER BY row_number")
    by_row = {r.row_number: (r.field, r.reason) for r in quar.itertuples()}
    assert by_row[1] == ("AEENDTC", "AE end 2024-02-02T08:00 before start 2024-02-02T10:00")
    assert by_row[4] == ("AESEQ", "whole number '3000000000' beyond the largest kept (2,000,000,000)")
    assert 2 not in by_row


def test_a_number_written_with_an_underscore_is_no_number(tmp_path):
    """DuckDB reads '1_000' as 1000: AETOXGR '0_3' loaded as grade 3, LBORRES '0_5' as 5, AGE '0_40' as 40 and a
    SUPPAE IDVARVAL '0_2' qualified AESEQ 2. Each is now refused with the reason its text with a comma instead
    ('0,3', as '1,000') gets: not a number; a censored '<0_5' likewise."""
    def load(sep, name):
        dm, ae, lb, cm, crs, supp = DM.copy(), AE.copy(), LB.copy(), CM.copy(), CRS.copy(), DOMAINS["suppae"].copy()
        dm = dm.astype({"AGE": object})
        dm.loc[4, "AGE"] = f"0{sep}40"                                  # S-005, no other records
        ae = ae.astype({"AESEQ": object})
        ae.loc[0, "AETOXGR"] = f"0{sep}3"
        ae.loc[3, "AESEQ"] = f"0{sep}1"
        lb.loc[0, "LBORRES"] = f"0{sep}5"
        lb.loc[2, "LBORRES"] = f"<0{sep}5"
        lb.loc[3, "LBSTRESN"], lb.loc[3, "LBSTRESU"] = f"0{sep}5", "U/L"
        cm.loc[1, "CMDOSE"] = f"1{sep}0"
        crs.loc[0, "TEMP_C"] = f"38{sep}6"
        supp.loc[0, "IDVARVAL"] = f"0{sep}2"
        domains = dict(DOMAINS, dm=dm, ae=ae, lb=lb, cm=cm, crs_assessments=crs, suppae=supp)
        db = tmp_path / f"{name}.duckdb"
        ingest_study(make_study(tmp_path / name, "csv", domains=domains), db, cutoff="2024-06-30",
                     run_derivations=False)
        log = q(db, "SELECT * FROM load_log")
        assert (log.rows_read == log.rows_loaded + log.rows_quarantined + log.rows_after_cutoff).all()
        return {(r.source_file, r.row_number): (r.field, r.reason) for r in q(db, "SELECT * FROM quarantine").itertuples()}

    got, comma = load("_", "underscore"), load(",", "comma")
    assert {k: (f, re.sub(r"(\d),(\d)", r"\1_\2", r)) for k, (f, r) in comma.items()} == got
    assert {k: got[k] for k in [("dm.csv", 5), ("ae.csv", 1), ("ae.csv", 4), ("lb.csv", 1), ("lb.csv", 3),
                                ("lb.csv", 4), ("cm.csv", 2), ("crs_assessments.csv", 1), ("suppae.csv", 1)]} == {
        ("dm.csv", 5): ("AGE", "non-numeric value '0_40'"),
        ("ae.csv", 1): ("AETOXGR", "not a whole number: '0_3'"),
        ("ae.csv", 4): ("AESEQ", "not a whole number: '0_1'"),
        ("lb.csv", 1): ("LBORRES", "non-numeric result '0_5'"),
        ("lb.csv", 3): ("LBORRES", "non-numeric result '<0_5'"),
        ("lb.csv", 4): ("LBSTRESN", "non-numeric value '0_5'"),
        ("cm.csv", 2): ("CMDOSE", "non-numeric value '1_0'"),
        ("crs_assessments.csv", 1): ("TEMP_C", "non-numeric value '38_6'"),
        ("suppae.csv", 1): ("IDVARVAL", "no matching AE record for this qualifier")}


def test_ae_grades_ctcae_does_not_define_for_the_term_are_listed_for_a_query(tmp_path):
    """Sepsis grade 2 (CTCAE v5.0 defines 3-5) and alopecia grade 3 (1-2) are listed with the grades the term has;
    sepsis grade 4, a term that is no CTCAE term, and CRS graded on ASTCT are not."""
    extra = pd.DataFrame([{**AE.iloc[0].to_dict(), "AESEQ": seq, "AETERM": term, "AEDECOD": decod, "AETOXGR": grade}
                          for seq, term, decod, grade in ((11, "Sepsis", "SEPSIS", "2"), (12, "Sepsis", "Sepsis", "4"),
                                                          (13, "Hair loss", "Alopecia", "3"),
                                                          (14, "Odd thing", "NOT A CTCAE TERM", "2"))])
    db = tmp_path / "db.duckdb"
    ingest_study(make_study(tmp_path / "s", "csv", domains=dict(DOMAINS, ae=pd.concat([AE, extra]))), db,
                 cutoff="2024-06-30")
    rows = q(db, "SELECT event_key, ctcae_term, aetoxgr, ctcae_grades FROM ae_grade_checks ORDER BY event_key")
    assert [tuple(r) for r in rows.itertuples(index=False)] == [
        ("S-001/AE/11", "Sepsis", 2, "3, 4, 5"), ("S-001/AE/13", "Alopecia", 3, "1, 2")]


def test_every_count_the_unit_table_names_converts_from_per_cubic_millimetre_and_thousands(tmp_path):
    """docs/input-format.md promises /uL or /mm3 and 10^3/uL for the differential counts and CD4: MONO, EOS and
    BASO in /mm3 and CD4 in 10^3/uL were quarantined as unknown units."""
    extra = pd.DataFrame({"STUDYID": [STUDY] * 4, "USUBJID": ["S-001"] * 4, "LBSEQ": [11, 12, 13, 14],
                          "LBTESTCD": ["MONO", "EOS", "BASO", "CD4"], "LBORRES": ["600", "150", "40", "0.35"],
                          "LBORRESU": ["/mm3", "cells/mm3", "/mm3", "10^3/uL"], "LBDTC": ["2024-02-03"] * 4})
    db = tmp_path / "db.duckdb"
    ingest_study(make_study(tmp_path / "s", "csv", domains=dict(DOMAINS, lb=pd.concat([LB, extra]))), db,
                 cutoff="2024-06-30", run_derivations=False)
    got = q(db, "SELECT lbtestcd, value, unit FROM labs WHERE lbseq > 10 ORDER BY lbseq")
    assert [(r.lbtestcd, round(r.value, 6), r.unit) for r in got.itertuples()] == [
        ("MONO", 0.6, "10^9/L"), ("EOS", 0.15, "10^9/L"), ("BASO", 0.04, "10^9/L"), ("CD4", 0.35, "10^9/L")]


def test_lbstresn_holding_the_bound_of_a_censored_lbstresc_is_censored_and_two_numbers_are_noted(tmp_path):
    """Platelets '<25' with LBSTRESN 25 (the bound copied, as sponsors often do) loaded as exactly 25, not
    censored, and graded 3 where the same '<25' without LBSTRESN graded 4 (CTCAE v5.0: grade 4 is < 25). It is now
    censored as LBSTRESC says. LBSTRESN 99 beside LBSTRESC 17.1 or '<25' loads 99, as before, and the file is
    noted with the rows and both values."""
    plat = pd.DataFrame({
        "STUDYID": [STUDY] * 4, "USUBJID": ["S-001", "S-002", "S-001", "S-002"], "LBSEQ": [5, 4, 6, 5],
        "LBTESTCD": ["PLAT"] * 4, "LBTEST": ["Platelets"] * 4,
        "LBORRES": ["<25", "<25", "17.1", "<25"], "LBORRESU": ["10^9/L"] * 4,
        "LBSTRESC": ["<25", "<25", "17.1", "<25"], "LBSTRESN": ["25", "", "99", "99"], "LBSTRESU": ["10^9/L"] * 4,
        "LBORNRLO": ["150"] * 4, "LBORNRHI": ["400"] * 4,
        "LBDTC": ["2024-02-05", "2024-02-14", "2024-02-06", "2024-02-15"]})
    lb = pd.concat([LB.assign(LBSTRESC=""), plat], ignore_index=True).fillna("")
    db = tmp_path / "db.duckdb"
    ingest_study(make_study(tmp_path / "s", "csv", domains=dict(DOMAINS, lb=lb)), db, cutoff="2024-03-31")
    with duckdb.connect(str(db), read_only=True) as con:
        labs = con.execute("SELECT usubjid, lbseq, value, censored, value_source FROM labs WHERE lbtestcd = 'PLAT' "
                           "ORDER BY usubjid, lbseq").fetchall()
    assert labs == [
        ("S-001", 5, 25.0, "<", "LBSTRESN"), ("S-001", 6, 99.0, None, "LBSTRESN"),
        ("S-002", 4, 25.0, "<", "LBSTRESC"), ("S-002", 5, 99.0, None, "LBSTRESN")]
    grades = q(db, "SELECT usubjid, worst_grade FROM lab_worst_grades WHERE ctcae_term = 'Platelet count decreased' "
                   "ORDER BY 1")
    assert [tuple(r) for r in grades.itertuples(index=False)] == [("S-001", 4), ("S-002", 4)]
    note = q(db, "SELECT notes FROM load_log WHERE source_file = 'lb.csv'").notes[0]
    assert note == ("LBSTRESN is not the number of LBSTRESC in 2 rows, loaded with the value of LBSTRESN: "
                    "row 11 (LBSTRESC '17.1', LBSTRESN 99), row 12 (LBSTRESC '<25', LBSTRESN 99)")

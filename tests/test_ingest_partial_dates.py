"""Partial start dates at ingest: an imputed start is never after the record's own end; an AE with no start
that ended before treatment is not treatment-emergent."""
from __future__ import annotations

import duckdb
import pytest

from safety.ingest import ingest_study

DM = """STUDYID,DOMAIN,USUBJID,SUBJID,RFXSTDTC,RFICDTC,SITEID,AGE,AGEU,SEX
ST1,DM,S-001,001,2026-03-01T10:00,2026-02-01,01,50,YEARS,F
ST1,DM,S-002,002,2026-03-10,2026-02-05,01,60,YEARS,M
ST1,DM,S-003,003,2026-03-10,2026-02-05,01,55,YEARS,M
"""
EX = """STUDYID,DOMAIN,USUBJID,EXSEQ,EXTRT,EXCAT,EXDOSE,EXDOSU,EXSTDTC,EXENDTC
ST1,EX,S-001,1,CAR cells,CELL THERAPY,1,10^6 cells/kg,2026-03-01T10:00,2026-03-01T10:30
ST1,EX,S-002,1,CAR cells,CELL THERAPY,1,10^6 cells/kg,2026-03-10,2026-03-10
ST1,EX,S-003,1,CAR cells,CELL THERAPY,1,10^6 cells/kg,2026-03-10,2026-03-10
"""
AE = """STUDYID,DOMAIN,USUBJID,AESEQ,AETERM,AEDECOD,AEBODSYS,AETOXGR,AESER,AEREL,AESTDTC,AEENDTC
ST1,AE,S-001,1,Pneumonia,Pneumonia,Infections and infestations,4,Y,POSSIBLY RELATED,2026,2026-02-10
ST1,AE,S-001,2,Back pain,Back pain,Musculoskeletal and connective tissue disorders,3,N,NOT RELATED,,2026-02-10
ST1,AE,S-001,3,Fatigue,Fatigue,General disorders and administration site conditions,1,N,NOT RELATED,,
ST1,AE,S-002,1,Nausea,Nausea,Gastrointestinal disorders,2,N,NOT RELATED,2026-03-06,2026-03-07
ST1,AE,S-002,2,Headache,Headache,Nervous system disorders,1,N,NOT RELATED,2026-03,2026-03-20
ST1,AE,S-002,3,Rash,Rash maculo-papular,Skin and subcutaneous tissue disorders,1,N,NOT RELATED,2026,2026-02
"""
CM = """STUDYID,DOMAIN,USUBJID,CMSEQ,CMTRT,CMDECOD,CMCAT,CMSTDTC,CMENDTC
ST1,CM,S-002,1,Fludarabine,FLUDARABINE,LYMPHODEPLETION,2026-03,2026-03-07
ST1,CM,S-003,1,Fludarabine,FLUDARABINE,LYMPHODEPLETION,2026-03-05,2026-03-07
ST1,CM,S-003,2,Paracetamol,PARACETAMOL,,2026-03,2026-03-05
"""
MH = """STUDYID,DOMAIN,USUBJID,MHSEQ,MHTERM,MHDECOD,MHSTDTC,MHENDTC
ST1,MH,S-002,1,Sinusitis,Sinusitis,2026-03,2026-03-04
ST1,MH,S-002,2,Hypertension,Hypertension,2026,
"""
PR = """STUDYID,DOMAIN,USUBJID,PRSEQ,PRTRT,PRSTDTC,PRENDTC
ST1,PR,S-002,1,Central line placement,2026-03,2026-03-02
"""
CE = """STUDYID,DOMAIN,USUBJID,CESEQ,CETERM,CESTDTC,CEENDTC
ST1,CE,S-002,1,Fever,2026-03,2026-03-08
"""


def write_study(root, files):
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def load_study(tmp_path_factory, name, files, run_derivations=True):
    """A study of ``files`` (name -> CSV text) loaded at the cut 2026-09-30; its database."""
    root = tmp_path_factory.mktemp(name)
    db = root / "db.duckdb"
    ingest_study(write_study(root / "s", files), db, cutoff="2026-09-30", run_derivations=run_derivations)
    return db


def q(db, sql):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    return load_study(tmp_path_factory, "partial", {"dm.csv": DM, "ex.csv": EX, "ae.csv": AE, "cm.csv": CM,
                                                     "mh.csv": MH, "pr.csv": PR, "ce.csv": CE})


def ae(db, key):
    return q(db, f"""SELECT CAST(aest_date AS VARCHAR), aest_date_flag, onset_day, end_day, duration_days,
                            treatment_emergent FROM adverse_events WHERE event_key = '{key}'""")[0]


def test_partial_start_is_not_imputed_after_its_own_end(loaded):
    # '2026' holds the infusion (2026-03-01), but the pneumonia ended on 2026-02-10 (day -19): the first day of
    # the year, not day 0 with a negative duration
    assert ae(loaded, "S-001/AE/1") == ("2026-01-01", "M", -59, -19, 41, False)
    # a partial end wholly before the infusion ('2026-02') does not allow day 0 either
    assert ae(loaded, "S-002/AE/3") == ("2026-01-01", "M", -68, -10, 59, False)


def test_partial_start_still_day_0_when_its_end_allows(loaded):
    assert ae(loaded, "S-002/AE/2") == ("2026-03-10", "D", 0, 10, 11, True)


def test_pre_infusion_event_is_no_infection_nor_pending_dlt(loaded):
    assert q(loaded, "SELECT onset_day, end_day, onset_window FROM infection_episodes WHERE usubjid = 'S-001'") \
        == [(-59, -19, "before day 0")]
    # listed (grade 4, related) but outside the DLT window, so never pending
    assert q(loaded, "SELECT onset_day, duration_days, in_window FROM dlt_candidates WHERE event_key = 'S-001/AE/1'") \
        == [(-59, 41, False)]


def test_lymphodepletion_not_moved_to_day_0(loaded):
    # fludarabine '2026-03' that ended 2026-03-07 (day -3) starts on 2026-03-01, not on the infusion day
    assert q(loaded, "SELECT CAST(cmst_date AS VARCHAR), start_day, end_day FROM medications "
                     "WHERE usubjid = 'S-002'") == [("2026-03-01", -9, -3)]
    assert q(loaded, "SELECT usubjid, lymphodepletion_start_day FROM subjects ORDER BY 1") \
        == [("S-001", None), ("S-002", -9), ("S-003", -5)]
    # so the nausea of day -4, during lymphodepletion, is treatment-emergent
    assert ae(loaded, "S-002/AE/1")[5] is True
    assert q(loaded, "SELECT CAST(cmst_date AS VARCHAR), start_day FROM medications WHERE usubjid = 'S-003' "
                     "AND cmseq = 2") == [("2026-03-01", -9)]


def test_other_domains_start_not_after_their_end(loaded):
    assert q(loaded, "SELECT mhseq, CAST(mhst_date AS VARCHAR), start_day, end_day FROM medical_history ORDER BY 1") \
        == [(1, "2026-03-01", -9, -6), (2, "2026-03-10", 0, None)]
    assert q(loaded, "SELECT CAST(prst_date AS VARCHAR), start_day, end_day FROM procedures") == [("2026-03-01", -9, -8)]
    assert q(loaded, "SELECT CAST(cest_date AS VARCHAR), start_day FROM clinical_events") == [("2026-03-01", -9)]


def test_ae_without_start_that_ended_before_treatment_is_not_emergent(loaded):
    # no start date, ended 2026-02-10: before the infusion (S-001 has no lymphodepletion), so not emergent
    assert ae(loaded, "S-001/AE/2") == (None, None, None, -19, None, False)
    # no start date and no end: its onset is unknown, counted as treatment-emergent (FDA Standard Safety Tables)
    assert ae(loaded, "S-001/AE/3")[5] is True


# lymphodepletion on 2026-03-30, infusion on 2026-04-04 (day -5): a month-only start of March may be either side
LD_DM = """STUDYID,DOMAIN,USUBJID,SUBJID,RFXSTDTC,RFICDTC,SITEID,AGE,AGEU,SEX
ST1,DM,S-004,004,2026-04-04,2026-02-05,01,55,YEARS,M
"""
LD_EX = """STUDYID,DOMAIN,USUBJID,EXSEQ,EXTRT,EXCAT,EXDOSE,EXDOSU,EXSTDTC,EXENDTC
ST1,EX,S-004,1,Fludarabine,LYMPHODEPLETION,30,mg/m2,2026-03-30,2026-04-01
ST1,EX,S-004,2,CAR cells,CELL THERAPY,1,10^6 cells/kg,2026-04-04,2026-04-04
"""
LD_AE = """STUDYID,DOMAIN,USUBJID,AESEQ,AETERM,AEDECOD,AEBODSYS,AETOXGR,AESER,AEREL,AESTDTC,AEENDTC
ST1,AE,S-004,1,Febrile neutropenia,Febrile neutropenia,Blood and lymphatic system disorders,3,N,POSSIBLY RELATED,2026-03,2026-04-02
ST1,AE,S-004,2,Cough,Cough,"Respiratory, thoracic and mediastinal disorders",1,N,NOT RELATED,2026-03,2026-03-20
ST1,AE,S-004,3,Fatigue,Fatigue,General disorders and administration site conditions,1,N,NOT RELATED,2026-03,
ST1,AE,S-004,4,Nausea,Nausea,Gastrointestinal disorders,1,N,NOT RELATED,2026,2026-04-10
"""


@pytest.fixture(scope="module")
def ld_loaded(tmp_path_factory):
    return load_study(tmp_path_factory, "ld", {"dm.csv": LD_DM, "ex.csv": LD_EX, "ae.csv": LD_AE},
                      run_derivations=False)


def test_partial_start_holding_lymphodepletion_is_treatment_emergent(ld_loaded):
    assert q(ld_loaded, "SELECT lymphodepletion_start_day FROM subjects") == [(-5,)]
    # March holds the start of lymphodepletion (not the infusion) and the end (2026-04-02) allows it: its
    # treatment-emergent status is unknown, so it starts with lymphodepletion and is counted
    assert ae(ld_loaded, "S-004/AE/1") == ("2026-03-30", "D", -5, -2, 4, True)
    assert ae(ld_loaded, "S-004/AE/3") == ("2026-03-30", "D", -5, None, 185, True)
    # ended 2026-03-20, before lymphodepletion: the first of the month, not treatment-emergent
    assert ae(ld_loaded, "S-004/AE/2") == ("2026-03-01", "D", -34, -15, 20, False)
    # a period holding the infusion still takes day 0 first
    assert ae(ld_loaded, "S-004/AE/4") == ("2026-04-04", "M", 0, 6, 7, True)


# day 0 from a partial EXSTDTC of the CAR infusion
D0_DM = """STUDYID,DOMAIN,USUBJID,SUBJID,RFXSTDTC,RFICDTC,SITEID,AGE,AGEU,SEX
ST1,DM,S-001,001,2026-03-01T10:00,2026-02-01,01,50,YEARS,F
ST1,DM,S-002,002,2026-03-10,2026-02-05,01,60,YEARS,M
ST1,DM,S-003,003,2026-04-02,2026-02-05,01,61,YEARS,M
ST1,DM,S-004,004,,2026-02-05,01,62,YEARS,M
ST1,DM,S-005,005,2026-05,2026-02-05,01,63,YEARS,F
"""
D0_EX = """STUDYID,DOMAIN,USUBJID,EXSEQ,EXTRT,EXCAT,EXDOSE,EXDOSU,EXSTDTC,EXENDTC
ST1,EX,S-001,1,CAR cells,CELL THERAPY,1,10^6 cells/kg,2026-03-01T10:00,2026-03-01T10:30
ST1,EX,S-002,1,CAR cells,CELL THERAPY,1,10^6 cells/kg,2026-03,2026-03
ST1,EX,S-003,1,CAR cells,CELL THERAPY,1,10^6 cells/kg,2026-03,2026-03
ST1,EX,S-004,1,CAR cells,CELL THERAPY,1,10^6 cells/kg,2026-03,2026-03
"""
D0_AE = """STUDYID,DOMAIN,USUBJID,AESEQ,AETERM,AEDECOD,AETOXGR,AESER,AESTDTC,AEENDTC
ST1,AE,S-002,1,Fever,Pyrexia,1,N,2026-03-05,2026-03-06
"""


@pytest.fixture(scope="module")
def d0_loaded(tmp_path_factory):
    return load_study(tmp_path_factory, "day0", {"dm.csv": D0_DM, "ex.csv": D0_EX, "ae.csv": D0_AE},
                      run_derivations=False)


def test_partial_ex_infusion_takes_day_0_from_complete_rfxstdtc(d0_loaded):
    assert q(d0_loaded, "SELECT usubjid, first_infusion_dtc, CAST(first_infusion_date AS VARCHAR), infusion_source "
                        "FROM subjects ORDER BY 1") == [
        ("S-001", "2026-03-01T10:00", "2026-03-01", "EX"),
        ("S-002", "2026-03-10", "2026-03-10", "DM.RFXSTDTC (EXSTDTC partial)"),
        ("S-003", "2026-03", "2026-03-01", "EX"),      # RFXSTDTC 2026-04-02 is outside March: imputed
        ("S-004", "2026-03", "2026-03-01", "EX"),      # no RFXSTDTC: imputed
        ("S-005", "2026-05", "2026-05-01", "DM.RFXSTDTC")]
    # the infusion itself is on day 0, and the fever five days before it is not treatment-emergent
    assert q(d0_loaded, "SELECT CAST(exst_date AS VARCHAR), exst_date_flag, day FROM exposures "
                        "WHERE usubjid = 'S-002'") == [("2026-03-10", "D", 0)]
    assert q(d0_loaded, "SELECT onset_day, treatment_emergent FROM adverse_events") == [(-5, False)]


def test_day_0_from_a_partial_date_is_noted(d0_loaded):
    notes = dict(q(d0_loaded, "SELECT source_file, notes FROM load_log"))
    assert notes["ex.csv"] == (
        "1 subject(s) whose first CAR infusion has a partial EXSTDTC take day 0 from DM.RFXSTDTC, a complete date "
        "inside its period (subjects.infusion_source 'DM.RFXSTDTC (EXSTDTC partial)'): S-002 (DM.RFXSTDTC "
        "'2026-03-10'); day 0 imputed for 2 subject(s): their first CAR infusion has a partial EXSTDTC and no "
        "complete DM.RFXSTDTC inside its period, so day 0 is the period's first day and every study day of theirs "
        "rests on it: S-003 ('2026-03' -> 2026-03-01), S-004 ('2026-03' -> 2026-03-01)")
    assert notes["dm.csv"] == (
        "day 0 imputed for 1 subject(s) with no CAR infusion in EX: their DM.RFXSTDTC is partial, so day 0 is the "
        "period's first day and every study day of theirs rests on it: S-005 ('2026-05' -> 2026-05-01)")

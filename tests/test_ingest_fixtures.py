"""A small study folder written in any delivery format, shared by the ingest tests (no tests here)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

STUDY = "CT-TEST-01"

DM = pd.DataFrame({
    "STUDYID": [STUDY] * 5,
    "DOMAIN": ["DM"] * 5,
    "USUBJID": ["S-001", "S-002", "S-003", "S-004", "S-005"],
    "SUBJID": ["001", "002", "003", "004", "005"],
    "SITEID": ["10", "10", "20", "20", "20"],
    "AGE": [54, 61, 45, 70, 38],
    "SEX": ["M", "F", "F", "M", "F"],
    "RACE": ["WHITE"] * 5,
    "COUNTRY": ["DEU"] * 5,
    "ARMCD": ["DL1", "DL1", "DL2", "DL2", "DL2"],
    "ARM": ["Dose level 1"] * 2 + ["Dose level 2"] * 3,
    "RFICDTC": ["2024-01-10", "2024-01-20", "2024-02-01", "2024-02-15", "2024-05-01"],
    "RFXSTDTC": ["2024-02-01", "2024-02-10", "2024-03-12", "", ""],
    "DTHDTC": ["", "", "", "", ""],
})

EX = pd.DataFrame({
    "STUDYID": [STUDY] * 5,
    "USUBJID": ["S-001", "S-001", "S-001", "S-002", "S-004"],
    "EXSEQ": [1, 2, 3, 1, 1],
    "EXTRT": ["FLUDARABINE", "CYCLOPHOSPHAMIDE", "CTX-101", "CTX-101", "FLUDARABINE"],
    "EXCAT": ["LYMPHODEPLETION", "LYMPHODEPLETION", "CAR-T", "CAR-T", "LYMPHODEPLETION"],
    "EXDOSE": [30, 500, 1, 1, 30],
    "EXDOSU": ["mg/m2", "mg/m2", "x10^6 cells/kg", "x10^6 cells/kg", "mg/m2"],
    "EXSTDTC": ["2024-01-27", "2024-01-27", "2024-02-01", "2024-02-10", "2024-03-01"],
    "EXENDTC": ["2024-01-29", "2024-01-29", "2024-02-01", "2024-02-10", "2024-03-03"],
})

AE = pd.DataFrame({
    "STUDYID": [STUDY] * 7,
    "USUBJID": ["S-001", "S-001", "S-002", "S-003", "S-001", "S-002", "S-999"],
    "AESEQ": [1, 2, 1, 1, 3, 1, 1],
    "AETERM": ["Fever", "Cytokine release syndrome", "Headache", "Neutropenia", "Rash", "Headache again", "Ghost"],
    "AEDECOD": ["PYREXIA", "CYTOKINE RELEASE SYNDROME", "HEADACHE", "NEUTROPENIA", "RASH", "HEADACHE", "X"],
    "AEBODSYS": ["GEN", "IMM", "NERV", "BLOOD", "SKIN", "NERV", "X"],
    "AETOXGR": ["1", "2", "7", "3", "2", "1", "1"],
    "AESEV": ["MILD", "MODERATE", "SEVERE", "SEVERE", "MODERATE", "MILD", "MILD"],
    "AESER": ["N", "Y", "N", "Y", "N", "N", "N"],
    "AEREL": ["PROBABLE", "RELATED", "NOT RELATED", "POSSIBLE", "UNLIKELY", "N", "N"],
    "AEOUT": ["RECOVERED/RESOLVED", "RECOVERED/RESOLVED", "", "NOT RECOVERED/NOT RESOLVED", "RECOVERED/RESOLVED", "", ""],
    "AESTDTC": ["2024-02-02", "2024-02", "2024-02-11", "2024-03", "2024-02-20", "2024-02-12", "2024-02-12"],
    "AEENDTC": ["2024-02-04", "2024-02-09", "", "", "2024-02-10", "", ""],
})

LB = pd.DataFrame({
    "STUDYID": [STUDY] * 8,
    "USUBJID": ["S-001", "S-001", "S-001", "S-001", "S-002", "S-002", "S-002", "S-003"],
    "LBSEQ": [1, 2, 3, 4, 1, 2, 3, 1],
    "LBTESTCD": ["BILI", "NEUT", "CRP", "ALT", "BILI", "CREAT", "NEUT", "HGB"],
    "LBTEST": ["Bilirubin", "Neutrophils", "C-reactive protein", "ALT", "Bilirubin", "Creatinine", "Neutrophils", "Hemoglobin"],
    "LBORRES": ["1.2", "1500", "<0.5", "45", "2.0", "abc", "800", "9.5"],
    "LBORRESU": ["mg/dL", "/uL", "mg/dL", "U/L", "furlong", "mg/dL", "cells/uL", "g/dL"],
    "LBSTRESN": ["", "", "", "", "", "", "", ""],
    "LBSTRESU": ["", "", "", "", "", "", "", ""],
    "LBORNRLO": ["0.1", "1800", "", "0", "0.1", "0.6", "1800", "12"],
    "LBORNRHI": ["1.2", "7500", "0.5", "40", "1.2", "1.2", "7500", "16"],
    "LBNRIND": ["normal", "low", "", "high", "", "", "low", "low"],
    "LBBLFL": ["Y", "Y", "", "Y", "", "", "", ""],
    "LBDTC": ["2024-01-25", "2024-01-25T08:00", "2024-02-05", "2024-01-25", "2024-02-12", "2024-02-12", "2024-02-14", "2024-03-15"],
})

VS = pd.DataFrame({
    "STUDYID": [STUDY] * 4,
    "USUBJID": ["S-001", "S-001", "S-002", "S-002"],
    "VSSEQ": [1, 2, 1, 2],
    "VSTESTCD": ["ECOG", "TEMP", "ECOG", "LVEF"],
    "VSORRES": ["1", "38.5", "3", "45"],
    "VSSTRESN": ["1", "38.5", "3", "45"],
    "VSSTRESU": ["", "C", "", "%"],
    "VSDTC": ["2024-01-20", "2024-02-02", "2024-02-01", "2024-02-01"],
})

CM = pd.DataFrame({
    "STUDYID": [STUDY] * 3,
    "USUBJID": ["S-001", "S-001", "S-003"],
    "CMSEQ": [1, 2, 1],
    "CMTRT": ["Tocilizumab", "Dexamethasone", "Fludarabine"],
    "CMDOSE": ["8", "10", "30"],
    "CMDOSU": ["mg/kg", "mg", "mg/m2"],
    "CMSTDTC": ["2024-02-03", "2024-02-04", "2024-03-07"],
    "CMENDTC": ["2024-02-03", "2024-02-06", "2024-03-09"],
})

DS = pd.DataFrame({
    "STUDYID": [STUDY] * 2,
    "USUBJID": ["S-002", "S-004"],
    "DSSEQ": [1, 1],
    "DSTERM": ["Multi-organ failure", "Withdrew consent"],
    "DSDECOD": ["DEATH", "WITHDRAWAL BY SUBJECT"],
    "DSCAT": ["DISPOSITION EVENT", "DISPOSITION EVENT"],
    "DSSTDTC": ["2024-03-20", "2024-03-05"],
})

RS = pd.DataFrame({
    "STUDYID": [STUDY] * 2,
    "USUBJID": ["S-001", "S-002"],
    "RSSEQ": [1, 1],
    "RSTESTCD": ["OVRLRESP", "OVRLRESP"],
    "RSORRES": ["CR", "PD"],
    "RSSTRESC": ["CR", "PD"],
    "RSDTC": ["2024-03-01", "2024-03-10"],
})

CRS = pd.DataFrame({
    "USUBJID": ["S-001", "S-001", "S-001"],
    "CRSDTC": ["2024-02-02T08:00", "2024-02-03T08:00", "2024-02-03T20:00"],
    "TEMP_C": ["38.6", "39.1", "oops"],
    "HYPOTENSION": ["N", "Y", "N"],
    "VASOPRESSORS": ["0", "1", "0"],
    "VASOPRESSIN": ["N", "N", "N"],
    "OXYGEN": ["NONE", "LOW_FLOW_NC", "NONE"],
    "O2_FLOW_LMIN": ["", "2", ""],
})

ICANS = pd.DataFrame({
    "USUBJID": ["S-001", "S-001"],
    "ICANSDTC": ["2024-02-04T09:00", "2024-02-05"],
    "ICE_SCORE": ["8", "11"],
    "CONSCIOUSNESS": ["AWAKE", "AWAKE"],
    "SEIZURE": ["NONE", "NONE"],
    "MOTOR_WEAKNESS": ["NONE", "NONE"],
    "CEREBRAL_EDEMA": ["NONE", "NONE"],
})

SUPPAE = pd.DataFrame({
    "STUDYID": [STUDY] * 3,
    "RDOMAIN": ["AE"] * 3,
    "USUBJID": ["S-001", "S-001", "S-002"],
    "IDVAR": ["AESEQ", "AESEQ", "AESEQ"],
    "IDVARVAL": ["2", "1", "9"],
    "QNAM": ["AEICU", "AEICU", "AEICU"],
    "QLABEL": ["ICU admission"] * 3,
    "QVAL": ["Y", "N", "Y"],
})

SUPPDM = pd.DataFrame({
    "STUDYID": [STUDY] * 2,
    "RDOMAIN": ["DM"] * 2,
    "USUBJID": ["S-001", "S-002"],
    "IDVAR": ["", ""],
    "IDVARVAL": ["", ""],
    "QNAM": ["DOSELVL", "DOSELVL"],
    "QVAL": ["DL1 (1e6/kg)", "DL1 (1e6/kg)"],
})

DOMAINS = {"dm": DM, "ex": EX, "ae": AE, "lb": LB, "vs": VS, "cm": CM, "ds": DS, "rs": RS,
           "crs_assessments": CRS, "icans_assessments": ICANS, "suppae": SUPPAE, "suppdm": SUPPDM}

STUDY_YAML = """studyid: CT-TEST-01
title: Test study
product: CTX-101
product_type: CAR-T
eligibility:
  age: {min: 18, max: 65}
  labs:
    - {test: BILI, max_x_uln: 1.5}
    - {test: NEUT, min: 1.0}
  vitals:
    - {test: ECOG, max: 1}
    - {test: LVEF, min: 50}
"""


def write_frame(df: pd.DataFrame, path: Path) -> None:
    """Write ``df`` as the format named by the suffix (text columns; numbers as numbers for xpt)."""
    fmt = path.suffix.lower()
    if fmt == ".csv":
        df.to_csv(path, index=False)
    elif fmt == ".parquet":
        df.astype(str).to_parquet(path, index=False)
    elif fmt == ".xlsx":
        df.to_excel(path, index=False, engine="openpyxl")
    elif fmt == ".xpt":
        import pyreadstat
        out = df.copy()
        for c in out.columns:
            if out[c].dtype.kind not in "if":
                out[c] = out[c].astype(str)
        # XPT v5 allows 8-character names; the celltox CRS/ICANS files need v8
        version = 5 if all(len(c) <= 8 for c in out.columns) else 8
        pyreadstat.write_xport(out, str(path), table_name=path.stem[:8].upper(), file_format_version=version)
    else:
        raise ValueError(fmt)


def make_study(root: Path, fmt: str = "csv", domains: dict | None = None, study_yaml: str | None = STUDY_YAML,
               skip: tuple[str, ...] = ()) -> Path:
    """Write the fixture study (or ``domains``) into ``root`` as ``fmt`` files; returns the folder."""
    root.mkdir(parents=True, exist_ok=True)
    for name, df in (domains or DOMAINS).items():
        if name in skip:
            continue
        write_frame(df, root / f"{name}.{fmt}")
    if study_yaml is not None:
        (root / "study.yaml").write_text(study_yaml, encoding="utf-8")
    return root

#!/usr/bin/env python
"""Deterministic synthetic sample data for celltox: two cell-therapy studies as sponsors deliver them.

    python sample_data/generate.py                      # writes sample_data/car_t_cd56/ and sample_data/car_itnk/
                                                        # (+ sample_data/twins/car_itnk_sdtm/, ITNK-B-01 as plain SDTM)
    python sample_data/generate.py --out DIR            # the same two studies into DIR/
    python sample_data/generate.py --subjects 10000 --out DIR [--format parquet|csv|xpt]
                                                        # one program-scale study (benchmarks; never committed)

Everything is drawn from one numpy Generator with a fixed seed and written without timestamps, so a rerun
gives byte-identical files. The clinical story (CRS/ICANS kinetics, cytopenias, DLTs, discrepancies and
deviations) and the list of planted findings are described in sample_data/README.md; PLANTED below is the
machine-readable version that tests check.
"""
from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

SEED = 20260331
HERE = Path(__file__).resolve().parent

# --------------------------------------------------------------------------------------------------
# Laboratory catalogue (SI). Ranges per sex where they differ. group = which visits measure the test.
# --------------------------------------------------------------------------------------------------
LAB_TESTS: dict[str, dict] = {
    # code: name, category, specimen, unit, (lln, uln) or {sex: (lln, uln)}, decimals, noise sd (log), group
    "NEUT": dict(name="Neutrophils", cat="HEMATOLOGY", spec="BLOOD", unit="10^9/L", rng=(2.0, 7.5), dp=2, sd=0.08, group="full"),
    "PLAT": dict(name="Platelets", cat="HEMATOLOGY", spec="BLOOD", unit="10^9/L", rng=(150, 400), dp=0, sd=0.06, group="full"),
    "HGB": dict(name="Hemoglobin", cat="HEMATOLOGY", spec="BLOOD", unit="g/L", rng={"M": (130, 175), "F": (120, 155)}, dp=0, sd=0.03, group="full"),
    "LYM": dict(name="Lymphocytes", cat="HEMATOLOGY", spec="BLOOD", unit="10^9/L", rng=(1.0, 3.2), dp=2, sd=0.08, group="full"),
    "WBC": dict(name="Leukocytes", cat="HEMATOLOGY", spec="BLOOD", unit="10^9/L", rng=(4.0, 10.0), dp=2, sd=0.0, group="full"),
    "FIBRINO": dict(name="Fibrinogen", cat="COAGULATION", spec="PLASMA", unit="g/L", rng=(2.0, 4.0), dp=2, sd=0.04, group="full"),
    "ALT": dict(name="Alanine Aminotransferase", cat="CHEMISTRY", spec="SERUM", unit="U/L", rng=(7, 40), dp=0, sd=0.07, group="full"),
    "AST": dict(name="Aspartate Aminotransferase", cat="CHEMISTRY", spec="SERUM", unit="U/L", rng=(13, 40), dp=0, sd=0.07, group="full"),
    "BILI": dict(name="Bilirubin", cat="CHEMISTRY", spec="SERUM", unit="umol/L", rng=(3.4, 20.5), dp=1, sd=0.06, group="full"),
    "CREAT": dict(name="Creatinine", cat="CHEMISTRY", spec="SERUM", unit="umol/L", rng={"M": (62, 106), "F": (44, 80)}, dp=0, sd=0.04, group="full"),
    "K": dict(name="Potassium", cat="CHEMISTRY", spec="SERUM", unit="mmol/L", rng=(3.5, 5.3), dp=1, sd=0.025, group="full"),
    "SODIUM": dict(name="Sodium", cat="CHEMISTRY", spec="SERUM", unit="mmol/L", rng=(136, 145), dp=0, sd=0.007, group="full"),
    "CRP": dict(name="C Reactive Protein", cat="CHEMISTRY", spec="SERUM", unit="mg/L", rng=(0, 10), dp=1, sd=0.10, group="full"),
    "FERRITIN": dict(name="Ferritin", cat="CHEMISTRY", spec="SERUM", unit="ug/L", rng={"M": (30, 400), "F": (15, 150)}, dp=0, sd=0.08, group="full"),
    "ALP": dict(name="Alkaline Phosphatase", cat="CHEMISTRY", spec="SERUM", unit="U/L", rng=(40, 130), dp=0, sd=0.05, group="sparse"),
    "GGT": dict(name="Gamma Glutamyl Transferase", cat="CHEMISTRY", spec="SERUM", unit="U/L", rng=(10, 60), dp=0, sd=0.06, group="sparse"),
    "CA": dict(name="Calcium", cat="CHEMISTRY", spec="SERUM", unit="mmol/L", rng=(2.15, 2.55), dp=2, sd=0.015, group="sparse"),
    "MG": dict(name="Magnesium", cat="CHEMISTRY", spec="SERUM", unit="mmol/L", rng=(0.66, 1.07), dp=2, sd=0.03, group="sparse"),
    "ALB": dict(name="Albumin", cat="CHEMISTRY", spec="SERUM", unit="g/L", rng=(35, 52), dp=0, sd=0.025, group="sparse"),
    "LDH": dict(name="Lactate Dehydrogenase", cat="CHEMISTRY", spec="SERUM", unit="U/L", rng=(120, 250), dp=0, sd=0.06, group="sparse"),
    "GLUC": dict(name="Glucose", cat="CHEMISTRY", spec="SERUM", unit="mmol/L", rng=(3.9, 6.1), dp=1, sd=0.04, group="sparse"),
    "URATE": dict(name="Urate", cat="CHEMISTRY", spec="SERUM", unit="mmol/L", rng=(0.15, 0.43), dp=2, sd=0.05, group="sparse"),
    "IL6": dict(name="Interleukin 6", cat="IMMUNOLOGY", spec="SERUM", unit="ng/L", rng=(0, 7), dp=1, sd=0.12, group="daily"),
    "IGG": dict(name="Immunoglobulin G", cat="IMMUNOLOGY", spec="SERUM", unit="g/L", rng=(7.0, 16.0), dp=1, sd=0.04, group="igg"),
}
LAB_CODES = list(LAB_TESTS)
HAEM_FILE_CATS = {"HEMATOLOGY", "COAGULATION"}  # lbhe; the rest go to lbch when LB is split

# Visits: (name, nominal day, jitter days, groups measured)
VISITS = [
    ("SCREENING", None, 0, {"full", "sparse", "daily", "igg"}),
    ("DAY -5", -5, 0, {"full", "sparse"}),
    ("DAY 0", 0, 0, {"full", "sparse", "daily"}),
] + [
    (f"DAY {d}", d, 0, {"full", "daily"} | ({"sparse"} if d in (1, 3, 5, 7, 10, 14) else set()))
    for d in range(1, 15)
] + [
    ("DAY 21", 21, 1, {"full", "sparse", "daily"}),
    ("DAY 28", 28, 0, {"full", "sparse", "daily", "igg"}),
    ("MONTH 2", 60, 3, {"full", "sparse", "igg"}),
    ("MONTH 3", 90, 5, {"full", "sparse", "igg"}),
    ("MONTH 6", 180, 7, {"full", "sparse", "igg"}),
    ("MONTH 9", 270, 7, {"full", "sparse", "igg"}),
    ("MONTH 12", 365, 7, {"full", "sparse", "igg"}),
]
RESPONSE_VISITS = [("MONTH 1", 28), ("MONTH 3", 90), ("MONTH 6", 180), ("MONTH 12", 365)]

# Lab test -> CTCAE v5 term (direction) for AEs the investigators report from labs.
LAB_AE_TERMS = {
    ("NEUT", "L"): ("Neutrophil count decreased", "Investigations"),
    ("PLAT", "L"): ("Platelet count decreased", "Investigations"),
    ("HGB", "L"): ("Anemia", "Blood and lymphatic system disorders"),
    ("ALT", "H"): ("Alanine aminotransferase increased", "Investigations"),
    ("AST", "H"): ("Aspartate aminotransferase increased", "Investigations"),
    ("BILI", "H"): ("Blood bilirubin increased", "Investigations"),
    ("ALP", "H"): ("Alkaline phosphatase increased", "Investigations"),
    ("GGT", "H"): ("GGT increased", "Investigations"),
    ("CREAT", "H"): ("Creatinine increased", "Investigations"),
    ("K", "L"): ("Hypokalemia", "Metabolism and nutrition disorders"),
    ("K", "H"): ("Hyperkalemia", "Metabolism and nutrition disorders"),
    ("SODIUM", "L"): ("Hyponatremia", "Metabolism and nutrition disorders"),
    ("SODIUM", "H"): ("Hypernatremia", "Metabolism and nutrition disorders"),
    ("CA", "L"): ("Hypocalcemia", "Metabolism and nutrition disorders"),
    ("CA", "H"): ("Hypercalcemia", "Metabolism and nutrition disorders"),
    ("MG", "L"): ("Hypomagnesemia", "Metabolism and nutrition disorders"),
    ("MG", "H"): ("Hypermagnesemia", "Metabolism and nutrition disorders"),
    ("ALB", "L"): ("Hypoalbuminemia", "Metabolism and nutrition disorders"),
    ("FIBRINO", "L"): ("Fibrinogen decreased", "Investigations"),
    ("LDH", "H"): ("Blood lactate dehydrogenase increased", "Investigations"),
    ("GLUC", "L"): ("Hypoglycemia", "Metabolism and nutrition disorders"),
    ("URATE", "H"): ("Hyperuricemia", "Metabolism and nutrition disorders"),
    ("WBC", "L"): ("White blood cell decreased", "Investigations"),
    ("LYM", "L"): ("Lymphocyte count decreased", "Investigations"),
}

# Peak values that sit in the middle of each CTCAE v5 grade band (x ULN/LLN where the rule is relative).
# Used to give every lab term a spread of grades across the two studies.
GRADE_TARGETS: dict[tuple[str, str], dict[int, tuple[str, float]]] = {
    ("ALT", "H"): {1: ("xuln", 2.0), 2: ("xuln", 4.0), 3: ("xuln", 8.0), 4: ("xuln", 26.0)},
    ("AST", "H"): {1: ("xuln", 2.0), 2: ("xuln", 4.0), 3: ("xuln", 8.0), 4: ("xuln", 26.0)},
    ("BILI", "H"): {1: ("xuln", 1.25), 2: ("xuln", 2.2), 3: ("xuln", 5.0), 4: ("xuln", 13.0)},
    ("ALP", "H"): {1: ("xuln", 1.7), 2: ("xuln", 3.5), 3: ("xuln", 9.0), 4: ("xuln", 25.0)},
    ("GGT", "H"): {1: ("xuln", 1.7), 2: ("xuln", 3.5), 3: ("xuln", 9.0), 4: ("xuln", 25.0)},
    ("CREAT", "H"): {1: ("xuln", 1.25), 2: ("xuln", 2.2), 3: ("xuln", 4.3), 4: ("xuln", 7.5)},
    ("K", "L"): {2: ("abs", 3.25), 3: ("abs", 2.75), 4: ("abs", 2.3)},
    ("K", "H"): {1: ("abs", 5.45), 2: ("abs", 5.8), 3: ("abs", 6.5), 4: ("abs", 7.4)},
    ("SODIUM", "L"): {1: ("abs", 132.0), 3: ("abs", 126.0), 4: ("abs", 117.0)},
    ("SODIUM", "H"): {1: ("abs", 148.0), 2: ("abs", 153.0), 3: ("abs", 158.0), 4: ("abs", 163.0)},
    ("CA", "L"): {1: ("abs", 2.08), 2: ("abs", 1.88), 3: ("abs", 1.63), 4: ("abs", 1.38)},
    ("MG", "L"): {1: ("abs", 0.58), 2: ("abs", 0.45), 3: ("abs", 0.35), 4: ("abs", 0.25)},
    ("ALB", "L"): {1: ("abs", 32.0), 2: ("abs", 25.0), 3: ("abs", 17.0)},
    ("FIBRINO", "L"): {1: ("abs", 1.8), 2: ("abs", 1.3), 3: ("abs", 0.8), 4: ("abs", 0.4)},
    ("LDH", "H"): {1: ("xuln", 2.5)},
    ("GLUC", "L"): {1: ("abs", 3.5), 2: ("abs", 2.6), 3: ("abs", 1.95), 4: ("abs", 1.45)},
    ("URATE", "H"): {3: ("xuln", 1.4)},
    ("HGB", "L"): {2: ("abs", 90.0), 3: ("abs", 72.0)},
}

CRS_TERM = ("Cytokine release syndrome", "Immune system disorders")
ICANS_TERM = ("Immune effector cell-associated neurotoxicity syndrome", "Nervous system disorders")

BACKGROUND_AES = [  # term, SOC, weight, max grade
    ("Fatigue", "General disorders and administration site conditions", 8, 2),
    ("Fever", "General disorders and administration site conditions", 3, 1),
    ("Nausea", "Gastrointestinal disorders", 6, 2),
    ("Vomiting", "Gastrointestinal disorders", 3, 2),
    ("Diarrhea", "Gastrointestinal disorders", 4, 2),
    ("Anorexia", "Metabolism and nutrition disorders", 4, 2),
    ("Headache", "Nervous system disorders", 5, 2),
    ("Tremor", "Nervous system disorders", 2, 1),
    ("Cough", "Respiratory, thoracic and mediastinal disorders", 3, 1),
    ("Dyspnea", "Respiratory, thoracic and mediastinal disorders", 2, 2),
    ("Chills", "General disorders and administration site conditions", 3, 1),
    ("Sinus tachycardia", "Cardiac disorders", 3, 1),
    ("Hypotension", "Vascular disorders", 2, 2),
    ("Rash maculo-papular", "Skin and subcutaneous tissue disorders", 2, 2),
    ("Hypophosphatemia", "Metabolism and nutrition disorders", 3, 2),
    ("Insomnia", "Psychiatric disorders", 2, 1),
    ("Constipation", "Gastrointestinal disorders", 3, 1),
    ("Mucositis oral", "Gastrointestinal disorders", 2, 2),
]
INFECTIONS = [  # term, SOC, anti-infective
    ("Sepsis", "Infections and infestations", "Meropenem"),
    ("Cytomegalovirus infection reactivation", "Infections and infestations", "Ganciclovir"),
    ("Lung infection", "Infections and infestations", "Piperacillin/Tazobactam"),
    ("Upper respiratory infection", "Infections and infestations", "Oseltamivir"),
    ("Urinary tract infection", "Infections and infestations", "Levofloxacin"),
]
REL_LEVELS = ["NOT RELATED", "UNLIKELY RELATED", "POSSIBLY RELATED", "PROBABLY RELATED", "RELATED"]

# --------------------------------------------------------------------------------------------------
# The two studies
# --------------------------------------------------------------------------------------------------
STUDIES = {
    "car_t_cd56": dict(
        studyid="CD56-CART-01",
        title="Single-centre, open, one-arm study of anti-CD56 CAR-T in relapsed/refractory NK/T-cell lymphoma and NK-cell leukaemia",
        product="Anti-CD56 CAR-T cells", product_type="CAR-T", fmt="xpt", split_lb=True, country="CHN",
        sites={"01": "Site 01 (single centre)"}, data_cuts=["2026-03-31", "2026-09-30"],
        diagnoses=[("NK/T-cell lymphoma", 0.75), ("NK-cell leukaemia", 0.25)],
        dose_levels={"DL1": 1.0, "DL2": 3.0, "DL3": 6.0},
        # subjid -> (dose level, cohort, infusion date); 3+3-like escalation then expansion at DL2
        enrolment=[
            ("001", "DL1", "ESCALATION DL1", "2024-05-14"), ("002", "DL1", "ESCALATION DL1", "2024-06-11"),
            ("003", "DL1", "ESCALATION DL1", "2024-07-09"),
            ("004", "DL2", "ESCALATION DL2", "2024-08-27"), ("005", "DL2", "ESCALATION DL2", "2024-09-24"),
            ("006", "DL2", "ESCALATION DL2", "2024-10-22"), ("007", "DL2", "ESCALATION DL2", "2024-11-26"),
            ("008", "DL2", "ESCALATION DL2", "2024-12-17"), ("009", "DL2", "ESCALATION DL2", "2025-01-21"),
            ("010", "DL3", "ESCALATION DL3", "2025-03-04"), ("011", "DL3", "ESCALATION DL3", "2025-03-25"),
            ("012", "DL3", "ESCALATION DL3", "2025-04-22"), ("013", "DL3", "ESCALATION DL3", "2025-05-20"),
            ("014", "DL3", "ESCALATION DL3", "2025-06-17"), ("015", "DL3", "ESCALATION DL3", "2025-07-08"),
            ("016", "DL2", "EXPANSION DL2", "2025-08-19"), ("017", "DL2", "EXPANSION DL2", "2025-10-14"),
            ("018", "DL2", "EXPANSION DL2", "2025-12-09"), ("019", "DL2", "EXPANSION DL2", "2026-01-20"),
            ("020", "DL2", "EXPANSION DL2", "2026-02-24"), ("021", "DL2", "EXPANSION DL2", "2026-05-12"),
            ("022", "DL2", "EXPANSION DL2", "2026-07-21"),
        ],
        stopping_rule={"method": "boin", "event": "dlt", "threshold": 0.30, "max_n": 24, "min_n": 3,
                       "boin_elimination_cutoff": 0.95, "group_by": "dose_level"},
    ),
    "car_itnk": dict(
        studyid="ITNK-B-01",
        title="CAR-ITNK cells (induced T-cell-like NK cells with a CD19 CAR) for relapsed/refractory B-cell malignancies",
        product="CAR-ITNK cells", product_type="CAR-ITNK", fmt="csv", split_lb=False, country="CHN",
        sites={"01": "Site 01", "02": "Site 02", "03": "Site 03"}, data_cuts=["2026-03-31", "2026-09-30"],
        diagnoses=[("B-cell acute lymphoblastic leukaemia", 0.55), ("B-cell lymphoma", 0.45)],
        dose_levels={"DL1": 1.0, "DL2": 3.0},
        enrolment=None,  # drawn: 31 subjects, 3 sites, two dose levels
        age_min=3,  # B-ALL: children and adolescents are enrolled
        n_subjects=31,
        stopping_rule={"method": "bayesian_beta_binomial", "event": "crs_icans_grade3", "prior_a": 0.5,
                       "prior_b": 1.5, "threshold": 0.25, "posterior_cutoff": 0.90, "max_n": 30, "min_n": 3},
    ),
}

# The findings a committee must see. Each: (study folder, subjid, kind, day, detail). Tests read this list.
PLANTED = [
    ("car_t_cd56", "005", "DLT R2", 4, "CRS grade 4 (two vasopressors) days 2-8; tocilizumab, dexamethasone, anakinra (refractory)"),
    ("car_t_cd56", "011", "DLT R3", 3, "CRS grade 3 (one vasopressor) days 3-7 = 5 days > 72 h"),
    ("car_t_cd56", "013", "near-miss R3", 2, "CRS grade 3 days 2-4: exactly 72 h, not more"),
    ("car_t_cd56", "012", "DLT R1", 9, "Treatment-related death: ICANS grade 5 (diffuse cerebral oedema) onset day 4, death day 9; also R4 (ICANS >= 4)"),
    ("car_t_cd56", "007", "DLT R6", 8, "ALT increased grade 3, possibly related, days 8-17 (10 days)"),
    ("car_t_cd56", "008", "near-miss R6", 6, "AST increased grade 3, probably related, days 6-12: exactly 7 days"),
    ("car_t_cd56", "003", "near-miss R6", 12, "Lung infection grade 3 lasting 13 days but UNLIKELY RELATED"),
    ("car_t_cd56", "009", "DLT R7", 28, "ANC still < 0.5 x10^9/L (0.3) on day 28; censored '<0.1' results on days 8 and 10"),
    ("car_t_cd56", "014", "DLT R7", 28, "Platelets still < 25 x10^9/L (18) on day 28"),
    ("car_t_cd56", "016", "near-miss window", 30, "Second CRS episode, grade 4, on day 30: outside the DLT window 0-28"),
    ("car_t_cd56", "010", "late cytopenia", 60, "Biphasic neutropenia: recovered by day 14, ANC 0.6 on day 60, 0.8 on day 90"),
    ("car_t_cd56", "006", "discrepancy CRS", 3, "CRS reported grade 1; norepinephrine running on day 3 = ASTCT grade 3"),
    ("car_t_cd56", "018", "discrepancy ICANS", 6, "ICANS reported grade 1; ICE score 3-6 and awakens to voice on days 6-7 = ASTCT grade 2"),
    ("car_t_cd56", "019", "IEC-HS", 8, "Ferritin surges to 60,000 ug/L days 7-13 as CRS resolves, fibrinogen 0.9 g/L, new cytopenia"),
    ("car_t_cd56", "019", "DLT R6", 8, "The IEC-HS AE (grade 3, related, days 8-16 = 9 days) also meets R6"),
    ("car_t_cd56", "002", "eligibility", -10, "Screening bilirubin 40 umol/L (limit <= 34.2)"),
    ("car_t_cd56", "017", "eligibility", -9, "Screening ECOG 3 (limit <= 2)"),
    ("car_t_cd56", "004", "partial date", None, "Fatigue with AESTDTC given as year-month only (infusion month)"),
    ("car_t_cd56", "020", "severity only", None, "Headache with AESEV MILD and no AETOXGR"),
    ("car_itnk", "008", "discrepancy CRS", 2, "Site 02 reports CRS grade 1 while a vasopressor ran on day 2 (ASTCT grade 3)"),
    ("car_itnk", "012", "CRS grade 3", 2, "The study's one grade-3 CRS: days 2-3 (48 h), no DLT"),
    ("car_itnk", "015", "near-miss R1", 21, "Death from disease progression on day 21 (grade 5 'Disease progression', not related): not a DLT"),
    ("car_itnk", "006", "eligibility", -10, "Screening ALT 3.5 x ULN (limit < 3 x ULN)"),
    ("car_itnk", "031", "not infused", None, "Enrolled, withdrew before lymphodepletion: DM, screening data and DS only"),
    ("car_itnk", "019", "conventional units", 21, "Bilirubin (mg/dL) and haemoglobin (g/dL) given only as LBORRES/LBORRESU on days 21 and 28"),
    ("car_itnk", "004", "urine glucose", 28, "Urine glucose 0.3 mmol/L (LBSPEC URINE): must not be graded as hypoglycaemia"),
    ("car_itnk", "010", "partial date", None, "Upper respiratory infection with AESTDTC year-month only (a later month)"),
    ("car_t_cd56", "021", "DLT R9", 6, "Acute kidney injury grade 4, probably related, days 6-8 (3 days): too short for R6, a DLT candidate by R9"),
    ("car_t_cd56", "014", "pending changes decision", 28, "DL3: 2 of 6 DLTs confirmed (BOIN stay); the pending R7 candidate of 014 would make 3 of 6 (de-escalate)"),
    ("car_itnk", "002", "child ICANS (CAPD)", 6, "Age 8, B-ALL: ICANS graded with CAPD (no ICE), grade 2 on days 6-7 (CAPD 6, awakens to voice)"),
    ("car_itnk", "020", "AE-only CRS", 3, "CRS grade 4 reported as an AE (days 3-8) with no bedside CRS assessments: episode with source 'reported AE'"),
    ("car_itnk", "025", "CRS death", 10, "CRS grade 4 from day 4, died of CRS on day 10 (AE grade 5 FATAL, DS cause): CRS grade 5"),
    ("car_itnk", "025", "sedated ICU days", 7, "Intubated and sedated for CRS respiratory failure days 7-10: ICANS consciousness and ICE not gradable"),
    ("car_itnk", "018", "IEC-HS (no baseline ferritin)", 6, "No ferritin before infusion; ferritin > 2 x ULN rising again after grade-2 CRS, fibrinogen 0.9 g/L; anakinra: screen grade 2"),
    ("car_t_cd56", "009", "early ICAHT grade 4", 2, "ANC <= 0.5 from day 2 with no recovery by day 30: early ICAHT grade 4 (the DLT R7 subject)"),
]

PLANTED += [
    ("car_t_cd56", "021", "fungal death", 84, "Invasive pulmonary aspergillosis (galactomannan/BAL Aspergillus fumigatus day 69), grade 5 from day 70, death day 84: non-relapse death by day 100"),
    ("car_t_cd56", "004", "CMV reactivation", 34, "CMV DNA detected (MB) on day 34, AE CMV reactivation days 35-52, ganciclovir"),
    ("car_t_cd56", "022", "TLS", 1, "Laboratory TLS (Cairo-Bishop): urate 540 umol/L and potassium 6.1 mmol/L on day 1; AE tumour lysis syndrome grade 3"),
    ("car_t_cd56", "022", "dose below plan", 0, "Received 2.4 x10^6 cells/kg at DL2 (planned 3.0)"),
    ("car_t_cd56", "021", "off-tumour watch", 38, "Peripheral sensory neuropathy grade 2 from day 38 (late, outside ICANS)"),
    ("car_t_cd56", "022", "off-tumour watch", 12, "Paraesthesia grade 1 days 12-20 (early)"),
    ("car_t_cd56", "030", "not infused", None, "Enrolled, never infused: manufacturing failure (DS), DM and SUPPDM only"),
    ("car_t_cd56", "005", "IgG and IVIG", 63, "IgG below 4 g/L from day 63 (nadir 2.5), IVIG from day 65"),
    ("car_itnk", "005", "secondary malignancy", 304, "Myelodysplastic syndrome at month 10 (day 304), CAR transgene NEGATIVE in the marrow (SUPPAE CARTGRES)"),
    ("car_itnk", "021", "CMV reactivation", 40, "CMV DNA detected (MB) on day 40, AE CMV reactivation days 41-60"),
    ("car_itnk", "014", "MB-only infection", 50, "BK virus in urine (MB) on day 50 with no AE: an infection episode from microbiology alone"),
]

PLANTED += [
    ("car_itnk", "009", "sponsor PP differs", 7, "Sponsor's Cmax (PP) from a re-assayed peak sample, 1.6 x the PC value; its AUC days 0-28 differs too: flagged 'differs'"),
    ("car_itnk", "011", "sponsor Tmax in hours", None, "Site 03 subjects' sponsor Tmax given in hours (PPSTRESU h): converted to days, agrees with celltox"),
    ("car_itnk", "013", "PP quarantined", None, "Sponsor AUCINT delivered as -120: quarantined (implausible PPSTRESN)"),
    ("car_itnk", "009", "prior malignancy (MH)", None, "Basal cell carcinoma in 2019 (MH): prior history, listed as context, not a new malignancy"),
    ("car_itnk", "016", "malignancy in MH after infusion", 250, "Squamous cell carcinoma of skin starting day 250, reported as history at the month-9 visit (MH, collected day 270): a new malignancy, latency 8.2 months"),
]

# Outcome records added after every other domain (Study._plant_outcomes), per study.
_NEURO = "Nervous system disorders"
OUTCOME_PLANTS = {
    "car_t_cd56": dict(
        mb=[("004", 34, "CMVDNA", "Cytomegalovirus DNA", "CYTOMEGALOVIRUS", "DETECTED 8,600 IU/mL", "PLASMA"),
            ("021", 69, "ORGANISM", "Organism identified", "ASPERGILLUS FUMIGATUS", "Aspergillus fumigatus", "BRONCHOALVEOLAR LAVAGE FLUID")],
        deaths=[("021", 70, 84, "Invasive pulmonary aspergillosis", "Bronchopulmonary aspergillosis", "Voriconazole")],
        aes=[("021", "Peripheral sensory neuropathy", "Peripheral sensory neuropathy", _NEURO, 2, 38, 60, "POSSIBLY RELATED", None),
             ("022", "Paraesthesia", "Paraesthesia", _NEURO, 1, 12, 20, "POSSIBLY RELATED", None),
             ("022", "Tumour lysis syndrome", "Tumour lysis syndrome", "Metabolism and nutrition disorders", 3, 1, 4, "RELATED", None)],
        cms=[("022", "Rasburicase", "SUPPORTIVE", "Tumour lysis syndrome", 1, 2)],
        lab_edits=[("022", 1, "URATE", 0.54), ("022", 1, "K", 6.1)],
        dose_edits=[("022", 2.4)],
        not_infused=[("030", "2026-06-02", 36, "Manufacturing failure (product out of specification)", "OTHER",
                      "EXPANSION DL2", "DL2", "NK/T-cell lymphoma")],
        kinetics=dict(testcd="CARTGDNA", test="CAR transgene copies (qPCR)", unit="copies/ug gDNA", lloq=50.0,
                      log_peak=4.0, per_grade=0.45, half_life_early=7.0, half_life_late=60.0,
                      days=[0, 1, 4, 7, 10, 14, 21, 28, 60, 90, 180, 270, 365]),
        marker=dict(testcd="NKCELLS", test="NK cells (CD3-CD56+)", baseline=0.25, depleted=0.02, lln=0.09, uln=0.6,
                    p_recover=0.5, recovery_day=180, days=[-10, 0, 14, 28, 60, 90, 180, 270, 365]),
    ),
    "car_itnk": dict(
        mb=[("021", 40, "CMVDNA", "Cytomegalovirus DNA", "CYTOMEGALOVIRUS", "DETECTED 3,100 IU/mL", "PLASMA"),
            ("014", 50, "BKVDNA", "BK virus DNA", "BK VIRUS", "DETECTED 2.1E6 copies/mL", "URINE")],
        deaths=[],
        aes=[("005", "Myelodysplastic syndrome", "Myelodysplastic syndrome", "Neoplasms benign, malignant and unspecified (incl cysts and polyps)",
              3, 304, None, "UNLIKELY RELATED", [("CARTGRES", "CAR transgene in tumour", "NEGATIVE")])],
        cms=[],
        lab_edits=[],
        dose_edits=[],
        not_infused=[],
        kinetics=dict(testcd="CARCELLS", test="CAR+ cells (flow cytometry)", unit="cells/uL", lloq=0.5,
                      log_peak=1.0, per_grade=0.45, half_life_early=5.0, half_life_late=20.0,
                      days=[0, 1, 4, 7, 10, 14, 21, 28, 60, 90, 180, 270, 365]),
        marker=dict(testcd="CD19", test="CD19+ B cells", baseline=0.2, depleted=0.003, lln=0.1, uln=0.5,
                    p_recover=0.35, recovery_day=180, days=[-10, 0, 14, 28, 60, 90, 180, 270, 365]),
        # the sponsor's kinetic parameters (PP) from its own analysis of PC, for subjects past day 28 at its lock
        pp=dict(lock="2026-03-31", reassay=("009", 1.6), hours_site="03", typo=("013", "AUCINT", -120.0)),
        # medical history: a prior malignancy, and one reported as history at a later visit (after infusion)
        mh=dict(prior=[("009", "Basal cell carcinoma", "Basal cell carcinoma", "2019-04", "2019-05")],
                later=[("016", "Squamous cell carcinoma of skin", "Squamous cell carcinoma of skin", 250, 270, "MONTH 9")],
                general=["Hypertension", "Hypothyroidism", "Gastrooesophageal reflux disease", "Depression",
                         "Type 2 diabetes mellitus", "Asthma", "Hyperlipidaemia"]),
    ),
}
STUDIES["car_t_cd56"]["outcomes_yaml"] = """response:
  criteria: "Lugano 2014"
  responders: [CR, PR]
  by_diagnosis:
    - {diagnosis_contains: "leukaemia", criteria: "CR + CRi (acute leukaemia)", responders: [CR, CRI]}
immune_monitoring:
  - {test: IGG, label: "IgG", below: 4.0, unit: "g/L", finding: "hypogammaglobulinaemia (IgG < 4 g/L)"}
  - {test: NKCELLS, label: "NK cells (CD3-CD56+)", below: 0.05, unit: "10^9/L", finding: "NK-cell depletion (< 0.05 x10^9/L): CD56 is on NK cells"}
off_tumour_watch:
  label: "CD56 (NCAM1) on neural tissue: peripheral neuropathy and delayed neurological AEs outside ICANS"
  terms: [NEUROPATHY, PARAESTHESIA, PARESTHESIA, DYSAESTHESIA, HYPOAESTHESIA, CRANIAL NERVE, FACIAL PARALYSIS, GUILLAIN-BARRE, ATAXIA, PARKINSONISM, MOVEMENT DISORDER, MYELITIS, COGNITIVE DISORDER]
  late_after_day: 30
planned_doses: {DL1: 1.0, DL2: 3.0, DL3: 6.0}
"""
STUDIES["car_itnk"]["outcomes_yaml"] = """response:
  criteria: "CR + CRi (acute leukaemia)"
  responders: [CR, CRI]
  by_diagnosis:
    - {diagnosis_contains: "acute lymphoblastic", criteria: "CR + CRi (acute leukaemia)", responders: [CR, CRI]}
    - {diagnosis_contains: "lymphoma", criteria: "Lugano 2014", responders: [CR, PR]}
immune_monitoring:
  - {test: IGG, label: "IgG", below: 4.0, unit: "g/L", finding: "hypogammaglobulinaemia (IgG < 4 g/L)"}
  - {test: CD19, label: "CD19+ B cells", below: 0.01, unit: "10^9/L", finding: "B-cell aplasia (CD19+ < 10 cells/uL)"}
planned_doses: {DL1: 1.0, DL2: 3.0}
"""


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------
def _rng_range(test: str, sex: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r = LAB_TESTS[test]["rng"]
    if isinstance(r, dict):
        lln = np.where(sex == "M", r["M"][0], r["F"][0]).astype(float)
        uln = np.where(sex == "M", r["M"][1], r["F"][1]).astype(float)
        return lln, uln
    n = len(sex)
    return np.full(n, float(r[0])), np.full(n, float(r[1]))


def _iso(base: np.ndarray, days) -> np.ndarray:
    """Dates as ISO text: base (datetime64[D]) + days."""
    d = base + np.asarray(days).astype("timedelta64[D]")
    return np.datetime_as_string(d, unit="D")


def _target_value(test: str, direction: str, grade: int, lln: float, uln: float) -> float:
    kind, x = GRADE_TARGETS[(test, direction)][grade]
    return x * uln if kind == "xuln" else x


# --------------------------------------------------------------------------------------------------
# Subjects: vectorised draws, then the planted scenarios on top
# --------------------------------------------------------------------------------------------------
def draw_subjects(rng: np.random.Generator, n: int, car_t: bool) -> pd.DataFrame:
    """Per-subject kinetics parameters, drawn for n subjects at once."""
    s = pd.DataFrame(index=pd.RangeIndex(n))
    s["age"] = rng.integers(18, 71, n)
    s["sex"] = np.where(rng.random(n) < 0.62, "M", "F")
    s["weight"] = np.round(rng.normal(64, 10, n).clip(42, 105), 1)
    s["height"] = np.round(np.where(s["sex"] == "M", 170, 159) + rng.normal(0, 6, n), 0)
    s["screen_day"] = -rng.integers(7, 15, n)
    s["consent_lag"] = rng.integers(0, 4, n)
    # CRS: CAR-T in most subjects (mostly grade 1-2); CAR-ITNK clearly less.
    p_crs, p_g2 = (0.85, 0.40) if car_t else (0.33, 0.25)
    has_crs = rng.random(n) < p_crs
    s["crs_grade"] = np.where(has_crs, np.where(rng.random(n) < p_g2, 2, 1), 0)
    s["crs_onset"] = rng.integers(1, 4, n)
    s["crs_dur"] = rng.integers(3, 8, n)
    s["crs_peak_start"] = rng.integers(0, 2, n)
    s["crs_peak_len"] = rng.integers(1, 3, n)
    p_icans = 0.22 if car_t else 0.06
    has_icans = has_crs & (rng.random(n) < p_icans / p_crs)
    s["icans_grade"] = np.where(has_icans, np.where(rng.random(n) < 0.5, 1, 2), 0)
    s["icans_onset"] = s["crs_onset"] + rng.integers(2, 5, n)
    s["icans_dur"] = rng.integers(2, 6, n)
    # Cytopenia after lymphodepletion: nadir days 3-10, recovery before day 25 (prolonged ones are planted).
    s["anc_base"] = rng.uniform(2.3, 6.0, n)
    s["anc_nadir"] = np.exp(rng.uniform(np.log(0.11), np.log(0.9), n))
    s["anc_nadir_day"] = rng.integers(3, 11, n)
    s["anc_rec_day"] = np.minimum(s["anc_nadir_day"] + rng.integers(5, 13, n), 24)
    s["plt_base"] = rng.uniform(110, 320, n)
    s["plt_nadir"] = np.exp(rng.uniform(np.log(30), np.log(120), n))
    s["plt_nadir_day"] = rng.integers(6, 12, n)
    s["plt_rec_day"] = np.minimum(s["plt_nadir_day"] + rng.integers(6, 14, n), 26)
    s["hgb_base"] = rng.uniform(100, 145, n)
    s["hgb_nadir_frac"] = rng.uniform(0.72, 0.92, n)
    s["lym_base"] = rng.uniform(0.6, 2.0, n)
    s["lym_peak"] = rng.uniform(0.9, 4.5, n) if car_t else rng.uniform(0.5, 1.8, n)
    s["igg_base"] = rng.uniform(5.5, 13.5, n)
    s["igg_nadir"] = np.where(rng.random(n) < (0.35 if car_t else 0.55), rng.uniform(2.4, 3.9, n),
                              s["igg_base"] * rng.uniform(0.75, 0.95, n))
    for t in ("ALT", "AST", "BILI", "ALP", "GGT", "CREAT", "K", "SODIUM", "CA", "MG", "ALB", "LDH",
              "GLUC", "URATE", "FIBRINO", "CRP", "FERRITIN", "IL6"):
        s[f"pos_{t}"] = rng.uniform(0.2, 0.75, n)  # baseline position within the reference range
    s["ecog"] = rng.choice([0, 1, 2], n, p=[0.35, 0.5, 0.15])
    s["lvef"] = rng.integers(52, 71, n)
    s["oxysat"] = rng.integers(95, 100, n)
    # Outcome: completed month 12, progression (with or without death later), or withdrawal.
    u = rng.random(n)
    p_pd = 0.38 if car_t else 0.30
    s["outcome"] = np.where(u < p_pd, "PD", np.where(u < p_pd + 0.07, "WITHDRAWAL", "COMPLETED"))
    s["event_day"] = np.where(s["outcome"] == "PD", rng.integers(45, 330, n),
                              np.where(s["outcome"] == "WITHDRAWAL", rng.integers(40, 300, n), 365 + rng.integers(-5, 6, n)))
    s["death_after_pd"] = np.where((s["outcome"] == "PD") & (rng.random(n) < 0.6), rng.integers(15, 120, n), -1)
    s["best_resp"] = rng.choice(["CR", "PR", "SD"], n, p=[0.5, 0.3, 0.2])
    s["n_infections"] = rng.poisson(0.5 if car_t else 0.4, n)
    return s


def crs_daily(subj: pd.DataFrame, prefix: str) -> pd.DataFrame:
    """Long table (sid, day, grade) of daily grades from the trajectory parameters."""
    g = subj[f"{prefix}_grade"].to_numpy()
    has = g > 0
    sid = subj.index.to_numpy()[has]
    onset = subj[f"{prefix}_onset"].to_numpy()[has]
    dur = subj[f"{prefix}_dur"].to_numpy()[has]
    peak = g[has]
    ps = subj["crs_peak_start"].to_numpy()[has] if prefix == "crs" else np.ones(len(sid), int)
    pl = subj["crs_peak_len"].to_numpy()[has] if prefix == "crs" else np.ones(len(sid), int) * 2
    rep = np.repeat(np.arange(len(sid)), dur)
    rel = np.arange(len(rep)) - np.repeat(np.cumsum(dur) - dur, dur)
    pk = peak[rep]
    grade = np.where(rel < ps[rep], 1, np.where(rel < ps[rep] + pl[rep], pk, np.maximum(1, pk - (rel - ps[rep] - pl[rep] + 1))))
    return pd.DataFrame({"sid": sid[rep], "day": onset[rep] + rel, "grade": grade.astype(int)})


# --------------------------------------------------------------------------------------------------
# Laboratory anchors: per (subject, test) piecewise log-linear curves, evaluated for all rows at once
# --------------------------------------------------------------------------------------------------
def default_anchors(subj: pd.DataFrame, test: str, lln: np.ndarray, uln: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Anchor days [n, K] and values [n, K] of the default kinetics of one test."""
    n = len(subj)
    ones = np.ones(n)
    if test == "NEUT":
        b, nad, nd, rd = (subj[c].to_numpy(float) for c in ("anc_base", "anc_nadir", "anc_nadir_day", "anc_rec_day"))
        days = [ones * -60, ones * -5, ones * 0, nd, nd + 2, rd, ones * 60, ones * 400]
        vals = [b, b, b * 0.55, nad, nad * 1.15, np.maximum(1.6, b * 0.45), b * 0.8, b * 0.9]
    elif test == "PLAT":
        b, nad, nd, rd = (subj[c].to_numpy(float) for c in ("plt_base", "plt_nadir", "plt_nadir_day", "plt_rec_day"))
        days = [ones * -60, ones * -5, ones * 2, nd, nd + 2, rd, ones * 60, ones * 400]
        vals = [b, b, b * 0.8, nad, nad * 1.1, np.maximum(105, b * 0.55), b * 0.85, b * 0.95]
    elif test == "HGB":
        b = subj["hgb_base"].to_numpy(float)
        f = subj["hgb_nadir_frac"].to_numpy(float)
        days = [ones * -60, ones * -5, ones * 10, ones * 28, ones * 90, ones * 400]
        vals = [b, b, b * f, b * (f + 0.05), b * 0.98, b]
    elif test == "LYM":
        b, pk = subj["lym_base"].to_numpy(float), subj["lym_peak"].to_numpy(float)
        days = [ones * -60, ones * -5, ones * -1, ones * 4, ones * 10, ones * 21, ones * 90, ones * 400]
        vals = [b, b, b * 0.25, ones * 0.12, pk, pk * 0.5, b * 0.7, b * 0.85]
    elif test == "IGG":
        b, nad = subj["igg_base"].to_numpy(float), subj["igg_nadir"].to_numpy(float)
        days = [ones * -60, ones * 0, ones * 60, ones * 180, ones * 400]
        vals = [b, b, nad, nad * 1.05, nad * 1.15]
    elif test == "WBC":  # computed from neutrophils + lymphocytes + monocytes
        days, vals = [ones * -60, ones * 400], [ones * 5.0, ones * 5.0]
    else:
        pos = subj[f"pos_{test}"].to_numpy(float)
        lo = np.maximum(lln, uln * 0.05)
        base = lo + pos * (uln - lo)
        if test == "URATE":  # lymphodepletion and tumour lysis raise urate a little in the first week
            days = [ones * -60, ones * -5, ones * 3, ones * 10, ones * 400]
            vals = [base, base, base * 1.25, base, base]
        elif test == "ALB":  # capillary leak in the first fortnight
            days = [ones * -60, ones * 0, ones * 7, ones * 28, ones * 400]
            vals = [base, base, base * 0.88, base * 0.96, base]
        else:
            days = [ones * -60, ones * 400]
            vals = [base, base]
    return np.column_stack(days), np.column_stack(vals)


def merge_excursion(days: list, vals: list, start: int, end: int, peak: float, ramp: int = 1) -> tuple[list, list]:
    """Insert a plateau at `peak` from start to end (inclusive) into an anchor list."""
    keep = [(d, v) for d, v in zip(days, vals) if d < start - ramp or d > end + ramp]
    before = np.interp(start - ramp, days, vals)
    after = np.interp(end + ramp, days, vals)
    pts = keep + [(start - ramp, before), (start, peak), (end, peak), (end + ramp, after)]
    pts.sort(key=lambda p: p[0])
    return [p[0] for p in pts], [p[1] for p in pts]


def eval_anchors(adays: np.ndarray, avals: np.ndarray, sid: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Log-linear interpolation of each row's subject curve at its day (vectorised over rows, in chunks)."""
    if len(day) > 200_000:
        return np.concatenate([eval_anchors(adays, avals, sid[i:i + 200_000], day[i:i + 200_000])
                               for i in range(0, len(day), 200_000)])
    d = adays[sid]  # [m, K]
    v = np.log(np.maximum(avals[sid], 1e-6))
    k = (d <= day[:, None]).sum(axis=1)
    k = np.clip(k, 1, d.shape[1] - 1)
    r = np.arange(len(day))
    d0, d1, v0, v1 = d[r, k - 1], d[r, k], v[r, k - 1], v[r, k]
    w = np.clip((day - d0) / np.where(d1 > d0, d1 - d0, 1), 0, 1)
    return np.exp(v0 + w * (v1 - v0))


# --------------------------------------------------------------------------------------------------
# One study
# --------------------------------------------------------------------------------------------------
class Study:
    """Builds every domain of one study as DataFrames (SDTM-like upper-case columns)."""

    def __init__(self, key: str, spec: dict, rng: np.random.Generator, n: int | None = None,
                 delivery: str | None = None, planted: bool = True, ae_rate: float = 6.0):
        self.key, self.spec, self.rng = key, spec, rng
        self.car_t = spec["product_type"] == "CAR-T"
        self.planted = planted
        self.ae_rate = ae_rate
        self.delivery = np.datetime64(delivery or spec["data_cuts"][-1])
        self._subjects(n)
        self.explicit_crs: dict[str, dict[int, int]] = {}
        self.explicit_icans: dict[str, dict[int, int]] = {}
        self.reported: dict[tuple[str, str, int], int] = {}  # (subjid, 'CRS'|'ICANS', episode) -> reported grade
        self.pressor_override: dict[tuple[str, int], str] = {}
        self.anchor_edits: dict[tuple[str, str], list[tuple[int, float]]] = {}  # full replacement
        self.excursions: list[tuple[str, str, str, int, int, float]] = []  # subjid, test, dir, start, end, peak
        self.pinned: dict[tuple[str, str, int], float] = {}
        self.extra_lab_days: dict[str, list[int]] = {}
        self.extra_aes: list[dict] = []
        self.extra_cms: list[dict] = []
        self.ae_edits: list[tuple[str, str, dict]] = []  # subjid, aedecod, field changes
        self.vs_edits: dict[tuple[str, str], float] = {}  # (subjid, VSTESTCD) screening value
        self.no_crs_assessments: set[str] = set()  # subjects whose CRS is known only from the reported AE
        self.sedated_days: dict[str, set[int]] = {}  # ICANS assessments of a sedated, intubated subject
        self.ventilated_days: dict[str, set[int]] = {}  # CRS assessments on mechanical ventilation
        self.lab_drops: set[tuple[str, str]] = set()  # (subjid, test): no value on or before day 0
        if planted:
            getattr(self, f"_plant_{key}")()
            self.s["usubjid"] = [f"{spec['studyid']}-{st}-{sj}" for st, sj in zip(self.s["siteid"], self.s["subjid"])]
        self._spread_grades()
        if planted and key == "car_t_cd56":
            self.excursions.append(("021", "CREAT", "H", 6, 8, 6.5))  # x ULN, grade 4: the planted R9 AKI

    # ---- subjects ---------------------------------------------------------------------------------
    def _subjects(self, n: int | None) -> None:
        spec, rng = self.spec, self.rng
        enrol = spec.get("enrolment")
        if enrol is None:
            n = n or spec["n_subjects"]
            sites = list(spec["sites"])
            start = np.datetime64("2024-11-05")
            if n < 1000:
                inf = start + np.cumsum(rng.integers(14, 28, n)).astype("timedelta64[D]")
            else:  # program scale: two years of accrual
                inf = start + np.sort(rng.integers(0, 730, n)).astype("timedelta64[D]")
            dls = list(spec["dose_levels"])
            dl = np.where(np.arange(n) < max(3, n * 3 // 10), dls[0], dls[-1])
            cohort = np.where(dl == dls[0], f"ESCALATION {dls[0]}", f"EXPANSION {dls[-1]}")
            enrol = [(f"{i + 1:03d}" if n < 1000 else f"{i + 1:05d}", dl[i], cohort[i], str(inf[i])) for i in range(n)]
            site = rng.choice(sites, n)
        else:
            n = len(enrol)
            site = np.array([list(spec["sites"])[0]] * n)
        s = draw_subjects(rng, n, self.car_t)
        s["subjid"] = [e[0] for e in enrol]
        s["dose_level"] = [e[1] for e in enrol]
        s["cohort"] = [e[2] for e in enrol]
        s["inf_date"] = np.array([e[3] for e in enrol], dtype="datetime64[D]")
        s["siteid"] = site
        s["usubjid"] = [f"{spec['studyid']}-{st}-{sj}" for st, sj in zip(site, s["subjid"])]
        dx, p = zip(*spec["diagnoses"])
        s["diagnosis"] = rng.choice(list(dx), n, p=list(p))
        s["infused"] = True
        s["death_cause"] = ""
        s["death_day_fixed"] = -1
        self.s = s

    def sid(self, subjid: str) -> int:
        return int(np.flatnonzero(self.s["subjid"].to_numpy() == subjid)[0])

    def set(self, subjid: str, **kw) -> None:
        i = self.sid(subjid)
        for k, v in kw.items():
            self.s.loc[i, k] = v

    # ---- planted scenarios ------------------------------------------------------------------------
    def _plant_car_t_cd56(self) -> None:
        S = self.set
        # DLT R2: grade 4 CRS, refractory: tocilizumab x2, dexamethasone, anakinra. AKI, ICANS grade 2.
        self.explicit_crs["005"] = {2: 1, 3: 2, 4: 4, 5: 4, 6: 3, 7: 2, 8: 1}
        self.explicit_icans["005"] = {6: 1, 7: 2, 8: 2, 9: 1}
        self.excursions.append(("005", "CREAT", "H", 5, 8, 3.6))  # x ULN, grade 3
        self.extra_cms.append(dict(subjid="005", CMTRT="Anakinra", CMDECOD="ANAKINRA", CMCAT="CRS MANAGEMENT",
                                   CMINDC="Cytokine release syndrome", CMDOSE=100, CMDOSU="mg", CMROUTE="SUBCUTANEOUS",
                                   start=5, end=9))
        # DLT R3: grade 3 CRS five days (one vasopressor); ICANS grade 3 later.
        self.explicit_crs["011"] = {1: 1, 2: 2, 3: 3, 4: 3, 5: 3, 6: 3, 7: 3, 8: 2, 9: 1}
        self.explicit_icans["011"] = {6: 1, 7: 2, 8: 3, 9: 2, 10: 1}
        for d in range(3, 8):
            self.pressor_override[("011", d)] = "pressor"
        # near-miss R3: grade 3 exactly three days (72 h from first grade-3 assessment to first lower one).
        self.explicit_crs["013"] = {1: 1, 2: 3, 3: 3, 4: 3, 5: 2, 6: 1}
        for d in range(2, 5):
            self.pressor_override[("013", d)] = "pressor"
        # DLT R1: fatal ICANS with diffuse cerebral oedema.
        self.explicit_crs["012"] = {1: 1, 2: 2, 3: 2, 4: 1}
        self.explicit_icans["012"] = {4: 2, 5: 3, 6: 4, 7: 4, 8: 4, 9: 4}
        self.reported[("012", "ICANS", 1)] = 5
        S("012", outcome="DEATH", event_day=9, death_day_fixed=9,
          death_cause="Immune effector cell-associated neurotoxicity syndrome")
        # DLT R6: related grade-3 ALT increase lasting 10 days.
        self.anchor_edits[("007", "ALT")] = [(-60, 24), (7, 30), (8, 300), (17, 280), (18, 150), (21, 70), (28, 38), (400, 26)]
        self.extra_lab_days["007"] = [15, 16, 17, 18, 19]
        self.extra_aes.append(dict(subjid="007", term=("Alanine aminotransferase increased", "Investigations"), grade=3,
                                   start=8, end=17, rel="POSSIBLY RELATED"))
        # near-miss R6: related grade-3 AST increase lasting exactly 7 days.
        self.anchor_edits[("008", "AST")] = [(-60, 25), (4, 30), (5, 100), (6, 260), (12, 240), (13, 150), (14, 90), (21, 40), (400, 25)]
        self.extra_aes.append(dict(subjid="008", term=("Aspartate aminotransferase increased", "Investigations"), grade=3,
                                   start=6, end=12, rel="PROBABLY RELATED"))
        # near-miss R6: unrelated grade-3 infection lasting 13 days inside the window.
        self.extra_aes.append(dict(subjid="003", term=("Lung infection", "Infections and infestations"), grade=3,
                                   start=12, end=24, rel="UNLIKELY RELATED", ser=True, cm="Piperacillin/Tazobactam"))
        S("003", n_infections=0)
        # DLT R7: prolonged neutropenia, censored results at the nadir.
        self.anchor_edits[("009", "NEUT")] = [(-60, 3.2), (-5, 3.2), (0, 1.5), (4, 0.09), (10, 0.05), (21, 0.2),
                                             (28, 0.3), (35, 0.45), (45, 1.2), (60, 2.1), (400, 2.8)]
        self.pinned[("009", "NEUT", 28)] = 0.30
        self.pinned[("009", "NEUT", 8)] = 0.05
        self.pinned[("009", "NEUT", 10)] = 0.05
        self.extra_lab_days["009"] = [35, 45]
        self.extra_aes.append(dict(subjid="009", term=("Febrile neutropenia", "Blood and lymphatic system disorders"),
                                   grade=3, start=11, end=14, rel="POSSIBLY RELATED", ser=True, cm="Meropenem"))
        S("009", crs_grade=1, crs_onset=1, crs_dur=3)
        # DLT R7: prolonged thrombocytopenia.
        self.anchor_edits[("014", "PLAT")] = [(-60, 210), (-5, 210), (2, 150), (8, 15), (14, 12), (21, 14), (28, 18),
                                             (35, 30), (60, 90), (400, 160)]
        self.pinned[("014", "PLAT", 28)] = 18
        self.extra_lab_days["014"] = [35]
        # near-miss window: second CRS episode, grade 4 on day 30.
        self.explicit_crs["016"] = {2: 1, 3: 1, 4: 1, 30: 4, 31: 4, 32: 3, 33: 2, 34: 1}
        # late (biphasic) cytopenia.
        self.anchor_edits[("010", "NEUT")] = [(-60, 3.9), (-5, 3.9), (0, 2.0), (6, 0.3), (8, 0.35), (14, 1.8), (28, 2.2),
                                             (45, 1.1), (60, 0.6), (90, 0.8), (180, 2.4), (400, 3.0)]
        self.pinned[("010", "NEUT", "MONTH 2")] = 0.6
        self.pinned[("010", "NEUT", "MONTH 3")] = 0.8
        self.extra_lab_days["010"] = [45]
        # discrepancy: site reports grade 1 but a vasopressor ran on day 3.
        self.explicit_crs["006"] = {1: 1, 2: 2, 3: 3, 4: 2, 5: 1}
        self.pressor_override[("006", 3)] = "pressor"
        self.reported[("006", "CRS", 1)] = 1
        # discrepancy: ICANS under-reported (ICE 4 = grade 2, reported 1).
        self.explicit_crs["018"] = {1: 1, 2: 1, 3: 2, 4: 1}
        self.explicit_icans["018"] = {5: 1, 6: 2, 7: 2, 8: 1}
        self.reported[("018", "ICANS", 1)] = 1
        # IEC-HS-like: ferritin surge as CRS resolves, low fibrinogen, new cytopenia.
        self.explicit_crs["019"] = {1: 1, 2: 2, 3: 2, 4: 1, 5: 1}
        self.anchor_edits[("019", "FERRITIN")] = [(-60, 420), (0, 450), (3, 1800), (5, 2600), (7, 15000), (9, 42000),
                                                 (11, 60000), (13, 30000), (16, 9000), (21, 3000), (28, 1200), (400, 500)]
        self.anchor_edits[("019", "FIBRINO")] = [(-60, 3.0), (0, 3.0), (3, 3.8), (6, 2.2), (7, 1.6), (9, 1.1), (11, 0.9),
                                                (14, 1.3), (18, 2.0), (21, 2.5), (400, 3.0)]
        self.anchor_edits[("019", "PLAT")] = [(-60, 190), (-5, 190), (3, 120), (6, 95), (8, 60), (9, 30), (11, 18),
                                             (14, 22), (18, 45), (21, 70), (28, 115), (400, 170)]
        self.anchor_edits[("019", "NEUT")] = [(-60, 3.5), (-5, 3.5), (0, 1.8), (4, 0.6), (7, 1.8), (10, 0.7), (12, 0.4),
                                             (14, 0.6), (18, 1.0), (21, 1.6), (400, 3.0)]
        self.anchor_edits[("019", "LDH")] = [(-60, 210), (0, 230), (7, 600), (10, 1100), (14, 700), (28, 260), (400, 200)]
        self.excursions.append(("019", "ALT", "H", 9, 12, 4.0))
        self.extra_lab_days["019"] = [16, 18]
        self.extra_aes.append(dict(subjid="019", term=("Hemophagocytic lymphohistiocytosis", "Blood and lymphatic system disorders"),
                                   grade=3, start=8, end=16, rel="RELATED", ser=True))
        self.extra_cms.append(dict(subjid="019", CMTRT="Dexamethasone", CMDECOD="DEXAMETHASONE", CMCAT="CRS MANAGEMENT",
                                   CMINDC="Hemophagocytic lymphohistiocytosis", CMDOSE=10, CMDOSU="mg", CMROUTE="INTRAVENOUS",
                                   start=8, end=14))
        # eligibility deviations.
        self.anchor_edits[("002", "BILI")] = [(-60, 40.0), (-5, 38.0), (0, 36.5), (14, 30.0), (28, 24.0), (400, 18.0)]
        self.pinned[("002", "BILI", "SCREENING")] = 40.0
        self.vs_edits[("017", "ECOG")] = 3
        # partial date, severity-only AE, withdrawal.
        self.extra_aes.append(dict(subjid="004", term=("Fatigue", "General disorders and administration site conditions"),
                                   grade=1, start=2, end=20, rel="POSSIBLY RELATED", partial_start=True))
        self.extra_aes.append(dict(subjid="020", term=("Headache", "Nervous system disorders"), grade=None, sev="MILD",
                                   start=3, end=4, rel="POSSIBLY RELATED"))
        S("020", outcome="WITHDRAWAL", event_day=120)
        # infections in months 1-6 and a progression death to keep DS realistic.
        self.extra_aes.append(dict(subjid="004", term=("Cytomegalovirus infection reactivation", "Infections and infestations"),
                                   grade=2, start=35, end=52, rel="POSSIBLY RELATED", cm="Ganciclovir"))
        self.extra_aes.append(dict(subjid="015", term=("Sepsis", "Infections and infestations"), grade=4, start=48, end=58,
                                   rel="POSSIBLY RELATED", ser=True, life=True, cm="Meropenem"))
        for sj in ("003", "004", "015"):
            S(sj, n_infections=0)
        S("001", outcome="PD", event_day=92, death_after_pd=61)
        S("015", outcome="PD", event_day=150, death_after_pd=40)
        # keep background grades of planted subjects out of the way of their planted events
        for sj in ("007", "008", "010", "014", "002", "017"):
            S(sj, crs_grade=1, icans_grade=0)
        for sj in ("003", "004", "020"):
            S(sj, icans_grade=0)
        for sj in ("005", "007", "009", "011", "013", "014", "016", "019", "021", "022"):
            S(sj, outcome="COMPLETED", event_day=365)
        # DLT R9: a short grade 4 acute kidney injury (related, days 6-8): grade 4 counts whatever its duration;
        # its creatinine rise (> 6 x ULN) is added after the grade spread (see __init__) so the spread stays put.
        self.extra_aes.append(dict(subjid="021", term=("Acute kidney injury", "Renal and urinary disorders"), grade=4,
                                   start=6, end=8, rel="PROBABLY RELATED", ser=True, life=True))

    def _plant_car_itnk(self) -> None:
        S = self.set
        # Site 02 reports grade 1 CRS while a vasopressor ran on day 2.
        self.s.loc[self.sid("008"), "siteid"] = "02"
        self.explicit_crs["008"] = {1: 1, 2: 3, 3: 2, 4: 1}
        self.pressor_override[("008", 2)] = "pressor"
        self.reported[("008", "CRS", 1)] = 1
        # The one grade-3 CRS, 48 h.
        self.explicit_crs["012"] = {1: 1, 2: 3, 3: 3, 4: 2, 5: 1}
        # Progression death inside the DLT window: grade 5 but excluded from R1.
        S("015", outcome="DEATH", event_day=21, death_day_fixed=21, death_cause="Disease progression",
          diagnosis="B-cell acute lymphoblastic leukaemia", crs_grade=0, icans_grade=0)
        self.extra_aes.append(dict(subjid="015", term=("Disease progression", "General disorders and administration site conditions"),
                                   grade=5, start=18, end=21, rel="NOT RELATED", ser=True, death=True))
        # Eligibility deviation: ALT 3.5 x ULN at screening.
        self.anchor_edits[("006", "ALT")] = [(-60, 140), (-12, 140), (-5, 110), (0, 90), (14, 50), (400, 30)]
        self.pinned[("006", "ALT", "SCREENING")] = 140.0
        # Not infused.
        S("031", infused=False, outcome="WITHDRAWAL", event_day=-6, crs_grade=0, icans_grade=0, n_infections=0)
        # partial date on a later-month AE.
        self.extra_aes.append(dict(subjid="010", term=("Upper respiratory infection", "Infections and infestations"),
                                   grade=1, start=70, end=80, rel="NOT RELATED", partial_start=True))
        self.extra_aes.append(dict(subjid="021", term=("Cytomegalovirus infection reactivation", "Infections and infestations"),
                                   grade=2, start=41, end=60, rel="POSSIBLY RELATED", cm="Ganciclovir"))
        for sj in ("010", "019", "004", "006", "021"):
            S(sj, outcome="COMPLETED", event_day=365)
        self.s.loc[self.sid("010"), "n_infections"] = 0
        # A child with B-ALL (age 8): ICANS graded with CAPD (ASTCT, age <= 12), grade 2 on days 6-7.
        S("002", age=8, weight=26.0, height=128.0, diagnosis="B-cell acute lymphoblastic leukaemia")
        self.explicit_crs["002"] = {1: 1, 2: 1, 3: 2, 4: 1}
        self.explicit_icans["002"] = {5: 1, 6: 2, 7: 2, 8: 1}
        # CRS known only from the reported AE (grade 4, days 3-8): the site kept no bedside CRS assessments.
        self.explicit_crs["020"] = {3: 1, 4: 2, 5: 4, 6: 4, 7: 2, 8: 1}
        self.no_crs_assessments.add("020")  # nor post-infusion vitals or vasopressors: SDTM gives no bedside record either
        S("020", icans_grade=0)
        # A CRS death: grade 4 from day 4, intubated and sedated from day 7 (ICANS not gradable), died on day 10.
        self.explicit_crs["025"] = {1: 1, 2: 2, 3: 3, 4: 4, 5: 4, 6: 4, 7: 4, 8: 4, 9: 4, 10: 4}
        self.reported[("025", "CRS", 1)] = 5
        self.ventilated_days["025"] = {7, 8, 9, 10}
        self.sedated_days["025"] = {7, 8, 9, 10}
        S("025", outcome="DEATH", event_day=10, death_day_fixed=10, death_cause="Cytokine release syndrome",
          icans_grade=0)
        # IEC-HS without a pre-infusion ferritin: ferritin climbs again after a grade-2 CRS resolves, fibrinogen
        # 0.9 g/L, platelets fall; treated with anakinra.
        self.explicit_crs["018"] = {1: 1, 2: 2, 3: 1, 4: 1}
        S("018", icans_grade=0)
        self.lab_drops.add(("018", "FERRITIN"))
        self.anchor_edits[("018", "FERRITIN")] = [(-60, 300), (1, 700), (3, 1400), (5, 1100), (8, 6000), (10, 18600),
                                                 (12, 14000), (16, 4000), (28, 900), (400, 300)]
        self.anchor_edits[("018", "FIBRINO")] = [(-60, 3.0), (0, 3.0), (3, 3.4), (6, 2.4), (8, 1.4), (10, 0.9),
                                                (12, 1.1), (16, 1.8), (21, 2.6), (400, 3.0)]
        self.extra_lab_days["018"] = [8, 10, 12, 16]
        self.extra_aes.append(dict(subjid="018", term=("Haemophagocytic lymphohistiocytosis", "Blood and lymphatic system disorders"),
                                   grade=2, start=9, end=14, rel="RELATED"))
        self.extra_cms.append(dict(subjid="018", CMTRT="Anakinra", CMDECOD="ANAKINRA", CMCAT="IEC-HS MANAGEMENT",
                                   CMINDC="Haemophagocytic lymphohistiocytosis", CMDOSE=100, CMDOSU="mg",
                                   CMROUTE="SUBCUTANEOUS", start=10, end=16))
        for sj in ("002", "018"):
            S(sj, outcome="COMPLETED", event_day=365)

    def _spread_grades(self) -> None:
        """Give each CTCAE lab term a spread of grades: one short excursion per (test, direction, grade).

        Grades 1-2 appear in every study; grades 3-4 alternate between the two sample studies so that, across
        them, every term reaches every grade it has. Each excursion goes to the subject with fewest so far."""
        rng = self.rng
        s = self.s
        ok = s["infused"].to_numpy() & (self.end_day() > 21)
        cand = s.index[ok].to_numpy()
        if len(cand) == 0:
            return
        load = dict.fromkeys(cand.tolist(), 0)
        taken = {(sj, t) for sj, t in self.anchor_edits} | {(e[0], e[1]) for e in self.excursions}
        parity = 0 if self.key == "car_t_cd56" else 1
        for j, ((test, direction), grades) in enumerate(GRADE_TARGETS.items()):
            for grade in grades:
                if self.planted and grade >= 3 and (j + grade) % 2 != parity:
                    continue
                reps = 1 if len(s) < 1000 else max(1, len(s) // 400)
                for _ in range(reps):
                    if len(s) < 1000:
                        order = rng.permutation(cand)
                        free = [i for i in order if (s.loc[i, "subjid"], test) not in taken]
                        if not free:
                            break
                        i = min(free, key=lambda k: load[k])
                    else:  # program scale: any subject will do
                        i = int(rng.choice(cand))
                        if (s.loc[i, "subjid"], test) in taken:
                            continue
                    load[i] += 1
                    taken.add((s.loc[i, "subjid"], test))
                    grp = LAB_TESTS[test]["group"]
                    start = int(rng.choice([2, 3, 5, 7, 10] if grp == "sparse" else [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]))
                    end = start + (0 if grp == "sparse" else int(rng.integers(0, 3)))
                    self.excursions.append((s.loc[i, "subjid"], test, direction, start, end, -float(grade)))

    # ---- schedule ---------------------------------------------------------------------------------
    def visits(self) -> pd.DataFrame:
        """One row per subject and visit actually done before the subject's end and the delivery date."""
        s, rng = self.s, self.rng
        n = len(s)
        rows = []
        for name, day, jit, groups in VISITS:
            if day is None:
                d = s["screen_day"].to_numpy()
            else:
                d = np.full(n, day) + (rng.integers(-jit, jit + 1, n) if jit else 0)
            rows.append(pd.DataFrame({"sid": s.index, "visit": name, "day": d, "groups": ",".join(sorted(groups))}))
        for sj, days in self.extra_lab_days.items():
            i = self.sid(sj)
            for d in days:
                rows.append(pd.DataFrame({"sid": [i], "visit": ["UNSCHEDULED"], "day": [d], "groups": ["full"]}))
        v = pd.concat(rows, ignore_index=True)
        v = v[self.in_followup(v["sid"].to_numpy(), v["day"].to_numpy())]
        return v.sort_values(["sid", "day", "visit"], kind="stable").reset_index(drop=True)

    def end_day(self) -> np.ndarray:
        """Last day with data: the disposition event, month 12, or the delivery date."""
        s = self.s
        deliv = (self.delivery - s["inf_date"].to_numpy().astype("datetime64[D]")).astype(int)
        return np.minimum(s["event_day"].to_numpy(), deliv)

    def in_followup(self, sid: np.ndarray, day: np.ndarray) -> np.ndarray:
        s = self.s
        ok = day <= self.end_day()[sid]
        ok &= s["infused"].to_numpy()[sid] | (day < -5)
        return ok

    # ---- CRS / ICANS ------------------------------------------------------------------------------
    def daily_grades(self, prefix: str) -> pd.DataFrame:
        s = self.s
        explicit = self.explicit_crs if prefix == "crs" else self.explicit_icans
        base = s.copy()
        for sj in explicit:
            base.loc[self.sid(sj), f"{prefix}_grade"] = 0
        base.loc[~base["infused"], f"{prefix}_grade"] = 0
        g = crs_daily(base, prefix)
        extra = [(self.sid(sj), d, gr) for sj, traj in explicit.items() for d, gr in sorted(traj.items())]
        if extra:
            g = pd.concat([g, pd.DataFrame(extra, columns=["sid", "day", "grade"])], ignore_index=True)
        g = g[self.in_followup(g["sid"].to_numpy(), g["day"].to_numpy())]
        g = g.sort_values(["sid", "day"], kind="stable").reset_index(drop=True)
        # episodes: a gap of more than 3 days starts a new one
        gap = g["day"].diff().fillna(99).to_numpy() > 3
        gap |= g["sid"].diff().fillna(1).to_numpy() != 0
        g["episode"] = pd.Series(gap.astype(int)).groupby(g["sid"]).cumsum().to_numpy()
        return g

    def crs_assessments(self, crs: pd.DataFrame, icans: pd.DataFrame):
        """Daily CRS assessments days 0-14 for every infused subject plus every CRS day outside that window."""
        s, rng = self.s, self.rng
        inf = s.index[s["infused"]].to_numpy()
        grid = pd.DataFrame({"sid": np.repeat(inf, 15), "day": np.tile(np.arange(15), len(inf))})
        extra = crs[(crs["day"] > 14)][["sid", "day"]]
        after = extra.assign(day=extra["day"] + 1)
        grid = pd.concat([grid, extra, after]).drop_duplicates().sort_values(["sid", "day"]).reset_index(drop=True)
        grid = grid[self.in_followup(grid["sid"].to_numpy(), grid["day"].to_numpy())].reset_index(drop=True)
        grid = grid.merge(crs[["sid", "day", "grade"]], on=["sid", "day"], how="left").fillna({"grade": 0})
        g = grid["grade"].to_numpy().astype(int)
        m = len(grid)
        # anti-cytokine therapy: tocilizumab on the first grade >= 2 day of an episode; steroids from grade 3
        # (or ICANS >= 2); after either, fever is no longer required (ASTCT), and our patients defervesce.
        toci = crs[crs["grade"] >= 2].groupby(["sid", "episode"])["day"].min().reset_index()
        steroid_c = crs[crs["grade"] >= 3].groupby(["sid", "episode"])["day"].min().reset_index()
        steroid_i = icans[icans["grade"] >= 2].groupby(["sid", "episode"])["day"].min().reset_index()
        treated_from = pd.concat([toci, steroid_c, steroid_i]).groupby(["sid", "day"]).size().reset_index()[["sid", "day"]]
        tf = treated_from.rename(columns={"day": "tday"})
        j = grid[["sid", "day"]].reset_index().merge(tf, on="sid", how="left")
        j["masked"] = (j["tday"] < j["day"]) & (j["day"] - j["tday"] <= 10)
        masked = j.groupby("index")["masked"].any().reindex(range(m), fill_value=False).to_numpy()
        febrile = (g >= 1) & ~((g >= 2) & masked)
        temp = np.where(febrile, rng.uniform(38.1, 39.6, m) + 0.3 * g, rng.uniform(36.4, 37.6, m))
        temp = np.where((g == 0) | febrile, temp, rng.uniform(37.0, 37.8, m))
        key = list(zip(s["subjid"].to_numpy()[grid["sid"]], grid["day"]))
        choice = np.array([self.pressor_override.get(k, "") for k in key], dtype=object)
        rnd = np.where(rng.random(m) < 0.5, "pressor", "oxygen")
        choice = np.where(choice == "", rnd, choice)
        hyp = np.zeros(m, bool)
        vaso = np.zeros(m, int)
        vasopressin = np.zeros(m, bool)
        oxy = np.full(m, "NONE", dtype=object)
        flow = np.full(m, np.nan)
        g2 = g == 2
        g2kind = rng.integers(0, 3, m)  # 0 hypotension, 1 low-flow O2, 2 both
        hyp |= g2 & (g2kind != 1)
        lowflow = g2 & (g2kind != 0)
        oxy = np.where(lowflow, np.where(rng.random(m) < 0.8, "LOW_FLOW_NC", "BLOW_BY"), oxy)
        flow = np.where(lowflow & (oxy == "LOW_FLOW_NC"), rng.integers(2, 6, m).astype(float), flow)
        g3p = (g == 3) & (choice == "pressor")
        g3o = (g == 3) & (choice != "pressor")
        hyp |= g3p
        vaso = np.where(g3p, 1, vaso)
        vasopressin |= g3p & (rng.random(m) < 0.2)
        oxy = np.where(g3p, np.where(rng.random(m) < 0.5, "LOW_FLOW_NC", "NONE"), oxy)
        flow = np.where(g3p & (oxy == "LOW_FLOW_NC"), 2.0, flow)
        oxy = np.where(g3o, np.where(rng.random(m) < 0.6, "HIGH_FLOW_NC", "FACEMASK"), oxy)
        flow = np.where(g3o, np.where(oxy == "HIGH_FLOW_NC", 30.0, 8.0), flow)
        hyp |= g3o & (rng.random(m) < 0.5)
        g4 = g == 4
        hyp |= g4
        vaso = np.where(g4, 2, vaso)
        vasopressin |= g4 & (rng.random(m) < 0.5)
        oxy = np.where(g4, "HIGH_FLOW_NC", oxy)
        flow = np.where(g4, 40.0, flow)
        base = s["inf_date"].to_numpy().astype("datetime64[D]")[grid["sid"]]
        date = _iso(base, grid["day"])
        tm = np.where(grid["day"] == 0, "T20:00", "T08:00")
        comment = np.where(g4, "ICU", np.where(vaso > 0, "Norepinephrine running", ""))
        out = pd.DataFrame({
            "USUBJID": s["usubjid"].to_numpy()[grid["sid"]],
            "CRSDTC": np.char.add(date.astype(str), tm.astype(str)),
            "TEMP_C": np.round(temp, 1),
            "HYPOTENSION": np.where(hyp, "Y", "N"),
            "VASOPRESSORS": vaso,
            "VASOPRESSIN": np.where(vasopressin, "Y", "N"),
            "OXYGEN": oxy,
            "O2_FLOW_LMIN": flow,
            "COMMENT": comment,
        })
        subj = s["subjid"].to_numpy()[grid["sid"]]
        vent = np.array([d in self.ventilated_days.get(sj, ()) for sj, d in zip(subj, grid["day"])], bool)
        out.loc[vent, "OXYGEN"] = "MECHANICAL_VENTILATION"
        out.loc[vent, "O2_FLOW_LMIN"] = np.nan
        out.loc[vent, "COMMENT"] = "ICU: intubated and sedated for respiratory failure"
        out = out[~np.isin(subj, list(self.no_crs_assessments))].reset_index(drop=True)
        grid["vaso"] = vaso
        grid["vasopressin"] = vasopressin
        grid["temp"] = np.round(temp, 1)
        grid["hyp"] = hyp
        grid["oxy"] = oxy
        return out, grid

    def icans_assessments(self, icans: pd.DataFrame) -> pd.DataFrame:
        s, rng = self.s, self.rng
        inf = s.index[s["infused"]].to_numpy()
        grid = pd.DataFrame({"sid": np.repeat(inf, 15), "day": np.tile(np.arange(15), len(inf))})
        extra = icans[icans["day"] > 14][["sid", "day"]]
        grid = pd.concat([grid, extra, extra.assign(day=extra["day"] + 1)]).drop_duplicates()
        grid = grid.sort_values(["sid", "day"]).reset_index(drop=True)
        grid = grid[self.in_followup(grid["sid"].to_numpy(), grid["day"].to_numpy())].reset_index(drop=True)
        grid = grid.merge(icans[["sid", "day", "grade"]], on=["sid", "day"], how="left").fillna({"grade": 0})
        g = grid["grade"].to_numpy().astype(int)
        m = len(grid)
        ice = np.select([g == 0, g == 1, g == 2, g == 3, g == 4],
                        [np.full(m, 10), rng.integers(7, 10, m), rng.integers(3, 7, m), rng.integers(0, 3, m), np.full(m, -1)])
        lvl1 = np.where(rng.random(m) < 0.5, "AWAKE", "AWAKENS_SPONTANEOUSLY")
        cons = np.array(["AWAKE", "", "AWAKENS_TO_VOICE", "AWAKENS_TO_TACTILE", "UNAROUSABLE"], dtype=object)[np.clip(g, 0, 4)]
        cons = np.where(g == 1, lvl1, cons).astype(object)
        seizure = np.full(m, "NONE", dtype=object)
        edema = np.full(m, "NONE", dtype=object)
        subjid = s["subjid"].to_numpy()[grid["sid"]]
        # the fatal case: seizure then diffuse oedema on imaging
        fatal = (subjid == "012") & self.planted & (self.key == "car_t_cd56")
        seizure = np.where(fatal & (grid["day"] == 5), "RAPIDLY_RESOLVING", seizure)
        seizure = np.where(fatal & (grid["day"] == 6), "PROLONGED_OR_REPETITIVE", seizure)
        edema = np.where(fatal & (grid["day"] >= 7), "DIFFUSE", edema)
        edema = np.where(fatal & (grid["day"] == 6), "FOCAL", edema)
        ice_txt = np.where(ice < 0, np.nan, ice.astype(float))
        # "ICE not done" with a normal patient on a few days: celltox must not call that grade 0
        not_done = (g == 0) & (rng.random(m) < 0.015)
        ice_txt = np.where(not_done, np.nan, ice_txt)
        base = s["inf_date"].to_numpy().astype("datetime64[D]")[grid["sid"]]
        date = _iso(base, grid["day"])
        tm = np.where(grid["day"] == 0, "T20:00", "T08:00")
        comment = np.where(not_done, "ICE not done (patient asleep)", np.where(edema == "DIFFUSE", "CT: diffuse cerebral oedema", ""))
        # children (<= 12) are assessed with CAPD instead of ICE (ASTCT): 0 normal, 1-8 grade 1-2, >= 9 grade 3
        child = s["age"].to_numpy()[grid["sid"]] <= 12
        capd = np.where(child, np.array([0.0, 4.0, 6.0, 12.0, np.nan])[np.clip(g, 0, 4)], np.nan)
        ice_txt = np.where(child, np.nan, ice_txt)
        sed = np.array([d in self.sedated_days.get(sj, ()) for sj, d in zip(subjid, grid["day"])], bool)
        cons = np.where(sed, "SEDATED", cons)
        ice_txt = np.where(sed, np.nan, ice_txt)
        comment = np.where(sed, "Intubated and sedated (respiratory failure from CRS): ICE not possible", comment)
        return pd.DataFrame({
            "USUBJID": s["usubjid"].to_numpy()[grid["sid"]],
            "ICANSDTC": np.char.add(date.astype(str), tm.astype(str)),
            "ICE_SCORE": ice_txt,
            "CONSCIOUSNESS": cons,
            "SEIZURE": seizure,
            "MOTOR_WEAKNESS": np.where(fatal & (grid["day"] >= 7), "DEEP_FOCAL", "NONE"),
            "CEREBRAL_EDEMA": edema,
            "COMMENT": comment,
            "CAPD_SCORE": capd,
        })

    # ---- labs -------------------------------------------------------------------------------------
    def labs(self, visits: pd.DataFrame, crs: pd.DataFrame) -> pd.DataFrame:
        s, rng = self.s, self.rng
        sex = s["sex"].to_numpy()
        subjids = s["subjid"].to_numpy()
        crs_key = pd.Series(crs["grade"].to_numpy(), index=crs["sid"].to_numpy() * 10000 + crs["day"].to_numpy())
        crs_key = crs_key.groupby(level=0).max()
        out = []
        values_by_test = {}
        for test in LAB_CODES:
            info = LAB_TESTS[test]
            v = visits[visits["groups"].str.contains(info["group"])]
            if test == "IGG":
                v = v[v["groups"].str.contains("igg")]
            sid = v["sid"].to_numpy()
            day = v["day"].to_numpy()
            lln, uln = _rng_range(test, sex)
            adays, avals = default_anchors(s, test, lln, uln)
            edits = {k: val for k, val in self.anchor_edits.items() if k[1] == test}
            exc = [e for e in self.excursions if e[1] == test]
            if edits or exc:
                rows_d, rows_v = [list(r) for r in adays], [list(r) for r in avals]
                for (sj, _), pts in edits.items():
                    i = self.sid(sj)
                    rows_d[i], rows_v[i] = [p[0] for p in pts], [p[1] for p in pts]
                for sj, _, direction, start, end, peak in exc:
                    i = self.sid(sj)
                    # negative peak = a CTCAE grade target; positive = a multiple of the subject's ULN
                    peak = _target_value(test, direction, int(-peak), lln[i], uln[i]) if peak < 0 else peak * uln[i]
                    rows_d[i], rows_v[i] = merge_excursion(rows_d[i], rows_v[i], start, end, peak)
                    for d in range(start, end + 1):
                        self.pinned[(sj, test, d)] = peak
                k = max(len(r) for r in rows_d)
                adays = np.array([r + [1000 + j for j in range(k - len(r))] for r in rows_d], float)
                avals = np.array([vv + [vv[-1]] * (k - len(vv)) for vv in rows_v], float)
            val = eval_anchors(adays, avals, sid, day.astype(float))
            # inflammation markers follow the CRS grade with a day's lag
            if test in ("CRP", "FERRITIN", "IL6", "FIBRINO"):
                k0 = sid * 10000 + day
                lvl = np.maximum.reduce([crs_key.reindex(k0).fillna(0).to_numpy(),
                                         0.8 * crs_key.reindex(k0 - 1).fillna(0).to_numpy(),
                                         0.5 * crs_key.reindex(k0 - 2).fillna(0).to_numpy()])
                if test == "CRP":
                    val = val + 32 * lvl ** 1.6
                elif test == "FERRITIN":
                    val = val * (1 + 1.6 * lvl)
                elif test == "IL6":
                    val = val * (1 + 9 * lvl ** 2)
                else:
                    val = val * (1 + 0.12 * lvl)
            if test == "WBC":
                mono = 0.15 + 0.35 * np.clip(values_by_test["NEUT"][1] / 3.0, 0, 1)
                val = values_by_test["NEUT"][1] + values_by_test["LYM"][1] + mono
            elif info["sd"] > 0:
                val = val * np.exp(rng.normal(0, info["sd"], len(val)))
            # exact values where the story needs them (pinned days, excursion plateaus)
            # pins are keyed by day (int) or by visit name (str, whatever day the visit fell on)
            pins = [(self.sid(sj), d, x) for (sj, t, d), x in self.pinned.items() if t == test]
            if pins:
                vcode = {name: 90000 + k for k, (name, *_rest) in enumerate(VISITS)}
                base = sid.astype(np.int64) * 100000
                pk = pd.Series({i * 100000 + (vcode[d] if isinstance(d, str) else d + 50000): x for i, d, x in pins})
                by_day = pk.reindex(base + day + 50000).to_numpy()
                by_visit = pk.reindex(base + np.array([vcode.get(x, 99999) for x in v["visit"]])).to_numpy()
                val = np.where(~np.isnan(by_day), by_day, np.where(~np.isnan(by_visit), by_visit, val))
            values_by_test[test] = (sid, val)
            out.append(pd.DataFrame({"sid": sid, "day": day, "visit": v["visit"].to_numpy(), "test": test,
                                     "value": val, "lln": lln[sid], "uln": uln[sid]}))
        lb = pd.concat(out, ignore_index=True)
        if self.lab_drops:
            key = pd.Series(list(zip(subjids[lb["sid"]], lb["test"])))
            lb = lb[~(key.isin(self.lab_drops).to_numpy() & (lb["day"] <= 0).to_numpy())].reset_index(drop=True)
        return lb

    # ---- adverse events ---------------------------------------------------------------------------
    def adverse_events(self, crs, icans, crs_grid, lb) -> pd.DataFrame:
        s, rng = self.s, self.rng
        subjids = s["subjid"].to_numpy()
        aes = []

        def add(sid, term, grade, start, end, rel, ser=False, life=False, death=False, sev=None, partial=False, **kw):
            aes.append(dict(sid=sid, term=term[0], soc=term[1], grade=grade, start=start, end=end, rel=rel,
                            ser=ser or life or death, life=life, death=death, sev=sev, partial=partial))

        for name, tab, term in (("CRS", crs, CRS_TERM), ("ICANS", icans, ICANS_TERM)):
            ep = tab.groupby(["sid", "episode"]).agg(start=("day", "min"), end=("day", "max"), grade=("grade", "max")).reset_index()
            for r in ep.itertuples():
                g = self.reported.get((subjids[r.sid], name, r.episode), r.grade)
                fatal = g == 5
                add(r.sid, term, int(g), r.start, r.end if not fatal else int(s.loc[r.sid, "death_day_fixed"]),
                    "RELATED", ser=g >= 3, life=g == 4, death=fatal)
        # haematological AEs from the lab curves: runs of grade >= 3
        for test, thr3, thr4 in (("NEUT", 1.0, 0.5), ("PLAT", 50, 25), ("HGB", 80, -1)):
            x = lb[(lb["test"] == test) & (lb["day"] >= -5)].sort_values(["sid", "day"])
            g = np.where(x["value"] < thr4, 4, np.where(x["value"] < thr3, 3, 0))
            flag = g >= 3
            t = pd.DataFrame({"sid": x["sid"].to_numpy(), "day": x["day"].to_numpy(), "g": g})[flag]
            # one AE per stretch: a recovery of 3 days or less does not end it (investigators report it once)
            new = (t["day"].diff().fillna(99).to_numpy() > 4) | (t["sid"].diff().fillna(1).to_numpy() != 0)
            t["run"] = np.cumsum(new)
            agg = t.groupby("run").agg(sid=("sid", "first"), start=("day", "min"), end=("day", "max"), g=("g", "max"))
            term = LAB_AE_TERMS[(test, "L")]
            for r in agg.itertuples():
                add(r.sid, term, int(r.g), r.start, r.end, "POSSIBLY RELATED" if r.start < 60 else "UNLIKELY RELATED")
        # chemistry excursions of grade >= 3 are reported; short and judged unlikely related
        for sj, test, direction, start, end, peak in self.excursions:
            if peak < 0 and -peak >= 3 and (test, direction) in LAB_AE_TERMS and test != "HGB":
                add(self.sid(sj), LAB_AE_TERMS[(test, direction)], int(-peak), start, end, "UNLIKELY RELATED")
        # infections months 1-6
        n_inf = s["n_infections"].to_numpy() * s["infused"].to_numpy()
        sid = np.repeat(s.index.to_numpy(), n_inf)
        k = len(sid)
        if k:
            which = rng.integers(0, len(INFECTIONS), k)
            start = rng.integers(30, 181, k)
            dur = rng.integers(5, 21, k)
            grade = rng.choice([1, 2, 3], k, p=[0.3, 0.5, 0.2])
            rel = rng.choice(["NOT RELATED", "UNLIKELY RELATED", "POSSIBLY RELATED"], k, p=[0.3, 0.4, 0.3])
            for i in range(k):
                inf = INFECTIONS[which[i]]
                add(sid[i], inf[:2], int(grade[i]), int(start[i]), int(start[i] + dur[i]), rel[i], ser=grade[i] >= 3)
                self._cm(sid[i], inf[2], inf[2].upper(), "ANTI-INFECTIVE", inf[0], None, None, "INTRAVENOUS", int(start[i]), int(start[i] + dur[i]))
        # hypogammaglobulinaemia once IgG < 4 g/L
        ig = lb[(lb["test"] == "IGG") & (lb["value"] < 4.0) & (lb["day"] > 0)].groupby("sid")["day"].min()
        for i, d in ig.items():
            add(i, ("Hypogammaglobulinemia", "Immune system disorders"), 2, int(d), None, "RELATED")
            self._cm(i, "Immunoglobulin human normal (IVIG)", "IMMUNOGLOBULIN HUMAN NORMAL", "SUPPORTIVE", "Hypogammaglobulinemia",
                     0.4, "g/kg", "INTRAVENOUS", int(d) + 2, int(d) + 2)
        # background low-grade AEs
        inf_idx = s.index[s["infused"]].to_numpy()
        nb = rng.poisson(self.ae_rate, len(inf_idx))
        sid = np.repeat(inf_idx, nb)
        k = len(sid)
        w = np.array([b[2] for b in BACKGROUND_AES], float)
        which = rng.choice(len(BACKGROUND_AES), k, p=w / w.sum())
        start = np.where(rng.random(k) < 0.6, rng.integers(-4, 29, k), rng.integers(29, 365, k))
        dur = rng.integers(1, 15, k)
        maxg = np.array([b[3] for b in BACKGROUND_AES])[which]
        grade = np.minimum(maxg, rng.choice([1, 2], k, p=[0.7, 0.3]))
        rel = np.array(REL_LEVELS)[rng.choice(5, k, p=[0.3, 0.25, 0.25, 0.1, 0.1])]
        for i in range(k):
            b = BACKGROUND_AES[which[i]]
            add(sid[i], b[:2], int(grade[i]), int(start[i]), int(start[i] + dur[i]), rel[i])
        for e in self.extra_aes:
            add(self.sid(e["subjid"]), e["term"], e.get("grade"), e["start"], e["end"], e["rel"], ser=e.get("ser", False),
                life=e.get("life", False), death=e.get("death", False), sev=e.get("sev"), partial=e.get("partial_start", False))
            if e.get("cm"):
                self._cm(self.sid(e["subjid"]), e["cm"], e["cm"].upper(), "ANTI-INFECTIVE", e["term"][0], None, None,
                         "INTRAVENOUS", e["start"], e["end"])
        ae = pd.DataFrame(aes)
        ae = ae[self.in_followup(ae["sid"].to_numpy(), ae["start"].to_numpy())].copy()
        endd = self.end_day()[ae["sid"].to_numpy()]
        ongoing = ae["end"].isna().to_numpy() | (ae["end"].fillna(10 ** 6).to_numpy() > endd)
        ae["end"] = np.where(ongoing, np.nan, ae["end"].fillna(-1))
        ae["ongoing"] = ongoing
        return ae

    # ---- concomitant medications ------------------------------------------------------------------
    def _cm(self, sid, trt, decod, cat, indc, dose, dosu, route, start, end):
        self._cms.append(dict(sid=int(sid), CMTRT=trt, CMDECOD=decod, CMCAT=cat, CMINDC=indc, CMDOSE=dose, CMDOSU=dosu,
                              CMROUTE=route, start=start, end=end))

    def _cm_frame(self, sid, trt, decod, cat, indc, dose, dosu, route, start, end):
        """Many CM records at once (one per subject in sid)."""
        sid = np.asarray(sid, int)
        if len(sid):
            self._cm_frames.append(pd.DataFrame({"sid": sid, "CMTRT": trt, "CMDECOD": decod, "CMCAT": cat, "CMINDC": indc,
                                                 "CMDOSE": dose, "CMDOSU": dosu, "CMROUTE": route,
                                                 "start": np.asarray(start, int), "end": np.asarray(end, float)}))

    def medications(self, crs, icans, crs_grid, ld_in_cm: bool):
        s = self.s
        inf = s.index[s["infused"]].to_numpy()
        one = np.ones(len(inf), int)
        self._cm_frame(inf, "Acyclovir", "ACICLOVIR", "PROPHYLAXIS", "Antiviral prophylaxis", 400, "mg", "ORAL", -5 * one, 365 * one)
        self._cm_frame(inf, "Allopurinol", "ALLOPURINOL", "PROPHYLAXIS", "Tumour lysis prophylaxis", 300, "mg", "ORAL", -5 * one, 7 * one)
        if ld_in_cm:
            self._cm_frame(inf, "Fludarabine", "FLUDARABINE", "LYMPHODEPLETION", "Lymphodepletion", 30, "mg/m2", "INTRAVENOUS",
                           -5 * one, -3 * one)
            self._cm_frame(inf, "Cyclophosphamide", "CYCLOPHOSPHAMIDE", "LYMPHODEPLETION", "Lymphodepletion", 500, "mg/m2",
                           "INTRAVENOUS", -5 * one, -3 * one)
        # CRS management per episode: tocilizumab at the first grade >= 2 day (again the next day when grade >= 3
        # lasts), dexamethasone over grade >= 3 days, paracetamol over the febrile days
        key = ["sid", "episode"]
        ep = crs.groupby(key)["day"].agg(["min", "max"])
        g2 = crs[crs["grade"] >= 2].groupby(key)["day"].min()
        g3 = crs[crs["grade"] >= 3].groupby(key)["day"].agg(["min", "max", "count"])
        toci2 = g2[g3["count"].reindex(g2.index).fillna(0).to_numpy() >= 2]
        ig2 = icans[icans["grade"] >= 2].groupby(key)["day"].agg(["min", "max"])
        iep = icans.groupby(key)["day"].agg(["min", "max"])
        iep = iep[iep["min"] >= 0]
        self._cm_frame(g2.index.get_level_values(0), "Tocilizumab", "TOCILIZUMAB", "CRS MANAGEMENT", "Cytokine release syndrome",
                       8, "mg/kg", "INTRAVENOUS", g2.to_numpy(), g2.to_numpy())
        self._cm_frame(toci2.index.get_level_values(0), "Tocilizumab", "TOCILIZUMAB", "CRS MANAGEMENT", "Cytokine release syndrome",
                       8, "mg/kg", "INTRAVENOUS", toci2.to_numpy() + 1, toci2.to_numpy() + 1)
        self._cm_frame(g3.index.get_level_values(0), "Dexamethasone", "DEXAMETHASONE", "CRS MANAGEMENT", "Cytokine release syndrome",
                       10, "mg", "INTRAVENOUS", g3["min"].to_numpy(), g3["max"].to_numpy() + 2)
        self._cm_frame(ep.index.get_level_values(0), "Paracetamol", "PARACETAMOL", "SUPPORTIVE", "Fever", 1000, "mg", "ORAL",
                       ep["min"].to_numpy(), ep["max"].to_numpy())
        self._cm_frame(ig2.index.get_level_values(0), "Dexamethasone", "DEXAMETHASONE", "ICANS MANAGEMENT",
                       "Immune effector cell-associated neurotoxicity syndrome", 10, "mg", "INTRAVENOUS",
                       ig2["min"].to_numpy(), ig2["max"].to_numpy() + 2)
        self._cm_frame(iep.index.get_level_values(0), "Levetiracetam", "LEVETIRACETAM", "ICANS MANAGEMENT", "Seizure prophylaxis",
                       500, "mg", "ORAL", iep["min"].to_numpy(), iep["max"].to_numpy() + 7)
        # vasopressors from the bedside record, one CM per contiguous run
        for col, trt in (("vaso", "Norepinephrine"), ("vasopressin", "Vasopressin")):
            x = crs_grid[(crs_grid[col] > 0) & ~self._no_bedside(crs_grid["sid"].to_numpy())]
            if len(x):
                run = (x["day"].diff().fillna(9).ne(1) | x["sid"].diff().fillna(1).ne(0)).cumsum()
                r = x.groupby(run).agg(sid=("sid", "first"), a=("day", "min"), b=("day", "max"))
                self._cm_frame(r["sid"].to_numpy(), trt, trt.upper(), "CRS MANAGEMENT", "Hypotension", np.nan, "",
                               "INTRAVENOUS", r["a"].to_numpy(), r["b"].to_numpy())
        for e in self.extra_cms:
            e = dict(e)
            self._cms.append(dict(sid=self.sid(e.pop("subjid")), **e))
        cm = pd.concat([pd.DataFrame(self._cms)] + self._cm_frames, ignore_index=True)
        cm = cm[self.in_followup(cm["sid"].to_numpy().astype(int), cm["start"].to_numpy())].copy()
        endd = self.end_day()[cm["sid"].to_numpy().astype(int)]
        cm["end"] = np.where(cm["end"].to_numpy() > endd, np.nan, cm["end"])
        return cm

    # ---- build every domain -----------------------------------------------------------------------
    def build(self) -> dict[str, pd.DataFrame]:
        s, rng, spec = self.s, self.rng, self.spec
        studyid = spec["studyid"]
        self._cms: list[dict] = []
        self._cm_frames: list[pd.DataFrame] = []
        vis = self.visits()
        crs = self.daily_grades("crs")
        icans = self.daily_grades("icans")
        crs_out, crs_grid = self.crs_assessments(crs, icans)
        icans_out = self.icans_assessments(icans)
        lb = self.labs(vis, crs)
        ae = self.adverse_events(crs, icans, crs_grid, lb)
        cm = self.medications(crs, icans, crs_grid, ld_in_cm=not self.car_t)
        inf_date = s["inf_date"].to_numpy().astype("datetime64[D]")
        usub = s["usubjid"].to_numpy()
        end = self.end_day()
        out: dict[str, pd.DataFrame] = {}

        # --- DS and deaths
        ds = []
        death_day = np.full(len(s), -1)
        deliv = (self.delivery - inf_date).astype(int)
        for i, r in s.iterrows():
            ev = int(r["event_day"])
            if r["outcome"] == "COMPLETED" and ev <= deliv[i]:
                ds.append((i, "COMPLETED", "COMPLETED", ev))
            elif r["outcome"] == "WITHDRAWAL" and ev <= deliv[i]:
                ds.append((i, "WITHDRAWAL BY SUBJECT", "WITHDRAWAL BY SUBJECT", ev))
            elif r["outcome"] == "PD" and ev <= deliv[i]:
                ds.append((i, "Disease progression", "PROGRESSIVE DISEASE", ev))
                if r["death_after_pd"] > 0 and ev + r["death_after_pd"] <= deliv[i]:
                    death_day[i] = ev + int(r["death_after_pd"])
                    ds.append((i, "Disease progression", "DEATH", int(death_day[i])))
            elif r["outcome"] == "DEATH" and ev <= deliv[i]:
                death_day[i] = ev
                ds.append((i, r["death_cause"], "DEATH", ev))
        ds = pd.DataFrame(ds, columns=["sid", "DSTERM", "DSDECOD", "day"])
        ds = ds.sort_values(["sid", "day"], kind="stable")
        out["ds"] = pd.DataFrame({
            "STUDYID": studyid, "DOMAIN": "DS", "USUBJID": usub[ds["sid"]],
            "DSSEQ": ds.groupby("sid").cumcount().to_numpy() + 1,
            "DSTERM": ds["DSTERM"].to_numpy(), "DSDECOD": ds["DSDECOD"].to_numpy(), "DSCAT": "DISPOSITION EVENT",
            "DSSTDTC": _iso(inf_date[ds["sid"]], ds["day"]), "DSSTDY": self._dy(ds["day"].to_numpy()),
        })

        # --- DM + SUPPDM
        consent = s["screen_day"].to_numpy() - s["consent_lag"].to_numpy()
        infused = s["infused"].to_numpy()
        last = np.where(death_day >= 0, death_day, end)
        arm = np.where(infused, spec["product"] + " " + s["dose_level"].to_numpy(), "Not Treated")
        armcd = np.where(infused, s["dose_level"].to_numpy(), "NOTTRT")
        dtc = lambda days, ok: np.where(ok, _iso(inf_date, days), "")
        out["dm"] = pd.DataFrame({
            "STUDYID": studyid, "DOMAIN": "DM", "USUBJID": usub, "SUBJID": s["subjid"].to_numpy(),
            "RFSTDTC": dtc(np.full(len(s), -5), infused), "RFENDTC": _iso(inf_date, last),
            "RFXSTDTC": np.where(infused, np.char.add(_iso(inf_date, 0).astype(str), "T10:00"), ""),
            "RFXENDTC": np.where(infused, np.char.add(_iso(inf_date, 0).astype(str), "T10:30"), ""),
            "RFICDTC": _iso(inf_date, consent), "DTHDTC": dtc(death_day, death_day >= 0),
            "DTHFL": np.where(death_day >= 0, "Y", ""), "SITEID": s["siteid"].to_numpy(),
            "AGE": s["age"].to_numpy().astype(float), "AGEU": "YEARS", "SEX": s["sex"].to_numpy(), "RACE": "ASIAN",
            "ETHNIC": "NOT HISPANIC OR LATINO", "ARMCD": armcd, "ARM": arm, "ACTARMCD": armcd, "ACTARM": arm,
            "COUNTRY": spec["country"],
        })
        supp = []
        for i in range(len(s)):
            for q, lab, val in (("COHORT", "Cohort", s.loc[i, "cohort"]), ("DOSELVL", "Dose level", s.loc[i, "dose_level"]),
                                ("DIAGNOSIS", "Disease under study", s.loc[i, "diagnosis"])):
                supp.append((usub[i], q, lab, val))
        supp = pd.DataFrame(supp, columns=["USUBJID", "QNAM", "QLABEL", "QVAL"])
        out["suppdm"] = pd.DataFrame({"STUDYID": studyid, "RDOMAIN": "DM", "USUBJID": supp["USUBJID"], "IDVAR": "",
                                      "IDVARVAL": "", "QNAM": supp["QNAM"], "QLABEL": supp["QLABEL"], "QVAL": supp["QVAL"],
                                      "QORIG": "CRF", "QEVAL": ""})

        # --- EX: the infusion (and lymphodepletion for the CAR-T study, which delivers it in EX)
        ex = []
        dose = np.array([spec["dose_levels"][d] for d in s["dose_level"]])
        for i in np.flatnonzero(infused):
            if self.car_t:
                for trt, dd in (("Fludarabine", 30.0), ("Cyclophosphamide", 500.0)):
                    ex.append((i, trt, "LYMPHODEPLETION", dd, "mg/m2", "INTRAVENOUS", "QD", -5, -3, "", ""))
            ex.append((i, spec["product"], "CELL THERAPY", dose[i], "10^6 cells/kg", "INTRAVENOUS", "ONCE", 0, 0, "T10:00", "T10:30"))
        ex = pd.DataFrame(ex, columns=["sid", "EXTRT", "EXCAT", "EXDOSE", "EXDOSU", "EXROUTE", "EXDOSFRQ", "st", "en", "tst", "ten"])
        out["ex"] = pd.DataFrame({
            "STUDYID": studyid, "DOMAIN": "EX", "USUBJID": usub[ex["sid"]], "EXSEQ": ex.groupby("sid").cumcount().to_numpy() + 1,
            "EXTRT": ex["EXTRT"], "EXCAT": ex["EXCAT"], "EXDOSE": ex["EXDOSE"].astype(float), "EXDOSU": ex["EXDOSU"],
            "EXDOSFRQ": ex["EXDOSFRQ"], "EXROUTE": ex["EXROUTE"],
            "EXSTDTC": np.char.add(_iso(inf_date[ex["sid"]], ex["st"]).astype(str), ex["tst"].to_numpy().astype(str)),
            "EXENDTC": np.char.add(_iso(inf_date[ex["sid"]], ex["en"]).astype(str), ex["ten"].to_numpy().astype(str)),
            "EXSTDY": self._dy(ex["st"].to_numpy()),
        })

        # --- AE (+ SUPPAE: ICU admission)
        ae = ae.sort_values(["sid", "start", "term"], kind="stable").reset_index(drop=True)
        ae_seq = ae.groupby("sid").cumcount().to_numpy() + 1
        sid_ae = ae["sid"].to_numpy()
        st = _iso(inf_date[sid_ae], ae["start"].to_numpy())
        st = np.where(ae["partial"].to_numpy(), [x[:7] for x in st], st)  # year-month only
        en = np.where(ae["ongoing"].to_numpy(), "", _iso(inf_date[sid_ae], ae["end"].fillna(0).to_numpy()))
        g = ae["grade"].to_numpy()
        gr = np.where(pd.isna(g), "", pd.Series(g).astype("Int64").astype(str).replace("<NA>", ""))
        sev_from = np.select([pd.Series(g).fillna(0) >= 3, pd.Series(g).fillna(0) == 2], ["SEVERE", "MODERATE"], "MILD")
        sev = np.where(ae["sev"].notna(), ae["sev"], sev_from)
        fatal = ae["death"].to_numpy().astype(bool)
        outc = np.where(fatal, "FATAL", np.where(ae["ongoing"].to_numpy(), "NOT RECOVERED/NOT RESOLVED", "RECOVERED/RESOLVED"))
        yn = lambda b: np.where(np.asarray(b, bool), "Y", "N")
        out["ae"] = pd.DataFrame({
            "STUDYID": studyid, "DOMAIN": "AE", "USUBJID": usub[sid_ae], "AESEQ": ae_seq.astype(float),
            "AETERM": ae["term"].to_numpy(), "AEDECOD": ae["term"].to_numpy(), "AEBODSYS": ae["soc"].to_numpy(),
            "AESEV": sev, "AETOXGR": gr, "AESER": yn(ae["ser"]), "AESDTH": yn(fatal), "AESLIFE": yn(ae["life"]),
            "AESHOSP": yn(ae["ser"]),
            "AESDISAB": "N", "AESCONG": "N", "AESMIE": "N",
            "AEREL": ae["rel"].to_numpy(), "AEACN": "NOT APPLICABLE", "AEOUT": outc,
            "AESTDTC": st, "AEENDTC": en, "AESTDY": self._dy(ae["start"].to_numpy()),
        })
        icu = (ae["term"].isin([CRS_TERM[0], ICANS_TERM[0], "Sepsis"]) & (pd.Series(g).fillna(0) >= 3)).to_numpy()
        out["suppae"] = pd.DataFrame({
            "STUDYID": studyid, "RDOMAIN": "AE", "USUBJID": usub[sid_ae][icu], "IDVAR": "AESEQ",
            "IDVARVAL": ae_seq[icu].astype(str), "QNAM": "AEICU", "QLABEL": "Admitted to intensive care", "QVAL": "Y",
            "QORIG": "CRF", "QEVAL": ""})

        # --- LB
        lb = lb.merge(vis[["sid", "day", "visit"]].drop_duplicates(["sid", "day", "visit"]), on=["sid", "day", "visit"])
        lb = lb.sort_values(["sid", "day", "test"], kind="stable").reset_index(drop=True)
        out["lb"] = self._lb_frame(lb)

        # --- VS
        out["vs"] = self._vs_frame(vis, crs_grid)

        # --- CM
        cm = cm.sort_values(["sid", "start", "CMTRT"], kind="stable").reset_index(drop=True)
        sid_cm = cm["sid"].to_numpy().astype(int)
        out["cm"] = pd.DataFrame({
            "STUDYID": studyid, "DOMAIN": "CM", "USUBJID": usub[sid_cm], "CMSEQ": (cm.groupby("sid").cumcount().to_numpy() + 1).astype(float),
            "CMTRT": cm["CMTRT"], "CMDECOD": cm["CMDECOD"], "CMCAT": cm["CMCAT"], "CMINDC": cm["CMINDC"],
            "CMDOSE": cm["CMDOSE"].astype(float), "CMDOSU": cm["CMDOSU"].fillna(""), "CMROUTE": cm["CMROUTE"],
            "CMSTDTC": _iso(inf_date[sid_cm], cm["start"].to_numpy()),
            "CMENDTC": np.where(cm["end"].isna(), "", _iso(inf_date[sid_cm], cm["end"].fillna(0).to_numpy())),
        })

        # --- RS
        out["rs"] = self._rs_frame()
        out["crs_assessments"] = crs_out
        out["icans_assessments"] = icans_out
        if self.planted:
            self._plant_outcomes(out)
        return out

    # ---- outcomes beyond CRS/ICANS (kinetics, infections, deaths, TLS, immune markers, malignancy) -------------
    def _plant_outcomes(self, out: dict[str, pd.DataFrame]) -> None:
        """Add the outcome records after every other domain is drawn, from a random stream of their own, so that
        the draws and planted values of the other domains do not move."""
        rng = np.random.default_rng(SEED + (17 if self.key == "car_t_cd56" else 18))
        plan = OUTCOME_PLANTS[self.key]
        s = self.s
        inf = dict(zip(s["usubjid"], s["inf_date"].to_numpy().astype("datetime64[D]")))
        usub = {sj: u for sj, u in zip(s["subjid"], s["usubjid"])}
        studyid = self.spec["studyid"]

        def iso(u, day):
            return str(inf[u] + np.timedelta64(int(day), "D"))

        def add(name, rows):
            df = out.get(name)
            new = pd.DataFrame(rows)
            if df is None:
                out[name] = new
                return
            for c in df.columns:
                if c not in new:
                    new[c] = "" if df[c].dtype == object or pd.api.types.is_string_dtype(df[c]) else np.nan
            out[name] = pd.concat([df, new[df.columns]], ignore_index=True)

        def next_seq(name, col, u):
            df = out[name]
            got = pd.to_numeric(df.loc[df["USUBJID"] == u, col], errors="coerce")
            return float(got.max() + 1) if len(got) else 1.0

        def add_ae(sj, term, decod, soc, grade, start, end, rel, ser=False, death=False, qual=None):
            u = usub[sj]
            seq = next_seq("ae", "AESEQ", u)
            add("ae", [dict(STUDYID=studyid, DOMAIN="AE", USUBJID=u, AESEQ=seq, AETERM=term, AEDECOD=decod, AEBODSYS=soc,
                            AESEV="SEVERE" if grade >= 3 else ("MODERATE" if grade == 2 else "MILD"), AETOXGR=str(grade),
                            AESER="Y" if ser or death else "N", AESDTH="Y" if death else "N", AESLIFE="N",
                            AESHOSP="Y" if ser or death else "N", AESDISAB="N", AESCONG="N", AESMIE="N", AEREL=rel,
                            AEACN="NOT APPLICABLE",
                            AEOUT="FATAL" if death else ("NOT RECOVERED/NOT RESOLVED" if end is None else "RECOVERED/RESOLVED"),
                            AESTDTC=iso(u, start), AEENDTC="" if end is None else iso(u, end),
                            AESTDY=float(self._dy(np.array([start]))[0]))])
            for qnam, qlabel, qval in (qual or []):
                add("suppae", [dict(STUDYID=studyid, RDOMAIN="AE", USUBJID=u, IDVAR="AESEQ", IDVARVAL=str(int(seq)),
                                    QNAM=qnam, QLABEL=qlabel, QVAL=qval, QORIG="CRF", QEVAL="")])

        def add_cm(sj, trt, cat, indc, start, end, dose=np.nan, dosu="", route="INTRAVENOUS"):
            u = usub[sj]
            add("cm", [dict(STUDYID=studyid, DOMAIN="CM", USUBJID=u, CMSEQ=next_seq("cm", "CMSEQ", u), CMTRT=trt,
                            CMDECOD=trt.upper(), CMCAT=cat, CMINDC=indc, CMDOSE=float(dose), CMDOSU=dosu, CMROUTE=route,
                            CMSTDTC=iso(u, start), CMENDTC=iso(u, end))])

        def add_mb(sj, day, testcd, test, organism, orres, spec_):
            u = usub[sj]
            seq = next_seq("mb", "MBSEQ", u) if "mb" in out else 1.0
            add("mb", [dict(STUDYID=studyid, DOMAIN="MB", USUBJID=u, MBSEQ=seq, MBTESTCD=testcd, MBTEST=test,
                            MBORRES=orres, MBSTRESC=organism, MBSPEC=spec_, VISIT="UNSCHEDULED", MBDTC=iso(u, day))])

        # infections found by microbiology (one matched to an AE, one without an AE)
        for sj, day, testcd, test, organism, orres, spec_ in plan["mb"]:
            add_mb(sj, day, testcd, test, organism, orres, spec_)
        # a death, with every later record of the subject removed
        for sj, onset, day, term, decod, drug in plan["deaths"]:
            u = usub[sj]
            self._truncate(out, u, inf[u], day)
            add_ae(sj, term, decod, "Infections and infestations", 5, onset, day, "POSSIBLY RELATED", death=True)
            add_cm(sj, drug, "ANTI-INFECTIVE", term, onset, day, dosu="")
            dsq = next_seq("ds", "DSSEQ", u)
            add("ds", [dict(STUDYID=studyid, DOMAIN="DS", USUBJID=u, DSSEQ=dsq, DSTERM=term, DSDECOD="DEATH",
                            DSCAT="DISPOSITION EVENT", DSSTDTC=iso(u, day), DSSTDY=float(self._dy(np.array([day]))[0]))])
            dm = out["dm"]
            k = dm["USUBJID"] == u
            dm.loc[k, ["DTHDTC", "DTHFL", "RFENDTC"]] = [iso(u, day), "Y", iso(u, day)]
        # other AEs (off-tumour watch list, TLS, a secondary malignancy)
        for sj, term, decod, soc, grade, start, end, rel, qual in plan["aes"]:
            add_ae(sj, term, decod, soc, grade, start, end, rel, ser=grade >= 3, qual=qual)
        for sj, trt, cat, indc, start, end in plan["cms"]:
            add_cm(sj, trt, cat, indc, start, end)
        # laboratory TLS: values replaced on one day
        lb = out["lb"]
        for sj, day, test, value in plan["lab_edits"]:
            u = usub[sj]
            k = (lb["USUBJID"] == u) & (lb["LBTESTCD"] == test) & (lb["LBDTC"].str[:10] == iso(u, day))
            assert k.sum() == 1, (sj, day, test)
            txt = f"{value:g}"
            lo, hi = lb.loc[k, "LBSTNRLO"].iloc[0], lb.loc[k, "LBSTNRHI"].iloc[0]
            lb.loc[k, ["LBORRES", "LBSTRESC", "LBSTRESN", "LBNRIND"]] = [
                txt, txt, float(value), "HIGH" if value > hi else ("LOW" if value < lo else "NORMAL")]
        # actual dose below the planned one
        ex = out["ex"]
        for sj, dose in plan["dose_edits"]:
            k = (ex["USUBJID"] == usub[sj]) & (ex["EXCAT"] == "CELL THERAPY")
            ex.loc[k, "EXDOSE"] = float(dose)
        # enrolled but never infused
        for sj, consent, ds_day, reason, decod, cohort, dl, dx in plan["not_infused"]:
            u = f"{studyid}-01-{sj}"
            c = np.datetime64(consent)
            add("dm", [dict(STUDYID=studyid, DOMAIN="DM", USUBJID=u, SUBJID=sj, RFSTDTC="", RFENDTC=str(c + ds_day),
                            RFXSTDTC="", RFXENDTC="", RFICDTC=str(c), DTHDTC="", DTHFL="", SITEID="01", AGE=57.0,
                            AGEU="YEARS", SEX="M", RACE="ASIAN", ETHNIC="NOT HISPANIC OR LATINO", ARMCD="NOTTRT",
                            ARM="Not Treated", ACTARMCD="NOTTRT", ACTARM="Not Treated", COUNTRY=self.spec["country"])])
            add("suppdm", [dict(STUDYID=studyid, RDOMAIN="DM", USUBJID=u, IDVAR="", IDVARVAL="", QNAM=q, QLABEL=lab,
                                QVAL=v, QORIG="CRF", QEVAL="")
                           for q, lab, v in (("COHORT", "Cohort", cohort), ("DOSELVL", "Dose level", dl),
                                             ("DIAGNOSIS", "Disease under study", dx))])
            add("ds", [dict(STUDYID=studyid, DOMAIN="DS", USUBJID=u, DSSEQ=1.0, DSTERM=reason, DSDECOD=decod,
                            DSCAT="DISPOSITION EVENT", DSSTDTC=str(c + ds_day), DSSTDY=np.nan)])
            add("vs", [dict(STUDYID=studyid, DOMAIN="VS", USUBJID=u, VSSEQ=float(n + 1), VSTESTCD=cd, VSTEST=nm,
                            VSORRES=f"{v:g}", VSORRESU=unit, VSSTRESC=f"{v:g}", VSSTRESN=float(v), VSSTRESU=unit,
                            VSBLFL="Y", VISIT="SCREENING", VSDTC=str(c + 5), VSDY=np.nan)
                       for n, (cd, nm, v, unit) in enumerate((("ECOG", "ECOG Performance Status", 1, ""),
                                                              ("LVEF", "Left Ventricular Ejection Fraction", 58, "%"),
                                                              ("OXYSAT", "Oxygen Saturation", 97, "%")))])
        self._kinetics_and_markers(out, rng, plan)
        if "pp" in plan:
            self._sponsor_pp(out, plan["pp"])
        if "mh" in plan:
            self._medical_history(out, plan["mh"])

    def _sponsor_pp(self, out: dict[str, pd.DataFrame], p: dict) -> None:
        """PP as the sponsor's analysis of PC gives it: Cmax, Tmax and AUC days 0-28 (linear trapezoid, values
        below the LLOQ as 0), for subjects past day 28 at the sponsor's lock."""
        studyid = self.spec["studyid"]
        pc = out["pc"].copy()
        pc["v"] = pd.to_numeric(pc["PCSTRESN"], errors="coerce").fillna(0.0)
        s = self.s
        inf = dict(zip(s["usubjid"], s["inf_date"].to_numpy().astype("datetime64[D]")))
        lock = np.datetime64(p["lock"])
        rows = []
        for u, g in pc.groupby("USUBJID", sort=True):
            if inf[u] + np.timedelta64(28, "D") > lock:
                continue
            g = g.assign(day=[int((np.datetime64(x[:10]) - inf[u]).astype(int)) for x in g["PCDTC"]])
            g = g[g["day"] >= 0].sort_values("day")
            v = g["v"].to_numpy().copy()
            sj = u[-3:]
            if sj == p["reassay"][0]:  # the sponsor re-assayed the peak sample
                v[int(np.argmax(v))] *= p["reassay"][1]
            cmax = float(v.max())
            tmax = int(g["day"].to_numpy()[int(np.argmax(v))])
            w = g["day"].to_numpy() <= 28
            d, vv = g["day"].to_numpy()[w], v[w]
            auc = float(np.sum(np.diff(d) * (vv[1:] + vv[:-1]) / 2.0))
            unit = g["PCSTRESU"].iloc[0]
            hours = u.split("-")[-2] == p["hours_site"]
            params = [("CMAX", "Max Conc", cmax, unit, "", ""),
                      ("TMAX", "Time of CMAX", tmax * 24.0 if hours else float(tmax), "h" if hours else "day", "", ""),
                      ("AUCINT", "AUC from T1 to T2", auc, "day*" + unit, "P0D", "P28D")]
            for n, (cd, name, val, un, st_, en) in enumerate(params):
                if (sj, cd) == p["typo"][:2]:
                    val = p["typo"][2]
                txt = f"{val:.4g}"
                rows.append(dict(STUDYID=studyid, DOMAIN="PP", USUBJID=u, PPSEQ=float(n + 1), PPTESTCD=cd, PPTEST=name,
                                 PPCAT=g["PCTESTCD"].iloc[0], PPORRES=txt, PPORRESU=un, PPSTRESC=txt,
                                 PPSTRESN=float(txt), PPSTRESU=un, PPSPEC="BLOOD", PPSTINT=st_, PPENINT=en,
                                 PPRFTDTC=str(inf[u])))
        out["pp"] = pd.DataFrame(rows)

    def _medical_history(self, out: dict[str, pd.DataFrame], m: dict) -> None:
        """MH: a few general conditions per subject taken at screening (own random stream), the planted prior
        malignancy, and a malignancy reported as history at a later visit."""
        rng = np.random.default_rng(SEED + 19)
        studyid = self.spec["studyid"]
        dm = out["dm"]
        usub = {u[-3:]: u for u in dm["USUBJID"]}
        consent = dict(zip(dm["USUBJID"], dm["RFICDTC"]))
        inf = dict(zip(self.s["usubjid"], self.s["inf_date"].to_numpy().astype("datetime64[D]")))
        rows = []
        for u in sorted(dm["USUBJID"]):
            for term in rng.choice(m["general"], size=int(rng.integers(0, 3)), replace=False):
                year = int(rng.integers(2005, 2023))
                start = f"{year}" if rng.random() < 0.5 else f"{year}-{int(rng.integers(1, 13)):02d}"
                rows.append(dict(USUBJID=u, MHTERM=str(term), MHDECOD=str(term), MHCAT="GENERAL MEDICAL HISTORY",
                                 MHSTDTC=start, MHENDTC="", MHENRTPT="ONGOING", VISIT="SCREENING", MHDTC=consent[u]))
        for sj, term, decod, start, end in m["prior"]:
            u = usub[sj]
            rows.append(dict(USUBJID=u, MHTERM=term, MHDECOD=decod, MHCAT="GENERAL MEDICAL HISTORY", MHSTDTC=start,
                             MHENDTC=end, MHENRTPT="", VISIT="SCREENING", MHDTC=consent[u]))
        for sj, term, decod, start_day, told_day, visit in m["later"]:
            u = usub[sj]
            rows.append(dict(USUBJID=u, MHTERM=term, MHDECOD=decod, MHCAT="GENERAL MEDICAL HISTORY",
                             MHSTDTC=str(inf[u] + np.timedelta64(start_day, "D")), MHENDTC="", MHENRTPT="ONGOING",
                             VISIT=visit, MHDTC=str(inf[u] + np.timedelta64(told_day, "D"))))
        df = pd.DataFrame(rows).sort_values(["USUBJID", "MHDTC"], kind="stable").reset_index(drop=True)
        df.insert(0, "STUDYID", studyid)
        df.insert(1, "DOMAIN", "MH")
        df.insert(3, "MHSEQ", (df.groupby("USUBJID").cumcount() + 1).astype(float))
        out["mh"] = df

    def _truncate(self, out: dict[str, pd.DataFrame], u: str, inf: np.datetime64, day: int) -> None:
        """Drop a subject's records dated after ``day`` (a death): the data a site would hold."""
        last = str(inf + np.timedelta64(int(day), "D"))
        dated = {"ae": "AESTDTC", "lb": "LBDTC", "vs": "VSDTC", "cm": "CMSTDTC", "rs": "RSDTC", "ds": "DSSTDTC",
                 "ex": "EXSTDTC", "crs_assessments": "CRSDTC", "icans_assessments": "ICANSDTC"}
        for name, col in dated.items():
            df = out[name]
            keep = ~((df["USUBJID"] == u) & (df[col].astype(str).str[:10] > last))
            out[name] = df[keep].reset_index(drop=True)
        for name, col in (("ae", "AEENDTC"), ("cm", "CMENDTC")):
            df = out[name]
            k = (df["USUBJID"] == u) & (df[col].astype(str).str[:10] > last)
            df.loc[k, col] = last if name == "cm" else ""
        ae = out["ae"]
        kept = set(zip(ae["USUBJID"], ae["AESEQ"].astype(int).astype(str)))
        sa = out["suppae"]
        out["suppae"] = sa[[(a, b) in kept for a, b in zip(sa["USUBJID"], sa["IDVARVAL"])]].reset_index(drop=True)

    def _kinetics_and_markers(self, out: dict[str, pd.DataFrame], rng: np.random.Generator, plan: dict) -> None:
        """PC (CAR expansion with a peak that rises with the CRS grade) and the immune marker of the product."""
        studyid = self.spec["studyid"]
        s = self.s
        ae = out["ae"]
        crs = ae[ae["AEDECOD"] == CRS_TERM[0]].assign(g=lambda d: pd.to_numeric(d["AETOXGR"], errors="coerce"))
        crs_max = crs.groupby("USUBJID")["g"].max().to_dict()
        dm = out["dm"]
        death = dict(zip(dm["USUBJID"], dm["DTHDTC"]))
        k = plan["kinetics"]
        pc_rows, lb_rows = [], []
        end = self.end_day()
        for i in np.flatnonzero(s["infused"].to_numpy()):
            u = s.loc[i, "usubjid"]
            inf = s.loc[i, "inf_date"]
            inf = np.datetime64(inf, "D")
            last = int(end[i])
            if death.get(u):
                last = min(last, int((np.datetime64(death[u]) - inf).astype(int)))
            g = int(crs_max.get(u, 0))
            peak = 10 ** (k["log_peak"] + k["per_grade"] * g + rng.normal(0, 0.2))
            tmax = int(rng.choice([7, 10, 14] if g < 2 else [7, 10]))
            for seq, day in enumerate(d for d in k["days"] if d <= last):
                if day == 0:
                    v = 0.0
                elif day <= tmax:
                    v = peak * (day / tmax) ** 2
                elif day <= 28:
                    v = peak * 0.5 ** ((day - tmax) / k["half_life_early"])
                else:
                    v = peak * 0.5 ** ((28 - tmax) / k["half_life_early"]) * 0.5 ** ((day - 28) / k["half_life_late"])
                v *= float(np.exp(rng.normal(0, 0.1)))
                blq = v < k["lloq"]
                txt = "BLQ" if blq else f"{v:.4g}"
                pc_rows.append(dict(STUDYID=studyid, DOMAIN="PC", USUBJID=u, PCSEQ=float(seq + 1), PCTESTCD=k["testcd"],
                                    PCTEST=k["test"], PCORRES=txt, PCORRESU=k["unit"], PCSTRESC=txt,
                                    PCSTRESN=np.nan if blq else float(f"{v:.4g}"), PCSTRESU=k["unit"], PCLLOQ=float(k["lloq"]),
                                    PCSPEC="BLOOD", VISIT=f"DAY {day}",
                                    PCDTC=str(inf + np.timedelta64(day, "D")) + ("T07:30" if day == 0 else "")))
            m = plan["marker"]
            lbseq = float(pd.to_numeric(out["lb"].loc[out["lb"]["USUBJID"] == u, "LBSEQ"]).max())
            recovers = rng.random() < m["p_recover"]
            for day in (d for d in m["days"] if d <= last):
                if day <= 0:
                    v = m["baseline"] * float(np.exp(rng.normal(0, 0.15)))
                elif recovers and day >= m["recovery_day"]:
                    v = m["baseline"] * 0.6 * float(np.exp(rng.normal(0, 0.15)))
                else:
                    v = m["depleted"] * float(np.exp(rng.normal(0, 0.3)))
                lbseq += 1
                txt = f"{v:.3f}"
                lb_rows.append(dict(STUDYID=studyid, DOMAIN="LB", USUBJID=u, LBSEQ=lbseq, LBTESTCD=m["testcd"],
                                    LBTEST=m["test"], LBCAT="IMMUNOLOGY", LBSPEC="BLOOD", LBORRES=txt, LBORRESU="10^9/L",
                                    LBORNRLO=f"{m['lln']:g}", LBORNRHI=f"{m['uln']:g}", LBSTRESC=txt, LBSTRESN=float(txt),
                                    LBSTRESU="10^9/L", LBSTNRLO=m["lln"], LBSTNRHI=m["uln"],
                                    LBNRIND="LOW" if float(txt) < m["lln"] else "NORMAL", LBBLFL="Y" if day == 0 else "",
                                    VISIT="SCREENING" if day < 0 else f"DAY {day}",
                                    LBDTC=str(inf + np.timedelta64(day, "D")), LBDY=float(self._dy(np.array([day]))[0])))
        out["pc"] = pd.DataFrame(pc_rows)
        lb = out["lb"]
        new = pd.DataFrame(lb_rows)
        for c in lb.columns:
            if c not in new:
                new[c] = ""
        out["lb"] = pd.concat([lb, new[lb.columns]], ignore_index=True)

    def _dy(self, day: np.ndarray) -> np.ndarray:
        """SDTM study day with reference start = first lymphodepletion dose (RFSTDTC = day -5): no day 0."""
        rel = np.asarray(day) + 5
        return np.where(rel >= 0, rel + 1, rel).astype(float)

    def _lb_frame(self, lb: pd.DataFrame) -> pd.DataFrame:
        s, spec = self.s, self.spec
        studyid = spec["studyid"]
        inf_date = s["inf_date"].to_numpy().astype("datetime64[D]")
        sid = lb["sid"].to_numpy()
        test = lb["test"].to_numpy()
        tcat = pd.Series(pd.Categorical(test, categories=LAB_CODES))
        attr = lambda a: tcat.map({c: LAB_TESTS[c][a] for c in LAB_CODES}).to_numpy(dtype=object)
        dp = tcat.map({c: LAB_TESTS[c]["dp"] for c in LAB_CODES}).to_numpy(dtype=int)
        val = lb["value"].to_numpy()
        rounded = np.empty(len(val))
        res_txt = np.empty(len(val), dtype=object)
        for p in np.unique(dp):  # vectorised per number of decimals
            m = dp == p
            rounded[m] = np.round(val[m], int(p))
            res_txt[m] = np.char.mod(f"%.{int(p)}f", rounded[m])
        lln, uln = lb["lln"].to_numpy(), lb["uln"].to_numpy()
        nrind = np.where(rounded < lln, "LOW", np.where(rounded > uln, "HIGH", "NORMAL"))
        unit = attr("unit")
        stresn = rounded.astype(float)
        censored = (test == "NEUT") & (val < 0.1)
        res_txt = np.where(censored, "<0.1", res_txt)
        stresn = np.where(censored, np.nan, stresn)
        nrind = np.where(censored, "LOW", nrind)
        day = lb["day"].to_numpy()
        date = _iso(inf_date[sid], day)
        # days 0-14: drawn at 07:30, before the 10:00 infusion on day 0
        dtc = np.where((day >= 0) & (day <= 14), np.char.add(date.astype(str), "T07:30"), date)
        # baseline: the last pre-infusion record of each subject and test
        pre = pd.Series(np.where(day <= 0, day, -10 ** 6))
        last_pre = pre.groupby([sid, test]).transform("max").to_numpy()
        blfl = np.where((day <= 0) & (day == last_pre), "Y", "")
        visit = lb["visit"].to_numpy()
        ornrlo = lln.astype(object)
        ornrhi = uln.astype(object)
        orres = res_txt.copy()
        orresu = unit.copy().astype(object)
        stresu = unit.copy().astype(object)
        stnrlo = lln.astype(float)
        stnrhi = uln.astype(float)
        stresc = res_txt.copy()
        spec_, cat, name = attr("spec"), attr("cat"), attr("name")
        fmt_g = lambda x: pd.Series(x).map({u: f"{u:g}" for u in np.unique(x)}).to_numpy(dtype=object)
        df = pd.DataFrame({
            "STUDYID": studyid, "DOMAIN": "LB", "USUBJID": s["usubjid"].to_numpy()[sid], "LBSEQ": 0.0,
            "LBTESTCD": test, "LBTEST": name, "LBCAT": cat, "LBSPEC": spec_,
            "LBORRES": orres, "LBORRESU": orresu, "LBORNRLO": fmt_g(lln), "LBORNRHI": fmt_g(uln),
            "LBSTRESC": stresc, "LBSTRESN": stresn, "LBSTRESU": stresu, "LBSTNRLO": stnrlo, "LBSTNRHI": stnrhi,
            "LBNRIND": nrind, "LBBLFL": blfl, "VISIT": visit, "LBDTC": dtc, "LBDY": self._dy(day),
        })
        if self.planted and self.key == "car_itnk":
            # a site laboratory reporting conventional units only (no standardised result)
            i = self.sid("019")
            conv = {"BILI": ("mg/dL", 1 / 17.1, 2), "HGB": ("g/dL", 0.1, 1)}
            m = (sid == i) & np.isin(lb["visit"].to_numpy(), ["DAY 21", "DAY 28"]) & np.isin(test, list(conv))
            for k in np.flatnonzero(m):
                u, f, p = conv[test[k]]
                df.loc[k, ["LBORRES", "LBORRESU", "LBORNRLO", "LBORNRHI"]] = [
                    f"{rounded[k] * f:.{p}f}", u, f"{lln[k] * f:.{p}f}", f"{uln[k] * f:.{p}f}"]
                df.loc[k, ["LBSTRESC", "LBSTRESU"]] = ["", ""]
                df.loc[k, ["LBSTRESN", "LBSTNRLO", "LBSTNRHI"]] = [np.nan, np.nan, np.nan]
            # one urine glucose: must never be graded as hypoglycaemia
            j = self.sid("004")
            k = np.flatnonzero((sid == j) & (day == 28) & (test == "GLUC"))
            if len(k):
                extra = df.loc[k].copy()
                extra[["LBSPEC", "LBCAT", "LBORRES", "LBSTRESC", "LBSTRESN", "LBSTNRLO", "LBSTNRHI", "LBORNRLO", "LBORNRHI", "LBNRIND", "LBBLFL"]] = \
                    ["URINE", "URINALYSIS", "0.3", "0.3", 0.3, 0.0, 0.8, "0", "0.8", "NORMAL", ""]
                df = pd.concat([df, extra], ignore_index=True)
        df = df.sort_values(["USUBJID", "LBDTC", "LBTESTCD", "LBSPEC"], kind="stable").reset_index(drop=True)
        df["LBSEQ"] = (df.groupby("USUBJID").cumcount() + 1).astype(float)
        return df

    def _no_bedside(self, sid) -> np.ndarray:
        """True for rows of subjects whose CRS is known only from the reported AE (``no_crs_assessments``)."""
        return np.isin(self.s["subjid"].to_numpy()[np.asarray(sid, int)], list(self.no_crs_assessments))

    def _vs_frame(self, vis: pd.DataFrame, crs_grid: pd.DataFrame) -> pd.DataFrame:
        s, rng = self.s, self.rng
        studyid = self.spec["studyid"]
        inf_date = s["inf_date"].to_numpy().astype("datetime64[D]")
        v = vis[vis["visit"] != "UNSCHEDULED"].drop_duplicates(["sid", "visit"]).reset_index(drop=True)
        v = v.merge(crs_grid[["sid", "day", "temp", "hyp", "oxy"]], on=["sid", "day"], how="left")
        m = len(v)
        temp = v["temp"].fillna(pd.Series(rng.uniform(36.3, 37.2, m))).to_numpy()
        hyp = v["hyp"].fillna(False).to_numpy().astype(bool)
        oxy = v["oxy"].fillna("NONE").to_numpy()
        sbp = np.where(hyp, rng.integers(78, 89, m), rng.integers(105, 140, m))
        dbp = np.where(hyp, rng.integers(42, 55, m), rng.integers(62, 88, m))
        pulse = np.where(temp >= 38, rng.integers(100, 130, m), rng.integers(64, 96, m))
        spo2 = np.where(oxy != "NONE", rng.integers(90, 95, m), rng.integers(95, 100, m))
        tests = [("TEMP", "Temperature", temp.round(1), "C"), ("SYSBP", "Systolic Blood Pressure", sbp, "mmHg"),
                 ("DIABP", "Diastolic Blood Pressure", dbp, "mmHg"), ("PULSE", "Pulse Rate", pulse, "beats/min"),
                 ("OXYSAT", "Oxygen Saturation", spo2, "%")]
        rows = [pd.DataFrame({"sid": v["sid"], "day": v["day"], "visit": v["visit"], "cd": cd, "name": nm,
                              "val": np.asarray(x, float), "unit": u}) for cd, nm, x, u in tests]
        scr = v[v["visit"] == "SCREENING"]
        sidx = scr["sid"].to_numpy()
        ecog = s["ecog"].to_numpy()[sidx].astype(float)
        lvef = s["lvef"].to_numpy()[sidx].astype(float)
        spo2_s = s["oxysat"].to_numpy()[sidx].astype(float)
        for (sj, cd), val in self.vs_edits.items():
            k = np.flatnonzero(s["subjid"].to_numpy()[sidx] == sj)
            (ecog if cd == "ECOG" else lvef)[k] = val
        rows = [r[r["visit"] != "SCREENING"] if r["cd"].iloc[0] == "OXYSAT" else r for r in rows if len(r)]
        for cd, nm, x, u in (("ECOG", "ECOG Performance Status", ecog, ""), ("LVEF", "Left Ventricular Ejection Fraction", lvef, "%"),
                             ("OXYSAT", "Oxygen Saturation", spo2_s, "%"), ("WEIGHT", "Weight", s["weight"].to_numpy()[sidx], "kg"),
                             ("HEIGHT", "Height", s["height"].to_numpy()[sidx], "cm")):
            rows.append(pd.DataFrame({"sid": sidx, "day": scr["day"].to_numpy(), "visit": "SCREENING", "cd": cd, "name": nm,
                                      "val": np.asarray(x, float), "unit": u}))
        later = v[v["visit"].isin(["DAY 28", "MONTH 3", "MONTH 6", "MONTH 12"])]
        rows.append(pd.DataFrame({"sid": later["sid"], "day": later["day"], "visit": later["visit"], "cd": "ECOG",
                                  "name": "ECOG Performance Status", "val": s["ecog"].to_numpy()[later["sid"]].astype(float), "unit": ""}))
        x = pd.concat(rows, ignore_index=True).sort_values(["sid", "day", "cd"], kind="stable").reset_index(drop=True)
        # subjects whose CRS is known only from the AE: no post-infusion vitals delivered (ingest would build CRS
        # assessments from them, safety/ingest/sdtm_assessments.py)
        x = x[~(self._no_bedside(x["sid"].to_numpy()) & (x["day"].to_numpy() >= 0)
                & x["cd"].isin(["TEMP", "SYSBP", "DIABP", "PULSE", "OXYSAT"]).to_numpy())].reset_index(drop=True)
        sid = x["sid"].to_numpy()
        day = x["day"].to_numpy()
        pre = pd.Series(np.where(day <= 0, day, -10 ** 6))
        last_pre = pre.groupby([sid, x["cd"].to_numpy()]).transform("max").to_numpy()
        txt = np.array([f"{a:g}" for a in x["val"]], dtype=object)
        return pd.DataFrame({
            "STUDYID": studyid, "DOMAIN": "VS", "USUBJID": s["usubjid"].to_numpy()[sid],
            "VSSEQ": (x.groupby("sid").cumcount().to_numpy() + 1).astype(float), "VSTESTCD": x["cd"], "VSTEST": x["name"],
            "VSORRES": txt, "VSORRESU": x["unit"], "VSSTRESC": txt, "VSSTRESN": x["val"], "VSSTRESU": x["unit"],
            "VSBLFL": np.where((day <= 0) & (day == last_pre), "Y", ""), "VISIT": x["visit"],
            "VSDTC": _iso(inf_date[sid], day), "VSDY": self._dy(day),
        })

    def _rs_frame(self) -> pd.DataFrame:
        s, rng = self.s, self.rng
        inf_date = s["inf_date"].to_numpy().astype("datetime64[D]")
        end = self.end_day()
        b_all = s["diagnosis"].str.contains("leukaemia").to_numpy()
        rows = []
        for i in np.flatnonzero(s["infused"].to_numpy()):
            best = s.loc[i, "best_resp"]
            pd_day = int(s.loc[i, "event_day"]) if s.loc[i, "outcome"] == "PD" else 10 ** 6
            for k, (vname, d) in enumerate(RESPONSE_VISITS):
                d = d + int(rng.integers(-2, 3)) if d > 28 else d
                if d > end[i] or d >= pd_day:
                    break
                if b_all[i]:  # leukaemia: CR with incomplete count recovery first
                    r = {"CR": "CRI" if k == 0 else "CR", "PR": "CRI", "SD": "SD"}[best]
                else:
                    r = {"CR": "PR" if k == 0 else "CR", "PR": "PR", "SD": "SD"}[best]
                rows.append((i, vname, d, r))
            if pd_day <= end[i]:
                rows.append((i, "UNSCHEDULED", pd_day, "PD"))
        r = pd.DataFrame(rows, columns=["sid", "visit", "day", "resp"]).sort_values(["sid", "day"], kind="stable")
        sid = r["sid"].to_numpy()
        return pd.DataFrame({
            "STUDYID": self.spec["studyid"], "DOMAIN": "RS", "USUBJID": s["usubjid"].to_numpy()[sid],
            "RSSEQ": (r.groupby("sid").cumcount().to_numpy() + 1).astype(float), "RSTESTCD": "OVRLRESP",
            "RSTEST": "Overall Response", "RSORRES": r["resp"].to_numpy(), "RSSTRESC": r["resp"].to_numpy(),
            "RSEVAL": "INVESTIGATOR", "VISIT": r["visit"].to_numpy(), "RSDTC": _iso(inf_date[sid], r["day"].to_numpy()),
            "RSDY": self._dy(r["day"].to_numpy()),
        })


# --------------------------------------------------------------------------------------------------
# The plain-SDTM twin: the same simulated study delivered without the celltox assessment files
# --------------------------------------------------------------------------------------------------
SDTM_TWIN = dict(of="car_itnk", folder="twins/car_itnk_sdtm", studyid="ITNK-B-01-SDTM", seed=SEED + 16)
# how each site delivers what the bedside files hold (variety a real programme meets)
TWIN_O2_DEVICE_TEXT = {"LOW_FLOW_NC": "NASAL CANNULA", "HIGH_FLOW_NC": "HIGH FLOW NASAL CANNULA", "FACEMASK": "FACE MASK",
                       "BLOW_BY": "BLOW-BY", "NONREBREATHER": "NON-REBREATHER MASK", "VENTURI": "VENTURI MASK"}
TWIN_O2_PROCEDURE = {"CPAP": "Continuous positive airway pressure", "BIPAP": "Bilevel positive airway pressure",
                     "MECHANICAL_VENTILATION": "Invasive mechanical ventilation"}
TWIN_CONSCIOUSNESS_TEXT = {"AWAKE": "AWAKE", "AWAKENS_SPONTANEOUSLY": "AWAKENS SPONTANEOUSLY",
                           "AWAKENS_TO_VOICE": "AWAKENS TO VOICE", "AWAKENS_TO_TACTILE": "AWAKENS ONLY TO TACTILE STIMULUS",
                           "UNAROUSABLE": "UNAROUSABLE", "SEDATED": "SEDATED/INTUBATED"}
TWIN_VITALS_AT_ASSESSMENT = ("TEMP", "SYSBP", "DIABP", "PULSE", "OXYSAT")


def _runs(df: pd.DataFrame, key: list[str]) -> pd.Series:
    """Run number over consecutive rows (per subject) with the same values of ``key``."""
    change = (df[key] != df[key].shift()).any(axis=1) | (df["USUBJID"] != df["USUBJID"].shift())
    return change.cumsum()


def _shift_time(dtc: pd.Series, hours: int) -> np.ndarray:
    t = pd.to_datetime(dtc, format="%Y-%m-%dT%H:%M") + pd.Timedelta(hours=hours)
    return t.dt.strftime("%Y-%m-%dT%H:%M").to_numpy()


def sdtm_twin(doms: dict[str, pd.DataFrame], spec: dict) -> dict[str, pd.DataFrame]:
    """The study as plain SDTM: the bedside CRS/ICANS records re-expressed in VS, CM, SUPPCM, PR, QS, FA and CE.

    The oxygen device is given in turn as a SUPPCM qualifier (O2DEV), in CMTRT ("Oxygen via nasal cannula") and
    in CMDOSFRM. Site 01 gives ICE as its ten items, sites 02 and 03 the total; site 03 records temperature in
    Fahrenheit and the level of consciousness and seizure checks in FA, site 02 seizure checks in CE. celltox must
    grade the twin exactly as the study with the celltox files.
    """
    rng = np.random.default_rng(SDTM_TWIN["seed"])
    old, new = spec["studyid"], SDTM_TWIN["studyid"]
    crs = doms["crs_assessments"].copy()
    icans = doms["icans_assessments"].copy()
    for df in (crs, icans):
        df["site"] = df["USUBJID"].str[len(old) + 1:len(old) + 3]
    crs["date"] = crs["CRSDTC"].str[:10]
    if (icans[["SEIZURE", "MOTOR_WEAKNESS", "CEREBRAL_EDEMA"]] != "NONE").any(axis=None):
        raise SystemExit("sdtm_twin: the twin does not express seizures, motor weakness or oedema yet")
    out = {k: v.copy() for k, v in doms.items() if k not in ("crs_assessments", "icans_assessments")}

    # VS: the vital signs of an assessment day carry the assessment's time; days without vitals get them
    vs = out["vs"]
    at = crs.set_index(["USUBJID", "date"])["CRSDTC"]
    key = pd.MultiIndex.from_arrays([vs["USUBJID"], vs["VSDTC"].str[:10]])
    on_day = vs["VSTESTCD"].isin(TWIN_VITALS_AT_ASSESSMENT).to_numpy() & key.isin(at.index)
    vs.loc[on_day, "VSDTC"] = at.reindex(key[on_day]).to_numpy()
    have = set(zip(vs.loc[vs["VSTESTCD"] == "TEMP", "USUBJID"], vs.loc[vs["VSTESTCD"] == "TEMP", "VSDTC"]))
    miss = crs[[(u, d) not in have for u, d in zip(crs["USUBJID"], crs["CRSDTC"])]]
    hyp_m = (miss["HYPOTENSION"] == "Y").to_numpy()
    sbp = np.where(hyp_m, rng.integers(78, 89, len(miss)), rng.integers(105, 140, len(miss))).astype(float)
    add = []
    for cd, name, val, unit in (("TEMP", "Temperature", miss["TEMP_C"].to_numpy(float), "C"),
                                ("SYSBP", "Systolic Blood Pressure", sbp, "mmHg")):
        txt = np.array([f"{x:g}" for x in val], dtype=object)
        add.append(pd.DataFrame({"STUDYID": old, "DOMAIN": "VS", "USUBJID": miss["USUBJID"].to_numpy(), "VSSEQ": 0.0,
                                 "VSTESTCD": cd, "VSTEST": name, "VSORRES": txt, "VSORRESU": unit, "VSSTRESC": txt,
                                 "VSSTRESN": val, "VSSTRESU": unit, "VSBLFL": "", "VISIT": "UNSCHEDULED",
                                 "VSDTC": miss["CRSDTC"].to_numpy(), "VSDY": np.nan}))
    vs = pd.concat([vs] + add, ignore_index=True)
    # the twin must say what the bedside record says: the same temperature, SBP < 90 exactly when hypotensive
    chk = crs.merge(vs[vs["VSTESTCD"] == "TEMP"][["USUBJID", "VSDTC", "VSSTRESN"]], left_on=["USUBJID", "CRSDTC"],
                    right_on=["USUBJID", "VSDTC"], how="left")
    assert len(chk) == len(crs) and np.allclose(chk["VSSTRESN"], chk["TEMP_C"]), "twin VS temperatures"
    chk = crs.merge(vs[vs["VSTESTCD"] == "SYSBP"][["USUBJID", "VSDTC", "VSSTRESN"]], left_on=["USUBJID", "CRSDTC"],
                    right_on=["USUBJID", "VSDTC"], how="left")
    assert len(chk) == len(crs) and ((chk["VSSTRESN"] < 90) == (chk["HYPOTENSION"] == "Y")).all(), "twin VS hypotension"
    # site 03 measures temperature in Fahrenheit and delivers it as collected (two decimals: an exact round trip)
    f = (vs["VSTESTCD"] == "TEMP").to_numpy() & (vs["USUBJID"].str[len(old) + 1:len(old) + 3] == "03").to_numpy()
    vs.loc[f, "VSORRES"] = [f"{x * 9 / 5 + 32:.2f}" for x in vs.loc[f, "VSSTRESN"]]
    vs.loc[f, ["VSORRESU", "VSSTRESC", "VSSTRESU"]] = ["F", "", ""]
    vs.loc[f, "VSSTRESN"] = np.nan
    vs = vs.sort_values(["USUBJID", "VSDTC", "VSTESTCD"], kind="stable").reset_index(drop=True)
    vs["VSSEQ"] = (vs.groupby("USUBJID").cumcount() + 1).astype(float)
    out["vs"] = vs

    # CM: oxygen, one record per run of the same device and flow, from 2 h before its first assessment to its last;
    # a second vasopressor (epinephrine) where the bedside record counts two
    crs = crs.sort_values(["USUBJID", "CRSDTC"], kind="stable").reset_index(drop=True)
    crs["flow"] = crs["O2_FLOW_LMIN"].fillna(-1)
    crs["run"] = _runs(crs, ["OXYGEN", "flow"])
    o2 = crs[crs["OXYGEN"] != "NONE"].groupby("run").agg(
        USUBJID=("USUBJID", "first"), site=("site", "first"), device=("OXYGEN", "first"), flow=("O2_FLOW_LMIN", "first"),
        first=("CRSDTC", "first"), last=("CRSDTC", "last")).reset_index(drop=True)
    cm_new, pr_new, supp = [], [], []
    for k, r in enumerate(o2.itertuples()):
        start, end = _shift_time(pd.Series([r.first]), -2)[0], r.last
        if r.device in TWIN_O2_PROCEDURE:
            pr_new.append(dict(USUBJID=r.USUBJID, PRTRT=TWIN_O2_PROCEDURE[r.device], PRCAT="RESPIRATORY SUPPORT",
                               PRINDC="Hypoxia", PRDOSE=np.nan, PRDOSU="", PRSTDTC=start, PRENDTC=end))
            continue
        dev = TWIN_O2_DEVICE_TEXT[r.device]
        rec = dict(USUBJID=r.USUBJID, CMTRT="Oxygen", CMDECOD="OXYGEN", CMCAT="SUPPORTIVE", CMINDC="Hypoxia",
                   CMDOSE=r.flow, CMDOSU="L/min" if not np.isnan(r.flow) else "", CMDOSFRM="GAS",
                   CMROUTE="RESPIRATORY (INHALATION)", CMSTDTC=start, CMENDTC=end, o2dev="")
        if k % 3 == 0:
            rec["o2dev"] = dev
        elif k % 3 == 1:
            rec["CMTRT"] = f"Oxygen via {dev.lower()}"
        else:
            rec["CMDOSFRM"] = dev
        cm_new.append(rec)
    crs["two"] = crs["VASOPRESSORS"] >= 2
    crs["run2"] = _runs(crs, ["two"])
    for _, g in crs[crs["two"]].groupby("run2"):
        cm_new.append(dict(USUBJID=g["USUBJID"].iloc[0], CMTRT="Epinephrine", CMDECOD="EPINEPHRINE",
                           CMCAT="CRS MANAGEMENT", CMINDC="Hypotension", CMDOSE=np.nan, CMDOSU="",
                           CMDOSFRM="", CMROUTE="INTRAVENOUS", CMSTDTC=g["date"].iloc[0], CMENDTC=g["date"].iloc[-1], o2dev=""))
    cm = out["cm"].assign(CMDOSFRM="", o2dev="")
    if cm_new:
        cm = pd.concat([cm, pd.DataFrame(cm_new).assign(STUDYID=old, DOMAIN="CM")], ignore_index=True)
    cm = cm.sort_values(["USUBJID", "CMSTDTC", "CMTRT"], kind="stable").reset_index(drop=True)
    cm["CMSEQ"] = (cm.groupby("USUBJID").cumcount() + 1).astype(float)
    q = cm["o2dev"] != ""
    out["suppcm"] = pd.DataFrame({"STUDYID": old, "RDOMAIN": "CM", "USUBJID": cm.loc[q, "USUBJID"], "IDVAR": "CMSEQ",
                                  "IDVARVAL": cm.loc[q, "CMSEQ"].map(lambda x: f"{x:g}"), "QNAM": "O2DEV",
                                  "QLABEL": "Oxygen Delivery Device", "QVAL": cm.loc[q, "o2dev"], "QORIG": "CRF", "QEVAL": ""})
    out["cm"] = cm.drop(columns=["o2dev"])

    # PR: respiratory support beyond oxygen (none in this study so far) and the bone marrow aspirations of the
    # leukaemia response assessments, which the mapping must leave alone
    rs = out["rs"]
    bm = rs[rs["VISIT"].isin(["MONTH 1", "MONTH 3"]) & rs["RSSTRESC"].isin(["CRI", "CR"])]
    for r in bm.itertuples():
        pr_new.append(dict(USUBJID=r.USUBJID, PRTRT="Bone marrow aspiration", PRCAT="DISEASE ASSESSMENT",
                           PRINDC="Response assessment", PRDOSE=np.nan, PRDOSU="", PRSTDTC=r.RSDTC, PRENDTC=r.RSDTC))
    pr = pd.DataFrame(pr_new).sort_values(["USUBJID", "PRSTDTC"], kind="stable").reset_index(drop=True)
    pr.insert(0, "STUDYID", old)
    pr.insert(1, "DOMAIN", "PR")
    pr.insert(3, "PRSEQ", (pr.groupby("USUBJID").cumcount() + 1).astype(float))
    out["pr"] = pr

    # QS: ICE as ten items (site 01) or a total (sites 02, 03); "not done" as QSSTAT; consciousness in QS or FA
    qs, fa, ce = [], [], []
    items = [("ICE01", "Orientation to year"), ("ICE02", "Orientation to month"), ("ICE03", "Orientation to city"),
             ("ICE04", "Orientation to hospital"), ("ICE05", "Names object 1"), ("ICE06", "Names object 2"),
             ("ICE07", "Names object 3"), ("ICE08", "Follows commands"), ("ICE09", "Writes a standard sentence"),
             ("ICE10", "Counts backwards from 100 by 10")]
    for r in icans.itertuples():
        base = dict(USUBJID=r.USUBJID, QSCAT="ICE", QSDTC=r.ICANSDTC)
        capd = float(r.CAPD_SCORE) if r.CAPD_SCORE == r.CAPD_SCORE and r.CAPD_SCORE != "" else np.nan
        if not np.isnan(capd):  # a child: CAPD instead of ICE
            qs.append(dict(base, QSCAT="CAPD", QSTESTCD="CAPDTOT", QSTEST="CAPD Total Score", QSORRES=f"{capd:g}",
                           QSSTRESN=capd, QSSTAT=""))
        elif np.isnan(r.ICE_SCORE):
            qs.append(dict(base, QSTESTCD="ICETOT", QSTEST="ICE Total Score", QSORRES="", QSSTRESN=np.nan, QSSTAT="NOT DONE"))
        elif r.site == "01":
            ones = set(rng.permutation(10)[:int(r.ICE_SCORE)])
            for k, (cd, nm) in enumerate(items):
                v = 1.0 if k in ones else 0.0
                qs.append(dict(base, QSTESTCD=cd, QSTEST=nm, QSORRES=f"{v:g}", QSSTRESN=v, QSSTAT=""))
        else:
            qs.append(dict(base, QSTESTCD="ICETOT", QSTEST="ICE Total Score", QSORRES=f"{r.ICE_SCORE:g}",
                           QSSTRESN=float(r.ICE_SCORE), QSSTAT=""))
        loc = TWIN_CONSCIOUSNESS_TEXT[r.CONSCIOUSNESS]
        if r.site == "03":
            fa.append(dict(USUBJID=r.USUBJID, FATESTCD="LOC", FATEST="Level of Consciousness", FAOBJ="NEUROLOGICAL STATUS",
                           FACAT="ICANS", FAORRES=loc, FASTRESC=loc, FADTC=r.ICANSDTC))
            fa.append(dict(USUBJID=r.USUBJID, FATESTCD="OCCUR", FATEST="Occurrence Indicator", FAOBJ="SEIZURE",
                           FACAT="ICANS", FAORRES="N", FASTRESC="N", FADTC=r.ICANSDTC))
        else:
            qs.append(dict(base, QSCAT="ICANS", QSTESTCD="LOC", QSTEST="Level of Consciousness", QSORRES=loc,
                           QSSTRESN=np.nan, QSSTAT=""))
        if r.site == "02":
            ce.append(dict(USUBJID=r.USUBJID, CETERM="Seizure", CEDECOD="Seizure", CECAT="ICANS", CEOCCUR="N",
                           CESTDTC=r.ICANSDTC[:10]))
    for name, rows, seq, dtc in (("qs", qs, "QSSEQ", "QSDTC"), ("fa", fa, "FASEQ", "FADTC"), ("ce", ce, "CESEQ", "CESTDTC")):
        df = pd.DataFrame(rows).sort_values(["USUBJID", dtc], kind="stable").reset_index(drop=True)
        df.insert(0, "STUDYID", old)
        df.insert(1, "DOMAIN", name.upper())
        df.insert(3, seq, (df.groupby("USUBJID").cumcount() + 1).astype(float))
        out[name] = df

    # the twin's own study identifier, so both deliveries can live in one database
    for df in out.values():
        if "STUDYID" in df.columns:
            df["STUDYID"] = new
        if "USUBJID" in df.columns:
            df["USUBJID"] = new + df["USUBJID"].str[len(old):]
    return out


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------
_XPT_STAMP = re.compile(rb"\d\d[A-Z]{3}\d\d:\d\d:\d\d:\d\d")
_FIXED_STAMP = b"01JAN26:00:00:00"


def write_xpt(df: pd.DataFrame, path: Path, name: str) -> None:
    """SAS transport v5, with the creation/modification stamps fixed so reruns are byte-identical."""
    import pyreadstat

    df = df.copy()
    for c in df.columns:
        if df[c].dtype == object or pd.api.types.is_string_dtype(df[c]):
            df[c] = df[c].fillna("").astype(str)
    pyreadstat.write_xport(df, str(path), table_name=name.upper()[:8], file_format_version=5,
                           file_label=f"{name.upper()} domain")
    raw = path.read_bytes()
    head_end = raw.find(b"HEADER RECORD*******OBS")
    head = _XPT_STAMP.sub(_FIXED_STAMP, raw[:head_end])
    path.write_bytes(head + raw[head_end:])


def write_csv(df: pd.DataFrame, path: Path) -> None:
    df.to_csv(path, index=False, lineterminator="\n", float_format="%.10g", encoding="utf-8")


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = {c: pa.array(df[c].to_numpy(), type=pa.string() if df[c].dtype == object else None, from_pandas=True)
            for c in df.columns}
    pq.write_table(pa.table(cols), path, compression="zstd")


def write_domain(df: pd.DataFrame, folder: Path, name: str, fmt: str) -> Path:
    path = folder / f"{name}.{fmt}"
    if fmt == "xpt":
        write_xpt(df, path, name)
    elif fmt == "csv":
        write_csv(df, path)
    else:
        write_parquet(df, path)
    return path


def study_yaml(spec: dict) -> str:
    """study.yaml text (written by hand-formatted template so it reads well and never changes order)."""
    sr = spec["stopping_rule"]
    sr_lines = "\n".join(f"  {k}: {v}" for k, v in sr.items())
    sites = "\n".join(f'  "{k}": "{v}"' for k, v in spec["sites"].items())
    cuts = "\n".join(f"  - {c}" for c in spec["data_cuts"])
    return f"""# Protocol settings read by celltox (see docs/input-format.md). Generated by sample_data/generate.py.
studyid: {spec['studyid']}
title: "{spec['title']}"
product: "{spec['product']}"
product_type: {spec['product_type']}
ctcae_version: "5.0"
crs_grading: ASTCT 2019
icans_grading: ASTCT 2019
sites:
{sites}
data_cuts:
{cuts}
dlt:
  window:
    start_day: 0
    end_day: 28
stopping_rule:
{sr_lines}
eligibility:
  age:
    min: {spec.get('age_min', 18)}
    max: 70
  labs:
    - {{test: ALT, max_x_uln: 3, inclusive: false, label: "ALT < 3 x ULN"}}
    - {{test: AST, max_x_uln: 3, inclusive: false, label: "AST < 3 x ULN"}}
    - {{test: BILI, max: 34.2, inclusive: true, label: "Total bilirubin <= 34.2 umol/L"}}
    - {{test: CREAT, max: 220, inclusive: false, label: "Creatinine < 220 umol/L"}}
  vitals:
    - {{test: OXYSAT, min: 95, inclusive: true, label: "SpO2 >= 95 % on room air"}}
    - {{test: LVEF, min: 40, inclusive: true, label: "LVEF >= 40 %"}}
    - {{test: ECOG, max: 2, inclusive: true, label: "ECOG <= 2"}}
{spec.get('outcomes_yaml', '')}"""


def write_study(key: str, spec: dict, out: Path, rng: np.random.Generator, fmt: str | None = None,
                n: int | None = None, planted: bool = True, ae_rate: float = 6.0) -> Path:
    """Build one study and write its folder; returns the folder."""
    doms = Study(key, spec, rng, n=n, planted=planted, ae_rate=ae_rate).build()
    return write_frames(doms, spec, out, fmt or spec["fmt"])


def write_frames(doms: dict[str, pd.DataFrame], spec: dict, folder: Path, fmt: str) -> Path:
    """Write built domains (and study.yaml) into a clean folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():  # a clean folder: stale domains must not linger
        if old.is_file():
            old.unlink()
    for name, df in doms.items():
        if name == "lb" and spec.get("split_lb") and fmt != "csv":
            he = df["LBCAT"].isin(HAEM_FILE_CATS)
            write_domain(df[he].reset_index(drop=True), folder, "lbhe", fmt)
            write_domain(df[~he].reset_index(drop=True), folder, "lbch", fmt)
        elif name in ("crs_assessments", "icans_assessments") and fmt == "xpt":
            # XPT v5 names are limited to 8 characters (HYPOTENSION, O2_FLOW_LMIN, CONSCIOUSNESS ...)
            write_domain(df, folder, name, "parquet" if name == "crs_assessments" else "csv")
        else:
            write_domain(df, folder, name, fmt)
    (folder / "study.yaml").write_text(study_yaml(spec), encoding="utf-8")
    return folder


def generate_samples(out: Path) -> list[Path]:
    """The two committed sample studies, and the plain-SDTM twin of one of them (SDTM_TWIN)."""
    rng = np.random.default_rng(SEED)
    folders = []
    for key, spec in STUDIES.items():
        if key != SDTM_TWIN["of"]:
            folders.append(write_study(key, spec, out / key, rng))
            continue
        doms = Study(key, spec, rng).build()
        folders.append(write_frames(doms, spec, out / key, spec["fmt"]))
        twin_spec = dict(spec, studyid=SDTM_TWIN["studyid"], title=spec["title"] + " (plain SDTM delivery)")
        folders.append(write_frames(sdtm_twin(doms, spec), twin_spec, out / SDTM_TWIN["folder"], "csv"))
    return folders


def generate_scale(out: Path, n: int, fmt: str, ae_rate: float) -> Path:
    """One program-scale CAR-T study for benchmarks (no planted findings; same kinetics)."""
    rng = np.random.default_rng(SEED + n)
    spec = dict(STUDIES["car_itnk"])
    spec.update(studyid=f"SCALE-{n}", title=f"Program-scale synthetic CAR-T study ({n} subjects)", product="Synthetic CAR-T cells",
                product_type="CAR-T", n_subjects=n, sites={f"{i:02d}": f"Site {i:02d}" for i in range(1, 41)},
                data_cuts=["2027-12-31"], dose_levels={"DL1": 1.0, "DL2": 3.0})
    return write_study("scale", spec, out, rng, fmt=fmt, n=n, planted=False, ae_rate=ae_rate)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=None, help="output folder (default: sample_data/ for the two studies)")
    p.add_argument("--subjects", type=int, default=None, help="write one program-scale study with this many subjects")
    p.add_argument("--format", choices=["csv", "parquet", "xpt"], default="csv", help="file format for --subjects (default csv)")
    p.add_argument("--aes-per-subject", type=float, default=45.0, help="mean background AEs per subject for --subjects")
    a = p.parse_args(argv)
    if a.subjects:
        if a.out is None:
            p.error("--subjects needs --out DIR (program-scale data is never written into the repository)")
        folder = generate_scale(a.out, a.subjects, a.format, a.aes_per_subject)
        print(f"wrote {folder}")
        return 0
    for folder in generate_samples(a.out or HERE):
        print(f"wrote {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

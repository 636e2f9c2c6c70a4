"""Results delivered in conventional units are graded with CTCAE v5.0's own cut-offs in those units (its SI and
conventional cut-offs are not exact conversions of each other), through a real load."""
from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from safety.ingest import ingest_study
from test_ingest_fixtures import DOMAINS, STUDY_YAML, make_study

# (test, delivered value, unit, LLN, ULN, term, grade CTCAE gives in the delivered unit)
CASES = [
    ("CA", 8.0, "mg/dL", 8.5, 10.5, "Hypocalcemia", 1),        # <LLN - 8.0 mg/dL (1.996 mmol/L read 2 by SI)
    ("CA", 7.0, "mg/dL", 8.5, 10.5, "Hypocalcemia", 2),
    ("CA", 6.0, "mg/dL", 8.5, 10.5, "Hypocalcemia", 3),
    ("CA", 5.9, "mg/dL", 8.5, 10.5, "Hypocalcemia", 4),
    ("CA", 11.6, "mg/dL", 8.5, 10.5, "Hypercalcemia", 2),      # >11.5 - 12.5 mg/dL (2.894 mmol/L read 1 by SI)
    ("CA", 12.5, "mg/dL", 8.5, 10.5, "Hypercalcemia", 2),
    ("CA", 13.6, "mg/dL", 8.5, 10.5, "Hypercalcemia", 4),
    ("MG", 3.0, "mg/dL", 1.7, 2.4, "Hypermagnesemia", 1),      # >ULN - 3.0 mg/dL (1.234 mmol/L read 3 by SI)
    ("MG", 8.02, "mg/dL", 1.7, 2.4, "Hypermagnesemia", 4),
    ("MG", 1.2, "mg/dL", 1.7, 2.4, "Hypomagnesemia", 1),
    ("MG", 0.7, "mg/dL", 1.7, 2.4, "Hypomagnesemia", 3),
    ("GLUC", 30, "mg/dL", 70, 110, "Hypoglycemia", 3),         # <40 - 30 mg/dL (1.665 mmol/L read 4 by SI)
    ("GLUC", 54.5, "mg/dL", 70, 110, "Hypoglycemia", 2),
    ("CHOL", 300, "mg/dL", None, 200, "Cholesterol high", 1),
    ("TRIG", 151, "mg/dL", None, 150, "Hypertriglyceridemia", 1),
    ("TRIG", 1005, "mg/dL", None, 150, "Hypertriglyceridemia", 4),
    ("CA", 1.996, "mmol/L", 2.15, 2.55, "Hypocalcemia", 2),    # delivered in SI: the SI cut-offs (< 2.0)
    ("MG", 1.234, "mmol/L", 0.7, 1.0, "Hypermagnesemia", 3),   # > 1.23 mmol/L
    ("HGB", 6.2, "mmol/L", 8.5, 11.0, "Anemia", 1),            # <LLN - 6.2 mmol/L (99.91 g/L read 2 by SI)
    ("HGB", 6.1, "mmol/L", 8.5, 11.0, "Anemia", 2),
    ("HGB", 4.9, "mmol/L", 8.5, 11.0, "Anemia", 2),            # <6.2 - 4.9 mmol/L (78.96 g/L read 3 by SI)
    ("HGB", 4.95, "mmol/L", 8.5, 11.0, "Anemia", 2),
    ("HGB", 4.8, "mmol/L", 8.5, 11.0, "Anemia", 3),            # <4.9 mmol/L
    ("HGB", 12.2, "mmol/L", 8.5, 11.0, "Hemoglobin increased", 1),  # 1.2 mmol/L (19.3 g/L) above ULN
    ("HGB", 12.3, "mmol/L", 8.5, 11.0, "Hemoglobin increased", 2),  # 1.3 mmol/L (20.9 g/L): > 2 g/dL
    ("HGB", 13.5, "mmol/L", 8.5, 11.0, "Hemoglobin increased", 3),  # 2.5 mmol/L (40.3 g/L): > 4 g/dL
    ("HGB", 80, "g/L", 120, 160, "Anemia", 2),                 # delivered in SI: < 100 g/L, not < 80
    ("HGB", 7.9, "g/dL", 12, 16, "Anemia", 3),                 # g/dL and g/L cut-offs are exact conversions
]
# the units a test is delivered in whose CTCAE cut-offs are not exact conversions of the SI ones
CONVENTIONAL = {("CA", "mg/dL"), ("MG", "mg/dL"), ("GLUC", "mg/dL"), ("CHOL", "mg/dL"), ("TRIG", "mg/dL"),
                ("HGB", "mmol/L")}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("conv")
    n = len(CASES)
    lb = pd.DataFrame({
        "STUDYID": "CT-TEST-01", "USUBJID": "S-001", "LBSEQ": list(range(1, n + 1)),
        "LBTESTCD": [c[0] for c in CASES], "LBTEST": [c[0] for c in CASES], "LBSPEC": "SERUM",
        "LBORRES": [str(c[1]) for c in CASES], "LBORRESU": [c[2] for c in CASES],
        "LBORNRLO": ["" if c[3] is None else str(c[3]) for c in CASES],
        "LBORNRHI": ["" if c[4] is None else str(c[4]) for c in CASES],
        "LBDTC": [f"2024-02-{5 + i % 20:02d}" for i in range(n)]})
    study = make_study(folder / "s", domains=dict(DOMAINS, lb=lb), study_yaml=STUDY_YAML)
    db = folder / "db.duckdb"
    ingest_study(study, db)
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute("SELECT lbseq, ctcae_term, grade, grade_reason FROM lab_toxicity WHERE usubjid = 'S-001'"
                           ).fetchall()
    finally:
        con.close()
    return {(seq, term): (grade, reason) for seq, term, grade, reason in rows}


@pytest.mark.parametrize("i", range(len(CASES)), ids=[f"{c[0]}-{c[1]}{c[2]}-{c[5]}" for c in CASES])
def test_a_result_is_graded_by_ctcae_in_the_unit_it_was_delivered_in(graded, i):
    test, value, unit, _, _, term, grade = CASES[i]
    got, reason = graded[(i + 1, term)]
    assert got == grade, (value, unit, reason)
    assert (f"{unit} as delivered" in reason) == ((test, unit) in CONVENTIONAL and grade >= 1)

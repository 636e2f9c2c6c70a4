"""Eligibility deviations from baseline labs, vitals and age against study.yaml limits."""
from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from safety.config import validate
from safety.eligibility import derive_eligibility_deviations
from safety.ingest import ingest_study
from test_ingest_fixtures import LB, make_study


def deviations(db):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.sql("SELECT usubjid, criterion, test, value, limit_value, day, detail FROM eligibility_deviations "
                       "ORDER BY usubjid, criterion").to_arrow_table().to_pandas()
    finally:
        con.close()


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    root = tmp_path_factory.mktemp("elig")
    lb = pd.concat([LB, pd.DataFrame({
        # S-002: bilirubin exactly 1.5 x ULN (1.8 mg/dL, ULN 1.2) is inside an inclusive limit
        "USUBJID": ["S-002", "S-002"], "LBSEQ": [7, 8], "LBTESTCD": ["BILI", "NEUT"],
        "LBORRES": ["1.8", "900"], "LBORRESU": ["mg/dL", "/uL"], "LBORNRLO": ["0.1", "1800"],
        "LBORNRHI": ["1.2", "7500"], "LBDTC": ["2024-02-08", "2024-02-08"]})], ignore_index=True)
    study = make_study(root / "s", "csv", skip=("lb",))
    lb.to_csv(study / "lb.csv", index=False)
    path = root / "db.duckdb"
    ingest_study(study, path, run_derivations=False)
    con = duckdb.connect(str(path))
    cfg = validate({"eligibility": {"age": {"min": 18, "max": 65},
                                    "labs": [{"test": "BILI", "max_x_uln": 1.5}, {"test": "NEUT", "min": 1.0}],
                                    "vitals": [{"test": "ECOG", "max": 1}, {"test": "LVEF", "min": 50, "label": "LVEF >= 50%"}]}})
    import datetime as dt
    derive_eligibility_deviations(con, "CT-TEST-01", dt.date(2024, 5, 1), cfg)
    derive_eligibility_deviations(con, "CT-TEST-01", dt.date(2024, 5, 1), cfg)  # rebuilt, not appended
    con.close()
    return path


def test_lab_and_vital_limits(db):
    d = deviations(db)
    s2 = d[d.usubjid == "S-002"].set_index("criterion")
    assert "BILI <= 1.5 x ULN" not in s2.index                       # 30.78 == 1.5 x 20.52: inside
    assert s2.loc["NEUT >= 1.0", "value"] == pytest.approx(0.9) and s2.loc["NEUT >= 1.0", "detail"] == "below minimum"
    assert s2.loc["NEUT >= 1.0", "day"] == -2
    assert s2.loc["ECOG <= 1", "value"] == 3 and s2.loc["ECOG <= 1", "detail"] == "above maximum"
    assert s2.loc["LVEF >= 50%", "value"] == 45 and s2.loc["LVEF >= 50%", "limit_value"] == 50


def test_age_and_missing_baseline(db):
    d = deviations(db)
    age = d[d.test == "AGE"]
    assert age.usubjid.tolist() == ["S-004"] and age.value.tolist() == [70] and age.criterion.tolist() == ["Age <= 65"]
    s1 = d[d.usubjid == "S-001"]
    # S-001: bilirubin 1.2 mg/dL = ULN, ANC 1.5, ECOG 1: only LVEF (never measured) is listed
    assert s1.criterion.tolist() == ["LVEF >= 50%"] and s1.detail.tolist() == ["no baseline value on or before day 0"]
    assert "S-004" not in set(d[d.test != "AGE"].usubjid)            # not infused: no baseline checks


def test_post_infusion_values_are_not_baseline(db):
    d = deviations(db)
    # S-002's ANC of 0.8 on day 4 is after infusion: the baseline is day -2's 0.9
    assert d[(d.usubjid == "S-002") & (d.test == "NEUT")].value.tolist() == [pytest.approx(0.9)]

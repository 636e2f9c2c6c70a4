"""Eligibility deviations from baseline labs, vitals and age against study.yaml limits."""
from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from safety.core.config import validate
from safety.derive.eligibility import derive_eligibility_deviations
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
        "LBORNRHI": ["1.2", "7500"], "LBDTC": ["2024-02-08", "2024-02-08"]}), pd.DataFrame({
        # S-001 (lymphodepletion from 2024-01-27 = day -5): screening bilirubin 2.0 mg/dL (1.67 x ULN) on day -6;
        # 1.0 on the lymphodepletion day and on day 0 (flagged baseline) do not make the subject eligible
        "USUBJID": ["S-001"] * 3, "LBSEQ": [11, 12, 13], "LBTESTCD": ["BILI"] * 3,
        "LBORRES": ["2.0", "1.0", "1.0"], "LBORRESU": ["mg/dL"] * 3, "LBORNRLO": ["0.1"] * 3, "LBORNRHI": ["1.2"] * 3,
        "LBBLFL": ["", "", "Y"], "LBDTC": ["2024-01-26", "2024-01-27T07:00", "2024-02-01T07:30"]}), pd.DataFrame({
        # S-002 (no lymphodepletion): ANC 1.2 on day 0 before the infusion, flagged baseline: not before day 0
        "USUBJID": ["S-002"], "LBSEQ": [14], "LBTESTCD": ["NEUT"], "LBORRES": ["1200"], "LBORRESU": ["/uL"],
        "LBORNRLO": ["1800"], "LBORNRHI": ["7500"], "LBBLFL": ["Y"], "LBDTC": ["2024-02-10T07:30"]})],
        ignore_index=True)
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
    s1 = d[d.usubjid == "S-001"].set_index("criterion")
    # S-001: ANC 1.5, ECOG 1: LVEF (never measured) is listed, as is the screening bilirubin
    assert s1.index.tolist() == ["BILI <= 1.5 x ULN", "LVEF >= 50%"]
    assert s1.loc["LVEF >= 50%", "detail"] == "no value before lymphodepletion"
    assert "S-004" not in set(d[d.test != "AGE"].usubjid)            # not infused: no baseline checks


def test_post_infusion_values_are_not_baseline(db):
    d = deviations(db)
    # S-002's ANC of 0.8 on day 4 is after infusion: the eligibility value is day -2's 0.9
    assert d[(d.usubjid == "S-002") & (d.test == "NEUT")].value.tolist() == [pytest.approx(0.9)]


def test_eligibility_value_is_last_before_lymphodepletion(db):
    """Judged on the value the subject was enrolled on (screening), not the day-0 baseline."""
    d = deviations(db)
    bili = d[(d.usubjid == "S-001") & (d.test == "BILI")]
    # 2.0 mg/dL = 34.2 umol/L on day -6 (lymphodepletion from day -5); limit 1.5 x 20.52 umol/L
    assert bili.value.tolist() == [pytest.approx(34.2, abs=0.1)] and bili.day.tolist() == [-6]
    assert bili.limit_value.tolist() == [pytest.approx(30.78, abs=0.01)] and bili.detail.tolist() == ["above maximum"]
    # without lymphodepletion, the day-0 pre-infusion ANC of 1.2 (flagged baseline) is not before day 0
    neut = d[(d.usubjid == "S-002") & (d.test == "NEUT")]
    assert neut.day.tolist() == [-2] and neut.detail.tolist() == ["below minimum"]

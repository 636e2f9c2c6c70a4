"""The Labs page's liver signal (safety.derive.grading.liver): eDISH peaks and the possible Hy's law quadrant, on
the sample study car_itnk loaded with a few lab values changed (real loads, read through a scoped reader)."""
from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import streamlit as st

from safety.access.reader import Scope, StudyReader
from safety.derive.grading.liver import edish_sql
from safety.ingest import ingest_study
from test_app_pages import _open

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data" / "car_itnk"
BASELINE_ONLY = "ITNK-B-01-01-005"  # pre-infusion day-0 baseline ALT 5 x and bilirubin 3 x ULN, normal after
AST_CASE = "ITNK-B-01-01-013"       # day 10: AST 10 x and bilirubin 3 x ULN (ALT 2 x)
URINE_CASE = "ITNK-B-01-01-014"     # day 5: ALT 5 x ULN; its only bilirubin >= 2 x ULN is a urine result


def _set(lb: pd.DataFrame, mask, value) -> None:
    assert mask.sum() >= 1
    for col in ("LBORRES", "LBSTRESC", "LBSTRESN"):
        lb.loc[mask, col] = str(value)


@pytest.fixture(scope="module")
def liver_db(tmp_path_factory) -> Path:
    if not SAMPLE.exists():
        pytest.skip("needs the sample study car_itnk")
    folder = tmp_path_factory.mktemp("liver")
    plain = folder / "plain.duckdb"
    ingest_study(SAMPLE, plain)
    con = duckdb.connect(str(plain), read_only=True)
    days = con.execute("SELECT usubjid AS USUBJID, CAST(lbseq AS VARCHAR) AS LBSEQ, day FROM labs").df()
    con.close()
    study = folder / "car_itnk"
    shutil.copytree(SAMPLE, study)
    lb = pd.read_csv(study / "lb.csv", dtype=str, keep_default_na=False).merge(days, on=["USUBJID", "LBSEQ"],
                                                                               how="left")
    subj, test, day = lb["USUBJID"], lb["LBTESTCD"], lb["day"]
    _set(lb, (subj == BASELINE_ONLY) & (day == 0) & (test == "ALT"), 200)   # ULN 40
    _set(lb, (subj == BASELINE_ONLY) & (day == 0) & (test == "BILI"), 62)   # ULN 20.5
    _set(lb, (subj == AST_CASE) & (day == 10) & (test == "AST"), 400)
    _set(lb, (subj == AST_CASE) & (day == 10) & (test == "BILI"), 62)
    _set(lb, (subj == URINE_CASE) & (day == 5) & (test == "ALT"), 200)
    urine = lb[(subj == URINE_CASE) & (day == 5) & (test == "BILI")].copy()
    assert len(urine) == 1
    urine = urine.assign(LBSEQ="9001", LBCAT="URINALYSIS", LBSPEC="URINE", LBBLFL="")
    _set(urine, urine["LBSEQ"] == "9001", 62)
    pd.concat([lb, urine]).drop(columns="day").to_csv(study / "lb.csv", index=False)
    db = folder / "liver.duckdb"
    ingest_study(study, db)
    return db


@pytest.fixture(scope="module")
def edish(liver_db) -> pd.DataFrame:
    con = duckdb.connect(str(liver_db), read_only=True)
    studyid, cut = con.execute("SELECT studyid, max(data_cut) FROM studies GROUP BY studyid").fetchone()
    try:
        return StudyReader(con, Scope(studyid, cut)).sql(edish_sql()).set_index("usubjid")
    finally:
        con.close()


def test_edish_counts_an_ast_case_at_its_ast_peak(edish):
    row = edish.loc[AST_CASE]
    assert row["aminotransferase"] == "AST" and row["peak_aminotransferase_xuln"] == pytest.approx(10.0)
    assert row["peak_bili_xuln"] == pytest.approx(62 / 20.5) and row["possible_hys_law"]


def test_edish_peaks_start_after_infusion_not_at_the_baseline(edish):
    # the day-0 baseline (ALT 5 x, bilirubin 3 x ULN, before the 10:00 infusion) is not treatment-emergent
    row = edish.loc[BASELINE_ONLY]
    assert row["peak_alt_xuln"] == pytest.approx(27 / 40) and row["peak_bili_xuln"] == pytest.approx(25.6 / 20.5)
    assert not row["possible_hys_law"]


def test_edish_gives_the_peak_days_and_alp_and_counts_peaks_at_any_time_after_infusion(edish):
    # the count takes the peaks over the whole post-infusion follow-up; the days and the peak ALP are shown beside
    row = edish.loc[AST_CASE]
    assert (row["aminotransferase_day"], row["bili_day"]) == (10, 10)
    assert row["peak_alp_xuln"] == pytest.approx(96 / 130) and row["alp_day"] == 7
    # AST 26 x ULN on days 9 and 10 (above the edited ALT 5 x on day 5): the first day of the peak
    assert tuple(edish.loc[URINE_CASE, ["aminotransferase", "aminotransferase_day"]]) == ("AST", 9)


def test_edish_reads_blood_results_only(edish):
    # the urine bilirubin 62 umol/L (3 x the 20.5 ULN) on day 5 is not the blood bilirubin of a Hy's law screen
    row = edish.loc[URINE_CASE]
    assert row["peak_bili_xuln"] == pytest.approx(14.1 / 20.5) and row["bili_day"] == 6
    assert not row["possible_hys_law"]


def _clear_caches() -> None:
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def liver_app(liver_db, tmp_path, monkeypatch):
    """A copy of the edited load, with the app pointed at it and signed-in checks off."""
    db = tmp_path / "app.duckdb"
    shutil.copyfile(liver_db, db)
    for name, value in (("CELLTOX_DB", str(db)), ("CELLTOX_AUTH", "off")):
        monkeypatch.setenv(name, value)
    _clear_caches()
    yield db
    _clear_caches()


def _chart_values(trace) -> list[float]:
    import base64

    import numpy as np
    y = trace["y"]  # plotly sends numbers as base64 binary
    return list(np.frombuffer(base64.b64decode(y["bdata"]), dtype=y["dtype"])) if isinstance(y, dict) else list(y)


def test_values_over_time_draw_blood_results_only(liver_app):
    """The urine bilirubin (3 x ULN on day 5) is not drawn in the subject's blood bilirubin line."""
    import json
    at = _open("labs", session={"labs_tab": "Values over time"})
    [test] = [s for s in at.selectbox if s.label == "Test"]
    test.set_value("BILI").run()
    assert not at.exception, [e.value for e in at.exception]
    [chart] = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    [line] = [t for t in chart["data"] if t.get("name") == URINE_CASE]
    assert max(_chart_values(line)) == pytest.approx(14.1 / 20.5)

"""Test codes and units in study.yaml that the delivered data never contain: warned of at load, kept in load_log."""
from __future__ import annotations

import duckdb

from test_ingest_fixtures import STUDY_YAML
from test_study_settings import _ingest

SETTINGS = STUDY_YAML.replace("    - {test: NEUT, min: 1.0}\n", "    - {test: ALTT, max_x_uln: 3}\n").replace(
    "    - {test: LVEF, min: 50}\n", "    - {test: LVEFX, min: 50}\n") + """dlt:
  rules:
    - {id: C1, type: cytopenia_persisting, tests: [ANC, NEUT, PLT], grade: 3, from_day: 7, to_day: 14}
immune_monitoring:
  - {test: ALT, below: 400, unit: ukat/L}
"""


def test_codes_and_units_the_delivery_never_holds_are_noted_naming_the_key(tmp_path):
    """cytopenia tests [ANC, PLT] gave 0 candidates, an immune unit of ukat/L (ALT, which the load does not convert,
    stored in U/L) made the marker vanish and an eligibility test ALTT listed every subject as missing the lab, all
    without a word. (A marker of a test the load converts is converted by the settings: no note.)"""
    study, result = _ingest(tmp_path, SETTINGS)
    lb_codes = "LBTESTCD loaded: ALT, BILI, CRP, HGB, NEUT"  # CREAT's one result 'abc' is quarantined
    lb_notes = [
        "study.yaml 'immune_monitoring[0].unit' is ukat/L, and no ALT value is stored in it (stored, after the "
        "load's conversion to SI: U/L): the marker finds nothing",
        f"study.yaml 'dlt.rules[0].tests' names ANC, PLT, which no result loaded from this file has ({lb_codes}): nothing is "
        "compared with them",
        f"study.yaml 'eligibility.labs[1].test' names ALTT, which no result loaded from this file has ({lb_codes}): nothing is "
        "compared with it",
    ]
    vs_note = ("study.yaml 'eligibility.vitals[1].test' names LVEFX, which no result loaded from this file has (VSTESTCD loaded: "
               "ECOG, LVEF, TEMP): nothing is compared with it")
    assert result.notes == ["lb.csv: " + "; ".join(lb_notes), f"vs.csv: {vs_note}"]
    con = duckdb.connect(str(tmp_path / "db.duckdb"), read_only=True)
    try:
        stored = dict(con.execute("SELECT source_file, notes FROM load_log WHERE notes IS NOT NULL").fetchall())
    finally:
        con.close()
    assert stored == {"lb.csv": "; ".join(lb_notes), "vs.csv": vs_note}


def test_codes_the_delivery_holds_and_defaults_are_not_noted(tmp_path):
    """The fixture's LB has no PLAT and no IgG: the default rule R7 and IgG marker are not typing errors."""
    _, result = _ingest(tmp_path, STUDY_YAML + "immune_monitoring:\n  - {test: BILI, below: 5, unit: ' UMOL/L'}\n")
    assert result.notes == []


def test_an_eligibility_lab_limit_in_conventional_units_is_converted_to_the_stored_unit(tmp_path):
    """BILI max 1.5 written for mg/dL was compared with umol/L values and flagged every subject; with
    unit: mg/dL it is 25.65 umol/L, and S-001's 1.2 mg/dL (20.52 umol/L) is within it. (The other subjects
    have no usable BILI: listed as "no value" whatever the limit.)"""
    from safety.ingest import ingest_study
    from test_ingest_fixtures import make_study

    def bili_rows(limit: str):
        folder = tmp_path / limit.replace(" ", "").replace(":", "").replace("/", "")
        study = make_study(folder / "s", "csv", study_yaml=STUDY_YAML.replace("{test: BILI, max_x_uln: 1.5}", limit))
        ingest_study(study, folder / "db.duckdb")
        con = duckdb.connect(str(folder / "db.duckdb"), read_only=True)
        try:
            return con.execute("SELECT usubjid, round(value, 2), unit, limit_value FROM eligibility_deviations "
                               "WHERE test = 'BILI' AND value IS NOT NULL ORDER BY ALL").fetchall()
        finally:
            con.close()

    assert bili_rows("{test: BILI, max: 1.5}") == [("S-001", 20.52, "umol/L", 1.5)]
    assert bili_rows("{test: BILI, max: 1.5, unit: mg/dL}") == []
    assert bili_rows("{test: BILI, max: 1.0, unit: mg/dL}") == [("S-001", 20.52, "umol/L", 17.1)]


def test_a_limit_unit_the_table_cannot_convert_is_refused():
    import pytest

    from safety.core.config import ConfigError, validate
    with pytest.raises(ConfigError) as exc:
        validate({"eligibility": {"labs": [{"test": "BILI", "max": 1.5, "unit": "furlongs"}]}})
    assert str(exc.value) == ("study.yaml: 'eligibility.labs[0].unit' 'furlongs' is not a unit "
                              "safety/data/unit_conversions.csv converts: it converts BILI from mg/dL, umol/L")


def test_a_limit_unit_is_read_in_every_spelling_the_load_reads():
    """study.yaml's lab-limit unit is matched to the unit table by the load's own spelling rule (ct_unit):
    'mcmol/L' and 'MG / DL' are the table's umol/L and mg/dL, as a delivered LBORRESU would be."""
    from safety.core.config import validate
    labs = validate({"eligibility": {"labs": [{"test": "BILI", "max": 25.65, "unit": "mcmol/L"},
                                              {"test": "BILI", "max": 1.5, "unit": "MG / DL"}]}})["eligibility"]["labs"]
    assert [(lim["max"], lim["unit"]) for lim in labs] == [(25.65, "umol/L"), (25.65, "umol/L")]

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
  - {test: BILI, below: 400, unit: mg/dL}
"""


def test_codes_and_units_the_delivery_never_holds_are_noted_naming_the_key(tmp_path):
    """cytopenia tests [ANC, PLT] gave 0 candidates, an immune unit of mg/dL (stored in g/L) made the marker
    vanish and an eligibility test ALTT listed every subject as missing the lab, all without a word."""
    study, result = _ingest(tmp_path, SETTINGS)
    lb_codes = "LBTESTCD loaded: ALT, BILI, CRP, HGB, NEUT"  # CREAT's one result 'abc' is quarantined
    lb_notes = [
        "study.yaml 'immune_monitoring[0].unit' is mg/dL, and no BILI value is stored in it (stored, after the "
        "load's conversion to SI: umol/L): the marker finds nothing",
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

"""study.yaml values outside what the protocol's rules allow: refused at start in one line naming the key."""
from __future__ import annotations

import pytest

from safety.core.config import ConfigError, validate


@pytest.mark.parametrize("stopping_rule, message", [
    ({"method": "pocock", "alpha": 10}, "'stopping_rule.alpha' must be a probability strictly between 0 and 1"),
    ({"method": "pocock", "alpha": -0.5}, "'stopping_rule.alpha' must be a probability strictly between 0 and 1"),
    ({"method": "pocock", "alpha": 0}, "'stopping_rule.alpha' must be a probability strictly between 0 and 1"),
    ({"method": "boin", "boin_elimination_cutoff": 95},
     "'stopping_rule.boin_elimination_cutoff' must be a probability strictly between 0 and 1"),
    ({"method": "boin", "boin_elimination_cutoff": 1}, "'stopping_rule.boin_elimination_cutoff' must be"),
    ({"method": "boin", "threshold": 0.3, "boin_phi1": 0.35},
     "'stopping_rule.boin_phi1' must be below the target 'stopping_rule.threshold' (0.3), got 0.35"),
    ({"method": "boin", "threshold": 0.3, "boin_phi1": 0.1, "boin_phi2": 0.3},
     "'stopping_rule.boin_phi2' must be above the target 'stopping_rule.threshold' (0.3), got 0.3"),
    ({"method": "boin", "threshold": 0.3, "boin_phi1": 0.4, "boin_phi2": 0.1}, "'stopping_rule.boin_phi1' must be below"),
    ({"method": "boin", "threshold": 0.75}, "puts BOIN's default 'stopping_rule.boin_phi2' (1.4 x target) at 1"),
])
def test_stopping_rule_probabilities_outside_their_range_are_refused(stopping_rule, message):
    """alpha: 10 (10 % typed as 10) made every n a 'stop'; an elimination cutoff of 95 switched elimination off;
    phi1 above the target made 'escalate if <= 0.298, de-escalate if >= 0.298'."""
    with pytest.raises(ConfigError) as exc:
        validate({"stopping_rule": stopping_rule})
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_stopping_rule_values_within_range_still_validate():
    sr = validate({"stopping_rule": {"method": "boin", "threshold": 0.3, "boin_phi1": 0.2, "boin_phi2": 0.4,
                                     "alpha": 0.05, "boin_elimination_cutoff": 0.95}})["stopping_rule"]
    assert (sr["boin_phi1"], sr["boin_phi2"], sr["alpha"]) == (0.2, 0.4, 0.05)
    # a Pocock threshold of 0.8 does not need BOIN's phi2
    assert validate({"stopping_rule": {"method": "pocock", "threshold": 0.8}})["stopping_rule"]["threshold"] == 0.8


def refused_at_ingest(tmp_path, study_yaml: str) -> str:
    """The one-line refusal of ingest_study for the fixture study with ``study_yaml``, after the prefix naming
    the file; nothing is written."""
    from safety.ingest import IngestError
    from test_study_settings import _ingest
    with pytest.raises(IngestError) as exc:
        _ingest(tmp_path, study_yaml)
    assert not (tmp_path / "db.duckdb").exists()
    prefix = f"{tmp_path / 's' / 'study.yaml'}: "
    assert str(exc.value).startswith(prefix) and "\n" not in str(exc.value)
    return str(exc.value)[len(prefix):]


def test_ingest_refuses_a_percentage_alpha_before_anything_is_loaded(tmp_path):
    assert refused_at_ingest(tmp_path, "studyid: CT-TEST-01\nstopping_rule:\n  method: pocock\n  alpha: 10\n") == (
        "'stopping_rule.alpha' must be a probability strictly between 0 and 1 (a percentage as a fraction: "
        "10 % is 0.10), got 10")


@pytest.mark.parametrize("settings, message", [
    ({"data_cuts": __import__("datetime").date(2026, 3, 31)},
     """'data_cuts' must be a list of dates YYYY-MM-DD (one per line after '- '), got '2026-03-31'"""),
    ({"data_cuts": "2026-03-31"}, "'data_cuts' must be a list of dates YYYY-MM-DD"),
    ({"dlt": {"progression_terms": [1, None]}},
     "'dlt.progression_terms[0]' must be str (dlt.progression_terms is a list of text), got 1"),
    ({"dlt": {"progression_terms": "DISEASE PROGRESSION"}}, "'dlt.progression_terms' must be a list of text"),
    ({"dlt": {"syndrome_terms": {"CRS": [5, None]}}}, "'dlt.syndrome_terms.CRS[0]' must be str"),
    ({"dlt": {"rules": [{"id": "X1", "type": "ae_grade", "exclude_terms": ["FEVER", None]}]}},
     "'dlt.rules[0].exclude_terms[1]' must be str"),
    ({"dlt": {"rules": [{"id": "X1", "type": "cytopenia_persisting", "tests": ["NEUT", 3]}]}},
     "'dlt.rules[0].tests[1]' must be str"),
    ({"response": {"responders": ["CR", False]}}, "'response.responders[1]' must be str"),  # YAML reads NO as false
    ({"response": {"progression": [None]}}, "'response.progression[0]' must be str"),
    ({"response": {"by_diagnosis": [{"diagnosis_contains": "ALL", "criteria": "c", "responders": [1]}]}},
     "'response.by_diagnosis[0].responders[0]' must be str"),
    ({"off_tumour_watch": {"terms": [7]}}, "'off_tumour_watch.terms[0]' must be str"),
    ({"off_tumour_watch": {"socs": "NERVOUS SYSTEM DISORDERS"}}, "'off_tumour_watch.socs' must be a list of text"),
    ({"stopping_rule": {"dose_order": [None]}}, "'stopping_rule.dose_order[0]' must be"),
])
def test_a_list_setting_must_be_a_list_of_its_kind(settings, message):
    """data_cuts: 2026-03-31 and progression_terms: [1, null] ended in a Python traceback (the second half-way
    through the derivations); a quoted date was read character by character."""
    with pytest.raises(ConfigError) as exc:
        validate(settings)
    assert message in str(exc.value)


def test_list_settings_of_the_right_kind_still_validate():
    cfg = validate({"data_cuts": ["2026-03-31"], "stopping_rule": {"dose_order": ["DL1", 2]},
                    "dlt": {"progression_terms": ["PD"]}})
    assert (cfg["data_cuts"], cfg["stopping_rule"]["dose_order"], cfg["dlt"]["progression_terms"]) == (
        ["2026-03-31"], ["DL1", "2"], ["PD"])


def test_ingest_refuses_a_number_among_the_progression_terms_in_one_line(tmp_path):
    assert refused_at_ingest(tmp_path, "studyid: CT-TEST-01\ndlt:\n  progression_terms: [1, null]\n") == (
        "'dlt.progression_terms[0]' must be str (dlt.progression_terms is a list of text), got 1")


@pytest.mark.parametrize("text", ["", "# settings to come\n\n# stopping_rule: {max_n: 30}\n", "{}\n", "---\n"])
def test_a_study_yaml_without_settings_is_refused(tmp_path, text):
    """An empty study.yaml loaded silently with every default (the ITNK study's age limits, stopping rule and
    CD19 marker all changed)."""
    assert refused_at_ingest(tmp_path, text) == "the file holds no settings; delete it to use the defaults"


def _rule(**fields) -> dict:
    return {"dlt": {"rules": [{"id": "X1", **fields}]}}


@pytest.mark.parametrize("settings, message", [
    (_rule(type="ae_grade", min_grade=9), "'dlt.rules[0].min_grade' must be a CTCAE grade from 1 to 5, got 9"),
    (_rule(type="syndrome_grade", syndrome="CRS", min_grade=3, max_grade=6), "'dlt.rules[0].max_grade' must be a CTCAE"),
    (_rule(type="cytopenia_persisting", grade=0), "'dlt.rules[0].grade' must be a CTCAE grade from 1 to 5, got 0"),
    (_rule(type="syndrome_grade", syndrome="CRS", min_grade=4, max_grade=2),
     "'dlt.rules[0].max_grade' (2) must not be below 'dlt.rules[0].min_grade' (4)"),
    (_rule(type="cytopenia_persisting", from_day=35, to_day=28),
     "'dlt.rules[0].from_day' (35) must not be after 'dlt.rules[0].to_day' (28)"),
    # from_day alone is compared with the default to_day (35)
    (_rule(type="cytopenia_persisting", from_day=40), "'dlt.rules[0].from_day' (40) must not be after"),
    (_rule(type="ae_grade", more_than_days=-3), "'dlt.rules[0].more_than_days' must not be negative, got -3"),
    (_rule(type="syndrome_grade", syndrome="ICANS", more_than_hours=-1), "'dlt.rules[0].more_than_hours' must not be"),
    (_rule(type="syndrome_grade", syndrome="CRS", more_than_hours=72, more_than_days=3),
     "'dlt.rules[0]' gives both more_than_hours and more_than_days; give one of them"),
    ({"eligibility": {"age": {"min": 70, "max": 3}}},
     "'eligibility.age.min' (70) must not be above 'eligibility.age.max' (3)"),
    ({"eligibility": {"age": {"min": -1}}}, "'eligibility.age.min' must not be negative"),
    ({"eligibility": {"labs": [{"test": "BILI", "min": 50, "max": 34.2}]}},
     "'eligibility.labs[0].min' (50) must not be above 'eligibility.labs[0].max' (34.2)"),
    ({"eligibility": {"labs": [{"test": "ALT", "max_x_uln": -3}]}}, "'eligibility.labs[0].max_x_uln' must be a positive"),
    ({"immune_monitoring": [{"test": "IGG", "below": -4.0}]}, "'immune_monitoring[0].below' must be a positive level"),
    ({"planned_doses": {"DL1": -1.0}}, "'planned_doses.DL1' must be a positive dose, got -1.0"),
    ({"planned_doses": {"DL2": 0}}, "'planned_doses.DL2' must be a positive dose, got 0"),
    ({"off_tumour_watch": {"late_after_day": -10}}, "'off_tumour_watch.late_after_day' must be a day after the"),
])
def test_impossible_values_are_refused_naming_the_key(settings, message):
    """A grade 9 or a backwards day range left a rule empty, a negative duration switched its criterion off, both
    hours and days let the hours win silently, an age min above max flagged every subject twice."""
    with pytest.raises(ConfigError) as exc:
        validate(settings)
    assert message in str(exc.value)


def test_possible_values_at_the_edges_still_validate():
    cfg = validate({**_rule(type="syndrome_grade", syndrome="CRS", min_grade=3, max_grade=3, more_than_days=0),
                    "eligibility": {"age": {"min": 3, "max": 3}, "labs": [{"test": "HGB", "min": 80, "max": 80}]}})
    assert cfg["dlt"]["rules"][0]["max_grade"] == 3 and cfg["eligibility"]["age"] == {"min": 3, "max": 3}


@pytest.mark.parametrize("text, message", [
    ("studyid: CT-TEST-01\ndlt:\n  progression_terms: &p [DISEASE PROGRESSION, *p]\n",
     "'dlt.progression_terms[1]' is an alias of 'dlt.progression_terms', which holds it: a YAML alias inside its "
     "own anchor repeats without end; write the value out in full"),
    ("studyid: CT-TEST-01\nsites: &s {'01': *s}\n", "'sites.01' is an alias of 'sites', which holds it"),
    # an unknown key is named before the values are walked
    ("studyid: CT-TEST-01\ndlt_x: &p [a, *p]\n", "unknown key 'dlt_x' (allowed: "),
])
def test_a_yaml_alias_inside_its_own_anchor_is_refused_in_one_line(tmp_path, text, message):
    """progression_terms: &p [X, *p] ended the load in a RecursionError traceback (exit 1)."""
    assert message in refused_at_ingest(tmp_path, text)


def _nested_aliases(levels: int) -> str:
    """A list under dlt.progression_terms of aliases ten deep in one another: 10^levels values from a few lines."""
    return "".join(["studyid: CT-TEST-01\ndlt:\n  progression_terms:\n    - &a0 [x, x, x, x, x, x, x, x, x, x]\n"]
                   + [f"    - &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, levels + 1)])


def test_yaml_aliases_nested_in_one_another_are_refused_before_the_values_are_walked(tmp_path):
    """Aliases of aliases (a 'billion laughs') hung the load: each level multiplied the walk of the values by ten
    (six levels 3 s, seven 31 s, a 2.5 KB file of nine did not end)."""
    assert "'dlt' holds 1,234,568 values" in refused_at_ingest(tmp_path, _nested_aliases(5))
    # each level of ten aliases holds 10 x the previous plus the list itself: 11, 111, ..., plus dlt and its list
    assert refused_at_ingest(tmp_path, _nested_aliases(8)) == (
        "'dlt' holds 1,234,567,901 values once its YAML aliases are written out (at most 10,000); write the values "
        "out in full")


def test_a_yaml_alias_repeating_a_list_still_validates():
    from safety.core.files import load_yaml
    cfg = validate(load_yaml("dlt:\n  rules:\n"
                             "    - {id: X1, type: ae_grade, min_grade: 3, exclude_terms: &t [FEVER, PYREXIA]}\n"
                             "    - {id: X2, type: ae_grade, min_grade: 4, exclude_terms: *t}\n"))
    assert [r["exclude_terms"] for r in cfg["dlt"]["rules"]] == [["FEVER", "PYREXIA"]] * 2


def test_a_dose_level_of_infused_subjects_missing_from_dose_order_is_refused_at_ingest(tmp_path):
    """dose_order: [DL1, DL3] loaded without a word, DL2 then sorted above DL3 and BOIN called it eliminated by
    'the lower dose level DL3'; a dose order of numbers matching no level lost 'the trial stops for safety'."""
    text = "studyid: CT-TEST-01\nstopping_rule:\n  method: boin\n  threshold: 0.3\n  dose_order: [DL0, 1, DL2]\n"
    assert refused_at_ingest(tmp_path, text) == (
        "'stopping_rule.dose_order' (DL0, 1, DL2) does not list the dose level DL1 (1e6/kg) of infused subjects "
        "(subjects.dose_level); list every dose level from lowest to highest as the data write it, or leave the "
        "key out")


def test_a_dose_order_listing_every_infused_level_loads(tmp_path):
    import duckdb
    from test_study_settings import _ingest
    text = "studyid: CT-TEST-01\nstopping_rule:\n  method: boin\n  dose_order: [DL0, DL1 (1e6/kg), DL2, 3]\n"
    _ingest(tmp_path, text)
    con = duckdb.connect(str(tmp_path / "db.duckdb"), read_only=True)
    levels = con.execute("SELECT list(DISTINCT dose_level ORDER BY dose_level) FROM subjects WHERE infused").fetchone()[0]
    stored = con.execute("SELECT config_json FROM studies").fetchone()[0]
    assert levels == ["DL1 (1e6/kg)", "DL2"]
    assert __import__("json").loads(stored)["stopping_rule"]["dose_order"] == ["DL0", "DL1 (1e6/kg)", "DL2", "3"]


def test_dose_levels_written_as_numbers_are_read_as_the_levels_text():
    """dose_order: [1, 2] is the levels '1' and '2': eliminating '1' says the trial stops for safety."""
    from safety.derive.dlt.stopping import SUBJECT_COLUMNS, status_records
    cfg = validate({"stopping_rule": {"method": "boin", "threshold": 0.3, "dose_order": [1, 2]}})
    assert cfg["stopping_rule"]["dose_order"] == ["1", "2"]
    rows = [dict(infused=True, evaluable=True, dlt_confirmed=dlt, candidates_in_window=int(dlt), pending_in_window=0,
                 evaluable_if_candidates_confirmed=True, followed_through_window=True, crs_max_grade_window=0,
                 icans_max_grade_window=0, treatment_related_death=False, dose_level=level, cohort=level)
            for level, dlt in [("1", True)] * 3 + [("2", False)] * 3]
    out = status_records({c: [r[c] for r in rows] for c in SUBJECT_COLUMNS}, cfg, adjudicated=True)
    assert [(r["cohort"], r["decision"]) for r in out] == [("1", "eliminate"), ("2", "eliminate")]
    assert "eliminate; it is the lowest dose level, so the trial stops for safety" in out[0]["sentence"]


def test_an_empty_dlt_rule_list_is_refused_at_ingest(tmp_path):
    """dlt.rules: [] loaded without a word and screened nothing: the sample's DL2 and DL3 went from 5 and 3 pending
    candidates ('de-escalate' if confirmed) to none ('escalate')."""
    assert refused_at_ingest(tmp_path, "studyid: CT-TEST-01\ndlt:\n  rules: []\n") == (
        "'dlt.rules' is empty: no event would be screened as a DLT; leave the key out to use rules R1-R9, or list "
        "the protocol's rules")

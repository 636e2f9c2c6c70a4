"""study.yaml and users.yaml values a typing error makes: refused in one line naming the key, never loaded."""
from __future__ import annotations

import pytest

from safety.access.auth import AuthError, UserStore
from safety.core.config import ConfigError, load_study_config, validate


@pytest.mark.parametrize("settings, message", [
    ({"stopping_rule": {"prior_a": float("inf")}}, "'stopping_rule.prior_a' must be a finite number, got inf"),
    ({"stopping_rule": {"prior_b": float("nan")}}, "'stopping_rule.prior_b' must be a finite number, got nan"),
    ({"eligibility": {"age": {"min": float("nan")}}}, "'eligibility.age.min' must be a finite number"),
    ({"dlt": {"window": {"start_day": 0, "end_day": 99999999999999999999}}},
     "'dlt.window.end_day' must be between -100,000 and 100,000"),
    ({"dlt": {"window": {"start_day": 0, "end_day": 5000}}}, "'dlt.window.end_day' must be a day from -365 to 3650"),
    ({"stopping_rule": {"max_n": 100000}}, "'stopping_rule.max_n' must be from 1 to 1000, got 100000"),
    ({"stopping_rule": {"max_n": -3}}, "'stopping_rule.max_n' must be from 1 to 1000, got -3"),
    ({"stopping_rule": {"max_n": 6, "min_n": 9}}, "'stopping_rule.min_n' must be from 1 to max_n (6), got 9"),
    ({"dlt": {"rules": [{"id": "X", "type": "ae_grade", "more_than_days": float("inf"), "reason": "r"}]}},
     "'dlt.rules[0].more_than_days' must be a finite number"),
])
def test_numbers_a_typing_error_makes_are_refused_naming_the_key(settings, message):
    with pytest.raises(ConfigError) as exc:
        validate(settings)
    assert message in str(exc.value)


def test_the_sample_settings_still_validate():
    assert validate({"stopping_rule": {"max_n": 24, "min_n": 3}})["stopping_rule"]["min_n"] == 3


def test_a_setting_given_twice_is_refused_with_its_line(tmp_path):
    (tmp_path / "study.yaml").write_text("studyid: A\ntitle: T\nstudyid: B\n")
    with pytest.raises(ConfigError) as exc:
        load_study_config(tmp_path)
    assert str(exc.value) == f"{tmp_path / 'study.yaml'}: not valid YAML at line 3 (key 'studyid' is given twice)"


def test_an_account_listed_twice_is_refused_rather_than_the_last_kept(tmp_path):
    """A second entry of one name would silently replace the first (an investigator turned committee member)."""
    path = tmp_path / "users.yaml"
    path.write_text("users:\n  dup: {role: investigator, sites: ['02'], password_hash: x}\n"
                    "  dup: {role: committee, password_hash: y}\n")
    with pytest.raises(AuthError, match="is given twice"):
        UserStore(path).check()


def _ingest(tmp_path, study_yaml: str, yml: str | None = None):
    """ingest_study of the fixture study with ``study_yaml`` (and a study.yml beside it when given)."""
    from safety.ingest import ingest_study
    from test_ingest_fixtures import make_study
    study = make_study(tmp_path / "s", "csv", study_yaml=study_yaml)
    if yml is not None:
        (study / "study.yml").write_text(yml, encoding="utf-8")
    return study, ingest_study(study, tmp_path / "db.duckdb", run_derivations=False)


@pytest.mark.parametrize("key, read_as", [("01", "the number 1"), ("010", "the number 8"), ("2.0", "the number 2.0")])
def test_a_site_id_yaml_reads_as_a_number_is_refused_naming_it_as_written(tmp_path, key, read_as):
    """YAML reads an unquoted 01 as the number 1 (and 010 as 8): the site's name silently belonged to site '1',
    which no SITEID '01' matches."""
    import json

    import duckdb

    from safety.ingest import IngestError
    with pytest.raises(IngestError) as exc:
        _ingest(tmp_path, f"studyid: CT-TEST-01\nsites:\n  '10': Berlin\n  {key}: Munich\n")
    assert str(exc.value) == (f"{tmp_path / 's' / 'study.yaml'}: line 4: sites: key {key} read as {read_as}; "
                              f"write it in quotes ('{key}') so it matches SITEID")
    assert not (tmp_path / "db.duckdb").exists()
    _ingest(tmp_path, f"studyid: CT-TEST-01\nsites:\n  '10': Berlin\n  '{key}': Munich\n")
    con = duckdb.connect(str(tmp_path / "db.duckdb"), read_only=True)
    try:
        stored = json.loads(con.execute("SELECT config_json FROM studies").fetchone()[0])
    finally:
        con.close()
    assert stored["sites"] == {"10": "Berlin", key: "Munich"}


def test_study_yaml_beside_study_yml_is_refused_naming_both(tmp_path):
    """study.yml was ignored without a word when study.yaml was there too: whichever the sender edited last."""
    from safety.ingest import IngestError
    with pytest.raises(IngestError) as exc:
        _ingest(tmp_path, "studyid: CT-TEST-01\n", yml="studyid: CT-TEST-01\ntitle: Edited\n")
    assert str(exc.value) == (f"{tmp_path / 's'}: both study.yaml and study.yml are in the folder, and only one "
                              "would be read; keep one of them")
    assert not (tmp_path / "db.duckdb").exists()


def test_settings_that_moved_between_two_cuts_are_named_at_load_on_the_data_quality_page_and_in_the_packet(tmp_path):
    """The DLT window and an eligibility limit changed in study.yaml between the March and September loads: the
    load said nothing, and the committee reading two cuts could not tell. The load's notes and the Data quality
    page name each moved setting with both values, and the packet states the settings' SHA-256."""
    import duckdb
    import pandas as pd
    from safety.core.config import settings_changed_note
    from safety.export.common import make_reader, packet_meta
    from safety.ingest import ingest_study
    from test_ingest_fixtures import STUDY_YAML, make_study

    db = tmp_path / "db.duckdb"
    first = ingest_study(make_study(tmp_path / "c1", "csv"), db, cutoff="2024-02-25", run_derivations=False)
    moved_yaml = STUDY_YAML.replace("{test: NEUT, min: 1.0}", "{test: NEUT, min: 0.5}") + \
        "dlt:\n  window: {start_day: 0, end_day: 21}\n"
    second = ingest_study(make_study(tmp_path / "c2", "csv", study_yaml=moved_yaml), db, cutoff="2024-03-31",
                          run_derivations=False)
    assert not [n for n in first.notes if "settings differ" in n]
    [note] = [n for n in second.notes if "settings differ" in n]
    assert note.startswith("study.yaml settings differ from the 2024-02-25 cut's: ")
    assert "dlt.window.end_day 28 -> 21" in note and "eligibility.labs" in note and "0.5" in note
    con = duckdb.connect(str(db), read_only=True)
    try:
        before, now = (con.execute("SELECT config_json FROM studies WHERE data_cut = $c", {"c": c}).fetchone()[0]
                       for c in ("2024-02-25", "2024-03-31"))
        assert settings_changed_note(before, now, pd.Timestamp("2024-02-25").date()) == note
        meta = packet_meta(make_reader(con, "CT-TEST-01", pd.Timestamp("2024-03-31").date()))
    finally:
        con.close()
    import hashlib
    assert meta.hash_lines()[-1] == ("Study settings SHA-256 (study.yaml as validated, with its defaults): "
                                     + hashlib.sha256(now.encode("utf-8")).hexdigest())

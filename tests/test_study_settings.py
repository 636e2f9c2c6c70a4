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

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


def test_ingest_refuses_a_percentage_alpha_before_anything_is_loaded(tmp_path):
    from safety.ingest import IngestError
    from test_study_settings import _ingest
    with pytest.raises(IngestError) as exc:
        _ingest(tmp_path, "studyid: CT-TEST-01\nstopping_rule:\n  method: pocock\n  alpha: 10\n")
    assert str(exc.value) == (f"{tmp_path / 's' / 'study.yaml'}: 'stopping_rule.alpha' must be a probability strictly "
                              "between 0 and 1 (a percentage as a fraction: 10 % is 0.10), got 10")
    assert not (tmp_path / "db.duckdb").exists()

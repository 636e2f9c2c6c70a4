"""The NRM point estimates a load writes come from a statsmodels-free Aalen-Johansen that must give exactly
the numbers of the statsmodels curve the pages and packet draw."""
from __future__ import annotations

import numpy as np
import pytest

from safety.derive.outcomes.survival import cumulative_incidence, cumulative_incidence_at, value_at

DAYS = (0, 1, 27.5, 28, 100, 365, 1000)


def _curve_values(time, status, cause=1):
    curve = cumulative_incidence(time, status, cause=cause)
    return [value_at(curve, d, "cumulative_incidence") for d in DAYS]


def test_known_values():
    # 5 subjects: NRM death day 10, relapse day 20, censored day 30, NRM death day 40, censored day 400.
    # AJ: day 10: 1/5 = 0.2; day 20 relapse (S = 0.8 * 3/4 = 0.6); day 40: 0.2 + 0.6 * 1/2 = 0.5
    time, status = [10, 20, 30, 40, 400], [1, 2, 0, 1, 0]
    assert cumulative_incidence_at(time, status, (5, 10, 28, 100, 365)) == pytest.approx([0.0, 0.2, 0.2, 0.5, 0.5])
    assert cumulative_incidence_at(time, status, (100,), cause=2) == pytest.approx([0.2])
    assert cumulative_incidence_at([], [], (28, 100)) == [0.0, 0.0]
    assert cumulative_incidence_at([5, 8], [0, 2], (28,)) == [0.0]  # no event of the cause


@pytest.mark.parametrize("seed", range(12))
def test_same_numbers_as_statsmodels(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    time = rng.integers(0, 400, n).astype(float)  # ties and day 0 on purpose
    status = rng.integers(0, 3, n)
    if seed % 3 == 0:
        time[: n // 2] = 0.0
    for cause in (1, 2):
        if (status == cause).any():
            assert cumulative_incidence_at(time, status, DAYS, cause=cause) == _curve_values(time, status, cause)

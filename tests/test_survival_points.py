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


def test_median_survival_time_known_and_not_reached():
    from safety.derive.outcomes.survival import median_survival_time
    # 5/6 at day 2, 2/3 at day 3, 4/9 at day 5: the median is day 5 (the day 3 censoring is at risk on day 3)
    assert median_survival_time([2, 3, 3, 5, 8, 9], [1, 1, 0, 1, 0, 1]) == 5
    assert median_survival_time([10, 20, 30], [1, 0, 0]) is None  # 2/3: never at or below one half
    assert median_survival_time([], []) is None and median_survival_time([4, 6], [0, 0]) is None


def test_a_survival_of_exactly_one_half_is_the_median():
    """Four durations of 1-4 days, all events: the survival is 1/2 on day 2, which the product of logs makes
    0.5000000000000001; the median is day 2, not 3 (the packet's and the page's, both). Six with censorings on
    days 30 and 60: 1/2 on day 30, the median 30, not 50."""
    from safety.derive.outcomes.survival import kaplan_meier, median_survival_time, median_time
    for time, event, median in (([1, 2, 3, 4], [1, 1, 1, 1], 2), ([10, 20, 30, 40, 50, 60], [1, 1, 1, 0, 1, 0], 30)):
        assert median_survival_time(time, event) == median
        assert median_time(kaplan_meier(time, event)) == median


@pytest.mark.parametrize("seed", range(12))
def test_median_survival_time_same_as_statsmodels(seed):
    from safety.derive.outcomes.survival import kaplan_meier, median_survival_time, median_time
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(1, 60))
    time = rng.integers(0, 400, n).astype(float)
    event = rng.integers(0, 2, n)
    if seed % 3 == 0:
        time[: n // 2] = 0.0
    if event.any():
        assert median_survival_time(time, event) == median_time(kaplan_meier(time, event))

"""The beta and binomial tails behind the stopping rules and the Clopper-Pearson intervals, against exact
arithmetic (fractions) and against scipy.stats, whose numbers they must keep exactly."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats

from safety.derive.dlt import stopping as S
from safety.derive.toxicity.summary import clopper_pearson


def exact_binom_ge(y: int, n: int, p: Fraction) -> Fraction:
    """P(Bin(n, p) >= y), exactly."""
    return sum((math.comb(n, j) * p ** j * (1 - p) ** (n - j) for j in range(max(y, 0), n + 1)), Fraction(0))


@pytest.mark.parametrize("y,n,p0", [(0, 10, "0.2"), (3, 10, "0.2"), (5, 24, "0.2"), (9, 24, "0.2"), (2, 6, "1/3"),
                                    (12, 30, "0.25")])
def test_binomial_tail_is_exact(y, n, p0):
    exact = exact_binom_ge(y, n, Fraction(p0))
    assert S.binomial_tail(y, n, float(Fraction(p0))) == pytest.approx(float(exact), rel=1e-13, abs=1e-300)


@pytest.mark.parametrize("y,n,p0,a,b", [(0, 6, "0.3", 1, 1), (3, 10, "0.2", 1, 1), (4, 12, "0.25", 1, 1),
                                        (7, 20, "0.2", 2, 8)])
def test_beta_binomial_posterior_is_exact(y, n, p0, a, b):
    # integer shapes: P(Beta(A, B) > x) = P(Bin(A + B - 1, x) < A)
    A, B = a + y, b + n - y
    exact = 1 - exact_binom_ge(A, A + B - 1, Fraction(p0))
    assert S.beta_binomial_posterior(y, n, float(Fraction(p0)), a, b) == pytest.approx(float(exact), rel=1e-13)


def test_known_values():
    # P(Bin(10, 0.2) >= 3) = 0.3222004736; Beta(4, 8) posterior above 0.2 = P(Bin(11, 0.2) <= 3) = 0.8388608
    assert S.binomial_tail(3, 10, 0.2) == pytest.approx(0.3222004736, abs=1e-12)
    assert S.beta_binomial_posterior(3, 10, 0.2, 1, 1) == pytest.approx(0.8388608, abs=1e-12)
    assert S.binomial_tail(0, 5, 0.3) == 1.0  # below the support
    assert S.binomial_tail(6, 5, 0.3) == 0.0
    # Clopper-Pearson with no event or every event has a closed form: 1 - (a/2)^(1/n) and (a/2)^(1/n)
    lo, hi = clopper_pearson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(1 - 0.025 ** (1 / 10), rel=1e-12)
    lo, hi = clopper_pearson(10, 10)
    assert hi == 1.0 and lo == pytest.approx(0.025 ** (1 / 10), rel=1e-12)
    lo, hi = clopper_pearson(3, 20)  # 0.0321 - 0.3789 (published tables)
    assert (round(lo, 4), round(hi, 4)) == (0.0321, 0.3789)


def test_same_numbers_as_scipy_stats():
    """Every value the rules compare with a cut-off is bit for bit what scipy.stats gives."""
    for n in range(0, 40):
        k = np.arange(n + 2) - 1
        for p in (0.05, 0.2, 0.25, 1 / 3, 0.5):
            assert np.array_equal(S.binom_sf(k, n, p), stats.binom.sf(k, n, p))
            ys = np.arange(n + 1)
            for a, b in ((1, 1), (0.5, 0.5), (2, 8)):
                assert np.array_equal(S.beta_sf(p, a + ys, b + n - ys), stats.beta.sf(p, a + ys, b + n - ys))
        for k1 in range(1, n):
            lo, hi = clopper_pearson(k1, n)
            a = 1.0 - 0.95
            assert (lo, hi) == (float(stats.beta.ppf(a / 2, k1, n - k1 + 1)), float(stats.beta.ppf(1 - a / 2, k1 + 1, n - k1)))
    level, bounds = S.pocock_boundaries(0.2, 24, 0.10)
    assert 0.0376 < level < 0.0400  # [0.0377, 0.0400) to 3 digits: the published alpha* ~ 0.040 (p0 0.20, N 24, alpha 0.10)

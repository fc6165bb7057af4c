"""Drift statistics against scipy, on distributions whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.special import rel_entr
from scipy.stats import norm

from mobile_ml.monitor import bins as B
from mobile_ml.monitor.stats import PSI_EPSILON, Thresholds, Verdict, compare, js_distance, psi, verdict

DECILES = norm.ppf(np.arange(1, 10) / 10)  # the exact decile edges of N(0, 1): each bin holds 10 %


def _psi_reference(p: np.ndarray, q: np.ndarray) -> float:
    """PSI as the symmetrised KL divergence, from scipy's elementwise relative entropy."""
    return float(np.sum(rel_entr(q, p) + rel_entr(p, q)))


def test_psi_is_the_symmetrised_kl_divergence():
    rng = np.random.default_rng(0)
    for _ in range(50):
        a, b = rng.integers(1, 1000, 12), rng.integers(1, 1000, 12)
        assert psi(a, b) == pytest.approx(_psi_reference(a / a.sum(), b / b.sum()), rel=1e-12)
        assert psi(a, b) == pytest.approx(psi(b, a), rel=1e-12)
    assert psi([5, 5, 5], [1, 1, 1]) == 0.0


def test_an_empty_bin_costs_the_documented_epsilon_not_infinity():
    expected, actual = [50, 30, 20], [60, 40, 0]
    p, q = np.array([0.5, 0.3, 0.2]), np.array([0.6, 0.4, PSI_EPSILON])
    assert psi(expected, actual) == pytest.approx(float(np.sum((q - p) * np.log(q / p))), rel=1e-12)
    assert math.isfinite(psi(actual, expected))


def test_js_distance_is_scipys_base_2():
    rng = np.random.default_rng(1)
    for _ in range(50):
        a, b = rng.integers(0, 50, 10), rng.integers(0, 50, 10)
        a[0] = b[0] = 1  # never an all-zero histogram
        assert js_distance(a, b) == pytest.approx(jensenshannon(a, b, base=2), abs=1e-12)
    assert js_distance([1, 0], [0, 1]) == pytest.approx(1.0)  # disjoint: the maximum
    assert js_distance([3, 4], [6, 8]) == 0.0


@pytest.mark.parametrize("shift", [0.1, 0.25, 0.5, 1.0])
def test_a_known_shift_gives_the_expected_psi(shift):
    """N(0, 1) binned at its deciles against N(shift, 1): the exact PSI from the normal CDF, and 100,000 draws
    counted by the aggregator's histogram within sampling error of it."""
    p = np.full(10, 0.1)
    q = np.diff(np.concatenate([[0.0], norm.cdf(DECILES - shift), [1.0]]))
    exact = float(np.sum((q - p) * np.log(q / p)))
    draws = np.random.default_rng(15).normal(shift, 1.0, 100_000)
    counts, _ = B.histogram(tuple(DECILES), draws)
    measured = psi([1] * 10, counts)  # equal baseline counts: p = 0.1 per bin
    # Sampling error by the delta method: PSI's gradient in q is g = ln(q/p) + 1 - p/q; plus the (B-1)/N bias.
    g = np.log(q / p) + 1 - p / q
    sd = math.sqrt(float(np.sum(g**2 * q) - np.sum(g * q) ** 2) / len(draws))
    assert abs(measured - exact) < 4 * sd + 9 / len(draws), (measured, exact, sd)
    assert js_distance([1] * 10, counts) == pytest.approx(jensenshannon(p, q, base=2), rel=0.15)
    if shift >= 0.5:
        assert verdict(measured, len(draws)) is Verdict.DRIFT  # 0.5 σ is a drift by the default thresholds
    elif shift <= 0.1:
        assert verdict(measured, len(draws)) is Verdict.OK


@pytest.mark.parametrize("n", [10, 1_000, 100_000])
def test_no_shift_stays_below_warn_or_says_not_enough_data(n):
    """The same distribution as the baseline never warns, over several seeds; below min_count: no verdict."""
    worst = 0.0
    for seed in range(8):
        rng = np.random.default_rng(seed)
        train = rng.normal(0, 1, 20_000)
        edges, _ = B.fit_edges(train, 10)
        expected, _ = B.histogram(edges, train)
        counts, _ = B.histogram(edges, rng.normal(0, 1, n))
        result = compare(expected, counts)
        assert result.count == n and math.isfinite(result.psi)
        if n < Thresholds().min_count:
            assert result.verdict is Verdict.NOT_ENOUGH_DATA
        else:
            assert result.verdict is Verdict.OK, (seed, result)
            worst = max(worst, result.psi)
    if n >= Thresholds().min_count:
        assert worst < Thresholds().warn_psi / 2  # far from the threshold, not just under it


def test_verdict_thresholds_and_their_boundaries():
    t = Thresholds()
    assert (t.warn_psi, t.drift_psi, t.min_count) == (0.1, 0.2, 500)
    assert verdict(0.0999, 500) is Verdict.OK
    assert verdict(0.1, 500) is Verdict.WARN
    assert verdict(0.1999, 10_000) is Verdict.WARN
    assert verdict(0.2, 10_000) is Verdict.DRIFT
    assert verdict(5.0, 499) is Verdict.NOT_ENOUGH_DATA
    assert verdict(0.15, 20, Thresholds(warn_psi=0.2, drift_psi=0.3, min_count=10)) is Verdict.OK
    for bad in (dict(warn_psi=0.3, drift_psi=0.2), dict(warn_psi=0.0), dict(min_count=0)):
        with pytest.raises(ValueError):
            Thresholds(**bad)


def test_compare_shows_every_score_and_handles_an_empty_fleet():
    empty = compare([1, 2, 3], [0, 0, 0])
    assert empty.verdict is Verdict.NOT_ENOUGH_DATA and empty.count == 0 and math.isnan(empty.psi)
    drifted = compare([100] * 4, [400, 0, 0, 100])
    assert drifted.drifted and drifted.psi == psi([100] * 4, [400, 0, 0, 100]) and 0 < drifted.js <= 1
    with pytest.raises(ValueError):
        psi([1, 2], [1, 2, 3])

"""Drift statistics on histograms of counts: the baseline's bins against the fleet's, same bins.

With ``p`` the baseline proportions and ``q`` the fleet's (``p_i = n_i / sum(n)``):

- Population stability index: ``PSI = sum_i (q_i - p_i) * ln(q_i / p_i)``, the symmetrised Kullback–Leibler
  divergence ``KL(q||p) + KL(p||q)``. An empty bin would make it infinite, so each proportion is first raised to at
  least ``PSI_EPSILON`` (1e-4, not renormalised): one empty bin then adds at most about
  ``p_i * ln(p_i / 1e-4)``, 0.07 for a 1 % bin, instead of infinity.
- Jensen–Shannon distance, base 2: ``JS = sqrt(KL(p||m)/2 + KL(q||m)/2)`` with ``m = (p + q) / 2``; bounded in
  [0, 1], defined with empty bins, a metric (the square root of the divergence).

Both are effect sizes, not tests: they do not grow with the sample size (a p-value does, and flags everything at a
large fleet). Their sampling noise shrinks with it: with ``B`` bins and ``N`` fleet samples from the baseline's own
distribution, ``N * PSI`` is roughly chi-squared with ``B - 1`` degrees of freedom, so ``PSI ≈ (B - 1) / N`` on
average; below ``min_count`` samples that noise alone can reach the warn threshold, hence "not enough data".
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass

PSI_EPSILON = 1e-4


class Verdict(str, enum.Enum):
    OK = "ok"
    WARN = "warn"
    DRIFT = "drift"
    NOT_ENOUGH_DATA = "not_enough_data"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Thresholds:
    """When a PSI is a warning or drift. The defaults are the usual PSI conventions (< 0.1 stable, 0.1–0.2 a
    moderate shift, >= 0.2 a significant one)."""

    warn_psi: float = 0.1  # PSI >= this (and < drift_psi): warn
    drift_psi: float = 0.2  # PSI >= this: drift
    # Fleet samples below which no verdict is given. With 10 bins, (B - 1) / N is 0.018 at 500 and the 99.9th
    # percentile of chi-squared(9) / N is 0.056: no-shift noise stays well under warn_psi.
    min_count: int = 500

    def __post_init__(self) -> None:
        if not 0 < self.warn_psi <= self.drift_psi or not math.isfinite(self.drift_psi):
            raise ValueError(f"thresholds need 0 < warn_psi <= drift_psi, got {self.warn_psi} and {self.drift_psi}")
        if self.min_count < 1:
            raise ValueError(f"min_count must be at least 1, got {self.min_count}")


def proportions(counts: Sequence[int]) -> list[float]:
    counts = [int(c) for c in counts]  # numpy integers too
    total = sum(counts)
    if total <= 0 or any(c < 0 for c in counts):
        raise ValueError("proportions need non-negative counts with a positive total")
    return [c / total for c in counts]


def _pair(expected: Sequence[int], actual: Sequence[int]) -> tuple[list[float], list[float]]:
    if len(expected) != len(actual) or len(expected) == 0:
        raise ValueError(f"histograms of {len(expected)} and {len(actual)} bins cannot be compared")
    return proportions(expected), proportions(actual)


def psi(expected: Sequence[int], actual: Sequence[int], *, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index of ``actual`` against ``expected`` (counts per bin, same bins)."""
    p, q = _pair(expected, actual)
    total = 0.0
    for pi, qi in zip(p, q, strict=True):
        pi, qi = max(pi, epsilon), max(qi, epsilon)
        total += (qi - pi) * math.log(qi / pi)
    return total


def js_distance(expected: Sequence[int], actual: Sequence[int]) -> float:
    """Jensen–Shannon distance (base 2, in [0, 1]) between two histograms of counts."""
    p, q = _pair(expected, actual)
    divergence = 0.0
    for pi, qi in zip(p, q, strict=True):
        mi = (pi + qi) / 2
        if pi > 0:
            divergence += pi * math.log2(pi / mi) / 2
        if qi > 0:
            divergence += qi * math.log2(qi / mi) / 2
    return math.sqrt(max(divergence, 0.0))  # rounding can leave -1e-17 for identical histograms


def verdict(psi_value: float, count: int, thresholds: Thresholds = Thresholds()) -> Verdict:
    """The flag for one histogram: not enough data below ``min_count`` samples, else by PSI."""
    if count < thresholds.min_count or math.isnan(psi_value):
        return Verdict.NOT_ENOUGH_DATA
    if psi_value >= thresholds.drift_psi:
        return Verdict.DRIFT
    if psi_value >= thresholds.warn_psi:
        return Verdict.WARN
    return Verdict.OK


@dataclass(frozen=True)
class Comparison:
    """Every raw score of one histogram comparison, and the verdict drawn from them."""

    psi: float  # NaN when the fleet counted nothing
    js: float
    count: int  # fleet samples in the histogram
    verdict: Verdict

    @property
    def drifted(self) -> bool:
        return self.verdict is Verdict.DRIFT


def compare(expected: Sequence[int], actual: Sequence[int], thresholds: Thresholds = Thresholds()) -> Comparison:
    """PSI, JS distance, count and verdict of the fleet's histogram ``actual`` against the baseline's."""
    count = int(sum(actual))
    if count == 0:
        return Comparison(math.nan, math.nan, 0, Verdict.NOT_ENOUGH_DATA)
    value = psi(expected, actual)
    return Comparison(value, js_distance(expected, actual), count, verdict(value, count, thresholds))

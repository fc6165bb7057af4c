"""Latency statistics, computed the same way for this machine and for a phone's ``benchmark_model`` output."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class LatencyStats:
    """Milliseconds over the timed runs (warm-up excluded)."""

    count: int
    min: float
    mean: float
    std: float  # population standard deviation, as LiteRT's benchmark tools report it
    p50: float | None  # None only for phone results whose tool did not print it
    p90: float | None
    p95: float | None
    p99: float | None
    max: float

    @classmethod
    def of(cls, samples_ms: Sequence[float]) -> LatencyStats:
        if not samples_ms:
            raise ValueError("no timed runs")
        xs = sorted(float(x) for x in samples_ms)
        n = len(xs)
        mean = math.fsum(xs) / n
        var = math.fsum((x - mean) ** 2 for x in xs) / n
        return cls(
            n,
            xs[0],
            mean,
            math.sqrt(var),
            percentile(xs, 50),
            percentile(xs, 90),
            percentile(xs, 95),
            percentile(xs, 99),
            xs[-1],
        )


def percentile(sorted_xs: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), on already sorted data."""
    if not sorted_xs:
        raise ValueError("empty")
    if len(sorted_xs) == 1:
        return float(sorted_xs[0])
    pos = (len(sorted_xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_xs) - 1)
    frac = pos - lo
    return float(sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * frac)


def median(xs: Sequence[float]) -> float:
    return percentile(sorted(xs), 50)

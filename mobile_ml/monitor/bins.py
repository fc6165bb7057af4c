"""The bin rule, bin edges from training data, and image summaries: everything a device and the baseline must
compute identically (the Android ``Aggregator`` mirrors this file; ``tests/vectors/aggregates/`` holds cases both
sides replay).

Rule: ``edges`` are strictly increasing finite cut points; ``bin_index(edges, v)`` is the number of edges ``<= v``.
Bins are left-closed, right-open ``[e[i-1], e[i])``; bin 0 is open below (``-inf`` included) and the last bin open
above (``+inf`` included): a value outside the training range lands in an end bin, never nowhere. NaN has no bin
(``None``): the aggregator counts it as ``missing``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mobile_ml.contracts.baseline import MAX_BINS

if TYPE_CHECKING:
    import numpy as np

DEFAULT_BINS = 10
MAX_REQUESTED_BINS = MAX_BINS - 2  # a discrete feature may add two bins to what was asked for

# Top-1 confidence (a softmax maximum, in [1/classes, 1]): finer near 1, where a confident model's mass sits.
CONFIDENCE_EDGES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
# Latency in milliseconds, log-spaced 1-2-5 per decade from 0.5 ms (a tiny model) to 10 s (a stalled phone).
LATENCY_EDGES_MS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0)


def bin_index(edges: Sequence[float], value: float) -> int | None:
    """The bin of ``value``: how many edges are ``<= value``; None for NaN."""
    if math.isnan(value):
        return None
    return bisect.bisect_right(edges, value)


def histogram(edges: Sequence[float], values: np.ndarray) -> tuple[list[int], int]:
    """Counts per bin of ``values`` under the rule above, and how many were NaN."""
    import numpy as np

    values = np.asarray(values, dtype=np.float64).ravel()
    nan = np.isnan(values)
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), values[~nan], side="right")  # = bisect_right
    return np.bincount(index, minlength=len(edges) + 1).tolist(), int(nan.sum())


def fit_edges(values: np.ndarray, bins: int = DEFAULT_BINS) -> tuple[tuple[float, ...], bool]:
    """Edges for one feature from its train-split values, and whether it was treated as discrete.

    - Continuous (more than ``bins`` distinct values): the ``1/bins … (bins-1)/bins`` quantiles, deduplicated, so
      each bin holds about ``1/bins`` of the train rows (fewer bins when values tie, e.g. a spike at zero).
    - Discrete (at most ``bins`` distinct values: a one-hot feature, a flag, a small count, a constant): one edge
      per distinct value and one just above the largest, so every seen value has its own bin, with one bin for
      anything below the smallest and one for anything above the largest. A one-hot feature gets 4 bins
      (below 0, 0, 1, above 1); a constant 3.
    NaN values are ignored (prepared data has none); a feature with no finite value is refused.
    """
    import numpy as np

    if not 2 <= bins <= MAX_REQUESTED_BINS:
        raise ValueError(f"bins must be in [2, {MAX_REQUESTED_BINS}], got {bins}")
    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError("no finite value to fit bin edges on")
    distinct = np.unique(values)
    if distinct.size <= bins:
        edges = [*distinct.tolist(), math.nextafter(float(distinct[-1]), math.inf)]
        return tuple(float(e) for e in edges), True
    cuts = np.quantile(values, np.arange(1, bins) / bins)
    return tuple(float(e) for e in np.unique(cuts)), False


def image_summaries(x: np.ndarray, channels: int) -> np.ndarray:
    """Per image: mean intensity then contrast (population standard deviation) of each channel, in raw pixel units.

    ``x`` is one image (H, W, C) or a batch (N, H, W, C), channels last; any shape whose size is a multiple of
    ``channels`` per image works (a flattened image too). Float64, two passes, as the Kotlin twin computes it.
    """
    import numpy as np

    x = np.asarray(x, dtype=np.float64)
    batch = x.reshape(len(x), -1, channels) if x.ndim == 4 else x.reshape(1, -1, channels)
    mean = batch.mean(axis=1)
    std = np.sqrt(((batch - mean[:, None, :]) ** 2).mean(axis=1))
    out = np.concatenate([mean, std], axis=1)  # the order of image_feature_names(channels)
    return out if x.ndim == 4 else out[0]


def top1(probs: Sequence[float] | np.ndarray) -> tuple[int, float]:
    """The predicted class (the first of equal maxima, as Kotlin's loop takes it) and its probability."""
    best = 0
    for i in range(1, len(probs)):
        if probs[i] > probs[best]:
            best = i
    return best, float(probs[best])

"""Building ``baseline.json`` from a run's splits and the test split's predictions (``mobile_ml.contracts.baseline``).

The exporter calls ``build_baseline`` (or ``baseline_for_run``) once per variant, with that variant's test-split
probabilities, and ``write_baseline`` beside the variant's ``metadata.json``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from mobile_ml.contracts import write_document
from mobile_ml.contracts.baseline import (
    MAX_CLASSES,
    MAX_FEATURES,
    Baseline,
    BaselineKind,
    FeatureBaseline,
    image_feature_names,
)
from mobile_ml.errors import DataError
from mobile_ml.monitor import bins as B

if TYPE_CHECKING:
    import numpy as np

    from mobile_ml.train.rundir import Run

BASELINE_FILE = "baseline.json"


def build_baseline(
    x_train: np.ndarray,
    x_test: np.ndarray,
    *,
    features: Sequence[str],
    kind: Literal["tabular", "image"] | BaselineKind,
    test_probs: np.ndarray,
    labels: Sequence[str],
    bins: int = B.DEFAULT_BINS,
) -> Baseline:
    """The baseline of one model variant.

    ``x_train`` / ``x_test``: raw model inputs (tabular: rows × ``features``; image: N × H × W × C, channels last).
    ``features``: the tabular feature names (ignored for images, whose features are the summaries).
    ``test_probs``: the variant's class probabilities on ``x_test`` (rows × labels).
    """
    import numpy as np

    kind = BaselineKind(kind)
    x_train, x_test = np.asarray(x_train, dtype=np.float64), np.asarray(x_test, dtype=np.float64)
    probs = np.asarray(test_probs, dtype=np.float64)
    if not 2 <= len(labels) <= MAX_CLASSES:
        raise DataError(f"a baseline needs 2 to {MAX_CLASSES} labels, got {len(labels)}")
    if len(x_train) == 0 or len(x_test) == 0:
        raise DataError("a baseline needs rows in both the train and the test split")
    if probs.shape != (len(x_test), len(labels)):
        raise DataError(
            f"test_probs has shape {probs.shape}; expected ({len(x_test)}, {len(labels)}): one row per test input"
        )
    if not np.isfinite(probs).all():
        raise DataError("test_probs holds NaN or infinite values", hint="the model diverged; train it again")
    channels: int | None = None
    if kind is BaselineKind.IMAGE:
        if x_train.ndim != 4 or x_test.shape[1:] != x_train.shape[1:]:
            raise DataError(f"image splits must be N × H × W × C alike, got {x_train.shape} and {x_test.shape}")
        channels = int(x_train.shape[3])
        names: Sequence[str] = image_feature_names(channels)
        x_train, x_test = B.image_summaries(x_train, channels), B.image_summaries(x_test, channels)
    else:
        names = list(features)
        if x_train.ndim != 2 or x_train.shape[1] != len(names) or x_test.shape[1:] != x_train.shape[1:]:
            raise DataError(
                f"tabular splits must be rows × {len(names)} features, got {x_train.shape} and {x_test.shape}"
            )
        if len(names) > MAX_FEATURES:
            raise DataError(
                f"{len(names)} features; a baseline monitors at most {MAX_FEATURES}",
                hint="drop or combine columns (`mobile-ml data prepare --drop ...`)",
            )
    return Baseline(
        kind=kind,
        labels=tuple(labels),
        train_rows=len(x_train),
        test_rows=len(x_test),
        features=tuple(_feature(name, x_train[:, j], x_test[:, j], bins) for j, name in enumerate(names)),
        predictions=tuple(np.bincount(probs.argmax(axis=1), minlength=len(labels)).tolist()),
        confidence_edges=B.CONFIDENCE_EDGES,
        confidence=tuple(B.histogram(B.CONFIDENCE_EDGES, probs.max(axis=1))[0]),
        latency_edges_ms=B.LATENCY_EDGES_MS,
        image_channels=channels,
    )


def _feature(name: str, train: np.ndarray, test: np.ndarray, bins: int) -> FeatureBaseline:
    try:
        edges, discrete = B.fit_edges(train, bins)
    except ValueError as e:
        raise DataError(f"feature {name!r}: {e}") from None
    train_counts, train_nan = B.histogram(edges, train)
    test_counts, test_nan = B.histogram(edges, test)
    if train_nan or test_nan:
        raise DataError(f"feature {name!r} has NaN values in the splits", hint="re-run `mobile-ml data prepare`")
    return FeatureBaseline(name, edges, tuple(train_counts), tuple(test_counts), discrete)


def write_baseline(path: str | os.PathLike[str], baseline: Baseline) -> None:
    write_document(path, baseline)


def baseline_for_run(run: Run, *, test_probs: np.ndarray | None = None, bins: int = B.DEFAULT_BINS) -> Baseline:
    """The baseline of a training run: its own train and test splits; ``test_probs`` from the exported variant
    (or, when None, from the run's Keras model, which loads TensorFlow)."""
    x_train, _ = run.split("train")
    x_test, _ = run.split("test")
    if test_probs is None:
        from mobile_ml import _tf

        with _tf.quiet_stderr():
            test_probs = run.load_model().predict(x_test, verbose=0)
    return build_baseline(
        x_train,
        x_test,
        features=run.spec.features,
        kind=run.spec.kind.value,
        test_probs=test_probs,
        labels=run.spec.labels,
        bins=bins,
    )

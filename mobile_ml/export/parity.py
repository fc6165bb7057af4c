"""How an exported variant's answers compare with the source model's, on the evaluation rows.

Classification: accuracy and its drop, top-1 agreement, probability differences (``classification``).
Regression: mean, root-mean-square and worst |Δ| against the Keras outputs, on the target's scale, and each
model's own error against the true targets (``regression``). Every model, whatever its task: the max and mean |Δ| of
each output tensor (``output_diffs``), so a model with several outputs shows which one moved.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mobile_ml.contracts.export import OutputDiff, Parity, RegressionFigures, RegressionParity, Task, Verdict
from mobile_ml.contracts.variants import ExportOptions
from mobile_ml.train.metrics import Metrics, classification_metrics

__all__ = ["classification", "default_max_error", "judge", "output_diffs", "regression", "regression_figures"]


def classification(
    probs: np.ndarray, y: np.ndarray, labels: Sequence[str], keras_probs: np.ndarray, keras_metrics: Metrics
) -> Parity:
    m = classification_metrics(y, probs, list(labels))
    diff = np.abs(probs.astype(np.float64) - keras_probs.astype(np.float64))
    return Parity(
        m,
        round((keras_metrics.accuracy - m.accuracy) * 100, 6),
        float((probs.argmax(1) == keras_probs.argmax(1)).mean()) if len(y) else 0.0,
        float(diff.max()) if diff.size else 0.0,
        float(diff.mean()) if diff.size else 0.0,
    )


def regression_figures(pred: np.ndarray, y: np.ndarray) -> RegressionFigures:
    """Error of ``pred`` against the true targets ``y`` (same rows; several target columns are pooled)."""
    err = np.asarray(pred, np.float64).reshape(len(y), -1) - np.asarray(y, np.float64).reshape(len(y), -1)
    if not err.size:
        return RegressionFigures(0.0, 0.0, 0)
    return RegressionFigures(float(np.abs(err).mean()), float(np.sqrt((err**2).mean())), len(y))


def regression(pred: np.ndarray, keras_pred: np.ndarray, y: np.ndarray | None) -> RegressionParity:
    diff = np.abs(np.asarray(pred, np.float64) - np.asarray(keras_pred, np.float64))
    n = len(pred)
    if not diff.size:
        return RegressionParity(n, 0.0, 0.0, 0.0, None)
    return RegressionParity(
        n,
        float(diff.mean()),
        float(np.sqrt((diff**2).mean())),
        float(diff.max()),
        regression_figures(pred, y) if y is not None else None,
    )


def output_diffs(got: Sequence[np.ndarray], want: Sequence[np.ndarray], names: Sequence[str]) -> tuple[OutputDiff, ...]:
    diffs = []
    for name, g, w in zip(names, got, want, strict=True):
        d = np.abs(np.asarray(g, np.float64) - np.asarray(w, np.float64))
        diffs.append(OutputDiff(name, float(d.max()) if d.size else 0.0, float(d.mean()) if d.size else 0.0))
    return tuple(diffs)


def default_max_error(y: np.ndarray | None, keras_pred: np.ndarray) -> float:
    """The regression budget when ``--max-error`` is not given: 1 % of the targets' standard deviation.

    A mean shift of 1 % of the spread is below what any regression metric a user reads would show; the value is
    recorded in ``export.json``'s options, so the gate stays reproducible and the user sees the figure to override.
    """
    ref = y if y is not None else keras_pred
    spread = float(np.std(np.asarray(ref, np.float64))) if np.size(ref) else 0.0
    return float(f"{max(spread * 0.01, 1e-6):.3g}")


def judge(parity: Parity | None, reg: RegressionParity | None, options: ExportOptions, task: Task) -> Verdict:
    """The gate for one variant: accuracy drop within ``max_accuracy_drop``, or mean |Δ| within ``max_error``."""
    from mobile_ml.export.report import verdict

    if task is Task.CLASSIFICATION:
        return verdict(parity, options.max_accuracy_drop)
    if reg is None:
        return Verdict.NOT_EVALUATED
    budget = options.max_error if options.max_error is not None else 0.0
    return Verdict.PASS if reg.mae <= budget + 1e-12 else Verdict.FAIL

"""Classification metrics from predicted probabilities, in numpy (the export stage reuses them on LiteRT output)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mobile_ml.contracts.run import ClassMetrics, Metrics

__all__ = ["ClassMetrics", "Metrics", "classification_metrics"]


def classification_metrics(y_true: np.ndarray, probabilities: np.ndarray, labels: Sequence[str]) -> Metrics:
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probabilities, dtype=np.float64)
    k = len(labels)
    pred = probs.argmax(axis=1)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y_true, pred), 1)
    tp = np.diag(cm).astype(np.float64)
    predicted = cm.sum(axis=0)
    support = cm.sum(axis=1)
    # A class never predicted has precision 0 (sklearn's zero_division=0), so the macro average is not flattered.
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(k), where=denom > 0)
    p_true = np.clip(probs[np.arange(len(y_true)), y_true], 1e-7, 1.0)
    present = support > 0  # macro averages over classes that occur in this split
    return Metrics(
        accuracy=float((pred == y_true).mean()) if len(y_true) else 0.0,
        loss=float(-np.log(p_true).mean()) if len(y_true) else 0.0,
        macro_precision=float(precision[present].mean()) if present.any() else 0.0,
        macro_recall=float(recall[present].mean()) if present.any() else 0.0,
        macro_f1=float(f1[present].mean()) if present.any() else 0.0,
        examples=int(len(y_true)),
        per_class=[
            ClassMetrics(labels[i], float(precision[i]), float(recall[i]), float(f1[i]), int(support[i]))
            for i in range(k)
        ],
        confusion_matrix=cm.tolist(),
    )

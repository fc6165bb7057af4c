"""``baseline.json`` for one exported variant: what ``mobile_ml.export.variant`` calls once the variant is proven.

The reference sides, by route:
- a training run: its whole train split and its test split (the rows parity was measured on);
- a model file: the calibration rows as the train side (the rows the user says the model sees; never the
  evaluation rows, which are the test side), the evaluation rows as the test side.
The prediction and confidence part is the variant's own LiteRT probabilities on the test side, so a device running
that variant compares like with like.

Where no baseline can be built (a regression model, several inputs, no calibration rows, more features than a
baseline monitors) the variant is exported without one and the reason is returned as a note: monitoring is an
addition to a model, never a reason to refuse exporting it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mobile_ml.contracts.baseline import Baseline, BaselineKind
from mobile_ml.contracts.export import Task
from mobile_ml.errors import DataError
from mobile_ml.monitor.baseline import BASELINE_FILE, build_baseline, write_baseline

if TYPE_CHECKING:
    import numpy as np

    from mobile_ml.export.sources import Exportable


def write_beside(src: Exportable, vdir: Path, outputs: list[np.ndarray]) -> str:
    """Write ``vdir/baseline.json`` for the variant whose LiteRT ``outputs`` on ``src.eval`` are given; return ""
    when written, else a note saying why the variant has none."""
    try:
        baseline = baseline_of_export(src, outputs)
    except DataError as e:
        return f"no {BASELINE_FILE}: {e.message}"
    write_baseline(vdir / BASELINE_FILE, baseline)
    return ""


def baseline_of_export(src: Exportable, outputs: list[np.ndarray]) -> Baseline:
    """The baseline of one variant of ``src`` (``DataError`` saying why when there can be none)."""
    import numpy as np

    if src.task is not Task.CLASSIFICATION or len(outputs) != 1:
        raise DataError("monitoring baselines are built for classifiers with one output")
    if len(src.model.inputs) != 1:
        raise DataError("monitoring baselines are built for models with one input")
    name = src.model.inputs[0].name
    x_test = np.asarray(src.eval.x[name])
    if src.run is not None:
        x_train = np.asarray(src.run.split("train")[0])
    elif src.calibration is not None:
        x_train = np.asarray(src.calibration.x[name])
        if src.input_range is not None:  # sources._spanning appended two rows (all LOW, all HIGH): not data
            x_train = x_train[:-2]
    else:
        raise DataError("a model file's baseline needs calibration rows (--calibration FILE or --data DATADIR)")
    if src.spec is not None:
        kind, features = BaselineKind(src.spec.kind.value), list(src.spec.features)
    elif x_test.ndim == 4:
        kind, features = BaselineKind.IMAGE, []
    elif x_test.ndim == 2:
        kind, features = BaselineKind.TABULAR, [f"{name}[{j}]" for j in range(x_test.shape[1])]
    else:
        raise DataError(f"input {name} has shape {list(x_test.shape[1:])}: neither an image (H × W × C) nor a row")
    probs = np.asarray(outputs[0], dtype=np.float64).reshape(len(x_test), -1)
    return build_baseline(x_train, x_test, features=features, kind=kind, test_probs=probs, labels=src.labels)

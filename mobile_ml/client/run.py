"""Run the device's current model on one input, as the app would: the model current.json names, with LiteRT."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobile_ml.client import inference_reports
from mobile_ml.client.bundled import bundled_model
from mobile_ml.client.state import current_model
from mobile_ml.contracts import StrictJSONError, loads
from mobile_ml.errors import InputFileError


@dataclass(frozen=True)
class Prediction:
    version: str
    top: tuple[tuple[str, float], ...]  # (label, probability), most likely first
    latency_ms: float
    raw_input: Any = field(default=None, repr=False, compare=False)  # the input as given, for capture (client/capture)
    labels: tuple[str, ...] = field(default=(), repr=False, compare=False)  # the model's labels, to check --label

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "top": [{"label": label, "probability": p} for label, p in self.top],
            "latency_ms": self.latency_ms,
        }


def run_model(
    state_dir: Path, input_path: Path | None = None, *, top: int = 3, bundled: Path | None = None
) -> Prediction:
    """Predict on ``input_path`` (JSON nested lists shaped like the model input; default: the model's own
    health-check input) with the device's current model, or the ``bundled`` one when no downloaded model is whole."""
    import numpy as np

    from mobile_ml.export import tflite_file
    from mobile_ml.export.metadata import model_input  # the numeric preprocessing metadata.json asks the app for

    found = current_model(state_dir)
    if found is not None:
        vdir, meta = found
        version = vdir.name
    else:
        bundle = bundled_model(bundled) if bundled else None
        if bundle is None:
            hint = "run `mobile-ml device sync` first" + ("" if bundled else ", or pass --bundled DIR")
            raise InputFileError(
                f"{state_dir} has no current model" + (f" and {bundled} no valid bundle" if bundled else ""), hint=hint
            )
        vdir, meta, version = bundle
    if meta.inputs:  # several inputs (a model file): fed by name, as the health check does
        model = vdir / "model.tflite"
        interpreter = tflite_file.load_interpreter(model.read_bytes(), str(model))
        rows = _named_rows(meta, _read_input(input_path) if input_path else None)
        names = [o.name for o in meta.outputs] or [meta.output.name]
        t0 = time.perf_counter()
        got = tflite_file.predict_named(interpreter, rows, names)
        ms = (time.perf_counter() - t0) * 1e3
        inference_reports.record(state_dir, version, ms)  # sent with the next `device sync`, as the app does
        return Prediction(version, _top(meta, np.concatenate([g.reshape(-1) for g in got]), top), ms)
    raw = _read_input(input_path) if input_path else meta.health_check.input
    try:
        x = model_input(meta, raw)
    except (ValueError, TypeError) as e:  # ragged lists, strings
        raise InputFileError(f"input {input_path} is not an array of numbers: {e}", hint=_HINT) from e
    shape = list(meta.input.tensor.shape[1:])
    if x.size != int(np.prod(shape)):
        raise InputFileError(
            f"input has {x.size} values; the model takes {int(np.prod(shape))} ({shape})",
            hint="see input in the model's metadata.json",
        )
    model = vdir / "model.tflite"
    interpreter = tflite_file.load_interpreter(model.read_bytes(), str(model))
    t0 = time.perf_counter()
    probs = tflite_file.predict(interpreter, x.reshape([1, *shape]))[0]
    ms = (time.perf_counter() - t0) * 1e3
    inference_reports.record(state_dir, version, ms)
    return Prediction(version, _top(meta, probs, top), ms, raw, tuple(str(lab) for lab in meta.labels))


def _top(meta: Any, values: Any, top: int) -> tuple[tuple[str, float], ...]:
    """Classification: the ``top`` most likely labels. Regression (no labels): every predicted value, in output
    order, named after the target (``price``, or ``price[1]`` ... when the model predicts several values)."""
    import numpy as np

    from mobile_ml.contracts.export import Task

    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if meta.task is Task.REGRESSION:
        name = meta.target or "value"
        return tuple((name if values.size == 1 else f"{name}[{i}]", float(v)) for i, v in enumerate(values))
    return tuple((str(meta.labels[i]), float(values[i])) for i in np.argsort(-values)[:top])


def _named_rows(meta: Any, given: Any) -> dict[str, Any]:
    """One row per input of a several-input model: ``given`` is a JSON object of input name → values (default:
    the health-check case's rows)."""
    import numpy as np

    named = given if given is not None else meta.health_check.inputs
    want = {spec.name: spec for spec in meta.inputs}
    if not isinstance(named, dict) or set(named) != set(want):
        raise InputFileError(
            f"the model has inputs {', '.join(sorted(want))}: the input must be a JSON object with one array each",
            hint='e.g. {"' + '": [...], "'.join(sorted(want)) + '": [...]}',
        )
    rows = {}
    for name, spec in want.items():
        shape = [1, *spec.tensor.shape[1:]]
        try:
            rows[name] = np.asarray(named[name], dtype=np.float32).reshape(shape)
        except (ValueError, TypeError) as e:
            raise InputFileError(f"input {name} does not fit the model's shape {shape[1:]}: {e}", hint=_HINT) from e
    return rows


_HINT = "a JSON array shaped like the model input"


def _read_input(path: Path) -> Any:
    hint = _HINT
    try:
        return loads(path.read_bytes())
    except OSError as e:
        raise InputFileError(f"cannot read input {path}: {e.strerror}", hint=hint) from e
    except StrictJSONError as e:
        raise InputFileError(f"input {path} is not valid JSON: {e}", hint=hint) from e

"""Run the device's current model on one input, as the app would: the model current.json names, with LiteRT."""

from __future__ import annotations

import time
from dataclasses import dataclass
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
    try:
        x = model_input(meta, _read_input(input_path) if input_path else meta.health_check.input)
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
    inference_reports.record(state_dir, version, ms)  # sent with the next `device sync`, as the app does
    best = tuple((str(meta.labels[i]), float(probs[i])) for i in np.argsort(-probs)[:top])
    return Prediction(version, best, ms)


_HINT = "a JSON array shaped like the model input"


def _read_input(path: Path) -> Any:
    hint = _HINT
    try:
        return loads(path.read_bytes())
    except OSError as e:
        raise InputFileError(f"cannot read input {path}: {e.strerror}", hint=hint) from e
    except StrictJSONError as e:
        raise InputFileError(f"input {path} is not valid JSON: {e}", hint=hint) from e

"""``metadata.json`` beside every exported model: what an app needs to feed it, read it and trust it.

It says which preprocessing the model does itself (normalization is baked in at training) and which the app must do
(resize, feature encoding, quantizing integer inputs), what the output means, and carries a known input with its
expected output so a device can health-check a model right after downloading it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mobile_ml.data.spec import DataSpec
from mobile_ml.export import tflite_file
from mobile_ml.export.tflite_file import TensorInfo
from mobile_ml.outputs import read_json

SCHEMA = "mobile_ml.model_metadata"
SCHEMA_VERSION = 1


def input_spec(spec: DataSpec) -> dict[str, Any]:
    if spec.image is not None:
        img = spec.image
        return {
            "kind": "image",
            "height": img.height,
            "width": img.width,
            "channels": img.channels,
            "layout": "NHWC",
            "value_range": list(img.value_range),
        }
    return {
        "kind": "tabular",
        "features": list(spec.features),
        "columns": [{k: v for k, v in asdict(c).items() if v is not None} for c in spec.columns],
    }


def preprocessing(spec: DataSpec, inp: TensorInfo) -> dict[str, list[str]]:
    norm = spec.normalization
    inside = [f"normalization (x - mean) / std per {norm.axis}, mean {_short(norm.mean)}, std {_short(norm.std)}"]
    if spec.image is not None:
        img = spec.image
        lo, hi = img.value_range
        app = [
            f"resize to {img.height}×{img.width} with {img.channels} channel(s), NHWC",
            f"raw pixel values in [{lo:g}, {hi:g}] as float (do not normalize: the model does)",
        ]
    else:
        app = [
            "encode each row into `features`, in that order, as `input.columns` describes: numeric columns as "
            "numbers, categorical columns one-hot over `vocabulary` (anything else sets `unknown_feature`), "
            "missing values replaced by `impute`"
        ]
    if inp.scale is not None:
        app.append(
            f"quantize to {inp.dtype}: q = round(x / {inp.scale:.9g}) + {inp.zero_point}, clamped to the "
            f"{inp.dtype} range"
        )
    return {"inside_model": inside, "app_must": app}


def _short(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.6g}" for v in values[:8]) + (", …]" if len(values) > 8 else "]")


def health_check_case(interpreter, x: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """A known input (one row of the test split) and this model's output on it, with the tolerance to allow."""
    inputs, outputs = tflite_file.io_details(interpreter)
    probs = tflite_file.predict(interpreter, x[:1])[0]
    out = outputs[0]
    # Float kernels differ by rounding between CPUs; an integer model may differ by one quantization step.
    atol = max(1e-3, 2 * out.scale) if out.scale is not None else 1e-3
    case = {
        "input": x[:1].tolist(),
        "expected_probabilities": [float(p) for p in probs],
        "expected_top1": int(np.argmax(probs)),
        "expected_label": labels[int(np.argmax(probs))],
        "atol": atol,
    }
    if inputs[0].scale is not None:
        case["input_quantized"] = tflite_file.quantize(x[:1], inputs[0]).tolist()
    return case


def build(
    spec: DataSpec,
    variant: str,
    description: str,
    inputs: list[TensorInfo],
    outputs: list[TensorInfo],
    parity: dict[str, Any],
    health: dict[str, Any],
    model_sha256: str,
    model_bytes: int,
) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "variant": variant,
        "description": description,
        "model": {"file": "model.tflite", "sha256": model_sha256, "bytes": model_bytes},
        "labels": list(spec.labels),
        "target": spec.target,
        "input": {**input_spec(spec), "tensor": asdict(inputs[0])},
        "preprocessing": preprocessing(spec, inputs[0]),
        "output": {"meaning": "softmax probabilities over `labels`, in label order", "tensor": asdict(outputs[0])},
        "parity": parity,
        "health_check": health,
    }


@dataclass(frozen=True)
class HealthResult:
    ok: bool
    top1: int
    max_abs_diff: float
    detail: str


def read(path: str | Path) -> dict[str, Any]:
    return read_json(path, SCHEMA, SCHEMA_VERSION, what="mobile-ml model metadata", redo="mobile-ml export")


def health_check(model: bytes, meta: dict[str, Any], where: str = "model") -> HealthResult:
    """Load ``model`` with LiteRT, run the metadata's known input, compare with the expected output."""
    case = meta["health_check"]
    interpreter = tflite_file.load_interpreter(model, where)
    probs = tflite_file.predict(interpreter, np.asarray(case["input"], dtype=np.float32))[0]
    expected = np.asarray(case["expected_probabilities"], dtype=np.float32)
    if probs.shape != expected.shape:
        return HealthResult(
            False, int(np.argmax(probs)), float("inf"), f"output has {probs.size} values, expected {expected.size}"
        )
    diff = float(np.max(np.abs(probs - expected)))
    top1 = int(np.argmax(probs))
    if top1 != case["expected_top1"]:
        return HealthResult(False, top1, diff, f"top-1 is {top1}, expected {case['expected_top1']}")
    if diff > case["atol"]:
        return HealthResult(False, top1, diff, f"outputs differ by {diff:.3g} (> {case['atol']:.3g})")
    return HealthResult(True, top1, diff, "ok")

"""``metadata.json`` beside every exported model: what an app needs to feed it, read it and trust it.

It says which preprocessing the model does itself (normalization is baked in at training, except in integer variants
of tabular models: see ``mobile_ml.export.normalization``) and which the app must do (resize, feature encoding,
normalizing when ``preprocessing.normalize`` is there, quantizing integer inputs), what the output means, and carries
a known input with its expected output so a device can health-check a model right after downloading it. The
document's shape is ``mobile_ml.contracts.model_metadata.ModelMetadata``; this module fills it and checks a model
against it.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from mobile_ml.contracts import parse_document, read_document
from mobile_ml.contracts.export import Parity, RegressionParity, Task
from mobile_ml.contracts.model_metadata import (
    FeatureNormalization,
    HealthCase,
    InputKind,
    InputSpec,
    MetadataParity,
    ModelFile,
    ModelMetadata,
    OutputSpec,
    RegressionMetadataParity,
)
from mobile_ml.contracts.variants import ExportOptions, TensorInfo, Variant
from mobile_ml.data.spec import DataSpec
from mobile_ml.export import tflite_file
from mobile_ml.export.normalization import normalize

SCHEMA = ModelMetadata.SCHEMA
SCHEMA_VERSION = ModelMetadata.SCHEMA_VERSION


def input_spec(spec: DataSpec, tensor: TensorInfo) -> InputSpec:
    if spec.image is not None:
        img = spec.image
        lo, hi = img.value_range
        return InputSpec(InputKind.IMAGE, tensor, img.height, img.width, img.channels, "NHWC", (float(lo), float(hi)))
    columns = tuple({k: v for k, v in asdict(c).items() if v is not None} for c in spec.columns)
    return InputSpec(InputKind.TABULAR, tensor, features=tuple(spec.features), columns=columns)


def preprocessing(
    spec: DataSpec, inp: TensorInfo, app_normalizes: FeatureNormalization | None = None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What the model does itself, and what the app must do, in order."""
    norm = spec.normalization
    inside: tuple[str, ...] = (
        f"normalization (x - mean) / std per {norm.axis}, mean {_short(norm.mean)}, std {_short(norm.std)}",
    )
    if app_normalizes is not None:
        inside = ()
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
        if app_normalizes is not None:
            app.append(
                "normalize each feature in float32: x = (x - mean) / std with `preprocessing.normalize.mean` and "
                "`.std` (one per feature, in `features` order); this integer model does not normalize"
            )
    if inp.scale is not None:
        app.append(
            f"quantize to {inp.dtype}: q = round(x / {inp.scale:.9g}) + {inp.zero_point}, clamped to the "
            f"{inp.dtype} range"
        )
    return inside, tuple(app)


def _short(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.6g}" for v in values[:8]) + (", …]" if len(values) > 8 else "]")


def health_check_case(
    interpreter, x: np.ndarray, labels: list[str], rows: Callable[[np.ndarray], np.ndarray] | None = None
) -> HealthCase:
    """A known input (one row of the test split) and this model's output on it, with the tolerance to allow.

    ``rows`` is the app's numeric preprocessing (normalization for integer tabular variants): the case keeps the
    row before it, as the app has it, and the quantized input after it.
    """
    inputs, outputs = tflite_file.io_details(interpreter)
    fed = rows(x[:1]) if rows is not None else x[:1]
    probs = tflite_file.predict(interpreter, fed)[0]
    out = outputs[0]
    # Float kernels differ by rounding between CPUs; an integer model may differ by one quantization step.
    atol = max(1e-3, 2 * out.scale) if out.scale is not None else 1e-3
    top1 = int(np.argmax(probs))
    quantized = tflite_file.quantize(fed, inputs[0]).tolist() if inputs[0].scale is not None else None
    return HealthCase(x[:1].tolist(), tuple(float(p) for p in probs), top1, labels[top1], atol, quantized)


def build(
    spec: DataSpec,
    variant: Variant,
    description: str,
    inputs: tuple[TensorInfo, ...],
    outputs: tuple[TensorInfo, ...],
    parity: MetadataParity,
    health: HealthCase,
    model_sha256: str,
    model_bytes: int,
    app_normalizes: FeatureNormalization | None = None,
) -> ModelMetadata:
    inside, app = preprocessing(spec, inputs[0], app_normalizes)
    return ModelMetadata(
        variant,
        description,
        ModelFile("model.tflite", model_sha256, model_bytes),
        tuple(spec.labels),
        spec.target,
        input_spec(spec, inputs[0]),
        inside,
        app,
        "softmax probabilities over `labels`, in label order",
        outputs[0],
        parity,
        health,
        app_normalizes,
    )


@dataclass(frozen=True)
class HealthResult:
    ok: bool
    top1: int
    max_abs_diff: float
    detail: str


def read(path: str | os.PathLike[str]) -> ModelMetadata:
    return read_document(ModelMetadata, Path(path))


def model_input(meta: ModelMetadata, x: Any) -> np.ndarray:
    """Rows as the app has them (image pixels, encoded table rows) → the real values the model's input takes.

    The numeric preprocessing metadata describes as numbers: per-feature normalization when the variant asks the app
    for it (``preprocessing.normalize``); otherwise the rows unchanged. Quantizing comes after, from the input tensor.
    """
    rows = np.asarray(x, dtype=np.float32)
    norm = meta.app_normalizes
    if norm is None:
        return rows
    if rows.shape[-1:] != (len(norm.mean),):
        raise ValueError(f"rows of {rows.shape[-1:]} values; the model takes {len(norm.mean)} features")
    return normalize(rows, norm)


def as_exported(model_path: str | os.PathLike[str], model: bytes, x: np.ndarray) -> np.ndarray:
    """``x`` as the model at ``model_path`` takes it: preprocessed as the metadata.json beside it asks, when that
    metadata describes these very bytes (integer tabular variants take normalized rows); otherwise unchanged."""
    import hashlib

    beside = Path(model_path).parent / "metadata.json"
    if not beside.is_file():
        return x
    meta = read(beside)
    return model_input(meta, x) if meta.model.sha256 == hashlib.sha256(model).hexdigest() else x


def health_check(model: bytes, meta: ModelMetadata | bytes | dict[str, Any], where: str = "model") -> HealthResult:
    """Load ``model`` with LiteRT, run the metadata's known input, compare with the expected output.

    ``meta`` may also be the file's bytes or parsed JSON: it is read through the contract first.
    """
    if not isinstance(meta, ModelMetadata):
        meta = parse_document(ModelMetadata, meta, where=f"metadata.json of {where}")
    case = meta.health_check
    interpreter = tflite_file.load_interpreter(model, where)
    if case.inputs is not None or meta.outputs:  # fed by name; several outputs side by side, as the case has them
        named = case.inputs if case.inputs is not None else {meta.input.name or "": case.input}
        rows = {k: np.asarray(v, dtype=np.float32) for k, v in named.items()}
        names = [o.name for o in meta.outputs] or [meta.output.name]
        got = tflite_file.predict_named(interpreter, rows, names)
        probs = np.concatenate([g.reshape(1, -1) for g in got], axis=1)[0]
    else:
        probs = tflite_file.predict(interpreter, model_input(meta, case.input))[0].reshape(-1)
    expected = np.asarray(case.expected_probabilities, dtype=np.float32)
    if probs.shape != expected.shape:
        return HealthResult(
            False, int(np.argmax(probs)), float("inf"), f"output has {probs.size} values, expected {expected.size}"
        )
    diff = float(np.max(np.abs(probs - expected)))
    top1 = int(np.argmax(probs))
    if top1 != case.expected_top1:
        return HealthResult(False, top1, diff, f"top-1 is {top1}, expected {case.expected_top1}")
    if diff > case.atol:
        return HealthResult(False, top1, diff, f"outputs differ by {diff:.3g} (> {case.atol:.3g})")
    return HealthResult(True, top1, diff, "ok")


def classification_parity(par: Parity, passed: bool, options: ExportOptions, keras_metrics) -> MetadataParity:
    return MetadataParity(
        **par.summary(),
        passed=passed,
        budget_pp=float(options.max_accuracy_drop),
        keras_accuracy=keras_metrics.accuracy,
    )


def rejudge(path: Path, passed: bool, options: ExportOptions) -> None:
    """Rewrite the gate's answer in a kept variant's metadata.json for today's budget."""
    from mobile_ml.contracts import write_document

    meta = read(path)
    if isinstance(meta.parity, MetadataParity):
        parity: Any = replace(meta.parity, passed=passed, budget_pp=float(options.max_accuracy_drop))
    else:
        parity = replace(meta.parity, passed=passed, max_error=float(options.max_error or 0.0))
    write_document(path, replace(meta, parity=parity))


def build_for_file(
    src: Any,
    variant: Variant,
    description: str,
    interpreter,
    par: Parity | None,
    reg: RegressionParity | None,
    passed: bool,
    options: ExportOptions,
    keras_metrics: Any,
    sha: str,
    nbytes: int,
    app_normalizes: FeatureNormalization | None = None,
) -> ModelMetadata:
    """metadata.json for a model that came as a file: each input and output by name, what the app feeds it
    (``--input-range``, or the data description given with ``--data``), and a health case from the eval rows.

    ``app_normalizes``: the integer variant was built from the model minus its leading Normalization layer
    (``normalization.split_file_model``); the input is then described as a table and the app normalizes."""
    runner = interpreter.get_signature_runner()
    sig_in, sig_out = runner.get_input_details(), runner.get_output_details()
    names_out = [o.name for o in src.model.outputs]
    out_keys = names_out if set(names_out) <= set(sig_out) else sorted(sig_out)
    in_specs = tuple(_file_input(src, name, TensorInfo.from_details(sig_in[name]), app_normalizes) for name in sig_in)
    out_tensors = [TensorInfo.from_details(sig_out[k]) for k in out_keys]
    meaning = (
        "softmax probabilities over `labels`, in label order"
        if src.task is Task.CLASSIFICATION
        else f"predicted {src.target or 'value'}, on the target's scale"
    )
    app = tuple(line for spec in in_specs for line in _feed(spec, src.input_range, app_normalizes))
    inside = ("whatever the model file itself computes (it was converted as given)",)
    if app_normalizes is not None:
        inside = ("the model file's layers after its leading Normalization layer (the app normalizes)",)
    health = _file_health(src, interpreter, out_keys, out_tensors, app_normalizes)
    parity: MetadataParity | RegressionMetadataParity
    if par is not None:
        parity = classification_parity(par, passed, options, keras_metrics)
    else:
        assert reg is not None  # noqa: S101  (one of the two is always computed for an evaluated variant)
        parity = RegressionMetadataParity(
            reg.examples, reg.mae, reg.rmse, reg.max_abs_diff, passed, float(options.max_error or 0.0)
        )
    several_in = in_specs if len(in_specs) > 1 else ()
    several_out = (
        tuple(OutputSpec(k, meaning, t) for k, t in zip(out_keys, out_tensors, strict=True))
        if len(out_tensors) > 1
        else ()
    )
    return ModelMetadata(
        variant,
        description,
        ModelFile("model.tflite", sha, nbytes),
        tuple(src.labels),
        src.target,
        in_specs[0],
        inside,
        app,
        meaning,
        out_tensors[0],
        parity,
        health,
        app_normalizes,
        src.task,
        several_in,
        several_out,
    )


def _file_input(src: Any, name: str, tensor: TensorInfo, norm: FeatureNormalization | None = None) -> InputSpec:
    if src.spec is not None and len(src.model.inputs) == 1:
        return replace(input_spec(src.spec, tensor), name=name)
    if norm is not None:  # a row of numeric features the app normalizes one by one: described as a table
        features = _feature_names(src, len(norm.mean))
        columns = tuple({"name": f, "kind": "numeric", "features": [f]} for f in features)
        return InputSpec(InputKind.TABULAR, tensor, features=features, columns=columns, name=name)
    shape = tensor.shape[1:]
    if src.input_range is not None and len(shape) == 3:
        h, w, c = shape
        return InputSpec(InputKind.IMAGE, tensor, h, w, c, "NHWC", src.input_range, name=name)
    return InputSpec(InputKind.TENSOR, tensor, value_range=src.input_range, name=name)


def _feature_names(src: Any, n: int) -> tuple[str, ...]:
    """The eval CSV's feature columns (every column but --target, in order), else ``feature_0`` ... by position."""
    path = Path(src.eval.source)
    if path.suffix.lower() == ".csv" and path.is_file():
        with path.open(newline="") as f:
            header = next(csv.reader(f), [])
        names = tuple(c for c in header if c != src.target)
        if len(names) == n:
            return names
    return tuple(f"feature_{i}" for i in range(n))


def _feed(
    spec: InputSpec, value_range: tuple[float, float] | None, norm: FeatureNormalization | None = None
) -> list[str]:
    t = spec.tensor
    what = f"input `{spec.name}`: shape {list(t.shape[1:])}"
    if norm is not None:  # the declared range is of raw features; the integer input takes normalized ones
        value_range = None
        lines = [
            f"{what}, real values as the model was trained on, in `input.features` order",
            "normalize each feature in float32: x = (x - mean) / std with `preprocessing.normalize.mean` and "
            "`.std` (one per feature, in `features` order); this integer model does not normalize",
        ]
    elif value_range is not None:
        lines = [f"{what}, real values in [{value_range[0]:g}, {value_range[1]:g}] as float (the model does the rest)"]
    else:
        lines = [f"{what}, real values as the model was trained on (no --input-range was declared)"]
    if t.scale is not None:
        step = f"quantize to {t.dtype}: q = round(x / {t.scale:.9g}) + {t.zero_point}, clamped to the {t.dtype} range"
        if value_range is not None:
            q = tflite_file.quantize(np.asarray(value_range, dtype=np.float32), t)
            step += f" ([{value_range[0]:g}, {value_range[1]:g}] → [{int(q[0])}, {int(q[1])}])"
        lines.append(step)
    return lines


def _file_health(
    src: Any, interpreter, out_keys: list[str], out_tensors: list[TensorInfo], norm: FeatureNormalization | None
) -> HealthCase:
    """The first evaluation row and this variant's own outputs on it (several outputs side by side).

    With ``norm`` the case keeps the row as the app has it and the quantized input after normalizing, as runs do."""
    rows = {k: v[:1] for k, v in src.eval.x.items()}
    fed_rows = {k: normalize(v, norm) for k, v in rows.items()} if norm is not None else rows
    got = tflite_file.predict_named(interpreter, fed_rows, out_keys)
    values = np.concatenate([g.reshape(1, -1) for g in got], axis=1)[0]
    scales = [2 * t.scale for t in out_tensors if t.scale is not None]
    atol = max([1e-3, 1e-4 * float(np.abs(values).max(initial=0.0)), *scales])
    top1 = int(np.argmax(values))
    label = src.labels[top1] if src.task is Task.CLASSIFICATION and top1 < len(src.labels) else ""
    first = next(iter(rows.values()))
    by_name = {k: v.tolist() for k, v in rows.items()} if len(rows) > 1 else None
    fed = next(iter(src.eval.x))
    tensor = TensorInfo.from_details(interpreter.get_signature_runner().get_input_details()[fed])
    fed_first = next(iter(fed_rows.values()))
    quantized = (
        tflite_file.quantize(fed_first, tensor).tolist() if tensor.scale is not None and by_name is None else None
    )
    return HealthCase(first.tolist(), tuple(float(v) for v in values), top1, label, atol, quantized, by_name)

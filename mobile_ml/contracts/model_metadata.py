"""``metadata.json`` beside every exported model: what an app feeds it, what it answers, and a known case to check.

The Android app, the reference device client and the publisher read this file; its keys and their order are the
ones the exporter has always written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from mobile_ml.contracts import Fields
from mobile_ml.contracts.export_figures import Task
from mobile_ml.contracts.variants import TensorInfo, TextEnum, Variant


class InputKind(TextEnum):
    IMAGE = "image"
    TABULAR = "tabular"
    TENSOR = "tensor"  # a model file's input that is neither: fed as the tensor's values (``value_range`` if known)


@dataclass(frozen=True)
class ModelFile:
    file: str  # beside metadata.json
    sha256: str
    bytes: int

    @classmethod
    def from_dict(cls, f: Fields) -> ModelFile:
        m = cls(f.string("file", pattern=r"[^/\\]+"), f.string("sha256", pattern=r"[0-9a-f]{64}"), f.integer("bytes"))
        f.done()
        return m

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "sha256": self.sha256, "bytes": self.bytes}


@dataclass(frozen=True)
class InputSpec:
    """What the model's (single) input is; image fields for images, ``features``/``columns`` for tables."""

    kind: InputKind
    tensor: TensorInfo
    height: int | None = None
    width: int | None = None
    channels: int | None = None
    layout: str | None = None  # "NHWC"
    value_range: tuple[float, float] | None = None  # raw pixel values the app passes (the model normalizes)
    features: tuple[str, ...] = ()  # encoded feature order
    columns: tuple[dict[str, Any], ...] = ()  # raw column → features (name, kind, vocabulary, impute, ...): data
    name: str | None = None  # the model's input name (written for model files, whose inputs are fed by name)

    @classmethod
    def from_dict(cls, f: Fields) -> InputSpec:
        kind = f.choice("kind", InputKind)
        tensor = TensorInfo.from_dict(f.obj("tensor"))
        name = f.opt_string("name")
        if kind is InputKind.TENSOR:
            value_range = _range(f) if f.raw.get("value_range") is not None else None
            f.value("value_range", optional=True)
            spec = cls(kind, tensor, value_range=value_range, name=name)
        elif kind is InputKind.IMAGE:
            lo, hi = _range(f)
            spec = cls(
                kind,
                tensor,
                f.integer("height", lo=1),
                f.integer("width", lo=1),
                f.integer("channels", lo=1),
                f.string("layout"),
                (lo, hi),
                name=name,
            )
        else:
            columns = []
            for c in f.objs("columns"):
                columns.append(c.raw)
                c.string("name")
                c.string("kind")
            spec = cls(kind, tensor, features=f.strings("features"), columns=tuple(columns), name=name)
        f.done()
        return spec

    def to_dict(self) -> dict[str, Any]:
        named: dict[str, Any] = {"name": self.name} if self.name is not None else {}
        if self.kind is InputKind.TENSOR:
            vr = list(self.value_range) if self.value_range else None
            return {"kind": self.kind.value, **named, "value_range": vr, "tensor": self.tensor.to_dict()}
        if self.kind is InputKind.IMAGE:
            head: dict[str, Any] = {
                "kind": self.kind.value,
                "height": self.height,
                "width": self.width,
                "channels": self.channels,
                "layout": self.layout,
                "value_range": list(self.value_range or ()),
            }
        else:
            head = {"kind": self.kind.value, "features": list(self.features), "columns": list(self.columns)}
        return {**head, **named, "tensor": self.tensor.to_dict()}


def _range(f: Fields) -> tuple[float, float]:
    values = f.array("value_range", max_len=2)
    if len(values) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
        raise f.error("value_range", "expected [low, high]")
    if not (math.isfinite(values[0]) and math.isfinite(values[1]) and values[0] < values[1]):
        raise f.error("value_range", f"{values} is not a range")
    return float(values[0]), float(values[1])


@dataclass(frozen=True)
class FeatureNormalization:
    """``preprocessing.normalize``: the per-feature (x − mean) / std the app applies, in float32, before quantizing.

    Present only for integer variants of tabular models, whose graph takes normalized features (one input scale then
    fits every feature); absent when the model normalizes itself (float variants, images, earlier exports).
    """

    mean: tuple[float, ...]  # one per entry of `input.features`, in that order
    std: tuple[float, ...]  # > 0

    AXIS: ClassVar[str] = "feature"

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std) or not self.mean:
            raise ValueError(f"normalization has {len(self.mean)} means and {len(self.std)} stds")

    @classmethod
    def from_dict(cls, f: Fields) -> FeatureNormalization:
        if f.string("axis") != cls.AXIS:
            raise f.error("axis", f"expected {cls.AXIS!r} (one mean and std per feature)")
        mean, std = _finite(f, "mean"), _finite(f, "std")
        if len(mean) != len(std) or not mean:
            raise f.error("std", f"expected one std per mean ({len(mean)}), got {len(std)}")
        if min(std) <= 0:
            raise f.error("std", "every std must be positive")
        f.done()
        return cls(mean, std)

    def to_dict(self) -> dict[str, Any]:
        return {"axis": self.AXIS, "mean": list(self.mean), "std": list(self.std)}


def _finite(f: Fields, key: str) -> tuple[float, ...]:
    values = f.array(key)
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in values):
        raise f.error(key, "expected a list of finite numbers")
    return tuple(float(v) for v in values)


@dataclass(frozen=True)
class HealthCase:
    """A known input (a test row) and the model's own output on it, with the tolerance a device should allow.

    ``input`` is what the app has before its own preprocessing steps that metadata describes as numbers: a raw
    encoded row for tabular models, so an app that normalizes (``preprocessing.normalize``) normalizes it too.
    ``input_quantized`` is the tensor after every step, normalization included.
    """

    input: list[Any]  # one row, nested like the model input (batch of 1), real values, before normalization
    expected_probabilities: tuple[float, ...]
    expected_top1: int
    expected_label: str
    atol: float
    input_quantized: list[Any] | None = None  # the same row as the integer input tensor takes it
    inputs: dict[str, list[Any]] | None = None  # several inputs: one row of each, by input name (``input``: the first)

    @classmethod
    def from_dict(cls, f: Fields) -> HealthCase:
        probs = f.array("expected_probabilities", max_len=100_000)
        if not probs or any(isinstance(p, bool) or not isinstance(p, (int, float)) for p in probs):
            raise f.error("expected_probabilities", "expected a list of numbers")
        case = cls(
            _numbers(f, "input"),
            tuple(float(p) for p in probs),
            f.integer("expected_top1", lo=0, hi=len(probs) - 1),
            f.string("expected_label"),
            f.number("atol", lo=0.0),
            _numbers(f, "input_quantized") if f.raw.get("input_quantized") is not None else None,
            _named(f, "inputs") if f.raw.get("inputs") is not None else None,
        )
        f.done()
        return case

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "input": self.input,
            "expected_probabilities": list(self.expected_probabilities),
            "expected_top1": self.expected_top1,
            "expected_label": self.expected_label,
            "atol": self.atol,
        }
        if self.input_quantized is not None:
            d["input_quantized"] = self.input_quantized
        if self.inputs is not None:
            d["inputs"] = self.inputs
        return d


def _named(f: Fields, key: str) -> dict[str, list[Any]]:
    rows = f.obj(key)
    out = {name: _numbers(rows, name) for name in list(rows.raw)}
    rows.done()
    return out


def _numbers(f: Fields, key: str) -> list[Any]:
    """A nested list of finite numbers (a tensor's values), checked all the way down."""
    value = f.array(key)
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, bool) or not isinstance(item, (int, float)) or not math.isfinite(item):
            raise f.error(key, "expected nested lists of finite numbers")
    return value


@dataclass(frozen=True)
class MetadataParity:
    """The variant's figures from ``export.json``, and the gate's answer."""

    accuracy: float
    macro_f1: float
    loss: float
    examples: int
    accuracy_drop_pp: float
    agreement: float
    max_abs_diff: float
    mean_abs_diff: float
    passed: bool
    budget_pp: float
    keras_accuracy: float

    _KEYS: ClassVar[tuple[str, ...]] = (
        "accuracy",
        "macro_f1",
        "loss",
        "examples",
        "accuracy_drop_pp",
        "agreement",
        "max_abs_diff",
        "mean_abs_diff",
        "passed",
        "budget_pp",
        "keras_accuracy",
    )

    @classmethod
    def from_dict(cls, f: Fields) -> MetadataParity:
        p = cls(
            f.number("accuracy", lo=0.0, hi=1.0),
            f.number("macro_f1", lo=0.0, hi=1.0),
            f.number("loss", lo=0.0),
            f.integer("examples", lo=0),
            f.number("accuracy_drop_pp", lo=-100.0, hi=100.0),
            f.number("agreement", lo=0.0, hi=1.0),
            f.number("max_abs_diff", lo=0.0),
            f.number("mean_abs_diff", lo=0.0),
            f.boolean("passed"),
            f.number("budget_pp", lo=0.0, hi=100.0),
            f.number("keras_accuracy", lo=0.0, hi=1.0),
        )
        f.done()
        return p

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self._KEYS}


@dataclass(frozen=True)
class RegressionMetadataParity:
    """A regression variant's figures from ``export.json`` (against the Keras outputs, the target's units)."""

    examples: int
    mae: float  # mean |Δ| against Keras: what the gate compares with ``max_error``
    rmse: float
    max_abs_diff: float
    passed: bool
    max_error: float

    @classmethod
    def from_dict(cls, f: Fields) -> RegressionMetadataParity:
        p = cls(
            f.integer("examples", lo=0),
            f.number("mae", lo=0.0),
            f.number("rmse", lo=0.0),
            f.number("max_abs_diff", lo=0.0),
            f.boolean("passed"),
            f.number("max_error", lo=0.0),
        )
        f.done()
        return p

    def to_dict(self) -> dict[str, Any]:
        return {
            "examples": self.examples,
            "mae": self.mae,
            "rmse": self.rmse,
            "max_abs_diff": self.max_abs_diff,
            "passed": self.passed,
            "max_error": self.max_error,
        }


@dataclass(frozen=True)
class OutputSpec:
    """One of several outputs: its name, what it means, its tensor (``outputs`` in metadata.json)."""

    name: str
    meaning: str
    tensor: TensorInfo

    @classmethod
    def from_dict(cls, f: Fields) -> OutputSpec:
        o = cls(f.string("name"), f.string("meaning"), TensorInfo.from_dict(f.obj("tensor")))
        f.done()
        return o

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "meaning": self.meaning, "tensor": self.tensor.to_dict()}


@dataclass(frozen=True)
class ModelMetadata:
    SCHEMA: ClassVar[str] = "mobile_ml.model_metadata"
    SCHEMA_VERSION: ClassVar[int] = 1
    WHAT: ClassVar[str] = "mobile-ml model metadata"
    REDO: ClassVar[str] = "mobile-ml export"

    variant: Variant
    description: str
    model: ModelFile
    labels: tuple[str, ...]
    target: str | None
    input: InputSpec
    inside_model: tuple[str, ...]  # preprocessing the model does itself
    app_must: tuple[str, ...]  # preprocessing the app must do, in order
    output_meaning: str
    output: TensorInfo
    parity: MetadataParity | RegressionMetadataParity
    health_check: HealthCase
    app_normalizes: FeatureNormalization | None = None  # preprocessing.normalize; None: the model normalizes
    # Written only when they differ from what single-input classifiers always had, so those files keep their bytes:
    task: Task = Task.CLASSIFICATION  # regression: ``labels`` is empty, the health case's values are raw outputs
    inputs: tuple[InputSpec, ...] = ()  # several inputs: each (``input`` is the first)
    outputs: tuple[OutputSpec, ...] = ()  # several outputs: each (``output`` is the first)

    @classmethod
    def from_dict(cls, f: Fields) -> ModelMetadata:
        pre, out = f.obj("preprocessing"), f.obj("output")
        task = f.choice("task", Task, default=Task.CLASSIFICATION)
        parity: MetadataParity | RegressionMetadataParity
        if task is Task.REGRESSION:
            parity = RegressionMetadataParity.from_dict(f.obj("parity"))
        else:
            parity = MetadataParity.from_dict(f.obj("parity"))
        meta = cls(
            f.choice("variant", Variant),
            f.string("description"),
            ModelFile.from_dict(f.obj("model")),
            f.strings("labels"),
            f.opt_string("target"),
            InputSpec.from_dict(f.obj("input")),
            pre.strings("inside_model"),
            pre.strings("app_must"),
            out.string("meaning"),
            TensorInfo.from_dict(out.obj("tensor")),
            parity,
            HealthCase.from_dict(f.obj("health_check")),
            FeatureNormalization.from_dict(norm) if (norm := pre.opt_obj("normalize")) is not None else None,
            task,
            tuple(InputSpec.from_dict(i) for i in f.objs("inputs", max_len=64, optional=True)),
            tuple(OutputSpec.from_dict(o) for o in f.objs("outputs", max_len=64, optional=True)),
        )
        pre.done()
        out.done()
        if task is Task.CLASSIFICATION and len(meta.health_check.expected_probabilities) != len(meta.labels):
            raise f.error("health_check.expected_probabilities", f"expected {len(meta.labels)} values, one per label")
        if meta.app_normalizes is not None and len(meta.app_normalizes.mean) != len(meta.input.features):
            raise f.error(
                "preprocessing.normalize.mean",
                f"has {len(meta.app_normalizes.mean)} values for {len(meta.input.features)} input.features",
            )
        f.done()
        return meta

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant.value,
            "description": self.description,
            "model": self.model.to_dict(),
            "labels": list(self.labels),
            "target": self.target,
            "input": self.input.to_dict(),
            "preprocessing": self._preprocessing(),
            "output": {"meaning": self.output_meaning, "tensor": self.output.to_dict()},
            "parity": self.parity.to_dict(),
            "health_check": self.health_check.to_dict(),
            **({"task": self.task.value} if self.task is not Task.CLASSIFICATION else {}),
            **({"inputs": [i.to_dict() for i in self.inputs]} if self.inputs else {}),
            **({"outputs": [o.to_dict() for o in self.outputs]} if self.outputs else {}),
        }

    def _preprocessing(self) -> dict[str, Any]:
        pre: dict[str, Any] = {"inside_model": list(self.inside_model), "app_must": list(self.app_must)}
        if self.app_normalizes is not None:  # absent otherwise: earlier files keep their exact bytes
            pre["normalize"] = self.app_normalizes.to_dict()
        return pre

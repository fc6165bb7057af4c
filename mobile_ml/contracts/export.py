"""``export.json``: every exported variant's file, operators, tensors and parity figures, and the recommendation.

Paths in the file are relative to the directory holding it (``exports_dir`` is always ``"."``, ``run_dir`` usually
``".."``), so an exports directory can be moved or copied; ``read_export`` resolves them against the file's location.
Files written before that rule recorded absolute paths, ``exports_dir`` even the hidden temporary directory the
export was built in: the file's own directory wins over whatever ``exports_dir`` says.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from mobile_ml.contracts import ContractError, Fields, read_document
from mobile_ml.contracts.export_figures import (
    ModelSource,
    OutputDiff,
    RegressionFigures,
    RegressionParity,
    SourceKind,
    Task,
)
from mobile_ml.contracts.variants import (
    VARIANTS,
    ExportOptions,
    OpsInfo,
    TensorInfo,
    TextEnum,
    Variant,
    Verdict,
    check_variant,
)

if TYPE_CHECKING:
    from mobile_ml.train.metrics import Metrics

EXPORT_SCHEMA = "mobile_ml.export"
EXPORT_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class FinetuneInfo:
    epochs: int
    learning_rate: float
    wrapped_layers: tuple[str, ...]  # layers tfmot instrumented
    val_accuracy: float | None  # of the fine-tuned model (before conversion), on the validation split
    sparsity: float | None = None  # pruning: measured fraction of zeros in the pruned layers' kernels
    seconds: float = 0.0

    @classmethod
    def from_dict(cls, f: Fields) -> FinetuneInfo:
        info = cls(
            f.integer("epochs", lo=1),
            f.number("learning_rate"),
            f.strings("wrapped_layers"),
            f.opt_number("val_accuracy", lo=0.0, hi=1.0),
            f.opt_number("sparsity", lo=0.0, hi=1.0),
            f.number("seconds", lo=0.0),
        )
        f.done()
        return info

    def to_dict(self) -> dict[str, Any]:
        return {
            "epochs": self.epochs,
            "learning_rate": self.learning_rate,
            "wrapped_layers": list(self.wrapped_layers),
            "val_accuracy": self.val_accuracy,
            "sparsity": self.sparsity,
            "seconds": self.seconds,
        }


@dataclass(frozen=True)
class Figures:
    """A model's headline figures on the test split (the Keras model's, in ``export.json``'s ``keras``)."""

    accuracy: float
    macro_f1: float
    loss: float
    examples: int

    @classmethod
    def from_dict(cls, f: Fields) -> Figures:
        figures = cls(
            f.number("accuracy", lo=0.0, hi=1.0),
            f.number("macro_f1", lo=0.0, hi=1.0),
            f.number("loss", lo=0.0),
            f.integer("examples", lo=0),
        )
        f.done()
        return figures

    @classmethod
    def of(cls, m: Metrics) -> Figures:
        return cls(m.accuracy, m.macro_f1, m.loss, m.examples)

    def to_dict(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy, "macro_f1": self.macro_f1, "loss": self.loss, "examples": self.examples}


@dataclass(frozen=True)
class Parity:
    """How a .tflite model's answers on the test split compare with the Keras model's."""

    metrics: Metrics  # computed from LiteRT outputs, exactly as training computes Keras metrics
    accuracy_drop_pp: float  # Keras accuracy − this accuracy, in percentage points (negative: better)
    agreement: float  # fraction of test rows whose top-1 class matches the Keras model's
    max_abs_diff: float  # of the (dequantized) output probabilities against Keras
    mean_abs_diff: float

    @classmethod
    def from_dict(cls, parity: Fields, metrics: Fields) -> Parity:
        p = cls(
            _metrics(metrics),
            parity.number("accuracy_drop_pp", lo=-100.0, hi=100.0),
            parity.number("agreement", lo=0.0, hi=1.0),
            parity.number("max_abs_diff", lo=0.0),
            parity.number("mean_abs_diff", lo=0.0),
        )
        # The summary repeats four figures of ``metrics``; read them so a hand-edited copy that disagrees is seen.
        for key in ("accuracy", "macro_f1", "loss", "examples"):
            if parity.value(key) != getattr(p.metrics, key):
                raise parity.error(key, f"{parity.value(key)!r} disagrees with metrics.{key}")
        parity.done()
        return p

    def summary(self) -> dict[str, Any]:
        m = self.metrics
        return {
            "accuracy": m.accuracy,
            "macro_f1": m.macro_f1,
            "loss": m.loss,
            "examples": m.examples,
            "accuracy_drop_pp": self.accuracy_drop_pp,
            "agreement": self.agreement,
            "max_abs_diff": self.max_abs_diff,
            "mean_abs_diff": self.mean_abs_diff,
        }


def _metrics(f: Fields) -> Metrics:
    from mobile_ml.train.metrics import ClassMetrics, Metrics

    per_class = []
    for c in f.objs("per_class"):
        per_class.append(
            ClassMetrics(
                c.string("label"), c.number("precision"), c.number("recall"), c.number("f1"), c.integer("support")
            )
        )
        c.done()
    cm = f.array("confusion_matrix")
    if any(
        not isinstance(r, list) or len(r) != len(cm) or any(isinstance(n, bool) or not isinstance(n, int) for n in r)
        for r in cm
    ):
        raise f.error("confusion_matrix", "expected a square table of counts")
    m = Metrics(
        f.number("accuracy", lo=0.0, hi=1.0),
        f.number("loss", lo=0.0),
        f.number("macro_precision", lo=0.0, hi=1.0),
        f.number("macro_recall", lo=0.0, hi=1.0),
        f.number("macro_f1", lo=0.0, hi=1.0),
        f.integer("examples", lo=0),
        per_class,
        cm,
    )
    f.done()
    return m


@dataclass(frozen=True)
class VariantResult:
    variant: Variant
    description: str
    file: str  # relative to the exports directory
    bytes: int
    gzip_bytes: int  # what a download costs with compression: where pruning's zeros pay off
    size_ratio: float  # bytes / fp32 bytes (or / the Keras model's float32 weights when fp32 was not exported)
    ops: OpsInfo
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    parity: Parity | None  # None when LiteRT here cannot run the model (Select-TF ops)
    verdict: Verdict
    seconds: dict[str, float]  # convert / finetune / evaluate
    finetune: FinetuneInfo | None = None
    note: str = ""
    regression: RegressionParity | None = None  # regression models: error against Keras (``parity`` is None)
    output_diffs: tuple[OutputDiff, ...] = ()  # every output against Keras's (files before this: none)

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASS

    @property
    def evaluated(self) -> bool:
        return self.parity is not None or self.regression is not None

    @classmethod
    def from_dict(cls, f: Fields) -> VariantResult:
        parity_f, metrics_f = f.opt_obj("parity"), f.opt_obj("metrics")
        if (parity_f is None) != (metrics_f is None):
            raise f.error("parity", "parity and metrics must both be given or both be null")
        parity = Parity.from_dict(parity_f, metrics_f) if parity_f and metrics_f else None
        regression = RegressionParity.from_dict(r) if (r := f.opt_obj("regression")) is not None else None
        if parity is not None and regression is not None:
            raise f.error("regression", "a variant has classification parity or regression parity, not both")
        passed = f.boolean("passed")
        if passed and parity is None and regression is None:
            raise f.error("passed", "a variant that was not evaluated cannot pass")
        evaluated = parity is not None or regression is not None
        verdict = Verdict.NOT_EVALUATED if not evaluated else Verdict.PASS if passed else Verdict.FAIL
        ops = f.strings("ops", max_len=1000)
        v = cls(
            f.choice("variant", Variant),
            f.string("description"),
            _relative_file(f, "file"),
            f.integer("bytes", lo=0),
            f.integer("gzip_bytes", lo=0),
            f.number("size_ratio", lo=0.0),
            OpsInfo(ops, f.strings("select_tf_ops"), f.strings("custom_ops")),
            tuple(TensorInfo.from_dict(t) for t in f.objs("inputs", max_len=64)),
            tuple(TensorInfo.from_dict(t) for t in f.objs("outputs", max_len=64)),
            parity,
            verdict,
            {k: _seconds(f, k, s) for k, s in f.mapping("seconds").items()},
            FinetuneInfo.from_dict(t) if (t := f.opt_obj("finetune")) else None,
            f.string("note", default=""),
            regression,
            tuple(OutputDiff.from_dict(d) for d in f.objs("output_diffs", max_len=64, optional=True)),
        )
        if f.boolean("builtin_only") != v.ops.builtin_only:
            raise f.error("builtin_only", "disagrees with select_tf_ops and custom_ops")
        f.done()
        return v

    def to_dict(self) -> dict[str, Any]:
        from mobile_ml.outputs import to_jsonable

        return {
            "variant": self.variant.value,
            "description": self.description,
            "file": self.file,
            "bytes": self.bytes,
            "gzip_bytes": self.gzip_bytes,
            "size_ratio": self.size_ratio,
            "ops": list(self.ops.ops),
            "builtin_only": self.ops.builtin_only,
            "select_tf_ops": list(self.ops.select_tf_ops),
            "custom_ops": list(self.ops.custom_ops),
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "parity": self.parity.summary() if self.parity else None,
            "metrics": to_jsonable(self.parity.metrics) if self.parity else None,
            "passed": self.passed,
            "seconds": self.seconds,
            "finetune": self.finetune.to_dict() if self.finetune else None,
            "note": self.note,
            "regression": self.regression.to_dict() if self.regression else None,
            "output_diffs": [d.to_dict() for d in self.output_diffs],
        }


def _seconds(f: Fields, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise f.error(f"seconds.{key}", "expected a duration in seconds")
    return float(value)


def _relative_file(f: Fields, key: str) -> str:
    """A path inside the exports directory: relative, no ``..`` (a reader joins it to the directory)."""
    value = f.string(key, max_len=1024)
    parts = Path(value).parts
    if not parts or Path(value).is_absolute() or ".." in parts:
        raise f.error(key, f"{value!r} is not a path inside the exports directory")
    return value


@dataclass(frozen=True)
class ExportResult:
    """``export.json``. ``run_dir``, ``exports_dir`` and ``source.path`` are absolute once read through
    ``read_export``. A model brought as a file has no ``run_dir``; a regression model has ``keras_regression``
    figures instead of ``keras`` (whose accuracy would mean nothing)."""

    SCHEMA: ClassVar[str] = EXPORT_SCHEMA
    SCHEMA_VERSION: ClassVar[int] = EXPORT_SCHEMA_VERSION
    WHAT: ClassVar[str] = "a mobile-ml export report"
    REDO: ClassVar[str] = "mobile-ml export MODEL --clean"

    run_dir: Path | None  # None: the model came as a file (see ``source``)
    exports_dir: Path
    options: ExportOptions
    keras: Figures | None  # the source model on the same evaluation rows, for reference (None: regression)
    variants: tuple[VariantResult, ...]
    recommended: Variant | None
    seconds: float
    environment: dict[str, Any] = field(default_factory=dict)
    source: ModelSource | None = None  # None only while building; read files always have one
    task: Task = Task.CLASSIFICATION
    keras_regression: RegressionFigures | None = None  # regression: the source model's error against the targets
    notes: tuple[str, ...] = ()  # requested variants that could not be built here, and why

    def variant(self, name: str) -> VariantResult:
        return next(v for v in self.variants if v.variant == name)

    def located(self, exports_dir: Path) -> ExportResult:
        """This report with its paths resolved against the directory that holds its file."""

        def resolve(p: Path) -> Path:
            return Path(os.path.normpath(exports_dir / p))

        run_dir = resolve(self.run_dir) if self.run_dir is not None else None
        source = self.source
        if source is None:  # written before sources were recorded: always a run's export
            source = ModelSource(SourceKind.RUN, run_dir or exports_dir.parent, "run", "")
        else:
            source = replace(source, path=resolve(source.path))
        return replace(self, exports_dir=exports_dir, run_dir=run_dir, source=source)

    @classmethod
    def from_dict(cls, f: Fields) -> ExportResult:
        options = ExportOptions.from_dict(f.obj("options"))
        if f.number("budget_pp") != options.max_accuracy_drop:
            raise f.error("budget_pp", "disagrees with options.max_accuracy_drop")
        run_dir = f.opt_string("run_dir")
        result = cls(
            Path(run_dir) if run_dir is not None else None,
            Path("."),
            options,
            Figures.from_dict(k) if (k := f.opt_obj("keras")) is not None else None,
            tuple(VariantResult.from_dict(v) for v in f.objs("variants", max_len=len(VARIANTS))),
            None if f.opt_string("recommended") is None else f.choice("recommended", Variant),
            f.number("seconds", lo=0.0),
            f.mapping("environment", optional=True),
            ModelSource.from_dict(s) if (s := f.opt_obj("source")) is not None else None,
            f.choice("task", Task, default=Task.CLASSIFICATION),
            RegressionFigures.from_dict(r) if (r := f.opt_obj("keras_regression")) is not None else None,
            f.strings("notes", optional=True),
        )
        if (result.keras is None) == (result.keras_regression is None):
            raise f.error("keras", "expected the Keras figures of a classifier or of a regression model, not both")
        f.string("exports_dir")  # always the file's own directory (see the module docstring)
        names = [v.variant for v in result.variants]
        if len(set(names)) != len(names):
            raise f.error("variants", "a variant is listed twice")
        if result.recommended is not None and result.recommended not in names:
            raise f.error("recommended", f"{result.recommended} is not among the variants")
        f.done()
        return result

    def to_dict(self) -> dict[str, Any]:
        from mobile_ml.outputs import to_jsonable

        run_dir = self.run_dir
        if run_dir is not None and run_dir.is_absolute() and self.exports_dir.is_absolute():
            run_dir = Path(os.path.relpath(run_dir, self.exports_dir))
        return {
            "run_dir": run_dir.as_posix() if run_dir is not None else None,
            "exports_dir": ".",
            "source": self.source.to_dict(relative_to=self.exports_dir) if self.source else None,
            "task": self.task.value,
            "options": self.options.to_dict(),
            "keras": self.keras.to_dict() if self.keras else None,
            "keras_regression": self.keras_regression.to_dict() if self.keras_regression else None,
            "notes": list(self.notes),
            "budget_pp": self.options.max_accuracy_drop,
            "recommended": self.recommended.value if self.recommended else None,
            "variants": [v.to_dict() for v in self.variants],
            "seconds": round(self.seconds, 3),
            "environment": to_jsonable(self.environment),
        }


def read_export(path: str | os.PathLike[str]) -> ExportResult:
    """``export.json`` at ``path`` (or in the directory ``path``), its paths resolved against its directory."""
    path = Path(path)
    if path.is_dir():
        path = path / "export.json"
    return read_document(ExportResult, path).located(path.absolute().parent)


__all__ = [
    "EXPORT_SCHEMA",
    "EXPORT_SCHEMA_VERSION",
    "VARIANTS",
    "ContractError",
    "ExportOptions",
    "TextEnum",
    "ExportResult",
    "FinetuneInfo",
    "Figures",
    "ModelSource",
    "OpsInfo",
    "OutputDiff",
    "RegressionFigures",
    "RegressionParity",
    "SourceKind",
    "Task",
    "Parity",
    "TensorInfo",
    "VariantResult",
    "Variant",
    "Verdict",
    "check_variant",
    "read_export",
]

"""Export results as typed objects, ``export.json`` / ``export.csv`` / ``export.png``, the recommendation and the gate."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobile_ml.errors import GateError
from mobile_ml.export.options import ExportOptions
from mobile_ml.export.tflite_file import OpsInfo, TensorInfo
from mobile_ml.outputs import to_jsonable
from mobile_ml.train.metrics import Metrics

SCHEMA = "mobile_ml.export"
SCHEMA_VERSION = 1
CSV_COLUMNS = (
    "variant",
    "bytes",
    "gzip_bytes",
    "size_ratio",
    "accuracy",
    "macro_f1",
    "loss",
    "accuracy_drop_pp",
    "agreement",
    "max_abs_diff",
    "mean_abs_diff",
    "builtin_only",
    "passed",
    "seconds",
)


@dataclass(frozen=True)
class Parity:
    """How a .tflite model's answers on the test split compare with the Keras model's."""

    metrics: Metrics  # computed from LiteRT outputs, exactly as training computes Keras metrics
    accuracy_drop_pp: float  # Keras accuracy − this accuracy, in percentage points (negative: better)
    agreement: float  # fraction of test rows whose top-1 class matches the Keras model's
    max_abs_diff: float  # of the (dequantized) output probabilities against Keras
    mean_abs_diff: float

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


@dataclass(frozen=True)
class VariantResult:
    variant: str
    description: str
    file: str  # relative to the exports directory
    bytes: int
    gzip_bytes: int  # what a download costs with compression: where pruning's zeros pay off
    size_ratio: float  # bytes / fp32 bytes (or / the Keras model's float32 weights when fp32 was not exported)
    ops: OpsInfo
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    parity: Parity | None  # None when LiteRT here cannot run the model (Select-TF ops)
    passed: bool  # evaluated and within the accuracy budget
    seconds: dict[str, float]  # convert / finetune / evaluate
    finetune: dict[str, Any] | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "description": self.description,
            "file": self.file,
            "bytes": self.bytes,
            "gzip_bytes": self.gzip_bytes,
            "size_ratio": self.size_ratio,
            "ops": self.ops.ops,
            "builtin_only": self.ops.builtin_only,
            "select_tf_ops": self.ops.select_tf_ops,
            "custom_ops": self.ops.custom_ops,
            "inputs": to_jsonable(self.inputs),
            "outputs": to_jsonable(self.outputs),
            "parity": self.parity.summary() if self.parity else None,
            "metrics": to_jsonable(self.parity.metrics) if self.parity else None,
            "passed": self.passed,
            "seconds": self.seconds,
            "finetune": self.finetune,
            "note": self.note,
        }


@dataclass(frozen=True)
class ExportResult:
    run_dir: Path
    exports_dir: Path
    options: ExportOptions
    keras: Metrics  # the trained model on the same test split, for reference
    variants: list[VariantResult]
    recommended: str | None
    seconds: float
    environment: dict[str, Any] = field(default_factory=dict)

    def variant(self, name: str) -> VariantResult:
        return next(v for v in self.variants if v.variant == name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "run_dir": str(self.run_dir),
            "exports_dir": str(self.exports_dir),
            "options": to_jsonable(self.options),
            "keras": {
                "accuracy": self.keras.accuracy,
                "macro_f1": self.keras.macro_f1,
                "loss": self.keras.loss,
                "examples": self.keras.examples,
            },
            "budget_pp": self.options.max_accuracy_drop,
            "recommended": self.recommended,
            "variants": [v.to_dict() for v in self.variants],
            "seconds": round(self.seconds, 3),
            "environment": self.environment,
        }


def recommend(variants: list[VariantResult]) -> str | None:
    """The smallest variant within the accuracy budget; ties go to the smaller drop, then to build order."""
    passing = [v for v in variants if v.passed]
    if not passing:
        return None
    return min(passing, key=lambda v: (v.bytes, v.parity.accuracy_drop_pp)).variant


def check_gate(result: ExportResult) -> None:
    """Raise ``GateError`` (exit 3) when no variant meets the budget, or the required one misses it."""
    budget = result.options.max_accuracy_drop
    req = result.options.require
    if req is not None:
        v = result.variant(req)
        if not v.passed:
            why = (
                f"its accuracy drop is {v.parity.accuracy_drop_pp:.2f} points"
                if v.parity
                else f"it could not be evaluated ({v.note})"
            )
            raise GateError(
                f"required variant {req} misses the {budget:g}-point budget: {why}",
                hint="inspect export.json, or raise --max-accuracy-drop if the loss is acceptable",
            )
    if result.recommended is None:
        evaluated = [v for v in result.variants if v.parity]
        if not evaluated:
            raise GateError("no variant could be evaluated with LiteRT", hint="see the notes in export.json")
        best = min(evaluated, key=lambda v: v.parity.accuracy_drop_pp)
        raise GateError(
            f"no variant is within the {budget:g}-point accuracy budget; the best is {best.variant} "
            f"with a drop of {best.parity.accuracy_drop_pp:.2f} points",
            hint="inspect export.json, or raise --max-accuracy-drop if the loss is acceptable",
        )


def write_csv(result: ExportResult, path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for v in result.variants:
            p = v.parity
            row = [v.variant, v.bytes, v.gzip_bytes, f"{v.size_ratio:.4f}"]
            row += (
                [
                    f"{p.metrics.accuracy:.6f}",
                    f"{p.metrics.macro_f1:.6f}",
                    f"{p.metrics.loss:.6f}",
                    f"{p.accuracy_drop_pp:.4f}",
                    f"{p.agreement:.6f}",
                    f"{p.max_abs_diff:.6g}",
                    f"{p.mean_abs_diff:.6g}",
                ]
                if p
                else [""] * 7
            )
            row += [v.ops.builtin_only, v.passed, f"{sum(v.seconds.values()):.3f}"]
            w.writerow(row)


def plot(result: ExportResult, path: Path) -> None:
    """Accuracy against file size, one point per variant, with the Keras accuracy and the budget as lines."""
    from mobile_ml.plotting import label_points, plain_log_ticks, pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    keras_acc = result.keras.accuracy * 100
    floor = keras_acc - result.options.max_accuracy_drop
    shown = sorted((v for v in result.variants if v.parity), key=lambda v: v.bytes)
    accs = [v.parity.metrics.accuracy * 100 for v in shown]
    margin = max(0.2, (max(accs + [keras_acc]) - min(accs + [floor])) * 0.08)
    ax.axhline(keras_acc, color="0.3", lw=1, label=f"Keras {keras_acc:.2f}%")
    ax.axhspan(
        floor,
        keras_acc + 2 * margin,
        color="tab:green",
        alpha=0.08,
        label=f"within budget (−{result.options.max_accuracy_drop:g} pt)",
    )
    for v, acc in zip(shown, accs):
        color = "tab:green" if v.passed else "tab:red"
        star = v.variant == result.recommended
        ax.scatter(v.bytes / 1024, acc, s=180 if star else 50, color=color, marker="*" if star else "o", zorder=3)
    label_points(ax, [(v.bytes / 1024, acc, v.variant) for v, acc in zip(shown, accs)], y_close=margin)
    ax.set_ylim(min(accs + [floor]) - margin, max(accs + [keras_acc]) + 3 * margin)
    ax.set_xlabel("model file size (KiB)")
    ax.set_ylabel("test accuracy, LiteRT (%)")
    ax.set_xscale("log")
    ax.margins(x=0.12)
    plain_log_ticks(ax.xaxis)
    ax.set_title("Exported variants: accuracy vs size (★ recommended)")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

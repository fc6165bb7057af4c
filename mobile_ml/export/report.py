"""The accuracy gate, the recommendation, and ``export.csv`` / ``export.png`` (``export.json``'s types are in
``mobile_ml.contracts.export``)."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from mobile_ml.contracts.export import ExportResult, Figures, Parity, Task, Variant, VariantResult, Verdict
from mobile_ml.errors import GateError

__all__ = [
    "CSV_COLUMNS",
    "ExportResult",
    "Figures",
    "Parity",
    "VariantResult",
    "Verdict",
    "check_gate",
    "plot",
    "recommend",
    "verdict",
    "write_csv",
]

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


def verdict(parity: Parity | None, budget_pp: float) -> Verdict:
    """The gate for one variant: it passes when its accuracy drop is at most the budget.

    The drop is signed (Keras accuracy − variant accuracy): a variant more accurate than Keras has a negative drop
    and passes whatever the budget. A drop exactly at the budget passes; the tolerance absorbs the float error of
    ``(a − b) × 100`` (drops are recorded rounded to 6 decimals), far below one test row's worth.
    """
    if parity is None:
        return Verdict.NOT_EVALUATED
    return Verdict.PASS if parity.accuracy_drop_pp <= budget_pp + 1e-9 else Verdict.FAIL


def recommend(variants: Iterable[VariantResult]) -> Variant | None:
    """The smallest variant within the budget; ties go to the smaller drop (or error), then to build order."""
    passing = [(v.bytes, _loss(v), v.variant) for v in variants if v.passed and v.evaluated]
    return min(passing, key=lambda t: t[:2])[2] if passing else None


def _loss(v: VariantResult) -> float:
    """What the gate measures: accuracy drop in points, or a regression's mean |Δ| against Keras."""
    if v.parity is not None:
        return v.parity.accuracy_drop_pp
    return v.regression.mae if v.regression is not None else float("inf")


def check_gate(result: ExportResult) -> None:
    """Raise ``GateError`` (exit 3) when no variant meets the budget, or the required one misses it."""
    if result.task is Task.REGRESSION:
        return _check_regression_gate(result)
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
        evaluated = [(v.parity.accuracy_drop_pp, v.variant) for v in result.variants if v.parity]
        if not evaluated:
            raise GateError("no variant could be evaluated with LiteRT", hint="see the notes in export.json")
        drop, best = min(evaluated, key=lambda t: t[0])
        raise GateError(
            f"no variant is within the {budget:g}-point accuracy budget; the best is {best} "
            f"with a drop of {drop:.2f} points",
            hint="inspect export.json, or raise --max-accuracy-drop if the loss is acceptable",
        )


def _check_regression_gate(result: ExportResult) -> None:
    budget = result.options.max_error or 0.0
    hint = "inspect export.json, or raise --max-error if the error is acceptable"
    req = result.options.require
    if req is not None and not (v := result.variant(req)).passed:
        why = f"its mean |Δ| is {v.regression.mae:.4g}" if v.regression else f"it could not be evaluated ({v.note})"
        raise GateError(f"required variant {req} misses the --max-error {budget:g} budget: {why}", hint=hint)
    if result.recommended is None:
        evaluated = [(v.regression.mae, v.variant) for v in result.variants if v.regression]
        if not evaluated:
            raise GateError("no variant could be evaluated with LiteRT", hint="see the notes in export.json")
        err, best = min(evaluated, key=lambda t: t[0])
        raise GateError(
            f"no variant is within --max-error {budget:g}; the best is {best} with a mean |Δ| of {err:.4g}", hint=hint
        )


REGRESSION_COLUMNS = (
    "variant",
    "bytes",
    "gzip_bytes",
    "size_ratio",
    "mae",
    "rmse",
    "max_abs_diff",
    "target_mae",
    "builtin_only",
    "passed",
    "seconds",
)


def _write_regression_csv(result: ExportResult, path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(REGRESSION_COLUMNS)
        for v in result.variants:
            r = v.regression
            row: list[object] = [v.variant, v.bytes, v.gzip_bytes, f"{v.size_ratio:.4f}"]
            row += [f"{r.mae:.6g}", f"{r.rmse:.6g}", f"{r.max_abs_diff:.6g}"] if r else [""] * 3
            row += [f"{r.target.mae:.6g}" if r and r.target else ""]
            row += [v.ops.builtin_only, v.passed, f"{sum(v.seconds.values()):.3f}"]
            w.writerow(row)


def write_csv(result: ExportResult, path: Path) -> None:
    if result.task is Task.REGRESSION:
        return _write_regression_csv(result, path)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for v in result.variants:
            p = v.parity
            row: list[object] = [v.variant, v.bytes, v.gzip_bytes, f"{v.size_ratio:.4f}"]
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
    from mobile_ml.plotting import pyplot

    plt = pyplot()
    if result.keras is None:
        return _plot_regression(result, path, plt)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    keras_acc = result.keras.accuracy * 100
    floor = keras_acc - result.options.max_accuracy_drop
    shown = sorted((v for v in result.variants if v.parity), key=lambda v: v.bytes)
    accs = [v.parity.metrics.accuracy * 100 for v in shown if v.parity]
    margin = max(0.2, (max(accs + [keras_acc]) - min(accs + [floor])) * 0.08)
    ax.axhline(keras_acc, color="0.3", lw=1, label=f"Keras {keras_acc:.2f}%")
    ax.axhspan(
        floor,
        keras_acc + 2 * margin,
        color="tab:green",
        alpha=0.08,
        label=f"within budget (−{result.options.max_accuracy_drop:g} pt)",
    )
    _points(ax, result, shown, accs, y_close=margin)
    ax.set_ylim(min(accs + [floor]) - margin, max(accs + [keras_acc]) + 3 * margin)
    ax.set_ylabel("test accuracy, LiteRT (%)")
    _finish(plt, fig, ax, path, "Exported variants: accuracy vs size (★ recommended)", "lower right")


def _plot_regression(result: ExportResult, path: Path, plt) -> None:
    """Mean |Δ| against Keras by file size, with the --max-error budget as a line."""

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    shown = sorted((v for v in result.variants if v.regression), key=lambda v: v.bytes)
    errs = [v.regression.mae for v in shown if v.regression]
    budget = result.options.max_error or 0.0
    ax.axhline(budget, color="tab:red", lw=1, ls="--", label=f"--max-error {budget:g}")
    _points(ax, result, shown, errs, y_close=budget / 10)
    ax.set_ylabel("mean |Δ| against Keras (target units)")
    _finish(plt, fig, ax, path, "Exported variants: error vs size (★ recommended)", "upper right")


def _points(ax, result: ExportResult, shown: list, ys: list[float], *, y_close: float) -> None:
    """One labelled point per variant at (file size, y): green passed, red failed, a star for the recommended."""
    from mobile_ml.plotting import label_points

    for v, y in zip(shown, ys, strict=True):
        star = v.variant == result.recommended
        color = "tab:green" if v.passed else "tab:red"
        ax.scatter(v.bytes / 1024, y, s=180 if star else 50, color=color, marker="*" if star else "o", zorder=3)
    label_points(ax, [(v.bytes / 1024, y, v.variant) for v, y in zip(shown, ys, strict=True)], y_close=y_close)


def _finish(plt, fig, ax, path: Path, title: str, legend: str) -> None:
    """The axes both plots share (file size on a log scale), then the PNG."""
    from mobile_ml.plotting import plain_log_ticks

    ax.set_xlabel("model file size (KiB)")
    ax.set_xscale("log")
    ax.margins(x=0.12)
    plain_log_ticks(ax.xaxis)
    ax.set_title(title)
    ax.legend(loc=legend, fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

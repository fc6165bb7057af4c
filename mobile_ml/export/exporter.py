"""Export a training run: build each variant, prove it on the test split with LiteRT, write ``RUNDIR/exports``.

Layout (written atomically; an earlier ``exports/`` is replaced only with ``force`` and only once this one is whole):
    exports/<variant>/model.tflite     the model
    exports/<variant>/metadata.json    what an app needs to run and health-check it
    exports/export.json                every figure below, versioned schema ``mobile_ml.export``
    exports/export.csv                 the comparison table
    exports/export.png                 accuracy against size
"""

from __future__ import annotations

import gzip
import hashlib
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mobile_ml.errors import ConfigError, InputFileError
from mobile_ml.export import finetune, metadata, tflite_file
from mobile_ml.export.convert import convert, representative_sample
from mobile_ml.export.options import DESCRIPTIONS, FINETUNED_VARIANTS, ExportOptions
from mobile_ml.export.report import ExportResult, Parity, VariantResult, check_gate, plot, recommend, write_csv
from mobile_ml.outputs import atomic_dir, write_json
from mobile_ml.progress import NullReporter
from mobile_ml.train.metrics import Metrics, classification_metrics
from mobile_ml.train.rundir import Run, load_run

__all__ = ["export", "export_run", "evaluate_file", "check_gate"]


class ExportReporter(Protocol):
    def variant_started(self, variant: str, index: int, total: int) -> None: ...
    def finetune_epoch(self, variant: str, epoch: int, epochs: int, logs: dict[str, float]) -> None: ...
    def variant_finished(self, result: VariantResult) -> None: ...


def parity(
    probs: np.ndarray, y: np.ndarray, labels: list[str], keras_probs: np.ndarray, keras_metrics: Metrics
) -> Parity:
    m = classification_metrics(y, probs, labels)
    diff = np.abs(probs.astype(np.float64) - keras_probs.astype(np.float64))
    return Parity(
        m,
        round((keras_metrics.accuracy - m.accuracy) * 100, 6),
        float((probs.argmax(1) == keras_probs.argmax(1)).mean()) if len(y) else 0.0,
        float(diff.max()) if diff.size else 0.0,
        float(diff.mean()) if diff.size else 0.0,
    )


def export(
    rundir: str | Path,
    options: ExportOptions | None = None,
    *,
    data_dir: str | Path | None = None,
    force: bool = False,
    reporter: ExportReporter | None = None,
    representative: np.ndarray | None = None,
) -> ExportResult:
    """Export ``rundir``'s model. ``representative`` overrides the calibration rows (default: a train sample)."""
    run = load_run(rundir, data_dir)
    with atomic_dir(run.exports_dir, force=force) as tmp:
        result = export_run(run, tmp, options, reporter=reporter, representative=representative)
    return replace(result, exports_dir=run.exports_dir)


def export_run(
    run: Run,
    out: Path,
    options: ExportOptions | None = None,
    *,
    reporter: ExportReporter | None = None,
    representative: np.ndarray | None = None,
) -> ExportResult:
    """Build, evaluate and write every requested variant into the (fresh) directory ``out``."""
    from mobile_ml.train.trainer import environment

    start = time.perf_counter()
    options = options or ExportOptions()
    reporter = reporter or NullReporter()
    out.mkdir(parents=True, exist_ok=True)
    model = run.load_model()
    train, val, (x_test, y_test) = run.split("train"), run.split("validation"), run.split("test")
    labels = run.spec.labels
    keras_probs = model.predict(x_test, batch_size=256, verbose=0)
    keras_metrics = classification_metrics(y_test, keras_probs, labels)
    sample = (
        representative
        if representative is not None
        else representative_sample(train[0], options.calibration_samples, options.seed)
    )
    batch_size = run.info.config.batch_size
    # Size ratios are against fp32; without an fp32 export, against the float32 weights the Keras model holds.
    fp32_bytes = sum(w.size * 4 for w in model.get_weights())

    results: list[VariantResult] = []
    for i, variant in enumerate(options.variants):
        reporter.variant_started(variant, i, len(options.variants))
        seconds: dict[str, float] = {}
        source, tuned = model, None
        if variant in FINETUNED_VARIANTS:
            t = time.perf_counter()
            kwargs = dict(
                epochs=options.finetune_epochs,
                learning_rate=options.finetune_learning_rate,
                batch_size=batch_size,
                seed=options.seed,
                on_epoch=lambda e, logs, v=variant: reporter.finetune_epoch(v, e, options.finetune_epochs, logs),
            )
            if variant == "qat-int8":
                source, info = finetune.quantization_aware(model, train, val, **kwargs)
            else:
                source, info = finetune.pruned(model, train, val, sparsity=options.prune_sparsity, **kwargs)
            tuned = {**asdict(info), "seconds": round(info.seconds, 3)}
            seconds["finetune"] = time.perf_counter() - t
        t = time.perf_counter()
        data = convert(
            source,
            "int8" if variant in FINETUNED_VARIANTS else variant,
            representative=sample,
            int8_io=options.int8_io,
            allow_flex=options.allow_flex,
            per_channel=options.per_channel,
        )
        seconds["convert"] = time.perf_counter() - t
        if variant == "fp32":
            fp32_bytes = len(data)
        result = _evaluate_variant(
            variant, data, out, run, x_test, y_test, keras_probs, keras_metrics, options, fp32_bytes, seconds, tuned
        )
        results.append(result)
        reporter.variant_finished(result)

    final = ExportResult(
        run.dir, out, options, keras_metrics, results, recommend(results), time.perf_counter() - start, environment()
    )
    write_json(out / "export.json", final.to_dict())
    write_csv(final, out / "export.csv")
    plot(final, out / "export.png")
    return final


def _evaluate_variant(
    variant, data, out, run, x_test, y_test, keras_probs, keras_metrics, options, fp32_bytes, seconds, tuned
) -> VariantResult:
    ops = tflite_file.ops_info(data)
    if ops.select_tf_ops and not options.allow_flex:  # cannot happen through the converter; guards edited inputs
        raise ConfigError(f"{variant} needs Select-TF ops {', '.join(ops.select_tf_ops)}", hint="pass --allow-flex")
    vdir = out / variant
    vdir.mkdir()
    (vdir / "model.tflite").write_bytes(data)
    t = time.perf_counter()
    note, par, health, inputs, outputs = "", None, None, [], []
    try:
        interpreter = tflite_file.load_interpreter(data, f"{variant}/model.tflite")
    except InputFileError as e:
        if not ops.select_tf_ops:
            raise
        note = f"not evaluated: {e.message}"
    else:
        inputs, outputs = tflite_file.io_details(interpreter)
        probs = tflite_file.predict(interpreter, x_test)
        par = parity(probs, y_test, run.spec.labels, keras_probs, keras_metrics)
        health = metadata.health_check_case(interpreter, x_test, run.spec.labels)
    seconds["evaluate"] = time.perf_counter() - t
    passed = par is not None and par.accuracy_drop_pp <= options.max_accuracy_drop + 1e-9
    sha = hashlib.sha256(data).hexdigest()
    if par is not None:
        meta = metadata.build(
            run.spec,
            variant,
            DESCRIPTIONS[variant],
            inputs,
            outputs,
            {
                **par.summary(),
                "passed": passed,
                "budget_pp": options.max_accuracy_drop,
                "keras_accuracy": keras_metrics.accuracy,
            },
            health,
            sha,
            len(data),
        )
        write_json(vdir / "metadata.json", meta)
    return VariantResult(
        variant,
        DESCRIPTIONS[variant],
        f"{variant}/model.tflite",
        len(data),
        len(gzip.compress(data, 9, mtime=0)),
        round(len(data) / fp32_bytes, 4),
        ops,
        inputs,
        outputs,
        par,
        passed,
        {k: round(v, 3) for k, v in seconds.items()},
        tuned,
        note,
    )


def evaluate_file(
    model_path: str | Path, rundir: str | Path, *, data_dir: str | Path | None = None, split: str = "test"
) -> dict[str, Any]:
    """Parity figures of any .tflite file against ``rundir``'s Keras model on one split (nothing is written)."""
    run = load_run(rundir, data_dir)
    data = tflite_file.read_model_bytes(model_path)
    interpreter = tflite_file.load_interpreter(data, str(model_path))  # verifies the flatbuffer first
    ops = tflite_file.ops_info(data)
    inputs, outputs = tflite_file.io_details(interpreter)
    x, y = run.split(split)
    probs = tflite_file.predict(interpreter, x)
    model = run.load_model()
    keras_probs = model.predict(x, batch_size=256, verbose=0)
    keras_metrics = classification_metrics(y, keras_probs, run.spec.labels)
    par = parity(probs, y, run.spec.labels, keras_probs, keras_metrics)
    return {
        "schema": "mobile_ml.evaluation",
        "schema_version": 1,
        "model": str(model_path),
        "run_dir": str(run.dir),
        "split": split,
        "bytes": len(data),
        "keras_accuracy": keras_metrics.accuracy,
        **par.summary(),
        "ops": ops.ops,
        "builtin_only": ops.builtin_only,
        "inputs": [asdict(i) for i in inputs],
        "outputs": [asdict(o) for o in outputs],
        "metrics": asdict(par.metrics),
    }

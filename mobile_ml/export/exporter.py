"""Export a training run: build each variant, prove it on the test split with LiteRT, write ``RUNDIR/exports``.

Layout (written atomically: the earlier ``exports/`` stays as it was until the new one is whole):
    exports/<variant>/model.tflite     the model
    exports/<variant>/metadata.json    what an app needs to run and health-check it
    exports/export.json                every figure below, versioned schema ``mobile_ml.export``
    exports/export.csv                 the comparison table
    exports/export.png                 accuracy against size

An existing ``exports/`` is refused unless ``force`` (re-export the requested variants, keep the others, recompute
the recommendation over all of them) or ``clean`` (replace every variant) is given.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mobile_ml.contracts import write_document
from mobile_ml.contracts.export import (
    ExportResult,
    Figures,
    FinetuneInfo,
    Parity,
    TensorInfo,
    VariantResult,
    Verdict,
    read_export,
)
from mobile_ml.contracts.model_metadata import MetadataParity
from mobile_ml.errors import ConfigError, InputFileError, OutputError
from mobile_ml.export import finetune, metadata, tflite_file
from mobile_ml.export.convert import convert, representative_sample
from mobile_ml.export.normalization import SplitModel, split_normalization
from mobile_ml.export.options import (
    DESCRIPTIONS,
    FINETUNED_VARIANTS,
    INTEGER_VARIANTS,
    SHAPED_BY,
    VARIANTS,
    ExportOptions,
    Variant,
)
from mobile_ml.export.report import check_gate, plot, recommend, verdict, write_csv
from mobile_ml.outputs import atomic_dir
from mobile_ml.progress import NullReporter
from mobile_ml.train.metrics import Metrics, classification_metrics
from mobile_ml.train.rundir import Run, load_run

__all__ = ["export", "export_run", "check_gate"]


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
    clean: bool = False,
    reporter: ExportReporter | None = None,
    representative: np.ndarray | None = None,
    normalize_in_model: bool = False,
) -> ExportResult:
    """Export ``rundir``'s model. ``representative`` overrides the calibration rows (default: a train sample).

    ``normalize_in_model`` builds integer variants of tabular models the old way, with the Normalization layer inside
    the integer graph (for measuring what normalizing outside it gains; see ``mobile_ml.export.normalization``).

    With an earlier export in place, ``force`` re-exports only ``options.variants`` and keeps the others;
    ``clean`` replaces them all.
    """
    run = load_run(rundir, data_dir)
    dest = run.exports_dir
    earlier = _earlier_export(dest, options or ExportOptions(), force=force, clean=clean)
    run_export = functools.partial(export_run, normalize_in_model=normalize_in_model)
    with atomic_dir(dest, force=force or clean) as tmp:
        result = run_export(run, tmp, options, reporter=reporter, representative=representative, keep=earlier)
    return replace(result, exports_dir=dest)


def _earlier_export(dest: Path, options: ExportOptions, *, force: bool, clean: bool) -> ExportResult | None:
    """The export whose other variants a ``force`` re-export keeps; refusals happen here, before any work."""
    if not dest.is_dir() or not any(dest.iterdir()):
        return None
    if not (force or clean):
        raise OutputError(
            f"{dest} already exists",
            hint="pass --force to re-export the variants named by --variants and keep the others, "
            "or --clean to replace every variant (the earlier export stays until the new one is complete)",
        )
    if clean:
        return None
    if not (dest / "export.json").is_file():
        raise OutputError(f"{dest} has no export.json, so no variant of it can be kept", hint="pass --clean instead")
    earlier = read_export(dest)
    kept = [v.variant for v in earlier.variants if v.variant not in options.variants]
    for name, shaped in SHAPED_BY.items():
        then, now = getattr(earlier.options, name), getattr(options, name)
        clash = [v for v in kept if v in shaped]
        if then != now and clash:
            raise ConfigError(
                f"the kept variant {clash[0]} was exported with {name} = {then!r}; this export uses {now!r}",
                hint=f"re-export it too (--variants {','.join([*options.variants, *clash])}), or pass --clean",
            )
    return earlier


@dataclass(frozen=True)
class _Job:
    """Everything building and evaluating one variant needs, prepared once per export."""

    run: Run
    out: Path
    options: ExportOptions
    model: Any  # the trained tf_keras model
    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray]
    x_test: np.ndarray
    y_test: np.ndarray
    keras_probs: np.ndarray
    keras_metrics: Metrics
    sample: np.ndarray  # calibration rows
    batch_size: int
    reporter: ExportReporter
    split: SplitModel | None  # tabular models: what integer variants are built from (normalization outside)

    def integer_split(self, variant: Variant) -> SplitModel | None:
        return self.split if variant in INTEGER_VARIANTS else None

    @classmethod
    def prepare(cls, run, out, options, reporter, representative, normalize_in_model) -> _Job:
        model = run.load_model()
        train, val, (x_test, y_test) = run.split("train"), run.split("validation"), run.split("test")
        keras_probs = model.predict(x_test, batch_size=256, verbose=0)
        split = None
        if run.spec.image is None and not normalize_in_model and set(options.variants) & set(INTEGER_VARIANTS):
            split = split_normalization(model, x_test)  # proven on the test rows, or ConversionError
        sample = (
            representative
            if representative is not None
            else representative_sample(train[0], options.calibration_samples, options.seed)
        )
        return cls(
            run,
            out,
            options,
            model,
            train,
            val,
            x_test,
            y_test,
            keras_probs,
            classification_metrics(y_test, keras_probs, run.spec.labels),
            sample,
            run.info.config.batch_size,
            reporter,
            split,
        )


def export_run(
    run: Run,
    out: Path,
    options: ExportOptions | None = None,
    *,
    reporter: ExportReporter | None = None,
    representative: np.ndarray | None = None,
    keep: ExportResult | None = None,
    normalize_in_model: bool = False,
) -> ExportResult:
    """Build, evaluate and write every requested variant into the (fresh) directory ``out``.

    ``keep``: an earlier export whose variants not in ``options.variants`` are carried over into ``out``.
    """
    from mobile_ml.train.trainer import environment

    start = time.perf_counter()
    options = options or ExportOptions()
    out.mkdir(parents=True, exist_ok=True)
    job = _Job.prepare(run, out, options, reporter or NullReporter(), representative, normalize_in_model)
    kept = _carry_over(keep, job) if keep is not None else []
    built = []
    for i, variant in enumerate(options.variants):
        job.reporter.variant_started(variant, i, len(options.variants))
        result = _export_variant(job, variant)
        built.append(result)
        job.reporter.variant_finished(result)
    variants = _with_size_ratios(sorted([*kept, *built], key=lambda v: VARIANTS.index(v.variant)), job.model)
    final = ExportResult(
        run.dir,
        out,
        replace(options, variants=tuple(v.variant for v in variants)),
        Figures.of(job.keras_metrics),
        variants,
        recommend(variants),
        time.perf_counter() - start,
        environment(),
    )
    write_document(out / "export.json", final)
    write_csv(final, out / "export.csv")
    plot(final, out / "export.png")
    return final


def _carry_over(earlier: ExportResult, job: _Job) -> list[VariantResult]:
    """The earlier export's variants that are not rebuilt, copied into ``job.out`` and judged on today's budget."""
    keep = [v for v in earlier.variants if v.variant not in job.options.variants]
    if not keep:
        return []
    then, now = earlier.keras, Figures.of(job.keras_metrics)
    if (then.examples, then.accuracy) != (now.examples, now.accuracy) or abs(then.loss - now.loss) > 1e-5:
        raise ConfigError(
            f"the run's model or test split changed since {earlier.exports_dir} was exported "
            f"(Keras test accuracy {then.accuracy:.4f} then, {now.accuracy:.4f} now): its variants cannot be kept",
            hint="pass --clean to export every variant again",
        )
    budget = job.options.max_accuracy_drop
    kept = []
    for old in keep:
        if not (earlier.exports_dir / old.file).is_file():
            raise InputFileError(f"{earlier.exports_dir / old.file} is missing", hint="pass --clean to export again")
        shutil.copytree(earlier.exports_dir / old.variant.value, job.out / old.variant.value)
        v = replace(old, verdict=verdict(old.parity, budget))
        meta_path = job.out / v.variant.value / "metadata.json"
        if meta_path.is_file():  # the gate's answer in metadata.json follows today's budget too
            meta = metadata.read(meta_path)
            write_document(
                meta_path, replace(meta, parity=replace(meta.parity, passed=v.passed, budget_pp=float(budget)))
            )
        kept.append(v)
    return kept


def _with_size_ratios(variants: list[VariantResult], model) -> tuple[VariantResult, ...]:
    """Sizes against the fp32 file; without an fp32 variant, against the float32 weights the Keras model holds."""
    fp32 = next((v.bytes for v in variants if v.variant is Variant.FP32), None)
    base = fp32 or sum(w.size * 4 for w in model.get_weights())
    return tuple(replace(v, size_ratio=round(v.bytes / base, 4)) for v in variants)


def _export_variant(job: _Job, variant: Variant) -> VariantResult:
    data, seconds, tuned = _build(job, variant)
    ops = tflite_file.ops_info(data)
    if ops.select_tf_ops and not job.options.allow_flex:  # cannot happen through the converter; guards edited inputs
        raise ConfigError(f"{variant} needs Select-TF ops {', '.join(ops.select_tf_ops)}", hint="pass --allow-flex")
    vdir = job.out / variant.value
    vdir.mkdir()
    (vdir / "model.tflite").write_bytes(data)
    t = time.perf_counter()
    note, par, health = "", None, None
    inputs: tuple[TensorInfo, ...] = ()
    outputs: tuple[TensorInfo, ...] = ()
    try:
        interpreter = tflite_file.load_interpreter(data, f"{variant}/model.tflite")
    except InputFileError as e:
        if not ops.select_tf_ops:
            raise
        note = f"not evaluated: {e.message}"
    else:
        inputs, outputs = tflite_file.io_details(interpreter)
        rows = split.rows if (split := job.integer_split(variant)) is not None else None
        probs = tflite_file.predict(interpreter, rows(job.x_test) if rows else job.x_test)
        par = parity(probs, job.y_test, job.run.spec.labels, job.keras_probs, job.keras_metrics)
        health = metadata.health_check_case(interpreter, job.x_test, job.run.spec.labels, rows)
    seconds["evaluate"] = time.perf_counter() - t
    gate = verdict(par, job.options.max_accuracy_drop)
    if par is not None and health is not None:
        figures = MetadataParity(
            **par.summary(),
            passed=gate is Verdict.PASS,
            budget_pp=float(job.options.max_accuracy_drop),
            keras_accuracy=job.keras_metrics.accuracy,
        )
        sha = hashlib.sha256(data).hexdigest()
        norm = split.norm if split is not None else None
        meta = metadata.build(
            job.run.spec, variant, DESCRIPTIONS[variant], inputs, outputs, figures, health, sha, len(data), norm
        )
        write_document(vdir / "metadata.json", meta)
    return VariantResult(
        variant,
        DESCRIPTIONS[variant],
        f"{variant}/model.tflite",
        len(data),
        len(gzip.compress(data, 9, mtime=0)),
        0.0,  # set once every variant's size is known (_with_size_ratios)
        ops,
        inputs,
        outputs,
        par,
        gate,
        {k: round(v, 3) for k, v in seconds.items()},
        tuned,
        note,
    )


def _build(job: _Job, variant: Variant) -> tuple[bytes, dict[str, float], FinetuneInfo | None]:
    """The variant's .tflite bytes (fine-tuning first for QAT and pruning), with the seconds each step took."""
    seconds: dict[str, float] = {}
    source, tuned = job.model, None
    opts = job.options
    train, val, sample = job.train, job.val, job.sample
    if (split := job.integer_split(variant)) is not None:  # the body takes normalized rows: so does all its data
        source, sample = split.body, split.rows(sample)
        train, val = (split.rows(train[0]), train[1]), (split.rows(val[0]), val[1])
    if variant in FINETUNED_VARIANTS:
        t = time.perf_counter()

        def on_epoch(epoch: int, logs: dict) -> None:
            job.reporter.finetune_epoch(variant, epoch, opts.finetune_epochs, logs)

        lr, epochs, bs, seed = opts.finetune_learning_rate, opts.finetune_epochs, job.batch_size, opts.seed
        if variant is Variant.QAT_INT8:
            source, info = finetune.quantization_aware(
                source,
                train,
                val,
                epochs=epochs,
                learning_rate=lr,
                batch_size=bs,
                seed=seed,
                on_epoch=on_epoch,
            )
        else:
            source, info = finetune.pruned(
                source,
                train,
                val,
                sparsity=opts.prune_sparsity,
                epochs=epochs,
                learning_rate=lr,
                batch_size=bs,
                seed=seed,
                on_epoch=on_epoch,
            )
        tuned = replace(info, seconds=round(info.seconds, 3))
        seconds["finetune"] = time.perf_counter() - t
    t = time.perf_counter()
    data = convert(
        source,
        Variant.INT8 if variant in FINETUNED_VARIANTS else variant,
        representative=sample,
        int8_io=opts.int8_io,
        allow_flex=opts.allow_flex,
        per_channel=opts.per_channel,
    )
    seconds["convert"] = time.perf_counter() - t
    return data, seconds, tuned

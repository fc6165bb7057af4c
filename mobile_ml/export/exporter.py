"""Export a model: build each variant, prove it on the evaluation rows with LiteRT, write the exports directory.

The model and its data come as an ``Exportable`` (``mobile_ml.export.sources``): from a training run (``export``,
into ``RUNDIR/exports``) or from a model file with data files (``export_model``, into ``<model>_exports/`` by
default). Layout (written atomically: an earlier directory stays as it was until the new one is whole):
    <variant>/model.tflite     the model
    <variant>/metadata.json    what an app needs to run and health-check it
    export.json                every figure below, versioned schema ``mobile_ml.export``
    export.csv                 the comparison table
    export.png                 accuracy (or error) against size

An existing directory is refused unless ``force`` (re-export the requested variants, keep the others, recompute
the recommendation over all of them) or ``clean`` (replace every variant) is given.
"""

from __future__ import annotations

import functools
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
    RegressionFigures,
    Task,
    VariantResult,
    read_export,
)
from mobile_ml.errors import ConfigError, InputFileError, OutputError
from mobile_ml.export import finetune, metadata
from mobile_ml.export import parity as figures
from mobile_ml.export.convert import convert, representative_sample
from mobile_ml.export.model_file import FinetuneUnsupported, LoadedModel
from mobile_ml.export.normalization import SplitModel, split_file_model, split_normalization
from mobile_ml.export.options import FINETUNED_VARIANTS, INTEGER_VARIANTS, SHAPED_BY, VARIANTS, ExportOptions, Variant
from mobile_ml.export.report import check_gate, plot, recommend, write_csv
from mobile_ml.export.sources import Exportable, conversion_source, from_files, from_run
from mobile_ml.outputs import atomic_dir
from mobile_ml.progress import NullReporter
from mobile_ml.train.metrics import Metrics, classification_metrics
from mobile_ml.train.rundir import Run, load_run

__all__ = ["export", "export_model", "export_run", "export_source", "check_gate"]

parity = figures.classification  # where ``parity`` lived before mobile_ml.export.parity; kept for its callers


class ExportReporter(Protocol):
    """Progress events; a reporter may also have ``variant_note(text)`` for a requested variant that is skipped."""

    def variant_started(self, variant: str, index: int, total: int) -> None: ...
    def finetune_epoch(self, variant: str, epoch: int, epochs: int, logs: dict[str, float]) -> None: ...
    def variant_finished(self, result: VariantResult) -> None: ...


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


def export_model(
    model_path: str | Path,
    options: ExportOptions | None = None,
    *,
    force: bool = False,
    clean: bool = False,
    reporter: ExportReporter | None = None,
    **files: Any,
) -> ExportResult:
    """Export a model file (or SavedModel directory); ``files`` are ``sources.from_files``'s keyword arguments
    (``eval=``, ``calibration=``, ``labels=``, ``task=``, ``out=``, ...). Every input is checked before anything
    is written."""
    options = options or ExportOptions()
    src = from_files(model_path, options, **files)
    earlier = _earlier_export(src.out, options, force=force, clean=clean)
    with atomic_dir(src.out, force=force or clean) as tmp:
        result = export_source(src, tmp, options, reporter=reporter, keep=earlier)
    return replace(result, exports_dir=src.out)


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

    src: Exportable
    out: Path
    options: ExportOptions
    reporter: ExportReporter
    keras_metrics: Metrics | None  # classification: the source model's figures on the evaluation rows
    keras_regression: RegressionFigures | None  # regression: its error against the targets (when labelled)
    split: SplitModel | None  # tabular models: what integer variants are built from (normalization outside)
    tunable: Any  # the tf_keras model QAT and pruning start from (None: no fine-tuned variant is built)
    skipped: dict[Variant, str]

    def integer_split(self, variant: Variant) -> SplitModel | None:
        return self.split if variant in INTEGER_VARIANTS else None

    @classmethod
    def prepare(cls, src: Exportable, out, options: ExportOptions, reporter, normalize_in_model) -> _Job:
        skipped = dict(src.skipped)
        wanted = set(options.variants) - set(skipped)
        split = None
        tabular_run = src.run is not None and src.spec is not None and src.spec.image is None
        if tabular_run and not normalize_in_model and wanted & set(INTEGER_VARIANTS):
            x_test = src.eval.x[src.model.inputs[0].name]
            split = split_normalization(src.run_keras, x_test)  # proven on the test rows, or ConversionError
        elif src.run is None and not normalize_in_model and wanted & set(INTEGER_VARIANTS):
            split = split_file_model(src.model, src.eval.x) if isinstance(src.model, LoadedModel) else None
        tunable = None
        if wanted & {Variant.QAT_INT8, Variant.PRUNED_INT8}:
            try:
                tunable = src.model.finetunable(src.eval.x)
            except FinetuneUnsupported as e:
                for v in (Variant.QAT_INT8, Variant.PRUNED_INT8):
                    skipped[v] = f"skipped: {e.message}"
        keras_metrics = keras_reg = None
        y = src.eval.y
        if y is None:  # cannot happen: both routes load labelled evaluation rows
            raise ConfigError(f"{src.eval.source} has no labels", hint="parity needs labelled evaluation rows")
        if src.task is Task.CLASSIFICATION:
            keras_metrics = classification_metrics(y, src.keras_outputs[0], list(src.labels))
        else:
            keras_reg = figures.regression_figures(_pooled(src.keras_outputs), y)
        return cls(src, out, options, reporter, keras_metrics, keras_reg, split, tunable, skipped)


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
    """Build, evaluate and write every requested variant of ``run``'s model into the (fresh) directory ``out``.

    ``keep``: an earlier export whose variants not in ``options.variants`` are carried over into ``out``.
    """
    options = options or ExportOptions()
    if representative is None:  # calibration: train rows only (calibrating on the test rows would flatter int8)
        representative = representative_sample(run.split("train")[0], options.calibration_samples, options.seed)
    src = from_run(run, options, representative)
    return export_source(src, out, options, reporter=reporter, keep=keep, normalize_in_model=normalize_in_model)


def export_source(
    src: Exportable,
    out: Path,
    options: ExportOptions,
    *,
    reporter: ExportReporter | None = None,
    keep: ExportResult | None = None,
    normalize_in_model: bool = False,
) -> ExportResult:
    """Build, evaluate and write every requested variant of ``src`` into the (fresh) directory ``out``."""
    from mobile_ml.export.variant import export_variant
    from mobile_ml.train.trainer import environment

    start = time.perf_counter()
    if src.task is Task.REGRESSION and options.max_error is None:  # recorded, so the gate can be reproduced
        options = replace(options, max_error=figures.default_max_error(src.eval.y, src.keras_outputs[0]))
    out.mkdir(parents=True, exist_ok=True)
    job = _Job.prepare(src, out, options, reporter or NullReporter(), normalize_in_model)
    todo = [v for v in options.variants if v not in job.skipped]
    notes = tuple(f"{v}: {job.skipped[v]}" for v in options.variants if v in job.skipped)
    if not todo:
        raise ConfigError(f"no requested variant can be built here: {'; '.join(notes)}", hint=SKIP_HINT)
    if options.require is not None and options.require in job.skipped:
        raise ConfigError(f"--require {options.require}: {job.skipped[options.require]}", hint=SKIP_HINT)
    for note in notes:
        if (say := getattr(job.reporter, "variant_note", None)) is not None:
            say(note)
    kept = _carry_over(keep, job) if keep is not None else []
    built = []
    for i, variant in enumerate(todo):
        job.reporter.variant_started(variant, i, len(todo))
        result = export_variant(job, variant, _build)
        built.append(result)
        job.reporter.variant_finished(result)
    variants = _with_size_ratios(sorted([*kept, *built], key=lambda v: VARIANTS.index(v.variant)), src)
    final = ExportResult(
        src.run.dir if src.run is not None else None,
        out,
        replace(options, variants=tuple(v.variant for v in variants)),
        Figures.of(job.keras_metrics) if job.keras_metrics is not None else None,
        variants,
        recommend(variants),
        time.perf_counter() - start,
        environment(),
        src.source,
        src.task,
        job.keras_regression,
        notes,
    )
    write_document(out / "export.json", final)
    write_csv(final, out / "export.csv")
    plot(final, out / "export.png")
    return final


SKIP_HINT = "pass --calibration FILE / --finetune-data FILE, or choose other --variants (e.g. fp32,fp16,dynamic)"


def _carry_over(earlier: ExportResult, job: _Job) -> list[VariantResult]:
    """The earlier export's variants that are not rebuilt, copied into ``job.out`` and judged on today's budget."""
    import shutil

    keep = [v for v in earlier.variants if v.variant not in job.options.variants]
    if not keep:
        return []
    then_sha, now_sha = earlier.source.sha256 if earlier.source else "", job.src.source.sha256
    then, now = earlier.keras, Figures.of(job.keras_metrics) if job.keras_metrics is not None else None
    changed = (then_sha and then_sha != now_sha) or earlier.task is not job.src.task
    if then is not None and now is not None:
        changed = changed or (then.examples, then.accuracy) != (now.examples, now.accuracy)
        changed = changed or abs(then.loss - now.loss) > 1e-5
    if changed:
        was = f" (Keras test accuracy {then.accuracy:.4f} then, {now.accuracy:.4f} now)" if then and now else ""
        raise ConfigError(
            f"the run's model or test split changed since {earlier.exports_dir} was exported{was}: "
            "its variants cannot be kept",
            hint="pass --clean to export every variant again",
        )
    kept = []
    for old in keep:
        if not (earlier.exports_dir / old.file).is_file():
            raise InputFileError(f"{earlier.exports_dir / old.file} is missing", hint="pass --clean to export again")
        shutil.copytree(earlier.exports_dir / old.variant.value, job.out / old.variant.value)
        v = replace(old, verdict=figures.judge(old.parity, old.regression, job.options, job.src.task))
        meta_path = job.out / v.variant.value / "metadata.json"
        if meta_path.is_file():  # the gate's answer in metadata.json follows today's budget too
            metadata.rejudge(meta_path, v.passed, job.options)
        kept.append(v)
    return kept


def _with_size_ratios(variants: list[VariantResult], src: Exportable) -> tuple[VariantResult, ...]:
    """Sizes against the fp32 file; without an fp32 variant, against the float32 weights the source model holds."""
    fp32 = next((v.bytes for v in variants if v.variant is Variant.FP32), None)
    base = fp32 or src.model.float_weight_bytes()
    return tuple(replace(v, size_ratio=round(v.bytes / base, 4)) for v in variants)


def _pooled(outputs: list[np.ndarray]) -> np.ndarray:
    """Every output of each row side by side: regression figures pool a model's outputs."""
    return np.concatenate([np.asarray(o).reshape(len(o), -1) for o in outputs], axis=1)


def _build(job: _Job, variant: Variant) -> tuple[bytes, dict[str, float], FinetuneInfo | None]:
    """The variant's .tflite bytes (fine-tuning first for QAT and pruning), with the seconds each step took."""
    seconds: dict[str, float] = {}
    src, opts = job.src, job.options
    source: Any = conversion_source(src.model)
    tuned = None
    sample = _rows(src.calibration.x, src) if src.calibration is not None else None
    tune = src.finetune
    train = (_rows(tune[0].x, src), tune[0].y) if tune is not None else None
    val = (_rows(tune[1].x, src), tune[1].y) if tune is not None else None
    if (split := job.integer_split(variant)) is not None:  # the body takes normalized rows: so does all its data
        source, sample = split.body, split.rows(sample) if sample is not None else None
        if train is not None and val is not None:
            train, val = (split.rows(train[0]), train[1]), (split.rows(val[0]), val[1])
    if variant in FINETUNED_VARIANTS:
        t = time.perf_counter()
        base = split.body if split is not None else job.tunable
        source, tuned = _finetune(job, variant, base, train, val)
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


def _rows(x: dict[str, np.ndarray], src) -> Any:
    """One input's rows as an array (as runs always had them); several as a name → rows mapping."""
    if len(src.model.inputs) == 1:
        return np.asarray(x[src.model.inputs[0].name])
    return {k: np.asarray(v, dtype=np.float32) for k, v in x.items()}


def _finetune(job: _Job, variant: Variant, model, train, val) -> tuple[Any, FinetuneInfo]:
    opts = job.options

    def on_epoch(epoch: int, logs: dict) -> None:
        job.reporter.finetune_epoch(variant, epoch, opts.finetune_epochs, logs)

    common: dict[str, Any] = {
        "epochs": opts.finetune_epochs,
        "learning_rate": opts.finetune_learning_rate,
        "batch_size": job.src.batch_size,
        "seed": opts.seed,
        "on_epoch": on_epoch,
        "regression": job.src.task is Task.REGRESSION,
    }
    if variant is Variant.QAT_INT8:
        tuned, info = finetune.quantization_aware(model, train, val, **common)
    else:
        tuned, info = finetune.pruned(model, train, val, sparsity=opts.prune_sparsity, **common)
    return tuned, replace(info, seconds=round(info.seconds, 3))

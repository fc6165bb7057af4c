"""One variant of an export: build its .tflite bytes (fine-tuning first for QAT and pruning), prove it with LiteRT
on the evaluation rows, and write ``<variant>/model.tflite`` and ``metadata.json``."""

from __future__ import annotations

import gzip
import hashlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from mobile_ml.contracts import write_document
from mobile_ml.contracts.export import (
    FinetuneInfo,
    OutputDiff,
    Parity,
    Task,
    TensorInfo,
    VariantResult,
    Verdict,
)
from mobile_ml.errors import ConfigError, InputFileError
from mobile_ml.export import metadata, tflite_file
from mobile_ml.export import parity as figures
from mobile_ml.export.options import DESCRIPTIONS, Variant

if TYPE_CHECKING:
    from mobile_ml.export.exporter import _Job

Builder = Callable[["_Job", Variant], tuple[bytes, dict[str, float], FinetuneInfo | None]]


def export_variant(job: _Job, variant: Variant, build: Builder) -> VariantResult:
    """``build`` makes the bytes (``exporter._build``: fine-tuning, then the converter)."""
    data, seconds, tuned = build(job, variant)
    ops = tflite_file.ops_info(data)
    if ops.select_tf_ops and not job.options.allow_flex:  # cannot happen through the converter; guards edited inputs
        raise ConfigError(f"{variant} needs Select-TF ops {', '.join(ops.select_tf_ops)}", hint="pass --allow-flex")
    vdir = job.out / variant.value
    vdir.mkdir()
    (vdir / "model.tflite").write_bytes(data)
    t = time.perf_counter()
    note, par, reg = "", None, None
    diffs: tuple[OutputDiff, ...] = ()
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
        got = _predict(job, variant, interpreter)
        src = job.src
        diffs = figures.output_diffs(got, src.keras_outputs, [o.name for o in src.model.outputs])
        if src.task is Task.CLASSIFICATION and job.keras_metrics is not None and src.eval.y is not None:
            par = figures.classification(got[0], src.eval.y, src.labels, src.keras_outputs[0], job.keras_metrics)
        else:
            reg = figures.regression(_pooled(got), _pooled(src.keras_outputs), src.eval.y)
    seconds["evaluate"] = time.perf_counter() - t
    gate = figures.judge(par, reg, job.options, job.src.task)
    if par is not None or reg is not None:
        meta = _metadata(job, variant, interpreter, data, par, reg, gate is Verdict.PASS)
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
        reg,
        diffs,
    )


def _pooled(outputs: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(o).reshape(len(o), -1) for o in outputs], axis=1)


def _predict(job: _Job, variant: Variant, interpreter) -> list[np.ndarray]:
    """The variant's outputs on every evaluation row, in the source model's output order."""
    src = job.src
    split = job.integer_split(variant)
    if src.single:  # the single-tensor path every run export has always used
        x = src.eval.x[src.model.inputs[0].name]
        return [tflite_file.predict(interpreter, split.rows(x) if split is not None else x)]
    return tflite_file.predict_named(interpreter, src.eval.x, [o.name for o in src.model.outputs])


def _metadata(job: _Job, variant: Variant, interpreter, data: bytes, par: Parity | None, reg, passed: bool):
    src = job.src
    sha = hashlib.sha256(data).hexdigest()
    split = job.integer_split(variant)
    if src.run is not None and src.spec is not None and par is not None and job.keras_metrics is not None:
        inputs, outputs = tflite_file.io_details(interpreter)
        rows = split.rows if split is not None else None
        x_test = src.eval.x[src.model.inputs[0].name]
        health = metadata.health_check_case(interpreter, x_test, list(src.labels), rows)
        meta_parity = metadata.classification_parity(par, passed, job.options, job.keras_metrics)
        norm = split.norm if split is not None else None
        return metadata.build(
            src.spec, variant, DESCRIPTIONS[variant], inputs, outputs, meta_parity, health, sha, len(data), norm
        )
    return metadata.build_for_file(
        src,
        variant,
        DESCRIPTIONS[variant],
        interpreter,
        par,
        reg,
        passed,
        job.options,
        job.keras_metrics,
        sha,
        len(data),
        split.norm if split is not None else None,
    )


__all__ = ["export_variant"]

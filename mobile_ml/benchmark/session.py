"""``mobile-ml benchmark TARGET``: resolve TARGET once, measure it here or on a phone, optionally time Keras.

The CLI parses options and prints; everything it asks for happens here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mobile_ml.benchmark.runner import BenchmarkOptions, BenchmarkResult, Reporter, measure_local
from mobile_ml.benchmark.targets import resolve
from mobile_ml.errors import InputFileError


def benchmark(
    target: str | Path,
    options: BenchmarkOptions,
    *,
    device: str = "local",
    binary: Path | None = None,
    compare_keras: bool = False,
    reporter: Reporter | None = None,
) -> BenchmarkResult:
    """Measure TARGET on ``device`` ("local", "adb" or "adb:SERIAL"); with ``compare_keras`` also the run's Keras
    model on one example (TARGET must then be a run, checked before minutes of measuring)."""
    resolved = resolve(target)
    if compare_keras and resolved.run_dir is None:
        raise InputFileError(
            "--compare-keras needs a run directory as TARGET (it times the run's Keras model)",
            hint="pass RUNDIR instead of a .tflite file or an export directory",
        )
    if device == "local":
        result = measure_local(resolved, options, reporter=reporter)
    else:
        from mobile_ml.benchmark.android import measure_adb

        result = measure_adb(resolved, options, device=device, binary=binary, reporter=reporter)
    if compare_keras and resolved.run_dir is not None:
        from mobile_ml.benchmark.keras_time import time_keras

        result = dataclasses.replace(result, keras=time_keras(resolved.run_dir, options))
    return result

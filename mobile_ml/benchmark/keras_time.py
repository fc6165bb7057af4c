"""``--compare-keras``: the same example through the run's Keras model, to show what export buys.

Two figures, because both are what apps and notebooks actually do: ``model.predict(x)`` (Keras's batch API, with its
per-call overhead) and a direct ``model(x, training=False)`` call. Same warm-up and duration rules as LiteRT runs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mobile_ml.benchmark.stats import LatencyStats
from mobile_ml.errors import InputFileError


def time_keras(run_dir: Path | None, options) -> dict[str, Any]:
    from mobile_ml import _tf
    from mobile_ml.train.rundir import load_run

    if run_dir is None:
        raise InputFileError(
            "--compare-keras needs a run directory as TARGET (it times the run's Keras model)",
            hint="pass RUNDIR instead of a .tflite file or an export directory",
        )
    run = load_run(run_dir)
    model = run.load_model()
    x = run.split("test")[0][:1]
    tf = _tf.tensorflow()
    tensor = tf.constant(x)
    out: dict[str, Any] = {"model": str(run.model_path), "threads": "TensorFlow default"}
    for name, call in (
        ("predict", lambda: model.predict(x, verbose=0)),
        ("call", lambda: model(tensor, training=False)),
    ):
        for phase_runs, phase_s in ((options.warmup_runs, options.warmup_seconds), (options.runs, options.min_seconds)):
            samples = []
            start = time.perf_counter()
            while len(samples) < max(phase_runs, 1) or time.perf_counter() - start < phase_s:
                a = time.perf_counter_ns()
                call()
                samples.append((time.perf_counter_ns() - a) / 1e6)
                if len(samples) >= options.max_runs or time.perf_counter() - start > options.max_seconds:
                    break
        out[name] = LatencyStats.of(samples).__dict__
    return out

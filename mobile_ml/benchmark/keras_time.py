"""``--compare-keras``: the same example through the run's Keras model, to show what export buys.

Two figures, because both are what apps and notebooks actually do: ``model.predict(x)`` (Keras's batch API, with its
per-call overhead) and a direct ``model(x, training=False)`` call. Same warm-up and duration rules as LiteRT runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mobile_ml.benchmark.stats import LatencyStats
from mobile_ml.contracts.benchmark import BenchmarkOptions, latency_to_dict


def _phase(call: Callable[[], object], runs: int, seconds: float, options: BenchmarkOptions) -> list[float]:
    """Call until ``runs`` calls and ``seconds`` have passed (capped by max_runs / max_seconds); each call's ms."""
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < max(runs, 1) or time.perf_counter() - start < seconds:
        a = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - a) / 1e6)
        if len(samples) >= options.max_runs or time.perf_counter() - start > options.max_seconds:
            break
    return samples


def time_keras(run_dir: Path, options: BenchmarkOptions) -> dict[str, Any]:
    from mobile_ml import _tf
    from mobile_ml.train.rundir import load_run

    run = load_run(run_dir)
    model = run.load_model()
    x = run.split("test")[0][:1]
    tensor = _tf.tensorflow().constant(x)
    out: dict[str, Any] = {"model": str(run.model_path), "threads": "TensorFlow default"}
    calls: dict[str, Callable[[], object]] = {
        "predict": lambda: model.predict(x, verbose=0),
        "call": lambda: model(tensor, training=False),
    }
    for name, call in calls.items():
        _phase(call, options.warmup_runs, options.warmup_seconds, options)
        out[name] = latency_to_dict(LatencyStats.of(_phase(call, options.runs, options.min_seconds, options)))
    return out

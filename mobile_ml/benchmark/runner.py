"""``mobile-ml benchmark TARGET`` on this machine: every model × thread count, each in a fresh worker process.

TARGET is resolved by ``targets.resolve``; inputs come from the run's test split when TARGET is a run. Results are
typed (``contracts.benchmark``) and written by ``report`` as ``benchmark.json`` (schema ``mobile_ml.benchmark``),
``benchmark.csv`` and PNG plots.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mobile_ml.benchmark.macs import count_macs
from mobile_ml.benchmark.stats import LatencyStats
from mobile_ml.benchmark.targets import Resolved, Target, default_out, resolve
from mobile_ml.benchmark.tool_log import BenchmarkError
from mobile_ml.contracts.benchmark import BenchmarkOptions, BenchmarkResult, Measurement
from mobile_ml.errors import InputFileError
from mobile_ml.export import tflite_file

__all__ = [
    "BenchmarkError",
    "BenchmarkOptions",
    "BenchmarkResult",
    "Measurement",
    "Reporter",
    "Target",
    "default_out",
    "measure_local",
    "resolve",
    "run",
]


class Reporter(Protocol):
    def measuring(self, target: Target, threads: int, repeat: int, index: int, total: int) -> None: ...


def fingerprint() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        runtime = f"ai-edge-litert {version('ai-edge-litert')}"
    except PackageNotFoundError:
        runtime = "unknown"
    return {
        "kind": "local",
        "cpu": cpu,
        "cores": os.cpu_count(),
        "os": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "runtime": runtime,
    }


def check_model(target: Target) -> int:
    """Validate one model before anything runs it; its MACs."""
    data = tflite_file.read_model_bytes(target.path)
    try:
        tflite_file.load_interpreter(data, str(target.path))  # LiteRT verifies the flatbuffer: damage fails here
    except InputFileError as e:
        if "Select-TF" not in e.message:
            raise
    ops = tflite_file.ops_info(data)
    if ops.select_tf_ops:
        raise BenchmarkError(
            f"{target.path} needs Select-TF ops ({', '.join(ops.select_tf_ops)}), which the LiteRT "
            "runtime here does not have",
            hint="benchmark a builtin-only export",
        )
    return count_macs(data).macs


def _test_input(run_dir: Path | None) -> tuple[np.ndarray | None, str]:
    if run_dir is None:
        return None, "random values in the input's range"
    from mobile_ml.train.rundir import load_run

    try:
        x, _ = load_run(run_dir).split("test")
    except InputFileError as e:
        return None, f"random values (test split unavailable: {e.message})"
    return x[:1], "the first row of the test split"


def run(
    target: str | Path, options: BenchmarkOptions | None = None, *, reporter: Reporter | None = None
) -> BenchmarkResult:
    """Benchmark TARGET (a path) on this machine."""
    return measure_local(resolve(target), options or BenchmarkOptions(), reporter=reporter)


def gops(macs: int, center_ms: float) -> float:
    """Achieved arithmetic: 2 operations per multiply-accumulate, per second, in billions."""
    return 2 * macs / (center_ms / 1e3) / 1e9 if center_ms > 0 else 0.0


def _measurement(t: Target, threads: int, repeat: int, options: BenchmarkOptions, raw: dict, macs: int) -> Measurement:
    """One worker's output as a Measurement: the warm-up runs counted apart, statistics over the timed runs only."""
    samples = [float(x) for x in raw["samples_ms"]]
    stats = LatencyStats.of(samples)
    warm = raw["warmup_ms"]
    return Measurement(
        variant=t.name,
        model=str(t.path),
        bytes=t.size_bytes,
        threads=threads,
        xnnpack=options.xnnpack,
        repeat=repeat,
        init_ms=raw["init_ms"],
        first_ms=raw["first_ms"],
        warmup_runs=len(warm),
        warmup_mean_ms=float(np.mean(warm)) if warm else 0.0,
        latency_ms=stats,
        memory_mib=raw["memory_mib"],
        macs=macs,
        gops=gops(macs, stats.p50 or 0.0),
        samples_ms=tuple(samples),
    )


def measure_local(
    resolved: Resolved, options: BenchmarkOptions, *, reporter: Reporter | None = None
) -> BenchmarkResult:
    targets = resolved.targets
    macs = {t.name: check_model(t) for t in targets}
    x, source = _test_input(resolved.run_dir)
    measurements: list[Measurement] = []
    total = len(targets) * len(options.threads) * options.repeats
    with tempfile.TemporaryDirectory(prefix="mobile-ml-bench-") as tmp:
        input_path = None
        if x is not None:
            input_path = str(Path(tmp) / "input.npy")
            np.save(input_path, x)
        # Repeats are the outer loop so a noisy minute spreads across every configuration instead of hitting one.
        for repeat in range(options.repeats):
            for t in targets:
                for threads in options.threads:
                    if reporter:
                        reporter.measuring(t, threads, repeat, len(measurements), total)
                    raw = _spawn(t, threads, options, input_path, Path(tmp))
                    measurements.append(_measurement(t, threads, repeat, options, raw, macs[t.name]))
    return BenchmarkResult(fingerprint(), options, source, tuple(measurements), export=resolved.export)


def _spawn(t: Target, threads: int, options: BenchmarkOptions, input_path: str | None, tmp: Path) -> dict[str, Any]:
    spec = {
        "model": str(t.path),
        "threads": threads,
        "xnnpack": options.xnnpack,
        "input": input_path,
        **{
            k: getattr(options, k)
            for k in ("warmup_runs", "warmup_seconds", "runs", "min_seconds", "max_runs", "max_seconds")
        },
    }
    spec_path = tmp / "spec.json"
    spec_path.write_text(json.dumps(spec))
    proc = subprocess.run(
        [sys.executable, "-m", "mobile_ml.benchmark.worker", str(spec_path)],
        capture_output=True,
        text=True,
        timeout=options.max_seconds * 2 + 120,
    )
    try:
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise BenchmarkError(
            f"the benchmark worker for {t.path} crashed (exit {proc.returncode})",
            hint="rerun with --debug; the model may be damaged",
        ) from None
    if "error" in out:
        raise BenchmarkError(
            f"benchmarking {t.path} failed: {out['error']}", hint="check the model with `mobile-ml evaluate`"
        )
    return out

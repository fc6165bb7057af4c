"""``mobile-ml benchmark TARGET`` on this machine: every model × thread count, each in a fresh worker process.

TARGET is a .tflite file, an export directory (``export.json`` beside variant folders) or a run / quickstart
directory (all its exported variants; inputs then come from the test split). Results are typed, written as
``benchmark.json`` (schema ``mobile_ml.benchmark``), ``benchmark.csv`` and PNG plots.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mobile_ml.benchmark.macs import count_macs
from mobile_ml.benchmark.stats import LatencyStats
from mobile_ml.contracts import document_dict
from mobile_ml.contracts.export import read_export
from mobile_ml.errors import ConfigError, InputFileError, UserError
from mobile_ml.export import tflite_file

SCHEMA = "mobile_ml.benchmark"
SCHEMA_VERSION = 1


class BenchmarkError(UserError):
    """A model that cannot be benchmarked here (exit 2)."""


@dataclass(frozen=True)
class BenchmarkOptions:
    threads: tuple[int, ...] = (1,)
    xnnpack: bool = True
    warmup_runs: int = 1  # LiteRT benchmark_model defaults: 1 warm-up run, 0.5 s; 50 runs, 1 s; 150 s cap
    warmup_seconds: float = 0.5
    runs: int = 50
    min_seconds: float = 1.0
    max_runs: int = 100_000
    max_seconds: float = 150.0
    repeats: int = 1  # fresh processes per (model, threads); compare uses the spread between them

    def __post_init__(self) -> None:
        if not self.threads or any(t <= 0 for t in self.threads):
            raise ConfigError(
                f"thread counts must be positive, not {','.join(map(str, self.threads))}", hint="e.g. --threads 1,2,4"
            )
        for name in ("warmup_runs", "runs", "max_runs", "repeats"):
            if getattr(self, name) < (0 if name == "warmup_runs" else 1):
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1", hint="see --help")
        if self.min_seconds < 0 or self.warmup_seconds < 0 or self.max_seconds <= 0:
            raise ConfigError("durations must not be negative", hint="see --help")


@dataclass(frozen=True)
class Target:
    name: str  # variant name, or the file's stem
    path: Path
    size_bytes: int
    export: dict[str, Any] | None = None  # the variant's row of export.json, when there is one


@dataclass
class Measurement:
    variant: str
    model: str
    bytes: int
    threads: int
    xnnpack: bool
    repeat: int
    init_ms: float
    first_ms: float
    warmup_runs: int
    warmup_mean_ms: float
    latency_ms: LatencyStats
    memory_mib: dict[str, Any]
    macs: int
    gops: float  # 2 × MACs / p50
    samples_ms: list[float] = field(repr=False, default_factory=list)

    def to_dict(self, samples: bool = True) -> dict[str, Any]:
        d = asdict(self)
        if not samples:
            d.pop("samples_ms")
        return d


@dataclass
class BenchmarkResult:
    device: dict[str, Any]
    options: BenchmarkOptions
    input_source: str
    measurements: list[Measurement]
    export: dict[str, Any] | None = None  # export.json of the run, for the trade-off plot
    keras: dict[str, Any] | None = None  # --compare-keras: the Keras model timed on one example

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "device": self.device,
            "options": asdict(self.options),
            "input_source": self.input_source,
            "measurements": [m.to_dict() for m in self.measurements],
            "keras": self.keras,
        }


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


def resolve(target: str | Path) -> tuple[list[Target], dict[str, Any] | None, Path | None]:
    """The models to measure, export.json when there is one, and the run directory when TARGET is a run."""
    path = Path(target)
    if path.is_file():
        data = tflite_file.read_model_bytes(path)
        return [Target(path.stem, path, len(data))], None, None
    if not path.is_dir():
        raise InputFileError(f"{path} does not exist", hint="pass a .tflite file, an export directory or a run")
    run_dir = None
    for candidate in (path, path / "exports", path / "run" / "exports"):
        if (candidate / "export.json").is_file():
            if candidate != path:
                run_dir = candidate.parent
            path = candidate
            break
    else:
        models = sorted(path.glob("*.tflite"))
        if not models:
            raise InputFileError(
                f"{path} holds no .tflite files and no export.json",
                hint="export first (`mobile-ml export RUNDIR`) or pass a .tflite file",
            )
        return [Target(m.stem, m, m.stat().st_size) for m in models], None, None
    report = read_export(path / "export.json")
    rows = [(v, path / v.file) for v in report.variants]
    targets = [Target(v.variant.value, file, v.bytes, v.to_dict()) for v, file in rows if file.is_file()]
    if not targets:
        raise InputFileError(f"{path} lists variants but none of their files exist", hint="export the run again")
    return targets, document_dict(report), run_dir


def default_out(target: str | Path) -> Path:
    """RUNDIR/benchmark for a run or its exports; NAME-benchmark/ beside a single .tflite file."""
    path = Path(target)
    if path.is_file():
        return path.with_name(f"{path.stem}-benchmark")
    for candidate in (path / "run" / "exports", path / "exports"):
        if candidate.is_dir():
            return candidate.parent / "benchmark"
    if (path / "export.json").is_file():
        return path.parent / "benchmark"
    return path / "benchmark"


def _check(target: Target) -> int:
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
    options = options or BenchmarkOptions()
    targets, export_report, run_dir = resolve(target)
    macs = {t.name: _check(t) for t in targets}
    x, source = _test_input(run_dir)
    measurements: list[Measurement] = []
    total = len(targets) * len(options.threads) * options.repeats
    with tempfile.TemporaryDirectory(prefix="mobile-ml-bench-") as tmp:
        input_path = None
        if x is not None:
            input_path = str(Path(tmp) / "input.npy")
            np.save(input_path, x)
        i = 0
        # Repeats are the outer loop so a noisy minute spreads across every configuration instead of hitting one.
        for repeat in range(options.repeats):
            for t in targets:
                for threads in options.threads:
                    if reporter:
                        reporter.measuring(t, threads, repeat, i, total)
                    i += 1
                    raw = _spawn(t, threads, options, input_path, Path(tmp))
                    stats = LatencyStats.of(raw["samples_ms"])
                    warm = raw["warmup_ms"]
                    measurements.append(
                        Measurement(
                            t.name,
                            str(t.path),
                            t.size_bytes,
                            threads,
                            options.xnnpack,
                            repeat,
                            raw["init_ms"],
                            raw["first_ms"],
                            len(warm),
                            float(np.mean(warm)) if warm else 0.0,
                            stats,
                            raw["memory_mib"],
                            macs[t.name],
                            2 * macs[t.name] / (stats.p50 / 1e3) / 1e9 if stats.p50 > 0 else 0.0,
                            raw["samples_ms"],
                        )
                    )
    return BenchmarkResult(fingerprint(), options, source, measurements, export_report)


def _spawn(t: Target, threads: int, options: BenchmarkOptions, input_path: str | None, tmp: Path) -> dict:
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

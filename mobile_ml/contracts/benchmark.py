"""``benchmark.json`` (schema ``mobile_ml.benchmark``) and the ``benchmark compare --json`` result
(``mobile_ml.benchmark_compare``): what the benchmark stage hands to compare, plots and people.

Both formats are version 1 as first written; readers accept every file an earlier mobile-ml wrote. ``device``,
``memory_mib`` and ``keras`` stay free-form objects: their keys differ between this machine and a phone, and no
stage decides anything on them.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from mobile_ml.benchmark.stats import LatencyStats
from mobile_ml.contracts._fields import ContractError, Fields
from mobile_ml.errors import ConfigError

_MAX_SAMPLES = 1_000_000  # above BenchmarkOptions.max_runs' default, below anything that would exhaust memory


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
    repeats: int = 1  # fresh processes per (model, threads); compare needs at least MIN_REPEATS a side to judge

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

    @classmethod
    def from_dict(cls, f: Fields) -> BenchmarkOptions:
        try:
            options = cls(
                threads=f.items("threads", _integer),
                xnnpack=f.boolean("xnnpack"),
                warmup_runs=f.integer("warmup_runs"),
                warmup_seconds=f.number("warmup_seconds"),
                runs=f.integer("runs"),
                min_seconds=f.number("min_seconds"),
                max_runs=f.integer("max_runs"),
                max_seconds=f.number("max_seconds"),
                repeats=f.integer("repeats"),
            )
        except ConfigError as e:
            raise f.error("", e.message) from None
        f.done()
        return options

    def to_dict(self) -> dict[str, Any]:
        return {
            "threads": list(self.threads),
            "xnnpack": self.xnnpack,
            "warmup_runs": self.warmup_runs,
            "warmup_seconds": self.warmup_seconds,
            "runs": self.runs,
            "min_seconds": self.min_seconds,
            "max_runs": self.max_runs,
            "max_seconds": self.max_seconds,
            "repeats": self.repeats,
        }


def _integer(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ContractError(f"{where}: expected an integer", field=where)
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ContractError(f"{where}: expected a finite number", field=where)
    return float(value)


def latency_from_dict(f: Fields) -> LatencyStats:
    stats = LatencyStats(
        count=f.integer("count", lo=0),
        min=f.number("min"),
        mean=f.number("mean"),
        std=f.number("std", lo=0),
        p50=f.opt_number("p50"),
        p90=f.opt_number("p90"),
        p95=f.opt_number("p95"),
        p99=f.opt_number("p99"),
        max=f.number("max"),
    )
    f.done()
    return stats


def latency_to_dict(s: LatencyStats) -> dict[str, Any]:
    return {k: getattr(s, k) for k in ("count", "min", "mean", "std", "p50", "p90", "p95", "p99", "max")}


@dataclass(frozen=True)
class Measurement:
    """One fresh process (or one phone run) of one model at one thread count."""

    variant: str
    model: str
    bytes: int
    threads: int
    xnnpack: bool
    repeat: int
    init_ms: float
    first_ms: float
    warmup_runs: int  # warm-up runs done, never counted in latency_ms
    warmup_mean_ms: float
    latency_ms: LatencyStats  # the timed runs only
    memory_mib: dict[str, Any]
    macs: int
    gops: float  # 2 × MACs / p50
    samples_ms: tuple[float, ...] = field(repr=False, default=())  # every timed run; phones print none

    @property
    def center_ms(self) -> float:
        """p50, or the mean for phone results whose tool printed no median."""
        s = self.latency_ms
        return s.p50 if s.p50 is not None else s.mean

    @classmethod
    def from_dict(cls, f: Fields) -> Measurement:
        m = cls(
            variant=f.string("variant"),
            model=f.string("model"),
            bytes=f.integer("bytes", lo=0),
            threads=f.integer("threads", lo=1),
            xnnpack=f.boolean("xnnpack"),
            repeat=f.integer("repeat", lo=0),
            init_ms=f.number("init_ms"),
            first_ms=f.number("first_ms"),
            warmup_runs=f.integer("warmup_runs", lo=0),
            warmup_mean_ms=f.number("warmup_mean_ms"),
            latency_ms=latency_from_dict(f.obj("latency_ms")),
            memory_mib=f.mapping("memory_mib"),
            macs=f.integer("macs", lo=0),
            gops=f.number("gops"),
            samples_ms=f.items("samples_ms", _number, max_len=_MAX_SAMPLES),
        )
        f.done()
        return m

    def to_dict(self, samples: bool = True) -> dict[str, Any]:
        d = {
            "variant": self.variant,
            "model": self.model,
            "bytes": self.bytes,
            "threads": self.threads,
            "xnnpack": self.xnnpack,
            "repeat": self.repeat,
            "init_ms": self.init_ms,
            "first_ms": self.first_ms,
            "warmup_runs": self.warmup_runs,
            "warmup_mean_ms": self.warmup_mean_ms,
            "latency_ms": latency_to_dict(self.latency_ms),
            "memory_mib": self.memory_mib,
            "macs": self.macs,
            "gops": self.gops,
        }
        if samples:
            d["samples_ms"] = list(self.samples_ms)
        return d


@dataclass(frozen=True)
class BenchmarkResult:
    """``benchmark.json``: where it ran, how, and every measurement."""

    SCHEMA: ClassVar[str] = "mobile_ml.benchmark"
    SCHEMA_VERSION: ClassVar[int] = 1
    WHAT: ClassVar[str] = "a mobile-ml benchmark result"
    REDO: ClassVar[str] = "mobile-ml benchmark"

    device: dict[str, Any]  # fingerprint: kind (local | android), cpu, cores, os, runtime, ...
    options: BenchmarkOptions
    input_source: str
    measurements: tuple[Measurement, ...]
    keras: dict[str, Any] | None = None  # --compare-keras: the Keras model timed on one example
    export: dict[str, Any] | None = field(default=None, compare=False)  # the run's export.json, for plots; not written

    @classmethod
    def from_dict(cls, f: Fields) -> BenchmarkResult:
        doc = cls(
            device=f.mapping("device"),
            options=BenchmarkOptions.from_dict(f.obj("options")),
            input_source=f.string("input_source"),
            measurements=tuple(Measurement.from_dict(m) for m in f.objs("measurements")),
            keras=None if (keras := f.opt_obj("keras")) is None else keras.raw,
        )
        f.done()
        return doc

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "options": self.options.to_dict(),
            "input_source": self.input_source,
            "measurements": [m.to_dict() for m in self.measurements],
            "keras": self.keras,
        }


class Verdict(str, enum.Enum):
    OK = "ok"
    FASTER = "faster"
    REGRESSED = "regressed"
    WITHIN_NOISE = "within noise"  # slower beyond the limit, but the repeats do not show it is real
    INSUFFICIENT = "insufficient evidence"  # fewer than MIN_REPEATS repeats on a side: no judgement
    ONLY_IN_BASE = "only in base"
    ONLY_IN_NEW = "only in new"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Delta:
    """One (variant, threads) pair of a comparison."""

    variant: str
    threads: int
    base_p50: float | None  # median over the side's repeats of each repeat's p50
    new_p50: float | None
    change_pct: float | None
    noise_pct: float | None  # the larger side's spread of repeat p50s, relative to base
    verdict: Verdict
    base_repeats: int = 0
    new_repeats: int = 0
    p_value: float | None = None  # one-sided Mann-Whitney on repeat p50s; None when not judged

    @classmethod
    def from_dict(cls, f: Fields) -> Delta:
        d = cls(
            variant=f.string("variant"),
            threads=f.integer("threads", lo=1),
            base_p50=f.opt_number("base_p50"),
            new_p50=f.opt_number("new_p50"),
            change_pct=f.opt_number("change_pct"),
            noise_pct=f.opt_number("noise_pct"),
            verdict=f.choice("verdict", Verdict),
            base_repeats=f.integer("base_repeats", lo=0, default=0),
            new_repeats=f.integer("new_repeats", lo=0, default=0),
            p_value=f.opt_number("p_value", lo=0, hi=1),
        )
        f.done()
        return d

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "threads": self.threads,
            "base_p50": self.base_p50,
            "new_p50": self.new_p50,
            "change_pct": self.change_pct,
            "noise_pct": self.noise_pct,
            "verdict": self.verdict.value,
            "base_repeats": self.base_repeats,
            "new_repeats": self.new_repeats,
            "p_value": self.p_value,
        }


@dataclass(frozen=True)
class Comparison:
    """``benchmark compare --json``: every pair's delta and whether any regressed."""

    SCHEMA: ClassVar[str] = "mobile_ml.benchmark_compare"
    SCHEMA_VERSION: ClassVar[int] = 1
    WHAT: ClassVar[str] = "a mobile-ml benchmark comparison"
    REDO: ClassVar[str] = "mobile-ml benchmark compare BASE NEW --json"

    base: str
    new: str
    max_regression_pct: float
    deltas: tuple[Delta, ...]

    @property
    def regressed(self) -> bool:
        return any(d.verdict is Verdict.REGRESSED for d in self.deltas)

    @property
    def judged(self) -> bool:
        """False when some pair had too few repeats to judge (its verdict is ``insufficient evidence``)."""
        return not any(d.verdict is Verdict.INSUFFICIENT for d in self.deltas)

    @classmethod
    def from_dict(cls, f: Fields) -> Comparison:
        doc = cls(
            base=f.string("base"),
            new=f.string("new"),
            max_regression_pct=f.number("max_regression_pct", lo=0),
            deltas=tuple(Delta.from_dict(d) for d in f.objs("deltas")),
        )
        f.boolean("regressed")  # derived; read so the closed contract accepts it
        f.done()
        return doc

    def to_dict(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "new": self.new,
            "max_regression_pct": self.max_regression_pct,
            "deltas": [d.to_dict() for d in self.deltas],
            "regressed": self.regressed,
        }

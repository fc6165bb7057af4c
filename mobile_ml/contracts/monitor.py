"""``mobile_ml.monitor``: what ``mobile-ml monitor`` found, every raw score with the verdict drawn from it.

The top level reports one model version (``--version``, else the newest one devices counted): per monitored
feature the PSI, Jensen–Shannon distance and fleet count against the baseline's test split, the same for the
predicted classes and the top-1 confidence, and the fleet's latency histogram. ``other_versions`` holds the same
for every other version counted in the window (newest first). ``drift`` is true when any histogram of any version
reached the drift threshold; below ``min_count`` samples a histogram is ``not_enough_data`` instead, never drift.

The update funnel and latency per device model come from the telemetry events (the aggregates carry neither a
device model nor update outcomes). Scores that could not be computed (no sample at all) are null.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from mobile_ml.contracts._fields import Fields
from mobile_ml.contracts.baseline import MAX_BINS, MAX_CLASSES, MAX_COUNT, MAX_FEATURES, read_counts, read_numbers
from mobile_ml.contracts.manifest import NAME, SEMVER, format_time, read_time
from mobile_ml.monitor.stats import Thresholds, Verdict

MAX_VERSIONS = 1000
MAX_DEVICE_MODELS = 10_000


@dataclass(frozen=True)
class Histogram:
    """One fleet histogram against its baseline histogram (same bins), with every score."""

    baseline: tuple[int, ...]  # baseline test-split rows per bin
    fleet: tuple[int, ...]  # fleet observations per bin
    psi: float | None  # None: the fleet counted nothing
    js: float | None
    count: int  # fleet observations (the sum of ``fleet``)
    verdict: Verdict

    @property
    def drifted(self) -> bool:
        return self.verdict is Verdict.DRIFT

    @classmethod
    def read(cls, f: Fields, max_bins: int) -> Histogram:
        h = cls(
            baseline=read_counts(f, "baseline", max_len=max_bins),
            fleet=read_counts(f, "fleet", max_len=max_bins),
            psi=f.opt_number("psi", lo=0),
            js=f.opt_number("js", lo=0, hi=1),
            count=f.integer("count", lo=0, hi=MAX_COUNT),
            verdict=f.choice("verdict", Verdict),
        )
        drifted = f.boolean("drifted")
        if len(h.baseline) != len(h.fleet):
            raise f.error("fleet", f"{len(h.fleet)} bins; the baseline has {len(h.baseline)}")
        if sum(h.fleet) != h.count:
            raise f.error("count", f"{h.count}, but the fleet counts add up to {sum(h.fleet)}")
        if drifted != h.drifted:
            raise f.error("drifted", f"{drifted} contradicts the verdict {h.verdict.value}")
        return h

    def to_dict(self) -> dict[str, Any]:
        return {
            "psi": self.psi,
            "js": self.js,
            "count": self.count,
            "drifted": self.drifted,
            "verdict": self.verdict.value,
            "baseline": list(self.baseline),
            "fleet": list(self.fleet),
        }


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    edges: tuple[float, ...]  # the baseline's bin edges (len(edges) + 1 bins)
    histogram: Histogram
    missing: int  # fleet observations with no value (NaN), not in the histogram

    @property
    def drifted(self) -> bool:
        return self.histogram.drifted

    @classmethod
    def read(cls, f: Fields) -> FeatureDrift:
        feature = cls(
            name=f.string("name", max_len=256),
            edges=read_numbers(f, "edges", max_len=MAX_BINS - 1),
            histogram=Histogram.read(f, MAX_BINS),
            missing=f.integer("missing", lo=0, hi=MAX_COUNT),
        )
        f.done()
        if len(feature.histogram.fleet) != len(feature.edges) + 1:
            raise f.error("fleet", f"{len(feature.histogram.fleet)} bins for {len(feature.edges)} edges")
        return feature

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.histogram.to_dict(), "missing": self.missing, "edges": list(self.edges)}


@dataclass(frozen=True)
class Latency:
    """The fleet's latency histogram (the aggregates' bins). Quantiles are only known to a bin: ``p50_le_ms`` is the
    upper edge of the bin holding the median (None: no sample, or the open top bin)."""

    edges_ms: tuple[float, ...]
    counts: tuple[int, ...]
    p50_le_ms: float | None
    p90_le_ms: float | None

    @classmethod
    def read(cls, f: Fields) -> Latency:
        latency = cls(
            edges_ms=read_numbers(f, "edges_ms", max_len=MAX_BINS - 1),
            counts=read_counts(f, "counts", max_len=MAX_BINS),
            p50_le_ms=f.opt_number("p50_le_ms", lo=0),
            p90_le_ms=f.opt_number("p90_le_ms", lo=0),
        )
        f.integer("count", lo=0, hi=MAX_COUNT)  # written for readers; always the sum of counts
        f.done()
        return latency

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": sum(self.counts),
            "p50_le_ms": self.p50_le_ms,
            "p90_le_ms": self.p90_le_ms,
            "edges_ms": list(self.edges_ms),
            "counts": list(self.counts),
        }


@dataclass(frozen=True)
class VersionReport:
    """Everything counted for one model version, against that version's baseline."""

    version: str
    count: int  # inferences counted by the fleet
    uploads: int  # stored aggregates documents merged
    window_start: datetime | None  # None: nothing counted
    window_end: datetime | None
    features: tuple[FeatureDrift, ...]
    labels: tuple[str, ...]
    prediction: Histogram  # per predicted class
    confidence_edges: tuple[float, ...]
    confidence: Histogram  # per top-1 confidence bin
    latency: Latency

    @property
    def drift(self) -> bool:
        return any(f.drifted for f in self.features) or self.prediction.drifted or self.confidence.drifted

    @classmethod
    def read(cls, f: Fields, *, top: bool = False) -> VersionReport:
        """Reads its keys from ``f``; ``top``: the report's top level, which holds them beside its own (its
        ``drift`` is the whole report's) and is closed by the report."""
        start, end = f.value("window_start", optional=True), f.value("window_end", optional=True)
        prediction, confidence = f.obj("prediction"), f.obj("confidence")
        report = cls(
            version=f.string("version", pattern=SEMVER, max_len=64),
            count=f.integer("count", lo=0, hi=MAX_COUNT),
            uploads=f.integer("uploads", lo=0, hi=MAX_COUNT),
            window_start=None if start is None else read_time(f, "window_start"),
            window_end=None if end is None else read_time(f, "window_end"),
            features=tuple(FeatureDrift.read(x) for x in f.objs("features", max_len=MAX_FEATURES)),
            labels=prediction.strings("labels", max_len=MAX_CLASSES),
            prediction=Histogram.read(prediction, MAX_CLASSES),
            confidence_edges=read_numbers(confidence, "edges", max_len=MAX_BINS - 1),
            confidence=Histogram.read(confidence, MAX_BINS),
            latency=Latency.read(f.obj("latency")),
        )
        prediction.done()
        confidence.done()
        if not top:
            if f.boolean("drift") != report.drift:
                raise f.error("drift", "contradicts the verdicts of its histograms")
            f.done()
        return report

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "drift": self.drift,
            "count": self.count,
            "uploads": self.uploads,
            "window_start": None if self.window_start is None else format_time(self.window_start),
            "window_end": None if self.window_end is None else format_time(self.window_end),
            "features": [feature.to_dict() for feature in self.features],
            "prediction": {"labels": list(self.labels), **self.prediction.to_dict()},
            "confidence": {"edges": list(self.confidence_edges), **self.confidence.to_dict()},
            "latency": self.latency.to_dict(),
        }


@dataclass(frozen=True)
class DeviceLatency:
    device_model: str
    count: int  # inference events with a latency
    p50_ms: float
    p90_ms: float

    @classmethod
    def read(cls, f: Fields) -> DeviceLatency:
        row = cls(
            device_model=f.string("device_model", max_len=128),
            count=f.integer("count", lo=1, hi=MAX_COUNT),
            p50_ms=f.number("p50_ms", lo=0),
            p90_ms=f.number("p90_ms", lo=0),
        )
        f.done()
        return row

    def to_dict(self) -> dict[str, Any]:
        return {"device_model": self.device_model, "count": self.count, "p50_ms": self.p50_ms, "p90_ms": self.p90_ms}


@dataclass(frozen=True)
class Funnel:
    """Update checks as devices report them (one telemetry event per check, ``client/sync.py``)."""

    checks: int  # every check that reported: update_check + update_applied + update_failed events
    downloads: int  # checks that downloaded a release: installed, or failed on a file (hash, length, health, space)
    installed: int  # update_applied
    failed: int  # update_failed (any reason)
    skipped: int  # update_check events whose release did not fit the device (app too old, runtime, space)
    devices: int  # distinct installs that reported a check
    failure_reasons: dict[str, int]  # error_code -> update_failed events

    @classmethod
    def read(cls, f: Fields) -> Funnel:
        reasons = f.mapping("failure_reasons")
        for k, v in reasons.items():
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise f.error(f"failure_reasons.{k}", "expected a count")
        funnel = cls(**{k: f.integer(k, lo=0, hi=MAX_COUNT) for k in _FUNNEL_COUNTS}, failure_reasons=dict(reasons))
        f.done()
        return funnel

    def to_dict(self) -> dict[str, Any]:
        return {**{k: getattr(self, k) for k in _FUNNEL_COUNTS}, "failure_reasons": dict(self.failure_reasons)}


_FUNNEL_COUNTS = ("checks", "downloads", "installed", "failed", "skipped", "devices")


@dataclass(frozen=True)
class MonitorReport:
    SCHEMA: ClassVar[str] = "mobile_ml.monitor"
    SCHEMA_VERSION: ClassVar[int] = 1
    WHAT: ClassVar[str] = "a mobile-ml monitor report"
    REDO: ClassVar[str] = "mobile-ml monitor"

    model: str
    channel: str | None  # the aggregates of this channel only; None: every channel
    since: datetime | None
    thresholds: Thresholds
    current: VersionReport  # the version reported at the top level
    other_versions: tuple[VersionReport, ...]
    funnel: Funnel
    latency_by_device: tuple[DeviceLatency, ...]

    @property
    def versions(self) -> tuple[VersionReport, ...]:
        return (self.current, *self.other_versions)

    @property
    def drift(self) -> bool:
        return any(v.drift for v in self.versions)

    @classmethod
    def from_dict(cls, f: Fields) -> MonitorReport:
        t = f.obj("thresholds")
        thresholds = Thresholds(
            warn_psi=t.number("warn_psi", lo=0), drift_psi=t.number("drift_psi", lo=0), min_count=t.integer("min_count")
        )
        t.done()
        since = f.value("since", optional=True)
        report = cls(
            model=f.string("model", pattern=NAME, max_len=64),
            channel=f.opt_string("channel", pattern=NAME, max_len=64),
            since=None if since is None else read_time(f, "since"),
            thresholds=thresholds,
            current=VersionReport.read(f, top=True),
            other_versions=tuple(VersionReport.read(x) for x in f.objs("other_versions", max_len=MAX_VERSIONS)),
            funnel=Funnel.read(f.obj("funnel")),
            latency_by_device=tuple(
                DeviceLatency.read(x) for x in f.objs("latency_by_device", max_len=MAX_DEVICE_MODELS)
            ),
        )
        if f.boolean("drift") != report.drift:
            raise f.error("drift", "contradicts the versions' verdicts")
        f.done()
        return report

    def to_dict(self) -> dict[str, Any]:
        t = self.thresholds
        return {
            "model": self.model,
            "channel": self.channel,
            "since": None if self.since is None else format_time(self.since),
            "thresholds": {"warn_psi": t.warn_psi, "drift_psi": t.drift_psi, "min_count": t.min_count},
            **self.current.to_dict(),
            "drift": self.drift,  # any version's (the current version's own is in its histograms' verdicts)
            "other_versions": [v.to_dict() for v in self.other_versions],
            "funnel": self.funnel.to_dict(),
            "latency_by_device": [d.to_dict() for d in self.latency_by_device],
        }


__all__ = ["DeviceLatency", "FeatureDrift", "Funnel", "Histogram", "Latency", "MonitorReport", "VersionReport"]

"""``mobile_ml.aggregates``: what a device uploads about the inputs it saw, counts only.

One document covers one window of one model version on one channel: per monitored feature the inputs per baseline
bin (and how many had no value, NaN), per predicted class, per top-1 confidence bin and per latency bin. Every
observation adds exactly one to each histogram, so each sums to ``count``; a document that breaks this is refused.
No raw input, no identifier of the user: the install id travels in the request, not here.

Also ``mobile_ml.aggregator_state``: the device's file holding the open window and the snapshot being uploaded.

This module checks a document on its own; ``mobile_ml.monitor.aggregate.check_against_baseline`` checks it against
the baseline of the model it names (bins per feature, classes), which the server does before storing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from mobile_ml.contracts._fields import Fields
from mobile_ml.contracts.baseline import (
    FEATURE_NAME_LEN,
    MAX_BINS,
    MAX_CLASSES,
    MAX_COUNT,
    MAX_FEATURES,
    read_counts,
)
from mobile_ml.contracts.manifest import NAME, SEMVER, format_time, read_time

SNAPSHOT_ID = r"[0-9a-f]{32}"


@dataclass(frozen=True)
class FeatureCounts:
    name: str
    counts: tuple[int, ...]  # observations per baseline bin
    missing: int = 0  # observations whose value was NaN

    @classmethod
    def read(cls, f: Fields, count: int) -> FeatureCounts:
        feature = cls(
            name=f.string("name", max_len=FEATURE_NAME_LEN),
            counts=read_counts(f, "counts", max_len=MAX_BINS),
            missing=f.integer("missing", lo=0, hi=MAX_COUNT),
        )
        f.done()
        if not feature.counts:
            raise f.error("counts", "at least one bin is needed")
        if sum(feature.counts) + feature.missing != count:
            raise f.error(
                "counts", f"the counts and missing add up to {sum(feature.counts) + feature.missing}, not {count}"
            )
        return feature

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "counts": list(self.counts), "missing": self.missing}


@dataclass(frozen=True)
class Aggregates:
    """One window of counts from one device (or, merged, from many)."""

    SCHEMA: ClassVar[str] = "mobile_ml.aggregates"
    SCHEMA_VERSION: ClassVar[int] = 1
    WHAT: ClassVar[str] = "a mobile-ml aggregates document"
    REDO: ClassVar[str] = "mobile-ml device sync"

    model: str
    version: str
    channel: str
    window_start: datetime  # when the window opened (the aggregator started or took its last snapshot)
    window_end: datetime  # the last observation or the snapshot, whichever came later
    count: int  # observations in the window
    features: tuple[FeatureCounts, ...]
    predictions: tuple[int, ...]  # per class (label index)
    confidence: tuple[int, ...]  # per baseline confidence bin
    latency_ms: tuple[int, ...]  # per baseline latency bin
    snapshot_id: str | None = None  # set by Aggregator.snapshot(): the server may deduplicate retried uploads on it

    @classmethod
    def from_dict(cls, f: Fields) -> Aggregates:
        count = f.integer("count", lo=0, hi=MAX_COUNT)
        doc = cls(
            model=f.string("model", pattern=NAME, max_len=64),
            version=f.string("version", pattern=SEMVER, max_len=64),
            channel=f.string("channel", pattern=NAME, max_len=64),
            window_start=read_time(f, "window_start"),
            window_end=read_time(f, "window_end"),
            count=count,
            features=tuple(FeatureCounts.read(x, count) for x in f.objs("features", max_len=MAX_FEATURES)),
            predictions=read_counts(f, "predictions", max_len=MAX_CLASSES),
            confidence=read_counts(f, "confidence", max_len=MAX_BINS),
            latency_ms=read_counts(f, "latency_ms", max_len=MAX_BINS),
            snapshot_id=f.opt_string("snapshot_id", pattern=SNAPSHOT_ID, max_len=32),
        )
        f.done()
        doc._check(f)
        return doc

    def _check(self, f: Fields) -> None:
        if self.window_end < self.window_start:
            raise f.error("window_end", "the window ends before it starts")
        if not self.features:
            raise f.error("features", "at least one feature is needed")
        names = [feature.name for feature in self.features]
        if len(set(names)) != len(names):
            raise f.error("features", "feature names must be unique")
        for key in ("predictions", "confidence", "latency_ms"):  # their bin counts: check_against_baseline
            counts = getattr(self, key)
            if not counts:
                raise f.error(key, "at least one bin is needed")
            if sum(counts) != self.count:
                raise f.error(key, f"the counts add up to {sum(counts)}, not {self.count}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "channel": self.channel,
            "window_start": format_time(self.window_start),
            "window_end": format_time(self.window_end),
            "count": self.count,
            "features": [feature.to_dict() for feature in self.features],
            "predictions": list(self.predictions),
            "confidence": list(self.confidence),
            "latency_ms": list(self.latency_ms),
            "snapshot_id": self.snapshot_id,
        }


@dataclass(frozen=True)
class AggregatorState:
    """The device's aggregates file: the open window, and the snapshot handed out for upload but not yet
    acknowledged (kept until the server stored it, so a failed upload loses nothing)."""

    SCHEMA: ClassVar[str] = "mobile_ml.aggregator_state"
    SCHEMA_VERSION: ClassVar[int] = 1
    WHAT: ClassVar[str] = "a mobile-ml aggregator state"
    REDO: ClassVar[str] = "mobile-ml device run"

    current: Aggregates
    pending: Aggregates | None = None

    @classmethod
    def from_dict(cls, f: Fields) -> AggregatorState:
        pending = f.opt_obj("pending")
        state = cls(
            current=Aggregates.from_dict(f.obj("current")),
            pending=None if pending is None else Aggregates.from_dict(pending),
        )
        f.done()
        if state.pending is not None and state.pending.snapshot_id is None:
            raise f.error("pending.snapshot_id", "missing (a pending snapshot has an id)")
        return state

    def to_dict(self) -> dict[str, Any]:
        return {
            "current": self.current.to_dict(),
            "pending": None if self.pending is None else self.pending.to_dict(),
        }


__all__ = ["SNAPSHOT_ID", "Aggregates", "AggregatorState", "FeatureCounts"]

"""``pending-inferences.json`` in a device's state directory: inference reports ``device run`` recorded, waiting for
the next ``device sync`` to send them (a shell command has no server to talk to; the app batches the same way)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from mobile_ml.contracts import Fields
from mobile_ml.contracts.manifest import format_time, read_time

EVENT_ID = r"[A-Za-z0-9_-]{16,64}"  # as the telemetry endpoint accepts it
MAX_PENDING = 99  # one telemetry request (at most 100 events) carries them and the check's own report


@dataclass(frozen=True)
class PendingInference:
    event_id: str  # random: a batch sent again after a lost reply is stored once
    version: str  # the version that ran
    latency_ms: float
    time: datetime  # when it ran (device clock)

    @classmethod
    def from_dict(cls, f: Fields) -> PendingInference:
        p = cls(
            event_id=f.string("event_id", pattern=EVENT_ID),
            version=f.string("version", max_len=32),
            latency_ms=f.number("latency_ms", lo=0),
            time=read_time(f, "time"),
        )
        f.done()
        return p

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "version": self.version,
            "latency_ms": self.latency_ms,
            "time": format_time(self.time),
        }


@dataclass(frozen=True)
class PendingInferences:
    SCHEMA: ClassVar[str] = "mobile_ml.pending_inferences"
    SCHEMA_VERSION: ClassVar[int] = 1
    WHAT: ClassVar[str] = "a device's pending inference reports"
    REDO: ClassVar[str] = "mobile-ml device run"

    events: tuple[PendingInference, ...] = ()  # oldest first

    @classmethod
    def from_dict(cls, f: Fields) -> PendingInferences:
        doc = cls(tuple(PendingInference.from_dict(e) for e in f.objs("events", max_len=MAX_PENDING)))
        f.done()
        return doc

    def to_dict(self) -> dict[str, Any]:
        return {"events": [e.to_dict() for e in self.events]}

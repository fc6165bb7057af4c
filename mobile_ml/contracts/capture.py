"""Capture, with consent: the policy a signed manifest carries, and the batch a device posts to ``/v1/capture``.

The policy is part of the signed manifest (``docs/update-protocol.md`` §3.3), so only the publisher can switch
capture on, and only for the channel it signs. A manifest without ``capture`` (every manifest written before it
existed) or with ``rate`` 0 means off. ``requires_consent`` must be ``true``: no signed document can tell a device to
send raw inputs its user did not agree to send.

A batch is what a consenting device sends: raw inputs exactly as the model takes them (before the model's own
normalization), the model's top prediction, the version that made it, and the user's label when one was given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from mobile_ml.contracts._fields import Fields

MAX_RATE = 1.0  # a fraction of inferences: 1 samples every one
MAX_PER_DAY = 10_000  # samples per install per UTC day; beyond it a phone sends the team its whole day
MAX_BATCH = 100  # samples per POST /v1/capture
MAX_VALUES = 65_536  # numbers per sample input: a 128×128×4 image; larger inputs are not captured
HEX = r"[0-9a-f]{64}"  # sha256 of the install id: the id itself never leaves the device
SAMPLE_ID = r"[0-9a-f]{32}"  # random per sample, so a batch sent again after a lost reply is recognised


@dataclass(frozen=True)
class CapturePolicy:
    """``manifest.capture``: sample ``rate`` of inferences, at most ``max_per_day`` per install and UTC day."""

    rate: float  # 0 … 1; 0 is off
    max_per_day: int  # 0 … MAX_PER_DAY
    requires_consent: bool = True

    @classmethod
    def from_dict(cls, f: Fields) -> CapturePolicy:
        policy = cls(
            rate=f.number("rate", lo=0, hi=MAX_RATE),
            max_per_day=f.integer("max_per_day", lo=0, hi=MAX_PER_DAY),
            requires_consent=f.boolean("requires_consent"),
        )
        if not policy.requires_consent:
            raise f.error("requires_consent", "must be true: raw inputs are sent only with the user's consent")
        f.done()
        return policy

    def to_dict(self) -> dict[str, Any]:
        return {"rate": self.rate, "max_per_day": self.max_per_day, "requires_consent": self.requires_consent}

    @property
    def on(self) -> bool:
        return self.rate > 0 and self.max_per_day > 0


def is_on(policy: CapturePolicy | None) -> bool:
    return policy is not None and policy.on


@dataclass(frozen=True)
class CaptureSample:
    sample_id: str
    time: datetime
    version: str  # the model version that predicted
    input: tuple[float, ...]  # flattened, in the model input's row-major order
    prediction: str  # the top label
    confidence: float
    label: str | None = None  # what the user said the right answer was

    @classmethod
    def from_dict(cls, f: Fields) -> CaptureSample:
        from mobile_ml.contracts.manifest import SEMVER, read_time

        values = f.array("input", max_len=MAX_VALUES)
        for i, v in enumerate(values):
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise f.error(f"input[{i}]", "expected a finite number")
        sample = cls(
            sample_id=f.string("sample_id", pattern=SAMPLE_ID, max_len=32),
            time=read_time(f, "time"),
            version=f.string("version", pattern=SEMVER, max_len=64),
            input=tuple(float(v) for v in values),
            prediction=f.string("prediction", max_len=256),
            confidence=f.number("confidence", lo=0, hi=1),
            label=f.opt_string("label", max_len=256),
        )
        f.done()
        return sample

    def to_dict(self) -> dict[str, Any]:
        from mobile_ml.contracts.manifest import format_time

        return {
            "sample_id": self.sample_id,
            "time": format_time(self.time),
            "version": self.version,
            "input": list(self.input),
            "prediction": self.prediction,
            "confidence": self.confidence,
            "label": self.label,
        }


@dataclass(frozen=True)
class CaptureBatch:
    """The body of ``POST /v1/capture``; stored as sent, under a name the server chooses."""

    SCHEMA: ClassVar[str] = "mobile_ml.capture_batch"
    SCHEMA_VERSION: ClassVar[int] = 1
    WHAT: ClassVar[str] = "a mobile-ml capture batch"
    REDO: ClassVar[str] = "mobile-ml device sync --consent-capture"

    model: str
    channel: str
    install_id_hash: str
    consent: bool  # the user's consent, as the device holds it; the server refuses a batch without it
    samples: tuple[CaptureSample, ...]

    @classmethod
    def from_dict(cls, f: Fields) -> CaptureBatch:
        from mobile_ml.contracts.manifest import NAME

        batch = cls(
            model=f.string("model", pattern=NAME),
            channel=f.string("channel", pattern=NAME),
            install_id_hash=f.string("install_id_hash", pattern=HEX, max_len=64),
            consent=f.boolean("consent"),
            samples=tuple(CaptureSample.from_dict(s) for s in f.objs("samples", max_len=MAX_BATCH)),
        )
        f.done()
        if not batch.samples:
            raise f.error("samples", "empty")
        ids = [s.sample_id for s in batch.samples]
        if len(set(ids)) != len(ids):
            raise f.error("samples", "two samples have the same sample_id")
        return batch

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "channel": self.channel,
            "install_id_hash": self.install_id_hash,
            "consent": self.consent,
            "samples": [s.to_dict() for s in self.samples],
        }


@dataclass(frozen=True)
class CaptureState:
    """``<device state>/capture.json``: consent, the policy last accepted, today's budget, the queue."""

    SCHEMA: ClassVar[str] = "mobile_ml.capture_state"
    SCHEMA_VERSION: ClassVar[int] = 1
    WHAT: ClassVar[str] = "a device's capture state"
    REDO: ClassVar[str] = "mobile-ml device sync --consent-capture"

    consent: bool = False
    model: str | None = None
    channel: str | None = None
    install_id_hash: str | None = None
    policy: CapturePolicy | None = None
    inferences: int = 0  # inferences offered so far: the index of the next draw
    day: str | None = None  # UTC day of taken_today
    taken_today: int = 0
    queue: tuple[CaptureSample, ...] = ()

    @classmethod
    def from_dict(cls, f: Fields) -> CaptureState:
        from mobile_ml.contracts.manifest import NAME

        policy = f.opt_obj("policy")
        st = cls(
            consent=f.boolean("consent"),
            model=f.opt_string("model", pattern=NAME),
            channel=f.opt_string("channel", pattern=NAME),
            install_id_hash=f.opt_string("install_id_hash", pattern=HEX, max_len=64),
            policy=None if policy is None else CapturePolicy.from_dict(policy),
            inferences=f.integer("inferences", lo=0),
            day=f.opt_string("day", pattern=r"[0-9]{4}-[0-9]{2}-[0-9]{2}", max_len=10),
            taken_today=f.integer("taken_today", lo=0),
            queue=tuple(CaptureSample.from_dict(s) for s in f.objs("queue", max_len=1000)),
        )
        f.done()
        return st

    def to_dict(self) -> dict[str, Any]:
        return {
            "consent": self.consent,
            "model": self.model,
            "channel": self.channel,
            "install_id_hash": self.install_id_hash,
            "policy": self.policy.to_dict() if self.policy else None,
            "inferences": self.inferences,
            "day": self.day,
            "taken_today": self.taken_today,
            "queue": [s.to_dict() for s in self.queue],
        }


__all__ = ["MAX_BATCH", "MAX_PER_DAY", "CaptureBatch", "CapturePolicy", "CaptureSample", "CaptureState", "is_on"]

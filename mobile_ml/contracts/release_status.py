"""``mobile-ml release status NAME --json``: the release manager's overview of one model, per channel: what the
signed manifest says (version, rollout, halt, expiry) beside what the fleet's telemetry says (devices per version
now, adoption per day, update failures, drift)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from mobile_ml.contracts import Fields
from mobile_ml.contracts.manifest import NAME, format_time, read_time

DAY = r"\d{4}-\d{2}-\d{2}"


class Signature(str, enum.Enum):
    VERIFIED = "verified"  # verified with --public-key (or a key a rotation statement links to it)
    FAILED = "failed"  # devices would refuse this manifest
    UNCHECKED = "unchecked"  # no --public-key given: shown as the root holds it


@dataclass(frozen=True)
class VersionCount:
    version: str
    devices: int
    share: float  # of the installs counted with it (0..1)

    @classmethod
    def from_dict(cls, f: Fields) -> VersionCount:
        v = cls(f.string("version", max_len=32), f.integer("devices", lo=0), f.number("share", lo=0, hi=1))
        f.done()
        return v

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "devices": self.devices, "share": self.share}


def _counts(f: Fields, key: str) -> tuple[VersionCount, ...]:
    return tuple(VersionCount.from_dict(e) for e in f.objs(key))


@dataclass(frozen=True)
class DayAdoption:
    day: str  # UTC, YYYY-MM-DD, by the server's receive time
    installs: int  # installs of this channel that reported that day
    versions: tuple[VersionCount, ...]  # each counted at its last report of the day

    @classmethod
    def from_dict(cls, f: Fields) -> DayAdoption:
        d = cls(f.string("day", pattern=DAY), f.integer("installs", lo=0), _counts(f, "versions"))
        f.done()
        return d

    def to_dict(self) -> dict[str, Any]:
        return {"day": self.day, "installs": self.installs, "versions": [v.to_dict() for v in self.versions]}


@dataclass(frozen=True)
class ChannelStatus:
    channel: str
    manifest_version: int
    version: str  # the release the manifest offers
    action: str  # what issued the manifest: publish, rollout, halt, rollback from X, refresh
    issued_at: datetime
    expires: datetime
    expired: bool  # at the report's generated_at: every device refuses the manifest
    rollout_percent: float
    halted: bool
    fallback: str | None  # the version devices outside the rollout keep
    signature: Signature
    devices: tuple[VersionCount, ...]  # installs whose latest report names this channel, by the version they run now
    adoption: tuple[DayAdoption, ...]  # oldest day first
    updates_applied: int  # since the manifest was issued
    updates_failed: int
    failure_rate: float | None  # failed / (applied + failed); None: no update reports since then
    drift: bool | None  # `mobile-ml monitor`'s verdict for this version; None: not available (see drift_note)
    drift_note: str

    @classmethod
    def from_dict(cls, f: Fields) -> ChannelStatus:
        c = cls(
            channel=f.string("channel", pattern=NAME),
            manifest_version=f.integer("manifest_version", lo=1),
            version=f.string("version", max_len=32),
            action=f.string("action", max_len=200),
            issued_at=read_time(f, "issued_at"),
            expires=read_time(f, "expires"),
            expired=f.boolean("expired"),
            rollout_percent=f.number("rollout_percent", lo=0, hi=100),
            halted=f.boolean("halted"),
            fallback=f.opt_string("fallback", max_len=32),
            signature=f.choice("signature", Signature),
            devices=_counts(f, "devices"),
            adoption=tuple(DayAdoption.from_dict(e) for e in f.objs("adoption")),
            updates_applied=f.integer("updates_applied", lo=0),
            updates_failed=f.integer("updates_failed", lo=0),
            failure_rate=f.opt_number("failure_rate", lo=0, hi=1),
            drift=None if f.value("drift", optional=True) is None else f.boolean("drift"),
            drift_note=f.string("drift_note", max_len=400),
        )
        f.done()
        return c

    def to_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "manifest_version": self.manifest_version,
            "version": self.version,
            "action": self.action,
            "issued_at": format_time(self.issued_at),
            "expires": format_time(self.expires),
            "expired": self.expired,
            "rollout_percent": self.rollout_percent,
            "halted": self.halted,
            "fallback": self.fallback,
            "signature": self.signature.value,
            "devices": [v.to_dict() for v in self.devices],
            "adoption": [d.to_dict() for d in self.adoption],
            "updates_applied": self.updates_applied,
            "updates_failed": self.updates_failed,
            "failure_rate": self.failure_rate,
            "drift": self.drift,
            "drift_note": self.drift_note,
        }


@dataclass(frozen=True)
class ReleaseStatus:
    SCHEMA: ClassVar[str] = "mobile_ml.release_status"
    SCHEMA_VERSION: ClassVar[int] = 1
    WHAT: ClassVar[str] = "a mobile-ml release status"
    REDO: ClassVar[str] = "mobile-ml release status NAME --root ROOT --db TELEMETRY --json"

    model: str
    root: str
    telemetry: str  # the store, printable (a URL without its password)
    generated_at: datetime
    channels: tuple[ChannelStatus, ...]  # by name
    unassigned_devices: int  # installs whose latest report names no channel (clients that do not send it)

    @property
    def ok(self) -> bool:
        """No manifest failed its signature check."""
        return all(c.signature != Signature.FAILED for c in self.channels)

    @classmethod
    def from_dict(cls, f: Fields) -> ReleaseStatus:
        s = cls(
            model=f.string("model", pattern=NAME),
            root=f.string("root"),
            telemetry=f.string("telemetry"),
            generated_at=read_time(f, "generated_at"),
            channels=tuple(ChannelStatus.from_dict(c) for c in f.objs("channels")),
            unassigned_devices=f.integer("unassigned_devices", lo=0),
        )
        f.done()
        return s

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "root": self.root,
            "telemetry": self.telemetry,
            "generated_at": format_time(self.generated_at),
            "channels": [c.to_dict() for c in self.channels],
            "unassigned_devices": self.unassigned_devices,
        }

"""What a device keeps between checks: ``state.json`` (what it accepted, whom it trusts) and ``current.json`` (which
installed version the app loads).

Both are read only through ``read_state`` / ``read_pointer`` here, strictly: a truncated, empty or hand-edited file is a
``ContractError`` naming the file and the field, never an empty state. An empty state would forget the last accepted
manifest_version (anti-rollback) and the rotated key (trust), so callers must fail closed on it.

Files written before these contracts had no ``schema`` key; they are read as version 1 (same fields).
"""

from __future__ import annotations

import enum
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from mobile_ml.contracts import ContractError, Fields, StrictJSONError, loads, parse_document
from mobile_ml.contracts.manifest import B64_KEY, NAME, SEMVER, SHA256, format_time, read_time


class Outcome(str, enum.Enum):
    """How one update check ended."""

    INSTALLED = "installed"  # a new verified model is live
    UP_TO_DATE = "up_to_date"  # the manifest verified and chose the model already running
    NOT_MODIFIED = "not_modified"  # 304: the channel did not change
    SKIPPED = "skipped"  # the release does not fit this device (app too old, runtime, space)
    REJECTED = "rejected"  # the manifest or a file broke a protocol rule (a Refusal)
    FAILED = "failed"  # network, server, health check or device state problem
    ERROR = "error"  # the check stopped on an unexpected error (recorded in state.json only)


class Failure(str, enum.Enum):
    """Why a check failed or skipped without a protocol refusal (an HTTP error status reads ``http_<status>``)."""

    NETWORK = "network"
    HEALTH_CHECK = "health_check"
    NO_SPACE = "no_space"
    APP_TOO_OLD = "app_too_old"
    RUNTIME = "runtime"
    STATE_UNREADABLE = "state_unreadable"


class Repair(str, enum.Enum):
    """What a check found damaged on the device and mended (``SyncResult.repairs``); the check itself goes on."""

    STATE_REBUILT = "state_rebuilt"  # state.json unreadable or missing: rebuilt from state.backup.json
    MODEL_REINSTALLED = "model_reinstalled"  # current.json, versions/<v>/ or a file of it damaged: downloaded again


ETAG = r"[\x20-\x7e]{1,1024}"  # sent back in a header: printable ASCII only
CHANNEL_KEY = rf"{NAME}/{NAME}"


@dataclass(frozen=True)
class ChannelSeen:
    """The manifest this device last accepted from one channel (versions count per channel)."""

    manifest_version: int
    manifest_sha256: str
    manifest_etag: str | None = None
    current: str | None = None  # the version this channel's manifest chose, for the 304 shortcut

    @classmethod
    def from_dict(cls, f: Fields) -> ChannelSeen:
        seen = cls(
            manifest_version=f.integer("manifest_version", lo=1, hi=2**53 - 1),
            manifest_sha256=f.string("manifest_sha256", pattern=SHA256),
            manifest_etag=f.opt_string("manifest_etag", pattern=ETAG, max_len=1024),
            current=f.opt_string("current", pattern=SEMVER, max_len=64),
        )
        f.done()
        return seen

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifest_version": self.manifest_version,
            "manifest_sha256": self.manifest_sha256,
            "manifest_etag": self.manifest_etag,
            "current": self.current,
        }


@dataclass(frozen=True)
class LastCheck:
    time: datetime
    outcome: Outcome
    reason: str | None = None

    @classmethod
    def from_dict(cls, f: Fields) -> LastCheck:
        check = cls(read_time(f, "time"), f.choice("outcome", Outcome), f.opt_string("reason", max_len=64))
        f.done()
        return check

    def to_dict(self) -> dict[str, Any]:
        return {"time": format_time(self.time), "outcome": self.outcome.value, "reason": self.reason}


@dataclass(frozen=True)
class DeviceState:
    """``state.json``."""

    SCHEMA: ClassVar[str] = "mobile_ml.device_state"
    SCHEMA_VERSION: ClassVar[int] = 1
    WHAT: ClassVar[str] = "a mobile-ml device state"
    REDO: ClassVar[str] = "mobile-ml device sync"

    channels: dict[str, ChannelSeen] = field(default_factory=dict)  # "model/channel" → what it accepted
    trusted_key_b64: str | None = None  # the key a verified rotation handed over to; None: the pinned key
    current: str | None = None
    previous: str | None = None
    last_check: LastCheck | None = None

    @classmethod
    def from_dict(cls, f: Fields) -> DeviceState:
        channels = {}
        for key, value in f.mapping("channels", optional=True).items():
            if not isinstance(key, str) or not re.fullmatch(CHANNEL_KEY, key):
                raise f.error(f"channels.{str(key)[:60]}", "is not MODEL/CHANNEL")
            channels[key] = ChannelSeen.from_dict(Fields(value, f"{f.where}.channels.{key}", hint=f.hint))
        last = f.opt_obj("last_check")
        state = cls(
            channels=channels,
            trusted_key_b64=f.opt_string("trusted_key_b64", pattern=B64_KEY, max_len=1026),
            current=f.opt_string("current", pattern=SEMVER, max_len=64),
            previous=f.opt_string("previous", pattern=SEMVER, max_len=64),
            last_check=LastCheck.from_dict(last) if last is not None else None,
        )
        f.done()
        return state

    def to_dict(self) -> dict[str, Any]:
        return {
            "channels": {k: v.to_dict() for k, v in sorted(self.channels.items())},
            "trusted_key_b64": self.trusted_key_b64,
            "current": self.current,
            "previous": self.previous,
            "last_check": self.last_check.to_dict() if self.last_check else None,
        }


@dataclass(frozen=True)
class CurrentPointer:
    """``current.json``: the one file the app reads to find its model; switched by one atomic rename."""

    SCHEMA: ClassVar[str] = "mobile_ml.current_model"
    SCHEMA_VERSION: ClassVar[int] = 1
    WHAT: ClassVar[str] = "a mobile-ml current-model pointer"
    REDO: ClassVar[str] = "mobile-ml device sync"

    version: str

    @classmethod
    def from_dict(cls, f: Fields) -> CurrentPointer:
        pointer = cls(f.string("version", pattern=SEMVER, max_len=64))
        f.done()
        return pointer

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version}


D = TypeVar("D", DeviceState, CurrentPointer)


def _read(cls: type[D], path: Path) -> D:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ContractError(f"cannot read {path}: {e.strerror}", hint="the device state is damaged") from e
    try:
        raw = loads(data)
    except StrictJSONError as e:
        raise ContractError(f"{path} is not valid JSON: {e}", hint="the device state is damaged") from e
    if not isinstance(raw, dict):  # before the schema default below, which needs an object
        raise ContractError(f"{path} is not {cls.WHAT} (not a JSON object)", hint="the device state is damaged")
    if "schema" not in raw:  # written before the schema key existed
        raw = {"schema": cls.SCHEMA, "schema_version": cls.SCHEMA_VERSION, **raw}
    return parse_document(cls, raw, where=str(path))


def read_state(path: str | os.PathLike[str]) -> DeviceState | None:
    """``state.json``, or None when the device never checked (no file). Anything else unreadable raises."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return None
    return _read(DeviceState, path)


def read_pointer(path: str | os.PathLike[str]) -> CurrentPointer:
    return _read(CurrentPointer, Path(path))

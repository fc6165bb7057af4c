"""The signed documents of the update channel: the manifest, the release document and the key rotation statement.

Each is a frozen dataclass read by one strict validator (``from_dict`` through ``mobile_ml.contracts``): types exactly
(``"false"`` is not a boolean, ``50.9`` is not an integer), ranges, name patterns, and no unknown keys anywhere a
device acts on. A signed document is verified over its exact bytes *before* it is parsed here (``publish.trust``);
parsing a verified document still refuses anything two clients could read differently. The rule of every field is
in ``docs/update-protocol.md`` §3; ``tests/vectors/manifests.json`` holds a signed edge case for each.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, ClassVar

from mobile_ml.contracts._fields import ContractError, Fields
from mobile_ml.contracts.capture import CapturePolicy


class Refusal(str, enum.Enum):
    """Why a device refuses a manifest or a downloaded file: stable codes shared by every client."""

    TOO_LARGE = "too_large"
    BAD_SIGNATURE = "bad_signature"
    MALFORMED = "malformed"
    WRONG_KEY = "wrong_key"
    WRONG_CHANNEL = "wrong_channel"
    EXPIRED = "expired"
    ROLLBACK = "rollback"
    REPLAY_DIFFERENT = "replay_different"
    HASH_MISMATCH = "hash_mismatch"
    LENGTH_MISMATCH = "length_mismatch"


# Patterns and bounds (docs/update-protocol.md §3 names each one).
NAME = r"[a-z0-9][a-z0-9._-]{0,63}"  # model, channel, variant, runtime name
FILE_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"  # becomes a file name on the device: never a path, never "." or ".."
SHA256 = r"[0-9a-f]{64}"
URL = r"[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*"  # relative, no "." or ".." segment
TIME = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z"
_IDENT = r"(0|[1-9][0-9]*|[0-9A-Za-z-]*[A-Za-z-][0-9A-Za-z-]*)"
SEMVER = rf"(0|[1-9][0-9]{{0,8}})\.(0|[1-9][0-9]{{0,8}})\.(0|[1-9][0-9]{{0,8}})(-{_IDENT}(\.{_IDENT})*)?"
SALT = r"[\x21-\x7e]{1,128}"  # printable ASCII, no spaces: hashed into the rollout bucket
B64_KEY = r"[A-Za-z0-9+/]{40,1024}={0,2}"
MAX_SAFE_INT = 2**53 - 1  # the largest integer every JSON reader (JavaScript, Kotlin's Double path) holds exactly
MAX_FILE_BYTES = 1 << 32  # 4 GiB: a model file larger than this is not for a phone
MAX_FILES = 16
REQUIRED_FILES = ("model.tflite", "metadata.json")  # the model and the metadata its health check needs


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def format_time(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_time(f: Fields, key: str) -> datetime:
    text = f.string(key, pattern=TIME, max_len=20)
    try:
        return parse_time(text)
    except ValueError:
        raise f.error(key, f"{text!r} is not a valid UTC time") from None


def version_key(text: str) -> tuple[Any, ...]:
    """A semantic version as a sortable key: a pre-release sorts before its release, as semver says."""
    m = re.fullmatch(SEMVER, text)
    if m is None:
        raise ValueError(f"'{text}' is not a semantic version")
    core, _, pre = text.partition("-")
    major, minor, patch = (int(p) for p in core.split("."))
    pre_key = (1,) if not pre else (0, *[(0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")])
    return (major, minor, patch, pre_key)


def obj(f: Fields, key: str) -> Fields:
    """A required object: unlike ``Fields.obj``, null is refused, not read as an empty object."""
    if f.value(key) is None:
        raise f.error(key, "missing" if key not in f.raw else "expected an object, got null")
    return f.obj(key)


def _semver(f: Fields, key: str) -> str:
    return f.string(key, pattern=SEMVER, max_len=64)


@dataclass(frozen=True)
class FileEntry:
    name: str
    url: str  # relative to the publish root
    sha256: str
    length: int

    @classmethod
    def from_dict(cls, f: Fields) -> FileEntry:
        entry = cls(
            name=f.string("name", pattern=FILE_NAME, max_len=128),
            url=f.string("url", pattern=URL, max_len=1024),
            sha256=f.string("sha256", pattern=SHA256, max_len=64),
            length=f.integer("length", lo=0, hi=MAX_FILE_BYTES),
        )
        f.done()
        return entry

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "sha256": self.sha256, "length": self.length}


@dataclass(frozen=True)
class Runtime:
    name: str = "litert"
    min_version: str = "1.0.0"

    @classmethod
    def from_dict(cls, f: Fields) -> Runtime:
        rt = cls(name=f.string("name", pattern=NAME), min_version=_semver(f, "min_version"))
        f.done()
        return rt

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "min_version": self.min_version}


@dataclass(frozen=True)
class Parity:
    """The export's accuracy figures for this variant: informational, never acted on by a device."""

    accuracy: float | None = None
    accuracy_drop_pp: float | None = None
    agreement: float | None = None

    @classmethod
    def from_dict(cls, f: Fields) -> Parity:
        p = cls(
            accuracy=f.opt_number("accuracy", lo=0, hi=1),
            accuracy_drop_pp=f.opt_number("accuracy_drop_pp", lo=-100, hi=100),
            agreement=f.opt_number("agreement", lo=0, hi=1),
        )
        f.done()
        return p

    def to_dict(self) -> dict[str, Any]:
        # Only the figures the export had: the same version published again gives the same bytes.
        figures = {"accuracy": self.accuracy, "accuracy_drop_pp": self.accuracy_drop_pp, "agreement": self.agreement}
        return {k: v for k, v in figures.items() if v is not None}


@dataclass(frozen=True)
class Release:
    """What a device installs. Stored alone as ``<model>/releases/<version>.json`` and inlined in manifests."""

    SCHEMA: ClassVar[str] = "mobile_ml.release"
    SCHEMA_VERSION: ClassVar[int] = 1
    WHAT: ClassVar[str] = "a mobile-ml release document"
    REDO: ClassVar[str] = "mobile-ml publish"

    model: str
    version: str
    variant: str
    files: tuple[FileEntry, ...]
    min_app_version: str = "0.0.0"
    runtime: Runtime = field(default_factory=Runtime)
    parity: Parity = field(default_factory=Parity)
    metadata: dict[str, Any] = field(default_factory=dict)  # labels/input/output/preprocessing, for the app's UI

    @classmethod
    def from_dict(cls, f: Fields) -> Release:
        files = tuple(FileEntry.from_dict(e) for e in f.objs("files", max_len=MAX_FILES))
        names = [e.name for e in files]
        if len(set(names)) != len(names):
            raise f.error("files", "two entries have the same name")
        for required in REQUIRED_FILES:
            if required not in names:
                raise f.error("files", f"no {required}")
        release = cls(
            model=f.string("model", pattern=NAME),
            version=_semver(f, "version"),
            variant=f.string("variant", pattern=NAME),
            files=files,
            min_app_version=_semver(f, "min_app_version"),
            runtime=Runtime.from_dict(obj(f, "runtime")),
            parity=Parity.from_dict(obj(f, "parity")),
            metadata=f.mapping("metadata"),
        )
        f.done()
        return release

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "variant": self.variant,
            "files": [e.to_dict() for e in self.files],
            "metadata": self.metadata,
            "parity": self.parity.to_dict(),
            "min_app_version": self.min_app_version,
            "runtime": self.runtime.to_dict(),
        }

    def file(self, name: str) -> FileEntry:
        return next(e for e in self.files if e.name == name)

    @property
    def total_length(self) -> int:
        return sum(e.length for e in self.files)


@dataclass(frozen=True)
class Rollout:
    percent: float  # in [0, 100]; a device is in when its bucket < round(percent × 100)
    salt: str
    halted: bool = False

    @classmethod
    def from_dict(cls, f: Fields) -> Rollout:
        r = cls(
            percent=f.number("percent", lo=0, hi=100),
            salt=f.string("salt", pattern=SALT, max_len=128),
            halted=f.boolean("halted"),
        )
        f.done()
        return r

    def to_dict(self) -> dict[str, Any]:
        return {"percent": self.percent, "salt": self.salt, "halted": self.halted}


@dataclass(frozen=True)
class Manifest:
    """A channel's signed manifest (``docs/update-protocol.md`` §3)."""

    SCHEMA: ClassVar[str] = "mobile_ml.manifest"
    SCHEMA_VERSION: ClassVar[int] = 1
    WHAT: ClassVar[str] = "a mobile-ml manifest"
    REDO: ClassVar[str] = "mobile-ml release refresh"

    model: str
    channel: str
    manifest_version: int
    issued_at: datetime
    expires: datetime
    key_id: str
    action: str
    release: Release
    rollout: Rollout
    fallback: Release | None = None
    capture: CapturePolicy | None = None  # absent: capture is off (§3.3); older manifests have none

    @classmethod
    def from_dict(cls, f: Fields) -> Manifest:
        model = f.string("model", pattern=NAME)
        release = Release.from_dict(obj(f, "release"))
        fallback = None if f.value("fallback") is None else Release.from_dict(f.obj("fallback"))
        for key, r in (("release", release), ("fallback", fallback)):
            if r is not None and r.model != model:
                raise f.error(f"{key}.model", f"{r.model!r} is not the manifest's model {model!r}")
        m = cls(
            model=model,
            channel=f.string("channel", pattern=NAME),
            manifest_version=f.integer("manifest_version", lo=1, hi=MAX_SAFE_INT),
            issued_at=read_time(f, "issued_at"),
            expires=read_time(f, "expires"),
            key_id=f.string("key_id", pattern=SHA256, max_len=64),
            action=f.string("action", pattern=r"[^\x00-\x1f\x7f]{1,200}", max_len=200),
            release=release,
            rollout=Rollout.from_dict(obj(f, "rollout")),
            fallback=fallback,
            capture=None if "capture" not in f.raw else CapturePolicy.from_dict(obj(f, "capture")),
        )
        f.done()
        return m

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model": self.model,
            "channel": self.channel,
            "manifest_version": self.manifest_version,
            "issued_at": format_time(self.issued_at),
            "expires": format_time(self.expires),
            "key_id": self.key_id,
            "action": self.action,
            "release": self.release.to_dict(),
            "rollout": self.rollout.to_dict(),
            "fallback": self.fallback.to_dict() if self.fallback else None,
        }
        if self.capture is not None:  # no key at all when off by absence: the bytes of older manifests stay the same
            out["capture"] = self.capture.to_dict()
        return out


def key_id_of(b64: str) -> str:
    """The key id of a base64 SubjectPublicKeyInfo DER: lowercase hex sha256 of the DER."""
    return hashlib.sha256(base64.b64decode(b64, validate=True)).hexdigest()


@dataclass(frozen=True)
class KeyRotation:
    """The old key's signed statement that the new key signs ``model``'s channels from now on."""

    SCHEMA: ClassVar[str] = "mobile_ml.key_rotation"
    SCHEMA_VERSION: ClassVar[int] = 1
    WHAT: ClassVar[str] = "a mobile-ml key rotation statement"
    REDO: ClassVar[str] = "mobile-ml keys rotate"

    model: str
    old_key_id: str
    old_public_key_b64: str
    new_key_id: str
    new_public_key_b64: str
    issued_at: datetime

    @classmethod
    def from_dict(cls, f: Fields) -> KeyRotation:
        doc = cls(
            model=f.string("model", pattern=NAME),
            old_key_id=f.string("old_key_id", pattern=SHA256, max_len=64),
            old_public_key_b64=f.string("old_public_key_b64", pattern=B64_KEY, max_len=1026),
            new_key_id=f.string("new_key_id", pattern=SHA256, max_len=64),
            new_public_key_b64=f.string("new_public_key_b64", pattern=B64_KEY, max_len=1026),
            issued_at=read_time(f, "issued_at"),
        )
        f.done()
        for which in ("old", "new"):
            try:
                ok = key_id_of(getattr(doc, f"{which}_public_key_b64")) == getattr(doc, f"{which}_key_id")
            except (binascii.Error, ValueError):
                ok = False
            if not ok:
                raise f.error(f"{which}_key_id", f"is not the sha256 of {which}_public_key_b64")
        if doc.old_key_id == doc.new_key_id:
            raise f.error("new_key_id", "is the old key")
        return doc

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "old_key_id": self.old_key_id,
            "old_public_key_b64": self.old_public_key_b64,
            "new_key_id": self.new_key_id,
            "new_public_key_b64": self.new_public_key_b64,
            "issued_at": format_time(self.issued_at),
        }


__all__ = [
    "ContractError",
    "FileEntry",
    "KeyRotation",
    "Manifest",
    "Parity",
    "Refusal",
    "Release",
    "Rollout",
    "Runtime",
    "format_time",
    "parse_time",
    "version_key",
]

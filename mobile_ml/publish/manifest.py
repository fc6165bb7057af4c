"""The signed channel manifest (``docs/update-protocol.md``): building, parsing, versions and rollout buckets.

A manifest is JSON, serialized once (sorted keys, UTF-8) and signed over those exact bytes; readers verify the
signature before they parse anything.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from datetime import datetime, timedelta, timezone
from typing import Any

from mobile_ml.errors import ConfigError, InputFileError

SCHEMA = "mobile_ml.manifest"
SCHEMA_VERSION = 1
RELEASE_SCHEMA = "mobile_ml.release"
DEFAULT_EXPIRY_DAYS = 30
MAX_MANIFEST_BYTES = 1 << 20  # clients refuse larger manifests before parsing (threat 6)
BUCKETS = 10_000

_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z.-]+))?$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
# A release's file names and hashes become file names on devices: plain names only, never a path.
_FILE_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def parse_version(text: str) -> tuple:
    """Semantic version → a sortable key (a pre-release sorts before its release, as semver says)."""
    m = _SEMVER.match(str(text))
    if not m:
        raise ConfigError(f"'{text}' is not a semantic version", hint="use MAJOR.MINOR.PATCH, e.g. 1.2.0")
    major, minor, patch, pre = m.groups()
    pre_key = (1,) if pre is None else (0, *[(0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")])
    return (int(major), int(minor), int(patch), pre_key)


def check_name(kind: str, value: str) -> str:
    if not _NAME.match(value or ""):
        raise ConfigError(
            f"{kind} name '{value}' is not allowed",
            hint="use 1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return value


def bucket(salt: str, install_id: str) -> int:
    """The device's rollout bucket: first 8 bytes of sha256(salt ":" install_id), unsigned big-endian, mod 10,000."""
    digest = hashlib.sha256(f"{salt}:{install_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def in_rollout(percent: float, salt: str, install_id: str) -> bool:
    """In when bucket < percent × 100: raising the percentage keeps every device that was in."""
    return bucket(salt, install_id) < round(percent * 100)


def check_percent(percent: float) -> float:
    if not 0 <= percent <= 100 or round(percent * 100) != round(percent * 100, 6):
        raise ConfigError(
            f"rollout percent must be between 0 and 100 in steps of 0.01, not {percent:g}", hint="e.g. --rollout 10"
        )
    return float(percent)


def new_salt() -> str:
    return secrets.token_hex(8)


def utc(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def build(
    *,
    model: str,
    channel: str,
    manifest_version: int,
    key_id: str,
    release: dict[str, Any],
    rollout_percent: float,
    salt: str,
    fallback: dict[str, Any] | None,
    action: str,
    halted: bool = False,
    now: datetime | None = None,
    expires_days: float = DEFAULT_EXPIRY_DAYS,
) -> dict[str, Any]:
    now = now or datetime.now(timezone.utc)
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "model": model,
        "channel": channel,
        "manifest_version": manifest_version,
        "issued_at": utc(now),
        "expires": utc(now + timedelta(days=expires_days)),
        "key_id": key_id,
        "action": action,
        "release": release,
        "rollout": {"percent": rollout_percent, "salt": salt, "halted": halted},
        "fallback": fallback,
    }


def dumps(manifest: dict[str, Any]) -> bytes:
    """The canonical bytes that get signed and served: sorted keys, two-space indent, trailing newline."""
    return (json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def parse(data: bytes, where: str) -> dict[str, Any]:
    """Parse a manifest whose signature was already verified, and check its shape."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise InputFileError(
            f"{where} is {len(data)} bytes, over the {MAX_MANIFEST_BYTES}-byte limit",
            hint="the manifest is not one mobile-ml wrote",
        )
    try:
        m = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputFileError(f"{where} is not valid JSON: {e}", hint="republish the channel") from e
    if not isinstance(m, dict) or m.get("schema") != SCHEMA:
        raise InputFileError(f"{where} is not a mobile-ml manifest", hint="republish the channel")
    if m.get("schema_version") != SCHEMA_VERSION:
        raise InputFileError(
            f"{where} has schema_version {m.get('schema_version')}; this mobile-ml reads {SCHEMA_VERSION}",
            hint="upgrade mobile-ml",
        )
    try:
        int(m["manifest_version"])
        parse_time(m["issued_at"]), parse_time(m["expires"])
        release, rollout = m["release"], m["rollout"]
        parse_version(release["version"])
        for f in release["files"]:
            f["url"], int(f["length"])
            if not _FILE_NAME.match(f["name"]) or not _SHA256.match(f["sha256"]):
                raise ValueError(f"file entry {f['name']!r} / {f['sha256']!r} is not a plain name and a sha256")
        float(rollout["percent"]), rollout["salt"]
    except (KeyError, TypeError, ValueError, ConfigError) as e:
        raise InputFileError(f"{where} is incomplete: {e}", hint="republish the channel") from e
    return m

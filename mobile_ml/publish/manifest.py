"""The signed channel manifest (``docs/update-protocol.md``): building, parsing, versions and rollout buckets.

A manifest is JSON, serialized once (sorted keys, UTF-8) and signed over those exact bytes; readers verify the
signature before they parse anything.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
from datetime import datetime, timedelta, timezone
from typing import Any

from mobile_ml.contracts import Document, document_dict, parse_document
from mobile_ml.contracts.capture import MAX_PER_DAY, CapturePolicy
from mobile_ml.contracts.manifest import (
    NAME,
    Manifest,
    Release,
    Rollout,
    format_time,
    version_key,
)
from mobile_ml.contracts.manifest import parse_time as parse_time  # re-exported: "YYYY-MM-DDTHH:MM:SSZ" → UTC
from mobile_ml.errors import ConfigError, InputFileError

SCHEMA = Manifest.SCHEMA
SCHEMA_VERSION = Manifest.SCHEMA_VERSION
RELEASE_SCHEMA = Release.SCHEMA
DEFAULT_EXPIRY_DAYS = 30
MIN_EXPIRY_DAYS, MAX_EXPIRY_DAYS = 1, 3650  # under a day devices may refuse it on arrival; over ten years: a typo
MAX_MANIFEST_BYTES = 1 << 20  # clients refuse larger manifests before parsing (threat 6)
BUCKETS = 10_000

utc = format_time


def parse_version(text: str) -> tuple[Any, ...]:
    """Semantic version → a sortable key (a pre-release sorts before its release, as semver says)."""
    try:
        return version_key(str(text))
    except ValueError:
        raise ConfigError(f"'{text}' is not a semantic version", hint="use MAJOR.MINOR.PATCH, e.g. 1.2.0") from None


def check_name(kind: str, value: str) -> str:
    import re

    if not re.fullmatch(NAME, value or ""):
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


def check_expiry_days(days: float) -> float:
    """Bound ``--expires-days``: a manifest must reach devices unexpired, and ``nan``/``inf``/``1e9`` are typos."""
    if not (isinstance(days, int | float) and math.isfinite(days) and MIN_EXPIRY_DAYS <= days <= MAX_EXPIRY_DAYS):
        raise ConfigError(
            f"expiry must be {MIN_EXPIRY_DAYS} to {MAX_EXPIRY_DAYS} days, not {days!r}",
            hint="e.g. --expires-days 30; devices refuse an expired manifest",
        )
    return float(days)


def capture_policy(rate: float, max_per_day: int) -> CapturePolicy | None:
    """``--capture-rate`` / ``--capture-max-per-day`` → the manifest's policy; rate 0 switches capture off (None)."""
    if not (isinstance(rate, int | float) and math.isfinite(rate) and 0 <= rate <= 1):
        raise ConfigError(f"capture rate must be 0 to 1 (a fraction of inferences), not {rate!r}", hint="e.g. 0.05")
    if not 1 <= max_per_day <= MAX_PER_DAY:
        raise ConfigError(
            f"capture max per day must be 1 to {MAX_PER_DAY}, not {max_per_day}", hint="e.g. --capture-max-per-day 20"
        )
    return CapturePolicy(float(rate), int(max_per_day), True) if rate > 0 else None


def new_salt() -> str:
    return secrets.token_hex(8)


def build(
    *,
    model: str,
    channel: str,
    manifest_version: int,
    key_id: str,
    release: Release,
    rollout_percent: float,
    salt: str,
    fallback: Release | None,
    action: str,
    halted: bool = False,
    now: datetime | None = None,
    expires_days: float = DEFAULT_EXPIRY_DAYS,
    capture: CapturePolicy | None = None,
) -> Manifest:
    now = now or datetime.now(timezone.utc)
    check_expiry_days(expires_days)
    return Manifest(
        model=model,
        channel=channel,
        manifest_version=manifest_version,
        issued_at=now.replace(microsecond=0),
        expires=(now + timedelta(days=expires_days)).replace(microsecond=0),
        key_id=key_id,
        action=action,
        release=release,
        rollout=Rollout(float(rollout_percent), salt, halted),
        fallback=fallback,
        capture=capture,
    )


def dumps(doc: Document | dict[str, Any]) -> bytes:
    """The canonical bytes that get signed and served: sorted keys, two-space indent, trailing newline."""
    obj = doc if isinstance(doc, dict) else document_dict(doc)
    return (json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def parse(data: bytes, where: str) -> Manifest:
    """A manifest whose signature was already verified, through its one strict validator (``ContractError``)."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise InputFileError(
            f"{where} is {len(data)} bytes, over the {MAX_MANIFEST_BYTES}-byte limit",
            hint="the manifest is not one mobile-ml wrote",
        )
    return parse_document(Manifest, data, where=where)

"""What a device checks before it trusts a manifest or a downloaded file (the client half of the protocol).

Order matters and is the protocol's (``docs/update-protocol.md``): size cap, signature over the exact bytes, and
only then parsing; then key, channel, freshness and rollback checks. The reference client (Python) and the Android
updater (Kotlin) implement the same steps and are tested on the same vectors (``tests/vectors/``).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from mobile_ml.errors import InputFileError
from mobile_ml.publish import keys
from mobile_ml.publish import manifest as mf


class Rejected(Exception):
    """A manifest or file the device must not use; ``reason`` is a stable code shared with the Android updater."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


REASONS = (
    "too_large",
    "bad_signature",
    "malformed",
    "wrong_key",
    "wrong_channel",
    "expired",
    "rollback",
    "replay_different",
    "hash_mismatch",
    "length_mismatch",
)


def check_manifest(
    raw: bytes,
    signature: bytes,
    public_key,
    *,
    now: datetime,
    model: str,
    channel: str,
    last_version: int | None = None,
    last_sha256: str | None = None,
) -> dict[str, Any]:
    """Return the manifest if a device may act on it, else raise ``Rejected``.

    ``last_version``/``last_sha256``: the manifest_version and sha256 of the manifest the device accepted last.
    An equal version with the same bytes is accepted (nothing new); with other bytes it is a replay attack.
    """
    if len(raw) > mf.MAX_MANIFEST_BYTES:
        raise Rejected("too_large", f"{len(raw)} bytes > {mf.MAX_MANIFEST_BYTES}")
    if not keys.verify(public_key, raw, signature):
        raise Rejected("bad_signature", "the signature does not verify with the pinned key")
    try:
        m = mf.parse(raw, "manifest")
    except InputFileError as e:
        raise Rejected("malformed", e.message) from None
    if m["key_id"] != keys.key_id(public_key):
        raise Rejected("wrong_key", f"manifest names key {m['key_id'][:16]}…")
    if m["model"] != model or m["channel"] != channel:
        raise Rejected("wrong_channel", f"manifest is for {m['model']}/{m['channel']}, not {model}/{channel}")
    if mf.parse_time(m["expires"]) <= now:
        raise Rejected("expired", f"expired at {m['expires']}")
    version = int(m["manifest_version"])
    if last_version is not None:
        if version < last_version:
            raise Rejected("rollback", f"manifest_version {version} < {last_version} already seen")
        if version == last_version and last_sha256 and hashlib.sha256(raw).hexdigest() != last_sha256:
            raise Rejected("replay_different", f"manifest_version {version} seen before with other content")
    return m


def check_file(data: bytes, entry: dict[str, Any]) -> None:
    """A downloaded file must have exactly the signed length and sha256."""
    if len(data) != int(entry["length"]):
        raise Rejected("length_mismatch", f"{entry['name']}: {len(data)} bytes, signed {entry['length']}")
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise Rejected("hash_mismatch", f"{entry['name']}: sha256 differs from the signed one")


def select_release(m: dict[str, Any], install_id: str, current_version: str | None) -> dict[str, Any] | None:
    """The release this device should run: in the rollout → the release; otherwise the fallback.

    A halted rollout lets no new device in; a device already on the halted release keeps it.
    """
    rollout = m["rollout"]
    inside = mf.in_rollout(float(rollout["percent"]), rollout["salt"], install_id)
    if rollout.get("halted"):
        return m["release"] if current_version == m["release"]["version"] else m.get("fallback")
    return m["release"] if inside else m.get("fallback")


def claimed_key_id(raw: bytes) -> str | None:
    """The key id an unverified manifest claims: only to pick which rotation statement to fetch, never trusted."""
    import re

    m = re.search(rb'"key_id":\s*"([0-9a-f]{64})"', raw[: mf.MAX_MANIFEST_BYTES])
    return m.group(1).decode() if m else None

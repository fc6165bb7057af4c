"""What a device checks before it trusts a manifest or a downloaded file (the client half of the protocol).

Order matters and is the protocol's (``docs/update-protocol.md``): size cap, signature over the exact bytes, and
only then parsing (one strict validator: ``mobile_ml.contracts.manifest``); then key, channel, freshness and rollback
checks. The reference client (Python) and the Android updater (Kotlin) implement the same steps and are tested on
the same vectors (``tests/vectors/``).
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any

from mobile_ml.contracts import ContractError
from mobile_ml.contracts.manifest import FileEntry, Manifest, Refusal, Release
from mobile_ml.publish import keys
from mobile_ml.publish import manifest as mf


class Rejected(Exception):
    """A manifest or file the device must not use; ``reason`` is a stable code shared with the Android updater.

    ``field``: for ``malformed``, the dotted path of the value the validator refused ("manifest.rollout.halted").
    """

    def __init__(self, reason: Refusal, detail: str, *, field: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
        self.field = field


def check_manifest(
    raw: bytes,
    signature: bytes,
    public_key: Any,
    *,
    now: datetime,
    model: str,
    channel: str,
    last_version: int | None = None,
    last_sha256: str | None = None,
) -> Manifest:
    """Return the manifest if a device may act on it, else raise ``Rejected``.

    ``last_version``/``last_sha256``: the manifest_version and sha256 of the manifest the device accepted last.
    An equal version with the same bytes is accepted (nothing new); with other bytes it is a replay attack.
    """
    if len(raw) > mf.MAX_MANIFEST_BYTES:
        raise Rejected(Refusal.TOO_LARGE, f"{len(raw)} bytes > {mf.MAX_MANIFEST_BYTES}")
    if not keys.verify(public_key, raw, signature):  # before parsing: unverified bytes are never interpreted
        raise Rejected(Refusal.BAD_SIGNATURE, "the signature does not verify with the pinned key")
    try:
        m = mf.parse(raw, "manifest")
    except ContractError as e:
        raise Rejected(Refusal.MALFORMED, e.message, field=e.field) from None
    if m.key_id != keys.key_id(public_key):
        raise Rejected(Refusal.WRONG_KEY, f"manifest names key {m.key_id[:16]}…")
    if m.model != model or m.channel != channel:
        raise Rejected(Refusal.WRONG_CHANNEL, f"manifest is for {m.model}/{m.channel}, not {model}/{channel}")
    if m.expires <= now:
        raise Rejected(Refusal.EXPIRED, f"expired at {mf.utc(m.expires)}")
    if last_version is not None:
        if m.manifest_version < last_version:
            raise Rejected(Refusal.ROLLBACK, f"manifest_version {m.manifest_version} < {last_version} already seen")
        if m.manifest_version == last_version and last_sha256 and hashlib.sha256(raw).hexdigest() != last_sha256:
            raise Rejected(
                Refusal.REPLAY_DIFFERENT, f"manifest_version {m.manifest_version} seen before with other content"
            )
    return m


def check_file(data: bytes, entry: FileEntry) -> None:
    """A downloaded file must have exactly the signed length and sha256."""
    if len(data) != entry.length:
        raise Rejected(Refusal.LENGTH_MISMATCH, f"{entry.name}: {len(data)} bytes, signed {entry.length}")
    if hashlib.sha256(data).hexdigest() != entry.sha256:
        raise Rejected(Refusal.HASH_MISMATCH, f"{entry.name}: sha256 differs from the signed one")


def select_release(m: Manifest, install_id: str, current_version: str | None) -> Release | None:
    """The release this device should run: in the rollout → the release; otherwise the fallback.

    A halted rollout lets no new device in; a device already on the halted release keeps it.
    """
    if m.rollout.halted:
        return m.release if current_version == m.release.version else m.fallback
    return m.release if mf.in_rollout(m.rollout.percent, m.rollout.salt, install_id) else m.fallback


def claimed_key_id(raw: bytes) -> str | None:
    """The key id an unverified manifest claims: only to pick which rotation statement to fetch, never trusted."""
    m = re.search(rb'"key_id":\s*"([0-9a-f]{64})"', raw[: mf.MAX_MANIFEST_BYTES])
    return m.group(1).decode() if m else None

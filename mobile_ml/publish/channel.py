"""Reading and committing a channel: the one place where manifests become current.

Layout of a publish root (all static files; ``docs/update-protocol.md`` is the contract):
    blobs/sha256/<hex>                              content-addressed, immutable: model.tflite, metadata.json
    <model>/releases/<version>.json                 release document, immutable
    <model>/history/<channel>/<manifest_version>.json (+ .sig)   every manifest ever issued, immutable
    <model>/channels/<channel>.json (+ .sig)        the current signed manifest

Commit order: blobs and the release first (by the caller), then the history entry, created only if absent: two
publishers racing for the same manifest_version cannot both create it, so exactly one wins. Then the channel
manifest by compare-and-swap, then its detached signature. A crash before the manifest write leaves the old channel
untouched; a crash between manifest and signature is repaired by the next command from the history copy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mobile_ml.contracts.manifest import Manifest, Release
from mobile_ml.errors import InputFileError, UserError
from mobile_ml.publish import keys
from mobile_ml.publish import manifest as mf
from mobile_ml.publish.storage import ConcurrentUpdate, ExistsDifferent
from mobile_ml.publish.trust import claimed_key_id


class RefusedError(UserError):
    """A release command that would break a rule of the channel (exit 2; nothing was written)."""


def manifest_path(model: str, channel: str) -> str:
    return f"{model}/channels/{channel}.json"


def history_path(model: str, channel: str, manifest_version: int) -> str:
    return f"{model}/history/{channel}/{manifest_version:08d}.json"


@dataclass(frozen=True)
class ChannelState:
    model: str
    channel: str
    manifest: Manifest | None  # verified; None: the channel does not exist yet
    tag: str | None  # compare-and-swap token of the manifest file

    @property
    def version(self) -> str | None:
        return self.manifest.release.version if self.manifest else None

    @property
    def manifest_version(self) -> int:
        return self.manifest.manifest_version if self.manifest else 0

    @property
    def current(self) -> Manifest:
        """The manifest of a channel known to exist (callers check first, with a message of their own)."""
        if self.manifest is None:
            raise RefusedError(f"channel {self.model}/{self.channel} does not exist", hint="publish to it first")
        return self.manifest


def read_state(storage: Any, model: str, channel: str, public_key: Any) -> ChannelState:
    """The channel's current manifest, verified with ``public_key``; repairs a signature a crash left behind."""
    path = manifest_path(model, channel)
    tag = storage.tag(path)
    raw = storage.read(path)
    if raw is None:
        return ChannelState(model, channel, None, None)
    sig = storage.read(path + ".sig") or b""
    if not keys.verify(public_key, raw, sig):
        unverified = claimed_key_id(raw)  # for the message and the rotation lookup only; never trusted
        ours = keys.key_id(public_key)
        if unverified and unverified != ours:
            from mobile_ml.publish.rotation import old_key_for

            old = old_key_for(storage, model, public_key, unverified)  # a rotation from the channel's key to ours?
            if old is None:
                raise RefusedError(
                    f"channel {model}/{channel} is signed by key {unverified[:16]}…, not by this key ({ours[:16]}…)",
                    hint="sign with the channel's key, or publish a rotation first: `mobile-ml keys rotate`",
                )
            public_key = old
            if keys.verify(old, raw, sig):
                return ChannelState(model, channel, mf.parse(raw, f"{storage.url}/{path}"), tag)
        repaired = _repair_signature(storage, model, channel, raw, public_key)
        if not repaired:
            raise InputFileError(
                f"the signature of {storage.url}/{path} does not verify",
                hint="the root was modified outside mobile-ml; run `mobile-ml release verify`",
            )
    return ChannelState(model, channel, mf.parse(raw, f"{storage.url}/{path}"), tag)


def _repair_signature(storage: Any, model: str, channel: str, raw: bytes, public_key: Any) -> bool:
    m = re.search(rb'"manifest_version":\s*(\d+)', raw)
    if not m:
        return False
    hist = history_path(model, channel, int(m.group(1)))
    if storage.read(hist) != raw:
        return False
    sig = storage.read(hist + ".sig") or b""
    if not keys.verify(public_key, raw, sig):
        return False
    storage.put(manifest_path(model, channel) + ".sig", sig)
    return True


def _rotated(storage: Any, manifest: Manifest, public_key: Any) -> bool:
    from mobile_ml.publish.rotation import old_key_for

    return old_key_for(storage, manifest.model, public_key, manifest.key_id) is not None


def next_manifest_version(storage: Any, state: ChannelState) -> int:
    """One above both the current manifest and any history entry (an aborted commit may have left one)."""
    highest = state.manifest_version
    for p in storage.list(f"{state.model}/history/{state.channel}"):
        name = p.rsplit("/", 1)[-1]
        if name.endswith(".json") and name[:-5].isdigit():
            highest = max(highest, int(name[:-5]))
    return highest + 1


def commit(
    storage: Any,
    state: ChannelState,
    private_key: Any,
    *,
    release: Release,
    fallback: Release | None,
    percent: float,
    salt: str,
    action: str,
    halted: bool = False,
    expires_days: float = mf.DEFAULT_EXPIRY_DAYS,
    now: datetime | None = None,
) -> Manifest:
    """Sign and make current a new manifest for ``state``'s channel; returns it."""
    kid = keys.key_id(private_key.public_key())
    old = state.manifest
    if old and old.key_id != kid and not _rotated(storage, old, private_key.public_key()):
        raise RefusedError(
            f"channel {state.model}/{state.channel} is signed by key {old.key_id[:16]}…, not by this key ({kid[:16]}…)",
            hint="sign with the channel's key",
        )
    version = next_manifest_version(storage, state)
    new = mf.build(
        model=state.model,
        channel=state.channel,
        manifest_version=version,
        key_id=kid,
        release=release,
        rollout_percent=percent,
        salt=salt,
        fallback=fallback,
        action=action,
        halted=halted,
        now=now,
        expires_days=expires_days,
    )
    data = mf.dumps(new)
    sig = keys.sign(private_key, data)
    hist = history_path(state.model, state.channel, version)
    try:
        if not storage.create(hist, data):
            raise ConcurrentUpdate("unreachable", hint="")
    except (ExistsDifferent, ConcurrentUpdate):
        raise ConcurrentUpdate(
            f"another publisher issued manifest_version {version} of {state.model}/"
            f"{state.channel} while this command ran; nothing of this command became current",
            hint="check `mobile-ml release history` and rerun",
        ) from None
    storage.create(hist + ".sig", sig)
    storage.replace(manifest_path(state.model, state.channel), data, state.tag)
    storage.put(manifest_path(state.model, state.channel) + ".sig", sig)
    return new


def history(storage: Any, model: str, channel: str, public_key: Any) -> list[dict[str, Any]]:
    """Every manifest issued on the channel, oldest first, each with whether its signature verifies (with
    ``public_key`` or a key linked to it by rotation statements)."""
    from mobile_ml.publish.rotation import trusted_keys, verify_any

    trusted = trusted_keys(storage, model, public_key)
    out = []
    for p in storage.list(f"{model}/history/{channel}"):
        if not p.endswith(".json"):
            continue
        raw = storage.read(p) or b""
        ok = verify_any(trusted, raw, storage.read(p + ".sig") or b"")
        try:
            m = mf.parse(raw, p)
        except InputFileError:
            out.append({"path": p, "signature_ok": ok, "damaged": True})
            continue
        out.append(
            {
                "manifest_version": m.manifest_version,
                "issued_at": mf.utc(m.issued_at),
                "action": m.action,
                "version": m.release.version,
                "percent": m.rollout.percent,
                "halted": m.rollout.halted,
                "fallback": m.fallback.version if m.fallback else None,
                "signature_ok": ok,
                "path": p,
            }
        )
    return out

"""Reading and committing a channel: the one place where manifests become current.

Layout of a publish root (all static files; ``docs/update-protocol.md`` is the contract):
    blobs/sha256/<hex>                              content-addressed, immutable: model.tflite, metadata.json
    <model>/releases/<version>.json                 release document, immutable
    <model>/history/<channel>/<manifest_version>.json (+ .sig)   every manifest the channel committed, immutable
    <model>/channels/<channel>.json (+ .sig)        the current signed manifest

Commit order: blobs and the release first (by the caller; unsigned, harmless while nothing names them). Then the
channel manifest by compare-and-swap: **the commit point**. Racing publishers read the same channel, build the same
manifest_version, and the swap lets exactly one through; the loser never persisted a signature, so no signed
manifest exists that the channel did not commit to (a hostile mirror has nothing newer to replay). After the swap:
the channel's signature, then the history copy (signature first, then the bytes; both create-only).

A crash at any point is repaired by the next command's ``read_state`` (``mobile_ml.publish.recover``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from mobile_ml.contracts import ContractError
from mobile_ml.contracts.capture import CapturePolicy
from mobile_ml.contracts.manifest import Manifest, Release
from mobile_ml.errors import InputFileError, UserError
from mobile_ml.publish import keys
from mobile_ml.publish import manifest as mf
from mobile_ml.publish.storage import ConcurrentUpdate
from mobile_ml.publish.trust import claimed_key_id


class RefusedError(UserError):
    """A release command that would break a rule of the channel (exit 2; nothing was written)."""


def manifest_path(model: str, channel: str) -> str:
    return f"{model}/channels/{channel}.json"


def history_path(model: str, channel: str, manifest_version: int) -> str:
    return f"{model}/history/{channel}/{manifest_version:08d}.json"


def history_numbers(storage: Any, model: str, channel: str) -> list[int]:
    """The manifest_versions that have a history file (bytes or signature), ascending."""
    found = set()
    for p in storage.list(f"{model}/history/{channel}"):
        name = p.rsplit("/", 1)[-1].removesuffix(".sig")
        if name.endswith(".json") and name[:-5].isdigit():
            found.add(int(name[:-5]))
    return sorted(found)


@dataclass(frozen=True)
class ChannelState:
    model: str
    channel: str
    manifest: Manifest | None  # verified; None: the channel has no committed manifest yet
    tag: str | None  # compare-and-swap token of the manifest file
    next_version: int = 1  # above the current manifest and every history number, fixed when the state was read

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
    """The channel's current manifest, verified with ``public_key``; repairs what a crashed command left behind.

    The next manifest_version is fixed here, from the channel and the history listing read now: two publishers that
    read the same channel pick the same number, and the channel's compare-and-swap picks the one that wins.
    """
    from mobile_ml.publish import recover

    path = manifest_path(model, channel)
    tag = storage.tag(path)
    raw = storage.read(path)
    numbers = history_numbers(storage, model, channel)
    floor = max(numbers, default=0)
    if raw is None:
        return ChannelState(model, channel, None, None, floor + 1)
    sig = storage.read(path + ".sig")
    manifest = _verified(storage, model, channel, raw, sig or b"", public_key)
    if manifest is None:
        manifest, tag = recover.restore_channel(storage, model, channel, raw, sig, tag, public_key, numbers)
    else:
        recover.complete_history(storage, manifest, raw, sig or b"")
    current = manifest.manifest_version if manifest else 0
    return ChannelState(model, channel, manifest, tag, max(current, floor) + 1)


def _verified(storage: Any, model: str, channel: str, raw: bytes, sig: bytes, public_key: Any) -> Manifest | None:
    """The channel's manifest if its signature verifies with our key (or the key a rotation handed over from)."""
    where = f"{storage.url}/{manifest_path(model, channel)}"
    if keys.verify(public_key, raw, sig):
        return mf.parse(raw, where)
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
        if keys.verify(old, raw, sig):
            return mf.parse(raw, where)
    return None


def _rotated(storage: Any, manifest: Manifest, public_key: Any) -> bool:
    from mobile_ml.publish.rotation import old_key_for

    return old_key_for(storage, manifest.model, public_key, manifest.key_id) is not None


class Keep:
    """``commit(capture=KEEP)``: the channel's current capture policy stays as it is."""


KEEP = Keep()


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
    capture: CapturePolicy | None | Keep = KEEP,
) -> Manifest:
    """Sign and make current a new manifest for ``state``'s channel; returns it. ``capture``: the channel's capture
    policy (``KEEP``: the one its current manifest has, so rollout, halt and refresh never switch capture on or off)."""
    from mobile_ml.publish import recover

    mf.check_expiry_days(expires_days)
    kid = keys.key_id(private_key.public_key())
    old = state.manifest
    if old and old.key_id != kid and not _rotated(storage, old, private_key.public_key()):
        raise RefusedError(
            f"channel {state.model}/{state.channel} is signed by key {old.key_id[:16]}…, not by this key ({kid[:16]}…)",
            hint="sign with the channel's key",
        )
    new = mf.build(
        model=state.model,
        channel=state.channel,
        manifest_version=state.next_version,
        key_id=kid,
        release=release,
        rollout_percent=percent,
        salt=salt,
        fallback=fallback,
        action=action,
        halted=halted,
        now=now,
        expires_days=expires_days,
        capture=(old.capture if old else None) if isinstance(capture, Keep) else capture,
    )
    data = mf.dumps(new)
    sig = keys.sign(private_key, data)  # kept in memory until the swap below has committed these bytes
    _check_as_device(data, sig, private_key.public_key(), state)
    path = manifest_path(state.model, state.channel)
    try:
        storage.replace(path, data, state.tag)
    except ConcurrentUpdate:
        raise ConcurrentUpdate(
            f"another publisher changed {state.model}/{state.channel} while this command ran "
            f"(both built manifest_version {state.next_version}); nothing of this command became current",
            hint="check `mobile-ml release history` and rerun",
        ) from None
    storage.put(path + ".sig", sig)
    recover.complete_history(storage, new, data, sig)
    return new


def _check_as_device(data: bytes, sig: bytes, public_key: Any, state: ChannelState) -> None:
    """Refuse to sign what a device would refuse: the built manifest through the client's own checks."""
    from mobile_ml.publish.trust import Rejected, check_manifest

    try:
        check_manifest(
            data,
            sig,
            public_key,
            now=datetime.now(timezone.utc),
            model=state.model,
            channel=state.channel,
            last_version=state.manifest_version or None,
        )
    except Rejected as e:
        raise RefusedError(
            f"devices would refuse this manifest ({e}); nothing was written",
            hint="check --expires-days and the release's fields",
        ) from None


def _lineage(release: Release, where: str) -> dict[str, Any] | None:
    """The release's lineage as recorded at publish (None before lineage existed, or if it is malformed: history
    shows what was issued; `release verify` names a malformed lineage as a problem)."""
    from mobile_ml.contracts.lineage import lineage_of

    try:
        found = lineage_of(release.metadata, f"{where}: release")
    except ContractError:
        return None
    return found.to_dict() if found else None


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
                "lineage": _lineage(m.release, p),
            }
        )
    return out

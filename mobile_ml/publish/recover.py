"""What the next command repairs after a publisher died mid-commit (threat 12 of UPDATE-THREATS.md).

The commit's writes (``channel.commit``) are: the channel manifest by compare-and-swap, its signature, the history
signature, the history bytes. A death after any of them leaves one of two states, both found by ``read_state``:

- the channel's bytes are not covered by its signature, which is still the one of the manifest before (death
  between the swap and the signature; devices refuse the pair and keep their model). The new manifest's signature
  died with the process, so nothing signed exists for those bytes: the channel is put back to the last committed
  manifest, whose signed copy is in history, and the next number is free to use again.
- the channel verifies but its history copy is missing or half written: it is copied from the channel.

A reader cannot tell a dead publisher from one between two writes, so the channel is only put back once its
manifest is older than ``COMMIT_GRACE_SECONDS``; before that the command stops with ``ConcurrentUpdate``.
"""

from __future__ import annotations

from typing import Any

from mobile_ml.contracts.manifest import Manifest
from mobile_ml.errors import InputFileError
from mobile_ml.publish import manifest as mf
from mobile_ml.publish.storage import ConcurrentUpdate, ExistsDifferent

COMMIT_GRACE_SECONDS = 60.0  # a live commit signs within milliseconds of its swap; a minute is a dead one


def complete_history(storage: Any, manifest: Manifest, raw: bytes, sig: bytes) -> None:
    """Make sure the committed ``manifest`` (its exact bytes and signature) is in history: signature first, so a
    death between the two leaves no unsigned history entry, then the bytes."""
    from mobile_ml.publish.channel import history_path

    hist = history_path(manifest.model, manifest.channel, manifest.manifest_version)
    if storage.read(hist) == raw and storage.read(hist + ".sig") is not None:
        return
    try:
        storage.create(hist + ".sig", sig)
        storage.create(hist, raw)
    except ExistsDifferent:
        pass  # another document holds the number (a root written by an older mobile-ml): `release verify` names it


def restore_channel(
    storage: Any,
    model: str,
    channel: str,
    raw: bytes,
    sig: bytes | None,
    tag: str | None,
    public_key: Any,
    numbers: list[int],
) -> tuple[Manifest | None, str | None]:
    """The channel's state when its bytes do not verify: put back after a dead commit, or refused as damaged."""
    from mobile_ml.publish.channel import manifest_path

    path = manifest_path(model, channel)
    where = f"{storage.url}/{path}"
    copied = _signature_from_history(storage, model, channel, raw, public_key)
    if copied is not None:
        return copied, tag
    committed = _history_signed_by(storage, model, channel, sig, public_key, numbers) if sig else None
    if committed is None and (sig is not None or _signed_history(storage, model, channel, numbers)):
        raise InputFileError(
            f"the signature of {where} does not verify",
            hint="the root was modified outside mobile-ml; run `mobile-ml release verify`",
        )
    age = storage.age(path)
    if age is not None and age < COMMIT_GRACE_SECONDS:
        raise ConcurrentUpdate(
            f"{where} was written {age:.0f} s ago and is not signed yet: another publisher is committing",
            hint=f"rerun in a minute; if that publisher died, the next command after {COMMIT_GRACE_SECONDS:.0f} s "
            "puts the channel back to its last signed manifest",
        )
    if committed is None:
        return None, tag  # the channel's first commit died before its signature: the channel never existed
    h_raw, manifest = committed
    storage.replace(path, h_raw, tag)  # its signature is already beside it: the pair verifies again
    return manifest, storage.tag(path)


def _signature_from_history(storage: Any, model: str, channel: str, raw: bytes, public_key: Any) -> Manifest | None:
    """The channel's bytes are a committed history entry whose signature verifies: put that signature back beside
    them (a channel signature lost or overwritten after the history copy was made)."""
    import re

    from mobile_ml.publish.channel import history_path, manifest_path
    from mobile_ml.publish.rotation import trusted_keys, verify_any

    m = re.search(rb'"manifest_version":\s*(\d{1,16})[,\n]', raw)
    if not m:
        return None
    hist = history_path(model, channel, int(m.group(1)))
    sig = storage.read(hist + ".sig")
    if sig is None or storage.read(hist) != raw or not verify_any(trusted_keys(storage, model, public_key), raw, sig):
        return None
    storage.put(manifest_path(model, channel) + ".sig", sig)
    return mf.parse(raw, f"{storage.url}/{hist}")


def _history_signed_by(
    storage: Any, model: str, channel: str, sig: bytes | None, public_key: Any, numbers: list[int]
) -> tuple[bytes, Manifest] | None:
    """The history entry whose signature is the channel's current ``.sig`` (the manifest the channel held before)."""
    from mobile_ml.publish.channel import history_path
    from mobile_ml.publish.rotation import trusted_keys, verify_any

    trusted = trusted_keys(storage, model, public_key)
    for n in reversed(numbers):
        hist = history_path(model, channel, n)
        if storage.read(hist + ".sig") != sig:
            continue
        h_raw = storage.read(hist)
        if h_raw is not None and sig is not None and verify_any(trusted, h_raw, sig):
            return h_raw, mf.parse(h_raw, f"{storage.url}/{hist}")
        return None
    return None


def _signed_history(storage: Any, model: str, channel: str, numbers: list[int]) -> bool:
    """Whether the channel has committed anything (then a missing channel signature is damage, not a first commit)."""
    from mobile_ml.publish.channel import history_path

    return any(storage.read(history_path(model, channel, n) + ".sig") is not None for n in numbers)

"""``mobile-ml release status``: each channel's signed manifest beside what the fleet reports running.

Read-only: the manifest is read as the root holds it, never repaired (``channel.read_state`` would complete a
crashed command's history; a status must not write). With a public key the signature is checked as a device checks
it (the key, or a key a rotation statement links to it); without one the manifest is shown as unchecked.

Devices are counted by ``deliver.fleet``: each install once, at its latest report, on the channel that report
names. Update failures count from the moment the current manifest was issued, so a rollback starts its channel's
rate afresh. The drift flag is ``mobile-ml monitor``'s verdict for the channel's current version.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mobile_ml.contracts.manifest import Manifest, format_time
from mobile_ml.contracts.release_status import (
    ChannelStatus,
    DayAdoption,
    ReleaseStatus,
    Signature,
    VersionCount,
)
from mobile_ml.deliver import fleet
from mobile_ml.deliver.telemetry_store import describe
from mobile_ml.errors import InputFileError, MobileMLError
from mobile_ml.publish import manifest as mf
from mobile_ml.publish.channel import manifest_path
from mobile_ml.publish.storage import open_root

# (telemetry, root, model, channel, version) → (drift or None, note)
DriftCheck = Callable[[str, str, str, str, str], tuple[bool | None, str]]


def drift_flag(db: str, root: str, model: str, channel: str, version: str) -> tuple[bool | None, str]:
    """`mobile-ml monitor`'s drift verdict for one channel's version; None when monitoring has none to give."""
    try:
        from mobile_ml.monitor.report import monitor  # type: ignore[import-not-found,unused-ignore]
    except ModuleNotFoundError as e:
        # stand-in: until loop-monitor's mobile_ml.monitor.report is merged, the drift column says n/a
        if e.name != "mobile_ml.monitor.report":
            raise
        return None, "monitoring is not available in this mobile-ml"
    try:
        report = monitor(db, root=root, model=model, channel=channel, version=version)
    except MobileMLError as e:  # no baseline, no aggregates yet: the status still shows everything else
        return None, e.message
    return bool(report.drift), "drift found: see `mobile-ml monitor`" if report.drift else "no drift"


def channel_names(storage: Any, model: str) -> list[str]:
    """The channels of ``model`` that have a manifest in the root, by name."""
    found = set()
    for p in storage.list(f"{model}/channels"):
        name = p.rsplit("/", 1)[-1]
        if name.endswith(".json") and p == manifest_path(model, name[:-5]):
            found.add(name[:-5])
    return sorted(found)


def release_status(
    root: str,
    model: str,
    db: str | Path,
    *,
    public_key: Any = None,
    now: datetime | None = None,
    drift: DriftCheck = drift_flag,
) -> ReleaseStatus:
    """The overview of ``model`` in ``root`` with the fleet in telemetry store ``db`` (SQLite path or URL)."""
    now = now or datetime.now(timezone.utc)
    storage = open_root(root)
    names = channel_names(storage, model)
    if not names:
        raise InputFileError(
            f"model {model} has no channel in {storage.url}",
            hint="check the name and --root; `mobile-ml publish` creates a model's first channel",
        )
    reports = fleet.read_reports(db, model=model)
    running = list(fleet.latest(reports).values())
    channels = []
    for name in names:
        m, signature = _manifest(storage, model, name, public_key)
        flag, note = drift(str(db), root, model, name, m.release.version)
        channels.append(_channel(m, signature, [r for r in reports if r.channel == name], running, now, flag, note))
    return ReleaseStatus(
        model=model,
        root=storage.url,
        telemetry=describe(db),
        generated_at=now.replace(microsecond=0),
        channels=tuple(channels),
        unassigned_devices=sum(r.channel is None for r in running),
    )


def _manifest(storage: Any, model: str, channel: str, public_key: Any) -> tuple[Manifest, Signature]:
    from mobile_ml.publish.rotation import trusted_keys, verify_any

    path = manifest_path(model, channel)
    raw = storage.read(path) or b""
    signature = Signature.UNCHECKED
    if public_key is not None:
        ok = verify_any(trusted_keys(storage, model, public_key), raw, storage.read(path + ".sig") or b"")
        signature = Signature.VERIFIED if ok else Signature.FAILED
    return mf.parse(raw, f"{storage.url}/{path}"), signature


def _shares(counts: Counter[str]) -> tuple[VersionCount, ...]:
    total = sum(counts.values())
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))  # most devices first
    return tuple(VersionCount(v, n, n / total) for v, n in ordered)


def _channel(
    m: Manifest,
    signature: Signature,
    reports: list[fleet.Report],
    running: list[fleet.Report],
    now: datetime,
    drift: bool | None,
    note: str,
) -> ChannelStatus:
    since = format_time(m.issued_at)  # received_at has the same form: the strings compare as times
    updates = Counter(r.event for r in reports if r.received_at >= since)
    applied, failed = updates["update_applied"], updates["update_failed"]
    return ChannelStatus(
        channel=m.channel,
        manifest_version=m.manifest_version,
        version=m.release.version,
        action=m.action,
        issued_at=m.issued_at,
        expires=m.expires,
        expired=m.expires <= now,
        rollout_percent=m.rollout.percent,
        halted=m.rollout.halted,
        fallback=m.fallback.version if m.fallback else None,
        signature=signature,
        devices=_shares(Counter(r.version for r in running if r.channel == m.channel)),
        adoption=tuple(DayAdoption(day, sum(c.values()), _shares(c)) for day, c in fleet.by_day(reports)),
        updates_applied=applied,
        updates_failed=failed,
        failure_rate=failed / (applied + failed) if applied + failed else None,
        drift=drift,
        drift_note=note,
    )

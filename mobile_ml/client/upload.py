"""The aggregates part of ``device sync``: upload the counts of each model version this device ran since the last
upload (``POST /v1/aggregates``) and forget them only once the server answered 202.

The counts live in ``<state>/aggregates/<model>--<channel>--<version>.json`` (``monitor.aggregate.state_file``),
counted against the baseline the release shipped (``versions/<version>/baseline.json``, or the bundle's). Each file
goes through the Aggregator's two phases: ``snapshot()`` (saved before it is sent, so a retry sends the same id and
counts), then ``acknowledge(id)`` after the 202. A refused, failed or timed-out upload keeps the snapshot for the next
sync; inferences meanwhile go into the new window. The server stores a snapshot once per install, so a 202 that got
lost costs nothing but a second upload. Nothing here ever fails the sync: the result says what happened.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mobile_ml.client.bundled import bundled_model
from mobile_ml.client.download import Failed, Http, status
from mobile_ml.contracts import document_dict, read_document
from mobile_ml.contracts.aggregates import Aggregates
from mobile_ml.contracts.baseline import Baseline
from mobile_ml.contracts.manifest import SEMVER
from mobile_ml.errors import MobileMLError
from mobile_ml.monitor.aggregate import Aggregator, state_file
from mobile_ml.monitor.baseline import BASELINE_FILE
from mobile_ml.publish.trust import Rejected

if TYPE_CHECKING:
    from mobile_ml.client.sync import DeviceConfig

ENDPOINT = "v1/aggregates"
INSTALL_HEADER = "X-Install-Id-Hash"  # = deliver.aggregates_store.INSTALL_HEADER (the client imports no server code)
MAX_REPLY = 64 * 1024


class UploadOutcome(str, enum.Enum):
    UPLOADED = "uploaded"  # every snapshot with counts was stored (202) and forgotten here
    NOTHING = "nothing"  # no counts since the last upload
    KEPT = "kept"  # at least one snapshot was not stored: it stays for the next sync
    OFF = "off"  # telemetry is off (--no-telemetry): nothing leaves the device


@dataclass(frozen=True)
class UploadResult:
    outcome: UploadOutcome
    snapshots: int = 0  # stored by the server during this sync
    observations: int = 0  # inferences counted in them
    kept: int = 0  # snapshots left for the next sync
    detail: str = ""  # why the last kept one was kept

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value,
            "snapshots": self.snapshots,
            "observations": self.observations,
            "kept": self.kept,
            "detail": self.detail,
        }


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the aggregates file of one version for a read-modify-write: ``device run`` (counting) and ``device
    sync`` (snapshot, acknowledge) are separate processes, and an interleaved save would drop a snapshot or a
    window. The lock is a sidecar (``.<name>.lock``) because the file itself is replaced on every save."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def device_baseline(cfg: DeviceConfig, version: str) -> Baseline | None:
    """The baseline a version counted against: the installed copy, or the bundle's when that is the version."""
    candidates = [cfg.state_dir / "versions" / version / BASELINE_FILE]
    bundle = bundled_model(cfg.bundled) if cfg.bundled else None
    if bundle is not None and bundle[2] == version:
        candidates.append(bundle[0] / BASELINE_FILE)
    for path in candidates:
        if path.is_file():
            return read_document(Baseline, path)
    return None


@dataclass(frozen=True)
class Pending:
    """One version's aggregates file and the baseline it counts against (None: not on the device; the error
    message when it cannot be read)."""

    version: str
    path: Path
    baseline: Baseline | None
    problem: str = ""


def pending(cfg: DeviceConfig) -> list[Pending]:
    """Every aggregates file of this model and channel, with its baseline read now: ``sync`` calls this before the
    update check, which may delete the version directory of an old version whose counts are still to be sent."""
    if not cfg.send_telemetry:
        return []
    prefix = f"{cfg.model}--{cfg.channel}--"
    out = []
    for path in sorted((cfg.state_dir / "aggregates").glob(f"{prefix}*.json")):
        version = path.name[len(prefix) : -len(".json")]
        # "a--b" is a valid name, so a prefix match alone could be another model's or channel's file
        if not (re.fullmatch(SEMVER, version) and state_file(cfg.state_dir, cfg.model, cfg.channel, version) == path):
            continue
        try:
            out.append(Pending(version, path, device_baseline(cfg, version)))
        except (MobileMLError, OSError) as e:
            out.append(Pending(version, path, None, getattr(e, "message", None) or str(e)))
    return out


def upload_aggregates(cfg: DeviceConfig, conn: Http, files: list[Pending]) -> UploadResult:
    """Upload the pending counts of ``files`` within the check's deadline (``conn``); see the module docstring."""
    if not cfg.send_telemetry:
        return UploadResult(UploadOutcome.OFF)
    stored = observations = kept = 0
    detail = ""
    for p in files:
        try:
            if p.baseline is None:
                kept, detail = kept + 1, f"{p.version}: {p.problem or f'no {BASELINE_FILE} on the device'}"
                continue
            with locked(p.path):
                snap = _open(cfg, p).snapshot()
            if snap is None or snap.snapshot_id is None:
                continue
            why = _post(cfg, conn, snap)
            if why is not None:
                kept, detail = kept + 1, f"{p.version}: {why} (counts kept)"
                continue
            with locked(p.path):  # reopened: `device run` may have counted into the new window meanwhile
                _open(cfg, p).acknowledge(snap.snapshot_id)
            stored, observations = stored + 1, observations + snap.count
        except (MobileMLError, OSError) as e:  # a damaged file is reported, never fails the sync
            kept, detail = kept + 1, f"{p.version}: {getattr(e, 'message', None) or e}"
    if kept:
        return UploadResult(UploadOutcome.KEPT, stored, observations, kept, detail)
    return UploadResult(UploadOutcome.UPLOADED if stored else UploadOutcome.NOTHING, stored, observations)


def _open(cfg: DeviceConfig, p: Pending) -> Aggregator:
    assert p.baseline is not None
    return Aggregator.open(p.path, p.baseline, model=cfg.model, version=p.version, channel=cfg.channel)


def _post(cfg: DeviceConfig, conn: Http, snap: Aggregates) -> str | None:
    """None when the server stored the snapshot (202), else why not."""
    import json

    body = json.dumps(document_dict(snap), allow_nan=False).encode()
    headers = {
        "Content-Type": "application/json",
        INSTALL_HEADER: hashlib.sha256(cfg.install_id.encode()).hexdigest(),
    }
    if cfg.telemetry_token:
        headers["Authorization"] = f"Bearer {cfg.telemetry_token}"
    try:
        resp = conn.post(ENDPOINT, body, headers)
    except Failed as e:  # refused, reset, timed out, over the deadline, or an HTTP error status
        return e.reason
    try:
        code = status(resp)
        with contextlib.suppress(Failed, Rejected, ValueError):  # the 202 is the answer; the reply is not used
            conn.read_capped(resp, MAX_REPLY, "aggregates reply")
    finally:
        resp.close()
    return None if code == 202 else f"http_{code}"

"""The reference device client: section 5 of ``docs/update-protocol.md``, step by step.

One check: fetch and verify the channel's manifest (``_fetch_manifest``), pick a release by rollout, check it fits
the device (``client/fits.py``), download, verify and health-check its files, and switch (``_install_release``).
The state directory's layout is in ``client/state.py``. On any failure the current model stays, the reason is
recorded in state.json and sent as telemetry.

Before anything else a check looks at the device itself: a damaged state.json is rebuilt from its backup (neither
readable: the check fails closed, because an empty state would accept rolled-back manifests), and installed files
that no longer match their release are downloaded again, as if the device ran nothing. Each repair is named in
``SyncResult.repairs``.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mobile_ml.client import capture, inference_reports
from mobile_ml.client import state as device_state
from mobile_ml.client.bundled import bundled_model
from mobile_ml.client.download import Failed, Http, download, sendable_etag, status
from mobile_ml.client.fits import check_fits, litert_version
from mobile_ml.client.state import current_model as current_model  # re-exported: the app's view
from mobile_ml.client.upload import UploadResult, upload_aggregates
from mobile_ml.client.upload import pending as pending_aggregates
from mobile_ml.contracts import ContractError, parse_document
from mobile_ml.contracts.manifest import Manifest, Refusal, Release
from mobile_ml.contracts.model_metadata import ModelMetadata
from mobile_ml.contracts.state import ChannelSeen, DeviceState, Failure, LastCheck, Outcome, Repair
from mobile_ml.errors import InputFileError
from mobile_ml.publish import keys
from mobile_ml.publish import manifest as mf
from mobile_ml.publish.trust import Rejected, check_manifest, claimed_key_id, select_release

MAX_SIGNATURE_BYTES = 1024
MAX_TELEMETRY_REPLY = 64 * 1024  # the reply is not used; reading a little lets the connection close cleanly
SKIPS = (Failure.APP_TOO_OLD.value, Failure.RUNTIME.value, Failure.NO_SPACE.value)


@dataclass
class DeviceConfig:
    server: str  # base URL of the publish root, e.g. http://127.0.0.1:8000/
    model: str
    channel: str
    public_key: Any  # the pinned key (cryptography public key)
    state_dir: Path
    install_id: str
    app_version: str
    timeout: float = 10.0  # seconds, per connection and per read
    deadline: float = 120.0  # seconds for every request of one check together (telemetry included)
    min_rate: float = 1024.0  # bytes/s a transfer must average over each rate_window, else it is cut off
    rate_window: float = 10.0  # seconds
    send_telemetry: bool = True
    now: Callable[[], datetime] = field(default=lambda: datetime.now(timezone.utc))
    device_model: str = "reference-client"
    bundled: Path | None = None  # the model shipped with the app (bundle.json + files): run when nothing else is
    runtime_version: str | None = field(default_factory=litert_version)  # checked against runtime.min_version
    telemetry_token: str | None = None  # the server's --telemetry-token, sent as `Authorization: Bearer <token>`
    capture_consent: bool | None = None  # the user's capture choice to record (None: unchanged; client/capture.py)

    @property
    def channel_key(self) -> str:
        return f"{self.model}/{self.channel}"


@dataclass(frozen=True)
class SyncResult:
    outcome: Outcome
    current: str | None
    previous: str | None = None
    reason: str | None = None  # a Refusal or Failure value, or http_<status>
    detail: str = ""
    manifest_version: int | None = None
    repairs: tuple[Repair, ...] = ()  # what the check found damaged on the device and mended
    bundled: str | None = None  # the bundled model's version, when the app runs it (nothing downloaded is healthy)
    aggregates: UploadResult | None = None  # the counts uploaded this check (None: not tried, the state was unread)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "mobile_ml.sync_result",
            "schema_version": 1,
            "outcome": self.outcome.value,
            "current": self.current,
            "previous": self.previous,
            "reason": self.reason,
            "detail": self.detail,
            "manifest_version": self.manifest_version,
            "repairs": [r.value for r in self.repairs],
            "bundled": self.bundled,
            "aggregates": None if self.aggregates is None else self.aggregates.to_dict(),
        }


def sync(cfg: DeviceConfig) -> SyncResult:
    """One update check. Never raises for network, server, content or device-state problems: they are results."""
    now = cfg.now()  # one clock reading for the whole check
    if cfg.capture_consent is not None:
        capture.set_consent(cfg.state_dir, cfg.capture_consent)
    conn = Http(cfg.server, cfg.timeout, cfg.deadline, cfg.min_rate, cfg.rate_window)
    try:
        state, repairs, note = _open_state(cfg.state_dir)
    except Failed as e:  # fail closed: no check runs on a state we cannot read, and the files stay as they are
        whole = device_state.installed_problem(cfg.state_dir) is None
        failed = _as_run(cfg, SyncResult(Outcome.FAILED, None, None, e.reason, e.detail), whole)
        if cfg.send_telemetry:
            _telemetry(cfg, conn, failed)
        return failed
    device_state.clean_leftovers(cfg.state_dir)
    installed = state.current is not None or (cfg.state_dir / device_state.POINTER).exists()
    damaged = installed and device_state.installed_problem(cfg.state_dir) is not None
    result: SyncResult | None = None
    counted = pending_aggregates(cfg)  # before the check, which may remove an old version and its baseline
    try:
        result, state = _check(cfg, conn, state, now, None if damaged else state.current)
        changed = damaged or not installed or result.outcome == Outcome.INSTALLED  # else: whole, as checked above
        whole = device_state.installed_problem(cfg.state_dir) is None if changed else True
        if damaged and whole:
            repairs = (*repairs, Repair.MODEL_REINSTALLED)
        result = _as_run(cfg, replace(result, repairs=repairs, detail=result.detail or note), whole)
        # After the update check, within its deadline: an upload that does not fit is kept for the next sync.
        result = replace(result, aggregates=upload_aggregates(cfg, conn, counted))
        return result
    finally:
        last = LastCheck(now, result.outcome, result.reason) if result else LastCheck(now, Outcome.ERROR)
        device_state.save(cfg.state_dir, replace(state, last_check=last))
        if cfg.send_telemetry and result is not None:
            _telemetry(cfg, conn, result)
        if result is not None:
            capture.upload(cfg.state_dir, conn, cfg.telemetry_token)  # only with consent and a policy that is on


def _as_run(cfg: DeviceConfig, result: SyncResult, whole: bool) -> SyncResult:
    """The result as the app will run it: no current version when its files are not ``whole``, and the bundled
    model when nothing downloaded is healthy."""
    if whole:
        return result
    bundle = bundled_model(cfg.bundled) if cfg.bundled else None
    return replace(result, current=None, bundled=bundle[2] if bundle else None)


def _open_state(state_dir: Path) -> tuple[DeviceState, tuple[Repair, ...], str]:
    """The state, what had to be repaired to read it, and a note saying what was damaged."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        staging = state_dir / "staging"
        repairs: tuple[Repair, ...] = ()
        note = ""
        if staging.exists() and not staging.is_dir():  # only resumable partial downloads live here
            device_state.set_aside(staging)
            repairs, note = (Repair.STATE_REBUILT,), f"{staging} was not a directory: recreated"
        staging.mkdir(exist_ok=True)
        state, rebuilt = device_state.load(state_dir)
    except ContractError as e:
        raise Failed(Failure.STATE_UNREADABLE.value, e.message) from None
    except OSError as e:
        raise Failed(Failure.STATE_UNREADABLE.value, f"{state_dir}: {e.strerror or e}") from None
    if rebuilt:
        return state, (Repair.STATE_REBUILT,), rebuilt
    return state, repairs, note


def _check(
    cfg: DeviceConfig, conn: Http, state: DeviceState, now: datetime, running: str | None
) -> tuple[SyncResult, DeviceState]:
    """The check proper: the result, and the state to keep (unchanged unless the check succeeded). ``running`` is
    the installed version when its files are whole, None when they must be downloaded again."""
    here, before = running, state.previous
    try:
        fetched = _fetch_manifest(cfg, conn, state, now, running)
        if fetched is None:
            seen = state.channels.get(cfg.channel_key)
            version = seen.manifest_version if seen else None
            return SyncResult(Outcome.NOT_MODIFIED, here, before, manifest_version=version), state
        m, accepted, key = fetched
        capture.note_manifest(
            cfg.state_dir, model=cfg.model, channel=cfg.channel, install_id=cfg.install_id, policy=m.capture
        )
        trusted_b64 = base64.b64encode(keys.public_der(key)).decode()
        release = select_release(m, cfg.install_id, here)
        if release is None or release.version == here:
            channels = {**state.channels, cfg.channel_key: replace(accepted, current=here)}
            new = replace(state, channels=channels, trusted_key_b64=trusted_b64)
            return SyncResult(Outcome.UP_TO_DATE, here, before, manifest_version=m.manifest_version), new
        # a repair of the running version keeps its previous; a damaged version is nobody's previous
        prev = before if release.version == state.current or here is None else here
        _check_fits(cfg, release, state)
        _install_release(cfg, conn, release, keep={prev})
        channels = {**state.channels, cfg.channel_key: replace(accepted, current=release.version)}
        new = replace(state, channels=channels, trusted_key_b64=trusted_b64, current=release.version, previous=prev)
        return SyncResult(Outcome.INSTALLED, release.version, prev, manifest_version=m.manifest_version), new
    except Rejected as e:
        return SyncResult(Outcome.REJECTED, here, before, e.reason.value, e.detail), state
    except Failed as e:
        outcome = Outcome.SKIPPED if e.reason in SKIPS else Outcome.FAILED
        return SyncResult(outcome, here, before, e.reason, e.detail), state
    except InputFileError as e:  # a damaged model LiteRT cannot load is a failed update, not a crashed app
        return SyncResult(Outcome.FAILED, here, before, Failure.HEALTH_CHECK.value, e.message), state


def _fetch_manifest(
    cfg: DeviceConfig, conn: Http, state: DeviceState, now: datetime, running: str | None
) -> tuple[Manifest, ChannelSeen, Any] | None:
    """The channel's manifest, verified and checked against what this device accepted before; None on a 304."""
    path = f"{cfg.model}/channels/{cfg.channel}.json"
    seen = state.channels.get(cfg.channel_key)  # versions are per channel; a device may switch channels
    # The 304 shortcut only holds while the model running is still the one this channel's manifest chose.
    fresh = seen is not None and seen.manifest_etag and running and seen.current == running
    resp = conn.open(path, {"If-None-Match": seen.manifest_etag} if fresh and seen and seen.manifest_etag else {})
    if status(resp) == 304:
        return None
    for attempt in (1, 2):  # manifest and signature are two files: a reader can fall between the writes
        raw = conn.read_capped(resp, mf.MAX_MANIFEST_BYTES, "manifest")
        etag = resp.headers.get("ETag")
        sig = conn.read_capped(conn.open(path + ".sig"), MAX_SIGNATURE_BYTES, "signature")
        key = _signing_key(conn, cfg, state, raw)
        try:
            m = check_manifest(
                raw,
                sig,
                key,
                now=now,
                model=cfg.model,
                channel=cfg.channel,
                last_version=seen.manifest_version if seen else None,
                last_sha256=seen.manifest_sha256 if seen else None,
            )
        except Rejected as e:
            if e.reason != Refusal.BAD_SIGNATURE or attempt == 2:
                raise
            resp = conn.open(path)
            continue
        etag = etag if etag and sendable_etag(etag) else None  # it goes back in a header next time
        return m, ChannelSeen(m.manifest_version, hashlib.sha256(raw).hexdigest(), etag), key
    raise AssertionError("unreachable: the second attempt returns or raises")


def _signing_key(conn: Http, cfg: DeviceConfig, state: DeviceState, raw: bytes) -> Any:
    """The trusted key, or the key a rotation statement signed by it names (followed one step per check)."""
    from mobile_ml.publish.rotation import MAX_STATEMENT_BYTES, check_statement, load_b64_key, statement_path

    # The key this device trusts now: the pinned one, or the last one a verified rotation handed over to.
    trusted = load_b64_key(state.trusted_key_b64) if state.trusted_key_b64 else cfg.public_key
    claimed = claimed_key_id(raw)
    if not claimed or claimed == keys.key_id(trusted):
        return trusted
    try:
        path = statement_path(cfg.model, claimed)
        data = conn.read_capped(conn.open(path), MAX_STATEMENT_BYTES, "key rotation")
        sig = conn.read_capped(conn.open(path + ".sig"), MAX_SIGNATURE_BYTES, "key rotation signature")
    except (Failed, Rejected):
        return trusted  # no statement: the manifest will fail verification with the trusted key
    new = check_statement(data, sig, trusted, model=cfg.model, new_key_id=claimed)
    return new if new is not None else trusted


def _check_fits(cfg: DeviceConfig, release: Release, state: DeviceState) -> None:
    """Skip (not fail) a release this device cannot take: app too old, another runtime, too little space."""
    size = len(json.dumps(state.to_dict())) + 1024  # the state grows by one check's record at most
    check_fits(
        release,
        app_version=cfg.app_version,
        runtime_version=cfg.runtime_version,
        state_dir=cfg.state_dir,
        state_size=size,
    )


def _install_release(cfg: DeviceConfig, conn: Http, release: Release, keep: set[str | None]) -> None:
    """Download and verify every file, health-check the model, then switch to it. A full disk at any point is a
    ``no_space`` skip, with nothing half-written left under versions/."""
    from mobile_ml.export.metadata import health_check

    staging = cfg.state_dir / "staging"
    try:
        files = {f.name: download(conn, f, staging) for f in release.files}  # a cut download stays, to resume
    except OSError as e:
        raise _local_failure(e) from None
    try:
        try:
            meta = parse_document(ModelMetadata, files["metadata.json"], where=f"{release.version}/metadata.json")
        except ContractError as e:
            raise Failed(Failure.HEALTH_CHECK.value, e.message) from None
        health = health_check(files["model.tflite"], meta, f"{release.version}/model.tflite")
        if not health.ok:
            raise Failed(Failure.HEALTH_CHECK.value, health.detail)
        try:
            device_state.install_version(cfg.state_dir, release, files, keep=keep)
        except OSError as e:
            raise _local_failure(e) from None
    finally:  # verified files are not kept for another try: installed, or known not to work
        for f in release.files:
            for suffix in (".part", ".etag"):
                (staging / f"{f.sha256}{suffix}").unlink(missing_ok=True)


def _local_failure(e: OSError) -> Exception:
    """A full disk (or quota) while writing is a no_space skip; any other local write error stays an error."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return Failed(Failure.NO_SPACE.value, f"the disk filled up while writing: {e.filename or ''}".rstrip(": "))
    return e


def _telemetry(cfg: DeviceConfig, conn: Http, result: SyncResult) -> None:
    """Best-effort: a refused, broken, endless or failing reply never affects the model or the check's result.
    The reply is not used; it is read up to a cap (so the connection can close cleanly) within the deadline.
    The inference reports ``device run`` queued go first, and leave the queue once the server took them."""
    kind = {Outcome.INSTALLED: "update_applied", Outcome.REJECTED: "update_failed", Outcome.FAILED: "update_failed"}
    device = {
        "install_id_hash": hashlib.sha256(cfg.install_id.encode()).hexdigest(),
        "model": cfg.model,
        "app_version": cfg.app_version,
        "device_model": cfg.device_model,
        "channel": cfg.channel,
    }
    queued = inference_reports.pending(cfg.state_dir)
    runs = [{**device, "event": "inference", **e.to_dict()} for e in queued.events]
    check = {**device, "version": result.current or "none", "event": kind.get(result.outcome, "update_check")}
    body = json.dumps({"events": [*runs, {**check, "error_code": result.reason}]}).encode()
    try:
        headers = {"Content-Type": "application/json"}
        if cfg.telemetry_token:
            headers["Authorization"] = f"Bearer {cfg.telemetry_token}"
        resp = conn.post("v1/telemetry", body, headers)
        try:
            conn.read_capped(resp, MAX_TELEMETRY_REPLY, "telemetry reply")
        finally:
            resp.close()
        if 200 <= status(resp) < 300 and queued.events:
            inference_reports.forget(cfg.state_dir, queued)
    except (Failed, Rejected, OSError, ValueError):
        pass

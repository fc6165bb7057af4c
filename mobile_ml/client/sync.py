"""The reference device client: section 5 of ``docs/update-protocol.md``, step by step.

State directory (everything a device keeps):
    state.json              per model/channel: last accepted manifest (version, sha256, ETag); the trusted key;
                            current and previous release; last check
    versions/<version>/     model.tflite + metadata.json of the current and the previous release
    current.json            the pointer the app reads: which version directory is live (fsync + atomic rename)
    staging/                partial downloads (<sha256>.part + .etag), removed once installed

On any failure the current model stays, the reason is recorded in state.json and sent as telemetry.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mobile_ml.contracts import ContractError, parse_document, read_document
from mobile_ml.contracts.model_metadata import ModelMetadata
from mobile_ml.publish import keys
from mobile_ml.publish import manifest as mf
from mobile_ml.publish.trust import Rejected, check_file, check_manifest, claimed_key_id, select_release

CHUNK = 64 * 1024
MAX_SIGNATURE_BYTES = 1024


@dataclass
class DeviceConfig:
    server: str  # base URL of the publish root, e.g. http://127.0.0.1:8000/
    model: str
    channel: str
    public_key: Any  # the pinned key (cryptography public key)
    state_dir: Path
    install_id: str
    app_version: str
    timeout: float = 10.0
    send_telemetry: bool = True
    now: Callable[[], datetime] = field(default=lambda: datetime.now(timezone.utc))
    device_model: str = "reference-client"


@dataclass
class SyncResult:
    outcome: str  # installed | up_to_date | not_modified | skipped | rejected | failed
    current: str | None
    previous: str | None = None
    reason: str | None = None  # a protocol reason code, or network / http_<status> / health_check / no_space ...
    detail: str = ""
    manifest_version: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"schema": "mobile_ml.sync_result", "schema_version": 1, **self.__dict__}


class Failed(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_state(state_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((state_dir / "state.json").read_text())
    except (OSError, ValueError):
        return {}


def current_model(state_dir: Path) -> tuple[Path, ModelMetadata] | None:
    """The live version directory and its metadata, as the app would read them."""
    try:
        pointer = json.loads((state_dir / "current.json").read_text())
        vdir = state_dir / "versions" / pointer["version"]
        return vdir, read_document(ModelMetadata, vdir / "metadata.json")
    except (OSError, ValueError, KeyError, ContractError):
        return None


class _Http:
    def __init__(self, base: str, timeout: float) -> None:
        self.base = base if base.endswith("/") else base + "/"
        self.timeout = timeout

    def open(self, path: str, headers: dict[str, str] | None = None):
        req = urllib.request.Request(self.base + path, headers=headers or {})
        try:
            return urllib.request.urlopen(req, timeout=self.timeout)
        except urllib.error.HTTPError as e:
            if e.code in (304, 416):
                return e
            raise Failed(f"http_{e.code}", f"{path}: HTTP {e.code}") from None
        except (urllib.error.URLError, TimeoutError, OSError, http.client.HTTPException) as e:
            raise Failed("network", f"{path}: {getattr(e, 'reason', e)}") from None

    def read_capped(self, resp, cap: int, what: str) -> bytes:
        try:
            data = resp.read(cap + 1)
        except (TimeoutError, OSError, http.client.HTTPException) as e:
            raise Failed("network", f"{what}: {e}") from None
        if len(data) > cap:
            raise Rejected("too_large", f"{what} is over {cap} bytes")
        return data


def _download(http: _Http, entry: dict[str, Any], staging: Path) -> bytes:
    """Resumable download of one signed file; never reads past its signed length; returns verified bytes."""
    part = staging / f"{entry['sha256']}.part"
    etag_file = staging / f"{entry['sha256']}.etag"
    length = int(entry["length"])
    for attempt in (1, 2):  # a corrupt partial file fails the hash once, then downloads from scratch
        have = part.stat().st_size if part.exists() else 0
        headers = {}
        if 0 < have < length and etag_file.exists():
            headers = {"Range": f"bytes={have}-", "If-Range": etag_file.read_text()}
        elif have >= length:
            part.unlink()
            have = 0
        resp = http.open(entry["url"], headers)
        status = getattr(resp, "status", None) or resp.getcode()
        if status == 206 and resp.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
            mode = "ab"
            total = resp.headers["Content-Range"].rpartition("/")[2]
        else:
            mode, have = "wb", 0  # 200: the whole file (the content changed, or no resume)
            total = resp.headers.get("Content-Length")
        if total and total.isdigit() and int(total) != length:  # the server is serving some other file
            part.unlink(missing_ok=True)
            etag_file.unlink(missing_ok=True)
            raise Rejected("length_mismatch", f"{entry['url']}: server has {total} bytes, signed {length}")
        if resp.headers.get("ETag"):
            etag_file.write_text(resp.headers["ETag"])
        left = length - have
        with open(part, mode) as f:
            while left > 0:
                try:
                    chunk = resp.read(min(CHUNK, left))
                except (TimeoutError, OSError, http.client.HTTPException) as e:
                    raise Failed("network", f"{entry['url']}: {e}") from None
                if not chunk:
                    break
                f.write(chunk)
                left -= len(chunk)
            f.flush()
            os.fsync(f.fileno())
        if left > 0:
            raise Failed("network", f"{entry['url']}: connection closed with {left} bytes to go (will resume)")
        data = part.read_bytes()
        try:
            check_file(data, entry)
            return data
        except Rejected:
            part.unlink(missing_ok=True)
            etag_file.unlink(missing_ok=True)
            if attempt == 2 or have == 0:
                raise
    raise AssertionError("unreachable")


def _trusted_key(cfg: DeviceConfig, state: dict[str, Any]):
    """The key this device trusts now: the pinned one, or the last one a verified rotation handed over to."""
    if state.get("trusted_key_b64"):
        from mobile_ml.publish.rotation import load_b64_key

        return load_b64_key(state["trusted_key_b64"])
    return cfg.public_key


def _signing_key(http: _Http, cfg: DeviceConfig, state: dict[str, Any], raw: bytes):
    """The trusted key, or the key a rotation statement signed by it names (followed one step per check)."""
    from mobile_ml.publish.rotation import MAX_STATEMENT_BYTES, check_statement, statement_path

    trusted = _trusted_key(cfg, state)
    claimed = claimed_key_id(raw)
    if not claimed or claimed == keys.key_id(trusted):
        return trusted
    try:
        path = statement_path(cfg.model, claimed)
        data = http.read_capped(http.open(path), MAX_STATEMENT_BYTES, "key rotation")
        sig = http.read_capped(http.open(path + ".sig"), MAX_SIGNATURE_BYTES, "key rotation signature")
    except Failed:
        return trusted  # no statement: the manifest will fail verification with the trusted key
    new = check_statement(data, sig, trusted, model=cfg.model, new_key_id=claimed)
    return new if new is not None else trusted


def _install(cfg: DeviceConfig, release: dict[str, Any], files: dict[str, bytes], state: dict[str, Any]) -> None:
    versions = cfg.state_dir / "versions"
    versions.mkdir(exist_ok=True)
    final = versions / release["version"]
    tmp = versions / f".{release['version']}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for name, data in files.items():
        with open(tmp / name, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    # The switch: one atomic rename of the pointer. A crash before it leaves the old model live.
    _write_atomic(cfg.state_dir / "current.json", json.dumps({"version": release["version"]}).encode())
    keep = {release["version"], state.get("current")}
    for d in versions.iterdir():
        if d.name not in keep:
            shutil.rmtree(d, ignore_errors=True)


def sync(cfg: DeviceConfig) -> SyncResult:
    """One update check. Never raises for network, server or content problems: they are results."""
    from mobile_ml.export.metadata import health_check

    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    (cfg.state_dir / "staging").mkdir(exist_ok=True)
    state = load_state(cfg.state_dir)
    now = cfg.now()  # one clock reading for the whole check
    http = _Http(cfg.server, cfg.timeout)
    path = f"{cfg.model}/channels/{cfg.channel}.json"
    result: SyncResult | None = None
    try:
        # What this device accepted from this channel (versions are per channel; a device may switch channels).
        seen = state.setdefault("channels", {}).get(f"{cfg.model}/{cfg.channel}", {})
        # The 304 shortcut only holds while the model running is still the one this channel's manifest chose.
        fresh = seen.get("manifest_etag") and state.get("current") and seen.get("current") == state.get("current")
        resp = http.open(path, {"If-None-Match": seen["manifest_etag"]} if fresh else {})
        if (getattr(resp, "status", None) or resp.getcode()) == 304:
            result = SyncResult(
                "not_modified",
                state.get("current"),
                state.get("previous"),
                manifest_version=seen.get("manifest_version"),
            )
            return result
        for attempt in (1, 2):  # manifest and signature are two files: a reader can fall between the writes
            raw = http.read_capped(resp, mf.MAX_MANIFEST_BYTES, "manifest")
            etag = resp.headers.get("ETag")
            sig = http.read_capped(http.open(path + ".sig"), MAX_SIGNATURE_BYTES, "signature")
            key = _signing_key(http, cfg, state, raw)
            try:
                m = check_manifest(
                    raw,
                    sig,
                    key,
                    now=now,
                    model=cfg.model,
                    channel=cfg.channel,
                    last_version=seen.get("manifest_version"),
                    last_sha256=seen.get("manifest_sha256"),
                )
                break
            except Rejected as e:
                if e.reason != "bad_signature" or attempt == 2:
                    raise
                resp = http.open(path)
        accepted = {
            "manifest_version": int(m["manifest_version"]),
            "manifest_sha256": hashlib.sha256(raw).hexdigest(),
            "manifest_etag": etag,
        }
        trusted_b64 = base64.b64encode(keys.public_der(key)).decode()
        release = select_release(m, cfg.install_id, state.get("current"))
        if release is None or release["version"] == state.get("current"):
            state["channels"][f"{cfg.model}/{cfg.channel}"] = {**accepted, "current": state.get("current")}
            state["trusted_key_b64"] = trusted_b64
            result = SyncResult(
                "up_to_date", state.get("current"), state.get("previous"), manifest_version=accepted["manifest_version"]
            )
            return result
        if mf.parse_version(release.get("min_app_version", "0.0.0")) > mf.parse_version(cfg.app_version):
            raise Failed("app_too_old", f"{release['version']} needs app ≥ {release['min_app_version']}")
        if (release.get("runtime") or {}).get("name", "litert") != "litert":
            raise Failed("runtime", f"{release['version']} needs runtime {release['runtime']}")
        need = 2 * sum(int(f["length"]) for f in release["files"])
        if shutil.disk_usage(cfg.state_dir).free < need:
            raise Failed("no_space", f"{need} bytes needed")
        files = {f["name"]: _download(http, f, cfg.state_dir / "staging") for f in release["files"]}
        try:
            meta = parse_document(ModelMetadata, files["metadata.json"], where=f"{release['version']}/metadata.json")
            health = health_check(files["model.tflite"], meta, f"{release['version']}/model.tflite")
            if not health.ok:
                raise Failed("health_check", health.detail)
            _install(cfg, release, files, state)
        finally:  # verified files are not kept for another try: installed, or known not to work
            for f in release["files"]:
                for suffix in (".part", ".etag"):
                    (cfg.state_dir / "staging" / f"{f['sha256']}{suffix}").unlink(missing_ok=True)
        state.update(previous=state.get("current"), current=release["version"], trusted_key_b64=trusted_b64)
        state["channels"][f"{cfg.model}/{cfg.channel}"] = {**accepted, "current": release["version"]}
        result = SyncResult(
            "installed", release["version"], state.get("previous"), manifest_version=accepted["manifest_version"]
        )
        return result
    except Rejected as e:
        result = SyncResult("rejected", state.get("current"), state.get("previous"), e.reason, e.detail)
        return result
    except Failed as e:
        result = SyncResult(
            "skipped" if e.reason in ("app_too_old", "runtime", "no_space") else "failed",
            state.get("current"),
            state.get("previous"),
            e.reason,
            e.detail,
        )
        return result
    except Exception as e:  # a damaged model LiteRT cannot load is a failed update, not a crashed app
        from mobile_ml.errors import InputFileError

        if not isinstance(e, InputFileError):
            raise
        result = SyncResult("failed", state.get("current"), state.get("previous"), "health_check", e.message)
        return result
    finally:
        state["last_check"] = {
            "time": mf.utc(now),
            "outcome": result.outcome if result else "error",
            "reason": result.reason if result else None,
        }
        _write_atomic(cfg.state_dir / "state.json", json.dumps(state, indent=2).encode())
        if cfg.send_telemetry and result is not None:
            _telemetry(cfg, http, result)


def _telemetry(cfg: DeviceConfig, http: _Http, result: SyncResult) -> None:
    kind = {"installed": "update_applied", "rejected": "update_failed", "failed": "update_failed"}.get(
        result.outcome, "update_check"
    )
    body = {
        "events": [
            {
                "install_id_hash": hashlib.sha256(cfg.install_id.encode()).hexdigest(),
                "model": cfg.model,
                "version": result.current or "none",
                "app_version": cfg.app_version,
                "device_model": cfg.device_model,
                "event": kind,
                "error_code": result.reason,
            }
        ]
    }
    req = urllib.request.Request(
        http.base + "v1/telemetry",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        urllib.request.urlopen(req, timeout=cfg.timeout).read()
    except (urllib.error.URLError, OSError):
        pass  # telemetry is best-effort: it never affects the model

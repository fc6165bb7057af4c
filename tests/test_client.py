"""The reference client against `mobile-ml serve` on loopback: install, update, rollback, and attacks and faults.

Each attack or fault asserts that the device still runs a verified model and that no temporary files remain.
"""

import asyncio
import contextlib
import hashlib
import json
import shutil
import socket
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from mobile_ml.client import download
from mobile_ml.client import state as device_state
from mobile_ml.client import sync as client
from mobile_ml.export.metadata import health_check
from mobile_ml.publish import keys, publisher
from mobile_ml.publish import manifest as mf


@pytest.fixture()
def world(digits_export, tmp_path):
    """A fresh publish root with 1.0.0 on digits/beta, served by a real uvicorn server, and a key."""

    from mobile_ml.deliver.server import create_app

    run, _ = digits_export
    key_dir = tmp_path / "keys"
    keys.generate(key_dir)
    root = tmp_path / "root"
    publisher.publish(str(root), run, model="digits", version="1.0.0", channel="beta", key=key_dir)
    faults = Faults(create_app(root, tmp_path / "telemetry.db"))
    with serving(faults) as url:
        yield {
            "run": run,
            "root": root,
            "key": key_dir,
            "url": url,
            "tmp": tmp_path,
            "db": tmp_path / "telemetry.db",
            "faults": faults,
        }


@contextlib.contextmanager
def serving(app):
    """``app`` under a real uvicorn server on a free loopback port; yields its base URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    srv = uvicorn.Server(uvicorn.Config(app, log_level="critical"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not srv.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    finally:
        srv.should_exit = True
        thread.join(10)


class Faults:
    """ASGI middleware around the real server: the next request for a path ending in ``target`` gets a 500, or has
    its body cut off after ``cut_at`` bytes (the connection drops mid-transfer)."""

    def __init__(self, app):
        self.app, self.target, self.mode, self.cut_at, self.hits = app, None, None, 0, []
        self.stall_s = 3.0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not self.target or not scope["path"].endswith(self.target) or not self.mode:
            return await self.app(scope, receive, send)
        mode, self.mode = self.mode, None  # one-shot
        self.hits.append((mode, dict((k.decode(), v.decode()) for k, v in scope["headers"])))
        if mode == "watch":
            return await self.app(scope, receive, send)
        if mode == "500":
            await send({"type": "http.response.start", "status": 500, "headers": [(b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        sent = 0

        async def cut(message):
            nonlocal sent
            if message["type"] == "http.response.body":
                body = message.get("body", b"")
                if sent + len(body) >= self.cut_at:
                    await send({"type": "http.response.body", "body": body[: self.cut_at - sent], "more_body": True})
                    if mode == "stall":  # half the body, then silence: the client's read times out
                        await asyncio.sleep(self.stall_s)
                    raise ConnectionResetError("cut by the test")
                sent += len(body)
            await send(message)

        await self.app(scope, receive, cut)


def device(world, install_id="device-1", **kw):
    cfg = dict(
        server=world["url"],
        model="digits",
        channel="beta",
        public_key=keys.load_public(world["key"]),
        state_dir=world["tmp"] / f"state-{install_id}",
        install_id=install_id,
        app_version="1.0.0",
        timeout=5.0,
    )
    cfg.update(kw)
    return client.DeviceConfig(**cfg)


def runs_verified_model(cfg, version):
    """The app's view: current.json names `version`, and that model passes its own health check."""
    vdir, meta = client.current_model(cfg.state_dir)
    assert vdir.name == version
    assert health_check((vdir / "model.tflite").read_bytes(), meta).ok
    leftovers = [p.name for p in cfg.state_dir.rglob("*") if p.name.endswith((".tmp", ".part"))]
    assert leftovers == []


def test_first_install_then_304_then_update(world):
    cfg = device(world)
    r = client.sync(cfg)
    assert r.outcome == "installed" and r.current == "1.0.0" and r.manifest_version == 1, r
    runs_verified_model(cfg, "1.0.0")
    assert client.sync(cfg).outcome == "not_modified"
    publisher.publish(
        str(world["root"]),
        world["run"],
        model="digits",
        version="1.1.0",
        channel="beta",
        key=world["key"],
        variant="fp32",
    )
    r = client.sync(cfg)
    assert (r.outcome, r.current, r.previous) == ("installed", "1.1.0", "1.0.0")
    runs_verified_model(cfg, "1.1.0")
    assert sorted(p.name for p in (cfg.state_dir / "versions").iterdir()) == ["1.0.0", "1.1.0"]
    import sqlite3

    with sqlite3.connect(world["db"]) as db:
        events = db.execute("SELECT event, version FROM events ORDER BY id").fetchall()
    assert events.count(("update_applied", "1.1.0")) == 1


def _installed(world, **kw):
    cfg = device(world, **kw)
    assert client.sync(cfg).outcome == "installed"
    return cfg


def _channel(world):
    return world["root"] / "digits" / "channels" / "beta.json"


def test_replayed_old_manifest_is_refused(world):
    cfg = _installed(world)
    publisher.publish(
        str(world["root"]),
        world["run"],
        model="digits",
        version="1.1.0",
        channel="beta",
        key=world["key"],
        variant="fp32",
    )
    assert client.sync(cfg).current == "1.1.0"
    hist = world["root"] / "digits" / "history" / "beta"
    shutil.copy(hist / "00000001.json", _channel(world))  # an attacker serves the old, validly signed manifest
    shutil.copy(hist / "00000001.json.sig", str(_channel(world)) + ".sig")
    r = client.sync(cfg)
    assert (r.outcome, r.reason, r.current) == ("rejected", "rollback", "1.1.0")
    runs_verified_model(cfg, "1.1.0")


@pytest.mark.parametrize("attack", ["flipped_bit", "unsigned", "wrong_key"])
def test_forged_manifests_are_refused(world, attack):
    cfg = _installed(world)
    publisher.publish(
        str(world["root"]),
        world["run"],
        model="digits",
        version="1.1.0",
        channel="beta",
        key=world["key"],
        variant="fp32",
    )
    if attack == "flipped_bit":
        raw = bytearray(_channel(world).read_bytes())
        raw[raw.index(b'"percent"') + 12] ^= 0x01
        _channel(world).write_bytes(bytes(raw))
    elif attack == "unsigned":
        (world["root"] / "digits/channels/beta.json.sig").write_bytes(b"")
    else:
        other = world["tmp"] / "other"
        keys.generate(other)
        (world["root"] / "digits/channels/beta.json.sig").write_bytes(
            keys.sign(keys.load_private(other), _channel(world).read_bytes())
        )
    r = client.sync(cfg)
    assert (r.outcome, r.reason) == ("rejected", "bad_signature")
    runs_verified_model(cfg, "1.0.0")


def test_expired_manifest_is_refused(world):
    cfg = _installed(world)
    later = device(world, now=lambda: datetime.now(timezone.utc) + timedelta(days=31))
    publisher.publish(
        str(world["root"]),
        world["run"],
        model="digits",
        version="1.1.0",
        channel="beta",
        key=world["key"],
        variant="fp32",
    )
    r = client.sync(later)
    assert (r.outcome, r.reason) == ("rejected", "expired")
    runs_verified_model(cfg, "1.0.0")


def test_swapped_blob_is_refused(world):
    cfg = _installed(world)
    model_entry = _next_release(world)
    other = (world["run"] / "exports" / "int8" / "model.tflite").read_bytes()  # a valid model, the wrong one
    (world["root"] / model_entry.url).write_bytes(other)
    r = client.sync(cfg)
    assert r.outcome == "rejected" and r.reason in ("hash_mismatch", "length_mismatch")
    runs_verified_model(cfg, "1.0.0")


def _next_release(world):
    m = publisher.publish(
        str(world["root"]),
        world["run"],
        model="digits",
        version="1.1.0",
        channel="beta",
        key=world["key"],
        variant="fp32",
    ).manifest
    return m.release.file("model.tflite")


def test_resume_after_a_cut_download(world, monkeypatch):
    cfg = _installed(world)
    entry = _next_release(world)
    blob = (world["root"] / entry.url).read_bytes()
    staging = cfg.state_dir / "staging"
    (staging / f"{entry.sha256}.part").write_bytes(blob[: len(blob) // 2])  # cut at 50 %
    (staging / f"{entry.sha256}.etag").write_text(f'"{entry.sha256}"')
    seen = []
    real_open = download.Http.open

    def spy(self, path, headers=None):
        resp = real_open(self, path, headers)
        seen.append((path, dict(headers or {}), getattr(resp, "status", None)))
        return resp

    monkeypatch.setattr(download.Http, "open", spy)
    r = client.sync(cfg)
    assert r.outcome == "installed" and r.current == "1.1.0"
    resumed = [s for s in seen if s[0] == entry.url]
    assert resumed[0][1]["Range"] == f"bytes={len(blob) // 2}-" and resumed[0][2] == 206
    runs_verified_model(cfg, "1.1.0")


def test_changed_content_restarts_and_corrupt_partial_is_redownloaded(world):
    cfg = _installed(world)
    cfg2 = _installed(world, install_id="device-2")
    entry = _next_release(world)
    blob = (world["root"] / entry.url).read_bytes()
    staging = cfg.state_dir / "staging"
    # a partial file from other content, with a stale validator: If-Range fails, the server sends all (200)
    (staging / f"{entry.sha256}.part").write_bytes(b"x" * 100)
    (staging / f"{entry.sha256}.etag").write_text('"stale"')
    assert client.sync(cfg).current == "1.1.0"
    runs_verified_model(cfg, "1.1.0")
    # a corrupt partial with the right validator: the resumed file fails its hash once, then downloads whole
    (cfg2.state_dir / "staging" / f"{entry.sha256}.part").write_bytes(bytes(len(blob) // 2))
    (cfg2.state_dir / "staging" / f"{entry.sha256}.etag").write_text(f'"{entry.sha256}"')
    assert client.sync(cfg2).current == "1.1.0"
    runs_verified_model(cfg2, "1.1.0")


def test_signed_but_broken_model_fails_its_health_check(world, tmp_path):
    cfg = _installed(world)
    broken = tmp_path / "broken-run"
    shutil.copytree(world["run"], broken)
    model = broken / "exports" / "fp32" / "model.tflite"
    data = model.read_bytes()[:2000]  # truncated, yet published and signed like any release
    model.write_bytes(data)
    meta_path = broken / "exports" / "fp32" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["model"].update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    meta_path.write_text(json.dumps(meta))
    publisher.publish(
        str(world["root"]), broken, model="digits", version="1.1.0", channel="beta", key=world["key"], variant="fp32"
    )
    r = client.sync(cfg)
    assert (r.outcome, r.reason, r.current) == ("failed", "health_check", "1.0.0")
    runs_verified_model(cfg, "1.0.0")


def test_too_old_app_and_dead_server(world):
    cfg = _installed(world)
    publisher.publish(
        str(world["root"]),
        world["run"],
        model="digits",
        version="1.1.0",
        channel="beta",
        key=world["key"],
        variant="fp32",
        min_app_version="9.0.0",
    )
    r = client.sync(cfg)
    assert (r.outcome, r.reason, r.current) == ("skipped", "app_too_old", "1.0.0")
    dead = device(world, server="http://127.0.0.1:9/", timeout=1.0)
    r = client.sync(dead)
    assert (r.outcome, r.reason) == ("failed", "network")
    runs_verified_model(cfg, "1.0.0")


def test_staged_rollout_promotion_and_rollback_end_to_end(world):
    """v1 everywhere; v2 to 10 %: inside devices update, outside keep v1; 100 %; rollback; replayed v2 refused."""

    devices = {i: _installed(world, install_id=f"phone-{i}") for i in range(12)}
    m = publisher.publish(
        str(world["root"]),
        world["run"],
        model="digits",
        version="2.0.0",
        channel="beta",
        key=world["key"],
        variant="fp32",
        rollout=10,
    ).manifest
    salt = m.rollout.salt
    for cfg in devices.values():
        inside = mf.in_rollout(10, salt, cfg.install_id)
        assert client.sync(cfg).current == ("2.0.0" if inside else "1.0.0")
    publisher.set_rollout(str(world["root"]), "digits", "beta", percent=100, key=world["key"])
    assert all(client.sync(cfg).current == "2.0.0" for cfg in devices.values())
    v2_manifest = _channel(world).read_bytes(), (world["root"] / "digits/channels/beta.json.sig").read_bytes()
    publisher.rollback(str(world["root"]), "digits", "beta", key=world["key"])
    assert all(client.sync(cfg).current == "1.0.0" for cfg in devices.values())
    _channel(world).write_bytes(v2_manifest[0])
    (world["root"] / "digits/channels/beta.json.sig").write_bytes(v2_manifest[1])
    for cfg in devices.values():
        r = client.sync(cfg)
        assert (r.outcome, r.reason, r.current) == ("rejected", "rollback", "1.0.0")
        runs_verified_model(cfg, "1.0.0")


def test_device_cli_sync_and_run(world):
    from tests.test_cli import run as cli

    state = world["tmp"] / "cli-state"
    args = [
        "device",
        "sync",
        "--server",
        world["url"],
        "--model",
        "digits",
        "--channel",
        "beta",
        "--public-key",
        world["key"] / "public.pem",
        "--state",
        state,
        "--install-id",
        "cli-device",
        "--app-version",
        "1.0.0",
    ]
    r = cli(*args, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["outcome"] == "installed", r.output
    r = cli("device", "run", "--state", state, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["version"] == "1.0.0"
    _channel(world).write_bytes(_channel(world).read_bytes().replace(b'"percent": 100.0', b'"percent": 100.1'))
    r = cli(*args)
    assert r.exit_code == 3 and "rejected" in r.stdout and "bad_signature" in r.stderr
    r = cli("device", "run", "--state", world["tmp"] / "empty-state")
    assert r.exit_code == 2 and "no current model" in r.stderr


def test_oversized_manifest_is_cut_off(world):
    cfg = _installed(world)
    _channel(world).write_bytes(b" " * (2 << 20))  # an endless-looking body: the client reads 1 MiB + 1, no more
    r = client.sync(cfg)
    assert (r.outcome, r.reason) == ("rejected", "too_large")
    runs_verified_model(cfg, "1.0.0")


def test_slow_server_times_out(world):
    """A server that accepts and never answers: the check fails after the timeout, the model stays."""
    cfg = _installed(world)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    try:
        t0 = time.monotonic()
        r = client.sync(device(world, server=f"http://127.0.0.1:{port}/", timeout=0.5))
        assert (r.outcome, r.reason) == ("failed", "network") and time.monotonic() - t0 < 10
    finally:
        listener.close()
    runs_verified_model(cfg, "1.0.0")


def test_full_disk_skips_the_download(world, monkeypatch):
    cfg = _installed(world)
    _next_release(world)
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=1000))
    r = client.sync(cfg)
    assert (r.outcome, r.reason, r.current) == ("skipped", "no_space", "1.0.0")
    runs_verified_model(cfg, "1.0.0")


def test_crash_between_staging_and_switch_keeps_a_loadable_model(world, monkeypatch):
    cfg = _installed(world)
    _next_release(world)

    def die_on_pointer(state_dir, version):
        raise KeyboardInterrupt  # the process dies right before the switch

    monkeypatch.setattr(device_state, "write_pointer", die_on_pointer)
    with pytest.raises(KeyboardInterrupt):
        client.sync(cfg)
    monkeypatch.undo()
    vdir, meta = client.current_model(cfg.state_dir)  # what the app loads after the crash
    assert vdir.name == "1.0.0" and health_check((vdir / "model.tflite").read_bytes(), meta).ok
    r = client.sync(cfg)  # the next check completes the update
    assert (r.outcome, r.current) == ("installed", "1.1.0")
    runs_verified_model(cfg, "1.1.0")


def test_download_cut_mid_transfer_then_resumed_and_server_500(world):
    cfg = _installed(world)
    entry = _next_release(world)
    size = entry.length
    faults = world["faults"]
    faults.target, faults.mode = entry.url, "500"
    r = client.sync(cfg)
    assert (r.outcome, r.reason, r.current) == ("failed", "http_500", "1.0.0")
    runs_verified_model(cfg, "1.0.0")
    faults.mode, faults.cut_at = "cut", size // 2  # the connection drops at 50 %
    r = client.sync(cfg)
    assert (r.outcome, r.reason, r.current) == ("failed", "network", "1.0.0")
    part = cfg.state_dir / "staging" / f"{entry.sha256}.part"
    assert 0 < part.stat().st_size < size  # kept for resuming
    vdir, meta = client.current_model(cfg.state_dir)
    assert vdir.name == "1.0.0" and health_check((vdir / "model.tflite").read_bytes(), meta).ok
    have = part.stat().st_size
    faults.mode = "watch"  # pass through, but record the next request's headers
    r = client.sync(cfg)
    assert (r.outcome, r.current) == ("installed", "1.1.0")
    assert faults.hits[-1][1]["range"] == f"bytes={have}-" and faults.hits[-1][1]["if-range"] == f'"{entry.sha256}"'
    runs_verified_model(cfg, "1.1.0")


def test_key_rotation_then_the_old_key_is_refused(world):
    """Threat 8: the old key hands over to a new one; devices follow, then refuse anything the old key signs."""
    from mobile_ml.publish.rotation import rotate
    from mobile_ml.publish.verify import verify_root

    cfg = _installed(world)
    new_key = world["tmp"] / "new-key"
    keys.generate(new_key)
    with pytest.raises(publisher.RefusedError, match="is signed by key") as e:
        publisher.publish(
            str(world["root"]),
            world["run"],
            model="digits",
            version="1.1.0",
            channel="beta",
            key=new_key,
            variant="fp32",
        )
    assert "mobile-ml keys rotate" in e.value.hint
    rotate(str(world["root"]), "digits", old_key=world["key"], new_key=new_key)
    publisher.publish(
        str(world["root"]), world["run"], model="digits", version="1.1.0", channel="beta", key=new_key, variant="fp32"
    )
    assert verify_root(str(world["root"]), str(world["key"] / "public.pem")).ok  # the app's pinned key
    r = client.sync(cfg)
    assert (r.outcome, r.current) == ("installed", "1.1.0")
    # someone with the old key signs a "newer" manifest: refused, because the device moved on
    _forged_old_key_manifest(world)
    r = client.sync(cfg)
    assert (r.outcome, r.reason, r.current) == ("rejected", "bad_signature", "1.1.0")
    # a device that never saw the rotation still accepts the old key's manifest (it has no reason not to)
    fresh = device(world, install_id="fresh")
    assert client.sync(fresh).outcome == "installed"


def test_rotation_signed_by_a_stranger_is_not_followed(world):
    from mobile_ml.publish import rotation

    cfg = _installed(world)
    stranger, new_key = world["tmp"] / "stranger", world["tmp"] / "new"
    keys.generate(stranger)
    keys.generate(new_key)
    rotation.rotate(str(world["root"]), "digits", old_key=stranger, new_key=new_key)  # not from the channel's key
    with pytest.raises(publisher.RefusedError):
        publisher.publish(
            str(world["root"]),
            world["run"],
            model="digits",
            version="1.1.0",
            channel="beta",
            key=new_key,
            variant="fp32",
        )
    runs_verified_model(cfg, "1.0.0")


def test_switching_channels_keeps_each_channels_versions_apart(world):
    """manifest_version counts per channel: a device moved from beta (version 2) to stable (version 1) must not
    call stable's manifest a rollback, and moving back must not take beta's 304 for 'nothing to do'."""
    w = world
    publisher.publish(str(w["root"]), w["run"], model="digits", version="1.1.0", channel="beta", key=w["key"])
    beta = device(w)
    assert client.sync(beta).current == "1.1.0"
    publisher.publish(str(w["root"]), w["run"], model="digits", version="1.0.1", channel="stable", key=w["key"])
    stable = device(w, channel="stable")
    r = client.sync(stable)
    assert (r.outcome, r.current, r.manifest_version) == ("installed", "1.0.1", 1), r
    r = client.sync(beta)
    assert (r.outcome, r.current) == ("installed", "1.1.0"), r
    runs_verified_model(beta, "1.1.0")
    assert client.sync(beta).outcome == "not_modified"


def test_download_that_stalls_mid_body_is_a_network_failure(world):
    """Issue 12 item 2: half a blob, then a silent server. The read times out: a network failure (exit 3 at the
    CLI), not an internal error, and the partial file is kept for the next check."""
    cfg = _installed(world)
    entry = _next_release(world)
    faults = world["faults"]
    faults.target, faults.mode, faults.cut_at = entry.url, "stall", entry.length // 2
    r = client.sync(device(world, timeout=1.0))
    assert (r.outcome, r.reason, r.current) == ("failed", "network", "1.0.0"), r
    part = cfg.state_dir / "staging" / f"{entry.sha256}.part"
    assert 0 < part.stat().st_size < entry.length
    r = client.sync(cfg)  # the server answers again: the download resumes and completes
    assert (r.outcome, r.current) == ("installed", "1.1.0")
    runs_verified_model(cfg, "1.1.0")


def _sign_channel(world, edit):
    """Re-sign the channel's manifest with the channel's own key after ``edit`` changed its parsed form: a publisher
    (or a stolen key) signing something hostile."""

    doc = json.loads(_channel(world).read_bytes())
    edit(doc)
    raw = mf.dumps(doc)
    _channel(world).write_bytes(raw)
    (world["root"] / "digits/channels/beta.json.sig").write_bytes(keys.sign(keys.load_private(world["key"]), raw))


def test_signed_fallback_naming_a_path_is_refused_and_writes_nothing(world):
    """Issue 12 item 6: a signed fallback with an extra file named ../../../pwned.txt (pointing at a real blob) made a
    new device outside the rollout write it outside its state directory."""
    publisher.publish(
        str(world["root"]), world["run"], model="digits", version="1.1.0", channel="beta", key=world["key"], rollout=0
    )

    added = []  # the index of the hostile entry (after the release's own files)

    def escape(doc):
        files = doc["fallback"]["files"]
        added.append(len(files))
        files.append({**files[-1], "name": "../../../pwned.txt"})

    _sign_channel(world, escape)
    cfg = device(world, install_id="new-phone")  # nothing installed: it would take the fallback
    before = sorted(p for p in world["tmp"].rglob("*") if "state-" not in str(p))
    r = client.sync(cfg)
    assert (r.outcome, r.reason, r.current) == ("rejected", "malformed", None), r
    assert f"fallback.files[{added[0]}].name" in r.detail
    assert sorted(p for p in world["tmp"].rglob("*") if "state-" not in str(p)) == before
    assert not list(world["tmp"].rglob("pwned.txt"))


@pytest.mark.parametrize(
    "damage", ["empty", "truncated", "list", "string", "null", "channels_a_list", "path_as_version", "directory"]
)
def test_corrupt_device_state_fails_closed_and_is_reported(world, damage):
    """Issue 12 item 7 (the reporting half): when state.json and its backup are both damaged, the check fails clearly,
    never with exit 1 and never from a fresh empty state (which would accept a replayed old manifest). One damaged
    copy is rebuilt from the other: tests/test_client_faults.py."""
    from tests.test_cli import run as cli

    cfg = _installed(world)
    snapshots = []
    for name in ("state.json", "state.backup.json"):
        state = cfg.state_dir / name
        good = state.read_bytes()
        if damage == "directory":
            state.unlink()
            state.mkdir()
        else:
            doc = json.loads(good)
            state.write_bytes(
                {
                    "empty": b"",
                    "truncated": good[: len(good) // 2],
                    "list": b"[]",
                    "string": b'"x"',
                    "null": b"null",
                    "channels_a_list": json.dumps({**doc, "channels": []}).encode(),
                    "path_as_version": json.dumps({**doc, "current": "../1.0.0"}).encode(),
                }[damage]
            )
        snapshots.append((state, state.read_bytes() if state.is_file() else None))
    r = client.sync(cfg)
    assert (r.outcome, r.reason) == ("failed", "state_unreadable"), r
    assert str(cfg.state_dir) in r.detail
    for state, snapshot in snapshots:
        assert (state.read_bytes() if state.is_file() else None) == snapshot  # left for inspection, not reset
    args = ["device", "sync", "--server", world["url"], "--model", "digits", "--channel", "beta"]
    args += ["--public-key", world["key"] / "public.pem", "--state", cfg.state_dir, "--install-id", "device-1"]
    r = cli(*args, "--app-version", "1.0.0")
    assert r.exit_code == 3 and "state_unreadable" in r.stdout, r.output
    vdir, _ = client.current_model(cfg.state_dir)  # the installed model is untouched
    assert vdir.name == "1.0.0"


def test_state_readers_name_the_file_and_field(tmp_path):
    from mobile_ml.contracts import ContractError
    from mobile_ml.contracts.state import DeviceState, read_pointer, read_state

    assert read_state(tmp_path / "state.json") is None  # never checked: a fresh state
    (tmp_path / "state.json").write_text('{"channels": {"digits/beta": {"manifest_version": "7"}}}')
    with pytest.raises(
        ContractError, match=r"state\.json\.channels\.digits/beta\.manifest_version: expected an integer"
    ):
        read_state(tmp_path / "state.json")
    (tmp_path / "state.json").write_text('{"current": "1.0.0", "current": "2.0.0"}')
    with pytest.raises(ContractError, match="duplicate key"):
        read_state(tmp_path / "state.json")
    # a state.json written before the schema key existed still reads, and is rewritten with it
    (tmp_path / "state.json").write_text(
        '{"channels": {"digits/beta": {"manifest_version": 3, "manifest_sha256": "' + "a" * 64 + '", '
        '"manifest_etag": "\\"x\\"", "current": "1.0.0"}}, "current": "1.0.0", "previous": null, '
        '"trusted_key_b64": null, '
        '"last_check": {"time": "2026-11-23T00:00:00Z", "outcome": "installed", "reason": null}}'
    )
    legacy = read_state(tmp_path / "state.json")
    assert legacy.channels["digits/beta"].manifest_version == 3 and legacy.current == "1.0.0"
    device_state.save(tmp_path, legacy)
    assert json.loads((tmp_path / "state.json").read_text())["schema"] == DeviceState.SCHEMA
    assert read_state(tmp_path / "state.json") == legacy
    (tmp_path / "current.json").write_text('{"version": "../../etc"}')
    with pytest.raises(ContractError, match=r"current\.json\.version"):
        read_pointer(tmp_path / "current.json")
    assert client.current_model(tmp_path) is None


def test_telemetry_carries_the_servers_ingest_token(digits_export, tmp_path):
    """A server started with --telemetry-token stores a device's reports only when the device sends that token."""
    import secrets
    import sqlite3

    from mobile_ml.deliver.server import create_app

    run, _ = digits_export
    keys.generate(tmp_path / "keys")
    root = tmp_path / "root"
    publisher.publish(str(root), run, model="digits", version="1.0.0", channel="beta", key=tmp_path / "keys")
    token, db = secrets.token_urlsafe(24), tmp_path / "telemetry.db"
    with serving(create_app(root, db, telemetry_token=token)) as url:
        world = {"url": url, "key": tmp_path / "keys", "tmp": tmp_path}
        assert client.sync(device(world, "with-token", telemetry_token=token)).outcome == "installed"
        assert client.sync(device(world, "without-token")).outcome == "installed"  # telemetry never fails a check
        assert client.sync(device(world, "wrong-token", telemetry_token="x" * 32)).outcome == "installed"
    with sqlite3.connect(db) as conn:
        stored = {row[0] for row in conn.execute("SELECT install_id_hash FROM events")}
    assert stored == {hashlib.sha256(b"with-token").hexdigest()}


def _forged_old_key_manifest(world):
    """The channel replaced by a "newer" manifest (version 99) signed with the app's original key."""
    old_private = keys.load_private(world["key"])
    forged = mf.build(
        model="digits",
        channel="beta",
        manifest_version=99,
        key_id=keys.key_id(old_private.public_key()),
        release=mf.parse(_channel(world).read_bytes(), "beta.json").release,
        rollout_percent=100,
        salt="x",
        fallback=None,
        action="publish",
    )
    raw = mf.dumps(forged)
    _channel(world).write_bytes(raw)
    (world["root"] / "digits/channels/beta.json.sig").write_bytes(keys.sign(old_private, raw))

"""The reference client against hostile servers and a damaged phone (issue 12 items 3, 4, 5, 7, 8, 14, 17).

Real servers on loopback: the real app behind a dripping ASGI layer (slow retrieval), a raw ``http.server`` whose
telemetry replies are endless or broken, and a real, tiny tmpfs for the full disk. Each test fails with its defence
removed (see the docstrings for which one).
"""

import asyncio
import http.server
import json
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

from mobile_ml.client import fits
from mobile_ml.client import sync as client
from mobile_ml.client.run import run_model
from mobile_ml.publish import publisher
from tests.test_client import _channel, _installed, _next_release, _sign_channel, device, runs_verified_model, world

BUNDLE = Path(__file__).parents[1] / "android_demo" / "app" / "src" / "main" / "assets" / "bundle"
__all__ = ["world"]  # the fixture, shared with test_client.py


# --- slow retrieval (threat 7) ---------------------------------------------------------------------------------------


class Drip:
    """ASGI layer: responses for paths ending in ``target`` go out ``step`` bytes every ``interval`` seconds; after
    ``give_up`` seconds the connection is dropped (so a client without a deadline ends the test, late)."""

    def __init__(self, app):
        self.app, self.target, self.step, self.interval, self.give_up = app, None, 1, 1.0, 20.0
        self.stopped = False

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not self.target or not scope["path"].endswith(self.target):
            return await self.app(scope, receive, send)
        messages = []

        async def keep(message):
            messages.append(message)

        await self.app(scope, receive, keep)
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
        await send(messages[0])
        t0 = time.monotonic()
        for i in range(0, len(body), self.step):
            if self.stopped or time.monotonic() - t0 > self.give_up:
                raise ConnectionResetError("the drip gave up")
            await send({"type": "http.response.body", "body": body[i : i + self.step], "more_body": True})
            await asyncio.sleep(self.interval)
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture()
def dripping(world):
    """A second real server over the same publish root, with the ``Drip`` layer in front."""
    import uvicorn

    from mobile_ml.deliver.server import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    drip = Drip(create_app(world["root"], world["tmp"] / "drip-telemetry.db"))
    srv = uvicorn.Server(uvicorn.Config(drip, log_level="critical"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not srv.started:
        time.sleep(0.02)
    drip.url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    yield drip
    drip.stopped = True
    srv.should_exit = True
    thread.join(10)


def test_manifest_dripped_one_byte_a_second_is_cut_off_by_the_deadline(world, dripping):
    """Without the deadline the check takes as long as the server likes (here until the drip gives up, 20 s)."""
    dripping.target = "channels/beta.json"
    cfg = device(world, install_id="new-phone", server=dripping.url, timeout=1.5, deadline=2.0)
    t0 = time.monotonic()
    r = client.sync(cfg)
    took = time.monotonic() - t0
    assert (r.outcome, r.reason, r.current) == ("failed", "network", None), r
    assert "deadline" in r.detail and took < 2.0 + 1.5 + 1.0, took
    assert client.sync(device(world, install_id="new-phone")).current == "1.0.0"


def test_blob_under_the_minimum_rate_is_cut_off_and_resumed(world, dripping):
    """20 bytes/s against a minimum of 1 KiB/s over 0.5 s: cut within a second, the bytes kept and resumed.
    Without the rate check only the per-read timeout applies, which a drip never trips."""
    cfg = _installed(world)
    entry = _next_release(world)
    dripping.target, dripping.step, dripping.interval = entry.url, 1, 0.05
    slow = device(world, server=dripping.url, timeout=2.0, deadline=30.0, min_rate=1024, rate_window=0.5)
    t0 = time.monotonic()
    r = client.sync(slow)
    assert (r.outcome, r.reason, r.current) == ("failed", "network", "1.0.0"), r
    assert "bytes/s" in r.detail and time.monotonic() - t0 < 3.0
    part = cfg.state_dir / "staging" / f"{entry.sha256}.part"
    assert 0 < part.stat().st_size < entry.length  # what arrived is kept
    have = part.stat().st_size
    faults = world["faults"]
    faults.target, faults.mode = entry.url, "watch"
    r = client.sync(cfg)  # a healthy server: the download resumes where the drip stopped
    assert (r.outcome, r.current) == ("installed", "1.1.0"), r
    assert faults.hits[-1][1]["range"] == f"bytes={have}-"
    runs_verified_model(cfg, "1.1.0")


def test_blob_fast_enough_but_too_long_is_cut_by_the_deadline_and_resumed(world, dripping):
    cfg = _installed(world)
    entry = _next_release(world)
    dripping.target, dripping.step, dripping.interval = entry.url, 400, 0.1  # 4 KB/s: above the minimum rate
    t0 = time.monotonic()
    r = client.sync(device(world, server=dripping.url, timeout=1.0, deadline=1.5, rate_window=0.5))
    assert (r.outcome, r.reason, r.current) == ("failed", "network", "1.0.0"), r
    assert "deadline" in r.detail and time.monotonic() - t0 < 3.5
    part = cfg.state_dir / "staging" / f"{entry.sha256}.part"
    assert 0 < part.stat().st_size < entry.length
    assert client.sync(cfg).current == "1.1.0"
    runs_verified_model(cfg, "1.1.0")


# --- telemetry replies (threats 6, item 5) ---------------------------------------------------------------------------


class Hostile(http.server.BaseHTTPRequestHandler):
    """GET serves the publish root's files as they are; POST (telemetry) answers as ``server.mode`` says."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = self.server.root / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        mode, out = self.server.mode, self.wfile
        if mode in ("huge", "endless"):
            head = "Content-Length: 314572800\r\n" if mode == "huge" else "Connection: close\r\n"
            out.write(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{head}\r\n".encode())
            chunk = b" " * 65536
            try:
                while self.server.sent < 300 << 20:
                    out.write(chunk)
                    self.server.sent += len(chunk)
            except OSError:
                pass  # the client hung up: what we want
        elif mode == "bad_status_line":
            out.write(b"garbage\r\n\r\n")
        elif mode == "incomplete_read":
            out.write(b'HTTP/1.1 202 Accepted\r\nContent-Length: 100\r\n\r\n{"acc')
        elif mode == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif mode == "500":
            out.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\noops!")
        self.close_connection = True


@pytest.fixture()
def hostile(world):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    srv.daemon_threads = True
    srv.root, srv.mode, srv.sent = world["root"], None, 0
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/"
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize("mode", ["huge", "endless"])
def test_an_endless_telemetry_reply_is_read_up_to_a_cap(world, hostile, mode):
    """A 300 MB (or endless) reply to the telemetry POST: the client reads 64 KiB and hangs up. Without the cap it
    reads all 300 MB (huge) or until the deadline (endless); the server counts what it could send."""
    hostile.mode = mode
    cfg = device(world, server=hostile.url, deadline=10.0)
    r = client.sync(cfg)
    assert (r.outcome, r.current) == ("installed", "1.0.0"), r
    time.sleep(0.3)  # let the server notice the hang-up
    assert hostile.sent < 32 << 20, hostile.sent  # the cap plus what loopback socket buffers hold
    runs_verified_model(cfg, "1.0.0")


@pytest.mark.parametrize("mode", ["bad_status_line", "incomplete_read", "reset", "500"])
def test_a_broken_telemetry_reply_never_fails_the_check(world, hostile, mode):
    """BadStatusLine, IncompleteRead, a reset and a 500 after the install: the check still reports the install
    (without the catch around telemetry, each one raised out of sync: exit 1 on every check)."""
    from tests.test_cli import run as cli

    hostile.mode = mode
    cfg = device(world, server=hostile.url)
    r = client.sync(cfg)
    assert (r.outcome, r.current) == ("installed", "1.0.0"), r
    runs_verified_model(cfg, "1.0.0")
    args = ["device", "sync", "--server", hostile.url, "--model", "digits", "--channel", "beta", "--state"]
    args += [cfg.state_dir, "--public-key", world["key"] / "public.pem", "--install-id", "d", "--app-version", "1.0.0"]
    res = cli(*args, "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["outcome"] == "up_to_date", res.output


# --- corrupt state.json: rebuilt from its backup, never fail-open (item 7) --------------------------------------------


def _publish_1_1_0(world):
    publisher.publish(
        str(world["root"]), world["run"], model="digits", version="1.1.0", channel="beta", key=world["key"]
    )


@pytest.mark.parametrize("damage", ["truncated", "empty", "random", "deleted", "directory"])
def test_damaged_state_is_rebuilt_and_a_replayed_old_manifest_still_refused(world, damage):
    """state.json damaged after 1.1.0 (manifest 2) was accepted; an attacker replays manifest 1. The state is rebuilt
    from state.backup.json (said so in the result), so the floor holds: rollback. Without the backup the check
    fails closed on every later check, for ever (state_unreadable)."""
    cfg = _installed(world)
    _publish_1_1_0(world)
    assert client.sync(cfg).current == "1.1.0"
    hist = world["root"] / "digits" / "history" / "beta"
    shutil.copy(hist / "00000001.json", _channel(world))
    shutil.copy(hist / "00000001.json.sig", str(_channel(world)) + ".sig")
    state = cfg.state_dir / "state.json"
    good = state.read_bytes()
    if damage == "deleted":
        state.unlink()
    elif damage == "directory":
        state.unlink()
        state.mkdir()
    else:
        state.write_bytes({"truncated": good[: len(good) // 2], "empty": b"", "random": os.urandom(300)}[damage])
    r = client.sync(cfg)
    assert (r.outcome, r.reason, r.current) == ("rejected", "rollback", "1.1.0"), r
    assert [x.value for x in r.repairs] == ["state_rebuilt"]
    assert json.loads(state.read_bytes())["channels"]["digits/beta"]["manifest_version"] == 2
    if damage != "deleted":
        assert (cfg.state_dir / "state.json.damaged").exists()  # kept for inspection
    r = client.sync(cfg)  # rebuilt once: the next check is an ordinary one
    assert (r.outcome, r.reason, r.repairs) == ("rejected", "rollback", ())
    runs_verified_model(cfg, "1.1.0")


def test_rebuilt_state_keeps_a_rotated_key_and_staging_as_a_file_is_repaired(world):
    from mobile_ml.publish import keys
    from mobile_ml.publish.rotation import rotate

    cfg = _installed(world)
    new_key = world["tmp"] / "new-key"
    keys.generate(new_key)
    rotate(str(world["root"]), "digits", old_key=world["key"], new_key=new_key)
    publisher.publish(str(world["root"]), world["run"], model="digits", version="1.1.0", channel="beta", key=new_key)
    assert client.sync(cfg).current == "1.1.0"  # the device now trusts only the new key
    (cfg.state_dir / "state.json").write_bytes(b"{")
    shutil.rmtree(cfg.state_dir / "staging")
    (cfg.state_dir / "staging").write_text("not a directory")

    def old_key_signs(doc):  # the old key is no longer trusted: a rebuilt state must remember that
        doc["manifest_version"] = 50

    _sign_channel(world, old_key_signs)  # signed with the old (pinned) key
    r = client.sync(cfg)
    assert (r.outcome, r.reason, r.current) == ("rejected", "bad_signature", "1.1.0"), r
    assert [x.value for x in r.repairs] == ["state_rebuilt"]
    assert (cfg.state_dir / "staging").is_dir()
    runs_verified_model(cfg, "1.1.0")


# --- installed files verified and repaired each check; bundled fallback (item 8) -------------------------------------


def _damage(cfg, how):
    vdir = cfg.state_dir / "versions" / "1.0.0"
    if how == "pointer_missing":
        (cfg.state_dir / "current.json").unlink()
    elif how == "pointer_corrupt":
        (cfg.state_dir / "current.json").write_bytes(b'{"version": ')
    elif how == "version_gone":
        shutil.rmtree(vdir)
    elif how == "model_flipped":  # same length, loads and answers: only the hash can tell
        data = bytearray((vdir / "model.tflite").read_bytes())
        data[len(data) // 2] ^= 0x01
        (vdir / "model.tflite").write_bytes(bytes(data))
    elif how == "model_truncated":
        (vdir / "model.tflite").write_bytes((vdir / "model.tflite").read_bytes()[:100])
    elif how == "metadata_gone":
        (vdir / "metadata.json").unlink()


DAMAGES = ["pointer_missing", "pointer_corrupt", "version_gone", "model_flipped", "model_truncated", "metadata_gone"]


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_install_is_repaired_from_the_manifest(world, how):
    """Without the check of the installed files the device answers not_modified while `device run` finds nothing."""
    cfg = _installed(world)
    _damage(cfg, how)
    assert client.current_model(cfg.state_dir) is None  # the app's view: nothing whole to run
    r = client.sync(cfg)
    assert (r.outcome, r.current) == ("installed", "1.0.0"), r
    assert [x.value for x in r.repairs] == ["model_reinstalled"]
    runs_verified_model(cfg, "1.0.0")
    assert run_model(cfg.state_dir).version == "1.0.0"
    assert client.sync(cfg).outcome == "not_modified"


def test_damage_keeps_the_previous_version_and_the_bundle_runs_when_nothing_else_can(world):
    cfg = _installed(world)
    _publish_1_1_0(world)
    assert client.sync(cfg).current == "1.1.0"
    (cfg.state_dir / "versions" / "1.1.0" / "model.tflite").write_bytes(b"junk")
    offline = device(world, server="http://127.0.0.1:9/", timeout=1.0, bundled=BUNDLE)
    r = client.sync(offline)
    assert (r.outcome, r.reason, r.current, r.bundled) == ("failed", "network", None, "0.0.0-bundled"), r
    assert run_model(cfg.state_dir, bundled=BUNDLE).version == "0.0.0-bundled"
    with pytest.raises(Exception, match="no current model"):
        run_model(cfg.state_dir)
    r = client.sync(cfg)  # back online: 1.1.0 again, and 1.0.0 is still the previous
    assert (r.outcome, r.current, r.previous, r.bundled) == ("installed", "1.1.0", "1.0.0", None), r
    assert sorted(p.name for p in (cfg.state_dir / "versions").iterdir()) == ["1.0.0", "1.1.0"]
    runs_verified_model(cfg, "1.1.0")


def test_a_damaged_bundle_is_not_run(world, tmp_path):
    from tests.test_cli import run as cli

    bundle = tmp_path / "bundle"
    shutil.copytree(BUNDLE, bundle)
    state = tmp_path / "fresh-state"
    r = cli("device", "run", "--state", state, "--bundled", bundle, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["version"] == "0.0.0-bundled", r.output
    data = bytearray((bundle / "model.tflite").read_bytes())
    data[-1] ^= 0x01
    (bundle / "model.tflite").write_bytes(bytes(data))
    r = cli("device", "run", "--state", state, "--bundled", bundle)
    assert r.exit_code == 2 and "no valid bundle" in r.stderr, r.output
    shutil.copy(BUNDLE / "model.tflite", bundle / "model.tflite")
    args = ["device", "sync", "--server", "http://127.0.0.1:9/", "--model", "digits", "--channel", "beta"]
    args += ["--public-key", world["key"] / "public.pem", "--state", state, "--install-id", "d"]
    args += ["--app-version", "1.0.0", "--timeout", "1", "--deadline", "2", "--min-rate", "10", "--rate-window", "1"]
    r = cli(*args, "--bundled", bundle)
    assert r.exit_code == 3 and "running the bundled 0.0.0-bundled" in r.stdout, r.output


# --- full disk (item 14) ---------------------------------------------------------------------------------------------


@pytest.fixture()
def small_disk(tmp_path):
    """A real 512 KiB tmpfs (needs root and mount); unmounted afterwards."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(disk, leave):
    """Fill ``disk`` until ``leave`` bytes are free (to the block)."""
    st = os.statvfs(disk)
    free = st.f_bavail * st.f_frsize
    filler = disk / "filler"
    with open(filler, "ab") as f:
        f.write(b"\0" * max(0, free - leave))
    return filler


def test_free_space_counts_every_block_the_install_writes(world, small_disk):
    """Free space of 2 × the release's bytes passed the old check, then the install ran out of disk halfway (exit 1
    before ENOSPC was mapped to no_space): whole blocks, the .etag files, .release.json and the state files count."""
    cfg = _installed(world, state_dir=small_disk / "state")
    _publish_1_1_0(world)
    release = client.mf.parse(_channel(world).read_bytes(), "beta.json").release
    _fill(small_disk, 2 * release.total_length + 4096)
    r = client.sync(cfg)
    assert (r.outcome, r.reason, r.current) == ("skipped", "no_space", "1.0.0"), r
    assert "needed" in r.detail  # refused before the download, not by ENOSPC halfway through it
    assert list((cfg.state_dir / "staging").iterdir()) == []
    runs_verified_model(cfg, "1.0.0")
    state_size = (cfg.state_dir / "state.json").stat().st_size + 1024
    need = fits.space_needed(release, cfg.state_dir, state_size)
    assert need > 2 * release.total_length


def test_disk_full_mid_install_cleans_up_and_the_next_check_installs(world, small_disk, monkeypatch):
    """ENOSPC while copying the version: a no_space skip, no versions/.1.1.0.tmp left, and once space is back the
    next check installs (a leftover copy used to hold the space, so every check said no_space)."""
    cfg = _installed(world, state_dir=small_disk / "state")
    _publish_1_1_0(world)
    release = client.mf.parse(_channel(world).read_bytes(), "beta.json").release
    filler = _fill(small_disk, fits.space_needed(release, cfg.state_dir, 4096) // 2)
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=1 << 40))  # the check is fooled
    r = client.sync(cfg)
    assert (r.outcome, r.reason, r.current) == ("skipped", "no_space", "1.0.0"), r
    assert [p.name for p in (cfg.state_dir / "versions").iterdir()] == ["1.0.0"]
    runs_verified_model(cfg, "1.0.0")
    monkeypatch.undo()
    filler.unlink()
    r = client.sync(cfg)
    assert (r.outcome, r.current) == ("installed", "1.1.0"), r
    runs_verified_model(cfg, "1.1.0")


def test_a_crash_left_version_copy_is_removed_before_the_space_check(world, small_disk):
    """A killed install left versions/.1.1.0.tmp; without removing it first, its space is counted as taken."""
    cfg = _installed(world, state_dir=small_disk / "state")
    _publish_1_1_0(world)
    release = client.mf.parse(_channel(world).read_bytes(), "beta.json").release
    need = fits.space_needed(release, cfg.state_dir, 4096)
    _fill(small_disk, need + 8192)
    leftover = cfg.state_dir / "versions" / ".1.1.0.tmp"
    leftover.mkdir()
    (leftover / "model.tflite").write_bytes(b"\1" * 16384)
    st = os.statvfs(small_disk)
    assert st.f_bavail * st.f_frsize < need
    r = client.sync(cfg)
    assert (r.outcome, r.current) == ("installed", "1.1.0"), r
    runs_verified_model(cfg, "1.1.0")
    assert not leftover.exists()


# --- runtime.min_version (item 17) -----------------------------------------------------------------------------------


def test_runtime_min_version_is_checked(world):
    cfg = _installed(world)
    installed = fits.litert_version()
    assert installed is not None

    def needs(version):
        def edit(doc):
            doc["manifest_version"] += 1
            doc["release"]["version"] = "1.1.0"
            doc["release"]["runtime"]["min_version"] = version

        return edit

    _sign_channel(world, needs("99.0.0"))
    r = client.sync(cfg)
    assert (r.outcome, r.reason, r.current) == ("skipped", "runtime", "1.0.0"), r
    assert "99.0.0" in r.detail and installed in r.detail
    no_litert = device(world, install_id="no-litert", runtime_version=None)
    assert (client.sync(no_litert).reason, client.current_model(no_litert.state_dir)) == ("runtime", None)
    _sign_channel(world, needs(".".join(installed.split(".")[:3])))  # exactly the installed version: fine
    r = client.sync(cfg)
    assert (r.outcome, r.current) == ("installed", "1.1.0"), r
    runs_verified_model(cfg, "1.1.0")


def test_runtime_versions_compare_as_semver():
    assert fits.runtime_key("2.3.0") == fits.runtime_key("2.3.0")
    assert fits.runtime_key("2.3.0.dev20251101") < fits.runtime_key("2.3.0") < fits.runtime_key("2.10.0")
    assert fits.runtime_key("nightly") is None

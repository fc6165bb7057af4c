"""One test (or more) per row of the update channel's threat table, each written so that it FAILS when that row's
defence is removed. ``benchmarks/mutants.py`` (group "channel") removes each defence in a scratch copy and names
the test here that must catch it; ``benchmarks/mutation_check.py --group channel`` proves every mutant is killed.

The threat rows are those of ``docs/update-protocol.md`` ("Threats and the tests that prove them"). Tests are named
``test_tNN_...`` after their row.
"""

import base64
import hashlib
import json
import shutil
import socket
import threading
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from mobile_ml.client import download
from mobile_ml.client import sync as client
from mobile_ml.contracts.manifest import Refusal
from mobile_ml.publish import keys, publisher, trust
from mobile_ml.publish import manifest as mf
from mobile_ml.publish.storage import ConcurrentUpdate, ExistsDifferent, open_root
from tests.test_client import (
    _channel,
    _forged_old_key_manifest,
    _installed,
    _next_release,
    _sign_channel,
    device,
    runs_verified_model,
    world,
)
from tests.test_publish import key_dir, s3_endpoint, s3_env
from tests.test_serve import req, running

__all__ = ["key_dir", "s3_endpoint", "s3_env", "world"]  # fixtures, imported so pytest finds them here

VECTORS = Path(__file__).parent / "vectors"
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


# --- signed manifests built in memory, for the pure checks (trust.check_manifest) -----------------------------


@pytest.fixture()
def signer(digits_export, key_dir, tmp_path):
    """Build and sign manifests around a real published release: ``signer(**fields) -> (raw, sig)``."""
    root = tmp_path / "signer-root"
    release = publisher.publish(
        str(root), digits_export.run, model="digits", version="1.0.0", channel="beta", key=key_dir
    ).manifest.release
    private = keys.load_private(key_dir)

    def make(private_key=private, **kw):
        fields = dict(
            model="digits",
            channel="beta",
            manifest_version=5,
            key_id=keys.key_id(private_key.public_key()),
            release=release,
            rollout_percent=100,
            salt="salt",
            fallback=None,
            action="publish",
            now=NOW,
        )
        fields.update(kw)
        raw = mf.dumps(mf.build(**fields))
        return raw, keys.sign(private_key, raw)

    make.public = private.public_key()
    make.release = release
    make.root = root
    return make


def _decide(raw, sig, public, *, now=NOW, model="digits", channel="beta", last_version=None, last_sha256=None):
    try:
        trust.check_manifest(
            raw,
            sig,
            public,
            now=now,
            model=model,
            channel=channel,
            last_version=last_version,
            last_sha256=last_sha256,
        )
        return "accept"
    except trust.Rejected as e:
        return e.reason.value


def _publish(world, version, **kw):
    kw.setdefault("variant", "fp32")
    return publisher.publish(
        str(world["root"]), world["run"], model="digits", version=version, channel="beta", key=world["key"], **kw
    ).manifest


class _Opens:
    """Spy on the client's HTTP opens: (path, request headers, response status)."""

    def __init__(self, monkeypatch):
        self.seen = []
        real = download.Http.open

        def spy(http, path, headers=None):
            resp = real(http, path, headers)
            self.seen.append((path, dict(headers or {}), download.status(resp)))
            return resp

        monkeypatch.setattr(download.Http, "open", spy)

    def of(self, path):
        return [s for s in self.seen if s[0] == path]


# --- 1: forged manifest; the signature is verified before anything is parsed ---------------------------------


def test_t01_forged_manifests_are_refused(signer, tmp_path):
    raw, sig = signer()
    assert _decide(raw, sig, signer.public) == "accept"
    flipped = bytearray(raw)
    flipped[raw.index(b'"percent"') + 12] ^= 1
    assert _decide(bytes(flipped), sig, signer.public) == "bad_signature"
    assert _decide(raw, b"", signer.public) == "bad_signature"
    keys.generate(tmp_path / "other")
    other = keys.load_private(tmp_path / "other")
    assert _decide(raw, keys.sign(other, raw), signer.public) == "bad_signature"


@pytest.mark.parametrize("body", [b"{" * 50_000, b"\xff\xfe not json", b'{"manifest_version": 1, "x": 1e400}'])
def test_t01_signature_is_verified_before_any_parsing(signer, monkeypatch, body):
    """Unverified bytes are never interpreted: garbage with a bad signature is bad_signature, and no parser runs."""
    from mobile_ml import contracts

    calls = []
    for mod, name in ((mf, "parse"), (contracts, "parse_document"), (json, "loads")):
        real = getattr(mod, name)
        monkeypatch.setattr(mod, name, lambda *a, _real=real, **k: calls.append(a[:1]) or _real(*a, **k))
    _, sig = signer()
    assert _decide(body, sig, signer.public) == "bad_signature"
    assert calls == []


# --- 2: wrong file at the right URL: sha256 and length pinned by the manifest ---------------------------------


def test_t02_same_length_swapped_blob_is_refused_by_its_hash(world):
    cfg = _installed(world)
    entry = _publish(world, "1.1.0").release.file("model.tflite")
    blob = bytearray((world["root"] / entry.url).read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # same length, so only the hash can tell
    (world["root"] / entry.url).write_bytes(bytes(blob))
    r = client.sync(cfg)
    assert (r.outcome, r.reason, r.current) == ("rejected", "hash_mismatch", "1.0.0"), r
    runs_verified_model(cfg, "1.0.0")
    assert list((cfg.state_dir / "staging").iterdir()) == []  # not cached for a later resume


def test_t02_length_is_checked_on_its_own(signer):
    entry = signer.release.file("metadata.json")
    data = (signer.root / entry.url).read_bytes()
    trust.check_file(data, entry)
    for wrong in (data[:-1], data + b" "):
        with pytest.raises(trust.Rejected) as e:
            trust.check_file(wrong, entry)
        assert e.value.reason == Refusal.LENGTH_MISMATCH


# --- 3: rollback to an older signed manifest; replay of the same version with other content -------------------


def test_t03_older_manifest_is_a_rollback_and_same_version_other_bytes_a_replay(signer):
    raw, sig = signer(manifest_version=5)
    seen = hashlib.sha256(raw).hexdigest()
    assert _decide(raw, sig, signer.public, last_version=5, last_sha256=seen) == "accept"  # nothing new
    assert _decide(raw, sig, signer.public, last_version=6, last_sha256="0" * 64) == "rollback"
    other, other_sig = signer(manifest_version=5, salt="other")
    assert _decide(other, other_sig, signer.public, last_version=5, last_sha256=seen) == "replay_different"
    newer, newer_sig = signer(manifest_version=6)
    assert _decide(newer, newer_sig, signer.public, last_version=5, last_sha256=seen) == "accept"


# --- 4: freeze: signed expiry, checked against ONE clock reading per check ------------------------------------


def test_t04_expiry_is_checked_at_the_boundary(signer):
    raw, sig = signer(now=NOW, expires_days=1)
    expires = NOW + timedelta(days=1)
    assert _decide(raw, sig, signer.public, now=expires - timedelta(seconds=1)) == "accept"
    assert _decide(raw, sig, signer.public, now=expires) == "expired"
    assert _decide(raw, sig, signer.public, now=expires + timedelta(days=400)) == "expired"


def test_t04_the_clock_is_read_once_per_check(world):
    """A clock that moves past the manifest's expiry after its first reading: the check uses the time it started
    with, for the expiry check and for last_check alike (reading it twice gives two answers in one check)."""
    from mobile_ml.client import state as device_state

    start = datetime.now(timezone.utc).replace(microsecond=0)
    readings = []

    def clock():
        readings.append(None)
        return start if len(readings) == 1 else start + timedelta(days=365)

    cfg = device(world, now=clock)
    r = client.sync(cfg)
    assert (r.outcome, r.current) == ("installed", "1.0.0"), r
    assert len(readings) == 1
    assert device_state.load(cfg.state_dir)[0].last_check.time == start


# --- 5: mix-and-match: the signed document names its model and channel ----------------------------------------


def test_t05_another_channels_manifest_is_refused(signer, world):
    raw, sig = signer(channel="stable")
    assert _decide(raw, sig, signer.public, channel="beta") == "wrong_channel"
    raw, sig = signer()
    assert _decide(raw, sig, signer.public, model="other") == "wrong_channel"  # digits' manifest for another model
    # end to end: stable's valid, signed manifest served at beta's URL
    cfg = _installed(world)
    publisher.publish(
        str(world["root"]), world["run"], model="digits", version="2.0.0", channel="stable", key=world["key"]
    )
    stable = world["root"] / "digits" / "channels" / "stable.json"
    shutil.copy(stable, _channel(world))
    shutil.copy(str(stable) + ".sig", str(_channel(world)) + ".sig")
    r = client.sync(cfg)
    assert (r.outcome, r.reason, r.current) == ("rejected", "wrong_channel", "1.0.0"), r
    runs_verified_model(cfg, "1.0.0")


# --- 6: endless data: every read is capped; never past the signed length --------------------------------------


def _count_reads(monkeypatch) -> dict[str, int]:
    """Bytes the client reads from the network, per thing read (a manifest, "signature", a blob)."""
    got: dict[str, int] = {}
    real = download.Http.read_some

    def spy(self, resp, n, what, meter):
        out = real(self, resp, n, what, meter)
        got[what] = got.get(what, 0) + len(out)
        return out

    monkeypatch.setattr(download.Http, "read_some", spy)
    return got


def test_t06_manifest_reads_are_capped(world, monkeypatch):
    cfg = _installed(world)
    _channel(world).write_bytes(b" " * (3 * mf.MAX_MANIFEST_BYTES))
    got = _count_reads(monkeypatch)
    r = client.sync(cfg)
    assert (r.outcome, r.reason) == ("rejected", "too_large"), r
    assert max(got.values()) <= mf.MAX_MANIFEST_BYTES + 1
    runs_verified_model(cfg, "1.0.0")


def test_t06_an_oversized_manifest_is_refused_even_when_signed(signer, key_dir):
    big = b" " * (mf.MAX_MANIFEST_BYTES + 1)
    assert _decide(big, keys.sign(keys.load_private(key_dir), big), signer.public) == "too_large"


def test_t06_signature_reads_are_capped(world, monkeypatch):
    cfg = _installed(world)
    _next_release(world)
    (world["root"] / "digits/channels/beta.json.sig").write_bytes(b"\0" * (3 << 20))
    got = _count_reads(monkeypatch)
    r = client.sync(cfg)
    assert (r.outcome, r.reason, r.current) == ("rejected", "too_large", "1.0.0"), r
    assert got["signature"] <= client.MAX_SIGNATURE_BYTES + 1
    runs_verified_model(cfg, "1.0.0")


class _EndlessTelemetry:
    """A raw HTTP server: 404 for every GET (the check fails at once), and an endless reply to the telemetry POST.
    ``sent`` counts the reply bytes the client took before it hung up."""

    LIMIT = 64 << 20  # stop somewhere, so that a client without a cap still returns (and the test can fail)

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/"
        self.sent = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                head = b""
                while b"\r\n\r\n" not in head and (chunk := conn.recv(4096)):
                    head += chunk
                if not head.startswith(b"POST"):
                    conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    continue
                try:
                    conn.sendall(b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n\r\n")
                    block = b"x" * 65536
                    while self.sent < self.LIMIT:
                        conn.sendall(block)
                        self.sent += len(block)
                except OSError:
                    pass  # the client hung up: what we want

    def close(self):
        self.sock.close()


def test_t06_the_telemetry_reply_is_read_with_a_cap(world):
    endless = _EndlessTelemetry()
    try:
        r = client.sync(device(world, server=endless.url, timeout=5.0))
    finally:
        endless.close()
    assert (r.outcome, r.reason) == ("failed", "http_404"), r
    # the client read 64 KiB and hung up; the rest is what loopback socket buffers held (a few MiB at most)
    assert endless.sent < endless.LIMIT // 4, endless.sent


class _Longer:
    """ASGI wrapper: every blob comes back with ``extra`` bytes appended and no Content-Length (chunked): only the
    client's own count of the signed length stops it reading."""

    def __init__(self, app, extra=256 * 1024):
        self.app, self.extra, self.sent = app, extra, 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith("/blobs/"):
            return await self.app(scope, receive, send)
        body = bytearray()

        async def collect(message):
            if message["type"] == "http.response.start":
                self.start = {**message, "headers": [h for h in message["headers"] if h[0] != b"content-length"]}
            else:
                body.extend(message.get("body", b""))
                if not message.get("more_body"):
                    await send(self.start)
                    await send({"type": "http.response.body", "body": bytes(body) + b"\0" * self.extra})

        await self.app(scope, receive, collect)


def test_t06_a_blob_is_never_read_past_its_signed_length(digits_export, key_dir, tmp_path):
    from mobile_ml.deliver.server import create_app

    root = tmp_path / "root"
    publisher.publish(str(root), digits_export.run, model="digits", version="1.0.0", channel="beta", key=key_dir)
    with running(_Longer(create_app(root))) as port:
        cfg = client.DeviceConfig(
            server=f"http://127.0.0.1:{port}/",
            model="digits",
            channel="beta",
            public_key=keys.load_public(key_dir),
            state_dir=tmp_path / "state",
            install_id="d",
            app_version="1.0.0",
            timeout=5.0,
            send_telemetry=False,
        )
        r = client.sync(cfg)
    assert (r.outcome, r.current) == ("installed", "1.0.0"), r
    runs_verified_model(cfg, "1.0.0")


# --- 7: slow retrieval: timeouts; a stalled download keeps what it got ----------------------------------------


def test_t07_a_silent_server_times_out_and_the_model_stays(world):
    cfg = _installed(world)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    results = []
    silent = device(world, server=f"http://127.0.0.1:{listener.getsockname()[1]}/", timeout=0.5, send_telemetry=False)
    worker = threading.Thread(target=lambda: results.append(client.sync(silent)), daemon=True)
    try:
        worker.start()
        worker.join(15)  # a client without a timeout would still be waiting
        assert not worker.is_alive(), "the check did not time out"
    finally:
        listener.close()
    assert (results[0].outcome, results[0].reason) == ("failed", "network")
    runs_verified_model(cfg, "1.0.0")


def test_t07_a_stalled_body_fails_as_network_and_keeps_its_bytes(world):
    cfg = _installed(world)
    entry = _next_release(world)
    faults = world["faults"]
    faults.target, faults.mode, faults.cut_at, faults.stall_s = entry.url, "stall", entry.length // 2, 2.0
    r = client.sync(device(world, timeout=0.5))
    assert (r.outcome, r.reason, r.current) == ("failed", "network", "1.0.0"), r
    part = cfg.state_dir / "staging" / f"{entry.sha256}.part"
    assert part.stat().st_size == entry.length // 2  # every byte that arrived, for the next check to resume
    r = client.sync(cfg)
    assert (r.outcome, r.current) == ("installed", "1.1.0"), r
    runs_verified_model(cfg, "1.1.0")


# --- 8: key rotation: followed only when the trusted key signed it; the old key is refused afterwards ----------


def test_t08_after_a_rotation_the_old_key_is_refused(world):
    from mobile_ml.publish.rotation import rotate

    cfg = _installed(world)
    new_key = world["tmp"] / "new-key"
    keys.generate(new_key)
    rotate(str(world["root"]), "digits", old_key=world["key"], new_key=new_key)
    publisher.publish(
        str(world["root"]), world["run"], model="digits", version="1.1.0", channel="beta", key=new_key, variant="fp32"
    )
    r = client.sync(cfg)
    assert (r.outcome, r.current) == ("installed", "1.1.0"), r
    _forged_old_key_manifest(world)
    r = client.sync(cfg)
    assert (r.outcome, r.reason, r.current) == ("rejected", "bad_signature", "1.1.0"), r
    runs_verified_model(cfg, "1.1.0")


def test_t08_a_rotation_not_signed_by_the_trusted_key_is_not_followed(world):
    """A statement that claims to come from the channel's key (its id and public key) but is signed by a stranger."""
    from mobile_ml.contracts.manifest import KeyRotation
    from mobile_ml.publish.rotation import statement_path

    cfg = _installed(world)
    stranger, new_key = world["tmp"] / "stranger", world["tmp"] / "new"
    keys.generate(stranger)
    keys.generate(new_key)
    old_pub, new_private = keys.load_public(world["key"]), keys.load_private(new_key)
    doc = KeyRotation(
        model="digits",
        old_key_id=keys.key_id(old_pub),
        old_public_key_b64=base64.b64encode(keys.public_der(old_pub)).decode(),
        new_key_id=keys.key_id(new_private.public_key()),
        new_public_key_b64=base64.b64encode(keys.public_der(new_private.public_key())).decode(),
        issued_at=NOW,
    )
    data = mf.dumps(doc)
    path = world["root"] / statement_path("digits", doc.new_key_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    Path(str(path) + ".sig").write_bytes(keys.sign(keys.load_private(stranger), data))

    def take_over(m):
        m["key_id"], m["manifest_version"] = doc.new_key_id, 50

    doc_json = json.loads(_channel(world).read_bytes())
    take_over(doc_json)
    raw = mf.dumps(doc_json)
    _channel(world).write_bytes(raw)
    (world["root"] / "digits/channels/beta.json.sig").write_bytes(keys.sign(new_private, raw))
    r = client.sync(cfg)
    assert (r.outcome, r.reason, r.current) == ("rejected", "bad_signature", "1.0.0"), r
    runs_verified_model(cfg, "1.0.0")


def test_t08_a_manifest_must_name_the_key_that_signed_it(signer):
    raw, sig = signer(key_id="0" * 64)
    assert _decide(raw, sig, signer.public) == "wrong_key"


# --- 9: interrupted download: Range + If-Range on a strong ETag, hash after assembly --------------------------


def test_t09_a_cut_download_resumes_with_range_and_if_range(world, monkeypatch):
    cfg = _installed(world)
    entry = _next_release(world)
    blob = (world["root"] / entry.url).read_bytes()
    staging = cfg.state_dir / "staging"
    (staging / f"{entry.sha256}.part").write_bytes(blob[: len(blob) // 2])
    (staging / f"{entry.sha256}.etag").write_text(f'"{entry.sha256}"')
    opens = _Opens(monkeypatch)
    assert client.sync(cfg).current == "1.1.0"
    [(_, headers, status)] = opens.of(entry.url)
    assert headers == {"Range": f"bytes={len(blob) // 2}-", "If-Range": f'"{entry.sha256}"'} and status == 206
    runs_verified_model(cfg, "1.1.0")


def test_t09_a_partial_of_other_content_restarts_in_one_request(world, monkeypatch):
    """The saved validator no longer matches: If-Range makes the server send the whole file (200) at once, instead
    of a range that would be appended to the wrong bytes, fail its hash and be fetched a second time."""
    cfg = _installed(world)
    entry = _next_release(world)
    staging = cfg.state_dir / "staging"
    (staging / f"{entry.sha256}.part").write_bytes(b"x" * 100)
    (staging / f"{entry.sha256}.etag").write_text('"stale"')
    opens = _Opens(monkeypatch)
    assert client.sync(cfg).current == "1.1.0"
    assert [status for _, _, status in opens.of(entry.url)] == [200]
    runs_verified_model(cfg, "1.1.0")


def test_t09_a_corrupt_partial_fails_its_hash_then_downloads_whole(world):
    cfg = _installed(world)
    entry = _next_release(world)
    staging = cfg.state_dir / "staging"
    (staging / f"{entry.sha256}.part").write_bytes(bytes(entry.length // 2))
    (staging / f"{entry.sha256}.etag").write_text(f'"{entry.sha256}"')
    r = client.sync(cfg)
    assert (r.outcome, r.current) == ("installed", "1.1.0"), r
    runs_verified_model(cfg, "1.1.0")


def test_t09_the_server_honours_if_range_by_strong_comparison(digits_export, key_dir, tmp_path):
    from mobile_ml.deliver.server import create_app

    root = tmp_path / "root"
    m = publisher.publish(str(root), digits_export.run, model="digits", version="1.0.0", channel="beta", key=key_dir)
    url = "/" + m.manifest.release.file("model.tflite").url
    blob = (root / url[1:]).read_bytes()
    with running(create_app(root)) as port:
        status, h, _ = req(port, "GET", url)
        etag = h["etag"]
        assert status == 200 and etag == f'"{hashlib.sha256(blob).hexdigest()}"'
        status, _, data = req(port, "GET", url, {"Range": "bytes=100-", "If-Range": etag})
        assert status == 206 and data == blob[100:]
        for stale in ('"stale"', f"W/{etag}"):
            status, _, data = req(port, "GET", url, {"Range": "bytes=100-", "If-Range": stale})
            assert status == 200 and data == blob, stale


# --- 10: crash during install: stage, atomic pointer switch, previous model kept ------------------------------


def test_t10_a_crash_at_the_version_rename_keeps_a_loadable_model(world, monkeypatch):
    import pathlib

    cfg = _installed(world)
    _next_release(world)
    real = pathlib.Path.rename

    def crash(self, target):
        if Path(target).name == "1.1.0":
            raise KeyboardInterrupt  # the process dies as the new version moves into place
        return real(self, target)

    monkeypatch.setattr(pathlib.Path, "rename", crash)
    with pytest.raises(KeyboardInterrupt):
        client.sync(cfg)
    monkeypatch.undo()
    found = client.current_model(cfg.state_dir)
    assert found is not None and found[0].name == "1.0.0"
    r = client.sync(cfg)
    assert (r.outcome, r.current) == ("installed", "1.1.0"), r
    runs_verified_model(cfg, "1.1.0")


def test_t10_the_previous_model_is_kept_beside_the_new_one(world):
    cfg = _installed(world)
    _next_release(world)
    assert client.sync(cfg).current == "1.1.0"
    assert sorted(p.name for p in (cfg.state_dir / "versions").iterdir()) == ["1.0.0", "1.1.0"]
    from mobile_ml.export.metadata import health_check

    old = cfg.state_dir / "versions" / "1.0.0"
    assert health_check((old / "model.tflite").read_bytes(), (old / "metadata.json").read_bytes()).ok


# --- 11: signed but broken model: the health check's verdict decides the switch -------------------------------


def test_t11_a_model_that_loads_but_answers_wrong_is_not_switched_to(world, tmp_path):
    """A release whose model loads fine but does not give the answers its signed metadata promises."""
    cfg = _installed(world)
    wrong = tmp_path / "wrong-run"
    shutil.copytree(world["run"], wrong)
    meta_path = wrong / "exports" / "fp32" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    case = meta["health_check"]
    case["expected_probabilities"] = case["expected_probabilities"][1:] + case["expected_probabilities"][:1]
    case["expected_top1"] = (case["expected_top1"] + 1) % len(meta["labels"])
    case["expected_label"] = meta["labels"][case["expected_top1"]]
    meta_path.write_text(json.dumps(meta))
    publisher.publish(
        str(world["root"]), wrong, model="digits", version="1.1.0", channel="beta", key=world["key"], variant="fp32"
    )
    r = client.sync(cfg)
    assert (r.outcome, r.reason, r.current) == ("failed", "health_check", "1.0.0"), r
    runs_verified_model(cfg, "1.0.0")
    assert sorted(p.name for p in (cfg.state_dir / "versions").iterdir()) == ["1.0.0"]


# --- 12: publisher: create-only history and blobs, compare-and-swap of the channel ----------------------------


def _overwrites_are_refused(storage, path):
    assert storage.create(path, b"first\n") is True
    assert storage.create(path, b"first\n") is False  # the same bytes again: fine, nothing written
    with pytest.raises(ExistsDifferent):
        storage.create(path, b"second\n")
    assert storage.read(path) == b"first\n"


def test_t12_history_cannot_be_overwritten_in_a_local_root(digits_export, key_dir, tmp_path, monkeypatch):
    from mobile_ml.publish import channel as channel_mod

    root = tmp_path / "root"
    publisher.publish(str(root), digits_export.run, model="digits", version="1.0.0", channel="beta", key=key_dir)
    storage = open_root(str(root))
    _overwrites_are_refused(storage, "digits/history/beta/00000099.json")
    # a publisher that built a manifest_version already issued (it can only be forced here) must not replace that
    # history entry: the signed record of what the channel committed stays as it was
    hist = root / "digits" / "history" / "beta" / "00000001.json"
    before = hist.read_bytes(), (root / "digits" / "history" / "beta" / "00000001.json.sig").read_bytes()
    real = channel_mod.read_state
    monkeypatch.setattr(publisher, "read_state", lambda *a: replace(real(*a), next_version=1))
    publisher.publish(str(root), digits_export.run, model="digits", version="1.1.0", channel="beta", key=key_dir)
    assert (hist.read_bytes(), (root / "digits" / "history" / "beta" / "00000001.json.sig").read_bytes()) == before


def test_t12_history_cannot_be_overwritten_in_s3(s3_env):
    _, bucket = s3_env
    _overwrites_are_refused(open_root(f"s3://{bucket}/p"), "digits/history/beta/00000001.json")


@pytest.mark.parametrize("where", ["local", "s3"])
def test_t12_the_channel_is_replaced_only_by_compare_and_swap(where, tmp_path, request):
    if where == "s3":
        storage = open_root(f"s3://{request.getfixturevalue('s3_env')[1]}/cas")
    else:
        storage = open_root(str(tmp_path / "root"))
    path = "digits/channels/beta.json"
    storage.replace(path, b"v1\n", None)
    tag = storage.tag(path)
    storage.replace(path, b"v2\n", tag)  # this writer read v1 and wins
    with pytest.raises(ConcurrentUpdate):
        storage.replace(path, b"v3\n", tag)  # this one also read v1: it lost
    with pytest.raises(ConcurrentUpdate):
        storage.replace(path, b"v4\n", None)  # "must not exist yet"
    assert storage.read(path) == b"v2\n"


def test_t12_a_publisher_dying_at_the_manifest_write_leaves_the_old_manifest_usable(world, monkeypatch):
    """Blobs, release and history first, the channel manifest and then its signature last: a publisher killed as it
    writes the manifest leaves the old manifest and its signature in place, so devices keep working."""
    from mobile_ml.publish.storage import LocalStorage

    cfg = _installed(world)

    def die(self, path, data, expected):
        raise KeyboardInterrupt  # killed at the manifest write

    monkeypatch.setattr(LocalStorage, "replace", die)
    with pytest.raises(KeyboardInterrupt):
        _publish(world, "1.1.0")
    monkeypatch.undo()
    r = client.sync(cfg)
    assert (r.outcome, r.current) == ("not_modified", "1.0.0"), r
    fresh = device(world, install_id="fresh-phone")
    r = client.sync(fresh)
    assert (r.outcome, r.current) == ("installed", "1.0.0"), r
    runs_verified_model(fresh, "1.0.0")


# --- 13: CDN: short max-age + ETag for manifests, immutable blobs, 304 ----------------------------------------


def test_t13_cache_headers_etags_and_304(digits_export, key_dir, tmp_path):
    import re

    from mobile_ml.deliver.server import create_app

    root = tmp_path / "root"
    m = publisher.publish(str(root), digits_export.run, model="digits", version="1.0.0", channel="beta", key=key_dir)
    blob = "/" + m.manifest.release.file("model.tflite").url
    manifest = "/digits/channels/beta.json"
    with running(create_app(root)) as port:
        status, h, data = req(port, "GET", manifest)
        assert status == 200 and h["etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
        age = re.search(r"max-age=(\d+)", h["cache-control"])
        assert age and int(age.group(1)) <= 300 and "immutable" not in h["cache-control"]
        assert req(port, "GET", manifest, {"If-None-Match": h["etag"]})[0] == 304
        for path in (blob, "/digits/history/beta/00000001.json", "/digits/releases/1.0.0.json"):
            status, hb, _ = req(port, "GET", path)
            assert status == 200 and "immutable" in hb["cache-control"] and hb["etag"], path
        assert req(port, "GET", blob, {"If-None-Match": hb["etag"]})[0] == 200  # another file's tag: not a match
        blob_etag = req(port, "GET", blob)[1]["etag"]
        assert req(port, "GET", blob, {"If-None-Match": blob_etag})[0] == 304  # the full handler's 304 (no fast lane)
        publisher.publish(
            str(root), digits_export.run, model="digits", version="1.1.0", channel="beta", key=key_dir, variant="int8"
        )
        status, h2, data2 = req(port, "GET", manifest, {"If-None-Match": h["etag"]})
        assert status == 200 and data2 != data and h2["etag"] == f'"{hashlib.sha256(data2).hexdigest()}"'
        assert req(port, "GET", manifest, {"If-None-Match": h2["etag"]})[0] == 304
    with running(create_app(root)) as port:  # a restarted server: the first check of each device is still a 304
        assert req(port, "GET", manifest, {"If-None-Match": h2["etag"]})[0] == 304


# --- 14: rollout: signed percent + salt; one bucketing rule, shared vectors; raising keeps everyone in ----------


def test_t14_bucketing_vectors_and_the_boundary():
    cases = json.loads((VECTORS / "bucketing.json").read_text())["cases"]
    for c in cases:
        assert mf.bucket(c["salt"], c["install_id"]) == c["bucket"], c
        assert mf.in_rollout(c["percent"], c["salt"], c["install_id"]) == c["in_rollout"], c
    b = mf.bucket("edge", "device-7")
    assert not mf.in_rollout(b / 100, "edge", "device-7")  # in when bucket < percent × 100, not ≤
    assert mf.in_rollout((b + 1) / 100, "edge", "device-7")


def test_t14_raising_the_rollout_keeps_everyone_already_in(digits_export, key_dir, tmp_path):
    root = str(tmp_path / "root")
    run = digits_export.run
    publisher.publish(root, run, model="digits", version="1.0.0", channel="beta", key=key_dir)
    at10 = publisher.publish(root, run, model="digits", version="1.1.0", channel="beta", key=key_dir, rollout=10)
    at20 = publisher.set_rollout(root, "digits", "beta", percent=20, key=key_dir)
    s10, s20 = at10.manifest.rollout.salt, at20.manifest.rollout.salt
    ids = [f"phone-{i}" for i in range(400)]
    inside10 = {i for i in ids if mf.in_rollout(10, s10, i)}
    inside20 = {i for i in ids if mf.in_rollout(20, s20, i)}
    assert inside10 and inside10 <= inside20 and len(inside20) > len(inside10)


def test_t14_a_halted_rollout_lets_no_new_device_in(signer):
    import dataclasses

    raw, sig = signer(rollout_percent=100)
    m = trust.check_manifest(raw, sig, signer.public, now=NOW, model="digits", channel="beta")
    fallback = dataclasses.replace(m.release, version="0.9.0")
    halted = dataclasses.replace(m, rollout=dataclasses.replace(m.rollout, halted=True), fallback=fallback)
    assert trust.select_release(halted, "new-phone", None) == fallback
    assert trust.select_release(halted, "on-it", m.release.version) == m.release
    assert trust.select_release(dataclasses.replace(halted, rollout=m.rollout), "new-phone", None) == m.release


# --- 15: operator rollback: a new, higher manifest pointing at the old release --------------------------------


def test_t15_rollback_moves_devices_back_and_the_real_old_manifest_stays_refused(world):
    cfg = _installed(world)
    _publish(world, "1.1.0")
    assert client.sync(cfg).current == "1.1.0"
    bad = _channel(world).read_bytes(), (world["root"] / "digits/channels/beta.json.sig").read_bytes()
    back = publisher.rollback(str(world["root"]), "digits", "beta", key=world["key"]).manifest
    assert back.release.version == "1.0.0" and back.manifest_version == 3
    r = client.sync(cfg)
    assert (r.outcome, r.current, r.manifest_version) == ("installed", "1.0.0", 3), r
    runs_verified_model(cfg, "1.0.0")
    hist = world["root"] / "digits" / "history" / "beta"
    for raw, sig in (bad, ((hist / "00000001.json").read_bytes(), (hist / "00000001.json.sig").read_bytes())):
        _channel(world).write_bytes(raw)
        (world["root"] / "digits/channels/beta.json.sig").write_bytes(sig)
        r = client.sync(cfg)
        assert (r.outcome, r.reason, r.current) == ("rejected", "rollback", "1.0.0"), r
    runs_verified_model(cfg, "1.0.0")


# --- 16: incompatible model, full disk: checked before any download -------------------------------------------


def test_t16_too_old_app_is_skipped_before_download(world, monkeypatch):
    cfg = _installed(world)
    entry = _publish(world, "1.1.0", min_app_version="1.0.1").release.file("model.tflite")
    opens = _Opens(monkeypatch)
    r = client.sync(cfg)
    assert (r.outcome, r.reason, r.current) == ("skipped", "app_too_old", "1.0.0"), r
    assert opens.of(entry.url) == []
    r = client.sync(device(world, app_version="1.0.1"))
    assert (r.outcome, r.current) == ("installed", "1.1.0"), r


def test_t16_another_runtime_is_skipped_before_download(world, monkeypatch):
    cfg = _installed(world)
    entry = _publish(world, "1.1.0").release.file("model.tflite")
    _sign_channel(world, lambda doc: doc["release"]["runtime"].update(name="onnxruntime"))
    opens = _Opens(monkeypatch)
    r = client.sync(cfg)
    assert (r.outcome, r.reason, r.current) == ("skipped", "runtime", "1.0.0"), r
    assert opens.of(entry.url) == []
    runs_verified_model(cfg, "1.0.0")


def test_t16_too_little_space_is_skipped_before_download(world, monkeypatch):
    cfg = _installed(world)
    release = _publish(world, "1.1.0").release
    opens = _Opens(monkeypatch)
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=release.total_length // 2))
    r = client.sync(cfg)
    assert (r.outcome, r.reason, r.current) == ("skipped", "no_space", "1.0.0"), r
    assert opens.of(release.file("model.tflite").url) == []
    runs_verified_model(cfg, "1.0.0")
    monkeypatch.setattr(shutil, "disk_usage", real)
    assert client.sync(cfg).current == "1.1.0"

"""`mobile-ml serve` over real HTTP on loopback: ETag/304, ranges, HEAD, cache headers, path safety, telemetry."""

import hashlib
import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from mobile_ml.deliver import telemetry


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = tmp_path_factory.mktemp("root")
    blob = bytes(range(256)) * 40  # 10,240 bytes
    digest = hashlib.sha256(blob).hexdigest()
    (r / "blobs" / "sha256").mkdir(parents=True)
    (r / "blobs" / "sha256" / digest).write_bytes(blob)
    (r / "digits" / "channels").mkdir(parents=True)
    (r / "digits" / "channels" / "beta.json").write_text('{"manifest_version": 1}\n')
    (r / "digits" / "channels" / ".beta.json.lock").write_text("")
    outside = tmp_path_factory.mktemp("outside") / "secret.txt"
    outside.write_text("secret")
    (r / "escape").symlink_to(outside)
    return r, blob, digest


@pytest.fixture(scope="module")
def server(root, tmp_path_factory):
    import uvicorn

    from mobile_ml.deliver.server import create_app

    db = tmp_path_factory.mktemp("db") / "telemetry.db"
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(root[0], db), log_level="error")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(100):
        if srv.started:
            break
        time.sleep(0.05)
    yield port, db
    srv.should_exit = True
    thread.join(10)


def req(port, method, path, headers=None, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def test_get_etag_and_304(server, root):
    port, _ = server
    _, blob, digest = root
    status, h, data = req(port, "GET", f"/blobs/sha256/{digest}")
    assert status == 200 and data == blob and h["etag"] == f'"{digest}"'
    assert h["content-length"] == str(len(blob)) and "immutable" in h["cache-control"]
    status, h2, data = req(port, "GET", f"/blobs/sha256/{digest}", {"If-None-Match": h["etag"]})
    assert status == 304 and data == b"" and h2["etag"] == h["etag"]
    status, h, data = req(port, "GET", "/digits/channels/beta.json")
    assert status == 200 and h["cache-control"] == "public, max-age=60, must-revalidate"
    assert h["etag"] == f'"{hashlib.sha256(data).hexdigest()}"' and h["content-type"].startswith("application/json")
    assert req(port, "GET", "/digits/channels/beta.json", {"If-None-Match": h["etag"]})[0] == 304


def test_ranges(server, root):
    port, _ = server
    _, blob, digest = root
    url = f"/blobs/sha256/{digest}"
    status, h, data = req(port, "GET", url, {"Range": "bytes=100-199"})
    assert status == 206 and data == blob[100:200] and h["content-range"] == f"bytes 100-199/{len(blob)}"
    status, h, data = req(port, "GET", url, {"Range": "bytes=5000-"})
    assert status == 206 and data == blob[5000:] and h["content-length"] == str(len(blob) - 5000)
    status, h, data = req(port, "GET", url, {"Range": "bytes=-10"})
    assert status == 206 and data == blob[-10:]
    status, h, _ = req(port, "GET", url, {"Range": f"bytes={len(blob)}-"})
    assert status == 416 and h["content-range"] == f"bytes */{len(blob)}"
    # If-Range with the current ETag resumes; with a stale one the whole (new) content comes back
    assert req(port, "GET", url, {"Range": "bytes=10-19", "If-Range": f'"{digest}"'})[0] == 206
    status, _, data = req(port, "GET", url, {"Range": "bytes=10-19", "If-Range": '"stale"'})
    assert status == 200 and data == blob


def test_head(server, root):
    port, _ = server
    _, blob, digest = root
    status, h, data = req(port, "HEAD", f"/blobs/sha256/{digest}")
    assert status == 200 and data == b"" and h["content-length"] == str(len(blob)) and h["etag"] == f'"{digest}"'


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/blobs",
        "/blobs/",
        "/../outside/secret.txt",
        "/%2e%2e/secret.txt",
        "/escape",
        "/digits/channels/.beta.json.lock",
        "/nope.json",
        "/digits/channels//beta.json",
    ],
)
def test_nothing_outside_files_in_the_root(server, path):
    status, _, data = req(server[0], "GET", path)
    assert status == 404 and b"secret" not in data


@pytest.mark.parametrize("method", ["PUT", "DELETE", "POST", "PATCH"])
def test_only_get_and_head_on_content(server, method):
    status, h, _ = req(server[0], method, "/digits/channels/beta.json", body=b"x")
    assert status == 405 and h["allow"] == "GET, HEAD"


def _event(**kw):
    e = {
        "install_id_hash": "ab" * 32,
        "model": "digits",
        "version": "1.0.0",
        "app_version": "2.1.0",
        "device_model": "Pixel 7",
        "event": "inference",
        "latency_ms": 0.8,
    }
    e.update(kw)
    return e


def _post(port, body, ctype="application/json"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return req(port, "POST", "/v1/telemetry", {"Content-Type": ctype}, data)


def _count(db):
    with sqlite3.connect(db) as c:
        return c.execute("SELECT COUNT(*) FROM events").fetchone()[0]


def test_telemetry_accepts_valid_batches_and_stores_strings_verbatim(server):
    port, db = server
    before = _count(db)
    tricky = "Pixel'); DROP TABLE events;--"
    status, _, data = _post(
        port,
        {
            "events": [
                _event(),
                _event(device_model=tricky, event="update_failed", latency_ms=None, error_code="hash_mismatch"),
            ]
        },
    )
    assert status == 202 and json.loads(data) == {"accepted": 2}
    assert _count(db) == before + 2
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT COUNT(*) FROM events WHERE device_model = ?", (tricky,)).fetchone()[0] == 1


@pytest.mark.parametrize(
    "body, status, ctype",
    [
        (b"{not json", 400, "application/json"),
        ({"events": [_event(latency_ms="fast")]}, 400, "application/json"),
        ({"events": [_event(event="hack")]}, 400, "application/json"),
        ({"events": [_event(extra=1)]}, 400, "application/json"),
        ({"events": [_event(install_id_hash="raw-install-id-123")]}, 400, "application/json"),
        ({"events": [_event(), {"model": "x"}]}, 400, "application/json"),  # one bad event: nothing stored
        ({"events": [_event()] * 101}, 413, "application/json"),
        ({"events": [_event(device_model="x" * 70_000)]}, 413, "application/json"),
        ({"events": [_event()]}, 415, "text/plain"),
        ({"events": []}, 400, "application/json"),
    ],
)
def test_telemetry_rejections_store_nothing(server, body, status, ctype):
    port, db = server
    before = _count(db)
    got, _, data = _post(port, body, ctype)
    assert got == status and "error" in json.loads(data)
    assert _count(db) == before


def test_telemetry_summary(tmp_path):
    store = telemetry.Store(tmp_path / "t.db")
    rows = []
    for i, (version, event, lat) in enumerate(
        [
            ("1.0.0", "update_applied", None),
            ("1.0.0", "inference", 1.0),
            ("1.0.0", "inference", 3.0),
            ("1.1.0", "update_failed", None),
            ("1.1.0", "update_applied", None),
            ("1.1.0", "inference", 2.0),
        ]
    ):
        rows.append(
            telemetry.validate(
                json.dumps(
                    {
                        "events": [
                            _event(install_id_hash=f"{i % 2:02x}" * 32, version=version, event=event, latency_ms=lat)
                        ]
                    }
                ).encode()
            )[0]
        )
    store.add(rows)
    store.close()
    s = {r.version: r for r in telemetry.summary(tmp_path / "t.db")}
    assert s["1.0.0"].latency_p50_ms == 2.0 and s["1.0.0"].inferences == 2 and s["1.0.0"].failure_rate == 0.0
    assert s["1.1.0"].updates_failed == 1 and s["1.1.0"].failure_rate == 0.5
    assert s["1.0.0"].adoption == 0.5 and s["1.1.0"].adoption == 0.5  # 1 of the 2 devices each


def test_serve_command_stops_gracefully_on_sigterm(root, tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mobile_ml",
            "serve",
            str(root[0]),
            "--port",
            str(port),
            "--telemetry-db",
            str(tmp_path / "t.db"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(200):
            try:
                if req(port, "GET", "/v1/health")[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail("server did not start")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in proc.stderr.read()
    assert os.path.exists(tmp_path / "t.db")


def test_serve_refuses_a_missing_root(tmp_path):
    from tests.test_cli import run as cli

    r = cli("serve", tmp_path / "nope", "--telemetry-db", tmp_path / "t.db")
    assert r.exit_code == 2 and "is not a directory" in r.stderr


def test_summary_of_a_missing_db(tmp_path):
    from tests.test_cli import run as cli

    r = cli("telemetry", "summary", "--db", tmp_path / "nope.db")
    assert r.exit_code == 2 and "not found" in r.stderr

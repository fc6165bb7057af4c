"""`mobile-ml serve` over real HTTP on loopback: ETag/304, ranges, HEAD, cache headers, path safety, telemetry."""

import contextlib
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


EMPTY = hashlib.sha256(b"").hexdigest()


@contextlib.contextmanager
def running(app, limits=None, log_level="error"):
    """``app`` on a real uvicorn (our guarded protocol) on a free loopback port, in a thread."""
    from mobile_ml.deliver.server import build_server

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    srv = build_server(app, limits, log_level=log_level)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.05)
    try:
        yield sock.getsockname()[1]
    finally:
        srv.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def server(root, tmp_path_factory):
    from mobile_ml.deliver.server import create_app

    db = tmp_path_factory.mktemp("db") / "telemetry.db"
    (root[0] / "blobs" / "sha256" / EMPTY).write_bytes(b"")
    with running(create_app(root[0], db, telemetry_rate=0)) as port:
        yield port, db


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
    # Both devices' latest update reports name 1.1.0 (one applied it; a failed check reports what it runs): both
    # count there now, and at 1.0.0 no more, though both once reported it.
    assert (s["1.0.0"].devices, s["1.0.0"].adoption, s["1.1.0"].devices, s["1.1.0"].adoption) == (0, 0.0, 2, 1.0)


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


# -- only the protocol's files (issue 12, item 1) ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def careless_root(tmp_path_factory):
    """A publish root an operator also used as a scratch directory: a key pair, a telemetry database, notes."""
    from tests.test_cli import run as cli

    r = tmp_path_factory.mktemp("careless")
    assert cli("keys", "generate", "--out", r / "keys" / "dev").exit_code == 0
    (r / "digits" / "channels").mkdir(parents=True)
    (r / "digits" / "channels" / "beta.json").write_text('{"manifest_version": 1}\n')
    (r / "digits" / "channels" / "beta.json.bak").write_text("old")
    (r / "digits" / "history" / "beta").mkdir(parents=True)
    (r / "digits" / "history" / "beta" / "00000001.json").write_text("{}\n")
    (r / "digits" / "history" / "beta" / "00000001.json.sig").write_bytes(b"sig")
    (r / "digits" / "releases").mkdir()
    (r / "digits" / "releases" / "1.0.0-rc.1.json").write_text("{}\n")
    (r / "digits" / "keys").mkdir()
    (r / "digits" / "keys" / f"{'c' * 64}.json").write_text("{}\n")
    for name in ("telemetry.db", "telemetry.db-wal", "telemetry.db-shm", "notes.txt"):
        (r / name).write_text("secret rows")
    return r


def test_keys_and_databases_in_the_root_are_never_served(careless_root):
    from mobile_ml.deliver.server import create_app

    assert (careless_root / "keys" / "dev" / "private.pem").is_file()
    with running(create_app(careless_root)) as port:
        for path in [
            "/keys/dev/private.pem",
            "/keys/dev/public.pem",
            "/keys/dev/public.b64",
            "/telemetry.db",
            "/telemetry.db-wal",
            "/telemetry.db-shm",
            "/notes.txt",
            "/digits/channels/beta.json.bak",
            "/digits/channels/beta.json%0a",
        ]:
            status, _, data = req(port, "GET", path)
            assert status == 404 and b"PRIVATE" not in data and b"secret" not in data, path
        for path in [
            "/digits/channels/beta.json",
            "/digits/history/beta/00000001.json",
            "/digits/history/beta/00000001.json.sig",
            "/digits/releases/1.0.0-rc.1.json",
            f"/digits/keys/{'c' * 64}.json",
        ]:
            assert req(port, "GET", path)[0] == 200, path


@pytest.mark.parametrize(
    "rel, served",
    [
        (f"blobs/sha256/{'a' * 64}", True),
        (f"blobs/sha256/{'a' * 63}", False),
        (f"blobs/sha256/{'A' * 64}", False),
        (f"blobs/sha256/{'a' * 64}\n", False),
        ("m/channels/stable.json", True),
        ("m/channels/stable.json.sig", True),
        ("m/channels/Stable.json", False),
        ("m/channels/stable.json.lock", False),
        ("m/history/stable/00000012.json.sig", True),
        ("m/history/stable/12.json", False),
        ("m/releases/1.2.0.json", True),
        ("m/releases/1.2.json", False),
        ("m/releases/1.2.0.json.sig", False),
        ("m/keys/private.pem", False),
        ("keys/dev/private.pem", False),
        ("m/../m/channels/stable.json", False),
        ("telemetry.db", False),
    ],
)
def test_protocol_paths(rel, served):
    from mobile_ml.deliver.layout import is_protocol_path

    assert is_protocol_path(rel) is served


def _serve_cli(*args, cwd=None):
    """`mobile-ml serve` as a real process: a refusal exits at once; a server that starts is a timeout (failure)."""
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    cmd = [sys.executable, "-m", "mobile_ml", "serve", *map(str, args), "--port", "1"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=20, cwd=cwd, env=env)


def test_serve_refuses_a_telemetry_db_inside_the_root(careless_root, tmp_path):
    r = _serve_cli(careless_root, "--telemetry-db", careless_root / "sub" / "t.db")
    assert r.returncode == 2 and "inside the served root" in r.stderr and "--telemetry-db" in r.stderr
    assert "Traceback" not in r.stderr and not (careless_root / "sub").exists()
    r = _serve_cli(".", cwd=careless_root)  # `serve .` with the default --telemetry-db telemetry.db
    assert r.returncode == 2 and "inside the served root" in r.stderr
    (tmp_path / "link").symlink_to(careless_root)  # a path that only looks outside
    r = _serve_cli(careless_root, "--telemetry-db", tmp_path / "link" / "t.db")
    assert r.returncode == 2 and "inside the served root" in r.stderr


# -- Range exactly per RFC 9110 (issue 12, item 15) -------------------------------------------------------------------


@pytest.mark.parametrize(
    "header, size, expected",
    [
        ("bytes=0-9", 100, (0, 9)),
        ("Bytes=0-9", 100, (0, 9)),  # the range unit is case-insensitive
        ("bytes=90-", 100, (90, 99)),
        ("bytes=90-500", 100, (90, 99)),
        ("bytes=-10", 100, (90, 99)),
        ("bytes=-500", 100, (0, 99)),
        ("bytes=0-0", 1, (0, 0)),
        ("bytes=0009-00019", 100, (9, 19)),
        ("bytes=0-" + "9" * 5000, 100, (0, 99)),  # any length of digits is valid, and never an int() error
        ("bytes=-" + "9" * 5000, 100, (0, 99)),
        (", bytes=0-9", 100, None),
        ("bytes=0-9 ,", 100, (0, 9)),  # empty list elements and OWS around commas are allowed
        ("bytes=100-", 100, "416"),
        ("bytes=" + "9" * 5000 + "-", 100, "416"),
        ("bytes=-0", 100, "416"),
        ("bytes=0-", 0, "416"),
        ("bytes=-5", 0, None),  # satisfiable, but no Content-Range can say "0 bytes": the whole (empty) file
        ("bytes=1_0-2_0", 100, None),
        ("bytes=+5-+9", 100, None),
        ("bytes=1 0-20", 100, None),
        ("bytes=10- 20", 100, None),
        ("bytes= 10-20", 100, (10, 20)),
        ("bytes=-+5", 100, None),
        ("bytes=--5", 100, None),
        ("bytes=0x10-0x20", 100, None),
        ("bytes=\u00b2-9", 100, None),  # a Unicode digit: str.isdigit() says yes, RFC 9110 says DIGIT is 0-9
        ("bytes=20-10", 100, None),  # an invalid int-range
        ("bytes=0-9,20-29", 100, None),  # several ranges: ignored (allowed), the whole file
        ("bytes=0-9,200-", 100, None),
        ("bytes=", 100, None),
        ("bytes=,", 100, None),
        ("bytes", 100, None),
        ("items=0-9", 100, None),
    ],
)
def test_parse_range(header, size, expected):
    from mobile_ml.deliver.ranges import UNSATISFIABLE, parse_range

    assert parse_range(header, size) == (UNSATISFIABLE if expected == "416" else expected)


def test_ranges_over_http_follow_rfc_9110(server, root):
    port, _ = server
    _, blob, digest = root
    url = f"/blobs/sha256/{digest}"
    status, h, data = req(port, "GET", f"/blobs/sha256/{EMPTY}", {"Range": "bytes=-5"})
    assert status == 200 and data == b"" and "content-range" not in h  # never "206 bytes 0--1/0"
    for bad in ("bytes=1_0-2_0", "bytes=+5-+9", "bytes=1 0-20", "bytes=0-9,20-29"):
        status, h, data = req(port, "GET", url, {"Range": bad})
        assert status == 200 and data == blob and "content-range" not in h, bad
    status, h, _ = req(port, "GET", url, {"Range": "bytes=-0"})
    assert status == 416 and h["content-range"] == f"bytes */{len(blob)}"
    status, h, data = req(port, "GET", url, {"Range": "bytes=0-" + "9" * 5000})
    assert status == 206 and data == blob and h["content-range"] == f"bytes 0-{len(blob) - 1}/{len(blob)}"
    status, h, data = req(port, "HEAD", url, {"Range": "bytes=0-9"})  # Range is defined for GET only
    assert status == 200 and h["content-length"] == str(len(blob)) and "content-range" not in h
    status, h, _ = req(port, "GET", url, {"Range": "bytes=0-9", "If-Range": f'W/"{digest}"'})
    assert status == 200  # If-Range compares strongly: a weak tag never matches


# -- a hostile telemetry body is a 4xx that stores nothing (issue 12, item 10) ----------------------------------------


def _raw_event(**fields: str) -> bytes:
    """An event whose listed fields are raw JSON text, for bodies json.dumps cannot write."""
    parts = [f'"{k}": {v}' for k, v in fields.items()]
    parts += [f'"{k}": {json.dumps(v)}' for k, v in _event().items() if k not in fields]
    return ('{"events": [{' + ", ".join(parts) + "}]}").encode()


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 60000,
        b'{"events": ' + b"[" * 60000 + b"]" * 60000 + b"}",
        _raw_event(latency_ms="1" + "0" * 400),
        _raw_event(latency_ms="1e400"),
        _raw_event(latency_ms="9" * 5000),
        _raw_event(latency_ms="NaN"),
        _raw_event(latency_ms="-1"),
        _raw_event(latency_ms="true"),
        _raw_event(device_model='"\\ud800"'),
        _raw_event(device_model='"a\\u0000b"'),
        _raw_event(install_id_hash=json.dumps("ab" * 32 + "\n")),
        _raw_event(install_id_hash=json.dumps("AB" * 32)),
        _raw_event(model="5"),
        _raw_event(event="[1]"),
        _raw_event(event='{"a": 1}'),
        _raw_event(version="null"),
        b'{"events": [], "events": []}',
        b'{"events": {"a": 1}}',
        b'{"events": [1]}',
        b'{"events": [[]]}',
        b'{"events": []}',
        b'{"events": [{}], "extra": 1}',
        b"\xff\xfe",
        b"",
        b"null",
    ],
)
def test_hostile_telemetry_is_a_4xx_and_stores_nothing(server, body):
    port, db = server
    before = _count(db)
    status, h, data = _post(port, body)
    assert 400 <= status < 500 and "error" in json.loads(data) and b"Traceback" not in data
    assert _count(db) == before


def test_oversized_telemetry_bodies(server):
    port, db = server
    before = _count(db)
    big = json.dumps({"events": [_event(error_code="x" * 60)] * 600}).encode()
    assert _post(port, big)[0] == 413
    # chunked, with no Content-Length: the cap holds while reading
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(
        "POST",
        "/v1/telemetry",
        body=iter([big[i : i + 4096] for i in range(0, len(big), 4096)]),
        headers={"Content-Type": "application/json"},
        encode_chunked=True,
    )
    r = c.getresponse()
    assert r.status == 413
    c.close()
    assert _count(db) == before


TOKEN = "t0ken-" + "x" * 26


def test_telemetry_token(tmp_path, root):
    from mobile_ml.deliver.server import create_app

    db = tmp_path / "t.db"
    body = json.dumps({"events": [_event()]}).encode()
    with running(create_app(root[0], db, telemetry_token=TOKEN)) as port:
        for auth in (None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}"):
            headers = {"Content-Type": "application/json", **({"Authorization": auth} if auth else {})}
            status, h, _ = req(port, "POST", "/v1/telemetry", headers, body)
            assert status == 401 and h["www-authenticate"].startswith("Bearer"), auth
        assert _count(db) == 0
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
        assert req(port, "POST", "/v1/telemetry", headers, body)[0] == 202
        assert _count(db) == 1


def test_serve_refuses_a_weak_telemetry_token(root, tmp_path):
    r = _serve_cli(root[0], "--telemetry-db", tmp_path / "t.db", "--telemetry-token", "short")
    assert r.returncode == 2 and "token" in r.stderr and "secrets.token_urlsafe" in r.stderr


def test_telemetry_rate_limit_per_client(tmp_path, root):
    from mobile_ml.deliver.server import create_app

    db = tmp_path / "t.db"
    with running(create_app(root[0], db, telemetry_rate=0.01, telemetry_burst=3)) as port:
        got = [_post(port, {"events": [_event()]}) for _ in range(5)]
    assert [s for s, _, _ in got] == [202, 202, 202, 429, 429]
    assert int(got[3][1]["retry-after"]) >= 1 and _count(db) == 3


def test_rate_limiter_refills_and_stays_bounded():
    from mobile_ml.deliver.ratelimit import RateLimiter

    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=2.0, max_clients=100, clock=lambda: now[0])
    assert [limiter.allow("a") for _ in range(3)] == [True, True, False]
    now[0] += 0.5  # one token back
    assert [limiter.allow("a") for _ in range(2)] == [True, False]
    for i in range(10_000):
        limiter.allow(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter) == 100

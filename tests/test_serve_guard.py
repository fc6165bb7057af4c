"""`mobile-ml serve` against clients that hold connections: idle sockets, header drips, stalled bodies, floods.

Real sockets on loopback against the real (guarded) uvicorn, with timeouts of about a second so each test is bounded.
"""

import os
import resource
import select
import signal
import socket
import subprocess
import sys
import time

import pytest

from mobile_ml.deliver.guard import Limits
from tests.test_serve import req, running

FAST = Limits(idle_timeout=0.5, header_timeout=1.0, body_timeout=1.0, max_connections=50)


@pytest.fixture
def app(tmp_path):
    from mobile_ml.deliver.server import create_app

    (tmp_path / "root").mkdir()
    return create_app(tmp_path / "root", tmp_path / "t.db", telemetry_rate=0)


def _connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    return s


def _closed_within(s, seconds, drip=b""):
    """Seconds until the server closed ``s`` (reads EOF or a reset), sending one ``drip`` byte every 0.3 s; None if
    it was still open after ``seconds``."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        try:
            if drip:
                s.send(drip)
            ready, _, _ = select.select([s], [], [], 0.3)
            if ready and s.recv(65536) == b"":
                return time.monotonic() - t0
        except OSError:  # reset or broken pipe: closed
            return time.monotonic() - t0
    return None


def test_an_idle_socket_is_closed(app):
    with running(app, FAST) as port:
        s = _connect(port)
        took = _closed_within(s, 4)
        s.close()
    assert took is not None and took < 2.5


def test_an_idle_keep_alive_connection_is_closed_after_the_response(app):
    with running(app, FAST) as port:
        s = _connect(port)
        s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200 OK" in s.recv(65536)
        took = _closed_within(s, 4)  # uvicorn's own keep-alive would wait 5 s
        s.close()
    assert took is not None and took < 2.5


def test_a_header_byte_every_few_hundred_ms_is_cut_off(app):
    with running(app, FAST) as port:
        s = _connect(port)
        s.sendall(b"GET /v1/health HTTP/1.1\r\n")
        took = _closed_within(s, 5, drip=b"X")  # each byte arrives well within the idle timeout
        s.close()
    assert took is not None and took < 3


def test_a_stalled_body_is_cut_off_and_stores_nothing(app, tmp_path, capfd):
    with running(app, FAST, log_level="warning") as port:
        s = _connect(port)
        s.sendall(
            b"POST /v1/telemetry HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n" + b'{"events": ['
        )
        took = _closed_within(s, 5)
        s.close()
        assert req(port, "GET", "/v1/health")[0] == 200  # and the server is fine
    assert took is not None and took < 3
    assert "Traceback" not in capfd.readouterr().err


def test_connections_over_the_cap_are_closed_at_once_and_logged_once(app, capfd):
    limits = Limits(idle_timeout=30, header_timeout=30, body_timeout=30, max_connections=4)
    with running(app, limits, log_level="warning") as port:
        held = [_connect(port) for _ in range(4)]
        time.sleep(0.3)  # accepted
        refused = [_connect(port) for _ in range(20)]
        times = [_closed_within(s, 3) for s in refused[:3]]
        for s in held + refused:
            s.close()
        time.sleep(0.3)
        assert req(port, "GET", "/v1/health")[0] == 200  # slots are free again
    assert all(t is not None and t < 1.5 for t in times)
    assert capfd.readouterr().err.count("connection limit of 4 reached") == 1


def _start(cmd, port, preexec_fn=None):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen([str(c) for c in cmd], stderr=subprocess.PIPE, text=True, env=env, preexec_fn=preexec_fn)
    if not _healthy(port, 15):
        proc.kill()
        pytest.fail(f"server did not start: {proc.stderr.read()[-2000:]}")
    return proc


def _healthy(port, seconds):
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        try:
            if req(port, "GET", "/v1/health")[0] == 200:
                return True
        except OSError:
            time.sleep(0.1)
    return False


def test_a_flood_under_a_low_open_file_limit_is_refused_and_logged_once(tmp_path):
    """The real command allowed 64 open files, 120 idle sockets: the cap (from the limit) keeps accept() working,
    over-cap connections are closed at once, one log line, no EMFILE traceback, and the server recovers."""
    (tmp_path / "root").mkdir()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cmd = [sys.executable, "-m", "mobile_ml", "serve", tmp_path / "root", "--port", port]
    cmd += ["--telemetry-db", tmp_path / "t.db", "--idle-timeout", "30"]
    proc = _start(cmd, port, lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64)))
    held = []
    try:
        held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(120)]
        time.sleep(2.5)  # asyncio would retry a failing accept() once a second
        for s in held:
            s.close()
        assert _healthy(port, 10), "server did not recover"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        for s in held:
            s.close()
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert err.count("connection limit of 16 reached") == 1, err[-3000:]
    assert "Traceback" not in err and "out of system resource" not in err, err[-3000:]


def test_accept_failures_are_counted_not_logged_each_time(caplog):
    import asyncio
    import errno

    from mobile_ml.deliver.guard import FloodLog, quiet_accept_errors

    loop = asyncio.new_event_loop()
    try:
        quiet_accept_errors(loop, FloodLog())
        for _ in range(50):
            exc = OSError(errno.EMFILE, "Too many open files")
            loop.call_exception_handler({"message": "socket.accept() out of system resource", "exception": exc})
    finally:
        loop.close()
    logged = [r for r in caplog.records if r.name == "uvicorn.error" or "accept" in r.getMessage()]
    assert len(logged) == 1 and "cannot accept connections" in logged[0].getMessage() and not logged[0].exc_info

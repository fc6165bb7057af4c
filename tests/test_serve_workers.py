"""`mobile-ml serve --workers N` and the 304 lane for manifest checks, over real HTTP on loopback.

Workers are real processes of the real CLI. To show that *each* worker serves and writes telemetry (the kernel
decides who accepts a connection), all workers but one are paused with SIGSTOP in turn: connections queued on the
shared socket can then only be taken by the one left running.
"""

import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.test_serve import _event, req, running

MANIFEST = "/digits/channels/beta.json"


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    (r / "digits" / "channels").mkdir(parents=True)
    (r / "digits" / "channels" / "beta.json").write_text('{"manifest_version": 1}\n')
    return r


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid):
    """Direct children of ``pid`` (Linux /proc)."""
    out = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        out |= {int(c) for c in (task / "children").read_text().split()}
    return out


def _alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _wait_health(port, proc):
    for _ in range(400):
        if proc.poll() is not None:
            pytest.fail(f"serve exited with {proc.returncode}: {proc.stderr.read()}")
        try:
            if req(port, "GET", "/v1/health")[0] == 200:
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail("server did not start")


@contextmanager
def serving(root, db, workers=2, *extra):
    port = _free_port()
    cmd = [sys.executable, "-m", "mobile_ml", "serve", str(root), "--port", str(port), "--telemetry-db", str(db)]
    proc = subprocess.Popen(
        [*cmd, "--workers", str(workers), "--telemetry-rate", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_health(port, proc)
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _workers(proc, n):
    """The ``n`` server processes under ``proc`` (multiprocessing may add its resource tracker: not a server)."""
    for _ in range(200):
        kids = [p for p in _children(proc.pid) if b"resource_tracker" not in Path(f"/proc/{p}/cmdline").read_bytes()]
        if len(kids) == n:
            return kids
        time.sleep(0.05)
    pytest.fail(f"expected {n} workers, found {kids}")


def _post(port, events):
    body = json.dumps({"events": events}).encode()
    return req(port, "POST", "/v1/telemetry", {"Content-Type": "application/json"}, body)


def _rows(db):
    with sqlite3.connect(db) as c:
        return c.execute("SELECT count(*), count(DISTINCT install_id_hash) FROM events").fetchone()


def test_each_of_two_workers_serves_manifests_and_stores_telemetry(root, tmp_path):
    db = tmp_path / "t.db"
    with serving(root, db) as (proc, port):
        workers = _workers(proc, 2)
        status, h, _ = req(port, "GET", MANIFEST)
        etag = h["etag"]
        for i, awake in enumerate(workers):
            asleep = [w for w in workers if w != awake]
            for w in asleep:
                os.kill(w, signal.SIGSTOP)
            try:
                assert req(port, "GET", MANIFEST)[0] == 200
                assert req(port, "GET", MANIFEST, {"If-None-Match": etag})[0] == 304
                status, _, body = _post(port, [_event(install_id_hash=f"{i:016x}")])
                assert status == 202, body
            finally:
                for w in asleep:
                    os.kill(w, signal.SIGCONT)
        assert _rows(db) == (2, 2)  # one row written by each worker


def test_concurrent_telemetry_through_two_workers_loses_no_row(root, tmp_path):
    db = tmp_path / "t.db"
    threads, posts, per_post = 8, 25, 4
    failures = []

    def client(t):
        for p in range(posts):
            events = [_event(install_id_hash=f"{t:08x}{p:04x}{e:04x}") for e in range(per_post)]
            status, _, body = _post(port, events)
            if status != 202:
                failures.append((status, body))

    with serving(root, db) as (proc, port):
        pool = [threading.Thread(target=client, args=(t,)) for t in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join(120)
    assert failures == []
    assert _rows(db) == (threads * posts * per_post,) * 2  # every row, none twice


def test_sigterm_to_the_parent_stops_every_worker(root, tmp_path):
    with serving(root, tmp_path / "t.db", 3) as (proc, port):
        kids = _workers(proc, 3)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        stderr = proc.stderr.read()
    assert "Traceback" not in stderr
    # Stopped and reaped before the parent exits: not merely signalled by the kernel when it is gone.
    assert not [k for k in kids if _alive(k)], "orphaned workers"
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2)


def test_workers_stop_when_the_parent_is_killed(root, tmp_path):
    with serving(root, tmp_path / "t.db", 2) as (proc, port):
        kids = _workers(proc, 2)
        proc.kill()  # no chance to clean up: the kernel's parent-death signal must
        proc.wait(10)
    deadline = time.monotonic() + 20
    while any(_alive(k) for k in kids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [k for k in kids if _alive(k)], "orphaned workers"


def test_a_killed_worker_is_replaced(root, tmp_path):
    with serving(root, tmp_path / "t.db", 2) as (proc, port):
        first = _workers(proc, 2)
        os.kill(first[0], signal.SIGKILL)  # as the OOM killer would
        for _ in range(200):
            now = set(_workers(proc, 2))
            if first[0] not in now:
                break
            time.sleep(0.05)
        assert first[0] not in now and first[1] in now
        os.kill(first[1], signal.SIGSTOP)  # only the replacement can answer now
        try:
            assert req(port, "GET", MANIFEST)[0] == 200
        finally:
            os.kill(first[1], signal.SIGCONT)
        assert proc.poll() is None


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_busy_port_is_one_line_and_exit_2_with_workers(root, tmp_path, workers):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = subprocess.run(
            [sys.executable, "-m", "mobile_ml", "serve", str(root), "--port", str(port), "--workers", workers],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
    assert r.returncode == 2
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert "already in use" in lines[0] and "Traceback" not in r.stderr and len(lines) <= 2, r.stderr  # + hint


def test_the_socket_is_bound_once_by_serve_itself(root, tmp_path):
    """A port taken between the CLI's check and the bind (a race) is the same PortError, from the real bind."""
    from mobile_ml.deliver.ports import PortError, listen

    sock = listen("127.0.0.1", 0)
    try:
        with pytest.raises(PortError, match="already in use"):
            listen("127.0.0.1", sock.getsockname()[1])
    finally:
        sock.close()


@pytest.mark.parametrize("workers", ["0", "65"])
def test_a_worker_count_out_of_range_is_refused(root, tmp_path, workers):
    from tests.test_cli import run as cli

    r = cli("serve", root, "--telemetry-db", tmp_path / "t.db", "--workers", workers)
    assert r.exit_code == 2 and "--workers" in r.stderr


# --- the 304 lane ------------------------------------------------------------------------------------------------


def _tag(data):
    return f'"{hashlib.sha256(data).hexdigest()}"'


def test_a_replaced_manifest_gets_its_new_etag_at_once(root):
    from mobile_ml.deliver.server import create_app

    path = root / "digits" / "channels" / "beta.json"
    with running(create_app(root)) as port:
        old = req(port, "GET", MANIFEST)[1]["etag"]
        assert req(port, "GET", MANIFEST, {"If-None-Match": old})[0] == 304  # the lane now knows this manifest
        new = path.with_name("beta.json.tmp")
        new.write_text('{"manifest_version": 2}\n')  # same size: only the inode and mtime tell them apart
        os.replace(new, path)  # as a publish does
        status, h, data = req(port, "GET", MANIFEST, {"If-None-Match": old})
        assert status == 200 and h["etag"] == _tag(data) != old
        assert req(port, "HEAD", MANIFEST, {"If-None-Match": h["etag"]})[0] == 304


def test_the_lane_answers_like_the_full_path(root):
    from mobile_ml.deliver.server import create_app

    with running(create_app(root)) as port:
        etag = req(port, "GET", MANIFEST)[1]["etag"]
        first = req(port, "GET", MANIFEST, {"If-None-Match": f'"nope", {etag}'})  # full path fills the lane
        for inm in (etag, f'"nope", {etag}', "*", f"W/{etag}"):
            status, h, body = req(port, "GET", MANIFEST, {"If-None-Match": inm})
            h.pop("date")
            assert (status, h, body) == (first[0], {k: v for k, v in first[1].items() if k != "date"}, b""), inm
        assert req(port, "GET", MANIFEST, {"If-None-Match": '"other"'})[0] == 200
        assert req(port, "POST", MANIFEST, {"If-None-Match": etag})[0] == 405


def test_a_manifest_swapped_for_a_symlink_out_of_the_root_is_not_answered_by_the_lane(root, tmp_path):
    from mobile_ml.deliver.server import create_app

    path = root / "digits" / "channels" / "beta.json"
    outside = tmp_path / "secret.json"
    outside.write_bytes(path.read_bytes())
    with running(create_app(root)) as port:
        etag = req(port, "GET", MANIFEST)[1]["etag"]
        assert req(port, "GET", MANIFEST, {"If-None-Match": etag})[0] == 304
        path.unlink()
        path.symlink_to(outside)  # same bytes, same tag; but it is not in the root any more
        assert req(port, "GET", MANIFEST, {"If-None-Match": etag})[0] == 404
        path.unlink()
        assert req(port, "GET", MANIFEST, {"If-None-Match": etag})[0] == 404


def test_the_lane_does_no_hashing_and_no_path_resolution(root, monkeypatch):
    """After the first full answer, a manifest check costs one stat: neither the resolver nor sha256 runs."""
    from mobile_ml.deliver import layout, server

    with running(server.create_app(root)) as port:
        etag = req(port, "GET", MANIFEST)[1]["etag"]
        assert req(port, "GET", MANIFEST, {"If-None-Match": etag})[0] == 304

        def refuse(*a, **k):
            raise AssertionError("the 304 lane took the full path")

        monkeypatch.setattr(layout, "resolve", refuse)
        monkeypatch.setattr(server.hashlib, "sha256", refuse)
        for _ in range(3):
            assert req(port, "GET", MANIFEST, {"If-None-Match": etag})[0] == 304


# --- the httptools protocol keeps h11's header limit ---------------------------------------------------------------


@pytest.mark.parametrize("size, refused", [(8 * 1024, False), (20 * 1024, True)])
def test_oversized_request_headers_are_refused(root, size, refused):
    """llhttp has no header-size limit of its own; GuardedHttpTools counts (16 KiB, as h11's event size was)."""
    from mobile_ml.deliver.guard import Limits
    from mobile_ml.deliver.server import create_app

    with running(create_app(root), Limits(max_header_bytes=16 * 1024)) as port:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        head = b"GET /v1/health HTTP/1.1\r\nHost: x\r\n"
        filler = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 1000) for i in range(size // 1024))
        s.sendall(head + filler + b"\r\n")
        reply = s.recv(65536)
        s.close()
    assert reply.startswith(b"HTTP/1.1 400" if refused else b"HTTP/1.1 200"), reply[:80]


def test_oversized_headers_sent_in_pieces_are_refused_before_they_end(root):
    from mobile_ml.deliver.guard import Limits
    from mobile_ml.deliver.server import create_app

    with running(create_app(root), Limits(max_header_bytes=16 * 1024)) as port:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
        try:
            for i in range(40):  # 40 KB, never finished: only the running count can stop it
                s.sendall(b"X-Pad-%d: %s\r\n" % (i, b"a" * 1000))
                time.sleep(0.005)
        except OSError:
            pass  # closed under us: refused
        try:
            reply = s.recv(65536)
        except ConnectionResetError:  # closed with our bytes unread: the 400 may be lost with them
            reply = b"HTTP/1.1 400 (reset)"
        s.close()
    assert reply.startswith(b"HTTP/1.1 400"), reply[:80]

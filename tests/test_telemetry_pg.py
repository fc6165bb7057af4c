"""Telemetry on PostgreSQL as on SQLite (issue 16, item 2): the same events give the same summary on both stores,
`serve` writes to a real PostgreSQL server on loopback (tests/pg.py), two `serve` processes share one database
with nothing lost or duplicated, a URL that cannot connect is exit 2 before serving, and a telemetry.db written
before the schema was versioned is migrated."""

from __future__ import annotations

import collections
import http.client
import itertools
import json
import os
import random
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from mobile_ml.deliver import telemetry
from mobile_ml.deliver.telemetry_store import SCHEMA_VERSION, open_store
from mobile_ml.errors import UserError
from tests import pg
from tests.test_cli import run as cli

FIXTURES = Path(__file__).parent / "fixtures"
PASSWORD = "pw-never-printed-7f3a"  # trust auth ignores it; the tests check it never reaches the output
ALL_VERSIONS = list(range(1, SCHEMA_VERSION + 1))  # every migration, once


@pytest.fixture(scope="session")
def postgres():
    server = pg.start()
    yield server
    server.stop()


_names = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request, tmp_path):
    """A fresh, empty store of each kind: a SQLite path, or a new database on the session's PostgreSQL."""
    if request.param == "sqlite":
        return str(tmp_path / "telemetry.db")
    return request.getfixturevalue("postgres").create(f"t{os.getpid()}_{next(_names)}")


def events(n: int, seed: int, ids: bool = True) -> list[dict]:
    """``n`` varied, valid events (seeded): several models, versions, devices, kinds and latencies."""
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        e = {
            "install_id_hash": f"{rnd.randrange(40):016x}",
            "model": rnd.choice(["digits", "iris"]),
            "version": rnd.choice(["1", "2", "3"]),
            "app_version": "1.4",
            "device_model": rnd.choice(["pixel-8", "galaxy-s23", "moto g"]),
            "event": rnd.choice(telemetry.EVENT_TYPES),
        }
        if e["event"] == "inference" and rnd.random() < 0.9:
            e["latency_ms"] = round(rnd.uniform(1, 80), 3)
        if e["event"] == "update_failed":
            e["error_code"] = rnd.choice(["bad_signature", "no_space"])
        if ids:
            e["event_id"] = str(uuid.UUID(int=rnd.getrandbits(128)))
        out.append(e)
    return out


def body(evs: list[dict]) -> bytes:
    return json.dumps({"events": evs}).encode()


def store_events(target: str, evs: list[dict]) -> None:
    with open_store(target) as s:
        for i in range(0, len(evs), telemetry.MAX_EVENTS):
            s.add(telemetry.validate(body(evs[i : i + telemetry.MAX_EVENTS])))


def summary_json(target: str) -> dict:
    r = cli("telemetry", "summary", "--db", target, "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


# -- both stores, the same cases ------------------------------------------------------------------------------------


def test_summary_counts_what_was_stored(target):
    evs = events(300, seed=1)
    store_events(target, evs)
    rows = telemetry.summary(target)
    assert sum(r.inferences for r in rows) == sum(e["event"] == "inference" for e in evs)
    assert sum(r.updates_failed for r in rows) == sum(e["event"] == "update_failed" for e in evs)
    groups = {(e["model"], e["version"], e["device_model"]) for e in evs}
    assert {(r.model, r.version, r.device_model) for r in rows} == groups


def test_a_retried_batch_is_stored_once(target):
    """A device that lost the reply uploads the same batch again: its event ids make the second upload a no-op.
    Events without an id (older clients) are all kept, as before."""
    with_ids, without = events(50, seed=2), events(20, seed=3, ids=False)
    with open_store(target) as s:
        for _ in range(2):
            assert s.add(telemetry.validate(body(with_ids))) == 50  # accepted either way
        s.add(telemetry.validate(body(without)))
        stored = s.query("SELECT COUNT(*), COUNT(event_id) FROM events")[0]
    assert stored == (70, 50)


def test_the_same_event_id_from_another_install_is_not_a_duplicate(target):
    a = events(1, seed=4)[0]
    b = {**a, "install_id_hash": "f" * 16}  # another device happens to (or tries to) reuse the id
    with open_store(target) as s:
        s.add(telemetry.validate(body([a, b])))
        assert s.query("SELECT COUNT(*) FROM events")[0][0] == 2


def test_a_new_store_is_at_the_current_schema_version(target):
    with open_store(target) as s:
        assert s.schema_version() == SCHEMA_VERSION
        assert [r[0] for r in s.query("SELECT version FROM schema_version ORDER BY version")] == ALL_VERSIONS
    with open_store(target) as s:  # opening again migrates nothing
        assert s.query("SELECT COUNT(*) FROM schema_version")[0][0] == SCHEMA_VERSION


def test_servers_starting_at_once_migrate_once(postgres):
    """Eight openers on a fresh database at the same instant: one creates the schema, the others wait for it (an
    advisory lock held by the migrating transaction), none fails."""
    url, gate, errors = postgres.create("racing"), threading.Barrier(8), []

    def open_one() -> None:
        gate.wait()
        try:
            open_store(url).close()
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=open_one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:2]
    with open_store(url, read_only=True) as s:
        assert s.query("SELECT version FROM schema_version ORDER BY version") == [(v,) for v in ALL_VERSIONS]


def test_a_dropped_postgres_connection_is_reopened(postgres):
    """The server closes our idle connection (a restart, an idle timeout): the next batch is still stored."""
    import psycopg

    url = postgres.create("dropped")
    with open_store(url) as s:
        s.add(telemetry.validate(body(events(5, seed=9))))
        with psycopg.connect(postgres.url(), autocommit=True) as admin:
            killed = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'dropped'"
            ).fetchall()
        assert killed == [(True,)]
        s.add(telemetry.validate(body(events(5, seed=10))))
        assert s.query("SELECT COUNT(*) FROM events")[0][0] == 10


def test_a_store_from_a_newer_mobile_ml_is_refused(target):
    with open_store(target) as s, s._transaction() as cur:
        cur.execute(s._sql("INSERT INTO schema_version VALUES (?, ?)"), (SCHEMA_VERSION + 1, "later"))
    for read_only in (False, True):
        with pytest.raises(UserError, match=f"schema version {SCHEMA_VERSION + 1}"):
            open_store(target, read_only=read_only)
    r = cli("telemetry", "summary", "--db", target)
    assert r.exit_code == 2 and "upgrade mobile-ml" in r.stderr and r.stdout == ""


def test_postgres_and_sqlite_summaries_agree(postgres, tmp_path):
    """The same 500 events in both stores: `telemetry summary --json` prints the same document."""
    evs = events(500, seed=5)
    lite, url = str(tmp_path / "t.db"), postgres.create("agree")
    store_events(lite, evs)
    store_events(url, evs)
    a, b = summary_json(lite), summary_json(url)
    assert a == b and len(a["rows"]) >= 12  # 2 models x 3 versions x 3 devices, most of them present


# -- serve writes to PostgreSQL --------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(root: Path, db: str) -> tuple[subprocess.Popen, int]:
    root.mkdir(exist_ok=True)  # an empty publish root: these tests only post telemetry
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    cmd = [sys.executable, "-m", "mobile_ml", "serve", str(root), "--port", str(port)]
    cmd += ["--telemetry-db", db, "--telemetry-rate", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    return proc, port


def _wait_healthy(proc: subprocess.Popen, port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"serve exited with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
        try:
            if _request(port, "GET", "/v1/health")[0] == 200:
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail("serve did not start")


def _stop(proc: subprocess.Popen) -> str:
    proc.terminate()
    try:
        _, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err


def _request(port: int, method: str, path: str, data: bytes | None = None) -> tuple[int, bytes]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def _stored(url: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(url) as c:
        return c.execute("SELECT event_id, install_id_hash, model, version, event, latency_ms FROM events").fetchall()


def test_serve_stores_telemetry_in_postgres_as_in_sqlite(postgres, tmp_path):
    """The same posts to a `serve` on PostgreSQL and a `serve` on SQLite: every event lands in PostgreSQL, and
    `telemetry summary` prints the same for both."""
    url = postgres.create("served")
    secret_url = url.replace("postgres@", f"postgres:{PASSWORD}@")
    lite = str(tmp_path / "served.db")
    evs = events(120, seed=6)
    servers = [_serve(tmp_path / "root", db) for db in (secret_url, lite)]
    try:
        for proc, port in servers:
            _wait_healthy(proc, port)
            for i in range(0, len(evs), 40):
                assert _request(port, "POST", "/v1/telemetry", body(evs[i : i + 40]))[0] == 202
    finally:
        errs = [_stop(proc) for proc, _ in servers]
    assert [proc.returncode for proc, _ in servers] == [0, 0]
    assert PASSWORD not in errs[0] and "Traceback" not in errs[0] + errs[1]
    assert f"127.0.0.1:{postgres.port}/served" in errs[0]  # the "serving …" line names the store, without password
    keys = ("event_id", "install_id_hash", "model", "version", "event", "latency_ms")
    got = _stored(url)
    assert len(got) == len(evs) and set(got) == {tuple(e.get(k) for k in keys) for e in evs}
    assert summary_json(secret_url) == summary_json(lite)


def test_two_servers_share_one_database_nothing_lost_or_duplicated(postgres, tmp_path):
    """Two `serve` processes start at once on a fresh database (one migrates, the other waits for it) and take
    concurrent posts; a quarter of the batches is posted again to the other server, as a device does after a lost
    reply. Every event id is stored exactly once."""
    url = postgres.create("shared")
    servers = [_serve(tmp_path / "root", url) for _ in range(2)]
    batches = [events(25, seed=100 + i) for i in range(96)]
    failures: list[str] = []

    def post(worker: int) -> None:
        for i in range(worker, len(batches), 6):
            first, other = servers[i % 2][1], servers[(i + 1) % 2][1]
            for port in (first, other) if i % 4 == 0 else (first,):
                status, reply = _request(port, "POST", "/v1/telemetry", body(batches[i]))
                if status != 202:
                    failures.append(f"batch {i} on {port}: {status} {reply!r}")

    try:
        for proc, port in servers:
            _wait_healthy(proc, port)
        threads = [threading.Thread(target=post, args=(w,)) for w in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        errs = [_stop(proc) for proc, _ in servers]
    assert not failures, failures[:3]
    assert all("Traceback" not in e for e in errs), errs
    sent = [e["event_id"] for b in batches for e in b]
    counts = collections.Counter(row[0] for row in _stored(url))
    assert len(sent) == len(set(sent)) == 2400
    assert set(counts) == set(sent) and max(counts.values()) == 1
    with open_store(url, read_only=True) as s:
        assert s.query("SELECT version FROM schema_version ORDER BY version") == [(v,) for v in ALL_VERSIONS]


# -- a URL that cannot connect ---------------------------------------------------------------------------------------


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("hint: "), stderr
    return lines[0]


@pytest.mark.parametrize("command", ["serve", "summary"])
def test_an_unreachable_postgres_url_is_exit_2_naming_host_and_database(tmp_path, command):
    url = f"postgresql://fleet:{PASSWORD}@127.0.0.1:{_free_port()}/fleetdb"  # nobody listens there
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    args = ["serve", str(tmp_path), "--port", "1", "--telemetry-db", url]  # port 1: a server that starts fails
    if command == "summary":
        args = ["telemetry", "summary", "--db", url]
    r = subprocess.run([sys.executable, "-m", "mobile_ml", *args], capture_output=True, text=True, timeout=60, env=env)
    line = _one_error_line(r.stderr)
    assert r.returncode == 2 and r.stdout == ""
    assert "127.0.0.1" in line and "fleetdb" in line and "serving" not in r.stderr
    assert PASSWORD not in r.stderr


def test_an_unparseable_url_is_exit_2_without_the_password(tmp_path):
    """psycopg's own parse error quotes the whole URL, password included; ours does not."""
    url = f"postgresql://fleet:{PASSWORD}@[::1/fleetdb"
    for args in (["serve", tmp_path, "--port", "1", "--telemetry-db", url], ["telemetry", "summary", "--db", url]):
        r = cli(*args)
        assert r.exit_code == 2 and "cannot be parsed" in _one_error_line(r.stderr) and PASSWORD not in r.stderr


def test_a_missing_database_is_exit_2_naming_it(postgres, tmp_path):
    url = postgres.url("no_such_db", password=PASSWORD)
    for args in (["serve", tmp_path, "--port", "1", "--telemetry-db", url], ["telemetry", "summary", "--db", url]):
        r = cli(*args)
        line = _one_error_line(r.stderr)
        assert r.exit_code == 2 and "no_such_db" in line and "127.0.0.1" in line and PASSWORD not in r.stderr


def test_a_postgres_database_without_telemetry_is_named_on_read(postgres):
    r = cli("telemetry", "summary", "--db", postgres.create("empty"))
    assert r.exit_code == 2 and "not a telemetry database" in r.stderr and "/empty" in r.stderr


# -- migration of a telemetry.db written before the schema was versioned ---------------------------------------------


def test_a_telemetry_db_from_before_versioning_is_read_and_migrated(tmp_path):
    """tests/fixtures/telemetry-v1.db and its summary were written by mobile-ml before this change."""
    db = tmp_path / "telemetry.db"
    shutil.copy(FIXTURES / "telemetry-v1.db", db)
    old = json.loads((FIXTURES / "telemetry-v1.summary.json").read_text())
    assert _counts(summary_json(str(db))) == _counts(old)  # reading needs no migration, and does none:
    assert _sqlite_tables(db) == {"events"}
    with open_store(db) as s:  # `serve` on it migrates
        assert s.schema_version() == SCHEMA_VERSION
        assert s.query("SELECT version, applied_at FROM schema_version ORDER BY version")[0] == (1, "adopted")
        before = s.query("SELECT COUNT(*) FROM events")[0][0]
        retried = telemetry.validate(body(events(10, seed=7)))
        s.add(retried)
        s.add(retried)
        assert s.query("SELECT COUNT(*) FROM events")[0][0] == before + 10
    assert _counts(summary_json(str(db))) != _counts(old)  # the new events count
    assert _sqlite_tables(db) == {"events", "schema_version", "aggregates"}


@pytest.mark.parametrize("name", ["telemetry.db", "odd?name#.db"])
def test_a_file_that_is_no_database_is_exit_2(tmp_path, name):
    (tmp_path / name).write_text("notes, not a database\n" * 100)
    for args in (
        ["serve", tmp_path / "root", "--port", "1", "--telemetry-db", tmp_path / name],
        ["telemetry", "summary", "--db", tmp_path / name],
    ):
        (tmp_path / "root").mkdir(exist_ok=True)
        r = cli(*args)
        assert r.exit_code == 2 and "is not a usable telemetry database" in _one_error_line(r.stderr), r.output


def _counts(doc: dict) -> dict:
    """What the summary counted per group, apart from devices and adoption (summary v2 counts each install once,
    at its latest report; the fixture's v1 summary counted every install that ever reported a version)."""
    keep = ("inferences", "updates_applied", "updates_failed", "latency_p50_ms", "latency_p90_ms", "failure_rate")
    return {(r["model"], r["version"], r["device_model"]): [r[k] for k in keep] for r in doc["rows"]}


def _sqlite_tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as c:
        return {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_an_event_id_must_look_random():
    for bad in ("short", "x" * 65, "has space in it!!", "é" * 20):
        with pytest.raises(telemetry.Invalid, match="event_id"):
            telemetry.validate(body([{**events(1, seed=8)[0], "event_id": bad}]))


def test_missing_server_binaries_skip_locally_and_fail_under_ci(monkeypatch):
    monkeypatch.setattr(pg, "bindir", lambda: None)
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="install Debian's postgresql"):
        pg.start()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        pg.start()


def test_a_postgres_url_without_psycopg_names_the_extra(monkeypatch):
    monkeypatch.delitem(sys.modules, "mobile_ml.deliver.telemetry_pg", raising=False)  # imported anew, without:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if psycopg were not installed
    r = cli("telemetry", "summary", "--db", "postgresql://fleet@127.0.0.1/fleetdb")
    assert r.exit_code == 2 and "mobile-ml[postgres]" in r.stderr

"""A real PostgreSQL server on loopback for the tests: Debian's binaries, a throw-away cluster, trust auth.

initdb and postgres refuse to run as root, so under root (the CI machines, these containers) the cluster belongs to
the unprivileged ``nobody`` and both run as that user (``subprocess.Popen(user=...)``, so the pid we stop is the
server's own). Missing binaries skip the tests locally; under ``CI=true`` they fail, so CI cannot go green without
the PostgreSQL tests having run (``.ci/run`` installs the ``postgresql`` package).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

UNPRIVILEGED = "nobody"


def bindir() -> Path | None:
    """The directory with initdb and postgres: ``pg_config --bindir``, else the newest /usr/lib/postgresql/*/bin."""
    candidates = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        candidates.append(Path(out))
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2] or 0), reverse=True)
    candidates += [Path(p) for p in versions]
    for d in candidates:
        if (d / "initdb").is_file() and (d / "postgres").is_file():
            return d
    return None


def unavailable(reason: str) -> None:
    """Skip locally; under CI a missing server is a failure, never a silent skip."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the PostgreSQL tests must run; .ci/run installs Debian's postgresql)")
    pytest.skip(f"{reason}; install Debian's postgresql package to run these tests")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Postgres:
    """One running cluster; ``url(dbname)`` is a libpq URL for a database in it (``create`` makes one)."""

    port: int
    home: Path
    process: subprocess.Popen

    def url(self, dbname: str = "postgres", password: str | None = None) -> str:
        auth = f"postgres:{password}" if password else "postgres"
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{dbname}"

    def create(self, dbname: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{dbname}"')  # a test's own name, never user input
        return self.url(dbname)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # "fast" shutdown: roll back sessions, exit now
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.home, ignore_errors=True)


def start() -> Postgres:
    """initdb into a fresh directory and start ``postgres`` on 127.0.0.1 (socket in that directory)."""
    bins = bindir()
    if bins is None:
        unavailable("no PostgreSQL server binaries (initdb, postgres) in pg_config --bindir or /usr/lib/postgresql")
        raise AssertionError("unreachable")
    # Not under pytest's tmp_path: its parents are 0700 root, which the unprivileged server cannot traverse.
    home = Path(tempfile.mkdtemp(prefix="mobile-ml-pg-"))
    home.chmod(0o755)
    data = home / "data"
    data.mkdir()
    user = UNPRIVILEGED if os.geteuid() == 0 else None
    if user:
        shutil.chown(home, user)
        shutil.chown(data, user)
    log = home / "server.log"
    init = subprocess.run(
        [
            str(bins / "initdb"),
            "-D",
            str(data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "-N",
            "--no-instructions",
        ],
        capture_output=True,
        text=True,
        user=user,
        check=False,
    )
    if init.returncode != 0:
        raise RuntimeError(f"initdb failed ({init.returncode}): {init.stderr.strip()}")
    port = _free_port()
    # fsync off: a test cluster that dies with the machine is thrown away anyway; it makes commits cheap.
    args = [str(bins / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port), "-k", str(home)]
    args += [
        "-c",
        "fsync=off",
        "-c",
        "synchronous_commit=off",
        "-c",
        "full_page_writes=off",
        "-c",
        "max_connections=50",
    ]
    with open(log, "wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, user=user)
    pg = Postgres(port, home, process)
    _wait_ready(pg, log)
    return pg


def _wait_ready(pg: Postgres, log: Path, timeout: float = 30.0) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        if pg.process.poll() is not None:
            text = log.read_text(errors="replace")[-2000:]
            pg.stop()
            raise RuntimeError(f"postgres exited with {pg.process.returncode}: {text}")
        try:
            with psycopg.connect(pg.url(), connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                pg.stop()
                raise
            time.sleep(0.05)

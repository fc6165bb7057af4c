"""``mobile-ml serve --workers N``: N stateless server processes on one listening socket, and their supervisor.

The parent binds the socket once (a busy port is one line, exit 2, before any worker starts), then starts N workers
with multiprocessing's ``spawn`` (a fresh interpreter: no state, threads or database handles copied from the
parent) and hands each the socket; the kernel spreads new connections across them. A worker is exactly the
one-process server: same app, same guard (timeouts and connection cap are per worker, so the cap is
``N × --max-connections`` in all), its own connection to the shared telemetry store (SQLite in WAL mode: writers
queue on its lock with a busy timeout; nothing is lost). The telemetry rate limit is kept per worker, in memory: a
client whose connections land on several workers may send up to N times ``--telemetry-rate``. Sharing it would
cost a database round trip per request, for a limit that only guards against floods.

SIGTERM or SIGINT to the parent stops every worker gracefully (each finishes its in-flight requests) and waits for
them; a worker that dies is replaced (one that dies while starting stops the whole server: it would only die again);
a worker is also asked to stop when its parent dies (Linux ``PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass

from mobile_ml.deliver.guard import Limits
from mobile_ml.errors import ConfigError, MobileMLError

log = logging.getLogger("uvicorn.error")
MAX_WORKERS = 64
_GRACE = 15.0  # s a worker may take to stop: uvicorn's graceful shutdown (10 s) and a margin
_RESTART_PAUSE = 1.0  # s between replacing dead workers
_STARTUP = 5.0  # s: a worker that dies this soon after it started is broken, not unlucky: replacing it would loop


@dataclass(frozen=True)
class ServeOptions:
    """What a worker needs to build its server; picklable, for ``spawn``."""

    root: str
    telemetry_db: str | None
    telemetry_token: str | None
    telemetry_rate: float
    limits: Limits | None
    log_level: str
    capture_store: str | None = None  # POST /v1/capture's batches: a directory or s3:// (None: capture off)


def check_count(workers: int) -> None:
    if not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(f"--workers {workers} is out of range", hint=f"use 1 to {MAX_WORKERS} (about one per core)")


def run_worker(options: ServeOptions, sock: socket.socket) -> None:
    """One server on ``sock`` until SIGTERM/SIGINT: the whole of ``serve`` with one worker, and each of N."""
    from mobile_ml.deliver.server import build_server, create_app

    app = create_app(
        options.root,
        options.telemetry_db,
        telemetry_token=options.telemetry_token,
        telemetry_rate=options.telemetry_rate,
        capture_store=options.capture_store,
    )
    build_server(app, options.limits, log_level=options.log_level).run(sockets=[sock])


def _worker_main(options: ServeOptions, sock: socket.socket) -> None:
    _die_with_parent()
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C reaches the whole process group; the parent reports it
        run_worker(options, sock)


def _die_with_parent() -> None:
    """Ask the kernel to send this worker SIGTERM when the supervisor dies, even by SIGKILL: no orphans."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    # The signal is armed only now: a supervisor killed while this worker was starting is already gone, and this
    # worker was re-parented. Checking after arming closes that window.
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:
        os._exit(0)


def _store_ready(options: ServeOptions) -> None:
    """Create the telemetry schema once, here, so N workers do not race to create it at start."""
    if options.telemetry_db is None:
        return
    from mobile_ml.deliver import telemetry

    telemetry.open_store(options.telemetry_db).close()  # SQLite file or postgresql:// URL: creates or migrates


def supervise(options: ServeOptions, sock: socket.socket, workers: int) -> None:
    """Start ``workers`` processes on ``sock``, replace any that die, stop them all on SIGTERM/SIGINT."""
    _store_ready(options)
    ctx = multiprocessing.get_context("spawn")
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}

    def start() -> tuple[multiprocessing.process.BaseProcess, float]:
        p = ctx.Process(target=_worker_main, args=(options, sock), name="mobile-ml serve worker")
        p.start()
        return p, time.monotonic()

    procs = [start() for _ in range(workers)]
    try:
        while not stop.wait(0.2):
            for i, (p, started) in enumerate(procs):
                if p.is_alive() or stop.is_set():
                    continue
                # Exited on its own (not killed by a signal: the OOM killer, an operator) right after starting.
                if (p.exitcode or 0) >= 0 and time.monotonic() - started < _STARTUP:
                    raise MobileMLError(
                        f"a serve worker exited with code {p.exitcode} while starting",
                        hint="run with --workers 1 to see why",
                    )
                log.warning("worker %s exited with code %s; starting another", p.pid, p.exitcode)
                time.sleep(_RESTART_PAUSE)
                procs[i] = start()
    finally:
        _stop_all([p for p, _ in procs])
        sock.close()
        for s, h in previous.items():
            signal.signal(s, h)


def _stop_all(procs: list[multiprocessing.process.BaseProcess]) -> None:
    for p in procs:
        if p.is_alive():
            p.terminate()  # SIGTERM: uvicorn's graceful shutdown
    deadline = time.monotonic() + _GRACE
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            log.warning("worker %s did not stop in %g s; killing it", p.pid, _GRACE)
            p.kill()
            p.join()

"""``mobile-ml serve``: the publish root over HTTP (read-only), plus the device endpoints (``ingest``); Starlette
on uvicorn.

Static files are served by our own handler rather than a generic one because the update protocol depends on the
details: only the protocol's own paths (``layout``: everything else in the root is 404, keys and databases included),
a strong ETag (the sha256 of the content; for ``blobs/sha256/<hex>`` the name itself), ``If-None-Match`` → 304, a
single ``Range`` with ``If-Range`` → 206 (``ranges``: RFC 9110 exactly), HEAD, ``Cache-Control`` by path (immutable
blobs, 60-second manifests), no directory listings, nothing outside the root, and only GET and HEAD. Connections get
idle, header and body deadlines and a cap (``guard``).

The commonest request by far is a device's manifest check (``If-None-Match`` with the ETag it has → 304), so it has a
lane of its own in front of Starlette (``_Front``): a channel path already resolved once, whose file still has the
same (device, inode, size, mtime) — one ``stat``, no hashing — and whose tag matches, is answered 304 straight away.
Anything else, including a manifest a publish has just replaced (a new inode), takes the full path, which resolves and
validates the path again and refreshes the lane. ``--workers N`` runs N such processes on one socket (``workers``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mobile_ml.deliver import layout, telemetry
from mobile_ml.deliver.guard import FloodLog, GuardedH11, GuardedHttpTools, Limits, quiet_accept_errors
from mobile_ml.deliver.ingest import _Aggregates, _Capture, _Telemetry
from mobile_ml.deliver.ranges import Unsatisfiable, etag_matches, parse_range
from mobile_ml.deliver.ratelimit import RateLimiter
from mobile_ml.publish.storage import cache_control

if TYPE_CHECKING:
    import uvicorn

CHUNK = 64 * 1024
_FAST_LANE_MAX = 4096  # channel manifests (and signatures) remembered for the 304 lane; a root has a few dozen


class _ETags:
    """sha256 of files, cached by (inode, size, mtime) so a changed file gets a new tag at once."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[tuple[int, int, int], str]] = {}
        self._lock = threading.Lock()

    def get(self, path: Path, rel: str, st: os.stat_result) -> str:
        if rel.startswith("blobs/sha256/"):
            return f'"{rel.rsplit("/", 1)[-1]}"'  # content-addressed: the name is the hash (clients verify it anyway)
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            hit = self._cache.get(str(path))
        if hit and hit[0] == key:
            return hit[1]
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        tag = f'"{h.hexdigest()}"'
        with self._lock:
            self._cache[str(path)] = (key, tag)
        return tag


def _file_chunks(path: Path, start: int, length: int) -> Iterator[bytes]:
    with open(path, "rb") as f:
        f.seek(start)
        left = length
        while left > 0:
            chunk = f.read(min(CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


class _Content:
    """GET and HEAD of the protocol's files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.etags = _ETags()
        # scope path → (path, (st_dev, st_ino, st_size, st_mtime_ns), ETag, ETag as bytes, 304 headers), for _Front
        self.fresh: dict[str, tuple[str, tuple[int, int, int, int], str, bytes, list[tuple[bytes, bytes]]]] = {}

    def not_modified(self, scope_path: str, if_none_match: bytes) -> list[tuple[bytes, bytes]] | None:
        """The headers of a 304 for a manifest check, or None: let the full path answer."""
        hit = self.fresh.get(scope_path)
        if hit is None:
            return None
        path, key, etag, raw_etag, headers = hit
        try:
            st = os.stat(path)
        except OSError:
            return None
        # The same inode as when the full path validated it (inside the root, a regular file), unchanged since:
        # a publish replaces the manifest (os.replace → new inode), so its first check after takes the full path.
        if (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) != key:
            return None
        if if_none_match == raw_etag:  # the device sends back exactly the tag it got: no parsing
            return headers
        return headers if etag_matches(if_none_match.decode("latin-1"), etag) else None

    def _remember(self, rel: str, st: os.stat_result, headers: dict[str, str]) -> None:
        if "/channels/" not in f"/{rel}":
            return  # blobs are immutable and fetched once; devices check manifests
        if len(self.fresh) >= _FAST_LANE_MAX:
            self.fresh.clear()
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        etag = headers["ETag"]
        self.fresh["/" + rel] = (str(self.root / rel), key, etag, etag.encode("latin-1"), raw)

    async def handle(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return Response("method not allowed\n", 405, headers={"Allow": "GET, HEAD"})
        # The raw decoded path, not path_params: Starlette's route regex ends in "$", which drops a trailing "\n".
        rel = request.scope["path"].removeprefix("/")
        found = layout.resolve(self.root, rel)
        if found is None:
            return Response("not found\n", 404, media_type="text/plain")
        path, st = found
        etag = self.etags.get(path, rel, st)
        headers = {"ETag": etag, "Cache-Control": cache_control(rel), "Accept-Ranges": "bytes"}
        self._remember(rel, st, headers)
        inm = request.headers.get("if-none-match")
        if inm is not None and etag_matches(inm, etag):
            return Response(status_code=304, headers=headers)
        headers["Content-Type"] = "application/json" if rel.endswith(".json") else "application/octet-stream"
        size, start, end, status = st.st_size, 0, st.st_size - 1, 200
        span = _requested_span(request, size, etag)
        if isinstance(span, Unsatisfiable):
            return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
        if span is not None:
            (start, end), status = span, 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        length = end - start + 1
        headers["Content-Length"] = str(length)
        if request.method == "HEAD":
            return Response(status_code=status, headers=headers)
        return StreamingResponse(_file_chunks(path, start, length), status_code=status, headers=headers)


def _requested_span(request: Request, size: int, etag: str) -> tuple[int, int] | Unsatisfiable | None:
    """The range to send, or None for the whole file. Range applies to GET only (RFC 9110 14.2)."""
    header = request.headers.get("range")
    if request.method != "GET" or header is None:
        return None
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range.strip() != etag:
        return None  # strong comparison; the file changed since the client's partial copy: send it whole
    return parse_range(header, size)


async def _health(request: Request) -> Response:
    return JSONResponse({"ok": True})


class _Front:
    """The ASGI app: manifest checks that can be answered 304 from ``_Content.fresh`` skip Starlette entirely (its
    routing, Request and Response objects, and its two middlewares cost several times the 304 itself)."""

    def __init__(self, app: Starlette, content: _Content) -> None:
        self.app, self.content, self.state = app, content, app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD") and scope["path"] in self.content.fresh:
            for name, value in scope["headers"]:
                if name == b"if-none-match":  # the first one, as Starlette's Request.headers.get reads it
                    headers = self.content.not_modified(scope["path"], value)
                    if headers is not None:
                        await send({"type": "http.response.start", "status": 304, "headers": headers})
                        await send({"type": "http.response.body", "body": b""})
                        return
                    break
        await self.app(scope, receive, send)


def check_options(root: str | Path, telemetry_db: str | Path | None, telemetry_token: str | None) -> None:
    """Refuse, before anything starts: a root that is no directory, a database inside it, a weak token."""
    from mobile_ml.errors import InputFileError

    if not Path(root).is_dir():
        raise InputFileError(f"publish root {root} is not a directory", hint="pass the --root you published to")
    if telemetry_db is not None and not telemetry.is_url(telemetry_db):
        layout.check_outside(Path(root), Path(telemetry_db))
    if telemetry_token is not None:
        telemetry.check_token(telemetry_token)


def create_app(
    root: str | Path,
    telemetry_db: str | Path | None = None,
    *,
    telemetry_token: str | None = None,
    telemetry_rate: float = 20.0,
    telemetry_burst: float | None = None,
    capture_store: str | None = None,
) -> _Front:
    """The ASGI app. ``telemetry_rate``: requests per second per client address (0: no limit); the burst defaults
    to ten seconds' worth."""
    root = Path(root).resolve()
    if telemetry_db is not None and not telemetry.is_url(telemetry_db):
        layout.check_outside(root, Path(telemetry_db))
    if telemetry_token is not None:
        telemetry.check_token(telemetry_token)
    store = telemetry.open_store(telemetry_db) if telemetry_db else None
    limiter = None
    if telemetry_rate > 0:
        limiter = RateLimiter(telemetry_rate, telemetry_burst or max(1.0, 10 * telemetry_rate))
    content = _Content(root)
    ingest = _Telemetry(store, telemetry_token, limiter)
    routes = [
        Route("/v1/telemetry", ingest.handle, methods=["POST"]),
        Route("/v1/aggregates", _Aggregates(ingest, root).handle, methods=["POST"]),
        Route("/v1/capture", _Capture(root, capture_store, telemetry_token, limiter).handle, methods=["POST"]),
        Route("/v1/health", _health, methods=["GET"]),
        Route("/{path:path}", content.handle, methods=["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]),
    ]
    app = Starlette(routes=routes)
    app.state.store = store
    return _Front(app, content)


def build_server(
    app: ASGIApp,
    limits: Limits | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "warning",
) -> uvicorn.Server:
    """A uvicorn server for ``app`` with ``limits``; ``.run()`` it, or ``.run(sockets=[...])`` on a bound socket."""
    import uvicorn

    limits = limits or Limits()
    floods = FloodLog()

    class Server(uvicorn.Server):
        async def serve(self, sockets: list[socket.socket] | None = None) -> None:
            quiet_accept_errors(asyncio.get_running_loop(), floods)
            await super().serve(sockets)

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # uvicorn re-raises SIGTERM after its graceful shutdown, so the process would die "by signal"; a
            # service manager should see a clean exit after a requested, completed shutdown.
            if threading.current_thread() is not threading.main_thread():
                yield  # in a thread (tests): signals belong to the main thread
                return
            previous = {s: signal.signal(s, self.handle_exit) for s in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for s, h in previous.items():
                    signal.signal(s, h)

    # uvicorn[standard]: httptools (llhttp, C) parses requests several times faster than h11, and loop="auto" takes
    # uvloop; both guarded alike. h11 stays as the fallback where the C extensions are not installed.
    fast = GuardedHttpTools is not None
    protocol = GuardedHttpTools.configured(limits, floods) if fast else GuardedH11.configured(limits, floods)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        http=protocol,
        loop="auto",
        access_log=False,  # never shown at our log levels, yet uvicorn would build a record per request
        ws="none",
        h11_max_incomplete_event_size=limits.max_header_bytes,
        timeout_graceful_shutdown=10,
        server_header=False,
    )
    return Server(config)


def serve(
    root: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    telemetry_db: str | Path | None = None,
    telemetry_token: str | None = None,
    telemetry_rate: float = 20.0,
    limits: Limits | None = None,
    log_level: str = "warning",
    workers: int = 1,
    capture_store: str | None = None,
) -> None:
    """Run until SIGINT/SIGTERM; uvicorn finishes in-flight requests before exiting (graceful shutdown). The socket
    is bound here, once, so a busy port is a ``PortError``; ``workers`` > 1 processes share it (``workers``)."""
    from mobile_ml.deliver import workers as pool
    from mobile_ml.deliver.ports import listen

    check_options(root, telemetry_db, telemetry_token)
    options = pool.ServeOptions(
        str(root), str(telemetry_db) if telemetry_db else None, telemetry_token, telemetry_rate, limits, log_level,
        capture_store,
    )  # fmt: skip
    pool.check_count(workers)
    sock = listen(host, port)
    if workers == 1:
        pool.run_worker(options, sock)
    else:
        pool.supervise(options, sock, workers)

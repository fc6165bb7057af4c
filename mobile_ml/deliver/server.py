"""``mobile-ml serve``: the publish root over HTTP (read-only), plus the telemetry endpoint. Starlette on uvicorn.

Static files are served by our own handler rather than a generic one because the update protocol depends on the
details: only the protocol's own paths (``layout``: everything else in the root is 404, keys and databases included),
a strong ETag (the sha256 of the content; for ``blobs/sha256/<hex>`` the name itself), ``If-None-Match`` → 304, a
single ``Range`` with ``If-Range`` → 206 (``ranges``: RFC 9110 exactly), HEAD, ``Cache-Control`` by path (immutable
blobs, 60-second manifests), no directory listings, nothing outside the root, and only GET and HEAD. Connections get
idle, header and body deadlines and a cap (``guard``).
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
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from mobile_ml.deliver import layout, telemetry
from mobile_ml.deliver.guard import FloodLog, GuardedH11, Limits, quiet_accept_errors
from mobile_ml.deliver.ranges import Unsatisfiable, etag_matches, parse_range
from mobile_ml.deliver.ratelimit import RateLimiter
from mobile_ml.publish.storage import cache_control

if TYPE_CHECKING:
    import uvicorn

CHUNK = 64 * 1024


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


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": message}, status, headers=headers)


class _Telemetry:
    """POST /v1/telemetry: rate limit, token, type and size checks, strict validation, one transaction."""

    def __init__(self, store: telemetry.TelemetryStore | None, token: str | None, limiter: RateLimiter | None) -> None:
        self.store, self.token, self.limiter = store, token, limiter
        self.floods = FloodLog()

    async def handle(self, request: Request) -> Response:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        assert self.store is not None  # _refusal answers 404 without a store
        try:
            body = await _read_capped(request, telemetry.MAX_BODY_BYTES)
            if body is None:
                return _error(413, f"body over {telemetry.MAX_BODY_BYTES} bytes")
            rows = telemetry.validate(body)
            return JSONResponse({"accepted": self.store.add(rows)}, 202)
        except telemetry.Invalid as e:
            return _error(e.status, str(e))
        except ClientDisconnect:
            return Response(status_code=400)  # nobody is listening; nothing was stored
        except telemetry.StorageError as e:
            self.floods.note("storage", f"telemetry not stored: {e}")
            return _error(503, "telemetry storage is unavailable", {"Retry-After": "60"})

    def _refusal(self, request: Request) -> Response | None:
        if self.store is None:
            return _error(404, "telemetry is not enabled on this server")
        client = request.client.host if request.client else ""
        if self.limiter is not None and not self.limiter.allow(client):
            return _error(429, "too many telemetry requests", {"Retry-After": str(self.limiter.retry_after())})
        if self.token is not None and not telemetry.token_matches(request.headers.get("authorization"), self.token):
            return _error(401, "missing or wrong telemetry token", {"WWW-Authenticate": 'Bearer realm="telemetry"'})
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return _error(415, "Content-Type must be application/json")
        declared = request.headers.get("content-length", "0")
        if not (declared.isascii() and declared.isdigit()) or int(declared) > telemetry.MAX_BODY_BYTES:
            return _error(413, f"body over {telemetry.MAX_BODY_BYTES} bytes")
        return None


async def _read_capped(request: Request, cap: int) -> bytes | None:
    """The body, or None past ``cap`` bytes (also for chunked bodies that declare no length)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > cap:
            return None
    return bytes(body)


async def _health(request: Request) -> Response:
    return JSONResponse({"ok": True})


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
) -> Starlette:
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
    routes = [
        Route("/v1/telemetry", _Telemetry(store, telemetry_token, limiter).handle, methods=["POST"]),
        Route("/v1/health", _health, methods=["GET"]),
        Route(
            "/{path:path}", _Content(root).handle, methods=["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
        ),
    ]
    app = Starlette(routes=routes)
    app.state.store = store
    return app


def build_server(
    app: Starlette,
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

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        http=GuardedH11.configured(limits, floods),
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
) -> None:
    """Run until SIGINT/SIGTERM; uvicorn finishes in-flight requests before exiting (graceful shutdown)."""
    check_options(root, telemetry_db, telemetry_token)
    app = create_app(root, telemetry_db, telemetry_token=telemetry_token, telemetry_rate=telemetry_rate)
    build_server(app, limits, host=host, port=port, log_level=log_level).run()

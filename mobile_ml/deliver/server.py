"""``mobile-ml serve``: the publish root over HTTP (read-only), plus the telemetry endpoint. Starlette on uvicorn.

Static files are served by our own handler rather than a generic one because the update protocol depends on the
details: a strong ETag (the sha256 of the content; for ``blobs/sha256/<hex>`` the name itself), ``If-None-Match``
→ 304, a single ``Range`` with ``If-Range`` → 206 (416 when unsatisfiable, the full file when the validator does not
match), HEAD, ``Cache-Control`` by path (immutable blobs, 60-second manifests), no directory listings, nothing
outside the root (``..``, absolute paths, symlinks that leave it), no dotfiles, and only GET and HEAD.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import threading
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from mobile_ml.deliver import telemetry
from mobile_ml.publish.storage import cache_control

CHUNK = 64 * 1024


class _ETags:
    """sha256 of files, cached by (inode, size, mtime) so a changed file gets a new tag at once."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[tuple[int, int, int], str]] = {}
        self._lock = threading.Lock()

    def get(self, path: Path, rel: str, st: os.stat_result) -> str:
        name = rel.rsplit("/", 1)[-1]
        if rel.startswith("blobs/sha256/") and len(name) == 64:
            return f'"{name}"'  # content-addressed: the name is the hash (clients verify it anyway)
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


def _resolve(root: Path, rel: str) -> tuple[Path, os.stat_result] | None:
    """The regular file ``rel`` names inside ``root``, or None (404) for anything else."""
    if not rel or "\x00" in rel or rel.startswith("/") or "\\" in rel:
        return None
    parts = rel.split("/")
    if any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        return None
    path = root / rel
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if real != root and root not in real.parents:
        return None  # a symlink that leaves the root
    try:
        st = real.stat()
    except OSError:
        return None
    import stat as stat_mod

    if not stat_mod.S_ISREG(st.st_mode):
        return None  # directories: no listings
    return real, st


def _parse_range(header: str, size: int) -> tuple[int, int] | str | None:
    """``(start, end)`` inclusive; "unsatisfiable"; or None to ignore (malformed or several ranges: send it all)."""
    if not header.startswith("bytes=") or "," in header:
        return None
    spec = header[6:].strip()
    first, _, last = spec.partition("-")
    try:
        if first == "":
            n = int(last)
            if n <= 0:
                return "unsatisfiable"
            return max(0, size - n), size - 1
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size or start > end:
        return "unsatisfiable"
    return start, min(end, size - 1)


def _etag_matches(header: str, etag: str) -> bool:
    tags = [t.strip() for t in header.split(",")]
    return "*" in tags or etag in tags or f"W/{etag}" in tags


def create_app(root: str | Path, telemetry_db: str | Path | None = None) -> Starlette:
    root = Path(root).resolve()
    etags = _ETags()
    store = telemetry.Store(telemetry_db) if telemetry_db else None

    async def content(request: Request) -> Response:
        rel = request.path_params["path"]
        if request.method not in ("GET", "HEAD"):
            return Response("method not allowed\n", 405, headers={"Allow": "GET, HEAD"})
        found = _resolve(root, rel)
        if found is None:
            return Response("not found\n", 404, media_type="text/plain")
        path, st = found
        etag = etags.get(path, rel, st)
        headers = {
            "ETag": etag,
            "Cache-Control": cache_control(rel),
            "Accept-Ranges": "bytes",
            "Content-Type": "application/json" if rel.endswith(".json") else "application/octet-stream",
        }
        inm = request.headers.get("if-none-match")
        if inm is not None and _etag_matches(inm, etag):
            return Response(status_code=304, headers={k: v for k, v in headers.items() if k != "Content-Type"})
        size, start, end, status = st.st_size, 0, st.st_size - 1, 200
        rng = request.headers.get("range")
        if_range = request.headers.get("if-range")
        if rng and (if_range is None or if_range.strip() == etag):
            parsed = _parse_range(rng, size)
            if parsed == "unsatisfiable":
                return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
            if parsed is not None:
                start, end = parsed
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        length = end - start + 1 if size else 0
        headers["Content-Length"] = str(length)
        if request.method == "HEAD":
            return Response(status_code=status, headers=headers)

        def body():
            with open(path, "rb") as f:
                f.seek(start)
                left = length
                while left > 0:
                    chunk = f.read(min(CHUNK, left))
                    if not chunk:
                        return
                    left -= len(chunk)
                    yield chunk

        return StreamingResponse(body(), status_code=status, headers=headers)

    async def post_telemetry(request: Request) -> Response:
        if store is None:
            return JSONResponse({"error": "telemetry is not enabled on this server"}, 404)
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return JSONResponse({"error": "Content-Type must be application/json"}, 415)
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > telemetry.MAX_BODY_BYTES):
            return JSONResponse({"error": f"body over {telemetry.MAX_BODY_BYTES} bytes"}, 413)
        body = bytearray()
        async for chunk in request.stream():  # also caps chunked bodies that declare no length
            body += chunk
            if len(body) > telemetry.MAX_BODY_BYTES:
                return JSONResponse({"error": f"body over {telemetry.MAX_BODY_BYTES} bytes"}, 413)
        try:
            rows = telemetry.validate(bytes(body))
        except telemetry.Invalid as e:
            return JSONResponse({"error": str(e)}, e.status)
        return JSONResponse({"accepted": store.add(rows)}, 202)

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    routes = [
        Route("/v1/telemetry", post_telemetry, methods=["POST"]),
        Route("/v1/health", health, methods=["GET"]),
        Route("/{path:path}", content, methods=["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]),
    ]
    app = Starlette(routes=routes)
    app.state.store = store
    return app


def serve(
    root: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    telemetry_db: str | Path | None = None,
    log_level: str = "warning",
) -> None:
    """Run until SIGINT/SIGTERM; uvicorn finishes in-flight requests before exiting (graceful shutdown)."""
    import uvicorn

    from mobile_ml.errors import InputFileError

    if not Path(root).is_dir():
        raise InputFileError(f"publish root {root} is not a directory", hint="pass the --root you published to")

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):
            # uvicorn re-raises SIGTERM after its graceful shutdown, so the process would die "by signal"; a service
            # manager should see a clean exit after a requested, completed shutdown.
            previous = {s: signal.signal(s, self.handle_exit) for s in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for s, h in previous.items():
                    signal.signal(s, h)

    config = uvicorn.Config(
        create_app(root, telemetry_db),
        host=host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=10,
        server_header=False,
    )
    _Server(config).run()

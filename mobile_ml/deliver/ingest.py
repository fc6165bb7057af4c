"""The endpoints devices post to: ``/v1/telemetry``, ``/v1/aggregates`` and ``/v1/capture``. Each is hostile input
until checked: one rate limiter per address, the bearer token, the content type and a declared and actual size cap
come first, then the body's own strict reader; nothing is stored unless the whole body passes."""

from __future__ import annotations

from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from mobile_ml.deliver import aggregates_store, telemetry
from mobile_ml.deliver.guard import FloodLog
from mobile_ml.deliver.ratelimit import RateLimiter
from mobile_ml.errors import UserError


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": message}, status, headers=headers)


class _Telemetry:
    """POST /v1/telemetry: rate limit, token, type and size checks, strict validation, one transaction."""

    cap = telemetry.MAX_BODY_BYTES

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
        if not (declared.isascii() and declared.isdigit()) or int(declared) > self.cap:
            return _error(413, f"body over {self.cap} bytes")
        return None


class _Aggregates(_Telemetry):
    """POST /v1/aggregates: the same gate as telemetry (one rate limiter for both, token, type, size), then one
    aggregates document checked against its release's baseline and stored once per (install, snapshot id)."""

    cap = aggregates_store.MAX_BODY_BYTES

    def __init__(self, telemetry_handler: _Telemetry, root: Path) -> None:
        super().__init__(telemetry_handler.store, telemetry_handler.token, telemetry_handler.limiter)
        self.baselines = aggregates_store.Baselines(str(root))

    async def handle(self, request: Request) -> Response:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        store = self.store
        assert store is not None  # _refusal answers 404 without a store
        try:
            install = aggregates_store.install_of(request.headers.get(aggregates_store.INSTALL_HEADER))
            body = await _read_capped(request, self.cap)
            if body is None:
                return _error(413, f"body over {self.cap} bytes")
            # Parsing up to 1 MiB, the baseline's first read and the insert block: off the event loop.
            row = await run_in_threadpool(aggregates_store.accept, body, install, self.baselines)
            stored = await run_in_threadpool(store.add_aggregates, row)
            return JSONResponse({"snapshot_id": row["snapshot_id"], "duplicate": not stored}, 202)
        except telemetry.Invalid as e:
            return _error(e.status, str(e))
        except ClientDisconnect:
            return Response(status_code=400)
        except aggregates_store.BaselineUnavailable as e:
            self.floods.note("baseline", f"aggregates not stored: {e}")
            return _error(503, "the release's baseline is unavailable on this server", {"Retry-After": "60"})
        except telemetry.StorageError as e:
            self.floods.note("storage", f"aggregates not stored: {e}")
            return _error(503, "telemetry storage is unavailable", {"Retry-After": "60"})


class _Capture:
    """POST /v1/capture: telemetry's rate limit, token and size checks, then ``capture.ingest``; 202 stored."""

    def __init__(self, root: Path, store: str | None, token: str | None, limiter: RateLimiter | None) -> None:
        from mobile_ml.capture.store import CaptureStore

        self.root, self.store = root, CaptureStore(store) if store else None
        self.token, self.limiter = token, limiter
        self.floods = FloodLog()

    async def handle(self, request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        from mobile_ml.capture import ingest, store

        if self.store is None:
            return _error(404, "capture is not enabled on this server")
        refused = self._refusal(request, ingest.MAX_BODY_BYTES)
        if refused is not None:
            return refused
        try:
            body = await _read_capped(request, ingest.MAX_BODY_BYTES)
            if body is None:
                return _error(413, f"body over {ingest.MAX_BODY_BYTES} bytes")
            ok = await run_in_threadpool(ingest.validate, body, self.root)
            batch_id = await run_in_threadpool(self.store.add, ok.batch, ok.policy.max_per_day)
            return JSONResponse({"accepted": len(ok.batch.samples), "batch": batch_id}, 202)
        except ingest.Invalid as e:
            return _error(e.status, str(e))
        except store.OverBudget as e:
            return _error(429, e.message, {"Retry-After": "3600"})
        except store.Busy as e:
            return _error(503, e.message, {"Retry-After": "5"})
        except ClientDisconnect:
            return Response(status_code=400)
        except UserError as e:  # the store cannot be written
            self.floods.note("storage", f"capture not stored: {e}")
            return _error(503, "capture storage is unavailable", {"Retry-After": "60"})

    def _refusal(self, request: Request, cap: int) -> Response | None:
        """Telemetry's checks, in its order: rate, token (the telemetry token), type, declared size."""
        client = request.client.host if request.client else ""
        if self.limiter is not None and not self.limiter.allow(client):
            return _error(429, "too many requests", {"Retry-After": str(self.limiter.retry_after())})
        if self.token is not None and not telemetry.token_matches(request.headers.get("authorization"), self.token):
            return _error(401, "missing or wrong telemetry token", {"WWW-Authenticate": 'Bearer realm="telemetry"'})
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return _error(415, "Content-Type must be application/json")
        declared = request.headers.get("content-length", "0")
        if not (declared.isascii() and declared.isdigit()) or int(declared) > cap:
            return _error(413, f"body over {cap} bytes")
        return None


async def _read_capped(request: Request, cap: int) -> bytes | None:
    """The body, or None past ``cap`` bytes (also for chunked bodies that declare no length)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > cap:
            return None
    return bytes(body)

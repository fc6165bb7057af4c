"""Connection limits for `mobile-ml serve`: idle, header and body timeouts, a connection cap, and flood logging.

uvicorn's own keep-alive timeout only starts after a response and is cancelled by the first byte of the next request,
so a socket that never sends anything, or sends one header byte every few seconds, stays open for ever; with the file
descriptors gone, every ``accept()`` fails and asyncio logs a traceback per attempt. Here every phase of a request has
a deadline, connections over the cap are closed as soon as they are accepted, and each kind of trouble is logged once
per minute at most, with a count, however hard it floods.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

try:  # uvicorn[standard]; without it `mobile-ml serve` falls back to h11 (slower, same guarantees)
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

from mobile_ml.errors import ConfigError

log = logging.getLogger("uvicorn.error")
_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def fd_max_connections() -> int:
    """Connections that fit under the open-file limit: one sending a file holds two descriptors, and the process
    keeps a few for itself (database, logs, the listening socket)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1_000_000
    return max(1, (soft - 32) // 2)


@dataclass(frozen=True)
class Limits:
    idle_timeout: float = 5.0  # s a connection may wait for the first byte of a request
    header_timeout: float = 10.0  # s from a request's first byte to the end of its headers
    body_timeout: float = 30.0  # s from the end of the headers to the end of the body
    max_connections: int = 1000  # open connections at once, never more than the open-file limit allows
    max_header_bytes: int = 16 * 1024  # request line and headers together

    def __post_init__(self) -> None:
        for name in ("idle_timeout", "header_timeout", "body_timeout"):
            value = getattr(self, name)
            if not 0 < value <= 3600:
                raise ConfigError(f"{name.replace('_', '-')} {value} is out of range", hint="use 0 < seconds ≤ 3600")
        if self.max_connections < 1:
            raise ConfigError(f"max-connections {self.max_connections} is below 1", hint="use 1 or more")

    @property
    def connections(self) -> int:
        # Above the open-file limit, accept() fails with EMFILE and real clients wait in the backlog: refuse instead.
        return min(self.max_connections, fd_max_connections())


class FloodLog:
    """The first event of a kind is logged; repeats within ``interval`` seconds are only counted."""

    def __init__(self, interval: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def note(self, kind: str, message: str) -> None:
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return
        more = self._suppressed.pop(kind, 0)
        since = f"; {more} more since the last report" if more else ""
        log.warning("%s%s (repeats are logged at most every %g s)", message, since, self.interval)
        self._last[kind] = now


class _Deadlines:
    """The deadline both guarded protocols share: one at a time, named by the phase it guards.

    Arming is the hot path (twice per request on a keep-alive connection), so it only moves a number: the one timer
    per connection is scheduled when none is pending and, when it fires early, re-schedules itself for the current
    deadline. A cancelled phase lets the pending timer fire once and do nothing.
    """

    floods: ClassVar[FloodLog]
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    _timer: asyncio.TimerHandle | None
    _phase: str
    _deadline: float
    _seconds: float
    _timer_at: float  # when the pending timer fires

    def _arm(self, phase: str, seconds: float) -> None:
        self._phase, self._seconds = phase, seconds
        self._deadline = self.loop.time() + seconds
        if self._timer is not None and self._timer_at > self._deadline:
            self._timer.cancel()  # pending for a longer phase (a 30 s body) than this one (a 5 s idle)
            self._timer = None
        if self._timer is None:
            self._timer, self._timer_at = self.loop.call_at(self._deadline, self._expire), self._deadline

    def _cancel(self) -> None:
        self._phase = ""

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._phase = None, ""

    def _expire(self) -> None:
        self._timer = None
        if not self._phase or self.transport.is_closing():
            return
        if self.loop.time() < self._deadline:
            self._timer = self.loop.call_at(self._deadline, self._expire)  # re-armed since this timer was set
            self._timer_at = self._deadline
            return
        phase, seconds = self._phase, self._seconds
        self._phase = ""
        self.floods.note(f"timeout-{phase}", f"closed a connection past its {seconds:g} s {phase} timeout")
        self.transport.close()


class GuardedH11(_Deadlines, H11Protocol):
    """uvicorn's h11 protocol with a deadline for each phase of a request and a cap on connections."""

    limits: ClassVar[Limits] = Limits()
    floods: ClassVar[FloodLog] = FloodLog()

    @classmethod
    def configured(cls, limits: Limits, floods: FloodLog | None = None) -> type[GuardedH11]:
        """A subclass bound to ``limits``: uvicorn builds protocols from a class, with no room for arguments."""
        return type("GuardedH11", (cls,), {"limits": limits, "floods": floods or FloodLog()})

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._timer = None
        self._phase = ""
        super().connection_made(transport)
        cap = self.limits.connections
        if len(self.connections) > cap:
            self.floods.note("cap", f"connection limit of {cap} reached: closing new connections at once")
            self.transport.close()
            return
        self._arm("idle", self.limits.idle_timeout)  # uvicorn arms nothing before the first request

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE and self._phase != "header":
            self._arm("header", self.limits.header_timeout)  # once per request, not per byte
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # may process a pipelined request
        self._follow()
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._unset_keepalive_if_required()  # uvicorn's whole-second timer: ours takes fractions, for tests
            self._arm("idle", self.limits.idle_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        super().connection_lost(exc)

    def _follow(self) -> None:
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            if self._phase != "body":
                self._arm("body", self.limits.body_timeout)
        elif state is not h11.IDLE:
            self._cancel()  # the whole request is in (the app owns the connection now), or closed


if HttpToolsProtocol is not None:

    class GuardedHttpTools(_Deadlines, HttpToolsProtocol):
        """uvicorn's httptools (llhttp, C) protocol with the same deadlines, cap and header limit as GuardedH11.

        llhttp parses a request as soon as its bytes arrive, so the phase follows the parser's callbacks: idle →
        header (first byte) → body (headers complete) → done (message complete; the app owns the connection) → idle
        (response sent). llhttp has no header-size limit of its own: the bytes of the header phase are counted here.
        """

        limits: ClassVar[Limits] = Limits()
        floods: ClassVar[FloodLog] = FloodLog()

        @classmethod
        def configured(cls, limits: Limits, floods: FloodLog | None = None) -> type[GuardedHttpTools]:
            return type("GuardedHttpTools", (cls,), {"limits": limits, "floods": floods or FloodLog()})

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            self._timer = None
            self._phase = ""
            self._state, self._header_bytes = "idle", 0
            super().connection_made(transport)
            cap = self.limits.connections
            if len(self.connections) > cap:
                self.floods.note("cap", f"connection limit of {cap} reached: closing new connections at once")
                self.transport.close()
                return
            self._arm("idle", self.limits.idle_timeout)

        def data_received(self, data: bytes) -> None:
            if self._state == "idle":
                self._begin()
            if self._state == "header":
                self._header_bytes += len(data)
            super().data_received(data)
            if self.transport.is_closing():
                return
            if self._state == "header" and self._header_bytes > self.limits.max_header_bytes:
                self.send_400_response("Request headers too large.")  # as h11 does past its event size
            elif self._state == "body" and self._phase != "body":
                self._arm("body", self.limits.body_timeout)

        def _begin(self) -> None:
            self._state, self._header_bytes = "header", 0
            self._arm("header", self.limits.header_timeout)  # once per request, not per byte

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._state != "header":
                self._begin()  # a pipelined request

        def on_headers_complete(self) -> None:
            # The whole head came in one read: counted exactly, only when the bytes read hint it may be too long
            # (they may include the start of a body). Raising here stops llhttp, and uvicorn answers 400.
            cap = self.limits.max_header_bytes
            if self._header_bytes > cap and len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers) > cap:
                raise ValueError("request headers too large")
            self._state = "body"
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._state = "done"
            self._cancel()  # the whole request is in: the app owns the connection now
            super().on_message_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()  # may start a pipelined request
            idle = self.cycle is None or self.cycle.response_complete  # no pipelined request is running now
            if self._state == "done" and idle and not self.transport.is_closing():
                self._unset_keepalive_if_required()  # uvicorn's whole-second timer: ours takes fractions, for tests
                self._state = "idle"
                self._arm("idle", self.limits.idle_timeout)

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_timer()
            super().connection_lost(exc)


else:  # pragma: no cover
    GuardedHttpTools = None  # type: ignore[assignment,misc]


def quiet_accept_errors(loop: asyncio.AbstractEventLoop, floods: FloodLog) -> None:
    """asyncio reports every failed ``accept()`` with a traceback, once a second while it lasts: count them instead."""

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in _OUT_OF_RESOURCES and "accept" in context.get("message", ""):
            floods.note("accept", f"cannot accept connections: {exc.strerror} (open-file limit reached?)")
            return
        loop.default_exception_handler(context)

    loop.set_exception_handler(handler)

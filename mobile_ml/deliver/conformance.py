"""``release check-server``: does a front (CDN, nginx, S3 website, ``mobile-ml serve``) keep what devices rely on?

The publish root is only static files, so whatever serves it decides whether devices get strong validators, 304s,
resumable ranges, sane caching and nothing else. This probes a live URL the way devices (and attackers) talk to it
and reports each property of docs/update-protocol.md (sections 2 and 7) as one ``CheckResult``.

Requests go through ``http.client`` directly, not urllib: no redirect following, no path normalisation (a
traversal attempt must reach the server as written), one connection per request, a timeout on every socket
operation and a cap on every body read.
"""

from __future__ import annotations

import hashlib
import http.client
import re
import socket
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from mobile_ml.contracts import ContractError, parse_document
from mobile_ml.contracts.conformance import CheckResult, ServerCheck
from mobile_ml.contracts.manifest import FileEntry, Manifest, Release
from mobile_ml.errors import ConfigError, GateError, UserError

MAX_BODY = 64 << 20  # bytes of a response kept in memory; a longer blob is hashed as it streams, not kept
CHUNK = 1 << 16
MAX_MANIFEST_AGE = 300  # seconds: a manifest cached longer keeps devices on a halted or rolled-back release
MIN_IMMUTABLE_AGE = 86400  # seconds: content-addressed files may be cached for ever (the publisher writes a year)
STRONG_ETAG = re.compile(r'"[\x21\x23-\x7e\x80-\xff]*"')  # RFC 9110 8.8.3 entity-tag without W/
LISTING_MARKERS = ("Index of /", "<ListBucketResult", "Directory listing for")


class Unreachable(UserError):
    """Nothing answers at the URL (refused, unknown host, timeout): exit 2."""


class NotAPublishRoot(GateError):
    """The URL answers but the channel's manifest or signature is not there: exit 3 naming the first missing file."""


class NonConformant(GateError):
    """The front serves the root but breaks what devices rely on: exit 3 naming each failed check."""


class ProbeError(Exception):
    """A request that got no complete HTTP response; ``reason`` alone ("connection refused") for one-line errors."""

    def __init__(self, request: str, reason: str) -> None:
        super().__init__(f"{request}: {reason}")
        self.reason = reason


class Reply(NamedTuple):
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes  # empty when the body was longer than MAX_BODY (``length`` and ``sha256`` still describe it)
    sha256: str = ""
    length: int = 0  # bytes received, at most the request's limit

    def h(self, name: str) -> str:
        return self.headers.get(name, "")


class Probe:
    """Requests against one base URL; ``rel`` paths are relative to the root, ``/``-absolute ones are sent as is."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{url!r} is not an http:// or https:// URL", hint="e.g. http://127.0.0.1:8000/")
        self.https = parts.scheme == "https"
        self.host, self.port = parts.hostname, parts.port or (443 if self.https else 80)
        self.base = parts.path.rstrip("/") + "/"
        self.timeout = timeout

    def target(self, rel: str) -> str:
        return rel if rel.startswith("/") else self.base + rel

    def _connect(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=self.timeout)

    def get(self, rel: str, headers: dict[str, str] | None = None, *, limit: int = MAX_BODY) -> Reply:
        """GET reading at most ``limit`` bytes of the body (a blob: its signed length + 1, to see a longer one)."""
        conn = self._connect()
        try:
            conn.request("GET", self.target(rel), headers={"Accept-Encoding": "identity", **(headers or {})})
            resp = conn.getresponse()
            digest, parts, length = hashlib.sha256(), [], 0
            while length < limit and (chunk := resp.read(min(CHUNK, limit - length))):
                digest.update(chunk)
                length += len(chunk)
                if length <= MAX_BODY:
                    parts.append(chunk)
            body = b"".join(parts) if length <= MAX_BODY else b""
            return Reply(resp.status, _lower(resp.getheaders()), body, digest.hexdigest(), length)
        except (OSError, http.client.HTTPException) as e:
            raise ProbeError(f"GET {self.target(rel)}", _reason(e)) from None
        finally:
            conn.close()

    def head(self, rel: str) -> tuple[Reply, int]:
        """HEAD on a raw socket, so bytes a server wrongly sends after the headers are seen: (reply, extra bytes)."""
        conn = self._connect()
        try:
            conn.connect()
            assert conn.sock is not None
            request = f"HEAD {self.target(rel)} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nConnection: close\r\n\r\n"
            conn.sock.sendall(request.encode("ascii"))
            raw = _read_until_close(conn.sock, 1 << 20)
        except OSError as e:
            raise ProbeError(f"HEAD {self.target(rel)}", _reason(e)) from None
        finally:
            conn.close()
        head, sep, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = lines[0].split(" ")
        if not sep or len(status) < 2 or not status[1].isdigit():
            raise ProbeError(f"HEAD {self.target(rel)}", "not an HTTP response")
        pairs = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:] if ":" in line]
        return Reply(int(status[1]), _lower(pairs), b""), len(rest)


def _read_until_close(sock: socket.socket, cap: int) -> bytes:
    parts, have = [], 0
    try:
        while have < cap and (chunk := sock.recv(65536)):
            parts.append(chunk)
            have += len(chunk)
    except TimeoutError:  # a server that keeps the connection open after Connection: close; what came is enough
        pass
    return b"".join(parts)


def _lower(pairs: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in pairs:
        out[k.lower()] = f"{out[k.lower()]}, {v}" if k.lower() in out else v  # repeated headers fold (RFC 9110 5.3)
    return out


def _reason(e: BaseException) -> str:
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, (TimeoutError, socket.timeout)):
        return "timed out"
    return getattr(e, "strerror", None) or str(e) or type(e).__name__


@dataclass
class Seen:
    """What the first pass fetched; every check reads from here and makes its own further requests."""

    probe: Probe
    model: str
    channel: str
    manifest: Manifest
    replies: dict[str, Reply]  # root-relative path → its identity GET
    missing: list[str] = field(default_factory=list)
    entries: dict[str, FileEntry] = field(default_factory=dict)  # blob path → what the signed release says
    immutable: list[str] = field(default_factory=list)  # releases and history documents that were fetched

    @property
    def manifest_path(self) -> str:
        return f"{self.model}/channels/{self.channel}.json"

    def sample(self) -> tuple[str, bytes] | None:
        """The largest blob that arrived whole and right (and fits in memory), for the range checks."""
        good = [(e.length, p) for p, e in self.entries.items() if arrived(self.replies.get(p), e, MAX_BODY)]
        if not good:
            return None
        path = max(good)[1]
        return path, self.replies[path].body

    def known(self) -> set[str]:
        """sha256 of every protocol file seen: a traversal attempt answered with one of these stayed in the root."""
        return {r.sha256 for r in self.replies.values() if r.status == 200}


def arrived(reply: Reply | None, e: FileEntry, most: int | None = None) -> bool:
    """The blob came with exactly its signed bytes (and, given ``most``, no more than that many)."""
    if reply is None or reply.status != 200 or reply.length != e.length or reply.sha256 != e.sha256:
        return False
    return most is None or e.length <= most


def check_server(url: str, model: str, channel: str, *, public_key: Any = None, timeout: float = 10.0) -> ServerCheck:
    """Probe ``url`` (the publish root as served) for ``model``/``channel``; raises only for a dead URL or a URL
    that is not a publish root; every other finding is a failed ``CheckResult``."""
    from mobile_ml.deliver import conformance_checks as checks
    from mobile_ml.publish.manifest import check_name

    check_name("model", model)
    check_name("channel", channel)  # names become paths: no "/" or ".." gets into a request
    probe = Probe(url, timeout)
    try:
        seen = _first_pass(probe, model, channel)
    except ProbeError as e:
        raise Unreachable(
            f"cannot reach {probe.host}:{probe.port}: {e.reason}",
            hint="is the server running, and are the URL's host and port right?",
        ) from None
    results = [checks.reachable(seen)]
    if public_key is not None:
        results.append(checks.signature(seen, public_key))
    for name, run in checks.CHECKS:
        try:
            results.append(run(seen))
        except ProbeError as e:
            results.append(CheckResult(name, False, f"no answer: {e}"))
    return ServerCheck(url=url, model=model, channel=channel, checks=tuple(results))


def _first_pass(probe: Probe, model: str, channel: str) -> Seen:
    path = f"{model}/channels/{channel}.json"
    replies: dict[str, Reply] = {}
    for p in (path, path + ".sig"):
        replies[p] = probe.get(p)
        if replies[p].status != 200:
            raise NotAPublishRoot(
                f"{probe.target('')} is not a publish root for {model}/{channel}: first missing file {p} "
                f"(HTTP {replies[p].status})",
                hint="pass the URL the publish root is served at, and the model and channel published there",
            )
    try:
        manifest = parse_document(Manifest, replies[path].body, where=probe.target(path))
    except ContractError as e:
        raise NotAPublishRoot(e.message, hint="the URL serves something that is not a mobile-ml manifest") from None
    seen = Seen(probe, model, channel, manifest, replies)
    for rel in _protocol_files(seen):
        entry = seen.entries.get(rel)
        reply = probe.get(rel, limit=entry.length + 1) if entry is not None else probe.get(rel)
        replies[rel] = reply
        if reply.status != 200:
            seen.missing.append(f"{rel} (HTTP {reply.status})")
    return seen


def _protocol_files(seen: Seen) -> Iterator[str]:
    m = seen.manifest
    releases = [m.release] + ([m.fallback] if m.fallback is not None else [])
    for release in releases:
        for e in release.files:
            seen.entries.setdefault(e.url, e)
    yield from seen.entries
    history = f"{seen.model}/history/{seen.channel}/{m.manifest_version:08d}.json"
    docs = [f"{seen.model}/releases/{r.version}.json" for r in releases] + [history, history + ".sig"]
    seen.immutable.extend(docs)
    yield from docs


def release_matches(body: bytes, release: Release, where: str) -> str | None:
    """None when a release document says what the signed manifest's release says, else the problem."""
    try:
        doc = parse_document(Release, body, where=where)
    except ContractError as e:
        return e.message
    return None if doc == release else f"{where} differs from the manifest's release {release.version}"


def require(report: ServerCheck) -> None:
    """Exit 3 naming each failed check (the table or --json has the full detail)."""
    if report.ok:
        return
    named = "; ".join(f"{c.check.value} ({_short(c.detail)})" for c in report.failures)
    raise NonConformant(
        f"{len(report.failures)} of {len(report.checks)} checks failed: {named}",
        hint="each failure breaks something devices rely on; see docs/update-protocol.md, sections 2 and 7",
    )


def _short(text: str, width: int = 90) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


CheckFn = Callable[[Seen], CheckResult]

"""HTTP for the device: capped reads, and resumable downloads that never read past a file's signed length.

Every network problem (refused, reset, timed out, a broken HTTP response, a check over its deadline, a transfer
slower than the minimum rate) becomes one ``Failed("network")``; an HTTP error status becomes
``Failed("http_<status>")``. Nothing from the network raises anything else.

Slow retrieval (threat 7): a per-read timeout alone lets a server that drips one byte a second hold a check for
hours. So every read also checks the check's overall deadline and the transfer's rate over a sliding window; the
bytes that did arrive stay in the partial file for the next check to resume from.
"""

from __future__ import annotations

import os
import re
import time
import urllib.error
import urllib.request
from http.client import HTTPException
from pathlib import Path
from typing import Any

from mobile_ml.contracts.manifest import FileEntry, Refusal
from mobile_ml.contracts.state import ETAG, Failure
from mobile_ml.publish.trust import Rejected, check_file

CHUNK = 64 * 1024
NETWORK_ERRORS = (urllib.error.URLError, TimeoutError, OSError, HTTPException)


class Failed(Exception):
    """The check could not complete (network, server, device); ``reason`` is a ``Failure`` value or http_<status>."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


class Meter:
    """One transfer's rate: fails when fewer than ``min_rate × window`` bytes arrived in the last ``window``."""

    def __init__(self, what: str, min_rate: float, window: float) -> None:
        self.what, self.min_rate, self.window = what, min_rate, window
        self.start, self.count = time.monotonic(), 0

    def add(self, n: int) -> None:
        self.count += n
        elapsed = time.monotonic() - self.start
        if elapsed < self.window:
            return
        if self.count < self.min_rate * elapsed:
            raise Failed(
                Failure.NETWORK.value,
                f"{self.what}: {self.count} bytes in {elapsed:.1f} s, under {self.min_rate:g} bytes/s (will resume)",
            )
        self.start, self.count = time.monotonic(), 0


class Http:
    """One check's connection settings: ``timeout`` per connect and read (seconds), ``deadline`` for every request
    of the check together (seconds from now), ``min_rate`` (bytes/s) a transfer must keep up over ``window`` (s)."""

    def __init__(
        self, base: str, timeout: float, deadline: float = 120.0, min_rate: float = 1024.0, window: float = 10.0
    ) -> None:
        self.base = base if base.endswith("/") else base + "/"
        self.timeout = timeout
        self.ends = time.monotonic() + deadline
        self.deadline, self.min_rate, self.window = deadline, min_rate, window

    def _left(self, what: str) -> float:
        left = self.ends - time.monotonic()
        if left <= 0:
            raise Failed(Failure.NETWORK.value, f"{what}: the check is over its {self.deadline:g} s deadline")
        return left

    def meter(self, what: str) -> Meter:
        return Meter(what, self.min_rate, self.window)

    def open(self, path: str, headers: dict[str, str] | None = None) -> Any:
        return self._send(urllib.request.Request(self.base + path, headers=headers or {}), path)

    def post(self, path: str, data: bytes, headers: dict[str, str]) -> Any:
        return self._send(urllib.request.Request(self.base + path, data=data, headers=headers, method="POST"), path)

    def _send(self, req: urllib.request.Request, path: str) -> Any:
        try:
            return urllib.request.urlopen(req, timeout=min(self.timeout, self._left(path)))
        except urllib.error.HTTPError as e:
            if e.code in (304, 416):
                return e
            raise Failed(f"http_{e.code}", f"{path}: HTTP {e.code}") from None
        except NETWORK_ERRORS as e:
            raise Failed(Failure.NETWORK.value, f"{path}: {getattr(e, 'reason', e)}") from None

    def read_some(self, resp: Any, n: int, what: str, meter: Meter) -> bytes:
        """Up to ``n`` bytes, returning what has arrived (``read`` waits for all ``n``, and a timeout then loses
        them): a download that stalls keeps every byte it got for the next check to resume from. Raises when the
        check is past its deadline or the transfer under its minimum rate."""
        self._left(what)
        try:
            chunk = bytes(resp.read1(n))
        except NETWORK_ERRORS as e:
            raise Failed(Failure.NETWORK.value, f"{what}: {e}") from None
        self._left(what)
        meter.add(len(chunk))
        return chunk

    def read_capped(self, resp: Any, cap: int, what: str) -> bytes:
        """The whole body, refused (``too_large``) as soon as it passes ``cap`` bytes: never read further."""
        parts, have, meter = [], 0, self.meter(what)
        while have <= cap:
            chunk = self.read_some(resp, min(CHUNK, cap + 1 - have), what, meter)
            if not chunk:
                break
            parts.append(chunk)
            have += len(chunk)
        if have > cap:
            raise Rejected(Refusal.TOO_LARGE, f"{what} is over {cap} bytes")
        return b"".join(parts)


def status(resp: Any) -> int:
    return int(getattr(resp, "status", None) or resp.getcode())


def _saved_etag(etag_file: Path) -> str | None:
    """The validator stored with a partial download, if it is one we can send back in a header."""
    try:
        text = etag_file.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return None
    return text if sendable_etag(text) else None


def sendable_etag(text: str) -> bool:
    """A server's ETag we may store and send back: printable ASCII (a newline would break the request)."""
    return re.fullmatch(ETAG, text) is not None


def _discard(*paths: Path) -> None:
    for p in paths:
        p.unlink(missing_ok=True)


def download(conn: Http, entry: FileEntry, staging: Path) -> bytes:
    """Resumable download of one signed file; never reads past its signed length; returns verified bytes."""
    part, etag_file = staging / f"{entry.sha256}.part", staging / f"{entry.sha256}.etag"
    for _attempt in (1, 2):  # a corrupt partial file fails the hash once, then downloads from scratch
        have = _fetch(conn, entry, part, etag_file)
        data = part.read_bytes()
        try:
            check_file(data, entry)
            return data
        except Rejected:
            _discard(part, etag_file)
            if have == 0:
                raise
    raise AssertionError("unreachable: the second attempt starts from nothing and returns or raises")


def _fetch(conn: Http, entry: FileEntry, part: Path, etag_file: Path) -> int:
    """Complete ``part`` from the server (resuming when it can); returns how many bytes were already there."""
    have = part.stat().st_size if part.exists() else 0
    etag = _saved_etag(etag_file)
    headers = {}
    if 0 < have < entry.length and etag:
        headers = {"Range": f"bytes={have}-", "If-Range": etag}
    elif have > 0:
        _discard(part)
        have = 0
    resp = conn.open(entry.url, headers)
    if status(resp) == 206 and resp.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
        mode, total = "ab", resp.headers["Content-Range"].rpartition("/")[2]
    else:
        mode, have, total = "wb", 0, resp.headers.get("Content-Length")  # 200: the whole file
    if total and total.isdigit() and int(total) != entry.length:  # the server is serving some other file
        _discard(part, etag_file)
        raise Rejected(Refusal.LENGTH_MISMATCH, f"{entry.url}: server has {total} bytes, signed {entry.length}")
    new_etag = resp.headers.get("ETag")
    if new_etag and sendable_etag(new_etag):
        etag_file.write_text(new_etag, encoding="ascii")
    left, meter = entry.length - have, conn.meter(entry.url)
    with open(part, mode) as f:
        while left > 0:
            chunk = conn.read_some(resp, min(CHUNK, left), entry.url, meter)
            if not chunk:
                break
            f.write(chunk)
            left -= len(chunk)
        f.flush()
        os.fsync(f.fileno())
    if left > 0:
        raise Failed(Failure.NETWORK.value, f"{entry.url}: connection closed with {left} bytes to go (will resume)")
    return have

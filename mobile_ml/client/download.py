"""HTTP for the device: capped reads, and resumable downloads that never read past a file's signed length.

Every network problem (refused, reset, timed out, a broken HTTP response) becomes one ``Failed("network")``; an HTTP
error status becomes ``Failed("http_<status>")``. Nothing from the network raises anything else.
"""

from __future__ import annotations

import os
import re
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


class Http:
    def __init__(self, base: str, timeout: float) -> None:
        self.base = base if base.endswith("/") else base + "/"
        self.timeout = timeout

    def open(self, path: str, headers: dict[str, str] | None = None) -> Any:
        req = urllib.request.Request(self.base + path, headers=headers or {})
        try:
            return urllib.request.urlopen(req, timeout=self.timeout)
        except urllib.error.HTTPError as e:
            if e.code in (304, 416):
                return e
            raise Failed(f"http_{e.code}", f"{path}: HTTP {e.code}") from None
        except NETWORK_ERRORS as e:
            raise Failed(Failure.NETWORK.value, f"{path}: {getattr(e, 'reason', e)}") from None

    def read(self, resp: Any, n: int, what: str) -> bytes:
        try:
            return bytes(resp.read(n))
        except NETWORK_ERRORS as e:
            raise Failed(Failure.NETWORK.value, f"{what}: {e}") from None

    def read_some(self, resp: Any, n: int, what: str) -> bytes:
        """Up to ``n`` bytes, returning what has arrived (``read`` waits for all ``n``, and a timeout then loses
        them): a download that stalls keeps every byte it got for the next check to resume from."""
        try:
            return bytes(resp.read1(n))
        except NETWORK_ERRORS as e:
            raise Failed(Failure.NETWORK.value, f"{what}: {e}") from None

    def read_capped(self, resp: Any, cap: int, what: str) -> bytes:
        data = self.read(resp, cap + 1, what)
        if len(data) > cap:
            raise Rejected(Refusal.TOO_LARGE, f"{what} is over {cap} bytes")
        return data


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
    left = entry.length - have
    with open(part, mode) as f:
        while left > 0:
            chunk = conn.read_some(resp, min(CHUNK, left), entry.url)
            if not chunk:
                break
            f.write(chunk)
            left -= len(chunk)
        f.flush()
        os.fsync(f.fileno())
    if left > 0:
        raise Failed(Failure.NETWORK.value, f"{entry.url}: connection closed with {left} bytes to go (will resume)")
    return have

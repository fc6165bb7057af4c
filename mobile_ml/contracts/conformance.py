"""``mobile-ml release check-server --json``: how a front (CDN, nginx, S3 website, ``mobile-ml serve``) measured
against what devices rely on (docs/update-protocol.md, sections 2 and 7)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, ClassVar

from mobile_ml.contracts import Fields
from mobile_ml.contracts.manifest import NAME


class Check(str, enum.Enum):
    """One property of the protocol a front must keep; the order is the order they are run and printed."""

    REACHABLE = "reachable"  # manifest, signature, the release's files, release document, history copy: 200
    SIGNATURE = "signature"  # the manifest's signature verifies with --public-key (only run when one is given)
    SHA256 = "sha256"  # each file's bytes hash to the sha256 (and have the length) the signed release names
    STRONG_ETAG = "strong_etag"  # an ETag, not W/, also to a client that accepts gzip; blobs sent as identity
    NOT_MODIFIED = "not_modified"  # If-None-Match with that ETag → 304 and no body
    RANGE = "range"  # Range → 206 with the right Content-Range and exactly the slice
    IF_RANGE = "if_range"  # If-Range: the current ETag → 206; a stale validator → 200 with the whole file
    UNSATISFIABLE = "unsatisfiable"  # a range past the end → 416
    HEAD = "head"  # HEAD: same status, ETag and Content-Length as GET, and no body
    CACHE_CONTROL = "cache_control"  # immutable with a long max-age on blobs, short or no-cache on manifests
    NO_LISTING = "no_listing"  # no directory listing at the root, its parents or any directory inside it
    INSIDE_ROOT = "inside_root"  # traversal (plain, encoded) and non-protocol files never 2xx with foreign content


@dataclass(frozen=True)
class CheckResult:
    check: Check
    passed: bool
    detail: str  # what was seen: the evidence for a pass, the first problems for a failure

    @classmethod
    def from_dict(cls, f: Fields) -> CheckResult:
        result = cls(check=f.choice("check", Check), passed=f.boolean("passed"), detail=f.string("detail"))
        f.done()
        return result

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check.value, "passed": self.passed, "detail": self.detail}


@dataclass(frozen=True)
class ServerCheck:
    SCHEMA: ClassVar[str] = "mobile_ml.check_server"
    SCHEMA_VERSION: ClassVar[int] = 1
    WHAT: ClassVar[str] = "a mobile-ml server conformance report"
    REDO: ClassVar[str] = "mobile-ml release check-server URL --model NAME --channel C --json"

    url: str  # the publish root as the front serves it
    model: str
    channel: str
    checks: tuple[CheckResult, ...]

    @property
    def ok(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if not c.passed)

    @classmethod
    def from_dict(cls, f: Fields) -> ServerCheck:
        report = cls(
            url=f.string("url", max_len=2048),
            model=f.string("model", pattern=NAME),
            channel=f.string("channel", pattern=NAME),
            checks=tuple(CheckResult.from_dict(c) for c in f.objs("checks", max_len=len(Check))),
        )
        if f.boolean("ok") != report.ok:  # derived: a hand-edited "ok" that disagrees with the checks is refused
            raise f.error("ok", f"says {not report.ok}, but the checks say {report.ok}")
        f.done()
        return report

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "model": self.model,
            "channel": self.channel,
            "ok": self.ok,
            "checks": [c.to_dict() for c in self.checks],
        }

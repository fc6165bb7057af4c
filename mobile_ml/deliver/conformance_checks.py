"""The checks of ``release check-server``, one function per property devices rely on (see ``Check``).

Each takes what the first pass fetched (``Seen``), makes its own requests and returns one ``CheckResult`` whose
detail is the evidence: what was sent and what came back.
"""

from __future__ import annotations

from typing import Any

from mobile_ml.contracts.conformance import Check, CheckResult
from mobile_ml.deliver.conformance import (
    LISTING_MARKERS,
    MAX_MANIFEST_AGE,
    MIN_IMMUTABLE_AGE,
    STRONG_ETAG,
    CheckFn,
    Seen,
    arrived,
    release_matches,
)

GZIP = {"Accept-Encoding": "gzip"}  # what Android's HTTP stacks send unasked: a front may compress (and weaken ETags)


def _result(check: Check, problems: list[str], evidence: str) -> CheckResult:
    return CheckResult(check, not problems, "; ".join(problems[:4]) + (" …" if len(problems) > 4 else "") or evidence)


def reachable(seen: Seen) -> CheckResult:
    n = len(seen.replies)
    return _result(Check.REACHABLE, [f"missing {m}" for m in seen.missing], f"{n} protocol files answer 200")


def signature(seen: Seen, public_key: Any) -> CheckResult:
    from mobile_ml.publish import keys

    path = seen.manifest_path
    ok = keys.verify(public_key, seen.replies[path].body, seen.replies[path + ".sig"].body)
    problems = [] if ok else [f"{path}.sig does not verify {path} with the given key (rotated? see release verify)"]
    return _result(Check.SIGNATURE, problems, f"{path} verifies with key {keys.key_id(public_key)[:16]}…")


def sha256(seen: Seen) -> CheckResult:
    problems = []
    for path, e in seen.entries.items():
        r = seen.replies[path]
        if r.status == 200 and r.length > e.length:  # the read stops one byte past the signed length
            problems.append(f"{path}: more than its signed {e.length} bytes")
        elif r.status == 200 and not arrived(r, e):
            problems.append(f"{path}: {r.length} bytes hashing to {r.sha256}, signed {e.length} bytes {e.sha256}")
    m = seen.manifest
    for release in [m.release] + ([m.fallback] if m.fallback is not None else []):
        path = f"{seen.model}/releases/{release.version}.json"
        doc = seen.replies.get(path)
        if doc is not None and doc.status == 200 and (problem := release_matches(doc.body, release, path)):
            problems.append(problem)
    return _result(Check.SHA256, problems, f"{len(seen.entries)} file(s) match the signed release")


def strong_etag(seen: Seen) -> CheckResult:
    problems, tags = [], []
    for path in _validated(seen):
        r = seen.probe.get(path, GZIP)
        tag = r.h("etag")
        if not STRONG_ETAG.fullmatch(tag):
            problems.append(f"{path}: ETag {tag or 'missing'!r} with Accept-Encoding: gzip (not a strong validator)")
        elif path in seen.entries and r.h("content-encoding") not in ("", "identity"):
            problems.append(
                f"{path}: blob sent with Content-Encoding {r.h('content-encoding')}: ranges would "
                "index compressed bytes"
            )
        tags.append(tag)
    return _result(Check.STRONG_ETAG, problems, "strong: " + ", ".join(tags))


def not_modified(seen: Seen) -> CheckResult:
    problems = []
    for path in _validated(seen):
        tag = seen.replies[path].h("etag")
        if not tag:
            problems.append(f"{path}: no ETag to revalidate with")
            continue
        r = seen.probe.get(path, {"If-None-Match": tag})
        if r.status != 304 or r.body:
            problems.append(f"{path}: If-None-Match {tag} → {r.status} with {len(r.body)} body bytes, not 304")
    return _result(Check.NOT_MODIFIED, problems, f"304 on If-None-Match for {len(_validated(seen))} paths")


def _validated(seen: Seen) -> list[str]:
    """The manifest, its signature and the largest blob: what devices revalidate or resume."""
    sample = seen.sample()
    return [seen.manifest_path, seen.manifest_path + ".sig"] + ([sample[0]] if sample else [])


def range_(seen: Seen) -> CheckResult:
    sample = seen.sample()
    if sample is None:
        return CheckResult(Check.RANGE, False, "no blob arrived whole to take a range of")
    path, body = sample
    n = len(body)
    first, last = min(1, n - 1), max(min(n // 2, n - 1), 0)
    problems = []
    for spec, lo, hi in ((f"{first}-{last}", first, last), (f"{n // 3}-", n // 3, n - 1), ("-5", max(n - 5, 0), n - 1)):
        r = seen.probe.get(path, {"Range": f"bytes={spec}"})
        want = f"bytes {lo}-{hi}/{n}"
        if r.status != 206 or r.h("content-range") != want or r.body != body[lo : hi + 1]:
            problems.append(
                f"Range bytes={spec} → {r.status}, Content-Range {r.h('content-range') or 'none'!r} (want {want!r}),"
                f" {len(r.body)} bytes{'' if r.body == body[lo : hi + 1] else ' not the slice'}"
            )
    return _result(Check.RANGE, problems, f"206 with the right Content-Range and bytes on {path}")


def if_range(seen: Seen) -> CheckResult:
    sample = seen.sample()
    if sample is None:
        return CheckResult(Check.IF_RANGE, False, "no blob arrived whole to resume")
    path, body = sample
    tag, start = seen.replies[path].h("etag"), len(body) // 2
    problems = []
    r = seen.probe.get(path, {"Range": f"bytes={start}-", "If-Range": tag})
    if r.status != 206 or r.body != body[start:]:
        problems.append(f"If-Range with the current ETag {tag} → {r.status}, not 206 with the rest (no resume)")
    stale = '"' + "0" * 64 + '"'
    r = seen.probe.get(path, {"Range": f"bytes={start}-", "If-Range": stale})
    if r.status != 200 or r.body != body:
        problems.append(
            f"If-Range with a stale validator → {r.status} with {len(r.body)} bytes, not 200 with the "
            "whole file (a device would splice old and new bytes)"
        )
    return _result(Check.IF_RANGE, problems, "current ETag resumes (206); a stale one gets the whole file (200)")


def unsatisfiable(seen: Seen) -> CheckResult:
    sample = seen.sample()
    if sample is None:
        return CheckResult(Check.UNSATISFIABLE, False, "no blob arrived whole")
    path, body = sample
    r = seen.probe.get(path, {"Range": f"bytes={len(body)}-"})
    cr, problems = r.h("content-range"), []
    if r.status != 416:
        problems.append(f"Range bytes={len(body)}- on a {len(body)}-byte file → {r.status}, not 416")
    elif cr and cr != f"bytes */{len(body)}":
        problems.append(f"416 with Content-Range {cr!r}, not 'bytes */{len(body)}'")
    return _result(Check.UNSATISFIABLE, problems, f"416 (Content-Range {cr or 'none'!r}) past the end of {path}")


def head(seen: Seen) -> CheckResult:
    problems = []
    for path in _validated(seen):
        got = seen.replies[path]
        r, extra = seen.probe.head(path)
        if r.status != got.status or r.h("etag") != got.h("etag"):
            problems.append(f"HEAD {path} → {r.status} ETag {r.h('etag')!r}; GET gave {got.status} {got.h('etag')!r}")
        if r.h("content-length") not in ("", str(got.length)):
            problems.append(f"HEAD {path}: Content-Length {r.h('content-length')}, GET sent {got.length} bytes")
        if extra:
            problems.append(f"HEAD {path}: {extra} body bytes after the headers")
    return _result(Check.HEAD, problems, "HEAD answers GET's status, ETag and length, with no body")


def _directives(value: str) -> dict[str, str]:
    out = {}
    for part in value.lower().split(","):
        k, _, v = part.strip().partition("=")
        if k:
            out[k] = v.strip('"')
    return out


def _age(d: dict[str, str], key: str) -> int | None:
    return int(d[key]) if d.get(key, "").isdigit() else None


def cache_control(seen: Seen) -> CheckResult:
    problems = []
    for path in [seen.manifest_path, seen.manifest_path + ".sig"]:
        cc = seen.replies[path].h("cache-control")
        d = _directives(cc)
        ages = [a for a in (_age(d, "max-age"), _age(d, "s-maxage")) if a is not None]
        short = ("no-cache" in d or "no-store" in d or bool(ages)) and all(a <= MAX_MANIFEST_AGE for a in ages)
        if "immutable" in d or not short:
            problems.append(
                f"{path}: Cache-Control {cc or 'missing'!r}, want max-age ≤ {MAX_MANIFEST_AGE} or "
                "no-cache, never immutable (devices would miss a halt or a rollback)"
            )
    for path in [*seen.entries, *seen.immutable]:
        r = seen.replies[path]
        d = _directives(r.h("cache-control"))
        if r.status == 200 and ("immutable" not in d or (_age(d, "max-age") or 0) < MIN_IMMUTABLE_AGE):
            problems.append(
                f"{path}: Cache-Control {r.h('cache-control') or 'missing'!r}, want immutable with "
                f"max-age ≥ {MIN_IMMUTABLE_AGE}"
            )
    return _result(Check.CACHE_CONTROL, problems, "short on manifests, immutable on blobs, releases and history")


def no_listing(seen: Seen) -> CheckResult:
    m, model, channel = seen.manifest, seen.model, seen.channel
    dirs = [
        "",
        "blobs",
        "blobs/",
        "blobs/sha256/",
        model,
        f"{model}/",
        f"{model}/channels/",
        f"{model}/releases/",
        f"{model}/history/",
        f"{model}/history/{channel}/",
        f"{model}/keys/",
    ]
    base = seen.probe.base.strip("/").split("/") if seen.probe.base != "/" else []
    dirs += ["/" + "/".join(base[:i]) + ("/" if i else "") for i in range(len(base))]  # the root's parents
    # names a listing would show (as a link or a key); bare words such as "history" turn up in any web page
    names = {f"{model}/", "blobs/", "sha256/", "channels/", "releases/", f"{channel}.json", f"{m.release.version}.json"}
    names |= {f"{m.manifest_version:08d}.json"} | {url.rpartition("/")[2] for url in seen.entries}
    problems = []
    for d in dirs:
        r = seen.probe.get(d)
        text = r.body.decode("utf-8", "replace")
        named = [x for x in (*LISTING_MARKERS, *sorted(names)) if x in text]
        if 200 <= r.status < 300 and named:
            problems.append(f"GET {seen.probe.target(d)} → {r.status} listing {', '.join(named[:3])}")
    return _result(Check.NO_LISTING, problems, f"no listing at {len(dirs)} directory URLs")


def inside_root(seen: Seen) -> CheckResult:
    depth = seen.probe.base.count("/") + 4
    model = seen.model
    attempts = [
        "../" * depth + "etc/passwd",
        "%2e%2e/" * depth + "etc/passwd",
        "%2E%2E%2F" * depth + "etc%2Fpasswd",
        f"{model}/" + "..%2f" * depth + "etc/passwd",
        "blobs/sha256/" + "%2e%2e%2f" * depth + "etc/passwd",
        "%252e%252e%252f" * depth + "etc/passwd",  # double encoding, for fronts that decode twice
        "..%5c" * depth + "etc%5cpasswd",  # backslashes, for fronts on Windows paths
        "/" + "../" * depth + "etc/passwd",
        # what operators leave in a root (docs/update-protocol.md, section 7): only a plain file server hands it out
        "private.pem",
        "telemetry.db",
        ".git/config",
        "etc/passwd",  # a front whose root is / (or whose fallback location is)
    ]
    known, problems = seen.known(), []
    for a in attempts:
        r = seen.probe.get(a)
        if 200 <= r.status < 300 and r.sha256 not in known:
            problems.append(
                f"GET {seen.probe.target(a)} → {r.status} with {len(r.body)} bytes that are no protocol "
                f"file: {r.body[:40]!r}"
            )
    return _result(
        Check.INSIDE_ROOT,
        problems,
        f"{len(attempts)} traversal attempts (plain and encoded) and non-protocol files refused",
    )


CHECKS: tuple[tuple[Check, CheckFn], ...] = (
    (Check.SHA256, sha256),
    (Check.STRONG_ETAG, strong_etag),
    (Check.NOT_MODIFIED, not_modified),
    (Check.RANGE, range_),
    (Check.IF_RANGE, if_range),
    (Check.UNSATISFIABLE, unsatisfiable),
    (Check.HEAD, head),
    (Check.CACHE_CONTROL, cache_control),
    (Check.NO_LISTING, no_listing),
    (Check.INSIDE_ROOT, inside_root),
)

"""``release verify``: check a whole publish root as a device would, and name every problem found."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from mobile_ml.contracts import ContractError, parse_document
from mobile_ml.contracts.lineage import lineage_of
from mobile_ml.contracts.manifest import Manifest, Release
from mobile_ml.errors import GateError, InputFileError
from mobile_ml.publish import keys
from mobile_ml.publish import manifest as mf
from mobile_ml.publish.channel import history_path, manifest_path
from mobile_ml.publish.rotation import trusted_keys, verify_any
from mobile_ml.publish.storage import open_root


class VerifyError(GateError):
    """The root has problems (exit 3): devices would refuse some of what it serves."""


@dataclass
class VerifyReport:
    root: str
    key_id: str
    manifests: int = 0
    history_entries: int = 0
    releases: int = 0
    blobs: int = 0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    lineage: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # release document → its lineage

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "mobile_ml.verify_report",
            "schema_version": 1,
            "root": self.root,
            "key_id": self.key_id,
            "ok": self.ok,
            "manifests": self.manifests,
            "history_entries": self.history_entries,
            "releases": self.releases,
            "blobs": self.blobs,
            "problems": self.problems,
            "warnings": self.warnings,
            "lineage": self.lineage,
        }


def verify_root(root: str, public_key_path: str, now: datetime | None = None) -> VerifyReport:
    storage = open_root(root)
    public = keys.load_public(public_key_path)
    report = VerifyReport(storage.url, keys.key_id(public))
    now = now or datetime.now(timezone.utc)
    everything = storage.list("")
    if not everything:
        raise InputFileError(
            f"publish root {storage.url} is empty or does not exist", hint="pass the --root you published to"
        )
    _check_foreign_files(storage, report)
    blobs = _check_blobs(storage, everything, report)
    trusted_by_model: dict[str, dict[str, Any]] = {}
    current: dict[tuple[str, str], int | None] = {}  # (model, channel) → verified manifest_version; None: damaged
    issued: dict[tuple[str, str], set[int]] = {}  # signed history entries
    for path in everything:
        parts = path.split("/")
        if not path.endswith(".json") or len(parts) not in (3, 4):
            continue
        if len(parts) == 3 and parts[1] == "releases":
            _check_release_document(storage, blobs, report, path)
        elif (len(parts) == 3 and parts[1] == "channels") or (len(parts) == 4 and parts[1] == "history"):
            trusted = trusted_by_model.setdefault(parts[0], trusted_keys(storage, parts[0], public))
            m = _verified_manifest(storage, report, path, trusted)
            key = (parts[0], parts[2].removesuffix(".json"))
            if m is not None and (m.model, m.channel) != key:
                report.problems.append(f"{path}: signed for {m.model}/{m.channel}, served as {key[0]}/{key[1]}")
                m = None
            if parts[1] == "channels":
                current[key] = m.manifest_version if m else None
            if m is None:
                continue
            if parts[1] == "history":
                report.history_entries += 1
                issued.setdefault(key, set()).add(m.manifest_version)
            else:
                report.manifests += 1
                _check_expiry(report, path, m, now)
            _check_release(storage, blobs, report, path, m.release)
            if m.fallback:
                _check_release(storage, blobs, report, f"{path} (fallback)", m.fallback)
    _check_history_against_channels(report, current, issued)
    if report.manifests == 0:
        report.warnings.append("no channel manifests found")
    return report


def _check_history_against_channels(
    report: VerifyReport, current: dict[tuple[str, str], int | None], issued: dict[tuple[str, str], set[int]]
) -> None:
    """A signed history entry newer than its channel is a manifest the channel never committed to, and a device
    would accept it from any mirror that serves it (threat 12); a channel missing from history is a gap. A damaged
    channel (its own problem is named already) has no number to compare with."""
    for (model, channel), numbers in sorted(issued.items()):
        now_at = current.get((model, channel), 0)
        if now_at is None:
            continue
        for n in sorted(x for x in numbers if x > now_at):
            report.problems.append(
                f"{history_path(model, channel, n)}: signed manifest_version {n} is newer than the channel's "
                f"current {now_at}: the channel never committed to it, and devices would accept it from a mirror"
            )
    for (model, channel), n in sorted((k, v) for k, v in current.items() if v is not None):
        if n not in issued.get((model, channel), set()):
            report.warnings.append(
                f"{manifest_path(model, channel)}: manifest_version {n} has no history copy yet "
                "(the next release command writes it)"
            )


# The publisher's own scratch files: write locks and the temporary files of atomic writes (outputs.write_bytes).
_SCRATCH = re.compile(r"(?:.*/)?\.[^/]+\.(?:lock|[^/.]+\.tmp)")
_KEY_NAMES = {"private.pem"}  # what `mobile-ml keys generate` writes
_PRIVATE_PEM = re.compile(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")


def _check_foreign_files(storage: Any, report: VerifyReport) -> None:
    """Name every file the protocol does not define, and every private key anywhere under the root (also in
    dotfiles and protocol paths): whatever serves the root may hand them out."""
    from mobile_ml.deliver.layout import is_protocol_path

    for path in storage.list("", hidden=True):
        data = storage.read(path) or b""
        if path.rsplit("/", 1)[-1] in _KEY_NAMES or _PRIVATE_PEM.search(data):
            report.problems.append(f"{path}: a private key inside the publish root; move it out and treat it as leaked")
        elif _SCRATCH.fullmatch(path):
            if path.endswith(".tmp"):
                report.warnings.append(f"{path}: left by an interrupted write (never served; safe to delete)")
        elif not is_protocol_path(path):
            report.problems.append(
                f"{path}: not a file of the update protocol; keep only blobs, releases, history, channels and keys "
                "in the root"
            )


def _check_blobs(storage: Any, everything: list[str], report: VerifyReport) -> set[str]:
    """Every content-addressed blob must hash to its name; returns the paths of the blobs that exist."""
    found = set()
    for path in everything:
        if path.startswith("blobs/sha256/"):
            report.blobs += 1
            found.add(path)
            if hashlib.sha256(storage.read(path) or b"").hexdigest() != path.rsplit("/", 1)[-1]:
                report.problems.append(f"{path}: content does not hash to its name (blob damaged)")
    return found


def _check_release(storage: Any, blobs: set[str], report: VerifyReport, where: str, release: Release) -> None:
    for f in release.files:
        if f.url not in blobs:
            report.problems.append(f"{where}: {f.name} → {f.url} does not exist")
            continue
        data = storage.read(f.url) or b""
        if len(data) != f.length or hashlib.sha256(data).hexdigest() != f.sha256:
            report.problems.append(f"{where}: {f.name} → {f.url} does not match the signed sha256/length")


def _check_release_document(storage: Any, blobs: set[str], report: VerifyReport, path: str) -> None:
    report.releases += 1
    try:
        release = parse_document(Release, storage.read(path) or b"", where=path)
    except ContractError as e:
        report.problems.append(e.message)
        return
    try:
        found = lineage_of(release.metadata, path)
    except ContractError as e:
        report.problems.append(e.message)
    else:
        report.lineage[path] = found.to_dict() if found else None
    _check_release(storage, blobs, report, path, release)


def _verified_manifest(storage: Any, report: VerifyReport, path: str, trusted: dict[str, Any]) -> Manifest | None:
    """The manifest at ``path`` if its signature verifies (before parsing, as on a device) and it parses."""
    raw = storage.read(path) or b""
    sig = storage.read(path + ".sig")
    if sig is None:
        if "/history/" in path:  # unsigned, so no device takes it: left by a commit of an older mobile-ml
            report.warnings.append(f"{path}: history entry without a signature (never current; ignored)")
            return None
        report.problems.append(f"{path}: signature file {path}.sig is missing")
        return None
    if not verify_any(trusted, raw, sig):
        report.problems.append(
            f"{path}: signature does not verify with key {report.key_id[:16]}…"
            + (" or its rotations" if len(trusted) > 1 else "")
        )
        return None
    try:
        return mf.parse(raw, path)
    except InputFileError as e:
        report.problems.append(e.message if e.message.startswith(path) else f"{path}: {e.message}")
        return None


def _check_expiry(report: VerifyReport, path: str, m: Manifest, now: datetime) -> None:
    if m.expires <= now:
        report.problems.append(f"{path}: expired at {mf.utc(m.expires)} (devices refuse it; `release refresh`)")
    elif (m.expires - now).days < 7:
        report.warnings.append(f"{path}: expires {mf.utc(m.expires)}, in under 7 days")


def check(report: VerifyReport) -> None:
    if report.problems:
        more = f" (and {len(report.problems) - 1} more)" if len(report.problems) > 1 else ""
        raise VerifyError(f"{report.problems[0]}{more}", hint="see the full list above or with --json")

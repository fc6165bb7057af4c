"""``release verify``: check a whole publish root as a device would, and name every problem found."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from mobile_ml.errors import GateError, InputFileError
from mobile_ml.publish import keys
from mobile_ml.publish import manifest as mf
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
    blob_ok: dict[str, bool] = {}
    for path in everything:
        if path.startswith("blobs/sha256/"):
            report.blobs += 1
            data = storage.read(path) or b""
            ok = hashlib.sha256(data).hexdigest() == path.rsplit("/", 1)[-1]
            blob_ok[path] = ok
            if not ok:
                report.problems.append(f"{path}: content does not hash to its name (blob damaged)")

    def check_release(where: str, release: dict[str, Any]) -> None:
        for f in release.get("files", []):
            url = f.get("url", "")
            if url not in blob_ok:
                report.problems.append(f"{where}: {f.get('name')} → {url} does not exist")
                continue
            data = storage.read(url) or b""
            if len(data) != f.get("length") or hashlib.sha256(data).hexdigest() != f.get("sha256"):
                report.problems.append(f"{where}: {f.get('name')} → {url} does not match the signed sha256/length")

    trusted_by_model: dict[str, dict] = {}
    for path in everything:
        parts = path.split("/")
        if len(parts) == 3 and parts[1] == "releases" and path.endswith(".json"):
            report.releases += 1
            try:
                check_release(path, json.loads(storage.read(path) or b""))
            except ValueError as e:
                report.problems.append(f"{path}: not valid JSON ({e})")
        is_channel = len(parts) == 3 and parts[1] == "channels" and path.endswith(".json")
        is_history = len(parts) == 4 and parts[1] == "history" and path.endswith(".json")
        if not (is_channel or is_history):
            continue
        raw = storage.read(path) or b""
        sig = storage.read(path + ".sig")
        if sig is None:
            report.problems.append(f"{path}: signature file {path}.sig is missing")
            continue
        trusted = trusted_by_model.setdefault(parts[0], trusted_keys(storage, parts[0], public))
        if not verify_any(trusted, raw, sig):
            report.problems.append(
                f"{path}: signature does not verify with key {report.key_id[:16]}…"
                + (" or its rotations" if len(trusted) > 1 else "")
            )
            continue
        try:
            m = mf.parse(raw, path)
        except InputFileError as e:
            report.problems.append(f"{path}: {e.message}")
            continue
        if is_history:
            report.history_entries += 1
        else:
            report.manifests += 1
            if mf.parse_time(m["expires"]) <= now:
                report.problems.append(f"{path}: expired at {m['expires']} (devices refuse it; `release refresh`)")
            elif (mf.parse_time(m["expires"]) - now).days < 7:
                report.warnings.append(f"{path}: expires {m['expires']}, in under 7 days")
        check_release(path, m["release"])
        if m.get("fallback"):
            check_release(f"{path} (fallback)", m["fallback"])
    if report.manifests == 0:
        report.warnings.append("no channel manifests found")
    return report


def check(report: VerifyReport) -> None:
    if report.problems:
        more = f" (and {len(report.problems) - 1} more)" if len(report.problems) > 1 else ""
        raise VerifyError(f"{report.problems[0]}{more}", hint="see the full list above or with --json")

# stand-in: replaced by loop-device's module at merge
"""The baseline of a published release, read back from a publish root (local directory or s3://): the release
document names a file ``baseline.json``; its blob must have the signed length and sha256."""

from __future__ import annotations

import hashlib

from mobile_ml.contracts import ContractError, parse_document
from mobile_ml.contracts.baseline import Baseline
from mobile_ml.contracts.manifest import Release
from mobile_ml.monitor.baseline import BASELINE_FILE
from mobile_ml.publish.storage import open_root


def baseline_of(root: str, model: str, version: str) -> Baseline | None:
    """The baseline of ``model`` ``version`` in ``root``; None when no such release, or a release without one.
    A blob that does not match its release is a ``ContractError``."""
    storage = open_root(root)
    where = f"{model}/releases/{version}.json"
    raw = storage.read(where)
    if raw is None:
        return None
    release = parse_document(Release, raw, where=where)
    entry = next((f for f in release.files if f.name == BASELINE_FILE), None)
    if entry is None:
        return None
    data = storage.read(entry.url)
    if data is None or len(data) != entry.length or hashlib.sha256(data).hexdigest() != entry.sha256:
        raise ContractError(f"{where}: {entry.url} is missing or does not match the release's sha256")
    return parse_document(Baseline, data, where=f"{where}: {BASELINE_FILE}")

# stand-in: replaced by loop-device's module at merge (mobile_ml.publish.baselines.baseline_of)
"""A published release's baseline, as ``baseline_of`` will return it (docs: /work/brief/loop-interfaces.md): the
file named ``baseline.json`` of ``<model>/releases/<version>.json``, its blob checked against the release's sha256."""

from __future__ import annotations

import hashlib

from mobile_ml.contracts import ContractError, parse_document
from mobile_ml.contracts.baseline import Baseline
from mobile_ml.contracts.manifest import Release
from mobile_ml.monitor.baseline import BASELINE_FILE
from mobile_ml.publish.storage import open_root


def baseline_of(root: str, model: str, version: str) -> Baseline | None:
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
    if data is None or hashlib.sha256(data).hexdigest() != entry.sha256:
        raise ContractError(f"{entry.url} does not match the sha256 of {where}", hint="run `mobile-ml release verify`")
    return parse_document(Baseline, data, where=entry.url)

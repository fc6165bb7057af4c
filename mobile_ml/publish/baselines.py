"""The monitoring baseline in a publish root: shipped as a release's third file, read back verified.

``publish`` adds the variant's ``baseline.json`` (written by ``mobile-ml export``) to the release beside
``model.tflite`` and ``metadata.json``, so devices download and verify it like the others and count against it.
``baseline_of`` is how the server (checking uploaded aggregates) and ``mobile-ml monitor`` find it again: from the
release document, through the blob it names, whose sha256 and length must match. A release published before
baselines existed, or of a variant without one, simply has none (``None``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

from mobile_ml.contracts import ContractError, parse_document
from mobile_ml.contracts.baseline import Baseline
from mobile_ml.contracts.manifest import NAME, SEMVER, Release
from mobile_ml.errors import InputFileError
from mobile_ml.monitor.baseline import BASELINE_FILE
from mobile_ml.publish.storage import open_root

__all__ = ["BASELINE_FILE", "baseline_of", "exported_baseline"]

MAX_BASELINE_BYTES = 4 << 20  # 256 features × 64 bins of edges and counts is well under 1 MiB


def exported_baseline(variant_dir: Path, labels: Sequence[str]) -> bytes | None:
    """The bytes of ``variant_dir/baseline.json`` to publish, checked first (None when the export has none): a
    baseline that does not parse, or counts other classes than the model, would make every device upload refused."""
    path = variant_dir / BASELINE_FILE
    if not path.is_file():
        return None
    data = path.read_bytes()
    baseline = parse_document(Baseline, data, where=str(path))
    if tuple(baseline.labels) != tuple(labels):
        raise InputFileError(
            f"{path} counts the classes {', '.join(baseline.labels[:5])}…, not the model's",
            hint="the export was modified; export the model again",
        )
    return data


def baseline_of(root: str, model: str, version: str) -> Baseline | None:
    """The baseline published with ``model`` ``version`` in ``root`` (a directory or s3://), or None when that
    release does not exist or has no baseline. A blob that does not match the release's sha256 and length raises
    ``ContractError``: a damaged or tampered baseline is never compared against."""
    if not re.fullmatch(NAME, model or "") or not re.fullmatch(SEMVER, version or ""):
        return None  # names come from uploads: never a path
    storage = open_root(root)
    where = f"{model}/releases/{version}.json"
    raw = storage.read(where)
    if raw is None:
        return None
    release = parse_document(Release, raw, where=where)
    entry = next((f for f in release.files if f.name == BASELINE_FILE), None)
    if entry is None:
        return None
    data = storage.read(entry.url) if entry.length <= MAX_BASELINE_BYTES else None
    if data is None or len(data) != entry.length or hashlib.sha256(data).hexdigest() != entry.sha256:
        raise ContractError(
            f"{storage.url}: {entry.url} ({BASELINE_FILE} of {model} {version}) does not match its signed sha256 "
            "and length",
            hint="the publish root is damaged; `mobile-ml release verify` lists what",
        )
    return parse_document(Baseline, data, where=f"{model} {version} {BASELINE_FILE}")

"""``POST /v1/aggregates``: one ``mobile_ml.aggregates`` document from one install, checked against the baseline of
the release it names before anything is stored (docs/monitoring.md, docs/update-protocol.md section 7).

The body is the document alone (no raw input, no identifier of the user); the install travels in the
``X-Install-Id-Hash`` header, the same hash of the install id that telemetry events carry. A document is stored at
most once per (install, ``snapshot_id``): a device that lost the 202 uploads the same snapshot again, and the
second upload changes nothing. The table is ``aggregates`` in the telemetry store (``telemetry_store``, migration 3);
``telemetry.read_aggregates`` reads it back.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from typing import Any

from mobile_ml.contracts import ContractError, document_dict
from mobile_ml.contracts.aggregates import Aggregates
from mobile_ml.contracts.baseline import Baseline
from mobile_ml.contracts.manifest import format_time
from mobile_ml.deliver.telemetry import Invalid
from mobile_ml.errors import MobileMLError
from mobile_ml.monitor.aggregate import MAX_UPLOAD_BYTES, read_upload

MAX_BODY_BYTES = MAX_UPLOAD_BYTES  # the largest document the bounds allow is about 300 KB
INSTALL_HEADER = "X-Install-Id-Hash"
_INSTALL = r"[0-9a-f]{16,128}"  # as telemetry's install_id_hash: a hash, never the id itself
_CACHED = 256  # baselines kept in memory; release documents are immutable, so a cached one never goes stale


class BaselineUnavailable(Exception):
    """The release's baseline exists on this server but cannot be read or does not match its release: the
    server's problem (503), not the device's."""


class Baselines:
    """``find_baseline`` for ``read_upload``: the baseline of a release in the publish root, or ``Invalid`` (404)
    for a model version this server does not publish with one. Found baselines are cached (releases never change);
    misses are not, so a version published after the first upload is found at the next one."""

    def __init__(self, root: str, lookup: Callable[[str, str, str], Baseline | None] | None = None) -> None:
        if lookup is None:
            from mobile_ml.publish.baselines import baseline_of

            lookup = baseline_of
        self.root = root
        self._lookup: Callable[[str, str, str], Baseline | None] = lookup
        self._cache: dict[tuple[str, str], Baseline] = {}
        self._lock = threading.Lock()

    def __call__(self, model: str, version: str) -> Baseline:
        with self._lock:
            hit = self._cache.get((model, version))
        if hit is not None:
            return hit
        try:  # model and version passed the contract's name and semver patterns: never a path
            found = self._lookup(self.root, model, version)
        except MobileMLError as e:
            raise BaselineUnavailable(f"baseline of {model} {version}: {e.message}") from None
        if found is None:
            raise Invalid(f"no release {version} of model {model} with a baseline on this server", 404)
        with self._lock:
            if len(self._cache) >= _CACHED:
                self._cache.clear()
            self._cache[(model, version)] = found
        return found


def install_of(header: str | None) -> str:
    if header is None:
        raise Invalid(f"the {INSTALL_HEADER} header is missing (the sha256 of the install id, hex)")
    if not re.fullmatch(_INSTALL, header):
        raise Invalid(f"the {INSTALL_HEADER} header must be 16-128 lowercase hex digits")
    return header


def accept(body: bytes, install: str, find_baseline: Callable[[str, str], Baseline]) -> dict[str, Any]:
    """The row to store for ``body``, or ``Invalid`` (4xx, with the field the reader named): too large, not the
    schema, or not the bins of the baseline of the model version it names."""
    if len(body) > MAX_BODY_BYTES:
        raise Invalid(f"body over {MAX_BODY_BYTES} bytes", 413)
    try:
        doc = read_upload(body, find_baseline)
    except ContractError as e:
        raise Invalid(e.message) from None
    return {
        "install_id_hash": install,
        "model": doc.model,
        "version": doc.version,
        "channel": doc.channel,
        "window_start": format_time(doc.window_start),
        "window_end": format_time(doc.window_end),
        "observations": doc.count,
        "snapshot_id": doc.snapshot_id,
        "document": encode(doc),
    }


def encode(doc: Aggregates) -> str:
    """The stored text: the document as the strict reader reads it back (``telemetry.read_aggregates``)."""
    return json.dumps(document_dict(doc), sort_keys=True, separators=(",", ":"), allow_nan=False)

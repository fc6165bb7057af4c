"""A published baseline and a fleet's stored aggregates, for the monitor tests.

The two ``put_*`` helpers are the integration seam: they write what the stand-ins of ``read_aggregates``
(loop-upload) and ``baseline_of`` (loop-device) read; switch them to the real store and publisher at merge.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timezone

import numpy as np

from mobile_ml.contracts import document_dict
from mobile_ml.contracts.aggregates import Aggregates
from mobile_ml.contracts.baseline import Baseline
from mobile_ml.contracts.manifest import FileEntry, Release
from mobile_ml.deliver.telemetry import validate
from mobile_ml.deliver.telemetry_store import open_store
from mobile_ml.monitor.aggregate import Aggregator
from mobile_ml.monitor.baseline import BASELINE_FILE, build_baseline
from mobile_ml.outputs import dumps
from mobile_ml.publish import manifest as mf
from mobile_ml.publish.storage import open_root

FEATURES = ("a", "b", "c")
LABELS = ("no", "yes")
T0 = datetime(2026, 11, 30, 8, tzinfo=timezone.utc)


def probs_of(x: np.ndarray) -> np.ndarray:
    """The "model": it looks at feature a only, so shifting b or c leaves the predictions alone."""
    p_yes = 1 / (1 + np.exp(-2 * x[:, 0]))
    return np.stack([1 - p_yes, p_yes], axis=1)


def make_baseline(seed: int = 0, *, train: int = 4000, test: int = 3000) -> Baseline:
    rng = np.random.default_rng(seed)
    x_train, x_test = rng.normal(size=(train, 3)), rng.normal(size=(test, 3))
    return build_baseline(
        x_train, x_test, features=FEATURES, kind="tabular", test_probs=probs_of(x_test), labels=LABELS
    )


def fleet(
    baseline: Baseline,
    n: int,
    *,
    shift: dict[str, float] | None = None,
    version: str = "1.0.0",
    channel: str = "stable",
    devices: int = 4,
    seed: int = 1,
    model=probs_of,
) -> list[Aggregates]:
    """One uploaded snapshot per device; ``n`` inferences in all, feature ``name`` moved by ``shift[name]``."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    for name, delta in (shift or {}).items():
        x[:, FEATURES.index(name)] += delta
    probs, latency = model(x), rng.lognormal(mean=1.5, sigma=0.3, size=n)
    docs = []
    for part in np.array_split(np.arange(n), devices):
        agg = Aggregator(baseline, model="m", version=version, channel=channel, clock=lambda: T0)
        for i in part:
            agg.observe(x[i], probs[i], float(latency[i]))
        snap = agg.snapshot()
        assert snap is not None
        docs.append(snap)
    return docs


def put_baseline(root: str, model: str, version: str, baseline: Baseline | None) -> None:
    """A release of ``model`` ``version`` in the publish root, with ``baseline.json`` among its files."""
    storage = open_root(root)
    blobs = {"model.tflite": b"not a model: the monitor never reads it", "metadata.json": b"{}"}
    if baseline is not None:
        blobs[BASELINE_FILE] = dumps(document_dict(baseline)).encode()
    files = []
    for name, data in blobs.items():
        digest = hashlib.sha256(data).hexdigest()
        storage.create(f"blobs/sha256/{digest}", data)
        files.append(FileEntry(name, f"blobs/sha256/{digest}", digest, len(data)))
    release = Release(model=model, version=version, variant="fp32", files=tuple(files))
    storage.create(f"{model}/releases/{version}.json", mf.dumps(release))


def put_aggregates(db: str, docs: Sequence[Aggregates], *, received_at: str = "2026-11-30T09:00:00Z") -> None:
    """Store documents exactly as the server does after ``POST /v1/aggregates`` (one install per document); each
    window ends at ``received_at``, which is what ``--since`` compares (the window the counts cover)."""
    from dataclasses import replace

    from mobile_ml.deliver.aggregates_store import encode
    from mobile_ml.publish.manifest import parse_time

    at = parse_time(received_at)
    with open_store(db) as store:
        for i, doc in enumerate(docs):
            doc = replace(doc, window_start=min(doc.window_start, at), window_end=at)
            row = {
                "install_id_hash": hashlib.sha256(f"install-{i}".encode()).hexdigest(),
                "model": doc.model,
                "version": doc.version,
                "channel": doc.channel,
                "window_start": mf.format_time(doc.window_start),
                "window_end": mf.format_time(doc.window_end),
                "observations": doc.count,
                "snapshot_id": doc.snapshot_id,
                "document": encode(doc),
            }
            assert store.add_aggregates(row)


def put_events(db: str, events: Sequence[dict]) -> None:
    """Telemetry events through the server's own validation and store."""
    import json

    base = {
        "install_id_hash": "ab" * 16,
        "model": "m",
        "version": "1.0.0",
        "app_version": "1.0.0",
        "device_model": "pixel-7",
    }
    rows = validate(json.dumps({"events": [{**base, **e} for e in events]}).encode())
    with open_store(db) as store:
        store.add(rows)

"""``monitor``: the fleet's stored aggregates against the published baseline, per model version, plus the update
funnel and latency per device model from the telemetry events.

Per version every stored aggregates document is summed (``aggregate.merge``: order does not matter) and each
histogram compared with the baseline's **test split** (held-out data the model was evaluated on, the same reference
for features, predictions and confidence) by ``stats.compare``: PSI, JS distance, count, verdict.

The aggregates carry neither a device model nor update outcomes, so latency per device model and the funnel are
read from the telemetry events (inference events with a latency; one update event per device check). The events
have no channel column: ``channel`` narrows the aggregates only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from mobile_ml.contracts.aggregates import Aggregates
from mobile_ml.contracts.baseline import Baseline
from mobile_ml.contracts.manifest import format_time, version_key
from mobile_ml.contracts.monitor import (
    DeviceLatency,
    FeatureDrift,
    Funnel,
    Histogram,
    Latency,
    MonitorReport,
    VersionReport,
)
from mobile_ml.deliver.telemetry import read_aggregates
from mobile_ml.errors import UserError
from mobile_ml.monitor.aggregate import check_against_baseline, empty, merge
from mobile_ml.monitor.stats import Thresholds, compare
from mobile_ml.publish.baselines import baseline_of

# update_failed reasons of a check that got as far as downloading a file (client/sync.py, Refusal and Failure)
DOWNLOAD_FAILURES = frozenset({"hash_mismatch", "length_mismatch", "health_check", "no_space"})
DEFAULT_THRESHOLDS = Thresholds()  # PSI 0.1 warn, 0.2 drift, 500 samples (docs/monitoring.md)
SKIPS = frozenset({"app_too_old", "runtime", "no_space"})  # update_check events: the release did not fit


def monitor(
    db: str,
    *,
    root: str,
    model: str,
    channel: str | None = None,
    version: str | None = None,
    since: datetime | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> MonitorReport:
    """Compare what the fleet counted (``db``: the telemetry store, a SQLite path or ``postgresql://`` URL) with
    the baselines published in ``root``. ``version``: that version only; else every version counted, the newest at
    the top level. A model or version not published in ``root`` is a ``UserError``."""
    released = released_versions(root, model)
    if version is not None and version not in released:
        raise UserError(
            f"{model} has no release {version} in {root}", hint=f"published versions: {', '.join(released[-5:])}"
        )
    docs = read_aggregates(db, model=model, channel=channel, version=version, since=since)
    by_version: dict[str, list[Aggregates]] = {}
    for doc in docs:
        by_version.setdefault(doc.version, []).append(doc)
    versions = sorted(by_version, key=version_key, reverse=True) or [version or released[-1]]
    reports = [_version_report(root, model, v, by_version.get(v, []), thresholds) for v in versions]
    events = _events(db, model, since)
    return MonitorReport(
        model=model,
        channel=channel,
        since=since,
        thresholds=thresholds,
        current=reports[0],
        other_versions=tuple(reports[1:]),
        funnel=funnel(events),
        latency_by_device=latency_by_device(events, versions if version is not None else None),
    )


def released_versions(root: str, model: str) -> list[str]:
    """The versions of ``model`` with a release document in ``root``, oldest first; none is a ``UserError``."""
    from mobile_ml.publish.storage import open_root

    storage = open_root(root)
    names = [p.rsplit("/", 1)[-1] for p in storage.list(f"{model}/releases")]
    found = []
    for name in names:
        try:
            found.append((version_key(name.removesuffix(".json")), name.removesuffix(".json")))
        except ValueError:
            continue  # not a release document
    if not found:
        raise UserError(
            f"no model {model!r} is published in {storage.url}",
            hint="pass the --model and the --root given to `mobile-ml publish`",
        )
    return [v for _, v in sorted(found)]


def _version_report(
    root: str, model: str, version: str, docs: Sequence[Aggregates], thresholds: Thresholds
) -> VersionReport:
    baseline = baseline_of(root, model, version)
    if baseline is None:
        raise UserError(
            f"release {version} of {model} in {root} has no baseline.json to compare against",
            hint="export and publish it with a mobile-ml that writes baselines (0.6 or later)",
        )
    for doc in docs:  # the server checked each on upload; a store shared by another root could still differ
        check_against_baseline(doc, baseline, where=f"aggregates of {model} {version}")
    total = _sum(docs)
    counted = total if total is not None else empty(baseline, model=model, version=version, channel="-", start=_t0())
    features = tuple(
        FeatureDrift(b.name, b.edges, histogram(b.test, c.counts, thresholds), c.missing)
        for b, c in zip(baseline.features, counted.features, strict=True)
    )
    return VersionReport(
        version=version,
        count=counted.count,
        uploads=len(docs),
        window_start=None if total is None else total.window_start,
        window_end=None if total is None else total.window_end,
        features=features,
        labels=baseline.labels,
        prediction=histogram(baseline.predictions, counted.predictions, thresholds),
        confidence_edges=baseline.confidence_edges,
        confidence=histogram(baseline.confidence, counted.confidence, thresholds),
        latency=fleet_latency(baseline, counted.latency_ms),
    )


def _sum(docs: Sequence[Aggregates]) -> Aggregates | None:
    """All documents of one version added up; channels differ when the whole model is asked for, and merge()
    refuses to mix them, so the sum is labelled with the first one's."""
    total: Aggregates | None = None
    for doc in docs:
        total = doc if total is None else merge(total, replace(doc, channel=total.channel))
    return total


def _t0() -> datetime:
    from datetime import timezone

    return datetime(1970, 1, 1, tzinfo=timezone.utc)


def histogram(baseline: Sequence[int], fleet: Sequence[int], thresholds: Thresholds) -> Histogram:
    c = compare(baseline, fleet, thresholds)
    scored = c.count > 0
    return Histogram(
        tuple(baseline), tuple(fleet), c.psi if scored else None, c.js if scored else None, c.count, c.verdict
    )


def fleet_latency(baseline: Baseline, counts: Sequence[int]) -> Latency:
    edges = baseline.latency_edges_ms
    return Latency(edges, tuple(counts), _bin_quantile(edges, counts, 0.5), _bin_quantile(edges, counts, 0.9))


def _bin_quantile(edges: Sequence[float], counts: Sequence[int], q: float) -> float | None:
    """The upper edge of the bin holding the ``q`` quantile; None without samples or in the open top bin."""
    total = sum(counts)
    if total == 0:
        return None
    seen = 0
    for i, n in enumerate(counts):
        seen += n
        if seen >= q * total:
            return float(edges[i]) if i < len(edges) else None
    return None  # unreachable: seen reaches total


Event = tuple[str, str, str, str, float | None, str | None]  # version, device_model, install, event, latency, error


def _events(db: str | Path, model: str, since: datetime | None) -> list[Event]:
    from mobile_ml.deliver.telemetry_store import open_store

    sql = "SELECT version, device_model, install_id_hash, event, latency_ms, error_code FROM events WHERE model = ?"
    params = [model]
    if since is not None:  # the server's clock (received_at): the clients' own `time` is optional
        sql += " AND received_at >= ?"
        params.append(format_time(since))
    with open_store(db, read_only=True) as store:
        return [(v, d, i, e, lat, err) for v, d, i, e, lat, err in store.query(sql, params)]


def funnel(events: Sequence[Event]) -> Funnel:
    """checks → downloads → installed, and failed, from the one update event each device check sends."""
    kinds = Counter(e[3] for e in events)
    failures = Counter(e[5] or "unknown" for e in events if e[3] == "update_failed")
    return Funnel(
        checks=kinds["update_check"] + kinds["update_applied"] + kinds["update_failed"],
        downloads=kinds["update_applied"] + sum(n for reason, n in failures.items() if reason in DOWNLOAD_FAILURES),
        installed=kinds["update_applied"],
        failed=kinds["update_failed"],
        skipped=sum(1 for e in events if e[3] == "update_check" and e[5] in SKIPS),
        devices=len({e[2] for e in events if e[3] != "inference"}),
        failure_reasons=dict(sorted(failures.items())),
    )


def latency_by_device(events: Sequence[Event], versions: Sequence[str] | None) -> tuple[DeviceLatency, ...]:
    """p50 and p90 of the inference events' latency per device model (of ``versions``, or all)."""
    from mobile_ml.benchmark.stats import percentile

    by_device: dict[str, list[float]] = {}
    for version, device, _, event, latency, _ in events:
        if event == "inference" and latency is not None and (versions is None or version in versions):
            by_device.setdefault(device, []).append(float(latency))
    rows = []
    for device, values in sorted(by_device.items()):
        values.sort()
        rows.append(DeviceLatency(device, len(values), percentile(values, 50), percentile(values, 90)))
    return tuple(rows)

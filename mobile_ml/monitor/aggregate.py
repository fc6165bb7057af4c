"""Counting on the device: each inference adds one to a bin of every histogram of ``mobile_ml.aggregates``.

``Aggregator`` keeps the open window in memory and, when given a path (``state_file``), in an
``aggregator_state`` JSON file written atomically. Upload is two-phase so nothing is lost or counted twice:
``snapshot()`` closes the window into a pending snapshot (with an id) and opens a new one; observations go on into
the new window; ``acknowledge(id)`` drops the pending snapshot once the server stored it. Until then ``snapshot()``
returns the same pending snapshot again (a retry sends identical bytes and the same id).

``merge`` adds documents of one model version (associative and commutative: the server sums devices and windows
in any order). ``check_against_baseline`` is the server's check of an uploaded document against the baseline.
"""

from __future__ import annotations

import bisect
import math
import os
import secrets
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from mobile_ml.contracts import ContractError, parse_document, read_document, write_document
from mobile_ml.contracts.aggregates import Aggregates, AggregatorState, FeatureCounts
from mobile_ml.contracts.baseline import Baseline
from mobile_ml.errors import DataError
from mobile_ml.monitor import bins as B

if TYPE_CHECKING:
    import numpy as np

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)  # the documents keep whole seconds


def state_file(state_dir: str | os.PathLike[str], model: str, channel: str, version: str) -> Path:
    """Where a device keeps the aggregates of one model version from one channel (one file each: a window never
    mixes versions, whose baselines differ)."""
    return Path(state_dir) / "aggregates" / f"{model}--{channel}--{version}.json"


def empty(baseline: Baseline, *, model: str, version: str, channel: str, start: datetime) -> Aggregates:
    return Aggregates(
        model=model,
        version=version,
        channel=channel,
        window_start=start,
        window_end=start,
        count=0,
        features=tuple(FeatureCounts(f.name, (0,) * f.bins, 0) for f in baseline.features),
        predictions=(0,) * len(baseline.labels),
        confidence=(0,) * (len(baseline.confidence_edges) + 1),
        latency_ms=(0,) * (len(baseline.latency_edges_ms) + 1),
    )


class Aggregator:
    """The counts of one model version against its baseline; see the module docstring for the upload protocol."""

    def __init__(
        self,
        baseline: Baseline,
        *,
        model: str,
        version: str,
        channel: str,
        path: str | os.PathLike[str] | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.baseline = baseline
        self.path = None if path is None else Path(path)
        self._clock = clock
        self._identity = (model, version, channel)
        self._pending: Aggregates | None = None
        self._window = _Window(empty(baseline, model=model, version=version, channel=channel, start=clock()))

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        baseline: Baseline,
        *,
        model: str,
        version: str,
        channel: str,
        clock: Clock = utc_now,
    ) -> Aggregator:
        """The aggregator kept in ``path``, or a new one when the file does not exist yet."""
        agg = cls(baseline, model=model, version=version, channel=channel, path=path, clock=clock)
        if Path(path).exists():
            state = read_document(AggregatorState, path)
            for doc in (state.current, state.pending):
                if doc is not None:
                    agg._check_own(doc, str(agg.path))
            agg._window, agg._pending = _Window(state.current), state.pending
        return agg

    def _check_own(self, doc: Aggregates, where: str) -> None:
        if (doc.model, doc.version, doc.channel) != self._identity:
            raise ContractError(
                f"{where} counts {doc.model} {doc.version} from {doc.channel}, not {' '.join(self._identity)}",
                hint="each model version keeps its own file (monitor.aggregate.state_file)",
            )
        check_against_baseline(doc, self.baseline, where=where)

    # -- counting ------------------------------------------------------------------------------------------------
    def observe(
        self, x_row: np.ndarray | Sequence[float], probs: np.ndarray | Sequence[float], latency_ms: float
    ) -> None:
        """Count one inference: its model input (raw units, as the baseline), class probabilities and latency."""
        import numpy as np

        b = self.baseline
        x = np.asarray(x_row, dtype=np.float64).ravel()
        if b.image_channels is not None:  # an image baseline: its features are the summaries
            if x.size == 0 or x.size % b.image_channels:
                raise DataError(f"an image input must have a multiple of {b.image_channels} values, got {x.size}")
            x = B.image_summaries(x, b.image_channels)
        elif x.size != len(b.features):
            raise DataError(f"an input row must have {len(b.features)} features, got {x.size}")
        p = np.asarray(probs, dtype=np.float64).ravel()
        if p.size != len(b.labels) or not np.isfinite(p).all():
            raise DataError(f"probabilities must be {len(b.labels)} finite numbers, got {p.size} values")
        if not (math.isfinite(latency_ms) and latency_ms >= 0):
            raise DataError(f"latency must be a finite number of milliseconds >= 0, got {latency_ms}")
        cls, confidence = B.top1(p.tolist())
        self._window.add(
            [B.bin_index(f.edges, float(v)) for f, v in zip(b.features, x.tolist(), strict=True)],
            cls,
            bisect.bisect_right(b.confidence_edges, confidence),
            bisect.bisect_right(b.latency_edges_ms, latency_ms),
            self._clock(),
        )

    def to_document(self) -> Aggregates:
        """The open window's counts (a pending snapshot is not in them)."""
        return self._window.document()

    # -- persistence and upload ----------------------------------------------------------------------------------
    def save(self) -> None:
        """Write the state file (atomically: the old file or the new one, never half)."""
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_document(self.path, AggregatorState(self.to_document(), self._pending))

    @property
    def pending(self) -> Aggregates | None:
        return self._pending

    def snapshot(self) -> Aggregates | None:
        """The document to upload: the pending snapshot if one is unacknowledged, else the open window closed now
        (None when it counted nothing). Saved before it is returned, so an upload never precedes the file."""
        if self._pending is None:
            current = self.to_document()
            if current.count == 0:
                return None
            now = max(self._clock(), current.window_end)
            self._pending = replace(current, window_end=now, snapshot_id=secrets.token_hex(16))
            model, version, channel = self._identity
            self._window = _Window(empty(self.baseline, model=model, version=version, channel=channel, start=now))
            self.save()
        return self._pending

    def acknowledge(self, snapshot_id: str) -> None:
        """The server stored snapshot ``snapshot_id``: forget it. Acknowledging an id that is not pending (a late
        duplicate answer) changes nothing and raises nothing."""
        if self._pending is not None and self._pending.snapshot_id == snapshot_id:
            self._pending = None
            self.save()


class _Window:
    """The mutable counters of the open window (the documents are frozen)."""

    def __init__(self, doc: Aggregates) -> None:
        self.doc = doc  # identity, start, and the counts as of the last document()
        self.end = doc.window_end
        self.count = doc.count
        self.features = [list(f.counts) for f in doc.features]
        self.missing = [f.missing for f in doc.features]
        self.predictions = list(doc.predictions)
        self.confidence = list(doc.confidence)
        self.latency = list(doc.latency_ms)

    def add(self, feature_bins: list[int | None], cls: int, confidence: int, latency: int, now: datetime) -> None:
        self.count += 1
        for j, index in enumerate(feature_bins):
            if index is None:
                self.missing[j] += 1
            else:
                self.features[j][index] += 1
        self.predictions[cls] += 1
        self.confidence[confidence] += 1
        self.latency[latency] += 1
        self.end = max(self.end, now)  # a clock that stepped back never moves the window's end before its start

    def document(self) -> Aggregates:
        features = zip(self.doc.features, self.features, self.missing, strict=True)
        return replace(
            self.doc,
            window_end=self.end,
            count=self.count,
            features=tuple(FeatureCounts(f.name, tuple(n), m) for f, n, m in features),
            predictions=tuple(self.predictions),
            confidence=tuple(self.confidence),
            latency_ms=tuple(self.latency),
        )


def merge(a: Aggregates, b: Aggregates) -> Aggregates:
    """The counts of both documents (same model, version, channel and bins); the window spans both."""
    if (a.model, a.version, a.channel) != (b.model, b.version, b.channel):
        raise DataError(
            f"cannot merge aggregates of {a.model} {a.version} ({a.channel}) and {b.model} {b.version} ({b.channel})"
        )
    if _shape(a) != _shape(b):
        raise DataError(f"cannot merge aggregates of {a.model} {a.version} with different features or bins")
    return replace(
        a,
        window_start=min(a.window_start, b.window_start),
        window_end=max(a.window_end, b.window_end),
        count=a.count + b.count,
        features=tuple(
            FeatureCounts(x.name, _add(x.counts, y.counts), x.missing + y.missing)
            for x, y in zip(a.features, b.features, strict=True)
        ),
        predictions=_add(a.predictions, b.predictions),
        confidence=_add(a.confidence, b.confidence),
        latency_ms=_add(a.latency_ms, b.latency_ms),
        snapshot_id=None,
    )


def _add(x: Sequence[int], y: Sequence[int]) -> tuple[int, ...]:
    return tuple(i + j for i, j in zip(x, y, strict=True))


def _shape(doc: Aggregates) -> tuple[object, ...]:
    return (
        tuple((f.name, len(f.counts)) for f in doc.features),
        len(doc.predictions),
        len(doc.confidence),
        len(doc.latency_ms),
    )


# The largest document the bounds allow (256 features × 64 bins, 1,000 classes) is about 300 KB of JSON.
MAX_UPLOAD_BYTES = 1 << 20


def read_upload(data: bytes, find_baseline: Callable[[str, str], Baseline], *, where: str = "aggregates") -> Aggregates:
    """An uploaded document, for the server: size-capped, strictly parsed, then checked against the baseline of
    the model version it names (``find_baseline(model, version)``, which raises its own error for an unknown
    one). Anything wrong is a ``ContractError`` naming the field; nothing is stored here."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise ContractError(f"{where} is {len(data)} bytes; at most {MAX_UPLOAD_BYTES} are accepted")
    doc = parse_document(Aggregates, data, where=where)
    check_against_baseline(doc, find_baseline(doc.model, doc.version), where=where)
    return doc


def check_against_baseline(doc: Aggregates, baseline: Baseline, *, where: str = "aggregates") -> None:
    """Refuse (``ContractError``, naming the field) a document whose features or bins are not the baseline's."""
    hint = "the device counts against another baseline; update the app or re-export the model"

    def refuse(field: str, problem: str) -> ContractError:
        return ContractError(f"{where}.{field}: {problem}", field=f"{where}.{field}", hint=hint)

    if len(doc.features) != len(baseline.features):
        raise refuse("features", f"{len(doc.features)} features; the baseline monitors {len(baseline.features)}")
    for i, (got, want) in enumerate(zip(doc.features, baseline.features, strict=True)):
        if got.name != want.name:
            raise refuse(f"features[{i}].name", f"{got.name[:60]!r}; the baseline's feature {i} is {want.name!r}")
        if len(got.counts) != want.bins:
            raise refuse(
                f"features[{i}].counts", f"{len(got.counts)} bins; the baseline has {want.bins} for {want.name!r}"
            )
    expected = {
        "predictions": len(baseline.labels),
        "confidence": len(baseline.confidence_edges) + 1,
        "latency_ms": len(baseline.latency_edges_ms) + 1,
    }
    for key, bins in expected.items():
        if len(getattr(doc, key)) != bins:
            raise refuse(key, f"{len(getattr(doc, key))} bins; the baseline has {bins}")

"""``baseline.json``: what a device compares its inputs and predictions against, written beside each variant's
``metadata.json`` at export.

Per monitored feature (a tabular input feature, or an image summary: mean intensity and contrast per channel) it
holds the bin edges fitted on the train split and the train and test rows per bin; for the model, the test split's
rows per predicted class and per top-1 confidence bin. Counts, not frequencies: a frequency is ``count / rows``, and
the statistics (``mobile_ml.monitor.stats``) work on counts.

The bin rule (the same in ``mobile_ml.monitor.bins`` and the Android ``Aggregator``): ``edges`` are strictly
increasing finite cut points; a value ``v`` falls in bin ``i`` = the number of edges ``<= v``, so bins are
left-closed ``[e[i-1], e[i])``, bin 0 is everything below ``e[0]`` and the last bin everything from ``e[-1]`` up
(including +inf); NaN falls in no bin and is counted as missing. ``len(edges) + 1`` bins.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from mobile_ml.contracts._fields import Fields

MAX_FEATURES = 256  # monitored features per model: each costs a few hundred bytes per upload
MAX_BINS = 64  # bins per histogram (a discrete feature gets one per value plus two, see monitor/bins.py)
MAX_CLASSES = 1000
MAX_COUNT = 2**53 - 1  # counts stay exact in a JSON double (the Kotlin and JS readers)
FEATURE_NAME_LEN = 256


class BaselineKind(str, enum.Enum):
    TABULAR = "tabular"  # one monitored feature per model input feature, in input order
    IMAGE = "image"  # summaries of each image: mean intensity and contrast per channel

    def __str__(self) -> str:
        return self.value


def image_feature_names(channels: int) -> tuple[str, ...]:
    """The summary features of an image with ``channels`` channels, in the order the aggregator computes them."""
    return tuple(f"mean_intensity[{c}]" for c in range(channels)) + tuple(f"contrast[{c}]" for c in range(channels))


def read_numbers(f: Fields, key: str, *, max_len: int) -> tuple[float, ...]:
    return f.items(key, lambda v, where: Fields({"": v}, where, hint=f.hint).number(""), max_len=max_len)


def read_counts(f: Fields, key: str, *, max_len: int) -> tuple[int, ...]:
    return f.items(
        key, lambda v, where: Fields({"": v}, where, hint=f.hint).integer("", lo=0, hi=MAX_COUNT), max_len=max_len
    )


def read_edges(f: Fields, key: str) -> tuple[float, ...]:
    edges = read_numbers(f, key, max_len=MAX_BINS - 1)
    if any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
        raise f.error(key, "bin edges must be strictly increasing")
    return edges


def check_histogram(f: Fields, key: str, counts: Sequence[int], bins: int, total: int | None = None) -> None:
    if len(counts) != bins:
        raise f.error(key, f"{len(counts)} counts for {bins} bins")
    if total is not None and sum(counts) != total:
        raise f.error(key, f"the counts add up to {sum(counts)}, not {total}")


@dataclass(frozen=True)
class FeatureBaseline:
    name: str
    edges: tuple[float, ...]  # cut points; len(edges) + 1 bins
    train: tuple[int, ...]  # train-split rows per bin
    test: tuple[int, ...]  # test-split rows per bin
    discrete: bool  # few distinct train values: one bin per value (see monitor/bins.py)

    @property
    def bins(self) -> int:
        return len(self.edges) + 1

    @classmethod
    def read(cls, f: Fields, train_rows: int, test_rows: int) -> FeatureBaseline:
        feature = cls(
            name=f.string("name", max_len=FEATURE_NAME_LEN),
            edges=read_edges(f, "edges"),
            train=read_counts(f, "train", max_len=MAX_BINS),
            test=read_counts(f, "test", max_len=MAX_BINS),
            discrete=f.boolean("discrete"),
        )
        f.done()
        check_histogram(f, "train", feature.train, feature.bins, train_rows)
        check_histogram(f, "test", feature.test, feature.bins, test_rows)
        return feature

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "edges": list(self.edges),
            "train": list(self.train),
            "test": list(self.test),
            "discrete": self.discrete,
        }


@dataclass(frozen=True)
class Baseline:
    """``baseline.json``."""

    SCHEMA: ClassVar[str] = "mobile_ml.baseline"
    SCHEMA_VERSION: ClassVar[int] = 1
    WHAT: ClassVar[str] = "a mobile-ml monitoring baseline"
    REDO: ClassVar[str] = "mobile-ml export"

    kind: BaselineKind
    labels: tuple[str, ...]
    train_rows: int
    test_rows: int
    features: tuple[FeatureBaseline, ...]
    predictions: tuple[int, ...]  # test rows per predicted class (label index)
    confidence_edges: tuple[float, ...]  # top-1 confidence cut points (fixed, monitor/bins.py)
    confidence: tuple[int, ...]  # test rows per confidence bin
    latency_edges_ms: tuple[float, ...]  # where devices bin their latency (fixed); the baseline has no latency
    image_channels: int | None = None  # image: channels of the input (the summaries are per channel)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(feature.name for feature in self.features)

    @classmethod
    def from_dict(cls, f: Fields) -> Baseline:
        train_rows = f.integer("train_rows", lo=1, hi=MAX_COUNT)
        test_rows = f.integer("test_rows", lo=1, hi=MAX_COUNT)
        labels = f.strings("labels", max_len=MAX_CLASSES)
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise f.error("labels", "expected at least two distinct labels")
        baseline = cls(
            kind=f.choice("kind", BaselineKind),
            labels=labels,
            train_rows=train_rows,
            test_rows=test_rows,
            features=tuple(
                FeatureBaseline.read(x, train_rows, test_rows) for x in f.objs("features", max_len=MAX_FEATURES)
            ),
            predictions=read_counts(f, "predictions", max_len=MAX_CLASSES),
            confidence_edges=read_edges(f, "confidence_edges"),
            confidence=read_counts(f, "confidence", max_len=MAX_BINS),
            latency_edges_ms=read_edges(f, "latency_edges_ms"),
            image_channels=f.opt_integer("image_channels", lo=1, hi=4),
        )
        f.done()
        baseline._check(f)
        return baseline

    def _check(self, f: Fields) -> None:
        if not self.features:
            raise f.error("features", "at least one feature is needed")
        names = self.feature_names
        if len(set(names)) != len(names):
            raise f.error("features", "feature names must be unique")
        if self.kind is BaselineKind.IMAGE:
            if self.image_channels is None:
                raise f.error("image_channels", "missing (an image baseline needs its channel count)")
            if names != image_feature_names(self.image_channels):
                raise f.error(
                    "features", f"an image baseline monitors {', '.join(image_feature_names(self.image_channels))}"
                )
        elif self.image_channels is not None:
            raise f.error("image_channels", "only an image baseline has channels")
        check_histogram(f, "predictions", self.predictions, len(self.labels), self.test_rows)
        check_histogram(f, "confidence", self.confidence, len(self.confidence_edges) + 1, self.test_rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "labels": list(self.labels),
            "train_rows": self.train_rows,
            "test_rows": self.test_rows,
            "features": [feature.to_dict() for feature in self.features],
            "predictions": list(self.predictions),
            "confidence_edges": list(self.confidence_edges),
            "confidence": list(self.confidence),
            "latency_edges_ms": list(self.latency_edges_ms),
            "image_channels": self.image_channels,
        }


__all__ = [
    "MAX_BINS",
    "MAX_CLASSES",
    "MAX_COUNT",
    "MAX_FEATURES",
    "Baseline",
    "BaselineKind",
    "FeatureBaseline",
    "image_feature_names",
]

"""``data.json``: the contract between the data stage and everything after it.

It records how raw inputs become model inputs (feature order, vocabularies, imputation values, image size), the
normalization statistics the model bakes in (computed on the train split only), the labels, and where the data came
from. The export stage copies parts of it into the metadata an app reads; the training run keeps a byte copy.

Paths: ``files`` names the split files relative to the directory holding ``data.json``. ``source.path`` is
provenance only (where the input was read, absolute, or ``builtin:NAME``); nothing opens it again.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, ClassVar, TypeVar

from mobile_ml.contracts._fields import Fields
from mobile_ml.outputs import to_jsonable

SPLITS = ("train", "validation", "test")
T = TypeVar("T")


class DataKind(str, enum.Enum):
    TABULAR = "tabular"
    IMAGE = "image"

    def __str__(self) -> str:  # f"{kind}" reads "image" on every Python version
        return self.value


class ColumnKind(str, enum.Enum):
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    DATE = "date"

    def __str__(self) -> str:
        return self.value


class SplitFormat(str, enum.Enum):
    """How tabular split files are stored; image splits are always ``.npz``."""

    CSV = "csv"  # data directories prepared before Parquet; data.json without ``split_format`` means this
    # float32 feature columns (float64 in files written before 2026-12) in ``features`` order, then int64 ``__label__``
    PARQUET = "parquet"

    def __str__(self) -> str:
        return self.value


class NormalizationAxis(str, enum.Enum):
    FEATURE = "feature"  # tabular: one mean/std per encoded feature
    CHANNEL = "channel"  # images: one mean/std per colour channel

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class ColumnSpec:
    """How one raw tabular column becomes encoded features (what the app must reproduce)."""

    name: str
    kind: ColumnKind
    features: list[str]  # encoded feature names this column produces, in model-input order
    # What a missing value becomes, fitted on the train split: numeric → a number (median or mean); categorical →
    # the most frequent category or "__unknown__"; date → {part: median}. None: rows with missing values were dropped.
    impute: Any = None
    vocabulary: list[str] | None = None  # categorical: one-hot categories; anything else → the unknown bucket
    unknown_feature: str | None = None  # categorical: name of the unknown-bucket feature
    date_parts: list[str] | None = None  # date: which parts became numeric features

    @classmethod
    def from_dict(cls, f: Fields) -> ColumnSpec:
        kind = f.choice("kind", ColumnKind)
        impute: Any
        if kind is ColumnKind.NUMERIC:
            impute = f.opt_number("impute")
        elif kind is ColumnKind.CATEGORICAL:
            impute = f.opt_string("impute")
        else:
            parts = f.opt_obj("impute")
            impute = None if parts is None else {p: parts.number(p) for p in parts.raw}
        col = cls(
            name=f.string("name"),
            kind=kind,
            features=list(f.strings("features")),
            impute=impute,
            vocabulary=_opt_strings(f, "vocabulary"),
            unknown_feature=f.opt_string("unknown_feature"),
            date_parts=_opt_strings(f, "date_parts"),
        )
        f.done()
        col._check(f)
        return col

    def _check(self, f: Fields) -> None:
        if self.kind == ColumnKind.CATEGORICAL:
            # The encoder pairs features with the vocabulary in order; the unknown bucket is the last feature.
            vocabulary = self.vocabulary or []
            if len(self.features) != len(vocabulary) + 1 or self.unknown_feature != self.features[-1]:
                raise f.error("features", "a categorical column needs one feature per category, then its unknown one")
        elif self.kind == ColumnKind.DATE and len(self.features) != len(self.date_parts or []):
            raise f.error("features", "a date column needs one feature per date part")


@dataclass(frozen=True)
class ImageSpec:
    height: int
    width: int
    channels: int
    value_range: tuple[float, float]  # raw pixel range the model expects, e.g. (0, 255) or (0, 16) for digits

    @classmethod
    def from_dict(cls, f: Fields) -> ImageSpec:
        value_range = number_list(f, "value_range")
        if len(value_range) != 2:
            raise f.error("value_range", "expected [low, high]")
        lo, hi = value_range
        if not lo < hi:
            raise f.error("value_range", f"low {lo} is not below high {hi}")
        spec = cls(
            height=f.integer("height", lo=1, hi=4096),
            width=f.integer("width", lo=1, hi=4096),
            channels=f.integer("channels", lo=1, hi=4),
            value_range=(lo, hi),
        )
        f.done()
        return spec


@dataclass(frozen=True)
class Normalization:
    """Mean and standard deviation per feature (tabular) or per channel (image), from the train split only."""

    mean: list[float]
    std: list[float]
    axis: NormalizationAxis

    @classmethod
    def from_dict(cls, f: Fields) -> Normalization:
        mean, std = number_list(f, "mean"), number_list(f, "std")
        if len(mean) != len(std):
            raise f.error("std", f"{len(std)} values for {len(mean)} means")
        if any(s <= 0 for s in std):
            raise f.error("std", "every standard deviation must be positive (the model divides by it)")
        norm = cls(mean=mean, std=std, axis=f.choice("axis", NormalizationAxis))
        f.done()
        return norm


@dataclass(frozen=True)
class DataSpec:
    SCHEMA: ClassVar[str] = "mobile_ml.data"
    SCHEMA_VERSION: ClassVar[int] = 1
    WHAT: ClassVar[str] = "a mobile-ml data description"
    REDO: ClassVar[str] = "mobile-ml data prepare"

    kind: DataKind
    source: dict[str, Any]  # lineage: {"type": "csv"|"image_folder"|"builtin", "path": ..., "sha256": ..., ...}
    target: str
    labels: list[str]
    normalization: Normalization
    counts: dict[str, int]  # rows per split
    class_counts: dict[str, list[int]]  # per split, rows per label index
    split: dict[str, Any]  # ratios, seed, stratified
    features: list[str] = field(default_factory=list)  # tabular: encoded feature order
    columns: list[ColumnSpec] = field(default_factory=list)  # tabular: raw column → features
    image: ImageSpec | None = None
    dropped_columns: list[dict[str, str]] = field(default_factory=list)  # [{"name", "reason"}]
    cleaning: dict[str, Any] = field(default_factory=dict)  # options used and what they did
    files: dict[str, str] = field(default_factory=dict)  # split name → file, relative to the data directory
    split_format: SplitFormat = SplitFormat.CSV  # tabular only; omitted from data.json when CSV (older files)

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def input_shape(self) -> tuple[int, ...]:
        if self.image is not None:
            return (self.image.height, self.image.width, self.image.channels)
        return (len(self.features),)

    def to_dict(self) -> dict[str, Any]:
        out = to_jsonable(self)
        if self.split_format is SplitFormat.CSV:  # byte-identical to data.json written before the key existed
            del out["split_format"]
        return out

    @classmethod
    def from_dict(cls, f: Fields) -> DataSpec:
        kind = f.choice("kind", DataKind)
        labels = list(f.strings("labels"))
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise f.error("labels", "expected at least two distinct labels")
        image = f.opt_obj("image")
        spec = cls(
            kind=kind,
            source=f.mapping("source"),
            target=f.string("target"),
            labels=labels,
            normalization=Normalization.from_dict(f.obj("normalization")),
            counts=_per_split(f, "counts", lambda s, k: s.integer(k, lo=1)),
            class_counts=_per_split(f, "class_counts", lambda s, k: _counts(s, k, len(labels))),
            split=f.mapping("split"),
            features=list(f.strings("features", optional=True)),
            columns=[ColumnSpec.from_dict(c) for c in f.objs("columns", optional=True)],
            image=None if image is None else ImageSpec.from_dict(image),
            dropped_columns=[_dropped(c) for c in f.objs("dropped_columns", optional=True)],
            cleaning=f.mapping("cleaning", optional=True),
            files=_per_split(f, "files", _relative_file),
            split_format=f.choice("split_format", SplitFormat, default=SplitFormat.CSV),
        )
        f.done()
        spec._check_shapes(f)
        return spec

    def _check_shapes(self, f: Fields) -> None:
        """What the model is built from must agree with itself, or training would fail far from the cause."""
        if self.kind == DataKind.IMAGE:
            if self.image is None:
                raise f.error("image", "missing (image data needs height, width and channels)")
            expected = self.image.channels
        else:
            if not self.features:
                raise f.error("features", "tabular data needs at least one feature")
            expected = len(self.features)
        if len(self.normalization.mean) != expected:
            raise f.error("normalization", f"{len(self.normalization.mean)} means for an input of {expected}")


# ---------------------------------------------------------------------------------------------------- helpers


def number_list(f: Fields, key: str) -> list[float]:
    """A list of finite numbers (``Fields`` reads lists of strings and objects, not of numbers)."""
    # A one-value Fields read with the empty key names the list item itself in errors ("...mean[3]: ...").
    return list(f.items(key, lambda v, where: Fields({"": v}, where, hint=f.hint).number("")))


def integer_list(f: Fields, key: str, *, lo: int | None = None) -> list[int]:
    return list(f.items(key, lambda v, where: Fields({"": v}, where, hint=f.hint).integer("", lo=lo)))


def _counts(f: Fields, key: str, num_classes: int) -> list[int]:
    counts = integer_list(f, key, lo=0)
    if len(counts) != num_classes:
        raise f.error(key, f"{len(counts)} counts for {num_classes} labels")
    return counts


def _opt_strings(f: Fields, key: str) -> list[str] | None:
    if f.raw.get(key) is None:
        f.value(key, optional=True)  # a null is allowed, and seen
        return None
    return list(f.strings(key))


def _per_split(f: Fields, key: str, read: Callable[[Fields, str], T]) -> dict[str, T]:
    """An object with exactly the keys train, validation and test."""
    inner = f.obj(key)
    out = {s: read(inner, s) for s in SPLITS}
    inner.done()
    return out


def _relative_file(f: Fields, key: str) -> str:
    name = f.string(key, max_len=255)
    path = PurePosixPath(name)
    # Relative to data.json and inside its directory: a moved or copied data directory still finds its splits.
    if path.is_absolute() or ".." in path.parts or "\\" in name or not path.parts:
        raise f.error(key, f"{name!r} must be a file name inside the data directory")
    return name


def _dropped(f: Fields) -> dict[str, str]:
    d = {"name": f.string("name"), "reason": f.string("reason")}
    f.done()
    return d

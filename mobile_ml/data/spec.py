"""``data.json``: the contract between the data stage and everything after it.

It records how raw inputs become model inputs (feature order, vocabularies, imputation values, image size), the
normalization statistics the model bakes in (computed on the train split only), the labels, and where the data came
from. The export stage copies parts of it into the metadata an app reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobile_ml.errors import InputFileError
from mobile_ml.outputs import read_json, to_jsonable

SCHEMA = "mobile_ml.data"
SCHEMA_VERSION = 1
SPLITS = ("train", "validation", "test")
LABEL_COLUMN = "__label__"  # label index column in tabular split CSVs; cannot clash with a real column name


@dataclass(frozen=True)
class ColumnSpec:
    """How one raw tabular column becomes encoded features (what the app must reproduce)."""

    name: str
    kind: str  # "numeric" | "categorical" | "date"
    features: list[str]  # encoded feature names this column produces, in model-input order
    # What a missing value becomes, fitted on the train split: numeric → a number (median or mean); categorical →
    # the most frequent category or "__unknown__"; date → {part: median}. None: rows with missing values were dropped.
    impute: Any = None
    vocabulary: list[str] | None = None  # categorical: one-hot categories; anything else → the unknown bucket
    unknown_feature: str | None = None  # categorical: name of the unknown-bucket feature
    date_parts: list[str] | None = None  # date: which parts became numeric features


@dataclass(frozen=True)
class ImageSpec:
    height: int
    width: int
    channels: int
    value_range: tuple[float, float]  # raw pixel range the model expects, e.g. (0, 255) or (0, 16) for digits


@dataclass(frozen=True)
class Normalization:
    """Mean and standard deviation per feature (tabular) or per channel (image), from the train split only."""

    mean: list[float]
    std: list[float]
    axis: str  # "feature" | "channel"


@dataclass(frozen=True)
class DataSpec:
    kind: str  # "tabular" | "image"
    source: dict[str, Any]  # {"type": "csv"|"image_folder"|"builtin", "path": ..., "sha256": ...}
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
    files: dict[str, str] = field(default_factory=dict)  # split name → file name inside the data directory

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def input_shape(self) -> tuple[int, ...]:
        if self.image is not None:
            return (self.image.height, self.image.width, self.image.channels)
        return (len(self.features),)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, **to_jsonable(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataSpec:
        d = dict(d)
        d.pop("schema", None)
        d.pop("schema_version", None)
        d["normalization"] = Normalization(**d["normalization"])
        d["columns"] = [ColumnSpec(**c) for c in d.get("columns", [])]
        if d.get("image") is not None:
            img = dict(d["image"])
            img["value_range"] = tuple(img["value_range"])
            d["image"] = ImageSpec(**img)
        return cls(**d)


def load_spec(datadir: str | Path) -> DataSpec:
    """Read and check ``DATADIR/data.json``."""
    path = Path(datadir) / "data.json"
    if not Path(datadir).is_dir():
        raise InputFileError(f"data directory {datadir} does not exist", hint="create it with `mobile-ml data prepare`")
    if not path.is_file():
        raise InputFileError(
            f"{path} not found: {datadir} is not a prepared data directory",
            hint="create one with `mobile-ml data prepare`",
        )
    raw = read_json(path, SCHEMA, SCHEMA_VERSION, what="a mobile-ml data description", redo="mobile-ml data prepare")
    try:
        return DataSpec.from_dict(raw)
    except (TypeError, KeyError, ValueError) as e:
        raise InputFileError(f"{path} is incomplete or damaged: {e}", hint="re-run `mobile-ml data prepare`") from e


def load_split(datadir: str | Path, spec: DataSpec, split: str):
    """Return ``(x, y)`` for one split as numpy arrays (x float32 in raw units, y int64 label indices)."""
    import numpy as np

    path = Path(datadir) / spec.files[split]
    try:
        if spec.kind == "image":
            with np.load(path) as z:
                x, y = z["x"].astype(np.float32), z["y"].astype(np.int64)
        else:
            import pandas as pd

            df = pd.read_csv(path)
            x = df[spec.features].to_numpy(dtype=np.float32)
            y = df[LABEL_COLUMN].to_numpy(dtype=np.int64)
    except (OSError, KeyError, ValueError) as e:
        raise InputFileError(
            f"cannot read the {split} split {path}: {e}", hint="re-run `mobile-ml data prepare`"
        ) from e
    if len(x) != spec.counts[split]:
        raise InputFileError(
            f"{path} has {len(x)} rows but data.json says {spec.counts[split]}",
            hint="the data directory was modified; re-run `mobile-ml data prepare`",
        )
    return x, y

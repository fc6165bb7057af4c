"""Reading a prepared data directory: ``data.json`` (the contract, in ``mobile_ml.contracts.data``) and its splits."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mobile_ml.contracts import read_document
from mobile_ml.contracts.data import (
    SPLITS,
    ColumnKind,
    ColumnSpec,
    DataKind,
    DataSpec,
    ImageSpec,
    Normalization,
    NormalizationAxis,
    SplitFormat,
)
from mobile_ml.data.parquet import LABEL_COLUMN
from mobile_ml.errors import InputFileError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "LABEL_COLUMN",
    "SPLITS",
    "ColumnKind",
    "ColumnSpec",
    "DataKind",
    "DataSpec",
    "ImageSpec",
    "Normalization",
    "NormalizationAxis",
    "SplitFormat",
    "load_spec",
    "load_split",
]


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
    return read_document(DataSpec, path)


def load_split(datadir: str | Path, spec: DataSpec, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(x, y)`` for one split as numpy arrays (x float32 in raw units, y int64 label indices)."""
    import numpy as np

    path = Path(datadir) / spec.files[split]
    if spec.kind == DataKind.TABULAR and spec.split_format is SplitFormat.PARQUET:
        from mobile_ml.data.parquet import read_split

        return read_split(path, spec, split)  # checks schema and row count itself
    try:
        if spec.kind == DataKind.IMAGE:
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

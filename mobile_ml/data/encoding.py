"""One tabular column's encoding: fitted on the train split, then applied to every split.

This is what an app must reproduce on the phone for a raw row, so data.json records every fitted value
(``ColumnSpec``): imputation values, the one-hot vocabulary and its unknown bucket, the date parts.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mobile_ml.data.columns import parse_dates, to_numbers
from mobile_ml.data.parquet import BATCH_ROWS, SplitWriter
from mobile_ml.data.spec import SPLITS, ColumnKind, ColumnSpec

if TYPE_CHECKING:
    from mobile_ml.data.tabular import TabularOptions

UNKNOWN = "__unknown__"  # the one-hot bucket for categories outside the vocabulary (and, if asked, missing values)
DATE_PARTS = ("year", "month", "day", "dayofweek")  # dayofweek: Monday = 0


def convert(series: pd.Series, encoding: str) -> pd.Series:
    """Raw values → floats (numeric), strings (categorical) or UTC timestamps (date); missing stays missing."""
    if encoding == "numeric":
        return to_numbers(series)
    if encoding == "date":
        if pd.api.types.is_datetime64_any_dtype(series.dtype):
            return pd.to_datetime(series, utc=True)
        return parse_dates(series)
    # Categories, factorized once for the whole column: fitting counts codes and encoding maps codes, so no string
    # is compared per row. str() runs per distinct value, not per row.
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    names = [str(v) for v in uniques]
    if len(set(names)) < len(names):  # 1 and "1" in one object column: one category after str(), as before
        return pd.Series(pd.Categorical(np.array(names + [None], dtype=object)[codes]), index=series.index)
    return pd.Series(pd.Categorical.from_codes(codes, categories=names), index=series.index)


def _date_parts(dates: pd.Series) -> pd.DataFrame:
    return pd.DataFrame({p: getattr(dates.dt, p) for p in DATE_PARTS}).astype(float)


def fit_column(name: str, encoding: str, train: pd.Series, options: TabularOptions) -> ColumnSpec | None:
    """The encoding of one column, fitted on its train values; None when train has no value to fit on."""
    present = train.dropna()
    if len(present) == 0:
        return None
    imputing = options.missing == "impute"
    if encoding == "numeric":
        center = float(present.median() if options.numeric_impute == "median" else present.mean())
        return ColumnSpec(name, ColumnKind.NUMERIC, [name], impute=center if imputing else None)
    if encoding == "date":
        parts = _date_parts(present)
        medians = {p: float(parts[p].median()) for p in DATE_PARTS}
        return ColumnSpec(
            name,
            ColumnKind.DATE,
            [f"{name}.{p}" for p in DATE_PARTS],
            impute=medians if imputing else None,
            date_parts=list(DATE_PARTS),
        )
    counts = present.value_counts()
    counts = counts[counts > 0]  # a categorical series also counts categories that only other splits have
    # Ties broken by value, so the vocabulary does not depend on row order.
    vocabulary = sorted(counts.index, key=lambda v: (-counts[v], v))[: options.max_categories]
    unknown = f"{name}={UNKNOWN}"
    impute: Any = None
    if imputing:
        impute = UNKNOWN if options.categorical_impute == "unknown" else vocabulary[0]
    return ColumnSpec(
        name,
        ColumnKind.CATEGORICAL,
        [f"{name}={v}" for v in vocabulary] + [unknown],
        impute=impute,
        vocabulary=list(vocabulary),
        unknown_feature=unknown,
    )


class Encoder:
    """One column's encoding prepared once for all its rows, so that encoding a batch is numpy indexing only.

    Per batch, a pandas ``iloc`` per column (a copy, a new index, ``isna``) cost more than the encoding itself; here
    a numeric column is its float array (no copy) and a categorical one an int16 feature position per row.
    """

    def __init__(self, spec: ColumnSpec, values: pd.Series) -> None:
        self.spec = spec
        self.width = len(spec.features)
        self._values = values
        self._missing = values.isna().to_numpy() if spec.impute is not None else None
        if spec.kind == "numeric":
            self._numbers = values.to_numpy(dtype=np.float64)
        elif spec.kind == "categorical":
            self._positions = _positions(spec, values)

    def encode(self, rows: np.ndarray, out: np.ndarray) -> int:
        """Overwrite ``out`` (``len(rows)`` × width) with the features of ``rows``; return how many were imputed."""
        n_missing = int(np.count_nonzero(self._missing[rows])) if self._missing is not None else 0
        if self.spec.kind == "numeric":
            column = self._numbers[rows]  # fancy indexing copies: filling below never touches the column
            if n_missing:
                column[np.isnan(column)] = self.spec.impute
            out[:, 0] = column
        elif self.spec.kind == "categorical":
            out[:] = 0.0
            out[np.arange(len(rows)), self._positions[rows]] = 1.0
        else:
            out[:] = transform(self.spec, self._values.iloc[rows])[0]
        return n_missing


def _positions(spec: ColumnSpec, values: pd.Series) -> np.ndarray:
    """Each row's feature position: its vocabulary entry, else (unseen, or missing without imputation) the unknown
    bucket; a missing value imputed with a vocabulary entry takes that entry's position."""
    vocabulary = spec.vocabulary or []
    position = {v: i for i, v in enumerate(vocabulary)}
    unknown = len(vocabulary)
    imputed = spec.impute is not None and spec.impute != UNKNOWN
    missing = position.get(spec.impute, unknown) if imputed else unknown
    if not isinstance(values.dtype, pd.CategoricalDtype):
        values = pd.Series(pd.Categorical(values, categories=vocabulary), index=values.index)
    lookup = np.array([position.get(c, unknown) for c in values.cat.categories] + [missing], dtype=np.int16)
    return lookup[values.cat.codes.to_numpy()]  # code -1 (missing) picks the trailing entry


def transform(spec: ColumnSpec, values: pd.Series) -> tuple[np.ndarray, int]:
    """Encoded features (float64, one column per feature) of one column for some rows, and how many were imputed."""
    n_missing = int(values.isna().sum()) if spec.impute is not None else 0
    if spec.kind == "numeric":
        filled = values if spec.impute is None else values.fillna(spec.impute)
        return filled.to_numpy(dtype=np.float64).reshape(-1, 1), n_missing
    if spec.kind == "date":
        parts = _date_parts(values)
        if spec.impute is not None:
            parts = parts.fillna(spec.impute)
        return parts.to_numpy(dtype=np.float64), n_missing
    if spec.impute is not None and spec.impute != UNKNOWN:
        values = values.fillna(spec.impute)
    vocabulary = spec.vocabulary or []
    # features = one per vocabulary entry, then the unknown bucket; missing and unseen values → the unknown bucket
    if isinstance(values.dtype, pd.CategoricalDtype):  # codes of the column's categories → vocabulary positions
        position = {v: i for i, v in enumerate(vocabulary)}
        lookup = np.array([position.get(c, len(vocabulary)) for c in values.cat.categories] + [len(vocabulary)])
        codes = lookup[values.cat.codes.to_numpy()]  # code -1 (missing) picks the trailing unknown entry
    else:
        codes = pd.Categorical(values, categories=vocabulary).codes.astype(np.int64)
        codes[codes < 0] = len(vocabulary)
    onehot = np.zeros((len(codes), len(vocabulary) + 1), dtype=np.float64)
    onehot[np.arange(len(codes)), codes] = 1.0
    return onehot, n_missing


def encode_splits(
    values: dict[str, pd.Series],
    y: np.ndarray,
    columns: list[ColumnSpec],
    index: dict[str, np.ndarray],
    paths: dict[str, Path],
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Every split (``index``: its rows of ``values`` and ``y``) encoded with what was fitted on train, and written
    to its Parquet file in ``paths`` in batches of rows.

    Returns the train features' mean and population std (a constant feature gets std 1 so nothing divides by
    zero) and the imputed values per column. Only one batch of encoded rows exists at a time: the one-hot matrix is
    the largest thing the data stage makes (a few hundred float columns per row).
    """
    imputed: dict[str, int] = {}
    features = [f for c in columns for f in c.features]
    moments = _Moments(len(features))
    encoders = [Encoder(c, values[c.name]) for c in columns]
    # Two batch buffers, used in turn: the writer thread reads one while the next is encoded into the other, and
    # SplitWriter.write waits for the previous write, so a buffer is never refilled while being written. A fresh
    # 100 MB matrix per batch cost its page faults again every time (~1.5 s of encoding at 1M rows).
    # Column-major: each feature is one contiguous run, which Parquet stores without a copy.
    # float32: what the split files hold and the model takes (see parquet.py); the moments sum in float64.
    buffers = [np.empty((BATCH_ROWS, len(features)), dtype=np.float32, order="F") for _ in range(2)]
    turn = 0
    for s in SPLITS:
        writer = SplitWriter(paths[s], features)
        try:
            rows = index[s]
            for start in range(0, len(rows), BATCH_ROWS):
                batch = rows[start : start + BATCH_ROWS]
                x = buffers[turn][: len(batch)]
                turn = 1 - turn
                col = 0
                for e in encoders:
                    n_imputed = e.encode(batch, x[:, col : col + e.width])
                    col += e.width
                    if n_imputed:
                        imputed[e.spec.name] = imputed.get(e.spec.name, 0) + n_imputed
                writer.write(x, y[batch])
                if s == "train":
                    moments.add(x)
        finally:
            writer.close()
    std = moments.std()
    std[std == 0] = 1.0
    return moments.mean, std, imputed


class _Moments:
    """Per-feature mean and population variance over batches (Chan et al.'s pairwise merge: no E[x²] − E[x]²
    cancellation, so a column around 1e6 keeps its small spread)."""

    def __init__(self, width: int) -> None:
        self.n = 0
        self.mean = np.zeros(width)
        self.m2 = np.zeros(width)  # sum of squared deviations from the mean

    def add(self, x: np.ndarray) -> None:
        n_b = len(x)
        if n_b == 0:
            return
        mean_b = x.mean(axis=0, dtype=np.float64)  # float32 sums would lose the spread of a column near 1e6
        m2_b = np.empty_like(mean_b)
        for j in range(0, x.shape[1], 16):  # 16 features at a time: the temporaries stay a few MB, reused
            m2_b[j : j + 16] = ((x[:, j : j + 16] - mean_b[j : j + 16]) ** 2).sum(axis=0)
        n = self.n + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n_b / n)
        self.m2 = self.m2 + m2_b + delta**2 * (self.n * n_b / n)
        self.n = n

    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / self.n)

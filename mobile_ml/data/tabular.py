"""A CSV becomes three encoded Parquet splits (``train.parquet``, ``validation.parquet``, ``test.parquet``) and their
``DataSpec``.

Every statistic the encoding needs (imputation values, vocabularies, outlier fences, normalization) is fitted on the
train split only, after splitting: fitting on all rows would let validation and test leak into training and make
their scores optimistic. The ``DataSpec`` records each fitted value, because the app has to apply the same encoding to
a raw row on the phone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mobile_ml.data.column_stats import distinct_counts, duplicate_rows
from mobile_ml.data.columns import (
    ColumnKind,
    classify_column,
    iqr_fences,
    label_strings,
    looks_continuous,
    sorted_labels,
    to_numbers,
)
from mobile_ml.data.encoding import convert, encode_splits, fit_column
from mobile_ml.data.profile import read_csv, unknown_column_error
from mobile_ml.data.spec import (
    LABEL_COLUMN,
    SPLITS,
    ColumnSpec,
    DataKind,
    DataSpec,
    Normalization,
    NormalizationAxis,
    SplitFormat,
)
from mobile_ml.data.split import SplitOptions, stratified_split
from mobile_ml.errors import ConfigError, DataError
from mobile_ml.outputs import to_jsonable

FILES = {"train": "train.parquet", "validation": "validation.parquet", "test": "test.parquet"}

_CHOICES = {
    "missing": ("impute", "drop"),
    "numeric_impute": ("median", "mean"),
    "categorical_impute": ("most_frequent", "unknown"),
    "dates": ("parse", "drop"),
    "outliers": ("keep", "remove"),
}
_AUTO_DROP = ("id", "text", "constant", "empty")


@dataclass(frozen=True)
class TabularOptions:
    """How to clean and encode a CSV (``[data.clean]`` in a pipeline TOML; ``data prepare`` options)."""

    missing: str = "impute"  # "impute" | "drop": drop rows with any missing feature value
    numeric_impute: str = "median"  # "median" | "mean"
    categorical_impute: str = "most_frequent"  # "most_frequent" | "unknown": missing goes to the unknown bucket
    dates: str = "parse"  # "parse": year, month, day, dayofweek features | "drop"
    outliers: str = "keep"  # "keep" | "remove": drop train rows outside the IQR fences of any numeric column
    outlier_factor: float = 1.5
    drop_columns: tuple[str, ...] = ()
    keep_columns: tuple[str, ...] = ()  # keep even if it looks like an id, constant or date (with dates="drop")
    max_categories: int = 20  # one-hot the most frequent categories (train split); the rest → unknown bucket
    drop_duplicates: bool = True

    def __post_init__(self) -> None:
        for name, allowed in _CHOICES.items():
            value = getattr(self, name)
            if not isinstance(value, str) or value not in allowed:
                choices = ", ".join(repr(a) for a in allowed)
                raise ConfigError(
                    f"{name} = {value!r} is not allowed; use one of {choices}", hint=f"set {name} to one of {choices}"
                )
        factor = self.outlier_factor
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 < factor < math.inf:
            raise ConfigError(
                f"outlier_factor = {factor!r} must be a positive number",
                hint="1.5 is the usual IQR rule; 3 removes only extreme values",
            )
        object.__setattr__(self, "outlier_factor", float(factor))
        if isinstance(self.max_categories, bool) or not isinstance(self.max_categories, int) or self.max_categories < 1:
            raise ConfigError(
                f"max_categories = {self.max_categories!r} must be a whole number of at least 1",
                hint="e.g. max_categories = 20",
            )
        if not isinstance(self.drop_duplicates, bool):
            raise ConfigError(
                f"drop_duplicates = {self.drop_duplicates!r} must be true or false",
                hint="drop_duplicates = true removes exact duplicate rows before splitting",
            )
        for name in ("drop_columns", "keep_columns"):
            value = getattr(self, name)
            if not isinstance(value, (list, tuple)) or not all(isinstance(c, str) for c in value):
                raise ConfigError(
                    f"{name} = {value!r} must be a list of column names", hint=f'e.g. {name} = ["customer_id"]'
                )
            object.__setattr__(self, name, tuple(value))
        both = sorted(set(self.drop_columns) & set(self.keep_columns))
        if both:
            raise ConfigError(
                f"drop_columns and keep_columns both name {', '.join(map(repr, both))}",
                hint="list each column in at most one of them",
            )


def prepare_tabular(path: str | Path, target: str, options: TabularOptions, split: SplitOptions, out: Path) -> DataSpec:
    """Clean, split, encode and normalize the CSV at ``path``; write the three split files into ``out``.

    ``out`` must exist; the caller writes ``data.json`` from the returned spec.
    """
    path = Path(path)
    df, sha = read_csv(path)
    rows_in, columns_in = df.shape
    _check_names(df, target, options)
    table = _clean(df, target, options)  # 1.-4. labels, duplicates, column plan, rows with missing values
    del df  # table.values holds what is still needed; the raw frame is the largest object in memory
    index = _split(table, split, options)  # 5. split, then fit on train only
    columns = _fit_columns(table, index["train"], options)  # 6.-7.
    features = [f for c in columns for f in c.features]
    # 8.-9. Encode, write and (train) accumulate the normalization a batch of rows at a time.
    mean, std, imputed = encode_splits(table.values, table.y, columns, index, {s: out / FILES[s] for s in SPLITS})
    table.values.clear()  # the converted columns are not needed past this point

    source = {
        "type": "csv",
        "path": str(path.resolve()),
        "sha256": sha,
        "rows": int(rows_in),
        "columns": int(columns_in),
    }
    return DataSpec(
        kind=DataKind.TABULAR,
        source=source,
        target=target,
        labels=table.labels,
        normalization=Normalization(mean=mean.tolist(), std=std.tolist(), axis=NormalizationAxis.FEATURE),
        counts={s: int(len(index[s])) for s in SPLITS},
        class_counts={s: np.bincount(table.y[index[s]], minlength=len(table.labels)).tolist() for s in SPLITS},
        split=split.to_dict(),
        features=features,
        columns=columns,
        dropped_columns=table.dropped,
        cleaning={"options": to_jsonable(options), "rows_in": int(rows_in), **table.removed, "imputed": imputed},
        files=dict(FILES),
        split_format=SplitFormat.PARQUET,
    )


@dataclass
class _Table:
    """The CSV on its way to encoded splits: label indices, converted column values, and what was removed."""

    labels: list[str]
    y: np.ndarray  # label index per row
    plan: list[tuple[str, str]]  # (column, encoding) in CSV order
    values: dict[str, pd.Series]  # column → converted values (missing stays missing)
    dropped: list[dict[str, str]]  # [{"name", "reason"}]
    removed: dict[str, int]  # rows dropped at each cleaning step, recorded in data.json's cleaning


def _clean(df: pd.DataFrame, target: str, options: TabularOptions) -> _Table:
    # 1. Target → label indices. Rows without a target cannot be trained or scored on.
    has_target = df[target].notna()
    missing_target = int((~has_target).sum())
    if missing_target:  # filtering copies the whole frame: only when there is something to drop
        df = df[has_target].reset_index(drop=True)
    labels = _check_target(df[target], target)
    label_of = {name: i for i, name in enumerate(labels)}
    # Factorized, then one lookup per distinct label: Series.map with a dict took ~0.45 s per million rows.
    codes, uniques = pd.factorize(label_strings(df[target]))
    y = np.array([label_of[u] for u in uniques], dtype=np.int64)[codes]  # filtered along with df below

    # 2. Exact duplicates would land in train and test alike and inflate the test score.
    duplicates = 0
    if options.drop_duplicates:
        dup = duplicate_rows(df)
        duplicates = int(dup.sum())
        if duplicates:
            df, y = df[~dup].reset_index(drop=True), y[~dup]

    # 3. Which columns become features, and how.
    plan, dropped = _plan_columns(df, target, options)
    if not plan:
        raise DataError(
            "no usable feature columns: every column other than the target was dropped",
            hint="see dropped_columns in data.json; list a column in keep_columns to keep it anyway",
        )
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2) as pool:  # factorizing a text column is pyarrow's, without the GIL
        values = dict(zip([n for n, _ in plan], pool.map(lambda c: convert(df[c[0]], c[1]), plan), strict=True))

    # 4. Optionally drop rows with a missing value instead of imputing.
    missing_rows = 0
    if options.missing == "drop":
        incomplete = pd.concat([v.isna() for v in values.values()], axis=1).any(axis=1).to_numpy()
        missing_rows = int(incomplete.sum())
        y = y[~incomplete]
        values = {name: v[~incomplete].reset_index(drop=True) for name, v in values.items()}
        _check_all_classes(y, labels, "after dropping rows with missing values", 'use missing = "impute"')
    removed = {
        "missing_target_dropped": missing_target,
        "duplicates_dropped": duplicates,
        "missing_rows_dropped": missing_rows,
    }
    return _Table(labels, y, plan, values, dropped, removed)


def _split(table: _Table, split: SplitOptions, options: TabularOptions) -> dict[str, np.ndarray]:
    """Row indices per split; outliers, if asked, are removed from train only (test keeps the real world)."""
    train, val, test = stratified_split(table.y, split, table.labels)
    outliers_removed = 0
    if options.outliers == "remove":
        train, outliers_removed = _remove_outliers(train, table.values, table.plan, options.outlier_factor)
        _check_all_classes(
            table.y[train],
            table.labels,
            "in the train split after removing outliers",
            'use outliers = "keep" or a larger outlier_factor',
        )
    table.removed["outliers_removed"] = outliers_removed
    return {"train": train, "validation": val, "test": test}


def _fit_columns(table: _Table, train: np.ndarray, options: TabularOptions) -> list[ColumnSpec]:
    """Each planned column's encoding, fitted on the train rows; 7. a column with no train value is dropped."""
    from concurrent.futures import ThreadPoolExecutor

    columns: list[ColumnSpec] = []
    # Two threads: a median is a partition of the train values, which numpy runs without the GIL.
    with ThreadPoolExecutor(max_workers=2) as pool:
        fitted = pool.map(lambda c: fit_column(c[0], c[1], table.values[c[0]].iloc[train], options), table.plan)
        specs = list(fitted)
    for (name, _), spec in zip(table.plan, specs, strict=True):
        if spec is None:
            table.dropped.append({"name": name, "reason": "every value in the train split is missing"})
        else:
            columns.append(spec)
    features = [f for c in columns for f in c.features]
    if not features:
        raise DataError(
            "no usable feature columns remain after fitting on the train split",
            hint="see dropped_columns in data.json; provide columns with values",
        )
    _check_feature_names(features)
    return columns


# ---------------------------------------------------------------------------------------------------- checks


def _check_names(df: pd.DataFrame, target: str, options: TabularOptions) -> None:
    columns = [str(c) for c in df.columns]
    if target not in df.columns:
        raise unknown_column_error(target, columns, "target column")
    for name in ("drop_columns", "keep_columns"):
        unknown = [c for c in getattr(options, name) if c not in df.columns]
        if unknown:
            shown = ", ".join(columns[:15]) + (f" and {len(columns) - 15} more" if len(columns) > 15 else "")
            raise ConfigError(
                f"{name} names {', '.join(map(repr, unknown))}, not in the data; columns are: {shown}",
                hint="column names are case-sensitive and must match the CSV header exactly",
            )
    if target in options.drop_columns:
        raise ConfigError(f"drop_columns names the target column {target!r}", hint="remove it from drop_columns")


def _check_target(series: pd.Series, target: str) -> list[str]:
    """The sorted label names, or a DataError when the target cannot be a classification target."""
    if len(series) == 0:
        raise DataError(
            f"every value of the target column {target!r} is missing",
            hint="choose a target column that has a value in every row",
        )
    if looks_continuous(series):
        raise DataError(
            f"target {target!r} looks continuous ({series.nunique()} distinct numbers in {len(series)} "
            "rows); mobile-ml trains classifiers",
            hint="bin the target into classes first (e.g. low/medium/high) or choose another column",
        )
    labels = sorted_labels(label_strings(series))
    if len(labels) < 2:
        raise DataError(
            f"target {target!r} has only one class ({labels[0]!r}); a classifier needs at least two",
            hint="choose another target column, or add rows of the other classes",
        )
    return labels


def _check_all_classes(y: np.ndarray, labels: list[str], when: str, hint: str) -> None:
    counts = np.bincount(y, minlength=len(labels))
    empty = [labels[i] for i in np.flatnonzero(counts == 0)]
    if empty:
        raise DataError(f"class {empty[0]!r} has no rows left {when}", hint=hint)


def _check_feature_names(features: list[str]) -> None:
    seen: set[str] = {LABEL_COLUMN}
    for f in features:
        if f in seen:
            what = "the label column of the split files" if f == LABEL_COLUMN else "another encoded feature"
            raise DataError(
                f"encoded feature {f!r} has the same name as {what}",
                hint="rename the column (or category) that produces it, or drop the column",
            )
        seen.add(f)


# ---------------------------------------------------------------------------------------------------- columns


def _plan_columns(df: pd.DataFrame, target: str, options: TabularOptions):
    """``[(column, encoding)]`` in CSV order, and ``[{"name", "reason"}]`` for every dropped column."""
    plan: list[tuple[str, str]] = []
    dropped: list[dict[str, str]] = []
    candidates = [c for c in df.columns if c != target and c not in options.drop_columns]
    surely = {c for c in candidates if _surely_numeric(df[c])}
    distinct = distinct_counts(df, [c for c in candidates if c not in surely])
    for name in df.columns:
        if name == target:
            continue
        if name in options.drop_columns:
            dropped.append({"name": name, "reason": "listed in drop_columns"})
            continue
        kind = ColumnKind("numeric", "") if name in surely else classify_column(df[name], distinct[name])
        keep = name in options.keep_columns
        if keep:
            plan.append((name, _forced_encoding(df[name], kind)))
        elif kind.kind in _AUTO_DROP:
            dropped.append({"name": name, "reason": f"{kind.kind}: {kind.reason}"})
        elif kind.kind == "datetime" and options.dates == "drop":
            dropped.append({"name": name, "reason": f'datetime ({kind.reason}); dates = "drop"'})
        else:
            plan.append((name, {"numeric": "numeric", "datetime": "date"}.get(kind.kind, "categorical")))
    return plan, dropped


_SAMPLE = 4096  # evenly spaced values looked at before a number column's full distinct count


def _surely_numeric(series: pd.Series) -> bool:
    """A number column whose sample already holds more than four distinct values and a repeat: ``classify_column``
    can only call it numeric (not empty, constant, boolean, nor an id, which needs every value distinct), so the
    sort that counts its distinct values exactly is not needed here. Most number columns of a big table."""
    if not pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
        return False
    values = series.to_numpy(dtype=float)
    sample = values[:: max(1, len(values) // _SAMPLE)]
    sample = sample[~np.isnan(sample)]
    distinct = len(np.unique(sample))
    return 4 < distinct < len(sample)


def _forced_encoding(series: pd.Series, kind) -> str:
    """The encoding of a ``keep_columns`` column, or a DataError when no encoding can represent it."""
    if kind.kind in ("numeric", "datetime", "categorical", "boolean"):
        return {"numeric": "numeric", "datetime": "date"}.get(kind.kind, "categorical")
    numberlike = (
        not pd.api.types.is_bool_dtype(series.dtype) and to_numbers(series).notna().sum() >= 0.95 * series.notna().sum()
    )
    if kind.kind in ("id", "constant") and numberlike:
        return "numeric"
    if kind.kind == "constant":
        return "categorical"
    why = {
        "empty": "every value is missing",
        "text": f"it holds free text ({kind.reason}), which one-hot encoding cannot represent",
        "id": "every value is a different string, so no category would ever repeat",
    }[kind.kind]
    raise DataError(
        f"column {series.name!r} cannot be encoded: {why}",
        hint=f"remove {series.name!r} from keep_columns (it is dropped automatically)",
    )


def _remove_outliers(train: np.ndarray, values: dict[str, pd.Series], plan, factor: float):
    """Train rows outside the IQR fences (fitted on train) of any numeric column are removed."""
    outside = np.zeros(len(train), dtype=bool)
    for name, encoding in plan:
        if encoding != "numeric":
            continue
        v = values[name].iloc[train]
        if v.notna().sum() == 0:
            continue
        low, high = iqr_fences(v.dropna(), factor)
        outside |= ((v < low) | (v > high)).to_numpy()  # NaN compares False: missing is not an outlier
    return train[~outside], int(outside.sum())

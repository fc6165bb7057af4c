"""Reading a CSV and describing it: what each column looks like, what the target looks like, what could go wrong.

Each column's kind comes from ``columns.classify_column``, which ``data prepare`` uses too, so the profile shows
exactly the decisions prepare will make.
"""

from __future__ import annotations

import difflib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from mobile_ml.data.column_stats import (
    _fences,
    duplicate_rows,
    is_arrow_number,
    is_arrow_text,
    numpy_dtype,
    numpy_numbers,
    submit_summaries,
)
from mobile_ml.data.columns import classify_column, label_strings, looks_continuous, sorted_labels, to_numbers
from mobile_ml.errors import DataError, InputFileError
from mobile_ml.outputs import to_jsonable

if TYPE_CHECKING:
    from mobile_ml.data.csv_reader import ReadAhead

SCHEMA = "mobile_ml.profile"
SCHEMA_VERSION = 1
TOP_VALUES = 5
HIGH_MISSING = 0.5
IMBALANCE_RATIO = 0.2


# ---------------------------------------------------------------------------------------------------- reading


def read_csv(
    path: str | Path, *, arrow_backed: bool = False, ahead: ReadAhead | None = None
) -> tuple[pd.DataFrame, str]:
    """Read a UTF-8 CSV into a DataFrame; return it with the file's sha256. ``arrow_backed``: number and string
    columns stay in Arrow (``csv_reader.to_frame``); ``ahead``: the read of ``path``, already started.

    Values such as ``NA``, ``null`` and empty fields are missing (pandas' defaults). A row with more fields than the
    header is an error rather than pandas' silent "first column becomes the index". The file is parsed by pyarrow
    (all cores, typed as pandas would, see ``csv_reader``); a file pyarrow would read differently goes to pandas.
    """
    from mobile_ml.data.csv_reader import FileHash, NeedsPandas, read_hashed, to_frame

    path = Path(path)
    _check_file(path)
    try:
        try:
            table, sha = ahead.result() if ahead is not None else read_hashed(path, held=arrow_backed)
            df = to_frame(table, arrow_backed=arrow_backed)
        except NeedsPandas:
            digest = FileHash(path)
            df = _read_pandas(path)
            sha = digest.hexdigest()
    except OSError as e:
        raise InputFileError(f"cannot read {path}: {e.strerror or e}", hint="check the file's permissions") from e
    if len(df) == 0:
        raise _no_rows(path)
    return df, sha


def _no_rows(path: Path) -> InputFileError:
    return InputFileError(
        f"{path} has no data rows", hint="the file needs a header line and at least one row of values"
    )


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputFileError(f"{path} does not exist", hint="check the path to the CSV file")
    if path.is_dir():
        raise InputFileError(f"{path} is a directory, not a CSV file", hint="give the path of a .csv file")
    try:
        empty = path.stat().st_size == 0
    except OSError as e:
        raise InputFileError(f"cannot read {path}: {e.strerror or e}", hint="check the file's permissions") from e
    if empty:
        raise _no_rows(path)


def _read_pandas(path: Path) -> pd.DataFrame:
    """pandas.read_csv with the data stage's error messages: the reference behaviour, and the path for quirky files."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(path, encoding="utf-8-sig", index_col=False, low_memory=False)
    except pd.errors.EmptyDataError as e:
        raise _no_rows(path) from e
    except (pd.errors.ParserError, pd.errors.ParserWarning) as e:
        detail = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise InputFileError(
            f"{path} is not a valid CSV file: {detail}",
            hint="every row needs the same number of comma-separated fields as the header; "
            "quote values that contain commas",
        ) from e
    except UnicodeDecodeError as e:
        raise InputFileError(
            f"{path} is not UTF-8 text (invalid byte at position {e.start})", hint="re-save the file as UTF-8 CSV"
        ) from e


def unknown_column_error(name: str, columns: list[str], what: str = "column") -> DataError:
    """A DataError for a column name that is not in the data, listing (some of) the names that are."""
    shown = [str(c) for c in columns[:15]]
    more = f" and {len(columns) - 15} more" if len(columns) > 15 else ""
    by_lower = {str(c).lower(): str(c) for c in columns}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1)
    close = [by_lower[c] for c in close]
    hint = f"did you mean {close[0]!r}? " if close else ""
    return DataError(
        f"{what} {name!r} is not in the data; columns are: {', '.join(shown)}{more}",
        hint=hint + "column names are case-sensitive and must match the CSV header exactly",
    )


# ---------------------------------------------------------------------------------------------------- profile


@dataclass
class DataProfile:
    source: dict[str, Any]
    rows: int
    columns: int
    duplicate_rows: int
    memory_bytes: int
    column_profiles: list[dict[str, Any]]
    constant_columns: list[str] = field(default_factory=list)
    empty_columns: list[str] = field(default_factory=list)
    id_columns: list[str] = field(default_factory=list)
    text_columns: list[str] = field(default_factory=list)
    datetime_columns: list[str] = field(default_factory=list)
    target: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "kind": "tabular", **to_jsonable(self)}


def _column_profile(series: pd.Series, fast: tuple[int, dict[str, Any] | None, int] | pd.Series | None = None):
    # Counted once: classification and the report both need it. A string column's value counts are its top values
    # too, so its distinct count comes from them instead of a second pass over every row. ``fast`` holds what
    # submit_summaries computed on two threads: (distinct, summary, missing) of a number column, or a string
    # column's value counts.
    counts = fast if isinstance(fast, pd.Series) else None
    if counts is None and pd.api.types.is_string_dtype(series.dtype) and not pd.api.types.is_object_dtype(series.dtype):
        counts = series.value_counts(dropna=True)
    summary = fast if isinstance(fast, tuple) else None
    distinct = len(counts) if counts is not None else int(series.nunique()) if summary is None else summary[0]
    missing = summary[2] if summary is not None else _missing(series)
    kind = classify_column(series, distinct, missing)
    out: dict[str, Any] = {
        "name": str(series.name),
        "dtype": str(numpy_dtype(series)),
        "kind": kind.kind,
        "reason": kind.reason,
        "missing": missing,
        "missing_fraction": missing / len(series) if len(series) else 0.0,
        "unique": distinct,
        "numeric": None,
        "top_values": None,
    }
    if kind.kind == "numeric" and summary is not None and pd.api.types.is_numeric_dtype(series.dtype):
        out["numeric"] = summary[1]
    elif kind.kind == "numeric":
        values = to_numbers(series).dropna()
        if len(values):
            q1, median, q3 = values.quantile([0.25, 0.5, 0.75]).tolist()
            low, high = _fences(q1, q3)
            out["numeric"] = {
                "min": float(values.min()),
                "max": float(values.max()),
                "mean": float(values.mean()),
                "std": float(values.std()) if len(values) > 1 else 0.0,  # sample std (ddof=1)
                "q1": q1,
                "median": median,
                "q3": q3,
                "outliers": int(((values < low) | (values > high)).sum()),
            }
    elif kind.kind != "empty":
        if counts is None:
            counts = series.dropna().astype(str).value_counts()
        top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_VALUES]
        out["top_values"] = [{"value": v, "count": int(c)} for v, c in top]
    return out


def _missing(series: pd.Series) -> int:
    if is_arrow_text(series):  # Arrow's own count: a string cannot be NaN
        return int(series.array.__arrow_array__().null_count)
    return int(series.isna().sum())


def _target_section(df: pd.DataFrame, target: str) -> tuple[dict[str, Any], list[str]]:
    series = numpy_numbers(df[[target]])[target]
    labels = label_strings(series)
    counts = labels.value_counts()
    order = {name: i for i, name in enumerate(sorted_labels(labels))}
    classes = {name: int(counts[name]) for name in sorted(counts.index, key=lambda k: (-counts[k], order[k]))}
    missing = int(series.isna().sum())
    ratio = min(classes.values()) / max(classes.values()) if classes else 0.0
    continuous = looks_continuous(series)
    section = {
        "name": target,
        "classes": classes,
        "num_classes": len(classes),
        "minority_majority_ratio": ratio,
        "missing": missing,
        "looks_continuous": continuous,
    }
    warns = []
    if len(classes) <= 1:
        warns.append(f"target {target!r} has {len(classes)} class(es); a classifier needs at least two")
    if continuous:
        warns.append(
            f"target {target!r} looks continuous ({series.nunique()} distinct numbers); mobile-ml trains "
            "classifiers, so bin it into classes first"
        )
    elif len(classes) > 1 and ratio < IMBALANCE_RATIO:
        smallest = next(reversed(classes))
        warns.append(f"classes are imbalanced: {smallest!r} has {ratio:.0%} of the largest class's rows")
    if missing:
        warns.append(f"{missing} row(s) have no target value; data prepare drops them")
    return section, warns


def profile_frame(df: pd.DataFrame, target: str | None = None, source: dict | None = None) -> DataProfile:
    """Describe ``df``; with ``target``, also its classes and whether it can be a classification target."""
    if target is not None and target not in df.columns:
        raise unknown_column_error(target, list(df.columns), "target column")
    from concurrent.futures import ThreadPoolExecutor

    warns: list[str] = []
    section = None
    with ThreadPoolExecutor(max_workers=2) as pool:
        # Two threads sort and count (without the GIL) while this one finds duplicate rows (numpy's hashing) and
        # describes each column as its figures arrive: ~0.1 s less at a million rows than one phase after another.
        pending = submit_summaries(df, pool)
        duplicates = int(duplicate_rows(df).sum())
        if target is not None:
            section, warns = _target_section(df, target)
        described = {c: _column_profile(df[c], f.result()) for c, f in pending.items()}  # string columns first
    columns = [described[c] if c in described else _column_profile(df[c]) for c in df.columns]
    by_kind = lambda k: [c["name"] for c in columns if c["kind"] == k]  # noqa: E731
    if duplicates:
        warns.append(f"{duplicates} row(s) are exact duplicates of an earlier row")
    for c in columns:
        if c["missing_fraction"] > HIGH_MISSING:
            warns.append(f"column {c['name']!r} is {c['missing_fraction']:.0%} missing")
    return DataProfile(
        source=source or {},
        rows=len(df),
        columns=len(df.columns),
        duplicate_rows=duplicates,
        memory_bytes=_memory_bytes(df),
        column_profiles=columns,
        constant_columns=by_kind("constant"),
        empty_columns=by_kind("empty"),
        id_columns=by_kind("id"),
        text_columns=by_kind("text"),
        datetime_columns=by_kind("datetime"),
        target=section,
        warnings=warns,
    )


def _memory_bytes(df: pd.DataFrame) -> int:
    """What the frame pandas.read_csv gives takes, whatever the columns' backing here: 8 bytes a number, and a
    string column's offsets at 8 bytes (pandas' ``str`` is Arrow's ``large_string``) instead of ``string``'s 4."""
    used = int(df.index.memory_usage())
    for c in df.columns:  # Arrow's nbytes walks every chunk: 1 ms a column at 1M rows, so numbers are not asked
        series = df[c]
        if is_arrow_number(series):
            used += len(df) * numpy_dtype(series).itemsize
        else:
            used += int(series.memory_usage(deep=True, index=False))
            used += 4 * len(df) if is_arrow_text(series) else 0  # offsets as Arrow counts them, whatever the chunks
    return used


def profile_csv(path: str | Path, target: str | None = None, ahead: ReadAhead | None = None) -> DataProfile:
    path = Path(path)
    df, sha = read_csv(path, arrow_backed=True, ahead=ahead)
    source = {"type": "csv", "path": str(path.resolve()), "sha256": sha, "bytes": path.stat().st_size}
    return profile_frame(df, target, source)

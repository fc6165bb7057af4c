"""What a column holds, and so how it can become a model input: the classification ``data profile`` reports and
``data prepare`` acts on (``tabular`` decides from it what to drop and how to encode), so the profile shows exactly
the decisions prepare will make. Also the small value helpers both share: numbers and dates from text, IQR fences,
label strings.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mobile_ml.data.column_stats import _fences

KINDS = ("numeric", "categorical", "boolean", "datetime", "text", "id", "constant", "empty")

SAMPLE_SIZE = 1000  # values parsed when testing "numbers stored as text" and "dates"; parsing is the slow part
NUMBER_SHARE = 0.95
DATE_SHARE = 0.90
ID_MIN_ROWS = 20  # below this, "every string distinct" is as likely a small categorical column as an identifier
TEXT_MIN_CHARS = 30
TEXT_MIN_WORDS = 4
TEXT_MIN_DISTINCT = 0.5  # repeated long strings (canned comments) are still usable categories
CONTINUOUS_MIN_DISTINCT = 20
CONTINUOUS_MIN_SHARE = 0.05

_BOOL_PAIRS = [{"true", "false"}, {"yes", "no"}, {"y", "n"}, {"t", "f"}, {"on", "off"}]
_ID_NAME = re.compile(r"(?:^|[^a-z])(?:id|ids|uuid|guid|key|index|idx)(?:$|[^a-z])", re.IGNORECASE)
_CAMEL_ID = re.compile(r"[a-z](?:Id|ID|Key|Uuid|UUID|Index)$")
_DATE_LIKE = re.compile(r"\d{4}|\d{1,2}[/-]\d{1,2}[/-]\d{2}")  # a 4-digit year, or d/m/yy-style


@dataclass(frozen=True)
class ColumnKind:
    kind: str  # one of KINDS
    reason: str  # one short human sentence: why this kind


def _sample(values: pd.Series) -> pd.Series:
    """At most SAMPLE_SIZE values, evenly spaced, so the answer is deterministic and covers the whole file."""
    if len(values) <= SAMPLE_SIZE:
        return values
    return values.iloc[np.linspace(0, len(values) - 1, SAMPLE_SIZE).astype(int)]


def _looks_like_id_name(name: str) -> bool:
    return bool(_ID_NAME.search(name) or _CAMEL_ID.search(name))


def _numeric_kind(values: pd.Series, name: str, note: str, distinct: int | None = None) -> ColumnKind:
    """``values``: non-missing numbers. Integers that are all distinct and named or laid out like a row key → id."""
    distinct = values.nunique() if distinct is None else distinct
    if distinct != len(values) or len(values) <= 1:  # a repeated value: not a row key, whatever the values are
        return ColumnKind("numeric", f"{note}{distinct} distinct values")
    finite = values[np.isfinite(values.to_numpy(dtype=float))]
    integral = len(finite) == len(values) and bool((finite == np.floor(finite)).all())
    if integral:
        if _looks_like_id_name(name):
            return ColumnKind("id", f"all {len(values)} values distinct integers, name looks like an identifier")
        ordered = np.sort(finite.to_numpy(dtype=float))
        if bool((np.diff(ordered) == 1).all()):
            return ColumnKind(
                "id",
                f"all {len(values)} values are consecutive integers ({ordered[0]:.0f}"
                f"–{ordered[-1]:.0f}), like a row number",
            )
    return ColumnKind("numeric", f"{note}{distinct} distinct values")


def classify_column(series: pd.Series, distinct: int | None = None, missing: int | None = None) -> ColumnKind:
    """What a column holds, and so how it can become a model input.

    Rules, first match wins (``n`` = non-missing values):

    * **empty**: every value is missing.
    * **constant**: at most one distinct value.
    * **boolean**: bool dtype, or exactly two distinct values that are true/false, yes/no, y/n, t/f or on/off
      (any case). Encoded like a categorical column.
    * numeric dtype → **id** if the values are integers, all distinct, and either the name looks like an identifier
      (``id``, ``user_id``, ``customerId``, ``uuid``, ``key``, ``index``...) or they are consecutive integers (a
      row number, e.g. a saved index); otherwise **numeric**.
    * text values (a sample of at most 1000 is parsed):
      ≥95% parse as numbers → **numeric** ("numbers stored as text"; the same id rule applies);
      ≥90% parse as dates and contain a year (4 digits, or a d/m/yy triple; so month names, ranges like
      ``10-20`` and times of day alone do not count) → **datetime**;
      mean length > 30 characters or ≥ 4 words, and more than half the values distinct → free **text**;
      every value distinct and n ≥ 20 → **id**;
      otherwise **categorical**.

    ``distinct`` is ``series.nunique()`` and ``missing`` its count of missing values, when the caller has them
    already (counting is the slow part on big columns).
    """
    name = str(series.name) if series.name is not None else ""
    n = len(series) - missing if missing is not None else int(series.count())
    if n == 0:
        return ColumnKind("empty", f"all {len(series)} values are missing")
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return ColumnKind("datetime", "date/time values")
    distinct = series.nunique() if distinct is None else distinct
    if distinct > 4 and distinct < n and pd.api.types.is_numeric_dtype(series.dtype):  # the common case, decided
        return ColumnKind("numeric", f"{distinct} distinct values")  # without copying the column (2 per column)
    values = series.dropna()
    if distinct <= 1:
        return ColumnKind("constant", f"only one distinct value ({_short(values.iloc[0])})")
    if pd.api.types.is_bool_dtype(series.dtype):
        return ColumnKind("boolean", "true/false values")
    if distinct <= 4:  # "Yes"/"yes"/"no" is still two values
        pair = {str(v).strip().lower() for v in values.unique()}
        if pair in _BOOL_PAIRS:
            return ColumnKind("boolean", f"two values: {' / '.join(sorted(pair))}")
    if pd.api.types.is_numeric_dtype(series.dtype):
        return _numeric_kind(values.astype(float), name, "", distinct)
    return _text_kind(values, name, distinct)


def _text_kind(values: pd.Series, name: str, distinct: int) -> ColumnKind:
    """``classify_column``'s rules for text values (``values``: the non-missing ones), from a parsed sample."""
    n = len(values)
    text = _sample(values).astype(str).str.strip()
    numbers = pd.to_numeric(text, errors="coerce")
    share = float(numbers.notna().mean())
    if share >= NUMBER_SHARE:
        converted = pd.to_numeric(values.astype(str).str.strip(), errors="coerce").dropna()
        return _numeric_kind(converted, name, f"numbers stored as text ({share:.0%} parse), ")
    dates_share = float(parse_dates(text).notna().mean())
    if dates_share >= DATE_SHARE:
        return ColumnKind("datetime", f"{dates_share:.0%} of values parse as dates")
    mean_chars = float(text.str.len().mean())
    mean_words = float(text.str.split().str.len().mean())
    if (mean_chars > TEXT_MIN_CHARS or mean_words >= TEXT_MIN_WORDS) and distinct / n > TEXT_MIN_DISTINCT:
        return ColumnKind(
            "text", f"free text: mean {mean_chars:.0f} characters, {mean_words:.1f} words, {distinct} distinct of {n}"
        )
    if distinct == n and n >= ID_MIN_ROWS:
        return ColumnKind(
            "id", f"all {n} values distinct" + (", name looks like an identifier" if _looks_like_id_name(name) else "")
        )
    return ColumnKind("categorical", f"{distinct} distinct values")


def parse_dates(values: pd.Series) -> pd.Series:
    """Strings → UTC timestamps; NaT when unparseable or when there is no year to anchor the value.

    Mixed formats are allowed and offsets are converted to UTC. Without the year rule the parser reads "10-20" as
    20 October of year 1 and "10:30" as today at 10:30, which would make the features depend on the day of the run.
    """
    text = values.astype(str).str.strip()
    anchored = text.str.contains(_DATE_LIKE, na=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "could not infer format" chatter: mixed formats are the point
        try:
            return pd.to_datetime(text.where(anchored), format="mixed", errors="coerce", utc=True)
        except (ValueError, TypeError, OverflowError):
            return pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")


def to_numbers(values: pd.Series) -> pd.Series:
    """Numbers (float) from a numeric or numbers-as-text column; unparseable and infinite values become missing."""
    if not pd.api.types.is_numeric_dtype(values.dtype):
        values = pd.to_numeric(values.astype(str).str.strip(), errors="coerce")  # "nan"/"None" → NaN too
    out = values.astype(float)
    finite = np.isfinite(out.to_numpy())
    return out if finite.all() else out.where(finite)  # no second copy of a column that is already clean


def iqr_fences(values: pd.Series, factor: float = 1.5) -> tuple[float, float]:
    """(low, high): values outside [q1 − factor·IQR, q3 + factor·IQR] are outliers (missing values are ignored)."""
    q1, q3 = values.quantile([0.25, 0.75]).tolist()
    return _fences(q1, q3, factor)


def looks_continuous(series: pd.Series) -> bool:
    """A numeric column with more than 20 distinct values that are more than 5% of its values: a regression target."""
    values = series.dropna()
    if len(values) == 0 or pd.api.types.is_bool_dtype(series.dtype):
        return False
    if (
        not pd.api.types.is_numeric_dtype(series.dtype)
        and pd.to_numeric(_sample(values).astype(str).str.strip(), errors="coerce").notna().mean() < NUMBER_SHARE
    ):
        return False
    distinct = values.nunique()
    return distinct > CONTINUOUS_MIN_DISTINCT and distinct / len(values) > CONTINUOUS_MIN_SHARE


def label_strings(series: pd.Series) -> pd.Series:
    """Target values as label strings; whole floats lose their ``.0`` (a column with blanks reads as float)."""
    values = series.dropna()
    if pd.api.types.is_float_dtype(series.dtype) and bool((np.isfinite(values) & (values == np.floor(values))).all()):
        return values.astype("int64").astype(str)
    return values.astype(str)


def sorted_labels(labels: pd.Series) -> list[str]:
    """Distinct label strings, by numeric value when they are all numbers (so "2" < "10"), else alphabetically."""
    distinct = sorted(set(labels.unique().tolist()))  # hashed first: a million-row tolist() took 0.07 s
    numbers = pd.to_numeric(pd.Series(distinct, dtype=object), errors="coerce")
    if len(distinct) and numbers.notna().all():
        return [d for _, d in sorted(zip(numbers.tolist(), distinct, strict=True))]
    return distinct


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"

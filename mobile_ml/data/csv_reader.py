"""Reading a CSV with pyarrow (multithreaded, typed) into the same DataFrame ``pandas.read_csv`` would give.

pyarrow parses the file on every core, and its string columns become pandas' Arrow-backed ``str`` columns without a
copy, so the frame costs about the file's size instead of pandas' ~3× parsing peak. What must not change is what the
rest of the data stage sees, so the options follow pandas' defaults:

* missing values: pandas' default NA strings (``NA``, ``null``, empty, ...), in quoted fields too;
* booleans: only ``True``/``true``/``TRUE`` and the False spellings (pyarrow would also take ``1``/``0``);
* dates and times stay text (pyarrow would type ``2020-01-01`` as a date): ``parse_dates`` decides, as before;
* a column with no value at all is float64 NaN, as in pandas.

A file pyarrow reads differently from pandas goes through pandas itself (``read_pandas``): rows with a missing or an
extra field, repeated or empty header names (pandas renames them). So quirky files keep their old result exactly, and
only clean files take the fast path.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

# pandas.read_csv's default missing-value strings (pandas/_libs/parsers.pyx STR_NA_VALUES)
NA_VALUES = [
    "",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "-NaN",
    "-nan",
    "1.#IND",
    "1.#QNAN",
    "<NA>",
    "N/A",
    "NA",
    "NULL",
    "NaN",
    "None",
    "n/a",
    "nan",
    "null",
]
TRUE_VALUES = ["True", "TRUE", "true"]
FALSE_VALUES = ["False", "FALSE", "false"]
BLOCK_BYTES = 4 << 20  # bytes parsed per block; bigger blocks start fewer tasks but keep more bytes in flight


class NeedsPandas(Exception):
    """The file is one pyarrow would read differently from pandas; read it with pandas instead."""


def read_arrow(path: Path, columns_as_text: list[str] | None = None) -> pa.Table:
    """The CSV as a pyarrow Table typed like pandas would type it, or NeedsPandas.

    Streamed block by block (``open_csv``): pyarrow's one-shot ``read_csv`` holds the whole file and its parsed form
    at once, about 3× the table. A streaming reader types each column from the first block; a later block that does
    not fit that type (a number column with a word further down) is re-read in one go, which types the whole column.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    convert = pacsv.ConvertOptions(
        null_values=NA_VALUES,
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
        true_values=TRUE_VALUES,
        false_values=FALSE_VALUES,
        column_types={c: pa.string() for c in columns_as_text or []},
    )
    read = pacsv.ReadOptions(block_size=BLOCK_BYTES, encoding="utf8")
    parse = pacsv.ParseOptions(newlines_in_values=True)
    try:
        try:
            with pacsv.open_csv(str(path), read_options=read, parse_options=parse, convert_options=convert) as r:
                table = pa.Table.from_batches(list(r), schema=r.schema)
        except pa.ArrowInvalid:
            table = pacsv.read_csv(str(path), read_options=read, parse_options=parse, convert_options=convert)
    except pa.ArrowInvalid as e:  # short or long rows, an unclosed quote: pandas' own handling and messages
        raise NeedsPandas(str(e)) from e
    names = table.column_names
    if len(set(names)) < len(names) or "" in names:
        raise NeedsPandas("repeated or empty column names")
    temporal = [f.name for f in table.schema if pa.types.is_temporal(f.type)]
    if temporal and not columns_as_text:
        return read_arrow(path, temporal)
    if any(pa.types.is_binary(f.type) for f in table.schema):  # pyarrow's answer to bytes that are not UTF-8
        raise NeedsPandas("not UTF-8")
    for i, f in enumerate(table.schema):
        if pa.types.is_null(f.type):
            table = table.set_column(i, f.name, table.column(i).cast(pa.float64()))
    return table


def to_frame(table: pa.Table) -> pd.DataFrame:
    """``table`` as the DataFrame pandas.read_csv would return, column by column.

    Strings become pandas' Arrow-backed ``str`` over the same buffers; a number column is joined into one numpy
    array and its Arrow chunks are released before the next column, so at most one column exists twice.
    """
    import pandas as pd
    import pyarrow as pa

    text = pd.Series(["a"]).dtype  # pandas' own string dtype: Arrow-backed "str" in pandas 3, object before
    mapping = {} if pd.api.types.is_object_dtype(text) else {pa.string(): text, pa.large_string(): text}
    names = table.column_names
    columns: dict[str, pd.Series] = {}
    for name in names:
        column = table.column(0)
        table = table.remove_column(0)
        columns[name] = column.to_pandas(types_mapper=mapping.get)
        del column
    return pd.DataFrame(columns, copy=False)


class FileHash:
    """The file's sha256, computed in a thread while the parser runs (hashlib releases the GIL on big buffers)."""

    def __init__(self, path: Path) -> None:
        self._digest = hashlib.sha256()
        self._error: OSError | None = None
        self._thread = threading.Thread(target=self._run, args=(path,), daemon=True)
        self._thread.start()

    def _run(self, path: Path) -> None:
        try:
            with path.open("rb") as f:
                while chunk := f.read(8 << 20):
                    self._digest.update(chunk)
        except OSError as e:
            self._error = e

    def hexdigest(self) -> str:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._digest.hexdigest()

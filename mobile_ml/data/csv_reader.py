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

import contextlib
import hashlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from mobile_ml.data.csv_segments import Segment, Segments, Unsegmentable, check_quotes, sentinel

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
# Bytes pyarrow parses per block: a block's parsed form stays in a core's L2 cache (1 MB here). With 4 MB blocks
# in 16 MB segments, reading a million rows took 0.15 s more CPU (0.08 s more wall) than with 1 MB in 8 MB.
BLOCK_BYTES = 1 << 20


class NeedsPandas(Exception):
    """The file is one pyarrow would read differently from pandas; read it with pandas instead."""


def read_arrow(path: Path, columns_as_text: list[str] | None = None) -> pa.Table:
    """The CSV as a pyarrow Table typed like pandas would type it, or NeedsPandas."""
    _prefer_jemalloc(held=False)
    return _read(path, columns_as_text, None)


def read_hashed(path: Path, *, held: bool = False) -> tuple[pa.Table, str]:
    """``read_arrow`` and the file's sha256, hashed from the very bytes the parser reads when it can (a second pass
    over a 400 MB file cost ~0.2 s of a core), else in a thread beside the fallback read. ``held``: the caller keeps
    the table's memory to the end instead of converting it to numpy (``_prefer_jemalloc``)."""
    _prefer_jemalloc(held=held)
    digest = _Digest(path)
    table = _read(path, None, digest)
    return table, digest.hexdigest()


class ReadAhead:
    """``read_hashed(path)`` started in a thread, so that the caller can import pandas meanwhile: that import is
    ~0.15 s of one core, during which the other core would wait. ``result()`` gives what ``read_hashed`` returns,
    or raises what it raised."""

    def __init__(self, path: Path, *, held: bool = False) -> None:
        self.path = path
        self.held = held
        self._result: tuple[pa.Table, str] | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="read-ahead", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._result = read_hashed(self.path, held=self.held)
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread as is
            self._error = e

    def result(self) -> tuple[pa.Table, str]:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        result, self._result = self._result, None  # the table is the caller's now: to_frame consumes it
        return result


def _read(path: Path, columns_as_text: list[str] | None, digest: _Digest | None) -> pa.Table:
    """The file is cut at row boundaries into segments of about ``SEGMENT_BYTES``, parsed on two threads (see
    ``_read_segments``): pyarrow's one-shot ``read_csv`` holds the whole file and its parsed form at once, about 3×
    the table, and its streaming reader parses on one core only. Later segments take the first segment's column
    types; a segment that does not fit them (a number column with a word further down) makes the whole file be
    re-read in one go, which types each column from all of its values.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    options = _options(columns_as_text)
    try:
        try:
            table = _read_segments(path, columns_as_text, digest)
        except Unsegmentable:  # rows parity cannot find, or a compressed file: pyarrow's own lexer, on one core
            _restart(digest)
            table = _read_streaming(path, *options)
        except (pa.ArrowInvalid, _Inconsistent):
            _restart(digest)
            table = pacsv.read_csv(str(path), *options)
        names = table.column_names  # decoded here: a header that is not UTF-8 raises UnicodeDecodeError
    # short or long rows, an unclosed quote, a header that is not UTF-8: pandas' own handling and messages
    except (pa.ArrowInvalid, UnicodeDecodeError) as e:
        raise NeedsPandas(str(e)) from e
    except _Retype as e:  # date columns in the first segment: read them as text from the start, as pandas would
        _restart(digest)
        return _read(path, [*(columns_as_text or []), *e.names], digest)
    if len(set(names)) < len(names) or "" in names:
        raise NeedsPandas("repeated or empty column names")
    text = columns_as_text or []
    temporal = [f.name for f in table.schema if pa.types.is_temporal(f.type) and f.name not in text]
    if temporal:  # dates stay text; after a re-read too, where a fallback can find a column the segments had not
        _restart(digest)
        return _read(path, [*text, *temporal], digest)
    if any(pa.types.is_binary(f.type) for f in table.schema):  # pyarrow's answer to bytes that are not UTF-8
        raise NeedsPandas("not UTF-8")
    for i, f in enumerate(table.schema):
        if pa.types.is_null(f.type):
            table = table.set_column(i, f.name, table.column(i).cast(pa.float64()))
    return table


def _restart(digest: _Digest | None) -> None:
    if digest is not None:
        digest.hash_file()


_RETURN_MS = 100  # freed pages go back to the system after this, for a caller that converts to numpy...
_HELD_MS = 1000  # ...and after this (jemalloc's default) for one that keeps the table's memory to the end
_pool_chosen = False


def _prefer_jemalloc(*, held: bool) -> None:
    """Arrow allocates from jemalloc when the wheel has it: with the default (mimalloc) on this VM, reading a
    million rows spent 1.9 s of system time releasing and faulting memory back in, and converting the number columns
    to numpy 0.8 s; with jemalloc 1.0 s and 0.08 s. A process-wide choice, made once, by the first read.

    How long jemalloc keeps pages it was given back depends on what the caller does next. ``data prepare`` converts
    the table to numpy (another allocator), which cannot reuse them: with jemalloc's 1 s it peaked at ~1,000 MB
    instead of ~880 at 1M rows, so they go back after 100 ms (0, at once, peaked at 690 MB but cost ~0.5 s in page
    faults). ``data profile`` keeps the table (``held``), so the parser's freed buffers are only ever reused by the
    parser: returning them after 100 ms made it fault them back in, 0.1 s more at 1M rows.
    """
    global _pool_chosen
    if _pool_chosen:
        return
    _pool_chosen = True
    import pyarrow as pa

    with contextlib.suppress(NotImplementedError):  # a pyarrow built without jemalloc keeps its default pool
        pa.jemalloc_set_decay_ms(_HELD_MS if held else _RETURN_MS)
        pa.set_memory_pool(pa.jemalloc_memory_pool())


def _options(columns_as_text: list[str] | None, names: list[str] | None = None, types: dict | None = None):
    """pyarrow's options for pandas' defaults; with ``names`` (no header line) and ``types``, for a later segment."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    read = pacsv.ReadOptions(block_size=BLOCK_BYTES, encoding="utf8", column_names=names, use_threads=names is None)
    parse = pacsv.ParseOptions(newlines_in_values=True)
    convert = pacsv.ConvertOptions(
        null_values=NA_VALUES,
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
        true_values=TRUE_VALUES,
        false_values=FALSE_VALUES,
        column_types={**(types or {}), **{c: pa.string() for c in columns_as_text or []}},
    )
    return read, parse, convert


def _read_streaming(path: Path, read, parse, convert) -> pa.Table:
    """pyarrow's streaming reader: one core, but it finds row boundaries with its own lexer, whatever the quoting."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    with pacsv.open_csv(str(path), read_options=read, parse_options=parse, convert_options=convert) as r:
        return pa.Table.from_batches(list(r), schema=r.schema)


_COMPRESSED = (".bz2", ".gz", ".lz4", ".zst")  # what pyarrow's path readers decompress (pandas: all but .lz4)


class _Inconsistent(Exception):
    """Two segments typed a column differently in a way pandas would not merge."""


class _Retype(Exception):
    def __init__(self, names: list[str]) -> None:
        super().__init__(", ".join(names))
        self.names = names


def _read_segments(path: Path, columns_as_text: list[str] | None, digest: _Digest | None) -> pa.Table:
    """Parse the file a segment at a time, two segments at once (pyarrow releases the GIL while parsing).

    The first segment carries the header and is typed by inference; the others are read with its column names and
    types, so every segment yields the same schema. A column with no value in the first segment is typed per
    segment and merged at the end (``_unify``). At most two segments are in flight, which bounds memory to the
    table plus a few segments.
    """
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow as pa

    if str(path).endswith(_COMPRESSED):
        raise Unsegmentable()
    segments = Segments(path, digest)
    pieces = iter(segments)
    first = _parse(next(pieces, Segment(memoryview(b""), 0, False, True, False)), _options(columns_as_text))
    temporal = [f.name for f in first.schema if pa.types.is_temporal(f.type)]
    if temporal and not columns_as_text:
        raise _Retype(temporal)  # before parsing the rest with the wrong types
    segments.sentinel = sentinel(first.num_columns)
    pinned = {f.name: f.type for f in first.schema if not pa.types.is_null(f.type)}
    later = _options(columns_as_text, first.column_names, pinned)
    tables = [first]
    with ThreadPoolExecutor(max_workers=2) as pool:
        pending: deque = deque()
        for segment in pieces:
            if len(pending) == 2:
                tables.append(pending.popleft().result())
            pending.append(pool.submit(_parse, segment, later))
        tables.extend(f.result() for f in pending)
    if digest is not None:
        digest.complete = True
    return _unify(tables)


def _parse(segment: Segment, options) -> pa.Table:
    """One segment's table, once its end is proven to be a row end outside quotes.

    A later segment carries a sentinel row of empty quoted fields after its rows (``_sentinel``). If the lexer was
    outside quotes at the cut, the sentinel is one more row, all missing, and is dropped; if the cut fell inside a
    quoted field (quote parity fooled by a stray quote), the sentinel became part of that field. So pyarrow's own
    lexer checks each cut, at the cost of one row. The first segment, parsed before the column count is known, is
    checked by its quotes' places instead (``_check_quotes``).
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if segment.sentinel is False and (segment.cut or segment.open_quote):
        check_quotes(segment.data[: segment.rows], segment.first)
        if segment.open_quote:  # a quoted field runs to the end of the file: pandas' "EOF inside string"
            raise NeedsPandas("a quoted field is not closed at the end of the file")
    table = pacsv.read_csv(pa.py_buffer(segment.data), *options)
    if segment.sentinel:
        last = table.num_rows - 1
        if last < 0 or any(c.slice(last).null_count != 1 for c in table.columns):
            if segment.cut:
                raise Unsegmentable()
            raise NeedsPandas("a quoted field is not closed at the end of the file")
        table = table.slice(0, last)
    return table


def _unify(tables: list[pa.Table]) -> pa.Table:
    """One table from the segments' tables; a column that was all missing in the first segment takes the type the
    others found (integers and floats together are floats, as pandas makes them)."""
    import pyarrow as pa

    if len(tables) == 1:
        return tables[0]
    schema = tables[0].schema
    for i, f in enumerate(schema):
        if not pa.types.is_null(f.type):
            continue
        types = {t.schema.field(i).type for t in tables} - {pa.null()}
        if types == {pa.int64(), pa.float64()}:
            types = {pa.float64()}
        if len(types) > 1:
            raise _Inconsistent(f.name)
        if types:  # dates found here are re-read as text by _read, as every date column is
            schema = schema.set(i, pa.field(f.name, types.pop()))
    return pa.concat_tables([t.cast(schema) if not t.schema.equals(schema) else t for t in tables])


def to_frame(table: pa.Table, *, arrow_backed: bool = False) -> pd.DataFrame:
    """``table`` as the DataFrame pandas.read_csv would return; ``table`` is consumed.

    Strings become pandas' Arrow-backed ``str`` over the same buffers. ``self_destruct`` releases each column's
    Arrow memory once it is converted, and ``split_blocks`` gives each number column its own array, so a caller that
    drops columns frees them (one 2-D block peaked ~110 MB higher in ``data prepare`` at 1M rows). A column at a time
    took 0.9 s at 1M rows; this 0.2 s.

    ``arrow_backed`` leaves the float, integer and string columns in Arrow as they are (``pd.ArrowDtype``: no copy,
    and strings keep ``string``'s 32-bit offsets where pandas' ``str`` casts to ``large_string``), for ``data
    profile``, which turns each number column into numpy once, in its sorting threads: 0.005 s instead of 0.2 s, and
    320 MB less at 1M rows. The values are the same; ``profile`` reports the dtypes and memory as pandas' (an integer
    column with a gap is float64 there).
    """
    import pandas as pd
    import pyarrow as pa

    text = pd.Series(["a"]).dtype  # pandas' own string dtype: Arrow-backed "str" in pandas 3, object before
    mapping = {} if pd.api.types.is_object_dtype(text) else {pa.string(): text, pa.large_string(): text}
    if arrow_backed:
        mapping |= {t: pd.ArrowDtype(t) for t in (pa.float64(), pa.int64(), pa.string())}
    return table.to_pandas(types_mapper=mapping.get, self_destruct=True, split_blocks=True)


class _Digest:
    """The file's sha256: fed by the segment reader as it reads, or, once a fallback reads the file its own way,
    computed from the file in a thread (``hash_file``)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._sha = hashlib.sha256()
        self._file: FileHash | None = None
        self.complete = False  # every byte of the file went through update()

    def update(self, data: memoryview) -> None:
        self._sha.update(data)

    def hash_file(self) -> None:
        if self._file is None:
            self._file = FileHash(self._path)

    def hexdigest(self) -> str:
        if self.complete and self._file is None:
            return self._sha.hexdigest()
        self.hash_file()
        assert self._file is not None
        return self._file.hexdigest()


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

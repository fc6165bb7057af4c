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
import functools
import hashlib
import threading
from dataclasses import dataclass
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
    """The CSV as a pyarrow Table typed like pandas would type it, or NeedsPandas."""
    return _read(path, columns_as_text, None)


def read_hashed(path: Path) -> tuple[pa.Table, str]:
    """``read_arrow`` and the file's sha256, hashed from the very bytes the parser reads when it can (a second pass
    over a 400 MB file cost ~0.2 s of a core), else in a thread beside the fallback read."""
    digest = _Digest(path)
    table = _read(path, None, digest)
    return table, digest.hexdigest()


def _read(path: Path, columns_as_text: list[str] | None, digest: _Digest | None) -> pa.Table:
    """The file is cut at row boundaries into segments of about ``SEGMENT_BYTES``, parsed on two threads (see
    ``_read_segments``): pyarrow's one-shot ``read_csv`` holds the whole file and its parsed form at once, about 3×
    the table, and its streaming reader parses on one core only. Later segments take the first segment's column
    types; a segment that does not fit them (a number column with a word further down) makes the whole file be
    re-read in one go, which types each column from all of its values.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    _prefer_jemalloc()
    options = _options(columns_as_text)
    try:
        try:
            table = _read_segments(path, columns_as_text, digest)
        except _Unsegmentable:  # quotes that are not where RFC 4180 puts them: pyarrow's own quote-aware chunking
            _restart(digest)
            table = _read_streaming(path, *options)
        except (pa.ArrowInvalid, _Inconsistent):
            _restart(digest)
            table = pacsv.read_csv(str(path), *options)
    except pa.ArrowInvalid as e:  # short or long rows, an unclosed quote: pandas' own handling and messages
        raise NeedsPandas(str(e)) from e
    except _Retype as e:  # a date column whose first values were all missing: read it as text, like the others
        _restart(digest)
        return _read(path, [*(columns_as_text or []), *e.names], digest)
    names = table.column_names
    if len(set(names)) < len(names) or "" in names:
        raise NeedsPandas("repeated or empty column names")
    temporal = [f.name for f in table.schema if pa.types.is_temporal(f.type)]
    if temporal and not columns_as_text:
        _restart(digest)
        return _read(path, temporal, digest)
    if any(pa.types.is_binary(f.type) for f in table.schema):  # pyarrow's answer to bytes that are not UTF-8
        raise NeedsPandas("not UTF-8")
    for i, f in enumerate(table.schema):
        if pa.types.is_null(f.type):
            table = table.set_column(i, f.name, table.column(i).cast(pa.float64()))
    return table


def _restart(digest: _Digest | None) -> None:
    if digest is not None:
        digest.hash_file()


@functools.cache
def _prefer_jemalloc() -> None:
    """Arrow allocates from jemalloc when the wheel has it: with the default (mimalloc) on this VM, reading a
    million rows spent 1.9 s of system time releasing and faulting memory back in, and converting the number columns
    to numpy 0.8 s; with jemalloc 1.0 s and 0.08 s. A process-wide choice, made once by the data stage."""
    import pyarrow as pa

    with contextlib.suppress(NotImplementedError):  # a pyarrow built without jemalloc keeps its default pool
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


class _Unsegmentable(Exception):
    """A quote outside RFC 4180's places (``ab"c``): quote parity no longer says where rows end."""


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
    table plus a few segments. Each worker also checks its segment's quotes (``_check_quotes``), which the cut
    relied on.
    """
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow as pa
    import pyarrow.csv as pacsv

    def parse_one(segment: _Segment, options) -> pa.Table:
        if segment.cut:
            _check_quotes(segment.data, segment.first)
        return pacsv.read_csv(pa.py_buffer(segment.data), *options)

    segments = _segments(path, digest)
    first = parse_one(next(segments, _Segment(memoryview(b""), False, True)), _options(columns_as_text))
    temporal = [f.name for f in first.schema if pa.types.is_temporal(f.type)]
    if temporal and not columns_as_text:
        raise _Retype(temporal)  # before parsing the rest with the wrong types
    pinned = {f.name: f.type for f in first.schema if not pa.types.is_null(f.type)}
    later = _options(columns_as_text, first.column_names, pinned)
    tables = [first]
    with ThreadPoolExecutor(max_workers=2) as pool:
        pending: deque = deque()
        for segment in segments:
            if len(pending) == 2:
                tables.append(pending.popleft().result())
            pending.append(pool.submit(parse_one, segment, later))
        tables.extend(f.result() for f in pending)
    if digest is not None:
        digest.complete = True
    return _unify(tables)


def _unify(tables: list[pa.Table]) -> pa.Table:
    """One table from the segments' tables; a column that was all missing in the first segment takes the type the
    others found (integers and floats together are floats, as pandas makes them)."""
    import pyarrow as pa

    if len(tables) == 1:
        return tables[0]
    schema = tables[0].schema
    retype: list[str] = []
    for i, f in enumerate(schema):
        if not pa.types.is_null(f.type):
            continue
        types = {t.schema.field(i).type for t in tables} - {pa.null()}
        if types == {pa.int64(), pa.float64()}:
            types = {pa.float64()}
        if any(pa.types.is_temporal(t) for t in types):
            retype.append(f.name)
        elif len(types) > 1:
            raise _Inconsistent(f.name)
        elif types:
            schema = schema.set(i, pa.field(f.name, types.pop()))
    if retype:
        raise _Retype(retype)
    return pa.concat_tables([t.cast(schema) if not t.schema.equals(schema) else t for t in tables])


SEGMENT_BYTES = 16 << 20  # bytes per parsing task; two are parsed at once
_SLOTS = 4  # segment buffers in turn: two being parsed, one being filled, one spare
_MAX_CARRY = 4  # segments' worth of bytes without a row boundary before the file goes to pyarrow's own lexer
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class _Segment:
    data: memoryview  # whole rows
    cut: bool  # it ends where ``_cut`` chose, so its quotes must be checked; the file's last piece needs no check
    first: bool  # it starts the file (and may start with a BOM)


def _segments(path: Path, digest: _Digest | None):
    """The file's bytes in pieces that each end at a row boundary: a newline after an even number of quotes.

    Quote parity says where rows end as long as every quote that opens a field stands at the field's start
    (RFC 4180; a doubled quote inside a quoted field keeps the parity). ``_check_quotes`` proves that for each
    piece that was cut; a quote anywhere else (``ab"c``, which pandas and pyarrow read as a plain character) raises
    ``_Unsegmentable``, and the file goes to pyarrow's own lexer.

    Each piece is a view of one of ``_SLOTS`` buffers, read into in turn, so it stays valid while the consumer
    holds at most ``_SLOTS - 2`` earlier pieces (pyarrow copies what it parses). Fresh buffers per piece cost more
    in page faults than the parsing itself on a VM (~1 s per million rows here).
    """
    slots = [bytearray(SEGMENT_BYTES) for _ in range(_SLOTS)]
    turn = 0
    carry = b""
    first = True
    with path.open("rb") as f:
        while True:
            buf = slots[turn]
            if len(buf) < len(carry) + SEGMENT_BYTES:  # a row longer than a segment: this slot grows
                buf = slots[turn] = bytearray(len(carry) + SEGMENT_BYTES)
            buf[: len(carry)] = carry
            view = memoryview(buf)
            n = len(carry) + f.readinto(view[len(carry) : len(carry) + SEGMENT_BYTES])
            if digest is not None:
                digest.update(view[len(carry) : n])
            if n == len(carry):  # end of file
                if carry:
                    yield _Segment(view[:n], False, first)
                return
            cut = _cut(buf, n)
            if cut == 0 and n > _MAX_CARRY * SEGMENT_BYTES:
                # No row ends for megabytes: an odd quote (``12"`` for inches) turned every later newline into
                # "inside a quoted field". The rest of the file in one buffer would be unbounded memory.
                raise _Unsegmentable()
            carry = bytes(view[cut:n])  # what follows the cut: part of a row, or all of it when cut is 0
            if cut:
                yield _Segment(view[:cut], True, first)
                turn = (turn + 1) % _SLOTS
                first = False


_MAX_STEPS = 64  # newlines tried backwards from the end before the positions of every newline are computed


def _cut(buf: bytearray, n: int) -> int:
    """The length of the longest prefix of ``buf[:n]`` that ends after a newline preceded by an even number of
    quotes (0: none). Counting is C speed; the newline inside a quoted field is the rare case."""
    nl = buf.rfind(b"\n", 0, n)
    quotes = buf.count(b'"', 0, nl) if nl >= 0 else 0
    for _ in range(_MAX_STEPS):
        if nl < 0:
            return 0
        if quotes % 2 == 0:
            return nl + 1
        previous = buf.rfind(b"\n", 0, nl)
        quotes -= buf.count(b'"', max(previous, 0), nl)
        nl = previous
    import numpy as np  # a long multi-line quoted field: every newline's parity at once

    data = np.frombuffer(buf, dtype=np.uint8, count=nl + 1)
    at = np.flatnonzero(data == 0x22)
    newlines = np.flatnonzero(data == 0x0A)
    outside = newlines[np.searchsorted(at, newlines) % 2 == 0]
    return int(outside[-1]) + 1 if len(outside) else 0


def _check_quotes(data: memoryview, at_file_start: bool) -> None:
    """``_Unsegmentable`` unless every quote that parity calls an opening one stands at a field's start (after the
    delimiter or a line end) or doubles the quote before it. Then parity is the lexer's own quote state."""
    import numpy as np

    raw = np.frombuffer(data, dtype=np.uint8)
    quotes = np.flatnonzero(raw == 0x22)
    opening = quotes[0::2]
    skip = len(_BOM) if at_file_start and bytes(data[: len(_BOM)]) == _BOM else 0
    before = raw[opening[opening > skip] - 1]
    if not _field_start_table()[before].all():
        raise _Unsegmentable()


@functools.cache
def _field_start_table():
    """Bytes after which a quote opens a field: the delimiter, a line end, or the quote it doubles."""
    import numpy as np

    table = np.zeros(256, dtype=bool)
    table[[ord(","), ord("\n"), ord("\r"), ord('"')]] = True
    return table


def to_frame(table: pa.Table) -> pd.DataFrame:
    """``table`` as the DataFrame pandas.read_csv would return; ``table`` is consumed.

    Strings become pandas' Arrow-backed ``str`` over the same buffers. ``self_destruct`` releases each column's
    Arrow memory once it is converted and ``split_blocks`` gives each number column its own array instead of one
    2-D block, so at most one column exists twice (converting a column at a time took 0.9 s at 1M rows; this 0.15 s).
    """
    import pandas as pd
    import pyarrow as pa

    text = pd.Series(["a"]).dtype  # pandas' own string dtype: Arrow-backed "str" in pandas 3, object before
    mapping = {} if pd.api.types.is_object_dtype(text) else {pa.string(): text, pa.large_string(): text}
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

"""A CSV file's bytes in pieces that end at row boundaries, for parsing on several threads (``csv_reader``).

Quote parity says where rows end: a newline after an even number of quotes is outside every quoted field, as long as
each quote that opens a field stands at the field's start (RFC 4180; a doubled quote inside a quoted field keeps the
parity). A stray quote (``ab"c``, an inch mark ``12"``) breaks that, so every cut is proven before its rows are used:
by pyarrow's own lexer through a sentinel row (``sentinel``), or, for the first piece, by the places of its quotes
(``check_quotes``). Only bytes here: no parsing.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mobile_ml.data.csv_reader import _Digest


class Unsegmentable(Exception):
    """Quote parity cannot say where rows end (a stray quote: ``ab"c``), or the file is compressed: its bytes are
    not rows at all."""


SEGMENT_BYTES = 8 << 20  # bytes per parsing task; two are parsed at once (see csv_reader.BLOCK_BYTES)
SLOTS = 4  # segment buffers in turn: two being parsed, one being filled, one spare
MAX_CARRY = 4  # segments' worth of bytes without a row boundary before the file goes to pyarrow's own lexer
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Segment:
    data: memoryview  # what pyarrow parses: whole rows of the file, then the sentinel row when ``sentinel``
    rows: int  # bytes of ``data`` that are the file's
    cut: bool  # it ends where ``last_row_end`` chose (not at the end of the file)
    first: bool  # it starts the file (and may start with a BOM)
    sentinel: bool
    open_quote: bool = False  # the file's last piece, without a sentinel, has an odd number of quotes


class Segments:
    """The file's bytes in pieces that each end at a row boundary: a newline after an even number of quotes.

    Quote parity says where rows end as long as every quote that opens a field stands at the field's start
    (RFC 4180; a doubled quote inside a quoted field keeps the parity). ``csv_reader`` proves each cut. A stray quote
    (``12"`` for inches) makes every later newline look quoted: after ``MAX_CARRY`` segments' worth of bytes
    without a row end the file goes to pyarrow's own lexer, rather than into one buffer without bound.

    Each piece is a view of one of ``SLOTS`` buffers, read into in turn, so it stays valid while the consumer
    holds at most ``SLOTS - 2`` earlier pieces (pyarrow copies what it parses). Fresh buffers per piece cost more
    in page faults than the parsing itself on a VM (~1 s per million rows here). Once the consumer sets
    ``sentinel``, every later piece carries it after its rows (written into the slot, not copied).
    """

    def __init__(self, path: Path, digest: _Digest | None = None) -> None:
        self.path = path
        self.digest = digest
        self.sentinel: bytes | None = None

    def __iter__(self):
        slots = [bytearray(SEGMENT_BYTES) for _ in range(SLOTS)]
        turn = 0
        carry = b""
        first = True
        with self.path.open("rb") as f:
            while True:
                room = len(carry) + SEGMENT_BYTES + len(self.sentinel or b"") + 1
                if len(slots[turn]) < room:  # a row longer than a segment, or the sentinel: this slot grows
                    slots[turn] = bytearray(room)
                buf = slots[turn]
                buf[: len(carry)] = carry
                view = memoryview(buf)
                n = len(carry) + f.readinto(view[len(carry) : len(carry) + SEGMENT_BYTES])
                if self.digest is not None:
                    self.digest.update(view[len(carry) : n])
                if n == len(carry):  # end of file
                    if carry:
                        yield self._piece(buf, n, cut=False, first=first)
                    return
                cut = last_row_end(buf, n)
                if cut == 0 and n > MAX_CARRY * SEGMENT_BYTES and buf.find(b"\n", 0, n) >= 0:
                    raise Unsegmentable()  # lines, but parity calls them all quoted: a stray quote, most likely
                carry = bytes(view[cut:n])  # what follows the cut: part of a row, or all of it when cut is 0
                if cut:
                    yield self._piece(buf, cut, cut=True, first=first)
                    turn = (turn + 1) % SLOTS
                    first = False

    def _piece(self, buf: bytearray, end: int, *, cut: bool, first: bool) -> Segment:
        if self.sentinel is None:
            odd = not cut and buf.count(b'"', 0, end) % 2 == 1
            return Segment(memoryview(buf)[:end], end, cut, first, False, open_quote=odd)
        rows = end
        if buf[end - 1 : end] != b"\n":  # the file's last row has no line end: give it one before the sentinel
            buf[end : end + 1] = b"\n"
            end += 1
        buf[end : end + len(self.sentinel)] = self.sentinel
        return Segment(memoryview(buf)[: end + len(self.sentinel)], rows, cut, first, True)


_MAX_STEPS = 64  # newlines tried backwards from the end before the positions of every newline are computed


def last_row_end(buf: bytearray, n: int) -> int:
    """The length of the longest prefix of ``buf[:n]`` that ends after a newline preceded by an even number of
    quotes (0: none). Counting is C speed; the newline inside a quoted field is the rare case."""
    nl = buf.rfind(b"\n", 0, n)
    quotes = _count_quotes(buf, nl) if nl >= 0 else 0
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


_NUMPY_COUNT_BYTES = 1 << 20  # from here numpy counts: 0.06 s per 400 MB against bytes.count's 0.15 s (with the GIL)


def _count_quotes(buf: bytearray, end: int) -> int:
    if end < _NUMPY_COUNT_BYTES:
        return buf.count(b'"', 0, end)
    import numpy as np

    data = np.frombuffer(buf, dtype=np.uint8, count=end)
    return int(np.count_nonzero(data == 0x22))


def check_quotes(data: memoryview, at_file_start: bool) -> None:
    """``Unsegmentable`` unless every quote that parity calls an opening one stands at a field's start (after the
    delimiter or a line end) or doubles the quote before it: then parity is the lexer's own quote state, and a cut
    where it is even is a row end."""
    import numpy as np

    raw = np.frombuffer(data, dtype=np.uint8)
    quotes = np.flatnonzero(raw == 0x22)
    opening = quotes[0::2]
    skip = len(_BOM) if at_file_start and bytes(data[: len(_BOM)]) == _BOM else 0
    before = raw[opening[opening > skip] - 1]
    if not _field_start_table()[before].all():
        raise Unsegmentable()


@functools.cache
def _field_start_table():
    """Bytes after which a quote opens a field: the delimiter, a line end, or the quote it doubles."""
    import numpy as np

    table = np.zeros(256, dtype=bool)
    table[[ord(","), ord("\n"), ord("\r"), ord('"')]] = True
    return table


def sentinel(columns: int) -> bytes:
    return b",".join([b'""'] * columns) + b"\n"

"""``Range`` and validator headers, exactly as RFC 9110 section 14 defines them, for one representation.

Only the ``bytes`` unit and a single range are served as 206. Several ranges would need a multipart body that no
client of the update protocol asks for; RFC 9110 allows a server to ignore Range, so they get the whole file (200).
Numbers are ASCII digits only: ``int()`` would also take ``1_0``, ``+5``, `` 7`` and other scripts' digits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SPEC = re.compile(r"(?P<first>[0-9]+)-(?P<last>[0-9]*)|-(?P<suffix>[0-9]+)")
_BIG = 10**18  # larger than any file; stands in for longer numbers, which RFC 9110 allows


@dataclass(frozen=True)
class Unsatisfiable:
    """No range of the request overlaps the content: 416 with ``Content-Range: bytes */<size>``."""


UNSATISFIABLE = Unsatisfiable()


def _number(digits: str) -> int:
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) < 19 else _BIG


def parse_range(header: str, size: int) -> tuple[int, int] | Unsatisfiable | None:
    """``(first, last)`` inclusive, UNSATISFIABLE, or None: ignore the header and send the whole content (200)."""
    unit, eq, range_set = header.partition("=")
    if not eq or unit.lower() != "bytes":
        return None  # a unit we do not know, or no range-set: RFC 9110 14.2 says ignore it
    # 1#range-spec: recipients accept empty list elements and OWS around the commas (RFC 9110 5.6.1.2).
    specs = [s.strip(" \t") for s in range_set.split(",")]
    specs = [s for s in specs if s]
    if len(specs) != 1:
        return None  # none at all is invalid; several are allowed to be ignored
    m = _SPEC.fullmatch(specs[0])
    if m is None:
        return None  # an invalid ranges-specifier may be ignored
    if m["suffix"] is not None:
        n = _number(m["suffix"])
        if n == 0:
            return UNSATISFIABLE
        if size == 0:
            # Satisfiable by RFC 9110 14.1.1, yet no Content-Range can describe zero bytes: send the (empty) whole.
            return None
        return max(0, size - n), size - 1
    first = _number(m["first"])
    last = _number(m["last"]) if m["last"] else None
    if last is not None and last < first:
        return None  # an invalid int-range
    if first >= size:
        return UNSATISFIABLE
    return first, size - 1 if last is None else min(last, size - 1)


def etag_matches(header: str, etag: str) -> bool:
    """``If-None-Match``: weak comparison, ``*`` matches any current representation."""
    tags = [t.strip(" \t") for t in header.split(",")]
    return "*" in tags or etag in tags or f"W/{etag}" in tags

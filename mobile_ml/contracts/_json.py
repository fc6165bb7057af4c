"""Strict JSON: the one way this package turns bytes into a versioned document.

``json.loads`` accepts duplicate keys (last wins), ``NaN``/``Infinity``, integers of any length and ``1e400`` (which
becomes ``inf``), and dies with ``RecursionError`` on deep nesting. A document that two readers could understand
differently, or that costs unbounded time to parse, is refused here instead.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_INT_DIGITS = 19  # fits a signed 64-bit integer, which is what the Kotlin updater and SQLite hold
MAX_DEPTH = 32  # our documents nest at most a handful of levels


class StrictJSONError(ValueError):
    """The bytes are not a JSON document we accept; the message says why in one line."""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise StrictJSONError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise StrictJSONError(f"integer with {len(text.lstrip('-'))} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise StrictJSONError(f"number {text[:40]} is out of range")
    return value


def _constant(name: str) -> float:
    raise StrictJSONError(f"{name} is not JSON")


def _depth(value: Any, limit: int) -> int:
    # Iterative, so a hostile document cannot exhaust the Python stack here either.
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _check_nesting(text: str, max_depth: int) -> None:
    """Refuse deep nesting before the decoder runs: it recurses once per bracket."""
    opened = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            opened += 1
            if opened > max_depth:
                raise StrictJSONError(f"nested deeper than {max_depth} levels")
        elif ch in "]}":
            opened -= 1


def loads(data: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse one JSON document strictly; every refusal is a ``StrictJSONError`` with a one-line reason."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise StrictJSONError(f"not UTF-8 (byte {e.start})") from e
    else:
        text = data
    _check_nesting(text, max_depth)
    try:
        value = json.loads(text, object_pairs_hook=_pairs, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except StrictJSONError:
        raise
    except json.JSONDecodeError as e:
        raise StrictJSONError(f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from e
    except (RecursionError, ValueError) as e:
        raise StrictJSONError(f"not valid JSON: {e}") from e
    if _depth(value, max_depth) > max_depth:
        raise StrictJSONError(f"nested deeper than {max_depth} levels")
    _check_strings(value)
    return value


def _check_strings(value: Any) -> None:
    """Lone surrogates (``"\\ud800"``) decode in Python but cannot be encoded back to UTF-8 or stored."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as e:
                raise StrictJSONError("string with an unpaired surrogate") from e
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)

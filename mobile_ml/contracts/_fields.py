"""Typed field access for ``from_dict``: every read names its field, checks its type and range, and fails as one
``ContractError`` that says where ("export.json: variants[2].size_bytes: expected an integer, got 'big'").

``bool`` is never an ``int`` here, a float is never silently truncated, and unknown keys are refused where a
contract is closed (``Fields.done()``), so a typo in a hand-edited file or a field another version added is seen.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from mobile_ml.errors import InputFileError

E = TypeVar("E", bound=enum.Enum)
T = TypeVar("T")


class ContractError(InputFileError):
    """A versioned document does not follow its contract. ``field`` is the dotted path of the offending value."""

    def __init__(self, message: str, *, field: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.field = field


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"[:60]
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class Fields:
    """A view of one JSON object being read into a dataclass."""

    def __init__(self, raw: Any, where: str, *, hint: str | None = None) -> None:
        self.where = where
        self.hint = hint
        if not isinstance(raw, dict):
            raise self.error("", f"expected an object, got {_kind(raw)}")
        self.raw: dict[str, Any] = raw
        self._seen: set[str] = set()

    # -- errors --------------------------------------------------------------------------------------------------
    def error(self, key: str, problem: str) -> ContractError:
        path = f"{self.where}.{key}" if key and self.where else (key or self.where)
        return ContractError(f"{path}: {problem}", field=path, hint=self.hint)

    def _get(self, key: str, optional: bool) -> Any:
        self._seen.add(key)
        if key not in self.raw:
            if optional:
                return None
            raise self.error(key, "missing")
        return self.raw[key]

    # -- scalars -------------------------------------------------------------------------------------------------
    def string(self, key: str, *, pattern: str | None = None, max_len: int = 4096, default: str | None = None) -> str:
        value = self._get(key, default is not None)
        if value is None and default is not None:
            return default
        if not isinstance(value, str):
            raise self.error(key, f"expected a string, got {_kind(value)}")
        if len(value) > max_len:
            raise self.error(key, f"longer than {max_len} characters")
        if pattern is not None and not re.fullmatch(pattern, value):
            raise self.error(key, f"{value[:60]!r} does not match {pattern}")
        return value

    def opt_string(self, key: str, *, pattern: str | None = None, max_len: int = 4096) -> str | None:
        if self.raw.get(key) is None:
            self._seen.add(key)
            return None
        return self.string(key, pattern=pattern, max_len=max_len)

    def integer(self, key: str, *, lo: int | None = None, hi: int | None = None, default: int | None = None) -> int:
        value = self._get(key, default is not None)
        if value is None and default is not None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"expected an integer, got {_kind(value)}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise self.error(key, f"{value} is outside [{lo}, {hi}]")
        return value

    def opt_integer(self, key: str, *, lo: int | None = None, hi: int | None = None) -> int | None:
        if self.raw.get(key) is None:
            self._seen.add(key)
            return None
        return self.integer(key, lo=lo, hi=hi)

    def number(
        self, key: str, *, lo: float | None = None, hi: float | None = None, default: float | None = None
    ) -> float:
        value = self._get(key, default is not None)
        if value is None and default is not None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.error(key, f"expected a finite number, got {_kind(value)}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise self.error(key, f"{value} is outside [{lo}, {hi}]")
        return float(value)

    def opt_number(self, key: str, *, lo: float | None = None, hi: float | None = None) -> float | None:
        """A number or null (our writers store NaN as null)."""
        if self.raw.get(key) is None:
            self._seen.add(key)
            return None
        return self.number(key, lo=lo, hi=hi)

    def boolean(self, key: str, *, default: bool | None = None) -> bool:
        value = self._get(key, default is not None)
        if value is None and default is not None:
            return default
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {_kind(value)}")
        return value

    def choice(self, key: str, cls: type[E], *, default: E | None = None) -> E:
        value = self._get(key, default is not None)
        if value is None and default is not None:
            return default
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(str(m.value) for m in cls)
            raise self.error(key, f"{_kind(value)} is not one of: {allowed}") from None

    # -- containers ----------------------------------------------------------------------------------------------
    def obj(self, key: str, *, optional: bool = False) -> Fields:
        value = self._get(key, optional)
        return Fields({} if value is None else value, f"{self.where}.{key}" if self.where else key, hint=self.hint)

    def opt_obj(self, key: str) -> Fields | None:
        if self.raw.get(key) is None:
            self._seen.add(key)
            return None
        return self.obj(key)

    def array(self, key: str, *, max_len: int = 100_000, optional: bool = False) -> list[Any]:
        value = self._get(key, optional)
        if value is None and optional:
            return []
        if not isinstance(value, list):
            raise self.error(key, f"expected a list, got {_kind(value)}")
        if len(value) > max_len:
            raise self.error(key, f"more than {max_len} items")
        return value

    def objs(self, key: str, *, max_len: int = 100_000, optional: bool = False) -> Iterator[Fields]:
        """Each item of a list of objects, as ``Fields`` named ``key[i]``."""
        for i, item in enumerate(self.array(key, max_len=max_len, optional=optional)):
            yield Fields(item, f"{self.where}.{key}[{i}]" if self.where else f"{key}[{i}]", hint=self.hint)

    def items(
        self, key: str, read: Callable[[Any, str], T], *, max_len: int = 100_000, optional: bool = False
    ) -> tuple[T, ...]:
        """Each item of a list, read by ``read(value, where)``."""
        base = f"{self.where}.{key}" if self.where else key
        return tuple(read(v, f"{base}[{i}]") for i, v in enumerate(self.array(key, max_len=max_len, optional=optional)))

    def strings(self, key: str, *, max_len: int = 100_000, optional: bool = False) -> tuple[str, ...]:
        values = self.array(key, max_len=max_len, optional=optional)
        for i, v in enumerate(values):
            if not isinstance(v, str):
                raise self.error(f"{key}[{i}]", f"expected a string, got {_kind(v)}")
        return tuple(values)

    def mapping(self, key: str, *, optional: bool = False) -> dict[str, Any]:
        """A free-form object kept as a dict: only for parts of a document that are data, not contract."""
        value = self._get(key, optional)
        if value is None and optional:
            return {}
        if not isinstance(value, dict):
            raise self.error(key, f"expected an object, got {_kind(value)}")
        return value

    def value(self, key: str, *, optional: bool = False) -> Any:
        return self._get(key, optional)

    def done(self) -> None:
        """Refuse keys the contract does not name (call last, for closed contracts)."""
        unknown = sorted(set(self.raw) - self._seen)
        if unknown:
            raise self.error(unknown[0], "unknown field")

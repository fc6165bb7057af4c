"""Typed configuration from TOML, strict enough to name the offending key.

Each section maps onto a frozen dataclass whose fields are the allowed keys. Unknown keys, wrong types and invalid
values are ``ConfigError``s that say which file and which key (``[data.clean] missing``), with a suggestion for typos.
"""

from __future__ import annotations

import dataclasses
import difflib
import sys
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, Union

from mobile_ml.errors import ConfigError, InputFileError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

T = TypeVar("T")


MAX_DEPTH = 16  # tables and arrays inside each other; every real config is under 5 deep


def read_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise InputFileError(
            f"config file {path} does not exist" if not path.exists() else f"{path} is not a file",
            hint="check the path to the TOML file",
        )
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML: {e}", hint="fix the syntax at the line and column shown") from e
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise ConfigError(f"{path}: values are nested too deeply to read", hint=_DEPTH_HINT) from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputFileError(f"cannot read config file {path}: {e}", hint="check the file") from e
    _check_depth(data, path)
    return data


_DEPTH_HINT = f"a config nests tables and lists at most {MAX_DEPTH} deep; see README.md"


def _check_depth(data: Any, path: Path) -> None:
    """Refuse deep nesting before anything walks it recursively (iterative, so it cannot overflow itself)."""
    stack = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ConfigError(f"{path}: values are nested more than {MAX_DEPTH} deep", hint=_DEPTH_HINT)
        if isinstance(value, dict):
            stack += [(v, depth + 1) for v in value.values()]
        elif isinstance(value, list):
            stack += [(v, depth + 1) for v in value]


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_type_name(args[0])}"
        return f"a list of {len(args)} {_type_name(args[0])}"
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    return {int: "a whole number", float: "a number", str: "a string", bool: "true or false"}.get(tp, str(tp))


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _coerce(value: Any, tp: Any, where: str, origin_file: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it converted (lists → tuples, ints → floats)."""
    bad = ConfigError(
        f"{origin_file}: {where} must be {_type_name(tp)}, got {_short(value)}",
        hint="see the config format in README.md",
    )
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{origin_file}: {where} must be a table ([{where}])", hint="see README.md")
        return build(tp, value, where, origin_file)
    if origin in (Union, types.UnionType):
        return _coerce_union(value, tp, where, origin_file, bad)
    if origin is tuple:
        return _coerce_tuple(value, tp, where, origin_file, bad)
    if not _scalar_ok(value, tp):
        raise bad
    return float(value) if tp is float else value


def _scalar_ok(value: Any, tp: Any) -> bool:
    if tp is bool or tp is str:
        return isinstance(value, tp)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return True


def _coerce_union(value: Any, tp: Any, where: str, origin_file: str, bad: ConfigError) -> Any:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if value is None:
        return None
    if len(args) == 1:  # Optional[X]: X's own message, which names the inner key (e.g. an unknown one)
        return _coerce(value, args[0], where, origin_file)
    for a in args:
        try:
            return _coerce(value, a, where, origin_file)
        except ConfigError:
            pass
    raise bad


def _coerce_tuple(value: Any, tp: Any, where: str, origin_file: str, bad: ConfigError) -> tuple:
    args = typing.get_args(tp)
    if not isinstance(value, list):
        raise bad
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_coerce(v, args[0], f"{where}[{i}]", origin_file) for i, v in enumerate(value))
    if len(value) != len(args):
        raise bad
    return tuple(_coerce(v, a, f"{where}[{i}]", origin_file) for i, (v, a) in enumerate(zip(value, args, strict=True)))


def build(cls: type[T], mapping: dict[str, Any], where: str = "", origin_file: str = "config") -> T:
    """Instantiate dataclass ``cls`` from ``mapping``; every key and value checked, errors name ``where.key``."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    kwargs = {}
    for key, value in mapping.items():
        full = f"{where}.{key}" if where else key
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"allowed keys: {', '.join(fields)}"
            raise ConfigError(f"{origin_file}: unknown key '{full}'", hint=hint)
        kwargs[key] = _coerce(value, hints[key], full, origin_file)
    try:
        return cls(**kwargs)
    except ConfigError as e:
        section = f"[{where}] " if where else ""
        raise ConfigError(f"{origin_file}: {section}{e.message}", hint=e.hint) from e
    except TypeError as e:  # a required key is missing
        missing = [
            n
            for n, f in fields.items()
            if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            key = f"{where}.{missing[0]}" if where else missing[0]
            raise ConfigError(f"{origin_file}: required key '{key}' is missing", hint="see README.md") from e
        raise

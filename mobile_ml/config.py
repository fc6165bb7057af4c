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


def read_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise InputFileError(
            f"config file {path} does not exist" if not path.exists() else f"{path} is not a file",
            hint="check the path to the TOML file",
        )
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML: {e}", hint="fix the syntax at the line and column shown") from e
    except (OSError, UnicodeDecodeError) as e:
        raise InputFileError(f"cannot read config file {path}: {e}", hint="check the file") from e


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


def _coerce(value: Any, tp: Any, where: str, origin_file: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it converted (lists → tuples, ints → floats)."""
    bad = ConfigError(
        f"{origin_file}: {where} must be {_type_name(tp)}, got {value!r}", hint="see the config format in README.md"
    )
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{origin_file}: {where} must be a table ([{where}])", hint="see README.md")
        return build(tp, value, where, origin_file)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        for a in args:
            try:
                return _coerce(value, a, where, origin_file)
            except ConfigError:
                pass
        raise bad
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list):
            raise bad
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{where}[{i}]", origin_file) for i, v in enumerate(value))
        if len(value) != len(args):
            raise bad
        return tuple(_coerce(v, a, f"{where}[{i}]", origin_file) for i, (v, a) in enumerate(zip(value, args)))
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad
        return value
    return value


def build(cls: type[T], mapping: dict[str, Any], where: str = "", origin_file: str = "config") -> T:
    """Instantiate dataclass ``cls`` from ``mapping``; every key and value checked, errors name ``where.key``."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
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

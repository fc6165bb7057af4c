"""The contracts between stages: every versioned JSON file this toolchain writes or reads.

Each document is a frozen dataclass with ``SCHEMA``, ``SCHEMA_VERSION``, ``from_dict`` and ``to_dict``; reading and
writing go through ``read_document`` / ``write_document`` / ``parse_document`` here, the only place that checks a
schema name and version. No other module indexes a document's raw dict.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

from mobile_ml.contracts._fields import ContractError, Fields
from mobile_ml.contracts._json import StrictJSONError, loads

__all__ = [
    "ContractError",
    "Document",
    "Fields",
    "StrictJSONError",
    "document_dict",
    "loads",
    "parse_document",
    "read_document",
    "write_document",
]


class Document(Protocol):
    SCHEMA: ClassVar[str]
    SCHEMA_VERSION: ClassVar[int]
    WHAT: ClassVar[str]  # "a mobile-ml run description", for messages
    REDO: ClassVar[str]  # the command that writes this file again, for hints

    @classmethod
    def from_dict(cls, f: Fields) -> Any: ...

    def to_dict(self) -> dict[str, Any]: ...


D = TypeVar("D", bound=Document)


def parse_document(cls: type[D], data: bytes | str | dict[str, Any] | list[Any] | None, *, where: str) -> D:
    """Bytes (strict JSON) or an already-parsed object → ``cls``, checking schema name and version first."""
    hint = f"re-run `{cls.REDO}`"
    if not isinstance(data, (bytes, str)):
        raw: Any = data  # already parsed (by a reader that needed the raw value first)
    else:
        try:
            raw = loads(data)
        except StrictJSONError as e:
            raise ContractError(f"{where} is not valid JSON: {e}", field="", hint=hint) from e
    if not isinstance(raw, dict) or raw.get("schema") != cls.SCHEMA:
        raise ContractError(f"{where} is not {cls.WHAT}", hint=hint)
    version = raw.get("schema_version")
    if version != cls.SCHEMA_VERSION or isinstance(version, bool):
        raise ContractError(
            f"{where} has schema_version {version!r}; this mobile-ml reads version {cls.SCHEMA_VERSION}",
            hint=f"re-run `{cls.REDO}` with this version of mobile-ml",
        )
    f = Fields(raw, where, hint=hint)
    f.string("schema")
    f.integer("schema_version")
    return cls.from_dict(f)


def read_document(cls: type[D], path: str | os.PathLike[str]) -> D:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ContractError(f"cannot read {path}: {e.strerror}", hint=f"re-run `{cls.REDO}`") from e
    return parse_document(cls, data, where=str(path))


def document_dict(doc: Document) -> dict[str, Any]:
    """``doc`` as the JSON object we write: schema and version first."""
    return {"schema": doc.SCHEMA, "schema_version": doc.SCHEMA_VERSION, **doc.to_dict()}


def write_document(path: str | os.PathLike[str], doc: Document) -> None:
    from mobile_ml.outputs import write_json  # outputs imports errors only; kept local to keep this module light

    write_json(path, document_dict(doc))

"""The strict JSON reader and typed field access that every versioned document goes through."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from mobile_ml.contracts import ContractError, Fields, StrictJSONError, loads, parse_document


@pytest.mark.parametrize(
    "text, reason",
    [
        ('{"a": 1, "a": 2}', "duplicate key"),
        ("[" * 60000, "nested deeper"),
        ('{"a":' * 40 + "1" + "}" * 40, "nested deeper"),
        ("1e400", "out of range"),
        ("-1e400", "out of range"),
        ("9" * 5000, "digits"),
        ("NaN", "not JSON"),
        ("Infinity", "not JSON"),
        ('"\\ud800"', "surrogate"),
        ('{"\\udfff": 1}', "surrogate"),
        (b"\xff\xfe", "not UTF-8"),
        ("{", "not valid JSON"),
        ('{"a": 1} x', "not valid JSON"),
    ],
)
def test_strict_json_refuses(text, reason):
    with pytest.raises(StrictJSONError, match=reason):
        loads(text)


def test_strict_json_accepts_ordinary_documents():
    assert loads('{"a": [1, {"b": "x]\\"["}], "c": -9223372036854775807, "d": 1.5e10}') == {
        "a": [1, {"b": 'x]"['}],
        "c": -9223372036854775807,
        "d": 1.5e10,
    }
    assert loads("[" * 32 + "]" * 32) is not None


class Colour(str, enum.Enum):
    RED = "red"


def test_fields_name_the_path_and_refuse_lookalike_types():
    f = Fields({"n": True, "s": 5, "x": 1.5, "c": "blue", "o": {"k": "v"}, "l": [{"a": 1}, {"a": "2"}]}, "doc.json")
    for call, message in [
        (lambda: f.integer("n"), "doc.json.n: expected an integer, got a boolean"),
        (lambda: f.string("s"), "doc.json.s: expected a string"),
        (lambda: f.integer("x"), "expected an integer"),
        (lambda: f.choice("c", Colour), "is not one of: red"),
        (lambda: f.string("missing"), "doc.json.missing: missing"),
        (lambda: [g.integer("a") for g in f.objs("l")], r"doc.json.l\[1\].a: expected an integer"),
        (lambda: f.obj("o").boolean("k"), "doc.json.o.k: expected true or false"),
    ]:
        with pytest.raises(ContractError, match=message):
            call()


def test_fields_ranges_defaults_and_unknown_keys():
    f = Fields({"p": 101, "q": 0.5, "extra": 1}, "m")
    with pytest.raises(ContractError, match=r"outside \[0, 100\]"):
        f.integer("p", lo=0, hi=100)
    assert f.number("q", lo=0, hi=1) == 0.5
    assert f.integer("absent", default=7) == 7
    assert f.opt_string("absent") is None
    with pytest.raises(ContractError, match="m.extra: unknown field"):
        f.done()


@dataclass(frozen=True)
class _Doc:
    SCHEMA: ClassVar[str] = "mobile_ml.test"
    SCHEMA_VERSION: ClassVar[int] = 2
    WHAT: ClassVar[str] = "a test document"
    REDO: ClassVar[str] = "make test"
    n: int

    @classmethod
    def from_dict(cls, f: Fields) -> _Doc:
        doc = cls(n=f.integer("n"))
        f.done()
        return doc

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n}


def test_parse_document_checks_schema_and_version_once():
    assert parse_document(_Doc, b'{"schema": "mobile_ml.test", "schema_version": 2, "n": 3}', where="d").n == 3
    with pytest.raises(ContractError, match="is not a test document"):
        parse_document(_Doc, b'{"schema": "other", "schema_version": 2, "n": 3}', where="d")
    with pytest.raises(ContractError, match="schema_version 1; this mobile-ml reads version 2"):
        parse_document(_Doc, b'{"schema": "mobile_ml.test", "schema_version": 1, "n": 3}', where="d")
    with pytest.raises(ContractError, match="schema_version True"):
        parse_document(_Doc, {"schema": "mobile_ml.test", "schema_version": True, "n": 3}, where="d")
    with pytest.raises(ContractError, match="d is not valid JSON: duplicate key"):
        parse_document(_Doc, b'{"schema": "mobile_ml.test", "schema_version": 2, "n": 3, "n": 4}', where="d")


@pytest.mark.parametrize("parsed", [None, [], ["schema"], 5, True])
def test_an_already_parsed_value_that_is_not_an_object_is_refused(parsed):
    """A reader that parsed the bytes itself (to look at them first) hands over whatever the JSON held."""
    with pytest.raises(ContractError, match="is not a test document"):
        parse_document(_Doc, parsed, where="d")

"""The JSON schema subset: argument errors name the path, and schemas come from type hints."""

from __future__ import annotations

import threading
from typing import Any, Literal

import pytest

from actoros.kernel.schema import SchemaError, derive_schema, schema_errors

pytestmark = pytest.mark.timeout(10)

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "count": {"type": "integer"},
        "ratio": {"type": "number"},
        "flag": {"type": "boolean"},
        "mode": {"type": "string", "enum": ["fast", "slow"]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "maybe": {"type": ["string", "null"]},
    },
    "required": ["name"],
    "additionalProperties": False,
}


def test_valid_arguments_have_no_errors() -> None:
    args = {
        "name": "x",
        "count": 3,
        "ratio": 2,  # an integer is a number
        "flag": False,
        "mode": "fast",
        "tags": ["a", "b"],
        "maybe": None,
    }
    assert schema_errors(SCHEMA, args) == []
    assert schema_errors(SCHEMA, {"name": "x", "count": 3.0}) == []  # 3.0 is an integer in JSON


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({}, "arguments: missing required property 'name'"),
        ({"name": 1}, "arguments.name: expected string, got integer"),
        ({"name": "x", "count": True}, "arguments.count: expected integer, got boolean"),
        ({"name": "x", "count": 1.5}, "arguments.count: expected integer, got number"),
        ({"name": "x", "ratio": "1"}, "arguments.ratio: expected number, got string"),
        ({"name": "x", "flag": 1}, "arguments.flag: expected boolean, got integer"),
        ({"name": "x", "mode": "medium"}, "arguments.mode: 'medium' is not one of 'fast', 'slow'"),
        ({"name": "x", "tags": ["a", 2]}, "arguments.tags[1]: expected string, got integer"),
        ({"name": "x", "maybe": 2}, "arguments.maybe: expected string or null, got integer"),
        ({"name": "x", "colour": "red"}, "arguments: unexpected property 'colour'"),
        ([1], "arguments: expected object, got array"),
    ],
)
def test_schema_errors_name_the_path_and_the_problem(arguments: Any, error: str) -> None:
    assert schema_errors(SCHEMA, arguments) == [error]


def test_every_problem_is_reported() -> None:
    errors = schema_errors(SCHEMA, {"count": "x", "extra": 1})
    assert len(errors) == 3


def test_schema_from_type_hints() -> None:
    def lookup(order_id: int, carrier: Literal["ups", "dhl"] = "ups", note: str | None = None):
        """Look an order up."""

    schema = derive_schema(lookup)
    assert schema == {
        "type": "object",
        "properties": {
            "order_id": {"type": "integer"},
            "carrier": {"enum": ["ups", "dhl"], "type": "string", "default": "ups"},
            "note": {"type": ["string", "null"], "default": None},
        },
        "required": ["order_id"],
        "additionalProperties": False,
    }


def test_unsupported_hints_are_a_clear_error() -> None:
    def odd(when: threading.Event) -> None: ...

    with pytest.raises(SchemaError, match="parameter .when.: unsupported type"):
        derive_schema(odd)

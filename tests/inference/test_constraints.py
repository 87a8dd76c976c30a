"""constraints.py: outputs built to meet a constraint, checked by a real JSON Schema validator
(jsonschema) and by ``re.fullmatch``; what cannot be generated is an error, never a bad output."""

from __future__ import annotations

import json
import random
import re
from typing import Any

import jsonschema
import pytest

from actoros.inference.constraints import Unsatisfiable, check, describe, satisfy
from actoros.inference.messages import Choice, JsonObject, JsonSchema, Regex

pytestmark = pytest.mark.timeout(30)

TOOL_CALL: dict[str, Any] = {
    "oneOf": [
        {
            "type": "object",
            "properties": {
                "tool": {"const": "kv_get"},
                "args": {
                    "type": "object",
                    "properties": {"key": {"type": "string", "pattern": "^order:[0-9]{4}$"}},
                    "required": ["key"],
                    "additionalProperties": False,
                },
            },
            "required": ["tool", "args"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {
                "tool": {"const": "calculator"},
                "args": {
                    "type": "object",
                    "properties": {"expression": {"type": "string", "maxLength": 40}},
                    "required": ["expression"],
                },
            },
            "required": ["tool", "args"],
        },
        {
            "type": "object",
            "properties": {"final": {"type": "string", "minLength": 1}},
            "required": ["final"],
            "additionalProperties": False,
        },
    ]
}

SCHEMAS: list[dict[str, Any]] = [
    TOOL_CALL,
    {"type": "object", "properties": {"n": {"type": "integer", "minimum": 3, "maximum": 5}}},
    {
        "type": "object",
        "properties": {
            "when": {"type": "string", "format": "date-time"},
            "id": {"type": "string", "format": "uuid"},
            "mail": {"type": "string", "format": "email"},
            "score": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            "even": {"type": "integer", "multipleOf": 2, "minimum": 7, "maximum": 13},
            "tags": {
                "type": "array",
                "items": {"enum": ["a", "b", "c", "d"]},
                "minItems": 2,
                "maxItems": 3,
                "uniqueItems": True,
            },
            "pair": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "boolean"}]},
            "maybe": {"type": ["string", "null"]},
            "code": {"type": "string", "minLength": 30, "maxLength": 32},
        },
        "required": ["when", "id", "mail", "score", "even", "tags", "pair", "maybe", "code"],
    },
    {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                },
                "required": ["name"],
            }
        },
        "$ref": "#/$defs/node",
    },
    {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
            {"properties": {"b": {"type": "boolean"}}, "required": ["b"]},
        ]
    },
    {"type": "object", "required": ["x"], "additionalProperties": {"type": "integer"}},
    {"type": "array", "items": {"type": "number"}, "minItems": 4},
    {"anyOf": [{"type": "string", "enum": ["left", "right"]}, {"type": "integer"}]},
]


@pytest.mark.parametrize("schema", SCHEMAS, ids=range(len(SCHEMAS)))
def test_json_schema_outputs_validate_against_their_schema(schema: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    for seed in range(40):
        text = satisfy(JsonSchema(schema), random.Random(seed))
        validator.validate(json.loads(text))


def test_every_branch_of_a_tagged_union_is_reached() -> None:
    seen = set()
    for seed in range(60):
        value = json.loads(satisfy(JsonSchema(TOOL_CALL), random.Random(seed)))
        seen.add(value.get("tool", "final"))
    assert seen == {"kv_get", "calculator", "final"}


def test_outputs_are_deterministic_from_the_random_source() -> None:
    first = [satisfy(JsonSchema(s), random.Random(7)) for s in SCHEMAS]
    assert first == [satisfy(JsonSchema(s), random.Random(7)) for s in SCHEMAS]


def test_json_object_is_one_object() -> None:
    assert isinstance(json.loads(satisfy(JsonObject(), random.Random(1))), dict)


def test_choice_is_one_of_its_options() -> None:
    options = ("yes", "no", "maybe")
    outs = {satisfy(Choice(options), random.Random(seed)) for seed in range(30)}
    assert outs == set(options)


@pytest.mark.parametrize(
    "pattern",
    [
        r"order:\d{4}",
        r"^(yes|no)$",
        r"[A-Z][a-z]{2,5}( [A-Z][a-z]+)*",
        r"(?:ab|cd)+x?",
        r"[^0-9 ]{3}",
        r"(\w+)-\1",
        r"\d+\.\d{2}",
        r"[a-c]*?z",
        r"(?i)hello",
    ],
)
def test_regex_outputs_fully_match(pattern: str) -> None:
    for seed in range(25):
        assert re.fullmatch(pattern, satisfy(Regex(pattern), random.Random(seed)))


@pytest.mark.parametrize(
    ("constraint", "problem"),
    [
        (Regex(r"(?=a)b"), "cannot generate"),
        (Regex(r"a\bb"), "cannot generate"),
        (Regex(r"(unclosed"), "does not compile"),
        (Choice(()), "at least one option"),
        (JsonSchema({"not": {"type": "string"}}), "`not`"),
        (JsonSchema({"$ref": "https://example.com/schema"}), "local \\$ref"),
        (JsonSchema({"$ref": "#/$defs/missing"}), "points at nothing"),
        (JsonSchema({"type": "integer", "minimum": 5, "maximum": 4}), "no value"),
        (JsonSchema({"enum": []}), "empty `enum`"),
        (JsonSchema({"type": "object", "required": ["a"], "additionalProperties": False}), "'a'"),
        (JsonSchema({"type": "teapot"}), "unknown JSON Schema type"),
        (JsonSchema({"type": "string", "pattern": "[0-9]{5}", "maxLength": 3}), "length"),
        # what an attacker might send: too much to write is refused, not written
        (JsonSchema({"type": "array", "minItems": 10**9}), "more than"),
        (JsonSchema({"type": "string", "minLength": 10**9}), "more than"),
        (JsonSchema({"type": "object", "minProperties": 10**9}), "more than"),
        (Regex(r"((a{1000}){1000}){1000}"), "too long"),
        (JsonSchema({"type": "string", "minLength": "ten"}), "malformed"),
        (JsonSchema({"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}), "nesting"),
    ],
)
def test_what_cannot_be_generated_is_an_error_naming_the_problem(
    constraint: Any, problem: str
) -> None:
    with pytest.raises(Unsatisfiable, match=problem):
        satisfy(constraint, random.Random(0))


def test_check_refuses_what_no_engine_could_honour() -> None:
    check(JsonSchema({"type": "object"}))
    check(Regex("a+"))
    with pytest.raises(Unsatisfiable, match="does not compile"):
        check(Regex("a{2,1}"))
    with pytest.raises(Unsatisfiable, match="at least one option"):
        check(Choice(()))


def test_describe_names_each_kind() -> None:
    kinds = [JsonSchema({}), JsonObject(), Regex("a"), Choice(("a",))]
    assert [describe(c) for c in kinds] == ["json_schema", "json_object", "regex", "choice"]

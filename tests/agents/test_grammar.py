"""The reply grammar: one branch per permitted action, each parsing to exactly that step."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from actoros.agents.grammar import StepGrammar, required_only, step_schema
from actoros.agents.protocol import Delegate, FinalAnswer, ToolCall, parse_step
from actoros.inference.messages import JsonSchema
from actoros.kernel.access import Permissions
from actoros.kernel.tools import ToolRegistry

pytestmark = pytest.mark.timeout(20)

TOOLS = {s["name"]: s["parameters"] for s in ToolRegistry.with_builtins(kv=object()).schemas()}  # type: ignore[arg-type]


def valid(schema: dict[str, Any], value: Any) -> bool:
    return jsonschema.Draft202012Validator(schema).is_valid(value)


def test_each_branch_is_one_protocol_step_and_parses_to_it() -> None:
    schema = step_schema({"kv_get": TOOLS["kv_get"], "calculator": TOOLS["calculator"]}, ["faq"])
    jsonschema.Draft202012Validator.check_schema(schema)
    cases = [
        ({"tool": "kv_get", "arguments": {"key": "order:1042"}}, ToolCall),
        ({"tool": "calculator", "arguments": {"expression": "2 * 3"}}, ToolCall),
        ({"agent": "faq", "message": "When are you open?"}, Delegate),
        ({"answer": "It shipped."}, FinalAnswer),
    ]
    for value, kind in cases:
        assert valid(schema, value), value
        assert isinstance(parse_step(json.dumps(value)), kind)
    assert parse_step(json.dumps(cases[0][0])) == ToolCall("kv_get", {"key": "order:1042"})


def test_the_schema_refuses_what_the_agent_may_not_do_or_the_tool_would_refuse() -> None:
    schema = step_schema({"kv_get": TOOLS["kv_get"]}, ["faq"])
    refused = [
        {"tool": "kv_put", "arguments": {"key": "k", "value": 1}},  # not one of its tools
        {"tool": "kv_get", "arguments": {}},  # the tool's required key missing
        {"tool": "kv_get", "arguments": {"key": 1042}},  # the tool's argument type
        {"tool": "kv_get", "arguments": {"key": "k", "evil": True}},  # the tool's closed schema
        {"agent": "orders", "message": "hi"},  # not an agent it may ask
        {"answer": "ok", "tool": "kv_get"},  # two steps in one
        {"answer": 3},
        ["answer"],
    ]
    for value in refused:
        assert not valid(schema, value), value


def test_an_agent_with_nothing_to_ask_has_no_agent_branch() -> None:
    schema = step_schema({}, [])
    assert schema == {
        "anyOf": [
            {
                "type": "object",
                "properties": {"answer": {"type": "string"}},
                "required": ["answer"],
                "additionalProperties": False,
            }
        ]
    }


def test_equal_inputs_give_byte_identical_schemas_whatever_their_order() -> None:
    one = step_schema({"kv_get": TOOLS["kv_get"], "calculator": TOOLS["calculator"]}, ["b", "a"])
    two = step_schema({"calculator": TOOLS["calculator"], "kv_get": TOOLS["kv_get"]}, ["a", "b"])
    assert json.dumps(one) == json.dumps(two)


@pytest.mark.timeout(180)  # importing xgrammar imports transformers
def test_the_schema_compiles_to_a_grammar_as_the_engine_does() -> None:
    xgrammar = pytest.importorskip("xgrammar")
    schema = step_schema(TOOLS, ["faq", "orders"])
    grammar = xgrammar.Grammar.from_json_schema(json.dumps(schema))
    assert "root" in str(grammar)


def perms(tools: set[str], agents: set[str] = frozenset()) -> Permissions:  # type: ignore[assignment]
    return Permissions(tools=frozenset(tools), agents=frozenset(agents), inference=True)


def branches(constraint: JsonSchema | None) -> list[str]:
    assert constraint is not None
    names = []
    for branch in constraint.schema["anyOf"]:
        props = branch["properties"]
        if "tool" in props:
            names.append(props["tool"]["const"])
        elif "agent" in props:
            names.extend(f"@{a}" for a in props["agent"]["enum"])
        else:
            names.append("answer")
    return names


def test_the_grammar_is_built_once_while_the_permissions_hold() -> None:
    grammar = StepGrammar({"kv_get": TOOLS["kv_get"], "calculator": None}, ["faq"])
    first = grammar.constraint(perms({"kv_get", "calculator"}, {"faq"}))
    again = grammar.constraint(perms({"kv_get", "calculator"}, {"faq"}))
    assert again is first and grammar.builds == 1
    assert branches(first) == ["calculator", "kv_get", "@faq", "answer"]
    # a tool without a known argument schema takes any object
    assert first is not None and first.schema["anyOf"][0]["properties"]["arguments"] == {
        "type": "object"
    }


def test_a_permission_taken_away_takes_its_branch_away() -> None:
    grammar = StepGrammar({"kv_get": TOOLS["kv_get"], "kv_put": TOOLS["kv_put"]}, ["faq"])
    assert branches(grammar.constraint(perms({"kv_*"}, {"*"}))) == [
        "kv_get",
        "kv_put",
        "@faq",
        "answer",
    ]
    assert branches(grammar.constraint(perms({"kv_get"}))) == ["kv_get", "answer"]
    assert grammar.builds == 2
    # a tool granted that the agent does not list is never offered
    assert branches(grammar.constraint(perms({"kv_get", "calculator"}))) == ["kv_get", "answer"]


def test_an_agent_that_can_only_answer_gets_no_grammar() -> None:
    grammar = StepGrammar({"kv_get": TOOLS["kv_get"]}, ["faq"])
    assert grammar.constraint(perms(set())) is None
    assert grammar.constraint(None) is None  # no permissions at all
    assert StepGrammar({}).constraint(perms({"*"}, {"*"})) is None


def test_without_the_answer_the_step_must_act_but_an_empty_choice_still_answers() -> None:
    schema = step_schema({"kv_get": TOOLS["kv_get"]}, ["faq"], answer=False)
    assert valid(schema, {"tool": "kv_get", "arguments": {"key": "k"}})
    assert valid(schema, {"agent": "faq", "message": "hi"})
    assert not valid(schema, {"answer": "done"})
    assert step_schema({}, [], answer=False) == step_schema({}, [])  # nothing else to do


def test_required_only_closes_a_tool_schema_over_its_required_arguments() -> None:
    trimmed = required_only(TOOLS["kv_get"])
    assert valid(trimmed, {"key": "order:1042"})
    assert not valid(trimmed, {"key": "order:1042", "namespace": "order:1042"})
    assert required_only(TOOLS["clock"])["properties"] == {}  # all optional: no arguments
    assert required_only({"type": "object"}) == {"type": "object"}  # unknown: any object
    assert TOOLS["kv_get"]["properties"].keys() == {"key", "namespace"}  # not modified


def test_step_grammar_builds_each_kind_once_per_permission_set() -> None:
    grammar = StepGrammar({"kv_get": TOOLS["kv_get"]}, optional_arguments=False)
    perms = Permissions(tools=frozenset({"kv_get"}), inference=True)
    act = grammar.constraint(perms, answer=False)
    full = grammar.constraint(perms)
    assert act is grammar.constraint(perms, answer=False) and full is grammar.constraint(perms)
    assert grammar.builds == 2
    assert act is not None and full is not None
    kv_branch = act.schema["anyOf"][0]["properties"]["arguments"]
    assert kv_branch["properties"].keys() == {"key"}
    assert [next(iter(b["properties"])) for b in full.schema["anyOf"]] == ["tool", "answer"]
    assert [next(iter(b["properties"])) for b in act.schema["anyOf"]] == ["tool"]

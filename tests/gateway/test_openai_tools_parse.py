"""``openai/tools.py`` alone: the plan a request's tool fields make (which constraint, which
400), and how a model's output reads back as tool calls (SmolLM2's ``<tool_call>`` form, a
bare JSON call, and text that is no call)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from actoros.gateway.errors import APIError
from actoros.gateway.openai.tools import (
    NamedToolChoice,
    ResponseFormat,
    ToolParam,
    ToolPlan,
    may_start_call,
    plan,
    read_output,
)
from actoros.inference.messages import ChatMessage, JsonObject, JsonSchema, ToolCall, ToolSpec
from actoros.inference.tool_prompt import plain_messages

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TIME = {"type": "function", "function": {"name": "get_time"}}


def tools(*raw: dict[str, Any]) -> list[ToolParam]:
    return msgspec.convert(list(raw), list[ToolParam])


def choice(raw: Any) -> Any:
    return raw if isinstance(raw, str) or raw is None else msgspec.convert(raw, NamedToolChoice)


def fmt(raw: dict[str, Any] | None) -> ResponseFormat | None:
    return None if raw is None else msgspec.convert(raw, ResponseFormat)


def test_required_is_an_array_of_calls_one_branch_per_tool() -> None:
    p = plan(tools(WEATHER, TIME), "required", None, None)
    assert p.mode == "required"
    assert isinstance(p.constraint, JsonSchema)
    schema = p.constraint.schema
    assert schema["type"] == "array" and schema["minItems"] == 1 and "maxItems" not in schema
    names = [b["properties"]["name"]["enum"] for b in schema["items"]["anyOf"]]
    assert names == [["get_weather"], ["get_time"]]
    one = plan(tools(WEATHER), "required", False, None)
    assert isinstance(one.constraint, JsonSchema) and one.constraint.schema["maxItems"] == 1


def test_a_named_function_constrains_to_its_arguments() -> None:
    p = plan(
        tools(WEATHER, TIME),
        choice({"type": "function", "function": {"name": "get_weather"}}),
        None,
        None,
    )
    assert p.mode == "named" and p.named == "get_weather"
    assert p.constraint == JsonSchema(WEATHER["function"]["parameters"])  # type: ignore[index]


def test_auto_and_none_leave_the_output_free_and_json_modes_constrain_it() -> None:
    assert plan(tools(WEATHER), None, None, None).mode == "auto"  # tools given: auto
    assert plan(None, None, None, None) == ToolPlan()
    assert plan(tools(WEATHER), "none", None, None).mode == "text"
    assert plan(None, None, None, fmt({"type": "json_object"})).constraint == JsonObject()
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    js = fmt(
        {"type": "json_schema", "json_schema": {"name": "A", "schema": schema, "strict": True}}
    )
    assert plan(None, None, None, js).constraint == JsonSchema(schema)


@pytest.mark.parametrize(
    ("args", "param", "says"),
    [
        (
            (
                tools(WEATHER),
                choice({"type": "function", "function": {"name": "nope"}}),
                None,
                None,
            ),
            "tool_choice",
            "does not declare",
        ),
        ((None, "required", None, None), "tool_choice", "needs 'tools'"),
        ((tools(WEATHER), "sometimes", None, None), "tool_choice", "invalid tool_choice"),
        (
            (tools({"type": "function", "function": {"name": "bad name!"}}), None, None, None),
            "tools[0].function.name",
            "invalid function name",
        ),
        ((tools(TIME, TIME), None, None, None), "tools[1].function.name", "declared twice"),
        (
            (
                tools(
                    {
                        "type": "function",
                        "function": {
                            "name": "f",
                            "parameters": {
                                "type": "object",
                                "properties": {"a": {"type": "wizard"}},
                            },
                        },
                    }
                ),
                None,
                None,
                None,
            ),
            "tools[0].function.parameters",
            "invalid JSON schema",
        ),
        (
            (
                tools(
                    {
                        "type": "function",
                        "function": {"name": "f", "parameters": {"type": "string"}},
                    }
                ),
                None,
                None,
                None,
            ),
            "tools[0].function.parameters",
            "type 'object'",
        ),
        (
            (
                None,
                None,
                None,
                fmt({"type": "json_schema", "json_schema": {"name": "A", "schema": {"type": 3}}}),
            ),
            "response_format.json_schema.schema",
            "invalid JSON schema",
        ),
        (
            (None, None, None, fmt({"type": "json_schema"})),
            "response_format.json_schema",
            "needs 'json_schema'",
        ),
        (
            (tools(WEATHER), "required", None, fmt({"type": "json_object"})),
            "response_format",
            "cannot be combined",
        ),
    ],
    ids=[
        "unknown-named",
        "required-no-tools",
        "bad-choice",
        "bad-name",
        "twice",
        "bad-schema",
        "not-object",
        "bad-format-schema",
        "format-no-schema",
        "format-and-required",
    ],
)
def test_bad_tool_fields_are_400s_naming_the_field(
    args: tuple[Any, ...], param: str, says: str
) -> None:
    with pytest.raises(APIError) as caught:
        plan(*args)
    assert caught.value.status == 400
    assert caught.value.param == param
    assert says in caught.value.message


AUTO = plan(tools(WEATHER, TIME), "auto", None, None)


def test_smollm2_tool_call_blocks_read_as_calls() -> None:
    text = '<tool_call>[{"name": "get_weather", "arguments": {"city": "Paris"}}]</tool_call>'
    content, calls = read_output(text, AUTO)
    assert content is None
    [call] = calls
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    assert call.id.startswith("call_")
    two = 'Let me look.\n<tool_call>{"name": "get_time", "arguments": {}}</tool_call>'
    content, calls = read_output(two, AUTO)
    assert content == "Let me look." and [c.name for c in calls] == ["get_time"]


def test_bare_json_calls_read_as_calls_with_arguments_or_parameters() -> None:
    _, calls = read_output('{"name": "get_weather", "parameters": {"city": "Rome"}}', AUTO)
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {"city": "Rome"})]
    text = (
        '[{"name": "get_time", "arguments": "{}"}, '
        '{"name": "get_weather", "arguments": {"city": "Oslo"}}]'
    )
    assert [c.name for c in read_output(text, AUTO)[1]] == ["get_time", "get_weather"]


@pytest.mark.parametrize(
    "text",
    [
        "The weather is fine.",
        '{"name": "launch_rockets", "arguments": {}}',  # not a declared tool
        '<tool_call>[{"name": "get_weather", "arguments": {"city": ',  # cut short
        '{"city": "Paris"}',  # JSON, but no call
    ],
)
def test_text_that_is_no_well_formed_call_stays_content(text: str) -> None:
    assert read_output(text, AUTO) == (text, [])


def test_named_and_required_outputs_read_back() -> None:
    named = plan(
        tools(WEATHER),
        choice({"type": "function", "function": {"name": "get_weather"}}),
        None,
        None,
    )
    [call] = read_output('{"city": "Lima"}', named)[1]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Lima"}
    required = plan(tools(WEATHER, TIME), "required", None, None)
    text = '[{"name": "get_time", "arguments": {}}]'
    assert [c.name for c in read_output(text, required)[1]] == ["get_time"]
    none = plan(tools(WEATHER), "none", None, None)
    assert read_output(text, none) == (text, [])


def test_a_stream_holds_back_only_what_may_start_a_call() -> None:
    for head in ("", "  ", "{", "[", "<tool", "<tool_call>[{"):
        assert may_start_call(head), head
    for head in ("Hello", "The", "<b>"):
        assert not may_start_call(head), head


def test_tools_join_the_system_prompt_and_calls_are_written_back() -> None:
    messages = (
        ChatMessage("system", "be brief"),
        ChatMessage("user", "weather in Paris?"),
        ChatMessage(
            "assistant", "", tool_calls=(ToolCall("call_1", "get_weather", '{"city":"Paris"}'),)
        ),
        ChatMessage("tool", "sunny", tool_call_id="call_1", name="get_weather"),
    )
    spec = ToolSpec("get_weather", "The weather", {"type": "object", "properties": {}})
    out = plain_messages(messages, (spec,))
    assert out[0]["role"] == "system" and out[0]["content"].startswith("be brief\n\n")
    assert '"name":"get_weather"' in out[0]["content"] and "<tools>" in out[0]["content"]
    assert (
        out[2]["content"]
        == '<tool_call>[{"name":"get_weather","arguments":{"city":"Paris"}}]</tool_call>'
    )
    assert out[3] == {"role": "tool", "content": "sunny"}

"""Tools and JSON mode through the gateway, with the official ``openai`` client, on the fake
engine (which honours constraints: its output is valid for the schema it is given):
``tool_choice`` required / named / auto / none, ``parallel_tool_calls``, streamed
``delta.tool_calls``, ``response_format`` json_object / json_schema, a conversation with tool
results, and the 400s for bad tool input (no actor restarts)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest

from .conftest import RunningGateway, start_gateway
from .test_openai_errors import body, still_serving

pytestmark = pytest.mark.timeout(60)

USER = [{"role": "user", "content": "What is the weather in Paris, and the time?"}]
WEATHER_PARAMS = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TIME_PARAMS = {
    "type": "object",
    "properties": {"zone": {"type": "integer", "minimum": -12, "maximum": 14}},
    "required": ["zone"],
}
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather",
            "parameters": WEATHER_PARAMS,
        },
    },
    {
        "type": "function",
        "function": {"name": "get_time", "description": "The time", "parameters": TIME_PARAMS},
    },
]
PARAMS = {"get_weather": WEATHER_PARAMS, "get_time": TIME_PARAMS}


def valid_call(call: Any) -> None:
    assert call.type == "function"
    assert call.id.startswith("call_")
    jsonschema.validate(json.loads(call.function.arguments), PARAMS[call.function.name])


async def test_required_tool_choice_answers_with_valid_tool_calls(gateway: RunningGateway) -> None:
    client = gateway.client()
    completion = await client.chat.completions.create(
        model="fake", messages=USER, tools=TOOLS, tool_choice="required", max_tokens=200
    )
    [choice] = completion.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert calls
    for call in calls:
        valid_call(call)
    assert len({c.id for c in calls}) == len(calls)


async def test_a_named_tool_choice_calls_that_function(gateway: RunningGateway) -> None:
    client = gateway.client()
    for name in ("get_weather", "get_time"):
        completion = await client.chat.completions.create(
            model="fake",
            messages=USER,
            tools=TOOLS,
            tool_choice={"type": "function", "function": {"name": name}},
            max_tokens=200,
        )
        [choice] = completion.choices
        assert choice.finish_reason == "tool_calls"
        [call] = choice.message.tool_calls or []
        assert call.function.name == name
        valid_call(call)


async def test_parallel_tool_calls_false_makes_one_call(gateway: RunningGateway) -> None:
    client = gateway.client()
    for seed in range(4):
        completion = await client.chat.completions.create(
            model="fake",
            messages=USER,
            tools=TOOLS,
            tool_choice="required",
            parallel_tool_calls=False,
            seed=seed,
            max_tokens=200,
        )
        assert len(completion.choices[0].message.tool_calls or []) == 1


async def test_tool_calls_stream_as_delta_tool_calls(gateway: RunningGateway) -> None:
    client = gateway.client()
    stream = await client.chat.completions.create(
        model="fake",
        messages=USER,
        tools=TOOLS,
        tool_choice="required",
        stream=True,
        stream_options={"include_usage": True},
        max_tokens=200,
    )
    calls: dict[int, dict[str, Any]] = {}
    finish = None
    usage = None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            for piece in choice.delta.tool_calls or []:
                if piece.index not in calls:  # the first piece names the call
                    assert piece.id and piece.type == "function" and piece.function
                    assert piece.function.name
                    calls[piece.index] = {"id": piece.id, "name": piece.function.name, "args": ""}
                else:
                    assert piece.id is None
                assert piece.function is not None
                calls[piece.index]["args"] += piece.function.arguments or ""
            if choice.finish_reason:
                finish = choice.finish_reason
    assert finish == "tool_calls"
    assert calls and sorted(calls) == list(range(len(calls)))
    for call in calls.values():
        jsonschema.validate(json.loads(call["args"]), PARAMS[call["name"]])
    assert usage is not None and usage.completion_tokens > 0


async def test_auto_and_none_answer_in_text_when_the_model_writes_text(
    gateway: RunningGateway,
) -> None:
    """The fake engine writes prose unconstrained: no call is invented from it."""
    client = gateway.client()
    for tool_choice in ("auto", "none"):
        completion = await client.chat.completions.create(
            model="fake", messages=USER, tools=TOOLS, tool_choice=tool_choice, max_tokens=8
        )
        [choice] = completion.choices
        assert choice.message.tool_calls is None
        assert choice.message.content
        assert choice.finish_reason in ("stop", "length")
    stream = await client.chat.completions.create(
        model="fake", messages=USER, tools=TOOLS, stream=True, max_tokens=8
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text.strip()


async def test_a_conversation_with_tool_results_continues(gateway: RunningGateway) -> None:
    client = gateway.client()
    first = await client.chat.completions.create(
        model="fake", messages=USER, tools=TOOLS, tool_choice="required", max_tokens=200
    )
    message = first.choices[0].message
    calls = message.tool_calls or []
    history: list[Any] = [
        *USER,
        message.model_dump(exclude_none=True),
        *[{"role": "tool", "tool_call_id": c.id, "content": "sunny, 21 C"} for c in calls],
    ]
    second = await client.chat.completions.create(
        model="fake", messages=history, tools=TOOLS, max_tokens=8
    )
    assert second.choices[0].message.content
    # the tool results are in the prompt: it is longer than the first one's
    assert first.usage is not None and second.usage is not None
    assert second.usage.prompt_tokens > first.usage.prompt_tokens


async def test_json_object_mode_answers_a_json_object(gateway: RunningGateway) -> None:
    client = gateway.client()
    completion = await client.chat.completions.create(
        model="fake", messages=USER, response_format={"type": "json_object"}, max_tokens=200
    )
    assert isinstance(json.loads(completion.choices[0].message.content or ""), dict)


async def test_json_schema_mode_answers_a_valid_document(gateway: RunningGateway) -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer", "minimum": 0, "maximum": 150},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["name", "age", "tags"],
        "additionalProperties": False,
    }
    client = gateway.client()
    for stream in (False, True):
        fields: dict[str, Any] = {
            "model": "fake",
            "messages": USER,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "person", "schema": schema, "strict": True},
            },
            "max_tokens": 300,
        }
        if stream:
            chunks = await client.chat.completions.create(**fields, stream=True)
            text = "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
        else:
            text = (await client.chat.completions.create(**fields)).choices[0].message.content
        jsonschema.validate(json.loads(text or ""), schema)


TOOL_ERRORS = [
    (
        {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "launch"}}},
        "tool_choice",
        "does not declare",
    ),
    (
        {"tools": [{"type": "function", "function": {"name": "no spaces", "parameters": {}}}]},
        "tools[0].function.name",
        "invalid function name",
    ),
    (
        {
            "tools": [
                {
                    "type": "function",
                    "function": {"name": "f", "parameters": {"type": "object", "required": "x"}},
                }
            ]
        },
        "tools[0].function.parameters",
        "invalid JSON schema",
    ),
    (
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": "nope"}},
            }
        },
        "response_format.json_schema.schema",
        "invalid JSON schema",
    ),
    ({"tool_choice": "required"}, "tool_choice", "needs 'tools'"),
    (
        {"messages": [*USER, {"role": "tool", "tool_call_id": "call_x", "content": "42"}]},
        "messages[1].tool_call_id",
        "no earlier assistant message made",
    ),
    (
        {"messages": [*USER, {"role": "tool", "content": "42"}]},
        "messages[1].tool_call_id",
        "needs 'tool_call_id'",
    ),
    ({"response_format": {"type": "xml"}}, "response_format.type", "Invalid request body"),
]


@pytest.mark.parametrize(("fields", "param", "says"), TOOL_ERRORS)
async def test_bad_tool_input_is_a_400_and_restarts_nothing(
    gateway: RunningGateway, fields: dict[str, Any], param: str, says: str
) -> None:
    client = gateway.client()
    request: dict[str, Any] = {"model": "fake", "messages": USER, **fields}
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(**request)
    error = body(caught.value)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert says in error["message"]
    await still_serving(gateway)


async def test_an_engine_without_constraints_answers_501_and_still_serves(
    tmp_path: Path,
) -> None:
    inference = {"engine": "fake", "engine_args": {"constraints": "unsupported"}}
    async with start_gateway(tmp_path, inference=inference) as gateway:
        client = gateway.client()
        for fields in (
            {"tools": TOOLS, "tool_choice": "required"},
            {"response_format": {"type": "json_object"}},
        ):
            with pytest.raises(openai.APIStatusError) as caught:
                await client.chat.completions.create(model="fake", messages=USER, **fields)
            assert caught.value.status_code == 501
            error = body(caught.value)
            assert error["code"] == "constraints_unsupported"
            assert "without" in error["message"]
        # tools the model may call on its own need no constraint
        auto = await client.chat.completions.create(
            model="fake", messages=USER, tools=TOOLS, max_tokens=4
        )
        assert auto.choices[0].message.content
        await still_serving(gateway)

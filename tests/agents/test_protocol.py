"""The JSON tool-call protocol: what a model's reply means, and what counts as malformed."""

from __future__ import annotations

import msgspec
import pytest

from actoros.agents.protocol import (
    Delegate,
    FinalAnswer,
    Malformed,
    Step,
    ToolCall,
    parse_step,
    protocol_prompt,
)

pytestmark = pytest.mark.timeout(10)


def test_a_tool_call_object_is_a_tool_call() -> None:
    step = parse_step('{"tool": "calculator", "arguments": {"expression": "2+2"}}')
    assert step == ToolCall("calculator", {"expression": "2+2"})


def test_a_tool_call_without_arguments_gets_empty_arguments() -> None:
    assert parse_step('{"tool": "clock"}') == ToolCall("clock", {})


def test_a_fenced_json_block_is_read_and_the_prose_around_it_ignored() -> None:
    reply = 'Sure, let me check.\n```json\n{"agent": "orders", "message": "order 42?"}\n```'
    assert parse_step(reply) == Delegate("orders", "order 42?")


def test_an_answer_object_is_the_final_answer() -> None:
    assert parse_step('{"answer": "Paris."}') == FinalAnswer("Paris.")


def test_plain_text_is_the_final_answer_as_it_stands() -> None:
    assert parse_step("  The capital of France is Paris.\n") == FinalAnswer(
        "The capital of France is Paris."
    )


def test_json_embedded_in_prose_is_found_when_it_names_a_protocol_key() -> None:
    reply = 'I will use a tool: {"tool": "clock", "arguments": {}} and then answer.'
    assert parse_step(reply) == ToolCall("clock", {})


def test_braces_in_ordinary_prose_are_not_mistaken_for_json() -> None:
    reply = "Use the set {a, b} notation."
    assert parse_step(reply) == FinalAnswer(reply)


@pytest.mark.parametrize(
    ("reply", "says"),
    [
        ('{"tool": "calculator", "arguments": {"expression": }', "did not parse"),
        ("```json\nnot json\n```", "did not parse"),
        ('["tool", "calculator"]', "one object"),
        ('{"tool": 3}', "name of a tool"),
        ('{"tool": "calculator", "arguments": "2+2"}', "JSON object"),
        ('{"agent": "orders"}', '"message"'),
        ('{"thought": "hmm"}', 'one of the keys "tool", "agent" or "answer"'),
        ("   ", "empty"),
    ],
)
def test_malformed_replies_say_what_is_wrong(reply: str, says: str) -> None:
    step = parse_step(reply)
    assert isinstance(step, Malformed)
    assert says in step.reason


def test_the_prompt_lists_the_reply_forms_tools_and_agents() -> None:
    text = protocol_prompt({"clock": '{"type": "object"}'}, ["orders"])
    assert '{"tool": "<name>", "arguments": {...}}' in text
    assert "- clock:" in text and "Agents: orders" in text


def test_the_prompt_leaves_out_delegation_when_there_is_no_agent_to_ask() -> None:
    assert '"agent"' not in protocol_prompt({}, [])


def test_a_step_is_a_tagged_union_of_the_four_forms() -> None:
    raw = b'{"type": "ToolCall", "tool": "clock", "arguments": {}}'
    assert msgspec.json.decode(raw, type=Step) == ToolCall("clock", {})
    assert msgspec.json.decode(b'{"type": "FinalAnswer", "text": "x"}', type=Step) == (
        FinalAnswer("x")
    )

"""LLMAgent's constrained turns, their fallback, its protocol counters and its prompt layout."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import jsonschema
import pytest
import pytest_asyncio
import structlog

from actoros.agents import AgentError, UserMessage
from actoros.agents.grammar import ANSWER_ONLY
from actoros.config.schema import AgentConfig, Permissions
from actoros.inference.engine import CANARY_ID
from actoros.inference.errors import ConstraintsUnsupported
from actoros.inference.fake_engine import render_chat
from actoros.inference.messages import Generate, JsonSchema
from actoros.kernel.access import AccessControl
from actoros.kernel.access import Permissions as Grant
from actoros.kernel.threads import SUMMARY_PREFIX

from .kernel import Kernel, start_kernel
from .test_llm import ScriptedEngine

pytestmark = pytest.mark.timeout(10)


class NoConstraintsEngine(ScriptedEngine):
    """An engine that cannot enforce constraints: a request with one fails, as a real engine
    whose canary failed answers."""

    async def generate(self, request_id: str, prompt: Any, gen: Generate) -> AsyncIterator[Any]:
        if gen.constraint is not None and request_id != CANARY_ID:
            self.requests.append(gen)
            raise ConstraintsUnsupported("this engine cannot enforce output constraints")
        async for out in super().generate(request_id, prompt, gen):
            yield out


@contextlib.contextmanager
def capture_logs() -> Iterator[list[dict[str, Any]]]:
    """structlog's ``capture_logs``, info events included (the tests log at warning)."""
    wrapper = structlog.get_config()["wrapper_class"]
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    try:
        with structlog.testing.capture_logs() as logs:
            yield logs
    finally:
        structlog.configure(wrapper_class=wrapper)


@pytest_asyncio.fixture(loop_scope="function")
async def kernel() -> AsyncIterator[Kernel[ScriptedEngine]]:
    async with start_kernel(ScriptedEngine([])) as running:
        yield running


def orders(name: str = "orders", **fields: Any) -> AgentConfig:
    fields.setdefault("tools", ("kv_get", "calculator"))
    return AgentConfig(name=name, kind="llm", system_prompt="You look up orders.", **fields)


def constraint(gen: Generate) -> dict[str, Any]:
    assert isinstance(gen.constraint, JsonSchema)
    return gen.constraint.schema


def offered(gen: Generate) -> list[str]:
    out = []
    for branch in constraint(gen)["anyOf"]:
        props = branch["properties"]
        out.append(props["tool"]["const"] if "tool" in props else next(iter(props)))
    return out


async def test_a_constrained_turn_carries_the_agents_grammar_and_the_reply_fits_it(
    kernel: Kernel,
) -> None:
    outputs = [
        '{"tool": "calculator", "arguments": {"expression": "59.90 * 0.2"}}',
        '{"answer": "The refund is 11.98."}',
    ]
    kernel.engine.replies = list(outputs)
    ref = await kernel.spawn(orders())
    reply = await ref.ask("What is 20% of 59.90?")
    assert (reply.text, reply.tools_used) == ("The refund is 11.98.", ("calculator",))
    first, second = kernel.engine.requests
    assert offered(first) == ["calculator", "kv_get", "answer"]
    for gen, output in zip((first, second), outputs, strict=True):
        jsonschema.validate(json.loads(output), constraint(gen))
    # built once, the same object every call: the engine compiles the grammar once
    assert first.constraint is second.constraint


async def test_the_grammar_follows_the_kernels_permissions_at_run_time(kernel: Kernel) -> None:
    config = orders()
    access = AccessControl(
        {"orders": Grant(tools=frozenset({"kv_get", "calculator"}), inference=True)}
    )
    kernel.engine.replies = ['{"answer": "a"}', '{"answer": "b"}']
    ref = await kernel.spawn(config, access=access)
    await ref.ask("one")
    access.grant("orders", Grant(tools=frozenset({"kv_get"}), inference=True))
    await ref.ask("two")
    assert offered(kernel.engine.requests[0]) == ["calculator", "kv_get", "answer"]
    assert offered(kernel.engine.requests[1]) == ["kv_get", "answer"]


async def test_delegation_targets_are_one_branch_naming_exactly_them(kernel: Kernel) -> None:
    kernel.engine.replies = ['{"answer": "a"}']
    ref = await kernel.spawn(orders(tools=(), permissions=Permissions(agents=("faq", "b*"))))
    await ref.ask("one")
    (branch, answer) = constraint(kernel.engine.requests[0])["anyOf"]
    assert branch["properties"]["agent"] == {"enum": ["faq"]}  # a pattern names nobody
    assert answer["required"] == ["answer"]


async def test_constrain_off_or_nothing_to_choose_sends_no_grammar(kernel: Kernel) -> None:
    kernel.engine.replies = ["a", "b"]
    off = await kernel.spawn(orders(constrain=False))
    plain = await kernel.spawn(orders("faq", tools=()))
    await off.ask("one")
    await plain.ask("two")
    assert [g.constraint for g in kernel.engine.requests] == [None, None]


async def test_an_engine_without_constraints_is_said_once_and_the_agent_goes_on_without() -> None:
    async with start_kernel(NoConstraintsEngine([])) as kernel:
        kernel.engine.replies = ['{"answer": "one"}', "{broken", '{"answer": "two"}']
        ref = await kernel.spawn(orders())
        with capture_logs() as logs:
            assert (await ref.ask("first")).text == "one"
            reply = await ref.ask("second")  # unconstrained: parse and retry as before
        assert (reply.text, reply.model_turns, reply.malformed_turns) == ("two", 2, 1)
        said = [e for e in logs if e["event"] == "agent.constraints_unsupported"]
        assert len(said) == 1 and "cannot enforce" in said[0]["reason"]
        # one refused constrained request, then every request unconstrained
        kinds = [g.constraint is not None for g in kernel.engine.requests]
        assert kinds == [True, False, False, False]


async def test_the_reply_counts_model_outputs_malformed_ones_and_tools_delegations_included(
    kernel: Kernel,
) -> None:
    kernel.engine.replies = [
        '{"agent": "helper", "message": "compute"}',  # boss
        '{"tool": "calculator", "arguments": {"expression": "1 + 1"}}',  # helper
        "{oops",  # helper, malformed
        '{"answer": "2"}',  # helper
        '{"answer": "It is 2."}',  # boss
    ]
    await kernel.spawn(orders("helper", tools=("calculator",)))
    boss = await kernel.spawn(orders("boss", tools=(), permissions=Permissions(agents=("helper",))))
    with capture_logs() as logs:
        reply = await boss.ask("1 + 1?")
    assert (reply.text, reply.steps) == ("It is 2.", 2)
    assert (reply.model_turns, reply.malformed_turns, reply.tools_used) == (5, 1, ("calculator",))
    turns = {e["agent"]: e for e in logs if e["event"] == "agent.turn"}
    assert turns["helper"]["model_turns"] == 3 and turns["helper"]["malformed_turns"] == 1
    assert turns["boss"]["constrained"] is True


async def test_a_failed_turn_still_logs_its_counts(kernel: Kernel) -> None:
    kernel.engine.replies = ["{broken", '{"nothing": 1}']
    ref = await kernel.spawn(orders())
    with capture_logs() as logs, pytest.raises(AgentError, match="malformed model output twice"):
        await ref.ask("hi")
    (turn,) = [e for e in logs if e["event"] == "agent.turn"]
    assert (turn["model_turns"], turn["malformed_turns"]) == (2, 2)


# -- prompt layout for the prefix cache ----------------------------------------------------


async def test_agents_sharing_a_system_prompt_and_tools_share_a_byte_identical_prefix(
    kernel: Kernel,
) -> None:
    kernel.engine.replies = ['{"answer": "a"}', '{"answer": "b"}', '{"answer": "c"}']
    one = await kernel.spawn(orders("agent_one"))
    two = await kernel.spawn(orders("agent_two"))
    first = await one.ask("Where is order 1042?")
    await one.ask(UserMessage(text="And order 7?", thread_id=first.thread_id))
    await two.ask("Refund for order 9?")
    a, b, c = (render_chat(g) for g in kernel.engine.requests)
    system = kernel.engine.requests[0].messages[0]
    assert system.role == "system"
    assert [g.messages[0] for g in kernel.engine.requests] == [system] * 3
    prefix = render_chat(Generate(messages=(system,)))[: -len("\n<|assistant|>")]
    for prompt in (a, b, c):
        assert prompt.startswith(prefix)
    # what differs (the user's words, the agent's name, thread ids) comes after the prefix
    for volatile in ("1042", "order 7", "order 9", first.thread_id, "agent_one", "agent_two"):
        assert volatile not in prefix
    # the same system prompt and tools give the same grammar too
    assert constraint(kernel.engine.requests[0]) == constraint(kernel.engine.requests[2])


async def test_the_running_summary_comes_after_the_stable_part_and_before_the_turns() -> None:
    async def summarize(messages: list[Any], previous: str | None) -> str:
        return "the customer asked about order 1042"

    async with start_kernel(ScriptedEngine([])) as kernel:
        from actoros.kernel.threads import ThreadStore

        kernel.threads = await kernel.system.spawn(ThreadStore, summarize)
        kernel.engine.replies = [f'{{"answer": "{"x" * 200}"}}'] * 4
        ref = await kernel.spawn(orders(max_tokens=64), context_tokens=64 + 330)
        reply = await ref.ask("first " * 40)
        for _ in range(3):
            await ref.ask(UserMessage(text="more " * 40, thread_id=reply.thread_id))
        last = kernel.engine.requests[-1].messages or ()
        assert last[0] == kernel.engine.requests[0].messages[0]  # the stable part, unchanged
        assert last[1].role == "system" and last[1].content.startswith(SUMMARY_PREFIX)
        assert all(m.role != "system" for m in last[2:])


# -- on the fake engine that honours constraints -------------------------------------------


async def test_on_an_engine_that_honours_the_grammar_every_model_turn_parses() -> None:
    from actoros.inference.fake_engine import FakeEngine

    async with start_kernel(FakeEngine(eos_after=(8, 40))) as kernel:
        ref = await kernel.spawn(orders(max_steps=3, max_tokens=200))
        turns = malformed = 0
        tools: list[str] = []
        for i in range(12):
            try:
                reply = await ref.ask(f"Where is order {1000 + i}?")
            except AgentError as exc:  # the step limit: the fake model may loop on tools
                assert "no final answer within 3 model calls" in str(exc)
                continue
            turns += reply.model_turns
            malformed += reply.malformed_turns
            tools.extend(reply.tools_used)
        assert turns > 0 and malformed == 0
        assert set(tools) <= {"kv_get", "calculator"}


async def test_on_an_engine_whose_canary_failed_the_agent_falls_back_and_still_answers() -> None:
    from actoros.inference.fake_engine import FakeEngine

    async with start_kernel(FakeEngine(constraints="unsupported")) as kernel:
        ref = await kernel.spawn(orders(tools=(), permissions=Permissions(agents=("faq",))))
        with capture_logs() as logs:
            reply = await ref.ask("hello")
            await ref.ask("again")
        assert reply.text and reply.model_turns == 1
        said = [e for e in logs if e["event"] == "agent.constraints_unsupported"]
        assert len(said) == 1


async def test_the_last_step_of_a_constrained_turn_may_only_answer(kernel: Kernel) -> None:
    call = '{"tool": "calculator", "arguments": {"expression": "%d"}}'
    kernel.engine.replies = [call % 1, call % 2, '{"answer": "3"}']
    ref = await kernel.spawn(orders(max_steps=3))
    assert (await ref.ask("sum")).text == "3"
    first, second, third = kernel.engine.requests
    assert first.constraint is second.constraint and offered(first)[0] == "calculator"
    assert third.constraint is ANSWER_ONLY and offered(third) == ["answer"]


async def test_a_repeated_call_is_not_run_again_and_the_next_step_must_answer(
    kernel: Kernel,
) -> None:
    call = '{"tool": "calculator", "arguments": {"expression": "6 * 7"}}'
    kernel.engine.replies = [call, call, '{"answer": "42"}']
    ref = await kernel.spawn(orders(max_steps=5))
    reply = await ref.ask("6 * 7?")
    assert (reply.text, reply.steps, reply.tools_used) == ("42", 3, ("calculator",))
    assert kernel.engine.requests[2].constraint is ANSWER_ONLY
    thread = await kernel.thread(reply.thread_id)
    assert [role for role, _ in thread] == ["user", "assistant", "tool", "assistant"]


async def test_unconstrained_a_repeated_call_runs_again(kernel: Kernel) -> None:
    call = '{"tool": "calculator", "arguments": {"expression": "6 * 7"}}'
    kernel.engine.replies = [call, call, "42"]
    ref = await kernel.spawn(orders(constrain=False, max_steps=5))
    reply = await ref.ask("6 * 7?")
    assert reply.tools_used == ("calculator", "calculator")
    assert all(g.constraint is None for g in kernel.engine.requests)


async def test_a_constrained_answer_cut_short_by_max_tokens_is_the_answer_so_far(
    kernel: Kernel,
) -> None:
    kernel.engine.replies = ['{"answer": "The order shipped on 2026-11-20 and', '{"broken']
    ref = await kernel.spawn(orders())
    reply = await ref.ask("Where is order 1042?")
    assert (reply.text, reply.malformed_turns) == ("The order shipped on 2026-11-20 and", 0)
    with pytest.raises(AgentError, match="malformed model output twice"):
        kernel.engine.replies = ["{broken", '{"tool": 1}']
        await ref.ask("again")


async def test_tool_choice_required_makes_the_first_step_act_and_later_ones_free(
    kernel: Kernel,
) -> None:
    kernel.engine.replies = [
        '{"tool": "kv_get", "arguments": {"key": "order:1042"}}',
        '{"answer": "It shipped."}',
    ]
    ref = await kernel.spawn(orders(tool_choice="required"))
    reply = await ref.ask("Where is order 1042?")
    assert (reply.text, reply.tools_used) == ("It shipped.", ("kv_get",))
    first, second = kernel.engine.requests
    assert offered(first) == ["calculator", "kv_get"]  # no answer before a call
    assert offered(second) == ["calculator", "kv_get", "answer"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"answer": "I made it up."}, constraint(first))


async def test_without_optional_arguments_a_call_offers_only_the_required_ones(
    kernel: Kernel,
) -> None:
    kernel.engine.replies = ['{"answer": "a"}', '{"answer": "b"}']
    tools = ("clock", "calculator")
    trimmed = await kernel.spawn(orders(tools=tools, optional_arguments=False))
    full = await kernel.spawn(orders("full", tools=tools))
    await trimmed.ask("one")
    await full.ask("two")

    def arguments(gen: Generate, tool: str) -> set[str]:
        (branch,) = [
            b for b in constraint(gen)["anyOf"] if b["properties"].get("tool") == {"const": tool}
        ]
        return set(branch["properties"]["arguments"]["properties"])

    assert [arguments(g, "clock") for g in kernel.engine.requests] == [set(), {"utc_offset_hours"}]
    assert [arguments(g, "calculator") for g in kernel.engine.requests] == [{"expression"}] * 2

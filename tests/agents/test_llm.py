"""LLMAgent: the tool-call loop on a scripted engine, with the real thread store and tools."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any

import msgspec
import pytest
import pytest_asyncio

from actoros import Actor, ActorRef, ActorStopped, Context, LifecycleEvent
from actoros.agents import (
    AgentError,
    AgentReply,
    HopLimitExceeded,
    LLMAgent,
    RuleAgent,
    UserMessage,
)
from actoros.config.schema import AgentConfig, Permissions, Rule
from actoros.inference.engine import CANARY_ID, EngineDead, EngineOutput
from actoros.inference.fake_engine import FakeEngine
from actoros.inference.messages import Generate
from actoros.kernel.threads import MAX_MESSAGE_BYTES
from actoros.testing import capture_events

from .kernel import Kernel, start_kernel

pytestmark = pytest.mark.timeout(10)


class ScriptedEngine(FakeEngine):
    """A ``FakeEngine`` whose outputs are given in order by the test; it records each request."""

    def __init__(self, replies: Iterable[str]) -> None:
        super().__init__()
        self.replies = list(replies)
        self.requests: list[Generate] = []

    async def generate(self, request_id: str, prompt: Any, gen: Generate) -> AsyncIterator[Any]:
        if request_id == CANARY_ID:  # the engine's start-up probe is not the test's
            async for out in super().generate(request_id, prompt, gen):
                yield out
            return
        self.requests.append(gen)
        if not self.replies:
            raise AssertionError("the scripted engine ran out of replies")
        text = self.replies.pop(0)
        yield EngineOutput(text, max(1, len(text.split())), True, "stop", len(str(prompt).split()))

    def prompt(self, n: int) -> list[tuple[str, str]]:
        """(role, content) of the ``n``-th request's messages."""
        messages = self.requests[n].messages or ()
        return [(m.role, m.content) for m in messages]


@pytest_asyncio.fixture(loop_scope="function")
async def kernel() -> AsyncIterator[Kernel[ScriptedEngine]]:
    """A real-time system with an inference actor on a ``ScriptedEngine`` (scripted per test
    through ``kernel.engine.replies``), a thread store and a tool service."""
    async with start_kernel(ScriptedEngine([])) as running:
        yield running


def llm(name: str = "assistant", **fields: Any) -> AgentConfig:
    return AgentConfig(name=name, kind="llm", system_prompt="You are helpful.", **fields)


async def test_a_plain_answer_is_the_reply_and_the_turn_is_recorded(kernel: Kernel) -> None:
    kernel.engine.replies = ["Paris."]
    ref = await kernel.spawn(llm())
    reply = await ref.ask(UserMessage(text="Capital of France?"))
    assert reply == AgentReply(
        agent="assistant",
        text="Paris.",
        thread_id=reply.thread_id,
        prompt_tokens=reply.prompt_tokens,
        completion_tokens=reply.completion_tokens,
        model_turns=1,
    )
    assert reply.thread_id is not None
    assert await kernel.thread(reply.thread_id) == [
        ("user", "Capital of France?"),
        ("assistant", "Paris."),
    ]
    system_role, system_prompt = kernel.engine.prompt(0)[0]
    assert system_role == "system"
    assert system_prompt.startswith("You are helpful.")
    assert '{"answer": "<text>"}' in system_prompt  # the protocol is in the prompt
    assert kernel.engine.prompt(0)[-1] == ("user", "Capital of France?")


async def test_a_tool_call_runs_and_its_result_reaches_the_model(kernel: Kernel) -> None:
    kernel.engine.replies = [
        '{"tool": "calculator", "arguments": {"expression": "6 * 7"}}',
        '{"answer": "It is 42."}',
    ]
    ref = await kernel.spawn(llm(tools=("calculator",)))
    reply = await ref.ask("What is 6 times 7?")
    assert (reply.text, reply.steps) == ("It is 42.", 2)
    assert "- calculator: Evaluate" in kernel.engine.prompt(0)[0][1]
    assert kernel.engine.prompt(1)[-1] == ("tool", "calculator result: 42")
    thread = await kernel.thread(reply.thread_id)
    assert [role for role, _ in thread] == ["user", "assistant", "tool", "assistant"]
    # the reply counts the tokens of both model calls (the fake engine counts words of its
    # chat layout: "<|role|> content" per message, then "<|assistant|>")
    prompts = [kernel.engine.prompt(i) for i in (0, 1)]
    expected = sum(sum(1 + len(c.split()) for _, c in p) + 1 for p in prompts)
    assert reply.prompt_tokens == expected
    assert reply.completion_tokens > 0


async def test_a_denied_tool_is_an_error_the_model_sees_not_a_crash(kernel: Kernel) -> None:
    kernel.engine.replies = [
        '{"tool": "clock", "arguments": {}}',
        "I may not look at the clock.",
    ]
    ref = await kernel.spawn(llm(tools=("calculator",)))
    reply = await ref.ask("What time is it?")
    assert reply.text == "I may not look at the clock."
    role, content = kernel.engine.prompt(1)[-1]
    assert role == "tool"
    assert "permission denied" in content and "'clock'" in content


async def test_delegation_asks_the_other_agent(kernel: Kernel) -> None:
    kernel.agents["orders"] = await kernel.system.spawn(
        RuleAgent,
        AgentConfig(name="orders", kind="rule", rules=(Rule(reply="order {text} ships"),)),
    )
    kernel.engine.replies = ['{"agent": "orders", "message": "42"}', "Order 42 ships."]
    ref = await kernel.spawn(llm(permissions=Permissions(agents=("orders",))))
    reply = await ref.ask("Where is order 42?")
    assert reply.text == "Order 42 ships."
    assert "Agents: orders" in kernel.engine.prompt(0)[0][1]
    assert kernel.engine.prompt(1)[-1] == ("tool", "agent orders replied: order 42 ships")


async def test_delegation_needs_permission(kernel: Kernel) -> None:
    kernel.agents["orders"] = await kernel.system.spawn(
        RuleAgent, AgentConfig(name="orders", kind="rule", rules=(Rule(reply="secret"),))
    )
    kernel.engine.replies = ['{"agent": "orders", "message": "42"}', "I cannot ask them."]
    ref = await kernel.spawn(llm())  # an llm agent may message no agent by default
    assert (await ref.ask("Where is order 42?")).text == "I cannot ask them."
    role, content = kernel.engine.prompt(1)[-1]
    assert role == "tool" and "may not message agent 'orders'" in content


async def test_malformed_output_is_retried_once_with_a_correction(kernel: Kernel) -> None:
    kernel.engine.replies = ['{"tool": "calculator", "arguments": [1]}', '{"answer": "fine"}']
    ref = await kernel.spawn(llm(tools=("calculator",)))
    reply = await ref.ask("hi")
    assert (reply.text, reply.steps) == ("fine", 2)
    retry = kernel.engine.prompt(1)
    assert retry[-2] == ("assistant", '{"tool": "calculator", "arguments": [1]}')
    assert retry[-1][0] == "user" and '"arguments" must be a JSON object' in retry[-1][1]
    # the malformed output and the correction are not kept in the thread
    assert await kernel.thread(reply.thread_id) == [("user", "hi"), ("assistant", "fine")]


async def test_malformed_twice_is_an_error_reply_and_no_crash(kernel: Kernel) -> None:
    kernel.engine.replies = ["{broken", '{"nothing": 1}', "recovered"]
    with capture_events(kernel.system, LifecycleEvent) as events:
        ref = await kernel.spawn(llm())
        with pytest.raises(AgentError, match="malformed model output twice.*one of the keys"):
            await ref.ask("hi")
        assert (await ref.ask("again")).text == "recovered"
    assert not [e for e in events if e.kind in ("failed", "restarted")]


async def test_the_step_limit_ends_a_tool_loop(kernel: Kernel) -> None:
    call = '{"tool": "calculator", "arguments": {"expression": "1 + 1"}}'
    kernel.engine.replies = [call, call, call]
    ref = await kernel.spawn(llm(tools=("calculator",), max_steps=3))
    with pytest.raises(AgentError, match="no final answer within 3 model calls"):
        await ref.ask("loop")
    assert len(kernel.engine.requests) == 3


async def test_an_agent_without_inference_permission_is_refused(kernel: Kernel) -> None:
    ref = await kernel.spawn(llm(permissions=Permissions(inference=False)))
    with pytest.raises(AgentError, match="may not use inference"):
        await ref.ask("hi")
    assert kernel.engine.requests == []


class Crash(msgspec.Struct):
    pass


class CrashableAgent(LLMAgent):
    """An LLMAgent that fails (a real actor failure) when it receives ``Crash``."""

    incarnations = 0

    async def on_start(self) -> None:
        CrashableAgent.incarnations += 1

    def receive(self, message: Any, ctx: Context) -> None:
        if isinstance(message, Crash):
            raise RuntimeError("boom")
        return super().receive(message, ctx)


async def test_a_restarted_agent_keeps_its_thread(kernel: Kernel) -> None:
    CrashableAgent.incarnations = 0
    kernel.engine.replies = ["Nice to meet you, Ada.", "Your name is Ada."]
    ref = await kernel.spawn(llm("memo"), CrashableAgent)
    first = await ref.ask(UserMessage(text="My name is Ada."))
    with capture_events(kernel.system, LifecycleEvent) as events:
        with pytest.raises(RuntimeError, match="boom"):
            await ref.ask(Crash())
        await events.wait_for(lambda e: e.kind == "restarted" and e.path == ref.path)
    assert CrashableAgent.incarnations == 2
    second = await ref.ask(UserMessage(text="What is my name?", thread_id=first.thread_id))
    assert second.text == "Your name is Ada."
    assert kernel.engine.prompt(1)[1:] == [
        ("user", "My name is Ada."),
        ("assistant", "Nice to meet you, Ada."),
        ("user", "What is my name?"),
    ]


async def test_an_unknown_thread_is_an_error_reply(kernel: Kernel) -> None:
    ref = await kernel.spawn(llm())
    with pytest.raises(AgentError, match="threads failed: ThreadNotFound"):
        await ref.ask(UserMessage(text="hi", thread_id="no-such-thread"))
    assert kernel.engine.requests == []


async def test_llm_agents_delegating_to_each_other_end_at_the_hop_limit(kernel: Kernel) -> None:
    # a's model always asks b, b's always asks a: without a hop limit this never ends
    kernel.engine.replies = ['{"agent": "b", "message": "ask"}', '{"agent": "a", "message": "ask"}']
    kernel.engine.replies *= 20
    await kernel.spawn(llm("a", permissions=Permissions(agents=("b",))))
    await kernel.spawn(llm("b", permissions=Permissions(agents=("a",))))
    with pytest.raises(HopLimitExceeded) as info:
        await asyncio.wait_for(kernel.agents["a"].ask("go", timeout=None), 5)
    path = " -> ".join(["a", "b"] * 5)
    assert str(info.value) == f"agent 'a': delegation loop: {path}; hop limit 8"
    assert len(kernel.engine.requests) == 9  # one model call per agent in the chain, no more


async def test_a_message_over_the_thread_size_limit_is_an_error_reply(kernel: Kernel) -> None:
    ref = await kernel.spawn(llm())
    with pytest.raises(AgentError, match="of 1,048,577 bytes is over the limit of 1,048,576 bytes"):
        await ref.ask(UserMessage(text="x" * (MAX_MESSAGE_BYTES + 1)))
    assert kernel.engine.requests == []  # refused before any model call


class DiesOnce(ScriptedEngine):
    """A scripted engine whose first incarnation dies under its first request."""

    incarnations = 0

    def __init__(self, replies: Iterable[str]) -> None:
        super().__init__(replies)
        DiesOnce.incarnations += 1
        self.doomed = DiesOnce.incarnations == 1

    async def generate(self, request_id: str, prompt: Any, gen: Generate) -> AsyncIterator[Any]:
        if self.doomed:
            self.kill()
            raise EngineDead("killed under the first request")
        async for out in super().generate(request_id, prompt, gen):
            yield out


@pytest.mark.parametrize("stream", [False, True])
async def test_a_step_the_engine_died_under_is_asked_again_once_the_engine_is_back(
    stream: bool,
) -> None:
    # issue 9: a task whose model call met a dying engine was answered with
    # "EngineUnavailable" (lost); the kernel's fault is retried, the turn's outcome is kept
    from actoros.inference.actor import InferenceActor
    from actoros.kernel.threads import ThreadStore
    from actoros.kernel.tools import ToolRegistry, ToolService
    from actoros.testing import test_system

    from .kernel import no_summary

    DiesOnce.incarnations = 0
    async with test_system(real_time=True) as system:
        inference = await system.spawn(InferenceActor, lambda: DiesOnce(["Paris."]), log_every=None)
        threads = await system.spawn(ThreadStore, no_summary)
        tools = await system.spawn(ToolService, ToolRegistry.with_builtins())
        kernel = Kernel(system, ScriptedEngine([]), inference, threads, tools, {})
        ref = await kernel.spawn(llm())
        reply = await ref.ask(UserMessage(text="Capital of France?", stream=stream))
        if stream:
            items = [item async for item in reply]
            reply = items[-1]
            assert "".join(i.text for i in items[:-1]) == "Paris."
        assert isinstance(reply, AgentReply) and reply.text == "Paris."
        (info,) = [i for i in system.snapshot() if i.path == inference.path]
        assert info.restarts == 1 and DiesOnce.incarnations == 2  # the engine was replaced
        assert await kernel.thread(reply.thread_id) == [
            ("user", "Capital of France?"),
            ("assistant", "Paris."),
        ]


class LosesFirst(Actor):
    """Stands for a router whose engine's node is lost under the first request: that ask
    ends with ``ActorStopped``; the next ones go on to the engine."""

    def __init__(self, engine: ActorRef) -> None:
        self.engine = engine
        self.lost = False

    def receive(self, message: Any, ctx: Context) -> Any:
        if not self.lost:
            self.lost = True
            ctx.defer_reply().fail(ActorStopped("/engine.b/inference: node b was lost"))
            return None
        ctx.forward(self.engine)
        return None


async def test_a_step_whose_engine_stopped_under_it_is_asked_again() -> None:
    # issue 13: an engine on a lost node ends its asks with ActorStopped (NodeUnreachable);
    # the router then sends the step to an engine that runs
    from actoros.inference.actor import InferenceActor
    from actoros.kernel.threads import ThreadStore
    from actoros.kernel.tools import ToolRegistry, ToolService
    from actoros.testing import test_system

    from .kernel import no_summary

    async with test_system(real_time=True) as system:
        engine = await system.spawn(
            InferenceActor, lambda: ScriptedEngine(["Paris."]), log_every=None
        )
        inference = await system.spawn(LosesFirst, engine)
        threads = await system.spawn(ThreadStore, no_summary)
        tools = await system.spawn(ToolService, ToolRegistry.with_builtins())
        kernel = Kernel(system, ScriptedEngine([]), inference, threads, tools, {})
        ref = await kernel.spawn(llm())
        reply = await ref.ask(UserMessage(text="Capital of France?"))
        assert isinstance(reply, AgentReply) and reply.text == "Paris."


async def test_turns_of_one_thread_run_one_after_another_and_leave_no_lock(
    kernel: Kernel,
) -> None:
    """Two turns asked at once on one thread: the second sees the first one's answer. Once
    the turns are over the agent keeps no lock for the thread (it kept one per thread id
    ever seen, for its whole life)."""
    made: list[LLMAgent] = []

    def keep(*args: Any, **kwargs: Any) -> LLMAgent:
        made.append(LLMAgent(*args, **kwargs))
        return made[-1]

    kernel.engine.replies = ["new thread", "first", "second"]
    ref = await kernel.spawn(llm(), keep)  # type: ignore[arg-type]
    thread_id = (await ref.ask("start")).thread_id
    one, two = await asyncio.gather(
        ref.ask(UserMessage(text="one", thread_id=thread_id)),
        ref.ask(UserMessage(text="two", thread_id=thread_id)),
    )
    assert (one.text, two.text) == ("first", "second")
    second = kernel.engine.prompt(2)
    assert second[-3:] == [("user", "one"), ("assistant", "first"), ("user", "two")]
    assert len(made[0]._locks) == 0


async def test_both_agent_kinds_word_a_tool_call_that_reached_no_tool_alike(
    kernel: Kernel,
) -> None:
    """One ``call_tool`` for both kinds: a rule agent's error and the tool message an LLM
    agent's model reads give the same reason (here: there is no tool service)."""
    kernel.engine.replies = ['{"tool": "calculator", "arguments": {"expression": "1"}}', "No."]
    model = await kernel.system.spawn(
        LLMAgent, llm(tools=("calculator",)), inference=kernel.inference, threads=kernel.threads
    )
    assert (await model.ask("add")).text == "No."
    rules = AgentConfig(
        name="rules",
        kind="rule",
        tools=("calculator",),
        rules=(Rule(tool="calculator", args={"expression": "1"}),),
    )
    with pytest.raises(AgentError) as refused:
        await (await kernel.system.spawn(RuleAgent, rules)).ask("add")
    assert refused.value.reason == "cannot call tool 'calculator': no tool service"
    assert kernel.engine.prompt(1)[-1] == ("tool", f"calculator error: {refused.value.reason}")

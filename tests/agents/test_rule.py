"""RuleAgent: rule matching, each action through the real kernel services, errors as replies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
import pytest_asyncio

from actoros import ActorRef, ActorSystem, LifecycleEvent
from actoros.agents import AgentError, AgentReply, HopLimitExceeded, RuleAgent, UserMessage
from actoros.agents.rule import fields_of, fill, first_match, matches
from actoros.config.schema import AgentConfig, Permissions, Rule, SubmitAction
from actoros.kernel.scheduler import Scheduler, Task, TaskResult, Wait
from actoros.kernel.tools import ToolRegistry, ToolService
from actoros.testing import capture_events, test_system

pytestmark = pytest.mark.timeout(10)


@pytest_asyncio.fixture(loop_scope="function")
async def rt_system() -> AsyncIterator[ActorSystem]:
    """Real time: the tool service and the scheduler run work in threads."""
    async with test_system(real_time=True) as system:
        yield system


def agent(name: str = "router", *rules: Rule, **fields: Any) -> AgentConfig:
    return AgentConfig(name=name, kind="rule", rules=rules, **fields)


# -- matching (pure) ---------------------------------------------------------------------------


def test_match_needs_equal_fields_and_contains_ignores_case() -> None:
    rule = Rule(match={"lang": "en"}, contains={"text": "ORDER"}, reply="x")
    assert matches(rule, {"lang": "en", "text": "where is my order?"})
    assert not matches(rule, {"lang": "fr", "text": "my order"})
    assert not matches(rule, {"lang": "en", "text": "hello"})
    assert not matches(rule, {"text": "my order"})  # a missing field never matches
    assert matches(Rule(reply="x"), {})  # no condition: a catch-all


def test_first_matching_rule_wins() -> None:
    rules = (Rule(contains={"text": "a"}, reply="1"), Rule(reply="2"))
    assert first_match(rules, {"text": "cat"}) is rules[0]
    assert first_match(rules, {"text": "dog"}) is rules[1]
    assert first_match(rules[:1], {"text": "dog"}) is None


def test_message_fields_of_each_shape() -> None:
    class Order(msgspec.Struct):
        id: int

    message = UserMessage(text="hi", thread_id="t", data={"lang": "en"})
    assert fields_of(message) == {"text": "hi", "thread_id": "t", "lang": "en"}
    assert fields_of("hi") == {"text": "hi"}
    assert fields_of({"a": 1}) == {"a": 1}
    assert fields_of(Order(7)) == {"id": 7}
    with pytest.raises(TypeError):
        fields_of(42)


def test_templates_take_fields_whole_or_as_text() -> None:
    fields = {"n": 42, "name": "Ada"}
    assert fill("{n}", fields) == 42
    assert fill("order {n} for {name}, {missing}", fields) == "order 42 for Ada, {missing}"
    assert fill({"args": ["{name}", 1]}, fields) == {"args": ["Ada", 1]}


# -- actions -----------------------------------------------------------------------------------


async def test_reply_rule_answers_with_its_text(rt_system: ActorSystem) -> None:
    config = agent("greeter", Rule(contains={"text": "hello"}, reply="Hi {name}!"))
    ref = await rt_system.spawn(RuleAgent, config)
    reply = await ref.ask(UserMessage(text="Hello there", data={"name": "Ada"}))
    assert reply == AgentReply(agent="greeter", text="Hi Ada!")


async def test_no_matching_rule_is_an_error_reply_and_the_agent_lives_on(
    rt_system: ActorSystem,
) -> None:
    config = agent("picky", Rule(match={"kind": "known"}, reply="ok"))
    with capture_events(rt_system, LifecycleEvent) as events:
        ref = await rt_system.spawn(RuleAgent, config)
        with pytest.raises(AgentError, match="picky.*no rule matches"):
            await ref.ask("anything")
        with pytest.raises(AgentError, match="cannot read a int"):
            await ref.ask(42)
        assert (await ref.ask({"kind": "known"})).text == "ok"
    assert not [e for e in events if e.kind in ("failed", "restarted")]


async def test_forward_asks_the_other_agent_and_returns_its_reply(rt_system: ActorSystem) -> None:
    faq = await rt_system.spawn(RuleAgent, agent("faq", Rule(reply="FAQ: {text}")))
    refs: dict[str, ActorRef] = {"faq": faq}
    router = agent("router", Rule(contains={"text": "?"}, forward="faq"), Rule(reply="no question"))
    ref = await rt_system.spawn(RuleAgent, router, resolve_agent=refs.get)
    reply = await ref.ask(UserMessage(text="opening hours?", thread_id="t1"))
    assert reply == AgentReply(agent="faq", text="FAQ: opening hours?", thread_id="t1")
    assert (await ref.ask({"text": "hi?"})).text == "FAQ: hi?"  # a mapping is forwarded too


async def test_forward_is_permission_checked_and_unknown_agents_are_errors(
    rt_system: ActorSystem,
) -> None:
    faq = await rt_system.spawn(RuleAgent, agent("faq", Rule(reply="faq")))
    refs = {"faq": faq}
    denied = agent("a", Rule(forward="faq"), permissions=Permissions(agents=("orders",)))
    ref = await rt_system.spawn(RuleAgent, denied, resolve_agent=refs.get)
    with pytest.raises(AgentError, match="permission denied.*may not message agent 'faq'"):
        await ref.ask("x")
    ghost = await rt_system.spawn(
        RuleAgent, agent("b", Rule(forward="ghost")), resolve_agent=refs.get
    )
    with pytest.raises(AgentError, match="unknown agent 'ghost'"):
        await ghost.ask("x")


async def test_tool_rule_calls_the_tool_service(rt_system: ActorSystem) -> None:
    tools = await rt_system.spawn(ToolService, ToolRegistry.with_builtins())
    config = agent(
        "calc",
        Rule(contains={"text": "calc"}, tool="calculator", args={"expression": "{expr}"}),
        tools=("calculator",),
    )
    ref = await rt_system.spawn(RuleAgent, config, tools=tools)
    reply = await ref.ask(UserMessage(text="calc", data={"expr": "6 * 7"}))
    assert reply.text == "42"
    assert reply.data == {"tool": "calculator", "value": 42}
    with pytest.raises(AgentError, match="tool 'calculator' failed"):
        await ref.ask(UserMessage(text="calc", data={"expr": "1 / 0"}))


async def test_a_tool_outside_the_permissions_is_denied(rt_system: ActorSystem) -> None:
    tools = await rt_system.spawn(ToolService, ToolRegistry.with_builtins())
    config = agent("sneaky", Rule(tool="clock"), tools=("calculator",))
    ref = await rt_system.spawn(RuleAgent, config, tools=tools)
    with pytest.raises(AgentError, match="may not call tool 'clock'"):
        await ref.ask("what time is it")


async def test_submit_rule_hands_a_task_to_the_scheduler(rt_system: ActorSystem) -> None:
    async def shout(task: Task) -> str:
        return str(task.payload["text"]).upper()

    scheduler = await rt_system.spawn(Scheduler, {"shout": shout}, workers=1)
    rule = Rule(submit=SubmitAction(kind="shout", payload={"text": "{text}"}))
    config = agent("submitter", rule, permissions=Permissions(submit=True))
    ref = await rt_system.spawn(RuleAgent, config, scheduler=scheduler)
    reply = await ref.ask("hello")
    task_id = reply.data["task_id"]
    assert reply.text == f"submitted shout task {task_id}"
    result = await scheduler.ask(Wait(id=task_id))
    assert result == TaskResult(id=task_id, status="done", result="HELLO")


async def test_submit_needs_the_submit_permission(rt_system: ActorSystem) -> None:
    rule = Rule(submit=SubmitAction(kind="shout"))
    ref = await rt_system.spawn(RuleAgent, agent("nosubmit", rule))
    with pytest.raises(AgentError, match="may not submit tasks"):
        await ref.ask("hello")


async def test_a_tell_with_a_sender_gets_the_outcome_told_back(rt_system: ActorSystem) -> None:
    from actoros.testing import spawn_probe

    probe_ref, probe = await spawn_probe(rt_system)
    ref = await rt_system.spawn(RuleAgent, agent("echo", Rule(match={"text": "hi"}, reply="hey")))
    ref.tell("hi", sender=probe_ref)
    assert await probe.expect(AgentReply, timeout=3.0) == AgentReply(agent="echo", text="hey")
    ref.tell("bye", sender=probe_ref)
    error = await probe.expect(AgentError, timeout=3.0)
    assert "no rule matches" in str(error)


async def test_turns_run_concurrently_so_forwarding_does_not_serialize(
    rt_system: ActorSystem,
) -> None:
    import asyncio

    from actoros import Actor, Context

    class Pair(Actor):
        """Answers only once two questions wait: a serializing router would hang here."""

        def __init__(self) -> None:
            self.waiting: list[Any] = []

        def receive(self, message: Any, ctx: Context) -> None:
            self.waiting.append((ctx.defer_reply(), message.text))
            if len(self.waiting) == 2:
                for reply, text in self.waiting:
                    reply.resolve(AgentReply(agent="pair", text=text))

    pair = await rt_system.spawn(Pair)
    router = await rt_system.spawn(
        RuleAgent, agent("router", Rule(forward="pair")), resolve_agent={"pair": pair}.get
    )
    replies = await asyncio.gather(router.ask("a", timeout=3.0), router.ask("b", timeout=3.0))
    assert [r.text for r in replies] == ["a", "b"]


# -- the hop limit: a forwarding cycle is one clear error, not a loop (issue 9, item 7) ----------


async def cycle(system: ActorSystem, **kwargs: Any) -> ActorRef:
    """``router`` forwards everything to ``b``, and ``b`` everything back to ``router``."""
    refs: dict[str, ActorRef] = {}
    for name, target in (("router", "b"), ("b", "router")):
        refs[name] = await system.spawn(
            RuleAgent, agent(name, Rule(forward=target)), resolve_agent=refs.get, **kwargs
        )
    return refs["router"]


LOOP = "agent 'router': delegation loop: " + " -> ".join(["router", "b"] * 5) + "; hop limit 8"


async def test_a_forwarding_cycle_ends_at_the_hop_limit_naming_the_path(
    rt_system: ActorSystem,
) -> None:
    router = await cycle(rt_system)
    with pytest.raises(HopLimitExceeded) as info:
        await asyncio.wait_for(router.ask(UserMessage(text="hi"), timeout=None), 5)
    assert str(info.value) == LOOP
    # a streamed ask relays the forwards, and ends the same way
    stream = await router.ask(UserMessage(text="hi", stream=True))
    with pytest.raises(HopLimitExceeded) as streamed:
        await asyncio.wait_for(stream.reply(), 5)
    assert str(streamed.value) == LOOP


async def test_a_chain_may_take_max_hops_delegations_and_not_one_more(
    rt_system: ActorSystem,
) -> None:
    refs: dict[str, ActorRef] = {}
    refs["d"] = await rt_system.spawn(RuleAgent, agent("d", Rule(reply="d got {text}")))
    for name, target in (("c", "d"), ("b", "c"), ("a", "b")):
        refs[name] = await rt_system.spawn(
            RuleAgent, agent(name, Rule(forward=target)), resolve_agent=refs.get, max_hops=3
        )
    assert (await refs["a"].ask("x", timeout=5)).text == "d got x"  # three hops: a, b, c
    with pytest.raises(HopLimitExceeded) as info:  # passed on twice already: c may not
        await refs["a"].ask(UserMessage(text="x", via=("user-agent",)), timeout=5)
    assert str(info.value) == (
        "agent 'c': delegation chain too long: user-agent -> a -> b -> c -> d; hop limit 3"
    )

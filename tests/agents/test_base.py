"""The ``Agent`` base: what a told outcome does (the rest is proven through its subclasses)."""

from __future__ import annotations

import asyncio

import pytest

from actoros.agents import AgentError, AgentReply, RuleAgent
from actoros.config.schema import AgentConfig, Rule
from actoros.testing import spawn_probe, test_system

pytestmark = pytest.mark.timeout(10)


def rule_agent(name: str, *rules: Rule) -> AgentConfig:
    return AgentConfig(name=name, kind="rule", rules=rules)


async def test_two_agents_do_not_tell_each_other_outcomes_forever() -> None:
    async with test_system(real_time=True) as system:
        hi = Rule(match={"text": "hi"}, reply="hey")
        a = await system.spawn(RuleAgent, rule_agent("a", hi), name="a")
        b = await system.spawn(RuleAgent, rule_agent("b", hi), name="b")
        # a answers b's tell with its reply; b cannot read the reply (no rule matches); its
        # error is not told back to a, which would answer it with another error, and so on
        a.tell("hi", sender=b)

        def processed() -> tuple[int, int]:
            counts = {info.name: info.processed for info in system.snapshot()}
            return counts["a"], counts["b"]

        for _ in range(1000):  # loop turns, not time: until b has read a's reply
            if processed()[1]:
                break
            await asyncio.sleep(0)
        assert processed() == (1, 1)
        for _ in range(300):  # an exchange takes a few turns: a ping-pong would go on here
            await asyncio.sleep(0)
        assert processed() == (1, 1)


async def test_a_told_outcome_is_handled_but_not_answered() -> None:
    async with test_system(real_time=True) as system:
        probe_ref, probe = await spawn_probe(system)
        ref = await system.spawn(RuleAgent, rule_agent("log", Rule(reply="noted {text}")))
        ref.tell(AgentReply(agent="other", text="done"), sender=probe_ref)
        ref.tell(AgentError("other", "it broke"), sender=probe_ref)
        ref.tell("a question", sender=probe_ref)  # still answered
        assert await probe.expect(AgentReply) == AgentReply(agent="log", text="noted a question")
        await probe.expect_no_message()

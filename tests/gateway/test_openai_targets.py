"""The two targets of a chat completion on their own: what each asks, and how each reads what
comes back (text, the end with its usage and thread, or not one of its items).

The end-to-end behaviour (through HTTP, both paths, streamed and not) is in
``test_openai_chat.py``; here each strategy is checked alone, against a real actor ref.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from actoros import Actor, ActorRef, ActorSystem, Context
from actoros.agents import AgentDelta, AgentReply, UserMessage
from actoros.gateway.openai.schema import ChatRequest, RequestMessage, Usage
from actoros.gateway.openai.targets import AgentTarget, Final, ModelTarget, Piece
from actoros.gateway.openai.tools import ToolPlan
from actoros.inference.messages import Completion, Generate, Timings, TokenDelta
from actoros.inference.messages import Usage as EngineUsage

pytestmark = pytest.mark.timeout(10)


class Idle(Actor):
    def receive(self, message: Any, ctx: Context) -> Any:
        return None


@pytest_asyncio.fixture
async def ref() -> AsyncIterator[ActorRef]:
    async with ActorSystem() as system:
        yield await system.spawn(Idle, name="idle")


def completion(text: str, reason: str, prompt: int, generated: int) -> Completion:
    return Completion("r1", text, reason, EngineUsage(prompt, generated), Timings(0, 0, 0))


async def test_an_agent_target_asks_for_the_turn_in_its_thread(ref: ActorRef) -> None:
    target = AgentTarget(ref, "faq", "hello", "t-1", stream=True)
    assert target.messages == (UserMessage(text="hello", thread_id="t-1", stream=True),)
    assert (target.model, target.what, target.thread_id) == ("faq", "agent 'faq'", "t-1")


async def test_an_agent_target_reads_deltas_and_a_reply_with_the_turns_usage(
    ref: ActorRef,
) -> None:
    target = AgentTarget(ref, "faq", "hello", "t-1", stream=False)
    assert target.read(AgentDelta("Hel")) == Piece(0, "Hel")
    reply = AgentReply(
        agent="faq", text="Hello", thread_id=None, prompt_tokens=7, completion_tokens=3
    )
    assert target.read(reply) == Final(
        text="Hello", finish_reason="stop", usage=Usage(7, 3, 10), thread_id="t-1"
    )
    moved = AgentReply(agent="faq", text="Hi", thread_id="t-2")
    assert isinstance(end := target.read(moved), Final) and end.thread_id == "t-2"
    assert target.read(TokenDelta("r1", 0, "x")) is None  # the model's item, not an agent's


async def test_a_model_target_asks_for_a_generation_from_the_request(ref: ActorRef) -> None:
    body = ChatRequest(
        model="fake",
        messages=[RequestMessage("user", "hi")],
        stream=True,
        max_tokens=9,
        stop="END",
        seed=4,
    )
    target = ModelTarget.chat(ref, "fake", body, ToolPlan())
    [gen] = target.messages
    assert isinstance(gen, Generate)
    assert (gen.max_tokens, gen.stop, gen.seed, gen.stream) == (9, ("END",), 4, True)
    assert (gen.temperature, gen.top_p) == (1.0, 1.0)  # the OpenAI API's defaults
    assert (gen.constraint, gen.logprobs, gen.tools) == (None, None, ())
    assert target.thread_id is None and target.what == "the model 'fake'"


async def test_n_choices_are_n_generations_with_seeds_moving_on(ref: ActorRef) -> None:
    body = ChatRequest(model="fake", messages=[RequestMessage("user", "hi")], n=3, seed=2**63 - 2)
    seeds = [g.seed for g in ModelTarget.chat(ref, "fake", body, ToolPlan()).messages]  # type: ignore[attr-defined]
    assert seeds == [2**63 - 2, 2**63 - 1, -(2**63)]  # wrapped within the 64-bit range
    unseeded = ChatRequest(model="fake", messages=[RequestMessage("user", "hi")], n=2)
    assert [g.seed for g in ModelTarget.chat(ref, "fake", unseeded, ToolPlan()).messages] == [  # type: ignore[attr-defined]
        None,
        None,
    ]


async def test_a_model_target_reads_tokens_and_the_engines_finish_and_counts(
    ref: ActorRef,
) -> None:
    body = ChatRequest(model="fake", messages=[RequestMessage("user")])
    target = ModelTarget.chat(ref, "fake", body, ToolPlan())
    assert target.read(TokenDelta("r1", 0, "to")) == Piece(0, "to")
    assert target.read(completion("token", "length", 5, 1)) == Final(
        text="token", finish_reason="length", usage=Usage(5, 1, 6), thread_id=None
    )
    # several choices' streams are read side by side, each item tagged with its choice
    assert target.read((2, TokenDelta("r1", 0, "to"))) == Piece(2, "to")
    end = target.read((1, completion("t", "stop", 5, 1)))
    assert isinstance(end, Final) and end.index == 1
    assert target.read(AgentDelta("x")) is None  # an agent's item, not the model's

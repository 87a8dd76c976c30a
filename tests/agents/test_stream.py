"""Streamed turns: ``UserMessage(stream=True)`` → ``AgentStream`` of deltas, then the reply."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from actoros import ActorRef
from actoros.agents import (
    AgentDelta,
    AgentError,
    AgentReply,
    AgentStream,
    RuleAgent,
    UserMessage,
)
from actoros.agents.protocol import FinalAnswer, parse_step
from actoros.agents.showing import StepFilter
from actoros.config.schema import AgentConfig, Permissions, Rule
from actoros.inference.actor import InferenceStats
from actoros.inference.engine import CANARY_ID, EngineOutput
from actoros.inference.fake_engine import FakeEngine
from actoros.inference.messages import Generate

from .kernel import Kernel, start_kernel

pytestmark = pytest.mark.timeout(10)

HOLD = object()  # in a scripted reply: wait for ``engine.gate`` before going on


class PacedEngine(FakeEngine):
    """A ``FakeEngine`` that sends each scripted reply in the pieces the test gives; ``HOLD``
    waits on ``gate``, an exception instance is raised there. It records aborts."""

    def __init__(self) -> None:
        super().__init__()
        self.replies: list[list[Any]] = []
        self.requests: list[Generate] = []
        self.gate = asyncio.Event()
        self.aborted = asyncio.Event()

    async def generate(self, request_id: str, prompt: Any, gen: Generate) -> AsyncIterator[Any]:
        if request_id == CANARY_ID:  # the engine's start-up probe is not the test's
            async for out in super().generate(request_id, prompt, gen):
                yield out
            return
        self.requests.append(gen)
        if not self.replies:
            raise AssertionError("the paced engine ran out of replies")
        prompt_tokens = len(str(prompt).split())
        for piece in self.replies.pop(0):
            if piece is HOLD:
                await self.gate.wait()
            elif isinstance(piece, Exception):
                raise piece
            else:
                yield EngineOutput(piece, 1, False, None, prompt_tokens)
        yield EngineOutput("", 0, True, "stop", prompt_tokens)

    async def abort(self, request_id: str) -> None:
        self.aborted.set()


@pytest_asyncio.fixture(loop_scope="function")
async def kernel() -> AsyncIterator[Kernel[PacedEngine]]:
    async with start_kernel(PacedEngine()) as running:
        yield running
        running.engine.gate.set()  # let a held generation end before the system stops


def llm(name: str = "assistant", **fields: Any) -> AgentConfig:
    return AgentConfig(name=name, kind="llm", system_prompt="You are helpful.", **fields)


async def ask_stream(ref: ActorRef, text: str, **fields: Any) -> AgentStream:
    stream = await ref.ask(UserMessage(text=text, stream=True, **fields))
    assert isinstance(stream, AgentStream)
    return stream


async def collect(stream: AgentStream) -> tuple[list[str], AgentReply]:
    deltas: list[str] = []
    async for item in stream:
        if isinstance(item, AgentDelta):
            deltas.append(item.text)
        else:
            return deltas, item
    raise AssertionError("the stream ended without a reply")


# -- StepFilter: what of a step's output may be shown while it is generated -----------------


def shown_by(pieces: list[str]) -> tuple[list[str], StepFilter]:
    step_filter = StepFilter()
    return [out for piece in pieces if (out := step_filter.feed(piece))], step_filter


def test_plain_text_is_shown_as_it_comes_without_outer_whitespace() -> None:
    shown, step_filter = shown_by(["  The ", "capital ", "is", " Paris. ", "\n"])
    assert shown == ["The", " capital", " is", " Paris."]
    assert step_filter.rest(parse_step("  The capital is Paris. \n").text) == ""  # type: ignore[union-attr]


@pytest.mark.parametrize("start", ["{", "[", "`", " \n{"])
def test_json_looking_output_is_held_back_whole(start: str) -> None:
    shown, step_filter = shown_by([start, '"answer"', ": ", '"yes"', "}"])
    assert shown == [] and step_filter.shown == ""


def test_text_from_the_first_brace_or_backtick_is_held_back() -> None:
    shown, step_filter = shown_by(["Use ", "{", "x} or ", "`y`", " here"])
    assert shown == ["Use"]
    output = "Use {x} or `y` here"
    assert step_filter.rest(output) == " {x} or `y` here"  # a plain answer: the rest shows


def test_shown_text_that_is_not_the_answer_start_is_an_interlude() -> None:
    _, step_filter = shown_by(["Sure. ", '{"answer": "Paris"}'])
    assert step_filter.shown == "Sure."
    assert step_filter.rest("Paris") is None


def answer_shown_by(pieces: list[str]) -> tuple[list[str], StepFilter]:
    step_filter = StepFilter(answer_json=True)
    return [out for piece in pieces if (out := step_filter.feed(piece))], step_filter


def test_a_constrained_answer_is_shown_as_it_comes_decoded_from_its_json_string() -> None:
    pieces = ['{"ans', 'wer": "', " The", " café\\", "n is \\u00", 'e9t\\"', "é ", ' ok"', "}"]
    shown, step_filter = answer_shown_by(pieces)
    answer = parse_step("".join(pieces))
    assert answer == FinalAnswer(' The café\n is ét"é  ok')
    assert "".join(shown) == step_filter.shown == answer.text  # type: ignore[union-attr]
    assert step_filter.rest(answer.text) == ""  # type: ignore[union-attr]


def test_a_surrogate_pair_split_across_pieces_is_shown_whole() -> None:
    shown, _ = answer_shown_by(['{"answer": "a \\ud83d', "\\ude00", ' b"}'])
    assert "".join(shown) == "a \U0001f600 b"


def test_constrained_output_that_is_not_an_answer_stays_held_back() -> None:
    shown, _ = answer_shown_by(['{"tool": "calculator", ', '"arguments": {"expression": "1"}}'])
    assert shown == []


# -- LLMAgent ------------------------------------------------------------------------------


async def test_deltas_arrive_while_the_model_still_generates(kernel: Kernel) -> None:
    kernel.engine.replies = [["The ", "capital ", HOLD, "is ", "Paris."]]
    ref = await kernel.spawn(llm())
    stream = await ask_stream(ref, "Capital of France?")
    first = await anext(stream)
    second = await anext(stream)
    assert (first, second) == (AgentDelta("The"), AgentDelta(" capital"))
    assert not kernel.engine.gate.is_set()  # the model is held: the turn cannot have ended
    kernel.engine.gate.set()
    deltas, reply = await collect(stream)
    assert deltas == [" is", " Paris."]
    assert reply == AgentReply(
        agent="assistant",
        text="The capital is Paris.",
        thread_id=reply.thread_id,
        prompt_tokens=reply.prompt_tokens,
        completion_tokens=4,
        model_turns=1,
    )
    assert kernel.engine.requests[0].stream is True
    assert await kernel.thread(reply.thread_id) == [
        ("user", "Capital of France?"),
        ("assistant", "The capital is Paris."),
    ]


async def test_a_streamed_and_a_plain_turn_give_the_same_reply(kernel: Kernel) -> None:
    pieces = ["  It ", "costs ", "{", "n} ", "coins.  "]
    kernel.engine.replies = [pieces, pieces]
    ref = await kernel.spawn(llm())
    deltas, streamed = await collect(await ask_stream(ref, "price?"))
    plain = await ref.ask(UserMessage(text="price?", thread_id=streamed.thread_id))
    assert plain.text == streamed.text == "".join(deltas) == "It costs {n} coins."
    assert deltas[:2] == ["It", " costs"]  # the held-back part follows once the step parsed
    assert kernel.engine.requests[1].stream is False


async def test_a_json_final_answer_is_shown_in_one_piece(kernel: Kernel) -> None:
    kernel.engine.replies = [['{"answer": ', '"Paris', ' it is."}']]
    ref = await kernel.spawn(llm())
    deltas, reply = await collect(await ask_stream(ref, "Capital?"))
    assert deltas == ["Paris it is."] and reply.text == "Paris it is."


async def test_tool_call_steps_stream_nothing_of_their_json(kernel: Kernel) -> None:
    kernel.engine.replies = [
        ['{"tool": ', '"calculator", ', '"arguments": {"expression": "6 * 7"}}'],
        ["It ", "is ", "42."],
    ]
    ref = await kernel.spawn(llm(tools=("calculator",)))
    deltas, reply = await collect(await ask_stream(ref, "6 times 7?"))
    assert deltas == ["It", " is", " 42."]
    assert (reply.text, reply.steps, reply.data) == ("It is 42.", 2, {})
    tool_message = (kernel.engine.requests[1].messages or ())[-1]
    assert (tool_message.role, tool_message.content) == ("tool", "calculator result: 42")


async def test_text_shown_before_a_tool_call_counts_as_said(kernel: Kernel) -> None:
    """The documented exception: an interlude stays shown, the next text follows a blank
    line, and the reply's text is everything shown; the answer alone is in its data."""
    kernel.engine.replies = [
        [
            "Let ",
            "me ",
            "compute. ",
            '{"tool": "calculator", ',
            '"arguments": {"expression": "6*7"}}',
        ],
        ['{"answer": "42"}'],
    ]
    ref = await kernel.spawn(llm(tools=("calculator",)))
    deltas, reply = await collect(await ask_stream(ref, "6 times 7?"))
    assert deltas == ["Let", " me", " compute.", "\n\n42"]
    assert reply.text == "".join(deltas) == "Let me compute.\n\n42"
    assert reply.data == {"answer": "42"}
    thread = await kernel.thread(reply.thread_id)
    assert thread[-1] == ("assistant", "42")  # the thread keeps the answer alone
    assert thread[1][1].startswith("Let me compute. {")  # and the interlude inside its step


async def test_malformed_json_output_leaks_nothing_and_the_retry_streams(kernel: Kernel) -> None:
    kernel.engine.replies = [['{"tool": ', '"calculator", "arguments": [1]}'], ["Fine."]]
    ref = await kernel.spawn(llm(tools=("calculator",)))
    deltas, reply = await collect(await ask_stream(ref, "hi"))
    assert deltas == ["Fine."] and (reply.text, reply.steps) == ("Fine.", 2)


async def test_closing_the_stream_cancels_the_turn_and_aborts_inference(kernel: Kernel) -> None:
    kernel.engine.replies = [["Once ", "upon ", HOLD, "a time."], ["Still here."]]
    ref = await kernel.spawn(llm())
    async with await ask_stream(ref, "Tell a story.") as stream:
        assert await anext(stream) == AgentDelta("Once")
    assert stream.closed
    await asyncio.wait_for(kernel.engine.aborted.wait(), 5)  # the request was aborted
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    # the turn is gone (nothing recorded after the user's message) and the agent serves on
    reply = await ref.ask(UserMessage(text="Hello?"))
    assert reply.text == "Still here."
    metrics = await kernel.inference.ask(InferenceStats())
    assert (metrics.in_flight, metrics.waiting) == (0, 0)


async def test_an_inference_failure_is_raised_from_the_iteration(kernel: Kernel) -> None:
    kernel.engine.replies = [["Half ", "an ", RuntimeError("engine hiccup")]]
    ref = await kernel.spawn(llm())
    stream = await ask_stream(ref, "hi")
    assert await anext(stream) == AgentDelta("Half")
    with pytest.raises(AgentError, match="inference failed.*engine hiccup") as caught:
        await collect(stream)
    assert caught.value.agent == "assistant"


async def test_a_refused_turn_is_an_error_from_the_stream(kernel: Kernel) -> None:
    ref = await kernel.spawn(llm(permissions=Permissions(inference=False)))
    stream = await ask_stream(ref, "hi")
    with pytest.raises(AgentError, match="may not use inference"):
        await stream.reply()
    assert kernel.engine.requests == []


async def test_an_agent_stopped_mid_turn_ends_the_stream_with_an_error(kernel: Kernel) -> None:
    kernel.engine.replies = [["Once ", "upon ", HOLD, "a time."]]
    ref = await kernel.spawn(llm())
    stream = await ask_stream(ref, "Tell a story.")
    assert await anext(stream) == AgentDelta("Once")
    await ref.stop()
    with pytest.raises(AgentError, match="cancelled"):
        await stream.reply()


async def test_reply_drains_the_stream(kernel: Kernel) -> None:
    kernel.engine.replies = [["Bonjour ", "!"]]
    ref = await kernel.spawn(llm())
    reply = await (await ask_stream(ref, "Say hi in French.")).reply()
    assert reply.text == "Bonjour !"


# -- every other agent: the whole reply as one delta -------------------------------------


async def test_a_rule_agent_streams_its_reply_as_one_delta(kernel: Kernel) -> None:
    ref = await kernel.system.spawn(
        RuleAgent, AgentConfig(name="greeter", kind="rule", rules=(Rule(reply="hi {text}"),))
    )
    deltas, reply = await collect(await ask_stream(ref, "Ada"))
    assert deltas == ["hi Ada"] and reply.text == "hi Ada"
    no_match = await kernel.system.spawn(RuleAgent, AgentConfig(name="picky", kind="rule"))
    with pytest.raises(AgentError, match="no rule matches"):
        await (await ask_stream(no_match, "Ada")).reply()


async def test_a_rule_agent_forward_relays_the_other_agents_stream(kernel: Kernel) -> None:
    kernel.engine.replies = [["Order ", HOLD, "42 ", "ships."]]
    await kernel.spawn(llm("orders"))
    router = await kernel.system.spawn(
        RuleAgent,
        AgentConfig(
            name="router",
            kind="rule",
            rules=(Rule(forward="orders"),),
            permissions=Permissions(agents=("orders",)),
        ),
        resolve_agent=kernel.agents.get,
    )
    stream = await ask_stream(router, "Where is order 42?")
    assert await anext(stream) == AgentDelta("Order")  # relayed while the model generates
    kernel.engine.gate.set()
    deltas, reply = await collect(stream)
    assert deltas == [" 42", " ships."]
    assert (reply.agent, reply.text) == ("orders", "Order 42 ships.")


async def test_a_constrained_streamed_answer_shows_its_text_as_it_comes(kernel: Kernel) -> None:
    kernel.engine.replies = [['{"answer": "The', HOLD, " capital", ' is Paris."}']]
    ref = await kernel.spawn(llm(tools=("calculator",)))
    stream = await ask_stream(ref, "Capital of France?")
    assert await anext(stream) == AgentDelta("The")
    assert kernel.engine.requests[0].constraint is not None
    kernel.engine.gate.set()
    deltas, reply = await collect(stream)
    assert deltas == [" capital", " is Paris."]
    assert (reply.text, reply.data) == ("The capital is Paris.", {})

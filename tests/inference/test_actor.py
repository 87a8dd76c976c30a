"""InferenceActor on the fake engine: replies, streaming, engine start, admission (bounds,
priority, fairness), cancellation, and failure (prompt too long, engine death).

Nothing here waits for a guessed duration. Requests are made to overlap by holding the engine's
start (``GatedEngine``) or by long generations; progress is awaited through asks to the actor
(``wait_stats``), probes and events. ``token_delay`` only makes generations long enough to be
caught in flight; no assertion depends on how long anything took.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import pytest

from actoros import (
    Actor,
    ActorRef,
    ActorSystem,
    AskTimeout,
    Context,
    LifecycleEvent,
    ManualClock,
)
from actoros.inference.actor import (
    CompletionStream,
    InferenceActor,
    InferenceMetrics,
    InferenceStats,
    stream,
)
from actoros.inference.engine import EngineOutput
from actoros.inference.errors import (
    EngineUnavailable,
    InferenceError,
    Overloaded,
    PromptTooLong,
)
from actoros.inference.fake_engine import FakeEngine
from actoros.inference.messages import ChatMessage, Completion, Generate, TokenDelta
from actoros.testing import capture_events, spawn_probe

pytestmark = pytest.mark.timeout(10)

#: long enough (20 s) to be in flight whenever the test looks, and never to finish by itself
ENDLESS = Generate(prompt="keep going", max_tokens=2000, ignore_eos=True)
ENDLESS_PACE = 0.01


# -- helpers ---------------------------------------------------------------------------------


class GatedEngine(FakeEngine):
    """A ``FakeEngine`` whose start completes once ``gate`` is set, and which records the
    most requests it held at once (``peak``)."""

    def __init__(self, gate: asyncio.Event, **options: Any) -> None:
        super().__init__(**options)
        self.gate = gate
        self.peak = 0

    async def start(self) -> None:
        await self.gate.wait()
        await super().start()

    async def generate(
        self, request_id: str, prompt: Any, gen: Generate
    ) -> AsyncIterator[EngineOutput]:
        # closing this generator closes the engine's (as VLLMEngine.generate does)
        async with contextlib.aclosing(super().generate(request_id, prompt, gen)) as outputs:
            async for out in outputs:
                self.peak = max(self.peak, self.num_unfinished())
                yield out


class Engines:
    """The inference actor's engine factory: builds a ``GatedEngine`` per call, keeps them all.

    ``options`` go to every engine; ``first`` overrides them for the first engine only (e.g.
    ``first={"fail_start": True}``). With ``gated=True`` the engines start once ``open()``.
    """

    def __init__(
        self, *, gated: bool = False, first: dict[str, Any] | None = None, **options: Any
    ) -> None:
        self.options = options
        self.first = first or {}
        self.gate = asyncio.Event()
        if not gated:
            self.gate.set()
        self.built: list[GatedEngine] = []

    def __call__(self) -> GatedEngine:
        options = {**self.options, **(self.first if not self.built else {})}
        engine = GatedEngine(self.gate, **options)
        self.built.append(engine)
        return engine

    @property
    def engine(self) -> GatedEngine:
        """The engine built last: the one the actor's current incarnation uses."""
        return self.built[-1]

    def open(self) -> None:
        self.gate.set()


def streaming(gen: Generate) -> Generate:
    return msgspec.structs.replace(gen, stream=True)


async def spawn_inference(system: ActorSystem, engines: Engines, **options: Any) -> ActorRef:
    return await system.spawn(InferenceActor, engines, name="llm", **options)


async def stats(ref: ActorRef) -> InferenceMetrics:
    metrics: InferenceMetrics = await ref.ask(InferenceStats())
    return metrics


async def wait_stats(
    ref: ActorRef, check: Callable[[InferenceMetrics], bool], *, timeout: float = 3.0
) -> InferenceMetrics:
    """Ask for metrics until ``check`` holds. Each ask is a round trip through the actor's
    mailbox, so this follows the actor's progress; ``timeout`` (wall clock) is a safety net."""
    metrics = await stats(ref)
    async with asyncio.timeout(timeout):
        while not check(metrics):
            await asyncio.sleep(0)
            metrics = await stats(ref)
    return metrics


async def settle_engine(ref: ActorRef, engine: FakeEngine) -> None:
    """Wait until the actor has nothing in flight, then check the engine holds nothing."""
    await wait_stats(ref, lambda m: m.in_flight == 0)
    assert engine.num_unfinished() == 0


class Agent(Actor):
    """Asks the inference actor from inside its receive, as an LLM agent does: a tuple of
    ``Generate``s is asked all at once, and the reply is their ``Completion``s."""

    def __init__(self, inference: ActorRef) -> None:
        self.inference = inference

    async def receive(self, message: Any, ctx: Context) -> Any:
        return await asyncio.gather(*(self.inference.ask(g, timeout=None) for g in message))


class Echo(Actor):
    def receive(self, message: Any, ctx: Context) -> Any:
        return message


# -- replies ---------------------------------------------------------------------------------


async def test_an_ask_returns_a_completion_with_usage_and_timings(rt_system: ActorSystem) -> None:
    llm = await spawn_inference(rt_system, Engines())
    completion = await llm.ask(Generate(prompt="one two three", max_tokens=5, ignore_eos=True))
    assert isinstance(completion, Completion)
    assert completion.finish_reason == "length"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (3, 5)
    assert len(completion.text.split()) == 5
    timings = completion.timings
    assert 0 <= timings.queued <= timings.ttft <= timings.total


async def test_chat_messages_go_through_the_engines_chat_layout(rt_system: ActorSystem) -> None:
    engines = Engines()
    llm = await spawn_inference(rt_system, engines)
    gen = Generate(messages=(ChatMessage("user", "hi there"),), max_tokens=3)
    completion = await llm.ask(gen)
    assert completion.usage.prompt_tokens == engines.engine.render(gen)[1] == 4


async def test_same_prompt_and_seed_give_the_same_text(rt_system: ActorSystem) -> None:
    llm = await spawn_inference(rt_system, Engines())
    gen = Generate(prompt="what is an actor", max_tokens=16, seed=3)
    first, second = await asyncio.gather(llm.ask(gen), llm.ask(gen))
    assert first.text == second.text and first.request_id != second.request_id


async def test_stop_strings_and_eos_end_with_stop_max_tokens_with_length(
    rt_system: ActorSystem,
) -> None:
    llm = await spawn_inference(rt_system, Engines(eos_after=(4, 4)))
    full = await llm.ask(Generate(prompt="q", max_tokens=12, ignore_eos=True))
    assert full.finish_reason == "length" and full.usage.completion_tokens == 12
    stop = full.text.split()[5]
    cut = await llm.ask(Generate(prompt="q", max_tokens=12, ignore_eos=True, stop=(stop,)))
    assert cut.finish_reason == "stop" and cut.text == full.text[: full.text.find(stop)]
    eos = await llm.ask(Generate(prompt="q", max_tokens=12))
    assert eos.finish_reason == "stop" and eos.usage.completion_tokens == 4
    assert eos.text == " ".join(full.text.split()[:4]) + " "


async def test_metrics_count_completions_and_tokens(rt_system: ActorSystem) -> None:
    llm = await spawn_inference(rt_system, Engines())
    for _ in range(3):
        await llm.ask(Generate(prompt="q", max_tokens=4, ignore_eos=True))
    metrics = await stats(llm)
    assert metrics.engine_ready
    assert (metrics.completed, metrics.failed, metrics.output_tokens) == (3, 0, 12)
    assert (metrics.waiting, metrics.in_flight, metrics.engine_unfinished) == (0, 0, 0)
    assert metrics.ttft_p50_s is not None and metrics.ttft_p50_s >= 0


async def test_an_unknown_message_fails_that_ask_and_keeps_the_engine(
    rt_system: ActorSystem,
) -> None:
    engines = Engines()
    llm = await spawn_inference(rt_system, engines)
    with capture_events(rt_system, LifecycleEvent) as events:
        with pytest.raises(InferenceError, match="takes Generate or InferenceStats, not str"):
            await llm.ask("hello")
        llm.tell("hello")  # a tell has nobody to answer: a dead letter
        assert (await llm.ask(Generate(prompt="q", max_tokens=2))).text
    assert len(engines.built) == 1  # no restart, so no second engine
    assert not events.of(lambda e: e.kind in ("failed", "restarted"))


# -- streaming -------------------------------------------------------------------------------


def check_stream(items: list[Any], max_tokens: int) -> Completion:
    """Deltas numbered 0..n-1 in order, then one Completion whose text they make up."""
    *deltas, completion = items
    assert isinstance(completion, Completion)
    assert all(isinstance(d, TokenDelta) for d in deltas)
    assert [d.index for d in deltas] == list(range(max_tokens))
    assert {d.request_id for d in deltas} == {completion.request_id}
    assert "".join(d.text for d in deltas) == completion.text
    assert completion.usage.completion_tokens == max_tokens
    return completion


async def test_a_streaming_ask_yields_deltas_in_order_then_the_completion(
    rt_system: ActorSystem,
) -> None:
    llm = await spawn_inference(rt_system, Engines(token_delay=0.0005))
    gen = Generate(prompt="q", max_tokens=8, ignore_eos=True, stream=True)
    completion_stream = await llm.ask(gen)
    assert isinstance(completion_stream, CompletionStream)
    items = [item async for item in completion_stream]
    completion = check_stream(items, 8)
    assert completion.text == (await llm.ask(Generate(prompt="q", max_tokens=8))).text
    assert [item async for item in completion_stream] == []  # ended for good


async def test_the_stream_helper_streams_even_a_non_streaming_generate(
    rt_system: ActorSystem,
) -> None:
    llm = await spawn_inference(rt_system, Engines())
    items = [
        item async for item in stream(llm, Generate(prompt="q", max_tokens=5, ignore_eos=True))
    ]
    check_stream(items, 5)


async def test_completion_drains_a_stream_to_its_completion(rt_system: ActorSystem) -> None:
    llm = await spawn_inference(rt_system, Engines())
    completion_stream = await llm.ask(Generate(prompt="q", max_tokens=3, stream=True))
    completion = await completion_stream.completion()
    assert completion.usage.completion_tokens == 3


async def test_a_streaming_tell_sends_the_requester_deltas_then_the_completion(
    rt_system: ActorSystem,
) -> None:
    llm = await spawn_inference(rt_system, Engines())
    agent, probe = await spawn_probe(rt_system, "agent")
    llm.tell(Generate(prompt="q", max_tokens=6, ignore_eos=True, stream=True), sender=agent)
    completion = await probe.wait_for(Completion)
    check_stream(probe.messages, 6)
    assert set(probe.senders) == {llm}
    assert completion.finish_reason == "length"


async def test_a_plain_tell_sends_the_requester_the_completion_or_the_error(
    rt_system: ActorSystem,
) -> None:
    llm = await spawn_inference(rt_system, Engines(max_model_len=16))
    agent, probe = await spawn_probe(rt_system, "agent")
    llm.tell(Generate(prompt="q", max_tokens=4), sender=agent)
    completion = await probe.expect(Completion)
    assert completion.usage.completion_tokens == 4
    llm.tell(Generate(prompt="q " * 20, max_tokens=4), sender=agent)
    error = await probe.expect(PromptTooLong)
    assert error.prompt_tokens == 20


# -- engine start ----------------------------------------------------------------------------


async def test_requests_sent_while_the_engine_starts_wait_and_are_served(
    rt_system: ActorSystem,
) -> None:
    engines = Engines(gated=True)
    llm = await spawn_inference(rt_system, engines)  # returns while the engine still starts
    echo = await rt_system.spawn(Echo)
    pending = asyncio.create_task(llm.ask(Generate(prompt="q", max_tokens=3)))
    metrics = await wait_stats(llm, lambda m: m.waiting == 1)
    assert not metrics.engine_ready and metrics.in_flight == 0
    assert await echo.ask("still here") == "still here"  # the loop is not blocked
    assert not pending.done() and not engines.engine.started
    engines.open()
    completion = await pending
    assert completion.usage.completion_tokens == 3
    assert completion.timings.queued > 0
    assert (await stats(llm)).engine_ready


async def test_a_slow_engine_start_keeps_other_actors_answering(rt_system: ActorSystem) -> None:
    llm = await rt_system.spawn(InferenceActor, lambda: FakeEngine(start_delay=0.2))
    echo = await rt_system.spawn(Echo)
    finished: list[str] = []

    async def generate() -> Completion:
        completion: Completion = await llm.ask(Generate(prompt="q", max_tokens=2))
        finished.append("generate")
        return completion

    pending = asyncio.create_task(generate())
    assert await echo.ask("ping") == "ping"
    finished.append("echo")
    completion = await pending
    assert finished == ["echo", "generate"]
    assert completion.finish_reason in ("stop", "length")


# -- admission -------------------------------------------------------------------------------


async def test_in_flight_is_bounded_by_the_engines_max_num_seqs_by_default(
    rt_system: ActorSystem,
) -> None:
    engines = Engines(gated=True, max_num_seqs=3)
    llm = await spawn_inference(rt_system, engines)
    gen = Generate(prompt="q", max_tokens=4, ignore_eos=True)
    pending = [asyncio.create_task(llm.ask(gen)) for _ in range(10)]
    await wait_stats(llm, lambda m: m.waiting == 10)
    engines.open()
    completions = await asyncio.gather(*pending)
    assert engines.engine.peak == 3
    assert len({c.request_id for c in completions}) == 10


async def test_max_in_flight_overrides_the_engines_bound(rt_system: ActorSystem) -> None:
    engines = Engines(gated=True, max_num_seqs=64)
    llm = await spawn_inference(rt_system, engines, max_in_flight=2)
    gen = Generate(prompt="q", max_tokens=4, ignore_eos=True)
    pending = [asyncio.create_task(llm.ask(gen)) for _ in range(6)]
    await wait_stats(llm, lambda m: m.waiting == 6)
    engines.open()
    await asyncio.gather(*pending)
    assert engines.engine.peak == 2


async def test_waiting_requests_are_admitted_by_priority_then_in_arrival_order(
    rt_system: ActorSystem,
) -> None:
    engines = Engines(gated=True)
    llm = await spawn_inference(rt_system, engines, max_in_flight=1)
    priorities = [5, 0, 3, 0, 1, 5]
    pending = [
        asyncio.create_task(llm.ask(Generate(prompt=f"n{i}", max_tokens=2, priority=p)))
        for i, p in enumerate(priorities)
    ]
    await wait_stats(llm, lambda m: m.waiting == len(priorities))
    engines.open()
    ids = [c.request_id for c in await asyncio.gather(*pending)]
    by_priority = sorted(range(len(priorities)), key=lambda i: priorities[i])  # stable: FIFO
    assert engines.engine.generated == [ids[i] for i in by_priority]


async def test_one_agents_thousand_requests_do_not_starve_another_agents_one(
    rt_system: ActorSystem,
) -> None:
    engines = Engines(gated=True)
    llm = await spawn_inference(rt_system, engines, max_in_flight=1)
    flooder = await rt_system.spawn(Agent, llm, name="flooder")
    single = await rt_system.spawn(Agent, llm, name="single")
    flood = tuple(Generate(prompt=f"f{i}", max_tokens=1) for i in range(1000))
    flooding = asyncio.create_task(flooder.ask(flood, timeout=None))
    await wait_stats(llm, lambda m: m.waiting == 1000)
    asking = asyncio.create_task(single.ask((Generate(prompt="s", max_tokens=1),)))
    await wait_stats(llm, lambda m: m.waiting == 1001)
    engines.open()
    [answer] = await asking
    # admission alternates between the two agents: the single request goes second
    assert engines.engine.generated.index(answer.request_id) == 1
    assert len(await flooding) == 1000


async def test_a_full_waiting_queue_refuses_with_overloaded(rt_system: ActorSystem) -> None:
    engines = Engines(gated=True)
    llm = await spawn_inference(rt_system, engines, max_waiting=3)
    gen = Generate(prompt="q", max_tokens=2)
    pending = [asyncio.create_task(llm.ask(gen)) for _ in range(3)]
    await wait_stats(llm, lambda m: m.waiting == 3)
    with pytest.raises(Overloaded, match="max_waiting=3"):
        await llm.ask(gen)
    with pytest.raises(Overloaded):
        await llm.ask(Generate(prompt="q", stream=True))
    metrics = await stats(llm)
    assert (metrics.waiting, metrics.failed) == (3, 2)
    engines.open()
    assert len(await asyncio.gather(*pending)) == 3
    await llm.ask(gen)  # room again


# -- cancellation ----------------------------------------------------------------------------


async def test_an_ask_that_times_out_aborts_its_engine_request(
    system: ActorSystem, clock: ManualClock
) -> None:
    engines = Engines(token_delay=ENDLESS_PACE)
    llm = await spawn_inference(system, engines)
    pending = asyncio.create_task(llm.ask(ENDLESS, timeout=1.0))
    await wait_stats(llm, lambda m: m.in_flight == 1)
    assert engines.engine.num_unfinished() == 1
    clock.advance(1.0)
    with pytest.raises(AskTimeout):
        await pending
    await settle_engine(llm, engines.engine)
    assert (await llm.ask(Generate(prompt="q", max_tokens=2))).text  # still serving


async def test_an_ask_that_times_out_while_waiting_is_never_started(
    system: ActorSystem, clock: ManualClock
) -> None:
    engines = Engines(gated=True)
    llm = await spawn_inference(system, engines)
    pending = asyncio.create_task(llm.ask(Generate(prompt="late", max_tokens=2), timeout=1.0))
    await wait_stats(llm, lambda m: m.waiting == 1)
    clock.advance(1.0)
    with pytest.raises(AskTimeout):
        await pending
    await wait_stats(llm, lambda m: m.waiting == 0)
    engines.open()
    served = await llm.ask(Generate(prompt="q", max_tokens=2))
    assert engines.engine.generated == [served.request_id]


async def test_a_cancelled_ask_aborts_its_engine_request(rt_system: ActorSystem) -> None:
    engines = Engines(token_delay=ENDLESS_PACE)
    llm = await spawn_inference(rt_system, engines)
    pending = asyncio.create_task(llm.ask(ENDLESS))
    await wait_stats(llm, lambda m: m.in_flight == 1)
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    await settle_engine(llm, engines.engine)


async def test_a_requester_that_stops_has_its_requests_aborted(rt_system: ActorSystem) -> None:
    engines = Engines(token_delay=ENDLESS_PACE)
    llm = await spawn_inference(rt_system, engines, max_in_flight=1)
    agent, probe = await spawn_probe(rt_system, "agent")
    for _ in range(3):  # one runs, two wait
        llm.tell(ENDLESS, sender=agent)
    await wait_stats(llm, lambda m: (m.in_flight, m.waiting) == (1, 2))
    await agent.stop()
    metrics = await wait_stats(llm, lambda m: m.in_flight == 0)
    assert metrics.waiting == 0
    assert engines.engine.num_unfinished() == 0
    assert len(engines.engine.generated) == 1


async def test_a_requester_killed_while_asking_has_its_request_aborted(
    rt_system: ActorSystem,
) -> None:
    engines = Engines(token_delay=ENDLESS_PACE)
    llm = await spawn_inference(rt_system, engines)
    agent = await rt_system.spawn(Agent, llm, shutdown=0.01)
    agent.tell((ENDLESS,))
    await wait_stats(llm, lambda m: m.in_flight == 1)
    await agent.stop()  # it never finishes its message: killed after its shutdown timeout
    await settle_engine(llm, engines.engine)


async def test_requests_of_a_requester_that_stopped_before_they_were_admitted_are_dropped(
    rt_system: ActorSystem,
) -> None:
    class SendAndQuit(Actor):
        def receive(self, message: Any, ctx: Context) -> None:
            for _ in range(3):
                message.tell(ENDLESS, sender=ctx.self)
            ctx.stop()

    engines = Engines(token_delay=ENDLESS_PACE)
    llm = await spawn_inference(rt_system, engines)
    quitter = await rt_system.spawn(SendAndQuit, restart="temporary")
    quitter.tell(llm)
    await wait_stats(llm, lambda m: (m.in_flight, m.waiting) == (0, 0))
    assert engines.engine.num_unfinished() == 0
    assert (await llm.ask(Generate(prompt="q", max_tokens=2))).text


async def test_requests_told_for_a_requester_already_gone_are_dropped(
    rt_system: ActorSystem,
) -> None:
    engines = Engines(token_delay=ENDLESS_PACE)
    llm = await spawn_inference(rt_system, engines)
    gone, _ = await spawn_probe(rt_system, "gone")
    await gone.stop()
    for _ in range(3):
        llm.tell(ENDLESS, sender=gone)
    await wait_stats(llm, lambda m: (m.in_flight, m.waiting) == (0, 0))
    assert engines.engine.num_unfinished() == 0
    assert (await llm.ask(Generate(prompt="q", max_tokens=2))).text


async def test_closing_a_stream_early_aborts_its_engine_request(rt_system: ActorSystem) -> None:
    engines = Engines(token_delay=ENDLESS_PACE)
    llm = await spawn_inference(rt_system, engines)
    items = stream(llm, ENDLESS)
    received = []
    async for item in items:
        received.append(item)
        if len(received) == 2:
            break
    await items.aclose()  # type: ignore[attr-defined]
    assert [d.index for d in received] == [0, 1]
    await settle_engine(llm, engines.engine)
    assert (await stats(llm)).completed == 0


async def test_closing_a_completion_stream_aborts_its_engine_request(
    rt_system: ActorSystem,
) -> None:
    engines = Engines(token_delay=ENDLESS_PACE)
    llm = await spawn_inference(rt_system, engines)
    completion_stream = await llm.ask(streaming(ENDLESS))
    assert isinstance(await completion_stream.__anext__(), TokenDelta)
    await completion_stream.aclose()
    with pytest.raises(StopAsyncIteration):
        await completion_stream.__anext__()
    await settle_engine(llm, engines.engine)


# -- failure ---------------------------------------------------------------------------------


async def test_a_prompt_too_long_fails_that_request_and_names_both_lengths(
    rt_system: ActorSystem,
) -> None:
    engines = Engines(max_model_len=16)
    llm = await spawn_inference(rt_system, engines)
    with pytest.raises(PromptTooLong) as too_long:
        await llm.ask(Generate(prompt="word " * 20, max_tokens=4))
    assert (too_long.value.prompt_tokens, too_long.value.max_model_len) == (20, 16)
    assert "20 tokens" in str(too_long.value) and "16 tokens" in str(too_long.value)
    with pytest.raises(PromptTooLong, match="max_tokens is 10"):
        await llm.ask(Generate(prompt="word " * 10, max_tokens=10))  # fits alone, not with output
    completion = await llm.ask(Generate(prompt="word " * 10, max_tokens=6))
    assert completion.usage.prompt_tokens == 10
    assert (await stats(llm)).failed == 2
    assert len(engines.built) == 1


LONG_PROMPT = "x" * 100_000  # one fake-engine token, but 100,000 characters to tokenize


class SlowRenderEngine(FakeEngine):
    """A ``FakeEngine`` whose render of ``LONG_PROMPT`` blocks its thread until the test sets
    ``released`` (from the loop) or 5 s pass; ``blocked_loop`` says the 5 s passed: the
    render ran on the loop, which then could not serve the request that sets ``released``."""

    def __init__(self) -> None:
        super().__init__()
        self.released = threading.Event()
        self.blocked_loop = False

    def render(self, gen: Generate) -> tuple[str, int]:
        if gen.prompt == LONG_PROMPT:
            self.blocked_loop = not self.released.wait(timeout=5)
        return super().render(gen)


async def test_a_long_prompt_renders_off_the_loop_while_short_ones_are_served(
    rt_system: ActorSystem,
) -> None:
    engine = SlowRenderEngine()
    llm = await rt_system.spawn(InferenceActor, lambda: engine, name="llm")
    long = asyncio.ensure_future(llm.ask(Generate(prompt=LONG_PROMPT, max_tokens=2), timeout=8))
    short = await llm.ask(Generate(prompt="hello", max_tokens=2), timeout=8)
    assert short.usage.completion_tokens == 2
    assert not long.done()  # its render still waits for the test
    engine.released.set()
    completion = await long
    assert completion.usage.prompt_tokens == 1
    assert not engine.blocked_loop


async def test_engine_death_fails_every_request_and_the_actor_restarts_with_a_fresh_engine(
    rt_system: ActorSystem,
) -> None:
    engines = Engines(token_delay=ENDLESS_PACE)
    llm = await spawn_inference(rt_system, engines, max_in_flight=2)
    agent, probe = await spawn_probe(rt_system, "agent")
    asks = [asyncio.create_task(llm.ask(ENDLESS)) for _ in range(3)]
    streamed = await llm.ask(streaming(ENDLESS))
    llm.tell(streaming(ENDLESS), sender=agent)
    await wait_stats(llm, lambda m: (m.in_flight, m.waiting) == (2, 3))
    dead = engines.engine
    with capture_events(rt_system, LifecycleEvent) as events:
        dead.kill()
        for pending in asks:
            with pytest.raises(EngineUnavailable):
                await pending
        with pytest.raises(EngineUnavailable):
            await streamed.completion()
        await probe.wait_for(EngineUnavailable)
        await events.wait_for(LifecycleEvent("/llm", "restarted"))
    assert events.of(lambda e: e.kind == "failed")
    assert len(engines.built) == 2 and engines.engine is not dead
    assert dead.num_unfinished() == 0 and dead.shutdowns == 1
    completion = await llm.ask(Generate(prompt="q", max_tokens=3))
    assert completion.usage.completion_tokens == 3
    assert engines.engine.generated == [completion.request_id]


async def test_an_engine_that_fails_to_start_fails_waiting_requests_and_is_rebuilt(
    rt_system: ActorSystem,
) -> None:
    engines = Engines(gated=True, first={"fail_start": True})
    llm = await spawn_inference(rt_system, engines)
    pending = asyncio.create_task(llm.ask(Generate(prompt="q", max_tokens=2)))
    await wait_stats(llm, lambda m: m.waiting == 1)
    with capture_events(rt_system, LifecycleEvent) as events:
        engines.open()
        with pytest.raises(EngineUnavailable, match="failed to start"):
            await pending
        await events.wait_for(LifecycleEvent("/llm", "restarted"))
    assert (await llm.ask(Generate(prompt="q", max_tokens=2))).usage.completion_tokens == 2
    assert len(engines.built) == 2


async def test_an_engine_that_died_while_idle_fails_the_next_request_then_recovers(
    rt_system: ActorSystem,
) -> None:
    engines = Engines()
    llm = await spawn_inference(rt_system, engines)
    await llm.ask(Generate(prompt="q", max_tokens=2))
    with capture_events(rt_system, LifecycleEvent) as events:
        engines.engine.kill()
        with pytest.raises(EngineUnavailable, match="died"):
            await llm.ask(Generate(prompt="q", max_tokens=2))
        await events.wait_for(LifecycleEvent("/llm", "restarted"))
    assert (await llm.ask(Generate(prompt="q", max_tokens=2))).usage.completion_tokens == 2
    assert len(engines.built) == 2


async def test_a_request_the_engine_aborts_on_its_own_completes_with_abort(
    rt_system: ActorSystem,
) -> None:
    engines = Engines(token_delay=ENDLESS_PACE)
    llm = await spawn_inference(rt_system, engines)
    pending = asyncio.create_task(llm.ask(ENDLESS))
    await wait_stats(llm, lambda m: m.in_flight == 1)
    await engines.engine.abort(engines.engine.generated[0])
    completion = await pending
    assert completion.finish_reason == "abort"
    assert completion.usage.completion_tokens == len(completion.text.split())


async def test_bounds_must_be_positive(rt_system: ActorSystem) -> None:
    with pytest.raises(ValueError, match="max_in_flight"):
        await spawn_inference(rt_system, Engines(), max_in_flight=0)
    with pytest.raises(ValueError, match="max_waiting"):
        await rt_system.spawn(InferenceActor, Engines(), max_waiting=-1)


async def test_stopping_the_actor_fails_its_requests_and_shuts_the_engine_down(
    rt_system: ActorSystem,
) -> None:
    engines = Engines(token_delay=ENDLESS_PACE)
    llm = await spawn_inference(rt_system, engines, max_in_flight=1)
    asks = [asyncio.create_task(llm.ask(ENDLESS)) for _ in range(2)]
    await wait_stats(llm, lambda m: (m.in_flight, m.waiting) == (1, 1))
    await llm.stop()
    for pending in asks:
        with pytest.raises(EngineUnavailable, match="stopped"):
            await pending
    assert engines.engine.num_unfinished() == 0 and engines.engine.shutdowns == 1


# -- metrics in the logs ---------------------------------------------------------------------


async def test_busy_actor_logs_queue_depth_in_flight_tokens_per_s_and_ttft(
    rt_system: ActorSystem,
) -> None:
    import logging

    import structlog

    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    try:
        await _logged_stats(rt_system)
    finally:
        structlog.configure(**saved)


async def _logged_stats(rt_system: ActorSystem) -> None:
    import structlog

    with structlog.testing.capture_logs() as logs:
        inference = await rt_system.spawn(
            InferenceActor, lambda: FakeEngine(token_delay=0.001), log_every=0.005
        )
        await inference.ask(Generate(prompt="hi", max_tokens=4, ignore_eos=True))
        for _ in range(2000):  # a bounded wait for the reporter's next turn
            if any(e["event"] == "inference.stats" and e["completed"] for e in logs):
                break
            await asyncio.sleep(0.001)
    stats = [e for e in logs if e["event"] == "inference.stats"]
    assert stats, "no inference.stats line was logged"
    line = stats[-1]
    for key in ("waiting", "in_flight", "tokens_per_s", "ttft_p50_s", "completed"):
        assert key in line
    assert line["completed"] == 1 and line["actor"] == inference.path

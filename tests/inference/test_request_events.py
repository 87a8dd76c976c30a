"""``InferenceRequestDone``: the inference actor reports every request that ends — completed,
aborted or failed — exactly once, on the system event stream, for whoever subscribes (the
gateway's metrics do).

On the fake engine. Requests are held in the queue by an engine whose start waits on a gate,
or kept in flight by long generations; nothing waits for a guessed duration.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actoros import Actor, ActorSystem, AskTimeout, Context, ManualClock
from actoros.inference.actor import InferenceActor, InferenceMetrics, InferenceStats
from actoros.inference.errors import EngineUnavailable, Overloaded, PromptTooLong
from actoros.inference.fake_engine import FakeEngine
from actoros.inference.messages import Completion, Generate, InferenceRequestDone
from actoros.testing import capture_events, spawn_probe

from .conftest import HeldEngine

pytestmark = pytest.mark.timeout(10)

#: in flight whenever the test looks (2000 tokens at 10 ms), never finished by itself
ENDLESS = Generate(prompt="keep going", max_tokens=2000, ignore_eos=True)


class Asker(Actor):
    """Asks the inference actor from inside its receive, as an agent does."""

    def __init__(self, inference: Any) -> None:
        self.inference = inference

    async def receive(self, message: Any, ctx: Context) -> Any:
        return await self.inference.ask(message, timeout=None)


async def spawn_llm(
    system: ActorSystem, *, gate: asyncio.Event | None = None, **options: Any
) -> tuple[Any, list[FakeEngine]]:
    """The inference actor on a fake engine; ``options`` split between engine and actor."""
    actor_options = {k: options.pop(k) for k in ("max_in_flight", "max_waiting") if k in options}
    built: list[FakeEngine] = []

    def factory() -> FakeEngine:
        engine = HeldEngine(gate, **options) if gate is not None else FakeEngine(**options)
        built.append(engine)
        return engine

    ref = await system.spawn(InferenceActor, factory, name="llm", **actor_options)
    return ref, built


async def wait_stats(ref: Any, check: Any) -> InferenceMetrics:
    """Ask for the actor's metrics until ``check`` holds (each ask follows its progress)."""
    async with asyncio.timeout(5.0):
        while True:
            metrics: InferenceMetrics = await ref.ask(InferenceStats())
            if check(metrics):
                return metrics
            await asyncio.sleep(0)


async def test_a_completed_ask_reports_its_usage_and_the_completions_timings(
    rt_system: ActorSystem,
) -> None:
    llm, _ = await spawn_llm(rt_system)
    with capture_events(rt_system, InferenceRequestDone) as done:
        completion: Completion = await llm.ask(
            Generate(prompt="one two three", max_tokens=5, ignore_eos=True)
        )
        event = await done.wait_for()
    assert event == InferenceRequestDone(
        request_id=completion.request_id,
        requester=None,  # asked from outside any actor
        prompt_tokens=3,
        completion_tokens=5,
        queued=completion.timings.queued,
        ttft=completion.timings.ttft,
        total=completion.timings.total,
        finish_reason="length",
    )
    assert 0 <= event.queued <= event.ttft <= event.total


async def test_the_event_names_the_asking_actor_by_path(rt_system: ActorSystem) -> None:
    llm, _ = await spawn_llm(rt_system)
    asker = await rt_system.spawn(Asker, llm, name="asker")
    with capture_events(rt_system, InferenceRequestDone) as done:
        completion = await asker.ask(Generate(prompt="q", max_tokens=3))
        event = await done.wait_for()
    assert (event.request_id, event.requester) == (completion.request_id, "/asker")
    assert event.finish_reason in ("stop", "length") and event.error is None


async def test_a_stream_closed_early_reports_an_abort_with_the_tokens_so_far(
    rt_system: ActorSystem,
) -> None:
    llm, built = await spawn_llm(rt_system, token_delay=0.01)
    with capture_events(rt_system, InferenceRequestDone) as done:
        stream = await llm.ask(Generate(prompt="q", max_tokens=2000, ignore_eos=True, stream=True))
        seen = [await stream.__anext__() for _ in range(3)]
        await stream.aclose()
        event = await done.wait_for()
    assert event.request_id == stream.request_id == seen[0].request_id
    assert event.finish_reason == "abort" and event.error is None
    assert event.completion_tokens >= 3 and event.ttft is not None
    await wait_stats(llm, lambda m: m.in_flight == 0)
    assert built[-1].num_unfinished() == 0
    assert len(done) == 1


async def test_a_prompt_too_long_reports_an_error_with_its_type_and_message(
    rt_system: ActorSystem,
) -> None:
    llm, _ = await spawn_llm(rt_system, max_model_len=16)
    with capture_events(rt_system, InferenceRequestDone) as done:
        with pytest.raises(PromptTooLong) as raised:
            await llm.ask(Generate(prompt="word " * 20, max_tokens=4))
        event = await done.wait_for()
    assert (event.finish_reason, event.error_type) == ("error", "PromptTooLong")
    assert event.error == str(raised.value)
    assert (event.prompt_tokens, event.completion_tokens, event.ttft) == (20, 0, None)


async def test_an_overloaded_refusal_and_the_queued_requests_each_report_once(
    rt_system: ActorSystem,
) -> None:
    gate = asyncio.Event()
    llm, _ = await spawn_llm(rt_system, gate=gate, max_waiting=2)
    gen = Generate(prompt="q", max_tokens=2, ignore_eos=True)
    with capture_events(rt_system, InferenceRequestDone) as done:
        pending = [asyncio.create_task(llm.ask(gen)) for _ in range(2)]
        await wait_stats(llm, lambda m: m.waiting == 2)
        with pytest.raises(Overloaded):
            await llm.ask(gen)
        refused = await done.wait_for()
        assert (refused.finish_reason, refused.error_type) == ("error", "Overloaded")
        assert refused.ttft is None and refused.completion_tokens == 0
        gate.set()
        completions = await asyncio.gather(*pending)
        await done.wait_for(count=3)
    assert sorted(e.request_id for e in done[1:]) == sorted(c.request_id for c in completions)
    for event in done[1:]:
        assert event.finish_reason == "length" and event.completion_tokens == 2
        # they waited in the queue for the engine's start, then ran
        assert 0 < event.queued <= event.ttft <= event.total


async def test_an_ask_that_times_out_while_waiting_reports_an_abort_without_tokens(
    system: ActorSystem, clock: ManualClock
) -> None:
    gate = asyncio.Event()
    llm, _ = await spawn_llm(system, gate=gate)
    with capture_events(system, InferenceRequestDone) as done:
        pending = asyncio.create_task(llm.ask(Generate(prompt="late", max_tokens=2), timeout=1.0))
        await wait_stats(llm, lambda m: m.waiting == 1)
        clock.advance(1.0)
        with pytest.raises(AskTimeout):
            await pending
        event = await done.wait_for()
        gate.set()
    assert event.finish_reason == "abort" and event.error is None
    assert (event.completion_tokens, event.ttft) == (0, None)
    assert event.queued == event.total  # it never left the queue


async def test_an_ask_that_times_out_in_flight_reports_an_abort(
    system: ActorSystem, clock: ManualClock
) -> None:
    llm, built = await spawn_llm(system, token_delay=0.01)
    with capture_events(system, InferenceRequestDone) as done:
        pending = asyncio.create_task(llm.ask(ENDLESS, timeout=1.0))
        await wait_stats(llm, lambda m: m.in_flight == 1)
        clock.advance(1.0)
        with pytest.raises(AskTimeout):
            await pending
        event = await done.wait_for()
    assert event.finish_reason == "abort" and event.error is None
    assert event.queued <= event.total
    await wait_stats(llm, lambda m: m.in_flight == 0)
    assert built[-1].num_unfinished() == 0 and len(done) == 1


async def test_a_requester_that_stops_has_each_of_its_requests_reported_once(
    rt_system: ActorSystem,
) -> None:
    llm, _ = await spawn_llm(rt_system, token_delay=0.01, max_in_flight=1)
    agent, _probe = await spawn_probe(rt_system, "agent")
    with capture_events(rt_system, InferenceRequestDone) as done:
        for _ in range(3):  # one runs, two wait
            llm.tell(ENDLESS, sender=agent)
        await wait_stats(llm, lambda m: (m.in_flight, m.waiting) == (1, 2))
        await agent.stop()
        await wait_stats(llm, lambda m: (m.in_flight, m.waiting) == (0, 0))
        await done.wait_for(count=3)
    assert len({e.request_id for e in done}) == len(done) == 3
    assert {e.requester for e in done} == {"/agent"}
    assert {(e.finish_reason, e.error) for e in done} == {("abort", None)}


async def test_engine_death_reports_every_waiting_and_running_request_as_failed(
    rt_system: ActorSystem,
) -> None:
    llm, built = await spawn_llm(rt_system, token_delay=0.01, max_in_flight=2)
    with capture_events(rt_system, InferenceRequestDone) as done:
        streams = [
            await llm.ask(Generate(prompt="q", max_tokens=2000, ignore_eos=True, stream=True))
            for _ in range(2)
        ]
        for running in streams:  # both run and have produced a token
            await running.__anext__()
        asks = [asyncio.create_task(llm.ask(ENDLESS)) for _ in range(2)]
        await wait_stats(llm, lambda m: (m.in_flight, m.waiting) == (2, 2))
        built[-1].kill()
        for pending in asks:
            with pytest.raises(EngineUnavailable):
                await pending
        for running in streams:
            with pytest.raises(EngineUnavailable):
                await running.completion()
        await done.wait_for(count=4)
    assert len({e.request_id for e in done}) == len(done) == 4
    assert {(e.finish_reason, e.error_type) for e in done} == {("error", "EngineUnavailable")}
    ran = {e.request_id: e for e in done if e.ttft is not None}
    assert sorted(ran) == sorted(s.request_id for s in streams)
    assert all(e.completion_tokens >= 1 for e in ran.values())


async def test_nothing_is_published_without_a_subscriber_and_requests_still_complete(
    rt_system: ActorSystem,
) -> None:
    llm, _ = await spawn_llm(rt_system)
    assert not rt_system.events.wants(InferenceRequestDone)
    first = await llm.ask(Generate(prompt="q", max_tokens=2))
    with capture_events(rt_system, InferenceRequestDone) as done:
        second = await llm.ask(Generate(prompt="q", max_tokens=2))
        await done.wait_for()
    # only the request that ended while someone listened was reported
    assert [e.request_id for e in done] == [second.request_id] != [first.request_id]

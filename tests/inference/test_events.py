"""``EngineReady`` / ``EngineDown``: the inference actor announces its engine's state.

On the fake engine, on the ``system`` fixture's manual clock (the fake's start is instant
unless held by a gate); each test waits for the events it expects, never for a duration.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actoros import ActorSystem, LifecycleEvent
from actoros.inference.actor import InferenceActor
from actoros.inference.errors import EngineUnavailable
from actoros.inference.events import EngineDown, EngineReady
from actoros.inference.fake_engine import FakeEngine
from actoros.inference.messages import Generate
from actoros.testing import capture_events

pytestmark = pytest.mark.timeout(10)

HELLO = Generate(prompt="hello", max_tokens=4)


def engines(*options: dict[str, Any]) -> tuple[Any, list[FakeEngine]]:
    """A factory that builds a ``FakeEngine`` with the next of ``options`` for each
    incarnation (the last repeats), and the engines it built."""
    built: list[FakeEngine] = []

    def factory() -> FakeEngine:
        engine = FakeEngine(**options[min(len(built), len(options) - 1)])
        built.append(engine)
        return engine

    return factory, built


async def test_a_started_engine_is_announced_with_the_model_and_its_sizes(
    rt_system: ActorSystem,
) -> None:
    factory, _ = engines({"start_delay": 0.01, "max_model_len": 512, "max_num_seqs": 3})
    with capture_events(rt_system, EngineReady, EngineDown) as events:
        ref = await rt_system.spawn(InferenceActor, factory, model="tiny", name="llm")
        ready = await events.wait_for(EngineReady)
    assert ready == EngineReady(path=ref.path, model="tiny", max_model_len=512, max_num_seqs=3)
    assert events == [ready]


async def test_an_engine_that_dies_is_announced_down_and_the_restarted_actor_ready_again(
    system: ActorSystem,
) -> None:
    factory, built = engines({})
    with capture_events(system, EngineReady, EngineDown, LifecycleEvent) as events:
        ref = await system.spawn(InferenceActor, factory, name="llm")
        await events.wait_for(EngineReady)
        built[0].kill()
        with pytest.raises(EngineUnavailable):
            await ref.ask(HELLO)
        await events.wait_for(EngineReady, count=2)
    announced = [e for e in events if isinstance(e, EngineReady | EngineDown)]
    assert [type(e) for e in announced] == [EngineReady, EngineDown, EngineReady]
    down = announced[1]
    assert down.path == ref.path and "the engine died" in down.reason
    assert LifecycleEvent(ref.path, "restarted", None) in events.of(LifecycleEvent)
    assert len(built) == 2


async def test_an_engine_that_fails_to_start_is_announced_down_once_then_its_successor_ready(
    system: ActorSystem,
) -> None:
    factory, built = engines({"fail_start": True}, {})
    with capture_events(system, EngineReady, EngineDown) as events:
        ref = await system.spawn(InferenceActor, factory, name="llm")
        await events.wait_for(EngineReady)
    assert [type(e) for e in events] == [EngineDown, EngineReady]
    assert events[0].path == ref.path and "failed to start" in events[0].reason
    assert len(built) == 2


async def test_a_stopped_actor_announces_its_engine_down_once(system: ActorSystem) -> None:
    factory, _ = engines({})
    with capture_events(system, EngineReady, EngineDown) as events:
        ref = await system.spawn(InferenceActor, factory, name="llm")
        await events.wait_for(EngineReady)
        await ref.stop()
    assert events[1:] == [EngineDown(path=ref.path, reason="the inference actor stopped")]


async def test_an_actor_stopped_while_its_engine_loads_announces_down_and_no_ready(
    system: ActorSystem,
) -> None:
    gate = asyncio.Event()  # never set: the engine is still loading when the actor stops

    class Held(FakeEngine):
        async def start(self) -> None:
            await gate.wait()

    with capture_events(system, EngineReady, EngineDown) as events:
        ref = await system.spawn(InferenceActor, Held, name="llm")
        await ref.stop()
    assert events == [EngineDown(path=ref.path, reason="the inference actor stopped")]

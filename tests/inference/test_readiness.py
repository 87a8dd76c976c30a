"""``wait_engine_ready`` and ``EngineReadiness``: readiness followed from the inference
actor's events, asked of the actor once at most.

On the fake engine and the ``system`` fixture's manual clock: an engine's start is held by a
gate the test opens, and the waiter's timeout fires only when the test advances the clock.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from actoros import ActorSystem, ManualClock
from actoros.inference.actor import InferenceActor
from actoros.inference.errors import EngineUnavailable
from actoros.inference.events import EngineDown, EngineReady
from actoros.inference.fake_engine import FakeEngine
from actoros.inference.messages import Generate
from actoros.inference.readiness import EngineNotReady, EngineReadiness, wait_engine_ready
from actoros.testing import capture_events, test_system

from .conftest import HeldEngine

pytestmark = pytest.mark.timeout(10)

HELLO = Generate(prompt="hello", max_tokens=4)


async def spawn_held(system: ActorSystem) -> tuple[Any, asyncio.Event]:
    gate = asyncio.Event()
    ref = await system.spawn(InferenceActor, lambda: HeldEngine(gate), name="llm")
    return ref, gate


async def test_the_wait_ends_when_a_loading_engine_has_started(system: ActorSystem) -> None:
    ref, gate = await spawn_held(system)
    waiting = asyncio.ensure_future(wait_engine_ready(system, ref.path, timeout=60))
    with capture_events(system, EngineReady) as events:
        await asyncio.sleep(0)  # the waiter subscribes and asks; the engine still loads
        assert not waiting.done()
        gate.set()
        await events.wait_for(EngineReady)
    assert await waiting is True


async def test_an_engine_ready_before_the_wait_is_found_by_its_one_ask(
    system: ActorSystem,
) -> None:
    with capture_events(system, EngineReady) as events:
        ref = await system.spawn(InferenceActor, FakeEngine, name="llm")
        await events.wait_for(EngineReady)  # announced before anyone waits
    assert await wait_engine_ready(system, ref.path, timeout=60) is True


async def test_the_wait_times_out_on_the_systems_clock(
    system: ActorSystem, clock: ManualClock
) -> None:
    ref, _ = await spawn_held(system)  # never opened
    waiting = asyncio.ensure_future(wait_engine_ready(system, ref.path, timeout=900))
    await asyncio.sleep(0)  # the wait has armed its timer
    clock.advance(900)
    with pytest.raises(EngineNotReady, match="did not start in 900 s"):
        await waiting


async def test_the_wait_ends_without_an_engine_when_stop_is_set(system: ActorSystem) -> None:
    ref, _ = await spawn_held(system)
    stop = asyncio.Event()
    waiting = asyncio.ensure_future(wait_engine_ready(system, ref.path, timeout=60, stop=stop))
    await asyncio.sleep(0)
    stop.set()
    assert await waiting is False
    stop_first = asyncio.Event()
    stop_first.set()
    assert await wait_engine_ready(system, ref.path, timeout=60, stop=stop_first) is False


async def test_the_wait_follows_a_restart_to_the_next_engine(system: ActorSystem) -> None:
    built: list[FakeEngine] = []

    def factory() -> FakeEngine:  # the first engine fails to start, the second starts
        built.append(FakeEngine(fail_start=not built))
        return built[-1]

    with capture_events(system, EngineDown) as down:
        ref = await system.spawn(InferenceActor, factory, name="llm")
        ready = await wait_engine_ready(system, ref.path, timeout=60)
    assert ready is True
    assert len(down) == 1 and len(built) == 2


async def test_the_system_failing_ends_the_wait_with_its_failure() -> None:
    async with test_system(max_restarts=1, within=60) as system:
        # an engine that never starts: its restarts exceed the root's intensity
        ref = await system.spawn(InferenceActor, lambda: FakeEngine(fail_start=True), name="llm")
        with pytest.raises(EngineNotReady, match="did not start: "):
            await wait_engine_ready(system, ref.path, timeout=60)
        assert system.failure is not None


async def test_the_flag_follows_down_and_ready_without_asking_the_actor_again(
    system: ActorSystem,
) -> None:
    built: list[FakeEngine] = []

    def factory() -> FakeEngine:
        built.append(FakeEngine())
        return built[-1]

    readiness = EngineReadiness(system.events)
    with capture_events(system, EngineReady, EngineDown) as events:
        ref = await system.spawn(InferenceActor, factory, name="llm")
        await events.wait_for(EngineReady)
        assert readiness.known(ref.path) is True  # from the event: nothing asked
        assert await readiness.ready(ref) is True
        built[0].kill()
        with pytest.raises(EngineUnavailable):
            await ref.ask(HELLO)
        await events.wait_for(EngineDown)
        assert await readiness.ready(ref) is False
        await events.wait_for(EngineReady, count=2)  # the restarted actor, same path
        assert await readiness.ready(ref) is True
        await ref.stop()
        await events.wait_for(EngineDown, count=2)
    # the actor is gone: an ask would fail, the flag answers from the last event
    assert await readiness.ready(ref) is False


async def test_the_flag_asks_once_for_an_engine_it_has_heard_nothing_of(
    system: ActorSystem,
) -> None:
    ref, gate = await spawn_held(system)  # loading: no event yet
    readiness = EngineReadiness(system.events)
    assert readiness.known(ref.path) is None
    assert await readiness.ready(ref) is False  # asked
    assert readiness.known(ref.path) is False
    with capture_events(system, EngineReady) as events:
        gate.set()
        await events.wait_for(EngineReady)
    assert await readiness.ready(ref) is True


async def test_a_dropped_flag_takes_its_subscription_with_it(system: ActorSystem) -> None:
    readiness = EngineReadiness(system.events)
    assert system.events.wants(EngineReady)
    del readiness
    gc.collect()
    system.events.publish(EngineDown(path="/llm", reason="nobody listens"))
    assert not system.events.wants(EngineReady)
    closed = EngineReadiness(system.events)
    closed.close()
    assert not system.events.wants(EngineReady)

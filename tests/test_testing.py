"""actoros.testing: the probe, the test system and event capture behave as documented.

(These test ``actoros/testing.py``; they sit here because every core test leans on them.)
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actoros import (
    Actor,
    ActorSystem,
    ChildSpec,
    Context,
    DeadLetter,
    LifecycleEvent,
    ManualClock,
    SupervisorSpec,
)
from actoros.testing import (
    Probe,
    ProbeRecorder,
    capture_events,
    settle,
    spawn_probe,
    test_system,
)

pytestmark = pytest.mark.timeout(10)


async def test_test_system_runs_on_a_manual_clock_and_shuts_down() -> None:
    async with test_system() as system:
        assert isinstance(system.clock, ManualClock)
        assert system.is_running
    assert not system.is_running


async def test_test_system_can_keep_the_loop_clock() -> None:
    async with test_system(real_time=True) as system:
        assert not isinstance(system.clock, ManualClock)
        loop = asyncio.get_running_loop()
        assert abs(system.clock.time() - loop.time()) < 1.0


async def test_test_system_is_not_collected_as_a_test() -> None:
    assert test_system.__test__ is False  # type: ignore[attr-defined]


async def test_expect_returns_messages_in_order_and_checks_them(system: ActorSystem) -> None:
    ref, probe = await spawn_probe(system, "p")
    assert probe.ref is ref
    for message in ("a", 1, ("t", 2)):
        ref.tell(message)
    assert await probe.expect("a") == "a"  # by value
    assert await probe.expect(int) == 1  # by type
    assert await probe.expect(lambda m: m[0] == "t") == ("t", 2)  # by predicate
    assert probe.unread == 0
    assert probe.messages == ["a", 1, ("t", 2)]


async def test_expect_fails_on_a_message_that_does_not_match(system: ActorSystem) -> None:
    ref, probe = await spawn_probe(system)
    ref.tell("surprise")
    with pytest.raises(AssertionError, match="surprise"):
        await probe.expect(int)


async def test_expect_fails_when_nothing_arrives_in_time(system: ActorSystem) -> None:
    _, probe = await spawn_probe(system)
    with pytest.raises(AssertionError, match="timed out"):
        await probe.expect(timeout=0.01)


async def test_expect_waits_for_a_message_still_to_come(system: ActorSystem) -> None:
    ref, probe = await spawn_probe(system)
    waiting = asyncio.ensure_future(probe.expect("later"))
    await settle()
    assert not waiting.done()
    ref.tell("later")
    assert await waiting == "later"


async def test_wait_for_skips_messages_that_do_not_match(system: ActorSystem) -> None:
    ref, probe = await spawn_probe(system)
    for message in ("x", "y", 3, "z"):
        ref.tell(message)
    assert await probe.wait_for(int) == 3
    assert await probe.expect() == "z"


async def test_expect_no_message(system: ActorSystem) -> None:
    ref, probe = await spawn_probe(system)
    await probe.expect_no_message()
    ref.tell("unexpected")
    with pytest.raises(AssertionError, match="unexpected"):
        await probe.expect_no_message()
    probe.clear()
    await probe.expect_no_message(within=0.01)


async def test_expect_no_message_within_fails_as_soon_as_one_arrives(
    system: ActorSystem,
) -> None:
    ref, probe = await spawn_probe(system)
    checking = asyncio.ensure_future(probe.expect_no_message(within=30.0))
    await settle(10)
    ref.tell("late")
    with pytest.raises(AssertionError, match="late"):
        await asyncio.wait_for(checking, 2.0)


async def test_probe_replies_and_records_senders(system: ActorSystem) -> None:
    other, _ = await spawn_probe(system, "other")
    ref, probe = await spawn_probe(system, "p", reply=lambda m: m * 2)
    assert await ref.ask(21) == 42
    ref.tell(1, sender=other)
    await probe.expect(21)
    assert probe.last_sender is None
    await probe.expect(1)
    assert probe.last_sender is other


async def test_a_probe_recorder_survives_restarts(system: ActorSystem) -> None:
    recorder = ProbeRecorder()
    spec = SupervisorSpec(children=[ChildSpec("probe", Probe, args=(recorder,))])
    sup = await system.spawn_supervisor(spec, name="sup")
    ref = system.lookup("/sup/probe")
    assert ref is not None
    ref.tell("before")
    await recorder.expect("before")
    await sup.stop()
    assert (recorder.starts, recorder.stops) == (1, 1)

    class Crashy(Probe):
        def receive(self, message: Any, ctx: Context) -> Any:
            super().receive(message, ctx)
            if message == "crash":
                raise RuntimeError("crash")
            return None

    probe = ProbeRecorder()
    crashy = await system.spawn(Crashy, probe, name="crashy")
    crashy.tell("crash")
    crashy.tell("after")
    await probe.wait_started(count=2)
    assert await probe.expect("crash") == "crash"
    assert await probe.expect("after") == "after"
    assert probe.starts == 2 and probe.stops == 1


async def test_spawn_probe_under_an_actor_context(system: ActorSystem) -> None:
    class Parent(Actor):
        async def receive(self, message: Any, ctx: Context) -> Any:
            ref, recorder = await spawn_probe(ctx, "child-probe")
            return ref, recorder

    parent = await system.spawn(Parent, name="parent")
    ref, recorder = await parent.ask("spawn")
    assert ref.path == "/parent/child-probe"
    ref.tell("hi")
    await recorder.expect("hi")


async def test_capture_events_filters_and_waits(system: ActorSystem) -> None:
    ref, _ = await spawn_probe(system, "p")
    with capture_events(system, DeadLetter) as dead, capture_events(system) as everything:
        await ref.stop()
        ref.tell("lost")
        assert await dead.wait_for(DeadLetter) == DeadLetter("lost", ref, "recipient stopped")
    assert len(dead) == 1
    assert [type(e) for e in everything] == [LifecycleEvent, DeadLetter]
    assert everything.of(LifecycleEvent) == [LifecycleEvent("/p", "stopped", "stopped")]
    with pytest.raises(AssertionError, match="timed out"):
        await dead.wait_for(DeadLetter, count=2, timeout=0.01)


async def test_settle_reports_whether_the_system_came_to_rest(system: ActorSystem) -> None:
    assert await settle()
    gate = asyncio.Event()

    class Stuck(Actor):
        async def receive(self, message: Any, ctx: Context) -> Any:
            await gate.wait()

    ref = await system.spawn(Stuck)
    ref.tell("hang")
    assert not await settle(max_turns=20)
    gate.set()
    assert await settle()

"""An actor's lifecycle (``core/lifecycle.py``): the states an actor passes through, what a
failing ``on_stop`` does, and what a new incarnation starts from."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from structlog.testing import capture_logs

from actoros import (
    Actor,
    ActorSystem,
    Backoff,
    ChildSpec,
    Context,
    LifecycleEvent,
    ManualClock,
    SupervisorSpec,
)
from actoros.testing import capture_events, settle

pytestmark = pytest.mark.timeout(10)


class Boom(Exception):
    pass


class Crashy(Actor):
    def receive(self, message: Any, ctx: Context) -> Any:
        if message == "crash":
            raise Boom("asked to")
        return message


def state(system: ActorSystem, path: str) -> str:
    (info,) = [i for i in system.snapshot() if i.path == path]
    return info.state


async def test_a_child_in_on_start_is_starting_then_running(system: ActorSystem) -> None:
    entered, gate = asyncio.Event(), asyncio.Event()

    class SlowStart(Actor):
        async def on_start(self) -> None:
            entered.set()
            await gate.wait()

    class Parent(Actor):
        async def receive(self, message: Any, ctx: Context) -> Any:
            return await ctx.spawn(SlowStart, name="slow")

    parent = await system.spawn(Parent, name="parent")
    spawned = asyncio.ensure_future(parent.ask("spawn", timeout=None))
    await entered.wait()
    assert state(system, "/parent/slow") == "starting"
    gate.set()
    child = await spawned
    assert child.path == "/parent/slow" and state(system, "/parent/slow") == "running"


async def test_a_child_waiting_for_its_backoff_is_ended(clock: ManualClock) -> None:
    async with ActorSystem(clock=clock) as system:
        spec = SupervisorSpec(children=[ChildSpec("c", Crashy)], backoff=Backoff(min=1.0))
        await system.spawn_supervisor(spec, name="sup")
        child = system.lookup("/sup/c")
        assert child is not None
        with capture_events(system, LifecycleEvent) as events:
            child.tell("crash")
            await events.wait_for(LifecycleEvent("/sup/c", "failed", "Boom: asked to"))
            assert await settle()  # the supervisor has handled the exit and set the timer
            assert state(system, "/sup/c") == "ended"
            clock.advance(1.0)
            await events.wait_for(LifecycleEvent("/sup/c", "restarted", None))
        assert state(system, "/sup/c") == "running"
        assert await child.ask("back") == "back"


async def test_a_failing_on_stop_is_logged_and_the_actor_still_stops(
    system: ActorSystem,
) -> None:
    class BadStop(Actor):
        async def on_stop(self) -> None:
            raise Boom("on_stop broke")

    ref = await system.spawn(BadStop, name="bad-stop")
    with capture_logs() as logs:
        await ref.stop()
    assert not ref.is_alive and system.lookup("bad-stop") is None
    failures = [e for e in logs if e["event"] == "actor.on_stop_failed"]
    assert [(e["actor"], e["log_level"]) for e in failures] == [("/bad-stop", "error")]
    assert "on_stop broke" in failures[0]["error"]


async def test_a_new_incarnation_starts_with_an_empty_restart_history(
    system: ActorSystem,
) -> None:
    class Parent(Actor):
        supervision = SupervisorSpec(max_restarts=1, within=100.0)

        async def receive(self, message: Any, ctx: Context) -> Any:
            if message == "crash":
                raise Boom("parent asked to")
            return await ctx.spawn(Crashy, name="kid")

    parent = await system.spawn(Parent, name="parent")
    with capture_events(system, LifecycleEvent) as events:
        kid = await parent.ask("spawn")
        kid.tell("crash")  # the one restart max_restarts allows
        await events.wait_for(LifecycleEvent("/parent/kid", "restarted", None))
        with pytest.raises(Boom):
            await parent.ask("crash")  # a new parent: its dynamic child is gone for good
        await events.wait_for(LifecycleEvent("/parent", "restarted", None))
        kid = await parent.ask("spawn")
        kid.tell("crash")  # with the old history this would be one too many
        await events.wait_for(lambda e: e.path == "/parent/kid" and e.kind == "restarted", count=2)
    assert not [e for e in events if e.kind == "escalated"]
    assert await kid.ask("alive") == "alive"

"""The Actor contract: lifecycle hooks, sync and async receive, factories, a failing receive."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actoros import Actor, ActorSystem, Context, DeadLetter, LifecycleEvent
from actoros.testing import capture_events

pytestmark = pytest.mark.timeout(10)


class Boom(Exception):
    pass


class Journal:
    """What the actors of one test did, in order; outlives their incarnations."""

    def __init__(self) -> None:
        self.entries: list[tuple[Any, ...]] = []

    def add(self, *entry: Any) -> None:
        self.entries.append(entry)

    def count(self, *entry: Any) -> int:
        return self.entries.count(entry)


class Hooked(Actor):
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.handled = 0

    async def on_start(self) -> None:
        await asyncio.sleep(0)  # a real suspension: spawn must still wait for the end
        self.journal.add("start", self.ctx.self.path)

    async def on_stop(self) -> None:
        self.journal.add("stop", self.ctx.self.path)

    async def receive(self, message: Any, ctx: Context) -> Any:
        if message == "crash":
            raise Boom("crash requested")
        self.handled += 1
        return self.handled


async def test_spawn_returns_after_on_start_finished(system: ActorSystem) -> None:
    journal = Journal()
    with capture_events(system, LifecycleEvent) as events:
        ref = await system.spawn(Hooked, journal, name="hooked")
        assert journal.entries == [("start", "/hooked")]
        assert events == [LifecycleEvent("/hooked", "started", None)]
    assert ref.path == "/hooked" and ref.name == "hooked"


async def test_spawn_raises_what_on_start_raised_and_leaves_nothing_behind(
    system: ActorSystem,
) -> None:
    class FailsToStart(Actor):
        async def on_start(self) -> None:
            raise Boom("no")

    with pytest.raises(Boom):
        await system.spawn(FailsToStart, name="fails")
    assert system.lookup("fails") is None
    # the name is free again
    ref = await system.spawn(Hooked, Journal(), name="fails")
    assert await ref.ask("x") == 1


async def test_on_stop_runs_once_when_stopped(system: ActorSystem) -> None:
    journal = Journal()
    ref = await system.spawn(Hooked, journal, name="h")
    await ref.stop()
    assert journal.entries == [("start", "/h"), ("stop", "/h")]


async def test_sync_receive_return_value_is_the_reply(system: ActorSystem) -> None:
    class SyncDoubler(Actor):
        def receive(self, message: int, ctx: Context) -> int:
            return message * 2

    ref = await system.spawn(SyncDoubler)
    assert await ref.ask(21) == 42


async def test_async_receive_return_value_is_the_reply(system: ActorSystem) -> None:
    class AsyncDoubler(Actor):
        async def receive(self, message: int, ctx: Context) -> int:
            await asyncio.sleep(0)
            return message * 2

    ref = await system.spawn(AsyncDoubler)
    assert await ref.ask(21) == 42


async def test_factory_function_and_arguments_are_passed_through(system: ActorSystem) -> None:
    class Greeter(Actor):
        def __init__(self, greeting: str, *, punctuation: str) -> None:
            self.text = greeting + punctuation

        def receive(self, message: str, ctx: Context) -> str:
            return f"{self.text} {message}"

    def make_greeter(greeting: str, *, punctuation: str) -> Greeter:
        return Greeter(greeting, punctuation=punctuation)

    by_class = await system.spawn(Greeter, "hello", punctuation=",")
    by_factory = await system.spawn(make_greeter, "hi", punctuation="!")
    assert await by_class.ask("ann") == "hello, ann"
    assert await by_factory.ask("bob") == "hi! bob"


async def test_factory_that_returns_no_actor_is_rejected(system: ActorSystem) -> None:
    with pytest.raises(TypeError):
        await system.spawn(lambda: object())


async def test_failing_receive_raises_to_asker_and_restart_resets_state(
    system: ActorSystem,
) -> None:
    journal = Journal()
    ref = await system.spawn(Hooked, journal, name="h")
    assert await ref.ask("a") == 1
    assert await ref.ask("b") == 2
    with pytest.raises(Boom):
        await ref.ask("crash")
    assert await ref.ask("c") == 1  # a fresh instance from the factory
    assert journal.entries == [("start", "/h"), ("stop", "/h"), ("start", "/h")]


async def test_default_receive_publishes_unhandled_messages_as_dead_letters(
    system: ActorSystem,
) -> None:
    class Deaf(Actor):
        pass

    ref = await system.spawn(Deaf, name="deaf")
    with capture_events(system, DeadLetter) as dead:
        assert await ref.ask("hello?") is None
    assert len(dead) == 1
    assert dead[0].message == "hello?" and dead[0].recipient is ref
    assert "unhandled" in dead[0].reason

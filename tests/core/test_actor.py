"""The Actor contract: lifecycle hooks, sync and async receive, one message at a time."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actoros import Actor, ActorSystem, Context, DeadLetter, LifecycleEvent, ManualClock
from actoros.testing import capture_events, spawn_probe, test_system

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


async def test_runs_on_the_event_loop_the_test_is_parametrized_with(
    system: ActorSystem, request: pytest.FixtureRequest
) -> None:
    assert system.loop == request.node.callspec.id
    assert system.loop in ("asyncio", "uvloop")


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


async def test_messages_sent_during_on_start_are_handled_after_it(system: ActorSystem) -> None:
    handled: list[Any] = []

    class TellsItself(Actor):
        async def on_start(self) -> None:
            self.ctx.self.tell("from on_start")
            await asyncio.sleep(0)
            self.ready = True

        def receive(self, message: Any, ctx: Context) -> Any:
            handled.append((message, self.ready))
            return message

    ref = await system.spawn(TellsItself)
    assert await ref.ask("after") == "after"
    assert handled == [("from on_start", True), ("after", True)]


async def test_ctx_is_set_before_on_start(system: ActorSystem) -> None:
    seen: list[Any] = []

    class UsesCtx(Actor):
        async def on_start(self) -> None:
            parent = self.ctx.parent
            seen.append((self.ctx.self.path, self.ctx.system, parent and parent.path))

    ref = await system.spawn(UsesCtx, name="uses-ctx")
    # a top-level actor's parent is the root supervisor (OTP: the top supervisor), path "/"
    assert seen == [("/uses-ctx", system, "/")]
    assert ref.path == "/uses-ctx"


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


async def test_receives_one_message_at_a_time(system: ActorSystem) -> None:
    class Slow(Actor):
        def __init__(self) -> None:
            self.in_flight = 0
            self.max_in_flight = 0
            self.handled = 0

        async def receive(self, message: Any, ctx: Context) -> Any:
            if message == "stats":
                return (self.max_in_flight, self.handled)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            for _ in range(3):
                await asyncio.sleep(0)  # other tasks (and senders) run meanwhile
            self.in_flight -= 1
            self.handled += 1
            return message

    ref = await system.spawn(Slow)
    for i in range(50):
        ref.tell(i)
    replies = await asyncio.gather(*(ref.ask(i) for i in range(50)))
    assert replies == list(range(50))
    assert await ref.ask("stats") == (1, 100)


async def test_ctx_sender_is_the_sender_of_a_tell_and_none_for_an_ask(
    system: ActorSystem,
) -> None:
    class Replier(Actor):
        def receive(self, message: Any, ctx: Context) -> Any:
            if ctx.sender is not None:
                ctx.sender.tell(("reply", message), sender=ctx.self)
            return ctx.sender

    probe_ref, probe = await spawn_probe(system, "probe")
    ref = await system.spawn(Replier, name="replier")
    ref.tell("hi", sender=probe_ref)
    assert await probe.expect(("reply", "hi")) == ("reply", "hi")
    assert probe.last_sender is ref
    assert await ref.ask("q") is None


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


async def test_parent_and_children_are_visible_in_the_context(system: ActorSystem) -> None:
    class Parent(Actor):
        async def receive(self, message: Any, ctx: Context) -> Any:
            if message == "spawn":
                for name in ("x", "y", "z"):
                    await ctx.spawn(Hooked, Journal(), name=name)
                return [child.path for child in ctx.children]
            return None

    parent = await system.spawn(Parent, name="parent")
    assert await parent.ask("spawn") == ["/parent/x", "/parent/y", "/parent/z"]
    child = system.lookup("/parent/y")
    assert child is not None and child.path == "/parent/y"
    assert system.lookup("y") is child


async def test_spawning_two_children_with_one_name_is_refused(system: ActorSystem) -> None:
    await system.spawn(Hooked, Journal(), name="same")
    with pytest.raises(ValueError):
        await system.spawn(Hooked, Journal(), name="same")


async def test_an_actor_yields_to_others_after_throughput_messages() -> None:
    order: list[str] = []

    class Recorder(Actor):
        def __init__(self, label: str) -> None:
            self.label = label

        def receive(self, message: Any, ctx: Context) -> None:
            order.append(self.label)

    async with test_system(throughput=2) as system:
        a = await system.spawn(Recorder, "a")
        b = await system.spawn(Recorder, "b")
        for _ in range(6):
            a.tell("m")
        for _ in range(6):
            b.tell("m")
        await a.ask("m")
        await b.ask("m")
    assert order.count("a") == 7 and order.count("b") == 7
    # longest stretch one actor ran while the other had work waiting
    longest, current, previous = 0, 0, None
    for label in order[:12]:
        current = current + 1 if label == previous else 1
        previous = label
        longest = max(longest, current)
    assert longest == 2, order


async def test_a_manual_clock_does_not_move_on_its_own(
    clock: ManualClock, system: ActorSystem
) -> None:
    ref = await system.spawn(Hooked, Journal())
    before = clock.time()
    for _ in range(10):
        await ref.ask("tick")
    assert clock.time() == before
    assert system.clock is clock

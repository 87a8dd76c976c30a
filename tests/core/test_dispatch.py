"""The dispatch loop (``core/dispatch.py``): one message at a time, in order, after
``on_start``; yielding after ``throughput`` messages; no task and no queue while idle."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actoros import Actor, ActorSystem, Context, LifecycleEvent, MailboxSpec
from actoros.testing import capture_events, settle, spawn_probe, test_system

pytestmark = pytest.mark.timeout(10)


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


class Echo(Actor):
    def receive(self, message: Any, ctx: Context) -> Any:
        return message


async def test_an_idle_actor_holds_no_task_and_no_queue(system: ActorSystem) -> None:
    ref = await system.spawn(Echo)
    for i in range(100):
        ref.tell(i)
    assert await ref.ask("last") == "last"
    assert await settle()
    cell = ref._cell
    assert cell._task is None and cell._q is None and not cell._sys
    assert await ref.ask("again") == "again"  # the next message starts a new task


async def test_an_idle_actor_keeps_its_bounded_mailbox(system: ActorSystem) -> None:
    ref = await system.spawn(Echo, mailbox=MailboxSpec(capacity=4))
    assert await ref.ask("x") == "x"
    assert await settle()
    assert ref._cell._task is None and ref._cell._q is not None and len(ref._cell._q) == 0


async def test_the_sender_of_one_message_is_not_seen_with_the_next(system: ActorSystem) -> None:
    seen: list[Any] = []

    class Notes(Actor):
        def receive(self, message: Any, ctx: Context) -> Any:
            seen.append((message, ctx.sender))
            return None

    probe_ref, _ = await spawn_probe(system, "probe")
    ref = await system.spawn(Notes)
    ref.tell("with", sender=probe_ref)
    ref.tell("without")
    await ref.ask("asked")
    assert seen == [("with", probe_ref), ("without", None), ("asked", None)]


async def test_a_cancelled_error_raised_by_receive_is_a_failure_not_a_kill(
    system: ActorSystem,
) -> None:
    class Raises(Actor):
        def receive(self, message: Any, ctx: Context) -> Any:
            if message == "raise":
                raise asyncio.CancelledError("from user code")
            return message

    ref = await system.spawn(Raises, name="raises")
    with capture_events(system, LifecycleEvent) as events:
        ref.tell("raise")
        await events.wait_for(LifecycleEvent("/raises", "restarted", None))
    assert [e.kind for e in events] == ["failed", "restarted"]
    assert await ref.ask("still serving") == "still serving"

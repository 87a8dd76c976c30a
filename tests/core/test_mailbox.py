"""Mailboxes: bounded overflow policies, priorities, and system messages overtaking users'."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from actoros import (
    Actor,
    ActorStopped,
    ActorSystem,
    Context,
    DeadLetter,
    MailboxFull,
    MailboxSpec,
    Terminated,
)
from actoros.testing import ProbeRecorder, capture_events, settle

pytestmark = pytest.mark.timeout(10)


class Job(msgspec.Struct, frozen=True):
    name: str
    priority: int = 0


class Plain(msgspec.Struct, frozen=True):
    """A message without a ``priority`` attribute: counts as priority 0."""

    name: str


class Gated(Actor):
    """Holds "block" until the gate opens (so what follows queues up); records the rest."""

    def __init__(self, recorder: ProbeRecorder, entered: asyncio.Event, gate: asyncio.Event):
        self.recorder = recorder
        self.entered = entered
        self.gate = gate

    async def receive(self, message: Any, ctx: Context) -> Any:
        if message == "block":
            self.entered.set()
            await self.gate.wait()
            return "unblocked"
        if isinstance(message, tuple) and message and message[0] == "watch":
            ctx.watch(message[1])
            return None
        self.recorder.record(message, ctx.sender)
        return message


class Blocked:
    """A gated actor that is holding "block": everything sent now waits in its mailbox."""

    def __init__(
        self, ref: Any, recorder: ProbeRecorder, entered: asyncio.Event, gate: asyncio.Event
    ) -> None:
        self.ref, self.recorder, self.entered, self.gate = ref, recorder, entered, gate
        self.task: Any = None

    async def block(self) -> None:
        self.entered.clear()
        self.gate.clear()
        self.task = asyncio.ensure_future(self.ref.ask("block", timeout=None))
        await self.entered.wait()

    async def release(self) -> None:
        self.gate.set()
        assert await self.task == "unblocked"


async def spawn_blocked(system: ActorSystem, mailbox: MailboxSpec | None, **kw: Any) -> Blocked:
    recorder, entered, gate = ProbeRecorder(), asyncio.Event(), asyncio.Event()
    ref = await system.spawn(Gated, recorder, entered, gate, mailbox=mailbox, **kw)
    blocked = Blocked(ref, recorder, entered, gate)
    await blocked.block()
    return blocked


async def test_reject_overflow_raises_mailbox_full_to_the_sender(system: ActorSystem) -> None:
    actor = await spawn_blocked(system, MailboxSpec(capacity=2, overflow="reject"))
    actor.ref.tell("a")
    actor.ref.tell("b")
    with capture_events(system, DeadLetter) as dead:
        with pytest.raises(MailboxFull):
            actor.ref.tell("c")
        with pytest.raises(MailboxFull):
            await actor.ref.ask("d")
    assert dead == []  # the sender got the error: nothing to dead-letter
    await actor.release()
    await actor.recorder.expect("a")
    await actor.recorder.expect("b")
    await actor.recorder.expect_no_message()
    # room again once drained
    assert await actor.ref.ask("e") == "e"


async def test_drop_oldest_overflow_dead_letters_the_oldest_waiting_message(
    system: ActorSystem,
) -> None:
    actor = await spawn_blocked(system, MailboxSpec(capacity=2, overflow="drop_oldest"))
    with capture_events(system, DeadLetter) as dead:
        for name in ("a", "b", "c", "d"):
            actor.ref.tell(name)
    assert [d.message for d in dead] == ["a", "b"]
    assert all(d.recipient is actor.ref and "drop_oldest" in d.reason for d in dead)
    await actor.release()
    assert [await actor.recorder.expect() for _ in range(2)] == ["c", "d"]
    await actor.recorder.expect_no_message()


async def test_drop_new_overflow_dead_letters_the_incoming_message(system: ActorSystem) -> None:
    actor = await spawn_blocked(system, MailboxSpec(capacity=2, overflow="drop_new"))
    with capture_events(system, DeadLetter) as dead:
        for name in ("a", "b", "c", "d"):
            actor.ref.tell(name)
    assert [d.message for d in dead] == ["c", "d"]
    assert all("drop_new" in d.reason for d in dead)
    await actor.release()
    assert [await actor.recorder.expect() for _ in range(2)] == ["a", "b"]
    await actor.recorder.expect_no_message()


async def test_an_ask_dropped_by_drop_new_raises_mailbox_full(system: ActorSystem) -> None:
    actor = await spawn_blocked(system, MailboxSpec(capacity=1, overflow="drop_new"))
    actor.ref.tell("a")
    with capture_events(system, DeadLetter) as dead:
        with pytest.raises(MailboxFull):
            await actor.ref.ask("dropped")
    assert [d.message for d in dead] == ["dropped"]
    await actor.release()


async def test_an_ask_pushed_out_by_drop_oldest_raises_mailbox_full(
    system: ActorSystem,
) -> None:
    actor = await spawn_blocked(system, MailboxSpec(capacity=1, overflow="drop_oldest"))
    ask = asyncio.ensure_future(actor.ref.ask("oldest", timeout=None))
    await settle()
    actor.ref.tell("newer")
    with pytest.raises(MailboxFull):
        await ask
    await actor.release()
    assert await actor.recorder.expect() == "newer"


async def test_priority_mailbox_serves_lower_values_first_and_fifo_within_a_value(
    system: ActorSystem,
) -> None:
    actor = await spawn_blocked(system, MailboxSpec(priority=True))
    sent = [
        Job("low-1", 5),
        Job("high-1", -1),
        Plain("zero-1"),
        Job("low-2", 5),
        Job("zero-2", 0),
        Job("high-2", -1),
        Plain("zero-3"),
    ]
    for message in sent:
        actor.ref.tell(message)
    await actor.release()
    received = [(await actor.recorder.expect()).name for _ in sent]
    assert received == ["high-1", "high-2", "zero-1", "zero-2", "zero-3", "low-1", "low-2"]


async def test_priority_may_be_a_key_function(system: ActorSystem) -> None:
    actor = await spawn_blocked(system, MailboxSpec(priority=lambda m: len(str(m))))
    for message in ("ccc", "a", "bb", "d"):
        actor.ref.tell(message)
    await actor.release()
    assert [await actor.recorder.expect() for _ in range(4)] == ["a", "d", "bb", "ccc"]


async def test_bounded_priority_mailbox_drops_the_oldest_of_the_lowest_priority(
    system: ActorSystem,
) -> None:
    spec = MailboxSpec(capacity=3, overflow="drop_oldest", priority=True)
    actor = await spawn_blocked(system, spec)
    with capture_events(system, DeadLetter) as dead:
        for message in (Job("low-1", 9), Job("high", 0), Job("low-2", 9), Job("mid", 5)):
            actor.ref.tell(message)
    assert [d.message.name for d in dead] == ["low-1"]
    await actor.release()
    assert [(await actor.recorder.expect()).name for _ in range(3)] == ["high", "mid", "low-2"]


async def test_stop_overtakes_queued_messages_which_become_dead_letters(
    system: ActorSystem,
) -> None:
    actor = await spawn_blocked(system, None)
    for i in range(3):
        actor.ref.tell(f"queued-{i}")
    queued_ask = asyncio.ensure_future(actor.ref.ask("queued-ask", timeout=None))
    await settle()
    with capture_events(system, DeadLetter) as dead:
        stopping = asyncio.ensure_future(actor.ref.stop())
        await settle()
        await actor.release()
        await stopping
    assert actor.recorder.messages == []  # none of the queued messages was handled
    assert [d.message for d in dead] == ["queued-0", "queued-1", "queued-2", "queued-ask"]
    assert all(d.reason == "recipient stopped" for d in dead)
    with pytest.raises(ActorStopped):
        await queued_ask


async def test_stop_overtakes_queued_messages_in_a_bounded_priority_mailbox(
    system: ActorSystem,
) -> None:
    actor = await spawn_blocked(system, MailboxSpec(capacity=10, priority=True))
    actor.ref.tell(Job("queued", -100))
    await settle()
    with capture_events(system, DeadLetter) as dead:
        stopping = asyncio.ensure_future(actor.ref.stop())
        await settle()
        await actor.release()
        await stopping
    assert actor.recorder.messages == []
    assert [d.message for d in dead] == [Job("queued", -100)]


async def test_terminated_overtakes_queued_user_messages(system: ActorSystem) -> None:
    watched = await spawn_blocked(system, None)
    watcher = await spawn_blocked(system, None)
    watcher.ref.tell(("watch", watched.ref))  # queued behind "block" as well...
    await watcher.release()
    assert await watcher.ref.ask("sync") == "sync"  # ...and handled now
    watcher.recorder.clear()

    await watcher.block()
    for i in range(3):
        watcher.ref.tell(f"user-{i}")
    await watched.release()
    await watched.ref.stop()
    await watcher.release()
    first = await watcher.recorder.expect()
    assert first == Terminated(watched.ref, "stopped")
    assert [await watcher.recorder.expect() for _ in range(3)] == ["user-0", "user-1", "user-2"]


async def test_mailbox_spec_rejects_invalid_settings() -> None:
    with pytest.raises(ValueError):
        MailboxSpec(capacity=0)
    with pytest.raises(ValueError):
        MailboxSpec(capacity=1, overflow="explode")  # type: ignore[arg-type]

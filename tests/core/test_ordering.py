"""Per sender→receiver order is preserved, however the senders interleave."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actoros import Actor, ActorSystem, Context, MailboxSpec
from actoros.testing import ProbeRecorder, test_system

pytestmark = pytest.mark.timeout(20)

SENDERS = 20
PER_SENDER = 200


class SequenceChecker(Actor):
    """Checks that each sender's sequence numbers arrive as 0, 1, 2, ..."""

    def __init__(self, done: ProbeRecorder, expected_total: int) -> None:
        self.done = done
        self.expected_total = expected_total
        self.next_seq: dict[Any, int] = {}
        self.errors: list[str] = []
        self.received = 0

    def receive(self, message: Any, ctx: Context) -> Any:
        if message == "report":
            return (self.received, self.errors, dict(self.next_seq))
        sender, seq = message
        expected = self.next_seq.get(sender, 0)
        if seq != expected:
            self.errors.append(f"{sender}: got {seq}, expected {expected}")
        self.next_seq[sender] = seq + 1
        self.received += 1
        if self.received == self.expected_total:
            self.done.record("all received")
        return None


class Sender(Actor):
    """On "go", tells its numbered messages to the target, yielding now and then so that
    the senders interleave."""

    def __init__(self, label: int, target: Any, count: int) -> None:
        self.label = label
        self.target = target
        self.count = count

    async def receive(self, message: Any, ctx: Context) -> Any:
        for seq in range(self.count):
            self.target.tell((self.label, seq), sender=ctx.self)
            if (seq + self.label) % 7 == 0:
                await asyncio.sleep(0)
        return None


async def run_senders(system: ActorSystem, mailbox: MailboxSpec | None) -> None:
    done = ProbeRecorder()
    total = SENDERS * PER_SENDER
    checker = await system.spawn(SequenceChecker, done, total, name="checker", mailbox=mailbox)
    senders = [
        await system.spawn(Sender, i, checker, PER_SENDER, name=f"sender-{i}")
        for i in range(SENDERS)
    ]
    for sender in senders:
        sender.tell("go")
    await done.expect("all received", timeout=10.0)
    received, errors, next_seq = await checker.ask("report")
    assert errors == []
    assert received == total
    assert next_seq == {i: PER_SENDER for i in range(SENDERS)}


async def test_order_per_sender_is_preserved_with_many_interleaving_senders(
    system: ActorSystem,
) -> None:
    await run_senders(system, None)


async def test_order_per_sender_is_preserved_in_a_priority_mailbox_of_equal_priorities(
    system: ActorSystem,
) -> None:
    await run_senders(system, MailboxSpec(priority=True))


async def test_order_per_sender_is_preserved_when_actors_yield_after_every_message() -> None:
    async with test_system(throughput=1) as system:
        await run_senders(system, None)


async def test_order_per_sender_is_preserved_for_tasks_outside_the_system(
    system: ActorSystem,
) -> None:
    done = ProbeRecorder()
    total = SENDERS * PER_SENDER
    checker = await system.spawn(SequenceChecker, done, total, name="checker")

    async def send(label: str) -> None:
        for seq in range(PER_SENDER):
            checker.tell((label, seq))
            if seq % 5 == 0:
                await asyncio.sleep(0)

    await asyncio.gather(*(send(f"task-{i}") for i in range(SENDERS)))
    await done.expect("all received", timeout=10.0)
    _, errors, _ = await checker.ask("report")
    assert errors == []


async def test_asks_from_one_sender_are_answered_in_order(system: ActorSystem) -> None:
    class Counter(Actor):
        def __init__(self) -> None:
            self.n = 0

        async def receive(self, message: Any, ctx: Context) -> int:
            if self.n % 3 == 0:
                await asyncio.sleep(0)
            self.n += 1
            return self.n

    ref = await system.spawn(Counter)
    replies = await asyncio.gather(*(ref.ask("inc") for _ in range(300)))
    assert replies == list(range(1, 301))

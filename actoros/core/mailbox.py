"""Mailboxes: what waits for an actor, in which order, and what happens when it is full.

An envelope is a tuple ``(message, sender, reply_future)``. The default mailbox is a plain
``collections.deque`` (FIFO, unbounded), created on the first message and released when the
actor goes idle, so an idle actor holds no queue at all. Bounded and priority mailboxes are
small deque-like classes with the same three operations: ``append``, ``popleft``,
``appendleft`` (for ``Terminated``, which overtakes user messages).

Ordering guarantee: per sender→receiver pair, messages are received in the order sent
(FIFO; with ``priority=True``, FIFO within one priority value).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import msgspec

from .errors import MailboxFull

if TYPE_CHECKING:
    from .ref import ActorRef

Overflow = Literal["reject", "drop_oldest", "drop_new"]
# (message, sender, the asker's reply future: None for a tell)
Envelope: TypeAlias = "tuple[Any, ActorRef | None, asyncio.Future[Any] | None]"
DropHandler = Callable[[Envelope, str], None]


def message_priority(message: Any) -> Any:
    """Default priority of a message: its ``priority`` attribute, else 0. Lower runs first."""
    return getattr(message, "priority", 0)


class MailboxSpec(msgspec.Struct, frozen=True):
    """How an actor's mailbox behaves.

    capacity: ``None`` for unbounded, else the most user messages that may wait.
    overflow: when full — ``"reject"`` raises ``MailboxFull`` to the sender; ``"drop_oldest"``
        drops the oldest waiting message (with priorities: the oldest of the lowest priority);
        ``"drop_new"`` drops the incoming message. Dropped messages become ``DeadLetter``s;
        an ``ask`` whose message was dropped raises ``MailboxFull``.
    priority: ``False`` for FIFO; ``True`` orders by ``message.priority`` (missing: 0, lower
        first); or a function ``message -> sortable key``. FIFO within equal priority.
    """

    capacity: int | None = None
    overflow: Overflow = "reject"
    priority: bool | Callable[[Any], Any] = False

    def __post_init__(self) -> None:
        if self.capacity is not None and self.capacity < 1:
            raise ValueError(f"MailboxSpec.capacity must be >= 1 or None, got {self.capacity}")
        if self.overflow not in ("reject", "drop_oldest", "drop_new"):
            raise ValueError(
                f"MailboxSpec.overflow must be 'reject', 'drop_oldest' or 'drop_new', "
                f"got {self.overflow!r}"
            )

    @property
    def is_default(self) -> bool:
        return self.capacity is None and not self.priority


def _refuse(
    envelope: Envelope, overflow: str, capacity: int, owner: str, on_drop: DropHandler
) -> bool:
    """A full mailbox's policy for the incoming message: raise (reject), drop it (True), or
    leave room-making to the caller (drop_oldest: False)."""
    if overflow == "reject":
        raise MailboxFull(
            f"mailbox of {owner} is full ({capacity} messages); {type(envelope[0]).__name__} "
            f"rejected — slow down the sender or raise MailboxSpec.capacity"
        )
    if overflow == "drop_new":
        on_drop(envelope, "mailbox full (drop_new)")
        return True
    return False


class BoundedMailbox:
    """FIFO with a capacity and an overflow policy."""

    __slots__ = ("_q", "_capacity", "_overflow", "_on_drop", "_owner")

    def __init__(self, capacity: int, overflow: Overflow, on_drop: DropHandler, owner: str) -> None:
        self._q: deque[Envelope] = deque()
        self._capacity = capacity
        self._overflow = overflow
        self._on_drop = on_drop
        self._owner = owner

    def __len__(self) -> int:
        return len(self._q)

    def append(self, envelope: Envelope) -> None:
        q = self._q
        if len(q) >= self._capacity:
            if _refuse(envelope, self._overflow, self._capacity, self._owner, self._on_drop):
                return
            self._on_drop(q.popleft(), "mailbox full (drop_oldest)")
        q.append(envelope)

    def appendleft(self, envelope: Envelope) -> None:
        self._q.appendleft(envelope)

    def popleft(self) -> Envelope:
        return self._q.popleft()

    def clear(self) -> list[Envelope]:
        items = list(self._q)
        self._q.clear()
        return items


class PriorityMailbox:
    """Lower priority value first; FIFO within one value (a sequence number breaks ties)."""

    __slots__ = ("_heap", "_seq", "_key", "_capacity", "_overflow", "_on_drop", "_owner", "_urgent")

    def __init__(
        self,
        key: Callable[[Any], Any],
        capacity: int | None,
        overflow: Overflow,
        on_drop: DropHandler,
        owner: str,
    ) -> None:
        self._heap: list[tuple[Any, int, Envelope]] = []
        self._urgent: deque[Envelope] = deque()  # appendleft: ahead of every priority
        self._seq = itertools.count()
        self._key = key
        self._capacity = capacity
        self._overflow = overflow
        self._on_drop = on_drop
        self._owner = owner

    def __len__(self) -> int:
        return len(self._heap) + len(self._urgent)

    def append(self, envelope: Envelope) -> None:
        heap = self._heap
        if self._capacity is not None and len(heap) >= self._capacity:
            if _refuse(envelope, self._overflow, self._capacity, self._owner, self._on_drop):
                return
            # drop_oldest: the oldest message among those of the lowest priority (served last)
            worst = max(heap, key=lambda item: (item[0], -item[1]))
            heap.remove(worst)
            heapq.heapify(heap)
            self._on_drop(worst[2], "mailbox full (drop_oldest)")
        heapq.heappush(heap, (self._key(envelope[0]), next(self._seq), envelope))

    def appendleft(self, envelope: Envelope) -> None:
        self._urgent.append(envelope)

    def popleft(self) -> Envelope:
        if self._urgent:
            return self._urgent.popleft()
        return heapq.heappop(self._heap)[2]

    def clear(self) -> list[Envelope]:
        items = list(self._urgent) + [e for _, _, e in sorted(self._heap)]
        self._urgent.clear()
        self._heap.clear()
        return items


# An actor's user lane: the default deque, or one of the two classes above.
Queue: TypeAlias = "deque[Envelope] | BoundedMailbox | PriorityMailbox"


def make_mailbox(
    spec: MailboxSpec, on_drop: DropHandler, owner: str
) -> BoundedMailbox | PriorityMailbox:
    """The queue object for a non-default spec (the default is a lazily created deque)."""
    if spec.priority:
        key = message_priority if spec.priority is True else spec.priority
        return PriorityMailbox(key, spec.capacity, spec.overflow, on_drop, owner)
    assert spec.capacity is not None
    return BoundedMailbox(spec.capacity, spec.overflow, on_drop, owner)

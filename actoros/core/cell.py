"""``ActorCell``: one actor's runtime record, and the ``Context`` its actor sees.

One object per actor, whatever its state: its identity (name, parent, ref), its two lanes
(the system lane, whose messages overtake the user mailbox), the instance of the current
incarnation, its children and its watchers. This module holds the record and its ways in:
the ``Context`` methods an actor calls, the enqueueing its refs and its system call, spawning.
What runs an actor lives beside it, as functions of the record:

* ``dispatch.py`` — the task that drains the lanes (the hot loop);
* ``lifecycle.py`` — incarnations, stopping (and telling watchers), carrying out supervision
  decisions.

An actor owns no task while idle (the first message into an empty lane creates one) and, with
the default mailbox, no queue either: an idle actor costs this record and its ref.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import lifecycle
from .actor import Actor
from .context import DeferredReply
from .dispatch import drain
from .errors import ActorStopped, MailboxFull
from .lifecycle import STARTING, STATE_NAMES, STOPPED
from .mailbox import Envelope, MailboxSpec, Queue, make_mailbox
from .messages import ActorInfo, SystemMessage, Terminated
from .ref import ActorRef
from .supervision import NO_RESTARTS, RestartIntensity, RestartType, check_restart_type

if TYPE_CHECKING:
    from .messages import _Stop
    from .supervision import ChildSpec
    from .system import ActorSystem

_SAME: Any = object()  # forward()'s default: the message in hand


class ActorCell:
    """The record of one actor (see the module docstring); implements ``Context``."""

    __slots__ = (
        "_system",
        "_parent",
        "_name",
        "ref",
        "_factory",
        "_args",
        "_kwargs",
        "restart_type",
        "_shutdown",
        "_mbspec",
        "_actor",
        "_receive",
        "_async",
        "_q",
        "_sys",
        "_task",
        "_state",
        "sender",
        "_children",
        "_watchers",
        "_watching",
        "_intensity",
        "_incarnation",
        "_started",
        "_exit_requested",
        "_current",
        "_stopping",
        "_stopped_fut",
        "_exit_reason",
        "_processed",
    )

    def __init__(
        self,
        system: ActorSystem,
        parent: ActorCell | None,
        name: str,
        factory: Callable[..., object],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        restart: RestartType,
        shutdown: float | None,
        mailbox: MailboxSpec | None,
    ) -> None:
        self._system = system
        self._parent = parent
        self._name = name
        self.ref = ActorRef(self)
        self._factory = factory
        self._args = args
        self._kwargs = kwargs
        self.restart_type = restart  # read by supervision.decide
        self._shutdown = shutdown
        self._mbspec = mailbox if mailbox is not None and not mailbox.is_default else None
        self._actor: Actor | None = None  # the current incarnation's instance
        self._receive: Callable[[Any, ActorCell], Any] = lifecycle.no_receive  # bound receive
        self._async = False  # whether _receive returns a coroutine
        self._q: Queue | None = None  # the user lane (created on the first message)
        self._sys: deque[SystemMessage] | None = None  # the system lane
        self._task: asyncio.Task[None] | None = None  # the drain task, while there is work
        self._state = STARTING
        self.sender: ActorRef | None = None
        self._children: dict[str, ActorCell] | None = None  # in start order
        self._watchers: set[ActorCell] | None = None
        self._watching: set[ActorCell] | None = None
        self._intensity: RestartIntensity = NO_RESTARTS  # restarts of its children
        self._incarnation = 0
        self._started = False  # on_start has run and on_stop has not
        self._exit_requested = False  # ctx.stop() or ref.stop() from its own handler
        self._current: Envelope | None = None  # the envelope in hand, until it is replied to
        self._stopping: _Stop | None = None
        self._stopped_fut: asyncio.Future[None] | None = None
        self._exit_reason: str | None = None
        self._processed = 0  # user messages handled, all incarnations (for introspection)

    # Identity and introspection.

    @property
    def path(self) -> str:
        parts = []
        cell: ActorCell | None = self
        while cell is not None and cell._parent is not None:
            parts.append(cell._name)
            cell = cell._parent
        return "/" + "/".join(reversed(parts))

    @property
    def _dead(self) -> bool:
        return self._state == STOPPED

    def __repr__(self) -> str:
        return f"<ActorCell {self.path} state={self._state}>"

    def info(self, parent_path: str | None, path: str) -> ActorInfo:
        actor = self._actor
        if actor is not None:
            kind = type(actor).__name__
        else:
            kind = getattr(self._factory, "__name__", type(self._factory).__name__)
        q, sysq = self._q, self._sys
        return ActorInfo(
            path=path,
            parent=parent_path,
            name=self._name,
            kind=kind,
            state=STATE_NAMES[self._state],
            restarts=max(0, self._incarnation - 1),
            mailbox=(len(q) if q is not None else 0) + (len(sysq) if sysq else 0),
            processed=self._processed,
            children=len(self._children) if self._children else 0,
        )

    # The Context protocol (documented in context.py).

    @property
    def self(self) -> ActorRef:
        return self.ref

    @property
    def system(self) -> ActorSystem:
        return self._system

    @property
    def parent(self) -> ActorRef | None:
        return self._parent.ref if self._parent is not None else None

    @property
    def children(self) -> list[ActorRef]:
        return [c.ref for c in self._children.values()] if self._children else []

    async def spawn(
        self,
        factory: Callable[..., Actor],
        *args: Any,
        name: str | None = None,
        mailbox: MailboxSpec | None = None,
        restart: RestartType = "permanent",
        shutdown: float | None = 5.0,
        **kwargs: Any,
    ) -> ActorRef:
        return await self._spawn(factory, args, kwargs, name, mailbox, restart, shutdown)

    async def spawn_child(self, spec: ChildSpec) -> ActorRef:
        return await self._spawn(
            spec.factory,
            spec.args,
            spec.kwargs,
            spec.name,
            spec.mailbox,
            spec.restart,
            spec.shutdown,
        )

    def watch(self, ref: ActorRef) -> None:
        target = ref._cell
        if target is self:
            raise ValueError(f"{self.path} cannot watch itself")
        if target._state == STOPPED:
            self._post_sys(Terminated(target.ref, target._exit_reason or "stopped"))
            return
        if target._watchers is None:
            target._watchers = set()
        target._watchers.add(self)
        if self._watching is None:
            self._watching = set()
        self._watching.add(target)

    def unwatch(self, ref: ActorRef) -> None:
        target = ref._cell
        if target._watchers is not None:
            target._watchers.discard(self)
        if self._watching is not None:
            self._watching.discard(target)

    def defer_reply(self) -> DeferredReply:
        envelope = self._current
        if envelope is None:
            raise RuntimeError("defer_reply() is only valid inside receive, once per message")
        self._current = None  # the drain loop sees it gone and does not reply
        return DeferredReply(envelope[2], envelope[0], self.ref)

    def forward(self, ref: ActorRef, message: Any = _SAME) -> DeferredReply:
        envelope = self._current
        if envelope is None:
            raise RuntimeError("forward() is only valid inside receive, once per message")
        original, sender, fut = envelope
        self._current = None  # the reply is ``ref``'s to give now
        try:
            ref._cell._post((original if message is _SAME else message, sender, fut))
        except BaseException:
            self._current = envelope  # not sent: the reply is still this actor's
            raise
        return DeferredReply(fut, original, self.ref)

    def stop(self) -> None:
        self._exit_requested = True

    # Enqueueing: refs post user messages, the runtime posts system messages.

    def _post(self, envelope: Envelope) -> None:
        q = self._q
        if q is None:
            if self._state == STOPPED:
                self._undeliverable(envelope, "recipient stopped")
                return
            if self._mbspec is None:
                q = self._q = deque()
            else:
                q = self._q = make_mailbox(self._mbspec, self._dropped, self.path)
        q.append(envelope)
        if self._task is None and self._state != STARTING:
            self._task = self._system._loop.create_task(drain(self))

    def _post_sys(self, message: SystemMessage) -> None:
        if self._state == STOPPED:
            lifecycle.reject_system(self, message)
            return
        sysq = self._sys
        if sysq is None:
            sysq = self._sys = deque()
        sysq.append(message)
        if self._task is None and self._state != STARTING:
            self._task = self._system._loop.create_task(drain(self))

    def _schedule(self) -> None:
        if self._task is None and (self._sys or self._q) and self._state != STOPPED:
            self._task = self._system._loop.create_task(drain(self))

    def _user_queue(self) -> Queue:
        q = self._q
        if q is None:
            q = self._q = (
                deque()
                if self._mbspec is None
                else make_mailbox(self._mbspec, self._dropped, self.path)
            )
        return q

    def _undeliverable(self, envelope: Envelope, reason: str) -> None:
        message, _, fut = envelope
        if fut is not None and not fut.done():
            fut.set_exception(
                ActorStopped(f"{self.path} stopped before replying to {type(message).__name__}")
            )
        self._system.dead_letter(message, self.ref, reason)

    def _dropped(self, envelope: Envelope, reason: str) -> None:
        message, _, fut = envelope
        if fut is not None and not fut.done():
            fut.set_exception(
                MailboxFull(f"{type(message).__name__} to {self.path} was dropped: {reason}")
            )
        self._system.dead_letter(message, self.ref, reason)

    def _late_reply(self, message: Any, result: Any) -> None:
        self._system.dead_letter(
            result, self.ref, f"late reply to {type(message).__name__}: the ask had ended"
        )

    # Spawning a child: its first on_start runs in the spawner's task, so that spawn returns
    # only once the child is ready (and raises if it is not).

    async def _spawn(
        self,
        factory: Callable[..., object],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: str | None,
        mailbox: MailboxSpec | None,
        restart: str,
        shutdown: float | None,
    ) -> ActorRef:
        if self._state == STOPPED:
            raise ActorStopped(f"cannot spawn under {self.path}: it has stopped")
        restart_type = check_restart_type(restart)
        if not callable(factory):
            raise TypeError(f"spawn needs an Actor subclass or a factory, got {factory!r}")
        children = self._children
        if children is None:
            children = self._children = {}
        if name is None:
            name = self._system._auto_name(factory)
        elif not name or "/" in name or not isinstance(name, str):
            raise ValueError(f"invalid actor name {name!r}: use a non-empty name without '/'")
        elif name in children:
            raise ValueError(
                f"an actor named {name!r} already runs under {self.path}; choose another name"
            )
        child = ActorCell(
            self._system, self, name, factory, args, kwargs, restart_type, shutdown, mailbox
        )
        children[name] = child
        try:
            start = lifecycle.incarnate(child)
            if start is not None:
                await start
            lifecycle.mark_running(child)
        except BaseException:
            await lifecycle.abort_start(child)
            raise
        child._schedule()
        return child.ref


if TYPE_CHECKING:
    from .context import Context

    _: type[Context] = ActorCell  # the cell implements the protocol (checked by mypy)

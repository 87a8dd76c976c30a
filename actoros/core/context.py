"""``Context``: what an actor sees of the runtime (``self.ctx``, and ``ctx`` in ``receive``).

``Context`` is a protocol; the runtime's per-actor record (``ActorCell``, ``cell.py``) is the
context itself, so an actor costs one runtime object. This module holds the public face.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .actor import Actor
    from .cell import ActorCell
    from .mailbox import MailboxSpec
    from .ref import ActorRef
    from .supervision import ChildSpec, RestartType
    from .system import ActorSystem


# The actor whose task is running (set once per dispatch task, so tasks an actor creates
# inherit it); ask() uses it to name the asker as the receiver's ctx.sender.
current_cell: contextvars.ContextVar[ActorCell | None] = contextvars.ContextVar(
    "actoros_current_cell", default=None
)


class DeferredReply:
    """A reply owed to an asker, sent later with ``resolve`` or ``fail``.

    ``done`` turns true when the ask has ended for any reason (answered, timed out, the asker
    cancelled): check it, or register ``on_done``, to stop work nobody waits for. A reply after
    the ask ended is published as a dead letter, like any late reply.
    """

    __slots__ = ("_fut", "_message", "_ref")

    def __init__(self, fut: asyncio.Future[Any] | None, message: Any, ref: ActorRef) -> None:
        self._fut = fut
        self._message = message
        self._ref = ref

    @property
    def expected(self) -> bool:
        """Whether anyone awaits this reply (False for a tell)."""
        return self._fut is not None

    @property
    def done(self) -> bool:
        return self._fut is None or self._fut.done()

    def on_done(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` once the ask has ended (at once if it has)."""
        if self._fut is None:
            callback()
        else:
            self._fut.add_done_callback(lambda _: callback())

    def resolve(self, value: Any) -> None:
        fut = self._fut
        if fut is None:
            return
        if fut.done():
            self._ref._cell._late_reply(self._message, value)
        else:
            fut.set_result(value)

    def fail(self, error: BaseException) -> None:
        fut = self._fut
        if fut is not None and not fut.done():
            fut.set_exception(error)


@runtime_checkable
class Context(Protocol):
    """The running actor's view of itself and the system (``ctx``; ``self.ctx`` after start).

    A protocol: the runtime's per-actor record (``ActorCell``, ``cell.py``) implements it, so
    an actor costs one runtime object and user code depends on this surface only.
    """

    @property
    def self(self) -> ActorRef:
        """This actor's own ref (stable across restarts)."""
        ...

    @property
    def system(self) -> ActorSystem:
        """The system this actor runs in."""
        ...

    @property
    def sender(self) -> ActorRef | None:
        """Who sent the message in hand: the ``sender=`` of a tell, the asking actor of an
        ask; ``None`` when unknown (an ask from outside any actor)."""
        ...

    @property
    def path(self) -> str:
        """This actor's path, e.g. ``"/kernel/inference"``."""
        ...

    @property
    def parent(self) -> ActorRef | None:
        """The supervising actor (the root supervisor, path ``"/"``, for a top-level one)."""
        ...

    @property
    def children(self) -> list[ActorRef]:
        """Live children, in start order."""
        ...

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
        """Start a child supervised by this actor (its ``supervision`` spec applies).

        Returns once the child's ``on_start`` has finished; raises what ``on_start`` raised.
        """
        ...

    async def spawn_child(self, spec: ChildSpec) -> ActorRef:
        """Start a child from a ``ChildSpec``."""
        ...

    def watch(self, ref: ActorRef) -> None:
        """Receive ``Terminated(ref, reason)`` when ``ref`` stops for good (at once if it has)."""
        ...

    def unwatch(self, ref: ActorRef) -> None:
        """No ``Terminated`` for ``ref`` any more (one already queued may still arrive)."""
        ...

    def defer_reply(self) -> DeferredReply:
        """Take over the reply to the message in hand, to send it later.

        ``receive``'s return value is then ignored; the asker waits until the returned
        ``DeferredReply`` is resolved or failed (or its own timeout). This is how an actor serves
        many requests at once (OTP's ``noreply`` + ``gen_server:reply``). For a ``tell`` the
        handle is inert. Call it inside ``receive``, before its first ``await``.
        """
        ...

    def forward(self, ref: ActorRef, message: Any = ...) -> DeferredReply:
        """Pass the message in hand on to ``ref`` (or ``message`` in its place), keeping its
        sender and its asker: ``ref`` sees the original ``ctx.sender`` and its reply goes
        straight to the asker (Akka's ``forward``; a router's hop costs no second ask).

        Returns the reply handle, for watching its end (``done``, ``on_done``); resolving it
        is ``ref``'s business. ``receive``'s return value is then ignored. If the message
        cannot be sent (a ``NotPortable`` message to another node, a full mailbox that
        rejects) the error is raised and the reply stays this actor's. Call it inside
        ``receive``, before its first ``await``.
        """
        ...

    def stop(self) -> None:
        """Exit normally after the current message (OTP normal exit).

        A ``permanent`` actor is restarted by its supervisor, a ``transient`` or ``temporary``
        one is removed. To stop an actor for good from outside, use ``await ref.stop()``.
        """
        ...

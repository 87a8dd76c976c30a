"""``Context``: what an actor sees of the runtime (``self.ctx``, and ``ctx`` in ``receive``).

The runtime's per-actor record (``ActorCell``) is the context itself, so an actor costs one
runtime object. This module holds the public face; ``cell.py`` holds the machinery.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .actor import Actor
    from .cell import ActorCell
    from .mailbox import MailboxSpec
    from .ref import ActorRef
    from .supervision import ChildSpec
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


class Context:
    """The running actor's view of itself and the system.

    Attributes: ``self`` (its own ``ActorRef``), ``system``, ``sender`` (who sent the message in
    hand: the ``sender=`` of a tell, the asking actor of an ask; ``None`` when unknown).
    """

    __slots__ = ()

    # Set by ActorCell's slots; declared for type checkers.
    ref: ActorRef
    sender: ActorRef | None
    _system: ActorSystem

    @property
    def self(self) -> ActorRef:
        return self.ref

    @property
    def system(self) -> ActorSystem:
        return self._system

    @property
    def path(self) -> str:
        raise NotImplementedError  # ActorCell

    @property
    def parent(self) -> ActorRef | None:
        cell: ActorCell = self  # type: ignore[assignment]
        return cell._parent.ref if cell._parent is not None else None

    @property
    def children(self) -> list[ActorRef]:
        """Live children, in start order."""
        cell: ActorCell = self  # type: ignore[assignment]
        return [c.ref for c in cell._children.values()] if cell._children else []

    async def spawn(
        self,
        factory: type[Actor] | Any,
        *args: Any,
        name: str | None = None,
        mailbox: MailboxSpec | None = None,
        restart: str = "permanent",
        shutdown: float | None = 5.0,
        **kwargs: Any,
    ) -> ActorRef:
        """Start a child supervised by this actor (its ``supervision`` spec applies).

        Returns once the child's ``on_start`` has finished; raises what ``on_start`` raised.
        """
        cell: ActorCell = self  # type: ignore[assignment]
        return await cell._spawn(factory, args, kwargs, name, mailbox, restart, shutdown)

    async def spawn_child(self, spec: ChildSpec) -> ActorRef:
        """Start a child from a ``ChildSpec``."""
        return await self.spawn(
            spec.factory,
            *spec.args,
            name=spec.name,
            mailbox=spec.mailbox,
            restart=spec.restart,
            shutdown=spec.shutdown,
            **spec.kwargs,
        )

    def watch(self, ref: ActorRef) -> None:
        """Receive ``Terminated(ref, reason)`` when ``ref`` stops for good (at once if it has)."""
        cell: ActorCell = self  # type: ignore[assignment]
        cell._watch(ref._cell)

    def unwatch(self, ref: ActorRef) -> None:
        cell: ActorCell = self  # type: ignore[assignment]
        cell._unwatch(ref._cell)

    def defer_reply(self) -> DeferredReply:
        """Take over the reply to the message in hand, to send it later.

        ``receive``'s return value is then ignored; the asker waits until the returned
        ``DeferredReply`` is resolved or failed (or its own timeout). This is how an actor serves
        many requests at once (OTP's ``noreply`` + ``gen_server:reply``). For a ``tell`` the
        handle is inert. Call it inside ``receive``, before its first ``await``.
        """
        cell: ActorCell = self  # type: ignore[assignment]
        envelope = cell._current
        if envelope is None:
            raise RuntimeError("defer_reply() is only valid inside receive, once per message")
        cell._current = None
        return DeferredReply(envelope[2], envelope[0], self.ref)

    def stop(self) -> None:
        """Exit normally after the current message (OTP normal exit).

        A ``permanent`` actor is restarted by its supervisor, a ``transient`` or ``temporary``
        one is removed. To stop an actor for good from outside, use ``await ref.stop()``.
        """
        cell: ActorCell = self  # type: ignore[assignment]
        cell._exit_requested = True

"""``ActorRef``: the handle through which everything reaches an actor.

A ref is stable for the actor's whole life, across restarts. It is cheap to pass around and
safe to keep: once the actor stops for good, ``tell`` becomes a dead letter and ``ask`` raises
``ActorStopped`` at once.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from .context import current_cell
from .errors import ActorStopped, AskTimeout
from .lifecycle import request_stop

if TYPE_CHECKING:
    from .cell import ActorCell

_current_task = asyncio.current_task
_current_cell = current_cell.get


def _expire(fut: asyncio.Future[Any], ref: ActorRef, message: Any, timeout: float) -> None:
    if not fut.done():
        fut.set_exception(
            AskTimeout(
                f"ask to {ref.path} timed out after {timeout:g} s "
                f"(message {type(message).__name__}); pass a larger timeout= or check that "
                f"the actor replies"
            )
        )


class ActorRef:
    """Address of one actor. ``tell`` never blocks; ``ask`` waits for the reply."""

    __slots__ = ("_cell", "__weakref__")

    def __init__(self, cell: ActorCell) -> None:
        self._cell = cell

    @property
    def name(self) -> str:
        return self._cell._name

    @property
    def path(self) -> str:
        return self._cell.path

    @property
    def is_alive(self) -> bool:
        """False once the actor has stopped for good."""
        return not self._cell._dead

    def __repr__(self) -> str:
        return f"<ActorRef {self._cell.path}>"

    def tell(self, message: Any, sender: ActorRef | None = None) -> None:
        """Enqueue ``message``; return at once.

        Raises ``MailboxFull`` only for a bounded mailbox with overflow ``"reject"``. To a
        stopped actor the message becomes a ``DeadLetter``.
        """
        self._cell._post((message, sender, None))

    async def ask(self, message: Any, timeout: float | None = 5.0) -> Any:
        """Send ``message`` and wait for ``receive``'s return value.

        Raises ``AskTimeout`` after ``timeout`` seconds (``None``: wait forever; the late reply
        is dropped and published as a dead letter), ``ActorStopped`` if the actor is or becomes
        stopped before replying, ``MailboxFull`` if a bounded mailbox refuses or drops it, or
        the exception ``receive`` raised for this message. Asked from inside an actor, the
        receiver sees that actor as ``ctx.sender``.
        """
        cell = self._cell
        if cell._dead:
            cell._system.dead_letter(message, self, "recipient stopped")
            raise ActorStopped(f"ask to {cell.path}: the actor has stopped")
        task = cell._task
        if task is not None and task is _current_task():
            raise RuntimeError(
                f"{cell.path} asked itself: that would wait on its own mailbox forever; "
                f"call the method directly or use tell"
            )
        fut = cell._system._loop.create_future()
        asker = _current_cell()
        cell._post((message, asker.ref if asker is not None else None, fut))
        if timeout is None:
            return await fut
        slot = cell._system._ask_slot(timeout)
        slot[fut] = (self, message, timeout)
        try:
            return await fut
        finally:
            slot.pop(fut, None)

    async def stop(self) -> None:
        """Stop the actor for good and wait until it is gone (never restarted).

        It finishes the message in hand, stops its children (reverse start order), runs
        ``on_stop``; waiting messages become dead letters. If that takes longer than the
        actor's ``shutdown`` timeout, its task is cancelled. Called from inside the actor's own
        handler it returns at once and the actor exits normally after the current message
        (as ``ctx.stop()``; a permanent child is then restarted, as in OTP).
        """
        await request_stop(self._cell)

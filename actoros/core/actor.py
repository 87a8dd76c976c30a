"""The ``Actor`` base class: what a user subclasses.

One instance per incarnation: a restart builds a new instance from the same factory, so state
kept in attributes is reset on restart (keep what must survive in a kernel service or outside).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .context import Context
    from .supervision import SupervisorSpec


class Actor:
    """Subclass and implement ``receive``; ``on_start`` / ``on_stop`` are optional.

    ``receive(message, ctx)`` may be ``def`` or ``async def``. It handles one message at a time:
    the next message is not delivered until it returns. Its return value is the reply to an
    ``ask`` (ignored for ``tell``). Raising makes the actor fail: the asker gets the exception,
    and the supervisor decides (restart, stop, escalate).

    ``supervision`` sets the strategy and restart intensity this actor applies to the children
    it spawns with ``ctx.spawn`` (default: one_for_one, 3 restarts in 5 s).
    """

    supervision: SupervisorSpec | None = None
    ctx: Context

    async def on_start(self) -> None:
        """Called before the first message; if it raises, ``spawn`` raises (or the restart
        counts as a failure)."""

    async def on_stop(self) -> None:
        """Called when the incarnation ends: on stop, before a restart, after a failure.
        Bounded by the child's ``shutdown`` timeout; after it the call is cancelled."""

    def receive(self, message: Any, ctx: Context) -> Any:
        """Handle one message. The default publishes it as a dead letter ("unhandled")."""
        ctx.system.dead_letter(message, ctx.self, f"unhandled by {type(self).__name__}")
        return None

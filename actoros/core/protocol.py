"""What an actor does with a message outside its protocol: it refuses it, clearly.

An actor declares its protocol as a union of tagged msgspec Structs and dispatches it with
one ``match`` whose final ``case _:`` calls ``refuse``. A stray message is its sender's
mistake, never a reason for the actor to fail (a restart would fail everyone else's requests
in flight): an ask fails with the given error; a tell, which has nobody to answer, becomes a
dead letter with the error as its reason, so it is not lost silently.
"""

from __future__ import annotations

from typing import Any, get_args

from .context import Context

__all__ = ["refuse", "takes"]


def takes(protocol: Any) -> str:
    """The request names of ``protocol`` (a union of Struct classes, or one), as prose."""
    names = [kind.__name__ for kind in get_args(protocol)] or [protocol.__name__]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def refuse(message: Any, ctx: Context, error: Exception) -> None:
    """Answer ``message``, which this actor does not take, with ``error`` (see above)."""
    reply = ctx.defer_reply()
    if reply.expected:
        reply.fail(error)
    else:
        ctx.system.dead_letter(message, ctx.self, str(error))

"""What a kernel service does with a message outside its protocol: it refuses it, clearly.

Each service declares its protocol as a union of tagged msgspec Structs (``KVRequest``,
``SchedulerRequest``, ...) and dispatches it with one ``match`` whose final ``case _:`` calls
``refuse``. A stray message is its sender's mistake, never a reason to restart the service
(a restart would fail everyone else's requests in flight): an ask fails with a ``TypeError``
naming what the service takes; a tell, which has nobody to answer, becomes a dead letter
with that reason, so it is not lost silently.
"""

from __future__ import annotations

from typing import Any

from actoros.core import Context
from actoros.core.protocol import refuse as _refuse
from actoros.core.protocol import takes

__all__ = ["refuse", "takes"]


def refuse(message: Any, ctx: Context, service: str, protocol: Any) -> None:
    """Answer ``message``, which ``service`` does not take (see the module docstring)."""
    kind = type(message).__name__
    requests = takes(protocol)
    _refuse(
        message,
        ctx,
        TypeError(f"{service} cannot handle a message of type {kind}; it takes {requests}"),
    )

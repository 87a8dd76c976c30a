"""Server-sent events: the framing, and a response that always cleans up after its stream.

Both streams the gateway serves use it: the chat completion stream (``openai/stream.py``:
``data:`` lines only, as the OpenAI API sends them) and the live feed (``live/routes.py``:
named events, ``event: tree``). ``EventStream`` builds its body when the response starts,
from the app's ``Shutdown`` (so a stream can end as soon as the gateway begins to stop), and
however the response ends (finished, client gone, cancelled) closes the body's generator and
runs ``on_close``: a generator suspended at a ``yield`` when the client leaves is otherwise
closed only when the garbage collector finds it, and one that never started runs no
``finally`` at all.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import msgspec
from starlette.requests import HTTPConnection
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from .shutdown import Shutdown, shutdown_of

__all__ = ["DONE", "EventStream", "event"]

DONE = b"data: [DONE]\n\n"
"""The OpenAI API's last event of a stream."""

_encode = msgspec.json.Encoder().encode


def event(data: Any, name: str | None = None) -> bytes:
    """One event: ``data`` as JSON, named ``name`` when given (``event: NAME``)."""
    head = b"" if name is None else b"event: " + name.encode() + b"\n"
    return head + b"data: " + _encode(data) + b"\n\n"


class EventStream(StreamingResponse):
    """A ``text/event-stream`` response whose body ``content(shutdown)`` makes when it starts.

    However it ends, the body's generator is closed and then ``on_close`` runs (when given),
    so whatever the stream holds (an upstream stream, a request's slot, a feed's client) is
    let go as the connection ends.
    """

    body_iterator: AsyncGenerator[bytes, None]

    def __init__(
        self,
        content: Callable[[Shutdown], AsyncGenerator[bytes, None]],
        *,
        on_close: Callable[[], Awaitable[None]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(_no_body(), media_type="text/event-stream", headers=headers)
        self._content = content
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            self.body_iterator = self._content(shutdown_of(HTTPConnection(scope)))
            await super().__call__(scope, receive, send)
        finally:
            try:
                await self.body_iterator.aclose()
            finally:
                if self._on_close is not None:
                    await self._on_close()


async def _no_body() -> AsyncGenerator[bytes, None]:
    return
    yield b""  # an async generator that yields nothing

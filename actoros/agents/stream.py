"""Streaming a turn: ``UserMessage(stream=True)`` → an ``AgentStream`` of deltas, then the reply.

An ask with ``stream=True`` is answered at once with an ``AgentStream``; the turn runs on in
the agent and pushes into it. ``async for item in stream`` yields ``AgentDelta(text)`` items
in order, then exactly one ``AgentReply``, and stops; when the turn fails, the iteration
raises its ``AgentError`` instead of the reply. The concatenated deltas are the reply's text.

Closing the stream early (``await stream.aclose()``, or leaving ``async with stream:``)
cancels the turn, and with it whatever the turn waits on (an LLM agent's inference request
is aborted). Nobody reading is not the same as closing: an unread stream keeps its items
until it is read or dropped, as ``CompletionStream`` does.

A streaming ``tell`` has nobody to stream to: it is handled as an ordinary turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Any

import msgspec

from .messages import AgentError, AgentReply, UserMessage

__all__ = ["AgentDelta", "AgentStream"]


class AgentDelta(msgspec.Struct, frozen=True):
    """The next piece of an agent's reply text, as it is produced."""

    text: str


class AgentStream:
    """Async iterator over a streamed turn: ``AgentDelta``s in order, then the ``AgentReply``
    (see the module docstring). ``agent`` names the agent that answers."""

    def __init__(self, agent: str, on_close: Callable[[], None]) -> None:
        self.agent = agent
        self._queue: asyncio.Queue[AgentDelta | AgentReply | AgentError] = asyncio.Queue()
        self._on_close = on_close
        self._ended = False  # the turn delivered its reply or error
        self._finished = False  # the reader got the last item, or closed the stream

    # -- the agent's side -------------------------------------------------------------------

    def _delta(self, text: str) -> None:
        if text and not self._ended:
            self._queue.put_nowait(AgentDelta(text))

    def _end(self, outcome: AgentReply | AgentError) -> None:
        if not self._ended:
            self._ended = True
            self._queue.put_nowait(outcome)

    # -- the reader's side ------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether the reader is done with the stream (read it to its end, or closed it)."""
        return self._finished

    def __aiter__(self) -> AgentStream:
        return self

    async def __anext__(self) -> AgentDelta | AgentReply:
        if self._finished:
            raise StopAsyncIteration
        item = await self._queue.get()
        if isinstance(item, AgentError):
            self._finished = True
            raise item
        if isinstance(item, AgentReply):
            self._finished = True
        return item

    async def aclose(self) -> None:
        """Stop reading; a turn still running is cancelled (its pending items are dropped)."""
        if not self._finished:
            self._finished = True
            if not self._ended:
                self._on_close()

    async def reply(self) -> AgentReply:
        """Read the stream to its end and return the ``AgentReply`` (raises ``AgentError``)."""
        async for item in self:
            if isinstance(item, AgentReply):
                return item
        raise AgentError(self.agent, "the stream was closed before the reply")

    async def __aenter__(self) -> AgentStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "closed" if self._finished else "ended" if self._ended else "open"
        return f"<AgentStream {self.agent!r} {state}>"


def wants_stream(message: Any) -> bool:
    """Whether ``message`` asks for a streamed turn."""
    return isinstance(message, UserMessage) and message.stream

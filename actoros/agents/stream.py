"""Streaming a turn: ``UserMessage(stream=True)`` → an ``AgentStream`` of deltas, then the reply.

An ask with ``stream=True`` is answered at once with an ``AgentStream``; the turn runs on in
the agent and pushes into it. ``async for item in stream`` yields ``AgentDelta(text)`` items
in order, then exactly one ``AgentReply``, and stops; when the turn fails, the iteration
raises its ``AgentError`` instead of the reply. The concatenated deltas are the reply's text.

Closing the stream early (``await stream.aclose()``, or leaving ``async with stream:``)
cancels the turn, and with it whatever the turn waits on (an LLM agent's inference request
is aborted). Nobody reading is not the same as closing: an unread stream keeps its items
until it is read or dropped. ``AgentStream`` is core's ``ReplyStream``, as the inference
actor's ``CompletionStream`` is.

A streaming ``tell`` has nobody to stream to: it is handled as an ordinary turn.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from actoros.core.stream import ReplyStream

from .messages import AgentError, AgentReply, UserMessage

__all__ = ["AgentDelta", "AgentStream"]


class AgentDelta(msgspec.Struct, frozen=True):
    """The next piece of an agent's reply text, as it is produced."""

    text: str


class AgentStream(ReplyStream[AgentDelta, AgentReply]):
    """Async iterator over a streamed turn: ``AgentDelta``s in order, then the ``AgentReply``
    (see the module docstring; the guarantees are core's ``ReplyStream``). ``agent`` names
    the agent that answers."""

    __slots__ = ("agent",)

    def __init__(self, agent: str, on_close: Callable[[], None]) -> None:
        super().__init__(AgentReply, on_close, agent)
        self.agent = agent

    def _delta(self, text: str) -> None:
        """The agent's side: the next piece of the reply text (an empty one is no delta)."""
        if text and not self._ended:
            self._push(AgentDelta(text))

    async def reply(self) -> AgentReply:
        """Read the stream to its end and return the ``AgentReply`` (raises ``AgentError``)."""
        return await self.final()

    def _incomplete(self) -> AgentError:
        return AgentError(self.agent, "the stream was closed before the reply")


def wants_stream(message: Any) -> bool:
    """Whether ``message`` asks for a streamed turn."""
    return isinstance(message, UserMessage) and message.stream

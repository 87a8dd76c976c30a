"""``ReplyStream``: an ask answered at once with a stream of items, then one final value.

Why in core: a streamed reply is a way for any actor to answer an ask, not a feature of LLMs.
The inference actor streams a generation's tokens and an agent streams its turn's text; both
need the same guarantees, so both streams are this class (``CompletionStream`` in
``inference``, ``AgentStream`` in ``agents``: subclasses that name their items, their final
value and the error of a stream closed before it).

The answering actor pushes items with ``_push`` and ends the stream once with ``_end``: the
final value, or the exception its reader is to meet. The reader iterates: the items in push
order, then the final value, then the iteration stops; an exception ends the iteration by
being raised from it. Guarantees:

- nothing is queued after the end (later ``_push`` and ``_end`` calls are ignored), so the
  final value (or the exception) comes once, and last;
- closing the stream early (``await stream.aclose()``, or leaving ``async with stream:``),
  before its end, calls ``on_close`` once: the answering actor's signal to stop the work
  nobody reads any more. A stream closed after its end, or read to its end, never calls it;
- nobody reading is not closing: an unread stream keeps its items until it is read or dropped.
  The queue is unbounded, so the answering actor never waits for its reader.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Generic, Self, TypeVar

__all__ = ["ReplyStream"]

ItemT = TypeVar("ItemT")
FinalT = TypeVar("FinalT")


class ReplyStream(Generic[ItemT, FinalT]):
    """Async iterator over a streamed reply: ``ItemT``s in order, then the ``FinalT`` (see the
    module docstring). ``final_type`` is the class of the final value; ``on_close()`` is
    called when the reader closes the stream before its end; ``label`` names the stream in
    its ``repr``."""

    __slots__ = ("_queue", "_final_type", "_on_close", "_ended", "_finished", "_label")

    def __init__(
        self, final_type: type[FinalT], on_close: Callable[[], None], label: str = ""
    ) -> None:
        self._queue: asyncio.Queue[ItemT | FinalT | BaseException] = asyncio.Queue()
        self._final_type = final_type
        self._on_close = on_close
        self._ended = False  # the answering actor delivered the final value or an error
        self._finished = False  # the reader got the last item, or closed the stream
        self._label = label

    # -- the answering actor's side ---------------------------------------------------------

    def _push(self, item: ItemT) -> None:
        """Queue the next item (ignored once the stream has ended)."""
        if not self._ended:
            self._queue.put_nowait(item)

    def _end(self, outcome: FinalT | BaseException) -> None:
        """End the stream with its final value, or with the exception its reader meets."""
        if not self._ended:
            self._ended = True
            self._queue.put_nowait(outcome)

    # -- the reader's side ------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        """Whether the answering actor delivered the final value (or an error)."""
        return self._ended

    @property
    def closed(self) -> bool:
        """Whether the reader is done with the stream (read it to its end, or closed it)."""
        return self._finished

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> ItemT | FinalT:
        if self._finished:
            raise StopAsyncIteration
        item = await self._queue.get()
        if isinstance(item, BaseException):
            self._finished = True
            raise item
        if isinstance(item, self._final_type):
            self._finished = True
        return item

    async def aclose(self) -> None:
        """Stop reading; before the end, ``on_close`` runs (queued items are dropped)."""
        if not self._finished:
            self._finished = True
            if not self._ended:
                self._on_close()

    async def final(self) -> FinalT:
        """Read the stream to its end and return the final value; raises the stream's error,
        or ``_incomplete()`` when the stream was closed before its end."""
        async for item in self:
            if isinstance(item, self._final_type):
                return item
        raise self._incomplete()

    def _incomplete(self) -> BaseException:
        """The error of ``final`` on a stream closed before its end (subclasses name it)."""
        return RuntimeError(f"{self!r} was closed before its final value")

    async def __aenter__(self) -> Self:
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
        label = f" {self._label!r}" if self._label else ""
        return f"<{type(self).__name__}{label} {state}>"

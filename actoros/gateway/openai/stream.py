"""``stream: true``: an answer as server-sent events in the OpenAI wire format.

``data: <chunk JSON>`` lines — a first chunk with the assistant role, then content deltas,
then a chunk with the ``finish_reason``; with ``stream_options.include_usage`` one more chunk
with the usage and no choices — then ``data: [DONE]``.

The first item is awaited before the response starts, so an error that comes before any text
(overloaded, engine down, agent refused) is a plain HTTP error; one after it is a
``data: {"error": ...}`` event, which the official client raises. One task reads the
upstream stream into a queue the response reads from, so the gateway's shutdown or the
request's deadline can end the response between two items; however the response ends, the
upstream stream is closed (aborting the engine request or the agent's turn) and the
request's slot is freed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from typing import Any

import structlog
from msgspec import UNSET
from starlette.responses import Response

from .. import sse
from ..errors import APIError, from_exception, stopping
from ..shutdown import Shutdown
from .schema import THREAD_HEADER, ChatCompletionChunk, ChunkChoice, Delta, Usage, completion_id
from .targets import Call, Final, UpstreamStream

__all__ = ["Chunks", "stream_answer"]

log = structlog.get_logger("actoros.gateway")

_ENDED = object()  # a stream that ended without its final item


class Chunks:
    """The ``chat.completion.chunk`` events of one answer."""

    def __init__(self, model: str, *, thread_id: str | None, include_usage: bool) -> None:
        self.id = completion_id()
        self.created = int(time.time())
        self.model = model
        self.thread_id = UNSET if thread_id is None else thread_id
        self.no_usage = None if include_usage else UNSET  # the usage of all but the last

    def _event(self, choices: list[ChunkChoice], usage: Usage | None | Any) -> bytes:
        chunk = ChatCompletionChunk(
            id=self.id,
            created=self.created,
            model=self.model,
            thread_id=self.thread_id,
            choices=choices,
            usage=usage,
        )
        return sse.event(chunk)

    def delta(self, delta: Delta) -> bytes:
        return self._event([ChunkChoice(delta=delta)], self.no_usage)

    def finish(self, final: Final) -> bytes:
        if final.thread_id is not None:
            self.thread_id = final.thread_id
        choice = ChunkChoice(delta=Delta(), finish_reason=final.finish_reason)
        return self._event([choice], self.no_usage)

    def usage(self, final: Final) -> bytes:
        return self._event([], final.usage)


_FIRST = Delta(role="assistant", content="")


class _Relay:
    """Reads the upstream ``stream`` into a queue, beside the deadline's timer and the
    gateway's shutdown, which put their errors in the same queue."""

    def __init__(self, call: Call, stream: UpstreamStream) -> None:
        self.call = call
        self.stream = stream
        self.items: asyncio.Queue[Any] = asyncio.Queue()
        self._pumping = asyncio.ensure_future(self._pump())
        # one timer for the whole answer (not one per token): at the deadline the reader
        # meets a TimeoutError, a 504 or the stream's last event
        self._expiry = asyncio.get_running_loop().call_at(call.deadline, self._expired)
        self._closed = False

    async def _pump(self) -> None:
        try:
            async for item in self.stream:
                self.items.put_nowait(item)
            self.items.put_nowait(_ENDED)
        except Exception as exc:
            self.items.put_nowait(exc)

    def _expired(self) -> None:
        self.items.put_nowait(TimeoutError(f"{self.call.target.what} took too long"))

    def stopping(self) -> None:
        self.items.put_nowait(stopping())

    async def next(self) -> str | Final:
        """The next piece of text or the end; ``APIError`` for what went wrong."""
        target = self.call.target
        item = await self.items.get()
        if item is _ENDED:
            raise APIError(
                500,
                f"{target.what} ended its stream without a final answer",
                type="server_error",
                code="internal_error",
            )
        if isinstance(item, BaseException):
            raise from_exception(item, what=target.what) from item
        read = target.read(item)
        if read is None:
            raise self.call.wrong_answer(item, " in its stream")
        return read

    async def close(self) -> None:
        """Stop everything and free the slot; only the first call does something."""
        if self._closed:
            return
        self._closed = True
        self._expiry.cancel()
        self.call.release()
        self._pumping.cancel()
        try:
            await self.stream.aclose()
        except Exception as exc:  # closing must not hide what happened before
            log.debug("gateway.stream_close_failed", error=repr(exc))


async def stream_answer(call: Call, stream: UpstreamStream) -> Response:
    """The SSE response of ``call``, from the upstream ``stream`` its target answered with
    (see the module docstring)."""
    relay = _Relay(call, stream)
    try:
        first = await relay.next()
    except BaseException:
        await relay.close()
        raise
    target = call.target
    chunks = Chunks(target.model, thread_id=target.thread_id, include_usage=call.include_usage)

    async def events(shutdown: Shutdown) -> AsyncGenerator[bytes, None]:
        forget = shutdown.watch(relay.stopping)
        try:
            yield chunks.delta(_FIRST)
            item = first
            while not isinstance(item, Final):
                if item:
                    yield chunks.delta(Delta(content=item))
                item = await relay.next()
        except APIError as error:
            log.warning(
                "gateway.stream_failed",
                model=target.model,
                status=error.status,
                code=error.code,
                error=error.message,
            )
            yield sse.event(error.body())
            return
        finally:
            forget()
            await relay.close()
        yield chunks.finish(item)
        if call.include_usage:
            yield chunks.usage(item)
        yield sse.DONE

    headers = {"Cache-Control": "no-cache"}
    if target.thread_id is not None:
        headers[THREAD_HEADER] = target.thread_id
    return sse.EventStream(events, on_close=relay.close, headers=headers)

"""``stream: true``: an answer as server-sent events in the OpenAI wire format.

``data: <chunk JSON>`` lines — a first chunk with the assistant role (chat), then deltas
(text, or a tool call's pieces), then a chunk with each choice's ``finish_reason``; with
``stream_options.include_usage`` one more chunk with the usage and no choices — then
``data: [DONE]``. What the chunks hold is the endpoint's ``Format`` (``formats.py``); with
``n`` choices the ``n`` upstream streams are read side by side, each item tagged with its
choice's index.

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
from collections.abc import AsyncGenerator
from typing import Any

import structlog
from starlette.responses import Response

from .. import sse
from ..errors import APIError, from_exception, stopping
from ..shutdown import Shutdown
from .formats import Format, total_usage
from .schema import THREAD_HEADER
from .targets import Call, Final, Piece, UpstreamStream

__all__ = ["stream_answer"]

log = structlog.get_logger("actoros.gateway")


class _Ended:
    """Stream ``index`` ended (after its final item, or without it: an error)."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


class _Relay:
    """Reads the upstream ``streams`` into a queue, beside the deadline's timer and the
    gateway's shutdown, which put their errors in the same queue. One stream's items go in as
    they are; several streams' as ``(index, item)`` pairs."""

    def __init__(self, call: Call, streams: list[UpstreamStream]) -> None:
        self.call = call
        self.streams = streams
        self.items: asyncio.Queue[Any] = asyncio.Queue()
        tagged = len(streams) > 1
        self._pumping = [
            asyncio.ensure_future(self._pump(i, s, tagged)) for i, s in enumerate(streams)
        ]
        # one timer for the whole answer (not one per token): at the deadline the reader
        # meets a TimeoutError, a 504 or the stream's last event
        self._expiry = asyncio.get_running_loop().call_at(call.deadline, self._expired)
        self._closed = False

    async def _pump(self, index: int, stream: UpstreamStream, tagged: bool) -> None:
        put = self.items.put_nowait
        try:
            if tagged:
                async for item in stream:
                    put((index, item))
            else:
                async for item in stream:
                    put(item)
            put(_Ended(index))
        except Exception as exc:
            put(exc)

    def _expired(self) -> None:
        self.items.put_nowait(TimeoutError(f"{self.call.target.what} took too long"))

    def stopping(self) -> None:
        self.items.put_nowait(stopping())

    async def next(self) -> Piece | Final | _Ended:
        """The next piece of text, a choice's end, or a stream's end (``APIError`` for what
        went wrong)."""
        target = self.call.target
        item = await self.items.get()
        if type(item) is _Ended:
            return item
        if isinstance(item, BaseException):
            raise from_exception(item, what=target.what) from item
        read = target.read(item)
        if read is None:
            raise self.call.wrong_answer(item, " in its stream")
        return read

    def ended_early(self) -> APIError:
        return APIError(
            500,
            f"{self.call.target.what} ended its stream without a final answer",
            type="server_error",
            code="internal_error",
        )

    async def close(self) -> None:
        """Stop everything and free the slot; only the first call does something."""
        if self._closed:
            return
        self._closed = True
        self._expiry.cancel()
        self.call.release()
        for pump in self._pumping:
            pump.cancel()
        for stream in self.streams:
            try:
                await stream.aclose()
            except Exception as exc:  # closing must not hide what happened before
                log.debug("gateway.stream_close_failed", error=repr(exc))


async def stream_answer(call: Call, streams: list[UpstreamStream], fmt: Format) -> Response:
    """The SSE response of ``call``, from the upstream ``streams`` its target answered with
    (one per choice), in the events of ``fmt`` (see the module docstring)."""
    relay = _Relay(call, streams)
    try:
        first = await relay.next()
        if type(first) is _Ended:
            raise relay.ended_early()
    except BaseException:
        await relay.close()
        raise
    target = call.target
    n = len(streams)

    async def events(shutdown: Shutdown) -> AsyncGenerator[bytes, None]:
        forget = shutdown.watch(relay.stopping)
        finals: list[Final] = []
        try:
            for event in fmt.start():
                yield event
            item: Piece | Final | _Ended = first
            ended: set[int] = set()  # the choices whose Final came
            while True:
                if type(item) is Piece:
                    event = fmt.piece(item)
                    if event is not None:
                        yield event
                elif type(item) is _Ended:
                    if item.index not in ended:
                        raise relay.ended_early()
                else:
                    assert isinstance(item, Final)
                    finals.append(item)
                    ended.add(item.index)
                    for event in fmt.finish(item):
                        yield event
                    if len(finals) == n:
                        break
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
        if call.include_usage:
            finals.sort(key=lambda f: f.index)
            yield fmt.usage(total_usage(finals, fmt.prompts))
        yield sse.DONE

    headers = {"Cache-Control": "no-cache"}
    if target.thread_id is not None:
        headers[THREAD_HEADER] = target.thread_id
    return sse.EventStream(events, on_close=relay.close, headers=headers)

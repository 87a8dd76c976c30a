"""One request inside the inference actor (``Request``) and the stream its asker reads
(``CompletionStream``).

Why a streamed ask is read by pulling (issue 12): with a fast engine (a GPU, or the tiny model
here) every wake-up per token counts. Driving each generation from a task of its own and
queueing its deltas for the reader costs two task switches per token where direct vLLM costs
one. So once admitted, a streamed ask's generation is an async iterator that its reader drives
itself (``CompletionStream._attach``): the engine wakes the reader, the reader gets that step's
delta (every token the engine produced since the last read, as one ``TokenDelta``), and no
task, queue or wake-up of the actor's stands in between. The actor still owns everything else:
admission, the engine slot, aborts, failures (which it queues on the stream with ``_end``, and
the reader meets after the generation stops) and metrics.

Requests that are not read by a stream — a plain ask (one ``Completion``), a tell (messages to
the requester) — keep a task each, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec

from actoros.core import ActorRef, DeferredReply
from actoros.core.stream import ReplyStream

from .errors import InferenceError
from .messages import (
    Completion,
    FinishReason,
    Generate,
    InferenceRequestDone,
    Timings,
    TokenDelta,
    TokenLogprob,
    Usage,
)

__all__ = ["CompletionStream", "Request", "stream"]

_ids = itertools.count(1)

_ADMITTED = object()
"""Queued on a stream when its request is admitted: wakes a reader waiting for admission."""


class CompletionStream(ReplyStream[TokenDelta, Completion]):
    """Async iterator over a streaming request: ``TokenDelta``s in order, then the
    ``Completion``; a failure is raised from the iteration. Closing it early, or dropping it
    unread, aborts the request. (The guarantees are core's ``ReplyStream``, shared with
    ``AgentStream``.)"""

    __slots__ = ("request_id", "_source", "__weakref__")

    def __init__(self, request_id: str, on_close: Callable[[], None]) -> None:
        super().__init__(Completion, on_close, request_id)
        self.request_id = request_id
        self._source: AsyncIterator[TokenDelta] | None = None

    def _attach(self, source: AsyncIterator[TokenDelta]) -> None:
        """The request is admitted: from now on the reader pulls ``source`` (the generation,
        which ends the stream with ``_end`` when it stops)."""
        if self._finished:
            return
        self._source = source
        self._queue.put_nowait(_ADMITTED)  # type: ignore[arg-type]

    async def __anext__(self) -> TokenDelta | Completion:
        while True:
            source = self._source
            # queued first: the admission signal, a failure, or the end of the generation
            if source is None or self._finished or not self._queue.empty():
                item = await super().__anext__()
                if item is _ADMITTED:
                    continue
                return item
            try:
                return await source.__anext__()
            except StopAsyncIteration:
                self._source = None  # the generation is over; its end is queued

    async def aclose(self) -> None:
        source, self._source = self._source, None
        await super().aclose()
        if source is not None:
            # the generation's own cleanup (engine abort, slot); if another task is reading
            # it right now, the actor's abort ends it instead
            with contextlib.suppress(RuntimeError):
                await source.aclose()  # type: ignore[attr-defined]

    async def completion(self) -> Completion:
        """Drain the stream and return its ``Completion``."""
        return await self.final()

    def _incomplete(self) -> InferenceError:
        return InferenceError(f"stream {self.request_id} ended without a completion")

    def __del__(self) -> None:
        # dropped unread and unclosed: nobody will read it, so free its engine slot
        if not self._finished and not self._ended:
            self._finished = True
            with contextlib.suppress(Exception):
                self._on_close()


class Request:
    """One ``Generate`` from admission to its answer: who waits for it and how (``reply``, or
    ``stream``, or ``requester`` for a tell), its times (``perf_counter`` seconds) and
    counts. ``task``: the task running it, for a request not read through a stream."""

    __slots__ = (
        "id",
        "gen",
        "reply",
        "requester",
        "enqueued",
        "admitted",
        "first_token",
        "task",
        "_stream",
        "finished",
        "reported",
        "prompt_tokens",
        "completion_tokens",
    )

    def __init__(
        self, gen: Generate, reply: DeferredReply, requester: ActorRef | None, now: float
    ) -> None:
        self.id = f"req-{next(_ids)}"
        self.gen = gen
        self.reply: DeferredReply | None = reply  # None once answered with a stream
        self.requester = requester
        self.enqueued = now
        self.admitted = 0.0
        self.first_token = 0.0
        self.task: asyncio.Task[None] | None = None
        # weak: a stream its asker dropped must be collectable (its __del__ aborts us)
        self._stream: weakref.ref[CompletionStream] | None = None
        self.finished = False
        self.reported = False  # its InferenceRequestDone is out (or nobody listened)
        self.prompt_tokens = 0
        self.completion_tokens = 0

    @property
    def streamed(self) -> bool:
        """Read through a ``CompletionStream`` (pulled by its reader once admitted)."""
        return self._stream is not None

    @property
    def stream(self) -> CompletionStream | None:
        return self._stream() if self._stream is not None else None

    def answer_with_stream(self, on_close: Callable[[], None]) -> None:
        """Reply to the ask with this request's ``CompletionStream``. The request keeps only
        a weak reference to it (nor the reply, whose future holds it): a stream its asker
        drops is collected, and its ``__del__`` aborts the request."""
        assert self.reply is not None
        stream = CompletionStream(self.id, on_close)
        self._stream = weakref.ref(stream)
        reply, self.reply = self.reply, None
        reply.resolve(stream)

    @property
    def prompt_chars(self) -> int:
        gen = self.gen
        if gen.prompt is not None:
            return len(gen.prompt)
        return sum(len(m.content) for m in gen.messages or ())

    @property
    def abandoned(self) -> bool:
        """Nobody waits for the result any more (the ask ended, the stream closed)."""
        if self._stream is not None:
            stream = self._stream()
            return stream is None or stream.closed
        return self.reply is not None and self.reply.expected and self.reply.done

    def completion(
        self,
        text: str,
        finish_reason: FinishReason,
        now: float,
        logprobs: list[TokenLogprob] | None = None,
    ) -> Completion:
        first = self.first_token or now
        return Completion(
            request_id=self.id,
            text=text,
            finish_reason=finish_reason,
            usage=Usage(prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens),
            timings=Timings(
                queued=self.admitted - self.enqueued,
                ttft=first - self.enqueued,
                total=now - self.enqueued,
            ),
            logprobs=tuple(logprobs) if logprobs is not None else None,
        )

    def done_event(
        self, finish_reason: FinishReason, error: BaseException | None, now: float
    ) -> InferenceRequestDone:
        enqueued = self.enqueued
        requester = self.requester
        return InferenceRequestDone(
            request_id=self.id,
            requester=requester.path if requester is not None else None,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            queued=(self.admitted or now) - enqueued,
            ttft=self.first_token - enqueued if self.first_token else None,
            total=now - enqueued,
            finish_reason=finish_reason,
            error=str(error) if error is not None else None,
            error_type=type(error).__name__ if error is not None else None,
        )

    def deliver_delta(self, delta: TokenDelta, sender: ActorRef) -> None:
        """A told streaming request: the delta goes to the requester's mailbox."""
        if self.requester is not None:
            self.requester.tell(delta, sender=sender)

    def deliver(self, completion: Completion, sender: ActorRef) -> None:
        if self._stream is not None:
            stream = self._stream()
            if stream is not None:
                stream._end(completion)
        elif self.reply is not None and self.reply.expected:
            self.reply.resolve(completion)
        elif self.requester is not None:
            self.requester.tell(completion, sender=sender)

    def fail(self, error: BaseException) -> None:
        self.finished = True
        if self._stream is not None:
            stream = self._stream()
            if stream is not None:
                stream._end(error)
        elif self.reply is not None and self.reply.expected:
            self.reply.fail(error)
        elif self.requester is not None:  # a tell: the requester waits for a message
            self.requester.tell(error)


async def stream(ref: ActorRef, gen: Generate, timeout: float | None = 5.0) -> AsyncIterator[Any]:
    """``async for item in stream(inference, Generate(...))``: deltas, then the Completion."""
    if not gen.stream:
        gen = msgspec.structs.replace(gen, stream=True)
    completion_stream: CompletionStream = await ref.ask(gen, timeout=timeout)
    try:
        async for item in completion_stream:
            yield item
    finally:
        await completion_stream.aclose()

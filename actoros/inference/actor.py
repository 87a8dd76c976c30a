"""``InferenceActor``: one actor owns one engine and serves every agent's requests through it.

Why one actor: continuous batching works best when one engine sees every request. The actor
never blocks on a generation: ``receive`` admits the request and defers its reply; each
admitted request runs in its own task against the engine, and the engine batches them.

Admission: at most ``max_in_flight`` requests in the engine (default: the engine's
``max_num_seqs``); the rest wait here in a ``FairQueue`` (lower priority first, requesters in
turn), at most ``max_waiting`` of them — beyond that a request fails with ``Overloaded``.

Cancellation: when an ask ends before its reply (timeout, cancelled), or the requesting actor
stops, the engine request is aborted; nothing is left running for nobody.

Rendering (chat template, tokenizer): a short prompt is rendered on the loop; a long one in
the actor's render thread (``RENDER_INLINE_CHARS``), so a huge prompt never stalls the loop.

Failure: a prompt that does not fit fails that request with ``PromptTooLong``. When the engine
dies, every waiting and in-flight request fails with ``EngineUnavailable`` and the actor fails,
so its supervisor restarts it with a fresh engine.

Readiness: the actor publishes ``EngineReady`` on ``system.events`` once its engine has
started, and ``EngineDown`` when the engine dies or fails to start or the actor stops
(``events.py``), so nobody needs to poll ``InferenceStats`` to learn it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Hashable
from typing import Any

import msgspec
import structlog

from actoros.core import Actor, ActorRef, Context, DeferredReply, Terminated
from actoros.core.protocol import refuse, takes
from actoros.core.stream import ReplyStream

from .admission import FairQueue
from .engine import Engine, EngineDead
from .errors import EngineUnavailable, InferenceError, Overloaded, PromptTooLong
from .events import EngineDown, EngineReady
from .messages import (
    Completion,
    FinishReason,
    Generate,
    InferenceRequest,
    InferenceRequestDone,
    InferenceStats,
    Timings,
    TokenDelta,
    TokenLogprob,
    Usage,
)

log = structlog.get_logger("actoros.inference")

_ids = itertools.count(1)

RENDER_INLINE_CHARS = 4096
"""Prompts of up to this many characters are rendered on the loop (a millisecond or two with
a real tokenizer); longer ones in the actor's one render thread (the tokenizer releases the
GIL): a 1 MiB prompt takes about a second to tokenize, during which every actor would stop."""


class InferenceMetrics(msgspec.Struct, frozen=True):
    engine_ready: bool
    waiting: int
    in_flight: int
    completed: int
    failed: int
    output_tokens: int
    tokens_per_s: float  # over the last ``window`` seconds
    ttft_p50_s: float | None
    engine_unfinished: int
    supports_constraints: bool = False  # the engine enforces Generate.constraint


class _EngineFailed(msgspec.Struct, tag=True, frozen=True):
    error: str
    engine: Any  # the engine that failed: a report about an earlier engine is stale


class CompletionStream(ReplyStream[TokenDelta, Completion]):
    """Async iterator over a streaming request: ``TokenDelta``s in order, then the
    ``Completion``; a failure is raised from the iteration. Closing it early aborts the
    request. (The guarantees are core's ``ReplyStream``, shared with ``AgentStream``.)"""

    __slots__ = ("request_id",)

    def __init__(self, request_id: str, on_close: Callable[[], None]) -> None:
        super().__init__(Completion, on_close, request_id)
        self.request_id = request_id

    async def completion(self) -> Completion:
        """Drain the stream and return its ``Completion``."""
        return await self.final()

    def _incomplete(self) -> InferenceError:
        return InferenceError(f"stream {self.request_id} ended without a completion")


class _Request:
    __slots__ = (
        "id",
        "gen",
        "reply",
        "requester",
        "enqueued",
        "admitted",
        "first_token",
        "task",
        "stream",
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
        self.reply = reply
        self.requester = requester
        self.enqueued = now
        self.admitted = 0.0
        self.first_token = 0.0
        self.task: asyncio.Task[None] | None = None
        self.stream: CompletionStream | None = None
        self.finished = False
        self.reported = False  # its InferenceRequestDone is out (or nobody listened)
        self.prompt_tokens = 0
        self.completion_tokens = 0

    @property
    def abandoned(self) -> bool:
        """Nobody waits for the result any more (the ask ended, the stream closed)."""
        if self.stream is not None:
            return self.stream.closed
        return self.reply.expected and self.reply.done

    def fail(self, error: BaseException) -> None:
        self.finished = True
        if self.stream is not None:
            self.stream._end(error)
        elif self.reply.expected:
            self.reply.fail(error)
        elif self.requester is not None:  # a tell: the requester waits for a message
            self.requester.tell(error)


class InferenceActor(Actor):
    """Serves ``Generate`` requests from one engine.

    ``await ref.ask(Generate(...))`` → ``Completion``. With ``stream=True``: an ask replies at
    once with a ``CompletionStream``; a ``tell(..., sender=agent)`` sends the agent
    ``TokenDelta``s and then the ``Completion`` (or the error).
    """

    def __init__(
        self,
        engine_factory: Callable[[], Engine],
        *,
        model: str | None = None,
        max_in_flight: int | None = None,
        max_waiting: int = 4096,
        metrics_window: float = 60.0,
        log_every: float | None = 10.0,
    ) -> None:
        if max_in_flight is not None and max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1 (or None), got {max_in_flight}")
        if max_waiting < 0:
            raise ValueError(f"max_waiting must be >= 0, got {max_waiting}")
        self._engine_factory = engine_factory
        self.model = model  # the model's id, for EngineReady (the engine need not know it)
        self._max_in_flight_arg = max_in_flight
        self.max_waiting = max_waiting
        self._window = metrics_window
        self.engine: Engine | None = None
        self._ready = False
        self._down = False  # this incarnation announced EngineDown (it does so once)
        self._starting: asyncio.Task[None] | None = None
        self._waiting: FairQueue[_Request] = FairQueue()
        self._in_flight: dict[str, _Request] = {}
        self._requesters: dict[ActorRef, int] = {}
        self._completed = 0
        self._failed = 0
        self._output_tokens = 0
        self._recent: deque[tuple[float, int]] = deque()  # (finish time, output tokens)
        self._ttfts: deque[float] = deque(maxlen=1024)
        self.max_in_flight = max_in_flight or 1
        self._log_every = log_every  # seconds between ``inference.stats`` lines while busy
        self._reporter: asyncio.Task[None] | None = None
        self._renderer = concurrent.futures.ThreadPoolExecutor(1, "actoros-render")

    # -- lifecycle --------------------------------------------------------------------------

    async def on_start(self) -> None:
        self.engine = self._engine_factory()
        # build the engine off the loop's critical path: requests queue meanwhile
        loop = asyncio.get_running_loop()
        self._starting = loop.create_task(self._start_engine())
        if self._log_every:
            self._reporter = loop.create_task(self._report(self._log_every))

    async def _report(self, every: float) -> None:
        """Log queue depth, in flight, tokens/s and TTFT while there is work."""
        last = (-1, -1)
        while True:
            await asyncio.sleep(every)
            m = self.metrics()
            now = (m.completed + m.failed, m.waiting + m.in_flight)
            if now != last or m.waiting or m.in_flight:
                log.info("inference.stats", actor=self.ctx.path, **msgspec.structs.asdict(m))
            last = now

    async def _start_engine(self) -> None:
        engine = self.engine
        assert engine is not None
        began = time.perf_counter()
        try:
            await engine.start()
        except Exception as exc:
            log.error("inference.engine_start_failed", actor=self.ctx.path, error=repr(exc))
            self._announce_down(f"engine failed to start: {exc!r}")
            self.ctx.self.tell(_EngineFailed(f"engine failed to start: {exc!r}", engine))
            return
        self.max_in_flight = self._max_in_flight_arg or engine.max_num_seqs
        self._ready = True
        self._announce(
            EngineReady(
                path=self.ctx.path,
                model=self.model,
                max_model_len=engine.max_model_len,
                max_num_seqs=engine.max_num_seqs,
                supports_constraints=engine.supports_constraints,
            )
        )
        log.info(
            "inference.engine_ready",
            actor=self.ctx.path,
            engine=type(engine).__name__,
            seconds=round(time.perf_counter() - began, 2),
            max_in_flight=self.max_in_flight,
            max_model_len=engine.max_model_len,
        )
        self._pump()

    async def on_stop(self) -> None:
        if self._reporter is not None:
            self._reporter.cancel()
        starting = self._starting
        if starting is not None and not starting.done():
            starting.cancel()
            # let the engine's start unwind before shutting it down (a start cut short must
            # not leave a half-built engine running behind a completed shutdown)
            await asyncio.gather(starting, return_exceptions=True)
        error = EngineUnavailable("the inference actor stopped; retry once it is back")
        self._announce_down("the inference actor stopped")
        self._fail_all(error)
        tasks = [r.task for r in self._in_flight.values() if r.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        engine, self.engine = self.engine, None
        if engine is not None:
            try:
                await engine.shutdown()
            except Exception as exc:
                log.warning("inference.engine_shutdown_failed", error=repr(exc))
        self._renderer.shutdown(wait=False, cancel_futures=True)

    # -- messages ---------------------------------------------------------------------------

    def receive(self, message: Any, ctx: Context) -> Any:
        """One ``match`` over ``InferenceRequest``, the requesters' ``Terminated`` and the
        actor's own ``_EngineFailed``; anything else is refused (``_refuse``)."""
        match message:
            case Generate():
                return self._admit(message, ctx)
            case Terminated(ref=ref):
                self._requester_gone(ref)
                return None
            case InferenceStats():
                return self.metrics()
            case _EngineFailed(error=error, engine=engine):
                if engine is not self.engine:
                    return None  # about the engine of an earlier incarnation
                self._fail_all(EngineUnavailable(f"{error}; the actor restarts its engine"))
                raise EngineUnavailable(error)
            case _:  # the sender's error: answer it, but keep the engine running
                self._refuse(message, ctx)
                return None

    @staticmethod
    def _refuse(message: Any, ctx: Context) -> None:
        kind = type(message).__name__
        error = f"the inference actor takes {takes(InferenceRequest)}, not {kind}"
        refuse(message, ctx, InferenceError(error))

    def _admit(self, gen: Generate, ctx: Context) -> Any:
        reply = ctx.defer_reply()
        requester = ctx.sender
        request = _Request(gen, reply, requester, time.perf_counter())
        if len(self._waiting) >= self.max_waiting:
            self._fail(
                request,
                Overloaded(
                    f"{len(self._waiting)} requests already wait at {ctx.path} "
                    f"(max_waiting={self.max_waiting}); retry later or raise max_waiting"
                ),
            )
            return None
        if gen.stream and reply.expected:
            request.stream = CompletionStream(request.id, lambda: self._abandon(request))
            reply.resolve(request.stream)
        elif reply.expected:
            reply.on_done(lambda: self._abandon(request))
        if requester is not None and requester not in self._requesters:
            ctx.watch(requester)
            self._requesters[requester] = 0
        if requester is not None:
            self._requesters[requester] += 1
        key: Hashable = requester if requester is not None else "external"
        self._waiting.push(request, priority=gen.priority, requester=key)
        self._pump()
        return None

    # -- admission and generation -----------------------------------------------------------

    def _pump(self) -> None:
        if not self._ready:
            return
        loop = asyncio.get_running_loop()
        while self._waiting and len(self._in_flight) < self.max_in_flight:
            request = self._waiting.pop()
            if request.abandoned:
                self._release(request)
                self._report_done(request, "abort")
                continue
            request.admitted = time.perf_counter()
            self._in_flight[request.id] = request
            request.task = task = loop.create_task(self._run(request))
            # a task cancelled before its first step never runs _run's cleanup: do it here too
            task.add_done_callback(functools.partial(self._task_done, request))

    async def _render(self, engine: Engine, gen: Generate) -> tuple[Any, int]:
        if gen.prompt is not None:
            chars = len(gen.prompt)
        else:
            chars = sum(len(m.content) for m in gen.messages or ())
        if chars <= RENDER_INLINE_CHARS:
            return engine.render(gen)
        return await asyncio.get_running_loop().run_in_executor(self._renderer, engine.render, gen)

    async def _run(self, request: _Request) -> None:
        engine = self.engine
        assert engine is not None
        gen = request.gen
        text: list[str] = []
        logprobs: list[TokenLogprob] | None = None if gen.logprobs is None else []
        pending = 0  # logprobs[-pending:] belong to tokens whose text no delta carried yet
        index = 0
        finish_reason: FinishReason = "abort"
        try:
            prompt, request.prompt_tokens = await self._render(engine, gen)
            if request.prompt_tokens + gen.max_tokens > engine.max_model_len:
                raise PromptTooLong(request.prompt_tokens, gen.max_tokens, engine.max_model_len)
            sent = time.perf_counter()
            async for out in engine.generate(request.id, prompt, gen):
                if out.text or out.token_count:
                    if not request.first_token:
                        request.first_token = time.perf_counter()
                    request.completion_tokens += out.token_count
                    if logprobs is not None and out.logprobs:
                        logprobs.extend(out.logprobs)
                        pending += len(out.logprobs)
                    if out.text:
                        text.append(out.text)
                        if gen.stream and not request.finished:
                            lps = tuple(logprobs[-pending:]) if logprobs and pending else None
                            delta = TokenDelta(request.id, index, out.text, lps)
                            self._deliver_delta(request, delta)
                            index += 1
                            pending = 0
                if out.finished:
                    finish_reason = out.finish_reason or "stop"
                    if out.prompt_tokens:
                        request.prompt_tokens = out.prompt_tokens
                    if out.ttft is not None:  # one output at the end: the engine's own TTFT
                        request.first_token = min(request.first_token, sent + out.ttft)
        except EngineDead as exc:
            self._fail(request, EngineUnavailable(f"the engine died during {request.id}: {exc}"))
            self._engine_died(str(exc))
            return
        except asyncio.CancelledError:
            await self._abort(request)
            self._fail(request, EngineUnavailable(f"{request.id} was cancelled"))
            raise
        except InferenceError as exc:
            self._fail(request, exc)
            return
        except Exception as exc:
            self._fail(request, InferenceError(f"{request.id} failed in the engine: {exc!r}"))
            log.warning("inference.request_failed", request_id=request.id, error=repr(exc))
            return
        finally:
            self._done(request)
        if request.finished or request.abandoned:  # failed meanwhile, or nobody waits
            await self._abort(request)
            return
        # finish_reason "abort" here: the engine ended it on its own; the requester still
        # gets what was generated
        now = time.perf_counter()
        first = request.first_token or now
        completion_tokens = request.completion_tokens
        completion = Completion(
            request_id=request.id,
            text="".join(text),
            finish_reason=finish_reason,
            usage=Usage(prompt_tokens=request.prompt_tokens, completion_tokens=completion_tokens),
            timings=Timings(
                queued=request.admitted - request.enqueued,
                ttft=first - request.enqueued,
                total=now - request.enqueued,
            ),
            logprobs=tuple(logprobs) if logprobs is not None else None,
        )
        request.finished = True
        self._completed += 1
        self._output_tokens += completion_tokens
        self._recent.append((now, completion_tokens))
        self._ttfts.append(first - request.enqueued)
        self._deliver(request, completion)
        self._report_done(request, finish_reason, now=now)

    def _task_done(self, request: _Request, task: asyncio.Task[None]) -> None:
        self._done(request)
        self._report_done(request, "abort")  # a no-op unless it ended without an answer

    def _done(self, request: _Request) -> None:
        """The request left the engine (idempotent): free its slot, admit the next one."""
        if self._in_flight.pop(request.id, None) is None:
            return
        self._release(request)
        if self.engine is not None:
            self._pump()

    def _deliver_delta(self, request: _Request, delta: TokenDelta) -> None:
        if request.stream is not None:
            request.stream._push(delta)
        elif request.requester is not None:  # a told streaming request
            request.requester.tell(delta, sender=self.ctx.self)

    def _deliver(self, request: _Request, completion: Completion) -> None:
        if request.stream is not None:
            request.stream._end(completion)
        elif request.reply.expected:
            request.reply.resolve(completion)
        elif request.requester is not None:
            request.requester.tell(completion, sender=self.ctx.self)

    async def _abort(self, request: _Request) -> None:
        engine = self.engine
        if engine is not None:
            try:
                await engine.abort(request.id)
            except Exception as exc:  # the engine may be gone: nothing left to abort
                log.debug("inference.abort_failed", request_id=request.id, error=repr(exc))

    def _abandon(self, request: _Request) -> None:
        """The asker went away: drop the request if waiting, abort it if running."""
        if request.finished:
            return
        request.finished = True
        if request.task is not None and not request.task.done():
            request.task.cancel()
        elif request.task is None:
            if self._waiting.remove_where(lambda r: r is request):
                self._release(request)
                self._report_done(request, "abort")

    def _release(self, request: _Request) -> None:
        requester = request.requester
        if requester is None or requester not in self._requesters:
            return
        self._requesters[requester] -= 1

    def _requester_gone(self, ref: ActorRef) -> None:
        self._requesters.pop(ref, None)
        for request in self._waiting.remove_where(lambda r: r.requester is ref):
            request.finished = True
            self._report_done(request, "abort")
        for request in list(self._in_flight.values()):
            if request.requester is ref and request.task is not None:
                request.finished = True
                request.task.cancel()

    def _engine_died(self, error: str) -> None:
        if self._ready:
            self._ready = False
            log.error("inference.engine_died", actor=self.ctx.path, error=error)
            self._announce_down(f"the engine died: {error}")
            self.ctx.self.tell(_EngineFailed(f"the engine died: {error}", self.engine))

    def _announce_down(self, reason: str) -> None:
        if not self._down:
            self._down = True
            self._announce(EngineDown(path=self.ctx.path, reason=reason))

    def _announce(self, event: EngineReady | EngineDown) -> None:
        events = self.ctx.system.events
        if events.wants(type(event)):
            events.publish(event)

    def _fail_all(self, error: InferenceError) -> None:
        self._ready = False
        for request in self._waiting.remove_where(lambda r: True):
            self._fail(request, error)
        for request in list(self._in_flight.values()):
            self._fail(request, error)

    def _fail(self, request: _Request, error: InferenceError) -> None:
        if not request.finished:  # answer each request once
            request.fail(error)
            self._failed += 1
            self._report_done(request, "error", error)

    def _report_done(
        self,
        request: _Request,
        finish_reason: FinishReason,
        error: BaseException | None = None,
        now: float | None = None,
    ) -> None:
        """Publish the request's ``InferenceRequestDone`` (once), if anyone subscribes to it."""
        if request.reported:
            return
        request.reported = True
        events = self.ctx.system.events
        if not events.wants(InferenceRequestDone):
            return
        if now is None:
            now = time.perf_counter()
        enqueued = request.enqueued
        requester = request.requester
        events.publish(
            InferenceRequestDone(
                request_id=request.id,
                requester=requester.path if requester is not None else None,
                prompt_tokens=request.prompt_tokens,
                completion_tokens=request.completion_tokens,
                queued=(request.admitted or now) - enqueued,
                ttft=request.first_token - enqueued if request.first_token else None,
                total=now - enqueued,
                finish_reason=finish_reason,
                error=str(error) if error is not None else None,
                error_type=type(error).__name__ if error is not None else None,
            )
        )

    # -- metrics ----------------------------------------------------------------------------

    def metrics(self) -> InferenceMetrics:
        now = time.perf_counter()
        recent = self._recent
        while recent and recent[0][0] < now - self._window:
            recent.popleft()
        span = min(self._window, now - recent[0][0]) if recent else 0.0
        tokens = sum(n for _, n in recent)
        ttfts = sorted(self._ttfts)
        engine = self.engine
        return InferenceMetrics(
            engine_ready=self._ready,
            waiting=len(self._waiting),
            in_flight=len(self._in_flight),
            completed=self._completed,
            failed=self._failed,
            output_tokens=self._output_tokens,
            tokens_per_s=tokens / span if span > 0 else 0.0,
            ttft_p50_s=ttfts[len(ttfts) // 2] if ttfts else None,
            engine_unfinished=engine.num_unfinished() if engine is not None and self._ready else 0,
            supports_constraints=engine is not None
            and self._ready
            and getattr(engine, "supports_constraints", False),
        )


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

"""``InferenceActor``: one actor owns one engine and serves every agent's requests through it.

Why one actor: continuous batching works best when one engine sees every request. The actor
never blocks on a generation: ``receive`` admits the request and defers its reply; each
admitted request runs against the engine (a streamed ask in its reader, by pulling, see
``request.py``; any other in a task of its own), and the engine batches them.

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
import time
from collections.abc import AsyncIterator, Callable, Hashable
from typing import Any

import msgspec
import structlog

from actoros.core import Actor, ActorRef, Context, Terminated
from actoros.core.protocol import refuse, takes

from .admission import FairQueue
from .engine import Engine, EngineDead
from .errors import EngineUnavailable, InferenceError, Overloaded, PromptTooLong
from .events import EngineDown, EngineReady
from .messages import (
    FinishReason,
    Generate,
    InferenceRequest,
    InferenceRequestDone,
    InferenceStats,
    TokenDelta,
    TokenLogprob,
)
from .metrics import InferenceMetrics, MetricsWindow
from .request import CompletionStream, Request, stream

__all__ = ["CompletionStream", "InferenceActor", "InferenceMetrics", "InferenceStats", "stream"]

log = structlog.get_logger("actoros.inference")

RENDER_INLINE_CHARS = 4096
"""Prompts of up to this many characters are rendered on the loop (a millisecond or two with
a real tokenizer); longer ones in the actor's one render thread (the tokenizer releases the
GIL): a 1 MiB prompt takes about a second to tokenize, during which every actor would stop."""

ENGINE_WATCH_S = 0.5
"""How often the actor checks that its engine is alive while requests are in flight."""


class _EngineFailed(msgspec.Struct, tag=True, frozen=True):
    error: str
    engine: Any  # the engine that failed: a report about an earlier engine is stale


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
        self.engine: Engine | None = None
        self._ready = False
        self._down = False  # this incarnation announced EngineDown (it does so once)
        self._starting: asyncio.Task[None] | None = None
        self._waiting: FairQueue[Request] = FairQueue()
        self._in_flight: dict[str, Request] = {}
        self._requesters: dict[ActorRef, int] = {}
        self._metrics = MetricsWindow(metrics_window)
        self.max_in_flight = max_in_flight or 1
        self._log_every = log_every  # seconds between ``inference.stats`` lines while busy
        self._reporter: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._renderer = concurrent.futures.ThreadPoolExecutor(1, "actoros-render")

    # -- lifecycle --------------------------------------------------------------------------

    async def on_start(self) -> None:
        self.engine = self._engine_factory()
        # build the engine off the loop's critical path: requests queue meanwhile
        loop = asyncio.get_running_loop()
        self._starting = loop.create_task(self._start_engine())
        if self._log_every:
            self._reporter = loop.create_task(self._report(self._log_every))
        self._watcher = loop.create_task(self._watch_engine())

    async def _watch_engine(self) -> None:
        """Notice an engine that died while nobody reads its streams. A running request meets
        the death itself, but a streamed one runs only while its reader reads: with every
        reader busy elsewhere, the waiting requests would wait for nothing."""
        while True:
            await asyncio.sleep(ENGINE_WATCH_S)
            engine = self.engine
            if self._ready and self._in_flight and not getattr(engine, "alive", True):
                self._engine_died("the engine is not alive (found by the actor's watch)")

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
        for task in (self._reporter, self._watcher):
            if task is not None:
                task.cancel()
        starting = self._starting
        if starting is not None and not starting.done():
            starting.cancel()
            # let the engine's start unwind before shutting it down (a start cut short must
            # not leave a half-built engine running behind a completed shutdown)
            await asyncio.gather(starting, return_exceptions=True)
        error = EngineUnavailable("the inference actor stopped; retry once it is back")
        self._announce_down("the inference actor stopped")
        running = list(self._in_flight.values())
        self._fail_all(error)
        tasks = [r.task for r in running if r.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for request in running:  # read through streams: the abort ends what their readers pull
            if request.task is None:
                self._done(request)
                await self._abort(request)
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
        request = Request(gen, reply, requester, time.perf_counter())
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
            request.answer_with_stream(lambda: self._abandon(request))
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
            stream = request.stream
            if stream is not None:  # its reader drives the generation (request.py)
                stream._attach(self._generation(request))
                continue
            request.task = task = loop.create_task(self._run(request))
            # a task cancelled before its first step never runs _run's cleanup: do it here too
            task.add_done_callback(functools.partial(self._task_done, request))

    async def _render(self, engine: Engine, request: Request) -> tuple[Any, int]:
        gen = request.gen
        if request.prompt_chars <= RENDER_INLINE_CHARS:
            return engine.render(gen)
        return await asyncio.get_running_loop().run_in_executor(self._renderer, engine.render, gen)

    async def _run(self, request: Request) -> None:
        """A request nobody reads through a stream: its generation, driven by this task."""
        sender = self.ctx.self
        async for delta in self._generation(request):
            request.deliver_delta(delta, sender)

    async def _generation(self, request: Request) -> AsyncIterator[TokenDelta]:
        """Run ``request`` in the engine; yields its deltas when it streams (one per engine
        output: every token of that step), then answers it (or fails it) and frees its slot.
        Driven by ``_run``'s task, or by the reader of its ``CompletionStream``."""
        engine = self.engine
        if engine is None or request.finished:  # stopped, or failed before its first step
            self._done(request)
            return
        gen = request.gen
        streams = gen.stream
        text: list[str] = []
        logprobs: list[TokenLogprob] | None = None if gen.logprobs is None else []
        pending = 0  # logprobs[-pending:] belong to tokens whose text no delta carried yet
        index = 0
        finish_reason: FinishReason = "abort"
        outputs: AsyncIterator[Any] | None = None
        try:
            prompt, request.prompt_tokens = await self._render(engine, request)
            if request.prompt_tokens + gen.max_tokens > engine.max_model_len:
                raise PromptTooLong(request.prompt_tokens, gen.max_tokens, engine.max_model_len)
            sent = time.perf_counter()
            outputs = engine.generate(request.id, prompt, gen)
            async for out in outputs:
                if out.text or out.token_count:
                    if not request.first_token:
                        request.first_token = time.perf_counter()
                    request.completion_tokens += out.token_count
                    if logprobs is not None and out.logprobs:
                        logprobs.extend(out.logprobs)
                        pending += len(out.logprobs)
                    if out.text:
                        text.append(out.text)
                        if streams and not request.finished:
                            lps = tuple(logprobs[-pending:]) if logprobs and pending else None
                            yield TokenDelta(request.id, index, out.text, lps)
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
        except (asyncio.CancelledError, GeneratorExit):
            # cancelled (the asker's task, or the actor), or its reader closed the stream
            self._done(request)
            await self._close(request, outputs)
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
            stream = request.stream
            if stream is not None and not stream.ended:  # a reader may still wait: end it
                stream._end(InferenceError(f"{request.id} was aborted"))
            await self._abort(request)
            return
        self._complete(request, "".join(text), finish_reason, logprobs)

    def _complete(
        self,
        request: Request,
        text: str,
        finish_reason: FinishReason,
        logprobs: list[TokenLogprob] | None = None,
    ) -> None:
        # finish_reason "abort" here: the engine ended it on its own; the requester still
        # gets what was generated
        now = time.perf_counter()
        completion = request.completion(text, finish_reason, now, logprobs)
        request.finished = True
        self._metrics.record(now, request.completion_tokens, completion.timings.ttft)
        request.deliver(completion, self.ctx.self)
        self._report_done(request, finish_reason, now=now)

    async def _close(self, request: Request, outputs: AsyncIterator[Any] | None) -> None:
        """Stop a request's engine generation early (closing it aborts it in the engine)."""
        if outputs is not None:
            try:
                await outputs.aclose()  # type: ignore[attr-defined]
            except Exception as exc:  # the engine may be gone: nothing left to abort
                log.debug("inference.abort_failed", request_id=request.id, error=repr(exc))
        await self._abort(request)

    def _task_done(self, request: Request, task: asyncio.Task[None]) -> None:
        self._done(request)
        self._report_done(request, "abort")  # a no-op unless it ended without an answer

    def _done(self, request: Request) -> None:
        """The request left the engine (idempotent): free its slot, admit the next one."""
        if self._in_flight.pop(request.id, None) is None:
            return
        self._release(request)
        if self.engine is not None:
            self._pump()

    async def _abort(self, request: Request) -> None:
        engine = self.engine
        if engine is not None:
            try:
                await engine.abort(request.id)
            except Exception as exc:  # the engine may be gone: nothing left to abort
                log.debug("inference.abort_failed", request_id=request.id, error=repr(exc))

    def _abandon(self, request: Request) -> None:
        """The asker went away: drop the request if waiting, abort it if running."""
        if request.finished:
            return
        request.finished = True
        if request.id in self._in_flight:
            self._stop_running(request)
        elif request.task is None:
            if self._waiting.remove_where(lambda r: r is request):
                self._release(request)
                self._report_done(request, "abort")

    def _stop_running(self, request: Request) -> None:
        """End an admitted request early: cancel its task, or (read through a stream) free
        its slot now and abort it in the engine, which ends the generation its reader pulls."""
        if request.task is not None:
            if not request.task.done():
                request.task.cancel()
            return
        self._done(request)
        self._report_done(request, "abort")
        try:
            asyncio.get_running_loop().create_task(self._abort(request))
        except RuntimeError:  # no loop any more (a stream dropped at exit): nothing runs
            pass

    def _release(self, request: Request) -> None:
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
            if request.requester is ref and not request.finished:
                request.finished = True
                self._stop_running(request)

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
            if request.task is None:  # read through a stream that may never pull again
                self._done(request)

    def _fail(self, request: Request, error: InferenceError) -> None:
        if not request.finished:  # answer each request once
            request.fail(error)
            self._metrics.failed += 1
            self._report_done(request, "error", error)

    def _report_done(
        self,
        request: Request,
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
        events.publish(request.done_event(finish_reason, error, now or time.perf_counter()))

    # -- metrics ----------------------------------------------------------------------------

    def metrics(self) -> InferenceMetrics:
        engine = self.engine if self._ready else None
        return self._metrics.snapshot(
            time.perf_counter(),
            engine_ready=self._ready,
            waiting=len(self._waiting),
            in_flight=len(self._in_flight),
            engine_unfinished=engine.num_unfinished() if engine is not None else 0,
            supports_constraints=getattr(engine, "supports_constraints", False),
            max_model_len=engine.max_model_len if engine is not None else 0,
            max_num_seqs=engine.max_num_seqs if engine is not None else 0,
        )

"""``LiveFeed``: what the live routes share for one host — the frames, the clients, the
throughput sampler and its history.

``frame()`` is one ``TreeFrame``: the snapshot (capped, ``tree.py``), the totals, and the
inference actor's numbers (``null`` without an inference actor or when it does not answer
within ``STATS_TIMEOUT``). ``events()`` is one client's SSE stream: ``throughput`` (the
tokens/s history, once on connect), then ``tree`` every ``interval`` seconds and right after
each ``LifecycleEvent`` (bursts coalesced for ``DEBOUNCE`` seconds), and ``sample`` (one new
tokens/s point) each ``sample_every`` seconds; ``closing`` last, when the gateway stops.

Throughput is sampled only while someone watches: the first client starts one sampler task
(it asks the inference actor for ``InferenceStats`` each second and keeps the last
``HISTORY_S`` seconds of tokens/s in a ring buffer) and subscribes to lifecycle events; the
last one to leave cancels the task and unsubscribes. The history outlives the clients, with
a gap for the time nobody watched.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable

import structlog

from actoros.core import ActorStopped, AskTimeout, LifecycleEvent, MailboxFull
from actoros.inference.actor import InferenceMetrics, InferenceStats

from .. import sse
from ..host import Host
from ..shutdown import Shutdown
from .frames import Sample, Totals, TreeFrame
from .tree import MAX_CHILDREN, MAX_ROWS, cap_tree

__all__ = ["DEBOUNCE", "HISTORY_S", "STATS_TIMEOUT", "LiveFeed"]

log = structlog.get_logger("actoros.gateway.live")

STATS_TIMEOUT = 0.5  # seconds the inference actor gets to answer InferenceStats
DEBOUNCE = 0.05  # seconds a burst of lifecycle events is coalesced into one tree frame
HISTORY_S = 300  # seconds of tokens/s history kept (one sample a second)


class _Client:
    """One ``/api/events`` connection: woken by lifecycle events and new samples."""

    __slots__ = ("closing", "dirty", "samples", "wake")

    def __init__(self) -> None:
        self.wake = asyncio.Event()
        self.dirty = False  # a lifecycle event since the last tree frame
        self.closing = False  # the gateway is stopping: say so and end the stream
        self.samples: deque[Sample] = deque(maxlen=HISTORY_S)

    def close(self) -> None:
        self.closing = True
        self.wake.set()


class LiveFeed:
    """What the live routes share for one host: the clients, the sampler and its history.

    ``interval``: seconds between tree frames; ``sample_every``: seconds between throughput
    samples (both smaller in tests). ``max_children``/``max_rows``: see ``cap_tree``.
    """

    def __init__(
        self,
        host: Host,
        *,
        interval: float = 1.0,
        sample_every: float = 1.0,
        max_children: int = MAX_CHILDREN,
        max_rows: int = MAX_ROWS,
    ) -> None:
        self.host = host
        self.interval = interval
        self.sample_every = sample_every
        self.max_children = max_children
        self.max_rows = max_rows
        self.history: deque[Sample] = deque(maxlen=max(1, round(HISTORY_S / sample_every)))
        self.clients: set[_Client] = set()
        self._started = time.monotonic()
        self._sampler: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._metrics: tuple[float, InferenceMetrics] | None = None  # (monotonic, last answer)

    @property
    def sampling(self) -> bool:
        """Whether the sampler task runs (it does exactly while clients are connected)."""
        return self._sampler is not None and not self._sampler.done()

    async def frame(self) -> TreeFrame:
        """The tree as ``/api/tree`` and the ``tree`` event give it."""
        actors = self.host.actors
        infos = await self.host.snapshot()
        rows, hidden = cap_tree(infos, max_children=self.max_children, max_rows=self.max_rows)
        totals = Totals(
            actors=len(infos),
            restarts=sum(i.restarts for i in infos),
            mailbox=sum(i.mailbox for i in infos),
            processed=sum(i.processed for i in infos),
            dead_letters=actors.dead_letter_count,
        )
        metrics = await self._inference_metrics()
        return TreeFrame(
            system=self.host.config.system.name,
            time=time.time(),
            uptime_s=round(time.monotonic() - self._started, 3),
            totals=totals,
            hidden=hidden,
            actors=rows,
            inference=metrics,
        )

    async def _inference_metrics(self) -> InferenceMetrics | None:
        # the sampler's answer, while fresh, saves every client a second ask
        if self._metrics is not None and self.sampling:
            at, metrics = self._metrics
            if time.monotonic() - at <= 1.5 * self.sample_every:
                return metrics
        return await self._ask_stats()

    async def _ask_stats(self) -> InferenceMetrics | None:
        ref = self.host.service("inference")
        if ref is None:
            return None
        try:
            answer = await ref.ask(InferenceStats(), timeout=STATS_TIMEOUT)
        except (AskTimeout, ActorStopped, MailboxFull) as exc:  # busy, restarting, stopping
            log.debug(
                "live.stats_unanswered",
                actor=ref.path,
                message_type="InferenceStats",
                error=repr(exc),
            )
            return None
        except Exception as exc:  # the page must not break for one bad answer
            log.warning(
                "live.stats_failed", actor=ref.path, message_type="InferenceStats", error=repr(exc)
            )
            return None
        return answer if isinstance(answer, InferenceMetrics) else None

    def _attach(self, client: _Client) -> None:
        self.clients.add(client)
        if self._unsubscribe is None:
            self._unsubscribe = self.host.actors.events.subscribe(self._changed, LifecycleEvent)
        if self._sampler is None or self._sampler.done():
            self._sampler = asyncio.get_running_loop().create_task(
                self._sample(), name="actoros.gateway.live.sampler"
            )

    def _detach(self, client: _Client) -> None:
        self.clients.discard(client)
        if self.clients:
            return
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._sampler is not None:
            self._sampler.cancel()
            self._sampler = None

    def _changed(self, event: LifecycleEvent) -> None:
        for client in self.clients:
            client.dirty = True
            client.wake.set()

    async def _sample(self) -> None:
        """Each ``sample_every`` s: the inference actor's output tokens since the last ask."""
        loop = asyncio.get_running_loop()
        last: tuple[float, int] | None = None  # (loop time, output_tokens)
        next_at = loop.time()
        while True:
            metrics = await self._ask_stats()
            now = loop.time()
            if metrics is None:
                last = None
            else:
                self._metrics = (time.monotonic(), metrics)
                if last is not None and now > last[0]:
                    produced = metrics.output_tokens - last[1]
                    if produced < 0:  # a restarted inference actor counts from zero again
                        produced = metrics.output_tokens
                    self._add(Sample(round(time.time(), 3), round(produced / (now - last[0]), 2)))
                last = (now, metrics.output_tokens)
            next_at = max(next_at + self.sample_every, now)
            await asyncio.sleep(next_at - loop.time())

    def _add(self, sample: Sample) -> None:
        self.history.append(sample)
        for client in self.clients:
            client.samples.append(sample)
            client.wake.set()

    async def events(
        self, interval: float, shutdown: Shutdown | None = None
    ) -> AsyncGenerator[bytes, None]:
        """The SSE stream of one client; its ``finally`` detaches it, however it ends.

        When ``shutdown`` begins (the gateway stops), the stream sends ``closing`` and ends,
        rather than holding the server's exit up until its grace period runs out.
        """
        client = _Client()
        self._attach(client)
        forget = shutdown.watch(client.close) if shutdown is not None else None
        loop = asyncio.get_running_loop()
        try:
            yield b"retry: 2000\n\n"
            yield sse.event({"window_s": HISTORY_S, "points": list(self.history)}, "throughput")
            next_tree = loop.time()
            while not client.closing:
                if client.dirty or loop.time() >= next_tree:
                    if client.dirty:
                        await asyncio.sleep(DEBOUNCE)  # one frame for a burst of restarts
                    client.dirty = False
                    yield sse.event(await self.frame(), "tree")
                    next_tree = loop.time() + interval
                while client.samples:
                    yield sse.event(client.samples.popleft(), "sample")
                client.wake.clear()
                if not client.dirty and not client.closing:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(client.wake.wait(), next_tree - loop.time())
            yield sse.event({"reason": "the gateway is stopping"}, "closing")
        finally:
            if forget is not None:
                forget()
            self._detach(client)

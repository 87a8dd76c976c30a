"""The live view: ``GET /`` (a page of the supervision tree), ``/api/tree`` and ``/api/events``.

- ``GET /api/tree``: one JSON frame — every actor of ``host.actors.snapshot()`` (capped, see
  below), the system's name and uptime, totals, and the inference actor's numbers (``null``
  without an inference actor or when it does not answer within ``STATS_TIMEOUT``).
- ``GET /api/events``: Server-Sent Events. ``throughput`` (the tokens/s history, once on
  connect), then ``tree`` (the same JSON as ``/api/tree``) every ``interval`` seconds and right
  after each ``LifecycleEvent`` (bursts coalesced for ``DEBOUNCE`` seconds), and ``sample`` (one
  new tokens/s point) each second; ``closing`` last, when the gateway stops.
  ``?interval=SECONDS`` asks for another tree period.
- ``GET /``: a self-contained page (no CDN: plain JS, an inline SVG chart) fed by
  ``/api/events``. ``actoros top`` reads ``/api/tree``.

Throughput is sampled only while someone watches: the first ``/api/events`` client starts one
sampler task (it asks the inference actor for ``InferenceStats`` each second and keeps the last
``HISTORY_S`` seconds of tokens/s in a ring buffer) and subscribes to lifecycle events; the
last one to leave cancels the task and unsubscribes. The history outlives the clients, with
a gap for the time nobody watched.

Large trees: a parent with more than ``max_children`` children shows that many of them —
restarted or not running ones first, then those with mail waiting, then in start order —
and one row ``{"hidden": N, ...}`` that sums up the rest (their subtrees included); past
``max_rows`` rows in all, the remainder is one such row too. ``totals`` always counts every
actor.

Auth: with ``gateway.tokens`` configured, ``/api/*`` want one of them, as
``Authorization: Bearer <token>`` or as ``?token=<token>`` (an ``EventSource`` cannot send
headers); ``GET /`` and its static files stay open, and the page passes on its own
``?token=``. See docs/live.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable
from importlib import resources
from typing import Any

import msgspec
import structlog
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from actoros.core import ActorInfo, ActorStopped, AskTimeout, LifecycleEvent, MailboxFull
from actoros.inference.actor import InferenceMetrics, InferenceStats

from .auth import TokenAuth, resolve_tokens
from .errors import APIError, error_response
from .host import Host
from .shutdown import Shutdown, shutdown_of

__all__ = [
    "ActorGroup",
    "InferenceNumbers",
    "LiveFeed",
    "Sample",
    "Totals",
    "TreeFrame",
    "cap_tree",
    "routes",
]

log = structlog.get_logger("actoros.gateway.live")

STATS_TIMEOUT = 0.5  # seconds the inference actor gets to answer InferenceStats
DEBOUNCE = 0.05  # seconds a burst of lifecycle events is coalesced into one tree frame
HISTORY_S = 300  # seconds of tokens/s history kept (one sample a second)
MAX_CHILDREN = 50
MAX_ROWS = 1000
MIN_INTERVAL, MAX_INTERVAL = 0.05, 60.0


# -- the JSON ------------------------------------------------------------------------------


class ActorGroup(msgspec.Struct, frozen=True, kw_only=True):
    """A row standing for ``hidden`` actors not listed (siblings, with their subtrees).

    Same fields as ``ActorInfo``; ``restarts``, ``mailbox`` and ``processed`` are sums.
    """

    path: str
    parent: str | None
    name: str
    kind: str = ""
    state: str = ""
    restarts: int
    mailbox: int
    processed: int
    children: int = 0
    hidden: int


class Totals(msgspec.Struct, frozen=True, kw_only=True):
    actors: int
    restarts: int
    mailbox: int
    processed: int
    dead_letters: int


class InferenceNumbers(msgspec.Struct, frozen=True, kw_only=True):
    """``InferenceMetrics`` as the inference actor reported them (``tokens_per_s``: its own
    average over the last minute; the per-second chart comes from ``sample`` events)."""

    engine_ready: bool
    waiting: int
    in_flight: int
    completed: int
    failed: int
    output_tokens: int
    tokens_per_s: float
    ttft_p50_s: float | None


class TreeFrame(msgspec.Struct, frozen=True, kw_only=True):
    system: str
    time: float  # the server's clock (Unix seconds)
    uptime_s: float
    totals: Totals
    hidden: int  # actors behind ``ActorGroup`` rows
    actors: list[ActorInfo | ActorGroup]
    inference: InferenceNumbers | None


class Sample(msgspec.Struct, frozen=True, array_like=True):
    """One point of the throughput chart: ``[t, tokens_per_s]`` (Unix seconds)."""

    t: float
    tokens_per_s: float


# -- capping large trees -------------------------------------------------------------------


def _rank(info: ActorInfo) -> int:
    """Which children to show first when not all fit: 0 restarted or not running, 1 with
    mail waiting, 2 the rest."""
    if info.restarts > 0 or info.state != "running":
        return 0
    return 1 if info.mailbox > 0 else 2


def cap_tree(
    infos: list[ActorInfo], *, max_children: int = MAX_CHILDREN, max_rows: int = MAX_ROWS
) -> tuple[list[ActorInfo | ActorGroup], int]:
    """The rows to show of a snapshot (parents before children) and how many actors they hide.

    See the module docstring for the rule. Linear in the number of actors.
    """
    children: dict[str | None, list[ActorInfo]] = {}
    for info in infos:
        children.setdefault(info.parent, []).append(info)
    if len(infos) <= max_rows and all(len(c) <= max_children for c in children.values()):
        return list(infos), 0
    # subtree sums, children before parents: [actors, restarts, mailbox, processed]
    sums: dict[str, list[int]] = {}
    for info in reversed(infos):
        own = sums.setdefault(info.path, [0, 0, 0, 0])
        own[0] += 1
        own[1] += info.restarts
        own[2] += info.mailbox
        own[3] += info.processed
        if info.parent is not None:
            up = sums.setdefault(info.parent, [0, 0, 0, 0])
            for i in range(4):
                up[i] += own[i]

    def group(parent: str | None, total: list[int], label: str, path: str = "") -> ActorGroup:
        return ActorGroup(
            path=path or f"{parent or ''}/…",
            parent=parent,
            name=f"… {total[0]:,} more {label}",
            restarts=total[1],
            mailbox=total[2],
            processed=total[3],
            hidden=total[0],
        )

    def summed(hidden: list[ActorInfo]) -> list[int]:
        total = [0, 0, 0, 0]
        for info in hidden:
            for i, value in enumerate(sums[info.path]):
                total[i] += value
        return total

    def shown(parent: str | None) -> tuple[list[ActorInfo], list[ActorInfo]]:
        kids = children.get(parent, [])
        if len(kids) <= max_children:
            return kids, []
        # sorted() is stable: within a rank, start order
        keep = {k.path for k in sorted(kids, key=_rank)[:max_children]}
        return [k for k in kids if k.path in keep], [k for k in kids if k.path not in keep]

    rows: list[ActorInfo | ActorGroup] = []
    hidden = 0
    cut = [0, 0, 0, 0]  # what the row limit cut off
    # (info, None): emit an actor, then its children; (None, group): emit a group row
    stack: list[tuple[ActorInfo | None, ActorGroup | None]] = []

    def push_children(parent: str | None, label: str) -> None:
        kids, rest = shown(parent)
        if rest:
            stack.append((None, group(parent, summed(rest), label)))
        stack.extend((kid, None) for kid in reversed(kids))

    push_children(None, "actors")
    while stack:
        info, grouped = stack.pop()
        if len(rows) >= max_rows - 1:  # the last row is kept for what is cut off
            total = sums[info.path] if info is not None else None
            if grouped is not None:
                total = [grouped.hidden, grouped.restarts, grouped.mailbox, grouped.processed]
            assert total is not None
            for i, value in enumerate(total):
                cut[i] += value
            continue
        if grouped is not None:
            rows.append(grouped)
            hidden += grouped.hidden
            continue
        assert info is not None
        rows.append(info)
        push_children(info.path, "children")
    if cut[0]:
        rows.append(group(None, cut, "actors (row limit)", path="/…row-limit"))
        hidden += cut[0]
    return rows, hidden


# -- the feed ------------------------------------------------------------------------------


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

    # -- frames ----------------------------------------------------------------------------

    async def frame(self) -> TreeFrame:
        """The tree as ``/api/tree`` and the ``tree`` event give it."""
        actors = self.host.actors
        infos = actors.snapshot()
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
            inference=None if metrics is None else _numbers(metrics),
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
            log.debug("live.stats_unanswered", actor=ref.path, message_type="InferenceStats",
                      error=repr(exc))  # fmt: skip
            return None
        except Exception as exc:  # the page must not break for one bad answer
            log.warning("live.stats_failed", actor=ref.path, message_type="InferenceStats",
                        error=repr(exc))  # fmt: skip
            return None
        return answer if isinstance(answer, InferenceMetrics) else None

    # -- clients and the sampler -----------------------------------------------------------

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
            yield _sse("throughput", {"window_s": HISTORY_S, "points": list(self.history)})
            next_tree = loop.time()
            while not client.closing:
                if client.dirty or loop.time() >= next_tree:
                    if client.dirty:
                        await asyncio.sleep(DEBOUNCE)  # one frame for a burst of restarts
                    client.dirty = False
                    yield _sse("tree", await self.frame())
                    next_tree = loop.time() + interval
                while client.samples:
                    yield _sse("sample", client.samples.popleft())
                client.wake.clear()
                if not client.dirty and not client.closing:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(client.wake.wait(), next_tree - loop.time())
            yield _sse("closing", {"reason": "the gateway is stopping"})
        finally:
            if forget is not None:
                forget()
            self._detach(client)


def _numbers(m: InferenceMetrics) -> InferenceNumbers:
    return InferenceNumbers(
        engine_ready=m.engine_ready,
        waiting=m.waiting,
        in_flight=m.in_flight,
        completed=m.completed,
        failed=m.failed,
        output_tokens=m.output_tokens,
        tokens_per_s=round(m.tokens_per_s, 2),
        ttft_p50_s=m.ttft_p50_s,
    )


class _EventStream(StreamingResponse):
    """A streaming response that always closes its generator, so the client's ``finally``
    (detach, and the sampler's stop with the last client) runs as the connection ends, even
    when the disconnect cancels the response while the generator waits at a ``yield``."""

    body_iterator: AsyncGenerator[bytes, None]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.body_iterator.aclose()


def _sse(event: str, data: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + msgspec.json.encode(data) + b"\n\n"


# -- routes --------------------------------------------------------------------------------


def _static(name: str) -> bytes:
    return resources.files("actoros.gateway").joinpath("static", name).read_bytes()


def _auth_for(host: Host) -> TokenAuth:
    gateway = host.config.gateway
    return TokenAuth(resolve_tokens(gateway) if gateway is not None else ())


def _authorized(request: Request, auth: TokenAuth) -> None:
    """Raise ``APIError`` 401 unless the request carries one of the gateway's tokens, in the
    ``Authorization`` header or (for ``EventSource``, which cannot send headers) ``?token=``."""
    header = request.headers.get("authorization")
    token = request.query_params.get("token")
    if header is None and token:
        header = f"Bearer {token}"
    auth.caller(header)


def routes(
    host: Host, *, auth: TokenAuth | None = None, feed: LiveFeed | None = None
) -> list[BaseRoute]:
    """``/``, ``/static/live.{js,css}``, ``/api/tree`` and ``/api/events`` for ``host``.

    ``auth``: the gateway's tokens (default: read from ``host.config.gateway``); ``feed``: the
    shared state (default: a ``LiveFeed`` with the standard periods).
    """
    auth = auth if auth is not None else _auth_for(host)
    feed = feed if feed is not None else LiveFeed(host)
    page = _static("index.html")
    files = {
        "live.js": (_static("live.js"), "text/javascript; charset=utf-8"),
        "live.css": (_static("live.css"), "text/css; charset=utf-8"),
    }

    async def index(request: Request) -> Response:
        return Response(page, media_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-cache"})  # fmt: skip

    async def static(request: Request) -> Response:
        found = files.get(request.path_params["name"])
        if found is None:
            return Response(b"not found", status_code=404, media_type="text/plain")
        body, media_type = found
        return Response(body, media_type=media_type, headers={"Cache-Control": "no-cache"})

    async def tree(request: Request) -> Response:
        try:
            _authorized(request, auth)
        except APIError as exc:
            return error_response(exc)
        return Response(msgspec.json.encode(await feed.frame()), media_type="application/json")

    async def events(request: Request) -> Response:
        try:
            _authorized(request, auth)
            interval = _interval(request, feed.interval)
        except APIError as exc:
            return error_response(exc)
        shutdown = shutdown_of(request)
        if shutdown.begun:
            return error_response(
                APIError(503, "the gateway is stopping; retry once it is back",
                         type="server_error", code="unavailable")
            )  # fmt: skip
        log.debug("live.client_connected", clients=len(feed.clients) + 1,
                  client=request.client.host if request.client else None)  # fmt: skip
        return _EventStream(
            feed.events(interval, shutdown),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return [
        Route("/", index, methods=["GET"]),
        Route("/static/{name:str}", static, methods=["GET"]),
        Route("/api/tree", tree, methods=["GET"]),
        Route("/api/events", events, methods=["GET"]),
    ]


def _interval(request: Request, default: float) -> float:
    text = request.query_params.get("interval")
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not MIN_INTERVAL <= value <= MAX_INTERVAL:
        raise APIError(
            400,
            f"interval must be a number of seconds from {MIN_INTERVAL} to {MAX_INTERVAL}, "
            f"not {text!r}",
            param="interval",
        )
    return value

"""``GET /metrics``: the running system in Prometheus format (``prometheus_client``).

Each app gets its own ``MetricsCollector`` with its own ``CollectorRegistry`` (never the
process-wide default), so several systems in one process do not clash. Nothing polls: what
the actors, the scheduler and the inference actor report is read when Prometheus scrapes —
one ``ActorSystem.snapshot()``, one ``Stats()`` ask and one ``InferenceStats()`` ask (each
with a short timeout: a busy or restarting service makes its ``*_up`` gauge 0, never the
scrape fail). Between scrapes only event subscriptions run, and they only count:
``DeadLetter`` and ``LifecycleEvent`` on the system event stream, and the inference actor's
``InferenceRequestDone`` (one per finished request, for the latency histograms).

Cardinality is per actor *kind* (class name), never per path: 100k actors are a handful of
series. The per-kind message counter is built from each actor's ``processed`` count; it stays
monotonic when actors stop or restart (a path's last value is carried once it disappears), at
the price of missing what an actor handled after the last scrape if it stopped before the
next one. The metrics and their labels are listed in docs/metrics.md.

HTTP metrics of the gateway itself come from ``metrics_middleware(collector)`` (an ASGI
middleware) or from calls to ``MetricsCollector.observe_request``.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, defaultdict
from collections.abc import Iterator
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from actoros.core import ActorInfo, DeadLetter, LifecycleEvent
from actoros.inference.actor import InferenceMetrics, InferenceStats
from actoros.inference.messages import InferenceRequestDone
from actoros.kernel import SchedulerStats, Stats

from .auth import TokenAuth, resolve_tokens
from .errors import APIError, error_response
from .host import Host

__all__ = [
    "LATENCY_BUCKETS",
    "HTTPMetricsMiddleware",
    "MetricsCollector",
    "metrics_middleware",
    "reason_class",
    "routes",
]

log = structlog.get_logger("actoros.gateway.metrics")

#: seconds; from a fake engine's sub-millisecond answers to a CPU model's minutes-long ones
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0,
)  # fmt: skip
ASK_TIMEOUT = 1.0  # seconds a scrape waits for the scheduler's and the inference actor's stats
UNKNOWN = "unknown"  # the kind of an actor the collector never saw in a snapshot
_RETIRED_KINDS = 10_000  # stopped actors' kinds kept for late dead letters to them
_PENDING_PATHS = 10_000  # distinct unresolved paths kept between two scrapes
_LIFECYCLE = {"restarted": "restarts", "failed": "failures", "escalated": "escalations"}
_TASK_STATES = ("queued", "running", "done", "failed")


def reason_class(reason: str) -> str:
    """A dead letter's free-text reason, reduced to a label with few values."""
    if reason.startswith("recipient stopped"):
        return "recipient_stopped"
    if reason.startswith("mailbox full"):
        return "mailbox_full"
    if reason.startswith("late reply"):
        return "late_reply"
    if reason.startswith("unhandled"):
        return "unhandled"
    return "other"


class _Path:
    """What the collector remembers of one live actor: the kind its messages count for and
    its ``processed`` count (``base``: the part already counted for an earlier kind)."""

    __slots__ = ("kind", "base", "last")

    def __init__(self, kind: str, base: int, last: int) -> None:
        self.kind = kind
        self.base = base
        self.last = last


class MetricsCollector(Collector):
    """The metrics of one running system, in its own ``registry``.

    ``await refresh()`` reads the system (call it right before rendering; ``scrape`` does
    both); ``collect()`` is what ``prometheus_client`` calls while rendering.
    ``observe_request(route, status, seconds)`` records one HTTP request to the gateway.
    ``close()`` ends the event subscriptions (dropping the collector does too).
    """

    def __init__(self, host: Host, *, ask_timeout: float = ASK_TIMEOUT) -> None:
        self._host = host
        self.ask_timeout = ask_timeout
        self.registry = CollectorRegistry(auto_describe=False)
        # -- from snapshots
        self._paths: dict[str, _Path] = {}
        self._retired: defaultdict[str, int] = defaultdict(int)  # kind -> processed, carried
        self._retired_kinds: OrderedDict[str, str] = OrderedDict()  # path -> kind
        self._processed: dict[str, int] = {}
        self._actors: dict[tuple[str, str], int] = {}
        self._mailbox_sum: dict[str, int] = {}
        self._mailbox_max: dict[str, int] = {}
        # -- from events (by kind, or by path until a snapshot names its kind)
        self._dead: defaultdict[tuple[str, str], int] = defaultdict(int)  # (kind, reason)
        self._lifecycle: defaultdict[tuple[str, str], int] = defaultdict(int)  # (kind, what)
        self._tables = {"dead": self._dead, "lifecycle": self._lifecycle}
        # (table, path, detail) -> events about an actor no snapshot has named yet
        self._pending: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        self._requests: defaultdict[str, int] = defaultdict(int)  # finish_reason
        self._failures: defaultdict[str, int] = defaultdict(int)  # error_type
        self._prompt_tokens = 0
        self._output_tokens = 0
        # -- asked at scrape time
        self._inference: InferenceMetrics | None = None
        self._scheduler: SchedulerStats | None = None

        r = self.registry
        self.ttft = Histogram(
            "actoros_inference_time_to_first_token_seconds",
            "Seconds from a request reaching the inference actor to its first token "
            "(requests that ended without an error and produced a token).",
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.e2e = Histogram(
            "actoros_inference_e2e_request_latency_seconds",
            "Seconds from a request reaching the inference actor to its end "
            "(requests that ended without an error, aborted ones included).",
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.queue_time = Histogram(
            "actoros_inference_request_queue_time_seconds",
            "Seconds a request waited in the inference actor's queue before the engine took "
            "it (requests that ended without an error).",
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.http_requests = Counter(
            "actoros_gateway_http_requests",
            "HTTP requests the gateway answered, by route template and status code.",
            ["route", "status"], registry=r,
        )  # fmt: skip
        self.http_latency = Histogram(
            "actoros_gateway_http_request_duration_seconds",
            "Seconds from a request's arrival to the end of its response (a stream's whole "
            "length), by route template.",
            ["route"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        r.register(self)
        events = host.actors.events
        self._unsubscribe = [
            events.subscribe_weakly(self._on_dead_letter, DeadLetter),
            events.subscribe_weakly(self._on_lifecycle, LifecycleEvent),
            events.subscribe_weakly(self._on_request_done, InferenceRequestDone),
        ]

    def close(self) -> None:
        """Stop counting events (what was counted stays)."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []

    # -- events (between scrapes: count only) -----------------------------------------------

    def _kind_of(self, path: str) -> str | None:
        entry = self._paths.get(path)
        if entry is not None:
            return entry.kind
        return self._retired_kinds.get(path)

    def _count(self, table: str, path: str, detail: str) -> None:
        """Count an event about ``path`` under its kind in ``table``, or, while the kind is
        unknown (an actor that came after the last snapshot), until the next snapshot."""
        kind = self._kind_of(path)
        if kind is None:
            key = (table, path, detail)
            if key in self._pending or len(self._pending) < _PENDING_PATHS:
                self._pending[key] += 1
                return
            kind = UNKNOWN
        self._tables[table][(kind, detail)] += 1

    def _on_dead_letter(self, event: DeadLetter) -> None:
        reason = reason_class(event.reason)
        recipient = event.recipient
        path = getattr(recipient, "path", None)
        if path is None:
            self._dead[(UNKNOWN, reason)] += 1
        else:
            self._count("dead", path, reason)

    def _on_lifecycle(self, event: LifecycleEvent) -> None:
        what = _LIFECYCLE.get(event.kind)
        if what is not None:
            self._count("lifecycle", event.path, what)

    def _on_request_done(self, event: InferenceRequestDone) -> None:
        self._requests[event.finish_reason] += 1
        self._prompt_tokens += event.prompt_tokens
        self._output_tokens += event.completion_tokens
        if event.error is not None:
            self._failures[event.error_type or "InferenceError"] += 1
            return
        self.e2e.observe(event.total)
        self.queue_time.observe(event.queued)
        if event.ttft is not None:
            self.ttft.observe(event.ttft)

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        """Record one HTTP request: ``route`` is its template (``/v1/chat/completions``),
        never the raw path (that would make a series per URL)."""
        self.http_requests.labels(route, str(status)).inc()
        self.http_latency.labels(route).observe(seconds)

    # -- scrape time --------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Read the system now: the actor snapshot, the scheduler's and inference's stats."""
        self._observe(self._host.actors.snapshot())
        inference, scheduler = await asyncio.gather(
            self._ask("inference", InferenceStats()), self._ask("scheduler", Stats())
        )
        self._inference = inference if isinstance(inference, InferenceMetrics) else None
        self._scheduler = scheduler if isinstance(scheduler, SchedulerStats) else None

    async def scrape(self, accept: str | None = None) -> tuple[bytes, str]:
        """Refresh, then render: the body and its content type (Prometheus text format, or
        OpenMetrics when ``accept`` asks for it)."""
        await self.refresh()
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type

    async def _ask(self, service: str, message: Any) -> Any:
        ref = self._host.service(service)
        if ref is None:
            return None
        try:
            return await ref.ask(message, timeout=self.ask_timeout)
        except Exception as exc:  # busy, restarting or gone: the scrape still answers
            log.debug(
                "metrics.stats_unavailable",
                actor=ref.path,
                message_type=type(message).__name__,
                error=repr(exc),
            )
            return None

    def _observe(self, infos: list[ActorInfo]) -> None:
        """Fold a snapshot into the per-kind numbers (see the module docstring)."""
        known = self._paths
        retired = self._retired
        seen: dict[str, _Path] = {}
        actors: defaultdict[tuple[str, str], int] = defaultdict(int)
        mailbox_sum: defaultdict[str, int] = defaultdict(int)
        mailbox_max: dict[str, int] = {}
        live: defaultdict[str, int] = defaultdict(int)
        for info in infos:
            path, processed = info.path, info.processed
            entry = known.get(path)
            if entry is None:
                entry = _Path(info.kind, 0, processed)
            elif processed < entry.last:  # a new actor under an old name
                retired[entry.kind] += entry.last - entry.base
                entry = _Path(info.kind, 0, processed)
            else:
                # between incarnations the kind is the factory's name: keep the known one,
                # and move to a new kind only once an instance runs
                if info.state == "running" and info.kind != entry.kind:
                    retired[entry.kind] += entry.last - entry.base
                    entry.kind, entry.base = info.kind, entry.last
                entry.last = processed
            seen[path] = entry
            kind = entry.kind
            live[kind] += processed - entry.base
            actors[(kind, info.state)] += 1
            mailbox_sum[kind] += info.mailbox
            if info.mailbox > mailbox_max.get(kind, -1):
                mailbox_max[kind] = info.mailbox
        recent = self._retired_kinds
        for path, entry in known.items():
            if path not in seen:  # stopped since the last scrape: carry its count
                retired[entry.kind] += entry.last - entry.base
                recent[path] = entry.kind
                recent.move_to_end(path)
        while len(recent) > _RETIRED_KINDS:
            recent.popitem(last=False)
        self._paths = seen
        self._processed = {k: retired.get(k, 0) + live.get(k, 0) for k in {*retired, *live}}
        self._actors = dict(actors)
        self._mailbox_sum = dict(mailbox_sum)
        self._mailbox_max = mailbox_max
        pending, self._pending = self._pending, defaultdict(int)
        for (table, path, detail), count in pending.items():
            self._tables[table][(self._kind_of(path) or UNKNOWN, detail)] += count

    def collect(self) -> Iterator[Metric]:
        processed = CounterMetricFamily(
            "actoros_actor_messages_processed",
            "User messages handled by actors of each kind (class name), over all incarnations; "
            "stopped actors' counts are carried.",
            labels=["kind"],
        )
        for kind, count in sorted(self._processed.items()):
            processed.add_metric([kind], count)
        yield processed

        actors = GaugeMetricFamily(
            "actoros_actors",
            "Live actors by kind and state (starting, running, ended: between incarnations).",
            labels=["kind", "state"],
        )
        for (kind, state), count in sorted(self._actors.items()):
            actors.add_metric([kind, state], count)
        yield actors

        depth = GaugeMetricFamily(
            "actoros_actor_mailbox_depth",
            "Messages waiting in the mailboxes of all actors of a kind, summed.",
            labels=["kind"],
        )
        deepest = GaugeMetricFamily(
            "actoros_actor_mailbox_depth_max",
            "Messages waiting in the fullest mailbox among the actors of a kind.",
            labels=["kind"],
        )
        for kind, count in sorted(self._mailbox_sum.items()):
            depth.add_metric([kind], count)
            deepest.add_metric([kind], self._mailbox_max[kind])
        yield depth
        yield deepest

        dead = CounterMetricFamily(
            "actoros_dead_letters",
            "Messages that could not be delivered, by the recipient's kind and the reason "
            "(recipient_stopped, mailbox_full, late_reply, unhandled, other).",
            labels=["kind", "reason"],
        )
        for (kind, reason), count in sorted(self._dead.items()):
            dead.add_metric([kind, reason], count)
        yield dead

        lifecycle = {
            "restarts": CounterMetricFamily(
                "actoros_actor_restarts",
                "Restarts of actors by their supervisor, by kind.",
                labels=["kind"],
            ),
            "failures": CounterMetricFamily(
                "actoros_actor_failures",
                "Actor incarnations that ended with an exception, by kind.",
                labels=["kind"],
            ),
            "escalations": CounterMetricFamily(
                "actoros_supervisor_escalations",
                "Supervisors that exceeded their restart intensity and escalated, by kind.",
                labels=["kind"],
            ),
        }
        for (kind, what), count in sorted(self._lifecycle.items()):
            lifecycle[what].add_metric([kind], count)
        yield from lifecycle.values()

        yield from self._collect_inference()
        yield from self._collect_scheduler()

    def _collect_inference(self) -> Iterator[Metric]:
        m = self._inference
        yield GaugeMetricFamily(
            "actoros_inference_up",
            "1 when the inference actor answered the last scrape's InferenceStats ask, else 0 "
            "(no inference configured, busy past the timeout, or restarting).",
            value=1 if m is not None else 0,
        )
        if m is not None:
            yield GaugeMetricFamily(
                "actoros_inference_engine_ready",
                "1 when the inference engine has started and serves, else 0.",
                value=1 if m.engine_ready else 0,
            )
            yield GaugeMetricFamily(
                "actoros_inference_requests_waiting",
                "Requests waiting in the inference actor's queue (not yet in the engine).",
                value=m.waiting,
            )
            yield GaugeMetricFamily(
                "actoros_inference_requests_in_flight",
                "Requests the inference engine is working on.",
                value=m.in_flight,
            )
            yield GaugeMetricFamily(
                "actoros_inference_output_tokens_per_second",
                "Output tokens per second of the requests completed over the inference "
                "actor's recent window (one minute by default).",
                value=m.tokens_per_s,
            )
        requests = CounterMetricFamily(
            "actoros_inference_requests",
            "Inference requests that ended, by finish_reason (stop, length, abort, error).",
            labels=["finish_reason"],
        )
        for reason, count in sorted(self._requests.items()):
            requests.add_metric([reason], count)
        yield requests
        failures = CounterMetricFamily(
            "actoros_inference_request_failures",
            "Inference requests that failed, by error type (Overloaded, PromptTooLong, "
            "EngineUnavailable, InferenceError).",
            labels=["error_type"],
        )
        for error_type, count in sorted(self._failures.items()):
            failures.add_metric([error_type], count)
        yield failures
        yield CounterMetricFamily(
            "actoros_inference_prompt_tokens",
            "Prompt tokens of the inference requests that ended.",
            value=self._prompt_tokens,
        )
        yield CounterMetricFamily(
            "actoros_inference_output_tokens",
            "Output tokens generated for the inference requests that ended (aborted and "
            "failed ones included).",
            value=self._output_tokens,
        )

    def _collect_scheduler(self) -> Iterator[Metric]:
        s = self._scheduler
        yield GaugeMetricFamily(
            "actoros_scheduler_up",
            "1 when the scheduler answered the last scrape's Stats ask, else 0.",
            value=1 if s is not None else 0,
        )
        if s is None:
            return
        tasks = GaugeMetricFamily(
            "actoros_scheduler_tasks",
            "Tasks the scheduler knows, by state (queued, running, done, failed); done and "
            "failed include tasks answered from its journal.",
            labels=["state"],
        )
        for state in _TASK_STATES:
            tasks.add_metric([state], getattr(s, state))
        yield tasks
        yield GaugeMetricFamily(
            "actoros_scheduler_workers", "Worker actors of the scheduler.", value=s.workers
        )
        yield GaugeMetricFamily(
            "actoros_scheduler_idle_workers",
            "Worker actors of the scheduler waiting for a task.",
            value=s.idle_workers,
        )


class HTTPMetricsMiddleware:
    """ASGI middleware: each HTTP request's route template, status and duration go to
    ``collector.observe_request``. Pure ASGI (no response buffering), so SSE streams pass
    through untouched; a stream's duration is its whole length."""

    def __init__(self, app: ASGIApp, collector: MetricsCollector) -> None:
        self.app = app
        self.collector = collector

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500  # unless a response starts: an exception becomes a 500 further out

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            # the router put the matched route in the (shared) scope; its template, not the
            # raw path, keeps the label's values few
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.collector.observe_request(route, status, time.perf_counter() - began)


def metrics_middleware(collector: MetricsCollector) -> Middleware:
    """``Starlette(..., middleware=[metrics_middleware(collector)])``."""
    return Middleware(HTTPMetricsMiddleware, collector=collector)


def routes(host: Host, collector: MetricsCollector | None = None) -> list[BaseRoute]:
    """``GET /metrics``, from ``collector`` (a new one for ``host`` when not given). With
    tokens in the config, a scrape needs one of them (Prometheus: ``authorization:
    {credentials: <token>}`` in the scrape config), like every other route but the page."""
    collector = collector if collector is not None else MetricsCollector(host)
    gateway = host.config.gateway
    auth = TokenAuth(resolve_tokens(gateway) if gateway is not None else ())

    async def metrics(request: Request) -> Response:
        try:
            auth.caller(request.headers.get("authorization"))
        except APIError as exc:
            return error_response(exc)
        body, content_type = await collector.scrape(request.headers.get("accept"))
        return Response(body, headers={"Content-Type": content_type})

    return [Route("/metrics", metrics, methods=["GET"], name="metrics")]

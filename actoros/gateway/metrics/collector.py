"""``MetricsCollector``: the running system's numbers as Prometheus metrics.

Each app gets its own collector with its own ``CollectorRegistry`` (never the process-wide
default), so several systems in one process do not clash. Nothing polls: what the actors, the
scheduler and the inference actor report is read when Prometheus scrapes — one
``host.snapshot()`` (every node's actors, when the system leads a cluster), one ``Stats()``
ask and one ``InferenceStats()`` ask (each with a short timeout: a busy or restarting service
makes its ``*_up`` gauge 0, never the scrape fail). Between scrapes only event subscriptions
run, and they only count: ``DeadLetter`` and ``LifecycleEvent`` on the system event stream
(by actor kind, ``kinds.py``), and the inference actor's ``InferenceRequestDone`` (one per
finished request, for the latency histograms). The metrics and their labels are listed in
docs/metrics.md.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from actoros.core import DeadLetter, LifecycleEvent
from actoros.inference.actor import InferenceMetrics, InferenceStats
from actoros.inference.messages import InferenceRequestDone
from actoros.kernel import SchedulerStats, Stats

from ..host import Host
from .kinds import KindCounts

__all__ = ["ASK_TIMEOUT", "LATENCY_BUCKETS", "MetricsCollector"]

log = structlog.get_logger("actoros.gateway.metrics")

#: seconds; from a fake engine's sub-millisecond answers to a CPU model's minutes-long ones
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    20.0,
    40.0,
    80.0,
    160.0,
    320.0,
    640.0,
)
ASK_TIMEOUT = 1.0  # seconds a scrape waits for the scheduler's and the inference actor's stats
_TASK_STATES = ("queued", "running", "done", "failed")


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
        self.kinds = KindCounts()  # the actor numbers, by kind
        # the inference actor's requests, from its events
        self._requests: defaultdict[str, int] = defaultdict(int)  # finish_reason
        self._failures: defaultdict[str, int] = defaultdict(int)  # error_type
        self._prompt_tokens = 0
        self._output_tokens = 0
        # asked at scrape time
        self._inference: InferenceMetrics | None = None
        self._scheduler: SchedulerStats | None = None

        r = self.registry
        self.ttft = Histogram(
            "actoros_inference_time_to_first_token_seconds",
            "Seconds from a request reaching the inference actor to its first token "
            "(requests that ended without an error and produced a token).",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.e2e = Histogram(
            "actoros_inference_e2e_request_latency_seconds",
            "Seconds from a request reaching the inference actor to its end "
            "(requests that ended without an error, aborted ones included).",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_time = Histogram(
            "actoros_inference_request_queue_time_seconds",
            "Seconds a request waited in the inference actor's queue before the engine took "
            "it (requests that ended without an error).",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.http_requests = Counter(
            "actoros_gateway_http_requests",
            "HTTP requests the gateway answered, by route template and status code.",
            ["route", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "actoros_gateway_http_request_duration_seconds",
            "Seconds from a request's arrival to the end of its response (a stream's whole "
            "length), by route template.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        r.register(self)
        events = host.actors.events
        self._unsubscribe = [
            events.subscribe_weakly(self.kinds.on_dead_letter, DeadLetter),
            events.subscribe_weakly(self.kinds.on_lifecycle, LifecycleEvent),
            events.subscribe_weakly(self._on_request_done, InferenceRequestDone),
        ]

    def close(self) -> None:
        """Stop counting events (what was counted stays)."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []

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

    async def refresh(self) -> None:
        """Read the system now: the actor snapshot, the scheduler's and inference's stats."""
        self.kinds.observe(await self._host.snapshot())
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

    def collect(self) -> Iterator[Metric]:
        kinds = self.kinds
        processed = CounterMetricFamily(
            "actoros_actor_messages_processed",
            "User messages handled by actors of each kind (class name), over all incarnations; "
            "stopped actors' counts are carried.",
            labels=["kind"],
        )
        for kind, count in sorted(kinds.processed.items()):
            processed.add_metric([kind], count)
        yield processed

        actors = GaugeMetricFamily(
            "actoros_actors",
            "Live actors by kind and state (starting, running, ended: between incarnations).",
            labels=["kind", "state"],
        )
        for (kind, state), count in sorted(kinds.actors.items()):
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
        for kind, count in sorted(kinds.mailbox_sum.items()):
            depth.add_metric([kind], count)
            deepest.add_metric([kind], kinds.mailbox_max[kind])
        yield depth
        yield deepest

        dead = CounterMetricFamily(
            "actoros_dead_letters",
            "Messages that could not be delivered, by the recipient's kind and the reason "
            "(recipient_stopped, mailbox_full, late_reply, unhandled, other).",
            labels=["kind", "reason"],
        )
        for (kind, reason), count in sorted(kinds.dead.items()):
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
        for (kind, what), count in sorted(kinds.lifecycle.items()):
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

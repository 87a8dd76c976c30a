"""``GET /metrics``: the running system in Prometheus format (``prometheus_client``).

- ``collector``: ``MetricsCollector``, one per app, in its own registry: what is read at
  scrape time and what is counted from events in between.
- ``kinds``: the actor numbers by actor kind (class name, never path: 100k actors are a
  handful of series).
- ``http``: the ``/metrics`` route, and ``metrics_middleware(collector)`` (an ASGI
  middleware) for the gateway's own HTTP metrics (or call
  ``MetricsCollector.observe_request``).

The metrics and their labels are listed in docs/metrics.md.
"""

from .collector import ASK_TIMEOUT, LATENCY_BUCKETS, MetricsCollector
from .http import HTTPMetricsMiddleware, metrics_middleware, routes
from .kinds import KindCounts, reason_class

__all__ = [
    "ASK_TIMEOUT",
    "LATENCY_BUCKETS",
    "HTTPMetricsMiddleware",
    "KindCounts",
    "MetricsCollector",
    "metrics_middleware",
    "reason_class",
    "routes",
]

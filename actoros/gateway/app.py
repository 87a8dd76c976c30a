"""``build_app(host)``: the gateway's Starlette app, from the routes of each part."""

from __future__ import annotations

from starlette.applications import Starlette

from . import live, metrics, openai_api
from .host import Host


def build_app(host: Host) -> Starlette:
    """One app: the OpenAI-compatible API, ``/metrics`` and the live page; every request is
    counted by the metrics middleware (by route template and status)."""
    collector = metrics.MetricsCollector(host)
    routes = [*openai_api.routes(host), *metrics.routes(host, collector), *live.routes(host)]
    return Starlette(routes=routes, middleware=[metrics.metrics_middleware(collector)])

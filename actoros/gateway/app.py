"""``build_app(host)``: the gateway's Starlette app, from the routes of each part."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware

from actoros.config import GatewayConfig

from . import live, metrics, openai
from .guard import RequestGuard
from .host import Host


def build_app(host: Host) -> Starlette:
    """One app: the OpenAI-compatible API, ``/metrics`` and the live page; every request is
    counted by the metrics middleware (by route template and status), then checked by the
    ``RequestGuard`` (Host and Origin without tokens, JSON bodies, the body limit)."""
    config = host.config.gateway or GatewayConfig()
    collector = metrics.MetricsCollector(host)
    routes = [*openai.routes(host), *metrics.routes(host, collector), *live.routes(host)]
    guard = Middleware(
        RequestGuard, loopback_only=not config.tokens, max_body_bytes=config.max_body_bytes
    )
    return Starlette(routes=routes, middleware=[metrics.metrics_middleware(collector), guard])

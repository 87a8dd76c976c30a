"""The HTTP side of ``/metrics``: the route that serves a scrape, and the middleware that
counts every request the gateway answers (by route template and status, with its duration).
"""

from __future__ import annotations

import time

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..auth import gateway_auth
from ..errors import APIError, error_response
from ..host import Host
from .collector import MetricsCollector

__all__ = ["HTTPMetricsMiddleware", "metrics_middleware", "routes"]


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
    auth = gateway_auth(host.config.gateway)

    async def metrics(request: Request) -> Response:
        try:
            auth.caller(request.headers.get("authorization"))
        except APIError as exc:
            return error_response(exc)
        body, content_type = await collector.scrape(request.headers.get("accept"))
        return Response(body, headers={"Content-Type": content_type})

    return [Route("/metrics", metrics, methods=["GET"], name="metrics")]

"""The live view's routes: ``GET /`` (the page), ``/static/live.{js,css}``, ``/api/tree`` and
``/api/events`` (see the package docstring and docs/live.md).

Auth: with ``gateway.tokens`` configured, ``/api/*`` want one of them, as
``Authorization: Bearer <token>`` or as ``?token=<token>`` (an ``EventSource`` cannot send
headers); ``GET /`` and its static files stay open, and the page passes on its own
``?token=``.
"""

from __future__ import annotations

from importlib import resources

import msgspec
import structlog
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .. import sse
from ..auth import TokenAuth, gateway_auth
from ..errors import APIError, error_response, stopping
from ..host import Host
from ..shutdown import shutdown_of
from .feed import LiveFeed

__all__ = ["MAX_INTERVAL", "MIN_INTERVAL", "routes"]

log = structlog.get_logger("actoros.gateway.live")

MIN_INTERVAL, MAX_INTERVAL = 0.05, 60.0


def _static(name: str) -> bytes:
    return resources.files("actoros.gateway").joinpath("static", name).read_bytes()


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
    auth = auth if auth is not None else gateway_auth(host.config.gateway)
    feed = feed if feed is not None else LiveFeed(host)
    page = _static("index.html")
    files = {
        "live.js": (_static("live.js"), "text/javascript; charset=utf-8"),
        "live.css": (_static("live.css"), "text/css; charset=utf-8"),
    }

    async def index(request: Request) -> Response:
        return Response(
            page, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"}
        )

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
        if shutdown_of(request).begun:
            return error_response(stopping())
        log.debug(
            "live.client_connected",
            clients=len(feed.clients) + 1,
            client=request.client.host if request.client else None,
        )
        return sse.EventStream(
            lambda shutdown: feed.events(interval, shutdown),
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

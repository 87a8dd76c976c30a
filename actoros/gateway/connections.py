"""Guards below the ASGI app, on each connection: a deadline for a request's headers and a cap
on open connections (``guarded_protocol``).

Why here: uvicorn (httptools and h11 alike) arms no timer while a connection has not sent a
whole request head — its keep-alive timer runs only between requests and is disarmed by the
first byte of the next one — so a client that connects and sends nothing, or half a header,
holds its connection (a file descriptor) for ever (slowloris). The app never hears of such a
connection: only the protocol can close it.

- Header deadline: a connection must complete a request's headers within ``header_timeout``
  seconds of being opened, and, on a kept-alive connection, of the first byte of the next
  request (an idle kept-alive connection is uvicorn's business: it closes it after its
  keep-alive timeout). Past the deadline the connection is closed, with nothing sent.
- Connection cap: a connection opened while ``max_connections`` are already open is served
  by ``_over_capacity`` instead of the app: its request gets a 503 (OpenAI-style body) and
  the connection closes. uvicorn's own ``limit_concurrency`` does the same with a plain-text
  body.

Both subclass the protocol uvicorn would pick (``AutoHTTPProtocol``) and rely only on what
its two implementations share: ``connection_made``/``data_received``/``connection_lost``,
``self.cycle`` (a new object once a request's headers are in; ``response_complete`` once it
was answered), ``self.connections``, ``self.app`` and ``self.transport``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from starlette.responses import Response
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from .errors import CLOSE, APIError, error_response

__all__ = ["guarded_protocol"]

log = structlog.get_logger("actoros.gateway")


class _Guarded:
    """The mixin; ``guarded_protocol`` sets the two limits on a subclass."""

    header_timeout: float
    max_connections: int
    # provided by uvicorn's protocol class
    cycle: Any
    connections: set[Any]
    app: Any
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop

    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        if len(self.connections) > self.max_connections:
            log.debug("gateway.over_capacity", connections=len(self.connections))
            self.app = _over_capacity(self.max_connections)
        self._arm()

    def data_received(self, data: bytes) -> None:
        cycle = self.cycle
        if self._header_timer is None and (cycle is None or cycle.response_complete):
            self._arm()  # the first bytes of a new request
        super().data_received(data)  # type: ignore[misc]
        if self.cycle is not cycle:  # a request's headers are complete
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def _arm(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expired(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            log.debug("gateway.header_timeout", timeout=self.header_timeout)
            self.transport.close()


def guarded_protocol(
    *,
    header_timeout: float,
    max_connections: int,
    base: type[asyncio.Protocol] = AutoHTTPProtocol,
) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol ``base`` (default: the one uvicorn picks, httptools if it is
    installed, else h11) with the header deadline and the connection cap; pass it as
    ``uvicorn.Config(http=...)``."""
    return type(
        "GuardedHTTPProtocol",
        (_Guarded, base),
        {"header_timeout": header_timeout, "max_connections": max_connections},
    )


def _over_capacity(limit: int) -> Response:
    """The app of a connection over the cap: a Starlette ``Response`` is an ASGI app."""
    error = APIError(
        503,
        f"the gateway has {limit} connections open, its limit (gateway.max_connections); "
        "retry shortly",
        type="server_error",
        code="too_many_connections",
    )
    return error_response(error, headers={"Retry-After": "1", **CLOSE})

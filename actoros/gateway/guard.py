"""``RequestGuard``: what every request must be before any route sees it.

An ASGI middleware in front of every route (the API, ``/metrics``, the live page):

- Without tokens the gateway has no other defence against the web pages its user visits, so
  it answers only requests addressed to a loopback name (``Host``: ``localhost``,
  ``127.0.0.1`` or any loopback address, ``[::1]``, with any port) — a page that rebinds its
  own name to 127.0.0.1 (DNS rebinding) sends its own name and is refused — and no request a
  browser marks as coming from another site (an ``Origin`` that is not a loopback origin:
  the cross-site request forgery a page may send without asking). Both are 403.
- Always: a ``POST`` body must be JSON (``Content-Type: application/json``; 415 otherwise), so
  a form or ``text/plain`` body a browser may send cross-site without a preflight is never
  parsed, and it may be at most ``max_body_bytes`` long (413). A declared ``Content-Length``
  over the limit is refused before anything is read; a body that grows past it while it is
  read (chunked) fails the read with ``BodyTooLarge``, which the route answers (or, if it
  does not, this middleware).

A refusal leaves the connection open: uvicorn drops what is left of the body as it arrives,
so a client still sending reads its answer once it is done (closing now would reset the
connection and lose the answer), and the header deadline (``connections.py``) closes a
connection whose leftover body lasts longer than ``gateway.header_timeout``.

With tokens, ``Host`` and ``Origin`` are not checked: a page cannot know a token, and a
cross-site request carrying ``Authorization`` needs a CORS preflight the gateway never
grants.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import APIError, error_response

__all__ = ["BodyTooLarge", "RequestGuard", "is_loopback_host", "is_loopback_origin"]

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class BodyTooLarge(APIError):
    """A request body longer than ``gateway.max_body_bytes``: 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            f"the request body is larger than {limit} bytes (gateway.max_body_bytes): send "
            "less, or raise the limit",
            code="request_too_large",
        )


def _loopback_name(name: str | None) -> bool:
    if not name:
        return False
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_loopback_host(host: str) -> bool:
    """Whether a ``Host`` header names this machine's loopback: ``localhost``, a loopback
    address (``127.0.0.1``, ``[::1]``), each with an optional port, nothing else."""
    try:
        parts = urlsplit("//" + host)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return False
    if parts.path or parts.query or parts.fragment or parts.username is not None:
        return False
    return _loopback_name(parts.hostname)


def is_loopback_origin(origin: str) -> bool:
    """Whether an ``Origin`` header is a page served from loopback (``http://localhost:5173``);
    ``null`` (sandboxed frames, files) is not."""
    try:
        parts = urlsplit(origin)
        parts.port  # noqa: B018
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and _loopback_name(parts.hostname)


def _media_type(content_type: str) -> str:
    return content_type.partition(";")[0].strip().lower()


class RequestGuard:
    """The checks of the module docstring, around ``app``. ``loopback_only``: no tokens are
    configured (check ``Host`` and ``Origin``)."""

    def __init__(self, app: ASGIApp, *, loopback_only: bool, max_body_bytes: int) -> None:
        self.app = app
        self.loopback_only = loopback_only
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: dict[bytes, bytes] = dict(scope["headers"])  # a repeated header: the last
        refusal = self._refusal(scope["method"], headers)
        if refusal is not None:
            await _refuse(refusal, scope, receive, send)
            return
        limit = self.max_body_bytes
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except BodyTooLarge as error:  # a route that reads a body without answering errors
            if started:
                raise
            await _refuse(error, scope, receive, send)

    def _refusal(self, method: str, headers: dict[bytes, bytes]) -> APIError | None:
        if self.loopback_only:
            host = headers.get(b"host", b"").decode("latin-1")
            if not is_loopback_host(host):
                return APIError(
                    403,
                    f"Host {host!r} is not allowed: without gateway.tokens the gateway answers "
                    "only requests to localhost, 127.0.0.1 or [::1] (add gateway.tokens to "
                    "serve other names)",
                    param="Host",
                    code="host_not_allowed",
                )
            origin = headers.get(b"origin")
            if origin is not None and not is_loopback_origin(origin.decode("latin-1")):
                return APIError(
                    403,
                    f"cross-origin request from {origin.decode('latin-1')!r} refused: without "
                    "gateway.tokens only pages served from localhost may call the gateway (add "
                    "gateway.tokens to allow others)",
                    param="Origin",
                    code="origin_not_allowed",
                )
        if method in _BODY_METHODS:
            content_type = headers.get(b"content-type", b"").decode("latin-1")
            if _media_type(content_type) != "application/json":
                return APIError(
                    415,
                    f"Content-Type must be application/json (got {content_type or 'none'!r}): "
                    "send the body as JSON",
                    param="Content-Type",
                    code="unsupported_media_type",
                )
            length = headers.get(b"content-length")
            if length is not None and length.strip().isdigit():
                if int(length) > self.max_body_bytes:
                    return BodyTooLarge(self.max_body_bytes)
        return None


async def _refuse(error: APIError, scope: Scope, receive: Receive, send: Send) -> None:
    await error_response(error)(scope, receive, send)

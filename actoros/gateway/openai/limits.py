"""The limits every chat completion runs under, each one a clear error when it is reached.

- ``Slots``: at most ``gateway.max_concurrent`` requests in flight (being read, waiting for
  an answer or streaming one); one more is a 429 before its body is read.
- ``read_body``: the whole body within ``gateway.body_timeout`` seconds (408), the client
  still there (499). Its size is bounded further out, by ``RequestGuard``.
- ``deadline`` / ``time_left``: ``gateway.request_timeout`` from the start of the answer; a
  request out of time is a 504 before anything more is asked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.requests import ClientDisconnect, Request

from ..errors import APIError

__all__ = ["Slots", "deadline", "read_body", "time_left"]


class Slots:
    """At most ``limit`` requests in flight; one more is a 429."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0

    def take(self) -> Callable[[], None]:
        """Take a slot; the function returned frees it (calling it again does nothing)."""
        if self.in_flight >= self.limit:
            raise APIError(
                429,
                f"the gateway is serving {self.in_flight} requests, its limit "
                "(gateway.max_concurrent); retry shortly",
                type="rate_limit_error",
                code="rate_limit_exceeded",
            )
        self.in_flight += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.in_flight -= 1

        return release


async def read_body(request: Request, timeout: float) -> bytes:
    """The whole body within ``timeout`` seconds (``gateway.body_timeout``)."""
    try:
        async with asyncio.timeout(timeout):
            return await request.body()
    except TimeoutError:
        raise APIError(
            408,
            f"the request body did not arrive within {timeout:g} s (gateway.body_timeout)",
            code="body_timeout",
        ) from None
    except ClientDisconnect:
        raise APIError(
            499, "the client closed the connection before sending its body", code="client_gone"
        ) from None


def deadline(timeout: float) -> float:
    """The loop time ``timeout`` seconds from now."""
    return asyncio.get_running_loop().time() + timeout


def time_left(until: float) -> float:
    """Seconds to ``until`` (loop time); a request out of time is a 504."""
    left = until - asyncio.get_running_loop().time()
    if left <= 0:
        raise APIError(
            504,
            "the request ran out of time (gateway.request_timeout)",
            type="server_error",
            code="timeout",
        )
    return left

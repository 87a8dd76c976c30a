"""The gateway's HTTP errors: OpenAI-style bodies with the right status.

Every error a client can meet is an ``APIError`` raised inside a handler and turned into
``{"error": {"message", "type", "param", "code"}}`` — the body the OpenAI API sends, which
the official client reads into its exception classes (``BadRequestError``,
``AuthenticationError``, ``NotFoundError``, ``RateLimitError``, ``InternalServerError``...).
``from_exception`` maps what the actors raise (admission refusals, a dead engine, timeouts,
an agent that could not answer) onto the same table; see docs/gateway.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import msgspec
from starlette.responses import Response

from actoros.agents import AgentError
from actoros.core import ActorStopped, AskTimeout, MailboxFull
from actoros.inference.errors import (
    ConstraintInvalid,
    ConstraintsUnsupported,
    EngineUnavailable,
    Overloaded,
    PromptTooLong,
)

__all__ = [
    "CLOSE",
    "APIError",
    "bad_request",
    "error_body",
    "error_response",
    "from_exception",
    "stopping",
]

CLOSE = {"Connection": "close"}
"""The header of an answer after which the connection closes (a client too slow to send its
request, a connection over the cap)."""


class APIError(Exception):
    """An error answer: HTTP ``status`` and the OpenAI error fields."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",  # noqa: A002 - the wire name
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code

    def body(self) -> dict[str, object]:
        return error_body(self.message, self.type, self.param, self.code)


def error_body(
    message: str,
    type: str,  # noqa: A002 - the wire name
    param: str | None = None,
    code: str | None = None,
) -> dict[str, object]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def error_response(error: APIError, headers: dict[str, str] | None = None) -> Response:
    return Response(
        msgspec.json.encode(error.body()),
        status_code=error.status,
        media_type="application/json",
        headers=headers,
    )


def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


def stopping() -> APIError:
    """The answer to a request the gateway cannot serve because it is stopping."""
    return APIError(
        503,
        "the gateway is stopping; retry once it is back",
        type="server_error",
        code="unavailable",
    )


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the errors it was raised from or while handling (an agent wraps the
    inference actor's error in an ``AgentError``; the original stays its ``__context__``)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def from_exception(exc: BaseException, *, what: str) -> APIError:
    """The HTTP error for what an actor raised while serving a request to ``what``.

    Looked up through the chain of causes, so an agent that failed because the engine was
    down answers 503 like the raw model does: ``Overloaded`` → 429, ``EngineUnavailable`` →
    503, ``PromptTooLong`` → 400 ``context_length_exceeded``, ``ConstraintsUnsupported`` (an
    engine without structured outputs) → 501, ``ConstraintInvalid`` → 400 ``invalid_schema``,
    a timeout → 504, an agent
    that could not answer → 422 ``agent_error``, a stopped actor → 503.
    """
    if isinstance(exc, APIError):
        return exc
    for cause in _chain(exc):
        if isinstance(cause, Overloaded):
            return APIError(
                429,
                f"{what} is overloaded: {cause}",
                type="rate_limit_error",
                code="engine_overloaded",
            )
        if isinstance(cause, EngineUnavailable):
            return APIError(
                503,
                f"the model is unavailable: {cause}",
                type="server_error",
                code="engine_unavailable",
            )
        if isinstance(cause, PromptTooLong):
            return APIError(400, str(cause), param="messages", code="context_length_exceeded")
        if isinstance(cause, ConstraintsUnsupported):
            return APIError(
                501,
                f"{what} cannot enforce structured output ({cause}): send the request without "
                "tool_choice 'required' or a named function and without response_format "
                "json_object / json_schema",
                type="server_error",
                code="constraints_unsupported",
            )
        if isinstance(cause, ConstraintInvalid):
            return APIError(400, str(cause), param="response_format", code="invalid_schema")
    if isinstance(exc, AskTimeout | asyncio.TimeoutError | TimeoutError):
        return APIError(
            504,
            f"{what} did not answer in time (gateway.request_timeout)",
            type="server_error",
            code="timeout",
        )
    if isinstance(exc, AgentError):
        return APIError(422, str(exc), type="invalid_request_error", code="agent_error")
    if isinstance(exc, ActorStopped | MailboxFull):
        return APIError(
            503,
            f"{what} is not available right now ({exc}); retry",
            type="server_error",
            code="unavailable",
        )
    return APIError(
        500,
        f"internal error while serving {what}: {type(exc).__name__}: {exc}",
        type="server_error",
        code="internal_error",
    )

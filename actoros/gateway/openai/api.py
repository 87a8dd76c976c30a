"""The handlers: ``POST /v1/chat/completions``, ``GET /v1/models`` and ``GET /v1/models/{id}``.

A chat completion goes one way, whatever it goes to: authenticate (``_guard``), take a slot
and read the body (``limits.py``), run the rest in a task the client's disconnect or the
gateway's shutdown cancels (``_interruptible``), parse the body (``schema.py``), resolve
``model`` to a ``Target`` (``targets.py``: an agent, or the raw model), ask it, and answer
with one body or a stream (``stream.py``). Every failure on that way becomes an OpenAI error
body (``errors.py``); nothing a client sends can crash an actor, since the handlers only ask.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import structlog
from msgspec import UNSET
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from actoros.config import Config, GatewayConfig
from actoros.core import ActorRef
from actoros.inference.engines import model_id
from actoros.inference.readiness import EngineReadiness

from ..auth import Caller, gateway_auth
from ..errors import CLOSE, APIError, bad_request, error_response, from_exception, stopping
from ..host import Host
from ..shutdown import shutdown_of
from .limits import Slots, deadline, read_body, time_left
from .schema import (
    THREAD_HEADER,
    AssistantMessage,
    ChatCompletion,
    ChatRequest,
    Choice,
    ModelCard,
    ModelList,
    completion_id,
    parse_request,
    user_turn,
)
from .stream import stream_answer
from .targets import AgentTarget, Call, Final, ModelTarget, Target
from .threads import Threads

__all__ = ["OpenAIAPI", "raw_model_id", "routes"]

log = structlog.get_logger("actoros.gateway")


_encode = msgspec.json.Encoder().encode


def routes(host: Host) -> list[BaseRoute]:
    api = OpenAIAPI(host)
    return [
        Route("/v1/chat/completions", api.chat_completions, methods=["POST"]),
        Route("/v1/models", api.list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", api.get_model, methods=["GET"]),
    ]


def raw_model_id(config: Config) -> str | None:
    """The id the raw model answers to (``inference.engines.model_id``), ``None`` without an
    ``inference`` section."""
    return model_id(config.inference) if config.inference is not None else None


class OpenAIAPI:
    """The handlers, over a running system (``Host``)."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.config: GatewayConfig = host.config.gateway or GatewayConfig()
        self.auth = gateway_auth(self.config)
        self.raw_model = raw_model_id(host.config) if self.config.allow_raw_model else None
        self.engine = EngineReadiness(host.actors.events)  # followed from its events
        self.agent_kinds = {agent.name: agent.kind for agent in host.config.agents}
        self.slots = Slots(self.config.max_concurrent)
        self.threads = Threads(host)
        self.created = int(time.time())

    # models

    def reachable(self, caller: Caller) -> list[str]:
        """The model ids ``caller`` may use: agents in config order, then the raw model."""
        names = [name for name in self.agent_kinds if caller.may_reach(name)]
        if self.raw_model is not None and caller.may_reach(self.raw_model):
            names.append(self.raw_model)
        return names

    def _card(self, name: str) -> ModelCard:
        kind = self.agent_kinds.get(name)
        return ModelCard(
            id=name,
            created=self.created,
            actoros_kind=f"{kind} agent" if kind is not None else "model",
        )

    async def list_models(self, request: Request) -> Response:
        return await self._guard(request, self._list_models)

    async def _list_models(self, request: Request, caller: Caller) -> Response:
        return _json(ModelList(data=[self._card(name) for name in self.reachable(caller)]))

    async def get_model(self, request: Request) -> Response:
        return await self._guard(request, self._get_model)

    async def _get_model(self, request: Request, caller: Caller) -> Response:
        name = request.path_params["model"]
        if name not in self.reachable(caller):
            raise _not_found(name)
        return _json(self._card(name))

    # a request's way in

    async def chat_completions(self, request: Request) -> Response:
        return await self._guard(request, self._chat_request)

    async def _guard(
        self, request: Request, handler: Callable[[Request, Caller], Awaitable[Response]]
    ) -> Response:
        """Authenticate, then run ``handler``; every failure becomes an OpenAI error body."""
        caller: Caller | None = None
        try:
            caller = self.auth.caller(request.headers.get("authorization"))
            if shutdown_of(request).begun:
                raise stopping()
            return await handler(request, caller)
        except Exception as exc:
            error = from_exception(exc, what="the request")
            _log_error(request, caller, error, exc)
            # a body too slow to arrive: the connection goes too
            return error_response(error, headers=CLOSE if error.status == 408 else None)

    async def _chat_request(self, request: Request, caller: Caller) -> Response:
        """Take a slot, read the body, answer. The slot comes first, so at most
        ``max_concurrent`` bodies are being read or held at once, and a request over the limit
        is refused before its body is read."""
        release = self.slots.take()
        try:
            raw = await read_body(request, self.config.body_timeout)
            return await _interruptible(
                request, caller, lambda: self._chat(request, caller, raw, release)
            )
        except BaseException:
            release()
            raise

    async def _chat(
        self, request: Request, caller: Caller, raw: bytes, release: Callable[[], None]
    ) -> Response:
        try:
            body = parse_request(raw)
            name = self._model_name(body.model, caller)
            given = request.headers.get(THREAD_HEADER) or None
            until = deadline(self.config.request_timeout)
            if name == self.raw_model and name not in self.agent_kinds:
                target: Target = await self._model_target(body, name, given, until)
            else:
                target = await self._agent_target(body, caller, name, given, until)
            call = Call(target, deadline=until, release=release, include_usage=body.include_usage)
            return await _answer(call, stream=bool(body.stream))
        except BaseException:
            release()
            raise

    def _model_name(self, model: str, caller: Caller) -> str:
        known = model in self.agent_kinds or model == self.raw_model
        if not known:
            reachable = self.reachable(caller)
            listed = ", ".join(reachable) if reachable else "none"
            raise APIError(
                400,
                f"The model '{model}' does not exist: name an agent (yours: {listed}); "
                "GET /v1/models lists them",
                param="model",
                code="model_not_found",
            )
        if not caller.may_reach(model):
            raise _not_found(model)
        return model

    # what a request goes to

    async def _agent_target(
        self, body: ChatRequest, caller: Caller, agent: str, given: str | None, until: float
    ) -> AgentTarget:
        text = user_turn(body)
        ref = self.host.agent(agent)
        if ref is None:
            raise APIError(
                503,
                f"agent {agent!r} is not running (restarting?); retry",
                type="server_error",
                code="unavailable",
            )
        thread_id = await self.threads.open(given, caller, agent, time_left(until))
        return AgentTarget(ref, agent, text, thread_id, stream=bool(body.stream))

    async def _model_target(
        self, body: ChatRequest, model: str, given: str | None, until: float
    ) -> ModelTarget:
        if given is not None:
            raise bad_request(
                f"the raw model {model!r} keeps no threads: send the whole "
                f"conversation in 'messages', without {THREAD_HEADER}",
                param=THREAD_HEADER,
            )
        what = f"the model {model!r}"
        inference = self.host.service("inference")
        if inference is None:
            raise APIError(
                503, f"{what} is not running; retry", type="server_error", code="engine_unavailable"
            )
        await self._engine_ready(inference, until, what)
        return ModelTarget(inference, model, body)

    async def _engine_ready(self, inference: ActorRef, until: float, what: str) -> None:
        """503 while the engine loads or restarts: answered from the inference actor's
        EngineReady / EngineDown events (an engine that dies before its EngineDown arrives
        fails its requests with a 503 anyway)."""
        if not await self.engine.ready(inference, timeout=time_left(until)):
            raise APIError(
                503,
                f"{what} is not ready (loading or restarting); retry shortly",
                type="server_error",
                code="engine_unavailable",
            )


async def _answer(call: Call, *, stream: bool) -> Response:
    """Ask the target; answer with its reply, or stream what it streams."""
    target = call.target
    try:
        answer = await target.ref.ask(target.message, timeout=call.time_left())
    except Exception as exc:
        raise from_exception(exc, what=target.what) from exc
    finally:
        if not stream:
            call.release()
    if stream:
        upstream = target.stream_of(answer)
        if upstream is None:
            raise call.wrong_answer(answer, ", not a stream")
        return await stream_answer(call, upstream)
    final = target.read(answer)
    if not isinstance(final, Final):
        raise call.wrong_answer(answer)
    body = ChatCompletion(
        id=completion_id(),
        created=int(time.time()),
        model=target.model,
        choices=[
            Choice(message=AssistantMessage(content=final.text), finish_reason=final.finish_reason)
        ],
        usage=final.usage,
        thread_id=UNSET if final.thread_id is None else final.thread_id,
    )
    headers = None if final.thread_id is None else {THREAD_HEADER: final.thread_id}
    return _json(body, headers=headers)


async def _interruptible(
    request: Request, caller: Caller, handler: Callable[[], Awaitable[Response]]
) -> Response:
    """``handler()`` in a task of its own, cancelled when the client goes away (so the
    agent's turn or the model's request it waits on is cancelled too, as vLLM's server
    aborts) or when the gateway begins to stop (the request then gets a 503 at once,
    not uvicorn's 500 after the grace period). The body must be read already: the
    watcher reads what comes after it."""
    task = asyncio.ensure_future(handler())
    gone = False

    async def watch_client() -> None:
        nonlocal gone
        while (await request.receive())["type"] != "http.disconnect":
            pass
        gone = True
        task.cancel()

    watcher = asyncio.ensure_future(watch_client())
    forget = shutdown_of(request).watch(task.cancel)
    try:
        return await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if task.cancelled() and (current is None or not current.cancelling()):
            if gone:
                log.info("gateway.client_gone", path=request.url.path, token=caller.name)
                return Response(status_code=499)  # nobody reads it
            raise stopping() from None
        task.cancel()  # this request's own task was cancelled: pass it on
        raise
    finally:
        forget()
        watcher.cancel()


def _json(data: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(_encode(data), media_type="application/json", headers=headers)


def _not_found(model: str) -> APIError:
    return APIError(
        404,
        f"The model '{model}' does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


def _log_error(request: Request, caller: Caller | None, error: APIError, exc: Exception) -> None:
    fields = {
        "path": request.url.path,
        "status": error.status,
        "code": error.code,
        "error": error.message,
        "token": caller.name if caller is not None else None,
    }
    if error.status >= 500 and error.code == "internal_error":
        log.error("gateway.error", **fields, exc_info=exc)
    else:
        log.info("gateway.refused", **fields)

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
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from actoros.config import Config, GatewayConfig
from actoros.core import ActorRef
from actoros.inference.engines import model_id
from actoros.inference.readiness import STATE_ASK_TIMEOUT, EngineReadiness

from ..auth import Caller, gateway_auth
from ..errors import CLOSE, APIError, bad_request, error_response, from_exception, stopping
from ..host import Host
from ..shutdown import shutdown_of
from . import tools
from .completions import generates, parse_completion
from .formats import ChatFormat, CompletionFormat, Format
from .limits import Slots, deadline, read_body, time_left
from .schema import (
    THREAD_HEADER,
    ChatRequest,
    ModelCard,
    ModelList,
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
        Route("/v1/completions", api.completions, methods=["POST"]),
        Route("/v1/models", api.list_models, methods=["GET"]),
        Route("/health", api.health, methods=["GET"]),
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

    async def engine_up(self) -> bool:
        """Whether the engine is ready now (``True`` with no inference actor configured:
        nothing to wait for; ``False`` while it loads, restarts or is not there)."""
        if self.host.config.inference is None:
            return True
        inference = self.host.service("inference")
        if inference is None:
            return False
        try:
            return await self.engine.ready(inference, timeout=STATE_ASK_TIMEOUT)
        except Exception:  # restarting or stopping: not ready
            return False

    def _card(self, name: str, engine_up: bool) -> ModelCard:
        kind = self.agent_kinds.get(name)
        # an llm agent and the raw model answer only while the engine is up
        needs_engine = kind is None or kind == "llm"
        return ModelCard(
            id=name,
            created=self.created,
            actoros_kind=f"{kind} agent" if kind is not None else "model",
            actoros_ready=engine_up or not needs_engine,
        )

    async def list_models(self, request: Request) -> Response:
        return await self._guard(request, self._list_models)

    async def _list_models(self, request: Request, caller: Caller) -> Response:
        up = await self.engine_up()
        return _json(ModelList(data=[self._card(name, up) for name in self.reachable(caller)]))

    async def health(self, request: Request) -> Response:
        """``GET /health``: 200 once the engine is ready, 503 while it is not (as vLLM's
        server answers); no token needed, nothing told but that."""
        if shutdown_of(request).begun:
            return Response(b'{"status":"stopping"}', 503, media_type="application/json")
        if await self.engine_up():
            return Response(b'{"status":"ok"}', media_type="application/json")
        return Response(b'{"status":"engine not ready"}', 503, media_type="application/json")

    async def get_model(self, request: Request) -> Response:
        return await self._guard(request, self._get_model)

    async def _get_model(self, request: Request, caller: Caller) -> Response:
        name = request.path_params["model"]
        if name not in self.reachable(caller):
            raise _not_found(name)
        return _json(self._card(name, await self.engine_up()))

    # a request's way in

    async def chat_completions(self, request: Request) -> Response:
        return await self._guard(request, lambda r, c: self._request(r, c, self._chat))

    async def completions(self, request: Request) -> Response:
        return await self._guard(request, lambda r, c: self._request(r, c, self._completion))

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

    async def _request(
        self,
        request: Request,
        caller: Caller,
        handler: Callable[[Request, Caller, bytes, Callable[[], None]], Awaitable[Response]],
    ) -> Response:
        """Take a slot, read the body, answer. The slot comes first, so at most
        ``max_concurrent`` bodies are being read or held at once, and a request over the limit
        is refused before its body is read. (A request for ``n`` choices holds one slot.)"""
        release = self.slots.take()
        try:
            raw = await read_body(request, self.config.body_timeout)
            return await _interruptible(
                request, caller, lambda: handler(request, caller, raw, release)
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
            fmt: Format
            if name == self.raw_model and name not in self.agent_kinds:
                plan = tools.plan(
                    body.tools, body.tool_choice, body.parallel_tool_calls, body.response_format
                )
                tools.check_history(body.messages)
                self._no_thread(name, given)
                ref = await self._inference(name, until)
                target: Target = ModelTarget.chat(ref, name, body, plan)
                fmt = ChatFormat(
                    name,
                    include_usage=body.include_usage,
                    plan=plan,
                    top_logprobs=(body.top_logprobs or 0) if body.logprobs else None,
                    n=len(target.messages),
                )
            else:
                _agent_fields(body, name)
                target = await self._agent_target(body, caller, name, given, until)
                fmt = ChatFormat(name, thread_id=target.thread_id, include_usage=body.include_usage)
            call = Call(target, deadline=until, release=release, include_usage=body.include_usage)
            return await _answer(call, fmt, stream=bool(body.stream))
        except BaseException:
            release()
            raise

    async def _completion(
        self, request: Request, caller: Caller, raw: bytes, release: Callable[[], None]
    ) -> Response:
        try:
            body = parse_completion(raw)
            name = self._model_name(body.model, caller)
            if name != self.raw_model or name in self.agent_kinds:
                served = self.raw_model or "none: set gateway.allow_raw_model"
                raise bad_request(
                    f"/v1/completions serves the raw model only ({served}); send an agent "
                    "chat completions",
                    param="model",
                )
            self._no_thread(name, request.headers.get(THREAD_HEADER) or None)
            until = deadline(self.config.request_timeout)
            ref = await self._inference(name, until)
            target = ModelTarget(ref, name, generates(body), body.n or 1)
            fmt = CompletionFormat(
                name,
                include_usage=body.include_usage,
                logprobs=body.logprobs,
                n=len(target.messages),
                prompts=target.prompts,
            )
            call = Call(target, deadline=until, release=release, include_usage=body.include_usage)
            return await _answer(call, fmt, stream=bool(body.stream))
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

    def _no_thread(self, model: str, given: str | None) -> None:
        if given is not None:
            raise bad_request(
                f"the raw model {model!r} keeps no threads: send the whole "
                f"conversation in 'messages', without {THREAD_HEADER}",
                param=THREAD_HEADER,
            )

    async def _inference(self, model: str, until: float) -> ActorRef:
        """The inference actor, its engine ready (503 otherwise)."""
        what = f"the model {model!r}"
        inference = self.host.service("inference")
        if inference is None:
            raise APIError(
                503, f"{what} is not running; retry", type="server_error", code="engine_unavailable"
            )
        await self._engine_ready(inference, until, what)
        return inference

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


async def _answer(call: Call, fmt: Format, *, stream: bool) -> Response:
    """Ask the target (once per choice); answer with the replies, or stream what they
    stream, in ``fmt``."""
    target = call.target
    try:
        answers = await _ask_all(target, call.time_left())
    except Exception as exc:
        raise from_exception(exc, what=target.what) from exc
    finally:
        if not stream:
            call.release()
    if stream:
        streams = [target.stream_of(answer) for answer in answers]
        if any(s is None for s in streams):
            for s in streams:
                if s is not None:
                    await s.aclose()
            wrong = next(a for a, s in zip(answers, streams, strict=True) if s is None)
            raise call.wrong_answer(wrong, ", not a stream")
        return await stream_answer(call, [s for s in streams if s is not None], fmt)
    finals = []
    for i, answer in enumerate(answers):
        final = target.read(answer)
        if not isinstance(final, Final):
            raise call.wrong_answer(answer)
        finals.append(msgspec.structs.replace(final, index=i) if i else final)
    body = fmt.body(finals)
    thread = finals[0].thread_id
    headers = None if thread is None else {THREAD_HEADER: thread}
    return _json(body, headers=headers)


async def _ask_all(target: Target, timeout: float) -> list[Any]:
    """Every message's answer, asked at once; if one fails, the others are cancelled and the
    streams already opened closed (aborting their generations)."""
    messages = target.messages
    if len(messages) == 1:
        return [await target.ref.ask(messages[0], timeout=timeout)]
    tasks = [asyncio.ensure_future(target.ref.ask(m, timeout=timeout)) for m in messages]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in tasks:
            if not task.cancelled() and task.exception() is None:
                stream = target.stream_of(task.result())
                if stream is not None:
                    await stream.aclose()
        raise


def _agent_fields(body: ChatRequest, agent: str) -> None:
    """What only the raw model takes: an agent has its own tools, format and sampling."""
    asked = {
        "tools": bool(body.tools),
        "tool_choice": body.tool_choice not in (None, "none", "auto"),
        "response_format": body.response_format is not None and body.response_format.type != "text",
        "n": (body.n or 1) > 1,
        "logprobs": bool(body.logprobs),
    }
    for field, given in asked.items():
        if given:
            raise bad_request(
                f"'{field}' is for the raw model; the agent {agent!r} has its own tools, "
                "output format and sampling",
                param=field,
                code="unsupported_parameter",
            )


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

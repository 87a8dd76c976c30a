"""The OpenAI-compatible API: ``POST /v1/chat/completions`` and ``GET /v1/models``.

``model`` names an agent: the last message (the user's turn) is sent to it as a
``UserMessage`` and its ``AgentReply`` is the completion. The agent keeps the conversation in
a thread: a request without the ``X-Actoros-Thread`` header opens a new thread, and every
answer names its thread in that header and in the body's ``thread_id`` field; send the header
back to continue the conversation (earlier messages in ``messages`` are then not needed:
the thread has them). With ``gateway.allow_raw_model``, ``model`` may also be the inference
actor's model id: then the whole ``messages`` list goes to the model (``Generate``) with the
request's sampling fields, statelessly, exactly like the OpenAI API.

``stream: true`` answers with server-sent events in the OpenAI wire format: ``data: <chunk
JSON>`` lines (a first chunk with the assistant role, then content deltas, then a chunk with
the ``finish_reason``; with ``stream_options.include_usage`` one more chunk with the usage
and no choices), then ``data: [DONE]``. An error before the first token is an ordinary HTTP
error; one after it is a ``data: {"error": ...}`` event, which the official client raises.

Usage: the raw model reports the engine's token counts; an agent reports the tokens of
every model call its turn made (retries and delegated turns included; 0 for a rule agent's
turn, which calls no model).

``ignore_eos`` (vLLM's extension, raw model only): generate exactly ``max_tokens`` tokens,
for benchmarks.

Errors are OpenAI-style bodies (``errors.py``); the table is in docs/gateway.md. Nothing a
client sends can crash an actor: the handlers only ask, and every failure becomes an answer.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
import structlog
from starlette.requests import ClientDisconnect, HTTPConnection, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from actoros.agents import AgentDelta, AgentReply, AgentStream, UserMessage
from actoros.config import Config, GatewayConfig
from actoros.core import ActorRef
from actoros.inference.actor import CompletionStream
from actoros.inference.engines import model_id
from actoros.inference.messages import ChatMessage, Completion, Generate, TokenDelta
from actoros.inference.readiness import EngineReadiness
from actoros.kernel.threads import CreateThread, GetThread, ThreadInfo, ThreadNotFound

from .auth import Caller, TokenAuth, resolve_tokens
from .errors import CLOSE, APIError, bad_request, error_response, from_exception
from .host import Host
from .shutdown import Shutdown, shutdown_of

__all__ = ["THREAD_HEADER", "OpenAIAPI", "raw_model_id", "routes"]

log = structlog.get_logger("actoros.gateway")

THREAD_HEADER = "X-Actoros-Thread"
DEFAULT_MAX_TOKENS = 256  # the raw model's max_tokens when a request gives none
SEED_RANGE = (-(2**63), 2**63 - 1)  # a 64-bit seed, as vLLM's own server takes
MAX_TOKENS_LIMIT = 2**31 - 1  # past any model's context; larger is a 400, not an engine error


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


# -- the request body ---------------------------------------------------------------------------


class _Message(msgspec.Struct):
    role: str
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: Any = None
    tool_call_id: str | None = None


class _StreamOptions(msgspec.Struct):
    include_usage: bool = False


class ChatRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The fields of a chat completion request the gateway knows (others are a 400)."""

    model: str
    messages: list[_Message]
    stream: bool | None = None
    stream_options: _StreamOptions | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = None
    user: str | None = None
    ignore_eos: bool = False  # vLLM's extension (raw model only): always max_tokens tokens
    # known to the OpenAI API, not supported here: a 400 unless absent or a no-op value
    tools: Any = None
    tool_choice: Any = None
    parallel_tool_calls: Any = None
    functions: Any = None
    function_call: Any = None
    logprobs: Any = None
    top_logprobs: Any = None
    response_format: Any = None
    presence_penalty: Any = None
    frequency_penalty: Any = None
    logit_bias: Any = None
    store: Any = None
    metadata: Any = None
    modalities: Any = None
    audio: Any = None
    prediction: Any = None
    reasoning_effort: Any = None
    service_tier: Any = None


# field → the values that ask for nothing (accepted and ignored)
_NO_OPS: dict[str, tuple[Any, ...]] = {
    "tools": (None, []),
    "tool_choice": (None, "none"),
    "parallel_tool_calls": (None, True, False),
    "functions": (None, []),
    "function_call": (None, "none"),
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "response_format": (None, {"type": "text"}),
    "presence_penalty": (None, 0, 0.0),
    "frequency_penalty": (None, 0, 0.0),
    "logit_bias": (None, {}),
    "store": (None, False),
    "metadata": (None, {}),
    "modalities": (None, ["text"]),
    "audio": (None,),
    "prediction": (None,),
    "reasoning_effort": (None,),
    "service_tier": (None, "auto", "default"),
}

_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant",
          "tool": "tool"}  # fmt: skip
_UNKNOWN_FIELD = re.compile(r"Object contains unknown field `(?P<field>[^`]*)`")
_AT = re.compile(r" - at `\$\.?(?P<at>[^`]*)`$")


def parse_request(body: bytes) -> ChatRequest:
    """Decode and check a request body; ``APIError`` 400 naming the field otherwise."""
    try:
        request = msgspec.json.decode(body, type=ChatRequest)
    except msgspec.ValidationError as exc:
        text = str(exc)
        unknown = _UNKNOWN_FIELD.match(text)
        if unknown:
            field = unknown["field"]
            raise bad_request(
                f"Unrecognized request argument supplied: {field}", param=field
            ) from None
        at = _AT.search(text)
        param = at["at"] if at else None
        message = _AT.sub("", text).replace("`", "'")
        raise bad_request(
            f"Invalid request body: {message}" + (f" (at {param})" if param else ""),
            param=param,
        ) from None
    except msgspec.DecodeError as exc:
        raise bad_request(
            f"We could not parse the JSON body of your request: {exc}. Send a JSON object "
            "with 'model' and 'messages'."
        ) from None
    for field, no_ops in _NO_OPS.items():
        value = getattr(request, field)
        if not any(value == ok and type(value) is type(ok) for ok in no_ops):
            raise bad_request(
                f"'{field}' is not supported by the actoros gateway", param=field,
                code="unsupported_parameter",
            )  # fmt: skip
    if request.n not in (None, 1):
        raise bad_request("only n=1 is supported", param="n", code="unsupported_parameter")
    if not request.messages:
        raise bad_request("'messages' must not be empty", param="messages")
    if request.temperature is not None and not 0 <= request.temperature <= 2:
        raise bad_request("'temperature' must be between 0 and 2", param="temperature")
    if request.top_p is not None and not 0 < request.top_p <= 1:
        raise bad_request("'top_p' must be greater than 0 and at most 1", param="top_p")
    for field in ("max_tokens", "max_completion_tokens"):
        value = getattr(request, field)
        if value is not None and value < 1:
            raise bad_request(f"'{field}' must be at least 1", param=field)
        if value is not None and value > MAX_TOKENS_LIMIT:
            raise bad_request(f"'{field}' must be at most {MAX_TOKENS_LIMIT}", param=field)
    low, high = SEED_RANGE
    if request.seed is not None and not low <= request.seed <= high:
        raise bad_request(f"'seed' must be an integer from {low} to {high}", param="seed")
    stops = _stops(request)
    if len(stops) > 4 or any(not s for s in stops):
        raise bad_request("'stop' takes at most 4 non-empty strings", param="stop")
    if request.stream_options is not None and not request.stream:
        raise bad_request(
            "'stream_options' is only allowed when 'stream' is true", param="stream_options"
        )
    return request


def _stops(request: ChatRequest) -> tuple[str, ...]:
    if request.stop is None:
        return ()
    return (request.stop,) if isinstance(request.stop, str) else tuple(request.stop)


def chat_messages(request: ChatRequest) -> tuple[ChatMessage, ...]:
    """The request's messages as the inference layer's ``ChatMessage``s (text only)."""
    messages = []
    for i, message in enumerate(request.messages):
        role = _ROLES.get(message.role)
        if role is None:
            raise bad_request(
                f"unsupported role {message.role!r} (use system, developer, user, assistant "
                "or tool)",
                param=f"messages[{i}].role",
            )
        if message.tool_calls not in (None, []):
            raise bad_request(
                "tool calls are not supported", param=f"messages[{i}].tool_calls",
                code="unsupported_parameter",
            )  # fmt: skip
        messages.append(ChatMessage(role, _text(message, i)))  # type: ignore[arg-type]
    return tuple(messages)


def _text(message: _Message, i: int) -> str:
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for j, part in enumerate(content):
        if part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise bad_request(
                f"only text content parts are supported (got type {part.get('type')!r})",
                param=f"messages[{i}].content[{j}]",
                code="unsupported_parameter",
            )
        texts.append(part["text"])
    return "\n".join(texts)


# -- what a request goes to ---------------------------------------------------------------------


class _Final(msgspec.Struct, frozen=True):
    """The end of an answer: its finish reason, token counts when known, its thread."""

    finish_reason: str
    usage: dict[str, int] | None
    thread_id: str | None


def _usage(completion: Completion) -> dict[str, int]:
    return _counts(completion.usage.prompt_tokens, completion.usage.completion_tokens)


def _reply_usage(reply: AgentReply) -> dict[str, int]:
    return _counts(reply.prompt_tokens, reply.completion_tokens)


def _counts(prompt: int, generated: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": generated,
            "total_tokens": prompt + generated}  # fmt: skip


class _Slots:
    """At most ``limit`` requests in flight; one more is a 429."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0

    def take(self) -> Callable[[], None]:
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


def thread_owner(caller: Caller, agent: str) -> str:
    """A gateway thread's owner, as the thread store keeps it: the caller's token (``null``
    without tokens) and the agent the thread was opened for."""
    return msgspec.json.encode({"token": caller.name, "agent": agent}).decode()


class _Threads:
    """Opens threads for new conversations and checks the ids clients send back.

    A thread belongs to whoever opened it: the caller's token (none without tokens, where
    every caller is the same one) and the agent it was opened for (``thread_owner``, stored
    with the thread in the thread store, so it holds across restarts). An id
    is checked before any agent sees it: an id of no thread, or of a thread that belongs to
    another token or agent, is the same 404, so an id tells nobody else even that it exists.
    Ids are looked up one by one, by key (``GetThread``); the owners of the newest
    ``remember`` ids this gateway opened or checked are remembered.
    """

    def __init__(self, host: Host, remember: int = 100_000) -> None:
        self.host = host
        self.owners: OrderedDict[str, str | None] = OrderedDict()
        self.remember = remember

    def _note(self, thread_id: str, owner: str | None) -> None:
        self.owners[thread_id] = owner
        self.owners.move_to_end(thread_id)
        while len(self.owners) > self.remember:
            self.owners.popitem(last=False)

    async def open(self, given: str | None, caller: Caller, agent: str, timeout: float) -> str:
        store = self.host.service("threads")
        if store is None:
            raise APIError(503, "the thread store is not running; retry", type="server_error",
                           code="unavailable")  # fmt: skip
        owner = thread_owner(caller, agent)
        if given is None:
            created = await store.ask(CreateThread(title=agent, owner=owner), timeout=timeout)
            thread_id = str(created)
            self._note(thread_id, owner)
            return thread_id
        if given in self.owners:
            self.owners.move_to_end(given)
            found = self.owners[given]
        else:
            try:
                info = await store.ask(GetThread(thread_id=given), timeout=timeout)
            except ThreadNotFound:
                raise _no_thread(given, agent) from None
            assert isinstance(info, ThreadInfo)
            found = info.owner
            self._note(given, found)
        if found != owner:
            raise _no_thread(given, agent)
        return given


def _no_thread(thread_id: str, agent: str) -> APIError:
    return APIError(
        404,
        f"no thread {thread_id!r} of yours with {agent!r}: send an {THREAD_HEADER} header this "
        "gateway gave you for this model, or none to start a new conversation",
        param=THREAD_HEADER,
        code="thread_not_found",
    )


class _SSEResponse(StreamingResponse):
    """A streaming response that runs ``on_close`` however it ends (finished, client gone,
    cancelled), so the upstream stream is closed and the request's slot is freed; its body
    is made when it starts, from the app's ``Shutdown``, which it watches."""

    def __init__(
        self,
        content: Callable[[Shutdown], AsyncIterator[bytes]],
        on_close: Callable[[], Awaitable[None]],
        **kw: Any,
    ) -> None:
        super().__init__(_no_body(), **kw)
        self._content = content
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            self.body_iterator = self._content(shutdown_of(HTTPConnection(scope)))
            await super().__call__(scope, receive, send)
        finally:
            await self._on_close()


async def _no_body() -> AsyncIterator[bytes]:
    return
    yield b""  # an async generator that yields nothing


# -- the API ------------------------------------------------------------------------------------


class OpenAIAPI:
    """The handlers, over a running system (``Host``)."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.config: GatewayConfig = host.config.gateway or GatewayConfig()
        self.auth = TokenAuth(resolve_tokens(self.config))
        self.raw_model = raw_model_id(host.config) if self.config.allow_raw_model else None
        self.engine = EngineReadiness(host.actors.events)  # followed from its events
        self.agent_kinds = {agent.name: agent.kind for agent in host.config.agents}
        self.slots = _Slots(self.config.max_concurrent)
        self.threads = _Threads(host)
        self.created = int(time.time())

    # -- models -------------------------------------------------------------------------------

    def reachable(self, caller: Caller) -> list[str]:
        """The model ids ``caller`` may use: agents in config order, then the raw model."""
        names = [name for name in self.agent_kinds if caller.may_reach(name)]
        if self.raw_model is not None and caller.may_reach(self.raw_model):
            names.append(self.raw_model)
        return names

    def _model(self, name: str) -> dict[str, Any]:
        kind = self.agent_kinds.get(name)
        return {
            "id": name, "object": "model", "created": self.created, "owned_by": "actoros",
            "actoros_kind": f"{kind} agent" if kind is not None else "model",
        }  # fmt: skip

    async def list_models(self, request: Request) -> Response:
        return await self._guard(request, self._list_models)

    async def _list_models(self, request: Request, caller: Caller) -> Response:
        data = [self._model(name) for name in self.reachable(caller)]
        return _json({"object": "list", "data": data})

    async def get_model(self, request: Request) -> Response:
        return await self._guard(request, self._get_model)

    async def _get_model(self, request: Request, caller: Caller) -> Response:
        name = request.path_params["model"]
        if name not in self.reachable(caller):
            raise _not_found(name)
        return _json(self._model(name))

    # -- chat completions ---------------------------------------------------------------------

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
                raise _stopping()
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
            raw = await self._read_body(request)
            return await self._interruptible(
                request, caller, lambda: self._chat(request, caller, raw, release)
            )
        except BaseException:
            release()
            raise

    async def _read_body(self, request: Request) -> bytes:
        """The whole body (``RequestGuard`` bounds its size), within ``gateway.body_timeout``."""
        timeout = self.config.body_timeout
        try:
            async with asyncio.timeout(timeout):
                return await request.body()
        except TimeoutError:
            raise APIError(
                408, f"the request body did not arrive within {timeout:g} s "
                "(gateway.body_timeout)", code="body_timeout",
            ) from None  # fmt: skip
        except ClientDisconnect:
            raise APIError(499, "the client closed the connection before sending its body",
                           code="client_gone") from None  # fmt: skip

    @staticmethod
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
                raise _stopping() from None
            task.cancel()  # this request's own task was cancelled: pass it on
            raise
        finally:
            forget()
            watcher.cancel()

    async def _chat(
        self, request: Request, caller: Caller, raw: bytes, release: Callable[[], None]
    ) -> Response:
        try:
            body = parse_request(raw)
            target = self._target(body.model, caller)
            given = request.headers.get(THREAD_HEADER) or None
            if target == self.raw_model and target not in self.agent_kinds:
                if given is not None:
                    raise bad_request(
                        f"the raw model {target!r} keeps no threads: send the whole "
                        f"conversation in 'messages', without {THREAD_HEADER}",
                        param=THREAD_HEADER,
                    )
                return await self._raw(body, release)
            return await self._agent(body, caller, target, given, release)
        except BaseException:
            release()
            raise

    def _target(self, model: str, caller: Caller) -> str:
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

    # -- an agent -----------------------------------------------------------------------------

    async def _agent(
        self,
        body: ChatRequest,
        caller: Caller,
        agent: str,
        given: str | None,
        release: Callable[[], None],
    ) -> Response:
        last = body.messages[-1]
        if _ROLES.get(last.role) != "user":
            raise bad_request(
                "the last message must be the user's turn: an agent answers that message "
                f"(earlier turns live in its thread, {THREAD_HEADER})",
                param=f"messages[{len(body.messages) - 1}].role",
            )
        text = _text(last, len(body.messages) - 1)
        deadline = _deadline(self.config.request_timeout)
        what = f"agent {agent!r}"
        ref = self.host.agent(agent)
        if ref is None:
            raise APIError(503, f"{what} is not running (restarting?); retry",
                           type="server_error", code="unavailable")  # fmt: skip
        thread_id = await self.threads.open(given, caller, agent, _left(deadline))
        headers = {THREAD_HEADER: thread_id}
        if not body.stream:
            try:
                reply = await ref.ask(
                    UserMessage(text=text, thread_id=thread_id), timeout=_left(deadline)
                )
            except Exception as exc:
                raise from_exception(exc, what=what) from exc
            finally:
                release()
            if not isinstance(reply, AgentReply):
                raise APIError(500, f"{what} answered {type(reply).__name__}",
                               type="server_error", code="agent_error")  # fmt: skip
            final = _Final("stop", _reply_usage(reply), reply.thread_id or thread_id)
            headers[THREAD_HEADER] = final.thread_id or thread_id
            return _json(_completion(agent, reply.text, final), headers=headers)
        message = UserMessage(text=text, thread_id=thread_id, stream=True)
        try:
            stream = await ref.ask(message, timeout=_left(deadline))
        except Exception as exc:
            raise from_exception(exc, what=what) from exc
        if not isinstance(stream, AgentStream):
            raise APIError(500, f"{what} answered {type(stream).__name__}, not a stream",
                           type="server_error", code="agent_error")  # fmt: skip

        def read(item: Any) -> str | _Final:
            if isinstance(item, AgentReply):
                return _Final("stop", _reply_usage(item), item.thread_id or thread_id)
            assert isinstance(item, AgentDelta)
            return item.text

        return await self._stream(
            body, agent, stream, read, deadline, what, release, headers, thread_id
        )

    # -- the raw model ------------------------------------------------------------------------

    async def _raw(self, body: ChatRequest, release: Callable[[], None]) -> Response:
        model = self.raw_model
        assert model is not None
        what = f"the model {model!r}"
        deadline = _deadline(self.config.request_timeout)
        inference = self.host.service("inference")
        if inference is None:
            raise APIError(503, f"{what} is not running; retry", type="server_error",
                           code="engine_unavailable")  # fmt: skip
        await self._engine_ready(inference, deadline, what)
        try:
            gen = Generate(
                messages=chat_messages(body),
                max_tokens=body.max_completion_tokens or body.max_tokens or DEFAULT_MAX_TOKENS,
                temperature=1.0 if body.temperature is None else body.temperature,
                top_p=1.0 if body.top_p is None else body.top_p,
                stop=_stops(body),
                seed=body.seed,
                stream=bool(body.stream),
                ignore_eos=body.ignore_eos,
            )
        except ValueError as exc:
            raise bad_request(str(exc)) from None
        if not body.stream:
            try:
                completion = await inference.ask(gen, timeout=_left(deadline))
            except Exception as exc:
                raise from_exception(exc, what=what) from exc
            finally:
                release()
            if not isinstance(completion, Completion):
                raise APIError(500, f"{what} answered {type(completion).__name__}",
                               type="server_error", code="internal_error")  # fmt: skip
            final = _Final(completion.finish_reason, _usage(completion), None)
            return _json(_completion(model, completion.text, final))
        try:
            stream = await inference.ask(gen, timeout=_left(deadline))
        except Exception as exc:
            raise from_exception(exc, what=what) from exc
        assert isinstance(stream, CompletionStream)

        def read(item: Any) -> str | _Final:
            if isinstance(item, Completion):
                return _Final(item.finish_reason, _usage(item), None)
            assert isinstance(item, TokenDelta)
            return item.text

        return await self._stream(body, model, stream, read, deadline, what, release, {}, None)

    async def _engine_ready(self, inference: ActorRef, deadline: float | None, what: str) -> None:
        """503 while the engine loads or restarts: answered from the inference actor's
        EngineReady / EngineDown events (an engine that dies before its EngineDown arrives
        fails its requests with a 503 anyway)."""
        if not await self.engine.ready(inference, timeout=_left(deadline)):
            raise APIError(
                503, f"{what} is not ready (loading or restarting); retry shortly",
                type="server_error", code="engine_unavailable",
            )  # fmt: skip

    # -- streaming ----------------------------------------------------------------------------

    async def _stream(
        self,
        body: ChatRequest,
        model: str,
        stream: AgentStream | CompletionStream,
        read: Callable[[Any], str | _Final],
        deadline: float,
        what: str,
        release: Callable[[], None],
        headers: dict[str, str],
        thread_id: str | None,
    ) -> Response:
        """Answer with SSE from ``stream`` (an ``AgentStream`` or ``CompletionStream``).

        One task reads ``stream`` into a queue the response reads from, so the gateway's
        shutdown or the deadline can end the response between items. The first item is
        awaited before the response starts, so an error that comes before any text
        (overloaded, engine down, agent refused) is a plain HTTP error."""
        items: asyncio.Queue[Any] = asyncio.Queue()

        async def pump() -> None:
            try:
                async for item in stream:
                    items.put_nowait(item)
                items.put_nowait(_ENDED)
            except Exception as exc:
                items.put_nowait(exc)

        pumping = asyncio.ensure_future(pump())
        # one timer for the whole answer (not one per token): at the deadline the reader
        # meets a TimeoutError, a 504 or the stream's last event
        expiry = asyncio.get_running_loop().call_at(
            deadline, lambda: items.put_nowait(TimeoutError(f"{what} took too long"))
        )
        closed = False

        async def close() -> None:
            nonlocal closed
            if not closed:
                closed = True
                expiry.cancel()
                release()
                pumping.cancel()
                try:
                    await stream.aclose()
                except Exception as exc:  # closing must not hide what happened before
                    log.debug("gateway.stream_close_failed", error=repr(exc))

        async def next_item() -> str | _Final:
            item = await items.get()
            if item is _ENDED:
                raise APIError(500, f"{what} ended its stream without a final answer",
                               type="server_error", code="internal_error")  # fmt: skip
            if isinstance(item, BaseException):
                raise from_exception(item, what=what) from item
            return read(item)

        try:
            first = await next_item()
        except BaseException:
            await close()
            raise
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        chunks = _Chunks(_completion_id(), int(time.time()), model, include_usage, thread_id)

        async def events(shutdown: Shutdown) -> AsyncIterator[bytes]:
            forget = shutdown.watch(lambda: items.put_nowait(_stopping()))
            try:
                yield chunks.delta({"role": "assistant", "content": ""})
                item = first
                while not isinstance(item, _Final):
                    if item:
                        yield chunks.delta({"content": item})
                    item = await next_item()
            except APIError as error:
                log.warning("gateway.stream_failed", model=model, status=error.status,
                            code=error.code, error=error.message)  # fmt: skip
                yield _sse(error.body())
                return
            finally:
                forget()
                await close()
            yield chunks.finish(item)
            if include_usage:
                yield chunks.usage(item)
            yield b"data: [DONE]\n\n"

        return _SSEResponse(
            events, close, media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", **headers},
        )  # fmt: skip


_ENDED = object()  # a stream that ended without its final item


def _stopping() -> APIError:
    return APIError(503, "the gateway is stopping; retry once it is back", type="server_error",
                    code="unavailable")  # fmt: skip


class _Chunks:
    """``chat.completion.chunk`` events of one answer."""

    def __init__(
        self, completion_id: str, created: int, model: str, usage: bool, thread_id: str | None
    ) -> None:
        self.base: dict[str, Any] = {
            "id": completion_id, "object": "chat.completion.chunk", "created": created,
            "model": model, "system_fingerprint": None,
        }  # fmt: skip
        if thread_id is not None:
            self.base["thread_id"] = thread_id
        self.with_usage = usage

    def _chunk(self, choices: list[dict[str, Any]], usage: Any = None) -> bytes:
        chunk = {**self.base, "choices": choices}
        if self.with_usage:
            chunk["usage"] = usage
        return _sse(chunk)

    def delta(self, delta: dict[str, Any]) -> bytes:
        return self._chunk([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}])

    def finish(self, final: _Final) -> bytes:
        if final.thread_id is not None:
            self.base["thread_id"] = final.thread_id
        choice = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": final.finish_reason}
        return self._chunk([choice])

    def usage(self, final: _Final) -> bytes:
        return self._chunk([], final.usage)


# -- helpers ------------------------------------------------------------------------------------


def _completion(model: str, text: str, final: _Final) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": _completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": final.finish_reason,
            }
        ],
        "usage": final.usage,
    }
    if final.thread_id is not None:
        body["thread_id"] = final.thread_id
    return body


def _completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def _json(data: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(msgspec.json.encode(data), media_type="application/json", headers=headers)


def _sse(data: Any) -> bytes:
    return b"data: " + msgspec.json.encode(data) + b"\n\n"


def _deadline(timeout: float) -> float:
    return asyncio.get_running_loop().time() + timeout


def _left(deadline: float) -> float:
    """Seconds to ``deadline``; a request out of time is a 504 before anything is asked."""
    left = deadline - asyncio.get_running_loop().time()
    if left <= 0:
        raise APIError(504, "the request ran out of time (gateway.request_timeout)",
                       type="server_error", code="timeout")  # fmt: skip
    return left


def _not_found(model: str) -> APIError:
    return APIError(
        404,
        f"The model '{model}' does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


def _log_error(request: Request, caller: Caller | None, error: APIError, exc: Exception) -> None:
    fields = {
        "path": request.url.path, "status": error.status, "code": error.code,
        "error": error.message, "token": caller.name if caller is not None else None,
    }  # fmt: skip
    if error.status >= 500 and error.code == "internal_error":
        log.error("gateway.error", **fields, exc_info=exc)
    else:
        log.info("gateway.refused", **fields)

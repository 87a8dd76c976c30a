"""The OpenAI wire format: the request body and how it is checked, and the answers' bodies.

``parse_request`` decodes a ``POST /v1/chat/completions`` body into a ``ChatRequest`` in one
call and checks it; every problem is an ``APIError`` 400 that names the field (``param``),
as the OpenAI API does. Fields the OpenAI API knows but the gateway does not support are a
400 ``unsupported_parameter`` unless absent or a value that asks for nothing (``_NO_OPS``);
fields nobody knows are a 400 too (``forbid_unknown_fields``).

The answers are Structs encoded as they are: ``ChatCompletion`` (one answer),
``ChatCompletionChunk`` (one event of a stream) and ``ModelList`` / ``ModelCard``. Fields the
OpenAI API sends as ``null`` are always there; ``thread_id`` (an agent's thread) and a
chunk's ``usage`` (with ``stream_options.include_usage`` only) are left out when unset. They
are ``gc=False``: an answer never takes part in a reference cycle, and a chunk (one per
token) untracked by the garbage collector is made and encoded in half the time.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Literal, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

from actoros.inference.messages import ChatMessage, TokenLogprob, ToolCall

from ..errors import bad_request
from .tools import NamedToolChoice, RequestToolCall, ResponseFormat, ToolParam

__all__ = [
    "MAX_TOKENS_LIMIT",
    "SEED_RANGE",
    "THREAD_HEADER",
    "AssistantMessage",
    "ChoiceLogprobs",
    "DeltaToolCall",
    "FunctionCall",
    "MAX_N",
    "MAX_TOP_LOGPROBS",
    "ToolCallOut",
    "chat_logprobs",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatRequest",
    "Choice",
    "ChunkChoice",
    "Delta",
    "ModelCard",
    "ModelList",
    "RequestMessage",
    "StreamOptions",
    "Usage",
    "chat_messages",
    "completion_id",
    "decode_body",
    "parse_request",
    "stops",
    "user_turn",
]

THREAD_HEADER = "X-Actoros-Thread"
"""The header naming an agent's conversation thread, in requests and answers."""
SEED_RANGE = (-(2**63), 2**63 - 1)  # a 64-bit seed, as vLLM's own server takes
MAX_TOKENS_LIMIT = 2**31 - 1  # past any model's context; larger is a 400, not an engine error
MAX_N = 16  # choices per request: each is one engine request, all under the request's one slot
MAX_TOP_LOGPROBS = 20  # OpenAI's limit, and vLLM's default max_logprobs

# -- the request -------------------------------------------------------------------------------


class RequestMessage(msgspec.Struct):
    role: str
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[RequestToolCall] | None = None
    tool_call_id: str | None = None


class StreamOptions(msgspec.Struct):
    include_usage: bool = False


class ChatRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The fields of a chat completion request the gateway knows (others are a 400)."""

    model: str
    messages: list[RequestMessage]
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = None
    user: str | None = None
    ignore_eos: bool = False  # vLLM's extension (raw model only): always max_tokens tokens
    tools: list[ToolParam] | None = None
    tool_choice: str | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    # known to the OpenAI API, not supported here: a 400 unless absent or a no-op value
    functions: Any = None
    function_call: Any = None
    presence_penalty: Any = None
    frequency_penalty: Any = None
    repetition_penalty: Any = None  # vLLM's extension
    logit_bias: Any = None
    store: Any = None
    metadata: Any = None
    modalities: Any = None
    audio: Any = None
    prediction: Any = None
    reasoning_effort: Any = None
    service_tier: Any = None

    @property
    def include_usage(self) -> bool:
        """Whether a stream ends with a chunk of the token counts."""
        return self.stream_options is not None and self.stream_options.include_usage


# field → the values that ask for nothing (accepted and ignored)
_NO_OPS: dict[str, tuple[Any, ...]] = {
    "functions": (None, []),
    "function_call": (None, "none"),
    "presence_penalty": (None, 0, 0.0),
    "frequency_penalty": (None, 0, 0.0),
    "repetition_penalty": (None, 1, 1.0),
    "logit_bias": (None, {}),
    "store": (None, False),
    "metadata": (None, {}),
    "modalities": (None, ["text"]),
    "audio": (None,),
    "prediction": (None,),
    "reasoning_effort": (None,),
    "service_tier": (None, "auto", "default"),
}

_ROLES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
}
_UNKNOWN_FIELD = re.compile(r"Object contains unknown field `(?P<field>[^`]*)`")
_AT = re.compile(r" - at `\$\.?(?P<at>[^`]*)`$")


def parse_request(body: bytes) -> ChatRequest:
    """Decode and check a request body; ``APIError`` 400 naming the field otherwise."""
    request = decode_body(body, ChatRequest, "'model' and 'messages'")
    _check(request)
    return request


T = TypeVar("T")


def decode_body(body: bytes, type: type[T], needs: str) -> T:  # noqa: A002
    """``body`` decoded as ``type``; a 400 naming the field otherwise (``needs``: what the
    body must at least hold, for the message of one that is not JSON)."""
    try:
        return msgspec.json.decode(body, type=type)
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
            f"with {needs}."
        ) from None


def _check(request: ChatRequest) -> None:
    for field, no_ops in _NO_OPS.items():
        value = getattr(request, field)
        if not any(value == ok and type(value) is type(ok) for ok in no_ops):
            raise bad_request(
                f"'{field}' is not supported by the actoros gateway",
                param=field,
                code="unsupported_parameter",
            )
    if request.n is not None and not 1 <= request.n <= MAX_N:
        raise bad_request(f"'n' must be from 1 to {MAX_N}", param="n")
    if request.top_logprobs is not None:
        if not 0 <= request.top_logprobs <= MAX_TOP_LOGPROBS:
            raise bad_request(
                f"'top_logprobs' must be from 0 to {MAX_TOP_LOGPROBS}", param="top_logprobs"
            )
        if not request.logprobs:
            raise bad_request("'top_logprobs' needs 'logprobs' set to true", param="top_logprobs")
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
    given = stops(request)
    if len(given) > 4 or any(not s for s in given):
        raise bad_request("'stop' takes at most 4 non-empty strings", param="stop")
    if request.stream_options is not None and not request.stream:
        raise bad_request(
            "'stream_options' is only allowed when 'stream' is true", param="stream_options"
        )


def stops(request: ChatRequest) -> tuple[str, ...]:
    """The request's stop strings (``stop`` is one string or a list)."""
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
        calls = tuple(
            ToolCall(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or ()
        )
        messages.append(
            ChatMessage(
                role,  # type: ignore[arg-type]
                _text(message, i),
                tool_calls=calls,
                tool_call_id=message.tool_call_id if role == "tool" else None,
                name=message.name if role == "tool" else None,
            )
        )
    return tuple(messages)


def user_turn(request: ChatRequest) -> str:
    """The text of the last message, which must be the user's: the turn an agent answers."""
    last = len(request.messages) - 1
    if _ROLES.get(request.messages[last].role) != "user":
        raise bad_request(
            "the last message must be the user's turn: an agent answers that message "
            f"(earlier turns live in its thread, {THREAD_HEADER})",
            param=f"messages[{last}].role",
        )
    return _text(request.messages[last], last)


def _text(message: RequestMessage, i: int) -> str:
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


# -- the answers -------------------------------------------------------------------------------


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


class Usage(msgspec.Struct, frozen=True, gc=False):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, prompt: int, completion: int) -> Usage:
        return cls(prompt, completion, prompt + completion)


class FunctionCall(msgspec.Struct, frozen=True, gc=False):
    name: str
    arguments: str


class ToolCallOut(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall

    @classmethod
    def of(cls, call: ToolCall) -> ToolCallOut:
        return cls(id=call.id, function=FunctionCall(call.name, call.arguments))


class AssistantMessage(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    role: Literal["assistant"] = "assistant"
    content: str | None
    refusal: None = None
    tool_calls: list[ToolCallOut] | UnsetType = UNSET


class TopLogprobOut(msgspec.Struct, frozen=True, gc=False):
    token: str
    logprob: float
    bytes: list[int]


class TokenLogprobOut(msgspec.Struct, frozen=True, gc=False):
    token: str
    logprob: float
    bytes: list[int]
    top_logprobs: list[TopLogprobOut]


class ChoiceLogprobs(msgspec.Struct, frozen=True, gc=False):
    """A chat choice's ``logprobs``: one entry per output token."""

    content: list[TokenLogprobOut]
    refusal: None = None


def chat_logprobs(tokens: tuple[TokenLogprob, ...] | None, top: int) -> ChoiceLogprobs | None:
    """``TokenLogprob``s in the chat format, with at most ``top`` alternatives each."""
    if tokens is None:
        return None
    return ChoiceLogprobs(
        [
            TokenLogprobOut(
                t.token,
                t.logprob,
                list(t.token.encode()),
                [TopLogprobOut(a.token, a.logprob, list(a.token.encode())) for a in t.top[:top]],
            )
            for t in tokens
        ]
    )


class Choice(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    index: int = 0
    message: AssistantMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: str


class ChatCompletion(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The answer to a request without ``stream``."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    system_fingerprint: None = None
    choices: list[Choice]
    usage: Usage
    thread_id: str | UnsetType = UNSET


class DeltaFunction(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    name: str | UnsetType = UNSET
    arguments: str


class DeltaToolCall(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A piece of a streamed tool call: the first of each ``index`` has its ``id``, ``type``
    and ``function.name``; the rest add to ``function.arguments``."""

    index: int
    id: str | UnsetType = UNSET
    type: Literal["function"] | UnsetType = UNSET
    function: DeltaFunction


class Delta(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    role: Literal["assistant"] | UnsetType = UNSET
    content: str | UnsetType = UNSET
    tool_calls: list[DeltaToolCall] | UnsetType = UNSET


class ChunkChoice(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    index: int = 0
    delta: Delta
    logprobs: ChoiceLogprobs | None = None
    finish_reason: str | None = None


class ChatCompletionChunk(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One event of a stream. ``usage``: absent without ``include_usage``; with it ``null``
    in every chunk but the last, which has no choices."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    system_fingerprint: None = None
    thread_id: str | UnsetType = UNSET
    choices: list[ChunkChoice]
    usage: Usage | None | UnsetType = UNSET


class ModelCard(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of ``GET /v1/models``; ``actoros_kind``: ``"llm agent"``, ``"model"``..."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "actoros"
    actoros_kind: str
    actoros_ready: bool = True  # whether it answers now (an llm agent or the model: engine up)


class ModelList(msgspec.Struct, frozen=True, kw_only=True):
    object: Literal["list"] = "list"
    data: list[ModelCard]

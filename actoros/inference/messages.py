"""Messages of the inference layer: what agents send to the inference actor and get back.

All are frozen msgspec Structs, so they validate at the edges (YAML/JSON) and cost little in
between. What the inference actor takes is ``InferenceRequest``, a union of tagged Structs
(msgspec's ``tag=True``: decodable by their ``type`` field) that its ``receive`` dispatches
with one ``match``; what it answers (``Completion``, ``TokenDelta``) is plain data.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

Role = Literal["system", "user", "assistant", "tool"]

FinishReason = Literal["stop", "length", "abort", "error", "repetition"]
"""Why a request ended: ``stop`` (end of sequence or a stop string), ``length`` (``max_tokens``
or the context reached), ``abort`` (the asker went away, or the engine ended it); ``error``
is a failed request (``InferenceRequestDone``) or, from vLLM, a retryable fault of that
request; ``repetition``: vLLM saw the output loop."""


class ToolCall(msgspec.Struct, frozen=True):
    """A function call an assistant turn made: ``arguments`` is the JSON text of its arguments
    (as the OpenAI API carries it)."""

    id: str
    name: str
    arguments: str


class ChatMessage(msgspec.Struct, frozen=True):
    """One turn of a chat. An assistant turn may carry the ``tool_calls`` it made; a ``tool``
    turn answers one of them (``tool_call_id``; ``name``: the function's)."""

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None


class ToolSpec(msgspec.Struct, frozen=True):
    """A function the model may call: its name, description and JSON-schema ``parameters``,
    rendered into the prompt (the model's chat template where it takes tools)."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = msgspec.field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )


class JsonSchema(msgspec.Struct, tag=True, frozen=True):
    """The output must be a JSON document matching ``schema`` (a JSON Schema object)."""

    schema: dict[str, Any]


class JsonObject(msgspec.Struct, tag=True, frozen=True):
    """The output must be one JSON object (any shape)."""


class Regex(msgspec.Struct, tag=True, frozen=True):
    """The output must match the regular expression ``pattern`` (whole)."""

    pattern: str


class Choice(msgspec.Struct, tag=True, frozen=True):
    """The output must be exactly one of ``options``."""

    options: tuple[str, ...]


Constraint = JsonSchema | JsonObject | Regex | Choice
"""What a request's output must be, enforced while it is generated (vLLM's structured outputs;
the fake engine honours it too). An engine that cannot enforce one says so at start."""


class Generate(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    """One generation request: chat ``messages`` (through the model's chat template) or a raw
    ``prompt`` — exactly one of them.

    ``priority``: lower is served first (vLLM's convention); equal priorities are served fairly
    across requesters. ``stream``: deliver ``TokenDelta``s before the final ``Completion``.
    ``ignore_eos``: keep generating to ``max_tokens`` (benchmarks). ``constraint``: what the
    output must be (``Constraint``), enforced while generating. ``logprobs``: report each
    output token's log probability and that many alternatives (``TokenLogprob``). ``tools``:
    the functions the model is told it may call (with ``messages`` only).
    """

    messages: tuple[ChatMessage, ...] | None = None
    prompt: str | None = None
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    priority: int = 0
    stream: bool = False
    ignore_eos: bool = False
    constraint: Constraint | None = None
    logprobs: int | None = None  # with each token, this many most likely ones (0: its own only)
    tools: tuple[ToolSpec, ...] = ()  # functions the model may call (rendered into the prompt)

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("Generate needs exactly one of messages= or prompt=")
        if self.max_tokens < 1:
            raise ValueError(f"Generate.max_tokens must be >= 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise ValueError(f"Generate.temperature must be >= 0, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"Generate.top_p must be in (0, 1], got {self.top_p}")
        if any(not stop for stop in self.stop):
            raise ValueError("Generate.stop strings must not be empty")
        if self.tools and self.messages is None:
            raise ValueError("Generate.tools need messages= (a chat), not prompt=")


class InferenceStats(msgspec.Struct, tag=True, frozen=True):
    """Ask the inference actor for ``InferenceStats()``; it replies with ``InferenceMetrics``."""


InferenceRequest = Generate | InferenceStats
"""What the inference actor takes (its supervisor's ``Terminated`` aside)."""


class TopLogprob(msgspec.Struct, frozen=True, gc=False):
    token: str
    logprob: float


class TokenLogprob(msgspec.Struct, frozen=True):
    """One output token, its log probability and the most likely alternatives there."""

    token: str
    logprob: float
    top: tuple[TopLogprob, ...] = ()


class TokenDelta(msgspec.Struct, frozen=True):
    """New text of a streaming request; ``index`` counts deltas from 0, in order.
    ``logprobs``: one entry per token in ``text`` when the request asked for them."""

    request_id: str
    index: int
    text: str
    logprobs: tuple[TokenLogprob, ...] | None = None


class Usage(msgspec.Struct, frozen=True):
    prompt_tokens: int
    completion_tokens: int


class Timings(msgspec.Struct, frozen=True):
    """Seconds: waiting in the actor's queue, to the first token, and end to end."""

    queued: float
    ttft: float
    total: float


class Completion(msgspec.Struct, frozen=True):
    request_id: str
    text: str
    finish_reason: FinishReason
    usage: Usage
    timings: Timings
    logprobs: tuple[TokenLogprob, ...] | None = None  # every output token's, when asked for


class InferenceRequestDone(msgspec.Struct, frozen=True, kw_only=True):
    """Published on ``system.events`` when a request ends — completed, aborted or failed —
    once per request, and only while someone subscribes to this type (metrics do).

    ``requester``: the asking actor's path (``None`` for an ask from outside any actor).
    Seconds since the request reached the actor: ``queued`` (until admitted to the engine,
    or until it ended if it never was), ``ttft`` (``None``: no token came), ``total``.
    ``finish_reason``: ``"stop"``, ``"length"``, ``"abort"`` (the asker went away, or the
    engine ended it) or ``"error"``; then ``error`` is the message and ``error_type`` the
    error's class name (``Overloaded``, ``PromptTooLong``, ``EngineUnavailable``, ...).
    """

    request_id: str
    requester: str | None
    prompt_tokens: int
    completion_tokens: int
    queued: float
    ttft: float | None
    total: float
    finish_reason: FinishReason
    error: str | None = None
    error_type: str | None = None

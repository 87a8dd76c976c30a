"""What a chat completion goes to: an agent or the raw model, as one small strategy each.

The handler path is the same for both (``api.py`` asks, ``stream.py`` streams): it asks
``target.ref`` for ``target.message`` and reads every item that comes back with
``target.read``, which turns it into text (a piece of a stream) or a ``Final`` (the end of
the answer, with its token counts and thread). The difference between an agent and the raw
model is only in these objects:

- ``AgentTarget``: a ``UserMessage`` with the user's turn, in the caller's thread; the
  answer is an ``AgentReply`` (streamed: ``AgentDelta``s, then the ``AgentReply``), always
  ``"stop"``, with the tokens of every model call the turn made (0 for a rule agent).
- ``ModelTarget``: a ``Generate`` with the whole conversation and the request's sampling
  fields, no thread; the answer is a ``Completion`` (streamed: ``TokenDelta``s, then the
  ``Completion``) with the engine's finish reason and token counts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import msgspec

from actoros.agents import AgentDelta, AgentReply, AgentStream, UserMessage
from actoros.core import ActorRef
from actoros.inference.actor import CompletionStream
from actoros.inference.messages import Completion, Generate, TokenDelta, TokenLogprob

from ..errors import APIError, bad_request
from .limits import time_left
from .schema import SEED_RANGE, ChatRequest, Usage, chat_messages, stops
from .tools import ToolPlan

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "AgentTarget",
    "Call",
    "Final",
    "ModelTarget",
    "Piece",
    "Target",
    "UpstreamStream",
]

DEFAULT_MAX_TOKENS = 256  # the raw model's max_tokens when a request gives none


class Piece(msgspec.Struct, frozen=True, gc=False):
    """New text of choice ``index`` (with its tokens' logprobs when asked for)."""

    index: int
    text: str
    logprobs: tuple[TokenLogprob, ...] | None = None


class Final(msgspec.Struct, frozen=True, kw_only=True):
    """The end of choice ``index``: its whole text, finish reason, token counts, thread and
    (when asked for) every token's logprobs."""

    text: str
    finish_reason: str
    usage: Usage
    thread_id: str | None
    index: int = 0
    logprobs: tuple[TokenLogprob, ...] | None = None


class UpstreamStream(Protocol):
    """What an agent or the inference actor streams (``AgentStream``, ``CompletionStream``):
    items, then its end; closing it early aborts the turn or the generation."""

    def __aiter__(self) -> AsyncIterator[Any]: ...

    async def aclose(self) -> None: ...


class Target(Protocol):
    """What a chat completion goes to (see the module docstring)."""

    @property
    def ref(self) -> ActorRef: ...

    @property
    def messages(self) -> tuple[object, ...]:
        """What ``ref`` is asked, one message per choice, ``stream`` set as the request asks."""

    @property
    def model(self) -> str:
        """The model id the answer names."""

    @property
    def what(self) -> str:
        """How errors name it: "agent 'faq'", "the model 'x'"."""

    @property
    def thread_id(self) -> str | None:
        """The conversation's thread (agents only)."""

    @property
    def error_code(self) -> str:
        """The code of the 500 for an answer of the wrong type."""

    def stream_of(self, answer: object) -> UpstreamStream | None:
        """``answer`` as the stream a streaming ``message`` is answered with, else ``None``."""

    def read(self, item: object) -> Piece | Final | None:
        """A piece of a stream, a choice's ``Final`` end, or ``None``: not an item of ours.
        With several choices the stream's items are ``(index, item)`` pairs."""


class AgentTarget:
    """An agent's turn: the user's last message, in ``thread_id``."""

    error_code = "agent_error"

    def __init__(
        self, ref: ActorRef, agent: str, text: str, thread_id: str, *, stream: bool
    ) -> None:
        self.ref = ref
        self.model = agent
        self.what = f"agent {agent!r}"
        self.thread_id: str | None = thread_id
        self.messages = (UserMessage(text=text, thread_id=thread_id, stream=stream),)

    def stream_of(self, answer: object) -> AgentStream | None:
        return answer if isinstance(answer, AgentStream) else None

    def read(self, item: object) -> Piece | Final | None:
        match item:
            case AgentDelta(text=text):
                return Piece(0, text)
            case AgentReply():
                return Final(
                    text=item.text,
                    finish_reason="stop",
                    usage=Usage.of(item.prompt_tokens, item.completion_tokens),
                    thread_id=item.thread_id or self.thread_id,
                )
        return None


class ModelTarget:
    """Stateless generations by the inference actor ``ref``: one ``Generate`` per choice
    (``n``; seeds ``seed``, ``seed + 1``... when a seed is given), all from ``gen``."""

    error_code = "internal_error"
    thread_id = None

    def __init__(self, ref: ActorRef, model: str, gens: list[dict[str, Any]], n: int) -> None:
        self.ref = ref
        self.model = model
        self.what = f"the model {model!r}"
        self.prompts = len(gens)
        try:
            self.messages = tuple(_generate(gen, i) for gen in gens for i in range(n))
        except ValueError as exc:
            raise bad_request(str(exc)) from None

    @classmethod
    def chat(cls, ref: ActorRef, model: str, body: ChatRequest, tools: ToolPlan) -> ModelTarget:
        """The raw model's answer to a chat completion request."""
        gen = {
            "messages": chat_messages(body),
            "max_tokens": body.max_completion_tokens or body.max_tokens or DEFAULT_MAX_TOKENS,
            "temperature": 1.0 if body.temperature is None else body.temperature,
            "top_p": 1.0 if body.top_p is None else body.top_p,
            "stop": stops(body),
            "seed": body.seed,
            "stream": bool(body.stream),
            "ignore_eos": body.ignore_eos,
            "tools": tools.tools,
            "constraint": tools.constraint,
            "logprobs": (body.top_logprobs or 0) if body.logprobs else None,
        }
        return cls(ref, model, [gen], body.n or 1)

    def stream_of(self, answer: object) -> CompletionStream | None:
        return answer if isinstance(answer, CompletionStream) else None

    def read(self, item: object) -> Piece | Final | None:
        index = 0
        if type(item) is tuple:  # one of several choices' streams
            index, item = item
        match item:
            case TokenDelta(text=text, logprobs=logprobs):
                return Piece(index, text, logprobs)
            case Completion():
                return Final(
                    text=item.text,
                    finish_reason=item.finish_reason,
                    usage=Usage.of(item.usage.prompt_tokens, item.usage.completion_tokens),
                    thread_id=None,
                    index=index,
                    logprobs=item.logprobs,
                )
        return None


def _generate(fields: dict[str, Any], i: int) -> Generate:
    """Choice ``i``'s request: a given seed moves on by ``i`` (within the 64-bit range)."""
    seed = fields["seed"]
    if seed is not None:
        low, high = SEED_RANGE
        seed = low + (seed - low + i) % (high - low + 1)
    return Generate(**{**fields, "seed": seed})


class Call:
    """One chat completion in flight: its ``target``, the loop time it must be answered by
    (``gateway.request_timeout``), the function that frees its slot (it may be called more
    than once), and whether a stream ends with a usage chunk."""

    __slots__ = ("deadline", "include_usage", "release", "target")

    def __init__(
        self,
        target: Target,
        *,
        deadline: float,
        release: Callable[[], None],
        include_usage: bool,
    ) -> None:
        self.target = target
        self.deadline = deadline
        self.release = release
        self.include_usage = include_usage

    def time_left(self) -> float:
        """Seconds to the deadline; ``APIError`` 504 once it has passed."""
        return time_left(self.deadline)

    def wrong_answer(self, answer: object, note: str = "") -> APIError:
        """The 500 for an answer the target does not give (a bug, not the client's)."""
        target = self.target
        return APIError(
            500,
            f"{target.what} answered {type(answer).__name__}{note}",
            type="server_error",
            code=target.error_code,
        )

"""How choices become an answer's body or its stream's events: chat completions
(``ChatFormat``: content, tool calls, chat logprobs) and text completions
(``CompletionFormat``: text, the completions logprobs format).

Both take the same ``Piece`` / ``Final`` items of any number of choices (``n``), so
``api.py`` and ``stream.py`` do not know which endpoint they serve. ``body(finals)`` is the
answer without ``stream``; with it ``start()``, ``piece(p)``, ``finish(f)`` and ``usage(u)``
are the events in order. Usage sums the choices' output tokens and counts each prompt once.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Protocol

import msgspec
from msgspec import UNSET, UnsetType

from actoros.inference.messages import TokenLogprob

from .. import sse
from .schema import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChunkChoice,
    Delta,
    DeltaFunction,
    DeltaToolCall,
    ToolCallOut,
    Usage,
    chat_logprobs,
    completion_id,
)
from .targets import Final, Piece
from .tools import ToolPlan, may_start_call, read_output

__all__ = [
    "ChatFormat",
    "CompletionChoice",
    "CompletionChunk",
    "CompletionFormat",
    "CompletionLogprobs",
    "Format",
    "TextCompletion",
    "total_usage",
]


def total_usage(finals: list[Final], prompts: int = 1) -> Usage:
    """The usage of all choices: every output token, each of ``prompts`` prompts once (the
    choices of one prompt are consecutive)."""
    per_prompt = max(1, len(finals) // max(1, prompts))
    prompt = sum(f.usage.prompt_tokens for f in finals if f.index % per_prompt == 0)
    return Usage.of(prompt, sum(f.usage.completion_tokens for f in finals))


class Format(Protocol):
    n: int
    prompts: int

    def body(self, finals: list[Final]) -> Any: ...

    def start(self) -> list[bytes]: ...

    def piece(self, piece: Piece) -> bytes | None: ...

    def finish(self, final: Final) -> list[bytes]: ...

    def usage(self, usage: Usage) -> bytes: ...


# -- chat completions --------------------------------------------------------------------------


class _Held:
    """Text of one choice held back while it may still be a tool call."""

    __slots__ = ("holding", "logprobs", "text")

    def __init__(self, holding: bool) -> None:
        self.holding = holding
        self.text = ""
        self.logprobs: list[TokenLogprob] | None = None

    def add(self, piece: Piece) -> None:
        self.text += piece.text
        if piece.logprobs is not None:
            self.logprobs = [*(self.logprobs or ()), *piece.logprobs]


_FIRST = Delta(role="assistant", content="")


class ChatFormat:
    """``chat.completion`` bodies and ``chat.completion.chunk`` events."""

    def __init__(
        self,
        model: str,
        *,
        thread_id: str | None = None,
        include_usage: bool = False,
        plan: ToolPlan | None = None,
        top_logprobs: int | None = None,
        n: int = 1,
        prompts: int = 1,
    ) -> None:
        self.id = completion_id()
        self.created = int(time.time())
        self.model = model
        self.thread_id = UNSET if thread_id is None else thread_id
        self.no_usage = None if include_usage else UNSET  # the usage of all but the last
        self.plan = plan or ToolPlan()
        self.top = top_logprobs  # None: no logprobs
        self.n = n
        self.prompts = prompts
        # a choice that may be a tool call holds its text until it cannot be one
        self._held = [_Held(self.plan.may_call) for _ in range(n)]

    def _message(self, final: Final) -> tuple[AssistantMessage, str]:
        content, calls = read_output(final.text, self.plan)
        if not calls:
            return AssistantMessage(content=content), final.finish_reason
        message = AssistantMessage(content=content, tool_calls=[ToolCallOut.of(c) for c in calls])
        return message, "tool_calls"

    def body(self, finals: list[Final]) -> ChatCompletion:
        choices = []
        for final in finals:
            message, reason = self._message(final)
            logprobs = None if self.top is None else chat_logprobs(final.logprobs, self.top)
            choices.append(
                Choice(index=final.index, message=message, logprobs=logprobs, finish_reason=reason)
            )
        thread = finals[0].thread_id if finals else None
        return ChatCompletion(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=choices,
            usage=total_usage(finals, self.prompts),
            thread_id=UNSET if thread is None else thread,
        )

    def _event(self, choices: list[ChunkChoice], usage: Usage | None | UnsetType) -> bytes:
        chunk = ChatCompletionChunk(
            id=self.id,
            created=self.created,
            model=self.model,
            thread_id=self.thread_id,
            choices=choices,
            usage=usage,
        )
        return sse.event(chunk)

    def _content(self, index: int, text: str, logprobs: Any) -> bytes:
        lp = None if self.top is None else chat_logprobs(logprobs, self.top)
        choice = ChunkChoice(index=index, delta=Delta(content=text), logprobs=lp)
        return self._event([choice], self.no_usage)

    def start(self) -> list[bytes]:
        return [
            self._event([ChunkChoice(index=i, delta=_FIRST)], self.no_usage) for i in range(self.n)
        ]

    def piece(self, piece: Piece) -> bytes | None:
        held = self._held[piece.index]
        if held.holding:
            held.add(piece)
            if self.plan.mode != "auto" or may_start_call(held.text):
                return None
            held.holding = False  # plain text after all: send what was held, stream the rest
            text, logprobs = held.text, held.logprobs
            held.text, held.logprobs = "", None
            return self._content(piece.index, text, logprobs) if text else None
        if not piece.text:
            return None
        return self._content(piece.index, piece.text, piece.logprobs)

    def finish(self, final: Final) -> list[bytes]:
        if final.thread_id is not None:
            self.thread_id = final.thread_id
        index = final.index
        held = self._held[index]
        events = []
        reason = final.finish_reason
        if held.holding:
            content, calls = read_output(held.text, self.plan)
            if calls:
                reason = "tool_calls"
                if content:
                    events.append(self._content(index, content, None))
                for k, call in enumerate(calls):
                    head = DeltaToolCall(
                        index=k,
                        id=call.id,
                        type="function",
                        function=DeltaFunction(name=call.name, arguments=""),
                    )
                    rest = DeltaToolCall(index=k, function=DeltaFunction(arguments=call.arguments))
                    for piece in (head, rest):
                        choice = ChunkChoice(index=index, delta=Delta(tool_calls=[piece]))
                        events.append(self._event([choice], self.no_usage))
            elif held.text:
                events.append(self._content(index, held.text, held.logprobs))
        choice = ChunkChoice(index=index, delta=Delta(), finish_reason=reason)
        events.append(self._event([choice], self.no_usage))
        return events

    def usage(self, usage: Usage) -> bytes:
        return self._event([], usage)


# -- text completions --------------------------------------------------------------------------


class CompletionLogprobs(msgspec.Struct, frozen=True, gc=False):
    """The completions API's logprobs: parallel lists, ``text_offset`` the character offset of
    each token in the choice's text."""

    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]]
    text_offset: list[int]


class CompletionChoice(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    index: int
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: str | None = None


class TextCompletion(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The answer to ``POST /v1/completions`` without ``stream``."""

    id: str
    object: str = "text_completion"
    created: int
    model: str
    system_fingerprint: None = None
    choices: list[CompletionChoice]
    usage: Usage


class CompletionChunk(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One event of a completions stream (the same ``text_completion`` object, in pieces)."""

    id: str
    object: str = "text_completion"
    created: int
    model: str
    system_fingerprint: None = None
    choices: list[CompletionChoice]
    usage: Usage | None | UnsetType = UNSET


class CompletionFormat:
    """``text_completion`` bodies and events; ``logprobs``: alternatives per token (``None``:
    no logprobs)."""

    def __init__(
        self,
        model: str,
        *,
        include_usage: bool = False,
        logprobs: int | None = None,
        n: int = 1,
        prompts: int = 1,
    ) -> None:
        self.id = f"cmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model
        self.no_usage = None if include_usage else UNSET
        self.top = logprobs
        self.n = n
        self.prompts = prompts
        self._offsets = [0] * n  # characters sent so far, per choice

    def _logprobs(self, tokens: Any, start: int) -> CompletionLogprobs | None:
        if self.top is None or tokens is None:  # not asked for, or the engine gave none
            return None
        offsets = []
        at = start
        for t in tokens:
            offsets.append(at)
            at += len(t.token)
        return CompletionLogprobs(
            tokens=[t.token for t in tokens],
            token_logprobs=[t.logprob for t in tokens],
            top_logprobs=[{a.token: a.logprob for a in t.top[: self.top]} for t in tokens],
            text_offset=offsets,
        )

    def body(self, finals: list[Final]) -> TextCompletion:
        choices = [
            CompletionChoice(
                index=f.index,
                text=f.text,
                logprobs=self._logprobs(f.logprobs, 0),
                finish_reason=f.finish_reason,
            )
            for f in finals
        ]
        return TextCompletion(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=choices,
            usage=total_usage(finals, self.prompts),
        )

    def _event(self, choices: list[CompletionChoice], usage: Usage | None | UnsetType) -> bytes:
        chunk = CompletionChunk(
            id=self.id, created=self.created, model=self.model, choices=choices, usage=usage
        )
        return sse.event(chunk)

    def start(self) -> list[bytes]:
        return []

    def piece(self, piece: Piece) -> bytes | None:
        if not piece.text:
            return None
        start = self._offsets[piece.index]
        self._offsets[piece.index] = start + len(piece.text)
        choice = CompletionChoice(
            index=piece.index, text=piece.text, logprobs=self._logprobs(piece.logprobs, start)
        )
        return self._event([choice], self.no_usage)

    def finish(self, final: Final) -> list[bytes]:
        choice = CompletionChoice(index=final.index, text="", finish_reason=final.finish_reason)
        return [self._event([choice], self.no_usage)]

    def usage(self, usage: Usage) -> bytes:
        return self._event([], usage)

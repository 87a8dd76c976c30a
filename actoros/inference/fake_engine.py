"""``FakeEngine``: deterministic text at a configurable pace, no model.

For fast tests of the inference actor and for benchmarks of the runtime around an engine. It
behaves like a continuous-batching engine at the interface: concurrent requests advance
together, one token per ``token_delay`` each; it honours ``max_tokens``, ``stop`` strings,
``ignore_eos`` and ``abort``, counts prompt tokens by whitespace, and can be killed
(``kill()``) to exercise engine-death handling. It is never the default engine when a model
is present.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

from .engine import EngineDead, EngineOutput
from .messages import FinishReason, Generate

WORDS = (
    "the",
    "actor",
    "system",
    "sends",
    "a",
    "message",
    "to",
    "every",
    "agent",
    "and",
    "each",
    "one",
    "replies",
    "with",
    "its",
    "answer",
    "while",
    "supervisors",
    "restart",
    "what",
    "fails",
    "so",
    "nothing",
    "is",
    "lost",
    "Paris",
    "batch",
    "token",
    "model",
    "thread",
)


def render_chat(gen: Generate) -> str:
    """A plain chat layout for the fake engine (real engines use the model's template)."""
    if gen.prompt is not None:
        return gen.prompt
    assert gen.messages is not None
    turns = [f"<|{m.role}|> {m.content}" for m in gen.messages]
    return "\n".join(turns) + "\n<|assistant|>"


class FakeEngine:
    """A stand-in engine for tests and runtime benchmarks (never the default for real runs)."""

    def __init__(
        self,
        *,
        token_delay: float = 0.0,
        start_delay: float = 0.0,
        max_model_len: int = 2048,
        max_num_seqs: int = 64,
        eos_after: tuple[int, int] = (8, 32),
        fail_start: bool = False,
    ) -> None:
        self.token_delay = token_delay
        self.start_delay = start_delay
        self.max_model_len = max_model_len
        self.max_num_seqs = max_num_seqs
        self.eos_after = eos_after
        self.fail_start = fail_start
        self.started = False
        self.dead = False
        self.shutdowns = 0
        # request ids in the order they started (the first 10,000: a bound for long benchmarks)
        self.generated: list[str] = []
        self._active: dict[str, asyncio.Event] = {}  # request id -> aborted flag

    async def start(self) -> None:
        if self.start_delay:
            await asyncio.sleep(self.start_delay)
        if self.fail_start:
            raise RuntimeError("fake engine configured to fail at start")
        self.started = True

    async def shutdown(self) -> None:
        self.shutdowns += 1
        self.started = False
        for aborted in self._active.values():
            aborted.set()

    @property
    def alive(self) -> bool:
        """Not killed (as ``VLLMEngine.alive``: its processes are running)."""
        return not self.dead

    def kill(self) -> None:
        """Simulate the engine process dying: every request and later call fails."""
        self.dead = True
        for aborted in self._active.values():
            aborted.set()

    def render(self, gen: Generate) -> tuple[str, int]:
        if self.dead:
            raise EngineDead("fake engine was killed")
        text = render_chat(gen)
        return text, len(text.split())

    async def abort(self, request_id: str) -> None:
        if self.dead:
            raise EngineDead("fake engine was killed")
        aborted = self._active.get(request_id)
        if aborted is not None:
            aborted.set()

    def num_unfinished(self) -> int:
        return len(self._active)

    async def generate(
        self, request_id: str, prompt: Any, gen: Generate
    ) -> AsyncIterator[EngineOutput]:
        if self.dead:
            raise EngineDead("fake engine was killed")
        if not self.started:
            raise RuntimeError("fake engine used before start()")
        prompt_tokens = len(str(prompt).split())
        digest = hashlib.sha256(f"{prompt}|{gen.seed}".encode()).digest()
        low, high = self.eos_after
        eos_at = low + digest[0] % max(1, high - low + 1)
        aborted = asyncio.Event()
        self._active[request_id] = aborted
        if len(self.generated) < 10_000:
            self.generated.append(request_id)
        # like vLLM, hold back text that may be the start of a stop string, so a stop string
        # spanning tokens is left out whole
        holdback = max((len(stop) for stop in gen.stop), default=1) - 1
        text = ""
        sent = 0  # text[:sent] has been yielded
        try:
            for i in range(gen.max_tokens):
                if self.token_delay:
                    await asyncio.sleep(self.token_delay)
                else:
                    await asyncio.sleep(0)
                if self.dead:
                    raise EngineDead("fake engine was killed mid-generation")
                if aborted.is_set():
                    yield EngineOutput("", 0, True, "abort", prompt_tokens)
                    return
                text += WORDS[(digest[i % len(digest)] + i) % len(WORDS)] + " "
                cuts = [cut for cut in (text.find(stop, sent) for stop in gen.stop) if cut >= 0]
                if cuts:
                    yield EngineOutput(text[sent : min(cuts)], 1, True, "stop", prompt_tokens)
                    return
                last = i + 1 == gen.max_tokens
                if last or (not gen.ignore_eos and i + 1 >= eos_at):
                    reason: FinishReason = "length" if last else "stop"
                    yield EngineOutput(text[sent:], 1, True, reason, prompt_tokens)
                    return
                end = max(sent, len(text) - holdback)
                yield EngineOutput(text[sent:end], 1, False, None, prompt_tokens)
                sent = end
        finally:
            self._active.pop(request_id, None)

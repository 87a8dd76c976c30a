"""``FakeEngine``: deterministic text at a configurable pace, no model.

For fast tests of the inference actor and for benchmarks of the runtime around an engine. It
behaves like a continuous-batching engine at the interface: concurrent requests advance
together, one token per ``token_delay`` each; it honours ``max_tokens``, ``stop`` strings,
``ignore_eos`` and ``abort``, counts prompt tokens by whitespace, and can be killed
(``kill()``) to exercise engine-death handling. It is never the default engine when a model
is present.

Constraints are honoured honestly: a constrained request's output is one document that meets
the constraint (``constraints.satisfy``: schema-valid JSON, a regex match, one of the
choices), chosen deterministically from the prompt and seed, streamed in pieces of a few
characters (one "token" each) and cut by ``max_tokens`` like a real engine's. What it cannot
generate for is an error reply (``ConstraintInvalid``), never an output that breaks the
constraint. ``logprobs`` are deterministic fake values: each token its own plus the asked
number of alternatives, as probabilities that sum to at most one.

``constraints`` switches what its start-up canary and constrained requests meet, for tests of
the fallbacks: ``"ok"`` (honoured), ``"unsupported"`` (the canary fails: constraints are off
and such requests fail with ``ConstraintsUnsupported``), ``"crash"`` (a constrained request,
the canary first, kills the engine).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

from .constraints import Unsatisfiable, satisfy
from .engine import CANARY_ID, ConstraintMemory, EngineDead, EngineOutput, probe_constraints
from .errors import ConstraintInvalid, ConstraintsUnsupported
from .messages import FinishReason, Generate, TokenLogprob, TopLogprob
from .tool_prompt import plain_messages

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
    if not gen.tools and not any(m.tool_calls for m in gen.messages):
        turns = [f"<|{m.role}|> {m.content}" for m in gen.messages]
    else:  # as a real engine renders tools for a template without them
        turns = [f"<|{m['role']}|> {m['content']}" for m in plain_messages(gen.messages, gen.tools)]
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
        constraints: Literal["ok", "unsupported", "crash"] = "ok",
        constraint_memory: ConstraintMemory | None = None,
    ) -> None:
        if constraints not in ("ok", "unsupported", "crash"):
            raise ValueError(
                "FakeEngine constraints must be 'ok', 'unsupported' or 'crash', "
                f"not {constraints!r}"
            )
        self.token_delay = token_delay
        self.start_delay = start_delay
        self.max_model_len = max_model_len
        self.max_num_seqs = max_num_seqs
        self.eos_after = eos_after
        self.fail_start = fail_start
        self.constraints = constraints
        self._memory = constraint_memory
        self.supports_constraints = False  # until the canary at start says otherwise
        self.constraints_reason: str | None = None
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
        self.supports_constraints = True  # the canary runs as a constrained request
        self.constraints_reason = await probe_constraints(self, self._memory, self._canary)
        self.supports_constraints = self.constraints_reason is None

    async def shutdown(self) -> None:
        self.shutdowns += 1
        self.started = False
        for aborted in self._active.values():
            aborted.set()

    async def _canary(self, gen: Generate) -> str:
        """The canary through this class's own ``render`` and ``generate``: a subclass that
        scripts or records requests (tests do) neither sees it nor spends a reply on it."""
        prompt, _ = FakeEngine.render(self, gen)
        outputs = FakeEngine.generate(self, CANARY_ID, prompt, gen)
        return "".join([out.text async for out in outputs])

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
        tokens = self._tokens(gen, digest)  # before the request counts: may refuse it
        aborted = asyncio.Event()
        # the constraint canary at start costs no time and is not counted among the requests
        canary = request_id == CANARY_ID
        if not canary:
            self._active[request_id] = aborted
            if len(self.generated) < 10_000:
                self.generated.append(request_id)
        # like vLLM, hold back text that may be the start of a stop string, so a stop string
        # spanning tokens is left out whole
        holdback = max((len(stop) for stop in gen.stop), default=1) - 1
        top = gen.logprobs
        text = ""
        sent = 0  # text[:sent] has been yielded
        try:
            for i, (token, eos) in enumerate(tokens):
                if self.token_delay and not canary:
                    await asyncio.sleep(self.token_delay)
                else:
                    await asyncio.sleep(0)
                if self.dead:
                    raise EngineDead("fake engine was killed mid-generation")
                if aborted.is_set():
                    yield EngineOutput("", 0, True, "abort", prompt_tokens)
                    return
                text += token
                lps = None if top is None else (_logprob(token, digest, i, top),)
                cuts = [cut for cut in (text.find(stop, sent) for stop in gen.stop) if cut >= 0]
                if cuts:
                    yield EngineOutput(text[sent : min(cuts)], 1, True, "stop", prompt_tokens, lps)
                    return
                last = i + 1 == gen.max_tokens
                if last or eos:
                    reason: FinishReason = "stop" if eos else "length"
                    yield EngineOutput(text[sent:], 1, True, reason, prompt_tokens, lps)
                    return
                end = max(sent, len(text) - holdback)
                yield EngineOutput(text[sent:end], 1, False, None, prompt_tokens, lps)
                sent = end
        finally:
            if not canary:
                self._active.pop(request_id, None)

    def _tokens(self, gen: Generate, digest: bytes) -> Iterator[tuple[str, bool]]:
        """The request's output tokens, each with whether the sequence ends after it (the
        caller stops at ``max_tokens``)."""
        if gen.constraint is None:
            low, high = self.eos_after
            eos_at = low + digest[0] % max(1, high - low + 1)
            return (
                (
                    WORDS[(digest[i % len(digest)] + i) % len(WORDS)] + " ",
                    not gen.ignore_eos and eos_at <= i + 1 < gen.max_tokens,
                )
                for i in range(gen.max_tokens)
            )
        if not self.supports_constraints:
            raise ConstraintsUnsupported(
                f"this engine cannot enforce output constraints ({self.constraints_reason}); "
                "send the request without a constraint"
            )
        if self.constraints == "crash":
            self.kill()
            raise EngineDead("fake engine configured to die on a constrained request")
        if self.constraints == "unsupported":
            raise ConstraintsUnsupported("fake engine configured without constraint support")
        try:
            document = satisfy(gen.constraint, random.Random(digest))
        except Unsatisfiable as exc:
            raise ConstraintInvalid(str(exc)) from None
        pieces = _PIECE.findall(document) or [document]
        # the grammar ends the output: eos right after the document (ignore_eos or not)
        return ((piece, i + 1 == len(pieces)) for i, piece in enumerate(pieces))


_PIECE = re.compile(r"\s*[^\s]{1,4}|\s+", re.DOTALL)
"""How a constrained output is cut into tokens: up to four characters after any whitespace."""


def _logprob(token: str, digest: bytes, i: int, top: int) -> TokenLogprob:
    """Deterministic fake log probabilities: the token is the likeliest (p in [0.55, 0.95]),
    then ``top - 1`` alternatives, each half as likely as the one before, inside what is left."""
    p = 0.55 + (digest[(i * 7) % len(digest)] % 41) / 100
    own = math.log(p)
    alternatives = [TopLogprob(token, own)]
    start = digest[i % len(digest)] + i
    words = (WORDS[(start + j) % len(WORDS)] + " " for j in range(len(WORDS)))
    others = [word for word in words if word != token][: top - 1]
    for j, word in enumerate(others, 1):
        alternatives.append(TopLogprob(word, math.log((1 - p) / 2**j)))
    return TokenLogprob(token, own, tuple(alternatives) if top else ())

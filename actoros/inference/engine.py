"""The engine protocol: the whole surface the inference actor uses, and nothing more.

This module knows no implementation (as httpx's ``_transports/base.py``): the engines are
``vllm`` (``vllm_engine.py``, the only module that imports vLLM) and ``fake``
(``fake_engine.py``: deterministic text at a configurable pace, for tests and for runtime
benchmarks), and ``engines.py`` is the one place that names them and picks one for a config.
Nothing outside ``inference`` knows which one runs.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import msgspec
import structlog

from .messages import Choice, FinishReason, Generate, TokenLogprob

log = structlog.get_logger("actoros.inference")


class EngineDead(Exception):
    """The engine is gone for good (its process died); build a new one."""


class EngineOutput(msgspec.Struct, frozen=True):
    """One step of one request: new text, how many tokens it holds, whether it is the last."""

    text: str
    token_count: int
    finished: bool = False
    finish_reason: FinishReason | None = None  # set when finished
    prompt_tokens: int = 0  # filled on the last output when the engine knows it
    logprobs: tuple[TokenLogprob, ...] | None = None  # one per new token, when asked for
    # seconds from the engine's receipt of the request to its first token, on the last output
    # when the engine measured it (vLLM: a request not streamed has one output, at the end)
    ttft: float | None = None


class Engine(Protocol):
    """What an engine offers the inference actor.

    ``start`` may take long (vLLM: tens of seconds): the actor runs it in a background task and
    queues requests meanwhile. ``generate`` yields outputs as tokens arrive; ``abort`` ends a
    request early (its stream then finishes with ``finish_reason="abort"``). Any call may raise
    ``EngineDead``.

    ``supports_constraints`` (valid after ``start``): whether the engine enforces
    ``Generate.constraint``; when it is false, a request with a constraint fails with
    ``ConstraintsUnsupported`` (the engine probes it at start: ``probe_constraints``).
    """

    max_model_len: int
    max_num_seqs: int
    supports_constraints: bool

    async def start(self) -> None: ...

    async def shutdown(self) -> None: ...

    def render(self, gen: Generate) -> tuple[Any, int]:
        """The engine prompt for ``gen`` (chat template applied) and its length in tokens."""
        ...

    def generate(
        self, request_id: str, prompt: Any, gen: Generate
    ) -> AsyncIterator[EngineOutput]: ...

    async def abort(self, request_id: str) -> None: ...

    def num_unfinished(self) -> int:
        """Requests the engine still holds (admitted and not finished or aborted)."""
        ...


CANARY = Generate(
    prompt="Is the sky blue? Answer yes or no. Answer:",
    max_tokens=4,
    constraint=Choice(("yes", "no")),
)
"""The engine's first request: tiny and constrained, to learn whether constraints work."""

CANARY_ID = "actoros-constraint-canary"


class ConstraintMemory:
    """What the engines built for one inference actor learned about constraints, kept across
    the actor's restarts (``engine_factory`` holds one): an engine that died from its canary
    must not kill the next one the same way."""

    def __init__(self) -> None:
        self.disabled: str | None = None  # why constraints are off for every later engine


async def probe_constraints(
    engine: Engine,
    memory: ConstraintMemory | None,
    run: Callable[[Generate], Awaitable[str]] | None = None,
) -> str | None:
    """Run the canary on a started ``engine``: ``None`` when constraints work, else the reason
    they do not (logged once as ``inference.constraints_unsupported``). An engine the canary
    killed raises ``EngineDead`` after ``memory`` notes it, so supervision restarts a fresh
    engine that skips the canary and serves without constraints. ``run``: how to send the
    canary and get its text (default: the engine's ``render`` and ``generate``)."""
    if memory is not None and memory.disabled is not None:
        reason: str | None = memory.disabled
    else:
        try:
            text = await (run or functools.partial(_run_canary, engine))(CANARY)
        except EngineDead as exc:
            reason = f"the constraint canary killed the engine ({exc})"
            if memory is not None:
                memory.disabled = reason
            log.error("inference.constraints_unsupported", reason=reason)
            raise
        except Exception as exc:
            reason = f"the constraint canary failed: {exc}"
        else:
            assert isinstance(CANARY.constraint, Choice)
            options = CANARY.constraint.options
            ok = text in options
            reason = (
                None if ok else f"the constraint canary answered {text!r}, not one of {options}"
            )
    if reason is not None:
        log.warning("inference.constraints_unsupported", reason=reason)
    return reason


async def _run_canary(engine: Engine, gen: Generate) -> str:
    prompt, _ = engine.render(gen)
    return "".join([out.text async for out in engine.generate(CANARY_ID, prompt, gen)])

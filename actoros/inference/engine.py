"""The engine protocol: the whole surface the inference actor uses, and nothing more.

This module knows no implementation (as httpx's ``_transports/base.py``): the engines are
``vllm`` (``vllm_engine.py``, the only module that imports vLLM) and ``fake``
(``fake_engine.py``: deterministic text at a configurable pace, for tests and for runtime
benchmarks), and ``engines.py`` is the one place that names them and picks one for a config.
Nothing outside ``inference`` knows which one runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

import msgspec

from .messages import FinishReason, Generate


class EngineDead(Exception):
    """The engine is gone for good (its process died); build a new one."""


class EngineOutput(msgspec.Struct, frozen=True):
    """One step of one request: new text, how many tokens it holds, whether it is the last."""

    text: str
    token_count: int
    finished: bool = False
    finish_reason: FinishReason | None = None  # set when finished
    prompt_tokens: int = 0  # filled on the last output when the engine knows it


class Engine(Protocol):
    """What an engine offers the inference actor.

    ``start`` may take long (vLLM: tens of seconds): the actor runs it in a background task and
    queues requests meanwhile. ``generate`` yields outputs as tokens arrive; ``abort`` ends a
    request early (its stream then finishes with ``finish_reason="abort"``). Any call may raise
    ``EngineDead``.
    """

    max_model_len: int
    max_num_seqs: int

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

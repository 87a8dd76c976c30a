"""Raw vLLM, with nothing of actoros in between: the baseline of ``actoros bench inference``.

``DirectLLM.start`` builds one ``AsyncLLM`` the way vLLM's documentation does (with the
settings ``VLLMEngine`` uses); ``timed`` streams one request from it and returns when each
chunk arrived. The benchmark measures the inference actor against exactly this, on the same
``AsyncLLM`` instance (``llm``), which it hands to ``VLLMEngine.wrap`` for the actor path.

This module and ``vllm_engine.py`` are the only ones that import vLLM (see the layering test);
importing it without vLLM installed raises ``ModuleNotFoundError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from time import perf_counter
from typing import Any

import vllm
from vllm import SamplingParams
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.inputs import TokensPrompt
from vllm.platforms import current_platform
from vllm.sampling_params import RequestOutputKind
from vllm.v1.engine.async_llm import AsyncLLM

from .processes import EngineThread
from .vllm_engine import CPU_KV_CACHE_GIB

__all__ = ["DirectLLM", "Timed", "vllm_version"]

# (start, chunk arrival times, end, output tokens, prompt tokens); perf_counter() seconds
Timed = tuple[float, list[float], float, int, int]


def vllm_version() -> str:
    return str(vllm.__version__)


class DirectLLM:
    """One ``AsyncLLM`` and the greedy, ``ignore_eos`` sampling the benchmark uses."""

    def __init__(
        self, llm: AsyncLLM, settings: dict[str, Any], thread: EngineThread[AsyncLLM]
    ) -> None:
        self.llm: AsyncLLM | None = llm
        self.settings = settings  # the engine arguments it was built with
        self._thread = thread  # built it; parent of its processes until shutdown()

    @classmethod
    async def start(
        cls,
        model: str,
        *,
        max_model_len: int,
        max_num_seqs: int,
        enforce_eager: bool = True,
        enable_prefix_caching: bool = False,
        seed: int = 0,
        **engine_args: Any,
    ) -> DirectLLM:
        """Build the engine off the event loop (it blocks for tens of seconds on CPU), in an
        ``EngineThread`` as ``VLLMEngine`` does, so its processes die with this one.

        The engine binds to the running loop: use it from this loop only. Prefix caching is
        off by default so that every request pays for its prefill, as with distinct prompts.
        On CPU the KV cache gets ``VLLMEngine``'s fixed size, not a share of the machine.
        """
        settings: dict[str, Any] = {
            "model": model,
            "max_model_len": max_model_len,
            "max_num_seqs": max_num_seqs,
            "enforce_eager": enforce_eager,
            "enable_prefix_caching": enable_prefix_caching,
            "seed": seed,
        }
        if current_platform.is_cpu():
            settings["kv_cache_memory_bytes"] = int(CPU_KV_CACHE_GIB * (1 << 30))
        settings.update(engine_args)
        args = AsyncEngineArgs(**settings)
        thread: EngineThread[AsyncLLM] = EngineThread("actoros-vllm-direct")
        llm = await thread.start(lambda: AsyncLLM.from_engine_args(args), AsyncLLM.shutdown)
        return cls(llm, settings, thread)

    def _engine(self) -> AsyncLLM:
        if self.llm is None:
            raise RuntimeError("DirectLLM used after shutdown()")
        return self.llm

    def token_ids(self, text: str) -> list[int]:
        """``text`` tokenized as vLLM does for a plain prompt (special tokens included)."""
        return list(self._engine().get_tokenizer().encode(text))

    @staticmethod
    def sampling(
        max_tokens: int, *, temperature: float = 0.0, ignore_eos: bool = True, stream: bool = True
    ) -> Any:
        """Greedy sampling by default. ``stream``: each output carries the new tokens
        (``DELTA``); else vLLM sends one output, the final one (``FINAL_ONLY``), as
        ``VLLMEngine`` asks for a request that is not streamed.

        For one request only: like ``VLLMEngine``'s (and ``vllm serve``'s) its params are made
        per request with ``skip_clone=True``, so vLLM takes them without the deep copy (~20 µs)
        it makes of params a caller may share between requests."""
        return SamplingParams(
            max_tokens=max_tokens,
            temperature=temperature,
            ignore_eos=ignore_eos,
            output_kind=RequestOutputKind.DELTA if stream else RequestOutputKind.FINAL_ONLY,
            skip_clone=True,
        )

    async def timed(self, request_id: str, prompt: str | Sequence[int], params: Any) -> Timed:
        """Run one request; stamp each output that carries new tokens (with ``FINAL_ONLY``
        sampling that is the one final output, holding every token). ``prompt``: text, which
        vLLM tokenizes (as ``vllm serve`` and a caller of ``AsyncLLM.generate`` with text
        have it do), or token ids, which it takes as they are."""
        llm = self._engine()
        engine_prompt: str | TokensPrompt = (
            prompt if isinstance(prompt, str) else TokensPrompt(prompt_token_ids=list(prompt))
        )
        stamps: list[float] = []
        tokens = 0
        prompt_tokens = 0
        start = perf_counter()
        async for out in llm.generate(engine_prompt, params, request_id):
            new = len(out.outputs[0].token_ids)
            if new:
                stamps.append(perf_counter())
                tokens += new
            prompt_tokens = len(out.prompt_token_ids or ())
        end = perf_counter()
        return start, stamps, end, tokens, prompt_tokens

    async def shutdown(self) -> None:
        """Stop the engine's processes; the engine's thread drops the last reference, which
        avoids vLLM's noisy ``TypeError`` at interpreter exit."""
        self.llm = None
        await self._thread.stop()

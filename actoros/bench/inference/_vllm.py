"""The vLLM backend of ``actoros bench inference``: one ``AsyncLLM``, two ways in.

Importing this module imports vLLM (through ``actoros.inference.vllm_direct``): the caller
turns a ``ModuleNotFoundError`` into "install vLLM or use --engine fake".
"""

from __future__ import annotations

import random
import shutil
import tempfile
from pathlib import Path
from time import perf_counter
from typing import Any

from actoros.inference import models
from actoros.inference.engine import Engine
from actoros.inference.messages import Generate
from actoros.inference.vllm_direct import DirectLLM, vllm_version
from actoros.inference.vllm_engine import VLLMEngine

from .._common import BenchError
from ._backends import PROMPT_SEED, fit_prompt, random_prompt
from ._paths import Prompt, RequestSample
from .result import EngineInfo, Workload

TINY_MODEL = "tiny random Llama (actoros.inference.tiny_model: 2 layers, hidden 128)"


class VLLMBackend:
    """``--quick``: the tiny random Llama, written to a temporary folder; else a pulled model
    (default: the CPU default model) or a model folder."""

    def __init__(self, workload: Workload, *, quick: bool, model: str | None) -> None:
        self.workload = workload
        self.quick = quick
        self.model = model
        self.model_label = ""
        self.start_seconds = 0.0
        self._tmp: str | None = None
        self._direct: DirectLLM | None = None
        self.engine: Engine = None  # type: ignore[assignment]  # set by start()
        self.prompt = ""
        self.gen: Generate = None  # type: ignore[assignment]  # set by start()
        self._rng = random.Random(PROMPT_SEED)
        self._vocabulary: list[int] = []

    def _model_folder(self) -> Path:
        if self.model is None and self.quick:
            from actoros.inference.tiny_model import make_tiny_llama

            self._tmp = tempfile.mkdtemp(prefix="actoros-bench-tiny-")
            self.model_label = TINY_MODEL
            return make_tiny_llama(self._tmp)
        name = self.model or models.DEFAULT_MODEL
        self.model_label = name
        try:
            return models.resolve(name)
        except models.ModelNotFound as exc:
            raise BenchError(str(exc)) from exc

    async def start(self) -> None:
        w = self.workload
        folder = self._model_folder()
        began = perf_counter()
        self._direct = await DirectLLM.start(
            str(folder),
            max_model_len=w.prompt_tokens + w.output_tokens + 64,
            max_num_seqs=max(64, *w.concurrency),
        )
        self.start_seconds = perf_counter() - began
        # the product's engine over the same AsyncLLM; the actor starts it again (a no-op
        # then), and its shutdown leaves the AsyncLLM to us
        self.engine = VLLMEngine.wrap(self._direct.llm)
        await self.engine.start()

        def count(text: str) -> int:
            return self.engine.render(Generate(prompt=text, max_tokens=1))[1]

        self.prompt, _ = fit_prompt(count, w.prompt_tokens)
        tokenizer = self._direct.llm.get_tokenizer()
        special = set(tokenizer.all_special_ids)
        self._vocabulary = [i for i in range(len(tokenizer)) if i not in special]
        self.gen = Generate(
            prompt=self.prompt,
            max_tokens=w.output_tokens,
            temperature=w.temperature,
            ignore_eos=w.ignore_eos,
            stream=True,
        )

    async def close(self) -> None:
        if self._direct is not None:
            await self._direct.shutdown()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def info(self) -> EngineInfo:
        settings = {
            k: v
            for k, v in (self._direct.settings if self._direct else {}).items()
            if isinstance(v, str | int | float | bool) and k != "model"
        }
        settings["actor_engine"] = "VLLMEngine.wrap(the same AsyncLLM)"
        return EngineInfo(
            kind="vllm",
            model=self.model_label,
            version=vllm_version(),
            settings=settings,
            start_seconds=self.start_seconds,
        )

    def notes(self) -> list[str]:
        notes = [
            "both paths send each request's prompt as text, tokenized once per request: "
            "direct: AsyncLLM.generate(text) (vLLM's input processor tokenizes it, as in "
            "`vllm serve`); actor: Generate(prompt=text), which VLLMEngine.render tokenizes "
            "(and hands vLLM the ids); a random prompt tokenizes far slower than prose (no "
            "word of it is in the tokenizer's cache: ~150 us against ~20 us for 64 tokens)",
        ]
        if self.quick and self.model is None:
            notes.append(
                "quick run: a tiny random model makes each engine step ~1 ms, so the Python "
                "side (output processing, the actor's messages) weighs far more than with a "
                "real model"
            )
        return notes

    def _sampling(self) -> Any:
        """Fresh params for one direct request (they are not copied by vLLM, see
        ``DirectLLM.sampling``), as the actor path's engine makes them per request."""
        w = self.workload
        return DirectLLM.sampling(
            w.output_tokens, temperature=w.temperature, ignore_eos=w.ignore_eos
        )

    def prompts(self, count: int, distinct: bool) -> list[Prompt]:
        assert self._direct is not None
        if not distinct:
            return [Prompt(self.prompt)] * count
        tokenizer = self._direct.llm.get_tokenizer()
        target = self.workload.prompt_tokens
        return [
            random_prompt(
                self._rng, self._vocabulary, target, tokenizer.decode, self._direct.token_ids
            )
            for _ in range(count)
        ]

    async def direct(self, request_id: str, prompt: Prompt) -> RequestSample:
        assert self._direct is not None
        start, stamps, end, tokens, prompt_tokens = await self._direct.timed(
            request_id, prompt.text, self._sampling()
        )
        first = stamps[0] if stamps else float("nan")
        return RequestSample(start, first, end, stamps, tokens, prompt_tokens)

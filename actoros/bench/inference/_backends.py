"""The engine ``actoros bench inference`` measures, built once and shared by every path.

A backend owns one engine for the whole run: ``direct(request_id)`` streams one request of
the workload straight from it (no actoros code in between), and ``engine`` is the same
instance in the shape of ``actoros.inference.engine.Engine``, for the inference actor.

- ``FakeBackend``: ``FakeEngine`` at a fixed pace per token, for machines without vLLM (and the
  smoke test). Its numbers measure the runtime around an engine, not an engine.
- ``VLLMBackend``: one vLLM ``AsyncLLM`` (``actoros.inference.vllm_direct``) streamed from
  directly, and ``VLLMEngine`` — the product's engine — serving the actor from that same
  ``AsyncLLM``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from time import perf_counter

from actoros.inference.engine import Engine
from actoros.inference.fake_engine import FakeEngine
from actoros.inference.messages import Generate

from ._paths import Prompt, RequestSample
from .result import EngineInfo, Workload

FAKE_TOKEN_DELAY = 0.005  # seconds per token per request: a small model's pace on a GPU
PROMPT_WORD = "hello"  # the shared prompt is this word repeated (plus a tail fitted to length)
PROMPT_SEED = 0  # distinct prompts are drawn from random.Random(PROMPT_SEED): the same each run
FAKE_WORDS = tuple(f"w{i}" for i in range(1000))  # the fake engine's "vocabulary"


class FakeBackend:
    """``FakeEngine`` for both paths: direct = ``FakeEngine.generate`` from the bench's tasks."""

    def __init__(self, workload: Workload, *, token_delay: float = FAKE_TOKEN_DELAY) -> None:
        self.token_delay = token_delay
        self._fake = FakeEngine(
            token_delay=token_delay,
            max_num_seqs=max(64, *workload.concurrency),
            max_model_len=workload.prompt_tokens + workload.output_tokens + 64,
        )
        self.engine: Engine = self._fake
        # the fake engine counts whitespace-separated words as tokens
        self.prompt = " ".join([PROMPT_WORD] * workload.prompt_tokens)
        self.gen = Generate(
            prompt=self.prompt,
            max_tokens=workload.output_tokens,
            temperature=workload.temperature,
            ignore_eos=workload.ignore_eos,
            stream=True,
        )
        self.start_seconds = 0.0
        self._tokens = workload.prompt_tokens
        self._rng = random.Random(PROMPT_SEED)

    def prompts(self, count: int, distinct: bool) -> list[Prompt]:
        if not distinct:
            return [Prompt(self.prompt)] * count
        k = self._tokens
        return [Prompt(" ".join(self._rng.choices(FAKE_WORDS, k=k))) for _ in range(count)]

    async def start(self) -> None:
        began = perf_counter()
        await self._fake.start()
        self.start_seconds = perf_counter() - began

    async def close(self) -> None:
        await self._fake.shutdown()

    def info(self) -> EngineInfo:
        return EngineInfo(
            kind="fake",
            model="",
            version="",
            settings={"token_delay_s": self.token_delay, "max_num_seqs": self._fake.max_num_seqs},
            start_seconds=self.start_seconds,
        )

    def notes(self) -> list[str]:
        return [
            f"fake engine: {self.token_delay * 1e3:g} ms per token per request, no batching "
            "limit; the numbers measure actoros around an engine, not an engine"
        ]

    async def direct(self, request_id: str, prompt: Prompt) -> RequestSample:
        stamps: list[float] = []
        tokens = 0
        prompt_tokens = 0
        start = perf_counter()
        async for out in self._fake.generate(request_id, prompt.text, self.gen):
            if out.token_count:
                stamps.append(perf_counter())
                tokens += out.token_count
            if out.finished:
                prompt_tokens = out.prompt_tokens
        end = perf_counter()
        return RequestSample(
            start, stamps[0] if stamps else float("nan"), end, stamps, tokens, prompt_tokens
        )


def fit_prompt(
    count_tokens: Callable[[str], int], target: int, word: str = PROMPT_WORD, filler: str = "a"
) -> tuple[str, int]:
    """A prompt of repeated ``word``s, topped up with ``filler``s, of ``target`` tokens when the
    tokenizer allows (else the longest below it), and its length.

    ``count_tokens(text) -> int`` is the engine's own count (special tokens included), so the
    measured prompt length is what the engine sees.
    """

    def words(n: int) -> str:
        return " ".join([word] * n)

    lo, hi = 1, 2
    while count_tokens(words(hi)) <= target:
        hi *= 2
    while lo < hi:  # the largest n whose n words fit
        mid = (lo + hi + 1) // 2
        if count_tokens(words(mid)) <= target:
            lo = mid
        else:
            hi = mid - 1
    text = words(lo)
    count = count_tokens(text)
    while count < target:  # a word may be several tokens: top up with short ones
        longer = f"{text} {filler}"
        longer_count = count_tokens(longer)
        if longer_count > target or longer_count <= count:
            break
        text, count = longer, longer_count
    return text, count


def random_prompt(
    rng: random.Random,
    vocabulary: list[int],
    target: int,
    decode: Callable[[list[int]], str],
    encode: Callable[[str], list[int]],
) -> Prompt:
    """A prompt of random tokens (as ``vllm bench serve``'s random dataset draws them): text
    decoded from ``target`` random ids, shortened until the engine's own ``encode`` of it
    (special tokens included) is at most ``target`` tokens."""
    drawn = rng.choices(vocabulary, k=target)
    while True:
        text = decode(drawn)
        ids = encode(text)
        if len(ids) <= target or len(drawn) <= 1:
            return Prompt(text)
        # shrink in proportion (a token may decode to text that encodes as several)
        drawn = drawn[: max(1, min(len(drawn) - 1, len(drawn) * target // len(ids)))]

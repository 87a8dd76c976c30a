"""The result of ``actoros bench inference`` as data: what goes into ``inference.json``."""

from __future__ import annotations

from typing import Literal

import msgspec

from .._common import EngineKind, RepeatedResult, Target

PATHS = ("direct", "actor")  # measured side by side at every concurrency
PromptSeries = Literal["distinct", "shared"]
"""``distinct``: every request its own random prompt (real traffic; the default series, whose
metric keys are unprefixed); ``shared``: one prompt for every request (keys ``shared_...``)."""
REFERENCE_CONCURRENCY = 32  # the headline throughput and batching speedup are read here

TARGETS: dict[str, Target] = {
    "actor_vs_direct": Target(">=", 0.97),  # the worst concurrency level
    "ttft_overhead_ms_p50": Target("<=", 2.0),
    # this process's CPU time per output token, actor / direct, the worst level
    "actor_cpu_vs_direct": Target("<=", 1.1),
}


def level_targets(concurrency: tuple[int, ...]) -> dict[str, Target]:
    """The global targets plus ``actor_vs_direct_c<N>`` and ``actor_cpu_vs_direct_c<N>`` for
    every concurrency measured (the distinct-prompt series)."""
    per_level = {f"actor_vs_direct_c{c}": TARGETS["actor_vs_direct"] for c in concurrency}
    cpu = {f"actor_cpu_vs_direct_c{c}": TARGETS["actor_cpu_vs_direct"] for c in concurrency}
    return {**TARGETS, **per_level, **cpu}


class Workload(msgspec.Struct, frozen=True, kw_only=True):
    """What every path runs: prompts of one length (``prompts``: the series, each request its
    own random prompt or one shared prompt), the same output length, greedy, ``ignore_eos``."""

    prompt_tokens: int  # the prompt's target length in tokens (measured ones are in metrics)
    output_tokens: int  # max_tokens, always reached (ignore_eos)
    concurrency: tuple[int, ...]  # the sweep
    waves: int  # requests per level = max(min_requests, concurrency * waves)
    min_requests: int
    sequential_requests: int  # requests of the one-at-a-time loop, per repeat
    warmup_requests: int
    temperature: float = 0.0
    ignore_eos: bool = True
    prompts: tuple[PromptSeries, ...] = ("distinct", "shared")

    def requests(self, concurrency: int) -> int:
        return max(self.min_requests, concurrency * self.waves)


class EngineInfo(msgspec.Struct, frozen=True, kw_only=True):
    kind: EngineKind
    model: str  # name or folder; "" for the fake engine
    version: str  # vllm's version; "" for the fake engine
    settings: dict[str, str | int | float | bool]  # how the shared engine was built
    start_seconds: float


class InferenceResult(RepeatedResult, frozen=True, kw_only=True):
    """Metrics are flat, medians over repeats (their keys: see benchmarks/README.md)."""

    benchmark: str = "inference"
    engine: EngineInfo
    workload: Workload

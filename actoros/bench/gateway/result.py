"""The result of ``actoros bench gateway`` as data: what goes into ``gateway.json``.

Metric keys are flat: ``<series>_<stat>_c<N>`` for a series at concurrency N, where a series
is ``<engine>_<path>_<mode>`` — engine ``fake`` or ``vllm``; path ``agent`` (through the
gateway to an LLM agent), ``raw`` (through the gateway straight to the inference actor) or
``actor`` (the inference actor asked in-process, no HTTP: the reference); mode ``stream``
(SSE) or ``once`` (one JSON response); a ``_shared`` suffix: every request sends the same
prompt (else each has its own, a random tag before the task). Stats are those of
``inference._paths.summarize`` (``req_per_s``, ``tok_per_s``, ``ttft_ms_p50``, ``e2el_ms_p50``,
``e2el_ms_p99``, ``cpu_us_per_tok``: this process's CPU time per output token...) plus
``failed`` and ``client_cpu`` (the load generator's CPU seconds per wall second).
"""

from __future__ import annotations

from typing import Any

import msgspec

from .._common import RepeatedResult, Target, median

GATEWAY_VS_ACTOR = Target(">=", 0.95)  # the gateway's output tokens/s over the actor's alone


class Workload(msgspec.Struct, frozen=True, kw_only=True):
    """What one engine's sweep sends: the same user message and sampling on every path."""

    concurrency: tuple[int, ...]
    series: tuple[str, ...]  # "<path>_<mode>" measured at every level, e.g. "raw_stream"
    waves: int  # requests per level = max(min_requests, concurrency * waves)
    min_requests: int
    prompt: str  # the user message (its measured tokens, with the template, are metrics)
    output_tokens: int  # max_tokens, which the answer to ``prompt`` reaches
    token_delay_s: float = 0.0  # the fake engine's pace per token and request

    def requests(self, concurrency: int) -> int:
        return max(self.min_requests, concurrency * self.waves)


def ratio_key(engine: str, concurrency: int | None = None) -> str:
    """``vllm_gateway_vs_actor_c16``, or without a level the median over levels."""
    key = f"{engine}_gateway_vs_actor"
    return key if concurrency is None else f"{key}_c{concurrency}"


def ratio_targets(concurrency: tuple[int, ...]) -> dict[str, Target]:
    """Gateway / actor output tokens/s on the real model: at each level, and their median."""
    levels = {ratio_key("vllm", c): GATEWAY_VS_ACTOR for c in concurrency}
    return {ratio_key("vllm"): GATEWAY_VS_ACTOR, **levels}


def medians(raw: dict[str, list[float]], workloads: dict[str, Workload]) -> dict[str, float]:
    """Every raw series' median over repeats, and per engine the median of the per-level
    gateway / actor ratios (each already a median of per-repeat ratios)."""
    metrics = {key: median(samples) for key, samples in raw.items() if samples}
    for engine, workload in workloads.items():
        ratios = [
            metrics[ratio_key(engine, c)]
            for c in workload.concurrency
            if ratio_key(engine, c) in metrics
        ]
        if ratios:
            metrics[ratio_key(engine)] = median(ratios)
    return metrics


class EngineInfo(msgspec.Struct, frozen=True, kw_only=True):
    kind: str  # "fake" or "vllm"
    model: str  # the raw model id the gateway lists (the ``model`` of raw-path requests)
    agent: str  # the agent of the agent path
    version: str  # vLLM's version ("" for the fake engine)
    settings: dict[str, Any]  # the engine's arguments from the config
    start_seconds: float  # start_system until the engine is ready


class GatewayResult(RepeatedResult, frozen=True, kw_only=True):
    """Metrics are flat, medians over repeats (their keys: see the module docstring)."""

    benchmark: str = "gateway"
    client: dict[str, Any]  # the load generator: library, version, process, pool
    engines: dict[str, EngineInfo]  # the engines measured, by kind
    workloads: dict[str, Workload]  # by engine kind

"""The result of ``actoros bench agents`` as data: what goes into ``agents.json``."""

from __future__ import annotations

from typing import Any

import msgspec

from .._common import RepeatedResult


class Sizes(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """How much work each workload does. ``prefix_*``: the prefix-caching series (``None`` in
    results made before it existed, and then left out when encoded: an old result reads back
    as it was written)."""

    rule_agents: int
    rule_groups: int  # supervisors the rule agents are spread over
    rule_tasks: int
    rule_concurrency: int
    llm_agents: int
    llm_fake_tasks: int
    llm_concurrency: int
    fake_token_delay_s: float
    llm_max_tokens: int
    vllm_tasks: int
    vllm_max_tokens: int
    prefix_agents: int | None = None  # the prefix-caching series (``_prefix.py``)
    prefix_rounds: int | None = None  # timed rounds per mode, alternated
    prefix_max_tokens: int | None = None


class AgentsResult(RepeatedResult, frozen=True, kw_only=True):
    """No targets. ``metrics`` of the rule and fake-LLM workloads are those of the median of
    ``repeats`` timed batches (``raw``: every batch's); the vLLM workload runs one batch; the
    prefix-caching series (``prefix_*``) alternates ``sizes.prefix_rounds`` rounds per mode."""

    benchmark: str = "agents"
    engines: list[str]  # workloads run: "rule", "fake", "vllm"
    vllm_engine: dict[str, Any] = {}  # model, dtype, start seconds (when run)
    prefix_cache: dict[str, Any] = {}  # the prefix-caching series: its prompt sizes (when run)
    sizes: Sizes

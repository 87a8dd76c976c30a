"""``actoros bench agents``: agents processing a workload end to end, on the real parts.

Three workloads, each in its own ``ActorSystem`` (see ``_workloads.py``):

1. **rule**: 1,000 ``RuleAgent``s under supervisors; half the tasks call the ``calculator``
   tool through the tool service (permission-checked), half are answered by a rule;
2. **LLM, fake engine**: 32 ``LLMAgent``s with the thread store (SQLite) and the inference
   actor on ``FakeEngine`` with a small per-token delay: the runtime's cost per LLM turn;
3. **LLM, SmolLM2**: the same 32 agents on SmolLM2-135M-Instruct in CPU vLLM (dtype ``auto``:
   the model folder's bfloat16), few tasks with small ``max_tokens``. Skipped, with a note,
   under ``--quick`` or ``--engine fake``, or when vLLM or the model is missing;
4. **prefix cache, SmolLM2**: 32 LLM agents sharing a system prompt of over 512 tokens, on two
   engines side by side, vLLM's prefix caching on and off, rounds alternated: TTFT p50/p99,
   output tokens/s and the hit rate vLLM reports (``_prefix.py``). Run with the vLLM workload.

Each reports tasks/s (successful tasks over the batch's wall time) and the p50/p99 latency of
a task (ask → reply). Writes ``agents.json`` (an ``AgentsResult``), ``agents.md`` and
``agents.png`` to ``out`` and the table to stdout. vLLM starts worker processes: call ``main``
from a script with an ``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from time import perf_counter
from typing import Any

import msgspec

from actoros import ActorSystem, run
from actoros.core.system import loop_name

from .._common import (
    EngineKind,
    is_tiny,
    percentile,
    progress,
    run_header,
    running,
    uvloop_note,
    vllm_missing,
)
from ._prefix import PrefixSizes, prefix_series
from ._workloads import (
    Batch,
    drive,
    llm_task,
    rule_task,
    spawn_llm_agents,
    spawn_rule_agents,
    temp_state_dir,
)
from .report import chart, markdown
from .result import AgentsResult, Sizes

log = progress

FULL = Sizes(
    rule_agents=1000,
    rule_groups=10,
    rule_tasks=50_000,
    rule_concurrency=256,
    llm_agents=32,
    llm_fake_tasks=5_000,
    llm_concurrency=64,
    fake_token_delay_s=0.001,
    llm_max_tokens=32,
    vllm_tasks=192,
    vllm_max_tokens=32,
    prefix_agents=32,
    prefix_rounds=4,
    prefix_max_tokens=24,
)
QUICK = msgspec.structs.replace(FULL, rule_tasks=10_000, llm_fake_tasks=1_000)
TINY = Sizes(
    rule_agents=20,
    rule_groups=2,
    rule_tasks=100,
    rule_concurrency=16,
    llm_agents=4,
    llm_fake_tasks=16,
    llm_concurrency=8,
    fake_token_delay_s=0.0,
    llm_max_tokens=8,
    vllm_tasks=4,
    vllm_max_tokens=8,
    prefix_agents=4,
    prefix_rounds=2,
    prefix_max_tokens=4,
)
TASK_TIMEOUT = 60.0  # seconds per task; far above any latency measured here
REPEATS = 3  # timed batches of the rule and fake-LLM workloads; the median one is reported
PREFIX_KV_CACHE_GIB = 1.0  # each of the two engines: room for 32 prompts of ~1k tokens at once
VLLM_CONTEXT = 2048  # max_model_len for SmolLM2 (its context is 8k; prompts here are < 1k)


def _summarize(prefix: str, batch: Batch, metrics: dict[str, float]) -> None:
    metrics[f"{prefix}_tasks_per_s"] = batch.tasks_per_s
    metrics[f"{prefix}_latency_p50_ms"] = percentile(batch.latencies_ms, 50)
    metrics[f"{prefix}_latency_p99_ms"] = percentile(batch.latencies_ms, 99)
    metrics[f"{prefix}_failed"] = float(batch.failed)
    done = batch.tasks - batch.failed
    if prefix.startswith("llm"):
        metrics[f"{prefix}_steps_per_task"] = batch.steps / done if done else math.nan
    log.info(
        f"bench.{prefix}",
        tasks=batch.tasks,
        failed=batch.failed,
        seconds=round(batch.seconds, 2),
        tasks_per_s=round(batch.tasks_per_s, 1),
        p50_ms=round(metrics[f"{prefix}_latency_p50_ms"], 2),
        p99_ms=round(metrics[f"{prefix}_latency_p99_ms"], 2),
    )


def _median_batch(prefix: str, batches: list[Batch], raw: dict[str, list[float]]) -> Batch:
    """The batch with the median tasks/s; every batch's tasks/s and p50 go to ``raw``."""
    raw[f"{prefix}_tasks_per_s"] = [b.tasks_per_s for b in batches]
    raw[f"{prefix}_latency_p50_ms"] = [percentile(b.latencies_ms, 50) for b in batches]
    raw[f"{prefix}_latency_p99_ms"] = [percentile(b.latencies_ms, 99) for b in batches]
    ordered = sorted(batches, key=lambda b: b.tasks_per_s)
    return ordered[len(ordered) // 2]


def _note_failures(prefix: str, batch: Batch, notes: list[str]) -> None:
    if batch.failed:
        notes.append(
            f"{prefix}: {batch.failed} of {batch.tasks} tasks failed; first: "
            + "; ".join(e.replace("|", "/") for e in batch.errors[:2])
        )


async def _rule(
    sizes: Sizes, metrics: dict[str, float], raw: dict[str, list[float]], notes: list[str]
) -> None:
    async with ActorSystem("bench-rule") as system:
        began = perf_counter()
        agents = await spawn_rule_agents(system, sizes.rule_agents, sizes.rule_groups)
        metrics["rule_spawn_seconds"] = perf_counter() - began
        warmup = min(sizes.rule_tasks, 2 * sizes.rule_agents)  # every agent answers once
        await drive(agents, rule_task, warmup, sizes.rule_concurrency, TASK_TIMEOUT)
        batches = [
            await drive(agents, rule_task, sizes.rule_tasks, sizes.rule_concurrency, TASK_TIMEOUT)
            for _ in range(REPEATS)
        ]
    batch = _median_batch("rule", batches, raw)
    _summarize("rule", batch, metrics)
    _note_failures("rule", batch, notes)


async def _llm_fake(
    sizes: Sizes, metrics: dict[str, float], raw: dict[str, list[float]], notes: list[str]
) -> None:
    from actoros.inference.fake_engine import FakeEngine

    def engine() -> FakeEngine:
        return FakeEngine(
            token_delay=sizes.fake_token_delay_s,
            max_num_seqs=max(64, sizes.llm_concurrency),
            eos_after=(sizes.llm_max_tokens, sizes.llm_max_tokens),
        )

    with temp_state_dir() as state:
        async with ActorSystem("bench-llm-fake") as system:
            agents = await spawn_llm_agents(
                system, engine, sizes.llm_agents, sizes.llm_max_tokens, 2048, Path(state)
            )
            await drive(agents, llm_task, sizes.llm_agents, sizes.llm_agents, TASK_TIMEOUT)
            batches = [
                await drive(
                    agents, llm_task, sizes.llm_fake_tasks, sizes.llm_concurrency, TASK_TIMEOUT
                )
                for _ in range(REPEATS)
            ]
    batch = _median_batch("llm_fake", batches, raw)
    _summarize("llm_fake", batch, metrics)
    _note_failures("llm_fake", batch, notes)


async def _llm_vllm(
    sizes: Sizes, model: str | None, metrics: dict[str, float], notes: list[str]
) -> dict[str, Any]:
    from actoros.inference import models
    from actoros.inference.vllm_engine import VLLMEngine

    folder = models.resolve(model or models.DEFAULT_MODEL)
    info: dict[str, Any] = {
        "model": str(model or models.DEFAULT_MODEL),
        "dtype": "auto (bfloat16, the folder's)",
        "max_model_len": VLLM_CONTEXT,
        "max_num_seqs": sizes.llm_agents,
        "enforce_eager": True,
    }
    built: list[VLLMEngine] = []

    def engine() -> VLLMEngine:
        e = VLLMEngine(folder, max_model_len=VLLM_CONTEXT, max_num_seqs=sizes.llm_agents)
        built.append(e)
        return e

    with temp_state_dir() as state:
        async with ActorSystem("bench-llm-vllm") as system:
            began = perf_counter()
            agents = await spawn_llm_agents(
                system,
                engine,
                sizes.llm_agents,
                sizes.vllm_max_tokens,
                VLLM_CONTEXT,
                Path(state),
            )
            metrics["vllm_start_seconds"] = perf_counter() - began
            info["start_seconds"] = round(metrics["vllm_start_seconds"], 1)
            log.info("bench.vllm_ready", seconds=info["start_seconds"])
            # warm-up: one task per agent at once (first batches compile and fill caches)
            await drive(agents, llm_task, sizes.llm_agents, sizes.llm_agents, TASK_TIMEOUT)
            inference = system.lookup("/kernel/inference")
            before = await _output_tokens(inference)
            batch = await drive(agents, llm_task, sizes.vllm_tasks, sizes.llm_agents, TASK_TIMEOUT)
            after = await _output_tokens(inference)
            if before is not None and after is not None and batch.seconds > 0:
                metrics["llm_vllm_output_tok_per_s"] = (after - before) / batch.seconds
    _summarize("llm_vllm", batch, metrics)
    _note_failures("llm_vllm", batch, notes)
    return info


def prefix_sizes(sizes: Sizes) -> PrefixSizes:
    return PrefixSizes(
        agents=sizes.prefix_agents, rounds=sizes.prefix_rounds, max_tokens=sizes.prefix_max_tokens
    )


async def _prefix_vllm(
    sizes: Sizes,
    model: str | None,
    metrics: dict[str, float],
    raw: dict[str, list[float]],
    notes: list[str],
) -> dict[str, Any]:
    from actoros.inference import models
    from actoros.inference.vllm_engine import VLLMEngine

    folder = models.resolve(model or models.DEFAULT_MODEL)

    def engine(cache_on: bool) -> VLLMEngine:
        return VLLMEngine(
            folder,
            max_model_len=VLLM_CONTEXT,
            max_num_seqs=sizes.prefix_agents,
            kv_cache_memory_gib=PREFIX_KV_CACHE_GIB,
            enable_prefix_caching=cache_on,
        )

    info = await prefix_series(
        prefix_sizes(sizes), engine, VLLM_CONTEXT, TASK_TIMEOUT, metrics, raw, notes
    )
    return {
        "block_size": "vLLM's default (128 tokens on CPU)",
        "kv_cache_gib_per_engine": PREFIX_KV_CACHE_GIB,
        **info,
    }


async def _output_tokens(inference: Any) -> float | None:
    from actoros.inference.actor import InferenceStats

    stats = await inference.ask(InferenceStats())
    return float(stats.output_tokens)


async def _measure(
    sizes: Sizes,
    vllm: bool,
    model: str | None,
    metrics: dict[str, float],
    raw: dict[str, list[float]],
    notes: list[str],
) -> tuple[str, dict[str, Any]]:
    log.info("bench.rule", agents=sizes.rule_agents, tasks=sizes.rule_tasks)
    await _rule(sizes, metrics, raw, notes)
    log.info("bench.llm_fake", agents=sizes.llm_agents, tasks=sizes.llm_fake_tasks)
    await _llm_fake(sizes, metrics, raw, notes)
    info: dict[str, Any] = {}
    prefix: dict[str, Any] = {}
    if vllm:
        log.info("bench.llm_vllm", agents=sizes.llm_agents, tasks=sizes.vllm_tasks)
        info = await _llm_vllm(sizes, model, metrics, notes)
        log.info("bench.prefix", agents=sizes.prefix_agents, rounds=sizes.prefix_rounds)
        prefix = await _prefix_vllm(sizes, model, metrics, raw, notes)
    return loop_name(asyncio.get_running_loop()), info, prefix


def main(
    *,
    quick: bool,
    out: Path,
    engine: EngineKind = "vllm",
    model: str | None = None,
    tiny: bool | None = None,
) -> int:
    """Run the agents benchmark; write ``agents.{json,md,png}`` to ``out``.

    ``quick``: fewer tasks and no vLLM workload (under a minute). ``engine``: ``"vllm"`` runs
    the SmolLM2 workload after the fake one, ``"fake"`` skips it. ``model``: the model for it
    (default: the pulled CPU default model). ``tiny``: smoke-test sizes (default: the
    ``ACTOROS_BENCH_TINY`` env variable).
    """
    tiny = is_tiny(tiny)
    sizes = TINY if tiny else QUICK if quick else FULL
    notes: list[str] = []
    vllm = engine == "vllm" and not quick
    if engine == "vllm" and quick:
        notes.append("LLM agents on SmolLM2 (vLLM): skipped under --quick")
    elif engine == "fake":
        notes.append("LLM agents on SmolLM2 (vLLM): skipped (--engine fake)")
    if vllm and (why := vllm_missing(model)) is not None:
        notes.append(f"LLM agents on SmolLM2 (vLLM): skipped, {why}")
        vllm = False
    metrics: dict[str, float] = {}
    raw: dict[str, list[float]] = {}
    with running("agents", out, engine=engine, quick=quick, tiny=tiny) as session:
        loop, info, prefix = run(_measure(sizes, vllm, model, metrics, raw, notes))
        notes += uvloop_note(loop)
        notes += session.load_note("other work on the machine moves single batches (see `raw`)")
        result = AgentsResult(
            **run_header(loop),
            quick=quick,
            engines=["rule", "fake"] + (["vllm"] if vllm else []),
            vllm_engine=info,
            prefix_cache=prefix,
            metrics=metrics,
            repeats=REPEATS,
            raw=raw,
            sizes=sizes,
            notes=notes,
        )
        session.write(result, markdown, chart)
    return 0

"""``actoros bench inference``: the inference actor measured side by side with direct vLLM.

One engine is built once and shared. The same workload — requests of a fixed prompt length
and a fixed output length (``ignore_eos``, greedy) — is driven three ways in one run:

1. **direct**: N asyncio tasks stream from vLLM's ``AsyncLLM`` (the limit);
2. **actor**: N agent actors, each streaming from the ``InferenceActor`` in its ``receive``;
3. **sequential**: one agent asking for one completion at a time (a naive agent loop).

Direct and actor alternate at each concurrency of the sweep (which goes first alternates
too), after a warm-up of both; each repeat runs the whole sweep and the sequential loop.
Reported values are medians over repeats; ratios are medians of per-repeat ratios. Metrics
use the names of vLLM's own benchmark: requests/s, output tokens/s, TTFT, TPOT, ITL, E2EL.

Writes ``inference.json`` (an ``InferenceResult``), ``inference.md`` and ``inference.png``
(throughput vs concurrency) to ``out``, and the table to stdout. With vLLM the whole run
happens in this process on one event loop (the engine binds to it); call it from a script with
an ``if __name__ == "__main__":`` guard, since vLLM starts worker processes.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import msgspec

from actoros import ActorRef, ActorSystem, run
from actoros.core.system import loop_name
from actoros.inference.actor import InferenceActor

from .._common import (
    BenchError,
    EngineKind,
    check_repeats,
    is_tiny,
    judge,
    median,
    progress,
    run_header,
    running,
    uvloop_note,
    wait_engine_ready,
)
from ._backends import FakeBackend
from ._paths import (
    Backend,
    NaiveAgent,
    StreamingAgent,
    run_actor,
    run_direct,
    run_sequential,
    spawn_agents,
)
from .report import chart, markdown
from .result import PATHS, REFERENCE_CONCURRENCY, InferenceResult, Workload, level_targets

log = progress

SWEEP = (1, 4, 16, 32, 64)
FULL = Workload(
    prompt_tokens=128,
    output_tokens=64,
    concurrency=SWEEP,
    waves=2,
    min_requests=4,
    sequential_requests=4,
    warmup_requests=64,
)
QUICK = Workload(
    prompt_tokens=64,
    output_tokens=64,
    # the tiny model steps in about a millisecond: the actor path's cost per token shows most
    # at high concurrency (issue 12: 64-256, with max_num_seqs 256)
    concurrency=(1, 16, 64, 128, 256),
    waves=2,
    min_requests=8,
    sequential_requests=8,
    warmup_requests=256,
)
TINY = Workload(
    prompt_tokens=16,
    output_tokens=8,
    concurrency=(1, 4),
    waves=1,
    min_requests=2,
    sequential_requests=2,
    warmup_requests=4,
)
DEFAULT_REPEATS = 3
QUICK_REPEATS = 3


def _backend(engine: EngineKind, workload: Workload, quick: bool, model: str | None) -> Backend:
    if engine == "fake":
        return FakeBackend(workload)
    try:
        from ._vllm import VLLMBackend
    except ModuleNotFoundError as exc:
        raise BenchError(
            f"--engine vllm needs vLLM ({exc.name} is not installed): install the 'cpu' or "
            "'gpu' extra, or run with --engine fake"
        ) from exc
    return VLLMBackend(workload, quick=quick, model=model)


def _record(raw: dict[str, list[float]], prefix: str, stats: dict[str, float]) -> None:
    for key, value in stats.items():
        raw.setdefault(prefix.format(key), []).append(value)


async def _level(
    backend: Backend,
    agents: list[ActorRef],
    concurrency: int,
    requests: int,
    order: tuple[str, ...],
    tag: str,
    distinct: bool = True,
) -> dict[str, dict[str, float]]:
    """Direct and actor at one concurrency, back to back in ``order``; each request with its
    own prompt (``distinct``) or all with the shared one. Prompts are drawn before timing, and
    both paths get the same ones (prefix caching is off: the second run gains nothing)."""
    stats = {}
    prompts = backend.prompts(requests, distinct)
    for path in order:
        if path == "direct":
            timed = await run_direct(backend, concurrency, prompts, tag=f"{tag}-{path}")
        else:
            timed = await run_actor(agents, concurrency, requests, prompts)
        stats[path] = timed.summary()
    return stats


def _prefix(series: str) -> str:
    """Metric keys: the distinct-prompt series (the default) unprefixed, others prefixed."""
    return "" if series == "distinct" else f"{series}_"


def _record_level(
    raw: dict[str, list[float]], series: str, concurrency: int, stats: dict[str, dict[str, float]]
) -> tuple[float, float, float]:
    """Record one level's stats and ratios; returns (tokens/s, TTFT, CPU) actor vs direct."""
    pre = _prefix(series)
    for path, values in stats.items():
        _record(raw, f"{pre}{path}_{{}}_c{concurrency}", values)
    direct, actor = stats["direct"], stats["actor"]
    ratio = actor["tok_per_s"] / direct["tok_per_s"]
    added = actor["ttft_ms_p50"] - direct["ttft_ms_p50"]
    cpu = actor.get("cpu_us_per_tok", math.nan) / direct.get("cpu_us_per_tok", math.nan)
    raw.setdefault(f"{pre}actor_vs_direct_c{concurrency}", []).append(ratio)
    raw.setdefault(f"{pre}ttft_overhead_ms_p50_c{concurrency}", []).append(added)
    raw.setdefault(f"{pre}actor_cpu_vs_direct_c{concurrency}", []).append(cpu)
    return ratio, added, cpu


async def _sweep(
    backend: Backend,
    agents: list[ActorRef],
    naive: ActorRef,
    workload: Workload,
    repeats: int,
    raw: dict[str, list[float]],
) -> None:
    for r in range(repeats):
        for i, concurrency in enumerate(workload.concurrency):
            n = workload.requests(concurrency)
            for j, series in enumerate(workload.prompts):
                order = PATHS if (r + i + j) % 2 == 0 else PATHS[::-1]
                tag = f"r{r}c{concurrency}{series}"
                distinct = series == "distinct"
                stats = await _level(backend, agents, concurrency, n, order, tag, distinct)
                ratio, added, cpu = _record_level(raw, series, concurrency, stats)
                direct, actor = stats["direct"], stats["actor"]
                log.info(
                    "bench.level",
                    repeat=r + 1,
                    of=repeats,
                    prompts=series,
                    concurrency=concurrency,
                    requests=n,
                    direct_tok_per_s=round(direct["tok_per_s"], 1),
                    actor_tok_per_s=round(actor["tok_per_s"], 1),
                    actor_vs_direct=round(ratio, 3),
                    ttft_overhead_ms=round(added, 2),
                    direct_cpu_us_per_tok=round(direct.get("cpu_us_per_tok", math.nan), 1),
                    actor_cpu_us_per_tok=round(actor.get("cpu_us_per_tok", math.nan), 1),
                    actor_cpu_vs_direct=round(cpu, 3),
                )
        prompts = backend.prompts(workload.sequential_requests, True)
        sequential = (await run_sequential(naive, len(prompts), prompts)).summary()
        _record(raw, "sequential_{}", sequential)
        log.info("bench.sequential", repeat=r + 1, tok_per_s=round(sequential["tok_per_s"], 1))


async def _measure(
    backend: Backend, workload: Workload, repeats: int, raw: dict[str, list[float]]
) -> str:
    """Start the engine, warm up both paths, then ``repeats`` sweeps. Returns the loop name."""
    try:
        await backend.start()
        log.info("bench.engine_ready", seconds=round(backend.start_seconds, 1))
        async with ActorSystem("bench") as system:
            # the actor starts (and at the end stops) the shared engine as it would its own:
            # for vLLM a VLLMEngine wrapping the AsyncLLM the bench built, which stays running
            engine = backend.engine
            inference = await system.spawn(InferenceActor, lambda: engine, name="inference")
            await wait_engine_ready(system, inference)
            top = max(workload.concurrency)
            agents = await spawn_agents(system, StreamingAgent, top, inference, backend.gen)
            (naive,) = await spawn_agents(system, NaiveAgent, 1, inference, backend.gen)
            # warm-up: both paths, a full wave at the top concurrency, then one request alone
            for concurrency, n in ((top, workload.warmup_requests), (1, 1)):
                await _level(backend, agents, concurrency, n, PATHS, "warmup")
            await run_sequential(naive, 1, backend.prompts(1, True))
            log.info("bench.warmed_up")
            await _sweep(backend, agents, naive, workload, repeats, raw)
    finally:
        await backend.close()
    return loop_name(asyncio.get_running_loop())


def _series_metrics(metrics: dict[str, float], levels: tuple[int, ...], pre: str) -> None:
    """The worst level of each ratio of one series, and its throughput at the reference."""
    ref = int(metrics["reference_concurrency"])
    for path in PATHS:
        for unit in ("tok_per_s", "req_per_s", "cpu_us_per_tok"):
            metrics[f"{pre}{path}_{unit}"] = metrics.get(f"{pre}{path}_{unit}_c{ref}", math.nan)

    def at_levels(key: str) -> list[float]:
        return [metrics[f"{pre}{key}_c{c}"] for c in levels if f"{pre}{key}_c{c}" in metrics]

    ratios = at_levels("actor_vs_direct")
    metrics[f"{pre}actor_vs_direct"] = min(ratios) if ratios else math.nan
    cpu = [r for r in at_levels("actor_cpu_vs_direct") if not math.isnan(r)]
    metrics[f"{pre}actor_cpu_vs_direct"] = max(cpu) if cpu else math.nan
    # the actor's own latency is read alone (lowest concurrency): with many requests in flight
    # a first token's wait depends mostly on where it lands in the engine's step cycle
    added = [metrics.get(f"{pre}ttft_overhead_ms_p50_c{c}", math.nan) for c in levels]
    metrics[f"{pre}ttft_overhead_ms_p50"] = added[0]
    metrics[f"{pre}ttft_overhead_ms_p50_max"] = max(added)


def _metrics(raw: dict[str, list[float]], workload: Workload) -> dict[str, float]:
    metrics = {key: median(samples) for key, samples in raw.items() if samples}
    levels = workload.concurrency
    ref = REFERENCE_CONCURRENCY if REFERENCE_CONCURRENCY in levels else max(levels)
    metrics["reference_concurrency"] = float(ref)
    for series in workload.prompts:
        _series_metrics(metrics, levels, _prefix(series))
    sequential = metrics.get("sequential_tok_per_s", math.nan)
    metrics["batching_speedup"] = metrics["actor_tok_per_s"] / sequential
    metrics["batching_speedup_direct"] = metrics["direct_tok_per_s"] / sequential
    for c in levels:
        actor = metrics.get(f"actor_tok_per_s_c{c}")
        if actor is not None:
            metrics[f"batching_speedup_c{c}"] = actor / sequential
    return metrics


def main(
    *,
    quick: bool,
    out: Path,
    repeats: int | None = None,
    engine: EngineKind = "vllm",
    model: str | None = None,
    concurrency: tuple[int, ...] | None = None,
    tiny: bool | None = None,
) -> int:
    """Run the inference benchmark; write ``inference.{json,md,png}`` to ``out``.

    ``quick``: the tiny random model (vLLM) and shorter requests, under 3 minutes on 2 cores.
    ``engine``: ``"vllm"`` or ``"fake"`` (no vLLM needed; measures the runtime only).
    ``model``: a model name or folder (vLLM; default: the pulled CPU default model).
    ``concurrency``: the sweep (default 1, 4, 16, 32, 64).
    ``tiny``: smoke-test sizes (default: the ``ACTOROS_BENCH_TINY`` env variable).
    """
    tiny = is_tiny(tiny)
    if repeats is None:
        repeats = 1 if tiny else QUICK_REPEATS if quick else DEFAULT_REPEATS
    notes: list[str] = []
    check_repeats(repeats, notes)
    workload = TINY if tiny else QUICK if quick else FULL
    if concurrency:
        workload = msgspec.structs.replace(workload, concurrency=tuple(sorted(set(concurrency))))
    backend = _backend(engine, workload, quick, model)  # fails fast without vLLM
    raw: dict[str, list[float]] = {}
    with running(
        "inference",
        out,
        engine=engine,
        quick=quick,
        tiny=tiny,
        repeats=repeats,
        concurrency=workload.concurrency,
    ) as session:
        loop = run(_measure(backend, workload, repeats, raw))
        notes += backend.notes()
        notes += session.load_note(
            "other work on the machine disturbs single "
            "repeats (hence medians of per-repeat ratios)",
        )
        notes += uvloop_note(loop)
        targets = level_targets(workload.concurrency)
        metrics = _metrics(raw, workload)
        result = InferenceResult(
            **run_header(loop),
            quick=quick,
            repeats=repeats,
            engine=backend.info(),
            workload=workload,
            metrics=metrics,
            targets=targets,
            passed=judge(targets, metrics),
            raw=raw,
            notes=notes,
        )
        session.write(result, markdown, chart)
    return 0

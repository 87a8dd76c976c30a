"""``actoros bench gateway``: the OpenAI-compatible gateway under load from the ``openai`` client.

Per engine (the fake engine, then SmolLM2 in CPU vLLM), one system is started the way
``actoros run`` starts it (``start_system`` on a config with a ``gateway:`` section on a free
port, a bearer token, ``allow_raw_model``, one LLM agent), and a load generator — the official
``openai`` client in its own process (``_client``) — sends chat completions at each
concurrency of the sweep:

- **agent** path (fake engine): ``model`` names the LLM agent; its reply is the completion;
- **raw** path: ``model`` names the model; the gateway asks the inference actor directly;
- **actor** reference: the same ``Generate`` asked of the same inference actor in-process by
  agent actors (``inference._paths.run_actor``), no HTTP — what the gateway is measured
  against: its output tokens/s over the actor's, per level (target ≥ 0.95 on SmolLM2).

Every request asks for ``output_tokens`` tokens and gets them: raw-model requests and the
actor reference send ``ignore_eos`` (vLLM's extension, which the gateway accepts for the raw
model); the agent's answers are made that long by the prompt (a long story) and, on the fake
engine, by its end-of-text setting. The measured tokens per request are in the results.
At every level the series run back to back (``_sweep``), their order alternating between
levels and repeats; values are medians over repeats, the ratios medians of per-repeat ratios. Writes
``gateway.json`` (a ``GatewayResult``), ``gateway.md`` and ``gateway.png`` to ``out``, and the
table to stdout.
vLLM starts worker processes: call ``main`` from a script with an ``if __name__ ==
"__main__":`` guard.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import msgspec

from actoros import run
from actoros.core.system import loop_name

from .._common import (
    BenchError,
    EngineKind,
    check_repeats,
    judge,
    progress,
    run_header,
    running,
    uvloop_note,
    vllm_missing,
)
from ..inference._backends import FAKE_TOKEN_DELAY
from ._sweep import measure_engine
from .report import chart, markdown
from .result import EngineInfo, GatewayResult, Workload, medians, ratio_targets

log = progress

PROMPT = (
    "Write a long story, at least 500 words, about a lighthouse keeper who finds a message in "
    "a bottle. Describe each day of her week in detail."
)  # SmolLM2 answers it with far more than 64 tokens (greedy); checked per run in the results
EngineChoice = Literal["fake", "vllm", "both"]
SWEEP = (1, 4, 16, 32, 64)
# every request its own prompt; ``_shared``: one prompt for all (the labelled second series)
FAKE_SERIES = (
    "agent_stream",
    "agent_once",
    "raw_stream",
    "raw_once",
    "actor_stream",
    "raw_stream_shared",
)
VLLM_SERIES = ("raw_stream", "actor_stream", "raw_stream_shared")  # the ratio, and shared
FULL = {
    "fake": Workload(
        concurrency=SWEEP,
        series=FAKE_SERIES,
        waves=4,
        min_requests=16,
        prompt=PROMPT,
        output_tokens=32,
        token_delay_s=FAKE_TOKEN_DELAY,
    ),
    "vllm": Workload(
        concurrency=SWEEP,
        series=VLLM_SERIES,
        waves=2,
        min_requests=4,
        prompt=PROMPT,
        output_tokens=64,
    ),
}
QUICK = {"fake": msgspec.structs.replace(FULL["fake"], waves=2, min_requests=8, output_tokens=16)}
DEFAULT_REPEATS = 3
QUICK_REPEATS = 2


def _engines(
    choice: EngineChoice, quick: bool, model: str | None, notes: list[str]
) -> list[EngineKind]:
    if quick:
        if choice != "fake":
            notes.append("SmolLM2 (vLLM): skipped under --quick")
        return ["fake"]
    engines: list[EngineKind] = ["fake", "vllm"] if choice == "both" else [choice]
    if "vllm" in engines and (why := vllm_missing(model)) is not None:
        if choice == "vllm":
            raise BenchError(f"--engine vllm: {why}")
        notes.append(f"SmolLM2 (vLLM): skipped, {why}")
        engines.remove("vllm")
    return engines


def _client_notes(metrics: dict[str, float], notes: list[str]) -> None:
    busy = {k: v for k, v in metrics.items() if "_client_cpu_c" in k and v > 0.8}
    if busy:
        worst = max(busy, key=lambda k: busy[k])
        notes.append(
            f"the load generator used up to {busy[worst]:.2f} CPU-seconds per second "
            f"(`{worst}`): near one core, the client itself may cap those rates"
        )


def _token_notes(metrics: dict[str, float], workloads: dict[str, Workload]) -> list[str]:
    """Did the raw and actor paths get the same prompt (as the engine counts it) and did every
    request reach max_tokens? (means per request, at every level)"""
    notes = []
    for engine, w in workloads.items():

        def means(stat: str, engine: str = engine, w: Workload = w) -> dict[str, float]:
            keys = [
                f"{engine}_{s}_{stat}_c{c}"
                for s in ("raw_stream", "actor_stream")
                for c in w.concurrency
            ]
            return {k: metrics.get(k, math.nan) for k in keys}

        prompts = set(means("prompt_tokens").values())
        if len(prompts) == 1 and not math.isnan(p := prompts.pop()):
            notes.append(f"{engine}: the raw and actor paths' prompts were {p:.0f} tokens each")
        else:
            listed = ", ".join(f"`{k}` {v:.1f}" for k, v in means("prompt_tokens").items())
            notes.append(f"{engine}: the raw and actor paths' prompts differ: {listed}")
        short = {k: v for k, v in means("output_tokens").items() if not v >= w.output_tokens}
        if short:
            listed = ", ".join(f"`{k}` {v:.1f}" for k, v in sorted(short.items()))
            notes.append(
                f"{engine}: some answers ended before max_tokens={w.output_tokens} "
                f"(mean output tokens per request: {listed}); tokens/s counts the tokens made"
            )
        else:
            notes.append(
                f"{engine}: every request of the raw and actor paths made max_tokens="
                f"{w.output_tokens} output tokens (mean per request at every level)"
            )
    return notes


def _method_notes(client: dict[str, Any], engines: Sequence[str]) -> list[str]:
    notes = [
        f"load generator: the official openai client {client.get('openai', '?')} "
        "(AsyncOpenAI, one HTTP/1.1 keep-alive pool of >= 64 connections, no retries) in its "
        "own process, `concurrency` tasks each sending its share of the requests one after "
        "another; latencies are measured in that process (E2EL from the call to the complete "
        "response, TTFT to the first content chunk)",
        "output tokens: the server's usage (streaming: stream_options.include_usage); for an "
        "agent, the tokens of its turn's model calls. Raw-model requests and the actor "
        "reference send `ignore_eos`, so each makes exactly max_tokens tokens (checked below)",
    ]
    if "vllm" in engines:
        notes.append(
            "SmolLM2: the gateway's raw path and the in-process actor path share one engine "
            "and alternate at every level; the actor path runs in the gateway's own process "
            "while the HTTP client needs CPU of its own, which the engine (bound to one core "
            "by vLLM CPU) and the event loop compete for on this machine"
        )
    return notes


async def _measure(
    engines: list[EngineKind],
    workloads: dict[str, Workload],
    repeats: int,
    model: str | None,
    raw: dict[str, list[float]],
    notes: list[str],
    client: dict[str, Any],
) -> tuple[str, dict[str, EngineInfo]]:
    info: dict[str, EngineInfo] = {}
    for engine in engines:
        log.info("bench.engine", engine=engine, concurrency=workloads[engine].concurrency)
        info[engine] = await measure_engine(
            engine, workloads[engine], repeats, model, raw, notes, client
        )
    return loop_name(asyncio.get_running_loop()), info


def main(
    *,
    quick: bool,
    out: Path,
    engine: EngineChoice = "both",
    repeats: int | None = None,
    model: str | None = None,
    concurrency: tuple[int, ...] | None = None,
) -> int:
    """Run the gateway benchmark; write ``gateway.{json,md,png}`` to ``out``.

    ``quick``: the fake engine only, fewer requests (well under a minute). ``engine``:
    ``fake``, ``vllm`` (SmolLM2, or ``model``) or ``both``; with ``both`` a missing vLLM or
    model skips that part with a note, with ``vllm`` it is a ``BenchError``.
    ``concurrency``: the sweep (default 1, 4, 16, 32, 64).
    """
    if repeats is None:
        repeats = QUICK_REPEATS if quick else DEFAULT_REPEATS
    notes: list[str] = []
    engines = _engines(engine, quick, model, notes)
    sizes = QUICK if quick else FULL
    workloads: dict[str, Workload] = {e: sizes[e] for e in engines}
    if concurrency:
        levels = tuple(sorted(set(concurrency)))
        workloads = {
            e: msgspec.structs.replace(w, concurrency=levels) for e, w in workloads.items()
        }
    check_repeats(repeats, notes)
    raw: dict[str, list[float]] = {}
    client: dict[str, Any] = {
        "library": "openai (AsyncOpenAI)",
        "process": "separate",
        "pool_connections": 64,
    }
    with running("gateway", out, engines=engines, quick=quick, repeats=repeats) as session:
        loop, info = run(_measure(engines, workloads, repeats, model, raw, notes, client))
        metrics = medians(raw, workloads)
        notes[:0] = _method_notes(client, engines) + _token_notes(metrics, workloads)
        _client_notes(metrics, notes)
        notes += session.load_note(
            "the load generator, the gateway and the "
            "engine share them, and other work on the machine moves single repeats (see "
            "`raw`)",
        )
        notes += uvloop_note(loop)
        levels = workloads["vllm"].concurrency if "vllm" in workloads else SWEEP
        targets = ratio_targets(levels)
        result = GatewayResult(
            **run_header(loop),
            quick=quick,
            repeats=repeats,
            client=client,
            engines=info,
            workloads=workloads,
            metrics=metrics,
            targets=targets,
            passed=judge(targets, metrics),
            raw=raw,
            notes=notes,
        )
        session.write(result, markdown, chart)
    return 0

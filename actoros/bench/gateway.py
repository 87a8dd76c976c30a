"""``actoros bench gateway``: the OpenAI-compatible gateway under load from the ``openai`` client.

Per engine (the fake engine, then SmolLM2 in CPU vLLM), one system is started the way
``actoros run`` starts it (``start_system`` on a config with a ``gateway:`` section on a free
port, a bearer token, ``allow_raw_model``, one LLM agent), and a load generator — the official
``openai`` client in its own process (``_gateway_client``) — sends chat completions at each
concurrency of the sweep:

- **agent** path (fake engine): ``model`` names the LLM agent; its reply is the completion;
- **raw** path: ``model`` names the model; the gateway asks the inference actor directly;
- **actor** reference: the same ``Generate`` asked of the same inference actor in-process by
  agent actors (``_inference_paths.run_actor``), no HTTP — what the gateway is measured
  against: its output tokens/s over the actor's, per level (target ≥ 0.95 on SmolLM2).

Every request asks for ``output_tokens`` tokens and gets them: raw-model requests and the
actor reference send ``ignore_eos`` (vLLM's extension, which the gateway accepts for the raw
model); the agent's answers are made that long by the prompt (a long story) and, on the fake
engine, by its end-of-text setting. The measured tokens per request are in the results.
At every level the series run back to back, their order alternating between levels and
repeats; values are medians over repeats, the ratios medians of per-repeat ratios. Writes
``gateway.json`` (a ``GatewayResult``), ``gateway.md`` and ``gateway.png`` to ``out``, and the
table to stdout.
vLLM starts worker processes: call ``main`` from a script with an ``if __name__ ==
"__main__":`` guard.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any, Literal

import msgspec

from actoros import ActorRef, run
from actoros.config import AgentConfig, Config, GatewayConfig, GatewayToken, InferenceConfig
from actoros.config.schema import SystemConfig
from actoros.core.system import loop_name
from actoros.gateway.server import GatewayAddress
from actoros.inference.messages import ChatMessage, Generate
from actoros.app import GATEWAY, System, start_system

from ._agents_workloads import wait_ready
from ._gateway_client import Level, LoadGenerator
from ._gateway_report import chart, markdown
from ._gateway_result import (
    EngineInfo,
    GatewayResult,
    Workload,
    medians,
    ratio_key,
    ratio_targets,
)
from ._inference_backends import FAKE_TOKEN_DELAY
from ._inference_paths import RequestSample, StreamingAgent, run_actor, spawn_agents, summarize
from ._logs import bench_logging, progress
from ._result import load_average, load_note, run_header, write_results
from .agents import _vllm_missing
from .inference import BenchError

log = progress

PROMPT = (
    "Write a long story, at least 500 words, about a lighthouse keeper who finds a message in "
    "a bottle. Describe each day of her week in detail."
)  # SmolLM2 answers it with far more than 64 tokens (greedy); checked per run in the results
EngineKind = Literal["fake", "vllm"]
EngineChoice = Literal["fake", "vllm", "both"]
SWEEP = (1, 4, 16, 32, 64)
FAKE_SERIES = ("agent_stream", "agent_once", "raw_stream", "raw_once", "actor_stream")
VLLM_SERIES = ("raw_stream", "actor_stream")  # the ratio; on SmolLM2 each level costs seconds
FULL = {
    "fake": Workload(
        concurrency=SWEEP, series=FAKE_SERIES, waves=4, min_requests=16,
        prompt=PROMPT, output_tokens=32, token_delay_s=FAKE_TOKEN_DELAY,
    ),
    "vllm": Workload(
        concurrency=SWEEP, series=VLLM_SERIES, waves=2, min_requests=4,
        prompt=PROMPT, output_tokens=64,
    ),
}  # fmt: skip
QUICK = {"fake": msgspec.structs.replace(FULL["fake"], waves=2, min_requests=8, output_tokens=16)}
DEFAULT_REPEATS = 3
QUICK_REPEATS = 2
AGENT = "assistant"
TOKEN = "bench-gateway-token"  # the gateway's one bearer token for this run
VLLM_CONTEXT = 1024  # max_model_len: the prompt (64 tokens with the template) + 64 + room
ADDRESS_TIMEOUT = 10.0  # seconds for the gateway actor to say where it listens


# -- the system under test ---------------------------------------------------------------------


def _config(engine: EngineKind, workload: Workload, state_dir: str, model: str | None) -> Config:
    """A system as a user would configure it: one LLM agent, the gateway on a free port."""
    top = max(workload.concurrency)
    if engine == "fake":
        engine_args: dict[str, Any] = {
            "token_delay": workload.token_delay_s, "max_num_seqs": max(64, top),
            "max_model_len": 2048,
            # every answer is output_tokens long, the agent's as well as the raw model's
            "eos_after": [workload.output_tokens, workload.output_tokens],
        }  # fmt: skip
    else:
        # prefix caching off: every request pays its prefill, as distinct prompts would (as in
        # `bench inference`); both paths share the engine, so either way they pay the same
        engine_args = {
            "max_model_len": VLLM_CONTEXT, "max_num_seqs": max(64, top),
            "enable_prefix_caching": False,
        }  # fmt: skip
    return Config(
        system=SystemConfig(name="bench-gateway", log_level="error", state_dir=state_dir),
        inference=InferenceConfig(engine=engine, model=model, engine_args=engine_args),
        agents=(
            AgentConfig(
                name=AGENT, kind="llm", system_prompt="You are a helpful assistant.",
                max_steps=1, max_tokens=workload.output_tokens, temperature=0.0,
            ),
        ),
        gateway=GatewayConfig(
            host="127.0.0.1", port=0, allow_raw_model=True, max_concurrent=max(256, 2 * top),
            max_connections=max(1000, 2 * top), tokens=(GatewayToken(name="bench", token=TOKEN),),
        ),
    )  # fmt: skip


async def _gateway_url(system: System) -> str:
    """The gateway's base URL for the ``openai`` client (``http://host:port/v1``)."""
    gateway = system.actors.lookup(f"/{GATEWAY}")
    if gateway is None:
        raise BenchError("the system started without its gateway actor (/gateway)")
    address = await gateway.ask(GatewayAddress(), timeout=ADDRESS_TIMEOUT)
    return f"{str(address).rstrip('/')}/v1"


def _raw_model(ids: list[str]) -> str:
    models = [i for i in ids if i != AGENT]
    if not models:
        raise BenchError(f"the gateway lists no raw model (GET /v1/models: {ids})")
    return models[0]


def _record(raw: dict[str, list[float]], key: str, value: float) -> None:
    raw.setdefault(key, []).append(value)


@dataclass
class _Run:
    """One engine's load generator and reference agents (``actor`` path), and what it
    measured: per-repeat values into ``raw``, failed requests by series."""

    engine: str
    workload: Workload
    client: LoadGenerator
    url: str  # the gateway's base URL for the openai client
    model: str  # the raw model's id
    agents: list[ActorRef]  # StreamingAgents asking the inference actor in-process
    raw: dict[str, list[float]]
    failed: dict[str, int] = field(default_factory=dict)  # "<series>[ warm-up]" -> requests
    errors: dict[str, list[str]] = field(default_factory=dict)  # the same keys -> first errors

    def level(self, series: str, concurrency: int, requests: int) -> Level:
        path, _, mode = series.partition("_")
        w = self.workload
        return Level(
            base_url=self.url, api_key=TOKEN, model=AGENT if path == "agent" else self.model,
            prompt=w.prompt, max_tokens=w.output_tokens, stream=mode == "stream",
            concurrency=concurrency, requests=requests, ignore_eos=path == "raw",
        )  # fmt: skip

    async def series(
        self, series: str, concurrency: int, requests: int, phase: str = ""
    ) -> dict[str, float]:
        """One series at one level: its stats (``summarize``), failures and client CPU."""
        if series.startswith("actor"):
            samples, seconds = await run_actor(self.agents, concurrency, requests)
            return {**summarize(samples, seconds), "failed": 0.0}
        done = await self.client.run(self.level(series, concurrency, requests))
        if done.failed:
            key = f"{series} {phase}".strip()
            self.failed[key] = self.failed.get(key, 0) + done.failed
            kept = self.errors.setdefault(key, [])
            kept += done.errors[: max(0, 2 - len(kept))]
        return {
            **_summary([s.request_sample() for s in done.samples], done.seconds),
            "failed": float(done.failed),
            "client_cpu": done.cpu_seconds / done.seconds if done.seconds > 0 else math.nan,
        }

    def failure_notes(self) -> list[str]:
        """One note per series with failed requests (the per-level counts are metrics)."""
        return [
            f"{self.engine} {key}: {failed} requests failed (`{self.engine}_"
            f"{key.split()[0]}_failed_c<N>` per level); first: "
            + "; ".join(e.replace("|", "/") for e in self.errors[key])
            for key, failed in self.failed.items()
        ]

    async def warm_up(self) -> None:
        top = max(self.workload.concurrency)
        # one wave at the top concurrency (first batches, caches, connections), then one alone
        for concurrency, n in ((top, top), (1, 1)):
            for series in self.workload.series:
                await self.series(series, concurrency, n, "warm-up")

    async def sweep(self, repeats: int) -> None:
        w = self.workload
        for r in range(repeats):
            for i, concurrency in enumerate(w.concurrency):
                n = w.requests(concurrency)
                order = w.series if (r + i) % 2 == 0 else w.series[::-1]
                stats = {s: await self.series(s, concurrency, n) for s in order}
                for s, values in stats.items():
                    for stat, value in values.items():
                        _record(self.raw, f"{self.engine}_{s}_{stat}_c{concurrency}", value)
                actor = stats["actor_stream"]["tok_per_s"]
                ratio = stats["raw_stream"].get("tok_per_s", 0.0) / actor if actor else math.nan
                _record(self.raw, ratio_key(self.engine, concurrency), ratio)
                log.info("bench.level", engine=self.engine, repeat=r + 1, of=repeats,
                         concurrency=concurrency, requests=n,
                         **{f"{s}_req_per_s": round(v.get("req_per_s", math.nan), 1)
                            for s, v in stats.items()},
                         gateway_vs_actor=round(ratio, 3))  # fmt: skip


def _summary(samples: list[RequestSample], seconds: float) -> dict[str, float]:
    return summarize(samples, seconds) if samples and seconds > 0 else {"req_per_s": 0.0}


async def _measure_engine(
    engine: EngineKind,
    workload: Workload,
    repeats: int,
    model: str | None,
    raw: dict[str, list[float]],
    notes: list[str],
    client_info: dict[str, Any],
) -> EngineInfo:
    async with contextlib.AsyncExitStack() as stack:
        state = stack.enter_context(tempfile.TemporaryDirectory(prefix="actoros-bench-gateway-"))
        config = _config(engine, workload, state, model)
        # the client process imports openai while the system (and its engine) starts
        starting = asyncio.create_task(LoadGenerator.start())
        stack.push_async_callback(_close_when_started, starting)
        began = perf_counter()
        system = await start_system(config)
        stack.push_async_callback(system.shutdown)
        client = await starting
        client_info["openai"] = client.openai_version
        inference = system.service("inference")
        assert inference is not None
        await wait_ready(inference)
        start_seconds = perf_counter() - began
        log.info("bench.engine_ready", engine=engine, seconds=round(start_seconds, 1))
        url = await _gateway_url(system)
        raw_model = _raw_model(await client.models(url, TOKEN))
        # what the gateway asks of the inference actor for a raw-model request of the workload
        gen = Generate(
            messages=(ChatMessage("user", workload.prompt),), max_tokens=workload.output_tokens,
            temperature=0.0, stream=True, ignore_eos=True,
        )  # fmt: skip
        top = max(workload.concurrency)
        agents = await spawn_agents(system.actors, StreamingAgent, top, inference, gen)
        bench = _Run(engine, workload, client, url, raw_model, agents, raw)
        try:
            await bench.warm_up()
            log.info("bench.warmed_up", engine=engine, url=url, model=raw_model)
            await bench.sweep(repeats)
        finally:
            notes += bench.failure_notes()
    version = _vllm_version() if engine == "vllm" else ""
    return EngineInfo(
        kind=engine, model=raw_model, agent=AGENT, version=version,
        settings=dict(config.inference.engine_args) if config.inference else {},
        start_seconds=start_seconds,
    )  # fmt: skip


async def _close_when_started(starting: asyncio.Task[LoadGenerator]) -> None:
    try:
        client = await starting
    except Exception:  # it failed too; an earlier error is the one to report
        return
    await client.close()


def _vllm_version() -> str:
    from actoros.inference.vllm_direct import vllm_version

    return vllm_version()


# -- the run -----------------------------------------------------------------------------------


def _engines(
    choice: EngineChoice, quick: bool, model: str | None, notes: list[str]
) -> list[EngineKind]:
    if quick:
        if choice != "fake":
            notes.append("SmolLM2 (vLLM): skipped under --quick")
        return ["fake"]
    engines: list[EngineKind] = ["fake", "vllm"] if choice == "both" else [choice]
    if "vllm" in engines and (why := _vllm_missing(model)) is not None:
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
            keys = [f"{engine}_{s}_{stat}_c{c}" for s in ("raw_stream", "actor_stream")
                    for c in w.concurrency]  # fmt: skip
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
        info[engine] = await _measure_engine(
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
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    notes: list[str] = []
    engines = _engines(engine, quick, model, notes)
    sizes = QUICK if quick else FULL
    workloads: dict[str, Workload] = {e: sizes[e] for e in engines}
    if concurrency:
        levels = tuple(sorted(set(concurrency)))
        workloads = {
            e: msgspec.structs.replace(w, concurrency=levels) for e, w in workloads.items()
        }
    if repeats < 3:
        notes.append(f"only {repeats} repeat(s): medians of fewer than 3 runs are noisy")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    raw: dict[str, list[float]] = {}
    client: dict[str, Any] = {
        "library": "openai (AsyncOpenAI)", "process": "separate", "pool_connections": 64,
    }  # fmt: skip
    with bench_logging():
        started = perf_counter()
        load_start = load_average()
        log.info("bench.start", benchmark="gateway", engines=engines, quick=quick,
                 repeats=repeats, out=str(out))  # fmt: skip
        loop, info = run(_measure(engines, workloads, repeats, model, raw, notes, client))
        metrics = medians(raw, workloads)
        notes[:0] = _method_notes(client, engines) + _token_notes(metrics, workloads)
        _client_notes(metrics, notes)
        notes += load_note(
            load_start,
            "the load generator, the gateway and the "
            "engine share them, and other work on the machine moves single repeats (see "
            "`raw`)",
        )
        if loop != "uvloop":
            notes.append("uvloop is not installed: everything ran on the asyncio loop")
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
            passed={k: t.met(metrics.get(k, math.nan)) for k, t in targets.items()},
            raw=raw,
            notes=notes,
        )
        table = write_results(out, "gateway", result, markdown, chart)
        log.info("bench.done", seconds=round(perf_counter() - started, 1), out=str(out))
    sys.stdout.write(table)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":  # the same as `actoros bench gateway ...`
    from actoros.cli import main as cli_main

    sys.exit(cli_main(["bench", "gateway", *sys.argv[1:]]))

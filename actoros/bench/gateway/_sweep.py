"""One engine's part of ``actoros bench gateway``: the system under test, started as
``actoros run`` starts it, its load generator (``_client``) and reference agents, and the sweep.

``measure_engine`` starts the system (``start_system`` on a config with a ``gateway:`` section
on a free port, a bearer token, ``allow_raw_model``, one LLM agent), waits for its engine,
warms every series up, then runs ``repeats`` sweeps: at every level the series back to back,
their order alternating between levels and repeats, each value into ``raw``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import tempfile
from dataclasses import dataclass, field
from time import perf_counter, process_time
from typing import Any

from actoros import ActorRef
from actoros.app import GATEWAY, System, start_system
from actoros.config import AgentConfig, Config, GatewayConfig, GatewayToken, InferenceConfig
from actoros.config.schema import SystemConfig
from actoros.gateway.server import GatewayAddress
from actoros.inference.messages import ChatMessage, Generate

from .._common import BenchError, EngineKind, progress, wait_engine_ready
from ..inference._paths import (
    Prompt,
    RequestSample,
    StreamingAgent,
    run_actor,
    spawn_agents,
    summarize,
)
from ._client import Level, LoadGenerator, distinct_prompt
from .result import EngineInfo, Workload, ratio_key

log = progress

AGENT = "assistant"
TOKEN = "bench-gateway-token"  # the gateway's one bearer token for this run
VLLM_CONTEXT = 1024  # max_model_len: the prompt (64 tokens with the template) + 64 + room
ADDRESS_TIMEOUT = 10.0  # seconds for the gateway actor to say where it listens


def _config(engine: EngineKind, workload: Workload, state_dir: str, model: str | None) -> Config:
    """A system as a user would configure it: one LLM agent, the gateway on a free port."""
    top = max(workload.concurrency)
    if engine == "fake":
        engine_args: dict[str, Any] = {
            "token_delay": workload.token_delay_s,
            "max_num_seqs": max(64, top),
            "max_model_len": 2048,
            # every answer is output_tokens long, the agent's as well as the raw model's
            "eos_after": [workload.output_tokens, workload.output_tokens],
        }
    else:
        # prefix caching off: every request pays its prefill, as distinct prompts would (as in
        # `bench inference`); both paths share the engine, so either way they pay the same
        engine_args = {
            "max_model_len": VLLM_CONTEXT,
            "max_num_seqs": max(64, top),
            "enable_prefix_caching": False,
        }
    return Config(
        system=SystemConfig(name="bench-gateway", log_level="error", state_dir=state_dir),
        inference=InferenceConfig(engine=engine, model=model, engine_args=engine_args),
        agents=(
            AgentConfig(
                name=AGENT,
                kind="llm",
                system_prompt="You are a helpful assistant.",
                max_steps=1,
                max_tokens=workload.output_tokens,
                temperature=0.0,
            ),
        ),
        gateway=GatewayConfig(
            host="127.0.0.1",
            port=0,
            allow_raw_model=True,
            max_concurrent=max(256, 2 * top),
            max_connections=max(1000, 2 * top),
            tokens=(GatewayToken(name="bench", token=TOKEN),),
        ),
    )


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
    rng: random.Random = field(default_factory=random.Random)  # the actor series' prompts

    def level(self, series: str, concurrency: int, requests: int) -> Level:
        path, mode, variant = _parts(series)
        w = self.workload
        return Level(
            base_url=self.url,
            api_key=TOKEN,
            model=AGENT if path == "agent" else self.model,
            prompt=w.prompt,
            max_tokens=w.output_tokens,
            stream=mode == "stream",
            concurrency=concurrency,
            requests=requests,
            ignore_eos=path == "raw",
            distinct=variant != "shared",
        )

    async def series(
        self, series: str, concurrency: int, requests: int, phase: str = ""
    ) -> dict[str, float]:
        """One series at one level: its stats (``summarize``), failures and client CPU."""
        if series.startswith("actor"):
            prompts = None
            if _parts(series)[2] != "shared":
                w, rng = self.workload, self.rng
                prompts = [Prompt(distinct_prompt(w.prompt, rng)) for _ in range(requests)]
            timed = await run_actor(self.agents, concurrency, requests, prompts)
            return {**timed.summary(), "failed": 0.0}
        cpu = process_time()  # this process: the gateway, the actors, the engine's client side
        done = await self.client.run(self.level(series, concurrency, requests))
        cpu = process_time() - cpu
        if done.failed:
            key = f"{series} {phase}".strip()
            self.failed[key] = self.failed.get(key, 0) + done.failed
            kept = self.errors.setdefault(key, [])
            kept += done.errors[: max(0, 2 - len(kept))]
        return {
            **_summary([s.request_sample() for s in done.samples], done.seconds, cpu),
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
                log.info(
                    "bench.level",
                    engine=self.engine,
                    repeat=r + 1,
                    of=repeats,
                    concurrency=concurrency,
                    requests=n,
                    **{
                        f"{s}_req_per_s": round(v.get("req_per_s", math.nan), 1)
                        for s, v in stats.items()
                    },
                    gateway_vs_actor=round(ratio, 3),
                )


def _summary(samples: list[RequestSample], seconds: float, cpu: float) -> dict[str, float]:
    return summarize(samples, seconds, cpu) if samples and seconds > 0 else {"req_per_s": 0.0}


def _parts(series: str) -> tuple[str, str, str]:
    """``raw_stream_shared`` -> (path, mode, variant): ``shared``, or ``""`` (distinct)."""
    path, _, rest = series.partition("_")
    mode, _, variant = rest.partition("_")
    return path, mode, variant


async def measure_engine(
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
        await wait_engine_ready(system.actors, inference)
        start_seconds = perf_counter() - began
        log.info("bench.engine_ready", engine=engine, seconds=round(start_seconds, 1))
        url = await _gateway_url(system)
        raw_model = _raw_model(await client.models(url, TOKEN))
        # what the gateway asks of the inference actor for a raw-model request of the workload
        gen = Generate(
            messages=(ChatMessage("user", workload.prompt),),
            max_tokens=workload.output_tokens,
            temperature=0.0,
            stream=True,
            ignore_eos=True,
        )
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
        kind=engine,
        model=raw_model,
        agent=AGENT,
        version=version,
        settings=dict(config.inference.engine_args) if config.inference else {},
        start_seconds=start_seconds,
    )


async def _close_when_started(starting: asyncio.Task[LoadGenerator]) -> None:
    try:
        client = await starting
    except Exception:  # it failed too; an earlier error is the one to report
        return
    await client.close()


def _vllm_version() -> str:
    from actoros.inference.vllm_direct import vllm_version

    return vllm_version()

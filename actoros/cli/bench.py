"""``actoros bench NAME``: one parser for every benchmark (``actoros.bench.NAME.run.main``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._common import (
    Subcommands,
    UsageError,
    concurrency_levels,
    import_part,
    positive_int,
)

VLLM_MODEL_HELP = (
    "a pulled model or a model folder for the vLLM run (default: the CPU default model)"
)


def _benchmark(
    benchmarks: Subcommands, name: str, help: str, description: str, quick: str
) -> argparse.ArgumentParser:
    """A ``bench`` subcommand with the options every benchmark has: ``--quick``, ``--out``."""
    parser = benchmarks.add_parser(name, help=help, description=description)
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("benchmarks/results"),
        metavar="DIR",
        help="where results are written (default: %(default)s)",
    )
    return parser


def _add_repeats(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--repeats", type=positive_int, metavar="N", help="runs per measurement (default: 3)"
    )


def _add_model(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--model", metavar="NAME|DIR", help=help)


def _add_concurrency(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--concurrency",
        type=concurrency_levels,
        metavar="N,N,...",
        help="concurrency levels (default: 1,4,16,32,64)",
    )


def add_bench(subcommands: Subcommands) -> None:
    bench = subcommands.add_parser(
        "bench", help="measure actoros", description="Run a benchmark; results go to --out."
    )
    benchmarks = bench.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    core = _benchmark(
        benchmarks,
        "core",
        help="the runtime vs raw asyncio and peer actor libraries",
        description="Measure ask/tell/spawn/restart against raw asyncio and peer runtimes; "
        "write core.json, core.md and core.png.",
        quick="smaller runs (about 30 s)",
    )
    _add_repeats(core)
    core.set_defaults(handler=_bench_core)
    inference = _benchmark(
        benchmarks,
        "inference",
        help="the inference actor vs direct vLLM vs one request at a time",
        description="Drive one engine three ways — direct AsyncLLM from N tasks, the inference "
        "actor from N agent actors, one request at a time — over a concurrency sweep; write "
        "inference.json, inference.md and inference.png.",
        quick="the tiny random model (under 3 minutes)",
    )
    _add_repeats(inference)
    inference.add_argument(
        "--engine",
        choices=("vllm", "fake"),
        default="vllm",
        help="vllm, or fake: no vLLM needed, measures the runtime only (default: %(default)s)",
    )
    _add_model(
        inference,
        "a pulled model or a model folder (default: the CPU default model; --quick: the "
        "tiny random model)",
    )
    _add_concurrency(inference)
    inference.set_defaults(handler=_bench_inference)
    agents = _benchmark(
        benchmarks,
        "agents",
        help="1,000 rule agents and 32 LLM agents processing a workload end to end",
        description="Run 1,000 rule agents, then 32 LLM agents on the fake engine, then the "
        "same 32 on SmolLM2 (CPU vLLM), each through a workload end to end; write tasks/s and "
        "p50/p99 task latency to agents.json, agents.md and agents.png.",
        quick="fewer tasks, fake engine only (under a minute)",
    )
    agents.add_argument(
        "--engine",
        choices=("vllm", "fake"),
        default="vllm",
        help="vllm: also run the LLM agents on SmolLM2 (skipped with a note when vLLM or the "
        "model is missing); fake: the fake engine only (default: %(default)s)",
    )
    _add_model(agents, VLLM_MODEL_HELP)
    agents.set_defaults(handler=_bench_agents)
    gateway = _benchmark(
        benchmarks,
        "gateway",
        help="the OpenAI-compatible gateway under load from the openai client",
        description="Drive the gateway with the official openai client (its own process) at "
        "concurrency 1-64 — an LLM agent and the raw model on the fake engine, the raw model "
        "on SmolLM2 against the inference actor alone; write requests/s, latency p50/p99 and "
        "the gateway/actor tokens/s ratio to gateway.json, gateway.md and gateway.png.",
        quick="fake engine only, fewer requests (under a minute)",
    )
    gateway.add_argument(
        "--engine",
        choices=("fake", "vllm", "both"),
        default="both",
        help="both: the fake engine, then SmolLM2 (skipped with a note when vLLM or the model "
        "is missing); fake; or vllm (default: %(default)s)",
    )
    _add_repeats(gateway)
    _add_model(gateway, VLLM_MODEL_HELP)
    _add_concurrency(gateway)
    gateway.set_defaults(handler=_bench_gateway)
    serve = _benchmark(
        benchmarks,
        "serve",
        help="the gateway against `vllm serve` under vLLM's own benchmark client",
        description="Start the gateway (actoros run, the raw model) and `vllm serve` with the "
        "same engine arguments, one at a time and alternated, and drive each with `vllm bench "
        "serve` (random prompts, --ignore-eos) at concurrency 1-64; write tokens/s, TTFT, "
        "TPOT, ITL and E2EL p50/p99 and the gateway/vllm-serve ratios to serve.json, serve.md "
        "and serve.png. Needs vLLM and the model.",
        quick="concurrency 1 and 16 only",
    )
    serve.add_argument(
        "--repeats", type=positive_int, metavar="N", help="runs per measurement (default: 2)"
    )
    _add_model(serve, VLLM_MODEL_HELP)
    _add_concurrency(serve)
    serve.add_argument(
        "--endpoint",
        choices=("chat", "completions"),
        default="chat",
        help="the API both servers are driven through: /v1/chat/completions, or "
        "/v1/completions (vllm bench serve's default) (default: %(default)s)",
    )
    serve.set_defaults(handler=_bench_serve)
    chaos = _benchmark(
        benchmarks,
        "chaos",
        help="the system under faults: kills, stops, a hung tool, a second process",
        description="Run a fake-engine system as real 'actoros run' processes under faults "
        "(SIGKILL, SIGTERM and a double Ctrl-C at random moments, each followed by reruns; a "
        "hung user tool; a second process on the same state dir; in a full run, SIGKILL of "
        "vLLM's EngineCore) and count per fault the tasks lost, wrong and run twice, and the "
        "recovery time; write chaos.json, chaos.md and chaos.png.",
        quick="fewer tasks and repeats, no vLLM (under 2 minutes)",
    )
    chaos.add_argument(
        "--engine",
        choices=("vllm", "fake"),
        default="vllm",
        help="vllm: a full run also kills vLLM's EngineCore (skipped with a note when vLLM or "
        "the model is missing); fake: leave that fault out (default: %(default)s)",
    )
    _add_model(chaos, VLLM_MODEL_HELP)
    chaos.add_argument(
        "--seed", type=int, default=0, metavar="N", help="seed of the fault moments (default: 0)"
    )
    chaos.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="keep every run's folder (config, results, stderr, state dir) in DIR",
    )
    chaos.set_defaults(handler=_bench_chaos)
    cluster = _benchmark(
        benchmarks,
        "cluster",
        help="actoros nodes on a local Ray cluster: transport, scaling, node loss",
        description="On a local Ray cluster of two one-CPU Ray nodes, measure cross-node ask "
        "and tell against Ray's own actor calls between the same processes, the same CPU-bound "
        "work on one node and on two, and the recovery time of a SIGKILLed node; write "
        "cluster.json, cluster.md and cluster.png. Needs Ray (the 'cluster' extra).",
        quick="small counts, one repeat (well under a minute)",
    )
    cluster.add_argument(
        "--repeats",
        type=positive_int,
        metavar="N",
        help="runs per measurement (default: 3; --quick: 1)",
    )
    cluster.set_defaults(handler=_bench_cluster)


def _run_bench(args: argparse.Namespace, name: str, **options: Any) -> int:
    """Run ``actoros.bench.<name>.run.main`` with ``--quick``, ``--out`` and ``options``; a
    ``BenchError`` (no vLLM, no model: its message says what to do) is the user's to fix."""
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a directory")
    bench = import_part(f"actoros.bench.{name}.run", f"actoros bench {name}")
    from actoros.bench._common import BenchError

    try:
        return int(bench.main(quick=args.quick, out=out, **options))
    except BenchError as exc:
        raise UsageError(str(exc)) from exc


def _bench_core(args: argparse.Namespace) -> int:
    return _run_bench(args, "core", repeats=args.repeats)


def _bench_inference(args: argparse.Namespace) -> int:
    return _run_bench(
        args,
        "inference",
        repeats=args.repeats,
        engine=args.engine,
        model=args.model,
        concurrency=args.concurrency,
    )


def _bench_agents(args: argparse.Namespace) -> int:
    return _run_bench(args, "agents", engine=args.engine, model=args.model)


def _bench_gateway(args: argparse.Namespace) -> int:
    return _run_bench(
        args,
        "gateway",
        engine=args.engine,
        repeats=args.repeats,
        model=args.model,
        concurrency=args.concurrency,
    )


def _bench_serve(args: argparse.Namespace) -> int:
    return _run_bench(
        args,
        "serve",
        repeats=args.repeats,
        model=args.model,
        concurrency=args.concurrency,
        endpoint=args.endpoint,
    )


def _bench_chaos(args: argparse.Namespace) -> int:
    keep: Path | None = args.keep
    if keep is not None and keep.exists() and not keep.is_dir():
        raise UsageError(f"--keep {keep}: exists and is not a directory")
    return _run_bench(
        args, "chaos", engine=args.engine, model=args.model, seed=args.seed, keep=keep
    )


def _bench_cluster(args: argparse.Namespace) -> int:
    return _run_bench(args, "cluster", repeats=args.repeats)

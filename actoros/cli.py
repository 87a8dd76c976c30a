"""The ``actoros`` command line (also ``python -m actoros``).

Each subcommand is one ``add_<name>(subcommands)`` function that adds its parser and sets
``handler`` to a function ``(args) -> int`` (the exit status); an ``async def`` handler runs on
uvloop through ``actoros.run``. ``COMMANDS`` lists them in ``--help`` order. Handlers import
heavy parts (benchmarks, inference) when they run, so ``actoros --help`` stays fast and a part
that is missing breaks only the command that needs it.

Errors: what the user can fix (``UsageError``, a missing file, an invalid config or YAML file,
a bad option) prints one line ``actoros: error: ...`` and exits 2; anything else prints one
line and exits 1. ``--debug`` adds the traceback. Ctrl-C exits 130 without a traceback.
Results go to stdout, logs to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import msgspec
import yaml

# Registers the after-fork hook that arms a parent-death signal in the engine's processes. Here,
# at the top: a process that multiprocessing spawns re-imports the main module (this CLI), and
# only an import during that runs the hook in the child (see the module's docstring).
import actoros.inference.processes  # noqa: F401

if TYPE_CHECKING:
    from actoros.stopping import Interrupts

__all__ = ["COMMANDS", "UsageError", "build_parser", "main"]

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("auto", "console", "json")


class UsageError(Exception):
    """The user asked for something that cannot be done as asked (exit status 2)."""


USER_ERRORS: tuple[type[BaseException], ...] = (
    UsageError,
    FileNotFoundError,
    msgspec.ValidationError,
    yaml.YAMLError,
)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are ``UsageError``s, reported in one line by ``main``."""

    def error(self, message: str) -> Any:  # argparse prints usage and exits; we raise instead
        raise UsageError(f"{message} (see '{self.prog} --help')")


Subcommands = Any  # argparse's _SubParsersAction, which it does not export


# -- subcommands ---------------------------------------------------------------------------


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
        "--repeats", type=_positive_int, metavar="N", help="runs per measurement (default: 3)"
    )


def _add_model(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--model", metavar="NAME|DIR", help=help)


def _add_concurrency(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--concurrency",
        type=_concurrency_levels,
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


def _run_bench(args: argparse.Namespace, name: str, **options: Any) -> int:
    """Run ``actoros.bench.<name>.run.main`` with ``--quick``, ``--out`` and ``options``; a
    ``BenchError`` (no vLLM, no model: its message says what to do) is the user's to fix."""
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a directory")
    bench = _import(f"actoros.bench.{name}.run", f"actoros bench {name}")
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


def _bench_chaos(args: argparse.Namespace) -> int:
    keep: Path | None = args.keep
    if keep is not None and keep.exists() and not keep.is_dir():
        raise UsageError(f"--keep {keep}: exists and is not a directory")
    return _run_bench(
        args, "chaos", engine=args.engine, model=args.model, seed=args.seed, keep=keep
    )


def add_model(subcommands: Subcommands) -> None:
    model = subcommands.add_parser(
        "model", help="manage local models", description="Download and list local models."
    )
    actions = model.add_subparsers(dest="action", metavar="ACTION", required=True)
    pull = actions.add_parser(
        "pull",
        help="download a model and prepare it for vLLM",
        description="Download a model into the local cache (~/.cache/actoros/models, or "
        "$ACTOROS_HOME) and print its folder.",
    )
    pull.add_argument("name", nargs="?", help="model name (default: the CPU default model)")
    pull.set_defaults(handler=_model_pull)
    listing = actions.add_parser("list", help="list the models in the local cache")
    listing.set_defaults(handler=_model_list)


def _model_pull(args: argparse.Namespace) -> int:
    models = _import("actoros.inference.models", "actoros model")
    name = args.name if args.name is not None else models.DEFAULT_MODEL
    try:
        path = models.pull(name)
    except models.ModelError as exc:  # unknown name, no network, ...: the message says what to do
        raise UsageError(str(exc)) from exc
    sys.stdout.write(f"{path}\n")
    return 0


def _model_list(args: argparse.Namespace) -> int:
    models = _import("actoros.inference.models", "actoros model")
    found = models.list_models()
    if not found:
        sys.stderr.write("no models in the local cache; run 'actoros model pull'\n")
    for model in found:
        sys.stdout.write(f"{model}\n")
    return 0


def add_validate(subcommands: Subcommands) -> None:
    validate = subcommands.add_parser(
        "validate",
        help="check a config file",
        description="Check a config file; print 'FILE: ok (...)' and exit 0, or print one "
        "line per problem ('FILE:LINE: PATH: problem') and exit 2.",
    )
    validate.add_argument("file", type=Path, metavar="FILE", help="the config file (YAML)")
    validate.set_defaults(handler=_validate)


def _load_config(args: argparse.Namespace) -> Any:
    """``args.file`` as a typed ``Config``; ``None`` once its problems are on stderr, one
    line each (with ``--debug``, the traceback first)."""
    from actoros.config import ConfigError, load_config

    try:
        return load_config(args.file)
    except ConfigError as exc:
        if args.debug:
            traceback.print_exception(exc, file=sys.stderr)
        for line in exc.lines():
            sys.stderr.write(f"{line}\n")
        return None


def _validate(args: argparse.Namespace) -> int:
    config = _load_config(args)
    if config is None:
        return 2
    sys.stdout.write(
        f"{args.file}: ok ({len(config.agents)} agents, {len(config.groups)} groups)\n"
    )
    return 0


def add_run(subcommands: Subcommands) -> None:
    run = subcommands.add_parser(
        "run",
        help="run a system from a config file",
        description="Start the system a config file describes (kernel services, agent groups, "
        "model), run its workload and write one JSON line per task; with no workload, serve "
        "until Ctrl-C or SIGTERM. Exit 2 on a bad config, 1 on a failure at run time.",
    )
    run.add_argument("file", type=Path, metavar="FILE", help="the config file (YAML)")
    run.add_argument(
        "--out", type=_output_file, metavar="FILE", help="write results to FILE (default: stdout)"
    )
    run.add_argument(
        "--chat",
        metavar="AGENT",
        help="chat with AGENT on the terminal instead of the workload (replies stream as "
        "they are generated)",
    )
    run.add_argument(
        "--fresh",
        action="store_true",
        help="run the workload from scratch: forget the tasks an earlier run of this config "
        "finished (by default they are answered from the scheduler's journal, not asked again)",
    )
    run.add_argument(
        "--shutdown-timeout",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="seconds the shutdown may take before actors are cancelled (default: %(default)s)",
    )
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from actoros.stopping import ChildProcesses, Interrupts

    # Ctrl-C and SIGTERM: the first stops gracefully, the second at once (actoros.stopping);
    # on every way out, the processes the run started (vLLM's engine) are ended first
    children = ChildProcesses()
    with Interrupts(children) as interrupts:
        try:
            return _run_config(args, interrupts)
        finally:
            interrupts.detach()
            children.end(grace=0.0 if interrupts.forced else 5.0)


def _run_config(args: argparse.Namespace, interrupts: Interrupts) -> int:
    config = _load_config(args)
    if config is None:
        return 2
    from actoros import run
    from actoros.config import ConfigError

    try:
        return int(run(_run_async(args, config, interrupts)))
    except ConfigError as exc:  # what the app found when assembling the system
        if args.debug:
            traceback.print_exception(exc, file=sys.stderr)
        for line in exc.lines():
            sys.stderr.write(f"{args.file}: {line.partition(': ')[2]}\n")
        return 2


async def _run_async(args: argparse.Namespace, config: Any, interrupts: Interrupts) -> int:
    import asyncio
    import os

    stop = asyncio.Event()
    interrupts.attach(stop)  # the first signal sets stop, the second cancels this task
    # results own stdout: vLLM (and its engine processes, which inherit this) logs to stderr
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    try:
        app = importlib.import_module("actoros.app")
    except ModuleNotFoundError as exc:  # a part of actoros (agents, kernel, ...) is missing
        if not (exc.name or "").startswith("actoros"):
            raise UsageError(f"actoros run needs the Python package {exc.name!r}") from exc
        raise UsageError(
            f"actoros run is not available in this installation ({exc.name} is missing)"
        ) from exc
    try:
        if args.chat is not None:
            if sys.stdin.isatty():
                sys.stderr.write(f"chatting with {args.chat}; end with Ctrl-D\n")

            def write(text: str) -> None:
                sys.stdout.write(text)
                sys.stdout.flush()

            await app.chat(
                config, args.chat, read_line=sys.stdin.readline, write=write, stop_event=stop
            )
            return 0
        progress = sys.stderr if sys.stderr.isatty() and config.workload is not None else None
        if args.out is not None:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            with args.out.open("w", encoding="utf-8") as out:
                summary = await app.run_system(
                    config,
                    out=out,
                    stop_event=stop,
                    progress=progress,
                    shutdown_timeout=args.shutdown_timeout,
                    fresh=args.fresh,
                )
        else:
            summary = await app.run_system(
                config,
                out=sys.stdout,
                stop_event=stop,
                progress=progress,
                shutdown_timeout=args.shutdown_timeout,
                fresh=args.fresh,
            )
    except asyncio.CancelledError:
        if not interrupts.forced:
            raise
        if config.workload is not None and args.chat is None:
            sys.stderr.write("actoros: interrupted (a rerun resumes the unfinished tasks)\n")
        return 130
    if summary.tasks and summary.ok + summary.failed < summary.tasks:
        sys.stderr.write(
            f"actoros: interrupted: {summary.ok + summary.failed}/{summary.tasks} tasks done "
            "(a rerun resumes the rest)\n"
        )
        return 130
    return 0


def add_top(subcommands: Subcommands) -> None:
    top = subcommands.add_parser(
        "top",
        help="watch a running system's actors in the terminal",
        description="Show the supervision tree of a running system (paths, kind, state, "
        "restarts, mailbox depth, messages processed) and its inference numbers, read from its "
        "gateway's /api/tree and refreshed until Ctrl-C. CONFIG_OR_URL: the gateway's URL "
        "(http://HOST:PORT) or the config file the system runs (its gateway: section says "
        "where). Exit 1 when the gateway cannot be reached, 2 on a usage error.",
    )
    top.add_argument("target", metavar="CONFIG_OR_URL", help="a gateway URL or a config file")
    top.add_argument(
        "--interval",
        type=_positive_float,
        default=1.0,
        metavar="SECONDS",
        help="seconds between refreshes (default: %(default)s)",
    )
    top.add_argument("--once", action="store_true", help="print one frame and exit")
    top.add_argument(
        "--token",
        metavar="TOKEN",
        help="the gateway's bearer token (default: $ACTOROS_TOKEN, else the config's first)",
    )
    top.set_defaults(handler=_top)


def _top(args: argparse.Namespace) -> int:
    import os

    top = _import("actoros.gateway.top", "actoros top")
    target: str = args.target
    token = args.token or os.environ.get("ACTOROS_TOKEN") or None
    hint = "CONFIG"
    try:
        if target.startswith(("http://", "https://")):
            url = target.rstrip("/")
        else:
            from actoros.config import ConfigError, load_config

            try:
                config = load_config(Path(target))
            except ConfigError as exc:
                if args.debug:
                    traceback.print_exception(exc, file=sys.stderr)
                for line in exc.lines():
                    sys.stderr.write(f"{line}\n")
                return 2
            url = top.gateway_url(config, source=target)
            token = token or top.config_token(config)
            hint = target
        return int(
            top.watch(url, token=token, interval=args.interval, once=args.once, start_hint=hint)
        )
    except top.TopError as exc:
        sys.stderr.write(f"actoros: error: {exc}\n")
        return exc.status


COMMANDS: tuple[Callable[[Subcommands], None], ...] = (
    add_bench,
    add_model,
    add_run,
    add_top,
    add_validate,
)


# -- the parser and main -------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from actoros import __version__

    parser = _Parser(
        prog="actoros",
        description="An operating system for LLM agents, built on actors.",
        parents=[_global_options(defaults=True)],
    )
    parser.add_argument("--version", action="version", version=f"actoros {__version__}")
    subcommands = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_SubParser
    )
    for add in COMMANDS:
        add(subcommands)
    return parser


class _SubParser(_Parser):
    """Subcommand parsers accept the global options too (``actoros bench core --debug``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["parents"] = [*kwargs.get("parents", ()), _global_options(defaults=False)]
        super().__init__(*args, **kwargs)


def _global_options(*, defaults: bool) -> argparse.ArgumentParser:
    # Subcommands repeat these with SUPPRESS defaults, so an option given before the
    # subcommand is not reset by the subcommand parser's default.
    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--debug", action="store_true", default=default(False), help="show tracebacks on errors"
    )
    options.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default=default("info"),
        help="drop log lines below this level (default: info)",
    )
    options.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=default("auto"),
        help="console, json, or auto: console on a terminal, else json (default: auto)",
    )
    return options


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # known even when parsing fails
    try:
        args = build_parser().parse_args(argv)
        debug = args.debug
        from actoros.logging import configure

        configure(level=args.log_level, fmt=args.log_format)
        status = args.handler(args)
        if inspect.isawaitable(status):
            from actoros import run

            status = run(status)
        return int(status)
    except KeyboardInterrupt:
        return 130
    except USER_ERRORS as exc:
        return _fail(exc, 2, debug)
    except Exception as exc:
        return _fail(exc, 1, debug)


def _fail(exc: BaseException, status: int, debug: bool) -> int:
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    if status == 2:
        message = _describe(exc)
    else:
        message = f"{type(exc).__name__}: {_describe(exc)}"
        if not debug:
            message += " (run with --debug for the traceback)"
    from actoros.config.problems import one_line  # a file name may hold a newline

    sys.stderr.write(f"actoros: error: {one_line(message)}\n")
    return status


def _describe(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError) and exc.filename is not None:
        return f"{exc.strerror or 'no such file'}: {exc.filename}"
    # YAML errors span several lines (the problem, then where); keep one
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return text or type(exc).__name__


def _import(module: str, command: str) -> ModuleType:
    """Import ``module`` for ``command``; a missing part is the user's error, said in one line."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing == module or module.startswith(missing + "."):
            raise UsageError(
                f"{command} is not available in this installation ({module} is missing)"
            ) from exc
        raise UsageError(
            f"{command} needs the Python package {missing!r}, which is not installed"
        ) from exc


def _concurrency_levels(text: str) -> tuple[int, ...]:
    levels = []
    for part in text.split(","):
        try:
            levels.append(_positive_int(part.strip()))
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentTypeError(f"concurrency level {exc}") from None
    return tuple(levels)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


MAX_SECONDS = 86_400.0


def _seconds(text: str) -> float:
    """A finite number of seconds from 0 to ``MAX_SECONDS`` (a day): never nan, -5 or inf."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= MAX_SECONDS:  # false for nan too
        raise argparse.ArgumentTypeError(
            f"must be a number of seconds from 0 to {MAX_SECONDS:g}, got {text}"
        )
    return value


def _output_file(text: str) -> Path:
    """A file that can be written: not a folder, and not under a file."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory: name a file")
    above = next((p for p in path.absolute().parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is under {above}, which is a file")
    return path


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value

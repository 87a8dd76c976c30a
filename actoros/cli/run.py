"""``actoros run FILE``: start a system, run its workload or ``--chat``, stop it on signals."""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._common import Subcommands, UsageError, load_config_or_report, output_file, seconds

if TYPE_CHECKING:
    from actoros.stopping import Interrupts


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
        "--out", type=output_file, metavar="FILE", help="write results to FILE (default: stdout)"
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
        type=seconds,
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
    config = load_config_or_report(args)
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

"""``actoros eval CONFIG --labels FILE``: score what a config's agents answer (issue 11)."""

from __future__ import annotations

import argparse
import shlex
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._common import Subcommands, UsageError, import_part

if TYPE_CHECKING:
    from actoros.stopping import Interrupts

# both: constrained first, the mode issue 11's targets are about
MODES = {"off": (False,), "on": (True,), "both": (True, False)}


def add_eval(subcommands: Subcommands) -> None:
    parser = subcommands.add_parser(
        "eval",
        help="score a config's answers against labels",
        description="Run the workload of each CONFIG (its state in a temporary folder: your "
        "journal is untouched) and score every answer against the labels file given for it "
        "(the n-th --labels for the n-th CONFIG): expected facts (regexes), the tools that "
        "should have been used. Reports task success, protocol validity (the share of model "
        "turns that parse), steps, tokens and latency per task, with constraints off, on, or "
        "both, to DIR/eval.json, eval.md and eval.png (rewritten after each run, so a "
        "stopped evaluation keeps what it measured). Exit 2 on a bad config or labels file, 1 "
        "on a failure at run time.",
    )
    parser.add_argument(
        "configs", type=Path, nargs="+", metavar="CONFIG", help="a config file (YAML)"
    )
    parser.add_argument(
        "--labels",
        type=Path,
        action="append",
        required=True,
        metavar="FILE",
        help="the labels of a CONFIG's tasks (YAML); once per CONFIG, in the same order",
    )
    parser.add_argument(
        "--constrain",
        choices=tuple(MODES),
        default="both",
        help="run the agents with the grammar-constrained protocol off, on, or both, one "
        "after the other (default: %(default)s)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("benchmarks/results"),
        metavar="DIR",
        help="where eval.json, eval.md and eval.png go (default: %(default)s)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="check the configs and labels files and exit, without running anything",
    )
    parser.set_defaults(handler=_eval)


def _eval(args: argparse.Namespace) -> int:
    if len(args.labels) != len(args.configs):
        raise UsageError(
            f"{len(args.configs)} CONFIG(s) and {len(args.labels)} --labels: give one "
            "--labels FILE per CONFIG, in the same order"
        )
    pairs = []
    for config_path, labels_path in zip(args.configs, args.labels, strict=True):
        loaded = _load(args, config_path, labels_path)
        if loaded is None:
            return 2
        pairs.append((config_path, labels_path, *loaded))
    if args.check:
        for config_path, labels_path, _, labels in pairs:
            count = len(labels.tasks)
            sys.stdout.write(f"{labels_path}: ok ({count} labelled tasks of {config_path})\n")
        return 0
    from actoros.stopping import ChildProcesses, Interrupts

    children = ChildProcesses()  # vLLM's engine processes end with the run, whatever happens
    with Interrupts(children) as interrupts:
        try:
            from actoros import run

            return int(run(_eval_async(args, pairs, interrupts)))
        finally:
            interrupts.detach()
            children.end(grace=0.0 if interrupts.forced else 5.0)


def _load(args: argparse.Namespace, config_path: Path, labels_path: Path) -> Any:
    """The config and its checked labels; ``None`` once the problems are on stderr."""
    from actoros.config import ConfigError, load_config

    evaluation = import_part("actoros.app.eval", "actoros eval")
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        if args.debug:
            traceback.print_exception(exc, file=sys.stderr)
        for line in exc.lines():
            sys.stderr.write(f"{line}\n")
        return None
    if config.workload is None:
        raise UsageError(f"{config_path} has no workload: actoros eval runs a config's tasks")
    try:
        labels = evaluation.labels_from(_read_yaml(labels_path), str(labels_path))
        tasks = evaluation.workload_task_ids(config)
        evaluation.check_labels(labels, str(labels_path), tasks, evaluation.config_tools(config))
    except evaluation.LabelsError as exc:
        for line in exc.lines():
            sys.stderr.write(f"{line}\n")
        return None
    return config, labels


def _read_yaml(path: Path) -> Any:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"labels file {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"labels file {path}: cannot be read ({exc})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f":{where.line + 1}" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise UsageError(f"labels file {path}{line}: not YAML: {problem}") from None


async def _eval_async(args: argparse.Namespace, pairs: list[Any], interrupts: Interrupts) -> int:
    import asyncio
    import os

    from actoros.config import ConfigError

    evaluation = import_part("actoros.app.eval", "actoros eval")
    stop = asyncio.Event()
    interrupts.attach(stop)
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    systems = []
    try:
        for config_path, labels_path, config, labels in pairs:
            modes = []
            for constrain in MODES[args.constrain]:
                try:
                    run = await evaluation.evaluate(config, constrain=constrain, stop=stop)
                except ConfigError as exc:  # what the app found when assembling the system
                    if args.debug:
                        traceback.print_exception(exc, file=sys.stderr)
                    for line in exc.lines():
                        sys.stderr.write(f"{config_path}: {line.partition(': ')[2]}\n")
                    return 2
                if stop.is_set():
                    sys.stderr.write("actoros: interrupted: no report written\n")
                    return 130
                modes.append(evaluation.mode_result(run, labels))
                system = evaluation.SystemResult(
                    system=config.system.name,
                    config=str(config_path),
                    labels=str(labels_path),
                    about=labels.about,
                    modes=tuple(modes),
                )
                # after every run, so a long evaluation stopped later keeps what it measured
                evaluation.write_report(
                    evaluation.new_report(_command(args), [*systems, system]), args.out
                )
            systems.append(system)
    except asyncio.CancelledError:
        if not interrupts.forced:
            raise
        return 130
    report = evaluation.new_report(_command(args), systems)
    for path in evaluation.write_report(report, args.out):
        sys.stdout.write(f"{path}\n")
    return 0


def _command(args: argparse.Namespace) -> str:
    """The command line of this run, as the report states it."""
    words = ["actoros", "eval", *map(str, args.configs)]
    for labels in args.labels:
        words += ["--labels", str(labels)]
    words += ["--constrain", args.constrain, "--out", str(args.out)]
    return " ".join(shlex.quote(word) for word in words)

"""The parser of every subcommand, the global options and ``main``: the exit status."""

from __future__ import annotations

import argparse
import inspect
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from ._common import USER_ERRORS, Parser, Subcommands
from .bench import add_bench
from .commands import add_model, add_top, add_validate
from .eval import add_eval
from .run import add_run

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


LOG_FORMATS = ("auto", "console", "json")


COMMANDS: tuple[Callable[[Subcommands], None], ...] = (
    add_bench,
    add_eval,
    add_model,
    add_run,
    add_top,
    add_validate,
)


def build_parser() -> argparse.ArgumentParser:
    from actoros import __version__

    parser = Parser(
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


class _SubParser(Parser):
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

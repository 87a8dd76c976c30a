"""What the subcommands share: the user's errors, the parser that raises them, option types,
loading a config with its problems reported one line each, importing a part on demand."""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
import yaml


class UsageError(Exception):
    """The user asked for something that cannot be done as asked (exit status 2)."""


USER_ERRORS: tuple[type[BaseException], ...] = (
    UsageError,
    FileNotFoundError,
    msgspec.ValidationError,
    yaml.YAMLError,
)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are ``UsageError``s, reported in one line by ``main``."""

    def error(self, message: str) -> Any:  # argparse prints usage and exits; we raise instead
        raise UsageError(f"{message} (see '{self.prog} --help')")


Subcommands = Any  # argparse's _SubParsersAction, which it does not export


def load_config_or_report(args: argparse.Namespace) -> Any:
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


def import_part(module: str, command: str) -> ModuleType:
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


def concurrency_levels(text: str) -> tuple[int, ...]:
    levels = []
    for part in text.split(","):
        try:
            levels.append(positive_int(part.strip()))
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentTypeError(f"concurrency level {exc}") from None
    return tuple(levels)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


MAX_SECONDS = 86_400.0


def seconds(text: str) -> float:
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


def output_file(text: str) -> Path:
    """A file that can be written: not a folder, and not under a file."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory: name a file")
    above = next((p for p in path.absolute().parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is under {above}, which is a file")
    return path


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value

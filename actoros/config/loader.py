"""Reading a config: YAML with line numbers → msgspec decode → checks across fields.

The file is read by ``files.read_text`` (a regular file, at most ``MAX_CONFIG_BYTES``, UTF-8).
The YAML is composed into a node tree first, so the line of every key and list item is known
by its path; the data is then decoded with ``msgspec.convert``, which stops at its first
error (reported with its path and line); a config that decodes is then checked across fields
and every problem found is reported together.
Composing (``composing.py``) is bounded in depth and in what aliases expand to; decode
errors are put in words by ``decoding.py``.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from .checks import check
from .composing import compose
from .decoding import decode_problems
from .files import MIB, read_text
from .problems import ConfigError, Key, Problem, line_of, render_key
from .schema import Config

MAX_CONFIG_BYTES = 1 * MIB
"""A config describes a system (1,000 agents are about 150 KB); long task lists belong in a
workload file. Composing YAML in Python takes seconds per MiB, so this also bounds the time."""


def load_config(path: str | Path) -> Config:
    """Read, decode and check the config file at ``path``.

    Raises ``FileNotFoundError`` when it does not exist and ``ConfigError`` (all problems)
    when it is not a valid config. Relative paths in it are resolved against its folder.
    """
    path = Path(path)
    text = read_text(path, limit=MAX_CONFIG_BYTES, what="config file")
    return parse_config(text, source=str(path), base_dir=path.resolve().parent)


def parse_config(text: str, *, source: str = "<config>", base_dir: Path | None = None) -> Config:
    """Decode and check config ``text``; ``source`` names it in problems (see ``load_config``)."""
    base = (base_dir or Path.cwd()).resolve()
    data, lines, problems = compose(text)
    if problems:
        raise ConfigError(source, problems)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, [Problem("", 1, "expected a mapping of sections at the top")])
    try:
        config = msgspec.convert(data, Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(source, decode_problems(data, str(exc), lines)) from None
    config, problems = _resolve_paths(config, base, lines)
    if problems:
        raise ConfigError(source, problems)
    problems = list(check(config, lines))
    if problems:
        raise ConfigError(source, problems)
    return config


def _resolve_paths(
    config: Config, base: Path, lines: dict[Key, int]
) -> tuple[Config, list[Problem]]:
    """``config`` with its paths absolute, and the paths that cannot be (a NUL byte, an
    unknown ``~user``, a loop of symbolic links)."""
    problems: list[Problem] = []

    def absolute(value: str, *at: str) -> str:
        try:
            return str((base / Path(value).expanduser()).resolve())
        except (OSError, RuntimeError, ValueError) as exc:  # RuntimeError: a symlink loop, ~x
            problems.append(Problem(render_key(at), line_of(lines, at), f"bad path: {exc}"))
            return value

    state = Path(absolute(config.system.state_dir, "system", "state_dir"))
    services = config.services
    scheduler = msgspec.structs.replace(
        services.scheduler,
        db=absolute(services.scheduler.db, "services", "scheduler", "db")
        if services.scheduler.db
        else str(state / "scheduler.sqlite"),
    )
    threads = msgspec.structs.replace(
        services.threads,
        db=absolute(services.threads.db, "services", "threads", "db")
        if services.threads.db
        else str(state / "threads.sqlite"),
    )
    workload = config.workload
    if workload is not None and workload.file is not None:
        workload = msgspec.structs.replace(
            workload, file=absolute(workload.file, "workload", "file")
        )
    resolved = msgspec.structs.replace(
        config,
        system=msgspec.structs.replace(config.system, state_dir=str(state)),
        services=msgspec.structs.replace(services, scheduler=scheduler, threads=threads),
        workload=workload,
    )
    return resolved, problems

"""Workload files: JSON lines, one task each."""

from __future__ import annotations

from pathlib import Path

import msgspec

from .problems import ConfigError, Problem, render_key, split_validation_error
from .schema import WorkloadTask


def load_workload_file(path: str | Path) -> list[WorkloadTask]:
    """Read a JSONL workload file: one ``WorkloadTask`` object (or a plain string) per line.

    Blank lines and lines starting with ``#`` are skipped. Raises ``ConfigError`` listing every
    bad line (``file:line: ...``).
    """
    path = Path(path)
    tasks: list[WorkloadTask] = []
    problems: list[Problem] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        try:
            value = msgspec.json.decode(raw)
            if isinstance(value, str):
                value = {"input": value}
            tasks.append(msgspec.convert(value, WorkloadTask))
        except msgspec.ValidationError as exc:  # a subclass of DecodeError: first
            message, at = split_validation_error(str(exc))
            problems.append(Problem(render_key(at), number, message.replace("`", "'")))
        except msgspec.DecodeError as exc:
            problems.append(Problem("", number, f"not valid JSON: {exc}"))
    if problems:
        raise ConfigError(str(path), problems)
    return tasks

"""Workload files: JSON lines, one task each."""

from __future__ import annotations

from pathlib import Path

import msgspec

from .problems import ConfigError, Problem, render_key, split_validation_error
from .schema import WorkloadTask


def load_workload_file(path: str | Path) -> list[WorkloadTask]:
    """Read a JSONL workload file: one ``WorkloadTask`` object (or a plain string) per line.

    Blank lines and lines starting with ``#`` are skipped. Raises ``ConfigError`` listing every
    bad line (``file:line: ...``), a task id given twice included (it keys the journal, so two
    tasks under one id would get one answer).
    """
    path = Path(path)
    tasks: list[WorkloadTask] = []
    problems: list[Problem] = []
    ids: dict[str, int] = {}  # task id -> the line that gave it first
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        try:
            value = msgspec.json.decode(raw)
            if isinstance(value, str):
                value = {"input": value}
            task = msgspec.convert(value, WorkloadTask)
            tasks.append(task)
            if task.id is not None:
                if task.id in ids:
                    problems.append(Problem(
                        "id", number, f"duplicate task id {task.id!r} (also line {ids[task.id]})"
                    ))  # fmt: skip
                ids.setdefault(task.id, number)
        except msgspec.ValidationError as exc:  # a subclass of DecodeError: first
            message, at = split_validation_error(str(exc))
            problems.append(Problem(render_key(at), number, message.replace("`", "'")))
        except msgspec.DecodeError as exc:
            problems.append(Problem("", number, f"not valid JSON: {exc}"))
    if problems:
        raise ConfigError(str(path), problems)
    return tasks

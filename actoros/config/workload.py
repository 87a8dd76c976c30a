"""Workload files: JSON lines, one task each."""

from __future__ import annotations

from pathlib import Path

import msgspec

from .decoding import out_of_range
from .files import MIB, read_text
from .problems import ConfigError, Problem, render_key, split_validation_error
from .schema import WorkloadTask

MAX_WORKLOAD_BYTES = 64 * MIB
"""About a million short tasks: read and decoded in about a second, and every task is held
in memory for the run (each a few hundred bytes); a longer workload is several runs."""


def load_workload_file(path: str | Path) -> list[WorkloadTask]:
    """Read a JSONL workload file: one ``WorkloadTask`` object (or a plain string) per line.

    Blank lines and lines starting with ``#`` are skipped. Raises ``ConfigError`` listing every
    bad line (``file:line: ...``), a task id given twice included (it keys the journal, so two
    tasks under one id would get one answer), or naming the file when it cannot be read as
    UTF-8 text of at most ``MAX_WORKLOAD_BYTES`` (``FileNotFoundError`` when it does not exist).
    """
    path = Path(path)
    tasks: list[WorkloadTask] = []
    problems: list[Problem] = []
    ids: dict[str, int] = {}  # task id -> the line that gave it first
    text = read_text(path, limit=MAX_WORKLOAD_BYTES, what="workload file")
    for number, raw in enumerate(text.split("\n"), start=1):  # not splitlines: JSON allows U+2028
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        value = None  # decoding may fail on a number already (1e400)
        try:
            value = msgspec.json.decode(raw)
            if isinstance(value, str):
                value = {"input": value}
            task = msgspec.convert(value, WorkloadTask)
            tasks.append(task)
            if task.id is not None:
                if task.id in ids:
                    problems.append(
                        Problem(
                            "id",
                            number,
                            f"duplicate task id {task.id!r} (also line {ids[task.id]})",
                        )
                    )
                ids.setdefault(task.id, number)
        except msgspec.ValidationError as exc:  # a subclass of DecodeError: first
            message, at = split_validation_error(str(exc))
            message = out_of_range(message, at, value, WorkloadTask) or message.replace("`", "'")
            problems.append(Problem(render_key(at), number, message))
        except msgspec.DecodeError as exc:
            problems.append(Problem("", number, f"not valid JSON: {exc}"))
        except RecursionError:  # msgspec's own bound on nesting
            problems.append(Problem("", number, "nested too deeply: flatten the task"))
    if problems:
        raise ConfigError(str(path), problems)
    return tasks

"""How ``actoros bench chaos`` counts: pure functions over result lines and journal rows.

A run's ``--out`` holds one JSON line per task, ``{"id", "agent", "input", "output" | "error",
"seconds"}``; the scheduler journal (``<state_dir>/scheduler.sqlite``, table ``tasks``) one row
per task with its ``status`` and ``attempts`` (times it was started). What each count means:

- **lost**: a task of the workload that the final, complete run does not answer, or answers
  with an error where the fault-free reference run had an answer (e.g. "the turn was
  cancelled" served from the journal);
- **wrong**: a task with a line, in any run, that is not the answer to *its* input: another
  input beside its id, another output than the reference's for that input, an answer where it
  had to fail, or an id the workload does not have;
- **run twice**: a task the journal shows started more than once (``attempts`` > 1). Those the
  faulted run had started and not finished when it stopped are the documented at-least-once
  window (a task running when the process dies may run again; one cancelled by a stop
  resumes), counted apart; any other is a task done twice;
- **unwritten**: a task the faulted run journaled as finished but wrote no line for.

Rows are read defensively: whatever columns the table has, statuses other than ``done`` and
``failed`` mean unfinished, and a row is matched to its task by the payload it asks
(``agent`` + ``input``) before its id, so a journal keyed differently still counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import msgspec

from ._system import Task

FINISHED = ("done", "failed")


class Expect(msgspec.Struct, frozen=True):
    """What a task's line must say: ``output`` exactly ``text``; ``any_output`` (a model whose
    text varies between runs); ``error`` containing ``text`` (a hung tool's timeout);
    ``anything`` (the reference itself failed: not judged)."""

    kind: Literal["output", "any_output", "error", "anything"]
    text: str = ""


def read_lines(path: Path) -> list[dict[str, Any]]:
    """The result lines of an ``--out`` file; a line cut short (the process was killed while
    writing it) or not an object is skipped."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    lines = []
    for chunk in raw.split(b"\n"):
        try:
            value = msgspec.json.decode(chunk)
        except msgspec.DecodeError:
            continue
        if isinstance(value, dict):
            lines.append(value)
    return lines


def expectations(
    tasks: Sequence[Task], reference: Sequence[Mapping[str, Any]], *, exact: bool = True
) -> dict[str, Expect]:
    """Per task id, what the fault-free ``reference`` lines say its line must be (``exact``:
    the same output text; else any output)."""
    by_id = {line.get("id"): line for line in reference}
    expect = {}
    for task in tasks:
        line = by_id.get(task.id)
        if line is None or "output" not in line:
            expect[task.id] = Expect("anything")
        elif exact:
            expect[task.id] = Expect("output", str(line["output"]))
        else:
            expect[task.id] = Expect("any_output")
    return expect


def lost(
    tasks: Sequence[Task], expect: Mapping[str, Expect], final: Sequence[Mapping[str, Any]]
) -> list[str]:
    """Ids of the tasks the final run did not answer as they must be answered (see above)."""
    by_id: dict[Any, Mapping[str, Any]] = {}
    for line in final:
        by_id.setdefault(line.get("id"), line)
    missing = []
    for task in tasks:
        line = by_id.get(task.id)
        want = expect.get(task.id, Expect("anything"))
        if line is None:
            missing.append(task.id)
        elif want.kind in ("output", "any_output") and "output" not in line:
            missing.append(task.id)
    return missing


def _wrong_line(task: Task | None, want: Expect, line: Mapping[str, Any]) -> bool:
    if task is None or line.get("input") != task.input:
        return True
    if "output" in line:
        if want.kind == "error":
            return True
        return want.kind == "output" and line["output"] != want.text
    error = line.get("error")
    return want.kind == "error" and (not isinstance(error, str) or want.text not in error)


def wrong(
    tasks: Sequence[Task], expect: Mapping[str, Expect], runs: Iterable[Sequence[Mapping[str, Any]]]
) -> list[str]:
    """Ids (sorted, each once) with a line in any of ``runs`` that is not the answer to that
    task's input; an id the workload does not have counts under its own name."""
    by_id = {task.id: task for task in tasks}
    bad: set[str] = set()
    for lines in runs:
        for line in lines:
            task_id = str(line.get("id"))
            task = by_id.get(task_id)
            if _wrong_line(task, expect.get(task_id, Expect("anything")), line):
                bad.add(task_id)
    return sorted(bad)


def _key(agent: Any, value: Any) -> str:
    return msgspec.json.encode([agent, value], order="sorted").decode()


def journal_by_task(
    rows: Sequence[Mapping[str, Any]], tasks: Sequence[Task], agent: str = "router"
) -> dict[str, Mapping[str, Any]]:
    """The journal's row of each task (task id -> row); rows of other kinds or tasks are left
    out. A row is matched by its payload (agent + input), else by its id (``workload:<id>``)."""
    by_payload = {_key(agent, t.input): t.id for t in tasks}
    ids = {t.id for t in tasks}
    found: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        if row.get("kind", "workload") != "workload":
            continue
        task_id = None
        payload = row.get("payload")
        if isinstance(payload, str | bytes):
            try:
                value = msgspec.json.decode(payload)
            except msgspec.DecodeError:
                value = None
            if isinstance(value, dict):
                task_id = by_payload.get(_key(value.get("agent"), value.get("input")))
        if task_id is None:
            row_id = str(row.get("id", ""))
            row_id = row_id.removeprefix("workload:")
            task_id = row_id if row_id in ids else None
        if task_id is not None:
            found[task_id] = row
    return found


def attempts(row: Mapping[str, Any]) -> int | None:
    value = row.get("attempts")
    return value if isinstance(value, int) else None


def interrupted(by_task: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """Tasks started and not finished in a journal read right after a fault: the at-least-once
    window (a task running when the process died may run again; one a stop cancelled resumes)."""
    return {
        task_id
        for task_id, row in by_task.items()
        if row.get("status") not in FINISHED and (attempts(row) or 0) >= 1
    }


def run_twice(
    by_task: Mapping[str, Mapping[str, Any]], window: set[str]
) -> tuple[list[str], list[str]]:
    """(every task started more than once, those of them in ``window``), sorted ids."""
    twice = sorted(t for t, row in by_task.items() if (attempts(row) or 0) > 1)
    return twice, [t for t in twice if t in window]


def unwritten(
    by_task: Mapping[str, Mapping[str, Any]], lines: Sequence[Mapping[str, Any]]
) -> list[str]:
    """Tasks a journal shows finished that have no line in ``lines`` (sorted ids)."""
    written = {line.get("id") for line in lines}
    return sorted(
        t for t, row in by_task.items() if row.get("status") in FINISHED and t not in written
    )


def complete(tasks: Sequence[Task], lines: Sequence[Mapping[str, Any]]) -> bool:
    """Whether every task has a line (an answer or an error)."""
    written = {line.get("id") for line in lines}
    return all(task.id in written for task in tasks)

"""The labels of an evaluation: what a right answer to each workload task looks like.

A labels file (YAML, read by the CLI; this module takes the decoded data) names workload
tasks by id; each label says what the answer must show and which tools it needs::

    tasks:
      q03:
        facts: ["shipped", "2026-11-20"]   # regexes (Python, case-insensitive): each must match
        avoid: ["amazon"]                  # regexes that must not match (invented facts)
        tools: [kv_get]                    # tools the agent must have called; [] = none at all
        arguments: {kv_get: {key: "order:1042"}}   # a call of that tool had these arguments
        note: the order book says shipped on 2026-11-20

``tools`` left out means the tools are not scored (a question either way works); ``[]`` means
the answer needs no tool and calling one is wrong. A task of the workload with no label runs
(it may set state up, like the demo's seed tasks) but is not scored. ``check_labels`` finds
every problem at once — a task id the workload does not have, a pattern that does not
compile, a tool the config does not know, ``arguments`` for a tool not in ``tools`` — so a
bad file is one clear line per problem, not a run that scores nonsense.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import msgspec

__all__ = ["Label", "Labels", "LabelsError", "check_labels", "labels_from"]

#: Longest pattern a label may hold: labels are data, and a huge regex is a mistake.
MAX_PATTERN = 1000


class LabelsError(ValueError):
    """A labels file that cannot be used; ``problems`` holds one line each."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("; ".join(problems))

    def lines(self) -> list[str]:
        return [f"{self.source}: {problem}" for problem in self.problems]


class Label(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """What a right answer to one task shows (see the module docstring)."""

    facts: tuple[str, ...] = ()
    avoid: tuple[str, ...] = ()
    tools: tuple[str, ...] | None = None
    arguments: dict[str, dict[str, Any]] = {}
    note: str = ""

    @property
    def needs_tool(self) -> bool:
        return bool(self.tools)


class Labels(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """A labelled set: task id -> its label, and a line saying what the set is."""

    tasks: dict[str, Label]
    about: str = ""


def labels_from(data: Any, source: str) -> Labels:
    """``data`` (the decoded file) as ``Labels``; a file of the wrong shape is a
    ``LabelsError`` naming the field (msgspec's own path, ``$.tasks.q03.facts``)."""
    if data is None:
        raise LabelsError(source, ["the file is empty: it needs a 'tasks:' mapping"])
    try:
        labels = msgspec.convert(data, Labels)
    except msgspec.ValidationError as exc:
        raise LabelsError(source, [str(exc)]) from None
    if not labels.tasks:
        raise LabelsError(source, ["'tasks:' is empty: label at least one task"])
    return labels


def check_labels(
    labels: Labels, source: str, task_ids: Iterable[str], tools: Iterable[str]
) -> None:
    """Raise ``LabelsError`` with every problem of ``labels`` against the workload's
    ``task_ids`` and the ``tools`` the config's agents may call; return when there is none."""
    known, usable = set(task_ids), set(tools)
    problems: list[str] = []
    for task_id, label in labels.tasks.items():
        at = f"tasks.{task_id}"
        if task_id not in known:
            problems.append(f"{at}: the workload has no task {task_id!r}")
        for field, patterns in (("facts", label.facts), ("avoid", label.avoid)):
            for i, pattern in enumerate(patterns):
                problem = pattern_problem(pattern)
                if problem is not None:
                    problems.append(f"{at}.{field}[{i}]: {problem}")
        for tool in label.tools or ():
            if tool not in usable:
                problems.append(f"{at}.tools: no agent of the config may call {tool!r}")
        for tool in label.arguments:
            if tool not in (label.tools or ()):
                problems.append(f"{at}.arguments.{tool}: {tool!r} is not in the task's tools")
    if problems:
        raise LabelsError(source, problems)


def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` cannot be a label's regex, or ``None``."""
    if not pattern:
        return "an empty pattern matches every answer"
    if len(pattern) > MAX_PATTERN:
        return f"a pattern of {len(pattern)} characters (at most {MAX_PATTERN})"
    try:
        re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        return f"bad regex {pattern!r}: {exc}"
    return None

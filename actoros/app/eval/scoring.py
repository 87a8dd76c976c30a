"""Scoring: one task's record against its label, and the numbers of a whole run.

Pure functions over data (``TaskRecord`` in, ``Score`` and ``Summary`` out), so every rule
here is tested on its own, without a model. A task succeeds when the agent answered, every
``facts`` pattern matches the answer, no ``avoid`` pattern does, and its tool use is what the
label asks (``tools`` each called, with the labelled ``arguments``; ``[]``: none called).
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from typing import Any

import msgspec

from .labels import Label

__all__ = ["Score", "Summary", "TaskRecord", "ToolUse", "score", "summarize"]


class ToolUse(msgspec.Struct, frozen=True):
    """One tool call a task's agent made (as its thread records it)."""

    tool: str
    arguments: dict[str, Any] = {}


class TaskRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What one task came to in a run.

    ``model_calls``: the model's turns for the task; ``malformed``: those that did not parse
    as the protocol (for a failed task a lower bound, see ``runner.py``); ``tokens``: prompt
    plus completion tokens (0 when the task failed: the agent reports them with its answer).
    """

    id: str
    input: str | dict[str, Any]
    output: str | None = None
    error: str | None = None
    tools: tuple[ToolUse, ...] = ()
    model_calls: int = 0
    malformed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0


class Score(msgspec.Struct, frozen=True, kw_only=True):
    """One labelled task, judged: ``success`` and why not (``misses``, one line each)."""

    id: str
    success: bool
    needs_tool: bool
    facts_ok: bool
    tools_ok: bool | None  # None: the label does not score tools
    misses: tuple[str, ...] = ()


def score(label: Label, record: TaskRecord) -> Score:
    """Judge ``record`` by ``label`` (see the module docstring)."""
    misses: list[str] = []
    answer = record.output
    if answer is None:
        misses.append(f"no answer: {record.error or 'failed'}")
        answer = ""
    for pattern in label.facts:
        if re.search(pattern, answer, re.IGNORECASE) is None:
            misses.append(f"fact {pattern!r} not in the answer")
    for pattern in label.avoid:
        if re.search(pattern, answer, re.IGNORECASE) is not None:
            misses.append(f"{pattern!r} is in the answer")
    facts_ok = record.output is not None and not misses
    tools_ok = None if label.tools is None else _tool_misses(label, record, misses) == 0
    return Score(
        id=record.id,
        success=facts_ok and tools_ok is not False,
        needs_tool=label.needs_tool,
        facts_ok=facts_ok,
        tools_ok=tools_ok,
        misses=tuple(misses),
    )


def _tool_misses(label: Label, record: TaskRecord, misses: list[str]) -> int:
    before = len(misses)
    assert label.tools is not None
    used = {use.tool for use in record.tools}
    if not label.tools and used:
        misses.append(f"called {', '.join(sorted(used))} where no tool is needed")
    for tool in label.tools:
        if tool not in used:
            misses.append(f"did not call {tool}")
        elif tool in label.arguments:
            wanted = label.arguments[tool]
            calls = [use.arguments for use in record.tools if use.tool == tool]
            if not any(_has(arguments, wanted) for arguments in calls):
                got = "; ".join(msgspec.json.encode(a).decode() for a in calls)
                misses.append(f"{tool} not called with {_json(wanted)} (called with {got})")
    return len(misses) - before


def _has(arguments: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return all(name in arguments and arguments[name] == value for name, value in wanted.items())


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


class Summary(msgspec.Struct, frozen=True, kw_only=True):
    """The numbers of one run over its labelled tasks (``None``: nothing to measure)."""

    tasks: int
    answered: int
    success: float | None
    tool_tasks: int
    tool_success: float | None
    no_tool_success: float | None
    model_calls: int
    malformed: int
    protocol_validity: float | None
    steps_mean: float | None
    tokens_mean: float | None
    latency_p50_s: float | None
    latency_max_s: float | None


def summarize(
    scores: Sequence[Score], records: Sequence[TaskRecord], malformed: int | None = None
) -> Summary:
    """The numbers of a run: success shares over ``scores``; model calls, protocol validity,
    steps, tokens and latency over the scored tasks' ``records``. ``malformed``: the run's
    count of model turns that did not parse when it is known exactly (from the agents' log
    events), else the records' own (a lower bound for failed tasks)."""
    by_id = {record.id: record for record in records}
    scored = [by_id[s.id] for s in scores if s.id in by_id]
    tool = [s for s in scores if s.needs_tool]
    no_tool = [s for s in scores if not s.needs_tool]
    bad = sum(r.malformed for r in scored) if malformed is None else malformed
    valid = sum(r.model_calls - r.malformed for r in scored)
    calls = valid + bad
    answered = [r for r in scored if r.output is not None]
    model_tasks = [r for r in answered if r.model_calls]
    seconds = [r.seconds for r in scored]
    return Summary(
        tasks=len(scores),
        answered=len(answered),
        success=_share(scores),
        tool_tasks=len(tool),
        tool_success=_share(tool),
        no_tool_success=_share(no_tool),
        model_calls=calls,
        malformed=bad,
        protocol_validity=round(valid / calls, 4) if calls else None,
        steps_mean=_mean([r.model_calls for r in model_tasks]),
        tokens_mean=_mean([r.prompt_tokens + r.completion_tokens for r in model_tasks]),
        latency_p50_s=round(statistics.median(seconds), 3) if seconds else None,
        latency_max_s=round(max(seconds), 3) if seconds else None,
    )


def _share(scores: Sequence[Score]) -> float | None:
    return round(sum(s.success for s in scores) / len(scores), 4) if scores else None


def _mean(values: Sequence[int]) -> float | None:
    return round(statistics.fmean(values), 2) if values else None

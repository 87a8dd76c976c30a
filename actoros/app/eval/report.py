"""The report of an evaluation: ``eval.json`` (every number and every task), ``eval.md`` (the
tables a reader wants) and ``eval.png`` (success and protocol validity per system and mode).

``EvalReport`` is the JSON as it is written: a header (versions, machine, time, the command),
then one ``SystemResult`` per evaluated config, each with one ``ModeResult`` per constraint
setting (``off`` and/or ``on``) holding its ``Summary`` and every task's record and score.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from .labels import Labels
from .runner import RunRecord
from .scoring import Score, Summary, TaskRecord, ToolUse, score, summarize

__all__ = [
    "TARGETS",
    "EvalReport",
    "ModeResult",
    "SystemResult",
    "mode_result",
    "write_report",
]

#: Issue 11's targets: (what, summary field, at least).
TARGETS = (
    ("protocol validity with constraints on", "protocol_validity", 1.0),
    ("task success on the questions that need a tool", "tool_success", 0.8),
)


class TaskResult(msgspec.Struct, frozen=True, kw_only=True):
    record: TaskRecord
    score: Score | None  # None: the task has no label (it runs, it is not scored)


class ModeResult(msgspec.Struct, frozen=True, kw_only=True):
    constrain: bool
    model: str | None
    seconds: float
    engine_start_seconds: float
    summary: Summary
    tasks: tuple[TaskResult, ...]


class SystemResult(msgspec.Struct, frozen=True, kw_only=True):
    system: str
    config: str
    labels: str
    about: str
    modes: tuple[ModeResult, ...]


class EvalReport(msgspec.Struct, frozen=True, kw_only=True):
    benchmark: str = "eval"
    version: str
    python: str
    machine: str
    timestamp: str
    command: str
    systems: tuple[SystemResult, ...]
    notes: tuple[str, ...] = ()  # what a reader must know about the run (load, versions)


def mode_result(run: RunRecord, labels: Labels) -> ModeResult:
    """One run, scored by ``labels``."""
    scores = {r.id: score(labels.tasks[r.id], r) for r in run.records if r.id in labels.tasks}
    return ModeResult(
        constrain=run.constrain,
        model=run.model,
        seconds=run.seconds,
        engine_start_seconds=run.engine_start_seconds,
        summary=summarize(list(scores.values()), run.records, run.malformed),
        tasks=tuple(TaskResult(record=r, score=scores.get(r.id)) for r in run.records),
    )


def new_report(
    command: str, systems: Sequence[SystemResult], notes: Sequence[str] = ()
) -> EvalReport:
    from actoros import __version__

    return EvalReport(
        version=__version__,
        python=platform.python_version(),
        machine=f"{os.cpu_count() or 0} CPUs, {platform.platform()}",
        timestamp=datetime.now(UTC).isoformat(timespec="seconds"),
        command=command,
        systems=tuple(systems),
        notes=tuple(notes),
    )


def write_report(report: EvalReport, out: Path) -> list[Path]:
    """Write ``eval.json``, ``eval.md`` and ``eval.png`` into ``out``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "eval.json", out / "eval.md", out / "eval.png"]
    paths[0].write_bytes(msgspec.json.format(msgspec.json.encode(report), indent=2) + b"\n")
    paths[1].write_text(markdown(report), encoding="utf-8")
    chart(report, paths[2])
    return paths


def _mode(result: ModeResult) -> str:
    return "constraints on" if result.constrain else "constraints off"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f}%"


def _num(value: float | None, spec: str = ".1f") -> str:
    return "–" if value is None else format(value, spec)


def markdown(report: EvalReport) -> str:
    lines = [
        "# actoros eval",
        "",
        f"actoros {report.version}, Python {report.python}, {report.machine}; {report.timestamp}.",
        "",
        f"Command: `{report.command}`",
        "",
        "A task succeeds when its agent answered, every expected fact (a regex) is in the "
        "answer, no fact to avoid is, and it called the tools its label names (with the "
        "labelled arguments; a label with `tools: []` must call none). Protocol validity: the "
        "share of the model's turns that parsed as the tool-call protocol. Steps: model calls "
        "per answered task; tokens: prompt + completion per answered task; latency: seconds "
        "per task (all tasks, failed ones included).",
        "",
    ]
    for system in report.systems:
        lines += _system_md(system)
    lines += ["## Targets (issue 11)", ""]
    for system in report.systems:
        for mode in system.modes:
            for what, field, goal in TARGETS:
                if field == "protocol_validity" and not mode.constrain:
                    continue
                value = getattr(mode.summary, field)
                met = "met" if value is not None and value >= goal else "missed"
                lines.append(
                    f"- {system.system}, {_mode(mode)}: {what} {_pct(value)} "
                    f"(target ≥ {goal * 100:.0f}%): **{met}**"
                )
    if report.notes:
        lines += ["", "## Notes", "", *(f"- {note}" for note in report.notes)]
    return "\n".join(lines) + "\n"


def _system_md(system: SystemResult) -> list[str]:
    lines = [
        f"## {system.system} (`{system.config}`, labels `{system.labels}`)",
        "",
        *([system.about, ""] if system.about else []),
        "| mode | model | tasks | answered | success | tool tasks | tool success | "
        "no-tool success | protocol validity | malformed / model calls | steps | tokens | "
        "latency p50 s | latency max s | run s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mode in system.modes:
        s = mode.summary
        lines.append(
            f"| {_mode(mode)} | {mode.model or '–'} | {s.tasks} | {s.answered} | "
            f"{_pct(s.success)} | {s.tool_tasks} | {_pct(s.tool_success)} | "
            f"{_pct(s.no_tool_success)} | {_pct(s.protocol_validity)} | "
            f"{s.malformed} / {s.model_calls} | {_num(s.steps_mean, '.2f')} | "
            f"{_num(s.tokens_mean, '.0f')} | {_num(s.latency_p50_s, '.2f')} | "
            f"{_num(s.latency_max_s, '.2f')} | {mode.seconds:.1f} |"
        )
    lines += ["", *_tasks_md(system.modes), ""]
    return lines


def _tasks_md(modes: Sequence[ModeResult]) -> list[str]:
    head = "| task | question | tool |" + "".join(f" {_mode(m)} |" for m in modes)
    lines = [head, "|---|---|---|" + "---|" * len(modes)]
    by_mode = [{t.record.id: t for t in m.tasks} for m in modes]
    for task in modes[0].tasks:
        if task.score is None:
            continue
        question = _cell(_question(task.record.input), 60)
        needs = "yes" if task.score.needs_tool else "no"
        cells = []
        for tasks in by_mode:
            other = tasks.get(task.record.id)
            cells.append(_outcome(other) if other is not None else "–")
        lines.append(f"| {task.record.id} | {question} | {needs} | " + " | ".join(cells) + " |")
    return lines


def _outcome(task: TaskResult) -> str:
    assert task.score is not None
    record = task.record
    mark = "✅" if task.score.success else "❌"
    tools = ", ".join(_call(use) for use in record.tools) or "no tool"
    said = record.output if record.output is not None else f"error: {record.error}"
    why = "" if task.score.success else " — " + "; ".join(task.score.misses)
    return _cell(f"{mark} [{tools}] {said}{why}", 220)


def _call(use: ToolUse) -> str:
    arguments = ", ".join(f"{k}={_json(v)}" for k, v in use.arguments.items())
    return f"{use.tool}({arguments})"


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _question(value: str | dict[str, Any]) -> str:
    return value if isinstance(value, str) else str(value.get("text", value))


def _cell(text: str, limit: int) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def chart(report: EvalReport, path: Path) -> None:
    """Bars per system and mode: task success (all, tool, no-tool) and protocol validity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fields = (
        ("success", "all tasks"),
        ("tool_success", "tool tasks"),
        ("no_tool_success", "no-tool tasks"),
        ("protocol_validity", "protocol validity"),
    )
    groups = [(s.system, m) for s in report.systems for m in s.modes]
    fig, axes = plt.subplots(figsize=(max(6.5, 2.4 * len(groups)), 4.5))
    width = 0.8 / len(fields)
    for i, (field, label) in enumerate(fields):
        values = [(getattr(m.summary, field) or 0.0) * 100 for _, m in groups]
        xs = [g + (i - (len(fields) - 1) / 2) * width for g in range(len(groups))]
        bars = axes.bar(xs, values, width, label=label)
        axes.bar_label(bars, fmt="%.0f", fontsize="x-small", padding=1)
    axes.set_xticks(range(len(groups)))
    axes.set_xticklabels([f"{name}\n{_mode(m)}" for name, m in groups])
    axes.axhline(80, color="grey", linestyle="--", linewidth=0.8)
    axes.set_ylim(0, 110)
    axes.set_ylabel("%")
    models = sorted({m.model or "no model" for _, m in groups})
    axes.set_title(f"actoros eval: {', '.join(models)}")
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=4, fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

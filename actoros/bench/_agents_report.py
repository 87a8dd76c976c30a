"""The result of ``actoros bench agents`` as data (``agents.json``), Markdown and a PNG chart."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import msgspec

from ._result import ResultHeader


class Sizes(msgspec.Struct, frozen=True, kw_only=True):
    """How much work each workload does."""

    rule_agents: int
    rule_groups: int  # supervisors the rule agents are spread over
    rule_tasks: int
    rule_concurrency: int
    llm_agents: int
    llm_fake_tasks: int
    llm_concurrency: int
    fake_token_delay_s: float
    llm_max_tokens: int
    vllm_tasks: int
    vllm_max_tokens: int


class AgentsResult(ResultHeader, frozen=True, kw_only=True):
    benchmark: str = "agents"
    engines: list[str]  # workloads run: "rule", "fake", "vllm"
    vllm_engine: dict[str, Any] = {}  # model, dtype, start seconds (when run)
    metrics: dict[str, float]  # flat; rule and fake: those of the median of `repeats` batches
    repeats: int  # timed batches of the rule and fake-LLM workloads (vLLM: one)
    raw: dict[str, list[float]] = {}  # per-batch values behind the rule and fake metrics
    sizes: Sizes
    notes: list[str] = []


LABELS: dict[str, tuple[str, str]] = {
    "rule_tasks_per_s": ("rule agents: tasks/s", "rate"),
    "rule_latency_p50_ms": ("rule agents: task latency p50, ms", "ms"),
    "rule_latency_p99_ms": ("rule agents: task latency p99, ms", "ms"),
    "rule_failed": ("rule agents: failed tasks", "count"),
    "rule_spawn_seconds": ("rule agents: time to start all agents and supervisors, s", "s"),
    "llm_fake_tasks_per_s": ("LLM agents, fake engine: tasks/s", "rate"),
    "llm_fake_latency_p50_ms": ("LLM agents, fake engine: task latency p50, ms", "ms"),
    "llm_fake_latency_p99_ms": ("LLM agents, fake engine: task latency p99, ms", "ms"),
    "llm_fake_failed": ("LLM agents, fake engine: failed tasks", "count"),
    "llm_fake_steps_per_task": ("LLM agents, fake engine: model calls per task", "ratio"),
    "llm_vllm_tasks_per_s": ("LLM agents, SmolLM2 on vLLM: tasks/s", "rate"),
    "llm_vllm_latency_p50_ms": ("LLM agents, SmolLM2 on vLLM: task latency p50, ms", "ms"),
    "llm_vllm_latency_p99_ms": ("LLM agents, SmolLM2 on vLLM: task latency p99, ms", "ms"),
    "llm_vllm_failed": ("LLM agents, SmolLM2 on vLLM: failed tasks", "count"),
    "llm_vllm_steps_per_task": ("LLM agents, SmolLM2 on vLLM: model calls per task", "ratio"),
    "llm_vllm_output_tok_per_s": ("LLM agents, SmolLM2 on vLLM: output tokens/s", "rate"),
    "vllm_start_seconds": ("vLLM engine start (model load), s", "s"),
}


def _fmt(value: float, kind: str) -> str:
    if math.isnan(value):
        return "n/a"
    if kind == "rate":
        return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"
    if kind == "count":
        return f"{value:.0f}"
    return f"{value:,.2f}"


def _cap(s: Sizes) -> float:
    floor = s.llm_max_tokens * s.fake_token_delay_s
    return s.llm_concurrency / floor if floor > 0 else math.inf


def markdown(result: AgentsResult) -> str:
    m = result.machine
    s = result.sizes
    lines = [
        "# actoros bench agents",
        "",
        (
            f"actoros {result.version}, Python {result.python}, loop {result.loop}, "
            f"{m.cpu_count} CPUs, {m.platform}; {result.timestamp}; "
            f"{'quick' if result.quick else 'full'} run; workloads: {', '.join(result.engines)}; "
            f"rule and fake LLM: the median of {result.repeats} timed batches (by tasks/s)."
        ),
        "",
        (
            f"- rule: {s.rule_agents:,} `RuleAgent`s in {s.rule_groups} supervisors, "
            f"{s.rule_tasks:,} tasks, {s.rule_concurrency} in flight; half call the "
            "`calculator` tool through the tool service, half are answered by a rule."
        ),
        (
            f"- LLM (fake): {s.llm_agents} `LLMAgent`s with the thread store (SQLite) and the "
            f"inference actor on `FakeEngine` (token_delay {s.fake_token_delay_s * 1000:g} ms, "
            f"max_tokens {s.llm_max_tokens}), {s.llm_fake_tasks:,} tasks, "
            f"{s.llm_concurrency} in flight; each task a new thread. Every generation takes "
            f"at least {s.llm_max_tokens} × {s.fake_token_delay_s * 1000:g} ms of fake decoding, "
            f"so {s.llm_concurrency} in flight cap this at "
            f"{_cap(s):,.0f} tasks/s: the gap to the cap is the runtime's cost."
        ),
        (
            f"- LLM (vLLM): the same {s.llm_agents} agents on SmolLM2-135M-Instruct (CPU vLLM), "
            f"max_tokens {s.vllm_max_tokens}, {s.vllm_tasks} tasks."
            if "vllm" in result.engines
            else "- LLM (vLLM): not run (see notes)."
        ),
        "",
        "| metric | what | value |",
        "|---|---|---:|",
    ]
    order = list(LABELS) + sorted(k for k in result.metrics if k not in LABELS)
    for key in order:
        if key in result.metrics:
            kind = LABELS.get(key, (key, "ratio"))[1]
            label = LABELS.get(key, (key, ""))[0]
            lines.append(f"| `{key}` | {label} | {_fmt(result.metrics[key], kind)} |")
    if result.vllm_engine:
        lines += [
            "",
            "vLLM engine: " + ", ".join(f"{k}={v}" for k, v in result.vllm_engine.items()),
        ]
    if result.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in result.notes]
    return "\n".join(lines) + "\n"


def chart(result: AgentsResult, path: Path) -> None:
    """Two panels: tasks/s per workload (log scale), latency p50/p99 per workload."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = result.metrics
    workloads = [
        ("rule", f"{result.sizes.rule_agents:,} rule agents"),
        ("llm_fake", f"{result.sizes.llm_agents} LLM agents, fake"),
        ("llm_vllm", f"{result.sizes.llm_agents} LLM agents, SmolLM2"),
    ]
    present = [(k, label) for k, label in workloads if f"{k}_tasks_per_s" in metrics]
    labels = [label for _, label in present]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    rates = [metrics[f"{k}_tasks_per_s"] for k, _ in present]
    left.bar(labels, rates, color="#1f77b4")
    left.set_yscale("log")
    left.set_title("throughput: tasks/s (end to end)", fontsize=10)
    left.set_ylabel("tasks/s")
    for i, v in enumerate(rates):
        left.annotate(f"{v:,.1f}", (i, v), ha="center", va="bottom", fontsize=8)
    width = 0.38
    xs = range(len(present))
    p50 = [metrics.get(f"{k}_latency_p50_ms", math.nan) for k, _ in present]
    p99 = [metrics.get(f"{k}_latency_p99_ms", math.nan) for k, _ in present]
    right.bar([x - width / 2 for x in xs], p50, width, label="p50", color="#1f77b4")
    right.bar([x + width / 2 for x in xs], p99, width, label="p99", color="#ff7f0e")
    right.set_xticks(list(xs), labels)
    right.set_yscale("log")
    right.set_title("task latency (ask → reply)", fontsize=10)
    right.set_ylabel("ms")
    right.legend(fontsize=8)
    for x, a, b in zip(xs, p50, p99, strict=True):
        right.annotate(f"{a:,.1f}", (x - width / 2, a), ha="center", va="bottom", fontsize=7)
        right.annotate(f"{b:,.1f}", (x + width / 2, b), ha="center", va="bottom", fontsize=7)
    for ax in (left, right):
        ax.tick_params(axis="x", labelsize=8)
    fig.suptitle(
        f"actoros bench agents — {result.loop}, {result.machine.cpu_count} CPUs", fontsize=11
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

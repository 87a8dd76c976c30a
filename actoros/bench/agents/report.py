"""Turn an ``AgentsResult`` into the Markdown table and the PNG chart."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .._common import fmt, notes_section, pyplot, save_chart
from .result import AgentsResult, Sizes

RATE = "rate"  # tasks/s and tokens/s (see ``_common.SCALED``)
COUNT = ".0f"
VALUE = ",.2f"  # latencies (ms), seconds, ratios

LABELS: dict[str, tuple[str, str]] = {
    "rule_tasks_per_s": ("rule agents: tasks/s", RATE),
    "rule_latency_p50_ms": ("rule agents: task latency p50, ms", VALUE),
    "rule_latency_p99_ms": ("rule agents: task latency p99, ms", VALUE),
    "rule_failed": ("rule agents: failed tasks", COUNT),
    "rule_spawn_seconds": ("rule agents: time to start all agents and supervisors, s", VALUE),
    "llm_fake_tasks_per_s": ("LLM agents, fake engine: tasks/s", RATE),
    "llm_fake_latency_p50_ms": ("LLM agents, fake engine: task latency p50, ms", VALUE),
    "llm_fake_latency_p99_ms": ("LLM agents, fake engine: task latency p99, ms", VALUE),
    "llm_fake_failed": ("LLM agents, fake engine: failed tasks", COUNT),
    "llm_fake_steps_per_task": ("LLM agents, fake engine: model calls per task", VALUE),
    "llm_vllm_tasks_per_s": ("LLM agents, SmolLM2 on vLLM: tasks/s", RATE),
    "llm_vllm_latency_p50_ms": ("LLM agents, SmolLM2 on vLLM: task latency p50, ms", VALUE),
    "llm_vllm_latency_p99_ms": ("LLM agents, SmolLM2 on vLLM: task latency p99, ms", VALUE),
    "llm_vllm_failed": ("LLM agents, SmolLM2 on vLLM: failed tasks", COUNT),
    "llm_vllm_steps_per_task": ("LLM agents, SmolLM2 on vLLM: model calls per task", VALUE),
    "llm_vllm_output_tok_per_s": ("LLM agents, SmolLM2 on vLLM: output tokens/s", RATE),
    "vllm_start_seconds": ("vLLM engine start (model load), s", VALUE),
    "prefix_on_ttft_p50_ms": ("prefix cache on: TTFT p50, ms", VALUE),
    "prefix_off_ttft_p50_ms": ("prefix cache off: TTFT p50, ms", VALUE),
    "prefix_ttft_p50_off_over_on": ("TTFT p50, cache off / cache on", VALUE),
    "prefix_on_ttft_p99_ms": ("prefix cache on: TTFT p99, ms", VALUE),
    "prefix_off_ttft_p99_ms": ("prefix cache off: TTFT p99, ms", VALUE),
    "prefix_on_output_tok_per_s": ("prefix cache on: output tokens/s (median round)", RATE),
    "prefix_off_output_tok_per_s": ("prefix cache off: output tokens/s (median round)", RATE),
    "prefix_on_hit_rate": ("prefix cache on: hit rate vLLM reports (tokens)", ".1%"),
    "prefix_off_hit_rate": ("prefix cache off: hit rate vLLM reports (tokens)", ".1%"),
    "prefix_on_failed": ("prefix cache on: failed tasks", COUNT),
    "prefix_off_failed": ("prefix cache off: failed tasks", COUNT),
}


def _cap(s: Sizes) -> float:
    floor = s.llm_max_tokens * s.fake_token_delay_s
    return s.llm_concurrency / floor if floor > 0 else math.inf


def markdown(result: AgentsResult) -> str:
    s = result.sizes
    lines = [
        "# actoros bench agents",
        "",
        (
            f"{result.about()}; "
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
        (
            f"- prefix cache (vLLM): {s.prefix_agents} `LLMAgent`s sharing a system prompt of "
            f"{result.prefix_cache.get('system_prompt_tokens', '?')} tokens (a handbook, then "
            "the protocol and tools), one task each per round on a new thread, max_tokens "
            f"{s.prefix_max_tokens}; two engines side by side, prefix caching on and off, "
            f"{s.prefix_rounds} timed rounds each, alternated, after one warm-up round each. "
            "TTFT: request reaching the inference actor → first token."
            if result.prefix_cache
            else "- prefix cache (vLLM): not run (see notes)."
        ),
        "",
        "| metric | what | value |",
        "|---|---|---:|",
    ]
    order = list(LABELS) + sorted(k for k in result.metrics if k not in LABELS)
    for key in order:
        if key in result.metrics:
            label, spec = LABELS.get(key, (key, VALUE))
            lines.append(f"| `{key}` | {label} | {fmt(result.metrics[key], spec)} |")
    if result.vllm_engine:
        lines += [
            "",
            "vLLM engine: " + ", ".join(f"{k}={v}" for k, v in result.vllm_engine.items()),
        ]
    if result.prefix_cache:
        lines += [
            "",
            "Prefix-cache series: " + ", ".join(f"{k}={v}" for k, v in result.prefix_cache.items()),
        ]
    lines += notes_section(result.notes)
    return "\n".join(lines) + "\n"


def chart(result: AgentsResult, path: Path) -> None:
    """Two panels: tasks/s per workload (log scale), latency p50/p99 per workload; a third,
    TTFT p50/p99 with the prefix cache on and off, when the series ran."""
    plt = pyplot()
    metrics = result.metrics
    workloads = [
        ("rule", f"{result.sizes.rule_agents:,} rule agents"),
        ("llm_fake", f"{result.sizes.llm_agents} LLM agents, fake"),
        ("llm_vllm", f"{result.sizes.llm_agents} LLM agents, SmolLM2"),
    ]
    present = [(k, label) for k, label in workloads if f"{k}_tasks_per_s" in metrics]
    labels = [label for _, label in present]
    prefix = "prefix_on_ttft_p50_ms" in metrics
    fig, axes = plt.subplots(1, 3 if prefix else 2, figsize=(18 if prefix else 12, 4.5))
    left, right = axes[0], axes[1]
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
    if prefix:
        _prefix_panel(axes[2], result)
    for ax in axes:
        ax.tick_params(axis="x", labelsize=8)
    fig.suptitle(
        f"actoros bench agents — {result.loop}, {result.machine.cpu_count} CPUs", fontsize=11
    )
    save_chart(fig, path)


def _prefix_panel(ax: Any, result: AgentsResult) -> None:
    metrics = result.metrics
    modes = [("on", "prefix cache on"), ("off", "prefix cache off")]
    width = 0.38
    for offset, (q, color) in ((-width / 2, ("50", "#2ca02c")), (width / 2, ("99", "#d62728"))):
        values = [metrics.get(f"prefix_{m}_ttft_p{q}_ms", math.nan) for m, _ in modes]
        xs = [x + offset for x in range(len(modes))]
        ax.bar(xs, values, width, label=f"p{q}", color=color)
        for x, v in zip(xs, values, strict=True):
            ax.annotate(f"{v:,.0f}", (x, v), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(modes)), [label for _, label in modes])
    hit = metrics.get("prefix_on_hit_rate")
    tokens = result.prefix_cache.get("system_prompt_tokens", "?")
    title = f"TTFT, {result.sizes.prefix_agents} agents, {tokens}-token shared prompt"
    if hit is not None:
        title += f"; hit rate {hit:.0%}"
    ax.set_title(title, fontsize=10)
    ax.set_ylabel("ms")
    ax.legend(fontsize=8)

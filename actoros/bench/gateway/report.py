"""Turn a ``GatewayResult`` into the Markdown tables and the PNG chart."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .._common import fmt, goal, notes_section, pyplot, save_chart
from .result import GatewayResult, Workload, ratio_key

MS = ".2f"  # latencies
REQ = ",.2f"  # requests/s
COUNT = ".0f"
# tokens/s are shown as "rate", ratios as "ratio" (see ``_common.SCALED``)

SERIES_LABELS = {
    "agent_stream": "agent, stream",
    "agent_once": "agent, one response",
    "raw_stream": "raw model, stream",
    "raw_once": "raw model, one response",
    "actor_stream": "actor in-process (no HTTP)",
    "raw_stream_shared": "raw model, stream, one shared prompt",
}
COLORS = {
    "agent_stream": "#2ca02c",
    "agent_once": "#98df8a",
    "raw_stream": "#1f77b4",
    "raw_once": "#aec7e8",
    "actor_stream": "#7f7f7f",
    "raw_stream_shared": "#17becf",
}


def _engine_line(result: GatewayResult, engine: str, w: Workload) -> str:
    e = result.engines[engine]
    what = (
        f"vLLM {e.version}, raw model `{e.model}`"
        if engine == "vllm"
        else f"fake engine ({w.token_delay_s * 1e3:g} ms per token per request), raw model "
        f"`{e.model}`"
    )
    return (
        f"{what}; started in {e.start_seconds:.1f} s. The same task on every path "
        f"(“{w.prompt[:48]}…”, behind a random tag per request except in the `shared` "
        f"series), max_tokens {w.output_tokens}, temperature 0; at concurrency N, "
        f"max({w.min_requests}, {w.waves}·N) requests per series."
    )


def _ratio_table(result: GatewayResult, engine: str, w: Workload) -> list[str]:
    m = result.metrics
    lines = [
        "| conc. | gateway tok/s (raw, stream) | actor tok/s (in-process) | gateway/actor "
        "| target | status |",
        "|---:|---:|---:|---:|---:|---|",
    ]
    for c in w.concurrency:
        wanted, status = goal(result, ratio_key(engine, c), "ratio")
        lines.append(
            f"| {c} | {fmt(m.get(f'{engine}_raw_stream_tok_per_s_c{c}'), 'rate')} "
            f"| {fmt(m.get(f'{engine}_actor_stream_tok_per_s_c{c}'), 'rate')} "
            f"| {fmt(m.get(ratio_key(engine, c)), 'ratio')} | {wanted} | {status} |"
        )
    wanted, status = goal(result, ratio_key(engine), "ratio")
    lines.append(f"| median | | | {fmt(m.get(ratio_key(engine)), 'ratio')} | {wanted} | {status} |")
    return lines


def _level_table(result: GatewayResult, engine: str, w: Workload) -> list[str]:
    m = result.metrics
    lines = [
        "| conc. | series | requests | req/s | output tok/s | E2EL p50 ms | E2EL p99 ms "
        "| TTFT p50 ms | failed | client CPU | CPU µs/tok |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in w.concurrency:
        for series in w.series:
            key = f"{engine}_{series}"

            def get(stat: str, key: str = key, c: int = c) -> float | None:
                return m.get(f"{key}_{stat}_c{c}")

            lines.append(
                f"| {c} | {SERIES_LABELS.get(series, series)} | {w.requests(c)} "
                f"| {fmt(get('req_per_s'), REQ)} "
                f"| {fmt(get('tok_per_s'), 'rate')} "
                f"| {fmt(get('e2el_ms_p50'), MS)} | {fmt(get('e2el_ms_p99'), MS)} "
                f"| {fmt(get('ttft_ms_p50'), MS)} | {fmt(get('failed'), COUNT)} "
                f"| {fmt(get('client_cpu'), 'ratio') if not series.startswith('actor') else ''} "
                f"| {fmt(get('cpu_us_per_tok'), '.1f')} |"
            )
    return lines


def markdown(result: GatewayResult) -> str:
    lines = [
        "# actoros bench gateway",
        "",
        (
            f"{result.about()}; "
            f"{'quick' if result.quick else 'full'} run, median of {result.repeats} repeat(s). "
            f"Load generator: {result.client.get('library', '?')} "
            f"{result.client.get('openai', '')} in a separate process."
        ),
        "",
        "## The gateway vs the inference actor alone (output tokens/s)",
        "",
    ]
    if "vllm" in result.workloads:
        lines += [
            "SmolLM2 (vLLM): the raw-model path through the gateway, streamed, against the "
            "same `Generate` asked of the same inference actor in-process, side by side at "
            "each concurrency.",
            "",
            *_ratio_table(result, "vllm", result.workloads["vllm"]),
        ]
    else:
        lines.append("SmolLM2 (vLLM) was not measured in this run (see the notes).")
    fake = result.workloads.get("fake")
    if fake is not None:
        lines += [
            "",
            f"On the fake engine (no target: at {fake.token_delay_s * 1e3:g} ms per token it "
            "is far faster than SmolLM2 on a CPU, so the HTTP path's own cost weighs more):",
            "",
            *[
                line
                for line in _ratio_table(result, "fake", fake)
                if not line.startswith("| median")
            ],
        ]
    for engine, w in result.workloads.items():
        if engine not in result.engines:
            continue
        title = "SmolLM2 (vLLM)" if engine == "vllm" else "Fake engine"
        lines += [
            "",
            f"## {title}: by concurrency",
            "",
            _engine_line(result, engine, w),
            "client CPU: the load generator's CPU-seconds per second of the level; CPU µs/tok: "
            "this process's (the gateway's, the actors', vLLM's client side) CPU time per "
            "output token.",
            "",
            *_level_table(result, engine, w),
        ]
    lines += notes_section(result.notes)
    return "\n".join(lines) + "\n"


def chart(result: GatewayResult, path: Path) -> None:
    """Per engine: requests/s and latency p50/p99 over concurrency; then output tokens/s of
    the gateway and the actor alone and their ratio (SmolLM2 when measured, else fake)."""
    plt = pyplot()
    m = result.metrics
    engines = [e for e in result.workloads if e in result.engines]
    rows = len(engines) + 1
    fig, axes = plt.subplots(rows, 2, figsize=(13, 4.2 * rows), squeeze=False)

    def line(ax: Any, engine: str, series: str, stat: str, **style: Any) -> None:
        levels = list(result.workloads[engine].concurrency)
        ys = [m.get(f"{engine}_{series}_{stat}_c{c}", math.nan) for c in levels]
        ax.plot(levels, ys, marker="o", color=COLORS.get(series), **style)

    def axis(ax: Any, engine: str, title: str, ylabel: str) -> None:
        levels = list(result.workloads[engine].concurrency)
        ax.set_xscale("log", base=2)
        ax.set_xticks(levels, [str(c) for c in levels])
        ax.set_xlabel("concurrent requests")
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7)

    for row, engine in enumerate(engines):
        name = "SmolLM2" if engine == "vllm" else "fake engine"
        series = result.workloads[engine].series
        for s in series:
            line(axes[row][0], engine, s, "req_per_s", label=SERIES_LABELS.get(s, s))
            line(axes[row][1], engine, s, "e2el_ms_p50", label=f"{SERIES_LABELS.get(s, s)} p50")
            line(axes[row][1], engine, s, "e2el_ms_p99", linestyle="--", alpha=0.6)
        axis(axes[row][0], engine, f"{name}: requests/s", "requests/s")
        if any(y > 0 for ln in axes[row][1].get_lines() for y in ln.get_ydata()):
            axes[row][1].set_yscale("log")  # not on an empty panel: matplotlib refuses
        axis(axes[row][1], engine, f"{name}: latency p50 (solid), p99 (dashed)", "ms")

    engine = "vllm" if "vllm" in engines else engines[0]
    levels = list(result.workloads[engine].concurrency)
    name = "SmolLM2" if engine == "vllm" else "fake engine"
    ax = axes[-1][0]
    line(ax, engine, "raw_stream", "tok_per_s", label="gateway (raw model, stream)")
    line(ax, engine, "actor_stream", "tok_per_s", label="inference actor alone")
    axis(ax, engine, f"{name}: output tokens/s", "output tokens/s")
    ax = axes[-1][1]
    ratios = [m.get(ratio_key(engine, c), math.nan) for c in levels]
    ax.bar([str(c) for c in levels], ratios, color=COLORS["raw_stream"])
    target = result.targets.get(ratio_key(engine))
    if target is not None:
        ax.axhline(target.value, color="red", linestyle="--", linewidth=1, label="target")
        ax.legend(fontsize=8, loc="lower right")
    finite = [r for r in ratios if not math.isnan(r)]
    if finite:
        ax.set_ylim(max(0.0, min([*finite, 0.9]) - 0.05), max([*finite, 1.0]) + 0.05)
    for i, r in enumerate(ratios):
        if not math.isnan(r):
            ax.annotate(f"{r:.3f}", (i, r), ha="center", va="bottom", fontsize=8)
    ax.set_xlabel("concurrent requests")
    ax.set_title(f"{name}: gateway / actor alone, output tokens/s", fontsize=10)

    fig.suptitle(
        f"actoros bench gateway — openai client in its own process; {result.machine.cpu_count} "
        f"CPUs, median of {result.repeats}",
        fontsize=11,
    )
    save_chart(fig, path)

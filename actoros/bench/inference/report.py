"""Turn an ``InferenceResult`` into the Markdown tables and the PNG chart."""

from __future__ import annotations

import math
from pathlib import Path

from .._common import fmt, goal, notes_section, pyplot, save_chart
from .result import InferenceResult

MS = ".2f"  # latencies
REQ = ",.2f"  # requests/s
# rates (tokens/s) are shown as "rate", ratios as "ratio" (see ``_common.SCALED``)

# headline metric -> (what it is, how it is shown)
HEADLINE: dict[str, tuple[str, str]] = {
    "direct_tok_per_s": ("direct (engine streamed from N tasks), output tokens/s", "rate"),
    "actor_tok_per_s": ("through the inference actor from N agent actors, output tokens/s", "rate"),
    "actor_vs_direct": ("actor / direct output tokens/s, worst concurrency level", "ratio"),
    "sequential_tok_per_s": ("one request at a time (naive agent loop), output tokens/s", "rate"),
    "batching_speedup": ("actor at the reference concurrency / sequential", "ratio"),
    "batching_speedup_direct": ("direct at the reference concurrency / sequential", "ratio"),
    "ttft_overhead_ms_p50": ("TTFT p50 added by the actor path, lowest concurrency, ms", MS),
    "ttft_overhead_ms_p50_max": (
        "the same, worst level (at N ≥ 4 mostly where a wave's prefill lands; see below)",
        MS,
    ),
    "direct_req_per_s": ("direct requests/s", REQ),
    "actor_req_per_s": ("actor requests/s", REQ),
    "direct_cpu_us_per_tok": ("this process's CPU per output token, direct, µs", ".1f"),
    "actor_cpu_us_per_tok": ("this process's CPU per output token, actor, µs", ".1f"),
    "actor_cpu_vs_direct": ("actor / direct CPU per output token, worst level", "ratio"),
    "shared_actor_vs_direct": ("actor / direct tokens/s, worst level, one shared prompt", "ratio"),
    "shared_actor_cpu_vs_direct": ("actor / direct CPU per token, worst level, shared", "ratio"),
}
SERIES_TITLES = {
    "distinct": "every request its own random prompt",
    "shared": "one shared prompt for every request (`shared_` keys)",
}


def _status(result: InferenceResult, key: str) -> tuple[str, str]:
    # the only targeted metrics: TTFT overheads (ms) and actor/direct ratios
    return goal(result, key, MS if key.startswith("ttft") else "ratio")


def _level_table(result: InferenceResult, series: str) -> list[str]:
    w, metrics = result.workload, result.metrics
    pre = "" if series == "distinct" else f"{series}_"
    lines = [
        "",
        f"## By concurrency: {SERIES_TITLES.get(series, series)}",
        "",
        "Latencies in ms, p50 (p99 for E2EL), direct / actor; CPU: this process's CPU time "
        "per output token, µs, direct / actor.",
        "",
        "| conc. | requests | direct tok/s | actor tok/s | actor/direct | target | CPU µs/tok "
        "| CPU actor/direct | target | TTFT | added TTFT | TPOT | ITL | E2EL p50 | E2EL p99 |",
        "|---:|---:|---:|---:|---:|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in w.concurrency:

        def pair(name: str, c: int = c, spec: str = MS) -> str:
            return " / ".join(
                fmt(metrics.get(f"{pre}{path}_{name}_c{c}"), spec) for path in ("direct", "actor")
            )

        if pre:
            wanted = status = cpu_wanted = cpu_status = ""
        else:
            wanted, status = _status(result, f"actor_vs_direct_c{c}")
            cpu_wanted, cpu_status = _status(result, f"actor_cpu_vs_direct_c{c}")
        lines.append(
            f"| {c} | {w.requests(c)} "
            f"| {fmt(metrics.get(f'{pre}direct_tok_per_s_c{c}'), 'rate')} "
            f"| {fmt(metrics.get(f'{pre}actor_tok_per_s_c{c}'), 'rate')} "
            f"| {fmt(metrics.get(f'{pre}actor_vs_direct_c{c}'), 'ratio')} | {wanted} {status} "
            f"| {pair('cpu_us_per_tok', spec='.1f')} "
            f"| {fmt(metrics.get(f'{pre}actor_cpu_vs_direct_c{c}'), 'ratio')} "
            f"| {cpu_wanted} {cpu_status} "
            f"| {pair('ttft_ms_p50')} "
            f"| {fmt(metrics.get(f'{pre}ttft_overhead_ms_p50_c{c}'), MS)} "
            f"| {pair('tpot_ms_p50')} | {pair('itl_ms_p50')} | {pair('e2el_ms_p50')} "
            f"| {pair('e2el_ms_p99')} |"
        )
    return lines


def markdown(result: InferenceResult) -> str:
    e, w, metrics = result.engine, result.workload, result.metrics
    ref = int(metrics.get("reference_concurrency", 0))
    engine = f"vLLM {e.version}, model {e.model}" if e.kind == "vllm" else "fake engine"
    measured = " / ".join(
        fmt(metrics.get(f"{path}_prompt_tokens_c{w.concurrency[0]}"), "rate")
        for path in ("direct", "actor")
    )
    lines = [
        "# actoros bench inference",
        "",
        (
            f"{result.about()}; {engine} (started in "
            f"{e.start_seconds:.1f} s); {'quick' if result.quick else 'full'} run, median of "
            f"{result.repeats} repeat(s)."
        ),
        "",
        (
            f"Workload: prompts of {w.prompt_tokens} tokens (measured, direct / actor: "
            f"{measured}; series: {', '.join(w.prompts)}), {w.output_tokens} output tokens "
            f"(`ignore_eos`, temperature {w.temperature:g}); at concurrency N, "
            f"max({w.min_requests}, {w.waves}·N) requests; "
            f"sequential: {w.sequential_requests} requests one at a time. Throughputs in the "
            f"first table are at the reference concurrency, N = {ref}."
        ),
        "",
        "| metric | what | value | target | status |",
        "|---|---|---:|---:|---|",
    ]
    for key, (what, kind) in HEADLINE.items():
        wanted, status = _status(result, key)
        lines.append(f"| `{key}` | {what} | {fmt(metrics.get(key), kind)} | {wanted} | {status} |")
    for series in w.prompts:
        lines += _level_table(result, series)
    lines += [
        "",
        "## Sequential (one request at a time, whole completions)",
        "",
        "| output tok/s | requests/s | TTFT p50 (actor-side) | TPOT p50 | E2EL p50 | E2EL p99 |",
        "|---:|---:|---:|---:|---:|---:|",
        (
            f"| {fmt(metrics.get('sequential_tok_per_s'), 'rate')} "
            f"| {fmt(metrics.get('sequential_req_per_s'), REQ)} "
            f"| {fmt(metrics.get('sequential_ttft_ms_p50'), MS)} "
            f"| {fmt(metrics.get('sequential_tpot_ms_p50'), MS)} "
            f"| {fmt(metrics.get('sequential_e2el_ms_p50'), MS)} "
            f"| {fmt(metrics.get('sequential_e2el_ms_p99'), MS)} |"
        ),
    ]
    lines += notes_section(result.notes)
    return "\n".join(lines) + "\n"


def chart(result: InferenceResult, path: Path) -> None:
    """Three panels over concurrency: output tokens/s, actor/direct, TTFT p50."""
    plt = pyplot()
    metrics = result.metrics
    levels = list(result.workload.concurrency)

    def series(key: str) -> list[float]:
        return [metrics.get(key.format(c), math.nan) for c in levels]

    colors = {"direct": "#888888", "actor": "#1f77b4", "sequential": "#ff7f0e"}
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))

    direct_label = "direct AsyncLLM" if result.engine.kind == "vllm" else "direct FakeEngine"
    ax = axes[0]
    for name in ("direct", "actor"):
        ax.plot(
            levels,
            series(name + "_tok_per_s_c{}"),
            marker="o",
            color=colors[name],
            label=direct_label if name == "direct" else "inference actor",
        )
    sequential = metrics.get("sequential_tok_per_s", math.nan)
    if not math.isnan(sequential):
        ax.axhline(
            sequential,
            color=colors["sequential"],
            linestyle="--",
            label=f"sequential ({sequential:,.0f})",
        )
    ax.set_xscale("log", base=2)
    ax.set_xticks(levels, [str(c) for c in levels])
    ax.set_xlabel("concurrent requests (tasks / agent actors)")
    ax.set_ylabel("output tokens/s")
    ax.set_title("throughput vs concurrency", fontsize=10)
    ax.legend(fontsize=8)

    ax = axes[1]
    ratios = series("actor_vs_direct_c{}")
    ax.bar([str(c) for c in levels], ratios, color=colors["actor"])
    target = result.targets.get("actor_vs_direct")
    if target is not None:
        ax.axhline(target.value, color="red", linestyle="--", linewidth=1, label="target")
        ax.legend(fontsize=8, loc="lower right")
    finite = [r for r in ratios if not math.isnan(r)]
    low = min([*finite, target.value if target else 1.0]) if finite else 0.9
    ax.set_ylim(max(0.0, low - 0.05), max([*finite, 1.0]) + 0.03)
    for i, r in enumerate(ratios):
        if not math.isnan(r):
            ax.annotate(f"{r:.3f}", (i, r), ha="center", va="bottom", fontsize=8)
    ax.set_xlabel("concurrent requests")
    ax.set_title("actor / direct output tokens/s", fontsize=10)

    ax = axes[2]
    for name in ("direct", "actor"):
        ax.plot(
            levels, series(name + "_ttft_ms_p50_c{}"), marker="o", color=colors[name], label=name
        )
    ax.set_xscale("log", base=2)
    ax.set_xticks(levels, [str(c) for c in levels])
    ax.set_xlabel("concurrent requests")
    ax.set_ylabel("ms")
    ax.set_title("TTFT p50", fontsize=10)
    ax.legend(fontsize=8)

    e = result.engine
    what = f"vLLM {e.version}, {e.model}" if e.kind == "vllm" else "fake engine"
    fig.suptitle(
        f"actoros bench inference — {what}; prompt {result.workload.prompt_tokens} / output "
        f"{result.workload.output_tokens} tokens; {result.machine.cpu_count} CPUs, median of "
        f"{result.repeats}",
        fontsize=11,
    )
    save_chart(fig, path)

"""Turn a ``ClusterResult`` into the Markdown tables and the PNG chart."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .._common import fmt, goal, notes_section, pyplot, save_chart
from .result import LAYOUTS, ClusterResult

RATE = ",.0f"
RATIO = "ratio"  # _common.SCALED: 3 decimals below 10
SECONDS = ".3f"
MS = ".2f"
SHARE = ".0%"

# metric -> (what it is, how it is shown), in the table's order, by section
TRANSPORT: dict[str, tuple[str, str]] = {
    "ask_rt_per_s": ("actoros ask a → b round trips/s (sequential, awaited)", RATE),
    "tell_msg_per_s": ("actoros tell a → b msgs/s, until b confirms all", RATE),
    "ray_ping_rt_per_s": ("Ray: awaited `ping()` of b's process from a, calls/s", RATE),
    "ray_call_rt_per_s": (
        "Ray: awaited `tell(path, message)` of b's process, calls/s",
        RATE,
    ),
    "ask_vs_ray_call": ("ask / Ray call carrying the message (median of per-repeat ratios)", RATIO),
    "ask_vs_ray_ping": ("ask / Ray ping (no argument)", RATIO),
    "tell_vs_ray_call": ("tell / Ray call carrying the message", RATIO),
    "tell_vs_ray_ping": ("tell / Ray ping", RATIO),
}
SCALING: dict[str, tuple[str, str]] = {
    **{
        f"{layout}_tasks_per_s": (f"{what}: tasks/s", ",.1f")
        for layout, (_, what) in LAYOUTS.items()
    },
    "two_vs_one": ("2 nodes / 1 node (median of per-repeat ratios)", RATIO),
    "two_nodes_share_b": ("share of the tasks node b ran in the 2-node layout", SHARE),
    "workers_two_vs_one": ("2 worker nodes / 1 worker node, the driver alone in a", RATIO),
    "task_ms": ("one task's CPU job alone on node a, ms (median)", MS),
}
NODE_LOSS: dict[str, tuple[str, str]] = {
    "recovery_p50_s": ("SIGKILL of b → b's group answers again, p50, s", SECONDS),
    "recovery_p90_s": ("the same, p90, s", SECONDS),
    "recovery_max_s": ("the same, max, s", SECONDS),
    "kills": ("kills", ".0f"),
    "unrecovered": ("kills not answered within the limit", ".0f"),
}
SECTIONS = (
    ("Transport: node a → node b, against Ray's own calls", TRANSPORT),
    ("CPU-bound work: 1 node vs 2 nodes", SCALING),
    ("Node loss", NODE_LOSS),
)


def _table(result: ClusterResult, labels: dict[str, tuple[str, str]]) -> list[str]:
    lines = ["| metric | what | value | target | status |", "|---|---|---:|---:|---|"]
    for key, (what, spec) in labels.items():
        if key in result.metrics:
            wanted, status = goal(result, key, spec)
            value = fmt(result.metrics[key], spec)
            lines.append(f"| `{key}` | {what} | {value} | {wanted} | {status} |")
        elif key in result.targets:
            target = result.targets[key]
            lines.append(
                f"| `{key}` | {what} | not measured | {target.op} {fmt(target.value, spec)} | n/a |"
            )
    return lines


def _cores(result: ClusterResult) -> list[str]:
    """Per layout, the cores each process used while it ran (none when not measured)."""
    m = result.metrics
    if not any(f"{layout}_cores_a" in m for layout in LAYOUTS):
        return []
    lines = [
        "",
        "Cores in use while each layout ran (CPU-seconds per second of its wall time; "
        "*other*: Ray's own processes, the bench's and anything else on the machine):",
        "",
        "| layout | tasks/s | node a | node b | node c | other | total |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for layout, (_, what) in LAYOUTS.items():
        used = [m.get(f"{layout}_cores_{who}", math.nan) for who in ("a", "b", "c", "other")]
        total = sum(used)
        cells = " | ".join(fmt(v, ".2f") for v in [*used, total])
        lines.append(f"| {what} | {fmt(m.get(f'{layout}_tasks_per_s'), ',.1f')} | {cells} |")
    return lines


def _kills(result: ClusterResult) -> list[str]:
    if not result.kills:
        return []
    lines = ["| kill | recovery, s | failed asks meanwhile | new process |", "|---:|---:|---:|---|"]
    for i, kill in enumerate(result.kills, 1):
        lines.append(
            f"| {i} | {fmt(kill.recovery_s, SECONDS)} | {kill.failed_polls} "
            f"| {'yes' if kill.new_pid else 'no'} |"
        )
    return ["", *lines]


def markdown(result: ClusterResult) -> str:
    lines = [
        "# actoros bench cluster",
        "",
        (
            f"{result.about()}; Ray {result.ray_version}; "
            f"{'quick' if result.quick else 'full'} run, median of {result.repeats} repeat(s)."
        ),
        "",
        (
            "Three node processes on a local Ray cluster of two Ray nodes: a (the head), b, c. "
            "Ratios compare runs made side by side in the same processes; absolute numbers "
            "depend on this machine and its load."
        ),
    ]
    for title, labels in SECTIONS:
        lines += ["", f"## {title}", "", *_table(result, labels)]
        if labels is SCALING:
            lines += _cores(result)
        if labels is NODE_LOSS:
            lines += _kills(result)
    lines += notes_section(result.notes)
    return "\n".join(lines) + "\n"


def _bars(ax: Any, items: list[tuple[str, float | None, str]], title: str, unit: str) -> None:
    present = [(label, v, c) for label, v, c in items if v is not None and not math.isnan(v)]
    ax.bar([p[0] for p in present], [p[1] for p in present], color=[p[2] for p in present])
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(unit, fontsize=9)
    ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    for i, (_, v, _) in enumerate(present):
        ax.annotate(
            f"{v:,.0f}" if v >= 100 else f"{v:,.1f}", (i, v), ha="center", va="bottom", fontsize=8
        )


def chart(result: ClusterResult, path: Path) -> None:
    """Three panels: cross-node rates against Ray's, tasks/s per layout, recovery per kill."""
    plt = pyplot()
    m = result.metrics
    ours, ray = "#1f77b4", "#888888"
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    _bars(
        axes[0],
        [
            ("Ray ping()", m.get("ray_ping_rt_per_s"), ray),
            ("Ray tell(msg)", m.get("ray_call_rt_per_s"), ray),
            ("actoros ask", m.get("ask_rt_per_s"), ours),
            ("actoros tell", m.get("tell_msg_per_s"), ours),
        ],
        "a → b: calls, round trips or messages per second",
        "per second (log)",
    )
    axes[0].set_yscale("log")
    short = {
        "one_node": "1 node",
        "two_nodes": "2 nodes",
        "one_worker_node": "driver + 1\nworker node",
        "two_worker_nodes": "driver + 2\nworker nodes",
    }
    _bars(
        axes[1],
        [
            (short[layout], m.get(f"{layout}_tasks_per_s"), ours if i < 2 else "#ff7f0e")
            for i, layout in enumerate(LAYOUTS)
        ],
        f"CPU-bound tasks/s (2 nodes / 1 node: {fmt(m.get('two_vs_one'), RATIO)})",
        "tasks/s",
    )
    times = [k.recovery_s for k in result.kills if k.recovery_s is not None]
    ax = axes[2]
    ax.bar([str(i) for i in range(1, len(times) + 1)], times, color=ours)
    if "recovery_p50_s" in m:
        ax.axhline(m["recovery_p50_s"], color="red", linestyle="--", linewidth=1, label="p50")
        ax.legend(fontsize=8)
    ax.set_title("SIGKILL of node b → its group answers again", fontsize=10)
    ax.set_xlabel("kill", fontsize=9)
    ax.set_ylabel("seconds", fontsize=9)
    fig.suptitle(
        f"actoros bench cluster — Ray {result.ray_version}, {result.machine.cpu_count} CPUs, "
        f"median of {result.repeats}",
        fontsize=11,
    )
    save_chart(fig, path)

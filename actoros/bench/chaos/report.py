"""Turn a ``ChaosResult`` into the Markdown table and the PNG chart."""

from __future__ import annotations

import math
from pathlib import Path

from .._common import fmt, notes_section, pyplot, save_chart
from .result import ChaosResult, FaultRow


def _ok(f: FaultRow) -> str:
    met = f.lost == 0 and f.wrong == 0 and f.outside_window == 0 and f.unrecovered == 0
    return "yes" if met and f.journal else "**no**"


def markdown(result: ChaosResult) -> str:
    m = result.machine
    w = result.sizes.workload
    ref = result.reference
    lines = [
        "# actoros bench chaos",
        "",
        (
            f"actoros {result.version}, Python {result.python}, {m.cpu_count} CPUs, "
            f"{m.platform}; {result.timestamp}; {'quick' if result.quick else 'full'} run; "
            f"seed {result.seed}. Each run is a real `actoros run` process; the fake-engine "
            f"workload has {w.tasks + w.hung} tasks ({w.concurrency} at a time); its fault-free "
            f"reference took {ref.wall_s:.1f} s (first result at {ref.first_line_s:.1f} s, "
            f"last at {ref.last_line_s:.1f} s)."
        ),
        "",
        "| fault | runs (landed) | lost | wrong | run twice: outside / in window | unwritten "
        "| recovered | recovery p50 / max, s | tracebacks | targets met |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for f in result.faults:
        if f.skipped is not None:
            lines.append(f"| {f.fault} | skipped | | | | | | | | {f.skipped} |")
            continue
        twice = f"{f.outside_window} / {f.in_window}" if f.journal else "n/a (no journal)"
        lines.append(
            f"| {f.fault} | {f.runs} ({f.landed}) | {f.lost} | {f.wrong} | {twice} | "
            f"{f.unwritten} | {f.recovered}/{f.runs} | {fmt(f.recovery_p50_s, '.1f')} / "
            f"{fmt(f.recovery_max_s, '.1f')} | {f.tracebacks} | {_ok(f)} |"
        )
    lines += ["", "Counts are tasks, summed over the runs of a fault.", ""]
    lines += [f"- **{f.fault}**: {f.what}" for f in result.faults]
    lines += ["", "| target | over all faults | met |", "|---|---:|---|"]
    for key, target in result.targets.items():
        shown = fmt(result.metrics.get(key), ".0f")
        met = {True: "yes", False: "**no**", None: "n/a"}[result.passed.get(key)]
        lines.append(f"| `{key}` {target.op} {target.value:g} | {shown} | {met} |")
    lines += notes_section(result.notes)
    return "\n".join(lines) + "\n"


def chart(result: ChaosResult, path: Path) -> None:
    """Two panels: per fault, tasks lost / wrong / run twice outside and inside the window
    (and runs not recovered); per fault, recovery time p50 (the bar) and max (the marker)."""
    plt = pyplot()
    ran = [f for f in result.faults if f.skipped is None]
    names = [f.fault for f in ran]
    xs = list(range(len(ran)))
    series = [
        ("lost", [f.lost for f in ran], "#d62728"),
        ("wrong", [f.wrong for f in ran], "#9467bd"),
        ("run twice, outside window", [f.outside_window for f in ran], "#ff7f0e"),
        ("run twice, in window (allowed)", [f.in_window for f in ran], "#ffd8a8"),
        ("runs not recovered", [f.unrecovered for f in ran], "#7f7f7f"),
    ]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    width = 0.16
    for k, (label, values, color) in enumerate(series):
        offset = (k - (len(series) - 1) / 2) * width
        left.bar([x + offset for x in xs], values, width, label=label, color=color)
        for x, v in zip(xs, values, strict=True):
            left.annotate(f"{v}", (x + offset, v), ha="center", va="bottom", fontsize=7)
    left.set_xticks(xs, names)
    left.set_ylabel("tasks (runs for 'not recovered')")
    left.set_title("faults: what went wrong (target: all 0)", fontsize=10)
    left.legend(fontsize=8)
    p50 = [f.recovery_p50_s if f.recovery_p50_s is not None else math.nan for f in ran]
    worst = [f.recovery_max_s if f.recovery_max_s is not None else math.nan for f in ran]
    right.bar(xs, p50, 0.5, color="#1f77b4", label="p50")
    right.plot(xs, worst, "v", color="#000000", label="max")
    for x, v in zip(xs, p50, strict=True):
        shown, at = ("n/a", 0.0) if math.isnan(v) else (f"{v:.1f}", v)
        right.annotate(shown, (x, at), ha="center", va="bottom", fontsize=8)
    right.set_xticks(xs, names)
    right.set_ylabel("s")
    right.set_title("recovery time (see the table for what it measures per fault)", fontsize=10)
    right.legend(fontsize=8)
    for ax in (left, right):
        ax.tick_params(axis="x", labelsize=8, rotation=15)
    fig.suptitle(
        f"actoros bench chaos — {'quick' if result.quick else 'full'}, "
        f"{result.machine.cpu_count} CPUs, seed {result.seed}",
        fontsize=11,
    )
    save_chart(fig, path)

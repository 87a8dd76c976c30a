"""The result of ``actoros bench chaos`` as data (``chaos.json``), Markdown and a PNG chart."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import msgspec

from ._chaos_system import Spec
from ._result import ResultHeader, Target
from ._stats import percentile

TARGETS: dict[str, Target] = {
    "lost": Target("<=", 0),
    "wrong": Target("<=", 0),
    "run_twice_outside_window": Target("<=", 0),
    "unrecovered": Target("<=", 0),
}


class Repeat(msgspec.Struct, frozen=True, kw_only=True):
    """One fault and what followed it, in task ids (sorted)."""

    fault_at_s: float | None = None  # after the faulted run started; None: not a timed fault
    landed: bool  # the fault hit a live process that still had tasks to answer
    lines_at_fault: int = 0  # result lines the faulted run had written by then
    exit_codes: list[int | None]  # the faulted run, then each rerun; None: killed at the bound
    lost: list[str]
    wrong: list[str]
    run_twice: list[str]
    in_window: list[str]  # of run_twice: started and unfinished when the fault hit
    unwritten: list[str]  # journaled as finished by the faulted run, no line written
    journal: bool  # the journal could be read (run_twice is measured)
    completed: bool  # a run answered every task and exited 0
    recovered: bool  # completed, nothing lost or wrong (and the fault's own condition)
    recovery_s: float | None = None
    tracebacks: int = 0  # runs whose stderr holds a Python traceback
    left_behind: int = 0  # processes a run left running after it exited (killed then)
    note: str = ""


class FaultRow(msgspec.Struct, frozen=True, kw_only=True):
    """One fault kind: its repeats, and their counts summed."""

    fault: str
    what: str  # what the fault is, what follows it, what recovery_s measures
    tasks: int  # tasks in the workload of one repeat
    runs: int
    landed: int
    lost: int
    wrong: int
    run_twice: int
    in_window: int
    unwritten: int
    recovered: int
    recovery_p50_s: float | None
    recovery_max_s: float | None
    tracebacks: int
    left_behind: int
    journal: bool  # every repeat's journal was read
    skipped: str | None = None  # why the fault was not run
    repeats: list[Repeat] = []

    @property
    def outside_window(self) -> int:
        return self.run_twice - self.in_window

    @property
    def unrecovered(self) -> int:
        return self.runs - self.recovered


class Reference(msgspec.Struct, frozen=True, kw_only=True):
    """The fault-free run every repeat is compared with."""

    wall_s: float  # start to exit
    first_line_s: float  # start to its first result line
    last_line_s: float  # start to its last result line
    errors: int  # tasks it answered with an error (expected: 0)


class Sizes(msgspec.Struct, frozen=True, kw_only=True):
    workload: Spec  # the fake-engine system
    repeats: dict[str, int]  # per fault
    engine_workload: Spec | None = None  # the vLLM system of the EngineCore fault


class ChaosResult(ResultHeader, frozen=True, kw_only=True):
    benchmark: str = "chaos"
    seed: int
    sizes: Sizes
    reference: Reference
    faults: list[FaultRow]
    metrics: dict[str, float]  # the targets' measures over every fault run
    targets: dict[str, Target]
    passed: dict[str, bool | None]
    notes: list[str] = []


def row(fault: str, what: str, tasks: int, repeats: Sequence[Repeat]) -> FaultRow:
    """The counts of ``repeats`` summed into one row."""
    times = [r.recovery_s for r in repeats if r.recovery_s is not None]
    return FaultRow(
        fault=fault, what=what, tasks=tasks, runs=len(repeats),
        landed=sum(r.landed for r in repeats),
        lost=sum(len(r.lost) for r in repeats), wrong=sum(len(r.wrong) for r in repeats),
        run_twice=sum(len(r.run_twice) for r in repeats),
        in_window=sum(len(r.in_window) for r in repeats),
        unwritten=sum(len(r.unwritten) for r in repeats),
        recovered=sum(r.recovered for r in repeats),
        recovery_p50_s=percentile(times, 50) if times else None,
        recovery_max_s=max(times) if times else None,
        tracebacks=sum(r.tracebacks for r in repeats),
        left_behind=sum(r.left_behind for r in repeats),
        journal=all(r.journal for r in repeats), repeats=list(repeats),
    )  # fmt: skip


def skipped(fault: str, what: str, why: str) -> FaultRow:
    return FaultRow(
        fault=fault, what=what, tasks=0, runs=0, landed=0, lost=0, wrong=0, run_twice=0,
        in_window=0, unwritten=0, recovered=0, recovery_p50_s=None, recovery_max_s=None,
        tracebacks=0, left_behind=0, journal=True, skipped=why,
    )  # fmt: skip


def measures(faults: Sequence[FaultRow]) -> dict[str, float]:
    """Each target's measure summed over the faults that ran (NaN: not measured)."""
    ran = [f for f in faults if f.skipped is None]
    if not ran:
        return {key: math.nan for key in TARGETS}
    outside = sum(f.outside_window for f in ran) if all(f.journal for f in ran) else math.nan
    return {
        "lost": float(sum(f.lost for f in ran)),
        "wrong": float(sum(f.wrong for f in ran)),
        "run_twice_outside_window": float(outside),
        "unrecovered": float(sum(f.unrecovered for f in ran)),
    }


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


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
            f"{f.unwritten} | {f.recovered}/{f.runs} | {_seconds(f.recovery_p50_s)} / "
            f"{_seconds(f.recovery_max_s)} | {f.tracebacks} | {_ok(f)} |"
        )
    lines += ["", "Counts are tasks, summed over the runs of a fault.", ""]
    lines += [f"- **{f.fault}**: {f.what}" for f in result.faults]
    lines += ["", "| target | over all faults | met |", "|---|---:|---|"]
    for key, target in result.targets.items():
        value = result.metrics.get(key, math.nan)
        shown = "n/a" if math.isnan(value) else f"{value:.0f}"
        met = {True: "yes", False: "**no**", None: "n/a"}[result.passed.get(key)]
        lines.append(f"| `{key}` {target.op} {target.value:g} | {shown} | {met} |")
    if result.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in result.notes]
    return "\n".join(lines) + "\n"


def chart(result: ChaosResult, path: Path) -> None:
    """Two panels: per fault, tasks lost / wrong / run twice outside and inside the window
    (and runs not recovered); per fault, recovery time p50 (the bar) and max (the marker)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

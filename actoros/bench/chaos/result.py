"""The result of ``actoros bench chaos`` as data: what goes into ``chaos.json``."""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec

from .._common import Result, Target, percentile
from ._system import Spec

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


class ChaosResult(Result, frozen=True, kw_only=True):
    """``metrics``: the targets' measures over every fault run (see ``measures``)."""

    benchmark: str = "chaos"
    seed: int
    sizes: Sizes
    reference: Reference
    faults: list[FaultRow]


def row(fault: str, what: str, tasks: int, repeats: Sequence[Repeat]) -> FaultRow:
    """The counts of ``repeats`` summed into one row."""
    times = [r.recovery_s for r in repeats if r.recovery_s is not None]
    return FaultRow(
        fault=fault,
        what=what,
        tasks=tasks,
        runs=len(repeats),
        landed=sum(r.landed for r in repeats),
        lost=sum(len(r.lost) for r in repeats),
        wrong=sum(len(r.wrong) for r in repeats),
        run_twice=sum(len(r.run_twice) for r in repeats),
        in_window=sum(len(r.in_window) for r in repeats),
        unwritten=sum(len(r.unwritten) for r in repeats),
        recovered=sum(r.recovered for r in repeats),
        recovery_p50_s=percentile(times, 50) if times else None,
        recovery_max_s=max(times) if times else None,
        tracebacks=sum(r.tracebacks for r in repeats),
        left_behind=sum(r.left_behind for r in repeats),
        journal=all(r.journal for r in repeats),
        repeats=list(repeats),
    )


def skipped(fault: str, what: str, why: str) -> FaultRow:
    return FaultRow(
        fault=fault,
        what=what,
        tasks=0,
        runs=0,
        landed=0,
        lost=0,
        wrong=0,
        run_twice=0,
        in_window=0,
        unwritten=0,
        recovered=0,
        recovery_p50_s=None,
        recovery_max_s=None,
        tracebacks=0,
        left_behind=0,
        journal=True,
        skipped=why,
    )


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

"""The faults of ``actoros bench chaos``: each one repeat, from a fresh state dir to a verdict.

Every repeat writes its own system (``_system.write_system``), starts a real ``actoros
run``, injects its fault, then reruns the same config until a run answers every task and
exits 0 (at most ``MAX_RERUNS``), and counts with ``_count`` against the fault-free
reference. Every wait is bounded; a process still running at its bound is killed (its exit
code is then ``None``) and counted as not recovered.
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from . import _count as count
from ._count import Expect
from ._system import Run, Spec, Task, read_journal, tasks_of, write_system
from .result import Reference, Repeat

SignalFault = Literal["sigkill", "sigterm", "sigint_twice"]
MAX_RERUNS = 3
SECOND_CTRL_C_S = 0.25  # between the two SIGINTs of a double Ctrl-C
POLL_S = 0.005
SPAN = 0.85  # of the reference's answering span where signal faults land


class Bench:
    """What every repeat of one system shares: where repeats go, the workload, the
    reference's answers and timing, and the bounds on each wait."""

    def __init__(self, root: Path, spec: Spec, *, stop_bound: float, exact: bool = True) -> None:
        self.root = root
        self.spec = spec
        self.tasks: list[Task] = tasks_of(spec)
        self.stop_bound = stop_bound  # s a graceful stop may take (the runner's default is 30)
        self.exact = exact  # compare output texts with the reference's (not with vLLM)
        self.expect: dict[str, Expect] = {}
        self.reference: Reference | None = None

    def system(self, name: str) -> Path:
        return write_system(self.root / name, self.spec)

    @property
    def run_bound(self) -> float:
        """s a run without faults may take: the reference's, with room for a busy machine."""
        assert self.reference is not None
        return self.reference.wall_s * 4 + 30.0

    def measure_reference(self) -> Reference:
        """The fault-free run: its answers become the expectations, its timing the moments."""
        config = self.system("reference")
        run = Run(config, config.parent / "run-0.jsonl")
        first = last = None
        seen = 0
        deadline = time.monotonic() + 600.0
        while run.alive() and time.monotonic() < deadline:
            now, lines = time.monotonic(), run.lines()
            if lines > seen:
                first = now if first is None else first
                last, seen = now, lines
            time.sleep(POLL_S)
        code = run.finish(0.0)
        lines = count.read_lines(run.out)
        if code != 0 or not count.complete(self.tasks, lines):
            raise RuntimeError(
                f"the fault-free reference run failed (exit {code}, {len(lines)} of "
                f"{len(self.tasks)} results): {run.stderr_tail(3) or 'no output'}"
            )
        assert run.ended is not None
        end = last or run.ended
        self.expect = count.expectations(self.tasks, lines, exact=self.exact)
        self.reference = Reference(
            wall_s=round(run.ended - run.started, 3),
            first_line_s=round((first or end) - run.started, 3),
            last_line_s=round(end - run.started, 3),
            errors=sum("output" not in line for line in lines),
        )
        return self.reference


@dataclass
class _Verdict:
    """The counts of one repeat, before the fault's own conditions."""

    runs: list[Run]
    codes: list[int | None]
    final: list[dict[str, Any]]
    lost: list[str]
    wrong: list[str]
    twice: list[str]
    in_window: list[str]
    journal: bool
    completed: bool
    tracebacks: int
    left_behind: int  # processes the runs left running after they exited


def _by_task(bench: Bench, rows: list[dict[str, Any]] | None) -> dict[str, Mapping[str, Any]]:
    return count.journal_by_task(rows or [], bench.tasks)


def _rerun(bench: Bench, config: Path, start: int) -> list[tuple[Run, int | None]]:
    """Run ``config`` again until a run answers every task and exits 0."""
    outcomes: list[tuple[Run, int | None]] = []
    for k in range(start, start + MAX_RERUNS):
        run = Run(config, config.parent / f"run-{k}.jsonl")
        code = run.finish(bench.run_bound)
        outcomes.append((run, code))
        if code == 0 and count.complete(bench.tasks, count.read_lines(run.out)):
            break
    return outcomes


def _judge(
    bench: Bench,
    config: Path,
    faulted: list[tuple[Run, int | None]],
    window: set[str],
    expect: Mapping[str, Expect] | None = None,
    rerun: bool = True,
) -> _Verdict:
    """Rerun after the faulted runs when they left work undone, then count everything."""
    outcomes = list(faulted)
    first, first_code = outcomes[0]
    done = first_code == 0 and count.complete(bench.tasks, count.read_lines(first.out))
    if rerun and not done:
        outcomes += _rerun(bench, config, start=len(outcomes))
    runs = [run for run, _ in outcomes]
    codes = [code for _, code in outcomes]
    final_run, final_code = outcomes[0] if done or not rerun else outcomes[-1]
    final = count.read_lines(final_run.out)
    expect = expect if expect is not None else bench.expect
    rows = read_journal(config.parent / "state")
    twice, in_window = count.run_twice(_by_task(bench, rows), window)
    return _Verdict(
        runs=runs,
        codes=codes,
        final=final,
        lost=count.lost(bench.tasks, expect, final),
        wrong=count.wrong(bench.tasks, expect, [count.read_lines(r.out) for r in runs]),
        twice=twice,
        in_window=in_window,
        journal=rows is not None and (bool(rows) or not final),
        completed=final_code == 0 and count.complete(bench.tasks, final),
        tracebacks=sum(run.tracebacks() > 0 for run in runs),
        left_behind=sum(run.left_behind for run in runs),
    )


def _wait_lines(run: Run, lines: int, bound: float) -> None:
    """Until ``run`` has written ``lines`` result lines, exited, or ``bound`` s went by."""
    deadline = time.monotonic() + bound
    while run.alive() and run.lines() < lines and time.monotonic() < deadline:
        time.sleep(POLL_S)


def signal_fault(bench: Bench, fault: SignalFault, index: int, moment: float) -> Repeat:
    """Start a run, send the fault ``moment`` s after its first result line, wait for it to
    end (killed at the stop bound), rerun until complete. SIGKILL and SIGTERM go to the
    process, as ``kill`` sends them; a double Ctrl-C is SIGINT to the process group twice, as
    a terminal sends it."""
    config = bench.system(f"{fault}-{index:02d}")
    state = config.parent / "state"
    run = Run(config, config.parent / "run-0.jsonl")
    _wait_lines(run, 1, bench.run_bound)
    answering = time.monotonic()
    while run.alive() and time.monotonic() < answering + moment:
        time.sleep(POLL_S)
    lines_at = run.lines()
    landed = run.alive() and lines_at < len(bench.tasks)
    # what a graceful stop interrupts may go back to the queue: note what ran just before it
    before = None if fault == "sigkill" else read_journal(state)
    fault_at = time.monotonic()
    if fault == "sigkill":
        run.send(signal.SIGKILL)
    elif fault == "sigterm":
        run.send(signal.SIGTERM)
    elif run.send(signal.SIGINT, group=True):
        time.sleep(SECOND_CTRL_C_S)
        run.send(signal.SIGINT, group=True)
    code = run.finish(bench.stop_bound)
    after = _by_task(bench, read_journal(state))
    window = count.interrupted(after) | count.interrupted(_by_task(bench, before))
    graceful = fault != "sigkill"
    unwritten = count.unwritten(after, count.read_lines(run.out)) if graceful else []
    v = _judge(bench, config, [(run, code)], window)
    ended = v.runs[-1].ended
    recovered = v.completed and not v.lost and not v.wrong and not v.left_behind
    note = ""
    if code is None:
        note = f"did not exit within {bench.stop_bound:g} s of the {fault}; killed"
    elif not v.completed:
        note = f"no complete rerun in {MAX_RERUNS}: {v.runs[-1].stderr_tail()}"
    return Repeat(
        fault_at_s=round(fault_at - run.started, 3),
        landed=landed,
        lines_at_fault=lines_at,
        exit_codes=v.codes,
        lost=v.lost,
        wrong=v.wrong,
        run_twice=v.twice,
        in_window=v.in_window,
        unwritten=unwritten,
        journal=v.journal,
        completed=v.completed,
        recovered=recovered,
        recovery_s=round(ended - fault_at, 3) if landed and v.completed and ended else None,
        tracebacks=v.tracebacks,
        left_behind=v.left_behind,
        note=note,
    )


def moments(rng: random.Random, n: int, reference: Reference) -> list[float]:
    """``n`` fault moments, in s after a run's own first result line, spread over the first
    ``SPAN`` of the reference's answering span (its first to its last result line): one
    uniformly at random in each of ``n`` equal slices. Counting from the run's first result
    leaves out its start-up, whose length varies most with the machine's load; the span's end
    is left out because a run a little faster than the reference would be done by then."""
    width = (reference.last_line_s - reference.first_line_s) * SPAN
    return [round((i + rng.random()) / n * width, 3) for i in range(n)]


def hung_tool(bench: Bench, index: int) -> Repeat:
    """A run whose user tool never returns for the ``hang-`` lookups: it must finish on its
    own within ``hung_bound`` s, those tasks failing with a timeout and every other right.
    recovery_s: the run's wall time."""
    config = bench.system(f"hung_tool-{index:02d}")
    run = Run(config, config.parent / "run-0.jsonl", hang=True)
    assert bench.reference is not None
    bound = hung_bound(bench.reference, bench.spec)
    code = run.finish(bound)
    expect = dict(bench.expect)
    for task in bench.tasks:
        if task.kind == "hang":
            expect[task.id] = Expect("error", "timed out")
    v = _judge(bench, config, [(run, code)], set(), expect=expect, rerun=False)
    recovered = v.completed and not v.lost and not v.wrong and not v.left_behind
    assert run.ended is not None
    note = "" if code is not None else f"did not exit within {bound:g} s; killed"
    return Repeat(
        landed=True,
        exit_codes=v.codes,
        lost=v.lost,
        wrong=v.wrong,
        run_twice=v.twice,
        in_window=[],
        unwritten=[],
        journal=v.journal,
        completed=v.completed,
        recovered=recovered,
        recovery_s=round(run.ended - run.started, 3) if code is not None else None,
        tracebacks=v.tracebacks,
        left_behind=v.left_behind,
        note=note,
    )


def hung_bound(reference: Reference, spec: Spec) -> float:
    """s the hung-tool run may take: the reference's, plus one task timeout (no task may take
    longer), plus 10 s to stop."""
    return round(reference.wall_s + spec.timeout + 10.0, 1)


def second_process(bench: Bench, index: int) -> Repeat:
    """Start a run; once it has answered a task, start a second ``actoros run`` of the same
    config (same state dir). Expected: the second exits 2 at once having answered nothing, and
    the first finishes unaffected. recovery_s: the second's time to exit."""
    config = bench.system(f"second_process-{index:02d}")
    first = Run(config, config.parent / "run-0.jsonl")
    _wait_lines(first, 1, bench.run_bound)
    lines_at = first.lines()
    landed = first.alive() and lines_at < len(bench.tasks)
    second = Run(config, config.parent / "second.jsonl")
    second_code = second.finish(bench.run_bound)
    first_code = first.finish(bench.run_bound)
    v = _judge(bench, config, [(first, first_code), (second, second_code)], set())
    answered = len(count.read_lines(second.out))
    refused = second_code == 2 and answered == 0
    unaffected = first_code == 0 and v.codes[2:] == []
    recovered = refused and unaffected and not (v.lost or v.wrong or v.twice or v.left_behind)
    assert second.ended is not None
    note = (
        f"second process: exit {second_code}, {answered} results; first: exit {first_code}"
        + ("" if unaffected else ", needed a rerun")
        + f"; second's stderr: {second.stderr_tail(1) or 'nothing'}"
    )
    return Repeat(
        fault_at_s=round(second.started - first.started, 3),
        landed=landed,
        lines_at_fault=lines_at,
        exit_codes=v.codes,
        lost=v.lost,
        wrong=v.wrong,
        run_twice=v.twice,
        in_window=[],
        unwritten=[],
        journal=v.journal,
        completed=v.completed,
        recovered=recovered,
        recovery_s=round(second.ended - second.started, 3),
        tracebacks=v.tracebacks,
        left_behind=v.left_behind,
        note=note,
    )


def _engine_core(run: Run) -> Any:
    """vLLM's EngineCore process among the run's descendants, or ``None``."""
    import psutil

    try:
        children = psutil.Process(run.pid).children(recursive=True)
    except psutil.Error:
        return None
    for child in children:
        try:
            text = child.name() + " " + " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "EngineCore" in text:
            return child
    return None


def engine_core_kill(bench: Bench, index: int, rng: random.Random, start_bound: float) -> Repeat:
    """SIGKILL to vLLM's EngineCore process mid-stream: once the run has answered its first
    wave of tasks, at a random moment of the next. The run should carry on (the inference
    actor's supervisor starts a new engine); then rerun until complete. Any of the run's
    processes left behind counts against recovery. recovery_s: kill to every task answered."""
    config = bench.system(f"engine_core-{index:02d}")
    run = Run(config, config.parent / "run-0.jsonl")
    _wait_lines(run, bench.spec.concurrency, start_bound)
    time.sleep(rng.uniform(0.2, 1.0))
    lines_at = run.lines()
    core = _engine_core(run)
    landed = core is not None and run.alive() and lines_at < len(bench.tasks)
    state = config.parent / "state"
    before = read_journal(state)  # the tasks in flight: a retry of one is in the window
    fault_at = time.monotonic()
    note = ""
    if core is not None:
        core.kill()
    else:
        note = "no EngineCore process found among the run's children; nothing killed"
    code = run.finish(start_bound + bench.run_bound)
    after = read_journal(state)
    window = count.interrupted(_by_task(bench, before)) | count.interrupted(_by_task(bench, after))
    v = _judge(bench, config, [(run, code)], window)
    ended = v.runs[-1].ended
    recovered = v.completed and not v.lost and not v.wrong and not v.left_behind
    return Repeat(
        fault_at_s=round(fault_at - run.started, 3),
        landed=landed,
        lines_at_fault=lines_at,
        exit_codes=v.codes,
        lost=v.lost,
        wrong=v.wrong,
        run_twice=v.twice,
        in_window=v.in_window,
        unwritten=[],
        journal=v.journal,
        completed=v.completed,
        recovered=recovered,
        recovery_s=round(ended - fault_at, 3) if landed and v.completed and ended else None,
        tracebacks=v.tracebacks,
        left_behind=v.left_behind,
        note=note,
    )

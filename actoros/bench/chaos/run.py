"""``actoros bench chaos``: the system under faults, as real ``actoros run`` processes.

A fake-engine system (a rule router answering by template, the ``calculator``, a synchronous
user tool, an LLM agent; see ``_system.py``) runs its workload as ``python -m actoros
run CONFIG --out FILE`` while faults are injected:

- **sigkill**, **sigterm**, **sigint_twice** (a double Ctrl-C): at seeded random moments after
  each run's first result, spread over most of the reference run's answering span (10 each,
  quick 5), each followed by reruns of the same config until one answers every task;
- **hung_tool**: a user tool that never returns for some tasks (more than asyncio's default
  thread pool holds): the run must finish by itself, those tasks failing with a timeout;
- **second_process**: a second ``actoros run`` on the same state dir while the first runs:
  it must be refused (exit 2) and the first unaffected;
- **engine_core** (full run only): SIGKILL to vLLM's EngineCore process mid-stream, SmolLM2;
  skipped with a note when vLLM or the model is missing.

Per fault it counts tasks lost, wrong (not the answer to their own input), run twice (inside
and outside the at-least-once window) and the recovery time (see ``_count.py``),
against a fault-free reference run of the same workload. Targets: 0 lost, 0 wrong, 0 run
twice outside the window, every fault recovered. It measures the code it runs; it is not
built to pass. Writes ``chaos.json`` (a ``ChaosResult``), ``chaos.md`` and ``chaos.png`` to
``out``, and the table to stdout.
"""

from __future__ import annotations

import importlib.util
import os
import random
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec

from actoros.kernel.tools import DEFAULT_TOOL_THREADS

from .._common import EngineKind, is_tiny, judge, progress, run_header, running, vllm_missing
from ._faults import (
    SPAN,
    Bench,
    engine_core_kill,
    hung_bound,
    hung_tool,
    moments,
    second_process,
    signal_fault,
)
from ._system import Spec
from .report import chart, markdown
from .result import TARGETS, ChaosResult, FaultRow, Repeat, Sizes, row
from .result import measures as target_measures
from .result import skipped as skipped_row

log = progress

SIGNALS = ("sigkill", "sigterm", "sigint_twice")
# the hung calls fill asyncio's default executor (what sync tools once shared with the kernel)
# and the tool service's own pool, with two more waiting
POOL = max(min(32, (os.cpu_count() or 1) + 4), DEFAULT_TOOL_THREADS)
STOP_BOUND = 45.0  # s a graceful stop may take: the runner's default shutdown timeout is 30
ENGINE_START_BOUND = 300.0  # s until vLLM has answered the first wave

FULL = Spec(tasks=100, hung=POOL + 2, concurrency=8, timeout=10.0, tool_timeout=1.0)
QUICK = msgspec.structs.replace(FULL, tasks=40, timeout=8.0)
TINY = Spec(
    tasks=12, hung=2, concurrency=4, timeout=5.0, tool_timeout=0.5, token_delay=0.04, max_tokens=12
)
ENGINE = Spec(tasks=24, concurrency=4, timeout=120.0, max_tokens=48, engine="vllm", only_llm=True)
REPEATS = {
    "sigkill": 10,
    "sigterm": 10,
    "sigint_twice": 10,
    "hung_tool": 2,
    "second_process": 3,
    "engine_core": 1,
}
QUICK_REPEATS = {
    **REPEATS,
    "sigkill": 5,
    "sigterm": 5,
    "sigint_twice": 5,
    "hung_tool": 1,
    "second_process": 1,
}
TINY_REPEATS = {key: 1 for key in REPEATS}


def _what(fault: str, spec: Spec, bench: Bench) -> str:
    assert bench.reference is not None
    span = (
        "a random moment after the run's first result, one in each equal slice of the first "
        f"{SPAN:.0%} of the reference's answering span"
    )
    rerun = "then reruns of the same config until one answers every task and exits 0"
    return {
        "sigkill": f"SIGKILL to the `actoros run` process at {span}; {rerun}. A task it was "
        "running may run again (the at-least-once window). Recovery: kill → every task "
        "answered.",
        "sigterm": f"SIGTERM to the process at {span}; the graceful stop may take "
        f"{STOP_BOUND:g} s; {rerun}. Unwritten: tasks the stopped run journaled as finished "
        "without writing their line. Recovery: signal → every task answered.",
        "sigint_twice": f"a double Ctrl-C (SIGINT to the process group, twice, 0.25 s apart) "
        f"at {span}; otherwise as sigterm.",
        "hung_tool": f"{spec.hung} lookups through a synchronous user tool that never returns "
        f"(more than asyncio's default thread pool and the tool pool hold: {POOL} threads), "
        "tool timeout "
        f"{spec.tool_timeout:g} s: the run must exit 0 by itself within "
        f"{hung_bound(bench.reference, spec):g} s, those tasks failing with 'timed out', every "
        "other answered right. No rerun. Recovery: the run's wall time.",
        "second_process": "a second `actoros run` of the same config (same state dir) once "
        "the first has answered a task: the second must exit 2 having answered nothing, the "
        "first finish alone, no task run twice. Recovery: the second's time to exit.",
        "engine_core": f"SIGKILL to vLLM's EngineCore process (SmolLM2, CPU) mid-stream, "
        f"{ENGINE.tasks} LLM tasks {ENGINE.concurrency} at a time, once the first wave is "
        f"answered; the run should go on with a new engine; {rerun}. Output texts vary with "
        "batching, so 'wrong' checks each line's input against its id, not the text. "
        "Recovery: kill → every task answered.",
    }[fault]


def _log_repeat(fault: str, i: int, r: Repeat) -> None:
    log.info(
        "bench.chaos.repeat",
        fault=fault,
        i=i,
        at_s=r.fault_at_s,
        landed=r.landed,
        exits=r.exit_codes,
        lost=len(r.lost),
        wrong=len(r.wrong),
        twice=len(r.run_twice),
        in_window=len(r.in_window),
        recovered=r.recovered,
        recovery_s=r.recovery_s,
    )


def _row_notes(f: FaultRow) -> list[str]:
    notes = []
    seen: set[str] = set()
    for r in f.repeats:
        if r.note and r.note not in seen and len(seen) < 3:
            seen.add(r.note)
            notes.append(f"{f.fault}: {r.note}")
    if f.runs and f.landed < f.runs:
        notes.append(
            f"{f.fault}: {f.runs - f.landed} of {f.runs} faults came when the run had already "
            "answered everything or exited (no fault to recover from)"
        )
    return notes


def _run_fake(
    bench: Bench, spec: Spec, repeats: dict[str, int], rng: random.Random
) -> list[FaultRow]:
    assert bench.reference is not None
    tasks = len(bench.tasks)
    rows = []
    for fault in SIGNALS:
        got = []
        for i, moment in enumerate(moments(rng, repeats[fault], bench.reference)):
            got.append(signal_fault(bench, fault, i, moment))  # type: ignore[arg-type]
            _log_repeat(fault, i, got[-1])
        rows.append(row(fault, _what(fault, spec, bench), tasks, got))
    for fault, once in (("hung_tool", hung_tool), ("second_process", second_process)):
        got = []
        for i in range(repeats[fault]):
            got.append(once(bench, i))
            _log_repeat(fault, i, got[-1])
        rows.append(row(fault, _what(fault, spec, bench), tasks, got))
    return rows


def _run_engine(
    root: Path, model: str | None, repeats: int, rng: random.Random, what: str
) -> tuple[FaultRow, Spec]:
    from actoros.inference import models

    folder = models.resolve(model or models.DEFAULT_MODEL)
    spec = msgspec.structs.replace(ENGINE, model=str(folder))
    bench = Bench(root, spec, stop_bound=STOP_BOUND, exact=False)
    log.info("bench.chaos.engine_reference", model=str(model or models.DEFAULT_MODEL))
    bench.measure_reference()
    got = []
    for i in range(repeats):
        got.append(engine_core_kill(bench, i, rng, ENGINE_START_BOUND))
        _log_repeat("engine_core", i, got[-1])
    return row("engine_core", what, len(bench.tasks), got), spec


def _loop() -> str:
    """The loop each ``actoros run`` process runs on."""
    return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"


@contextmanager
def _workdir(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="actoros-chaos-") as tmp:
        yield Path(tmp)


def main(
    *,
    quick: bool,
    out: Path,
    engine: EngineKind = "vllm",
    model: str | None = None,
    seed: int = 0,
    keep: Path | None = None,
    tiny: bool | None = None,
) -> int:
    """Run the chaos benchmark; write ``chaos.{json,md,png}`` to ``out``.

    ``quick``: fewer tasks and repeats, no vLLM (under 2 minutes). ``engine``: ``"vllm"``
    adds the EngineCore fault to a full run, ``"fake"`` leaves it out. ``model``: the model
    for it (default: the pulled CPU default model). ``seed``: the fault moments. ``keep``:
    keep every run's folder (config, results, stderr, state) there. ``tiny``: smoke-test
    sizes (default: the ``ACTOROS_BENCH_TINY`` env variable).
    """
    tiny = is_tiny(tiny)
    spec = TINY if tiny else QUICK if quick else FULL
    repeats = TINY_REPEATS if tiny else QUICK_REPEATS if quick else REPEATS
    rng = random.Random(seed)
    notes: list[str] = []
    engine_skip = None
    if quick:
        engine_skip = "skipped under --quick"
    elif engine == "fake":
        engine_skip = "skipped (--engine fake)"
    elif (why := vllm_missing(model)) is not None:
        engine_skip = f"skipped: {why}"
    with (
        _workdir(keep) as root,
        running("chaos", out, quick=quick, tiny=tiny, seed=seed, work=str(root)) as session,
    ):
        bench = Bench(root / "fake", spec, stop_bound=STOP_BOUND)
        reference = bench.measure_reference()
        log.info("bench.chaos.reference", **msgspec.structs.asdict(reference))
        if reference.errors:
            notes.append(
                f"the fault-free reference answered {reference.errors} tasks with an "
                "error; those are not judged"
            )
        faults = _run_fake(bench, spec, repeats, rng)
        engine_spec = None
        what = _what("engine_core", spec, bench)
        if engine_skip is None:
            engine_row, engine_spec = _run_engine(
                root / "vllm", model, repeats["engine_core"], rng, what
            )
            faults.append(engine_row)
        else:
            faults.append(skipped_row("engine_core", what, engine_skip))
        for f in faults:
            notes += _row_notes(f)
        notes += session.load_note(
            "a busy machine moves the recovery times and where each fault lands, not the counts"
        )
        metrics = target_measures(faults)
        result = ChaosResult(
            **run_header(_loop()),
            quick=quick,
            seed=seed,
            sizes=Sizes(workload=spec, repeats=repeats, engine_workload=engine_spec),
            reference=reference,
            faults=faults,
            metrics=metrics,
            targets=TARGETS,
            passed=judge(TARGETS, metrics),
            notes=notes,
        )
        session.write(result, markdown, chart)
    return 0

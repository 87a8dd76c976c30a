"""``run_system``: what ``actoros run`` does — start the system, run its workload, stop it.

With a workload: once the engine is up (``wait_engine_ready``, so the workload's timeouts and
seconds measure answers, not the model's load), every task is submitted to the scheduler, at
most ``concurrency`` at once, and each result is written as it comes (``workload.py`` follows
one task end to end); then the system stops, and every task the journal holds as finished
that has no line yet gets its line. Without one, the system serves (the gateway, pub/sub)
until ``stop_event`` is set (the CLI sets it on Ctrl-C and SIGTERM) or the system fails.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, TextIO

import msgspec
import structlog

from actoros.config import Config, WorkloadTask
from actoros.core import ActorStopped
from actoros.inference.actor import InferenceMetrics, InferenceStats
from actoros.inference.readiness import wait_engine_ready
from actoros.kernel import SubmitAndWait, Task, TaskResult

from .assembly import start_system
from .host import KERNEL, System
from .workload import (
    ResultLines,
    RunSummary,
    add_journaled_lines,
    forget_finished,
    job,
    workload_tasks,
)

__all__ = ["ENGINE_START_TIMEOUT", "engine_ready", "run_system", "run_workload"]

log = structlog.get_logger("actoros.app")

ENGINE_START_TIMEOUT = 900.0
"""Seconds a model may take to load before a run with a workload gives up."""


async def run_system(
    config: Config,
    *,
    out: TextIO,
    stop_event: asyncio.Event | None = None,
    progress: TextIO | None = None,
    shutdown_timeout: float = 30.0,
    fresh: bool = False,
) -> RunSummary:
    """Start the system of ``config``, run its workload (results to ``out``), stop it.

    Without a workload it serves until ``stop_event`` is set. ``progress``: where the live
    progress line goes (a terminal), or ``None``. ``fresh``: forget the workload tasks the
    journal holds as finished, so they are asked again. Raises ``ConfigError`` for a config
    that cannot be assembled, and whatever failed when the system could not start.
    """
    stop = stop_event or asyncio.Event()
    lines = ResultLines(out, workload_tasks(config)) if config.workload is not None else None
    system = await start_system(config)
    try:
        if lines is None:
            system.open.set()
            log.info("system.serving", system=config.system.name)
            await system.wait_stop_or_failure(stop)
            summary = RunSummary()
        else:
            if fresh:
                await forget_finished(system)
            await engine_ready(system, stop)
            system.open.set()
            summary = await run_workload(system, out, progress, stop, lines)
    finally:
        try:
            await system.shutdown(timeout=shutdown_timeout)
        finally:
            if lines is not None:  # nothing changes the journal any more
                await add_journaled_lines(lines, config.services.scheduler.db)
    if lines is not None:
        summary = msgspec.structs.replace(summary, ok=lines.ok, failed=lines.failed)
    if system.actors.failure is not None:
        raise RuntimeError(f"the system failed: {system.actors.failure}")
    log.info("system.stopped", **msgspec.structs.asdict(summary))
    return summary


async def engine_ready(system: System, stop: asyncio.Event) -> None:
    """Wait until the inference engine has started (vLLM: tens of seconds), if the config has
    one. Returns early when ``stop`` is set; raises ``EngineNotReady`` (a ``RuntimeError``)
    when the system gave up on it, or after ``ENGINE_START_TIMEOUT`` seconds."""
    if system.config.inference is not None:
        path = f"/{KERNEL}/inference"
        await wait_engine_ready(system.actors, path, timeout=ENGINE_START_TIMEOUT, stop=stop)


class _Progress:
    """One line on a terminal, rewritten in place: done/total and tokens/s."""

    def __init__(self, stream: TextIO | None, total: int) -> None:
        self.stream, self.total, self.done = stream, total, 0
        self.tokens_per_s = 0.0

    def show(self) -> None:
        if self.stream is not None:
            self.stream.write(
                f"\r{self.done}/{self.total} tasks  {self.tokens_per_s:7.1f} tokens/s\x1b[K"
            )
            self.stream.flush()

    def close(self) -> None:
        if self.stream is not None:
            self.stream.write("\n")
            self.stream.flush()


async def run_workload(
    system: System,
    out: TextIO,
    progress: TextIO | None,
    stop: asyncio.Event,
    lines: ResultLines | None = None,
) -> RunSummary:
    """Submit every task, write each result as it comes, until all have one or ``stop``.

    ``progress``: a terminal for the live progress line (tokens/s is the inference actor's
    throughput, read twice a second), or ``None``."""
    workload = system.config.workload
    assert workload is not None
    if lines is None:
        lines = ResultLines(out, workload_tasks(system.config))
    tasks = list(lines.tasks.values())
    gate = asyncio.Semaphore(workload.concurrency)
    bar = _Progress(progress, len(tasks))
    began = time.perf_counter()
    # the handler bounds the agent by ``timeout``; the wait adds room for the queue
    wait = workload.timeout * 2 + 30.0

    async def one(task: WorkloadTask) -> None:
        assert task.id is not None
        async with gate:
            result = await submit_and_wait(system, job(task), wait)
        if result is None:  # stopped before it had an outcome: the journal keeps it pending
            return
        lines.write(task, result)
        bar.done += 1
        bar.show()

    async def ticker() -> None:
        while True:
            metrics = await _inference_metrics(system)
            if metrics is not None:
                bar.tokens_per_s = metrics.tokens_per_s
            bar.show()
            await asyncio.sleep(0.5)

    ticking = asyncio.ensure_future(ticker()) if progress is not None else None
    running: asyncio.Future[Any] = asyncio.ensure_future(asyncio.gather(*(one(t) for t in tasks)))
    stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        pending = [f for f in (running, stopping, ticking) if f is not None and not f.done()]
        for fut in pending:
            fut.cancel()
        # let them unwind, and take their outcome: a cancelled gather holds a CancelledError
        # that asyncio would report as "exception was never retrieved"
        await asyncio.gather(*pending, return_exceptions=True)
        if ticking is not None:
            bar.close()
    if running in pending:
        log.warning("workload.interrupted", done=bar.done, total=len(tasks))
    else:
        running.result()
    metrics = await _inference_metrics(system)
    return RunSummary(
        tasks=len(tasks),
        ok=lines.ok,
        failed=lines.failed,
        seconds=round(time.perf_counter() - began, 3),
        output_tokens=metrics.output_tokens if metrics is not None else 0,
    )


async def _inference_metrics(system: System) -> InferenceMetrics | None:
    """The inference actor's numbers, best effort (``None``: no model, or it did not say)."""
    inference = system.service("inference")
    if inference is None:
        return None
    try:
        metrics = await inference.ask(InferenceStats(), timeout=2.0)
    except Exception:  # restarting: the numbers are for show
        return None
    return metrics if isinstance(metrics, InferenceMetrics) else None


async def submit_and_wait(system: System, task: Task, wait: float) -> TaskResult | None:
    """The task's result; ``None`` when the system stops before the task has one. A scheduler
    that stops meanwhile (restarted, or the whole kernel restarted) answers ``ActorStopped``:
    the same id is submitted again to its successor, which resumes the task from its journal
    or answers from it."""
    deadline = time.monotonic() + wait
    while True:
        scheduler = system.service("scheduler")
        try:
            if scheduler is None:
                raise ActorStopped("the scheduler is not running")
            result = await scheduler.ask(SubmitAndWait(task=task), timeout=wait)
        except ActorStopped as exc:
            if system.stopping or system.actors.failure is not None:
                return None
            wait = deadline - time.monotonic()
            if wait <= 0:
                return TaskResult(id=task.id or "", status="failed", error=f"{exc}")
            log.info("workload.resubmit", task=task.id, reason=str(exc))
            await asyncio.sleep(0.05)  # the kernel restarts its services meanwhile
            continue
        except Exception as exc:
            return TaskResult(id=task.id or "", status="failed", error=f"{exc}")
        assert isinstance(result, TaskResult)
        return result

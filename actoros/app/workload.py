"""The workload: each task of ``config.workload`` asked of its agent through the scheduler.

The path of one task, in the order of this module:

1. ``workload_tasks(config)`` gives every task its id and agent. Ids not given in the workload
   come from what the task asks (``task-<digest>``, ``-2``, ``-3``... for repeats), so
   inserting or removing a line changes no other task's id.
2. ``job(task)``: the task becomes a durable scheduler ``Task`` of kind ``workload`` (id
   ``workload:<task id>``, payload its agent and input), which ``run.py`` submits, at most
   ``concurrency`` at once.
3. The scheduler hands it to a worker, which runs ``handler(system, timeout)``: it asks the
   agent (bounded by ``timeout``) and returns the ``TaskOutcome`` — the reply or the error,
   and the seconds it took — encoded once, as JSON bytes the journal stores as they are.
4. The result (``TaskResult``) comes back to the submitter, or, for a task a journal already
   holds as finished, straight from the journal; ``outcome_of`` reads the outcome back and
   ``ResultLines`` writes it to ``out`` as one JSON line ``{"id", "agent", "input",
   "output" | "error", "seconds"}``.

Because the outcome is journaled, a run killed midway resumes the unfinished tasks on the next
run and answers finished ones from the journal without asking the agent again, as long as the
task still asks the same agent the same input (otherwise it runs again). A stop is not an
outcome: once the system is stopping, a task whose agent could not answer is interrupted, not
finished — it stays pending and the next run asks it. After a stop, every task the journal
holds as finished gets its line (``ResultLines.add_journaled``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

import msgspec
import structlog

from actoros.agents import AgentError, AgentReply, UserMessage
from actoros.config import Config, WorkloadTask, load_workload_file
from actoros.core import AskTimeout
from actoros.kernel import Task, TaskResult
from actoros.kernel.scheduler import Forget, TaskInterrupted, journaled_results, task_digest

from . import cluster
from .host import System

__all__ = [
    "WORKLOAD_KIND",
    "ResultLine",
    "ResultLines",
    "RunSummary",
    "TaskOutcome",
    "handler",
    "job",
    "outcome_of",
    "workload_tasks",
]

log = structlog.get_logger("actoros.app")

WORKLOAD_KIND = "workload"
"""The scheduler's task kind of workload tasks (their ids are ``workload:<task id>``)."""


class TaskOutcome(msgspec.Struct, frozen=True, omit_defaults=True):
    """What asking a task's agent came to: ``output`` (its reply) or ``error``, exactly one of
    them, and the ``seconds`` it took. Encoded as the journal has always held it
    (``{"output": ..., "seconds": ...}``), so journals of earlier runs still resume."""

    output: str | None = None
    error: str | None = None
    seconds: float = 0.0


class ResultLine(msgspec.Struct, frozen=True):
    """One line of a run's results: the task, then its output or its error (the other one is
    left out), then the seconds its agent took."""

    id: str | None
    agent: str | None
    input: str | dict[str, Any]
    output: str | msgspec.UnsetType = msgspec.UNSET
    error: str | msgspec.UnsetType = msgspec.UNSET
    seconds: float = 0.0


class RunSummary(msgspec.Struct, frozen=True, kw_only=True):
    """What a run did: tasks in the workload, answered, failed, and how long it took."""

    tasks: int = 0
    ok: int = 0
    failed: int = 0
    seconds: float = 0.0
    output_tokens: int = 0


def workload_tasks(config: Config) -> list[WorkloadTask]:
    """The workload's tasks, each with its id and agent filled in.

    A task without an id gets one from what it asks: ``task-<digest of agent and input>``,
    then ``-2``, ``-3``... for the second and third task that asks the same (ids given in the
    workload are never taken). The same workload gives the same ids on every run, and adding
    or removing a task changes no other task's id."""
    workload = config.workload
    if workload is None:
        return []
    tasks = list(workload.tasks)
    if workload.file is not None:
        tasks = load_workload_file(workload.file)
    given = {task.id for task in tasks if task.id is not None}
    repeats: dict[str, int] = {}
    filled = []
    for task in tasks:
        agent = task.agent or workload.agent
        task_id = task.id
        if task_id is None:
            base = f"task-{task_digest(WORKLOAD_KIND, _payload(agent, task.input))[:16]}"
            n = repeats.get(base, 0)
            while task_id is None or task_id in given:
                n += 1
                task_id = base if n == 1 else f"{base}-{n}"
            repeats[base] = n
        filled.append(msgspec.structs.replace(task, id=task_id, agent=agent))
    return filled


def _payload(agent: str | None, value: str | dict[str, Any]) -> dict[str, Any]:
    # a plain dict: its canonical JSON is the task's digest, which journals of earlier runs hold
    return {"agent": agent, "input": value}


def job(task: WorkloadTask) -> Task:
    """The scheduler task of a workload task: what it asks is its payload (and identity)."""
    return Task(
        kind=WORKLOAD_KIND,
        payload=_payload(task.agent, task.input),
        priority=task.priority,
        id=f"{WORKLOAD_KIND}:{task.id}",
    )


def handler(system: System, timeout: float) -> Callable[[Task], Awaitable[msgspec.Raw]]:
    """The scheduler's handler for workload tasks: ask the task's agent, at most ``timeout``
    seconds, and return its ``TaskOutcome`` encoded (the journal stores these bytes)."""

    async def answer(task: Task) -> msgspec.Raw:
        await system.open.wait()  # a task resumed from the journal starts before the agents
        outcome = await ask_agent(system, task.payload["agent"], task.payload["input"], timeout)
        if outcome.error is not None and system.stopping:  # the stop's doing, not the task's
            raise TaskInterrupted(f"the system is stopping: {outcome.error}")
        return msgspec.Raw(msgspec.json.encode(outcome))

    return answer


async def ask_agent(system: System, agent: str, value: Any, timeout: float) -> TaskOutcome:
    """One workload task: the agent's reply or the error, and the seconds it took.

    On a cluster, a task that fails while a node is lost (its agent, or one it asked, ran
    there) runs again once the head has that node's groups running again, within the same
    ``timeout``: a lost node costs the task time, not its answer (``app/cluster.py``)."""
    began = time.perf_counter()
    deadline = began + timeout
    while True:
        since = cluster.losses(system)
        output, error = await _attempt(system, agent, _message(value), deadline, timeout)
        if error is None or system.stopping or not cluster.disturbed(system, since):
            break
        log.warning("workload.task_again", agent=agent, error=error)
        if not await cluster.settle(system, deadline - time.perf_counter()):
            break
    return TaskOutcome(output=output, error=error, seconds=round(time.perf_counter() - began, 4))


async def _attempt(
    system: System, agent: str, message: UserMessage, deadline: float, timeout: float
) -> tuple[str | None, str | None]:
    ref = system.agent(agent)
    try:
        if ref is None:
            raise AgentError(agent, "no such agent is running")
        reply = await ref.ask(message, timeout=max(deadline - time.perf_counter(), 0.001))
        if not isinstance(reply, AgentReply):
            raise AgentError(agent, f"answered {type(reply).__name__}")
        return reply.text, None
    except AskTimeout:
        return None, f"timed out after {timeout:g} s"
    except Exception as exc:  # an agent's error is the task's result, not a worker crash
        return None, str(exc) if isinstance(exc, AgentError) else f"{type(exc).__name__}: {exc}"


def _message(value: str | dict[str, Any]) -> UserMessage:
    if isinstance(value, str):
        return UserMessage(text=value)
    rest = {k: v for k, v in value.items() if k not in ("text", "thread_id")}
    return UserMessage(text=str(value.get("text", "")), thread_id=value.get("thread_id"), data=rest)


def outcome_of(result: TaskResult) -> TaskOutcome:
    """The outcome a scheduler result holds: the handler's bytes when it just ran, the
    journal's decoded JSON when it was answered from there; a failed handler (or a result
    of another shape) is an error outcome."""
    fallback = TaskOutcome(error=result.error or "failed")
    if result.status != "done":
        return fallback
    try:
        if isinstance(result.result, msgspec.Raw):
            outcome = msgspec.json.decode(result.result, type=TaskOutcome)
        else:
            outcome = msgspec.convert(result.result, TaskOutcome)
    except msgspec.ValidationError:
        return fallback
    if outcome.output is None and outcome.error is None:
        return msgspec.structs.replace(outcome, error=fallback.error)
    return outcome


class ResultLines:
    """The result lines of a run, one per task: which tasks have theirs, how many answered."""

    def __init__(self, out: TextIO, tasks: list[WorkloadTask]) -> None:
        self.out = out
        self.tasks = {task.id: task for task in tasks}
        self.written: set[str | None] = set()
        self.ok = self.failed = 0

    def write(self, task: WorkloadTask, result: TaskResult) -> None:
        outcome = outcome_of(result)
        if outcome.output is not None:
            line = ResultLine(
                task.id, task.agent, task.input, output=outcome.output, seconds=outcome.seconds
            )
            self.ok += 1
        else:
            error = outcome.error or "failed"
            line = ResultLine(task.id, task.agent, task.input, error=error, seconds=outcome.seconds)
            self.failed += 1
        self.out.write(msgspec.json.encode(line).decode() + "\n")
        self.out.flush()
        self.written.add(task.id)

    async def add_journaled(self, journal: str) -> int:
        """After the system stopped: the line of every task the journal holds as finished
        that has none yet (finished while the run was stopping, or by an earlier run)."""
        missing = [job(task) for key, task in self.tasks.items() if key not in self.written]
        if not missing:
            return 0
        results = await journaled_results(journal, missing)
        for result in results:
            self.write(self.tasks[result.id.removeprefix(f"{WORKLOAD_KIND}:")], result)
        return len(results)


async def add_journaled_lines(lines: ResultLines, journal: str | None) -> None:
    """``lines.add_journaled``, where an unreadable journal is logged, not raised: the lines
    so far are written, and the journal keeps the rest for the next run."""
    try:
        added = await lines.add_journaled(journal or ":memory:")
    except Exception as exc:
        log.error("workload.journal_unreadable", journal=journal, error=repr(exc))
        return
    if added:
        log.info("workload.lines_from_journal", lines=added)


async def forget_finished(system: System) -> None:
    """Drop the journal's finished workload tasks before any is submitted (``--fresh``)."""
    scheduler = system.service("scheduler")
    assert scheduler is not None
    forgotten = await scheduler.ask(Forget(kind=WORKLOAD_KIND), timeout=30.0)
    log.info("workload.fresh", system=system.config.system.name, forgotten=forgotten)

"""The scheduler service: a durable task queue and a pool of worker actors.

A ``Task`` (``kind``, JSON ``payload``, ``priority``, ``id``) is submitted with ``Submit`` (the
reply is the task id, once the task is journaled) or ``SubmitAndWait`` (the reply is its
``TaskResult``). The ``Scheduler`` keeps a queue — FIFO, or by ``priority`` (lower value first,
FIFO within a value, like a priority mailbox) — and hands each task to an idle ``Worker``, a
child actor that runs the handler registered for the task's kind (``async (task) -> result``).
Results go back to whoever waits: every ``SubmitAndWait`` asker of that id, and, with
``Submit(task, notify=True)``, a ``tell(TaskResult)`` to the submitting actor.

A handler that raises gives ``TaskResult(status="failed", error=...)``; the worker then fails
and its supervisor (the scheduler) restarts it with fresh state — the task is recorded, not
lost. A task kind with no handler fails at once.

Durability: every task and result is journaled in SQLite (one writer thread, in order, never on
the loop). On start the scheduler reloads the tasks that were queued or running and runs them;
done and failed tasks are never run again, and a ``Submit`` of an id that is already finished
answers from the journal (until ``Forget(kind)`` drops the finished tasks of a kind, as
``actoros run --fresh`` does). Guarantee: a task runs at least once; exactly once unless the
process dies while it runs (or after it ran but before its result reached the journal), in
which case it runs again after the restart — at most one such task per worker, since a worker
is handed its next task only once its previous result is journaled. Handlers should therefore be
idempotent or tolerate a repeat. Askers waiting when the scheduler itself stops or restarts
get ``ActorStopped`` at once; the tasks themselves resume from the journal, and a
``SubmitAndWait`` of the same id to the next incarnation waits for the resumed task (or
answers from the journal when it has finished).
With ``path=":memory:"`` nothing survives the scheduler itself.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

import msgspec
import structlog

from actoros.core import Actor, ActorRef, ActorStopped, Context, DeferredReply, SupervisorSpec

from ._sqlite import SQLiteWorker

__all__ = [
    "Forget",
    "SchedulerStats",
    "Scheduler",
    "Stats",
    "Submit",
    "SubmitAndWait",
    "Task",
    "TaskHandler",
    "TaskQueue",
    "TaskResult",
    "Worker",
]

log = structlog.get_logger("actoros.kernel.scheduler")

Policy = Literal["fifo", "priority"]
Status = Literal["queued", "running", "done", "failed"]


class Task(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    payload: dict[str, Any] = {}
    priority: int = 0
    id: str | None = None


class Submit(msgspec.Struct, frozen=True, kw_only=True):
    """Queue a task; the reply is its id. ``notify=True``: tell the sender its ``TaskResult``."""

    task: Task
    notify: bool = False


class SubmitAndWait(msgspec.Struct, frozen=True, kw_only=True):
    """Queue a task (or join one with the same id); the reply is its ``TaskResult``."""

    task: Task


class Stats(msgspec.Struct, frozen=True, kw_only=True):
    """Ask for ``SchedulerStats``."""


class Forget(msgspec.Struct, frozen=True, kw_only=True):
    """Drop the finished (done or failed) tasks of ``kind`` from the journal, so a later
    submit of one of their ids runs it again; the reply is how many were forgotten. Queued and
    running tasks are kept. Ask it before submitting the tasks it concerns."""

    kind: str


class TaskResult(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    status: Literal["done", "failed"]
    result: Any = None
    error: str | None = None


class SchedulerStats(msgspec.Struct, frozen=True, kw_only=True):
    queued: int
    running: int
    done: int
    failed: int
    workers: int
    idle_workers: int


TaskHandler = Callable[[Task], Awaitable[Any]]


class _Run(msgspec.Struct, frozen=True):
    task: Task


class _Finished(msgspec.Struct, frozen=True):
    worker: ActorRef
    result: TaskResult


class TaskQueue:
    """Tasks waiting for a worker: FIFO, or by ``priority`` (lower first, FIFO within a value)."""

    def __init__(self, policy: Policy = "fifo") -> None:
        if policy not in ("fifo", "priority"):
            raise ValueError(f"unknown scheduling policy {policy!r} (fifo, priority)")
        self.policy = policy
        self._heap: list[tuple[int, int, Task]] = []
        self._seq = itertools.count()

    def push(self, task: Task) -> None:
        rank = task.priority if self.policy == "priority" else 0
        heapq.heappush(self._heap, (rank, next(self._seq), task))

    def pop(self) -> Task:
        return heapq.heappop(self._heap)[2]

    def __len__(self) -> int:
        return len(self._heap)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    priority INTEGER NOT NULL,
    status TEXT NOT NULL,
    result TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_status ON tasks (status);
"""


def _encode(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _load_state(conn: sqlite3.Connection) -> tuple[list[Task], dict[str, Status]]:
    pending = [
        Task(id=row[0], kind=row[1], payload=msgspec.json.decode(row[2]), priority=row[3])
        for row in conn.execute(
            "SELECT id, kind, payload, priority FROM tasks"
            " WHERE status IN ('queued', 'running') ORDER BY seq"
        )
    ]
    statuses = {row[0]: row[1] for row in conn.execute("SELECT id, status FROM tasks")}
    return pending, statuses


def _insert(task: Task) -> Callable[[sqlite3.Connection], None]:
    def run(conn: sqlite3.Connection) -> None:
        now = time.time()
        conn.execute(
            "INSERT INTO tasks (id, kind, payload, priority, status, created, updated)"
            " VALUES (?, ?, ?, ?, 'queued', ?, ?)",
            (task.id, task.kind, _encode(task.payload), task.priority, now, now),
        )

    return run


def _mark_running(task_id: str) -> Callable[[sqlite3.Connection], None]:
    def run(conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE tasks SET status = 'running', attempts = attempts + 1, updated = ?"
            " WHERE id = ?",
            (time.time(), task_id),
        )

    return run


def _finish(result: TaskResult) -> Callable[[sqlite3.Connection], None]:
    def run(conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE tasks SET status = ?, result = ?, error = ?, updated = ? WHERE id = ?",
            (result.status, _encode(result.result), result.error, time.time(), result.id),
        )

    return run


def _forget(kind: str) -> Callable[[sqlite3.Connection], list[str]]:
    def run(conn: sqlite3.Connection) -> list[str]:
        finished = "kind = ? AND status IN ('done', 'failed')"
        ids = [row[0] for row in conn.execute(f"SELECT id FROM tasks WHERE {finished}", (kind,))]
        conn.execute(f"DELETE FROM tasks WHERE {finished}", (kind,))
        return ids

    return run


def _nothing(conn: sqlite3.Connection) -> None:
    """A no-op journal entry: its future resolves once every earlier write is on disk."""


def _read_result(task_id: str) -> Callable[[sqlite3.Connection], TaskResult]:
    def run(conn: sqlite3.Connection) -> TaskResult:
        status, result, error = conn.execute(
            "SELECT status, result, error FROM tasks WHERE id = ?", (task_id,)
        ).fetchone()
        value = msgspec.json.decode(result) if result is not None else None
        return TaskResult(id=task_id, status=status, result=value, error=error)

    return run


class Worker(Actor):
    """Runs one task at a time with the handler for its kind and reports to the scheduler."""

    def __init__(self, handlers: Mapping[str, TaskHandler], scheduler: ActorRef) -> None:
        self._handlers = handlers
        self._scheduler = scheduler

    async def receive(self, message: Any, ctx: Context) -> None:
        match message:
            case _Run(task=task):
                assert task.id is not None
                try:
                    value = await self._handlers[task.kind](task)
                    _encode(value)  # a result that cannot be journaled is the handler's error
                except Exception as exc:
                    error = f"{type(exc).__name__}: {exc}"
                    failed = TaskResult(id=task.id, status="failed", error=error)
                    self._scheduler.tell(_Finished(ctx.self, failed))
                    raise  # a fresh worker for the next task: the handler's state may be broken
                done = TaskResult(id=task.id, status="done", result=value)
                self._scheduler.tell(_Finished(ctx.self, done))
            case _:
                raise TypeError(f"Worker got an unknown message: {message!r}")


class Scheduler(Actor):
    """The task queue and its worker pool (see the module docstring).

    ``handlers``: task kind → ``async (task) -> result`` (the result must be JSON-encodable).
    ``path``: the SQLite journal (``":memory:"`` for tests). ``workers``: pool size.
    ``policy``: ``"fifo"`` or ``"priority"``. ``worker_restarts``: how many worker restarts
    (failed handlers) within ``within`` seconds the scheduler tolerates before it escalates.
    """

    def __init__(
        self,
        handlers: Mapping[str, TaskHandler],
        path: str = ":memory:",
        *,
        workers: int = 4,
        policy: Policy = "fifo",
        worker_restarts: int = 1000,
        within: float = 1.0,
    ) -> None:
        if workers < 1:
            raise ValueError("a scheduler needs at least one worker")
        self._handlers = dict(handlers)
        self._path = path
        self._n_workers = workers
        self._queue = TaskQueue(policy)
        self.supervision = SupervisorSpec(max_restarts=worker_restarts, within=within)
        self._db = SQLiteWorker(path, schema=_SCHEMA)
        self._status: dict[str, Status] = {}
        self._waiters: dict[str, list[DeferredReply]] = {}
        self._notify: dict[str, list[ActorRef]] = {}
        self._idle: list[ActorRef] = []
        self._workers: list[ActorRef] = []

    async def on_start(self) -> None:
        await self._db.start()
        pending, self._status = await self._db.call(_load_state)
        for task in pending:
            self._status[task.id] = "queued"  # type: ignore[index]
            self._queue.push(task)
        if pending:
            log.info("scheduler resumed", path=self._path, tasks=len(pending))
        for i in range(self._n_workers):
            ref = await self.ctx.spawn(Worker, self._handlers, self.ctx.self, name=f"worker-{i}")
            self._workers.append(ref)
            self._idle.append(ref)
        self._dispatch()

    async def on_stop(self) -> None:
        # Askers still waiting learn it now rather than at their timeout: they can submit the
        # same id again to the next incarnation, which resumes the task from the journal.
        waiters, self._waiters = self._waiters, {}
        for task_id, replies in waiters.items():
            for reply in replies:
                reply.fail(ActorStopped(
                    f"the scheduler stopped before task {task_id} finished; submit it again "
                    "with the same id to wait for it (the journal keeps it)"
                ))  # fmt: skip
        await self._db.close()

    def receive(self, message: Any, ctx: Context) -> Any:
        match message:
            case Submit(task=task, notify=notify):
                task = self._with_id(task)
                assert task.id is not None
                reply = ctx.defer_reply()
                if notify and ctx.sender is not None:
                    self._notify.setdefault(task.id, []).append(ctx.sender)
                self._accept(task).add_done_callback(lambda f: _answer(reply, f, task.id))
                return None
            case SubmitAndWait(task=task):
                task = self._with_id(task)
                assert task.id is not None
                self._waiters.setdefault(task.id, []).append(ctx.defer_reply())
                self._accept(task)
                return None
            case _Finished(worker=worker, result=result):
                self._status[result.id] = result.status

                # The worker gets its next task only once this result is on disk: after a
                # crash at most one finished-but-unjournaled task per worker runs again.
                def journaled(fut: Any) -> None:
                    self._deliver(result, fut)
                    # a worker of an earlier incarnation (its _Finished was still queued when
                    # the scheduler restarted) is gone: its result counts, it takes no task
                    if worker in self._workers:
                        self._idle.append(worker)
                    self._dispatch()

                self._db.submit(_finish(result)).add_done_callback(journaled)
                return None
            case Stats():
                counts = {"queued": 0, "running": 0, "done": 0, "failed": 0}
                for status in self._status.values():
                    counts[status] += 1
                return SchedulerStats(
                    **counts, workers=len(self._workers), idle_workers=len(self._idle)
                )
            case Forget(kind=kind):
                reply = ctx.defer_reply()

                def forgotten(fut: asyncio.Future[list[str]]) -> None:
                    if fut.cancelled() or fut.exception() is not None:
                        reply.fail(fut.exception() or RuntimeError("the journal stopped"))
                        return
                    ids = fut.result()
                    for task_id in ids:
                        if self._status.get(task_id) in ("done", "failed"):
                            del self._status[task_id]
                    log.info("scheduler forgot finished tasks", kind=kind, tasks=len(ids))
                    reply.resolve(len(ids))

                self._db.submit(_forget(kind)).add_done_callback(forgotten)
                return None
            case _:
                raise TypeError(f"Scheduler got an unknown message: {message!r}")

    @staticmethod
    def _with_id(task: Task) -> Task:
        return task if task.id is not None else msgspec.structs.replace(task, id=uuid.uuid4().hex)

    def _accept(self, task: Task) -> asyncio.Future[Any]:
        """Journal and queue a new task; for a known id, deliver or wait. A future: journaled."""
        task_id = task.id
        assert task_id is not None
        status = self._status.get(task_id)
        if status in ("done", "failed"):
            stored = self._db.submit(_read_result(task_id))
            stored.add_done_callback(lambda f: self._deliver_stored(task_id, f))
            return stored
        if status is not None:  # queued or running: the waiter joins it
            return self._db.submit(_nothing)
        self._status[task_id] = "queued"
        fut = self._db.submit(_insert(task))
        if task.kind not in self._handlers:
            known = ", ".join(sorted(self._handlers)) or "none"
            error = f"no handler for task kind {task.kind!r} (known: {known})"
            result = TaskResult(id=task_id, status="failed", error=error)
            self._status[task_id] = "failed"
            self._db.submit(_finish(result)).add_done_callback(lambda f: self._deliver(result, f))
            return fut
        self._queue.push(task)
        self._dispatch()
        return fut

    def _dispatch(self) -> None:
        while self._idle and self._queue:
            task = self._queue.pop()
            assert task.id is not None
            self._status[task.id] = "running"
            self._db.submit(_mark_running(task.id))
            self._idle.pop(0).tell(_Run(task))

    def _deliver_stored(self, task_id: str, fut: Any) -> None:
        if fut.cancelled():
            return
        if fut.exception() is not None:
            self._deliver(TaskResult(id=task_id, status="failed", error=str(fut.exception())))
        else:
            self._deliver(fut.result())

    def _deliver(self, result: TaskResult, journaled: Any = None) -> None:
        """Answer everyone waiting for ``result.id`` (after the result reached the journal)."""
        if journaled is not None and not journaled.cancelled() and journaled.exception():
            log.error("journal write failed", task=result.id, error=str(journaled.exception()))
        for reply in self._waiters.pop(result.id, ()):
            reply.resolve(result)
        for ref in self._notify.pop(result.id, ()):
            ref.tell(result, sender=self.ctx.self)


def _answer(reply: DeferredReply, fut: Any, task_id: str | None) -> None:
    if fut.cancelled():
        return
    exc = fut.exception()
    if exc is not None:
        reply.fail(exc)
    else:
        reply.resolve(task_id)

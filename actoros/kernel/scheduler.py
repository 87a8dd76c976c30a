"""The scheduler service: a durable task queue and a pool of worker actors.

A ``Task`` (``kind``, JSON ``payload``, ``priority``, ``id``) is submitted with ``Submit`` (the
reply is the task id, once the task is journaled) or ``SubmitAndWait`` (the reply is its
``TaskResult``); ``Wait(id)`` waits for the result of a task submitted before, by id alone.
The ``Scheduler`` keeps a queue — FIFO, or by ``priority`` (lower value first,
FIFO within a value, like a priority mailbox) — and hands each task to an idle ``Worker``, a
child actor that runs the handler registered for the task's kind (``async (task) -> result``).
Results go back to whoever waits: every ``SubmitAndWait`` asker of that id, and, with
``Submit(task, notify=True)``, a ``tell(TaskResult)`` to the submitting actor.

A handler that raises gives ``TaskResult(status="failed", error=...)``; the worker then fails
and its supervisor (the scheduler) restarts it with fresh state — the task is recorded, not
lost. A task kind with no handler fails at once. A handler that raises ``TaskInterrupted``
says it was stopped before the task had an outcome (the system is shutting down): the task is
not finished — the journal holds it as queued again (the attempt is not counted), its waiters
get ``ActorStopped``, and it runs on the next start (or when its id is submitted again).
``Drain`` stops the handing out of tasks before a shutdown, so queued tasks wait in the
journal instead of being started only to be interrupted.

Identity: a task is its id *and* what it asks — ``kind`` and ``payload``, kept in the journal
with a digest of them (``task_digest``). A submit of a known id with another kind or payload is
a new version of that task: the journal's entry (finished or not) is replaced and the new
version runs; the old result is never served for it, and a still-running old version's result
is dropped.

Durability: every task and result is journaled in SQLite (one writer thread, in order, never on
the loop). On start the scheduler reloads the tasks that were queued or running and runs them;
done and failed tasks are never run again, and a ``Submit`` of an id that is already finished
(with the same kind and payload) answers from the journal (until ``Forget(kind)`` drops the
finished tasks of a kind, as ``actoros run --fresh`` does). ``journaled_results`` reads the
finished results of a closed journal. Guarantee: a task runs at least once; exactly once unless
the process dies while it runs (or after it ran but before its result reached the journal), or
its handler was interrupted by a stop, in which case it runs again after the restart — at most
one such task per worker, since a worker is handed its next task only once its previous result
is journaled. Handlers should therefore be idempotent or tolerate a repeat. Askers waiting
when the scheduler itself stops or restarts get ``ActorStopped`` at once; the tasks themselves
resume from the journal, and a ``SubmitAndWait`` of the same id to the next incarnation waits
for the resumed task (or answers from the journal when it has finished).
With ``path=":memory:"`` nothing survives the scheduler itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import itertools
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec
import structlog

from actoros.core import Actor, ActorRef, ActorStopped, Context, DeferredReply, SupervisorSpec

from ._protocol import refuse
from ._sqlite import SQLiteWorker, transaction

__all__ = [
    "Drain",
    "Forget",
    "SchedulerRequest",
    "SchedulerStats",
    "Scheduler",
    "Stats",
    "Submit",
    "SubmitAndWait",
    "Task",
    "TaskHandler",
    "TaskInterrupted",
    "TaskQueue",
    "TaskResult",
    "Wait",
    "Worker",
    "journaled_results",
    "task_digest",
]

log = structlog.get_logger("actoros.kernel.scheduler")

Policy = Literal["fifo", "priority"]
Status = Literal["queued", "running", "done", "failed"]


class Task(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    payload: dict[str, Any] = {}
    priority: int = 0
    id: str | None = None


class Submit(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    """Queue a task; the reply is its id. ``notify=True``: tell the sender its ``TaskResult``."""

    task: Task
    notify: bool = False


class SubmitAndWait(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    """Queue a task (or join one with the same id); the reply is its ``TaskResult``."""

    task: Task


class Wait(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    """The ``TaskResult`` of the task ``id`` submitted before, once it finishes (at once when
    the journal holds it as finished). An id the scheduler does not know fails the ask with
    ``LookupError``. Unlike a ``SubmitAndWait``, it asks nothing: it never runs a task (an
    interrupted one waits for the next start)."""

    id: str


class Stats(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    """Ask for ``SchedulerStats``."""


class Forget(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    """Drop the finished (done or failed) tasks of ``kind`` from the journal, so a later
    submit of one of their ids runs it again; the reply is how many were forgotten. Queued and
    running tasks are kept. Ask it before submitting the tasks it concerns."""

    kind: str


class Drain(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    """Hand out no more tasks (before a shutdown): queued tasks, and tasks submitted from now
    on, stay queued in the journal for the next start; running ones finish or are interrupted.
    The reply is how many tasks are running."""


SchedulerRequest = Submit | SubmitAndWait | Wait | Forget | Drain | Stats
"""What the ``Scheduler`` takes from its users (beside its workers' ``_Finished`` and
``_Interrupted``)."""


class TaskInterrupted(Exception):
    """Raised by a handler that was stopped before its task had an outcome of its own (the
    system is shutting down): the task stays pending in the journal and runs again later."""


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


class _Run(msgspec.Struct, tag=True, frozen=True):
    task: Task
    digest: str


class _Finished(msgspec.Struct, tag=True, frozen=True):
    worker: ActorRef
    result: TaskResult
    digest: str  # which version of the task ran


class _Interrupted(msgspec.Struct, tag=True, frozen=True):
    worker: ActorRef
    task: Task
    digest: str
    reason: str


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
    updated REAL NOT NULL,
    digest TEXT
);
CREATE INDEX IF NOT EXISTS tasks_status ON tasks (status);
"""


def _encode(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def task_digest(kind: str, payload: Mapping[str, Any]) -> str:
    """What a task asks, as 32 hex digits: equal for equal ``kind`` and ``payload`` (whatever
    the order of its keys), different otherwise. The journal compares it to tell a repeat of
    a task from a new task that reuses an id."""
    canonical = msgspec.json.encode(payload, order="sorted")
    return hashlib.sha256(kind.encode() + b"\0" + canonical).hexdigest()[:32]


def _digest_old_rows(conn: sqlite3.Connection) -> None:
    """Journals written before tasks had a digest: add the column and fill it in."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(tasks)")}
    if "digest" not in columns:
        conn.execute("ALTER TABLE tasks ADD COLUMN digest TEXT")
    rows = conn.execute("SELECT id, kind, payload FROM tasks WHERE digest IS NULL").fetchall()
    if rows:
        with transaction(conn):
            conn.executemany(
                "UPDATE tasks SET digest = ? WHERE id = ?",
                [(task_digest(kind, msgspec.json.decode(payload)), i) for i, kind, payload in rows],
            )


class _State(msgspec.Struct):
    """The journal as loaded at start: tasks to resume, then status and digest by id."""

    pending: list[Task]
    status: dict[str, Status]
    digest: dict[str, str]


def _load_state(conn: sqlite3.Connection) -> _State:
    _digest_old_rows(conn)
    pending = [
        Task(id=row[0], kind=row[1], payload=msgspec.json.decode(row[2]), priority=row[3])
        for row in conn.execute(
            "SELECT id, kind, payload, priority FROM tasks"
            " WHERE status IN ('queued', 'running') ORDER BY seq"
        )
    ]
    status: dict[str, Status] = {}
    digest: dict[str, str] = {}
    for task_id, task_status, what in conn.execute("SELECT id, status, digest FROM tasks"):
        status[task_id] = task_status
        digest[task_id] = what
    return _State(pending, status, digest)


def _insert(task: Task, digest: str) -> Callable[[sqlite3.Connection], None]:
    def run(conn: sqlite3.Connection) -> None:
        now = time.time()
        conn.execute(
            "INSERT INTO tasks (id, kind, payload, priority, status, digest, created, updated)"
            " VALUES (?, ?, ?, ?, 'queued', ?, ?, ?)",
            (task.id, task.kind, _encode(task.payload), task.priority, digest, now, now),
        )

    return run


def _replace(task: Task, digest: str) -> Callable[[sqlite3.Connection], None]:
    """A new version of a known id: what it asks, queued, with no result and no attempts."""

    def run(conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE tasks SET kind = ?, payload = ?, priority = ?, digest = ?, status = 'queued',"
            " result = NULL, error = NULL, attempts = 0, updated = ? WHERE id = ?",
            (task.kind, _encode(task.payload), task.priority, digest, time.time(), task.id),
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


def _requeue(task_id: str, digest: str) -> Callable[[sqlite3.Connection], None]:
    """An interrupted run: queued again, and the attempt does not count."""

    def run(conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE tasks SET status = 'queued', attempts = max(attempts - 1, 0), updated = ?"
            " WHERE id = ? AND digest = ? AND status = 'running'",
            (time.time(), task_id, digest),
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


def _stored_result(task_id: str, status: str, result: str | None, error: str | None) -> TaskResult:
    value = msgspec.json.decode(result) if result is not None else None
    return TaskResult(id=task_id, status=status, result=value, error=error)  # type: ignore[arg-type]


def _read_result(task_id: str) -> Callable[[sqlite3.Connection], TaskResult]:
    def run(conn: sqlite3.Connection) -> TaskResult:
        row = conn.execute(
            "SELECT status, result, error FROM tasks WHERE id = ?", (task_id,)
        ).fetchone()
        return _stored_result(task_id, *row)

    return run


async def journaled_results(path: str | Path, tasks: Iterable[Task]) -> list[TaskResult]:
    """The results a journal at ``path`` holds as finished for ``tasks`` (matched by id and by
    what they ask), in the order of ``tasks``; nothing for an in-memory or missing journal.
    For after the scheduler stopped: e.g. to write out every result a run journaled."""
    wanted = {t.id: task_digest(t.kind, t.payload) for t in tasks if t.id is not None}
    if str(path) == ":memory:" or not Path(path).is_file() or not wanted:
        return []

    def read(conn: sqlite3.Connection) -> dict[str, TaskResult]:
        found = {}
        for task_id, status, result, error, digest in conn.execute(
            "SELECT id, status, result, error, digest FROM tasks WHERE status IN ('done', 'failed')"
        ):
            if wanted.get(task_id) == digest:
                found[task_id] = _stored_result(task_id, status, result, error)
        return found

    db = SQLiteWorker(path)
    await db.start()
    try:
        found = await db.call(read)
    finally:
        await db.close()
    return [found[task_id] for task_id in wanted if task_id in found]


class Worker(Actor):
    """Runs one task at a time with the handler for its kind and reports to the scheduler."""

    def __init__(self, handlers: Mapping[str, TaskHandler], scheduler: ActorRef) -> None:
        self._handlers = handlers
        self._scheduler = scheduler

    async def receive(self, message: Any, ctx: Context) -> None:
        match message:
            case _Run(task=task, digest=digest):
                assert task.id is not None
                try:
                    value = await self._handlers[task.kind](task)
                    _encode(value)  # a result that cannot be journaled is the handler's error
                except TaskInterrupted as exc:  # no outcome: the task stays pending
                    self._scheduler.tell(_Interrupted(ctx.self, task, digest, str(exc)))
                    return
                except Exception as exc:
                    error = f"{type(exc).__name__}: {exc}"
                    failed = TaskResult(id=task.id, status="failed", error=error)
                    self._scheduler.tell(_Finished(ctx.self, failed, digest))
                    raise  # a fresh worker for the next task: the handler's state may be broken
                done = TaskResult(id=task.id, status="done", result=value)
                self._scheduler.tell(_Finished(ctx.self, done, digest))
            case _:  # a worker takes only its scheduler's _Run
                refuse(message, ctx, "a scheduler's Worker", _Run)


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
        self._digest: dict[str, str] = {}  # what each known id asks (see task_digest)
        self._queued: dict[str, Task] = {}  # the version of each queued id the queue may hand out
        self._held: dict[str, Task] = {}  # interrupted: queued in the journal, not handed out
        self._draining = False
        self._waiters: dict[str, list[DeferredReply]] = {}
        self._notify: dict[str, list[ActorRef]] = {}
        self._idle: list[ActorRef] = []
        self._workers: list[ActorRef] = []

    async def on_start(self) -> None:
        await self._db.start()
        state = await self._db.call(_load_state)
        self._status, self._digest = state.status, state.digest
        for task in state.pending:
            assert task.id is not None
            self._status[task.id] = "queued"
            self._enqueue(task)
        if state.pending:
            log.info("scheduler resumed", path=self._path, tasks=len(state.pending))
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
                reply.fail(
                    ActorStopped(
                        f"the scheduler stopped before task {task_id} finished; submit it again "
                        "with the same id to wait for it (the journal keeps it)"
                    )
                )
        await self._db.close()

    def receive(self, message: Any, ctx: Context) -> Any:
        match message:
            case Submit(task=task, notify=notify):
                task = self._with_id(task)
                assert task.id is not None
                reply = ctx.defer_reply()
                journaled = self._accept(task)
                if notify and ctx.sender is not None:
                    self._notify.setdefault(task.id, []).append(ctx.sender)
                journaled.add_done_callback(lambda f: _answer(reply, f, task.id))
                return None
            case SubmitAndWait(task=task):
                task = self._with_id(task)
                assert task.id is not None
                self._accept(task)
                self._waiters.setdefault(task.id, []).append(ctx.defer_reply())
                return None
            case Wait(id=task_id):
                reply = ctx.defer_reply()
                status = self._status.get(task_id)
                if status is None:
                    reply.fail(LookupError(f"the scheduler knows no task {task_id!r}"))
                    return None
                self._waiters.setdefault(task_id, []).append(reply)
                if status in ("done", "failed"):
                    self._answer_from_journal(task_id)
                return None
            case _Finished(worker=worker, result=result, digest=digest):
                if self._digest.get(result.id) != digest:  # an old version, replaced meanwhile
                    self._free(worker)
                    return None
                self._status[result.id] = result.status

                # The worker gets its next task only once this result is on disk: after a
                # crash at most one finished-but-unjournaled task per worker runs again.
                def journaled(fut: Any) -> None:
                    self._deliver(result, fut, digest)
                    self._free(worker)

                self._db.submit(_finish(result)).add_done_callback(journaled)
                return None
            case _Interrupted(worker=worker, task=task, digest=digest, reason=reason):
                self._interrupted(worker, task, digest, reason)
                return None
            case Drain():
                self._draining = True
                return sum(1 for status in self._status.values() if status == "running")
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
                            self._digest.pop(task_id, None)
                    log.info("scheduler forgot finished tasks", kind=kind, tasks=len(ids))
                    reply.resolve(len(ids))

                self._db.submit(_forget(kind)).add_done_callback(forgotten)
                return None
            case _:  # the sender's error, not a reason to restart the queue
                refuse(message, ctx, "Scheduler", SchedulerRequest)
                return None

    @staticmethod
    def _with_id(task: Task) -> Task:
        return task if task.id is not None else msgspec.structs.replace(task, id=uuid.uuid4().hex)

    def _accept(self, task: Task) -> asyncio.Future[Any]:
        """Journal and queue a new task; for a known id, deliver or wait. A future: journaled."""
        task_id = task.id
        assert task_id is not None
        digest = task_digest(task.kind, task.payload)
        status = self._status.get(task_id)
        if status is not None and self._digest.get(task_id) != digest:
            return self._replace(task, digest)
        if status in ("done", "failed"):
            return self._answer_from_journal(task_id)
        if status is not None:  # queued or running: the waiter joins it
            held = self._held.pop(task_id, None)
            if held is not None:  # interrupted earlier: asked for again, so it runs again
                self._enqueue(held)
                self._dispatch()
            return self._db.submit(_nothing)
        self._status[task_id] = "queued"
        self._digest[task_id] = digest
        return self._queue_new(task, self._db.submit(_insert(task, digest)))

    def _replace(self, task: Task, digest: str) -> asyncio.Future[Any]:
        """A known id that now asks something else: the new version replaces the journal's
        entry and runs; whoever waited for the old version learns it."""
        task_id = task.id
        assert task_id is not None
        log.info("scheduler.task_replaced", task=task_id, was=self._status.get(task_id))
        for reply in self._waiters.pop(task_id, ()):
            reply.fail(
                ActorStopped(
                    f"task {task_id} was replaced by a submit of the same id that asks something "
                    "else; its earlier version will not finish"
                )
            )
        self._notify.pop(task_id, None)
        self._held.pop(task_id, None)
        self._queued.pop(task_id, None)  # a queued old version is skipped (see _dispatch)
        self._status[task_id] = "queued"
        self._digest[task_id] = digest
        return self._queue_new(task, self._db.submit(_replace(task, digest)))

    def _queue_new(self, task: Task, journaled: asyncio.Future[Any]) -> asyncio.Future[Any]:
        """Queue a task just journaled, or fail it at once when no handler knows its kind."""
        task_id = task.id
        assert task_id is not None
        if task.kind not in self._handlers:
            known = ", ".join(sorted(self._handlers)) or "none"
            error = f"no handler for task kind {task.kind!r} (known: {known})"
            result = TaskResult(id=task_id, status="failed", error=error)
            self._status[task_id] = "failed"
            digest = self._digest[task_id]
            done = self._db.submit(_finish(result))
            done.add_done_callback(lambda f: self._deliver(result, f, digest))
            return journaled
        self._enqueue(task)
        self._dispatch()
        return journaled

    def _enqueue(self, task: Task) -> None:
        assert task.id is not None
        self._queued[task.id] = task
        self._queue.push(task)

    def _dispatch(self) -> None:
        while self._idle and self._queue and not self._draining:
            task = self._queue.pop()
            assert task.id is not None
            if self._queued.get(task.id) is not task:  # replaced while it waited
                continue
            del self._queued[task.id]
            self._status[task.id] = "running"
            self._db.submit(_mark_running(task.id))
            self._idle.pop(0).tell(_Run(task, self._digest[task.id]))

    def _free(self, worker: ActorRef) -> None:
        # a worker of an earlier incarnation (its report was still queued when the scheduler
        # restarted) is gone: its result counts, it takes no task
        if worker in self._workers:
            self._idle.append(worker)
        self._dispatch()

    def _interrupted(self, worker: ActorRef, task: Task, digest: str, reason: str) -> None:
        """A run stopped before the task had an outcome: pending again, in the journal and
        here, but held back until the next start or a new submit of its id."""
        task_id = task.id
        assert task_id is not None
        if self._digest.get(task_id) != digest:  # an old version, replaced meanwhile
            self._free(worker)
            return
        self._status[task_id] = "queued"
        self._held[task_id] = task
        log.info("scheduler.task_interrupted", task=task_id, reason=reason)

        def journaled(fut: Any) -> None:
            if not fut.cancelled() and fut.exception() is not None:
                log.error("journal write failed", task=task_id, error=str(fut.exception()))
            if self._digest.get(task_id) != digest:  # replaced meanwhile: not its waiters
                self._free(worker)
                return
            for reply in self._waiters.pop(task_id, ()):
                reply.fail(
                    ActorStopped(
                        f"task {task_id} was interrupted before it finished ({reason}); "
                        "the journal keeps it queued, and the next start runs it"
                    )
                )
            self._notify.pop(task_id, None)
            self._free(worker)

        self._db.submit(_requeue(task_id, digest)).add_done_callback(journaled)

    def _answer_from_journal(self, task_id: str) -> asyncio.Future[TaskResult]:
        """Deliver the finished task's stored result to whoever waits for it (once read)."""
        digest = self._digest[task_id]

        def read(fut: asyncio.Future[TaskResult]) -> None:
            if fut.cancelled():
                return
            error = fut.exception()
            if error is not None:
                failed = TaskResult(id=task_id, status="failed", error=str(error))
                self._deliver(failed, digest=digest)
            else:
                self._deliver(fut.result(), digest=digest)

        stored = self._db.submit(_read_result(task_id))
        stored.add_done_callback(read)
        return stored

    def _deliver(self, result: TaskResult, journaled: Any = None, digest: str = "") -> None:
        """Answer everyone waiting for ``result.id`` (after the result reached the journal),
        unless the task was replaced meanwhile by one that asks something else (its waiters
        wait for the new version; ``digest`` says which version ``result`` is of)."""
        if journaled is not None and not journaled.cancelled() and journaled.exception():
            log.error("journal write failed", task=result.id, error=str(journaled.exception()))
        if self._digest.get(result.id) != digest:
            return
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

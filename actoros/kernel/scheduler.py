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
import heapq
import itertools
import uuid
from collections.abc import Mapping
from typing import Any

import msgspec
import structlog

from actoros.core import Actor, ActorRef, ActorStopped, Context, DeferredReply, SupervisorSpec

from . import journal
from ._protocol import refuse
from ._sqlite import SQLiteWorker
from .journal import journaled_results, task_digest
from .tasks import (
    Drain,
    Forget,
    Policy,
    SchedulerRequest,
    SchedulerStats,
    Stats,
    Status,
    Submit,
    SubmitAndWait,
    Task,
    TaskHandler,
    TaskInterrupted,
    TaskResult,
    Wait,
)

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
                    journal.encode(value)  # what cannot be journaled is the handler's error
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
        self._db = SQLiteWorker(path, schema=journal.SCHEMA)
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
        state = await self._db.call(journal.load_state)
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

                self._db.submit(journal.finish(result)).add_done_callback(journaled)
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

                self._db.submit(journal.forget(kind)).add_done_callback(forgotten)
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
        digest = journal.task_digest(task.kind, task.payload)
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
            return self._db.submit(journal.nothing)
        self._status[task_id] = "queued"
        self._digest[task_id] = digest
        return self._queue_new(task, self._db.submit(journal.insert(task, digest)))

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
        return self._queue_new(task, self._db.submit(journal.replace(task, digest)))

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
            done = self._db.submit(journal.finish(result))
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
            self._db.submit(journal.mark_running(task.id))
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

        self._db.submit(journal.requeue(task_id, digest)).add_done_callback(journaled)

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

        stored = self._db.submit(journal.read_result(task_id))
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

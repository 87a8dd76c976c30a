"""What the scheduler's users send and get back: tasks, their results, the request union.

``Task`` is one unit of work (``kind``, JSON ``payload``, ``priority``, ``id``); the requests
(``Submit``, ``SubmitAndWait``, ``Wait``, ``Forget``, ``Drain``, ``Stats``) make up
``SchedulerRequest``; ``TaskResult`` is a finished task's outcome. The semantics are the
scheduler's (``scheduler.py``); the journal that keeps them is ``journal.py``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

import msgspec

__all__ = [
    "Drain",
    "Forget",
    "Policy",
    "SchedulerRequest",
    "SchedulerStats",
    "Stats",
    "Status",
    "Submit",
    "SubmitAndWait",
    "Task",
    "TaskHandler",
    "TaskInterrupted",
    "TaskResult",
    "Wait",
]

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

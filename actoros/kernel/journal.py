"""The scheduler's journal: every task and result in SQLite, and the queries on it.

One table, ``tasks``: a task's id, kind, payload and the digest of what it asks
(``task_digest``: a task is its id *and* what it asks), its status (queued, running, done,
failed), its result or error and how often it started. Each function here returns a callable
``fn(conn)`` for the scheduler's ``SQLiteWorker`` (one thread, in order), so the scheduler
journals without blocking the loop. ``journaled_results`` reads a closed journal.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import msgspec

from ._sqlite import SQLiteWorker, transaction
from .tasks import Status, Task, TaskResult

__all__ = ["journaled_results", "task_digest"]


SCHEMA = """
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


def encode(value: Any) -> str:
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


class State(msgspec.Struct):
    """The journal as loaded at start: tasks to resume, then status and digest by id."""

    pending: list[Task]
    status: dict[str, Status]
    digest: dict[str, str]


def load_state(conn: sqlite3.Connection) -> State:
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
    return State(pending, status, digest)


def insert(task: Task, digest: str) -> Callable[[sqlite3.Connection], None]:
    def run(conn: sqlite3.Connection) -> None:
        now = time.time()
        conn.execute(
            "INSERT INTO tasks (id, kind, payload, priority, status, digest, created, updated)"
            " VALUES (?, ?, ?, ?, 'queued', ?, ?, ?)",
            (task.id, task.kind, encode(task.payload), task.priority, digest, now, now),
        )

    return run


def replace(task: Task, digest: str) -> Callable[[sqlite3.Connection], None]:
    """A new version of a known id: what it asks, queued, with no result and no attempts."""

    def run(conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE tasks SET kind = ?, payload = ?, priority = ?, digest = ?, status = 'queued',"
            " result = NULL, error = NULL, attempts = 0, updated = ? WHERE id = ?",
            (task.kind, encode(task.payload), task.priority, digest, time.time(), task.id),
        )

    return run


def mark_running(task_id: str) -> Callable[[sqlite3.Connection], None]:
    def run(conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE tasks SET status = 'running', attempts = attempts + 1, updated = ?"
            " WHERE id = ?",
            (time.time(), task_id),
        )

    return run


def requeue(task_id: str, digest: str) -> Callable[[sqlite3.Connection], None]:
    """An interrupted run: queued again, and the attempt does not count."""

    def run(conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE tasks SET status = 'queued', attempts = max(attempts - 1, 0), updated = ?"
            " WHERE id = ? AND digest = ? AND status = 'running'",
            (time.time(), task_id, digest),
        )

    return run


def finish(result: TaskResult) -> Callable[[sqlite3.Connection], None]:
    def run(conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE tasks SET status = ?, result = ?, error = ?, updated = ? WHERE id = ?",
            (result.status, encode(result.result), result.error, time.time(), result.id),
        )

    return run


def forget(kind: str) -> Callable[[sqlite3.Connection], list[str]]:
    def run(conn: sqlite3.Connection) -> list[str]:
        finished = "kind = ? AND status IN ('done', 'failed')"
        ids = [row[0] for row in conn.execute(f"SELECT id FROM tasks WHERE {finished}", (kind,))]
        conn.execute(f"DELETE FROM tasks WHERE {finished}", (kind,))
        return ids

    return run


def nothing(conn: sqlite3.Connection) -> None:
    """A no-op journal entry: its future resolves once every earlier write is on disk."""


def _stored_result(task_id: str, status: str, result: str | None, error: str | None) -> TaskResult:
    value = msgspec.json.decode(result) if result is not None else None
    return TaskResult(id=task_id, status=status, result=value, error=error)  # type: ignore[arg-type]


def read_result(task_id: str) -> Callable[[sqlite3.Connection], TaskResult]:
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

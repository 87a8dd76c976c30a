"""One thread, one SQLite connection: blocking database calls off the event loop, in order.

``SQLiteWorker`` owns a ``sqlite3`` connection inside a dedicated thread and runs the callables
it is given (``fn(conn) -> value``) one after the other, in submission order. ``submit`` returns
an asyncio future at once (so an actor can journal without awaiting and still know when the
write is on disk); ``call`` awaits it. Because one thread runs everything, a write submitted
before a read is always visible to that read, and ``:memory:`` databases work (the connection
never changes threads).

Durability: file databases use WAL with ``synchronous=NORMAL``, which survives a killed process
(SIGKILL) — a call whose future resolved is on disk — though not necessarily a power loss.

Failures: a file that cannot be opened (a directory in its place, not a database, no access)
makes ``start`` raise ``DatabaseOpenError`` naming the file, never hang. The thread settles
every future itself, ``close`` included, so nothing here waits on asyncio's default executor
(which user code may have filled with hung calls).
"""

from __future__ import annotations

import asyncio
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["DatabaseOpenError", "SQLiteWorker", "transaction"]

_STOP = object()


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run a block of statements atomically on an autocommit connection."""
    conn.execute("BEGIN")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class DatabaseOpenError(Exception):
    """An SQLite file that cannot be opened; ``path`` names it, ``reason`` says why and what
    to do."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"cannot open the SQLite file {path}: {reason}")


def _why_not(path: str, exc: BaseException) -> str:
    """What is wrong with ``path`` and how to fix it, in a few words."""
    file = Path(path)
    if file.is_dir():
        return "it is a directory (remove it, or use another path)"
    parent = file.parent
    if parent.exists() and not parent.is_dir():
        return f"{parent} is not a directory (use another path)"
    if file.exists() and not os.access(file, os.R_OK | os.W_OK):
        return "this user may not read and write it (fix its permissions, or use another path)"
    if isinstance(exc, sqlite3.DatabaseError) and "not a database" in str(exc):
        return "it is not an SQLite database (move it away to start a new one, or use another path)"
    return f"{exc} (check the path and its permissions)"


def _settle(fut: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if fut.done():  # the awaiting side was cancelled
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)


def _as_error(exc: BaseException) -> Exception:
    """An exception an asyncio future may carry: ``SystemExit`` in a callable must neither
    end the thread nor reach the loop as ``SystemExit``."""
    if isinstance(exc, Exception):
        return exc
    return RuntimeError(f"the database call raised {exc!r}")


def _reply(loop: asyncio.AbstractEventLoop, fut: asyncio.Future[Any], ok: bool, value: Any) -> None:
    """Settle ``fut`` on its loop, from the database thread."""
    try:
        loop.call_soon_threadsafe(_settle, fut, ok, value)
    except RuntimeError:  # the loop is closed: nobody is waiting any more
        pass


class SQLiteWorker:
    """A dedicated thread running database calls on one connection, first in, first out."""

    def __init__(self, path: str | Path, *, schema: str = "") -> None:
        self.path = str(path)
        self._schema = schema
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    async def start(self) -> None:
        """Start the thread, open the database and apply the schema (``executescript``).

        Raises ``DatabaseOpenError`` when the file cannot be opened or is not a database (the
        thread has ended then; ``start`` may be called again)."""
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[None] = loop.create_future()
        if self.path != ":memory:":
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseOpenError(self.path, _why_not(self.path, exc)) from exc
        self._thread = threading.Thread(
            target=self._run, args=(opened, loop), name=f"actoros-sqlite:{self.path}", daemon=True
        )
        self._thread.start()
        try:
            await opened
        except Exception as exc:
            self._thread = None
            raise DatabaseOpenError(self.path, _why_not(self.path, exc)) from exc

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            if self.path != ":memory:":
                conn.execute("PRAGMA journal_mode=WAL")  # reads the file: "not a database"
                conn.execute("PRAGMA synchronous=NORMAL")
            if self._schema:
                conn.executescript(self._schema)
        except BaseException:
            conn.close()
            raise
        return conn

    def _run(self, opened: asyncio.Future[None], loop: asyncio.AbstractEventLoop) -> None:
        try:
            conn = self._open()
        except BaseException as exc:  # start() raises it, naming the file
            _reply(loop, opened, False, _as_error(exc))
            return
        _reply(loop, opened, True, None)
        closed = None
        try:
            while True:
                fn, fut, fut_loop = self._queue.get()
                if fn is _STOP:
                    closed = (fut_loop, fut)
                    break
                try:
                    ok, value = True, fn(conn)
                except BaseException as exc:  # handed to the awaiting side
                    ok, value = False, _as_error(exc)
                _reply(fut_loop, fut, ok, value)
        finally:
            conn.close()
        if closed is not None:  # close() returns once the connection is closed
            _reply(*closed, True, None)

    def submit(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Queue ``fn(conn)``; the returned future resolves when it has run."""
        if self._thread is None or not self._thread.is_alive():
            raise RuntimeError("SQLiteWorker is not running")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._queue.put((fn, fut, loop))
        return fut

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self.submit(fn)

    async def close(self) -> None:
        """Run what is queued, close the connection and end the thread.

        The thread resolves the future awaited here itself once the connection is closed, so
        closing needs no executor thread (asyncio's default pool may be full of hung calls)."""
        thread, self._thread = self._thread, None
        if thread is None or not thread.is_alive():
            return
        loop = asyncio.get_running_loop()
        closed: asyncio.Future[None] = loop.create_future()
        self._queue.put((_STOP, closed, loop))
        await asyncio.shield(closed)

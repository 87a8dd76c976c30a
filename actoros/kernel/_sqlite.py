"""One thread, one SQLite connection: blocking database calls off the event loop, in order.

``SQLiteWorker`` owns a ``sqlite3`` connection inside a dedicated thread and runs the callables
it is given (``fn(conn) -> value``) one after the other, in submission order. ``submit`` returns
an asyncio future at once (so an actor can journal without awaiting and still know when the
write is on disk); ``call`` awaits it. Because one thread runs everything, a write submitted
before a read is always visible to that read, and ``:memory:`` databases work (the connection
never changes threads).

Durability: file databases use WAL with ``synchronous=NORMAL``, which survives a killed process
(SIGKILL) — a call whose future resolved is on disk — though not necessarily a power loss.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["SQLiteWorker", "transaction"]

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


def _settle(fut: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if fut.done():  # the awaiting side was cancelled
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)


class SQLiteWorker:
    """A dedicated thread running database calls on one connection, first in, first out."""

    def __init__(self, path: str | Path, *, schema: str = "") -> None:
        self.path = str(path)
        self._schema = schema
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    async def start(self) -> None:
        """Start the thread, open the database and apply the schema (``executescript``)."""
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(
            target=self._run, name=f"actoros-sqlite:{self.path}", daemon=True
        )
        self._thread.start()
        await self.call(self._open)

    def _open(self, conn: sqlite3.Connection) -> None:
        if self.path != ":memory:":
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        if self._schema:
            conn.executescript(self._schema)

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    return
                fn, fut, loop = item
                try:
                    ok, value = True, fn(conn)
                except Exception as exc:  # handed to the awaiting side
                    ok, value = False, exc
                try:
                    loop.call_soon_threadsafe(_settle, fut, ok, value)
                except RuntimeError:  # the loop is closed: nobody is waiting any more
                    pass
        finally:
            conn.close()

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
        """Run what is queued, close the connection and end the thread."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._queue.put(_STOP)
        await asyncio.to_thread(thread.join)

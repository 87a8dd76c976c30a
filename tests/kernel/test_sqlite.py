"""``SQLiteWorker``: calls run in order on one thread; a file that cannot be opened fails
``start`` at once, naming it; ``close`` does not depend on asyncio's default executor."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from actoros.kernel._sqlite import DatabaseOpenError, SQLiteWorker

pytestmark = pytest.mark.timeout(10)

SCHEMA = "CREATE TABLE IF NOT EXISTS t (v INTEGER);"


async def test_calls_run_in_order_and_a_write_is_visible_to_the_next_read(tmp_path: Path) -> None:
    db = SQLiteWorker(tmp_path / "x.sqlite", schema=SCHEMA)
    await db.start()
    try:
        writes = [
            db.submit(lambda c, i=i: c.execute("INSERT INTO t VALUES (?)", (i,))) for i in range(5)
        ]
        rows = await db.call(lambda c: [r[0] for r in c.execute("SELECT v FROM t ORDER BY rowid")])
        await asyncio.gather(*writes)
    finally:
        await db.close()
    assert rows == [0, 1, 2, 3, 4]


async def test_a_directory_in_place_of_the_file_fails_start_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "scheduler.sqlite"
    path.mkdir()
    db = SQLiteWorker(path, schema=SCHEMA)
    with pytest.raises(DatabaseOpenError) as caught:
        await db.start()  # before: the thread died in connect() and start() waited forever
    assert caught.value.path == str(path)
    assert str(caught.value) == (
        f"cannot open the SQLite file {path}: it is a directory (remove it, or use another path)"
    )
    with pytest.raises(RuntimeError, match="not running"):
        db.submit(lambda c: None)
    await db.close()  # nothing to close: returns at once


async def test_a_file_that_is_not_a_database_fails_start_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "threads.sqlite"
    path.write_bytes(b"this is no SQLite database, just text that is long enough to be read\n" * 4)
    with pytest.raises(DatabaseOpenError, match="it is not an SQLite database") as caught:
        await SQLiteWorker(path, schema=SCHEMA).start()
    assert str(path) in str(caught.value)


async def test_a_parent_that_is_a_file_fails_start_naming_it(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("a file, not a folder")
    path = tmp_path / "state" / "kv.sqlite"
    with pytest.raises(DatabaseOpenError) as caught:
        await SQLiteWorker(path).start()
    assert caught.value.path == str(path)
    assert f"{tmp_path / 'state'} is not a directory" in caught.value.reason


async def test_close_finishes_while_the_default_executor_is_full(tmp_path: Path) -> None:
    """User code may fill asyncio's default thread pool with calls that never return; the
    kernel's stores must still close (before: close() joined its thread via to_thread)."""
    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(max_workers=1)
    hang = threading.Event()
    loop.set_default_executor(pool)
    hung = loop.run_in_executor(None, hang.wait)  # the pool's only thread is taken
    try:
        db = SQLiteWorker(tmp_path / "x.sqlite", schema=SCHEMA)
        await db.start()
        await db.call(lambda c: c.execute("INSERT INTO t VALUES (1)"))
        await db.close()
    finally:
        hang.set()
        await hung
    with sqlite3.connect(tmp_path / "x.sqlite") as conn:
        assert conn.execute("SELECT v FROM t").fetchall() == [(1,)]


async def test_system_exit_in_a_call_is_that_calls_error_and_the_thread_goes_on(
    tmp_path: Path,
) -> None:
    def leave(conn: sqlite3.Connection) -> None:
        raise SystemExit(3)

    db = SQLiteWorker(":memory:", schema=SCHEMA)
    await db.start()
    try:
        with pytest.raises(RuntimeError, match="SystemExit"):
            await db.call(leave)
        assert await db.call(lambda c: c.execute("SELECT 1").fetchone()) == (1,)
    finally:
        await db.close()

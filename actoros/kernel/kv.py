"""A small key-value store per system: ``KVStore`` (SQLite file or memory) and ``KVService``.

Keys live in namespaces (one per agent, per tool, per whatever the caller picks) and values are
any JSON value, stored JSON-encoded. ``KVStore`` is plain blocking code guarded by a lock, for
programs that want the store without an actor. ``KVService`` is the actor that owns the
system's store: every request runs on its own dedicated SQLite thread (``SQLiteWorker``), which
nothing else uses — not asyncio's default executor, where user code could starve it — so a disk
write never blocks the event loop and the writes of one system are applied in the order they
arrived. The service answers each request when its statement has run and keeps taking the next
ones meanwhile; a failed statement is that request's error reply, never a crash of the service.

Sizes are capped, so no caller can fill the disk or the memory with one request: a value whose
JSON encoding exceeds ``max_value_bytes`` (default ``MAX_VALUE_BYTES``, 1 MiB) and a namespace
or key longer than ``MAX_KEY_CHARS`` are refused with ``ValueTooLarge``, naming the size and the
limit; nothing is written.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import msgspec

from actoros.core import Actor, Context, DeferredReply

from ._protocol import refuse
from ._sqlite import SQLiteWorker

__all__ = [
    "KVDelete",
    "KVGet",
    "KVKeys",
    "KVPut",
    "KVRequest",
    "KVService",
    "KVStore",
    "MAX_KEY_CHARS",
    "MAX_VALUE_BYTES",
    "ValueTooLarge",
]

MAX_VALUE_BYTES = 1 << 20  # the default cap of one value's JSON encoding (services.kv)
MAX_KEY_CHARS = 1024  # of a key, and of a namespace

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (namespace, key)
)
"""


class ValueTooLarge(ValueError):
    """A key, namespace or value over the store's size limits; nothing was written."""


def _check_name(what: str, name: str) -> None:
    if len(name) > MAX_KEY_CHARS:
        raise ValueTooLarge(
            f"kv {what} of {len(name):,} characters is over the limit of {MAX_KEY_CHARS:,}"
        )


def _encode(namespace: str, key: str, value: Any, limit: int) -> bytes:
    _check_name("namespace", namespace)
    _check_name("key", key)
    raw = msgspec.json.encode(value)
    if len(raw) > limit:
        raise ValueTooLarge(
            f"kv value for {key!r} is {len(raw):,} bytes of JSON, over the limit of "
            f"{limit:,} bytes (services.kv.max_value_bytes)"
        )
    return raw


def _get(conn: sqlite3.Connection, namespace: str, key: str, default: Any) -> Any:
    row = conn.execute(
        "SELECT value FROM kv WHERE namespace = ? AND key = ?", (namespace, key)
    ).fetchone()
    return default if row is None else msgspec.json.decode(row[0])


def _put(conn: sqlite3.Connection, namespace: str, key: str, value: Any, limit: int) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO kv (namespace, key, value) VALUES (?, ?, ?)",
        (namespace, key, _encode(namespace, key, value, limit)),
    )


def _delete(conn: sqlite3.Connection, namespace: str, key: str) -> bool:
    cursor = conn.execute("DELETE FROM kv WHERE namespace = ? AND key = ?", (namespace, key))
    return cursor.rowcount > 0


def _keys(conn: sqlite3.Connection, namespace: str) -> list[str]:
    rows = conn.execute("SELECT key FROM kv WHERE namespace = ? ORDER BY key", (namespace,))
    return [row[0] for row in rows]


class KVStore:
    """Blocking key-value storage: SQLite at ``path``, or memory when ``path`` is ``None``.

    Thread-safe (one lock). ``max_value_bytes``: the cap of a value (see the module docstring).
    """

    def __init__(self, path: str | Path | None = None, *, max_value_bytes: int = MAX_VALUE_BYTES):
        self.path = None if path is None else Path(path)
        self.max_value_bytes = max_value_bytes
        self._lock = threading.Lock()
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        target = ":memory:" if self.path is None else str(self.path)
        self._db: sqlite3.Connection | None = sqlite3.connect(
            target, check_same_thread=False, isolation_level=None
        )
        if self.path is not None:
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)

    def get(self, namespace: str, key: str, default: Any = None) -> Any:
        with self._lock:
            return _get(self._conn(), namespace, key, default)

    def put(self, namespace: str, key: str, value: Any) -> None:
        with self._lock:
            _put(self._conn(), namespace, key, value, self.max_value_bytes)

    def delete(self, namespace: str, key: str) -> bool:
        """Remove ``key``; True if it was there."""
        with self._lock:
            return _delete(self._conn(), namespace, key)

    def keys(self, namespace: str) -> list[str]:
        with self._lock:
            return _keys(self._conn(), namespace)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the key-value store is closed")
        return self._db


class KVGet(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    """Reply: the value of ``key`` in ``namespace``, or ``default`` when it has none."""

    key: str
    namespace: str = "default"
    default: Any = None


class KVPut(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    """Set ``key`` to ``value`` (any JSON value). Reply: ``None``; ``ValueTooLarge`` over the
    size limits."""

    key: str
    value: Any
    namespace: str = "default"


class KVDelete(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    """Remove ``key``. Reply: whether it existed."""

    key: str
    namespace: str = "default"


class KVKeys(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    """Reply: the keys of ``namespace``, sorted."""

    namespace: str = "default"


KVRequest = KVGet | KVPut | KVDelete | KVKeys
"""What ``KVService`` takes."""


class KVService(Actor):
    """The system's key-value store as an actor (``/kernel/kv``; see the module docstring).

    ``path``: the SQLite file (``None``: in memory, gone with the actor). A restart reopens
    the file, so what was written survives; an in-memory store starts empty again.
    ``max_value_bytes``: the cap of one value's JSON encoding.
    """

    def __init__(
        self, path: str | Path | None = None, *, max_value_bytes: int = MAX_VALUE_BYTES
    ) -> None:
        self.max_value_bytes = max_value_bytes
        self._db = SQLiteWorker(":memory:" if path is None else path, schema=_SCHEMA)

    async def on_start(self) -> None:
        await self._db.start()

    async def on_stop(self) -> None:
        await self._db.close()

    def receive(self, message: Any, ctx: Context) -> None:
        work: Callable[[sqlite3.Connection], Any]
        match message:
            case KVGet(key=key, namespace=namespace, default=default):
                work = partial(_get, namespace=namespace, key=key, default=default)
            case KVPut(key=key, value=value, namespace=namespace):
                limit = self.max_value_bytes
                work = partial(_put, namespace=namespace, key=key, value=value, limit=limit)
            case KVDelete(key=key, namespace=namespace):
                work = partial(_delete, namespace=namespace, key=key)
            case KVKeys(namespace=namespace):
                work = partial(_keys, namespace=namespace)
            case _:  # the sender's error, not a reason to restart the store
                refuse(message, ctx, "KVService", KVRequest)
                return
        reply = ctx.defer_reply()
        # queued on the store's one thread now, so requests run in the order they arrived
        self._db.submit(work).add_done_callback(lambda done: _answer(reply, done))


def _answer(reply: DeferredReply, done: Any) -> None:
    if done.cancelled():
        reply.fail(RuntimeError("the key-value store stopped before answering"))
    elif done.exception() is not None:
        reply.fail(done.exception())
    else:
        reply.resolve(done.result())

"""A small key-value store per system: ``KVStore`` (SQLite file or memory) and ``KVService``.

Keys live in namespaces (one per agent, per tool, per whatever the caller picks) and values are
any JSON value, stored JSON-encoded. ``KVStore`` is plain blocking code guarded by a lock;
``KVService`` is the actor that owns one and runs every store call in a worker thread
(``asyncio.to_thread``), so a disk write never blocks the event loop. The actor handles one
request at a time, so the writes of one system are applied in the order they arrived.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import msgspec

from actoros.core import Actor, Context

__all__ = ["KVDelete", "KVGet", "KVKeys", "KVPut", "KVService", "KVStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (namespace, key)
)
"""


class KVStore:
    """Blocking key-value storage: SQLite at ``path``, or memory when ``path`` is ``None``.

    Thread-safe (one lock); meant to be driven from worker threads by ``KVService``.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        self._lock = threading.Lock()
        self._memory: dict[tuple[str, str], bytes] | None = None
        self._db: sqlite3.Connection | None = None
        if self.path is None:
            self._memory = {}
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)

    def get(self, namespace: str, key: str, default: Any = None) -> Any:
        with self._lock:
            if self._memory is not None:
                raw = self._memory.get((namespace, key))
            else:
                row = (
                    self._conn()
                    .execute(
                        "SELECT value FROM kv WHERE namespace = ? AND key = ?", (namespace, key)
                    )
                    .fetchone()
                )
                raw = None if row is None else row[0]
        return default if raw is None else msgspec.json.decode(raw)

    def put(self, namespace: str, key: str, value: Any) -> None:
        raw = msgspec.json.encode(value)
        with self._lock:
            if self._memory is not None:
                self._memory[(namespace, key)] = raw
            else:
                self._conn().execute(
                    "INSERT OR REPLACE INTO kv (namespace, key, value) VALUES (?, ?, ?)",
                    (namespace, key, raw),
                )

    def delete(self, namespace: str, key: str) -> bool:
        """Remove ``key``; True if it was there."""
        with self._lock:
            if self._memory is not None:
                return self._memory.pop((namespace, key), None) is not None
            cursor = self._conn().execute(
                "DELETE FROM kv WHERE namespace = ? AND key = ?", (namespace, key)
            )
            return cursor.rowcount > 0

    def keys(self, namespace: str) -> list[str]:
        with self._lock:
            if self._memory is not None:
                return sorted(k for ns, k in self._memory if ns == namespace)
            rows = (
                self._conn()
                .execute("SELECT key FROM kv WHERE namespace = ? ORDER BY key", (namespace,))
                .fetchall()
            )
        return [row[0] for row in rows]

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the key-value store is closed")
        return self._db


class KVGet(msgspec.Struct, frozen=True, kw_only=True):
    """Reply: the value of ``key`` in ``namespace``, or ``default`` when it has none."""

    key: str
    namespace: str = "default"
    default: Any = None


class KVPut(msgspec.Struct, frozen=True, kw_only=True):
    """Set ``key`` to ``value`` (any JSON value). Reply: ``None``."""

    key: str
    value: Any
    namespace: str = "default"


class KVDelete(msgspec.Struct, frozen=True, kw_only=True):
    """Remove ``key``. Reply: whether it existed."""

    key: str
    namespace: str = "default"


class KVKeys(msgspec.Struct, frozen=True, kw_only=True):
    """Reply: the keys of ``namespace``, sorted."""

    namespace: str = "default"


KVRequest = KVGet | KVPut | KVDelete | KVKeys


class KVService(Actor):
    """The system's key-value store as an actor (``/kernel/kv``).

    ``path``: the SQLite file (``None``: in memory, gone with the actor). A restart reopens
    the file, so what was written survives; an in-memory store starts empty again.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self._path = path
        self.store: KVStore | None = None

    async def on_start(self) -> None:
        self.store = await asyncio.to_thread(KVStore, self._path)

    async def on_stop(self) -> None:
        if self.store is not None:
            await asyncio.to_thread(self.store.close)

    async def receive(self, message: Any, ctx: Context) -> Any:
        store = self.store
        assert store is not None  # set by on_start
        match message:
            case KVGet(key=key, namespace=namespace, default=default):
                return await asyncio.to_thread(store.get, namespace, key, default)
            case KVPut(key=key, value=value, namespace=namespace):
                return await asyncio.to_thread(store.put, namespace, key, value)
            case KVDelete(key=key, namespace=namespace):
                return await asyncio.to_thread(store.delete, namespace, key)
            case KVKeys(namespace=namespace):
                return await asyncio.to_thread(store.keys, namespace)
        # a stray message is the asker's error, not a reason to restart the store
        ctx.defer_reply().fail(TypeError(f"KVService cannot handle {message!r}"))
        return None

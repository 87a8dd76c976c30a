"""``KeyedLock``: one asyncio lock per key, kept only while a task holds it or waits for it.

Why: work serialized per key (an LLM agent's turns on one conversation thread, the thread
store's prompt builds of one thread) used a ``dict`` of locks that only grew: one lock for
every thread id ever seen, for the life of the actor. Here a key has a lock only while someone
holds it or waits for it; the last one to leave drops it, so what is kept is bounded by the
work in progress, not by the history.

Guarantees: for one key, holders run one at a time; different keys never wait for each
other. A task cancelled while it waits leaves as if it had never asked (the key is dropped if
nobody else holds or waits for it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Hashable
from typing import Generic, TypeVar

__all__ = ["KeyedLock"]

K = TypeVar("K", bound=Hashable)


class _Entry:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0  # tasks holding or waiting for ``lock``


class KeyedLock(Generic[K]):
    """``async with locks.hold(key):`` runs the block alone among the holders of ``key``."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: dict[K, _Entry] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: K) -> AsyncIterator[None]:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if not entry.users:
                del self._entries[key]

    def __len__(self) -> int:
        """How many keys are held or waited for now."""
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

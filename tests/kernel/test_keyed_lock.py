"""``KeyedLock``: per-key mutual exclusion that keeps a lock only while it is in use."""

from __future__ import annotations

import asyncio

import pytest

from actoros.kernel.keyed_lock import KeyedLock

pytestmark = pytest.mark.timeout(5)


async def test_holders_of_one_key_run_one_at_a_time() -> None:
    locks: KeyedLock[str] = KeyedLock()
    inside: list[int] = []
    most = 0
    gate = asyncio.Event()

    async def hold(i: int) -> None:
        nonlocal most
        async with locks.hold("thread"):
            inside.append(i)
            most = max(most, len(inside))
            await gate.wait()
            inside.remove(i)

    tasks = [asyncio.ensure_future(hold(i)) for i in range(3)]
    await asyncio.sleep(0)
    assert len(inside) == 1 and "thread" in locks
    gate.set()
    await asyncio.gather(*tasks)
    assert most == 1


async def test_different_keys_never_wait_for_each_other() -> None:
    locks: KeyedLock[str] = KeyedLock()
    async with locks.hold("a"):
        async with asyncio.timeout(1):
            async with locks.hold("b"):
                assert len(locks) == 2


async def test_a_key_is_forgotten_once_nobody_holds_or_waits_for_it() -> None:
    locks: KeyedLock[str] = KeyedLock()
    for key in ("a", "b", "c"):
        async with locks.hold(key):
            assert key in locks
    assert len(locks) == 0


async def test_a_waiter_cancelled_before_its_turn_leaves_no_lock_behind() -> None:
    locks: KeyedLock[str] = KeyedLock()
    waiting: asyncio.Task[None] | None = None

    async def wait_for_it() -> None:
        async with locks.hold("k"):
            raise AssertionError("a cancelled waiter never gets the lock")

    async with locks.hold("k"):
        waiting = asyncio.ensure_future(wait_for_it())
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert "k" in locks  # still held here
    assert len(locks) == 0

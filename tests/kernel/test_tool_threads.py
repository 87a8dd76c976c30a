"""ToolThreads: the bounded daemon pool that runs user tools' blocking calls."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest

from actoros.kernel._tool_threads import Escaped, ToolThreads

pytestmark = pytest.mark.timeout(10)


async def test_calls_beyond_the_size_wait_and_an_abandoned_one_never_runs() -> None:
    name = f"t-{uuid.uuid4().hex}"  # this test's threads only
    pool = ToolThreads(2, name=name)
    gate = threading.Event()
    ran: list[int] = []

    def work(n: int) -> int:
        gate.wait()
        ran.append(n)
        return n

    calls = [pool.run(work, {"n": n}) for n in range(4)]
    calls[3].future.cancel()  # its asker gave up while it waited
    await asyncio.sleep(0)  # let the cancellation's callback mark it
    assert len([t for t in threading.enumerate() if t.name.startswith(name)]) == 2
    gate.set()
    assert await asyncio.wait_for(asyncio.gather(*(c.future for c in calls[:3])), 5) == [0, 1, 2]
    assert [c.started for c in calls] == [True, True, True, False]
    assert sorted(ran) == [0, 1, 2]
    pool.shutdown()


async def test_a_thread_survives_what_its_call_raises_and_the_loop_never_sees_it() -> None:
    pool = ToolThreads(1)

    def leave() -> None:
        raise SystemExit(3)

    with pytest.raises(Escaped) as info:
        await asyncio.wait_for(pool.run(leave, {}).future, 5)
    assert isinstance(info.value.exc, SystemExit) and info.value.exc.code == 3

    def fail(text: str) -> None:
        raise ValueError(text)

    with pytest.raises(ValueError, match="plain"):  # an Exception arrives as itself
        await asyncio.wait_for(pool.run(fail, {"text": "plain"}).future, 5)
    assert await asyncio.wait_for(pool.run(threading.get_ident, {}).future, 5) != (
        threading.get_ident()
    )
    pool.shutdown()


async def test_shutdown_never_waits_cancels_queued_calls_and_abandons_daemon_threads() -> None:
    name = f"t-{uuid.uuid4().hex}"
    pool = ToolThreads(1, name=name)
    release = threading.Event()
    loop, inside = asyncio.get_running_loop(), asyncio.Event()

    def hang() -> None:
        loop.call_soon_threadsafe(inside.set)
        release.wait()

    busy = pool.run(hang, {})
    queued = pool.run(int, {})
    await asyncio.wait_for(inside.wait(), 5)
    try:
        pool.shutdown()  # returns at once although a call hangs
        assert queued.future.cancelled() and not queued.started
        (thread,) = [t for t in threading.enumerate() if t.name.startswith(name)]
        assert thread.daemon  # never holds up the interpreter's exit
        with pytest.raises(RuntimeError, match="shut down"):
            pool.run(int, {})
    finally:
        release.set()
    busy.future.cancel()
    await asyncio.wait_for(asyncio.to_thread(thread.join), 5)  # the thread ends once free


async def test_a_hung_call_gives_up_its_place_so_healthy_calls_still_run() -> None:
    # chaos bench (issue 9): as many hung lookups as the pool had threads made every later
    # call of the same tool wait for a place until it timed out
    name = f"t-{uuid.uuid4().hex}"
    pool = ToolThreads(2, name=name, max_hung=2)
    release = threading.Event()
    loop = asyncio.get_running_loop()
    inside = [asyncio.Event() for _ in range(5)]

    def hang(n: int) -> None:
        loop.call_soon_threadsafe(inside[n].set)
        release.wait()

    def threads() -> int:
        return len([t for t in threading.enumerate() if t.name.startswith(name)])

    try:
        hung = [pool.run(hang, {"n": n}) for n in range(2)]
        await asyncio.wait_for(asyncio.gather(*(inside[n].wait() for n in range(2))), 5)
        for call in hung:
            call.future.cancel()  # their deadline passed: abandoned while they run
        assert await asyncio.wait_for(pool.run(lambda x: x, {"x": 7}).future, 5) == 7
        assert pool.hung == 2 and threads() == 3  # a thread took a hung one's place
        more = [pool.run(hang, {"n": n}) for n in (2, 3, 4)]
        await asyncio.wait_for(asyncio.gather(*(inside[n].wait() for n in (2, 3))), 5)
        for call in more[:2]:
            call.future.cancel()
        await asyncio.sleep(0)  # let the cancellations' callbacks mark them
        assert pool.hung == 4 and threads() == 4  # past max_hung: no thread for call 4
        assert not more[2].started
        release.set()  # the hung calls come back: their places are given back
        await asyncio.wait_for(inside[4].wait(), 5)
        await asyncio.wait_for(more[2].future, 5)
    finally:
        release.set()
        pool.shutdown()

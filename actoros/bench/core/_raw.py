"""Raw asyncio baselines: what the same message patterns cost with no actor runtime at all.

Each function runs inside an already running loop (the caller runs it under uvloop) and
returns ``(operations, seconds)``; set-up happens before the clock starts.
"""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import Any


async def queue_future_ask(n: int) -> tuple[int, float]:
    """Request/reply as an actor's ask would do it by hand.

    The client creates a future, puts ``(message, future)`` on an unbounded queue and awaits
    the future; one server task gets and resolves it.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[Any, asyncio.Future[Any]]] = asyncio.Queue()

    async def server() -> None:
        get = queue.get
        while True:
            message, fut = await get()
            fut.set_result(message)

    task = loop.create_task(server())
    put = queue.put_nowait  # an unbounded queue never blocks: the cheapest correct put
    create_future = loop.create_future
    try:
        start = perf_counter()
        for i in range(n):
            fut = create_future()
            put((i, fut))
            if await fut != i:
                raise AssertionError("raw ask returned the wrong reply")
        return n, perf_counter() - start
    finally:
        task.cancel()


async def queue_ping_pong(n: int) -> tuple[int, float]:
    """Two tasks bounce a message over two unbounded queues; one round trip per message."""
    loop = asyncio.get_running_loop()
    ping: asyncio.Queue[int] = asyncio.Queue()
    pong: asyncio.Queue[int] = asyncio.Queue()

    async def echo() -> None:
        get, put = ping.get, pong.put_nowait
        while True:
            put(await get())

    task = loop.create_task(echo())
    put, get = ping.put_nowait, pong.get
    try:
        start = perf_counter()
        for i in range(n):
            put(i)
            if await get() != i:
                raise AssertionError("raw ping-pong returned the wrong message")
        return n, perf_counter() - start
    finally:
        task.cancel()


async def bounded_queue_oneway(n: int, maxsize: int = 1000) -> tuple[int, float]:
    """One producer ``await q.put``, one consumer ``await q.get``, until all ``n`` consumed."""
    queue: asyncio.Queue[int] = asyncio.Queue(maxsize=maxsize)

    async def producer() -> None:
        put = queue.put
        for i in range(n):
            await put(i)

    async def consumer() -> None:
        get = queue.get
        for _ in range(n):
            await get()

    start = perf_counter()
    await asyncio.gather(producer(), consumer())
    return n, perf_counter() - start

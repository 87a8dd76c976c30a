"""actoros workloads, written as a user would write them against the public API.

Each function runs inside an already running loop and returns what it measured; actor
systems and actors are set up before the clock starts and shut down after it stops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from time import perf_counter
from typing import Any

from actoros import Actor, ActorSystem, ChildSpec, Context, SupervisorSpec


class Echo(Actor):
    """Replies with the message it got."""

    async def receive(self, message: Any, ctx: Context) -> Any:
        return message


class Counter(Actor):
    """Counts messages; resolves ``done`` when it has processed ``expected`` of them."""

    def __init__(self, expected: int, done: asyncio.Future[float]) -> None:
        self.expected = expected
        self.done = done
        self.count = 0

    async def receive(self, message: Any, ctx: Context) -> None:
        self.count += 1
        if self.count == self.expected:
            self.done.set_result(asyncio.get_running_loop().time())


class InjectedCrash(Exception):
    """Raised on purpose by ``Crashy`` to make its supervisor restart it."""


CRASH = "crash"


class Crashy(Actor):
    """Answers any ask with its incarnation number; raises on ``CRASH``."""

    def __init__(self, incarnation: int) -> None:
        self.incarnation = incarnation

    async def receive(self, message: Any, ctx: Context) -> int:
        if message == CRASH:
            raise InjectedCrash("injected by the restart benchmark")
        return self.incarnation


async def ask_loop(n: int) -> tuple[int, float]:
    """Sequential ``await ref.ask(i)`` (default timeout) from one client to one actor."""
    async with ActorSystem("bench-ask") as system:
        ref = await system.spawn(Echo, name="echo")
        ask = ref.ask
        start = perf_counter()
        for i in range(n):
            if await ask(i) != i:
                raise AssertionError("ask returned the wrong reply")
        return n, perf_counter() - start


async def tell_until_processed(n: int) -> tuple[int, float]:
    """``n`` tells to one actor, timed until the actor has processed all ``n``."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[float] = loop.create_future()
    async with ActorSystem("bench-tell") as system:
        ref = await system.spawn(Counter, n, done, name="counter")
        tell = ref.tell
        start = perf_counter()
        for i in range(n):
            tell(i)
        await done
        return n, perf_counter() - start


async def fan_out_in(actors: int, rounds: int) -> tuple[int, int, float]:
    """Each round asks every one of ``actors`` actors at once (``asyncio.gather``).

    Returns ``(rounds, asks completed, seconds)``.
    """
    async with ActorSystem("bench-fanout") as system:
        refs = [await system.spawn(Echo) for _ in range(actors)]
        start = perf_counter()
        for r in range(rounds):
            replies = await asyncio.gather(*[ref.ask(r) for ref in refs])
            if len(replies) != actors or replies[-1] != r:
                raise AssertionError("fan-out returned the wrong replies")
        return rounds, rounds * actors, perf_counter() - start


async def restart_latencies(restarts: int, warmup: int = 20) -> list[float]:
    """Seconds from ``tell(CRASH)`` until an ask to the same ref is answered by the next
    incarnation, for each of ``restarts`` crashes (after ``warmup`` untimed ones)."""
    incarnations = 0

    def make_crashy() -> Crashy:
        nonlocal incarnations
        incarnations += 1
        return Crashy(incarnations)

    factory: Callable[[], Crashy] = make_crashy
    spec = SupervisorSpec(
        max_restarts=1_000_000_000,  # never escalate: every crash is restarted
        within=1.0,
        children=[ChildSpec("crashy", factory)],
    )
    samples: list[float] = []
    async with ActorSystem("bench-restart") as system:
        await system.spawn_supervisor(spec, name="sup")
        ref = system.lookup("/sup/crashy")
        if ref is None:
            raise AssertionError("the supervised child /sup/crashy is missing")
        expected = await ref.ask("ping")
        for i in range(warmup + restarts):
            start = perf_counter()
            ref.tell(CRASH)
            answer = await ref.ask("ping")
            elapsed = perf_counter() - start
            expected += 1
            if answer != expected:
                raise AssertionError(
                    f"restart {i}: answered by incarnation {answer}, expected {expected}"
                )
            if i >= warmup:
                samples.append(elapsed)
    return samples

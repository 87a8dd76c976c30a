"""The actors ``actoros bench cluster`` runs on its nodes, and the messages they take.

Node processes import them by module path (a ``GroupSpec`` names the class), so they live in
the package, not in the bench's ``__main__``. Every measurement is timed inside a node, on the
node's loop, by an actor on the head (``Prober``, ``Spreader``): the bench's own process only
asks for a measurement and reads the seconds back.
"""

from __future__ import annotations

import asyncio
from itertools import count
from time import perf_counter
from typing import Any

import msgspec

from actoros import Actor, Context

# -- what crosses between nodes (the measured traffic) ------------------------------------------


class Note(msgspec.Struct, frozen=True):
    """The message every cross-node measurement carries: a small typed agent message."""

    seq: int
    text: str


class Count(msgspec.Struct, tag=True, frozen=True):
    """Ask a ``Counter`` how many messages it has received."""


class Task(msgspec.Struct, tag=True, frozen=True):
    """One unit of the CPU-bound workload: ``rounds`` iterations of ``cpu_job``."""

    seq: int
    rounds: int


class Done(msgspec.Struct, frozen=True):
    """A ``Task``'s answer: its checksum, and the node that computed it."""

    value: int
    node: str


NOTE_TEXT = "a small agent message of sixty-four characters, the usual kind.."


def cpu_job(seq: int, rounds: int) -> int:
    """A fixed pure-Python CPU job (an LCG walk): the same work for every ``seq``, a result
    that depends on it, so that a worker cannot skip it."""
    x = seq
    for i in range(rounds):
        x = (x * 1_103_515_245 + i) & 0x7FFF_FFFF
    return x


class Echo(Actor):
    """Answers every message with the message itself."""

    def receive(self, message: Any, ctx: Context) -> Any:
        return message


class Counter(Actor):
    """Counts what it is told; ``Count()`` answers the total so far."""

    def __init__(self) -> None:
        self.seen = 0

    def receive(self, message: Any, ctx: Context) -> Any:
        if isinstance(message, Count):
            return self.seen
        self.seen += 1
        return None


class Worker(Actor):
    """Runs ``Task``s: the CPU job, on its node's one loop."""

    def receive(self, message: Any, ctx: Context) -> Any:
        match message:
            case Task(seq, rounds):
                return Done(cpu_job(seq, rounds), ctx.system.name)
        raise TypeError(f"a worker takes Task, not {type(message).__name__}")


# -- what the bench asks the head's actors (through the driver's ``Cluster.ask``) ----------------


class AskRate(msgspec.Struct, tag=True, frozen=True):
    """``n`` sequential awaited asks of a ``Note`` to ``path``: the seconds they took."""

    path: str
    n: int


class TellRate(msgspec.Struct, tag=True, frozen=True):
    """``n`` tells of a ``Note`` to the ``Counter`` at ``path`` (yielding to the loop every
    ``burst``), then one ask until it has them all: the seconds that took."""

    path: str
    n: int
    burst: int


class RayPing(msgspec.Struct, tag=True, frozen=True):
    """``n`` sequential awaited ``ping()`` calls to the Ray actor of ``node``'s process."""

    node: str
    n: int


class RayCall(msgspec.Struct, tag=True, frozen=True):
    """``n`` sequential awaited ``tell(path, Note)`` calls to the Ray actor of ``node``'s
    process: Ray carries the message as an argument, the node posts it to ``path``."""

    node: str
    path: str
    n: int


class LoopName(msgspec.Struct, tag=True, frozen=True):
    """The node's event loop: ``uvloop`` or ``asyncio``."""


Probe = AskRate | TellRate | RayPing | RayCall | LoopName


class Prober(Actor):
    """Times cross-node traffic from inside its node (see the request types above)."""

    def _ref(self, ctx: Context, path: str) -> Any:
        ref = ctx.system.lookup(path)
        if ref is None:
            raise LookupError(f"no actor at {path} on any node")
        return ref

    @staticmethod
    def _handle(ctx: Context, node: str) -> Any:
        """The Ray actor handle of ``node``'s process, as this node's link holds it."""
        runtime = ctx.system._resolver.__self__  # type: ignore[union-attr]
        return runtime.links[node].handle

    async def receive(self, message: Probe, ctx: Context) -> Any:
        match message:
            case AskRate(path, n):
                ref = self._ref(ctx, path)
                start = perf_counter()
                for i in range(n):
                    await ref.ask(Note(i, NOTE_TEXT))
                return perf_counter() - start
            case TellRate(path, n, burst):
                ref = self._ref(ctx, path)
                before = await ref.ask(Count())
                start = perf_counter()
                for i in range(n):
                    ref.tell(Note(i, NOTE_TEXT))
                    if i % burst == burst - 1:
                        await asyncio.sleep(0)  # a producer that yields, as actors do
                seen = await ref.ask(Count(), timeout=60.0)
                seconds = perf_counter() - start
                if seen - before != n:
                    raise RuntimeError(f"{path} got {seen - before} of {n} tells")
                return seconds
            case RayPing(node, n):
                ping = self._handle(ctx, node).ping
                start = perf_counter()
                for _ in range(n):
                    await ping.remote()
                return perf_counter() - start
            case RayCall(node, path, n):
                tell = self._handle(ctx, node).tell
                start = perf_counter()
                for i in range(n):
                    if not await tell.remote(path, Note(i, NOTE_TEXT)):
                        raise LookupError(f"no actor at {path} on node {node}")
                return perf_counter() - start
            case LoopName():
                return ctx.system.loop
        raise TypeError(f"a prober takes no {type(message).__name__}")


class Spread(msgspec.Struct, tag=True, frozen=True):
    """Run ``tasks`` ``Task``s over the workers at ``workers``, ``window`` in flight per worker
    (each worker takes its next task as soon as it answers one)."""

    workers: list[str]
    tasks: int
    rounds: int
    window: int = 2


class Spreaded(msgspec.Struct, frozen=True):
    """What a ``Spread`` took: its seconds, the tasks per node, and the checksum."""

    seconds: float
    per_node: dict[str, int]
    checksum: int


class JobTime(msgspec.Struct, tag=True, frozen=True):
    """The seconds of one ``cpu_job`` of ``rounds`` on this node, median of ``n``."""

    rounds: int
    n: int


class Spreader(Actor):
    """The CPU workload's driver: hands tasks to workers on any node and waits for them."""

    async def receive(self, message: Spread | JobTime, ctx: Context) -> Any:
        match message:
            case Spread(workers, tasks, rounds, window):
                return await self._spread(ctx, workers, tasks, rounds, window)
            case JobTime(rounds, n):
                times = []
                for i in range(n):
                    start = perf_counter()
                    cpu_job(i, rounds)
                    times.append(perf_counter() - start)
                return sorted(times)[n // 2]
        raise TypeError(f"a spreader takes no {type(message).__name__}")

    async def _spread(
        self, ctx: Context, workers: list[str], tasks: int, rounds: int, window: int
    ) -> Spreaded:
        refs = []
        for path in workers:
            ref = ctx.system.lookup(path)
            if ref is None:
                raise LookupError(f"no worker at {path} on any node")
            refs.append(ref)
        seqs = count()
        per_node: dict[str, int] = {}
        checksum = 0

        async def lane(ref: Any) -> None:
            nonlocal checksum
            while (seq := next(seqs)) < tasks:
                done: Done = await ref.ask(Task(seq, rounds), timeout=120.0)
                per_node[done.node] = per_node.get(done.node, 0) + 1
                checksum ^= done.value

        start = perf_counter()
        await asyncio.gather(*(lane(ref) for ref in refs for _ in range(window)))
        return Spreaded(perf_counter() - start, per_node, checksum)

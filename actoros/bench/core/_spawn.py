"""Spawn rate and memory per idle actor, measured in a fresh process.

``python -m actoros.bench.core._spawn N --result FILE`` spawns ``N`` trivial actors one after
another (``await system.spawn(Idle)``, as users do), and measures the resident set size
(RSS) before and after, with a garbage collection before each reading. Bytes per idle actor
= RSS delta / N: everything an idle actor costs (cell, ref, instance, name, registry entry),
as the operating system sees it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
from time import perf_counter
from typing import Any

import msgspec
import psutil

from actoros import Actor, ActorSystem, Context, run
from actoros.logging import configure

from ._subprocess import run_module, write_result


class SpawnSample(msgspec.Struct, frozen=True):
    actors: int
    spawn_seconds: float
    spawn_per_s: float
    rss_before: int
    rss_after: int
    bytes_per_actor: float
    shutdown_seconds: float


class Idle(Actor):
    """Never receives anything in this benchmark."""

    def receive(self, message: Any, ctx: Context) -> Any:
        return message


async def _measure(n: int) -> SpawnSample:
    process = psutil.Process()
    async with ActorSystem("bench-spawn") as system:
        # first-use costs (imports, caches) out of the way before the first reading
        warm = await system.spawn(Idle, name="warm-up")
        await warm.stop()
        await asyncio.sleep(0)
        gc.collect()
        before = process.memory_info().rss
        spawn = system.spawn
        start = perf_counter()
        for _ in range(n):
            await spawn(Idle)
        seconds = perf_counter() - start
        gc.collect()
        after = process.memory_info().rss
        stop_start = perf_counter()
    shutdown = perf_counter() - stop_start
    return SpawnSample(
        actors=n,
        spawn_seconds=seconds,
        spawn_per_s=n / seconds,
        rss_before=before,
        rss_after=after,
        bytes_per_actor=(after - before) / n,
        shutdown_seconds=shutdown,
    )


def measure_in_subprocess(n: int, timeout: float) -> SpawnSample:
    sample: SpawnSample = run_module("actoros.bench.core._spawn", [str(n)], timeout, SpawnSample)
    return sample


def _main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("actors", type=int)
    parser.add_argument("--result", required=True)
    args = parser.parse_args()
    # a fresh process: configure logging as the CLI does, quiet (ERROR) — the log calls run,
    # cached as in a user's program
    configure(level="error")
    sample = run(_measure(args.actors))
    write_result(args.result, sample)


if __name__ == "__main__":
    _main()

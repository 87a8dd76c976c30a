"""``actoros bench cluster``: actoros nodes on a local Ray cluster, side by side with Ray.

One local Ray cluster (``_ray``: two Ray nodes of one CPU each) and one actoros cluster on it
for the whole run, three node processes:

- ``a``, the head (1 CPU): a ``Prober`` and a ``Spreader`` (``_actors``), and workers;
- ``b`` (1 CPU): an ``Echo``, a ``Counter``, and workers;
- ``c`` (no Ray CPU: only the worker-node layouts use it): workers.

Three measurements, each timed inside node ``a`` (the bench's process only asks for one and
reads the seconds back):

1. **Transport**: sequential awaited asks of a small Struct from ``a`` to ``b``'s ``Echo``;
   tells to ``b``'s ``Counter`` (yielding every ``tell_burst``) until one ask confirms it has
   them all; and, between the same two processes, Ray's own awaited actor calls: ``b``'s
   ``ping()`` (no argument) and ``b``'s ``tell(path, message)`` (the same message as an
   argument, posted to the ``Echo``), through the Ray handle ``a``'s link holds.
2. **CPU scaling**: ``tasks`` pure-Python CPU jobs spread by the ``Spreader`` on ``a`` over
   the workers of each layout in ``result.LAYOUTS`` (``window`` tasks in flight per worker,
   each worker taking its next task when it answers one): one node, two nodes, and, with the
   driver alone on ``a``, one and two worker nodes.
3. **Node loss**: SIGKILL of ``b``'s process, then asks to its ``/echo`` from this process
   every ``POLL`` seconds until one is answered (by the new process the head's keeper starts).

Each repeat runs the measurements of parts 1 and 2 in alternating order, so a ratio compares
two runs made moments apart in the same processes; values are medians over repeats, ratios
medians of per-repeat ratios. Writes ``cluster.json`` (a ``ClusterResult``), ``cluster.md``
and ``cluster.png`` to ``out``, and the table to stdout. ``ACTOROS_BENCH_TINY=1`` (or
``tiny=True``) shrinks every count for a smoke test.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
from pathlib import Path
from time import perf_counter
from typing import Any

from actoros import run

from .._common import (
    check_repeats,
    is_tiny,
    judge,
    progress,
    run_header,
    running,
    uvloop_note,
)
from . import _actors as actors
from ._ray import local_ray, ray_version
from .report import chart, markdown
from .result import (
    LAYOUTS,
    TARGETS,
    ClusterResult,
    Kill,
    Sizes,
    medians,
    ratios,
    recovery_metrics,
)

log = progress

FULL = Sizes(asks=3_000, tells=100_000, warmup=300, tasks=600, rounds=60_000, kills=7)
QUICK = Sizes(asks=400, tells=20_000, warmup=50, tasks=120, rounds=60_000, kills=3)
TINY = Sizes(asks=50, tells=2_000, warmup=10, tasks=24, rounds=20_000, kills=2)
DEFAULT_REPEATS = 3
QUICK_REPEATS = 1
HEARTBEAT = 1.0  # the cluster's default
POLL = 0.01  # seconds between asks to a killed node's group
SETTLE = 1.0  # seconds after a node is back before the next kill (its keeper finishes)
JOB_SAMPLES = 21  # CPU jobs timed alone on the head, per repeat
ASK_TIMEOUT = 300.0  # seconds for one measurement (the driver's ask to the head)
ROUTER_THROUGHPUT = 1
"""Node a's ``throughput``: it routes the work and runs CPU-bound workers too, so each of its
actors hands the loop back after every message and its links run between jobs (64, the
default, made a's links wait for up to 64 jobs: node b ran 17-20% of the tasks, not half)."""


def workers(node: str, sizes: Sizes) -> tuple[str, ...]:
    """The worker groups of ``node``: as many as a one-node layout uses."""
    return tuple(f"{node}{i}" for i in range(2 * sizes.workers_per_node))


def layout_paths(layout: str, sizes: Sizes) -> list[str]:
    """The workers a layout spreads its tasks over: the same number in every layout."""
    nodes = LAYOUTS[layout][0]
    share = 2 * sizes.workers_per_node // len(nodes)
    return [f"/{name}" for node in nodes for name in workers(node, sizes)[:share]]


def node_specs(sizes: Sizes) -> list[Any]:
    from actoros.cluster import GroupSpec, NodeSpec

    def pool(node: str) -> tuple[Any, ...]:
        return tuple(GroupSpec(name, actors.Worker) for name in workers(node, sizes))

    # Ray's resources only place the processes; all of them share this machine's cores
    return [
        NodeSpec(
            "a",
            (GroupSpec("probe", actors.Prober), GroupSpec("spread", actors.Spreader), *pool("a")),
            {"CPU": 1.0},
            ROUTER_THROUGHPUT,
        ),
        NodeSpec(
            "b",
            (GroupSpec("echo", actors.Echo), GroupSpec("counter", actors.Counter), *pool("b")),
            {"CPU": 1.0},
        ),
        NodeSpec("c", pool("c"), {"CPU": 0.0}),
    ]


class _Bench:
    """One run: the cluster it measures, and what it measured."""

    def __init__(self, cluster: Any, sizes: Sizes) -> None:
        self.cluster = cluster
        self.sizes = sizes
        self.raw: dict[str, list[float]] = {}
        self.checksums: set[int] = set()
        self.kills: list[Kill] = []

    async def ask(self, path: str, message: Any) -> Any:
        return await self.cluster.ask(path, message, timeout=ASK_TIMEOUT)

    def add(self, key: str, value: float) -> None:
        self.raw.setdefault(key, []).append(value)

    # -- 1. transport ---------------------------------------------------------------------------

    def _transport(self, n: int, tells: int) -> list[tuple[str, Any, int]]:
        burst = self.sizes.tell_burst
        return [
            ("ask_rt_per_s", actors.AskRate("/echo", n), n),
            ("ray_call_rt_per_s", actors.RayCall("b", "/echo", n), n),
            ("ray_ping_rt_per_s", actors.RayPing("b", n), n),
            ("tell_msg_per_s", actors.TellRate("/counter", tells, burst), tells),
        ]

    async def warm_up(self) -> None:
        """First-use costs (imports, decoders, Ray's connections) out of the timed runs."""
        warm = self.sizes.warmup
        for _, message, _ in self._transport(warm, 10 * warm):
            await self.ask("/probe", message)
        for layout in LAYOUTS:
            paths = layout_paths(layout, self.sizes)
            spread = actors.Spread(paths, len(paths), self.sizes.rounds, self.sizes.window)
            await self.ask("/spread", spread)

    async def transport(self, repeat: int) -> None:
        steps = self._transport(self.sizes.asks, self.sizes.tells)
        if repeat % 2:
            steps.reverse()
        for key, message, n in steps:
            seconds = await self.ask("/probe", message)
            self.add(key, n / seconds)

    # -- 2. CPU scaling -------------------------------------------------------------------------

    async def scaling(self, repeat: int) -> None:
        sizes = self.sizes
        seconds = await self.ask("/spread", actors.JobTime(sizes.rounds, JOB_SAMPLES))
        self.add("task_ms", seconds * 1e3)
        pids = await self.cluster.pids()
        layouts = list(LAYOUTS) if repeat % 2 == 0 else list(reversed(LAYOUTS))
        for layout in layouts:
            paths = layout_paths(layout, sizes)
            spread = actors.Spread(paths, sizes.tasks, sizes.rounds, sizes.window)
            before, start = cpu_seconds(pids), perf_counter()
            done: actors.Spreaded = await self.ask("/spread", spread)
            wall = perf_counter() - start
            for who, used in cores(before, cpu_seconds(pids), wall).items():
                self.add(f"{layout}_cores_{who}", used)
            self.checksums.add(done.checksum)
            self.add(f"{layout}_tasks_per_s", sizes.tasks / done.seconds)
            if layout == "two_nodes":
                self.add("two_nodes_share_b", done.per_node.get("b", 0) / sizes.tasks)

    # -- 3. node loss ---------------------------------------------------------------------------

    async def kill(self) -> Kill:
        """SIGKILL node b's process; poll its ``/echo`` until a new process answers."""
        before = (await self.cluster.pids())["b"]
        start = perf_counter()
        os.kill(before, signal.SIGKILL)
        failed, recovered = 0, None
        while perf_counter() - start < self.sizes.recovery_limit:
            try:
                if await self.cluster.ask("/echo", "back?", timeout=1.0) == "back?":
                    recovered = perf_counter() - start
                    break
            except Exception:  # lost, not placed yet, or the new process not started
                failed += 1
            await asyncio.sleep(POLL)
        after = (await self.cluster.pids()).get("b")
        return Kill(recovery_s=recovered, failed_polls=failed, new_pid=after != before)

    async def node_loss(self, notes: list[str]) -> None:
        for k in range(self.sizes.kills):
            kill = await self.kill()
            self.kills.append(kill)
            log.info("bench.kill", kill=k + 1, of=self.sizes.kills, **_rounded(kill))
            if kill.recovery_s is None:
                notes.append(
                    f"kill {k + 1}: node b's /echo did not answer within "
                    f"{self.sizes.recovery_limit:g} s; no further kills"
                )
                return
            await asyncio.sleep(SETTLE)


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """CPU-seconds so far (user + system) of each node's process, and of the whole machine
    (``machine``: every CPU's time neither idle nor waiting for I/O)."""
    import psutil

    used = {}
    for node, pid in pids.items():
        try:
            times = psutil.Process(pid).cpu_times()
            used[node] = times.user + times.system
        except psutil.Error:  # gone: no share of this run
            used[node] = math.nan
    total = psutil.cpu_times()
    used["machine"] = sum(total) - total.idle - getattr(total, "iowait", 0.0)
    return used


def cores(before: dict[str, float], after: dict[str, float], wall: float) -> dict[str, float]:
    """Cores in use over ``wall`` seconds: per node, and ``other`` (the rest of the machine:
    Ray's own processes, the bench's, and whatever else runs)."""
    used = {who: (after[who] - before[who]) / wall for who in before}
    machine = used.pop("machine")
    # the machine's counters tick every 10 ms: a few hundredths below zero is none
    used["other"] = max(0.0, machine - sum(v for v in used.values() if not math.isnan(v)))
    return used


def _rounded(kill: Kill) -> dict[str, Any]:
    seconds = None if kill.recovery_s is None else round(kill.recovery_s, 3)
    return {"recovery_s": seconds, "failed_polls": kill.failed_polls, "new_pid": kill.new_pid}


async def _measure(sizes: Sizes, repeats: int, notes: list[str]) -> tuple[_Bench, str]:
    from actoros.cluster import Cluster

    nodes = node_specs(sizes)
    started = perf_counter()
    async with Cluster(
        nodes, heartbeat=HEARTBEAT, max_restarts=sizes.kills + 3, within=600.0
    ) as cluster:
        log.info("bench.cluster_up", seconds=round(perf_counter() - started, 1))
        bench = _Bench(cluster, sizes)
        loop = await bench.ask("/probe", actors.LoopName())
        await bench.warm_up()
        for r in range(repeats):
            await bench.transport(r)
            await bench.scaling(r)
            raw = bench.raw
            log.info(
                "bench.repeat",
                repeat=r + 1,
                of=repeats,
                ask_rt_per_s=round(raw["ask_rt_per_s"][-1]),
                ray_call_rt_per_s=round(raw["ray_call_rt_per_s"][-1]),
                tell_msg_per_s=round(raw["tell_msg_per_s"][-1]),
                one_node=round(raw["one_node_tasks_per_s"][-1], 1),
                two_nodes=round(raw["two_nodes_tasks_per_s"][-1], 1),
            )
        await bench.node_loss(notes)
    return bench, loop


def _scaling_notes(metrics: dict[str, float]) -> list[str]:
    """What the CPU-scaling numbers say about the head, from the numbers themselves."""
    share = metrics.get("two_nodes_share_b", math.nan)
    if math.isnan(share) or share >= 0.4:
        return []
    return [
        f"in the two-node layout node b ran {share:.0%} of the tasks (half would be even): node "
        f"a's one loop runs its own workers' jobs ({metrics.get('task_ms', math.nan):.1f} ms "
        "each, during which nothing else on a runs) and also carries every task to b and every "
        "answer back, so b's workers wait on a between jobs, however soon a's actors hand its "
        "loop back (`throughput`). With the driver alone on a, two "
        f"worker nodes made {metrics.get('workers_two_vs_one', math.nan):.2f}× one "
        "(`workers_two_vs_one`): keep CPU-bound actors off the node that routes the work"
    ]


def _method_notes(sizes: Sizes, cpus: int) -> list[str]:
    return [
        f"transport: {sizes.asks:,} sequential awaited asks and {sizes.asks:,} of each Ray call "
        f"per repeat, {sizes.tells:,} tells (a yield to the loop every {sizes.tell_burst:,}) "
        "then one ask for the count; the message is a small msgspec Struct (an int and 64 "
        "characters); everything timed inside node a, on its loop. Ray's calls go through the "
        "handle of b's process that a's link itself uses (`await handle.ping.remote()`, "
        "`await handle.tell.remote(path, message)`, which posts the message to b's Echo and "
        "returns True)",
        f"CPU scaling: {sizes.tasks} tasks of {sizes.rounds:,} iterations of a pure-Python LCG "
        f"walk per layout and repeat, {2 * sizes.workers_per_node} workers in every layout, "
        f"{sizes.window} tasks in flight per worker, the same tasks (checksum) in every layout; "
        f"node a (the driver, and workers in the two-node layout) runs with throughput "
        f"{ROUTER_THROUGHPUT} (`cluster.nodes[].throughput`), b and c with the default 64",
        f"node loss: {sizes.kills} SIGKILLs of node b's process (pid from `Cluster.pids()`); "
        f"recovery is the time from the kill to the first ask to b's /echo that is answered, "
        f"asked from the bench's process through the head every {POLL * 1e3:.0f} ms "
        f"(heartbeat {HEARTBEAT:g} s); {SETTLE:g} s between kills. The polls' own traffic "
        "makes the head notice the loss at once (a call to the dead process fails); a node "
        "nobody talks to is noticed at its link's next heartbeat, up to that much later",
        f"Ray's CPU resources only place the node processes: the three of them, Ray's own "
        f"processes (GCS, two raylets) and the bench's share this machine's {cpus} cores",
    ]


def main(*, quick: bool, out: Path, repeats: int | None = None, tiny: bool | None = None) -> int:
    """Run the cluster benchmark; write ``cluster.json``, ``cluster.md`` and ``cluster.png``.

    ``quick``: small counts and one repeat (well under a minute). ``repeats``: runs per
    measurement (default 3; quick 1); reported values are medians. ``tiny``: smoke-test sizes
    (default: the ``ACTOROS_BENCH_TINY`` env variable). Needs Ray (``BenchError`` otherwise).
    """
    tiny = is_tiny(tiny)
    if repeats is None:
        repeats = QUICK_REPEATS if quick or tiny else DEFAULT_REPEATS
    notes: list[str] = []
    check_repeats(repeats, notes)
    sizes = TINY if tiny else QUICK if quick else FULL
    with running("cluster", out, quick=quick, tiny=tiny, repeats=repeats) as session:
        with local_ray():
            bench, loop = run(_measure(sizes, repeats, notes))
        raw = dict(bench.raw)
        raw.update(ratios(raw))
        metrics = medians(raw)
        metrics.update(recovery_metrics(bench.kills))
        if len(bench.checksums) > 1:
            notes.append(f"the layouts' task checksums differ: {sorted(bench.checksums)}")
        notes[:0] = _method_notes(sizes, os.cpu_count() or 0)
        notes += _scaling_notes(metrics)
        notes += uvloop_note(loop)
        notes += session.load_note(
            "every process of the run shares the machine's cores, so its other work moves "
            "absolute numbers and the CPU-scaling ratio most"
        )
        result = ClusterResult(
            **run_header(loop),
            quick=quick,
            repeats=repeats,
            metrics={k: v for k, v in metrics.items() if not math.isnan(v)},
            targets=TARGETS,
            passed=judge(TARGETS, metrics),
            raw=raw,
            notes=notes,
            ray_version=ray_version(),
            sizes=sizes,
            heartbeat=HEARTBEAT,
            kills=bench.kills,
        )
        session.write(result, markdown, chart)
    return 0

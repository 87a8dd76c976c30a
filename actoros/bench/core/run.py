"""``actoros bench core``: the runtime measured side by side with raw asyncio and peers.

One command, one run. Each repeat interleaves a raw asyncio baseline with the matching
actoros workload (alternating which goes first), each in a fresh uvloop event loop, so a
ratio compares two runs made moments apart on the same machine. Spawn rate and memory per
idle actor are measured in fresh processes; peer libraries in their own processes under a
timeout. Reported values are medians over the repeats; ratios are medians of per-repeat
ratios.

Writes ``core.json`` (a ``CoreResult``), ``core.md`` (the table) and ``core.png`` (a bar
chart) to ``out``, and the table to stdout. ``ACTOROS_BENCH_TINY=1`` (or ``tiny=True``)
shrinks every count for a smoke test and skips the peers.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Coroutine
from pathlib import Path
from time import perf_counter
from typing import Any, TypeVar

from actoros import run

from .._common import (
    check_repeats,
    is_tiny,
    judge,
    median,
    percentile,
    progress,
    run_header,
    running,
    uvloop_note,
)
from . import _raw, _workloads
from ._peers import PEERS, PeerResult, measure_peer
from ._spawn import measure_in_subprocess
from ._subprocess import ChildFailed
from .report import chart, markdown
from .result import TARGETS, CoreResult, Sizes

log = progress
T = TypeVar("T")

FULL = Sizes(
    ask=200_000,
    tell=300_000,
    pingpong=200_000,
    fanout_rounds=100,
    restarts=3_000,
    spawn=(100_000, 1_000_000),
    spawn_timeout=180.0,
    peer_n=30_000,
    peer_budget=3.0,
    peer_timeout=120.0,
)
QUICK = Sizes(
    ask=40_000,
    tell=60_000,
    pingpong=40_000,
    fanout_rounds=10,
    restarts=500,
    spawn=(100_000,),
    spawn_timeout=60.0,
    peer_n=5_000,
    peer_budget=1.0,
    peer_timeout=20.0,
)
TINY = Sizes(
    ask=500,
    tell=1_000,
    pingpong=500,
    fanout_actors=100,
    fanout_rounds=3,
    restarts=30,
    spawn=(100_000,),
    spawn_timeout=60.0,
    peers=False,
)
DEFAULT_REPEATS = 3


def _size_key(n: int) -> str:
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}m"
    if n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def _measure(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run one workload in a fresh event loop, after a garbage collection."""
    gc.collect()
    return run(factory())


def _rate(factory: Callable[[], Coroutine[Any, Any, tuple[int, float]]]) -> float:
    ops, seconds = _measure(factory)
    return float(ops / seconds)


def _loop_name() -> str:
    async def probe() -> str:
        return type(asyncio.get_running_loop()).__module__.split(".")[0]

    return "uvloop" if run(probe()) == "uvloop" else "asyncio"


def _in_process(sizes: Sizes, repeats: int, raw: dict[str, list[float]]) -> None:
    """Raw baselines and actoros workloads, interleaved, ``repeats`` times."""
    pairs: list[tuple[str, Callable[[], Any], str, Callable[[], Any]]] = [
        (
            "raw_ask_rt_per_s",
            lambda: _raw.queue_future_ask(sizes.ask),
            "ask_rt_per_s",
            lambda: _workloads.ask_loop(sizes.ask),
        ),
        (
            "raw_oneway_msg_per_s",
            lambda: _raw.bounded_queue_oneway(sizes.tell, sizes.oneway_maxsize),
            "tell_msg_per_s",
            lambda: _workloads.tell_until_processed(sizes.tell),
        ),
    ]
    # warm-up: first-use costs (imports, caches) out of the timed runs
    _measure(lambda: _raw.queue_future_ask(min(sizes.ask, 2_000)))
    _measure(lambda: _workloads.ask_loop(min(sizes.ask, 2_000)))
    _measure(lambda: _workloads.tell_until_processed(min(sizes.tell, 2_000)))
    _measure(lambda: _workloads.restart_latencies(10, warmup=0))
    for r in range(repeats):
        for raw_key, raw_work, key, work in pairs:
            order = [(raw_key, raw_work), (key, work)]
            if r % 2:
                order.reverse()
            for name, factory in order:
                raw.setdefault(name, []).append(_rate(factory))
        raw.setdefault("ask_ratio", []).append(
            raw["ask_rt_per_s"][-1] / raw["raw_ask_rt_per_s"][-1]
        )
        raw.setdefault("tell_ratio", []).append(
            raw["tell_msg_per_s"][-1] / raw["raw_oneway_msg_per_s"][-1]
        )
        raw.setdefault("raw_pingpong_rt_per_s", []).append(
            _rate(lambda: _raw.queue_ping_pong(sizes.pingpong))
        )
        rounds, asks, seconds = _measure(
            lambda: _workloads.fan_out_in(sizes.fanout_actors, sizes.fanout_rounds)
        )
        raw.setdefault("fanout_rounds_per_s", []).append(rounds / seconds)
        raw.setdefault("fanout_msgs_per_s", []).append(asks / seconds)
        gc.collect()
        latencies = run(_workloads.restart_latencies(sizes.restarts))
        raw.setdefault("restart_p50_us", []).append(percentile(latencies, 50) * 1e6)
        raw.setdefault("restart_p99_us", []).append(percentile(latencies, 99) * 1e6)
        log.info(
            "bench.repeat",
            repeat=r + 1,
            of=repeats,
            ask_ratio=round(raw["ask_ratio"][-1], 3),
            tell_ratio=round(raw["tell_ratio"][-1], 3),
            restart_p50_us=round(raw["restart_p50_us"][-1], 1),
        )


def _spawns(sizes: Sizes, repeats: int, raw: dict[str, list[float]], notes: list[str]) -> None:
    for n in sizes.spawn:
        key = _size_key(n)
        for r in range(repeats):
            try:
                sample = measure_in_subprocess(n, sizes.spawn_timeout)
            except ChildFailed as exc:
                notes.append(f"spawn of {n:,} actors failed: {exc}")
                log.error("bench.spawn_failed", actors=n, error=str(exc))
                break
            raw.setdefault(f"spawn_per_s_{key}", []).append(sample.spawn_per_s)
            raw.setdefault(f"spawn_{key}_seconds", []).append(sample.spawn_seconds)
            raw.setdefault(f"bytes_per_idle_actor_{key}", []).append(sample.bytes_per_actor)
            raw.setdefault(f"shutdown_{key}_seconds", []).append(sample.shutdown_seconds)
            log.info(
                "bench.spawn",
                actors=n,
                repeat=r + 1,
                spawn_per_s=round(sample.spawn_per_s),
                bytes_per_actor=round(sample.bytes_per_actor),
            )


def _peers(sizes: Sizes, repeats: int, notes: list[str]) -> dict[str, PeerResult]:
    results: dict[str, PeerResult] = {}
    if not sizes.peers:
        notes.append("peers skipped (tiny run)")
        return results
    for name in PEERS:
        started = perf_counter()
        result = measure_peer(name, sizes.peer_n, repeats, sizes.peer_budget, sizes.peer_timeout)
        results[name] = result
        log.info(
            "bench.peer",
            peer=name,
            status=result.status,
            ask_rt_per_s=round(median(result.ask_rt_per_s)) if result.ask_rt_per_s else None,
            reason=result.reason,
            seconds=round(perf_counter() - started, 1),
        )
        if result.status != "ok":
            notes.append(f"peer {name} {result.status}: {result.reason}")
    return results


def _metrics(raw: dict[str, list[float]], peers: dict[str, PeerResult]) -> dict[str, float]:
    metrics = {key: median(samples) for key, samples in raw.items() if samples}
    # the headline memory figure is the largest population measured
    for key in ("1m", "100k"):
        if f"bytes_per_idle_actor_{key}" in metrics:
            metrics["bytes_per_idle_actor"] = metrics[f"bytes_per_idle_actor_{key}"]
            break
    else:
        sized = sorted(k for k in metrics if k.startswith("bytes_per_idle_actor_"))
        if sized:
            metrics["bytes_per_idle_actor"] = metrics[sized[-1]]
    for name, peer in peers.items():
        if peer.status != "ok":
            continue
        for kind, samples, ours in (
            ("ask", peer.ask_rt_per_s, "ask_rt_per_s"),
            ("tell", peer.tell_msg_per_s, "tell_msg_per_s"),
        ):
            if not samples:
                continue
            value = median(samples)
            unit = "ask_rt_per_s" if kind == "ask" else "tell_msg_per_s"
            metrics[f"peer_{name}_{unit}"] = value
            if ours in metrics and value > 0:
                metrics[f"{kind}_vs_{name}"] = metrics[ours] / value
    return metrics


def main(*, quick: bool, out: Path, repeats: int | None, tiny: bool | None = None) -> int:
    """Run the core benchmark; write ``core.json``, ``core.md`` and ``core.png`` to ``out``.

    ``quick``: fewer messages, 100k spawns only, short peer runs (under 30 s on 2 cores).
    ``repeats``: runs per measurement (default 3); reported values are medians.
    ``tiny``: smoke-test sizes, no peers (default: the ``ACTOROS_BENCH_TINY`` env variable).
    """
    tiny = is_tiny(tiny)
    repeats = DEFAULT_REPEATS if repeats is None else repeats
    notes: list[str] = []
    check_repeats(repeats, notes)
    sizes = TINY if tiny else QUICK if quick else FULL
    raw: dict[str, list[float]] = {}
    loop = _loop_name()
    notes += uvloop_note(loop)
    with running("core", out, quick=quick, tiny=tiny, repeats=repeats, loop=loop) as session:
        _in_process(sizes, repeats, raw)
        _spawns(sizes, repeats, raw, notes)
        peers = _peers(sizes, repeats, notes)
        notes += session.load_note(
            "other work on the machine skews absolute numbers more than ratios"
        )
        if any(p.status == "ok" for p in peers.values()):
            notes.append(
                "peer ratios (ask_vs_*, tell_vs_*) divide the actoros median by the peer's "
                "median, measured in separate processes after the actoros runs, not interleaved; "
                "each peer process is pinned to one CPU (thread-based peers vary several-fold "
                "with thread placement otherwise)"
            )
        metrics = _metrics(raw, peers)
        result = CoreResult(
            **run_header(loop),
            quick=quick,
            repeats=repeats,
            metrics=metrics,
            targets=TARGETS,
            passed=judge(TARGETS, metrics),
            raw=raw,
            sizes=sizes,
            peers=peers,
            notes=notes,
        )
        session.write(result, markdown, chart)
    return 0

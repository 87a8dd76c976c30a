"""The result of ``actoros bench cluster`` as data: what goes into ``cluster.json``.

Metric keys, by part:

- **transport** (node ``a`` to node ``b``, timed inside ``a``): ``ask_rt_per_s``,
  ``tell_msg_per_s``, Ray's own calls between the same two processes ``ray_ping_rt_per_s``
  and ``ray_call_rt_per_s``, and the ratios ``ask_vs_ray_call``, ``ask_vs_ray_ping``,
  ``tell_vs_ray_call``, ``tell_vs_ray_ping``;
- **CPU scaling**: ``<layout>_tasks_per_s`` for each of ``LAYOUTS``, ``two_vs_one`` (two
  nodes over one), ``workers_two_vs_one`` (two worker nodes over one, the head only driving),
  ``two_nodes_share_b`` (the tasks node ``b`` ran in the two-node layout), ``task_ms``, and
  ``<layout>_cores_<node>`` (the cores node ``a``, ``b``, ``c`` and ``other``, the rest of
  the machine, used while the layout ran);
- **node loss**: ``recovery_p50_s``, ``recovery_p90_s``, ``recovery_max_s`` over ``kills``.

Ratios are medians of per-repeat ratios (both sides measured moments apart, in the same
processes); every other value is the median over repeats, except the recovery percentiles,
which are over all kills.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import msgspec

from .._common import RepeatedResult, Target, median, percentile

TARGETS: dict[str, Target] = {
    "ask_vs_ray_call": Target(">=", 1.0),
    "tell_vs_ray_call": Target(">=", 100.0),
    "two_vs_one": Target(">=", 1.7),
}

# transport metric -> the Ray baseline it is divided by, for each ratio
TRANSPORT_RATIOS: dict[str, tuple[str, str]] = {
    "ask_vs_ray_call": ("ask_rt_per_s", "ray_call_rt_per_s"),
    "ask_vs_ray_ping": ("ask_rt_per_s", "ray_ping_rt_per_s"),
    "tell_vs_ray_call": ("tell_msg_per_s", "ray_call_rt_per_s"),
    "tell_vs_ray_ping": ("tell_msg_per_s", "ray_ping_rt_per_s"),
}

# layout -> (the nodes whose workers run the tasks, what it is); the spreader is on ``a``
LAYOUTS: dict[str, tuple[tuple[str, ...], str]] = {
    "one_node": (("a",), "1 node: the driver and every worker in node a"),
    "two_nodes": (("a", "b"), "2 nodes: the driver in a, half the workers in a, half in b"),
    "one_worker_node": (("b",), "the driver alone in a, every worker in b"),
    "two_worker_nodes": (("b", "c"), "the driver alone in a, half the workers in b, half in c"),
}
SCALING_RATIOS: dict[str, tuple[str, str]] = {
    "two_vs_one": ("two_nodes", "one_node"),
    "workers_two_vs_one": ("two_worker_nodes", "one_worker_node"),
}


class Sizes(msgspec.Struct, frozen=True, kw_only=True):
    """How much work each measurement does in one repeat."""

    asks: int  # sequential asks, and each Ray call baseline's sequential calls
    tells: int  # tells before the confirming ask
    tell_burst: int = 1000  # tells between yields to the loop
    warmup: int  # asks and calls of each kind before the timed ones
    tasks: int  # CPU tasks per layout and repeat
    rounds: int  # iterations of the CPU job per task
    workers_per_node: int = 2
    window: int = 4  # tasks in flight per worker
    kills: int  # SIGKILLs of node b's process
    recovery_limit: float = 60.0  # seconds a killed node may take to answer again


class Kill(msgspec.Struct, frozen=True, kw_only=True):
    """One SIGKILL of node ``b``'s process and what followed."""

    recovery_s: float | None  # kill -> its group answered an ask again (None: not in time)
    failed_polls: int  # asks that failed meanwhile (the node lost, its group not placed)
    new_pid: bool  # the group answered from a new process


def ratios(raw: Mapping[str, Sequence[float]]) -> dict[str, list[float]]:
    """The per-repeat ratios of ``TRANSPORT_RATIOS`` and ``SCALING_RATIOS``, pairing the
    repeats in order (each repeat measured both sides)."""
    pairs = dict(TRANSPORT_RATIOS)
    pairs.update(
        {name: (f"{a}_tasks_per_s", f"{b}_tasks_per_s") for name, (a, b) in SCALING_RATIOS.items()}
    )
    out: dict[str, list[float]] = {}
    for name, (ours, theirs) in pairs.items():
        values = [
            a / b if b > 0 else math.nan
            for a, b in zip(raw.get(ours, ()), raw.get(theirs, ()), strict=False)
        ]
        if values:
            out[name] = values
    return out


def recovery_metrics(kills: Sequence[Kill]) -> dict[str, float]:
    """Recovery percentiles over the kills that recovered in time, and the number of kills."""
    times = [k.recovery_s for k in kills if k.recovery_s is not None]
    if not kills:
        return {}
    metrics = {"kills": float(len(kills)), "unrecovered": float(len(kills) - len(times))}
    if times:
        metrics.update(
            recovery_p50_s=percentile(times, 50),
            recovery_p90_s=percentile(times, 90),
            recovery_max_s=max(times),
        )
    return metrics


def medians(raw: Mapping[str, Sequence[float]]) -> dict[str, float]:
    return {name: median(samples) for name, samples in raw.items() if samples}


class ClusterResult(RepeatedResult, frozen=True, kw_only=True):
    """Metrics are medians over repeats (their keys: see the module docstring)."""

    benchmark: str = "cluster"
    ray_version: str
    sizes: Sizes
    heartbeat: float  # seconds between a link's pings (the cluster's ``heartbeat``)
    kills: list[Kill] = []

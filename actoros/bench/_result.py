"""The result of ``actoros bench core`` as data: what goes into ``core.json``."""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import msgspec

from ._peers import PeerResult


class Machine(msgspec.Struct, frozen=True):
    cpu_count: int
    platform: str
    processor: str
    python_implementation: str

    @classmethod
    def current(cls) -> Machine:
        """The machine this process runs on."""
        return cls(
            cpu_count=os.cpu_count() or 0,
            platform=platform.platform(),
            processor=platform.machine(),
            python_implementation=platform.python_implementation(),
        )


class Target(msgspec.Struct, frozen=True):
    """A goal for one metric: ``metric op value``, e.g. ``ask_ratio >= 0.8``."""

    op: Literal[">=", "<="]
    value: float

    def met(self, measured: float | None) -> bool | None:
        """True/False, or None when the metric was not measured in this run."""
        if measured is None or math.isnan(measured):
            return None
        return measured >= self.value if self.op == ">=" else measured <= self.value


TARGETS: dict[str, Target] = {
    "ask_ratio": Target(">=", 0.8),
    "tell_ratio": Target(">=", 0.7),
    "bytes_per_idle_actor": Target("<=", 1024),
    "spawn_1m_seconds": Target("<=", 10.0),
    "restart_p50_us": Target("<=", 100.0),
}


class Sizes(msgspec.Struct, frozen=True, kw_only=True):
    """How much work each workload does in one repeat."""

    ask: int  # sequential asks (raw and actoros)
    tell: int  # one-way messages (raw bounded queue and actoros tell)
    pingpong: int  # raw ping-pong round trips
    oneway_maxsize: int = 1000  # capacity of the raw bounded queue
    fanout_actors: int = 1000
    fanout_rounds: int
    restarts: int  # timed restarts per repeat
    spawn: tuple[int, ...]  # actors per spawn measurement, each in a fresh process
    spawn_timeout: float  # seconds per spawn subprocess
    peers: bool = True
    peer_n: int = 0  # messages per peer ask/tell repeat
    peer_budget: float = 0.0  # seconds at most per peer ask repeat
    peer_timeout: float = 0.0  # seconds per peer subprocess, all repeats


class ResultHeader(msgspec.Struct, frozen=True, kw_only=True):
    """The fields every benchmark's result starts with (``run_header`` fills all but
    ``benchmark``, which each result names, and ``quick``)."""

    benchmark: str
    version: str
    python: str
    loop: str
    machine: Machine
    timestamp: str
    quick: bool


class CoreResult(ResultHeader, frozen=True, kw_only=True):
    benchmark: str = "core"
    repeats: int
    metrics: dict[str, float]  # flat; medians over repeats
    targets: dict[str, Target]
    passed: dict[str, bool | None]  # per target: met, missed, or None (not measured)
    raw: dict[str, list[float]]  # per-repeat samples behind each median
    sizes: Sizes
    peers: dict[str, PeerResult]
    notes: list[str] = []


def run_header(loop: str) -> dict[str, Any]:
    """The fields every result starts with: versions, loop, machine and time of the run."""
    from actoros import __version__

    return {
        "version": __version__,
        "python": platform.python_version(),
        "loop": loop,
        "machine": Machine.current(),
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_results(
    out: Path,
    name: str,
    result: Any,
    markdown: Callable[[Any], str],
    chart: Callable[[Any, Path], None],
) -> str:
    """``<name>.json``, ``<name>.md`` and ``<name>.png`` in ``out``; returns the Markdown."""
    (out / f"{name}.json").write_bytes(msgspec.json.format(msgspec.json.encode(result)) + b"\n")
    table = markdown(result)
    (out / f"{name}.md").write_text(table)
    chart(result, out / f"{name}.png")
    return table


def load_average() -> float | None:
    """The 1-minute load average, or ``None`` where the platform has none."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # not on every platform
        return None


def load_note(load_start: float | None, effect: str) -> list[str]:
    """The note on the machine's load over a run (none without a load average): the load at
    the start and now, then ``effect``, what that load does to this benchmark's numbers."""
    if load_start is None:
        return []
    return [
        f"load average (1 min) {load_start:.2f} at the start, {load_average():.2f} at the end, "
        f"on {os.cpu_count()} CPUs: {effect}"
    ]

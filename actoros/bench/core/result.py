"""The result of ``actoros bench core`` as data: what goes into ``core.json``."""

from __future__ import annotations

import msgspec

from .._common import RepeatedResult, Target
from ._peers import PeerResult

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


class CoreResult(RepeatedResult, frozen=True, kw_only=True):
    """Metrics are medians over repeats, ratios medians of per-repeat ratios."""

    benchmark: str = "core"
    sizes: Sizes
    peers: dict[str, PeerResult]

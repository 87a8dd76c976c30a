"""Supervision: child specs as plain data, and the small decisions a supervisor makes.

Semantics are Erlang/OTP's:

* restart types — ``permanent`` is always restarted, ``transient`` only after an abnormal exit
  (an exception), ``temporary`` never (it is removed from its supervisor instead);
* strategies — on a restart, ``one_for_one`` restarts the exited child alone, ``one_for_all``
  stops every other child (reverse start order) and restarts all of them (start order),
  ``rest_for_one`` does the same for the exited child and those started after it; a
  ``temporary`` sibling stopped this way is not restarted;
* intensity — more than ``max_restarts`` restarts within ``within`` seconds make the supervisor
  stop all its children (reverse start order) and fail with ``RestartIntensityExceeded``,
  escalating to its own parent;
* backoff — optional delay before a restart, doubling per restart in the current window.

A restart replaces the actor instance (fresh state from its factory) but keeps its ref, path
and queued mailbox; the message that failed is dropped (its asker got the exception).
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

import msgspec

from .actor import Actor
from .mailbox import MailboxSpec
from .messages import StartChild

Strategy = Literal["one_for_one", "one_for_all", "rest_for_one"]
RestartType = Literal["permanent", "transient", "temporary"]

STRATEGIES = ("one_for_one", "one_for_all", "rest_for_one")
RESTART_TYPES = ("permanent", "transient", "temporary")

T = TypeVar("T")


def check_restart_type(restart: str) -> None:
    if restart not in RESTART_TYPES:
        raise ValueError(f"restart must be one of {', '.join(RESTART_TYPES)}; got {restart!r}")


class Backoff(msgspec.Struct, frozen=True):
    """Delay before restart number ``n`` of the current window: ``min * 2**(n-1)``, capped at
    ``max`` (``max=0`` means no cap), then spread by ±``jitter`` (a fraction, 0..1)."""

    min: float = 0.0
    max: float = 0.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.min < 0 or self.max < 0:
            raise ValueError("Backoff.min and Backoff.max must be >= 0")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"Backoff.jitter is a fraction in [0, 1], got {self.jitter}")
        if self.max and self.max < self.min:
            raise ValueError(f"Backoff.max ({self.max}) is below Backoff.min ({self.min})")

    def delay(self, n: int, rng: random.Random | None = None) -> float:
        if self.min <= 0.0:
            return 0.0
        cap = self.max if self.max > 0 else math.inf
        base = min(cap, self.min * 2.0 ** max(0, n - 1))
        if self.jitter:
            base *= 1.0 + (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, base)


class ChildSpec(msgspec.Struct, frozen=True):
    """A child of a supervisor: how to build it and how to treat its exits."""

    name: str
    factory: Callable[..., Actor]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = {}
    restart: RestartType = "permanent"
    # seconds to wait for on_stop (and the message in hand), then cancel; None: wait (for a
    # child that is itself a supervisor, as OTP's infinity)
    shutdown: float | None = 5.0
    mailbox: MailboxSpec | None = None

    def __post_init__(self) -> None:
        check_restart_type(self.restart)
        if self.shutdown is not None and self.shutdown < 0:
            raise ValueError(f"ChildSpec {self.name!r}: shutdown must be >= 0 seconds")


class SupervisorSpec(msgspec.Struct, frozen=True):
    """A supervisor: its strategy, its restart intensity, and its children in start order."""

    strategy: Strategy = "one_for_one"
    max_restarts: int = 3
    within: float = 5.0
    children: Sequence[ChildSpec] = ()
    backoff: Backoff = Backoff()

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"strategy must be one of {', '.join(STRATEGIES)}; got {self.strategy!r}"
            )
        if self.max_restarts < 0 or self.within <= 0:
            raise ValueError("SupervisorSpec needs max_restarts >= 0 and within > 0 seconds")
        names = [c.name for c in self.children]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"SupervisorSpec has duplicate child names: {sorted(dup)}")


def should_restart(restart: str, normal: bool) -> bool:
    """OTP's rule: permanent always, transient after an abnormal exit, temporary never."""
    if restart == "permanent":
        return True
    if restart == "transient":
        return not normal
    return False


def restart_group(strategy: str, children: Sequence[T], exited: T) -> list[T]:
    """The children (in start order) that restart together when ``exited`` restarts."""
    if strategy == "one_for_one":
        return [exited]
    if strategy == "one_for_all":
        return list(children)
    index = list(children).index(exited)
    return list(children[index:])


class RestartIntensity:
    """Counts restarts in a sliding window of ``within`` seconds."""

    __slots__ = ("max_restarts", "within", "_stamps")

    def __init__(self, max_restarts: int, within: float) -> None:
        self.max_restarts = max_restarts
        self.within = within
        self._stamps: deque[float] = deque()

    def record(self, now: float) -> bool:
        """Record a restart at ``now``; False when that exceeds the intensity (escalate)."""
        stamps = self._stamps
        stamps.append(now)
        horizon = now - self.within
        while stamps and stamps[0] <= horizon:
            stamps.popleft()
        return len(stamps) <= self.max_restarts

    @property
    def in_window(self) -> int:
        return len(self._stamps)


class Supervisor(Actor):
    """An actor whose only job is its children: started from a ``SupervisorSpec``.

    It accepts ``StartChild(ChildSpec)`` asks to add dynamic children; other messages are
    published as dead letters.
    """

    def __init__(self, spec: SupervisorSpec) -> None:
        self.spec = spec
        self.supervision = spec

    async def on_start(self) -> None:
        for child in self.spec.children:
            await self.ctx.spawn_child(child)

    async def receive(self, message: Any, ctx: Any) -> Any:
        if isinstance(message, StartChild):
            return await ctx.spawn_child(message.spec)
        ctx.system.dead_letter(message, ctx.self, "unhandled by supervisor")
        return None

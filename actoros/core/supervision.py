"""Supervision: child specs as plain data, and the small decisions a supervisor makes.

Semantics are Erlang/OTP's:

* restart types — ``permanent`` is always restarted, ``transient`` only after an abnormal exit
  (an exception), ``temporary`` never (it is removed from its supervisor instead);
* strategies — on a restart, ``one_for_one`` restarts the exited child alone, ``one_for_all``
  stops every other child (reverse start order) and restarts all of them (start order),
  ``rest_for_one`` does the same for the exited child and those started after it; the
  group's ``temporary`` members are stopped for good instead (as OTP deletes them);
* intensity — more than ``max_restarts`` restarts within ``within`` seconds make the supervisor
  stop all its children (reverse start order) and fail with ``RestartIntensityExceeded``,
  escalating to its own parent;
* backoff — optional delay before a restart, doubling per restart in the current window.

``decide`` is that whole rule set as one pure function (OTP ``supervisor.erl``'s ``restart``):
the cell that supervises (``lifecycle.py``) asks it and carries out the answer.

A restart replaces the actor instance (fresh state from its factory) but keeps its ref, path
and queued mailbox; the message that failed is dropped (its asker got the exception).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeAlias, TypeVar

import msgspec

from .actor import Actor
from .mailbox import MailboxSpec
from .messages import StartChild

if TYPE_CHECKING:
    from .context import Context

Strategy = Literal["one_for_one", "one_for_all", "rest_for_one"]
RestartType = Literal["permanent", "transient", "temporary"]
# How an incarnation ended on its own: ``ctx.stop()`` (normal) or an exception (failure). A
# stop from outside is final and never reaches a supervisor's decision.
ExitKind = Literal["normal", "failure"]

STRATEGIES: tuple[Strategy, ...] = ("one_for_one", "one_for_all", "rest_for_one")
RESTART_TYPES: tuple[RestartType, ...] = ("permanent", "transient", "temporary")


def check_restart_type(restart: str) -> RestartType:
    """``restart`` as a ``RestartType``; ``ValueError`` naming the choices if it is none."""
    for kind in RESTART_TYPES:
        if restart == kind:
            return kind
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


def should_restart(restart: RestartType, normal: bool) -> bool:
    """OTP's rule: permanent always, transient after an abnormal exit, temporary never."""
    if restart == "permanent":
        return True
    if restart == "transient":
        return not normal
    return False


def restart_group(strategy: Strategy, children: Iterable[C], exited: C) -> list[C]:
    """The children (in start order) that restart together when ``exited`` restarts."""
    if strategy == "one_for_one":
        return [exited]
    ordered = list(children)
    if strategy == "one_for_all":
        return ordered
    return ordered[ordered.index(exited) :]


class RestartIntensity:
    """A supervisor's restart history: the times of the restarts inside the current window.

    An immutable value: ``add`` returns the next history (OTP's ``add_restart``) and leaves
    this one as it was. A restart exactly ``within`` seconds old has left the window.

    Why not a tuple: a window may hold thousands of restarts (``max_restarts`` is the user's),
    and copying them on every restart made each restart cost O(window). Successive values share
    one append-only list instead, each seeing its own slice ``[first, end)`` of it; ``add`` on
    the newest value appends in place and moves ``first`` past the restarts that left (O(1)
    amortised, as a deque), ``add`` on an older one copies its slice first, and a list mostly
    outside the window is compacted into a new one.
    """

    __slots__ = ("_log", "_first", "_end")

    def __init__(self, stamps: Iterable[float] = ()) -> None:
        self._log = list(stamps)  # oldest first: the clock never goes back
        self._first = 0
        self._end = len(self._log)

    @property
    def stamps(self) -> tuple[float, ...]:
        return tuple(self._log[self._first : self._end])

    @property
    def in_window(self) -> int:
        return self._end - self._first

    def add(self, now: float, within: float) -> RestartIntensity:
        """This history plus a restart at ``now``, without the restarts that left the window."""
        log, first, end = self._log, self._first, self._end
        if first == end:
            log, first, end = [], 0, 0  # empty: share nothing (NO_RESTARTS is everyone's)
        elif end != len(log):
            log, first, end = log[first:end], 0, end - first  # a newer value appended here
        horizon = now - within
        if first < end and log[first] <= horizon:  # the oldest have left the window
            first += 1
            while first < end and log[first] <= horizon:
                first += 1
            if first > 32 and 2 * first > end:
                log, first, end = log[first:end], 0, end - first  # mostly outside: compact
        log.append(now)
        value = _new(RestartIntensity)
        value._log, value._first, value._end = log, first, end + 1
        return value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RestartIntensity):
            return NotImplemented
        return self.stamps == other.stamps

    def __hash__(self) -> int:
        return hash(self.stamps)

    def __repr__(self) -> str:
        return f"RestartIntensity({self.stamps!r})"


_new = object.__new__
NO_RESTARTS = RestartIntensity()


class Supervised(Protocol):
    """What ``decide`` needs to know of a child: how its exits are treated."""

    @property
    def restart_type(self) -> RestartType: ...


C = TypeVar("C", bound=Supervised)


class RemoveChild(msgspec.Struct, frozen=True):
    """Do not restart the child (temporary, or transient after a normal exit): it leaves the
    supervisor for good, and its watchers are told."""


class RestartChildren(msgspec.Struct, Generic[C], frozen=True):
    """Stop ``stop`` one by one in that order (reverse start order), those also in ``remove``
    for good (temporary siblings: they are never restarted); then, after ``delay`` seconds,
    start ``start`` one by one in start order (the exited child among them)."""

    start: tuple[C, ...]
    stop: tuple[C, ...] = ()
    remove: tuple[C, ...] = ()
    delay: float = 0.0


class Escalate(msgspec.Struct, frozen=True):
    """More than ``max_restarts`` restarts within ``within`` seconds (``restarts`` counted in
    the window, this one included): stop every child (reverse start order) and fail with
    ``RestartIntensityExceeded``, so that the supervisor's own parent decides."""

    restarts: int


Decision: TypeAlias = RemoveChild | RestartChildren[C] | Escalate


def decide(
    spec: SupervisorSpec,
    intensity: RestartIntensity,
    children: Iterable[C],
    exited: C,
    exit_kind: ExitKind,
    now: float,
    rng: random.Random | None = None,
) -> tuple[Decision[C], RestartIntensity]:
    """What a supervisor does when ``exited`` (one of ``children``, in start order) ended.

    OTP's ``restart/2`` → ``add_restart/3`` → ``restart/3`` as one function: the restart type
    decides whether there is a restart at all (a removal does not count towards the
    intensity); a restart is added to the history, and one more than ``max_restarts`` in the
    window escalates; else the strategy picks the group and the backoff its delay (the n-th
    restart of the window waits ``backoff.delay(n)``). Returns the decision and the history to
    keep. Pure, but for drawing the backoff's jitter from ``rng``; the caller carries the
    decision out. ``children`` is read only by the group strategies.
    """
    if not should_restart(exited.restart_type, exit_kind == "normal"):
        return RemoveChild(), intensity
    intensity = intensity.add(now, spec.within)
    restarts = intensity.in_window
    if restarts > spec.max_restarts:
        return Escalate(restarts), intensity
    delay = spec.backoff.delay(restarts, rng)
    if spec.strategy == "one_for_one":
        return RestartChildren((exited,), (), (), delay), intensity
    group = restart_group(spec.strategy, children, exited)
    stop = tuple(c for c in reversed(group) if c is not exited)
    remove = tuple(c for c in stop if c.restart_type == "temporary")
    start = tuple(c for c in group if c is exited or c.restart_type != "temporary")
    return RestartChildren(start, stop, remove, delay), intensity


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

    async def receive(self, message: Any, ctx: Context) -> Any:
        if isinstance(message, StartChild):
            return await ctx.spawn_child(message.spec)
        ctx.system.dead_letter(message, ctx.self, "unhandled by supervisor")
        return None

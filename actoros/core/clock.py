"""Clocks: the event loop's, or a manual one that tests advance by hand.

The runtime reads time and sets timers only through a clock: ask timeouts, restart-intensity
windows, backoff delays and shutdown timeouts. ``ManualClock`` makes all of them
deterministic in tests: nothing fires until ``advance`` says so.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from typing import Any, Protocol


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def time(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> TimerHandle: ...


class LoopClock:
    """The running event loop's monotonic clock and timers (the default)."""

    __slots__ = ("time", "call_later")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.time = loop.time
        self.call_later = loop.call_later


class _ManualTimer:
    __slots__ = ("when", "callback", "args", "cancelled")

    def __init__(self, when: float, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A clock that moves only when ``advance`` is called.

    Timers due at or before the new time fire synchronously inside ``advance``, in deadline
    order (ties in the order they were set). Callbacks only post messages or resolve futures,
    so after ``advance`` a test awaits the effect (an ask, a probe) rather than sleeping.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._heap: list[tuple[float, int, _ManualTimer]] = []
        self._seq = itertools.count()

    def time(self) -> float:
        return self._now

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> _ManualTimer:
        timer = _ManualTimer(self._now + max(0.0, delay), callback, args)
        heapq.heappush(self._heap, (timer.when, next(self._seq), timer))
        return timer

    def advance(self, seconds: float) -> int:
        """Move time forward by ``seconds``; return how many timers fired."""
        if seconds < 0:
            raise ValueError(f"cannot move a clock backwards (advance({seconds}))")
        target = self._now + seconds
        fired = 0
        while self._heap and self._heap[0][0] <= target:
            when, _, timer = heapq.heappop(self._heap)
            self._now = max(self._now, when)
            if not timer.cancelled:
                fired += 1
                timer.callback(*timer.args)
        self._now = target
        return fired

    @property
    def pending(self) -> int:
        """Timers set and not yet fired or cancelled."""
        return sum(1 for _, _, t in self._heap if not t.cancelled)

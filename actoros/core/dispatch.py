"""The dispatch loop: the task that drains one actor's lanes (the runtime's hot path).

An actor owns no task while idle. The first message into an empty lane creates one asyncio
Task running ``drain`` (``ActorCell._post``): system messages first (stop, restart, child
exits, ``Terminated``), then user messages one at a time, each replied to when ``receive``
returns (unless the actor deferred the reply). After ``throughput`` messages the task yields
to the loop; when both lanes are empty it lingers for one loop turn (a busy request/reply
partner usually refills them by then) and exits.

Guarantees: one message at a time per actor; per sender, user messages in the order sent;
system messages before user messages; a failing ``receive`` fails the asker with its
exception, then the actor (``lifecycle.crash``: its supervisor decides).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Generator
from typing import TYPE_CHECKING

from .context import current_cell
from .lifecycle import RUNNING, STOPPED, crash, exit_normally, handle_system, on_killed

if TYPE_CHECKING:
    from .cell import ActorCell

_current_task = asyncio.current_task


class _YieldNow:
    """Awaitable that gives the loop one turn (cheaper than ``asyncio.sleep(0)``)."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        yield


_yield_now = _YieldNow()


def _cancelling() -> int:
    task = _current_task()
    return task.cancelling() if task is not None else 0


async def drain(cell: ActorCell) -> None:
    # setup
    throughput = cell._system._throughput
    current_cell.set(cell)  # this task's context only: lets ask() name its sender
    handled = 0  # user messages taken since the last count (added at each yield)
    try:
        # running: up to `throughput` messages per loop turn, system lane first
        while True:
            n = 0
            while n < throughput:
                n += 1
                sysq = cell._sys
                if sysq:
                    try:
                        await handle_system(cell, sysq.popleft())
                    except Exception as exc:
                        await crash(cell, exc, None)
                    if cell._state == STOPPED:
                        return
                    continue
                q = cell._q
                if not q or cell._state != RUNNING:
                    break
                envelope = q.popleft()
                handled += 1
                message, cell.sender, fut = envelope
                cell._current = envelope
                try:
                    result = cell._receive(message, cell)
                    if cell._async:
                        result = await result
                except (Exception, asyncio.CancelledError) as exc:
                    if isinstance(exc, asyncio.CancelledError) and _cancelling():
                        raise  # this task is being cancelled: a kill, not a failure
                    cell._current = None
                    if fut is not None and not fut.done():
                        fut.set_exception(exc)
                    await crash(cell, exc, message)
                    continue
                if fut is not None and cell._current is envelope:  # else: deferred
                    if fut.done():
                        cell._late_reply(message, result)
                    else:
                        fut.set_result(result)
                cell._current = None
                if cell._exit_requested:
                    await exit_normally(cell)
            cell._processed += handled
            handled = 0
            await _yield_now
            if not (cell._sys or (cell._q and cell._state == RUNNING)):
                return
    except asyncio.CancelledError:
        on_killed(cell)
        raise
    finally:
        # teardown: the next message starts a new task
        cell._processed += handled
        cell._task = None
        cell.sender = None
        q = cell._q
        if q is not None and not q and q.__class__ is deque:
            cell._q = None  # an idle actor keeps no queue

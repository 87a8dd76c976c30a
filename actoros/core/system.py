"""``ActorSystem``: the kernel's root — registry of actors, root supervisor, clock, events.

Everything an actor system owns belongs to that system (no process-global registry), so any
number of systems can run side by side, e.g. one per test.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import random
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import structlog

from .actor import Actor
from .cell import ActorCell
from .clock import Clock, LoopClock, TimerHandle
from .events import EventStream
from .lifecycle import STOPPED, begin_incarnation, finalize, kill
from .mailbox import MailboxSpec
from .messages import ActorInfo, DeadLetter, _Stop
from .ref import ActorRef, _expire
from .supervision import RestartType, Strategy, Supervisor, SupervisorSpec

log = structlog.get_logger("actoros.system")

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T], *, debug: bool | None = None) -> T:
    """Run ``main`` to completion on a new event loop: uvloop when installed, else asyncio."""
    try:  # uvloop is a hard dependency, but the runtime also runs on plain asyncio
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(main, debug=debug)
    return uvloop.run(main, debug=debug)


def _debug_enabled() -> bool:
    """Whether structlog keeps debug lines (checked once per system, for hot paths)."""
    probe = structlog.get_logger("actoros.core").bind()
    is_enabled_for = getattr(probe, "is_enabled_for", None)
    return bool(is_enabled_for(logging.DEBUG)) if is_enabled_for is not None else True


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


class ActorSystem:
    """Root of an actor tree. Use as ``async with ActorSystem() as system: ...``.

    ``clock``: the clock for ask timeouts, restart windows, backoff and shutdown timeouts
    (default: the running loop's; tests pass ``ManualClock()``). ``max_restarts``/``within``:
    the root supervisor's intensity: top-level actors restarted more often than that fail the
    whole system (``system.failure`` is set and everything stops). ``strategy``: the root's
    restart strategy for the top-level actors (``rest_for_one``: a restarted top-level actor
    restarts every top-level actor started after it, for systems whose later parts hold refs
    to the earlier ones). ``throughput``: messages an
    actor handles before yielding the loop to other actors. ``seed``: for backoff jitter.
    """

    # Bound by start(), on the running loop; nothing reads them before.
    _loop: asyncio.AbstractEventLoop
    _call_later: Callable[..., TimerHandle]
    _time: Callable[[], float]
    _ask_granularity: float

    def __init__(
        self,
        name: str = "actoros",
        *,
        clock: Clock | None = None,
        max_restarts: int = 3,
        within: float = 5.0,
        strategy: Strategy = "one_for_one",
        throughput: int = 64,
        seed: int | None = None,
    ) -> None:
        if throughput < 1:
            raise ValueError("throughput must be >= 1")
        self.name = name
        self.events = EventStream()
        self.failure: BaseException | None = None
        self._clock = clock
        self._root_spec = SupervisorSpec(
            strategy=strategy, max_restarts=max_restarts, within=within
        )
        self._throughput = throughput
        self._rng = random.Random(seed)
        self._names = itertools.count(1)
        self._root: ActorCell | None = None
        self._terminated: asyncio.Future[None] | None = None
        self._dead_letters = 0
        self._debug = True
        self._ask_slots: dict[float, dict[asyncio.Future[Any], tuple[ActorRef, Any, float]]] = {}
        # Set by a cluster node (actoros.cluster): finds a path that is not here on the node
        # that hosts its top-level group.
        self._resolver: Callable[[str], ActorRef | None] | None = None

    # -- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> ActorSystem:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown()

    async def start(self) -> None:
        """Bind to the running loop and start the root supervisor (``async with`` does this)."""
        if self._root is not None:
            return
        if not structlog.is_configured():
            # structlog's own default prints every debug event to stdout; ours is info+ to
            # stderr (pretty on a TTY, JSON lines otherwise)
            from ..logging import configure

            configure()
        self._debug = _debug_enabled()
        loop = asyncio.get_running_loop()
        self._loop = loop
        if self._clock is None:
            self._clock = LoopClock(loop)
        self._call_later = self._clock.call_later
        self._time = self._clock.time
        # Ask timeouts share one timer per 1 ms of deadline on the loop clock (a timer per ask
        # costs more than the rest of an ask); a manual clock gets exact deadlines.
        self._ask_granularity = 0.001 if isinstance(self._clock, LoopClock) else 0.0
        self._terminated = loop.create_future()
        root = ActorCell(
            self, None, "", Supervisor, (self._root_spec,), {}, "permanent", None, None
        )
        self._root = root
        await begin_incarnation(root)
        log.debug("system.started", system=self.name, loop=loop_name(loop))

    @property
    def clock(self) -> Clock:
        if self._clock is None:
            raise RuntimeError("the ActorSystem is not started: use 'async with ActorSystem()'")
        return self._clock

    @property
    def loop(self) -> str:
        """``"uvloop"`` or ``"asyncio"``: the loop this system runs on."""
        return loop_name(self._loop) if self._root is not None else "not started"

    @property
    def is_running(self) -> bool:
        return self._root is not None and self._root._state != STOPPED

    def _started_root(self) -> ActorCell:
        root = self._root
        if root is None:
            raise RuntimeError("the ActorSystem is not started: use 'async with ActorSystem()'")
        return root

    async def shutdown(self, timeout: float = 10.0) -> None:
        """Stop every actor, children before parents, in reverse start order.

        Each actor gets its own ``shutdown`` timeout for ``on_stop``; past ``timeout`` in all,
        whatever still runs is cancelled.
        """
        root = self._root
        if root is None or root._state == STOPPED:
            return
        done = self._loop.create_future()
        root._post_sys(_Stop(True, done, "shutdown"))
        # the overall limit is wall time on the loop, even under a manual clock: a safety net
        try:
            await asyncio.wait_for(asyncio.shield(done), timeout)
        except TimeoutError:
            log.error("system.shutdown_timeout", system=self.name, timeout=timeout)
            tasks = self._all_tasks(root)
            kill(root)
            if tasks:
                await asyncio.wait(tasks, timeout=1.0)
        await asyncio.sleep(0)
        log.debug("system.stopped", system=self.name)

    def _ask_slot(self, timeout: float) -> dict[asyncio.Future[Any], tuple[ActorRef, Any, float]]:
        """The bucket of asks whose deadline falls in the same tick; its timer expires them.

        A deadline is never early, and at most one tick (1 ms) late on the loop clock.
        """
        now = self._time()
        g = self._ask_granularity
        key = math.ceil((now + timeout) / g) if g else now + timeout
        slot = self._ask_slots.get(key)
        if slot is None:
            slot = self._ask_slots[key] = {}
            self._call_later((key * g if g else key) - now, self._expire_asks, key)
        return slot

    def _expire_asks(self, key: float) -> None:
        slot = self._ask_slots.pop(key, None)
        if slot:
            for fut, (ref, message, timeout) in slot.items():
                _expire(fut, ref, message, timeout)

    async def wait_terminated(self) -> None:
        """Wait until the system has stopped (after ``shutdown`` or a root failure)."""
        if self._terminated is not None:
            await asyncio.shield(self._terminated)

    def _root_exited(self, reason: BaseException | None) -> None:
        """The root supervisor failed (its intensity was exceeded): the system fails."""
        root = self._root
        assert root is not None
        if reason is not None:  # the root's own escalation event is already published
            self.failure = reason
            log.critical("system.failed", system=self.name, error=repr(reason))
        finalize(root, "system failed" if reason is not None else "normal")

    def _mark_terminated(self) -> None:
        """The root is finalized, however it ended: ``wait_terminated`` returns."""
        fut = self._terminated
        if fut is not None and not fut.done():
            fut.set_result(None)

    def _all_tasks(self, cell: ActorCell) -> list[asyncio.Task[None]]:
        tasks = [cell._task] if cell._task is not None else []
        for child in (cell._children or {}).values():
            tasks.extend(self._all_tasks(child))
        return tasks

    async def _wait(self, fut: asyncio.Future[Any], timeout: float | None) -> bool:
        """Wait for ``fut`` at most ``timeout`` clock seconds; True if it finished."""
        if fut.done():
            return True
        if timeout is None:
            await asyncio.shield(fut)
            return True
        waiter = self._loop.create_future()

        def finish(result: bool) -> None:
            if not waiter.done():
                waiter.set_result(result)

        def on_done(_: asyncio.Future[Any]) -> None:
            finish(True)

        timer = self._call_later(timeout, finish, False)
        fut.add_done_callback(on_done)
        try:
            finished: bool = await waiter
            return finished
        finally:
            timer.cancel()
            fut.remove_done_callback(on_done)

    # -- spawning and finding ---------------------------------------------------------------

    async def spawn(
        self,
        actor_cls_or_factory: Callable[..., Actor],
        *args: Any,
        name: str | None = None,
        mailbox: MailboxSpec | None = None,
        restart: RestartType = "permanent",
        shutdown: float | None = 5.0,
        **kwargs: Any,
    ) -> ActorRef:
        """Start a top-level actor under the root supervisor; returns after its ``on_start``."""
        root = self._started_root()
        return await root._spawn(
            actor_cls_or_factory, args, kwargs, name, mailbox, restart, shutdown
        )

    async def spawn_supervisor(self, spec: SupervisorSpec, name: str | None = None) -> ActorRef:
        """Start a supervisor with ``spec.children`` (in order) under the root supervisor.

        If a child fails to start, the ones already started are stopped and this raises.
        """
        root = self._started_root()
        return await root._spawn(
            Supervisor,
            (spec,),
            {},
            name or f"supervisor-{next(self._names)}",
            None,
            "permanent",
            None,
        )

    def lookup(self, path_or_name: str) -> ActorRef | None:
        """Find a live actor by path (``"/sup/child"``) or by unique name (``"child"``).

        A bare name matches a top-level actor first, else the only actor with that name
        anywhere; a name used by several actors raises ``LookupError`` listing their paths.
        On a cluster node, a path whose top-level group lives on another node gives a ref to
        it there (``actoros.cluster``); so does the bare name of such a group, when no actor
        here has it. Other bare names are looked up on this node only (what another node's
        groups hold below their top is not known here without asking).
        """
        root = self._root
        if root is None:
            return None
        if path_or_name.startswith("/"):
            cell: ActorCell | None = root
            for part in path_or_name.strip("/").split("/"):
                if not part:
                    continue
                cell = (cell._children or {}).get(part) if cell is not None else None
            if cell is None or cell is root or cell._state == STOPPED:
                resolver = self._resolver
                return resolver(path_or_name) if resolver is not None else None
            return cell.ref
        top = (root._children or {}).get(path_or_name)
        if top is not None:
            return top.ref
        found: list[ActorCell] = []
        stack = list((root._children or {}).values())
        while stack:
            cell = stack.pop()
            if cell._name == path_or_name:
                found.append(cell)
            stack.extend((cell._children or {}).values())
        if len(found) > 1:
            paths = ", ".join(sorted(c.path for c in found))
            raise LookupError(f"several actors are named {path_or_name!r}: {paths}; use a path")
        if found:
            return found[0].ref
        resolver = self._resolver  # a top-level group on another node
        return resolver(f"/{path_or_name}") if resolver is not None else None

    def snapshot(self) -> list[ActorInfo]:
        """Every live actor of the tree, parents before children, siblings in start order.

        Cheap enough to call a few times a second on 100k actors; the root supervisor itself
        is not listed (top-level actors have ``parent=None``).
        """
        root = self._root
        if root is None:
            return []
        infos: list[ActorInfo] = []
        stack: list[tuple[ActorCell, str | None, str]] = [
            (child, None, "/" + name)
            for name, child in reversed(list((root._children or {}).items()))
        ]
        while stack:
            cell, parent, path = stack.pop()
            if cell._state == STOPPED:
                continue
            infos.append(cell.info(parent, path))
            if cell._children:
                stack.extend(
                    (child, path, f"{path}/{name}")
                    for name, child in reversed(list(cell._children.items()))
                )
        return infos

    def _auto_name(self, factory: object) -> str:
        base = getattr(factory, "__name__", "actor").lower()
        return f"{base}-{next(self._names)}"

    # -- dead letters -----------------------------------------------------------------------

    def dead_letter(self, message: Any, recipient: ActorRef | None, reason: str) -> None:
        """Publish a ``DeadLetter`` and log it (the first 10, then every 1000th)."""
        self._dead_letters += 1
        count = self._dead_letters
        if count <= 10 or count % 1000 == 0:
            log.info(
                "dead_letter",
                actor=recipient.path if recipient is not None else None,
                message_type=type(message).__name__,
                reason=reason,
                total=count,
            )
        if self.events._subs:
            self.events.publish(DeadLetter(message, recipient, reason))

    @property
    def dead_letter_count(self) -> int:
        return self._dead_letters

"""``ActorCell``: one actor's runtime record — mailbox, dispatch, lifecycle, and the
supervision of its children.

Dispatch. An actor owns no task while idle. The first message into an empty mailbox creates
one asyncio Task that drains it: system messages first (stop, restart, child exits,
``Terminated``), then user messages one at a time. After ``throughput`` messages the task
yields to the loop; when the mailbox is empty it lingers for one loop turn (a busy
request/reply partner usually refills it by then) and exits.

Lifecycle. An incarnation is one actor instance: it begins with ``on_start`` and ends (stop,
failure, normal exit) with its children stopped in reverse start order and ``on_stop`` run.
Every step of an actor's lifecycle runs in its own task, serialised with its messages, except
the very first ``on_start``, which runs in the spawner's task so that ``spawn`` can return
only once the actor is ready (and raise if it is not).

States: STARTING → RUNNING → ENDED (incarnation over; the parent decides: restart or
finalize) → STOPPED (final: mailbox to dead letters, watchers told, removed from the parent).
"""

from __future__ import annotations

import asyncio
import inspect
from collections import deque
from typing import TYPE_CHECKING, Any

import structlog

from .actor import Actor
from .context import Context, current_cell
from .errors import ActorStopped, MailboxFull, RestartIntensityExceeded
from .mailbox import MailboxSpec, make_mailbox
from .messages import (
    ActorInfo,
    LifecycleEvent,
    Terminated,
    _ChildExited,
    _Restart,
    _RestartGroup,
    _Stop,
)
from .ref import ActorRef
from .supervision import (
    RestartIntensity,
    SupervisorSpec,
    check_restart_type,
    restart_group,
    should_restart,
)

if TYPE_CHECKING:
    from .system import ActorSystem

log = structlog.get_logger("actoros.core")

STARTING, RUNNING, ENDED, STOPPED = 0, 1, 2, 3
_STATE_NAMES = ("starting", "running", "ended", "stopped")
DEFAULT_SUPERVISION = SupervisorSpec()

_current_task = asyncio.current_task
_iscoroutine = inspect.iscoroutine
_base_on_start = Actor.on_start
_base_on_stop = Actor.on_stop
_async_receive: dict[type[Actor], bool] = {}


class _YieldNow:
    """Awaitable that gives the loop one turn (cheaper than ``asyncio.sleep(0)``)."""

    __slots__ = ()

    def __await__(self) -> Any:
        yield


_yield_now = _YieldNow()


def _is_async_receive(cls: type[Actor]) -> bool:
    flag = _async_receive.get(cls)
    if flag is None:
        flag = _async_receive[cls] = inspect.iscoroutinefunction(cls.receive)
    return flag


def _cancelling() -> int:
    task = _current_task()
    return task.cancelling() if task is not None else 0


def _no_on_stop(actor: Actor | None) -> bool:
    return actor is None or type(actor).on_stop is _base_on_stop


def _resolve(fut: asyncio.Future[Any] | None) -> None:
    if fut is not None and not fut.done():
        fut.set_result(None)


def describe(reason: BaseException | str | None) -> str:
    if reason is None:
        return "normal"
    if isinstance(reason, BaseException):
        return f"{type(reason).__name__}: {reason}"
    return reason


class ActorCell(Context):
    __slots__ = (
        "_system", "_parent", "_name", "ref", "_factory", "_args", "_kwargs", "_restart",
        "_shutdown", "_mbspec", "_actor", "_receive", "_async", "_q", "_sys", "_task",
        "_state", "sender", "_children", "_watchers", "_watching", "_intensity",
        "_incarnation", "_started", "_exit_requested", "_current", "_stopping", "_stopped_fut",
        "_exit_reason", "_processed",
    )  # fmt: skip

    def __init__(
        self,
        system: ActorSystem,
        parent: ActorCell | None,
        name: str,
        factory: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        restart: str,
        shutdown: float | None,
        mailbox: MailboxSpec | None,
    ) -> None:
        self._system = system
        self._parent = parent
        self._name = name
        self.ref = ActorRef(self)
        self._factory = factory
        self._args = args
        self._kwargs = kwargs
        self._restart = restart
        self._shutdown = shutdown
        self._mbspec = mailbox if mailbox is not None and not mailbox.is_default else None
        self._actor: Actor | None = None
        self._receive: Any = None
        self._async = False
        self._q: Any = None
        self._sys: deque[Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._state = STARTING
        self.sender: ActorRef | None = None
        self._children: dict[str, ActorCell] | None = None
        self._watchers: set[ActorCell] | None = None
        self._watching: set[ActorCell] | None = None
        self._intensity: RestartIntensity | None = None
        self._incarnation = 0
        self._started = False
        self._exit_requested = False
        self._current: tuple[Any, Any, Any] | None = None
        self._stopping: _Stop | None = None
        self._stopped_fut: asyncio.Future[None] | None = None
        self._exit_reason: str | None = None
        self._processed = 0  # user messages handled, all incarnations (for introspection)

    # -- identity ---------------------------------------------------------------------------

    @property
    def path(self) -> str:
        parts = []
        cell: ActorCell | None = self
        while cell is not None and cell._parent is not None:
            parts.append(cell._name)
            cell = cell._parent
        return "/" + "/".join(reversed(parts))

    @property
    def _dead(self) -> bool:
        return self._state == STOPPED

    def __repr__(self) -> str:
        return f"<ActorCell {self.path} state={self._state}>"

    def info(self, parent_path: str | None, path: str) -> ActorInfo:
        actor = self._actor
        if actor is not None:
            kind = type(actor).__name__
        else:
            kind = getattr(self._factory, "__name__", type(self._factory).__name__)
        q, sysq = self._q, self._sys
        return ActorInfo(
            path=path,
            parent=parent_path,
            name=self._name,
            kind=kind,
            state=_STATE_NAMES[self._state],
            restarts=max(0, self._incarnation - 1),
            mailbox=(len(q) if q is not None else 0) + (len(sysq) if sysq else 0),
            processed=self._processed,
            children=len(self._children) if self._children else 0,
        )

    # -- enqueueing -------------------------------------------------------------------------

    def _post(self, envelope: tuple[Any, Any, Any]) -> None:
        q = self._q
        if q is None:
            if self._state == STOPPED:
                self._undeliverable(envelope, "recipient stopped")
                return
            if self._mbspec is None:
                q = self._q = deque()
            else:
                q = self._q = make_mailbox(self._mbspec, self._dropped, self.path)
        q.append(envelope)
        if self._task is None and self._state != STARTING:
            self._task = self._system._loop.create_task(self._drain())

    def _post_sys(self, message: Any) -> None:
        if self._state == STOPPED:
            self._reject_system(message)
            return
        sysq = self._sys
        if sysq is None:
            sysq = self._sys = deque()
        sysq.append(message)
        if self._task is None and self._state != STARTING:
            self._task = self._system._loop.create_task(self._drain())

    def _schedule(self) -> None:
        if self._task is None and (self._sys or self._q) and self._state != STOPPED:
            self._task = self._system._loop.create_task(self._drain())

    def _undeliverable(self, envelope: tuple[Any, Any, Any], reason: str) -> None:
        message, _, fut = envelope
        if fut is not None and not fut.done():
            fut.set_exception(
                ActorStopped(f"{self.path} stopped before replying to {type(message).__name__}")
            )
        self._system.dead_letter(message, self.ref, reason)

    def _dropped(self, envelope: tuple[Any, Any, Any], reason: str) -> None:
        message, _, fut = envelope
        if fut is not None and not fut.done():
            fut.set_exception(
                MailboxFull(f"{type(message).__name__} to {self.path} was dropped: {reason}")
            )
        self._system.dead_letter(message, self.ref, reason)

    # -- the dispatch loop ------------------------------------------------------------------

    async def _drain(self) -> None:
        throughput = self._system._throughput
        current_cell.set(self)  # this task's context only: lets ask() name its sender
        handled = 0  # user messages taken since the last count (added at each yield)
        try:
            while True:
                n = 0
                while n < throughput:
                    n += 1
                    sysq = self._sys
                    if sysq:
                        message = sysq.popleft()
                        try:
                            await self._on_system(message)
                        except Exception as exc:
                            await self._crash(exc, None)
                        if self._state == STOPPED:
                            return
                        continue
                    q = self._q
                    if not q or self._state != RUNNING:
                        break
                    envelope = q.popleft()
                    handled += 1
                    message, self.sender, fut = envelope
                    self._current = envelope
                    try:
                        result = self._receive(message, self)
                        if self._async:
                            result = await result
                    except (Exception, asyncio.CancelledError) as exc:
                        if isinstance(exc, asyncio.CancelledError) and _cancelling():
                            raise  # this task is being cancelled: a kill, not a failure
                        self._current = None
                        if fut is not None and not fut.done():
                            fut.set_exception(exc)
                        await self._crash(exc, message)
                        continue
                    if fut is not None and self._current is envelope:  # else: deferred
                        if fut.done():
                            self._late_reply(message, result)
                        else:
                            fut.set_result(result)
                    self._current = None
                    if self._exit_requested:
                        await self._exit_normally()
                self._processed += handled
                handled = 0
                await _yield_now
                if not (self._sys or (self._q and self._state == RUNNING)):
                    return
        except asyncio.CancelledError:
            self._on_killed()
            raise
        finally:
            self._processed += handled
            self._task = None
            self.sender = None
            q = self._q
            if q is not None and not q and q.__class__ is deque:
                self._q = None  # an idle actor keeps no queue

    def _late_reply(self, message: Any, result: Any) -> None:
        self._system.dead_letter(
            result, self.ref, f"late reply to {type(message).__name__}: the ask had ended"
        )

    async def _on_system(self, message: Any) -> None:
        match message:
            case _Stop():
                await self._handle_stop(message)
            case _Restart():
                await self._handle_restart(message)
            case _ChildExited():
                await self._handle_child_exit(message)
            case _RestartGroup():
                await self._restart_children(list(message.children))
            case Terminated():
                if self._watching is not None:
                    self._watching.discard(message.ref._cell)
                q = self._q
                if q is None:
                    q = self._q = (
                        deque()
                        if self._mbspec is None
                        else make_mailbox(self._mbspec, self._dropped, self.path)
                    )
                q.appendleft((message, None, None))  # overtakes user messages

    # -- incarnations -----------------------------------------------------------------------

    async def _begin_incarnation(self) -> None:
        start = self._incarnate()
        if start is not None:
            await start
        self._mark_running()

    def _incarnate(self) -> Any:
        """Build the new instance; return its pending ``on_start`` coroutine, if any."""
        self._incarnation += 1
        self._intensity = None  # a fresh incarnation starts with a fresh restart history
        self._state = STARTING
        actor = self._factory(*self._args, **self._kwargs)
        if not isinstance(actor, Actor):
            raise TypeError(
                f"{self.path}: the factory returned {type(actor).__name__}, not an Actor; "
                f"spawn an Actor subclass or a function returning an Actor instance"
            )
        actor.ctx = self
        self._actor = actor
        cls = type(actor)
        self._receive = actor.receive
        self._async = _is_async_receive(cls)
        if cls.on_start is not _base_on_start:
            result = actor.on_start()
            if _iscoroutine(result):
                return result
        return None

    def _mark_running(self) -> None:
        if self._state != STARTING:  # killed while starting
            raise ActorStopped(f"{self.path} was stopped while starting")
        self._started = True
        self._state = RUNNING
        if self._incarnation > 1:
            log.info("actor.restarted", actor=self.path, incarnation=self._incarnation)
            kind: Any = "restarted"
        else:
            if self._system._debug:  # skip building the path when debug lines are dropped
                log.debug("actor.started", actor=self.path)
            kind = "started"
        events = self._system.events
        if events._subs:
            events.publish(LifecycleEvent(self.path, kind, None))

    async def _end_incarnation(self) -> None:
        """Stop the children (reverse start order), then run ``on_stop``."""
        if self._state != STOPPED:
            self._state = ENDED
        if self._children:
            await self._stop_children("parent stopping")
        actor = self._actor
        if self._started:
            self._started = False
            if actor is not None and type(actor).on_stop is not _base_on_stop:
                try:
                    result = actor.on_stop()
                    if _iscoroutine(result):
                        await result
                except Exception as exc:
                    log.error("actor.on_stop_failed", actor=self.path, error=repr(exc))
        self._actor = None
        self._receive = None

    async def _crash(self, exc: BaseException, message: Any) -> None:
        log.warning(
            "actor.failed",
            actor=self.path,
            message_type=type(message).__name__ if message is not None else None,
            error=repr(exc),
        )
        if self._system.events._subs:
            self._system.events.publish(LifecycleEvent(self.path, "failed", describe(exc)))
        self._exit_requested = False
        if self._state in (RUNNING, STARTING):
            await self._end_incarnation()
        self._report_exit(exc)

    async def _exit_normally(self) -> None:
        self._exit_requested = False
        log.debug("actor.exited", actor=self.path)
        await self._end_incarnation()
        self._report_exit(None)

    def _report_exit(self, reason: BaseException | None) -> None:
        parent = self._parent
        if parent is None:
            self._system._root_exited(reason)
        elif self._state != STOPPED:
            parent._post_sys(_ChildExited(self, self._incarnation, reason))

    async def _handle_restart(self, message: _Restart) -> None:
        if self._state != ENDED:
            _resolve(message.done)
            return
        try:
            await self._begin_incarnation()
        except Exception as exc:
            _resolve(message.done)
            await self._crash(exc, None)
            return
        _resolve(message.done)

    # -- stopping ---------------------------------------------------------------------------

    async def _handle_stop(self, message: _Stop) -> None:
        self._stopping = message
        if self._state in (RUNNING, STARTING):
            await self._end_incarnation()
        self._stopping = None
        self._complete_stop(message, message.reason)

    def _complete_stop(self, message: _Stop, reason: str) -> None:
        if message.final:
            self._finalize(reason)
        elif self._state != STOPPED:
            self._state = ENDED
        _resolve(message.done)

    async def _stop_and_wait(self, final: bool, reason: str) -> None:
        """Ask this actor to end (finally or for a restart) and wait, within ``shutdown``."""
        if self._state == STOPPED:
            return
        if (
            self._task is None
            and not self._sys
            and not self._children
            and (not self._started or _no_on_stop(self._actor))
        ):
            # idle, childless, nothing to run: end it here without a task
            self._started = False
            self._actor = None
            self._receive = None
            if final:
                self._finalize(reason)
            else:
                self._state = ENDED
            return
        done = self._system._loop.create_future()
        self._post_sys(_Stop(final, done, reason))
        system = self._system
        if await system._wait(done, self._shutdown):
            return
        log.warning("actor.shutdown_timeout", actor=self.path, timeout=self._shutdown)
        self._kill()
        if not await system._wait(done, self._shutdown):
            # the task swallowed its cancellation: finish the bookkeeping without it
            log.error("actor.kill_ignored", actor=self.path)
            self._on_killed()

    async def _request_stop(self) -> None:
        task = self._task
        if task is not None and task is _current_task():
            self._exit_requested = True  # from inside its own handler: no self-deadlock
            return
        await self._stop_and_wait(True, "stopped")

    async def _stop_children(self, reason: str) -> None:
        children = self._children
        if children:
            for child in reversed(list(children.values())):
                await child._stop_and_wait(True, reason)

    def _kill(self) -> None:
        task = self._task
        if task is not None and task is not _current_task() and not task.done():
            task.cancel()
        else:
            self._on_killed()

    def _on_killed(self) -> None:
        """The task was cancelled (shutdown timeout or loop teardown): end without user code."""
        envelope, self._current = self._current, None
        if envelope is not None and envelope[2] is not None and not envelope[2].done():
            envelope[2].set_exception(ActorStopped(f"{self.path} was killed while replying"))
        if self._children:
            for child in list(self._children.values()):
                child._kill()
        self._started = False
        stopping, self._stopping = self._stopping, None
        if stopping is None and self._sys:
            pending = [m for m in self._sys if isinstance(m, _Stop)]
            if pending and not any(m.final for m in pending):
                for m in pending:
                    self._sys.remove(m)
                stopping = pending[0]
                for m in pending[1:]:
                    _resolve(m.done)
        if stopping is not None:
            self._complete_stop(stopping, "killed")
        elif self._state != STOPPED:
            self._finalize("killed")

    def _finalize(self, reason: str) -> None:
        """Final stop: dead-letter the mailbox, tell watchers, leave the parent."""
        if self._state == STOPPED:
            return
        self._state = STOPPED
        self._exit_reason = reason
        self._actor = None
        self._receive = None
        if self._children:
            for child in list(self._children.values()):
                child._kill()
        q, self._q = self._q, None
        if q:
            for envelope in q.clear() if q.__class__ is not deque else list(q):
                self._undeliverable(envelope, "recipient stopped")
        sysq, self._sys = self._sys, None
        if sysq:
            for message in sysq:
                self._reject_system(message)
        if self._watchers:
            terminated = Terminated(self.ref, reason)
            for watcher in self._watchers:
                if watcher._watching is not None:
                    watcher._watching.discard(self)
                watcher._post_sys(terminated)
            self._watchers = None
        if self._watching:
            for target in self._watching:
                if target._watchers is not None:
                    target._watchers.discard(self)
            self._watching = None
        parent = self._parent
        if parent is not None and parent._children and parent._children.get(self._name) is self:
            del parent._children[self._name]
        fut = self._stopped_fut
        if fut is not None and not fut.done():
            fut.set_result(None)
        if reason in ("normal", "stopped", "shutdown", "parent stopping"):
            if self._system._debug:
                log.debug("actor.stopped", actor=self.path, reason=reason)
        else:
            log.info("actor.stopped", actor=self.path, reason=reason)
        events = self._system.events
        if events._subs:
            events.publish(LifecycleEvent(self.path, "stopped", reason))

    def _reject_system(self, message: Any) -> None:
        """A system message reached a stopped actor."""
        match message:
            case _Stop() | _Restart():
                _resolve(message.done)
            case _ChildExited():
                message.child._finalize(describe(message.reason))
            case _RestartGroup():
                for child in message.children:
                    child._finalize("supervisor stopped")
            case _:
                self._system.dead_letter(message, self.ref, "recipient stopped")

    # -- children and supervision -----------------------------------------------------------

    async def _spawn(
        self,
        factory: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: str | None,
        mailbox: MailboxSpec | None,
        restart: str,
        shutdown: float | None,
    ) -> ActorRef:
        if self._state == STOPPED:
            raise ActorStopped(f"cannot spawn under {self.path}: it has stopped")
        check_restart_type(restart)
        if not callable(factory):
            raise TypeError(f"spawn needs an Actor subclass or a factory, got {factory!r}")
        children = self._children
        if children is None:
            children = self._children = {}
        if name is None:
            name = self._system._auto_name(factory)
        elif not name or "/" in name or not isinstance(name, str):
            raise ValueError(f"invalid actor name {name!r}: use a non-empty name without '/'")
        elif name in children:
            raise ValueError(
                f"an actor named {name!r} already runs under {self.path}; choose another name"
            )
        child = ActorCell(
            self._system, self, name, factory, args, kwargs, restart, shutdown, mailbox
        )
        children[name] = child
        try:
            start = child._incarnate()
            if start is not None:
                await start
            child._mark_running()
        except BaseException:
            await child._abort_start()
            raise
        child._schedule()
        return child.ref

    async def _abort_start(self) -> None:
        if self._children:
            await self._stop_children("parent failed to start")
        self._started = False
        self._finalize("failed to start")

    def _supervision(self) -> SupervisorSpec:
        actor = self._actor
        spec = actor.supervision if actor is not None else None
        return spec if spec is not None else DEFAULT_SUPERVISION

    async def _handle_child_exit(self, message: _ChildExited) -> None:
        child = message.child
        if (
            child._parent is not self
            or child._state != ENDED
            or child._incarnation != message.incarnation
        ):
            return  # stale: already restarted, stopped, or handled as part of a group
        reason = message.reason
        if not should_restart(child._restart, reason is None):
            child._finalize(describe(reason))
            return
        spec = self._supervision()
        intensity = self._intensity
        if intensity is None:
            intensity = self._intensity = RestartIntensity(spec.max_restarts, spec.within)
        if not intensity.record(self._system.clock.time()):
            await self._escalate(child, reason, spec)
            return
        group = restart_group(spec.strategy, list((self._children or {}).values()), child)
        for sibling in reversed(group):
            if sibling is not child and sibling._state in (RUNNING, STARTING):
                final = sibling._restart == "temporary"  # OTP: temporary siblings are not restarted
                await sibling._stop_and_wait(final, f"restart of {child._name}")
        group = [c for c in group if c._state != STOPPED]
        delay = spec.backoff.delay(intensity.in_window, self._system._rng)
        if delay > 0:
            log.info("actor.restart_delayed", actor=child.path, delay=round(delay, 6))
            self._system._call_later(delay, self._post_sys, _RestartGroup(tuple(group)))
            return
        await self._restart_children(group)

    async def _restart_children(self, group: list[ActorCell]) -> None:
        if self._state != RUNNING:
            return
        if len(group) == 1:
            child = group[0]
            if child._parent is self and child._state == ENDED:
                child._post_sys(_Restart(None))
            return
        loop = self._system._loop
        for child in group:  # start order; each waits for the previous one's on_start
            if child._parent is self and child._state == ENDED:
                done = loop.create_future()
                child._post_sys(_Restart(done))
                await done

    async def _escalate(self, child: ActorCell, reason: BaseException | None, spec: Any) -> None:
        text = (
            f"{self.path}: more than {spec.max_restarts} restarts within {spec.within:g} s; "
            f"last exit: {child.path} ({describe(reason)})"
        )
        log.error("supervisor.escalated", actor=self.path, child=child.path, reason=text)
        if self._system.events._subs:
            self._system.events.publish(LifecycleEvent(self.path, "escalated", text))
        await self._stop_children("supervisor escalated")
        raise RestartIntensityExceeded(text)

    # -- watching ---------------------------------------------------------------------------

    def _watch(self, target: ActorCell) -> None:
        if target is self:
            raise ValueError(f"{self.path} cannot watch itself")
        if target._state == STOPPED:
            self._post_sys(Terminated(target.ref, target._exit_reason or "stopped"))
            return
        if target._watchers is None:
            target._watchers = set()
        target._watchers.add(self)
        if self._watching is None:
            self._watching = set()
        self._watching.add(target)

    def _unwatch(self, target: ActorCell) -> None:
        if target._watchers is not None:
            target._watchers.discard(self)
        if self._watching is not None:
            self._watching.discard(target)

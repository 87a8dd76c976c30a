"""An actor's lifecycle: incarnations, stopping, and supervising its children.

Functions of the record (``ActorCell``, ``cell.py``); the dispatch loop (``dispatch.py``)
calls them for the system lane and for failures, the system for its root.

States: STARTING → RUNNING → ENDED (incarnation over; the parent decides: restart or
finalize) → STOPPED (final: mailbox to dead letters, watchers told, removed from the parent).

An incarnation is one actor instance: it begins with ``on_start`` and ends (stop, failure,
normal exit) with its children stopped in reverse start order and ``on_stop`` run. Every step
of an actor's lifecycle runs in its own task, serialised with its messages, except the very
first ``on_start``, which runs in the spawner's task (``ActorCell._spawn``).

Supervision: when a child's incarnation ends on its own, its parent asks
``supervision.decide`` and carries the decision out here (``handle_child_exit``).
"""

from __future__ import annotations

import asyncio
import inspect
from collections import deque
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Final

import structlog

from .actor import Actor
from .errors import ActorStopped, RestartIntensityExceeded
from .messages import (
    LifecycleEvent,
    LifecycleKind,
    SystemMessage,
    Terminated,
    _ChildExited,
    _Restart,
    _RestartGroup,
    _Stop,
)
from .supervision import (
    NO_RESTARTS,
    Escalate,
    RemoveChild,
    RestartChildren,
    SupervisorSpec,
    decide,
)

if TYPE_CHECKING:
    from .cell import ActorCell

log = structlog.get_logger("actoros.core")

STARTING: Final = 0
RUNNING: Final = 1
ENDED: Final = 2
STOPPED: Final = 3
STATE_NAMES: Final = ("starting", "running", "ended", "stopped")
DEFAULT_SUPERVISION: Final = SupervisorSpec()
# Final stops that are routine: logged at debug level only.
_QUIET_REASONS: Final = frozenset(("normal", "stopped", "shutdown", "parent stopping"))

_current_task = asyncio.current_task
_iscoroutine = inspect.iscoroutine
_base_on_start = Actor.on_start
_base_on_stop = Actor.on_stop
_async_receive: dict[type[Actor], bool] = {}


def no_receive(message: Any, ctx: ActorCell) -> Any:
    """The ``receive`` of a cell without an instance (never called: nothing is dispatched)."""
    raise ActorStopped(f"{ctx.path} has no running instance to receive {type(message).__name__}")


def describe(reason: BaseException | str | None) -> str:
    if reason is None:
        return "normal"
    if isinstance(reason, BaseException):
        return f"{type(reason).__name__}: {reason}"
    return reason


def _resolve(fut: asyncio.Future[None] | None) -> None:
    if fut is not None and not fut.done():
        fut.set_result(None)


def _is_async_receive(cls: type[Actor]) -> bool:
    flag = _async_receive.get(cls)
    if flag is None:
        flag = _async_receive[cls] = inspect.iscoroutinefunction(cls.receive)
    return flag


def _no_on_stop(actor: Actor | None) -> bool:
    return actor is None or type(actor).on_stop is _base_on_stop


def _publish(cell: ActorCell, kind: LifecycleKind, reason: str | None) -> None:
    """Publish a lifecycle event (callers check for subscribers first: paths cost to build)."""
    cell._system.events.publish(LifecycleEvent(cell.path, kind, reason))


async def handle_system(cell: ActorCell, message: SystemMessage) -> None:
    """One message of the system lane (the dispatch loop takes them before user messages)."""
    match message:
        case _Stop():
            await handle_stop(cell, message)
        case _Restart():
            await handle_restart(cell, message)
        case _ChildExited():
            await handle_child_exit(cell, message)
        case _RestartGroup():
            await restart_children(cell, list(message.children))
        case Terminated():
            if cell._watching is not None:
                cell._watching.discard(message.ref._cell)
            cell._user_queue().appendleft((message, None, None))  # overtakes user messages


def reject_system(cell: ActorCell, message: SystemMessage) -> None:
    """A system message reached a stopped actor."""
    match message:
        case _Stop() | _Restart():
            _resolve(message.done)
        case _ChildExited():
            finalize(message.child, describe(message.reason))
        case _RestartGroup():
            for child in message.children:
                finalize(child, "supervisor stopped")
        case _:
            cell._system.dead_letter(message, cell.ref, "recipient stopped")


async def begin_incarnation(cell: ActorCell) -> None:
    start = incarnate(cell)
    if start is not None:
        await start
    mark_running(cell)


def incarnate(cell: ActorCell) -> Coroutine[Any, Any, None] | None:
    """Build the new instance; return its pending ``on_start`` coroutine, if any."""
    cell._incarnation += 1
    cell._intensity = NO_RESTARTS  # a fresh incarnation starts with a fresh restart history
    cell._state = STARTING
    actor = cell._factory(*cell._args, **cell._kwargs)
    if not isinstance(actor, Actor):
        raise TypeError(
            f"{cell.path}: the factory returned {type(actor).__name__}, not an Actor; "
            f"spawn an Actor subclass or a function returning an Actor instance"
        )
    actor.ctx = cell
    cell._actor = actor
    cls = type(actor)
    cell._receive = actor.receive
    cell._async = _is_async_receive(cls)
    if cls.on_start is not _base_on_start:
        result = actor.on_start()
        if _iscoroutine(result):
            return result
    return None


def mark_running(cell: ActorCell) -> None:
    if cell._state != STARTING:  # killed while starting
        raise ActorStopped(f"{cell.path} was stopped while starting")
    cell._started = True
    cell._state = RUNNING
    if cell._incarnation > 1:
        log.info("actor.restarted", actor=cell.path, incarnation=cell._incarnation)
        kind: LifecycleKind = "restarted"
    else:
        if cell._system._debug:  # skip building the path when debug lines are dropped
            log.debug("actor.started", actor=cell.path)
        kind = "started"
    if cell._system.events._subs:  # checked here: spawning 100k actors passes by
        _publish(cell, kind, None)


async def end_incarnation(cell: ActorCell) -> None:
    """Stop the children (reverse start order), then run ``on_stop``."""
    if cell._state != STOPPED:
        cell._state = ENDED
    if cell._children:
        await stop_children(cell, "parent stopping")
    actor = cell._actor
    if cell._started:
        cell._started = False
        if actor is not None and type(actor).on_stop is not _base_on_stop:
            try:
                result = actor.on_stop()
                if _iscoroutine(result):
                    await result
            except Exception as exc:
                log.error("actor.on_stop_failed", actor=cell.path, error=repr(exc))
    cell._actor = None
    cell._receive = no_receive


async def crash(cell: ActorCell, exc: BaseException, message: Any) -> None:
    log.warning(
        "actor.failed",
        actor=cell.path,
        message_type=type(message).__name__ if message is not None else None,
        error=repr(exc),
    )
    if cell._system.events._subs:
        _publish(cell, "failed", describe(exc))
    cell._exit_requested = False
    if cell._state in (RUNNING, STARTING):
        await end_incarnation(cell)
    report_exit(cell, exc)


async def exit_normally(cell: ActorCell) -> None:
    cell._exit_requested = False
    log.debug("actor.exited", actor=cell.path)
    await end_incarnation(cell)
    report_exit(cell, None)


def report_exit(cell: ActorCell, reason: BaseException | None) -> None:
    parent = cell._parent
    if parent is None:
        cell._system._root_exited(reason)
    elif cell._state != STOPPED:
        parent._post_sys(_ChildExited(cell, cell._incarnation, reason))


async def handle_restart(cell: ActorCell, message: _Restart) -> None:
    if cell._state != ENDED:
        _resolve(message.done)
        return
    try:
        await begin_incarnation(cell)
    except Exception as exc:
        _resolve(message.done)
        await crash(cell, exc, None)
        return
    _resolve(message.done)


async def handle_stop(cell: ActorCell, message: _Stop) -> None:
    cell._stopping = message
    if cell._state in (RUNNING, STARTING):
        await end_incarnation(cell)
    cell._stopping = None
    _complete_stop(cell, message, message.reason)


def _complete_stop(cell: ActorCell, message: _Stop, reason: str) -> None:
    if message.final:
        finalize(cell, reason)
    elif cell._state != STOPPED:
        cell._state = ENDED
    _resolve(message.done)


async def stop_and_wait(cell: ActorCell, final: bool, reason: str) -> None:
    """Ask the actor to end (finally or for a restart) and wait, within its ``shutdown``."""
    if cell._state == STOPPED:
        return
    if (
        cell._task is None
        and not cell._sys
        and not cell._children
        and (not cell._started or _no_on_stop(cell._actor))
    ):
        # idle, childless, nothing to run: end it here without a task
        cell._started = False
        cell._actor = None
        cell._receive = no_receive
        if final:
            finalize(cell, reason)
        else:
            cell._state = ENDED
        return
    system = cell._system
    done = system._loop.create_future()
    cell._post_sys(_Stop(final, done, reason))
    if await system._wait(done, cell._shutdown):
        return
    log.warning("actor.shutdown_timeout", actor=cell.path, timeout=cell._shutdown)
    kill(cell)
    if not await system._wait(done, cell._shutdown):
        # the task swallowed its cancellation: finish the bookkeeping without it
        log.error("actor.kill_ignored", actor=cell.path)
        on_killed(cell)


async def request_stop(cell: ActorCell) -> None:
    """``ref.stop()``: a final stop, or a normal exit when called from the actor's own task."""
    task = cell._task
    if task is not None and task is _current_task():
        cell._exit_requested = True  # from inside its own handler: no self-deadlock
        return
    await stop_and_wait(cell, True, "stopped")


async def stop_children(cell: ActorCell, reason: str) -> None:
    children = cell._children
    if children:
        for child in reversed(list(children.values())):
            await stop_and_wait(child, True, reason)


def kill(cell: ActorCell) -> None:
    task = cell._task
    if task is not None and task is not _current_task() and not task.done():
        task.cancel()
    else:
        on_killed(cell)


def on_killed(cell: ActorCell) -> None:
    """The task was cancelled (shutdown timeout or loop teardown): end without user code."""
    envelope, cell._current = cell._current, None
    if envelope is not None and envelope[2] is not None and not envelope[2].done():
        envelope[2].set_exception(ActorStopped(f"{cell.path} was killed while replying"))
    if cell._children:
        for child in list(cell._children.values()):
            kill(child)
    cell._started = False
    stopping, cell._stopping = cell._stopping, None
    sysq = cell._sys
    if stopping is None and sysq:
        pending = [m for m in sysq if isinstance(m, _Stop)]
        if pending and not any(m.final for m in pending):
            for m in pending:
                sysq.remove(m)
            stopping = pending[0]
            for m in pending[1:]:
                _resolve(m.done)
    if stopping is not None:
        _complete_stop(cell, stopping, "killed")
    elif cell._state != STOPPED:
        finalize(cell, "killed")


def finalize(cell: ActorCell, reason: str) -> None:
    """Final stop: dead-letter the mailbox, tell watchers, leave the parent."""
    if cell._state == STOPPED:
        return
    cell._state = STOPPED
    cell._exit_reason = reason
    cell._actor = None
    cell._receive = no_receive
    if cell._children:
        for child in list(cell._children.values()):
            kill(child)
    q, cell._q = cell._q, None
    if q:
        for envelope in list(q) if isinstance(q, deque) else q.clear():
            cell._undeliverable(envelope, "recipient stopped")
    sysq, cell._sys = cell._sys, None
    if sysq:
        for message in sysq:
            reject_system(cell, message)
    if cell._watchers:
        terminated = Terminated(cell.ref, reason)
        for watcher in cell._watchers:
            if watcher._watching is not None:
                watcher._watching.discard(cell)
            watcher._post_sys(terminated)
        cell._watchers = None
    if cell._watching:
        for target in cell._watching:
            if target._watchers is not None:
                target._watchers.discard(cell)
        cell._watching = None
    parent = cell._parent
    if parent is None:
        cell._system._mark_terminated()  # the root: shut down, failed or killed
    elif parent._children and parent._children.get(cell._name) is cell:
        del parent._children[cell._name]
    fut = cell._stopped_fut
    if fut is not None and not fut.done():
        fut.set_result(None)
    if reason not in _QUIET_REASONS:
        log.info("actor.stopped", actor=cell.path, reason=reason)
    elif cell._system._debug:
        log.debug("actor.stopped", actor=cell.path, reason=reason)
    if cell._system.events._subs:
        _publish(cell, "stopped", reason)


def supervision_of(cell: ActorCell) -> SupervisorSpec:
    actor = cell._actor
    spec = actor.supervision if actor is not None else None
    return spec if spec is not None else DEFAULT_SUPERVISION


async def handle_child_exit(cell: ActorCell, message: _ChildExited) -> None:
    """Carry out ``decide``'s answer to a child's exit."""
    child = message.child
    if (
        child._parent is not cell
        or child._state != ENDED
        or child._incarnation != message.incarnation
    ):
        return  # stale: already restarted, stopped, or handled as part of a group
    reason = message.reason
    spec = supervision_of(cell)
    decision, cell._intensity = decide(
        spec,
        cell._intensity,
        (cell._children or {}).values(),
        child,
        "normal" if reason is None else "failure",
        cell._system.clock.time(),
        cell._system._rng,
    )
    match decision:
        case RestartChildren(start=start, stop=stop, remove=remove, delay=delay):
            for sibling in stop:
                final = sibling in remove
                if final or sibling._state in (RUNNING, STARTING):
                    await stop_and_wait(sibling, final, f"restart of {child._name}")
            group = [c for c in start if c._state != STOPPED]
            if delay > 0:
                log.info("actor.restart_delayed", actor=child.path, delay=round(delay, 6))
                cell._system._call_later(delay, cell._post_sys, _RestartGroup(tuple(group)))
                return
            await restart_children(cell, group)
        case RemoveChild():
            finalize(child, describe(reason))
        case Escalate():
            await escalate(cell, child, reason, spec)


async def restart_children(cell: ActorCell, group: list[ActorCell]) -> None:
    """Start a fresh incarnation of each child of ``group`` still waiting, in start order."""
    if cell._state != RUNNING:
        return
    if len(group) == 1:
        child = group[0]
        if child._parent is cell and child._state == ENDED:
            child._post_sys(_Restart(None))
        return
    loop = cell._system._loop
    for child in group:  # start order; each waits for the previous one's on_start
        if child._parent is cell and child._state == ENDED:
            done = loop.create_future()
            child._post_sys(_Restart(done))
            await done


async def escalate(
    cell: ActorCell, child: ActorCell, reason: BaseException | None, spec: SupervisorSpec
) -> None:
    text = (
        f"{cell.path}: more than {spec.max_restarts} restarts within {spec.within:g} s; "
        f"last exit: {child.path} ({describe(reason)})"
    )
    log.error("supervisor.escalated", actor=cell.path, child=child.path, reason=text)
    if cell._system.events._subs:
        _publish(cell, "escalated", text)
    await stop_children(cell, "supervisor escalated")
    raise RestartIntensityExceeded(text)


async def abort_start(cell: ActorCell) -> None:
    """The first ``on_start`` failed (or the actor was stopped meanwhile): leave no trace."""
    if cell._children:
        await stop_children(cell, "parent failed to start")
    cell._started = False
    finalize(cell, "failed to start")

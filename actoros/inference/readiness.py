"""Knowing whether an inference actor's engine is up, from its events, without polling.

Both helpers follow the same order, which leaves no gap: subscribe to ``EngineReady`` /
``EngineDown`` first, then ask the actor's current state once (``InferenceStats`` →
``engine_ready``), then let the events tell every change after it. Events are published
synchronously by the actor, so an event that comes while the ask is out is newer than the
ask's reply and wins over it.

- ``wait_engine_ready(actors, path, timeout=...)``: wait until the engine at ``path`` is up
  (``actoros run`` does before its workload, so the workload's timeouts measure answers, not
  the model's load). Ends early when ``stop`` is set or the system stops; the system's
  failure and the timeout (on the system's clock) are ``EngineNotReady``.
- ``EngineReadiness(events)``: a flag per actor path for hot callers (the gateway, per
  raw-model request): answered from what the events said, asked once only while unknown.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from actoros.core import ActorRef, ActorSystem
from actoros.core.events import EventStream

from .actor import InferenceMetrics, InferenceStats
from .events import EngineDown, EngineReady

__all__ = ["EngineNotReady", "EngineReadiness", "wait_engine_ready"]

log = structlog.get_logger("actoros.inference")

STATE_ASK_TIMEOUT = 5.0
"""Seconds the one ask for the current state may take (the actor answers at once unless it is
restarting, and then its ``EngineReady`` says when)."""


class EngineNotReady(RuntimeError):
    """The engine did not start: the system failed meanwhile, or the wait timed out."""


async def ask_engine_ready(ref: ActorRef, timeout: float | None) -> bool:
    """What the inference actor ``ref`` says now: whether its engine is up."""
    metrics = await ref.ask(InferenceStats(), timeout=timeout)
    return isinstance(metrics, InferenceMetrics) and metrics.engine_ready


async def wait_engine_ready(
    actors: ActorSystem,
    path: str,
    *,
    timeout: float,
    stop: asyncio.Event | None = None,
) -> bool:
    """Wait until the engine of the inference actor at ``path`` is up: ``True`` then.
    ``False`` when ``stop`` is set or the system stops before that (nothing to wait for any
    more). Raises ``EngineNotReady`` when the system fails meanwhile, or after ``timeout``
    seconds of the system's clock. The actor may be restarting (or not yet there): its next
    incarnation's ``EngineReady`` ends the wait."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    expired: asyncio.Future[None] = loop.create_future()

    def on_ready(event: EngineReady) -> None:
        if event.path == path and not ready.done():
            ready.set_result(None)

    def expire() -> None:
        if not expired.done():
            expired.set_result(None)

    unsubscribe = actors.events.subscribe(on_ready, EngineReady)
    timer = actors.clock.call_later(timeout, expire)  # armed first: the timeout is the whole wait
    waits: list[asyncio.Future[Any]] = [ready, expired]
    try:
        if stop is not None and stop.is_set():
            return False
        ref = actors.lookup(path)
        if ref is not None:
            try:
                if await ask_engine_ready(ref, min(timeout, STATE_ASK_TIMEOUT)):
                    return True
            except Exception as exc:  # restarting or stopping: the events tell the rest
                log.debug("inference.readiness_ask_failed", actor=path, error=repr(exc))
        if stop is not None:
            waits.append(asyncio.ensure_future(stop.wait()))
        terminated = asyncio.ensure_future(actors.wait_terminated())
        waits.append(terminated)
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if ready.done():
            return True
        if actors.failure is not None:
            raise EngineNotReady(f"the inference engine did not start: {actors.failure}")
        if terminated.done() or (stop is not None and stop.is_set()):
            return False
        raise EngineNotReady(f"the inference engine did not start in {timeout:g} s")
    finally:
        unsubscribe()
        timer.cancel()
        for fut in waits:
            if not fut.done():
                fut.cancel()


class EngineReadiness:
    """Whether the engine behind each inference actor (by path) is up, as the events last
    said. ``await ready(ref)`` answers from that; only for a path no event has spoken of yet
    does it ask the actor (once: its reply then stands until the next event).

    The subscription does not keep this object alive: dropping it (a restarted gateway
    builds a new one) ends the subscription too; ``close()`` ends it at once.
    """

    def __init__(self, events: EventStream) -> None:
        self._ready: dict[str, bool] = {}
        self._unsubscribe = events.subscribe_weakly(self._follow, EngineReady, EngineDown)

    def _follow(self, event: EngineReady | EngineDown) -> None:
        self._ready[event.path] = isinstance(event, EngineReady)

    def known(self, path: str) -> bool | None:
        """What the events (or the one ask) said of ``path``; ``None``: nothing yet."""
        return self._ready.get(path)

    async def ready(self, ref: ActorRef, timeout: float | None = STATE_ASK_TIMEOUT) -> bool:
        """Whether the engine of the inference actor ``ref`` is up (asks only while unknown;
        the ask's errors are the caller's)."""
        known = self._ready.get(ref.path)
        if known is not None:
            return known
        answer = await ask_engine_ready(ref, timeout)
        # an event that came while the ask was out is newer than its reply
        return self._ready.setdefault(ref.path, answer)

    def close(self) -> None:
        self._unsubscribe()

"""The system event stream: dead letters and lifecycle events, for user code to watch.

Subscribers are plain callables (called synchronously, in publish order; an exception in one is
logged and does not affect the others) or ActorRefs (the event is told to them). A bound method
may also be subscribed weakly (``subscribe_weakly``), so the subscription does not keep its
object alive.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import structlog

log = structlog.get_logger("actoros.events")


class EventStream:
    __slots__ = ("_subs",)

    def __init__(self) -> None:
        self._subs: list[tuple[tuple[type, ...], Any]] = []

    def subscribe(self, handler: Any, *types: type) -> Callable[[], None]:
        """Deliver events of ``types`` (all events when none given) to ``handler``.

        Returns a function that unsubscribes.
        """
        if not callable(handler) and not hasattr(handler, "tell"):
            raise TypeError("handler must be a callable or an ActorRef")
        entry = (types or (object,), handler)
        self._subs.append(entry)

        def unsubscribe() -> None:
            try:
                self._subs.remove(entry)
            except ValueError:
                pass

        return unsubscribe

    def subscribe_weakly(self, method: Callable[[Any], object], *types: type) -> Callable[[], None]:
        """``subscribe`` a bound method without keeping its object alive: once the object is
        gone, its next event ends the subscription (a dropped gateway app takes its
        subscriptions with it). Returns a function that unsubscribes."""
        weak = weakref.WeakMethod(method)
        unsubscribe: Callable[[], None] = lambda: None  # noqa: E731

        def handler(event: Any) -> None:
            bound = weak()
            if bound is None:
                unsubscribe()
            else:
                bound(event)

        unsubscribe = self.subscribe(handler, *types)
        return unsubscribe

    def wants(self, event_type: type) -> bool:
        """Whether anyone listens for this type (lets hot paths skip building events)."""
        return any(issubclass(event_type, types) for types, _ in self._subs)

    def publish(self, event: Any) -> None:
        for types, handler in tuple(self._subs):
            if not isinstance(event, types):
                continue
            tell = getattr(handler, "tell", None)
            try:
                if tell is not None:
                    tell(event)
                else:
                    handler(event)
            except Exception as exc:  # a broken subscriber must not break the publisher
                log.error(
                    "event.subscriber_failed",
                    event_type=type(event).__name__,
                    error=repr(exc),
                )
